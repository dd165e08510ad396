/* ops_fastmath.h — exp, sigmoid and tanh that the compiler can vectorise.
 *
 * glibc's expf/tanhf are scalar calls, and a loop that calls them is never
 * vectorised without -ffast-math; in a GPT-2 training step they were ~6% of the time
 * (tanh in GELU, exp in the LM-head softmax).  These are plain arithmetic on floats
 * and ints, so `gcc -O3 -march=native` turns the loops that use them into AVX2 /
 * AVX-512 code.  Same input = same output on every thread count (no state).
 *
 * (GELU does not need tanh: its 0.5 (1 + tanh u) is sigmoid(2u), which keeps its
 * relative accuracy where 1 + tanh u underflows.  Attention soft-capping does, on
 * every score: glibc's tanhf made Gemma 2's fused attention ~1.7x slower.)
 *
 * ops_expf: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, then the
 * degree-6 minimax polynomial of Cephes' expf (S. Moshier, Cephes Math Library,
 * expf.c); max relative error ~2 ulp over [-87, 88] (test_ops_fastmath measures it).
 * Inputs are clamped to [-87.3, 88.3]: exp(-inf) gives ~1.2e-38 rather than 0, which
 * no softmax sum can tell apart from 0 (callers that need an exact 0 mask it).
 * ops_tanhf: Cephes' tanhf (same source): for |x| < 0.625 the odd minimax
 * polynomial x + x^3 P(x^2), else 1 - 2 / (e^{2|x|} + 1) with ops_expf and the sign
 * restored; both are computed and one is selected, so a loop of them vectorises.
 * Max relative error 1.42e-7 measured (every float in [1e-30, 9.5]; worst just above
 * the 0.625 switch, where 1 - 2/(e+1) cancels; ~1 ulp); saturates to exactly +-1
 * (test_ops_fastmath).
 * Not for: anything needing correctly rounded results or denormal outputs. */
#ifndef CHERRY_OPS_FASTMATH_H
#define CHERRY_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>

static inline float ops_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* n = round(x / ln2) with the 1.5 * 2^23 trick (vectorises, unlike rintf) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* r = x - n ln2, ln2 split in a part exact in float and a correction */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* 2^n by building the exponent field; n in [-126, 127] after the clamp */
    union {
        int32_t i;
        float f;
    } s;
    s.i = ((int32_t)n + 127) << 23;
    return p * s.f;
}

/* 1 / (1 + e^-x) */
static inline float ops_sigmoidf(float x) {
    return 1.0f / (1.0f + ops_expf(-x));
}

/* tanh(x); the exp branch's e^{2|x|} is finite after ops_expf's clamp, so large |x|
 * gives 1 - 2 / (large + 1) = +-1, never NaN */
static inline float ops_tanhf(float x) {
    /* |x| clamped to 10 (tanh is 1.0f from 9.01 on), and NaN mapped there too, so no
     * NaN reaches ops_expf's float-to-int conversion; NaN is given back at the end */
    float a = x < 0 ? -x : x;
    a = a < 10.0f ? a : 10.0f;
    float z = a * a;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    /* on |x|, the sign put back last: tanh(-0) = -0 (the odd polynomial on x itself
     * gives (-0)(-0) + -0 = +0) */
    float small = p * z * a + a;
    float big = 1.0f - 2.0f / (ops_expf(a + a) + 1.0f);
    return x != x ? x : copysignf(a < 0.625f ? small : big, x);
}

#endif
