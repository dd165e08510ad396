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

/* A weight matrix [OC, C] repacked into panels of outputs, [C][panel width] each. */
typedef struct DecodePacked {
    const float *w; /* the [OC, C] original, the key of a lookup */
    float *p;       /* [npanel][C][PW] */
    int C, OC, npanel;
} DecodePacked;

void decode_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_packed_free(DecodePacked *pk);
/* out[N, OC] = in[N, C] @ w^T + bias, on nt threads. */
void decode_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);
float decode_dot(const float *a, const float *b, int n);
/* Heads h0..h1-1 of query row q over cached positions j0..P-1 (key/value rows at
 * K0/V0 + j * stride); writes out[h*hd .. (h+1)*hd); sc is scratch for
 * (h1-h0) * (P-j0) scores. */
void decode_attend_row(float *out, const float *q, const float *K0, const float *V0, size_t stride, int j0, int P,
                       int nh, int nkv, int hd, int h0, int h1, float scale, float softcap, float *sc);

#endif
