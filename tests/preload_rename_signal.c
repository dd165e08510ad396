/* preload_rename_signal.c — an LD_PRELOAD shim for tests/t_signal_save.sh: after
 * the first rename() that matches, the process gets SIGINT twice, as a user pressing
 * Ctrl-C twice at exactly that moment.  A rename matches when the name of its
 * source's directory starts with $SHIM_FROM_DIR and its destination is not inside a
 * temporary, or when the last component of its destination starts with
 * $SHIM_TO_BASE and the destination lies inside a cherry temporary directory (".tmp-").
 * Built by the test itself (cc -shared -fPIC); not part of the library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    static int fired;
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    int rc = real(from, to);
    const char *sf = getenv("SHIM_FROM_DIR"), *st = getenv("SHIM_TO_BASE");
    const char *base = strrchr(to, '/') ? strrchr(to, '/') + 1 : to;
    const char *tmp = strstr(to, ".tmp-");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", from);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    const char *dirbase = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    int hit = (sf && *sf && slash && strncmp(dirbase, sf, strlen(sf)) == 0 && !tmp) ||
              (st && *st && strncmp(base, st, strlen(st)) == 0 && tmp && tmp < base);
    if (hit && !fired) {
        fired = 1;
        fprintf(stderr, "shim: SIGINT twice after rename(%s, %s)\n", from, to);
        raise(SIGINT);
        raise(SIGINT);
    }
    return rc;
}
