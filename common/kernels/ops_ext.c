/* ops_ext.c — see ops_ext.h.  Straightforward loops and gemm() calls: these ops serve
 * the families beyond GPT-2 and Llama, whose hot paths (ops.c, ops_attention.c,
 * ops_logprobs.c) are tuned separately.  Reductions run in a fixed order, so results
 * do not depend on the thread count. */
#include "ops_ext.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm.h"
#include "ops.h"

/* ---- GeGLU -------------------------------------------------------------------------
 * gelu(g) = 0.5 g (1 + tanh(u)), u = sqrt(2/pi) (g + 0.044715 g^3) — transformers'
 * gelu_pytorch_tanh, which Gemma's MLP applies to gate_proj (GemmaMLP). */
#define K0 0.7978845608028654
#define K1 0.044715

void geglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double g = gate[i], t = tanh(K0 * (g + K1 * g * g * g));
        out[i] = (float)(0.5 * g * (1.0 + t) * up[i]);
    }
}

/* d gelu/dg = 0.5 (1 + t) + 0.5 g (1 - t^2) u'(g),  u' = sqrt(2/pi) (1 + 3 * 0.044715 g^2). */
void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n,
                    int accumulate) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double g = gate[i], t = tanh(K0 * (g + K1 * g * g * g));
        double gl = 0.5 * g * (1.0 + t);
        double dg = 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * K0 * (1.0 + 3.0 * K1 * g * g);
        float a = (float)(dout[i] * up[i] * dg), b = (float)(dout[i] * gl);
        if (dgate) dgate[i] = accumulate ? dgate[i] + a : a;
        if (dup) dup[i] = accumulate ? dup[i] + b : b;
    }
}

/* ---- RoPE with a frequency table ----------------------------------------------------
 * The rotation of rope_forward (Su et al. 2021, rotate_half layout) with the angles in
 * float32 as transformers computes them: f32(pos) * inv_freq, then cos/sin. */
static void rope_part_apply(float *x, const int *pos, int N, int nh, int hd, int rot, const float *inv, float sign) {
    int half = rot / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float p = (float)pos[n];
        for (int i = 0; i < half; i++) {
            float a = p * inv[i], cs = cosf(a), sn = sign * sinf(a);
            for (int h = 0; h < nh; h++) {
                float *v = x + ((size_t)n * nh + h) * hd;
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cs - x2 * sn;
                v[i + half] = x2 * cs + x1 * sn;
            }
        }
    }
}

void rope_freq_forward(float *x, const int *pos, int N, int nh, int hd, const float *inv_freq) {
    rope_part_apply(x, pos, N, nh, hd, hd, inv_freq, 1.0f);
}

/* Orthogonal rotation: the transpose is the rotation by -angle. */
void rope_freq_backward(float *dx, const int *pos, int N, int nh, int hd, const float *inv_freq) {
    rope_part_apply(dx, pos, N, nh, hd, hd, inv_freq, -1.0f);
}

/* Partial rotary (transformers' Phi-3 apply_rotary_pos_emb with partial_rotary_factor):
 * the first rot dimensions of each head rotate, in rotate_half layout over rot, the
 * rest pass through. */
void rope_part_forward(float *x, const int *pos, int N, int nh, int hd, int rot, const float *inv_freq) {
    rope_part_apply(x, pos, N, nh, hd, rot, inv_freq, 1.0f);
}

void rope_part_backward(float *dx, const int *pos, int N, int nh, int hd, int rot, const float *inv_freq) {
    rope_part_apply(dx, pos, N, nh, hd, rot, inv_freq, -1.0f);
}

/* ---- attention with options -----------------------------------------------------------
 * Vaswani et al. 2017, eq. 1; soft-capping s -> c tanh(s / c) (Gemma 2 report, sec. 2.2);
 * sliding window as transformers' sliding_window_overlay (key j visible iff
 * j > i - window).  One task per (b, kv head): the heads of a GQA group run in order
 * inside it, so dk/dv accumulate deterministically. */
static int visible(int i, int j, const int *sg, int window) {
    return j <= i && seg_visible(sg[j], sg[i]) && (window <= 0 || i - j < window);
}

/* S = scale Q K^T (capped) for one head: [T, T], masked entries untouched. */
static void ext_scores(float *S, const float *Q, const float *K, int T, int ldq, int ldk, int hd, const AttnOpts *o) {
    gemm(0, 1, T, T, hd, o->scale, Q, ldq, K, ldk, 0.0f, S, T);
    if (o->softcap > 0)
        for (size_t i = 0; i < (size_t)T * T; i++) S[i] = o->softcap * tanhf(S[i] / o->softcap);
}

void attention_ext_forward(float *out, float *att, const float *q, const float *k, const float *v, const int *seg,
                           int B, int T, int nh, int nkv, int hd, const AttnOpts *o) {
    int group = nh / nkv, ldq = nh * hd, ldk = nkv * hd;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * nh; bh++) {
        int b = bh / nh, h = bh % nh, kh = h / group;
        const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
        const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
        const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
        float *A = att + (size_t)bh * T * T;
        const int *sg = seg + (size_t)b * T;
        ext_scores(A, Q, K, T, ldq, ldk, hd, o);
        for (int i = 0; i < T; i++) {
            float *s = A + (size_t)i * T, mx = -INFINITY;
            for (int j = 0; j < T; j++)
                if (visible(i, j, sg, o->window) && s[j] > mx) mx = s[j];
            double sum = 0;
            for (int j = 0; j < T; j++) {
                s[j] = visible(i, j, sg, o->window) ? expf(s[j] - mx) : 0.0f;
                sum += s[j];
            }
            float inv = (float)(1.0 / sum); /* j == i is always visible */
            for (int j = 0; j < T; j++) s[j] *= inv;
        }
        gemm(0, 0, T, hd, T, 1.0f, A, T, V, ldk, 0.0f, out + (size_t)b * T * ldq + (size_t)h * hd, ldq);
    }
}

/* dP = dO V^T;  dS = P (dP - rowsum(P dP));  with capping dZ = dS (1 - (S / c)^2);
 * dQ += scale dZ K,  dK += scale dZ^T Q,  dV += P^T dO. */
void attention_ext_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                            const float *k, const float *v, int B, int T, int nh, int nkv, int hd, const AttnOpts *o) {
    int group = nh / nkv, ldq = nh * hd, ldk = nkv * hd;
#pragma omp parallel
    {
        float *dS = xmalloc((size_t)T * T * sizeof(float));
        float *S = o->softcap > 0 ? xmalloc((size_t)T * T * sizeof(float)) : NULL;
#pragma omp for schedule(static)
        for (int bk = 0; bk < B * nkv; bk++) {
            int b = bk / nkv, kh = bk % nkv;
            const float *K = k + (size_t)b * T * ldk + (size_t)kh * hd;
            const float *V = v + (size_t)b * T * ldk + (size_t)kh * hd;
            float *dK = dk ? dk + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
            float *dV = dv ? dv + (size_t)b * T * ldk + (size_t)kh * hd : NULL;
            for (int h = kh * group; h < (kh + 1) * group; h++) {
                const float *Q = q + (size_t)b * T * ldq + (size_t)h * hd;
                const float *dO = dout + (size_t)b * T * ldq + (size_t)h * hd;
                const float *P = att + ((size_t)b * nh + h) * T * T;
                gemm(0, 1, T, T, hd, 1.0f, dO, ldq, V, ldk, 0.0f, dS, T);
                if (S) ext_scores(S, Q, K, T, ldq, ldk, hd, o);
                for (int i = 0; i < T; i++) {
                    float *d = dS + (size_t)i * T;
                    const float *p = P + (size_t)i * T;
                    double fd = 0;
                    for (int j = 0; j < T; j++) fd += (double)p[j] * d[j];
                    for (int j = 0; j < T; j++) {
                        float g = p[j] * (d[j] - (float)fd);
                        if (S) {
                            float t = S[(size_t)i * T + j] / o->softcap;
                            g *= 1.0f - t * t;
                        }
                        d[j] = g;
                    }
                }
                if (dq)
                    gemm(0, 0, T, hd, T, o->scale, dS, T, K, ldk, 1.0f, dq + (size_t)b * T * ldq + (size_t)h * hd, ldq);
                if (dK) gemm(1, 0, T, hd, T, o->scale, dS, T, Q, ldq, 1.0f, dK, ldk);
                if (dV) gemm(1, 0, T, hd, T, 1.0f, P, T, dO, ldq, 1.0f, dV, ldk);
            }
        }
        free(dS);
        free(S);
    }
}

/* ---- LM head with soft-capping ---------------------------------------------------------
 * Gemma 2: logits = c tanh(z / c), z = h w^T (Gemma2ForCausalLM final_logit_softcapping).
 * Rows in chunks so at most LP_ROWS x V logits exist at a time. */
#define LP_ROWS 16

static void capped_logits(float *L, const float *h, const float *w, int R, int C, int V, float cap) {
    gemm(0, 1, R, V, C, 1.0f, h, C, w, C, 0.0f, L, V);
    for (size_t i = 0; i < (size_t)R * V; i++) L[i] = cap * tanhf(L[i] / cap);
}

void logprobs_softcap_forward(float *logp, float *entropy, float *lse, int *argmax, const float *h, const float *w,
                              const int *targets, int N, int C, int V, float cap) {
    float *L = xmalloc((size_t)LP_ROWS * V * sizeof(float));
    for (int n0 = 0; n0 < N; n0 += LP_ROWS) {
        int R = N - n0 < LP_ROWS ? N - n0 : LP_ROWS;
        capped_logits(L, h + (size_t)n0 * C, w, R, C, V, cap);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < R; r++) {
            int n = n0 + r, t = targets[n];
            const float *l = L + (size_t)r * V;
            if (t < 0) {
                logp[n] = 0;
                if (entropy) entropy[n] = 0;
                if (argmax) argmax[n] = -1;
                lse[n] = 0;
                continue;
            }
            float mx = -INFINITY;
            int arg = 0; /* the first maximum of the capped logits, as torch.argmax of the model's output */
            for (int j = 0; j < V; j++)
                if (l[j] > mx) mx = l[j], arg = j;
            if (argmax) argmax[n] = arg;
            double se = 0, sel = 0;
            for (int j = 0; j < V; j++) {
                double e = exp((double)l[j] - mx);
                se += e;
                sel += e * ((double)l[j] - mx);
            }
            // cppcheck-suppress invalidFunctionArg ; the maximum's term makes se >= 1
            double ls = mx + log(se);
            lse[n] = (float)ls;
            logp[n] = (float)(l[t] - ls);
            /* H = log Z - E[l] with l shifted by mx */
            if (entropy) entropy[n] = (float)(log(se) - sel / se);
        }
    }
    free(L);
}

void logprobs_softcap_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w,
                               const int *targets, const float *lse, int N, int C, int V, float cap) {
    float *L = xmalloc((size_t)LP_ROWS * V * sizeof(float));
    for (int n0 = 0; n0 < N; n0 += LP_ROWS) {
        int R = N - n0 < LP_ROWS ? N - n0 : LP_ROWS;
        capped_logits(L, h + (size_t)n0 * C, w, R, C, V, cap);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < R; r++) {
            int n = n0 + r, t = targets[n];
            float *l = L + (size_t)r * V;
            float g = t >= 0 ? dlogp[n] : 0.0f;
            for (int j = 0; j < V; j++) {
                float p = expf(l[j] - lse[n]), u = l[j] / cap;
                float d = g * ((j == t ? 1.0f : 0.0f) - p);
                l[j] = d * (1.0f - u * u);
            }
        }
        /* dh += dZ w;  dw += dZ^T h */
        gemm(0, 0, R, C, V, 1.0f, L, V, w, C, 1.0f, dh + (size_t)n0 * C, C);
        if (dw) gemm(1, 0, V, C, R, 1.0f, L, V, h + (size_t)n0 * C, C, 1.0f, dw, C);
    }
    free(L);
}

void softcap_forward(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}
