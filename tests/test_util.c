/* test_util.c — base/util.h's growing arrays (xgrow): the capacity doubles from its
 * first size until the need fits, stays when it already does, and the contents
 * survive the move; xaligned_alloc's buffers are zero to the last byte, small and
 * large (a large one is zeroed by the threads of a parallel region, in 2 MiB pieces,
 * the last one short) and when asked for inside a parallel region. */
#include <malloc.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"

/* A buffer of n bytes from xaligned_alloc over memory that was just full of 0xff:
 * with mmap and trimming off (mallopt), glibc serves both from its heap and keeps it,
 * so the second one reuses the first one's dirty bytes and only xaligned_alloc's zeroing can clear them. */
static int dirty_then_zero(size_t n, int in_region) {
    unsigned char *d = malloc(n + 4096);
    if (!d) return 0;
    memset(d, 0xff, n + 4096);
    __asm__ volatile("" : : "r"(d) : "memory"); /* keeps the compiler from dropping the memset before free */
    free(d);
    unsigned char *p = NULL;
    if (in_region) {
#pragma omp parallel num_threads(2)
#pragma omp master /* this thread's heap arena, where d was */
        p = xaligned_alloc(n);
    } else
        p = xaligned_alloc(n);
    int ok = ((uintptr_t)p & 63) == 0;
    for (size_t i = 0; i < n && ok; i++) ok = p[i] == 0;
    free(p);
    return ok;
}

int main(void) {
    /* (AddressSanitizer's allocator ignores this and hands out fresh memory with only
     * its first bytes filled, so there the check covers less of the buffer) */
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT32_MAX);
    omp_set_num_threads(2);
    CHECK(dirty_then_zero(1000, 0), "a 1000-byte xaligned_alloc buffer is not all zero");
    size_t big = ((size_t)40 << 20) + 12345; /* the parallel zeroing, a short last piece */
    CHECK(dirty_then_zero(big, 0), "a %zu-byte xaligned_alloc buffer is not all zero", big);
    CHECK(dirty_then_zero(big, 1),
          "a %zu-byte xaligned_alloc buffer asked for inside a parallel region is not all zero", big);

    size_t cap = 0;
    int *v = xgrow(NULL, &cap, 1, 16, sizeof *v);
    CHECK(v && cap == 16, "first growth: cap %zu, expected 16", cap);
    for (int i = 0; i < 16; i++) v[i] = i * 7;
    int *same = xgrow(v, &cap, 16, 16, sizeof *v);
    CHECK(same == v && cap == 16, "a need that fits: moved or resized (cap %zu)", cap);
    v = xgrow(v, &cap, 17, 16, sizeof *v);
    CHECK(cap == 32, "17 of 16: cap %zu, expected 32", cap);
    v = xgrow(v, &cap, 100, 16, sizeof *v);
    CHECK(cap == 128, "100 of 32: cap %zu, expected 128 (doubling, not the need)", cap);
    v[99] = -1; /* the whole of the new capacity is there (the sanitizer build checks) */
    int kept = 1;
    for (int i = 0; i < 16; i++) kept &= v[i] == i * 7;
    CHECK(kept, "contents lost across growth");
    free(v);

    size_t bcap = 0;
    char *b = xgrow(NULL, &bcap, 5000, 4096, 1);
    CHECK(bcap == 8192, "bytes: cap %zu, expected 8192", bcap);
    memset(b, 'x', bcap);
    free(b);
    return check_summary("test_util");
}
