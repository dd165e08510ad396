/* test_decode_linear.c — kernels/decode.h with fp32 weights (the default decode path).
 *
 * decode_linear over the fp32 panels equals, bit for bit, a scalar reference: for each
 * (n, o) one chain of multiply-adds x[n,i] * w[o,i] over i = 0..C-1, then + bias
 * (fused, fmaf, when the kernel is built with FMA instructions, as on AVX2 and
 * AVX-512; unfused otherwise).  The shapes cover what the kernel splits: C below, at
 * and past its chunk of steps (128) and not a multiple of it, a partial last panel,
 * batch 1, full and partial row blocks (8 rows on AVX-512), more rows than one row
 * group (32 on AVX-512); 1 and 2 threads.  And a row's result does not depend on the
 * rows decoded with it (generate.c's batch invariance rests on it). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_check.h"
#include "kernels/decode.h"

static float madd(float a, float b, float c) {
#if defined(__AVX512F__) || (defined(__AVX__) && defined(__FMA__))
    return fmaf(a, b, c);
#else
    volatile float p = a * b; /* not contracted into an FMA by the compiler */
    return p + c;
#endif
}

static void check_shape(int N, int C, int OC, int nt, int with_bias) {
    float *w = malloc((size_t)OC * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
    float *bias = malloc(OC * sizeof(float)), *out = malloc((size_t)N * OC * sizeof(float));
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = frand();
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = frand();
    for (int o = 0; o < OC; o++) bias[o] = frand();
    DecodePacked pk;
    decode_pack(&pk, w, C, OC);
    decode_linear(out, x, &pk, with_bias ? bias : NULL, N, nt);
    int bad = 0;
    for (int n = 0; n < N && !bad; n++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int i = 0; i < C; i++) acc = madd(x[(size_t)n * C + i], w[(size_t)o * C + i], acc);
            float want = acc + (with_bias ? bias[o] : 0.0f), got = out[(size_t)n * OC + o];
            if (memcmp(&want, &got, sizeof want) != 0) {
                CHECK(0, "linear N=%d C=%d OC=%d threads=%d bias=%d: out[%d,%d] = %a, the scalar chain %a", N, C, OC,
                      nt, with_bias, n, o, got, want);
                bad = 1;
                break;
            }
        }
    decode_packed_free(&pk);
    free(w), free(x), free(bias), free(out);
}

int main(void) {
    const int shapes[][3] = {{1, 64, 64},   {1, 37, 100},  {1, 576, 96},  {3, 40, 70},   {8, 128, 64},  {9, 129, 33},
                             {16, 300, 65}, {16, 576, 96}, {33, 257, 40}, {40, 130, 70}, {7, 1, 5},     {1, 8, 1},
                             {24, 256, 32}, {2, 1000, 50}, {17, 64, 97},  {64, 40, 33},  {1, 128, 128}, {5, 384, 31}};
    for (int nt = 1; nt <= 2; nt++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_shape(shapes[s][0], shapes[s][1], shapes[s][2], nt, (int)(s & 1));
    /* a row's result does not depend on the batch around it */
    check_rows_independent(DECODE_FP32, 300, 80, 37);
    return check_summary("test_decode_linear");
}
