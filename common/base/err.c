/* err.c — see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int err_set(Error *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int err_prefix(Error *e, const char *fmt, ...) {
    if (!e) return EX_SOFTWARE;
    char ctx[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%s: %s", ctx, old);
    return e->code;
}

void err_die(const char *prog, const Error *e) {
    fprintf(stderr, "%s: %s\n", prog, e->msg[0] ? e->msg : "unknown error");
    exit(e->code ? e->code : EX_SOFTWARE);
}

void die_internal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cherry: internal error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EX_SOFTWARE);
}
