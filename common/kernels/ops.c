/* ops.c — the pointwise and per-row layers of ops.h: embeddings, layernorm,
 * rmsnorm, linear, GELU, SwiGLU, residual.  Rotary embeddings and attention live in
 * ops_attention.c, the fused LM head in ops_logprobs.c.
 *
 * Determinism: every loop that reduces over rows into a parameter gradient (dwte,
 * dwpe, norm weights, biases) is parallelised over COLUMNS, and each column sums its
 * rows in ascending order, so the result does not depend on the thread count.  Loops
 * over independent rows or elements are plain `omp parallel for`.  Loops use
 * schedule(guided) (large chunks first, then smaller ones to whichever thread is
 * free): a thread whose core is shared with another process then takes less of the
 * loop instead of holding the others at the barrier; no result depends on which
 * thread ran which iteration.
 * Not for: model wiring (model.c) or losses (losses.c). */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm.h"
#include "ops_fastmath.h"
#include "ops_internal.h"

/* Columns handled by one task in the column-parallel reductions: 64 floats = four
 * cache lines per row visit, enough to keep the row-strided walk prefetch friendly. */
#define OPS_COL_BLOCK 64

/* ---- scratch (ops_internal.h) ------------------------------------------------------ */
static _Thread_local float *scratch_buf[SCR_COUNT];
static _Thread_local size_t scratch_cap[SCR_COUNT];

float *ops_scratch(int slot, size_t nfloats) {
    if (nfloats > scratch_cap[slot]) {
        free(scratch_buf[slot]);
        /* 64-byte aligned for the BLAS kernels; +25% so slowly growing shapes do not
         * reallocate every call */
        size_t cap = nfloats + nfloats / 4;
        scratch_buf[slot] = xaligned_alloc(cap * sizeof(float));
        scratch_cap[slot] = cap;
    }
    return scratch_buf[slot];
}

/* ---- token embedding ---------------------------------------------------------- */

/* out [N,C], tokens [N], wte [V,C] */
void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
#pragma omp parallel for schedule(guided)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

/* Scatter-add of rows.  Two rows may share a token, so rows cannot be split among
 * threads; columns can.  Each column adds its rows in order n = 0..N-1. */
static void scatter_rows_add(float *dtable, const float *dout, const int *idx, int N, int C) {
    int nblk = (C + OPS_COL_BLOCK - 1) / OPS_COL_BLOCK;
#pragma omp parallel for schedule(guided)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * OPS_COL_BLOCK, c1 = c0 + OPS_COL_BLOCK < C ? c0 + OPS_COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *d = dtable + (size_t)idx[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    scatter_rows_add(dwte, dout, tokens, N, C);
}

/* ---- learned positions -------------------------------------------------------- */

void position_forward(float *out, const int *pos, const float *wpe, int N, int C) {
#pragma omp parallel for schedule(guided)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        const float *p = wpe + (size_t)pos[n] * C;
        for (int c = 0; c < C; c++) o[c] += p[c];
    }
}

void position_backward(float *dwpe, const float *dout, const int *pos, int N, int C) {
    scatter_rows_add(dwpe, dout, pos, N, C);
}

/* ---- layernorm ------------------------------------------------------------------
 * Ba, Kiros, Hinton 2016, eq. 4 with the biased variance, as torch.nn.LayerNorm.
 * Statistics in double: C is 768..4096 and single-precision sums of squares would
 * cost digits we need for the 1e-4 oracle comparison. */

/* The per-row sums of layernorm and rmsnorm run in LN_LANES interleaved double lanes
 * (column c into lane c % LN_LANES, the lanes added in order): one serial chain of
 * double additions per row made them latency-bound (~3% of a SmolLM2 DPO step for
 * rmsnorm).  The order depends on C only, so the results are the same at any thread
 * count. */
#define LN_LANES 16

static double ln_sum(const float *x, int C) {
    double acc[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= C; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) acc[k] += x[c + k];
    for (int k = 0; c < C; c++, k++) acc[k] += x[c];
    double s = 0;
    for (int k = 0; k < LN_LANES; k++) s += acc[k];
    return s;
}

/* sum_c (x[c] - m)^2 in double (m = 0: rmsnorm's sum of squares) */
static double ln_sum_sq_dev(const float *x, double m, int C) {
    double acc[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= C; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) {
            double d = x[c + k] - m;
            acc[k] += d * d;
        }
    for (int k = 0; c < C; c++, k++) {
        double d = x[c] - m;
        acc[k] += d * d;
    }
    double s = 0;
    for (int k = 0; k < LN_LANES; k++) s += acc[k];
    return s;
}

/* *sg = sum_c g[c], *sgx = sum_c g[c] xhat[c] in double, g = dy w and xhat = (x - m) rs
 * rounded as floats */
static void ln_sums_g(const float *dy, const float *w, const float *x, float m, float rs, int C, double *sg,
                      double *sgx) {
    double a[LN_LANES] = {0}, b[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= C; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) {
            float g = dy[c + k] * w[c + k];
            a[k] += g;
            b[k] += (double)g * ((x[c + k] - m) * rs);
        }
    for (int k = 0; c < C; c++, k++) {
        float g = dy[c] * w[c];
        a[k] += g;
        b[k] += (double)g * ((x[c] - m) * rs);
    }
    double s = 0, t = 0;
    for (int k = 0; k < LN_LANES; k++) s += a[k], t += b[k];
    *sg = s, *sgx = t;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                       int C, float eps) {
#pragma omp parallel for schedule(guided)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double m = ln_sum(x, C) / C;
        double v = ln_sum_sq_dev(x, m, C) / C;
        float rs = (float)(1.0 / sqrt(v + eps));
        float mf = (float)m;
        for (int c = 0; c < C; c++) o[c] = (x[c] - mf) * rs * w[c] + b[c];
        mean[n] = mf;
        rstd[n] = rs;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * w:
 *   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),
 *   dw = sum_n dout * xhat,  db = sum_n dout. */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C) {
    if (dinp) {
#pragma omp parallel for schedule(guided)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], rs = rstd[n];
            double sg, sgx;
            ln_sums_g(dy, w, x, m, rs, C, &sg, &sgx);
            float mg = (float)(sg / C), mgx = (float)(sgx / C);
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * rs;
                dx[c] += rs * (dy[c] * w[c] - mg - xhat * mgx);
            }
        }
    }
    if (dw || db) {
        int nblk = (C + OPS_COL_BLOCK - 1) / OPS_COL_BLOCK;
#pragma omp parallel for schedule(guided)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_COL_BLOCK, c1 = c0 + OPS_COL_BLOCK < C ? c0 + OPS_COL_BLOCK : C;
            double aw[OPS_COL_BLOCK] = {0}, ab[OPS_COL_BLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float m = mean[n], rs = rstd[n];
                for (int c = c0; c < c1; c++) {
                    aw[c - c0] += dy[c] * ((x[c] - m) * rs);
                    ab[c - c0] += dy[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dw) dw[c] += (float)aw[c - c0];
                if (db) db[c] += (float)ab[c - c0];
            }
        }
    }
}

/* ---- rmsnorm ----------------------------------------------------------------------
 * Zhang & Sennrich 2019, eq. 4; the order of operations follows transformers'
 * LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)).  Row sums in LN_LANES lanes, as
 * layernorm's. */

/* sum_c (dy[c] w[c]) (x[c] rs) in double, each term rounded as a float product pair */
static double rms_sum_gx(const float *dy, const float *w, const float *x, float rs, int C) {
    double acc[LN_LANES] = {0};
    int c = 0;
    for (; c + LN_LANES <= C; c += LN_LANES)
        for (int k = 0; k < LN_LANES; k++) acc[k] += (double)(dy[c + k] * w[c + k]) * (x[c + k] * rs);
    for (int k = 0; c < C; c++, k++) acc[k] += (double)(dy[c] * w[c]) * (x[c] * rs);
    double s = 0;
    for (int k = 0; k < LN_LANES; k++) s += acc[k];
    return s;
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
#pragma omp parallel for schedule(guided)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = ln_sum_sq_dev(x, 0.0, C);
        float rs = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = w[c] * (x[c] * rs);
        rstd[n] = rs;
    }
}

/* With xhat = x * rstd and g = dout * w:
 *   dx = rstd * (g - xhat * mean_c(g * xhat)),  dw = sum_n dout * xhat. */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                      int N, int C) {
    if (dinp) {
#pragma omp parallel for schedule(guided)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float rs = rstd[n];
            float mgx = (float)(rms_sum_gx(dy, w, x, rs, C) / C);
            for (int c = 0; c < C; c++) dx[c] += rs * (dy[c] * w[c] - (x[c] * rs) * mgx);
        }
    }
    if (dw) {
        int nblk = (C + OPS_COL_BLOCK - 1) / OPS_COL_BLOCK;
#pragma omp parallel for schedule(guided)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_COL_BLOCK, c1 = c0 + OPS_COL_BLOCK < C ? c0 + OPS_COL_BLOCK : C;
            double aw[OPS_COL_BLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float rs = rstd[n];
                for (int c = c0; c < c1; c++) aw[c - c0] += dy[c] * (x[c] * rs);
            }
            for (int c = c0; c < c1; c++) dw[c] += (float)aw[c - c0];
        }
    }
}

/* ---- linear -----------------------------------------------------------------------
 * inp [N,C], w [OC,C] (nn.Linear layout), out [N,OC]. */
void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC) {
    gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, 0.0f, out, OC);
    if (bias) {
#pragma omp parallel for schedule(guided)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
            for (int j = 0; j < OC; j++) o[j] += bias[j];
        }
    }
}

void linear_backward_betas(float dinp_beta, float dw_beta, float *dinp, float *dw, float *dbias, const float *dout,
                           const float *inp, const float *w, int N, int C, int OC) {
    if (dinp && dw) gemm_bf16_hold(dout, (size_t)N * OC);                     /* bf16: dout converted once for both */
    if (dinp) gemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, dinp_beta, dinp, C); /* dinp (+)= dout @ w */
    if (dw) gemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, dw_beta, dw, C);     /* dw (+)= dout^T @ inp */
    if (dinp && dw) gemm_bf16_release(dout);
    if (dbias) {
        int nblk = (OC + OPS_COL_BLOCK - 1) / OPS_COL_BLOCK;
#pragma omp parallel for schedule(guided)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * OPS_COL_BLOCK, c1 = c0 + OPS_COL_BLOCK < OC ? c0 + OPS_COL_BLOCK : OC;
            double acc[OPS_COL_BLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *dy = dout + (size_t)n * OC;
                for (int c = c0; c < c1; c++) acc[c - c0] += dy[c];
            }
            for (int c = c0; c < c1; c++) dbias[c] += (float)acc[c - c0];
        }
    }
}

void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N,
                     int C, int OC) {
    linear_backward_betas(1.0f, 1.0f, dinp, dw, dbias, dout, inp, w, N, C, OC);
}

void linear_backward_set(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                         int N, int C, int OC) {
    linear_backward_betas(0.0f, 1.0f, dinp, dw, dbias, dout, inp, w, N, C, OC);
}

/* ---- GELU, tanh form ----------------------------------------------------------------
 * Hendrycks & Gimpel 2016, sec. 2; transformers' NewGELUActivation ("gelu_new"):
 *   0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3).
 * Computed as x * sigmoid(2u), the same function (0.5 (1 + tanh u) = sigmoid(2u)),
 * because it vectorises (ops_fastmath.h) and keeps its relative accuracy for very
 * negative x, where 1 + tanh(u) cancels. */
#define GELU_K0 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_K1 0.044715f

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(guided)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x * ops_sigmoidf(2.0f * GELU_K0 * (x + GELU_K1 * x * x * x));
    }
}

/* With s = sigmoid(2u):  d/dx [x s] = s + 2 x s (1 - s) u',  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
 * (equal to the tanh form's 0.5 (1 + t) + 0.5 x (1 - t^2) u', since 1 - t^2 = 4 s (1 - s)). */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, int accumulate) {
#pragma omp parallel for simd schedule(guided)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float s = ops_sigmoidf(2.0f * GELU_K0 * (x + GELU_K1 * x * x * x));
        float g = s + 2.0f * x * s * (1.0f - s) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
        float d = g * dout[i];
        dinp[i] = accumulate ? dinp[i] + d : d;
    }
}

/* ---- SwiGLU core ------------------------------------------------------------------------
 * Shazeer 2020, eq. 6 with Swish_1 = SiLU, as LlamaMLP: down(silu(gate(x)) * up(x)),
 * silu(g) = g * sigmoid(g) (torch.nn.functional.silu). */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for simd schedule(guided)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g * ops_sigmoidf(g) * up[i];
    }
}

/* silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n,
                     int accumulate) {
#pragma omp parallel for schedule(guided)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        float s = ops_sigmoidf(g);
        float dg = dout[i] * up[i] * s * (1.0f + g * (1.0f - s)), du = dout[i] * g * s;
        if (dgate) dgate[i] = accumulate ? dgate[i] + dg : dg;
        if (dup) dup[i] = accumulate ? dup[i] + du : du;
    }
}

/* ---- residual ------------------------------------------------------------------------- */
void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(guided)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for schedule(guided)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}
