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

/* Runs j's panels on nt threads (decode_parallel): with the vector kernels (vec),
 * batch 1 as panel pairs (item t: panels 2t and 2t+1, an odd last panel alone; four
 * independent chains while the weights stream) and larger batches a panel per item;
 * else the portable kernel a panel per item.  The bf16 and int8 panels share it. */
void decode_run_panels(const LinearJob *j, int nt, int vec, DecodeTask pair, DecodeTask panel, DecodeTask portable);

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

/* A panel per item (decode_parallel) with the AVX2 task when decode_use_avx2(0) says
 * so and avx2 is not NULL, else with the portable one: the bf16 and int8 panels' path
 * on a CPU without their AVX-512 kernels. */
void decode_run_fallback(const LinearJob *j, int nt, DecodeTask avx2, DecodeTask portable);

/* Clears *pk and sets its shape: the [OC, C] matrix w held as dtype in panels of pw
 * outputs (the buffers are the packer's to allocate). */
void decode_packed_init(DecodePacked *pk, const float *w, int C, int OC, DecodeDtype dtype, int pw);

/* decode_bf16_force_portable's setting: 1 when the portable kernels are forced (for
 * the int8 panels too). */
int decode_portable_forced(void);
/* The setting itself: 0 the best kernel, 1 portable, 2 bf16's AVX-512F kernel, 3 the
 * AVX2 kernels (bf16 and int8). */
int decode_forced_kernel(void);
/* 1 when the AVX2 kernels of the bf16 and int8 panels are to run: the CPU has AVX2
 * and FMA, and they are forced (3) or the best it has (0, 2: have_avx512_kernel 0);
 * else the portable ones. */
int decode_use_avx2(int have_avx512_kernel);

/* decode_int8.c: the int8 panels (decode_pack_dtype with DECODE_INT8) and their
 * product (decode_linear on such panels). */
void decode_int8_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_int8_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);

/* decode_bf16.c: the bf16 panels (decode_pack_dtype with DECODE_BF16) and their
 * product (decode_linear on such panels). */
void decode_bf16_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_bf16_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);

#endif
