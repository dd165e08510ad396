/* decode_internal.h — what decode.c, decode_bf16.c and decode_int8.c share; not for
 * callers (they use decode.h). */
#ifndef CHERRY_DECODE_INTERNAL_H
#define CHERRY_DECODE_INTERNAL_H

#include <math.h>

#include "decode.h"

/* One decode_linear call, the argument of its panel tasks. */
typedef struct LinearJob {
    float *out;
    const float *in, *bias;
    const DecodePacked *pk;
    int N;
} LinearJob;

/* Runs j's panels on nt threads (decode_parallel) with a kernel's tasks: batch 1 as
 * panel pairs when it has a pair task (item t: panels 2t and 2t+1, an odd last panel
 * alone; four independent chains while the weights stream), else a panel per item.
 * The bf16 and int8 panels share it. */
void decode_run_panels(const LinearJob *j, int nt, DecodeTask pair, DecodeTask panel);

/* A row's sums t[0..pw) of panel p plus the bias into out (the outputs below OC).  A
 * NaN is stored as the quiet NaN 0x7fc00000 whatever its payload: x86 keeps the NaN of
 * an instruction's first operand, and compilers choose the operand order of an FMA
 * per call site, so the payload would depend on the kernel and the batch size. */
static inline void decode_store_panel(float *out, const float *t, const float *bias, int p, int pw, int OC) {
    int o0 = p * pw, m = OC - o0 < pw ? OC - o0 : pw;
    for (int j = 0; j < m; j++) {
        float v = t[j] + (bias ? bias[o0 + j] : 0.0f);
        out[o0 + j] = v == v ? v : NAN;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* decode_store_panel of a row's sums held in two 16-lane vectors (outputs 0..15, 16..31)
 * of a 32-output panel, the width of the bf16 and the int8 panels. */
_Static_assert(DECODE_BF16_PW == 32 && DECODE_INT8_PW == 32, "decode_store_panel_zmm stores 32 outputs");
__attribute__((target("avx512f"))) static inline void decode_store_panel_zmm(float *out, __m512 lo, __m512 hi,
                                                                             const float *bias, int p, int OC) {
    float t[32];
    _mm512_storeu_ps(t, lo);
    _mm512_storeu_ps(t + 16, hi);
    decode_store_panel(out, t, bias, p, 32, OC);
}

/* The same from four 8-lane vectors (outputs 8c..8c+7), for the AVX2 kernels. */
__attribute__((target("avx2"))) static inline void decode_store_panel_ymm(float *out, const __m256 *v,
                                                                          const float *bias, int p, int OC) {
    float t[32];
    for (int c = 0; c < 4; c++) _mm256_storeu_ps(t + 8 * c, v[c]);
    decode_store_panel(out, t, bias, p, 32, OC);
}
#endif

/* A panel per item (decode_parallel) with the AVX2 task when decode_use_avx2() says
 * so and avx2 is not NULL, else with the portable one: the bf16 and int8 panels' path
 * on a CPU without their AVX-512 kernels. */
void decode_run_fallback(const LinearJob *j, int nt, DecodeTask avx2, DecodeTask portable);

/* Clears *pk and sets its shape: the [OC, C] matrix w held as dtype in panels of pw
 * outputs (the buffers are the packer's to allocate). */
void decode_packed_init(DecodePacked *pk, const float *w, int C, int OC, DecodeDtype dtype, int pw);

/* decode_bf16_force_portable's setting: 0 the best kernel, 1 portable (the int8
 * panels too), 2 bf16's AVX-512F kernel, 3 the AVX2 kernels (bf16 and int8). */
int decode_forced_kernel(void);
/* 1 when the CPU has AVX2 and FMA and the portable kernels are not forced: the AVX2
 * kernels of the bf16 and int8 panels run where their AVX-512 ones do not. */
int decode_use_avx2(void);

/* decode_int8.c: the int8 panels (decode_pack_dtype with DECODE_INT8) and their
 * product (decode_linear on such panels). */
void decode_int8_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_int8_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);

/* decode_bf16.c: the bf16 panels (decode_pack_dtype with DECODE_BF16) and their
 * product (decode_linear on such panels). */
void decode_bf16_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_bf16_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);

#endif
