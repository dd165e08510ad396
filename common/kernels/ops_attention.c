/* ops_attention.c — rotary position embedding and causal self-attention (ops.h).
 *
 * Attention is computed per (batch, head) with gemm(): S = Q K^T / sqrt(hd), a masked
 * softmax per row, O = P V (Vaswani et al. 2017, eq. 1).  The (batch, head) pairs are
 * the OpenMP tasks; gemm() called inside a parallel region runs single-threaded in
 * OpenBLAS's OpenMP build, so the two levels do not oversubscribe the cores.
 * Causality is exploited by row blocks: block [i0,i1) only multiplies against keys
 * [0,i1), which skips roughly half of the T x T work.
 * Not for: the projections around attention (model.c uses linear_*). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm.h"
#include "ops.h"
#include "ops_fastmath.h"
#include "ops_internal.h"

/* ---- rotary position embedding ----------------------------------------------------
 * Su et al. 2021 (RoFormer), eq. 34, in transformers' rotate_half layout (the two
 * halves of a head are the pair coordinates, not interleaved neighbours).
 * The angles are computed in float32 exactly as LlamaRotaryEmbedding does
 * (inv_freq = 1 / theta^(arange(0,hd,2)/hd) in f32, angle = f32(pos) * inv_freq in
 * f32, then cos/sin of that f32): at pos ~ 1000 a double-precision angle would differ
 * from PyTorch's by ~1e-4 rad and show up in the oracle comparison. */
static void rope_apply(float *x, const int *pos, int N, int nh, int hd, float theta, float sign) {
    int half = hd / 2;
    float *inv = xmalloc(sizeof(float) * (half > 0 ? half : 1));
    for (int i = 0; i < half; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
#pragma omp parallel
    {
        float *cs = xmalloc(sizeof(float) * 2 * (half > 0 ? half : 1));
        float *sn = cs + half;
#pragma omp for schedule(guided)
        for (int n = 0; n < N; n++) {
            float p = (float)pos[n];
            for (int i = 0; i < half; i++) {
                float a = p * inv[i];
                cs[i] = cosf(a);
                sn[i] = sign * sinf(a);
            }
            for (int h = 0; h < nh; h++) {
                float *v = x + ((size_t)n * nh + h) * hd;
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half];
                    v[i] = x1 * cs[i] - x2 * sn[i];
                    v[i + half] = x2 * cs[i] + x1 * sn[i];
                }
            }
        }
        free(cs);
    }
    free(inv);
}

void rope_forward(float *x, const int *pos, int N, int nh, int hd, float theta) {
    rope_apply(x, pos, N, nh, hd, theta, 1.0f);
}

/* The rotation is orthogonal, so its transpose is the rotation by -angle. */
void rope_backward(float *dx, const int *pos, int N, int nh, int hd, float theta) {
    rope_apply(dx, pos, N, nh, hd, theta, -1.0f);
}

/* ---- attention ----------------------------------------------------------------------- */

/* Rows per causal block: 64 keeps each block's GEMMs big enough for the BLAS kernels
 * while the skipped upper triangle is within 64/T of the ideal half. */
#define ATT_ROW_BLOCK 64

/* Masked softmax of row i of S in place (only j <= i need to have been computed): entries with
 * j > i or another segment become exactly 0.  Row sums in double. */
/* sum of x[0..n) and dot of x, y: 16 float lanes (vectorised), lanes added in
 * double in a fixed order.  A lane holds at most T/16 terms, so the float partial
 * sums lose no more than ~T/16 ulps (~4e-6 at T = 1024, typically 1e-7). */
static double att_sum(const float *x, int n) {
    float a[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) a[k] += x[j + k];
    for (; j < n; j++) a[0] += x[j];
    double r = 0;
    for (int k = 0; k < 16; k++) r += a[k];
    return r;
}

static double att_dot(const float *x, const float *y, int n) {
    float a[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) a[k] += x[j + k] * y[j + k];
    for (; j < n; j++) a[0] += x[j] * y[j];
    double r = 0;
    for (int k = 0; k < 16; k++) r += a[k];
    return r;
}

static void att_softmax_row(float *s, int i, int T, const int *seg) {
    int si = seg[i], sp = seg_parent(si);
    float mx = -INFINITY;
    for (int j = 0; j <= i; j++) {
        float v = seg[j] == si || seg[j] == sp ? s[j] : -INFINITY;
        mx = v > mx ? v : mx;
    }
    for (int j = 0; j <= i; j++) {
        float e = ops_expf(s[j] - mx);
        s[j] = seg[j] == si || seg[j] == sp ? e : 0.0f;
    }
    double sum = att_sum(s, i + 1);
    /* j == i is always allowed, so sum >= 1 */
    float inv = (float)(1.0 / sum);
    for (int j = 0; j <= i; j++) s[j] *= inv;
    for (int j = i + 1; j < T; j++) s[j] = 0.0f;
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, const int *seg, int B,
                       int T, int nh, int nkv, int hd) {
    int group = nh / nkv;
    int ldq = nh * hd, ldk = nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * nh; bh++) {
        int b = bh / nh, h = bh % nh, kh = h / group;
        const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
        const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
        const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
        float *O = out + (size_t)b * T * ldq + (size_t)h * hd;
        float *A = att + (size_t)bh * T * T;
        const int *sg = seg + (size_t)b * T;
        for (int i0 = 0; i0 < T; i0 += ATT_ROW_BLOCK) {
            int i1 = i0 + ATT_ROW_BLOCK < T ? i0 + ATT_ROW_BLOCK : T;
            float *Ab = A + (size_t)i0 * T;
            /* S[i0:i1, 0:i1] = scale * Q[i0:i1] K[0:i1]^T */
            gemm(0, 1, i1 - i0, i1, hd, scale, Q + (size_t)i0 * ldq, ldq, K, ldk, 0.0f, Ab, T);
            for (int i = i0; i < i1; i++) att_softmax_row(A + (size_t)i * T, i, T, sg);
            /* O[i0:i1] = P[i0:i1, 0:i1] V[0:i1] */
            gemm(0, 0, i1 - i0, hd, i1, 1.0f, Ab, T, V, ldk, 0.0f, O + (size_t)i0 * ldq, ldq);
        }
    }
}

/* Backward per (b,h), with P = att and dO:
 *   dP = dO V^T,  dS = P * (dP - rowsum(P * dP))   (softmax Jacobian),
 *   dQ += scale dS K,  dK += scale dS^T Q,  dV += P^T dO.
 * dK and dV are shared by the heads of a GQA group, so each head writes its own
 * partial into scratch and the partials are added to dk/dv in head order afterwards:
 * the sum is the same whatever thread computed which head.  Without grouping
 * (nh == nkv, GPT-2) each kv head has one writer, which accumulates in place. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                        const float *k, const float *v, const int *seg, int B, int T, int nh, int nkv, int hd) {
    int group = nh / nkv;
    int ldq = nh * hd, ldk = nkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    int nthr = omp_get_max_threads();
    float *ds_all = ops_scratch(SCR_ATT_DS, (size_t)nthr * T * T);
    /* per-head partial dK, dV: [B, nh, T, hd] each (only with grouping) */
    int direct = group == 1;
    float *pk = (dk || dv) && !direct ? ops_scratch(SCR_ATT_PARTIAL, (size_t)B * nh * T * hd * 2) : NULL;
    (void)seg;
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * nh; bh++) {
        int b = bh / nh, h = bh % nh, kh = h / group;
        float *dS = ds_all + (size_t)omp_get_thread_num() * T * T;
        const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
        const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
        const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
        const float *dO = dout + (size_t)b * T * ldq + (size_t)h * hd;
        const float *P = att + (size_t)bh * T * T;
        /* dS, row block by row block (rows i need columns j <= i only) */
        for (int i0 = 0; i0 < T; i0 += ATT_ROW_BLOCK) {
            int i1 = i0 + ATT_ROW_BLOCK < T ? i0 + ATT_ROW_BLOCK : T;
            gemm(0, 1, i1 - i0, i1, hd, 1.0f, dO + (size_t)i0 * ldq, ldq, V, ldk, 0.0f, dS + (size_t)i0 * T, T);
            for (int i = i0; i < i1; i++) {
                float *d = dS + (size_t)i * T;
                const float *p = P + (size_t)i * T;
                float fd = (float)att_dot(p, d, i + 1);
                for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - fd);
                for (int j = i + 1; j < i1; j++) d[j] = 0.0f;
                for (int j = i1; j < T; j++) d[j] = 0.0f;
            }
            /* dQ[i0:i1] += scale dS[i0:i1, 0:i1] K[0:i1] */
            if (dq)
                gemm(0, 0, i1 - i0, hd, i1, scale, dS + (size_t)i0 * T, T, K, ldk, 1.0f,
                     dq + (size_t)b * T * ldq + (size_t)h * hd + (size_t)i0 * ldq, ldq);
        }
        if (dk || dv) {
            /* destination and beta: the kv head itself (+=) or this head's partial (=) */
            float *PK, *PV;
            int ldp;
            float beta;
            if (direct) {
                PK = dk ? dk + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
                PV = dv ? dv + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
                ldp = ldk;
                beta = 1.0f;
            } else {
                PK = pk + (size_t)bh * T * hd * 2;
                PV = PK + (size_t)T * hd;
                ldp = hd;
                beta = 0.0f;
            }
            /* column block [j0,j1) of dS^T and P^T only has rows i >= j0 */
            for (int j0 = 0; j0 < T; j0 += ATT_ROW_BLOCK) {
                int j1 = j0 + ATT_ROW_BLOCK < T ? j0 + ATT_ROW_BLOCK : T;
                /* dK[j0:j1] = scale dS[j0:T, j0:j1]^T Q[j0:T] */
                if (PK)
                    gemm(1, 0, j1 - j0, hd, T - j0, scale, dS + (size_t)j0 * T + j0, T, Q + (size_t)j0 * ldq, ldq, beta,
                         PK + (size_t)j0 * ldp, ldp);
                /* dV[j0:j1] = P[j0:T, j0:j1]^T dO[j0:T] */
                if (PV)
                    gemm(1, 0, j1 - j0, hd, T - j0, 1.0f, P + (size_t)j0 * T + j0, T, dO + (size_t)j0 * ldq, ldq, beta,
                         PV + (size_t)j0 * ldp, ldp);
            }
        }
    }
    if (pk) attention_sum_group_partials(dk, dv, pk, B, T, nh, nkv, hd, ldk);
}

void attention_sum_group_partials(float *dk, float *dv, const float *pk, int B, int T, int nh, int nkv, int hd,
                                  int ldk) {
    int group = nh / nkv;
#pragma omp parallel for schedule(guided)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        for (int kh = 0; kh < nkv; kh++) {
            float *DK = dk ? dk + (size_t)bt * ldk + (size_t)kh * hd : NULL;
            float *DV = dv ? dv + (size_t)bt * ldk + (size_t)kh * hd : NULL;
            for (int g = 0; g < group; g++) {
                int h = kh * group + g;
                const float *PK = pk + (size_t)(b * nh + h) * T * hd * 2 + (size_t)t * hd;
                const float *PV = PK + (size_t)T * hd;
                if (DK)
                    for (int d = 0; d < hd; d++) DK[d] += PK[d];
                if (DV)
                    for (int d = 0; d < hd; d++) DV[d] += PV[d];
            }
        }
    }
}
