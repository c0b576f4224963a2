#!/usr/bin/env bash
# The bash completion (dist/bash-completion/tanuki-svc and the hidden
# `tanuki-svc __complete`): it offers what every verb's --help lists, and in
# a real bash it completes verbs, options, option values and service names
# from the config (-c, $TANUKI_CONFIG, ./tanuki.yaml), with a real TAB typed
# into an interactive bash in tmux at the end.
. "$(dirname "$0")/lib.sh"

SCRIPT=$TSVC_SOURCE_DIR/dist/bash-completion/tanuki-svc
mkdir -p "$T/bin" "$T/other"
ln -s "$BIN" "$T/bin/tanuki-svc"
cat >tanuki.yaml <<YAML
services:
  cache: {image: redis:7, port: 6379, external: true}
  db: {image: postgres:16, port: 5432, external: true}
  we.ird: {port: 8088, external: true}
YAML
cat >other/tanuki.yaml <<YAML
services:
  search: {port: 9200, external: true}
YAML
printf 'services: [\n' >broken.yaml

# ---- what --help says ---------------------------------------------------------
# Both come from the parser's tables (verbs.c): the completion must walk
# them whole, as the help does.
verbs_help=$("$BIN" --help | sed -nE 's/^  ([a-z]+) .*/\1/p' | sort)
verbs_comp=$("$BIN" __complete 1 tanuki-svc "" | tail -n +2 | grep -vx help | sort)
eq "the verbs are those of --help" "$verbs_comp" "$verbs_help"
for verb in $verbs_help; do
  # "  -c, --config FILE  text" and "      --json  text": -c, --config, --json.
  listed=$("$BIN" "$verb" --help | sed -nE 's/^ +(-([a-zA-Z]), )?--([a-z][a-z0-9-]*).*/\2 \3/p' |
           awk '{ if (NF == 2) print "-" $1; print "--" $NF }' | sort)
  offered=$("$BIN" __complete 2 tanuki-svc "$verb" - | tail -n +2 | sort)
  eq "$verb -<TAB> offers the options of '$verb --help'" "$offered" "$listed"
done

# ---- in bash ----------------------------------------------------------------------
# complete_line WORD...: COMPREPLY for the last word, by the installed function.
complete_line() {
  (
    cd "$T" || exit 1
    PATH=$T/bin:$PATH
    # shellcheck disable=SC1090
    source "$SCRIPT"
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    _tanuki_svc
    printf '%s\n' "${COMPREPLY[@]}" | sort
  )
}
nl=$'\n'
check "the script registers itself" bash -c "source '$SCRIPT' && complete -p tanuki-svc | grep -q _tanuki_svc"
eq "verbs" "$(complete_line tanuki-svc st)" "start${nl}status${nl}stop"
eq "options" "$(complete_line tanuki-svc logs --f)" "--follow"
eq "option values" "$(complete_line tanuki-svc up --runtime "")" "auto${nl}docker${nl}process"
eq "option values after '=' (bash splits --log-level=w)" \
  "$(complete_line tanuki-svc up --log-level = w)" "warn"
eq "service names of ./tanuki.yaml" "$(complete_line tanuki-svc restart "")" "cache${nl}db${nl}we.ird"
eq "... each once" "$(complete_line tanuki-svc restart db "")" "cache${nl}we.ird"
eq "... by prefix" "$(complete_line tanuki-svc logs w)" "we.ird"
eq "... one for status" "$(complete_line tanuki-svc status db "")" ""
eq "service names of -c FILE" "$(complete_line tanuki-svc stop -c other/tanuki.yaml "")" "search"
eq "service names of --config=FILE" "$(complete_line tanuki-svc stop --config = other/tanuki.yaml "")" "search"
eq "service names of -c ~/FILE" "$(HOME=$T complete_line tanuki-svc stop -c "~/other/tanuki.yaml" "")" "search"
eq "service names of \$TANUKI_CONFIG" "$(TANUKI_CONFIG=$T/other/tanuki.yaml complete_line tanuki-svc check "")" "search"
eq "a broken config: no names, no noise" "$(complete_line tanuki-svc check -c broken.yaml "" 2>&1)" ""
eq "config subcommands" "$(complete_line tanuki-svc config "")" "show${nl}validate"
eq "-c completes file names" "$(complete_line tanuki-svc up -c o)" "other"
eq "--config= completes file names" "$(complete_line tanuki-svc up --config = br)" "broken.yaml"
eq "nothing after 'version'" "$(complete_line tanuki-svc version "")" ""
eq "a number is no file name (-fn N)" "$(complete_line tanuki-svc logs -fn "")" ""
eq "service names of -cFILE" "$(complete_line tanuki-svc stop -cother/tanuki.yaml "")" "search"
eq "options after operands too" "$(complete_line tanuki-svc logs db --fo)" "--follow"
eq "after --, operands only" "$(complete_line tanuki-svc restart -- -)" ""
eq "help VERB" "$(complete_line tanuki-svc help lo)" "logs"

# ---- a real TAB in an interactive bash -----------------------------------------
if command -v tmux >/dev/null; then
  sock=$T/tmux.sock
  tmux -S "$sock" new-session -d -x 200 -y 20 "cd '$T' && env -i HOME='$T' TERM=xterm PATH='$T/bin:/usr/bin:/bin' bash --norc --noprofile -i"
  EXTRA_CLEANUP="tmux -S '$sock' kill-server 2>/dev/null"
  tmux -S "$sock" send-keys "source '$SCRIPT'" Enter
  tmux -S "$sock" send-keys "tanuki-svc restart -c other/tanuki.yaml se" Tab
  if wait_for "the TAB" sh -c "tmux -S '$sock' capture-pane -p | grep -q 'restart -c other/tanuki.yaml search'"; then
    ok "TAB completes a service name in an interactive bash"
  else
    bad "TAB in bash: $(tmux -S "$sock" capture-pane -p | grep -v '^$')"
  fi
else
  bad "tmux is missing (scripts/deps.sh installs it)"
fi

finish
