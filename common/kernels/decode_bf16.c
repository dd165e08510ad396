/* decode_bf16.c — bf16 decode (--gen-dtype bf16): the panels of decode.c with every
 * weight rounded to bf16 once, when a generator packs them, and every product's
 * input row rounded to bf16 when the product runs; the sums are fp32.  This is the
 * arithmetic of AVX512-BF16's VDPBF16PS (and of llama.cpp's BF16 products, and of a
 * bf16 matmul under torch), which multiplies two bf16 pairs per fp32 lane: twice the
 * products of an fp32 FMA per instruction, which is what bounds decoding at batch 16,
 * and half fp32's bytes per weight, which is what bounds it at batch 1.
 *
 * The chain of (n, o), the same on every kernel and at any batch size: with C2 =
 * ceil(C / 2) pairs of inputs (an odd C padded with a zero weight and a zero input),
 *   for k = 0..C2-1:  acc = ftz(fmaf(w[2k+1], x[2k+1], acc));
 *                     acc = ftz(fmaf(w[2k],   x[2k],   acc));
 * then out = acc + bias, where w and x are the bf16-rounded values (decode_bf16_round)
 * and ftz flushes a subnormal to a zero of its sign.  That is VDPBF16PS as the Intel
 * SDM defines it (odd element first, each add rounded to nearest even, subnormal
 * results flushed; a bf16 product is exact in fp32, so an add of it is an fmaf), and
 * what the AMD Zen 4 of these sessions computes, bit for bit, on 32 million random
 * lanes with tiny and overflowing values among them; so the hardware kernel, the
 * AVX-512F kernel for CPUs without the instruction and the portable one give the same
 * bits (tests/test_decode_bf16.c checks the three against its own scalar chain).  One
 * corner the SDM leaves open: whether the flush looks at a sum before or after its
 * rounding (an exact sum just below FLT_MIN that rounds up to it); the chain flushes
 * after, as this Zen 4 does, and the test prints what the CPU it runs on does.  A NaN
 * output is stored as one quiet NaN (decode_store_panel).
 * (Rounding the inputs flushes subnormals already: a bf16 never is one here.)
 *
 * Layout: panels of DECODE_BF16_PW = 32 outputs, [C2][32][2] bf16 per panel: for pair
 * k, output j's two weights (inputs 2k, 2k+1) are adjacent, so a 64-byte load is the
 * pairs of outputs 0..15 (one 32-bit lane each, the low half the even input, as
 * VDPBF16PS wants them) and the next 64 bytes those of outputs 16..31.  The input row
 * is rounded into the same pairs once per call, and each pair is broadcast.
 * Not for: the fp32 panels (decode.c), the int8 ones (decode_int8.c). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "decode_internal.h"

#define BPW DECODE_BF16_PW
#define BRB 8 /* rows per block: 8 rows x 2 vectors = 16 accumulators */

uint16_t decode_bf16_round(float x) {
    union {
        float f;
        uint32_t u;
    } v = {.f = x};
    uint32_t u = v.u;
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x0040u); /* NaN */
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero, subnormal: signed zero */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even (may carry into inf) */
    return (uint16_t)(u >> 16);
}

static int forced; /* decode_bf16_force_portable */

void decode_bf16_force_portable(int on) {
    forced = on;
}

int decode_forced_kernel(void) {
    return forced;
}

int decode_use_avx2(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    return forced != 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* ---- the portable chain ---- */
static inline float ftz(float a) {
    return fabsf(a) < FLT_MIN ? copysignf(0.0f, a) : a;
}

/* One pair step of the chain: w and x hold two bf16 each, the even input low. */
static inline float pair_step(float acc, uint32_t w, uint32_t x) {
    acc = ftz(fmaf(decode_bf16_widen((uint16_t)(w >> 16)), decode_bf16_widen((uint16_t)(x >> 16)), acc));
    return ftz(fmaf(decode_bf16_widen((uint16_t)w), decode_bf16_widen((uint16_t)x), acc));
}

static inline uint32_t pair_at(const uint16_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 16;
}

/* Rows n..n+nr-1 x panel p, one output at a time. */
static void block_scalar(float *out, const uint32_t *xb, const DecodePacked *pk, const float *bias, int n, int nr,
                         int p) {
    int C2 = (pk->C + 1) / 2, OC = pk->OC;
    const uint16_t *w = pk->pb + (size_t)p * C2 * 2 * BPW;
    for (int r = 0; r < nr; r++) {
        const uint32_t *x = xb + (size_t)(n + r) * C2;
        float t[BPW];
        for (int j = 0; j < BPW; j++) {
            float acc = 0.0f;
            for (int k = 0; k < C2; k++) acc = pair_step(acc, pair_at(w + ((size_t)k * BPW + j) * 2), x[k]);
            t[j] = acc;
        }
        decode_store_panel(out + (size_t)(n + r) * OC, t, bias, p, BPW, OC);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BF16_X86 1
static int cpu_avx512(void) {
    return forced != 1 && forced != 3 && __builtin_cpu_supports("avx512f");
}
static int cpu_avx512bf16(void) {
    return forced == 0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

/* The first C / 16 * 16 floats of src to bf16 with VCVTNEPS2BF16 (the rounding
 * decode_bf16_round copies), in order from dst's first byte (a weight row's bf16, or
 * an input row's pairs, the even input low); returns how many it took. */
__attribute__((target("avx512f,avx512bf16"))) static int round16_avx512bf16(void *dst, const float *src, int C) {
    int i = 0;
    for (; i + 16 <= C; i += 16) {
        __m256bh b = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)((char *)dst + 2 * (size_t)i), (__m256i)b);
    }
    return i;
}

/* The chains of nr rows over a panel's C2 pairs with VDPBF16PS.  Always inlined with a
 * constant nr where it can be, so the accumulators stay in registers. */
__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline void
dp_chains(__m512 *l, __m512 *h, const uint16_t *w, const uint32_t *x, int C2, const int nr) {
    for (int k = 0; k < C2; k++, w += 2 * BPW) {
        __m512bh w0 = (__m512bh)_mm512_load_si512((const void *)w);
        __m512bh w1 = (__m512bh)_mm512_load_si512((const void *)(w + BPW));
        for (int r = 0; r < nr; r++) {
            __m512bh xv = (__m512bh)_mm512_set1_epi32((int)x[(size_t)r * C2 + k]);
            l[r] = _mm512_dpbf16_ps(l[r], w0, xv);
            h[r] = _mm512_dpbf16_ps(h[r], w1, xv);
        }
    }
}

/* Rows n..n+nr-1 (nr <= BRB) x panel p with VDPBF16PS. */
__attribute__((target("avx512f,avx512bf16"))) static void
block_dp(float *out, const uint32_t *xb, const DecodePacked *pk, const float *bias, int n, int nr, int p) {
    int C2 = (pk->C + 1) / 2, OC = pk->OC;
    const uint16_t *w = pk->pb + (size_t)p * C2 * 2 * BPW;
    const uint32_t *x = xb + (size_t)n * C2;
    __m512 l[BRB], h[BRB];
    for (int r = 0; r < BRB; r++) l[r] = _mm512_setzero_ps(), h[r] = _mm512_setzero_ps();
    if (nr == BRB)
        dp_chains(l, h, w, x, C2, BRB);
    else
        dp_chains(l, h, w, x, C2, nr);
    for (int r = 0; r < nr; r++) decode_store_panel_zmm(out + (size_t)(n + r) * OC, l[r], h[r], bias, p, OC);
}

/* One row x panels p and p+1 with VDPBF16PS (batch 1: four independent chains keep
 * the units busy while the weights stream). */
__attribute__((target("avx512f,avx512bf16"))) static void row2_dp(float *out, const uint32_t *xb,
                                                                  const DecodePacked *pk, const float *bias, int p) {
    int C2 = (pk->C + 1) / 2, OC = pk->OC;
    const uint16_t *w0 = pk->pb + (size_t)p * C2 * 2 * BPW, *w1 = w0 + (size_t)C2 * 2 * BPW;
    __m512 l0 = _mm512_setzero_ps(), h0 = l0, l1 = l0, h1 = l0;
    for (int k = 0; k < C2; k++, w0 += 2 * BPW, w1 += 2 * BPW) {
        __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xb[k]);
        l0 = _mm512_dpbf16_ps(l0, (__m512bh)_mm512_load_si512((const void *)w0), xv);
        h0 = _mm512_dpbf16_ps(h0, (__m512bh)_mm512_load_si512((const void *)(w0 + BPW)), xv);
        l1 = _mm512_dpbf16_ps(l1, (__m512bh)_mm512_load_si512((const void *)w1), xv);
        h1 = _mm512_dpbf16_ps(h1, (__m512bh)_mm512_load_si512((const void *)(w1 + BPW)), xv);
    }
    decode_store_panel_zmm(out, l0, h0, bias, p, OC);
    decode_store_panel_zmm(out, l1, h1, bias, p + 1, OC);
}

/* ftz on 16 lanes: a subnormal becomes a zero of its sign (its sign bit kept). */
__attribute__((target("avx512f"))) static inline __m512 ftz16(__m512 a) {
    __m512i bits = _mm512_castps_si512(a), sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 mag = _mm512_castsi512_ps(_mm512_andnot_si512(sign, bits));
    __mmask16 tiny = _mm512_cmp_ps_mask(mag, _mm512_set1_ps(FLT_MIN), _CMP_LT_OQ);
    return _mm512_castsi512_ps(_mm512_mask_and_epi32(bits, tiny, bits, sign));
}

/* One pair step on 16 lanes without VDPBF16PS: v holds the lanes' weight pairs, xo and
 * xe the odd and even input broadcast. */
__attribute__((target("avx512f"))) static inline __m512 pair_step16(__m512 acc, __m512i v, __m512 xo, __m512 xe) {
    const __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    acc = ftz16(_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(v, himask)), xo, acc));
    return ftz16(_mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), xe, acc));
}

/* Rows n..n+nr-1 x panel p, the same chains with AVX-512F alone (no AVX512-BF16: Skylake
 * to Ice Lake servers): the pairs widened by a shift and a mask, four FMAs and their
 * flushes where VDPBF16PS does two products. */
__attribute__((target("avx512f"))) static void block_f(float *out, const uint32_t *xb, const DecodePacked *pk,
                                                       const float *bias, int n, int nr, int p) {
    int C2 = (pk->C + 1) / 2, OC = pk->OC;
    const uint16_t *w = pk->pb + (size_t)p * C2 * 2 * BPW;
    const uint32_t *x = xb + (size_t)n * C2;
    __m512 l[BRB], h[BRB];
    for (int r = 0; r < BRB; r++) l[r] = _mm512_setzero_ps(), h[r] = _mm512_setzero_ps();
    for (int k = 0; k < C2; k++, w += 2 * BPW) {
        __m512i v0 = _mm512_load_si512((const void *)w), v1 = _mm512_load_si512((const void *)(w + BPW));
        for (int r = 0; r < nr; r++) {
            uint32_t xp = x[(size_t)r * C2 + k];
            __m512 xo = _mm512_set1_ps(decode_bf16_widen((uint16_t)(xp >> 16)));
            __m512 xe = _mm512_set1_ps(decode_bf16_widen((uint16_t)xp));
            l[r] = pair_step16(l[r], v0, xo, xe);
            h[r] = pair_step16(h[r], v1, xo, xe);
        }
    }
    for (int r = 0; r < nr; r++) decode_store_panel_zmm(out + (size_t)(n + r) * OC, l[r], h[r], bias, p, OC);
}

/* ftz on 8 lanes: every bit but the sign cleared where the exponent is 0 (a subnormal;
 * a zero stays itself), tested on the integer bits. */
__attribute__((target("avx2,fma"))) static inline __m256 ftz8(__m256 a) {
    const __m256i expo = _mm256_set1_epi32(0x7f800000), mag = _mm256_set1_epi32(0x7fffffff);
    __m256i bits = _mm256_castps_si256(a);
    __m256i tiny = _mm256_cmpeq_epi32(_mm256_and_si256(bits, expo), _mm256_setzero_si256());
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_and_si256(tiny, mag), bits));
}

/* Row n x panel p with AVX2 and FMA (CPUs without AVX-512: most laptops, AMD Zen 1-3):
 * the chains of block_f on 8 lanes, four vectors for the panel's 32 outputs.  Bound by
 * the flushes' instructions, not by the weights (two rows a pass ran no faster). */
__attribute__((target("avx2,fma"))) static void row_avx2(float *out, const uint32_t *xb, const DecodePacked *pk,
                                                         const float *bias, int n, int p) {
    int C2 = (pk->C + 1) / 2, OC = pk->OC;
    const uint16_t *w = pk->pb + (size_t)p * C2 * 2 * BPW;
    const uint32_t *x = xb + (size_t)n * C2;
    const __m256i himask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int k = 0; k < C2; k++, w += 2 * BPW) {
        __m256 xo = _mm256_set1_ps(decode_bf16_widen((uint16_t)(x[k] >> 16)));
        __m256 xe = _mm256_set1_ps(decode_bf16_widen((uint16_t)x[k]));
        for (int c = 0; c < 4; c++) { /* outputs 8c..8c+7, a pair each */
            __m256i v = _mm256_load_si256((const __m256i *)(w + 16 * c));
            acc[c] = ftz8(_mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(v, himask)), xo, acc[c]));
            acc[c] = ftz8(_mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), xe, acc[c]));
        }
    }
    decode_store_panel_ymm(out + (size_t)n * OC, acc, bias, p, OC);
}
#endif

const char *decode_bf16_kernel(void) {
#ifdef BF16_X86
    if (cpu_avx512bf16()) return "avx512bf16";
    if (cpu_avx512()) return "avx512";
#endif
    if (decode_use_avx2()) return "avx2";
    return "scalar";
}

void decode_bf16_pack(DecodePacked *pk, const float *w, int C, int OC) {
    decode_packed_init(pk, w, C, OC, DECODE_BF16, BPW);
    int C2 = (C + 1) / 2;
    pk->pb = xaligned_alloc((size_t)pk->npanel * C2 * 2 * BPW * sizeof(uint16_t)); /* zeroed: the padding */
    int vec = 0;
#ifdef BF16_X86
    vec = cpu_avx512bf16();
#endif
#pragma omp parallel
    {
        uint16_t *row = xmalloc((size_t)C * sizeof(uint16_t));
#pragma omp for schedule(static)
        for (int p = 0; p < pk->npanel; p++) {
            uint16_t *dst = pk->pb + (size_t)p * C2 * 2 * BPW;
            for (int j = 0; j < BPW; j++) {
                int o = p * BPW + j;
                if (o >= OC) continue; /* stays zero */
                const float *src = w + (size_t)o * C;
                int i = 0;
#ifdef BF16_X86
                if (vec) i = round16_avx512bf16(row, src, C);
#endif
                for (; i < C; i++) row[i] = decode_bf16_round(src[i]);
                for (int i = 0; i < C; i++) dst[((size_t)(i / 2) * BPW + j) * 2 + (i & 1)] = row[i];
            }
        }
        free(row);
    }
    (void)vec;
}

/* One decode_linear call on bf16 panels: the job and its rounded input pairs.  The
 * tasks get &j, the struct's first member, and read the whole (C11 6.7.2.1 15). */
typedef struct {
    LinearJob j;
    const uint32_t *xb; /* [N][C2] */
} Bf16Job;

static void panel_task_scalar(void *arg, int p, int tid) {
    const Bf16Job *b = arg;
    for (int n = 0; n < b->j.N; n += BRB)
        block_scalar(b->j.out, b->xb, b->j.pk, b->j.bias, n, b->j.N - n < BRB ? b->j.N - n : BRB, p);
}

#ifdef BF16_X86
/* Batch 1: item t is the panel pair (2t, 2t+1), the odd last panel alone. */
static void pair_task_dp(void *arg, int t, int tid) {
    const Bf16Job *b = arg;
    int np = b->j.pk->npanel;
    if (t < np / 2)
        row2_dp(b->j.out, b->xb, b->j.pk, b->j.bias, 2 * t);
    else
        block_dp(b->j.out, b->xb, b->j.pk, b->j.bias, 0, 1, np - 1);
}

static void panel_task_dp(void *arg, int p, int tid) {
    const Bf16Job *b = arg;
    for (int n = 0; n < b->j.N; n += BRB)
        block_dp(b->j.out, b->xb, b->j.pk, b->j.bias, n, b->j.N - n < BRB ? b->j.N - n : BRB, p);
}

static void panel_task_avx2(void *arg, int p, int tid) {
    const Bf16Job *b = arg;
    for (int n = 0; n < b->j.N; n++) row_avx2(b->j.out, b->xb, b->j.pk, b->j.bias, n, p);
}

static void panel_task_f(void *arg, int p, int tid) {
    const Bf16Job *b = arg;
    for (int n = 0; n < b->j.N; n += BRB)
        block_f(b->j.out, b->xb, b->j.pk, b->j.bias, n, b->j.N - n < BRB ? b->j.N - n : BRB, p);
}
#endif

/* The input rows [N, C] as bf16 pairs [N][C2] (an odd C's last pair padded with a
 * zero), rounded as the weights were. */
static uint32_t *round_input(const float *in, int N, int C) {
    int C2 = (C + 1) / 2;
    uint32_t *xb = xmalloc((size_t)N * C2 * sizeof(uint32_t));
    int vec = 0;
#ifdef BF16_X86
    vec = cpu_avx512bf16();
#endif
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        uint32_t *d = xb + (size_t)n * C2;
        int i = 0;
#ifdef BF16_X86
        if (vec) i = round16_avx512bf16(d, x, C);
#endif
        for (; i < C; i += 2)
            d[i / 2] =
                (uint32_t)decode_bf16_round(x[i]) | (i + 1 < C ? (uint32_t)decode_bf16_round(x[i + 1]) << 16 : 0);
    }
    (void)vec;
    return xb;
}

void decode_bf16_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt) {
    uint32_t *xb = round_input(in, N, pk->C);
    Bf16Job b = {{out, in, bias, pk, N}, xb};
#ifdef BF16_X86
    if (cpu_avx512bf16())
        decode_run_panels(&b.j, nt, pair_task_dp, panel_task_dp);
    else if (cpu_avx512())
        decode_run_panels(&b.j, nt, NULL, panel_task_f);
    else
        decode_run_fallback(&b.j, nt, panel_task_avx2, panel_task_scalar);
#else
    decode_run_fallback(&b.j, nt, NULL, panel_task_scalar);
#endif
    free(xb);
}
