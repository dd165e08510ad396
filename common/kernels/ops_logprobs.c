/* ops_logprobs.c — the fused LM head (ops.h): logits, log-softmax, gather of the
 * target token's log-probability, entropy, and their backward, without ever holding
 * the [N, V] logits tensor.
 *
 * Tiling: rows with a target are gathered into blocks of LP_ROWS = 512 rows.  The
 * vocabulary is split into LP_LANES = 16 contiguous ranges ("lanes"), and each lane
 * walks its range in slices of LP_COLS = 512 columns: one lane's tile of logits is
 * 512 x 512 floats and all lanes together hold at most LP_BYTES = 16 MiB.  The lanes
 * are the OpenMP tasks and each runs its gemm() single-threaded: measured on this
 * 2-core machine this costs ~15% less CPU than letting OpenBLAS split each product
 * between the threads (tests/bench_train_step), and the work per lane is equal.
 * The lanes are handed out one at a time (schedule dynamic), and there are several
 * per thread, so a thread whose core is shared with another process takes fewer
 * lanes instead of holding the others up (8 lanes on 2 threads left a 2:1 slower
 * thread with half of them).
 * Within a lane each row keeps an online log-sum-exp (Milakov & Gimelshein 2018,
 * "Online normalizer calculation for softmax", Alg. 3) in double, together with the
 * running sum of exp(l - m) * l that gives the entropy:
 *   H = -sum p log p = lse - sum_v p_v l_v;
 * the lanes' (max, sums) are then merged by the same rule in lane order.
 * The same pass gives each row's argmax (TRL's mean_token_accuracy) when asked: a
 * tile's row maximum is already computed for the log-sum-exp, and only a tile whose
 * maximum beats the lane's best so far is scanned for its first position; lanes are
 * merged in lane order with a strict >, so the first maximum of the row wins, as in
 * torch.argmax.
 * Backward recomputes each tile's logits (one more 2NVC-FLOP product, a quarter of
 * the head's work, in exchange for not storing N x V floats; logprobs_forward_backward
 * at the end of the file avoids it when dlogp is known before the forward):
 *   dlogits = dlogp * (onehot(t) - exp(l - lse)),  dh += dlogits W,  dW += dlogits^T h;
 * lanes own disjoint rows of dW, and their partial dh are added in lane order.
 * Lanes, slices and rows are the same whatever the thread count, so the results are
 * bit-identical across thread counts.
 * Not for: losses over the log-probs (losses.c). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm.h"
#include "ops.h"
#include "ops_fastmath.h"
#include "ops_internal.h"
#ifdef CHERRY_CUDA
#include "gemm_cuda.h" /* cuda/, on the include path only with make CUDA=1 */
#endif

#define LP_ROWS 512
#define LP_LANES 16
#define LP_BYTES (16u << 20)
#define LP_COLS ((int)(LP_BYTES / sizeof(float) / LP_ROWS / LP_LANES))

/* Indices of the rows that take part (targets >= 0, and for backward dlogp != 0). */
static int lp_select_rows(int *rows, const int *targets, const float *dlogp, int N) {
    int n = 0;
    for (int i = 0; i < N; i++)
        if (targets[i] >= 0 && (!dlogp || dlogp[i] != 0.0f)) rows[n++] = i;
    return n;
}

/* sum_j e_j and sum_j e_j l_j with e_j = exp(l_j - m).  16 float lanes (one AVX-512
 * register) accumulate blocks of 256 columns, which are then added into 16 double
 * lanes, and the lanes are summed in a fixed order at the end: vectorisable, within
 * a few float ulps of a double sum (16 terms per lane per block), and the same bits
 * whatever the thread count. */
#define LP_SUM_LANES 16
#define LP_SUM_BLOCK 256
static void lp_row_sums(const float *l, int n, float m, double *sum_e, double *sum_el) {
    double ae[LP_SUM_LANES] = {0}, ael[LP_SUM_LANES] = {0};
    int j = 0;
    while (j + LP_SUM_LANES <= n) {
        float be[LP_SUM_LANES] = {0}, bel[LP_SUM_LANES] = {0};
        int end = j + LP_SUM_BLOCK <= n ? j + LP_SUM_BLOCK : n - (n - j) % LP_SUM_LANES;
        for (; j < end; j += LP_SUM_LANES)
            for (int k = 0; k < LP_SUM_LANES; k++) {
                float e = ops_expf(l[j + k] - m);
                be[k] += e;
                bel[k] += e * l[j + k];
            }
        for (int k = 0; k < LP_SUM_LANES; k++) {
            ae[k] += be[k];
            ael[k] += bel[k];
        }
    }
    for (; j < n; j++) {
        float e = ops_expf(l[j] - m);
        ae[0] += e;
        ael[0] += (double)e * l[j];
    }
    double se = 0, sel = 0;
    for (int k = 0; k < LP_SUM_LANES; k++) {
        se += ae[k];
        sel += ael[k];
    }
    *sum_e = se;
    *sum_el = sel;
}

/* Copies the selected rows of h into a contiguous [R, C] block. */
static void lp_gather(float *dst, const float *h, const int *rows, int R, int C) {
#pragma omp parallel for schedule(guided)
    for (int r = 0; r < R; r++) memcpy(dst + (size_t)r * C, h + (size_t)rows[r] * C, sizeof(float) * C);
}

/* Whether the lanes run as parallel OpenMP tasks.  gemm() never sends a product to
 * the GPU from inside a parallel region, so when a device would take the lanes'
 * products (make CUDA=1) the lanes run one after the other instead: same lanes, same
 * slices, same merge order. */
static int lp_lanes_parallel(int R, int C) {
#ifdef CHERRY_CUDA
    return !gemm_cuda_wanted(R, LP_COLS, C);
#else
    (void)R, (void)C;
    return 1;
#endif
}

/* Vocabulary range [a, b) of lane l: LP_LANES contiguous, near-equal ranges. */
static void lp_lane_range(int V, int l, int *a, int *b) {
    *a = (int)((long long)V * l / LP_LANES);
    *b = (int)((long long)V * (l + 1) / LP_LANES);
}

/* First j with l[j] == mx (mx is the maximum of l[0..n), so one exists unless l
 * holds only NaN). */
static int lp_first_index(const float *l, int n, float mx) {
    for (int j = 0; j < n; j++)
        if (l[j] == mx) return j;
    return 0;
}

/* One slice's logits t[R, VC] (vocabulary columns v0..v0+VC) folded into a lane's
 * per-row statistics: running max lm, sum exp(l - m) ls, sum exp(l - m) l lsl, the
 * target's logit tl (one lane owns it), and with lbv/lbi the best logit so far. */
static void lp_tile_stats(const float *t, int R, int VC, int v0, const int *rw, const int *targets, double *lm,
                          double *ls, double *lsl, float *lbv, int *lbi, float *tl) {
    for (int r = 0; r < R; r++) {
        const float *l = t + (size_t)r * VC;
        float cm = ops_lanes_max(l, VC, -INFINITY);
        /* slices run in column order: strict > keeps the lane's first maximum */
        if (lbv && cm > lbv[r]) lbv[r] = cm, lbi[r] = v0 + lp_first_index(l, VC, cm);
        double nm = cm > lm[r] ? cm : lm[r];
        /* rescale the running sums to the new maximum */
        double f = lm[r] == -INFINITY ? 0.0 : exp(lm[r] - nm);
        double ss, ssl;
        lp_row_sums(l, VC, (float)nm, &ss, &ssl);
        ls[r] = ls[r] * f + ss;
        lsl[r] = lsl[r] * f + ssl;
        lm[r] = nm;
        int tg = targets[rw[r]];
        if (tg >= v0 && tg < v0 + VC) tl[r] = l[tg - v0];
    }
}

/* The lanes' statistics of R rows merged in lane order (the same online rule) into
 * lse, logp, entropy and argmax of each row n = rw[r]. */
static void lp_merge(int R, const double *m, const double *s, const double *sl, const float *bv, const int *bi,
                     const float *tl, const int *rw, float *lse, float *logp, float *entropy, int *argmax) {
    for (int r = 0; r < R; r++) {
        double M = -INFINITY, S = 0, SL = 0;
        for (int ln = 0; ln < LP_LANES; ln++) M = m[(size_t)ln * R + r] > M ? m[(size_t)ln * R + r] : M;
        for (int ln = 0; ln < LP_LANES; ln++) {
            double lm = m[(size_t)ln * R + r];
            if (lm == -INFINITY) continue; /* empty lane */
            double f = exp(lm - M);
            S += s[(size_t)ln * R + r] * f;
            SL += sl[(size_t)ln * R + r] * f;
        }
        int n = rw[r];
        double lsum = M + log(S);
        lse[n] = (float)lsum;
        logp[n] = (float)(tl[r] - lsum);
        if (entropy) entropy[n] = (float)(lsum - SL / S);
        if (argmax) {
            float B = -INFINITY;
            int A = 0; /* no logit above -inf: column 0 */
            for (int ln = 0; ln < LP_LANES; ln++)
                if (bv[(size_t)ln * R + r] > B) B = bv[(size_t)ln * R + r], A = bi[(size_t)ln * R + r];
            argmax[n] = A;
        }
    }
}

/* A slice's logits t[R, VC] turned into dlogits in place:
 *   dlogits = dlogp[n] * (onehot(t) - exp(l - lse[n])). */
static void lp_tile_dlogits(float *t, int R, int VC, int v0, const int *rw, const int *targets, const float *dlogp,
                            const float *lse) {
    for (int r = 0; r < R; r++) {
        int n = rw[r];
        float *l = t + (size_t)r * VC;
        float g = dlogp[n], ls = lse[n];
        if (g == 0.0f) { /* a row the loss ignores (the one-pass version keeps its logits) */
            memset(l, 0, sizeof(float) * VC);
            continue;
        }
        for (int j = 0; j < VC; j++) l[j] = -g * ops_expf(l[j] - ls);
        int tg = targets[n];
        if (tg >= v0 && tg < v0 + VC) l[tg - v0] += g;
    }
}

/* dh[rw[r]] += the lanes' partial sums, in lane order. */
static void lp_add_dh(float *dh, const float *dh_all, const int *rw, int R, int rmax, int C) {
#pragma omp parallel for schedule(guided)
    for (int r = 0; r < R; r++) {
        float *d = dh + (size_t)rw[r] * C;
        for (int ln = 0; ln < LP_LANES; ln++) {
            const float *p = dh_all + ((size_t)ln * rmax + r) * C;
            for (int c = 0; c < C; c++) d[c] += p[c];
        }
    }
}

/* The rows with a target (*rows, xmalloc'd; returns their count); the outputs of the
 * others are 0 (argmax -1).  lse may be NULL. */
static int lp_begin(int **rows, float *logp, float *entropy, int *argmax, float *lse, const int *targets, int N) {
    *rows = xmalloc(sizeof(int) * (N > 0 ? N : 1));
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) {
            logp[n] = 0.0f;
            if (entropy) entropy[n] = 0.0f;
            if (argmax) argmax[n] = -1;
            if (lse) lse[n] = 0.0f;
        }
    }
    return lp_select_rows(*rows, targets, NULL, N);
}

void logprobs_forward(float *logp, float *entropy, float *lse, int *argmax, const float *h, const float *w,
                      const int *targets, int N, int C, int V) {
    int *rows, nsel = lp_begin(&rows, logp, entropy, argmax, lse, targets, N);
    /* scratch sized to what this call needs: small calls stay cheap */
    int rmax = nsel < LP_ROWS ? nsel : LP_ROWS, cmax = V < LP_COLS ? V : LP_COLS;
    if (rmax < 1) rmax = 1;
    float *hb = ops_scratch(SCR_LP_H, (size_t)rmax * C);
    float *lg_all = ops_scratch(SCR_LP_LOGITS, (size_t)LP_LANES * rmax * cmax);
    /* per (lane, row): running max, sum exp(l - m), sum exp(l - m) l */
    double *m = xmalloc(sizeof(double) * LP_LANES * LP_ROWS), *s = xmalloc(sizeof(double) * LP_LANES * LP_ROWS);
    double *sl = xmalloc(sizeof(double) * LP_LANES * LP_ROWS);
    float *tl = xmalloc(sizeof(float) * LP_ROWS);
    /* per (lane, row), with argmax: the best logit so far and its column */
    float *bv = argmax ? xmalloc(sizeof(float) * LP_LANES * LP_ROWS) : NULL;
    int *bi = argmax ? xmalloc(sizeof(int) * LP_LANES * LP_ROWS) : NULL;
    for (int r0 = 0; r0 < nsel; r0 += LP_ROWS) {
        int R = nsel - r0 < LP_ROWS ? nsel - r0 : LP_ROWS;
        lp_gather(hb, h, rows + r0, R, C);
        int lanes_par = lp_lanes_parallel(R, C);
        for (int i = 0; i < LP_LANES * R; i++) m[i] = -INFINITY, s[i] = 0, sl[i] = 0;
        if (argmax)
            for (int i = 0; i < LP_LANES * R; i++) bv[i] = -INFINITY, bi[i] = -1;
        for (int r = 0; r < R; r++) tl[r] = 0;
#pragma omp parallel for schedule(dynamic, 1) if (lanes_par)
        for (int ln = 0; ln < LP_LANES; ln++) {
            int a, b;
            lp_lane_range(V, ln, &a, &b);
            float *lg = lg_all + (size_t)ln * rmax * cmax;
            double *lm = m + (size_t)ln * R, *ls = s + (size_t)ln * R, *lsl = sl + (size_t)ln * R;
            float *lbv = argmax ? bv + (size_t)ln * R : NULL;
            int *lbi = argmax ? bi + (size_t)ln * R : NULL;
            for (int v0 = a; v0 < b; v0 += LP_COLS) {
                int VC = b - v0 < LP_COLS ? b - v0 : LP_COLS;
                /* inside the parallel region: runs single-threaded */
                gemm(0, 1, R, VC, C, 1.0f, hb, C, w + (size_t)v0 * C, C, 0.0f, lg, VC);
                lp_tile_stats(lg, R, VC, v0, rows + r0, targets, lm, ls, lsl, lbv, lbi, tl);
            }
        }
        lp_merge(R, m, s, sl, bv, bi, tl, rows + r0, lse, logp, entropy, argmax);
    }
    free(bi);
    free(bv);
    free(tl);
    free(sl);
    free(s);
    free(m);
    free(rows);
}

void logprobs_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w, const int *targets,
                       const float *lse, int N, int C, int V, float dw_beta) {
    int *rows = xmalloc(sizeof(int) * (N > 0 ? N : 1));
    int nsel = lp_select_rows(rows, targets, dlogp, N);
    if (nsel == 0 || (!dh && !dw)) {
        if (dw && dw_beta == 0.0f) memset(dw, 0, sizeof(float) * (size_t)V * C);
        free(rows);
        return;
    }
    int rmax = nsel < LP_ROWS ? nsel : LP_ROWS, cmax = V < LP_COLS ? V : LP_COLS;
    float *hb = ops_scratch(SCR_LP_H, (size_t)rmax * C);
    /* per-lane partial dh: the lanes' sums are added in lane order afterwards */
    float *dh_all = dh ? ops_scratch(SCR_LP_DH, (size_t)LP_LANES * rmax * C) : NULL;
    float *lg_all = ops_scratch(SCR_LP_LOGITS, (size_t)LP_LANES * rmax * cmax);
    for (int r0 = 0; r0 < nsel; r0 += LP_ROWS) {
        int R = nsel - r0 < LP_ROWS ? nsel - r0 : LP_ROWS;
        lp_gather(hb, h, rows + r0, R, C);
        int lanes_par = lp_lanes_parallel(R, C);
#pragma omp parallel for schedule(dynamic, 1) if (lanes_par)
        for (int ln = 0; ln < LP_LANES; ln++) {
            int a, b;
            lp_lane_range(V, ln, &a, &b);
            float *lg = lg_all + (size_t)ln * rmax * cmax;
            float *dhb = dh ? dh_all + (size_t)ln * rmax * C : NULL;
            if (dhb) memset(dhb, 0, sizeof(float) * (size_t)R * C);
            for (int v0 = a; v0 < b; v0 += LP_COLS) {
                int VC = b - v0 < LP_COLS ? b - v0 : LP_COLS;
                gemm(0, 1, R, VC, C, 1.0f, hb, C, w + (size_t)v0 * C, C, 0.0f, lg, VC);
                lp_tile_dlogits(lg, R, VC, v0, rows + r0, targets, dlogp, lse);
                if (dhb) gemm(0, 0, R, C, VC, 1.0f, lg, VC, w + (size_t)v0 * C, C, 1.0f, dhb, C);
                /* lanes own disjoint rows of dw, and together all of them */
                if (dw) gemm(1, 0, VC, C, R, 1.0f, lg, VC, hb, C, dw_beta, dw + (size_t)v0 * C, C);
            }
        }
        if (dh) lp_add_dh(dh, dh_all, rows + r0, R, rmax, C);
        dw_beta = 1.0f; /* the next blocks add to what this one wrote */
    }
    free(rows);
}

void logits_forward(float *out, const float *h, const float *w, int N, int C, int V) {
    gemm(0, 1, N, V, C, 1.0f, h, C, w, C, 0.0f, out, V);
}

/* ---- forward and backward in one pass (logprobs_forward_backward) -------------------
 * When d loss / d logp is known before the forward (the SFT loss: -1/tokens for every
 * row with a target, whatever the log-probs), the backward needs no second product
 * over the vocabulary: a block of LPF rows keeps its logits for the whole vocabulary
 * (LPF x V floats, at most LPF_BYTES: 256 rows at most, whatever B x T), the lanes' statistics
 * are merged into each row's log-sum-exp, and the same logits become dlogits in place
 * for the dh and dw products.  Three products of 2 N V C FLOP instead of four (the
 * Liger kernel's fused linear cross-entropy does the same in row chunks).  The dw
 * product then sums LPF rows at a time instead of LP_ROWS, so its bits differ from
 * logprobs_backward's; blocks, lanes and slices depend on the shapes only, so they
 * are the same at any thread count. */
#define LPF_BYTES ((size_t)64 << 20)
#define LPF_MAX 256

static int lpf_rows(int V) {
    size_t r = LPF_BYTES / ((size_t)V * sizeof(float));
    if (r > LPF_MAX) r = LPF_MAX;
    if (r >= 16) r = r / 16 * 16;
    return r < 1 ? 1 : (int)r;
}

/* Where the block that starts at rows[r0] ends (an index into rows): F rows on without
 * groups (group_len 0); with groups, as many whole groups (runs of rows with the same
 * row / group_len) as fit in F rows, which is none (r0 itself) when the first is
 * longer than F (lpf_run then runs the two passes over that group). */
static int lpf_block_end(const int *rows, int nsel, int r0, int F, int group_len) {
    if (!group_len) return nsel - r0 < F ? nsel : r0 + F;
    int end = r0;
    while (end < nsel) {
        int g = rows[end] / group_len, e = end;
        while (e < nsel && rows[e] / group_len == g) e++;
        if (e - r0 > F) break;
        end = e;
    }
    return end;
}

/* logprobs_forward_backward, and with fn its grouped form: after each block's
 * log-probs are merged, fn fills dlogp for the groups that the block completes (and
 * any before them without a target row), then the block's dlogits are formed.  A
 * group longer than a block gets the two passes (logprobs_forward, fn,
 * logprobs_backward) over its own rows, between the blocks of the others. */
static void lpf_run(float *logp, float *entropy, int *argmax, float *dh, float *dw, float *dlogp_out,
                    const float *dlogp, LogpGroupFn fn, void *ctx, int group_len, const float *h, const float *w,
                    const int *targets, int N, int C, int V, float dw_beta) {
    int *rows, nsel = lp_begin(&rows, logp, entropy, argmax, NULL, targets, N);
    int F = lpf_rows(V), rmax = nsel < F ? nsel : F, g_done = 0, n_groups = fn ? N / group_len : 0;
    if (rmax < 1) rmax = 1;
    if (fn) dlogp = dlogp_out;
    float *hb = ops_scratch(SCR_LP_H, (size_t)rmax * C);
    /* the block's logits, slice after slice: slice [v0, v0 + VC) at lg + R v0, [R, VC] */
    float *lg = ops_scratch(SCR_LP_LOGITS, (size_t)rmax * V); /* kept between calls, as the two passes' */
    float *dh_all = dh ? ops_scratch(SCR_LP_DH, (size_t)LP_LANES * rmax * C) : NULL;
    double *m = xmalloc(sizeof(double) * LP_LANES * rmax), *s = xmalloc(sizeof(double) * LP_LANES * rmax);
    double *sl = xmalloc(sizeof(double) * LP_LANES * rmax);
    float *tl = xmalloc(sizeof(float) * rmax), *lse = xmalloc(sizeof(float) * (N > 0 ? N : 1)); /* by row n */
    float *bv = argmax ? xmalloc(sizeof(float) * LP_LANES * rmax) : NULL;
    int *bi = argmax ? xmalloc(sizeof(int) * LP_LANES * rmax) : NULL;
    for (int r0 = 0, r1; r0 < nsel; r0 = r1) {
        r1 = lpf_block_end(rows, nsel, r0, F, fn ? group_len : 0);
        if (r1 == r0) { /* a group with more target rows than a block: the two passes over its rows alone */
            int g = rows[r0] / group_len;
            while (r1 < nsel && rows[r1] / group_len == g) r1++;
            size_t o = (size_t)g * group_len;
            logprobs_forward(logp + o, entropy ? entropy + o : NULL, lse + o, argmax ? argmax + o : NULL, h + o * C, w,
                             targets + o, group_len, C, V);
            fn(ctx, g_done, g + 1, logp, dlogp_out);
            g_done = g + 1;
            if (dh || dw) {
                float *dhg = dh ? dh + o * C : xcalloc((size_t)group_len * C, sizeof(float));
                logprobs_backward(dhg, dw, dlogp + o, h + o * C, w, targets + o, lse + o, group_len, C, V, dw_beta);
                if (!dh) free(dhg);
                dw_beta = 1.0f;
            }
            /* the two passes use the same scratch slots, and may have grown them */
            hb = ops_scratch(SCR_LP_H, (size_t)rmax * C);
            lg = ops_scratch(SCR_LP_LOGITS, (size_t)rmax * V);
            if (dh) dh_all = ops_scratch(SCR_LP_DH, (size_t)LP_LANES * rmax * C);
            continue;
        }
        int R = r1 - r0;
        const int *rw = rows + r0;
        lp_gather(hb, h, rw, R, C);
        int lanes_par = lp_lanes_parallel(R, C);
        for (int i = 0; i < LP_LANES * R; i++) m[i] = -INFINITY, s[i] = 0, sl[i] = 0;
        if (argmax)
            for (int i = 0; i < LP_LANES * R; i++) bv[i] = -INFINITY, bi[i] = -1;
        for (int r = 0; r < R; r++) tl[r] = 0;
#pragma omp parallel for schedule(dynamic, 1) if (lanes_par) /* logits and lane statistics, as logprobs_forward */
        for (int ln = 0; ln < LP_LANES; ln++) {
            int a, b;
            lp_lane_range(V, ln, &a, &b);
            double *lm = m + (size_t)ln * R, *ls = s + (size_t)ln * R, *lsl = sl + (size_t)ln * R;
            float *lbv = argmax ? bv + (size_t)ln * R : NULL;
            int *lbi = argmax ? bi + (size_t)ln * R : NULL;
            for (int v0 = a; v0 < b; v0 += LP_COLS) {
                int VC = b - v0 < LP_COLS ? b - v0 : LP_COLS;
                float *t = lg + (size_t)R * v0;
                gemm(0, 1, R, VC, C, 1.0f, hb, C, w + (size_t)v0 * C, C, 0.0f, t, VC);
                lp_tile_stats(t, R, VC, v0, rw, targets, lm, ls, lsl, lbv, lbi, tl);
            }
        }
        lp_merge(R, m, s, sl, bv, bi, tl, rw, lse, logp, entropy, argmax);
        if (fn) { /* the block ends with a whole group: its rows' log-probs are final */
            int g_end = rw[R - 1] / group_len + 1;
            fn(ctx, g_done, g_end, logp, dlogp_out);
            g_done = g_end;
        }
        if (!dh && !dw) continue;
#pragma omp parallel for schedule(dynamic, 1) if (lanes_par) /* dlogits in place, products as logprobs_backward */
        for (int ln = 0; ln < LP_LANES; ln++) {
            int a, b;
            lp_lane_range(V, ln, &a, &b);
            float *dhb = dh ? dh_all + (size_t)ln * rmax * C : NULL;
            if (dhb) memset(dhb, 0, sizeof(float) * (size_t)R * C);
            for (int v0 = a; v0 < b; v0 += LP_COLS) {
                int VC = b - v0 < LP_COLS ? b - v0 : LP_COLS;
                float *t = lg + (size_t)R * v0;
                lp_tile_dlogits(t, R, VC, v0, rw, targets, dlogp, lse);
                if (dhb) gemm(0, 0, R, C, VC, 1.0f, t, VC, w + (size_t)v0 * C, C, 1.0f, dhb, C);
                if (dw) gemm(1, 0, VC, C, R, 1.0f, t, VC, hb, C, dw_beta, dw + (size_t)v0 * C, C);
            }
        }
        if (dh) lp_add_dh(dh, dh_all, rw, R, rmax, C);
        dw_beta = 1.0f;
    }
    if (dw && dw_beta == 0.0f) memset(dw, 0, sizeof(float) * (size_t)V * C); /* no block wrote it */
    if (fn && g_done < n_groups) fn(ctx, g_done, n_groups, logp, dlogp_out); /* groups without a target row */
    free(bi);
    free(bv);
    free(lse);
    free(tl);
    free(sl);
    free(s);
    free(m);
    free(rows);
}

void logprobs_forward_backward(float *logp, float *entropy, int *argmax, float *dh, float *dw, const float *dlogp,
                               const float *h, const float *w, const int *targets, int N, int C, int V, float dw_beta) {
    lpf_run(logp, entropy, argmax, dh, dw, NULL, dlogp, NULL, NULL, 0, h, w, targets, N, C, V, dw_beta);
}

void logprobs_forward_backward_grouped(float *logp, float *entropy, int *argmax, float *dh, float *dw, float *dlogp,
                                       LogpGroupFn fn, void *ctx, int group_len, const float *h, const float *w,
                                       const int *targets, int N, int C, int V, float dw_beta) {
    if (group_len < 1 || N % group_len)
        die_internal("logprobs_forward_backward_grouped: %d rows in groups of %d", N, group_len);
    lpf_run(logp, entropy, argmax, dh, dw, dlogp, NULL, fn, ctx, group_len, h, w, targets, N, C, V, dw_beta);
}
