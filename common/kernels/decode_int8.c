/* decode_int8.c — int8 decode (--gen-dtype int8): GGML's Q8_0 weights times Q8_0
 * inputs, the arithmetic of llama.cpp's Q8_0 products.  Each weight is held in one
 * byte, a quarter of fp32's bytes and half of bf16's, which is what bounds decoding
 * at small batch (the weights stream from memory once per token); and each product's
 * input row is quantized the same way when the product runs, so a block's products
 * are an integer dot product: AVX512-VNNI's VPDPBUSD does 64 byte products per
 * instruction, four times an fp32 FMA's, which is what bounds decoding at batch 16.
 *
 * Quantization: GGML's Q8_0 (ggml-quants.c, quantize_row_q8_0_ref): every block of
 * DECODE_INT8_BLOCK = 32 consecutive inputs gets a scale d = max|v| / 127 and q =
 * roundf(v * (1 / d)) (the product with the reciprocal, as GGML computes it), so a
 * value is q * d, within d / 2 of v up to rounding.  GGML keeps d as fp16; here it
 * stays fp32.  The weights' blocks are quantized once, when a generator packs them;
 * an input row's blocks at every product.
 *
 * The sum of (n, o) is one fixed chain, whatever the kernel and the batch: for each
 * block b of 32 inputs, the integer sum s = sum_i qx[n,i] * qw[o,i] (exact in int32),
 * then acc = fmaf((float)s, dw[o,b] * dx[n,b], acc) (s is exact in fp32 too, |s| <=
 * 32 * 127 * 127; the scales' product rounded once); then out = acc + bias.  An input
 * block holding a NaN gets the scale NaN, so the NaN reaches the outputs as in fp32
 * (Q8_0 alone would quantize it to 0 and hide it).  So the
 * VNNI kernel and the portable one give the same bits, and a row's result does not
 * depend on the rows decoded with it (generate.c's batch invariance).
 *
 * VPDPBUSD multiplies unsigned by signed bytes: the inputs go in as qx + 128 (1..255)
 * and each block's sum of its weights, kept with the panel, takes 128 * sum(qw) back
 * out, exactly.
 *
 * Layout: panels of DECODE_INT8_PW = 32 outputs; per panel the weights [nb * 8][32][4]
 * (for each 4 consecutive inputs, output j's four bytes together: a 64-byte load is
 * outputs 0..15, the next 16..31, one 32-bit lane each, as VPDPBUSD wants them; a
 * partial last block padded with zeros), the scales [nb][32] (fp32) and the weight sums
 * [nb][32] (int32), nb = ceil(C / 32).  Outputs past OC are zero.
 * Not for: the fp32 panels (decode.c), the bf16 ones (decode_bf16.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "decode_internal.h"

#define QB DECODE_INT8_BLOCK
#define IPW DECODE_INT8_PW
#define QPB (QB / 4) /* 4-input steps per block */
#define IRB 8        /* rows per block of the VNNI kernel: 8 rows x 2 vectors of sums */

/* roundf (halves away from zero) without the library call: t = trunc(v), and
 * v - t is exact for |v| < 2^23 (larger floats are integers already). */
static inline float round_half_away(float v) {
    float t = truncf(v);
    if (fabsf(v - t) >= 0.5f) t += copysignf(1.0f, v);
    return t;
}

float decode_int8_quantize(int8_t *q, const float *w, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = fabsf(w[i]);
        amax = a > amax ? a : amax; /* a NaN compares false: skipped (GGML's MAX keeps it) */
    }
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    /* a block below ~3.7e-37 has a subnormal d whose reciprocal overflows: there the
     * quotient (GGML's product would be inf times w, undefined once converted) */
    int tiny = isinf(id);
    for (int i = 0; i < n; i++) {
        /* |w * id| <= 127 up to rounding; the bounds keep a NaN weight (0) inside int8 */
        float v = round_half_away(tiny ? w[i] / d : w[i] * id);
        q[i] = (int8_t)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : v == v ? (int)v : 0);
    }
    return d;
}

static int n_blocks(int C) {
    return (C + QB - 1) / QB;
}

/* Bytes of one panel's weights (nb blocks of 32 inputs x 32 outputs). */
static size_t panel_bytes(int nb) {
    return (size_t)nb * QB * IPW;
}

void decode_int8_pack(DecodePacked *pk, const float *w, int C, int OC) {
    decode_packed_init(pk, w, C, OC, DECODE_INT8, IPW);
    int nb = n_blocks(C);
    pk->pq = xaligned_alloc((size_t)pk->npanel * panel_bytes(nb)); /* zeroed: padding and outputs past OC */
    pk->ps = xaligned_alloc((size_t)pk->npanel * nb * IPW * sizeof(float));
    pk->pz = xaligned_alloc((size_t)pk->npanel * nb * IPW * sizeof(int32_t));
#pragma omp parallel for schedule(static)
    for (int p = 0; p < pk->npanel; p++) {
        int8_t *dq = pk->pq + (size_t)p * panel_bytes(nb), q[QB];
        float *ds = pk->ps + (size_t)p * nb * IPW;
        int32_t *dz = pk->pz + (size_t)p * nb * IPW;
        for (int j = 0; j < IPW; j++) {
            int o = p * IPW + j;
            if (o >= OC) continue;
            const float *src = w + (size_t)o * C;
            for (int b = 0; b < nb; b++) {
                int i0 = b * QB, len = C - i0 < QB ? C - i0 : QB, sum = 0;
                ds[(size_t)b * IPW + j] = decode_int8_quantize(q, src + i0, len);
                for (int i = 0; i < len; i++) {
                    int k = i0 + i;
                    dq[((size_t)(k / 4) * IPW + j) * 4 + k % 4] = q[i];
                    sum += q[i];
                }
                dz[(size_t)b * IPW + j] = sum;
            }
        }
    }
}

/* One decode_linear call on int8 panels: the job and its quantized input rows.  The
 * tasks get &j, the struct's first member, and read the whole (C11 6.7.2.1 15). */
typedef struct {
    LinearJob j;
    const uint8_t *xq; /* [N][nb * 32]: q + 128 (padding 128, i.e. q = 0) */
    const float *dx;   /* [N][nb] the input blocks' scales */
    int nb;
} Int8Job;

/* Portable: the same chains, a row at a time, the integer sums in C. */
static void block_scalar(float *out, const Int8Job *jb, int n, int nr, int p) {
    const DecodePacked *pk = jb->j.pk;
    int nb = jb->nb, OC = pk->OC;
    const int8_t *w = pk->pq + (size_t)p * panel_bytes(nb);
    const float *s = pk->ps + (size_t)p * nb * IPW;
    for (int r = 0; r < nr; r++) {
        const uint8_t *x = jb->xq + (size_t)(n + r) * nb * QB;
        const float *dx = jb->dx + (size_t)(n + r) * nb;
        float t[IPW] = {0};
        for (int b = 0; b < nb; b++) {
            int32_t sum[IPW] = {0};
            for (int k = b * QB; k < (b + 1) * QB; k++) {
                int xv = (int)x[k] - 128;
                for (int j = 0; j < IPW; j++) sum[j] += xv * w[((size_t)(k / 4) * IPW + j) * 4 + k % 4];
            }
            for (int j = 0; j < IPW; j++) t[j] = fmaf((float)sum[j], s[(size_t)b * IPW + j] * dx[b], t[j]);
        }
        decode_store_panel(out + (size_t)(n + r) * OC, t, jb->j.bias, p, IPW, OC);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define INT8_X86 1
static int cpu_vnni(void) {
    return (decode_forced_kernel() == 0 || decode_forced_kernel() == 2) && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vnni");
}

/* Software prefetch PF bytes ahead of the weight stream (a panel's weights are read
 * once per row block, in order; without it the batch-1 products waited on memory). */
#define PF 2048

/* Rows n..n+nr-1 (nr <= IRB) x panel p with VPDPBUSD. */
__attribute__((target("avx512f,avx512vnni"))) static void block_vnni(float *out, const Int8Job *jb, int n, int nr,
                                                                     int p) {
    const DecodePacked *pk = jb->j.pk;
    int nb = jb->nb, OC = pk->OC;
    const int8_t *w = pk->pq + (size_t)p * panel_bytes(nb);
    const float *s = pk->ps + (size_t)p * nb * IPW;
    const int32_t *z = pk->pz + (size_t)p * nb * IPW;
    const uint8_t *x = jb->xq + (size_t)n * nb * QB;
    const float *dx = jb->dx + (size_t)n * nb;
    size_t xs = (size_t)nb * QB; /* one input row */
    __m512 fl[IRB], fh[IRB];
    for (int r = 0; r < IRB; r++) fl[r] = _mm512_setzero_ps(), fh[r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i il[IRB], ih[IRB];
        for (int r = 0; r < IRB; r++) il[r] = _mm512_setzero_si512(), ih[r] = _mm512_setzero_si512();
        for (int q = 0; q < QPB; q++, w += 4 * IPW) {
            __builtin_prefetch(w + PF), __builtin_prefetch(w + PF + 64);
            __m512i w0 = _mm512_load_si512((const void *)w), w1 = _mm512_load_si512((const void *)(w + 2 * IPW));
            int k = b * QB + 4 * q;
            for (int r = 0; r < nr; r++) {
                int32_t x4;
                memcpy(&x4, x + (size_t)r * xs + k, 4);
                __m512i xv = _mm512_set1_epi32(x4);
                il[r] = _mm512_dpbusd_epi32(il[r], xv, w0);
                ih[r] = _mm512_dpbusd_epi32(ih[r], xv, w1);
            }
        }
        /* sum (qx + 128) qw - 128 sum qw = sum qx qw, exactly */
        __m512i zl = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(z + (size_t)b * IPW)), 7);
        __m512i zh = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(z + (size_t)b * IPW + 16)), 7);
        __m512 dl = _mm512_loadu_ps(s + (size_t)b * IPW), dh = _mm512_loadu_ps(s + (size_t)b * IPW + 16);
        for (int r = 0; r < nr; r++) {
            __m512 d = _mm512_set1_ps(dx[(size_t)r * nb + b]);
            fl[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(il[r], zl)), _mm512_mul_ps(dl, d), fl[r]);
            fh[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ih[r], zh)), _mm512_mul_ps(dh, d), fh[r]);
        }
    }
    for (int r = 0; r < nr; r++) decode_store_panel_zmm(out + (size_t)(n + r) * OC, fl[r], fh[r], jb->j.bias, p, OC);
}

/* One row x panels p and p+1 (batch 1, where the weights' bytes bound the time): the
 * blocks' weight sums are summed here (VPDPBUSD of ones, the same integers as pz)
 * instead of read, which would be 12% more bytes than the weights' and scales'. */
__attribute__((target("avx512f,avx512vnni"))) static void row2_vnni(float *out, const Int8Job *jb, int p) {
    const DecodePacked *pk = jb->j.pk;
    int nb = jb->nb, OC = pk->OC;
    const int8_t *w0 = pk->pq + (size_t)p * panel_bytes(nb), *w1 = w0 + panel_bytes(nb);
    const float *s0 = pk->ps + (size_t)p * nb * IPW, *s1 = s0 + (size_t)nb * IPW;
    const __m512i ones = _mm512_set1_epi8(1);
    __m512 f[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        __m512i acc[4], sum[4];
        for (int c = 0; c < 4; c++) acc[c] = _mm512_setzero_si512(), sum[c] = _mm512_setzero_si512();
        for (int q = 0; q < QPB; q++, w0 += 4 * IPW, w1 += 4 * IPW) {
            __builtin_prefetch(w0 + PF), __builtin_prefetch(w0 + PF + 64);
            __builtin_prefetch(w1 + PF), __builtin_prefetch(w1 + PF + 64);
            int32_t x4;
            memcpy(&x4, jb->xq + b * QB + 4 * q, 4);
            __m512i xv = _mm512_set1_epi32(x4);
            __m512i v[4] = {_mm512_load_si512((const void *)w0), _mm512_load_si512((const void *)(w0 + 2 * IPW)),
                            _mm512_load_si512((const void *)w1), _mm512_load_si512((const void *)(w1 + 2 * IPW))};
            for (int c = 0; c < 4; c++) {
                acc[c] = _mm512_dpbusd_epi32(acc[c], xv, v[c]);
                sum[c] = _mm512_dpbusd_epi32(sum[c], ones, v[c]);
            }
        }
        __m512 d = _mm512_set1_ps(jb->dx[b]);
        const float *sc[4] = {s0 + (size_t)b * IPW, s0 + (size_t)b * IPW + 16, s1 + (size_t)b * IPW,
                              s1 + (size_t)b * IPW + 16};
        for (int c = 0; c < 4; c++) {
            __m512i exact = _mm512_sub_epi32(acc[c], _mm512_slli_epi32(sum[c], 7));
            f[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(_mm512_loadu_ps(sc[c]), d), f[c]);
        }
    }
    for (int k = 0; k < 2; k++) decode_store_panel_zmm(out, f[2 * k], f[2 * k + 1], jb->j.bias, p + k, OC);
}

/* decode_int8_quantize of a whole block of 32 inputs on 16 lanes, the same bits: the
 * same product with the reciprocal (or the quotient when it overflows), roundf's
 * halves away from zero as t = trunc(v) plus the sign where |v - t| >= 0.5, the same
 * clamp, a NaN to 0 (MAXPS returns its second operand when one is a NaN, so the
 * maximum skips NaNs as the scalar loop does).  Rounding every input row is on the
 * calling thread before the product: in scalar code it took twice the products' time
 * at batch 16. */
__attribute__((target("avx512f"))) static float quantize32_avx512(int8_t *q, const float *x) {
    __m512 a[2] = {_mm512_loadu_ps(x), _mm512_loadu_ps(x + 16)};
    __m512 m = _mm512_max_ps(_mm512_abs_ps(a[0]), _mm512_setzero_ps());
    m = _mm512_max_ps(_mm512_abs_ps(a[1]), m);
    float amax = _mm512_reduce_max_ps(m);
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int tiny = isinf(id);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int h = 0; h < 2; h++) {
        __m512 v = tiny ? _mm512_div_ps(a[h], _mm512_set1_ps(d)) : _mm512_mul_ps(a[h], _mm512_set1_ps(id));
        __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
        __m512 one = _mm512_castsi512_ps(
            _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), sign), _mm512_castps_si512(_mm512_set1_ps(1.0f))));
        t = _mm512_mask_add_ps(t, up, t, one);
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
        t = _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_setzero_ps());
        _mm_storeu_si128((__m128i *)(q + 16 * h), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t)));
    }
    return d;
}

/* Row n x panel p with AVX2 (no VNNI: AMD Zen 1-3, Intel before Ice Lake, laptops):
 * the same integer sums as llama.cpp's AVX2 Q8_0 products make them, |qx| times qw
 * with qx's sign (VPMADDUBSW: pairs of products within int16, 2 * 127 * 127 at most,
 * so nothing saturates), then pairs of pairs (VPMADDWD by ones). */
__attribute__((target("avx2,fma"))) static void row_avx2(float *out, const Int8Job *jb, int n, int p) {
    const DecodePacked *pk = jb->j.pk;
    int nb = jb->nb, OC = pk->OC;
    const int8_t *w = pk->pq + (size_t)p * panel_bytes(nb);
    const float *s = pk->ps + (size_t)p * nb * IPW;
    const uint8_t *x = jb->xq + (size_t)n * nb * QB;
    const float *dx = jb->dx + (size_t)n * nb;
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    __m256 f[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        __m256i is[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                         _mm256_setzero_si256()};
        for (int q = 0; q < QPB; q++, w += 4 * IPW) {
            int32_t x4;
            memcpy(&x4, x + b * QB + 4 * q, 4);
            __m256i xs = _mm256_xor_si256(_mm256_set1_epi32(x4), flip); /* q + 128 back to q */
            __m256i xa = _mm256_abs_epi8(xs);
            for (int c = 0; c < 4; c++) { /* outputs 8c..8c+7, four bytes each */
                __m256i v = _mm256_sign_epi8(_mm256_load_si256((const __m256i *)(w + 32 * c)), xs);
                is[c] = _mm256_add_epi32(is[c], _mm256_madd_epi16(_mm256_maddubs_epi16(xa, v), ones));
            }
        }
        __m256 d = _mm256_set1_ps(dx[b]);
        for (int c = 0; c < 4; c++)
            f[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is[c]),
                                   _mm256_mul_ps(_mm256_loadu_ps(s + (size_t)b * IPW + 8 * c), d), f[c]);
    }
    decode_store_panel_ymm(out + (size_t)n * OC, f, jb->j.bias, p, OC);
}

/* quantize32_avx512 on 8 lanes (the same bits: the same operations in the same
 * order; the maximum is exact in any order), for the AVX2 kernel's CPUs. */
__attribute__((target("avx2,fma"))) static float quantize32_avx2(int8_t *q, const float *x) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    __m256 a[4], m = _mm256_setzero_ps();
    for (int h = 0; h < 4; h++) a[h] = _mm256_loadu_ps(x + 8 * h), m = _mm256_max_ps(_mm256_andnot_ps(sign, a[h]), m);
    m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
    m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
    m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
    float amax = _mm256_cvtss_f32(m);
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int tiny = isinf(id);
    __m256i qi[4];
    for (int h = 0; h < 4; h++) {
        __m256 v = tiny ? _mm256_div_ps(a[h], _mm256_set1_ps(d)) : _mm256_mul_ps(a[h], _mm256_set1_ps(id));
        __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
        __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
        t = _mm256_add_ps(t, _mm256_and_ps(up, one));
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
        t = _mm256_andnot_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), t);
        qi[h] = _mm256_cvttps_epi32(t);
    }
    /* 4 x 8 int32 to 32 int8: the packs work per 128-bit lane, the permute restores order */
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
    return d;
}

static void panel_task_avx2(void *arg, int p, int tid) {
    const Int8Job *jb = arg;
    for (int n = 0; n < jb->j.N; n++) row_avx2(jb->j.out, jb, n, p);
}
#endif

const char *decode_int8_kernel(void) {
#ifdef INT8_X86
    if (cpu_vnni()) return "avx512vnni";
    if (decode_use_avx2()) return "avx2";
#endif
    return "scalar";
}

#ifdef INT8_X86
/* Batch 1: item t is the panel pair (2t, 2t+1), an odd last panel alone. */
static void pair_task(void *arg, int t, int tid) {
    const Int8Job *jb = arg;
    if (2 * t + 1 < jb->j.pk->npanel)
        row2_vnni(jb->j.out, jb, 2 * t);
    else
        block_vnni(jb->j.out, jb, 0, 1, 2 * t);
}

static void panel_task_vnni(void *arg, int p, int tid) {
    const Int8Job *jb = arg;
    for (int n = 0; n < jb->j.N; n += IRB) block_vnni(jb->j.out, jb, n, jb->j.N - n < IRB ? jb->j.N - n : IRB, p);
}
#endif

static void panel_task_scalar(void *arg, int p, int tid) {
    const Int8Job *jb = arg;
    block_scalar(jb->j.out, jb, 0, jb->j.N, p);
}

/* Panels handed out one at a time (decode_parallel), as for fp32 and bf16. */
void decode_int8_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt) {
    int C = pk->C, nb = n_blocks(C);
    uint8_t *xq = xmalloc((size_t)N * nb * QB);
    float *dx = xmalloc((size_t)N * nb * sizeof(float));
    int vec = 0; /* 2: the AVX-512 quantizer, 1: the AVX2 one (the same bits) */
#ifdef INT8_X86
    int f = decode_forced_kernel();
    if (f != 1 && f != 3 && __builtin_cpu_supports("avx512f"))
        vec = 2;
    else if (decode_use_avx2())
        vec = 1;
#endif
    for (int n = 0; n < N; n++) {
        int8_t q[QB];
        for (int b = 0; b < nb; b++) {
            int i0 = b * QB, len = C - i0 < QB ? C - i0 : QB;
            const float *x = in + (size_t)n * C + i0;
#ifdef INT8_X86
            if (vec == 2 && len == QB)
                dx[(size_t)n * nb + b] = quantize32_avx512(q, x);
            else if (vec == 1 && len == QB)
                dx[(size_t)n * nb + b] = quantize32_avx2(q, x);
            else
#endif
                dx[(size_t)n * nb + b] = decode_int8_quantize(q, x, len);
            /* Q8_0 quantizes a NaN to 0 and the block's other inputs as if it were
             * absent; a NaN scale carries it to every output, as fp32 and bf16 do */
            int nan = 0;
            for (int i = 0; i < len; i++) nan |= x[i] != x[i];
            if (nan) dx[(size_t)n * nb + b] = NAN;
            uint8_t *d = xq + (size_t)n * nb * QB + i0;
            for (int i = 0; i < QB; i++) d[i] = (uint8_t)((i < len ? q[i] : 0) + 128);
        }
    }
    (void)vec;
    Int8Job jb = {{out, in, bias, pk, N}, xq, dx, nb};
#ifdef INT8_X86
    if (cpu_vnni())
        decode_run_panels(&jb.j, nt, pair_task, panel_task_vnni);
    else
        decode_run_fallback(&jb.j, nt, panel_task_avx2, panel_task_scalar);
#else
    decode_run_fallback(&jb.j, nt, NULL, panel_task_scalar);
#endif
    free(xq);
    free(dx);
}
