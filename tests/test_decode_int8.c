/* test_decode_int8.c — kernels/decode.h with int8 weights (--gen-dtype int8).
 *
 * 1. decode_int8_quantize against hand-worked blocks: the scale max|w| / 127, q =
 *    roundf(w * (1 / d)) with ties away from zero (GGML's quantize_row_q8_0_ref), an
 *    all-zero block (d = 0, q = 0), a NaN weight (q = 0), blocks whose 1 / d
 *    overflows (each weight still within d / 2), and the rounding against roundf.
 * 2. decode_pack_dtype(DECODE_INT8) holds, for every block of 32 inputs of every
 *    output, exactly decode_int8_quantize's q and d; outputs past OC are zero.
 * 3. decode_linear over the int8 panels equals, bit for bit, this file's scalar
 *    chain: each input row quantized per block of 32 as the weights are (qx, dx), and
 *    for each (n, o) and block b, s = sum qx * qw in 64-bit integers, acc =
 *    fmaf((float)s, dw * dx, acc), then + bias.  Shapes with a partial last block and
 *    panel, an odd panel count, batch 1 (the VNNI panel-pair kernel), full and partial row
 *    blocks; 1 and 2 threads; the VNNI, AVX2 and portable kernels; inputs and weights
 *    at +-127 after quantization (the unsigned inputs' correction at its extremes).
 * 4. int8 against fp32 products: within the quantization bound
 *    sum_i (|x_i| dw_b(i) + |qw_i dw_b(i)| dx_b(i)) / 2.
 * 5. A row's result does not depend on the rows decoded with it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_check.h"
#include "kernels/decode.h"

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void check_quantize(void) {
    float w[4] = {1.0f, -0.5f, 0.25f, 0.0f};
    int8_t q[32];
    float d = decode_int8_quantize(q, w, 4);
    CHECK(d == 1.0f / 127.0f, "scale of {1, -0.5, 0.25, 0}: expected 1/127, got %a", d);
    /* -0.5 * 127 = -63.5: roundf takes ties away from zero */
    CHECK(q[0] == 127 && q[1] == -64 && q[2] == 32 && q[3] == 0, "q = %d %d %d %d, expected 127 -64 32 0", q[0], q[1],
          q[2], q[3]);
    float z[3] = {0, -0.0f, 0};
    memset(q, 7, sizeof q);
    d = decode_int8_quantize(q, z, 3);
    CHECK(d == 0 && q[0] == 0 && q[1] == 0 && q[2] == 0, "an all-zero block: d %a, q %d %d %d", d, q[0], q[1], q[2]);
    float nanw[2] = {NAN, 2.0f};
    d = decode_int8_quantize(q, nanw, 2);
    CHECK(d == 2.0f / 127.0f && q[0] == 0 && q[1] == 127, "a NaN weight: d %a, q %d %d", d, q[0], q[1]);
    /* blocks whose d is subnormal (below ~3.7e-37, 1 / d overflows): the quotient
     * w / d, so each weight still comes back as q * d within d / 2 (plus the
     * subnormal's own spacing) */
    const float tinies[][2] = {{1e-37f, -3e-38f}, {1e-40f, -1e-40f}, {2e-39f, 7e-40f}};
    for (int k = 0; k < 3; k++) {
        d = decode_int8_quantize(q, tinies[k], 2);
        for (int i = 0; i < 2; i++) {
            double back = (double)q[i] * d, err = fabs(back - tinies[k][i]);
            CHECK(d > 0 && err <= d / 2 + 1.5e-45, "block {%g, %g}: weight %d = %g comes back as %d * %g = %g",
                  tinies[k][0], tinies[k][1], i, tinies[k][i], q[i], d, back);
        }
    }
    /* rounding: a block holding 127 has d = 1 / d = 1, so q = roundf(w) exactly: the
     * floats within 4 ulps of each half-integer (the ties go away from zero), and a
     * sweep of [-127, 127], against the C library's roundf */
    long diffs = 0;
    float blk[2] = {127.0f, 0};
    for (int k = -127; k < 127; k++)
        for (int j = -4; j <= 4; j++) {
            blk[1] = k + 0.5f;
            for (int s = 0; s < (j < 0 ? -j : j); s++) blk[1] = nextafterf(blk[1], j < 0 ? -INFINITY : INFINITY);
            decode_int8_quantize(q, blk, 2);
            diffs += q[1] != (int8_t)roundf(blk[1]);
        }
    for (uint32_t u = 0; u <= 0x42fe0000u; u += 97) /* 0 .. 127, both signs */
        for (int sgn = 0; sgn < 2; sgn++) {
            uint32_t v = u | (sgn ? 0x80000000u : 0);
            memcpy(&blk[1], &v, 4);
            decode_int8_quantize(q, blk, 2);
            diffs += q[1] != (int8_t)roundf(blk[1]);
        }
    CHECK(diffs == 0, "%ld weights quantized unlike roundf", diffs);
    float hand[3] = {127.0f, 2.5f, 0.49999997f};
    decode_int8_quantize(q, hand, 3);
    CHECK(q[1] == 3 && q[2] == 0, "2.5 -> %d (expected 3), 0.49999997 -> %d (expected 0)", q[1], q[2]);
}

/* The packed q and d of output o, input i (the layout of decode_int8.c: per panel
 * [nb * 8][32][4]). */
static int8_t packed_q(const DecodePacked *pk, int o, int i) {
    int nb = (pk->C + DECODE_INT8_BLOCK - 1) / DECODE_INT8_BLOCK, p = o / DECODE_INT8_PW, j = o % DECODE_INT8_PW;
    return pk
        ->pq[(size_t)p * nb * DECODE_INT8_BLOCK * DECODE_INT8_PW + ((size_t)(i / 4) * DECODE_INT8_PW + j) * 4 + i % 4];
}

static float packed_d(const DecodePacked *pk, int o, int b) {
    int nb = (pk->C + DECODE_INT8_BLOCK - 1) / DECODE_INT8_BLOCK, p = o / DECODE_INT8_PW, j = o % DECODE_INT8_PW;
    return pk->ps[((size_t)p * nb + b) * DECODE_INT8_PW + j];
}

/* unbiased: a zero bias, which would otherwise absorb the tiny row's sums. */
static void check_shape(int N, int C, int OC, int force, int unbiased) {
    const int QB = DECODE_INT8_BLOCK, nb = (C + QB - 1) / QB;
    float *w = malloc((size_t)OC * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
    float *bias = malloc(OC * sizeof(float)), *ref = malloc((size_t)N * OC * sizeof(float));
    float *out = malloc((size_t)N * OC * sizeof(float)), *f32 = malloc((size_t)N * OC * sizeof(float));
    int8_t *q = malloc((size_t)OC * C);
    float *d = malloc((size_t)OC * nb * sizeof(float));
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = frand();
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = frand();
    for (int o = 0; o < OC; o++) bias[o] = unbiased ? 0.0f : frand();
    for (int i = 0; i < C && i < QB; i++) w[i] *= 1e-3f; /* a block of small weights: a scale of its own */
    /* extremes after quantization: a row of inputs all -127, an output's weights all 127 */
    if (N > 1)
        for (int i = 0; i < C; i++) x[C + i] = -0.5f;
    if (OC > 1)
        for (int i = 0; i < C; i++) w[C + i] = 2.0f;
    /* the vector quantizer against the scalar one: a row so small that 1 / d overflows
     * in every block; a row with ties whose integer part is even (62.5 -> 63 away from
     * zero, 62 to even) */
    if (N > 2)
        for (int i = 0; i < C; i++) x[2 * C + i] *= 1e-38f;
    if (N > 3) {
        float *r = x + 3 * C;
        r[0] = 127.0f; /* amax 127: d = 1, v = x, exact ties */
        for (int i = 1; i < C && i < QB; i++) r[i] = i % 3 == 0 ? 62.5f : i % 3 == 1 ? -0.5f : 2.5f;
    }
    if (N > 4) { /* NaNs in both halves of blocks: every output NaN */
        if (C > 20) x[4 * C + 20] = NAN;
        if (C > QB + 3) x[4 * C + QB + 3] = NAN;
    }
    if (N > 5 && C > QB + 5) x[5 * C + QB + 5] = -INFINITY; /* d = inf, the block's q 0: NaN outputs */
    for (int o = 0; o < OC; o++)
        for (int b = 0; b < nb; b++) {
            int i0 = b * QB, len = C - i0 < QB ? C - i0 : QB;
            d[(size_t)o * nb + b] = decode_int8_quantize(q + (size_t)o * C + i0, w + (size_t)o * C + i0, len);
        }
    decode_bf16_force_portable(force);
    const char *kern = force == 1 ? "portable" : decode_int8_kernel();
    DecodePacked pk, p32;
    decode_pack_dtype(&pk, w, C, OC, DECODE_INT8);
    decode_pack(&p32, w, C, OC);
    CHECK(pk.dtype == DECODE_INT8, "packed dtype %d", (int)pk.dtype);
    int bad = 0;
    for (int o = 0; o < OC && !bad; o++)
        for (int i = 0; i < C && !bad; i++)
            if (packed_q(&pk, o, i) != q[(size_t)o * C + i] ||
                bits(packed_d(&pk, o, i / QB)) != bits(d[(size_t)o * nb + i / QB])) {
                CHECK(0, "pack N=%d C=%d OC=%d: w[%d,%d] packed q %d d %a, quantizing gives q %d d %a", N, C, OC, o, i,
                      packed_q(&pk, o, i), packed_d(&pk, o, i / QB), q[(size_t)o * C + i], d[(size_t)o * nb + i / QB]);
                bad = 1;
            }
    for (int o = OC; o < pk.npanel * DECODE_INT8_PW && !bad; o++)
        for (int i = 0; i < C; i++)
            if (packed_q(&pk, o, i) != 0 || packed_d(&pk, o, i / QB) != 0) {
                CHECK(0, "pack C=%d OC=%d: padding output %d is not zero", C, OC, o);
                bad = 1;
                break;
            }
    /* the inputs quantized per block as the weights are, then the chain of each (n, o) */
    int8_t *qx = malloc((size_t)N * C);
    float *dx = malloc((size_t)N * nb * sizeof(float));
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            int i0 = b * QB, len = C - i0 < QB ? C - i0 : QB;
            dx[(size_t)n * nb + b] = decode_int8_quantize(qx + (size_t)n * C + i0, x + (size_t)n * C + i0, len);
            for (int i = i0; i < i0 + len; i++)
                if (isnan(x[(size_t)n * C + i])) dx[(size_t)n * nb + b] = NAN; /* a NaN block: a NaN scale */
        }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                int64_t sum = 0;
                for (int i = b * QB; i < C && i < (b + 1) * QB; i++)
                    sum += (int64_t)qx[(size_t)n * C + i] * q[(size_t)o * C + i];
                acc = fmaf((float)sum, d[(size_t)o * nb + b] * dx[(size_t)n * nb + b], acc);
            }
            ref[(size_t)n * OC + o] = isnan(acc) ? NAN : acc + bias[o]; /* the kernels' one NaN */
        }
    check_linear_bits(&pk, x, bias, ref, out, N, C, OC, kern);
    /* against fp32: each weight within dw / 2 of itself and each input within dx / 2 */
    decode_linear(f32, x, &p32, bias, N, 1);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double bound = 0, mag = 0;
            for (int i = 0; i < C; i++) {
                double wq = (double)q[(size_t)o * C + i] * d[(size_t)o * nb + i / QB];
                bound += fabs(x[(size_t)n * C + i]) * d[(size_t)o * nb + i / QB] / 2 +
                         fabs(wq) * dx[(size_t)n * nb + i / QB] / 2;
                mag += fabs((double)x[(size_t)n * C + i] * w[(size_t)o * C + i]);
            }
            bound += 1e-6 * (mag + 1); /* the fp32 sums' own rounding */
            double e = fabs((double)out[(size_t)n * OC + o] - f32[(size_t)n * OC + o]);
            if (e / bound > worst) worst = e / bound;
        }
    CHECK(worst <= 1, "N=%d C=%d OC=%d: int8 vs fp32 products differ by %.2f of the quantization bound", N, C, OC,
          worst);
    for (int n = 4; n <= 5 && n < N && C > QB + 5; n++)
        for (int o = 0; o < OC; o++)
            if (!isnan(out[n * OC + o])) {
                CHECK(0, "N=%d C=%d OC=%d: a NaN or inf input gave out[%d,%d] = %a, not NaN", N, C, OC, n, o,
                      out[n * OC + o]);
                break;
            }
    free(qx), free(dx);
    decode_packed_free(&pk);
    decode_packed_free(&p32);
    decode_bf16_force_portable(0);
    free(w), free(x), free(bias), free(ref), free(out), free(f32), free(q), free(d);
}

int main(void) {
    check_quantize();
    printf("int8 kernel on this CPU: %s\n", decode_int8_kernel());
    const int shapes[][3] = {{1, 64, 64},  {1, 37, 100},  {1, 576, 96},   {1, 48, 32},  {3, 40, 70},
                             {8, 64, 64},  {16, 33, 65},  {11, 128, 160}, {1, 8, 1},    {9, 5, 33},
                             {1, 576, 49}, {16, 300, 64}, {5, 520, 97},   {40, 300, 97}};
    /* the best kernel, the portable one, the AVX2 one (force 3) */
    for (int force = 0; force <= 3; force += 1 + (force == 1)) {
        decode_bf16_force_portable(force);
        if (force == 3 && strcmp(decode_int8_kernel(), "avx2")) {
            printf("no AVX2 and FMA on this CPU: its int8 kernel untested\n");
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_shape(shapes[s][0], shapes[s][1], shapes[s][2], force, 0);
        check_shape(5, 64, 40, force, 1);
        check_shape(5, 100, 70, force, 1);
    }
    decode_bf16_force_portable(0);
    check_rows_independent(DECODE_INT8, 96, 80, 13);
    return check_summary("test_decode_int8");
}
