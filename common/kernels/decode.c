/* decode.c — see decode.h.  The SIMD kernels of batched decoding, moved out of
 * generate.c: a batch-invariant linear over packed weights, a fixed-order dot
 * product, and one query row of cached attention.
 * Not for: the decode loop and the KV cache (generate/generate.c). */
#include "decode.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- batch-invariant linear over packed weights ---------------------------------------
 * out[n,o] = in[n,:] . w[o,:] + bias[o], each (n, o) summed in ONE fixed order: a
 * single chain of fused multiply-adds over i = 0..C-1, then the bias.  The loops
 * are blocked for speed (RB rows x PW outputs: every weight load serves RB rows,
 * which is what makes batch 16 cheaper per token than batch 1), but a block only
 * decides which chains run side by side, never the order inside one, so a row's
 * result does not depend on which or how many rows are decoded with it.  BLAS gives
 * no such guarantee (it changes kernels and splits with the shape).
 *
 * The weights are repacked once per GenState into panels of PW outputs, [C][PW]
 * contiguous per panel (zero-padded past OC), so a panel streams sequentially and
 * each step i is one or two vector loads broadcast-multiplied by x[n,i] (the layout
 * of BLAS micro-kernels).  Costs one extra copy of the matrices while generating. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
#define RB 8 /* 8 rows x 2 vectors = 16 accumulators of the 32 registers */
typedef __m512 vec;
static inline vec vzero(void) {
    return _mm512_setzero_ps();
}
static inline vec vload(const float *p) {
    return _mm512_loadu_ps(p);
}
static inline vec vset1(float x) {
    return _mm512_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline void vstore(float *p, vec a) {
    _mm512_storeu_ps(p, a);
}
#elif defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
/* Explicit FMA: left to itself the compiler may fuse a*b+c in some unrolled variants
 * and not in others, and a fused and an unfused product round differently. */
#define VL 8
#define RB 6 /* 6 rows x 2 vectors = 12 accumulators of the 16 registers */
typedef __m256 vec;
static inline vec vzero(void) {
    return _mm256_setzero_ps();
}
static inline vec vload(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline vec vset1(float x) {
    return _mm256_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline void vstore(float *p, vec a) {
    _mm256_storeu_ps(p, a);
}
#else
/* No FMA instructions: nothing can be fused, every variant rounds alike.  SSE-sized
 * vectors (the baseline of x86-64, and what other targets split into anyway). */
#define VL 4
#define RB 4
typedef float vec __attribute__((vector_size(16)));
static inline vec vzero(void) {
    return (vec){0};
}
static inline vec vload(const float *p) {
    vec r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline vec vset1(float x) {
    return (vec){x, x, x, x};
}
static inline vec vfma(vec a, vec b, vec c) {
    return a * b + c;
}
static inline void vstore(float *p, vec a) {
    memcpy(p, &a, sizeof a);
}
#endif
#define PW (2 * VL) /* outputs per panel */

void decode_pack(DecodePacked *pk, const float *w, int C, int OC) {
    pk->w = w;
    pk->C = C;
    pk->OC = OC;
    pk->npanel = (OC + PW - 1) / PW;
    pk->p = xaligned_alloc((size_t)pk->npanel * C * PW * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int p = 0; p < pk->npanel; p++) {
        float *dst = pk->p + (size_t)p * C * PW;
        for (int j = 0; j < PW; j++) {
            int o = p * PW + j;
            if (o >= OC) continue; /* stays zero (xaligned_alloc zeroes) */
            const float *src = w + (size_t)o * C;
            for (int i = 0; i < C; i++) dst[(size_t)i * PW + j] = src[i];
        }
    }
}

/* Writes a block's accumulators (+ bias) for the valid outputs of panel p. */
static inline void store_row(float *out, vec lo, vec hi, const float *bias, int p, int OC) {
    float t[PW];
    vstore(t, lo);
    vstore(t + VL, hi);
    int o0 = p * PW, m = OC - o0 < PW ? OC - o0 : PW;
    for (int j = 0; j < m; j++) out[o0 + j] = t[j] + (bias ? bias[o0 + j] : 0.0f);
}

/* RB rows x one panel. */
static void packed_block(float *out, const float *in, const DecodePacked *pk, const float *bias, int n, int p) {
    int C = pk->C, OC = pk->OC;
    const float *w = pk->p + (size_t)p * C * PW;
    const float *x = in + (size_t)n * C;
    vec l[RB], h[RB];
    for (int r = 0; r < RB; r++) l[r] = vzero(), h[r] = vzero();
    for (int i = 0; i < C; i++, w += PW) {
        vec wl = vload(w), wh = vload(w + VL);
        for (int r = 0; r < RB; r++) {
            vec xb = vset1(x[(size_t)r * C + i]);
            l[r] = vfma(xb, wl, l[r]);
            h[r] = vfma(xb, wh, h[r]);
        }
    }
    for (int r = 0; r < RB; r++) store_row(out + (size_t)(n + r) * OC, l[r], h[r], bias, p, OC);
}

/* One row x one panel: the batch-1 case, streaming the panel at memory speed. */
static void packed_row(float *out, const float *in, const DecodePacked *pk, const float *bias, int n, int p) {
    int C = pk->C, OC = pk->OC;
    const float *w = pk->p + (size_t)p * C * PW;
    const float *x = in + (size_t)n * C;
    vec l = vzero(), h = vzero();
    for (int i = 0; i < C; i++, w += PW) {
        vec xb = vset1(x[i]);
        l = vfma(xb, vload(w), l);
        h = vfma(xb, vload(w + VL), h);
    }
    store_row(out + (size_t)n * OC, l, h, bias, p, OC);
}

void decode_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int p = 0; p < pk->npanel; p++) {
        int n = 0;
        for (; n + RB <= N; n += RB) packed_block(out, in, pk, bias, n, p);
        for (; n < N; n++) packed_row(out, in, pk, bias, n, p);
    }
}

void decode_packed_free(DecodePacked *pk) {
    free(pk->p);
    memset(pk, 0, sizeof *pk);
}

/* ---- cached attention ------------------------------------------------------------------ */
/* Sum of the lanes in a fixed tree: lane j += lane j + VL/2, then + VL/4, ...,
 * lane 0 + lane 1 (shuffles where available, the same adds in the same order). */
static inline float lanes_sum(vec a) {
#if VL == 16
    __m256 s8 =
        _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
#elif VL == 8
    __m256 s8 = a;
#endif
#if VL >= 8
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
#else
    float t[VL];
    vstore(t, a);
    for (int h = VL / 2; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) t[j] += t[j + h];
    return t[0];
#endif
}

/* q . k in a fixed order (VL lanes, the lane tree, the scalar tail). */
float decode_dot(const float *a, const float *b, int n) {
    int nv = n & ~(VL - 1);
    vec acc = vzero();
    for (int i = 0; i < nv; i += VL) acc = vfma(vload(a + i), vload(b + i), acc);
    float d = lanes_sum(acc);
    for (int i = nv; i < n; i++) d += a[i] * b[i];
    return d;
}

/* Heads h0..h1-1 of one query row q [nh*hd] over cached positions j0..P-1, whose key
 * and value rows (every kv head, [nkv*hd]) start at K0 and V0 with stride `stride`.
 * Positions are the outer loop so the cache is read a whole key/value row (every
 * head) at a time, sequentially: the cache is far larger than the caches of the CPU
 * and a head-by-head walk reads it in 256-byte pieces at a stride the prefetchers
 * miss.  sc holds [h1-h0][P-j0] scores.  Scores are scale * q.k, soft-capped to
 * softcap * tanh(s / softcap) when softcap > 0 (Gemma 2).  Not inlined: rows
 * processed by either of generate.c's two parallel layouts run this same machine
 * code, so a row's result never depends on the layout. */
__attribute__((noinline)) void decode_attend_row(float *out, const float *q, const float *K0, const float *V0,
                                                 size_t stride, int j0, int P, int nh, int nkv, int hd, int h0, int h1,
                                                 float scale, float softcap, float *sc) {
    int grp = nh / nkv, W = P - j0;
    for (int j = j0; j < P; j++) {
        const float *k = K0 + (size_t)j * stride;
        for (int h = h0; h < h1; h++)
            sc[(size_t)(h - h0) * W + (j - j0)] =
                decode_dot(q + (size_t)h * hd, k + (size_t)(h / grp) * hd, hd) * scale;
    }
    if (softcap > 0)
        for (size_t i = 0; i < (size_t)(h1 - h0) * W; i++) sc[i] = softcap * tanhf(sc[i] / softcap);
    float inv[h1 - h0];
    for (int h = h0; h < h1; h++) {
        float *row = sc + (size_t)(h - h0) * W, mx = -INFINITY;
        for (int j = 0; j < W; j++)
            if (row[j] > mx) mx = row[j];
        double sum = 0;
        for (int j = 0; j < W; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        inv[h - h0] = (float)(1.0 / sum);
        float *o = out + (size_t)h * hd;
        for (int i = 0; i < hd; i++) o[i] = 0;
    }
    for (int j = j0; j < P; j++) {
        const float *v = V0 + (size_t)j * stride;
        for (int h = h0; h < h1; h++) {
            const float *vh = v + (size_t)(h / grp) * hd;
            // cppcheck-suppress uninitvar ; the loop above sets inv[0 .. h1-h0)
            float a = sc[(size_t)(h - h0) * W + (j - j0)] * inv[h - h0];
            float *o = out + (size_t)h * hd;
            for (int i = 0; i < hd; i++) o[i] += a * vh[i];
        }
    }
}
