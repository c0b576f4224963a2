/*
 * rcstr: an immutable string shared by reference count, for a value that
 * many records hold at once (the address every check of a service went
 * to: one copy for the whole history, not one per record).
 *
 * The pointer is the string itself (a plain const char * to readers); its
 * count lives just before it. Counting is atomic: references may be
 * dropped on any thread. Whoever holds a reference calls tsvc_rcstr_unref
 * once; never free() it.
 */
#ifndef TSVC_RCSTR_H
#define TSVC_RCSTR_H

/* A new shared copy of s with one reference, or NULL (out of memory). */
char *tsvc_rcstr_new(const char *s);
/* One more reference to s (NULL: NULL). */
char *tsvc_rcstr_ref(char *s);
/* Drop one reference; the last one frees it. NULL is a no-op. */
void tsvc_rcstr_unref(char *s);

#endif /* TSVC_RCSTR_H */
