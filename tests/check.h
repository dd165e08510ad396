/* check.h — the assertion of the C tests: CHECK(cond, fmt, ...) prints
 * "FAIL FILE:LINE: message" on stderr and counts the failure in `failures`, which the
 * test's main turns into its exit status (0 pass, 1 fail).  One definition so every
 * test reports a failure the same way; check_summary ends main.  Include it once,
 * from the test's .c file. */
#ifndef CHERRY_TESTS_CHECK_H
#define CHERRY_TESTS_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

/* The end of a test's main: "NAME: N check(s) failed" on stderr and 1, or
 * "NAME: all checks passed" and 0 (the exit status). */
static inline int check_summary(const char *name) {
    if (failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
