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
#include "decode_internal.h"

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

void decode_packed_init(DecodePacked *pk, const float *w, int C, int OC, DecodeDtype dtype, int pw) {
    memset(pk, 0, sizeof *pk);
    pk->w = w;
    pk->C = C;
    pk->OC = OC;
    pk->dtype = dtype;
    pk->npanel = (OC + pw - 1) / pw;
}

void decode_pack(DecodePacked *pk, const float *w, int C, int OC) {
    decode_packed_init(pk, w, C, OC, DECODE_FP32, PW);
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

/* Writes accumulators (+ bias) for the valid outputs of panel p. */
static inline void store_row(float *out, const float *acc, const float *bias, int p, int OC) {
    int o0 = p * PW, m = OC - o0 < PW ? OC - o0 : PW;
    for (int j = 0; j < m; j++) out[o0 + j] = acc[j] + (bias ? bias[o0 + j] : 0.0f);
}

/* Software prefetch of the panel PFD steps ahead (PFD x PW floats, 4 KiB with
 * AVX-512): the hardware prefetcher alone left the batch-16 kernel waiting on the
 * weight stream (a third less CPU time with it; at batch 1 a few percent).  A
 * prefetch past the end of the panel only touches the next panel or is dropped. */
#define PFD 32
static inline void prefetch_ahead(const float *w) {
    __builtin_prefetch(w + PFD * PW);
    __builtin_prefetch(w + PFD * PW + VL);
}

/* Steps i0..i1-1 of RB rows (x: the first row's input) over panel w, continuing the
 * chains held in acc[RB][PW]: a chain stored to memory and loaded back is the same
 * float, so splitting i into chunks does not change a single rounding. */
static void packed_block(float *acc, const float *x, const float *w, int C, int i0, int i1) {
    vec l[RB], h[RB];
    for (int r = 0; r < RB; r++) l[r] = vload(acc + r * PW), h[r] = vload(acc + r * PW + VL);
    w += (size_t)i0 * PW;
    for (int i = i0; i < i1; i++, w += PW) {
        vec wl = vload(w), wh = vload(w + VL);
        prefetch_ahead(w);
        for (int r = 0; r < RB; r++) {
            vec xb = vset1(x[(size_t)r * C + i]);
            l[r] = vfma(xb, wl, l[r]);
            h[r] = vfma(xb, wh, h[r]);
        }
    }
    for (int r = 0; r < RB; r++) vstore(acc + r * PW, l[r]), vstore(acc + r * PW + VL, h[r]);
}

/* The same for one row. */
static void packed_row(float *acc, const float *x, const float *w, int i0, int i1) {
    vec l = vload(acc), h = vload(acc + VL);
    w += (size_t)i0 * PW;
    for (int i = i0; i < i1; i++, w += PW) {
        vec xb = vset1(x[i]);
        prefetch_ahead(w);
        l = vfma(xb, vload(w), l);
        h = vfma(xb, vload(w + VL), h);
    }
    vstore(acc, l), vstore(acc + VL, h);
}

/* Rows of a group that share each chunk of a panel, and the chunk's length in steps
 * of i: KC x PW floats (16 KiB with AVX-512) stay in the L1 cache while every row
 * block of the group runs over them, so at batch 16 the panel comes from memory once
 * per step instead of once per row block (measured: the weight loads were two thirds
 * of the batch-16 profile). */
#define RG (4 * RB)
#define KC 128

/* Every row of out[N, OC] for the outputs of panel p. */
static void packed_panel(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int p) {
    int C = pk->C, OC = pk->OC;
    const float *w = pk->p + (size_t)p * C * PW;
    float acc[RG * PW] __attribute__((aligned(64)));
    for (int g = 0; g < N; g += RG) {
        int ng = N - g < RG ? N - g : RG;
        memset(acc, 0, (size_t)ng * PW * sizeof(float));
        for (int i0 = 0; i0 < C; i0 += KC) {
            int i1 = C - i0 < KC ? C : i0 + KC, r = 0;
            for (; r + RB <= ng; r += RB) packed_block(acc + r * PW, in + (size_t)(g + r) * C, w, C, i0, i1);
            for (; r < ng; r++) packed_row(acc + r * PW, in + (size_t)(g + r) * C, w, i0, i1);
        }
        for (int r = 0; r < ng; r++) store_row(out + (size_t)(g + r) * OC, acc + r * PW, bias, p, OC);
    }
}

static void linear_panel_task(void *arg, int p, int tid) {
    const LinearJob *j = arg;
    packed_panel(j->out, j->in, j->pk, j->bias, j->N, p);
}

/* Panels are handed out one at a time (decode_parallel): when another process holds
 * one of the cores, the thread that runs takes the panels the other has not started
 * instead of waiting for a fixed half.  Which thread computes a panel changes no bit. */
void decode_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt) {
    if (pk->dtype == DECODE_BF16) {
        decode_bf16_linear(out, in, pk, bias, N, nt);
        return;
    }
    if (pk->dtype == DECODE_INT8) {
        decode_int8_linear(out, in, pk, bias, N, nt);
        return;
    }
    LinearJob j = {out, in, bias, pk, N};
    decode_parallel(nt, pk->npanel, linear_panel_task, &j);
}

void decode_packed_free(DecodePacked *pk) {
    free(pk->p);
    free(pk->pb);
    free(pk->pq);
    free(pk->ps);
    free(pk->pz);
    memset(pk, 0, sizeof *pk);
}

/* ---- dtypes ---- */
const char *decode_dtype_name(DecodeDtype dtype) {
    return dtype == DECODE_BF16 ? "bf16" : dtype == DECODE_INT8 ? "int8" : "fp32";
}

int decode_dtype_parse(const char *s, DecodeDtype *out) {
    if (!strcmp(s, "fp32") || !strcmp(s, "f32"))
        *out = DECODE_FP32;
    else if (!strcmp(s, "bf16"))
        *out = DECODE_BF16;
    else if (!strcmp(s, "int8"))
        *out = DECODE_INT8;
    else
        return -1;
    return 0;
}

void decode_pack_dtype(DecodePacked *pk, const float *w, int C, int OC, DecodeDtype dtype) {
    if (dtype == DECODE_INT8)
        decode_int8_pack(pk, w, C, OC);
    else if (dtype == DECODE_BF16)
        decode_bf16_pack(pk, w, C, OC);
    else
        decode_pack(pk, w, C, OC);
}

void decode_run_panels(const LinearJob *j, int nt, DecodeTask pair, DecodeTask panel) {
    int np = j->pk->npanel;
    if (j->N == 1 && pair)
        decode_parallel(nt, np / 2 + (np & 1), pair, (void *)j);
    else
        decode_parallel(nt, np, panel, (void *)j);
}

void decode_run_fallback(const LinearJob *j, int nt, DecodeTask avx2, DecodeTask portable) {
    decode_parallel(nt, j->pk->npanel, avx2 && decode_use_avx2() ? avx2 : portable, (void *)j);
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
