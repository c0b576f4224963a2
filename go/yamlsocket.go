package tanukisvc

// A reader of monitor.socket in a tanuki.yaml, for NewFromConfig: just
// enough YAML, with the standard library only, to find that one key the way
// libyaml and the program's loader (src/config/load.c) do, and to say so,
// with file:line:column, when a file goes beyond what it follows.

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// yline is one line of the file.
type yline struct {
	no     int    // 1-based
	indent int    // leading spaces
	text   string // without the newline (and a '\r' before it)
}

// blank is true for a line with nothing but spaces or a comment.
func (l yline) blank() bool {
	t := strings.TrimLeft(l.text, " \t")
	return t == "" || t[0] == '#'
}

type configReader struct {
	file  string
	lines []yline
}

func (r *configReader) errorf(line, col int, format string, a ...any) error {
	return fmt.Errorf("tanukisvc: %s:%d:%d: %s", r.file, line, col, fmt.Sprintf(format, a...))
}

// beyond is the error for YAML that this reader does not follow.
func (r *configReader) beyond(line, col int, what string) error {
	return r.errorf(line, col, "%s is beyond what NewFromConfig reads; pass the socket to New "+
		"(`tanuki-svc config show` prints monitor.socket)", what)
}

// configSocket returns monitor.socket as written in the YAML text data of
// the file named file, or "" when the file leaves it to the default.
func configSocket(file string, data string) (string, error) {
	data = strings.TrimPrefix(data, "\uFEFF")
	r := &configReader{file: file}
	for i, t := range strings.Split(data, "\n") {
		t = strings.TrimSuffix(t, "\r")
		r.lines = append(r.lines, yline{no: i + 1, indent: len(t) - len(strings.TrimLeft(t, " ")), text: t})
	}
	// The document: after a "---" line, if any, up to a "..." line.
	start, end, seen := 0, len(r.lines), false
	for i, l := range r.lines {
		if l.blank() {
			continue
		}
		if strings.HasPrefix(l.text, "%") && !seen {
			continue // a directive
		}
		if l.text == "---" || strings.HasPrefix(l.text, "--- ") || strings.HasPrefix(l.text, "---\t") {
			if seen {
				return "", r.errorf(l.no, 1, "a second YAML document (only one per file)")
			}
			if rest := strings.TrimSpace(l.text[3:]); rest != "" && rest[0] != '#' {
				return "", r.beyond(l.no, 5, "content on the \"---\" line")
			}
			start, seen = i+1, true
			continue
		}
		if l.text == "..." || strings.HasPrefix(l.text, "... ") {
			end = i
			break
		}
		seen = true
	}
	lines := r.lines[start:end]

	// The top-level mapping: its keys are the lines at the first one's indent.
	top := -1
	var monitor, merge *yline
	var monitorRest string
	var monitorBody []yline
	for i := 0; i < len(lines); {
		l := lines[i]
		if l.blank() {
			i++
			continue
		}
		if top < 0 {
			top = l.indent
		}
		if l.indent != top {
			return "", r.errorf(l.no, l.indent+1, "bad indentation (the top level's is %d)", top)
		}
		if t := l.text[top:]; strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") || isDash(t) {
			return "", r.beyond(l.no, top+1, "a top level that is not a block mapping")
		}
		key, rest, col, err := r.splitKey(l, top)
		if err != nil {
			return "", err
		}
		j, err := r.valueEnd(lines, i, top, col, key)
		if err != nil {
			return "", err
		}
		switch key {
		case "<<":
			merge = &lines[i]
		case "monitor":
			if monitor != nil {
				return "", r.errorf(l.no, top+1, "duplicate key \"monitor\" (first on line %d)", monitor.no)
			}
			monitor, monitorRest, monitorBody = &lines[i], rest, lines[i+1:j]
		}
		i = j
	}
	if monitor == nil {
		if merge != nil {
			return "", r.beyond(merge.no, top+1, "a merge key (<<) at the top level, without a \"monitor\" key of its own,")
		}
		return "", nil
	}
	return r.monitorSocket(*monitor, monitorRest, monitorBody)
}

func isDash(t string) bool {
	return t == "-" || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "-\t")
}

// valueEnd returns the index in lines just past the value of the key of
// lines[i] (at indent; its value starts at column col): the lines under it,
// a sequence at the key's own indent ("key:\n- a"), and a flow collection or
// a quoted string that goes on over lines, which libyaml takes at any
// indentation. what names the key in errors.
func (r *configReader) valueEnd(lines []yline, i, indent, col int, what string) (int, error) {
	li, c := i, col+len(lines[i].text[col:])-len(afterProps(lines[i].text[col:]))
	if stripComment(lines[i].text[c:]) == "" {
		k := i + 1
		for k < len(lines) && lines[k].blank() {
			k++
		}
		if k == len(lines) || lines[k].indent <= indent {
			j := i + 1
			for j < len(lines) && (lines[j].blank() || lines[j].indent > indent ||
				(lines[j].indent == indent && isDash(lines[j].text[indent:]))) {
				j++
			}
			return j, nil
		}
		t := lines[k].text
		li, c = k, len(t)-len(afterProps(t))
	}
	end := li
	if t := lines[li].text[c:]; t != "" && strings.IndexByte("{[\"'", t[0]) >= 0 {
		var err error
		if end, err = r.flowEnd(lines, li, c, what); err != nil {
			return 0, err
		}
	}
	j := end + 1
	for j < len(lines) && (lines[j].blank() || lines[j].indent > indent) {
		j++
	}
	return j, nil
}

// afterProps passes over blanks and a value's anchor or tag.
func afterProps(t string) string {
	for {
		t = strings.TrimLeft(t, " \t")
		if t == "" || (t[0] != '&' && t[0] != '!') {
			return t
		}
		t = t[len(firstWord(t)):]
	}
}

// flowEnd returns the index of the line where the flow collection or quoted
// string starting at column c of lines[li] ends.
func (r *configReader) flowEnd(lines []yline, li, c int, what string) (int, error) {
	depth := 0
	var quote byte
	prev := byte(',') // the last character that is not blank: a quote after one of "{[,:" opens a string
	for k, x0 := li, c; k < len(lines); k, x0 = k+1, 0 {
		t := lines[k].text
		for x := x0; x < len(t); x++ {
			ch := t[x]
			if quote != 0 {
				switch {
				case quote == '"' && ch == '\\':
					x++
				case quote == '\'' && ch == '\'' && x+1 < len(t) && t[x+1] == '\'':
					x++
				case ch == quote:
					quote, prev = 0, 'a'
					if depth == 0 {
						return k, nil
					}
				}
				continue
			}
			switch {
			case ch == ' ' || ch == '\t':
				continue
			case ch == '#' && (x == 0 || t[x-1] == ' ' || t[x-1] == '\t'):
				x = len(t)
				continue
			case (ch == '"' || ch == '\'') && strings.IndexByte("{[,:", prev) >= 0:
				quote = ch
			case ch == '{' || ch == '[':
				depth++
			case ch == '}' || ch == ']':
				if depth--; depth == 0 {
					return k, nil
				}
			}
			prev = ch
		}
	}
	switch open := lines[li].text[c]; open {
	case '"':
		return 0, r.errorf(lines[li].no, c+1, "%s: unclosed double-quoted string", what)
	case '\'':
		return 0, r.errorf(lines[li].no, c+1, "%s: unclosed single-quoted string", what)
	case '{':
		return 0, r.errorf(lines[li].no, c+1, "%s: no \"}\" closes this \"{\"", what)
	default:
		return 0, r.errorf(lines[li].no, c+1, "%s: no \"]\" closes this \"[\"", what)
	}
}

// splitKey splits a block mapping line "key: rest" whose key starts at
// column at. col is the column (0-based) where rest starts.
func (r *configReader) splitKey(l yline, at int) (key, rest string, col int, err error) {
	t := l.text[at:]
	if t[0] == '"' || t[0] == '\'' {
		v, n, qerr := unquote(t)
		if qerr != "" {
			return "", "", 0, r.errorf(l.no, at+1, "key: %s", qerr)
		}
		after := t[n:]
		trim := strings.TrimLeft(after, " \t")
		if !strings.HasPrefix(trim, ":") {
			return "", "", 0, r.errorf(l.no, at+1, "expected \"key: value\"")
		}
		off := at + n + (len(after) - len(trim)) + 1
		return v, l.text[off:], off, nil
	}
	if strings.HasPrefix(t, "? ") || t == "?" {
		return "", "", 0, r.beyond(l.no, at+1, "an explicit key (?)")
	}
	for i := 0; i < len(t); i++ {
		if t[i] == '#' && i > 0 && (t[i-1] == ' ' || t[i-1] == '\t') {
			break
		}
		if t[i] == ':' && (i+1 == len(t) || t[i+1] == ' ' || t[i+1] == '\t') {
			return strings.TrimRight(t[:i], " \t"), t[i+1:], at + i + 1, nil
		}
	}
	return "", "", 0, r.errorf(l.no, at+1, "expected \"key: value\"")
}

// props passes over spaces and an anchor (&name) at the start of v,
// which starts at column col of line no. It refuses an alias or a tag.
func (r *configReader) props(no, col int, v, what string) (string, int, error) {
	for {
		trim := strings.TrimLeft(v, " \t")
		col += len(v) - len(trim)
		v = trim
		if v == "" {
			return v, col, nil
		}
		switch v[0] {
		case '*':
			return "", 0, r.beyond(no, col+1, what+" given by an alias ("+firstWord(v)+")")
		case '!':
			return "", 0, r.beyond(no, col+1, what+" with a tag ("+firstWord(v)+")")
		case '&':
			w := firstWord(v)
			v, col = v[len(w):], col+len(w)
			continue
		}
		return v, col, nil
	}
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

// stripComment drops a comment (" #...") from a plain value and trims it.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			s = s[:i]
			break
		}
	}
	return strings.TrimRight(s, " \t")
}

func isNull(plain string) bool {
	switch plain {
	case "", "~", "null", "Null", "NULL":
		return true
	}
	return false
}

// monitorSocket reads socket from the value of the top-level key monitor:
// rest is what follows "monitor:" on its line, body the lines under it.
func (r *configReader) monitorSocket(m yline, rest string, body []yline) (string, error) {
	col := len(m.text) - len(rest)
	v, col, err := r.props(m.no, col, rest, "monitor")
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(v, "{") {
		return r.flowSocket(m.no, col, v, body)
	}
	if stripComment(v) != "" {
		if isNull(stripComment(v)) {
			return "", nil
		}
		return "", r.errorf(m.no, col+1, "monitor: expected a mapping")
	}
	// A block mapping: its keys at the indent of its first line.
	in := -1
	var sock *yline
	var out string
	for i := 0; i < len(body); {
		l := body[i]
		if l.blank() {
			i++
			continue
		}
		if in < 0 {
			in = l.indent
			if t := l.text[in:]; strings.HasPrefix(t, "{") {
				return r.flowSocket(l.no, in, t, body[i+1:])
			}
		}
		if l.indent != in {
			return "", r.errorf(l.no, l.indent+1, "bad indentation in monitor (its keys are at %d)", in)
		}
		if isDash(l.text[in:]) {
			return "", r.errorf(l.no, in+1, "monitor: expected a mapping, got a list")
		}
		key, krest, kcol, err := r.splitKey(l, in)
		if err != nil {
			return "", err
		}
		j, err := r.valueEnd(body, i, in, kcol, "monitor."+key)
		if err != nil {
			return "", err
		}
		switch key {
		case "<<":
			return "", r.beyond(l.no, in+1, "a merge key (<<) in monitor")
		case "socket":
			if sock != nil {
				return "", r.errorf(l.no, in+1, "duplicate key \"socket\" in monitor (first on line %d)", sock.no)
			}
			sock = &body[i]
			if out, err = r.blockScalar(l.no, kcol, krest, body[i+1:j]); err != nil {
				return "", err
			}
		}
		i = j
	}
	return out, nil
}

// blockScalar reads the value of monitor.socket in a block mapping: v is
// what follows "socket:" (at column col of line no), more the lines under it.
func (r *configReader) blockScalar(no, col int, v string, more []yline) (string, error) {
	v, col, err := r.props(no, col, v, "monitor.socket")
	if err != nil {
		return "", err
	}
	if stripComment(v) == "" {
		// The value starts on a later line, if anywhere.
		for i, l := range more {
			if l.blank() {
				continue
			}
			return r.blockScalar(l.no, l.indent, l.text[l.indent:], more[i+1:])
		}
		return "", nil
	}
	switch v[0] {
	case '|', '>':
		return "", r.beyond(no, col+1, "a block scalar ("+v[:1]+") for monitor.socket")
	case '{', '[':
		return "", r.errorf(no, col+1, "monitor.socket: expected a string")
	case '"', '\'':
		s, n, qerr := unquote(v)
		if qerr != "" {
			for _, l := range more {
				if !l.blank() && strings.HasPrefix(qerr, "unclosed") {
					return "", r.beyond(no, col+1, "a quoted monitor.socket over several lines")
				}
			}
			return "", r.errorf(no, col+1, "monitor.socket: %s", qerr)
		}
		if stripComment(v[n:]) != "" {
			return "", r.errorf(no, col+n+1, "monitor.socket: text after the closing quote")
		}
		for _, l := range more {
			if !l.blank() {
				return "", r.errorf(l.no, l.indent+1, "monitor.socket: text after the closing quote")
			}
		}
		return s, r.nonEmpty(no, col, s)
	}
	if isDash(v) {
		return "", r.errorf(no, col+1, "monitor.socket: expected a string, got a list")
	}
	return r.plainLines(append([]yline{{no: no, indent: col, text: strings.Repeat(" ", col) + v}}, more...))
}

// plainLines reads a plain scalar over lines (folded with single spaces).
func (r *configReader) plainLines(lines []yline) (string, error) {
	var parts []string
	for _, l := range lines {
		if l.blank() {
			if strings.TrimSpace(l.text) != "" {
				break // a comment ends a plain scalar
			}
			continue
		}
		p := stripComment(strings.TrimLeft(l.text, " \t"))
		parts = append(parts, p)
		if p != strings.TrimSpace(l.text) {
			break // it ended with a comment
		}
	}
	s := strings.Join(parts, " ")
	if isNull(s) {
		return "", nil
	}
	return s, nil
}

func (r *configReader) nonEmpty(no, col int, s string) error {
	if s == "" {
		return r.errorf(no, col+1, "monitor.socket: must not be empty")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return r.errorf(no, col+1, "monitor.socket: a path cannot hold a NUL character")
	}
	return nil
}

// flowSocket reads socket from a flow mapping "{...}" that starts at
// column col of line no with text v and may go on over the lines of more.
func (r *configReader) flowSocket(no, col int, v string, more []yline) (string, error) {
	f := &flow{r: r}
	f.add(no, col, v)
	for _, l := range more {
		f.add(l.no, 0, l.text)
	}
	return f.mapping()
}

// flow is the text of a flow mapping, with where each byte came from.
type flow struct {
	r     *configReader
	src   string
	pos   int
	marks []flowMark
}

type flowMark struct{ off, no, col int }

func (f *flow) add(no, col int, text string) {
	if f.src != "" {
		f.src += "\n"
	}
	f.marks = append(f.marks, flowMark{len(f.src), no, col})
	f.src += text
}

// at is the line and column (1-based) of offset off.
func (f *flow) at(off int) (int, int) {
	m := f.marks[0]
	for _, k := range f.marks {
		if k.off <= off {
			m = k
		}
	}
	return m.no, m.col + off - m.off + 1
}

func (f *flow) errorf(off int, format string, a ...any) error {
	no, col := f.at(off)
	return f.r.errorf(no, col, format, a...)
}

func (f *flow) beyond(off int, what string) error {
	no, col := f.at(off)
	return f.r.beyond(no, col, what)
}

// space passes over blanks, line breaks and comments.
func (f *flow) space() {
	for f.pos < len(f.src) {
		c := f.src[f.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			f.pos++
		case c == '#' && (f.pos == 0 || strings.ContainsRune(" \t\n", rune(f.src[f.pos-1]))):
			for f.pos < len(f.src) && f.src[f.pos] != '\n' {
				f.pos++
			}
		default:
			return
		}
	}
}

// scalar reads a flow scalar; quoted says whether it was quoted.
func (f *flow) scalar() (s string, quoted bool, err error) {
	start := f.pos
	if c := f.src[f.pos]; c == '"' || c == '\'' {
		v, n, qerr := unquote(f.src[f.pos:])
		if qerr != "" {
			return "", false, f.errorf(start, "%s", qerr)
		}
		if strings.Contains(f.src[f.pos:f.pos+n], "\n") {
			return "", false, f.beyond(start, "a quoted string over several lines")
		}
		f.pos += n
		return v, true, nil
	}
	var b strings.Builder
	for f.pos < len(f.src) {
		c := f.src[f.pos]
		if c == ',' || c == '}' || c == ']' || c == '{' || c == '[' {
			break
		}
		if c == ':' && (f.pos+1 == len(f.src) || strings.ContainsRune(" \t\n,}]", rune(f.src[f.pos+1]))) {
			break
		}
		if c == '#' && f.pos > start && strings.ContainsRune(" \t\n", rune(f.src[f.pos-1])) {
			break
		}
		b.WriteByte(c)
		f.pos++
	}
	// Line breaks and the blanks around them fold into one space.
	return strings.Join(strings.Fields(b.String()), " "), false, nil
}

// skipValue passes over a nested flow collection or a scalar.
func (f *flow) skipValue() error {
	c := f.src[f.pos]
	if c != '{' && c != '[' {
		_, _, err := f.scalar()
		return err
	}
	depth := 0
	for f.pos < len(f.src) {
		c := f.src[f.pos]
		switch c {
		case '"', '\'':
			_, n, qerr := unquote(f.src[f.pos:])
			if qerr != "" {
				return f.errorf(f.pos, "%s", qerr)
			}
			f.pos += n
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				f.pos++
				return nil
			}
		case '#':
			if f.pos > 0 && strings.ContainsRune(" \t\n", rune(f.src[f.pos-1])) {
				f.space()
				continue
			}
		}
		f.pos++
	}
	return f.errorf(len(f.src), "monitor: unclosed %q", c)
}

// mapping reads "{key: value, ...}" and returns the value of socket.
func (f *flow) mapping() (string, error) {
	open := f.pos
	f.pos++ // '{'
	var out string
	seen := -1
	for {
		f.space()
		if f.pos >= len(f.src) {
			return "", f.errorf(open, "monitor: no \"}\" closes this \"{\"")
		}
		if f.src[f.pos] == '}' {
			f.pos++
			break
		}
		kpos := f.pos
		switch f.src[f.pos] {
		case '{', '[':
			return "", f.errorf(kpos, "monitor: a key must be a string")
		case '?':
			return "", f.beyond(kpos, "an explicit key (?)")
		case '*', '&', '!':
			return "", f.beyond(kpos, "an alias, anchor or tag on a key of monitor")
		case ',':
			return "", f.errorf(kpos, "monitor: an empty entry")
		}
		key, _, err := f.scalar()
		if err != nil {
			return "", err
		}
		f.space()
		var val string
		hasVal := false
		if f.pos < len(f.src) && f.src[f.pos] == ':' {
			f.pos++
			f.space()
			if f.pos < len(f.src) && f.src[f.pos] != ',' && f.src[f.pos] != '}' {
				hasVal = true
			}
		}
		if key == "<<" {
			return "", f.beyond(kpos, "a merge key (<<) in monitor")
		}
		if key == "socket" {
			if seen >= 0 {
				no, _ := f.at(seen)
				return "", f.errorf(kpos, "duplicate key \"socket\" in monitor (first on line %d)", no)
			}
			seen = kpos
			if hasVal {
				vpos := f.pos
				switch f.src[f.pos] {
				case '*':
					return "", f.beyond(vpos, "monitor.socket given by an alias")
				case '!':
					return "", f.beyond(vpos, "monitor.socket with a tag")
				case '&':
					for f.pos < len(f.src) && !strings.ContainsRune(" \t\n,}", rune(f.src[f.pos])) {
						f.pos++
					}
					f.space()
					vpos = f.pos
				}
				if f.pos >= len(f.src) || f.src[f.pos] == '{' || f.src[f.pos] == '[' {
					return "", f.errorf(vpos, "monitor.socket: expected a string")
				}
				s, quoted, err := f.scalar()
				if err != nil {
					return "", err
				}
				if !quoted && isNull(s) {
					s = ""
				} else if s == "" {
					no, col := f.at(vpos)
					return "", f.r.nonEmpty(no, col-1, s)
				}
				val = s
			}
			out = val
		} else if hasVal {
			if err := f.skipValue(); err != nil {
				return "", err
			}
		}
		f.space()
		if f.pos < len(f.src) && f.src[f.pos] == ',' {
			f.pos++
			continue
		}
		if f.pos < len(f.src) && f.src[f.pos] == '}' {
			continue
		}
		if f.pos >= len(f.src) {
			continue // reported as unclosed above
		}
		return "", f.errorf(f.pos, "monitor: expected \",\" or \"}\"")
	}
	f.space()
	if f.pos < len(f.src) {
		return "", f.errorf(f.pos, "monitor: text after the closing \"}\"")
	}
	return out, nil
}

// YAML's escapes in double-quoted strings: one character, or hex digits.
var (
	simpleEscapes = map[byte]string{'0': "\x00", 'a': "\a", 'b': "\b", 't': "\t", '\t': "\t",
		'n': "\n", 'v': "\v", 'f': "\f", 'r': "\r", 'e': "\x1b", ' ': " ", '"': "\"",
		'/': "/", '\\': "\\", 'N': "\u0085", '_': "\u00a0", 'L': "\u2028", 'P': "\u2029"}
	hexEscapes = map[byte]int{'x': 2, 'u': 4, 'U': 8}
)

// unquote reads the quoted scalar at the start of s ('...' or "...") and
// returns its value and its length in s, or a message for people.
func unquote(s string) (string, int, string) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		if q == '\'' {
			if c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				return b.String(), i + 1, ""
			}
			b.WriteByte(c)
			i++
			continue
		}
		switch c {
		case '"':
			return b.String(), i + 1, ""
		case '\\':
			if i+1 >= len(s) {
				return "", 0, "unclosed double-quoted string"
			}
			e := s[i+1]
			i += 2
			if r, ok := simpleEscapes[e]; ok {
				b.WriteString(r)
				continue
			}
			n := hexEscapes[e]
			if n == 0 {
				return "", 0, fmt.Sprintf("unknown escape \\%c in a double-quoted string", e)
			}
			if i+n > len(s) {
				return "", 0, "a short \\" + string(e) + " escape in a double-quoted string"
			}
			v, err := strconv.ParseUint(s[i:i+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", 0, "a bad \\" + string(e) + " escape in a double-quoted string"
			}
			b.WriteRune(rune(v)) // \xE9 is U+00E9, as libyaml reads it
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	if q == '\'' {
		return "", 0, "unclosed single-quoted string"
	}
	return "", 0, "unclosed double-quoted string"
}
