/* err.h — errors as values.
 *
 * Library functions never exit(): they return 0 on success or a sysexits.h code,
 * and fill an Error with a message that already carries its context
 * ("FILE:LINE: what is wrong (field \"x\")").  Programs print it as
 * "PROGRAM: message" and exit with the code.  Not for: warnings or progress. */
#ifndef CHERRY_ERR_H
#define CHERRY_ERR_H

#include <sysexits.h>

typedef struct Error {
    int code;       /* 0 = no error, else EX_DATAERR, EX_NOINPUT, ... */
    char msg[1024]; /* human-readable, with file:line context */
} Error;

/* Sets e (may be NULL) and returns code, so callers can write
 * `return err_set(e, EX_DATAERR, "%s: bad header", path);`. */
int err_set(Error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in e with more context: "ctx: old message". */
int err_prefix(Error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "prog: msg" to stderr and exits with e->code (or EX_SOFTWARE if 0). */
void err_die(const char *prog, const Error *e) __attribute__((noreturn));

/* For impossible states (allocation failure, broken invariants): print and exit 70. */
void die_internal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif
