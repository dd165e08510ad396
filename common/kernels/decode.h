/* decode.h — SIMD kernels of batched decoding (generate.c), bit-reproducible:
 * a row's result never depends on which or how many rows are decoded with it.
 *   decode_pack / decode_linear: out[n,o] = in[n,:] . w[o,:] + bias[o] with each
 *     (n, o) summed in one fixed order over packed weight panels (see decode.c);
 *   decode_dot: a dot product in a fixed order (vector lanes, a fixed lane tree,
 *     then the scalar tail);
 *   decode_attend_row: one query row of causal attention over a KV cache (GQA,
 *     optional window start j0 and soft-capping).
 * Not for: training (ops.h), the KV cache itself (generate.h). */
#ifndef CHERRY_DECODE_H
#define CHERRY_DECODE_H

#include <stddef.h>

#include <stdint.h>

/* What the packed decode weights are held as.  Sums are fp32 in all.
 * DECODE_BF16: bf16 weights, and each product's input rows rounded to bf16 too (the
 * products of AVX512-BF16's VDPBF16PS, see decode_bf16.c).
 * DECODE_INT8: 8-bit integers with one fp32 scale per DECODE_INT8_BLOCK consecutive
 * inputs of an output (GGML's Q8_0 quantization, its scale kept in fp32), and each
 * product's input rows quantized the same way (integer sums per block, see
 * decode_int8.c). */
typedef enum { DECODE_FP32 = 0, DECODE_BF16 = 1, DECODE_INT8 = 2 } DecodeDtype;

/* Inputs per int8 scale, and outputs per int8 panel. */
#define DECODE_INT8_BLOCK 32
#define DECODE_INT8_PW 32

/* Outputs per bf16 panel (fixed, whatever the vector width: the layout is the
 * kernel's contract with decode_pack). */
#define DECODE_BF16_PW 32

/* A weight matrix [OC, C] repacked into panels of outputs, [C][panel width] each
 * (bf16: [ceil(C / 2)][panel width][2]). */
typedef struct DecodePacked {
    const float *w; /* the [OC, C] original, the key of a lookup */
    float *p;       /* fp32: [npanel][C][PW] */
    uint16_t *pb;   /* bf16: [npanel][ceil(C / 2)][32][2], input pairs (decode_bf16.c) */
    int8_t *pq;     /* int8: [npanel][ceil(C / 32) * 8][32][4], 4 inputs an output (decode_int8.c) */
    float *ps;      /* int8: the scales, [npanel][ceil(C / 32)][32] */
    int32_t *pz;    /* int8: each block's sum of its 32 quantized weights, [npanel][ceil(C / 32)][32] */
    int C, OC, npanel;
    DecodeDtype dtype;
} DecodePacked;

void decode_pack(DecodePacked *pk, const float *w, int C, int OC);
/* The same held as DTYPE: bf16 rounds each weight once (decode_bf16_round), int8
 * quantizes each block of 32 inputs of an output once (decode_int8_quantize). */
void decode_pack_dtype(DecodePacked *pk, const float *w, int C, int OC, DecodeDtype dtype);
/* The name of a dtype as --gen-dtype spells it: "fp32", "bf16", "int8". */
const char *decode_dtype_name(DecodeDtype dtype);
/* --gen-dtype's value (fp32, also f32; bf16; int8) into *out: 0, or -1 when unknown. */
int decode_dtype_parse(const char *s, DecodeDtype *out);
/* One block of n <= DECODE_INT8_BLOCK weights (or inputs) to int8 as GGML's
 * quantize_row_q8_0_ref does: scale d = max|w| / 127, q = roundf(w * (1 / d)) (0 for
 * an all-zero block; w / d where 1 / d overflows; 0 for a NaN, which the maximum
 * skips); returns d.  Each weight is then q * d, within d / 2 of w up to rounding. */
float decode_int8_quantize(int8_t *q, const float *w, int n);
/* Which int8 kernel decode_linear runs on this CPU: "avx512vnni", "avx2" or "scalar"
 * (the same bits on all three; decode_bf16_force_portable forces the scalar one too). */
const char *decode_int8_kernel(void);
/* fp32 -> bf16 as the AVX512-BF16 VCVTNEPS2BF16 instruction does it: round to nearest
 * even, a NaN stays a (quiet) NaN, a subnormal input becomes a zero of its sign. */
uint16_t decode_bf16_round(float x);
static inline float decode_bf16_widen(uint16_t b) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)b << 16};
    return v.f;
}
/* Which bf16 kernel decode_linear runs on this CPU: "avx512bf16" (VDPBF16PS),
 * "avx512" (AVX-512F without it), "avx2" or "scalar" (the same bits on all four). */
const char *decode_bf16_kernel(void);
/* Test hook: 1 forces the portable kernels (scalar widening, scalar rounding), for
 * the int8 panels too; 2 the bf16 panels' AVX-512F kernel on a CPU with AVX512-BF16;
 * 3 the AVX2 kernels of both, where the CPU has AVX2 and FMA (else the portable ones;
 * decode_bf16_kernel and decode_int8_kernel name the kernel in force). */
void decode_bf16_force_portable(int on);
void decode_packed_free(DecodePacked *pk);
/* out[N, OC] = in[N, C] @ w^T + bias, on nt threads. */
void decode_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);
/* A parallel loop of a decode step: fn(arg, item, tid) for item = 0..n-1 on up to nt
 * threads (tid 0 is the caller, 1..nt-1 workers of a pool kept for the process) and
 * returns when every item is done.  Items are claimed one at a time, and the caller
 * never waits for a worker that has not claimed one (decode_pool.c says why), so
 * fn's result must not depend on tid except through per-thread scratch.  A call
 * made while another is running runs its items on the calling thread, as tid 0: so
 * never call it from inside a task (the nested items would share tid 0's scratch with
 * the caller's own), and give concurrent callers scratch of their own. */
typedef void (*DecodeTask)(void *arg, int item, int tid);
void decode_parallel(int nt, int n, DecodeTask fn, void *arg);
float decode_dot(const float *a, const float *b, int n);
/* Heads h0..h1-1 of query row q over cached positions j0..P-1 (key/value rows at
 * K0/V0 + j * stride); writes out[h*hd .. (h+1)*hd); sc is scratch for
 * (h1-h0) * (P-j0) scores. */
void decode_attend_row(float *out, const float *q, const float *K0, const float *V0, size_t stride, int j0, int P,
                       int nh, int nkv, int hd, int h0, int h1, float scale, float softcap, float *sc);

#endif
