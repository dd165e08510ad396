/* decode_int8.c — int8 decode weights (--gen-dtype int8): the panels of decode.c with
 * each weight held in one byte, a quarter of fp32's bytes and half of bf16's, which
 * is what bounds decoding at small batch (the weights stream from memory once per
 * token).  Activations and sums stay fp32; only the weights are quantized, once, when
 * a generator packs them.
 *
 * Quantization: GGML's Q8_0 (ggml-quants.c, quantize_row_q8_0_ref): every block of
 * DECODE_INT8_BLOCK = 32 consecutive inputs of one output gets a scale d = max|w| / 127
 * and q = roundf(w * (1 / d)) (the product with the reciprocal, as GGML computes it),
 * so a weight is q * d, within d / 2 of w up to rounding.  GGML keeps d as fp16; here
 * it stays fp32.  (llama.cpp's Q8_0 products also round the activations to 8
 * bits per block of 32; these do not.)
 *
 * The sum of (n, o) is one fixed chain, whatever the kernel and the batch:
 * acc = fmaf(x[i], w'[o,i], acc) over i = 0..C-1, then + bias, where w' = q * d is the
 * dequantized weight rounded once to fp32 (an int8 widens exactly, and the product
 * has one rounding), so the AVX-512 kernels and the portable one give the same bits,
 * and a row's result does not depend on the rows decoded with it (generate.c's batch
 * invariance).  Summing each block first and scaling the block's sum once was 8%
 * slower at batch 16 (0.321 against 0.296 ms for one SmolLM2 MLP product): blocks of
 * 32 steps are too short for the sums' loads and stores to pay off.
 *
 * Layout: panels of DECODE_INT8_PW = 32 outputs; per panel the weights [C][32] (byte k
 * of a step is output k: one 16-byte load sign-extends to outputs 0..15, the next to
 * 16..31) and the scales [ceil(C / 32)][32] (fp32).  Outputs past OC are zero.
 * Not for: the fp32 panels (decode.c), the bf16 ones (decode_bf16.c). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "decode_internal.h"

#define QB DECODE_INT8_BLOCK
#define IPW DECODE_INT8_PW
#define IRB 8 /* rows per block of the AVX-512 kernel: 8 rows x 2 vectors of partial sums */

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

void decode_int8_pack(DecodePacked *pk, const float *w, int C, int OC) {
    decode_packed_init(pk, w, C, OC, DECODE_INT8, IPW);
    int nb = n_blocks(C);
    pk->pq = xaligned_alloc((size_t)pk->npanel * C * IPW); /* zeroed: outputs past OC stay 0 */
    pk->ps = xaligned_alloc((size_t)pk->npanel * nb * IPW * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int p = 0; p < pk->npanel; p++) {
        int8_t *dq = pk->pq + (size_t)p * C * IPW, q[QB];
        float *ds = pk->ps + (size_t)p * nb * IPW;
        for (int j = 0; j < IPW; j++) {
            int o = p * IPW + j;
            if (o >= OC) continue;
            const float *src = w + (size_t)o * C;
            for (int b = 0; b < nb; b++) {
                int i0 = b * QB, len = C - i0 < QB ? C - i0 : QB;
                ds[(size_t)b * IPW + j] = decode_int8_quantize(q, src + i0, len);
                for (int i = 0; i < len; i++) dq[(size_t)(i0 + i) * IPW + j] = q[i];
            }
        }
    }
}

/* The bias added to a row's 32 sums of panel p (the outputs below OC). */
static void store_panel(float *out, const float *t, const float *bias, int p, int OC) {
    int o0 = p * IPW, m = OC - o0 < IPW ? OC - o0 : IPW;
    for (int j = 0; j < m; j++) out[o0 + j] = t[j] + (bias ? bias[o0 + j] : 0.0f);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define INT8_X86 1
static int cpu_avx512(void) {
    return !decode_portable_forced() && __builtin_cpu_supports("avx512f");
}

/* 16 weights of a step, sign-extended and converted (exactly) to fp32. */
__attribute__((target("avx512f"))) static inline __m512 widen16(const int8_t *q) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q)));
}

/* A row's two vectors of sums + bias into out (the outputs below OC). */
__attribute__((target("avx512f"))) static inline void store_avx512(float *out, __m512 lo, __m512 hi, const float *bias,
                                                                   int p, int OC) {
    float t[IPW];
    _mm512_storeu_ps(t, lo);
    _mm512_storeu_ps(t + 16, hi);
    store_panel(out, t, bias, p, OC);
}

/* Software prefetch PF steps (2 KiB) ahead of the weight stream: without it the
 * dequantization waited on memory, a third of the batch-16 product.  A prefetch past
 * the panel touches the next one or is dropped. */
#define PF 64

/* Steps i0..i1-1 of a panel (weights w, scales s) as fp32 weights q * d into
 * wb[i1 - i0][32]. */
__attribute__((target("avx512f"))) static void dequant_steps(float *wb, const int8_t *w, const float *s, int i0,
                                                             int i1) {
    for (int i = i0; i < i1; i++, wb += IPW) {
        const float *d = s + (size_t)(i / QB) * IPW;
        if (!(i & 1)) __builtin_prefetch(w + (size_t)(i + PF) * IPW); /* a 64-byte line per two steps */
        _mm512_store_ps(wb, _mm512_mul_ps(widen16(w + (size_t)i * IPW), _mm512_loadu_ps(d)));
        _mm512_store_ps(wb + 16, _mm512_mul_ps(widen16(w + (size_t)i * IPW + 16), _mm512_loadu_ps(d + 16)));
    }
}

/* Rows of x (nr <= IRB, leading dimension C) continue their chains acc[r][32] over
 * steps i0..i1-1, whose fp32 weights are in wb.  Always inlined with a constant nr,
 * so the sums stay in registers (with a variable nr they went through the stack). */
__attribute__((target("avx512f"), always_inline)) static inline void
int8_rows(float *acc, const float *x, int C, const float *wb, int i0, int i1, const int nr) {
    __m512 l[IRB], h[IRB];
    for (int r = 0; r < nr; r++)
        l[r] = _mm512_load_ps(acc + (size_t)r * IPW), h[r] = _mm512_load_ps(acc + (size_t)r * IPW + 16);
    for (int i = i0; i < i1; i++, wb += IPW) {
        __m512 wl = _mm512_load_ps(wb), wh = _mm512_load_ps(wb + 16);
        for (int r = 0; r < nr; r++) {
            __m512 xb = _mm512_set1_ps(x[(size_t)r * C + i]);
            l[r] = _mm512_fmadd_ps(xb, wl, l[r]);
            h[r] = _mm512_fmadd_ps(xb, wh, h[r]);
        }
    }
    for (int r = 0; r < nr; r++)
        _mm512_store_ps(acc + (size_t)r * IPW, l[r]), _mm512_store_ps(acc + (size_t)r * IPW + 16, h[r]);
}

__attribute__((target("avx512f"))) static void int8_rows_avx512(float *acc, const float *x, int C, const float *wb,
                                                                int i0, int i1, int nr) {
    switch (nr) {
    case 8:
        int8_rows(acc, x, C, wb, i0, i1, 8);
        break;
    case 7:
        int8_rows(acc, x, C, wb, i0, i1, 7);
        break;
    case 6:
        int8_rows(acc, x, C, wb, i0, i1, 6);
        break;
    case 5:
        int8_rows(acc, x, C, wb, i0, i1, 5);
        break;
    case 4:
        int8_rows(acc, x, C, wb, i0, i1, 4);
        break;
    case 3:
        int8_rows(acc, x, C, wb, i0, i1, 3);
        break;
    case 2:
        int8_rows(acc, x, C, wb, i0, i1, 2);
        break;
    default:
        int8_rows(acc, x, C, wb, i0, i1, 1);
        break;
    }
}

/* Every row of out[N, OC] for panel p.  A chunk of KC steps is dequantized once into
 * an fp32 buffer (16 KiB, in the L1 cache) that every row block of a group of IRG rows
 * then reads; a chain stored to acc and loaded back is the same float, so the chunks
 * change no rounding. */
#define IRG (4 * IRB)
#define KC 128
__attribute__((target("avx512f"))) static void int8_panel_avx512(float *out, const float *in, const DecodePacked *pk,
                                                                 const float *bias, int N, int p) {
    int C = pk->C, OC = pk->OC, nb = n_blocks(C);
    const int8_t *w = pk->pq + (size_t)p * C * IPW;
    const float *s = pk->ps + (size_t)p * nb * IPW;
    float acc[IRG * IPW] __attribute__((aligned(64))), wb[KC * IPW] __attribute__((aligned(64)));
    for (int g = 0; g < N; g += IRG) {
        int ng = N - g < IRG ? N - g : IRG;
        memset(acc, 0, (size_t)ng * IPW * sizeof(float));
        for (int i0 = 0; i0 < C; i0 += KC) {
            int i1 = C - i0 < KC ? C : i0 + KC;
            dequant_steps(wb, w, s, i0, i1);
            for (int r = 0; r < ng; r += IRB)
                int8_rows_avx512(acc + (size_t)r * IPW, in + (size_t)(g + r) * C, C, wb, i0, i1,
                                 ng - r < IRB ? ng - r : IRB);
        }
        for (int r = 0; r < ng; r++) store_panel(out + (size_t)(g + r) * OC, acc + (size_t)r * IPW, bias, p, OC);
    }
}

/* One row x panels p and p+1 (batch 1: four independent chains while the weights
 * stream; nothing to share, so no buffer). */
__attribute__((target("avx512f"))) static void int8_row2_avx512(float *out, const float *in, const DecodePacked *pk,
                                                                const float *bias, int p) {
    int C = pk->C, OC = pk->OC, nb = n_blocks(C);
    const int8_t *w0 = pk->pq + (size_t)p * C * IPW, *w1 = w0 + (size_t)C * IPW;
    const float *s0 = pk->ps + (size_t)p * nb * IPW, *s1 = s0 + (size_t)nb * IPW;
    __m512 l0 = _mm512_setzero_ps(), h0 = l0, l1 = l0, h1 = l0;
    for (int b = 0; b < nb; b++) {
        int i0 = b * QB, i1 = C - i0 < QB ? C : i0 + QB;
        const float *t0 = s0 + (size_t)b * IPW, *t1 = s1 + (size_t)b * IPW;
        __m512 dl0 = _mm512_loadu_ps(t0), dh0 = _mm512_loadu_ps(t0 + 16);
        __m512 dl1 = _mm512_loadu_ps(t1), dh1 = _mm512_loadu_ps(t1 + 16);
        for (int i = i0; i < i1; i++) {
            __m512 xb = _mm512_set1_ps(in[i]);
            const int8_t *a = w0 + (size_t)i * IPW, *c = w1 + (size_t)i * IPW;
            if (!(i & 1)) __builtin_prefetch(a + (size_t)PF * IPW), __builtin_prefetch(c + (size_t)PF * IPW);
            l0 = _mm512_fmadd_ps(xb, _mm512_mul_ps(widen16(a), dl0), l0);
            h0 = _mm512_fmadd_ps(xb, _mm512_mul_ps(widen16(a + 16), dh0), h0);
            l1 = _mm512_fmadd_ps(xb, _mm512_mul_ps(widen16(c), dl1), l1);
            h1 = _mm512_fmadd_ps(xb, _mm512_mul_ps(widen16(c + 16), dh1), h1);
        }
    }
    store_avx512(out, l0, h0, bias, p, OC);
    store_avx512(out, l1, h1, bias, p + 1, OC);
}
#endif

/* Portable: the same chains, one output at a time, with fmaf (a correctly rounded
 * fused multiply-add, as the vector FMA). */
static void int8_block_scalar(float *out, const float *in, const DecodePacked *pk, const float *bias, int n, int nr,
                              int p) {
    int C = pk->C, OC = pk->OC, nb = n_blocks(C);
    const int8_t *w = pk->pq + (size_t)p * C * IPW;
    const float *s = pk->ps + (size_t)p * nb * IPW;
    float t[IPW];
    for (int r = 0; r < nr; r++) {
        const float *x = in + (size_t)(n + r) * C;
        for (int j = 0; j < IPW; j++) {
            float acc = 0.0f;
            for (int i = 0; i < C; i++)
                acc = fmaf(x[i], (float)w[(size_t)i * IPW + j] * s[(size_t)(i / QB) * IPW + j], acc);
            t[j] = acc;
        }
        store_panel(out + (size_t)(n + r) * OC, t, bias, p, OC);
    }
}

const char *decode_int8_kernel(void) {
#ifdef INT8_X86
    if (cpu_avx512()) return "avx512";
#endif
    return "scalar";
}

#ifdef INT8_X86
/* Batch 1: item t is the panel pair (2t, 2t+1), an odd last panel alone. */
static void pair_task(void *arg, int t, int tid) {
    const LinearJob *j = arg;
    int np = j->pk->npanel;
    if (t < np / 2)
        int8_row2_avx512(j->out, j->in, j->pk, j->bias, 2 * t);
    else
        int8_panel_avx512(j->out, j->in, j->pk, j->bias, 1, np - 1);
}

static void panel_task_avx512(void *arg, int p, int tid) {
    const LinearJob *j = arg;
    int8_panel_avx512(j->out, j->in, j->pk, j->bias, j->N, p);
}
#endif

static void panel_task_scalar(void *arg, int p, int tid) {
    const LinearJob *j = arg;
    int8_block_scalar(j->out, j->in, j->pk, j->bias, 0, j->N, p);
}

/* Panels handed out one at a time (decode_parallel), as for fp32 and bf16. */
void decode_int8_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt) {
    LinearJob j = {out, in, bias, pk, N};
#ifdef INT8_X86
    decode_run_panels(&j, nt, cpu_avx512(), pair_task, panel_task_avx512, panel_task_scalar);
#else
    decode_run_panels(&j, nt, 0, NULL, NULL, panel_task_scalar);
#endif
}
