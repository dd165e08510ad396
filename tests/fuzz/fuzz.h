/* fuzz.h — what the libFuzzer harnesses (tests/fuzz/fuzz_*.c, `make fuzz`) share:
 * a scratch directory for the parsers that read a path, and writing an input there.
 * Each harness defines LLVMFuzzerTestOneInput; libFuzzer provides main.  A harness
 * must not leak, crash, read out of bounds, exit() or allocate without bound on any
 * input: every parser answers bad input with an error value. */
#ifndef CHERRY_FUZZ_H
#define CHERRY_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* $TMPDIR/cherry-fuzz-PID/ (created on first use). */
static const char *fuzz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/cherry-fuzz-%ld", t && *t ? t : "/tmp", (long)getpid());
        Error e;
        if (mkdir_p(dir, &e)) {
            fprintf(stderr, "fuzz: %s\n", e.msg);
            abort();
        }
    }
    return dir;
}

/* Writes DATA to fuzz_dir()/NAME and returns the path (a static buffer). */
static const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[768];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
    return path;
}

/* A NUL-terminated copy of DATA (the caller frees). */
static char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif
