/* check.h — the assertion of the C tests: CHECK(cond, fmt, ...) prints
 * "FAIL FILE:LINE: message" on stderr and counts the failure in `failures`, which the
 * test's main turns into its exit status (0 pass, 1 fail).  One definition so every
 * test reports a failure the same way.  Include it once, from the test's .c file. */
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

#endif
