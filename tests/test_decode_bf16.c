/* test_decode_bf16.c — kernels/decode.h with bf16 weights (--gen-dtype bf16).
 *
 * 1. decode_bf16_round against hand-worked values: ties to even, a carry into the
 *    exponent, overflow to infinity, NaN kept (quiet), subnormals to a signed zero.
 * 2. decode_pack_dtype(DECODE_BF16) holds exactly decode_bf16_round of every weight,
 *    on the CPU's kernel (AVX512-BF16's VCVTNEPS2BF16 here) and the portable one.
 * 3. decode_linear over the bf16 panels equals, bit for bit, this file's scalar
 *    chain of VDPBF16PS as the Intel SDM defines it: for each (n, o), over the pairs
 *    k of bf16-rounded inputs and weights (an odd C padded with zeros), acc =
 *    ftz(fmaf(w[2k+1], x[2k+1], acc)) then ftz(fmaf(w[2k], x[2k], acc)), then + bias.
 *    Shapes with odd C, a partial last panel, an odd panel count, batch 1 (the
 *    panel-pair kernel of the AVX-512 paths), full and partial row blocks; 1 and 2 threads; every kernel
 *    the CPU has (VDPBF16PS, AVX-512F alone, AVX2, portable); and inputs so small that the
 *    sums fall below FLT_MIN, where the flush to zero decides the bits.
 * 4. bf16 against fp32 products: the difference stays within the rounding bound
 *    sum_i |x_i w_i| * 2^-7 (bf16 keeps 8 significant bits: relative error <= 2^-9
 *    for each of the weight and the input). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_check.h"
#include "kernels/decode.h"

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void check_round(uint32_t in, uint16_t want) {
    uint16_t got = decode_bf16_round(from_bits(in));
    CHECK(got == want, "decode_bf16_round(0x%08x): expected 0x%04x, got 0x%04x", in, want, got);
}

/* Element of output o, input i in the packed panels (the layout of decode_bf16.c:
 * [ceil(C / 2)][32][2] per panel). */
static uint16_t packed_at(const DecodePacked *pk, int o, int i) {
    int p = o / DECODE_BF16_PW, j = o % DECODE_BF16_PW, C2 = (pk->C + 1) / 2;
    return pk->pb[(((size_t)p * C2 + i / 2) * DECODE_BF16_PW + j) * 2 + (i & 1)];
}

static float ftz(float a) {
    return fabsf(a) < FLT_MIN ? copysignf(0.0f, a) : a;
}

static float rounded(float x) {
    return decode_bf16_widen(decode_bf16_round(x));
}

/* The chain of one (n, o) as VDPBF16PS computes it, over bf16-rounded x and w. */
static float sdm_chain(const float *x, const float *w, int C) {
    float acc = 0.0f;
    for (int k = 0; 2 * k < C; k++) {
        float xo = 2 * k + 1 < C ? rounded(x[2 * k + 1]) : 0.0f, wo = 2 * k + 1 < C ? rounded(w[2 * k + 1]) : 0.0f;
        acc = ftz(fmaf(wo, xo, acc));
        acc = ftz(fmaf(rounded(w[2 * k]), rounded(x[2 * k]), acc));
    }
    return acc;
}

static const char *kernel_name(int force) {
    return force == 1 ? "portable" : decode_bf16_kernel();
}

/* scale multiplies the weights and the inputs (a tiny one sends the sums below
 * FLT_MIN). */
static void check_shape(int N, int C, int OC, int force, float scale) {
    int tiny = scale < 1.0f;
    float *w = malloc((size_t)OC * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
    float *bias = malloc(OC * sizeof(float)), *ref = malloc((size_t)N * OC * sizeof(float));
    float *out = malloc((size_t)N * OC * sizeof(float)), *f32 = malloc((size_t)N * OC * sizeof(float));
    for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = frand() * scale;
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = frand() * scale;
    for (int o = 0; o < OC; o++) bias[o] = tiny ? 0.0f : frand();
    w[0] = from_bits(0x3f808000);                 /* a tie: rounds to even, 1.0 */
    if (OC * C > 1) w[1] = from_bits(0x00000001); /* a subnormal: to zero */
    if (N * C > 2) x[2] = from_bits(0x80000003);  /* a subnormal input: to -0 */
    /* NaNs of different payloads in an input and in a weight: which one an FMA keeps
     * depends on its operand order, so every NaN is stored as one (decode_store_panel) */
    if (N > 3 && C > 1) x[3 * C + 1] = from_bits(0xffc10000);
    if (OC > 2 && C > 1) w[2 * C + 1] = from_bits(0x7fa00000);
    decode_bf16_force_portable(force);
    DecodePacked pk, p32;
    decode_pack_dtype(&pk, w, C, OC, DECODE_BF16);
    decode_pack(&p32, w, C, OC);
    int bad = 0;
    for (int o = 0; o < OC && !bad; o++)
        for (int i = 0; i < C; i++)
            if (packed_at(&pk, o, i) != decode_bf16_round(w[(size_t)o * C + i])) {
                CHECK(0, "pack %s N=%d C=%d OC=%d: w[%d,%d] = %a packed 0x%04x, rounding gives 0x%04x",
                      kernel_name(force), N, C, OC, o, i, w[(size_t)o * C + i], packed_at(&pk, o, i),
                      decode_bf16_round(w[(size_t)o * C + i]));
                bad = 1;
                break;
            }
    int flushed = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float acc = sdm_chain(x + (size_t)n * C, w + (size_t)o * C, C);
            ref[(size_t)n * OC + o] = isnan(acc) ? NAN : acc + bias[o];
            flushed += acc == 0.0f;
        }
    if (tiny) CHECK(flushed > 0, "N=%d C=%d OC=%d: the tiny inputs flushed no sum", N, C, OC);
    check_linear_bits(&pk, x, bias, ref, out, N, C, OC, kernel_name(force));
    if (tiny) goto done; /* (no bias: it would absorb the sums) */
    /* against fp32 weights: within the bf16 rounding bound */
    decode_linear(f32, x, &p32, bias, N, 1);
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double mag = 0;
            for (int i = 0; i < C; i++) mag += fabs((double)x[(size_t)n * C + i] * w[(size_t)o * C + i]);
            double d = fabs((double)out[(size_t)n * OC + o] - f32[(size_t)n * OC + o]);
            double bound = mag * ldexp(1, -7) + 1e-6 * (mag + 1);
            if (d / bound > worst) worst = d / bound;
        }
    CHECK(worst <= 1, "N=%d C=%d OC=%d: bf16 vs fp32 weights differ by %.2f of the rounding bound", N, C, OC, worst);
done:
    decode_packed_free(&pk);
    decode_packed_free(&p32);
    decode_bf16_force_portable(0);
    free(w), free(x), free(bias), free(ref), free(out), free(f32);
}

/* The one corner random data does not reach: an exact sum just below FLT_MIN that
 * rounds up to it (2^-126 - 1.5 * 2^-152).  Flushing after rounding, as the chain of
 * decode_bf16.c does, keeps FLT_MIN; a flush that looked before rounding would give 0.
 * The AVX-512F and portable kernels must keep it; the hardware's VDPBF16PS keeps it on
 * the Zen 4 this was written on, and the SDM does not say which, so on other CPUs this
 * prints what the instruction does rather than failing. */
static void check_flush_edge(void) {
    float w[4] = {0.0f, 0x1p-63f, 0.0f, 0x1.8p-76f}, x[4] = {0.0f, 0x1p-63f, 0.0f, -0x1p-76f}, out;
    float want = sdm_chain(x, w, 4);
    CHECK(want == FLT_MIN, "the chain's flush edge: %a, expected FLT_MIN", want);
    for (int force = 0; force <= 3; force++) {
        decode_bf16_force_portable(force);
        const char *kern = kernel_name(force);
        if ((force == 2 && strcmp(kern, "avx512")) || (force == 3 && strcmp(kern, "avx2"))) continue;
        DecodePacked pk;
        decode_pack_dtype(&pk, w, 4, 1, DECODE_BF16);
        decode_linear(&out, x, &pk, NULL, 1, 1);
        decode_packed_free(&pk);
        if (!strcmp(kern, "avx512bf16"))
            printf("VDPBF16PS at the flush edge: %a (%s)\n", out,
                   out == want ? "rounds, then flushes, as the chain" : "flushes before rounding: differs");
        else
            CHECK(out == want, "%s kernel at the flush edge: %a, expected %a", kern, out, want);
    }
    decode_bf16_force_portable(0);
}

int main(void) {
    check_round(0x3f800000, 0x3f80); /* 1.0 */
    check_round(0x3f808000, 0x3f80); /* 1 + 2^-8: a tie, to even (down) */
    check_round(0x3f818000, 0x3f82); /* 1 + 3*2^-8: a tie, to even (up) */
    check_round(0x3f808001, 0x3f81); /* just above the tie */
    check_round(0x3f807fff, 0x3f80); /* just below */
    check_round(0x3fffffff, 0x4000); /* carry into the exponent */
    check_round(0x7f7fffff, 0x7f80); /* FLT_MAX rounds to +inf */
    check_round(0xff800000, 0xff80); /* -inf */
    check_round(0x7fc00001, 0x7fc0); /* quiet NaN */
    check_round(0x7f800001, 0x7fc0); /* signalling NaN: stays a NaN, made quiet */
    check_round(0x00000001, 0x0000); /* subnormal: zero */
    check_round(0x807fffff, 0x8000); /* negative subnormal: -0 */
    check_round(0x00800000, 0x0080); /* smallest normal */
    check_round(0x80000000, 0x8000); /* -0 */
    printf("bf16 kernel on this CPU: %s\n", decode_bf16_kernel());

    const int shapes[][3] = {{1, 64, 64}, {1, 37, 100}, {1, 576, 96},   {1, 48, 32}, {3, 40, 70},
                             {8, 64, 64}, {16, 33, 65}, {11, 128, 160}, {1, 8, 1},   {9, 5, 33}};
    for (int force = 0; force <= 3; force++) {
        decode_bf16_force_portable(force);
        if (force == 2 && strcmp(decode_bf16_kernel(), "avx512")) {
            printf("no AVX-512F on this CPU: its bf16 kernel untested\n");
            continue;
        }
        if (force == 3 && strcmp(decode_bf16_kernel(), "avx2")) {
            printf("no AVX2 and FMA on this CPU: its bf16 kernel untested\n");
            continue;
        }
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_shape(shapes[s][0], shapes[s][1], shapes[s][2], force, 1.0f);
        /* x and w ~2^-63 put the products and sums near FLT_MIN = 2^-126 */
        check_shape(9, 37, 40, force, 0x1p-63f);
    }
    decode_bf16_force_portable(0);
    check_flush_edge();
    /* a row's result does not depend on the batch around it */
    check_rows_independent(DECODE_BF16, 96, 80, 13);
    return check_summary("test_decode_bf16");
}
