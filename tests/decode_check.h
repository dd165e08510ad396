/* decode_check.h — what test_decode_linear.c (fp32 panels), test_decode_bf16.c and
 * test_decode_int8.c share: the random inputs, the bit comparison of a product with
 * a test's own scalar chain, and the check that a row's result does not depend on the
 * rows decoded with it (generate.c's batch invariance rests on it).
 * Include once, from the test's .c file. */
#ifndef CHERRY_TESTS_DECODE_CHECK_H
#define CHERRY_TESTS_DECODE_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/decode.h"

static uint64_t rng = 88172645463325252ULL;
static float frand(void) { /* xorshift64, uniform in [-1, 1) */
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* decode_linear of pk on x [N, C] with bias, at 1 and at 2 threads, against ref
 * [N, OC] bit for bit (out: scratch [N, OC], filled with NaNs first); kern names the
 * kernel in a failure. */
static inline void check_linear_bits(const DecodePacked *pk, const float *x, const float *bias, const float *ref,
                                     float *out, int N, int C, int OC, const char *kern) {
    for (int nt = 1; nt <= 2; nt++) {
        memset(out, 0xff, (size_t)N * OC * sizeof(float));
        decode_linear(out, x, pk, bias, N, nt);
        int first = -1;
        for (int i = 0; i < N * OC; i++)
            if (memcmp(&out[i], &ref[i], sizeof(float))) {
                first = i;
                break;
            }
        CHECK(first < 0, "linear %s N=%d C=%d OC=%d threads=%d: out[%d,%d] = %a, the scalar reference %a", kern, N, C,
              OC, nt, first / OC, first % OC, first >= 0 ? out[first] : 0, first >= 0 ? ref[first] : 0);
    }
}

/* Decodes N rows of width C through OC outputs packed as dtype, once as one batch (2
 * threads) and once row by row (1 thread): every row must come out the same bits. */
static void check_rows_independent(DecodeDtype dtype, int C, int OC, int N) {
    float *w = malloc((size_t)OC * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
    float *all = malloc((size_t)N * OC * sizeof(float)), *one = malloc(OC * sizeof(float));
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = frand();
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = frand();
    DecodePacked pk;
    decode_pack_dtype(&pk, w, C, OC, dtype);
    decode_linear(all, x, &pk, NULL, N, 2);
    for (int n = 0; n < N; n++) {
        decode_linear(one, x + (size_t)n * C, &pk, NULL, 1, 1);
        CHECK(memcmp(one, all + (size_t)n * OC, OC * sizeof(float)) == 0,
              "%s: row %d alone differs from the same row in a batch of %d", decode_dtype_name(dtype), n, N);
    }
    decode_packed_free(&pk);
    free(w), free(x), free(all), free(one);
}

#endif
