/* ops_flash.c — fused causal attention that never holds T x T scores (ops.h
 * attention_flash_*): FlashAttention (Dao et al. 2022, "FlashAttention: Fast and
 * Memory-Efficient Exact Attention with IO-Awareness", Algorithms 1 and 2; the
 * loop order of FlashAttention-2, Dao 2023, Algorithm 1, rows outer).
 *
 * Forward, per (batch, head, block of FA_BR query rows): walk the key blocks of
 * FA_BC keys up to the diagonal, S = scale Q K^T for the block (gemm), and keep
 * the online softmax of each row: running max m, running sum l, unnormalised output
 * O; a new block with max m' rescales l and O by exp(m - m') before adding
 * exp(S - m') and exp(S - m') V.  At the end O /= l and lse = m + ln l is saved.
 * Backward, per (batch, head): D_i = dO_i . O_i (= rowsum(P * dP), Algorithm 2
 * line 19 in FlashAttention-2's form), then per (query block, key block) the scores
 * are recomputed, P = exp(S - lse), dP = dO V^T, dS = P (dP - D), and
 * dQ += scale dS K, dK += scale dS^T Q, dV += P^T dO (gemm with beta 1).
 * Memory: per thread FA_BR x FA_BC scores and their gradient, FA_BR x hd of output;
 * saved for backward only lse [B, nh, T] (and the output, which the model keeps).
 * Masking is attention_ext_forward's (ops.h AttnOpts): key j <= query i, the same
 * segment or its shared prefix (base/segments.h), and within the sliding window (i - j < window, transformers'
 * sliding_window_overlay); masked probabilities are exactly 0.  A query block
 * [i0, i1) walks only the keys i0 - window + 1 .. i1 - 1, so a window W costs
 * O(T W) instead of O(T^2) (the local layers of Gemma 2/3, Mistral, Phi-3).
 * Soft-capping (Gemma 2 report, sec. 2.2): the scaled score s becomes
 * t = c tanh(s / c) before the mask and the softmax, so lse is over t; backward
 * multiplies dS by dt/ds = 1 - tanh^2(s / c) (attention_ext_backward's dZ).  tanh is
 * ops_tanhf (ops_fastmath.h), whose loops vectorise: libm's tanhf cost 1.67x here.
 * D_i is unchanged: it is rowsum(P * dP), taken after the softmax.
 * GQA dK/dV partials per head are added in head order afterwards, as in
 * attention_backward, so results do not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm.h"
#include "ops.h"
#include "ops_fastmath.h"
#include "ops_internal.h"

/* Query rows and keys per block: 64 x 128 scores (32 KB) stay in L2 while the
 * block's three GEMMs are large enough for the BLAS kernels. */
#define FA_BR 64
#define FA_BC 128

/* The options in effect: attention_forward's defaults when o is NULL. */
static AttnOpts flash_opts(const AttnOpts *o, int hd) {
    AttnOpts r = {1.0f / sqrtf((float)hd), 0.0f, 0};
    if (o) r = *o;
    if (r.softcap < 0) r.softcap = 0;
    if (r.window < 0) r.window = 0;
    return r;
}

/* First key that query i may see (the causal mask alone: 0). */
static inline int flash_key_lo(int i, int window) {
    return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
}

/* The visible columns [*cs, *ce) of query i in the key block [j0, j0 + nc): the
 * window and causal bounds (the segment is checked per key); empty when *ce <= *cs. */
static inline void flash_row_span(int i, int j0, int nc, int window, int *cs, int *ce) {
    int lo = flash_key_lo(i, window) - j0, hi = i + 1 - j0;
    *cs = lo < 0 ? 0 : lo < nc ? lo : nc;
    *ce = hi < *cs ? *cs : hi < nc ? hi : nc;
}

/* The largest of m0 and the scores s[c], c in [cs, ce), whose key the row may see
 * (segment si or its prefix sp, base/segments.h); hidden scores become -inf on the
 * way, so the maximum runs in lanes (ops_lanes_max): the branchy scalar loop was a
 * third of the forward's own time (perf, DPO on SmolLM2). */
static float flash_visible_max(float *s, const int *sg, int si, int sp, int cs, int ce, float m0) {
    for (int c = cs; c < ce; c++) s[c] = sg[c] == si || sg[c] == sp ? s[c] : -INFINITY;
    return ce > cs ? ops_lanes_max(s + cs, ce - cs, m0) : m0;
}

/* sum of s[cs..ce) in double: 16 lanes (two registers of doubles) added in a fixed
 * order at the end, so it vectorises and is the same at any thread count (a single
 * chain of double additions, 4 cycles each, was the other scalar loop). */
static double flash_sum(const float *s, int cs, int ce) {
    double acc[16] = {0};
    int c = cs;
    for (; c + 16 <= ce; c += 16)
        for (int k = 0; k < 16; k++) acc[k] += s[c + k];
    double sum = 0;
    for (; c < ce; c++) sum += s[c];
    for (int k = 0; k < 16; k++) sum += acc[k];
    return sum;
}

void attention_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *seg,
                             int B, int T, int nh, int nkv, int hd, const AttnOpts *opts) {
    AttnOpts opt = flash_opts(opts, hd);
    int group = nh / nkv, window = opt.window;
    int ldq = nh * hd, ldk = nkv * hd;
    float scale = opt.scale, cap = opt.softcap;
    int nblk = (T + FA_BR - 1) / FA_BR;
#pragma omp parallel
    {
        float *S = xaligned_alloc(sizeof(float) * (FA_BR * FA_BC + FA_BR * (size_t)hd));
        float *O = S + FA_BR * FA_BC;
        float m[FA_BR];
        double l[FA_BR];
        /* the last query blocks have the most keys: hand them out first */
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * nh * nblk; task++) {
            int bh = task % (B * nh), ib = nblk - 1 - task / (B * nh);
            int b = bh / nh, h = bh % nh, kh = h / group;
            int i0 = ib * FA_BR, i1 = i0 + FA_BR < T ? i0 + FA_BR : T, nr = i1 - i0;
            const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
            const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
            const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
            const int *sg = seg + (size_t)b * T;
            for (int r = 0; r < nr; r++) m[r] = -INFINITY, l[r] = 0;
            memset(O, 0, sizeof(float) * (size_t)nr * hd);
            /* keys of the block's first row's window .. its last row */
            for (int j0 = flash_key_lo(i0, window); j0 < i1; j0 += FA_BC) {
                int j1 = j0 + FA_BC < i1 ? j0 + FA_BC : i1, nc = j1 - j0;
                gemm(0, 1, nr, nc, hd, scale, Q + (size_t)i0 * ldq, ldq, K + (size_t)j0 * ldk, ldk, 0.0f, S, FA_BC);
                for (int r = 0; r < nr; r++) {
                    int i = i0 + r, si = sg[i], sp = seg_parent(si), cs, ce;
                    float *s = S + (size_t)r * FA_BC;
                    flash_row_span(i, j0, nc, window, &cs, &ce);
                    if (cap > 0)
                        for (int c = cs; c < ce; c++) s[c] = cap * ops_tanhf(s[c] / cap);
                    float mx = flash_visible_max(s, sg + j0, si, sp, cs, ce, m[r]);
                    if (mx == -INFINITY) { /* nothing of this row's segment yet (or none visible here) */
                        memset(s, 0, sizeof(float) * (size_t)nc);
                        continue;
                    }
                    for (int c = 0; c < cs; c++) s[c] = 0.0f;
                    for (int c = cs; c < ce; c++) { /* a loop of its own: it vectorises */
                        float e = ops_expf(s[c] - mx);
                        s[c] = sg[j0 + c] == si || sg[j0 + c] == sp ? e : 0.0f;
                    }
                    for (int c = ce; c < nc; c++) s[c] = 0.0f;
                    double sum = flash_sum(s, cs, ce);
                    float alpha = m[r] == -INFINITY ? 0.0f : ops_expf(m[r] - mx);
                    l[r] = l[r] * alpha + sum;
                    if (alpha != 1.0f)
                        for (int d = 0; d < hd; d++) O[(size_t)r * hd + d] *= alpha;
                    m[r] = mx;
                }
                gemm(0, 0, nr, hd, nc, 1.0f, S, FA_BC, V + (size_t)j0 * ldk, ldk, 1.0f, O, hd);
            }
            for (int r = 0; r < nr; r++) { /* l >= 1: key i itself is always allowed */
                float inv = (float)(1.0 / l[r]);
                float *o = out + ((size_t)b * T + i0 + r) * ldq + (size_t)h * hd;
                for (int d = 0; d < hd; d++) o[d] = O[(size_t)r * hd + d] * inv;
                lse[(size_t)bh * T + i0 + r] = m[r] + (float)log(l[r]);
            }
        }
        free(S);
    }
}

void attention_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                              const float *q, const float *k, const float *v, const int *seg, int B, int T, int nh,
                              int nkv, int hd, const AttnOpts *opts) {
    AttnOpts opt = flash_opts(opts, hd);
    int group = nh / nkv, window = opt.window;
    int ldq = nh * hd, ldk = nkv * hd;
    float scale = opt.scale, cap = opt.softcap;
    int direct = group == 1;
    float *pk = (dk || dv) && !direct ? ops_scratch(SCR_ATT_PARTIAL, (size_t)B * nh * T * hd * 2) : NULL;
#pragma omp parallel
    {
        float *P = xaligned_alloc(sizeof(float) * (2 * FA_BR * FA_BC + (size_t)T));
        float *dS = P + FA_BR * FA_BC, *D = dS + FA_BR * FA_BC;
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * nh; bh++) {
            int b = bh / nh, h = bh % nh, kh = h / group;
            const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
            const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
            const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
            const float *dO = dout + (size_t)b * T * ldq + (size_t)h * hd;
            const float *Ob = out + (size_t)b * T * ldq + (size_t)h * hd;
            const float *L = lse + (size_t)bh * T;
            float *dQ = dq ? dq + (size_t)b * T * ldq + (size_t)h * hd : NULL;
            const int *sg = seg + (size_t)b * T;
            float *PK = NULL, *PV = NULL;
            int ldp = ldk;
            if (direct) {
                PK = dk ? dk + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
                PV = dv ? dv + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
            } else if (pk) {
                PK = pk + (size_t)bh * T * hd * 2;
                PV = PK + (size_t)T * hd;
                ldp = hd;
                memset(PK, 0, sizeof(float) * (size_t)T * hd * 2);
                if (!dk) PK = NULL;
                if (!dv) PV = NULL;
            }
            for (int i = 0; i < T; i++) { /* D_i = dO_i . O_i */
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)dO[(size_t)i * ldq + d] * Ob[(size_t)i * ldq + d];
                D[i] = (float)s;
            }
            for (int i0 = 0; i0 < T; i0 += FA_BR) {
                int i1 = i0 + FA_BR < T ? i0 + FA_BR : T, nr = i1 - i0;
                /* the forward's key blocks, so the recomputed scores are the same bits */
                for (int j0 = flash_key_lo(i0, window); j0 < i1; j0 += FA_BC) {
                    int j1 = j0 + FA_BC < i1 ? j0 + FA_BC : i1, nc = j1 - j0;
                    gemm(0, 1, nr, nc, hd, scale, Q + (size_t)i0 * ldq, ldq, K + (size_t)j0 * ldk, ldk, 0.0f, P, FA_BC);
                    gemm(0, 1, nr, nc, hd, 1.0f, dO + (size_t)i0 * ldq, ldq, V + (size_t)j0 * ldk, ldk, 0.0f, dS,
                         FA_BC);
                    for (int r = 0; r < nr; r++) {
                        int i = i0 + r, si = sg[i], sp = seg_parent(si), cs, ce;
                        float *p = P + (size_t)r * FA_BC, *ds = dS + (size_t)r * FA_BC;
                        flash_row_span(i, j0, nc, window, &cs, &ce);
                        float li = L[i], di = D[i];
                        for (int c = 0; c < cs; c++) p[c] = ds[c] = 0.0f;
                        if (cap > 0)
                            for (int c = cs; c < ce; c++) {
                                float u = ops_tanhf(p[c] / cap); /* dS through t = cap u: * (1 - u^2) */
                                float e = ops_expf(cap * u - li);
                                p[c] = sg[j0 + c] == si || sg[j0 + c] == sp ? e : 0.0f;
                                ds[c] = p[c] * (ds[c] - di) * (1.0f - u * u);
                            }
                        else
                            for (int c = cs; c < ce; c++) {
                                float e = ops_expf(p[c] - li);
                                p[c] = sg[j0 + c] == si || sg[j0 + c] == sp ? e : 0.0f;
                                ds[c] = p[c] * (ds[c] - di);
                            }
                        for (int c = ce; c < nc; c++) p[c] = ds[c] = 0.0f;
                    }
                    if (dQ)
                        gemm(0, 0, nr, hd, nc, scale, dS, FA_BC, K + (size_t)j0 * ldk, ldk, 1.0f, dQ + (size_t)i0 * ldq,
                             ldq);
                    if (PK)
                        gemm(1, 0, nc, hd, nr, scale, dS, FA_BC, Q + (size_t)i0 * ldq, ldq, 1.0f, PK + (size_t)j0 * ldp,
                             ldp);
                    if (PV)
                        gemm(1, 0, nc, hd, nr, 1.0f, P, FA_BC, dO + (size_t)i0 * ldq, ldq, 1.0f, PV + (size_t)j0 * ldp,
                             ldp);
                }
            }
        }
        free(P);
    }
    if (pk) attention_sum_group_partials(dk, dv, pk, B, T, nh, nkv, hd, ldk);
}
