/* test_ops_ext_grad.c — finite-difference gradient checks for every op in ops_ext.h
 * (the ops of the newer model families), with test_ops_grad.c's method: a scalar loss
 * L = sum_i r_i out_i with fixed random r, the analytic gradient is what backward
 * ACCUMULATES with dout = r (gradients start random), the numerical one the
 * Richardson-extrapolated central difference (4 D(e) - D(2e)) / 3 with L in double.
 * Tolerance 2e-3 relative (floor 1e-2 max|g|), as there.
 * rope_part (partial rotary) is checked the same way, with the pass-through part.
 * Also checked: the windowed attention mask (exactly 0 outside the window, rows sum
 * to 1), attention_ext with default options equal to attention_forward, rope_freq
 * with the default table equal to rope_forward, the soft-capped LM head against a
 * naive double reference, and geglu equal to gelu(gate) * up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"

#define TOL 2e-3

static int failures;
static Rng rng;
static float eps = 5e-2f;

static float *randn(size_t n, float scale) {
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_normal(&rng);
    return p;
}
static float *copyf(const float *a, size_t n) {
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    memcpy(p, a, sizeof(float) * n);
    return p;
}
static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Gradient accumulated into g (g0 before backward) against the difference quotient of
 * loss() in x, over every element. */
static void fd_check(const char *what, double (*loss)(void), float *x, const float *g, const float *g0, size_t n) {
    double gmax = 0, worst = 0, wa = 0, wn = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs((double)g[i] - g0[i]));
    double floor = 1e-2 * gmax + 1e-6;
    for (size_t i = 0; i < n; i++) {
        float save = x[i], p1 = save + eps, m1 = save - eps, p2 = save + 2 * eps, m2 = save - 2 * eps;
        x[i] = p1;
        double lp1 = loss();
        x[i] = m1;
        double lm1 = loss();
        x[i] = p2;
        double lp2 = loss();
        x[i] = m2;
        double lm2 = loss();
        x[i] = save;
        double D1 = (lp1 - lm1) / ((double)p1 - m1), D2 = (lp2 - lm2) / ((double)p2 - m2);
        double num = (4 * D1 - D2) / 3, ana = (double)g[i] - g0[i];
        double rel = fabs(ana - num) / fmax(fmax(fabs(ana), fabs(num)), floor);
        if (rel > worst) worst = rel, wi = i, wa = ana, wn = num;
    }
    int ok = worst <= TOL;
    printf("%-4s %-40s worst rel err %.2e over %zu elems (max|g| %.3g)\n", ok ? "ok" : "FAIL", what, worst, n, gmax);
    if (!ok) {
        printf("     element %zu: expected (finite difference) %.6g, got (backward) %.6g\n", wi, wn, wa);
        failures++;
    }
}

static void expect_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), 1e-3));
    int ok = worst <= tol;
    printf("%-4s %-40s worst rel diff %.2e (tolerance %.0e)\n", ok ? "ok" : "FAIL", what, worst, tol);
    failures += !ok;
}

/* ---- geglu ---- */
enum { P_N = 40 };
static float *p_g, *p_u, *p_r, *p_out;
static double geglu_loss(void) {
    geglu_forward(p_out, p_g, p_u, P_N);
    return dot(p_out, p_r, P_N);
}
static void test_geglu(void) {
    p_g = randn(P_N, 2), p_u = randn(P_N, 1), p_r = randn(P_N, 1), p_out = xmalloc(P_N * sizeof(float));
    float *dg0 = randn(P_N, 1), *du0 = randn(P_N, 1), *dg = copyf(dg0, P_N), *du = copyf(du0, P_N);
    geglu_loss();
    float ref[P_N];
    gelu_forward(ref, p_g, P_N);
    for (int i = 0; i < P_N; i++) ref[i] *= p_u[i];
    expect_close("geglu = gelu(gate) * up", p_out, ref, P_N, 1e-5);
    geglu_backward(dg, du, p_r, p_g, p_u, P_N, 1);
    fd_check("geglu dgate", geglu_loss, p_g, dg, dg0, P_N);
    fd_check("geglu dup", geglu_loss, p_u, du, du0, P_N);
    /* accumulate = 0 overwrites (NaN before): the sums into zeros, also with either
     * output NULL */
    float *z1 = xcalloc(P_N, sizeof(float)), *z2 = xcalloc(P_N, sizeof(float));
    float *n1 = xmalloc(P_N * sizeof(float)), *n2 = xmalloc(P_N * sizeof(float));
    int bad = 0;
    for (int k = 0; k < 3; k++) { /* both, dgate only, dup only */
        memset(z1, 0, P_N * sizeof(float)), memset(z2, 0, P_N * sizeof(float));
        for (int i = 0; i < P_N; i++) n1[i] = n2[i] = NAN;
        geglu_backward(k == 2 ? NULL : z1, k == 1 ? NULL : z2, p_r, p_g, p_u, P_N, 1);
        geglu_backward(k == 2 ? NULL : n1, k == 1 ? NULL : n2, p_r, p_g, p_u, P_N, 0);
        bad |= k != 2 && memcmp(z1, n1, P_N * sizeof(float));
        bad |= k != 1 && memcmp(z2, n2, P_N * sizeof(float));
    }
    if (bad)
        printf("FAIL geglu backward with accumulate = 0: not the sums into zeros\n");
    else
        printf("ok   geglu backward with accumulate = 0 overwrites (both outputs, either NULL)\n");
    failures += bad;
    free(z1), free(z2), free(n1), free(n2);
    free(dg0), free(du0), free(dg), free(du), free(p_g), free(p_u), free(p_r), free(p_out);
}

/* ---- rope with a frequency table ---- */
enum { R_N = 5, R_NH = 3, R_HD = 8 };
static const int r_pos[R_N] = {0, 1, 2, 97, 1};
static float r_inv[R_HD / 2], *r_x, *r_r, *r_out;
static int r_rot = R_HD;
static double rope_loss(void) {
    memcpy(r_out, r_x, sizeof(float) * R_N * R_NH * R_HD);
    if (r_rot == R_HD)
        rope_freq_forward(r_out, r_pos, R_N, R_NH, R_HD, r_inv);
    else
        rope_part_forward(r_out, r_pos, R_N, R_NH, R_HD, r_rot, r_inv);
    return dot(r_out, r_r, R_N * R_NH * R_HD);
}
static void test_rope_freq(void) {
    size_t n = R_N * R_NH * R_HD;
    r_x = randn(n, 1), r_r = randn(n, 1), r_out = xmalloc(n * sizeof(float));
    for (int i = 0; i < R_HD / 2; i++) r_inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / R_HD);
    float *ref = copyf(r_x, n);
    rope_forward(ref, r_pos, R_N, R_NH, R_HD, 10000.0f);
    rope_loss();
    expect_close("rope_freq default table = rope_forward", r_out, ref, n, 1e-6);
    for (int i = 0; i < R_HD / 2; i++) r_inv[i] *= 0.37f + 0.2f * i; /* a scaled table */
    float *dx0 = randn(n, 1), *dx = copyf(r_r, n);
    rope_freq_backward(dx, r_pos, R_N, R_NH, R_HD, r_inv); /* dx = R^T r (in place) */
    for (size_t i = 0; i < n; i++) dx[i] += dx0[i];
    fd_check("rope_freq dx (scaled table)", rope_loss, r_x, dx, dx0, n);
    /* partial: 6 of 8 dimensions rotate (pairs i, i + 3), the last 2 pass through */
    r_rot = 6;
    rope_loss();
    int pass_ok = 1;
    for (int v = 0; v < R_N * R_NH; v++)
        for (int i = r_rot; i < R_HD; i++) pass_ok &= r_out[v * R_HD + i] == r_x[v * R_HD + i];
    printf("%-4s %-40s\n", pass_ok ? "ok" : "FAIL", "rope_part leaves dimensions >= rot alone");
    failures += !pass_ok;
    memcpy(dx, r_r, n * sizeof(float));
    rope_part_backward(dx, r_pos, R_N, R_NH, R_HD, r_rot, r_inv);
    for (size_t i = 0; i < n; i++) dx[i] += dx0[i];
    fd_check("rope_part dx (rot 6 of 8)", rope_loss, r_x, dx, dx0, n);
    r_rot = R_HD;
    free(ref), free(dx0), free(dx), free(r_x), free(r_r), free(r_out);
}

/* ---- attention with options ---- */
static int a_B, a_T, a_nh, a_nkv, a_hd;
static const int *a_seg;
static AttnOpts a_o;
static float *a_q, *a_k, *a_v, *a_r, *a_out, *a_att;
static double att_loss(void) {
    attention_ext_forward(a_out, a_att, a_q, a_k, a_v, a_seg, a_B, a_T, a_nh, a_nkv, a_hd, &a_o);
    return dot(a_out, a_r, (size_t)a_B * a_T * a_nh * a_hd);
}
static void test_attention_case(const char *label, int B, int T, int nh, int nkv, int hd, const int *seg, AttnOpts o) {
    a_B = B, a_T = T, a_nh = nh, a_nkv = nkv, a_hd = hd, a_seg = seg, a_o = o;
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    a_q = randn(nq, 1), a_k = randn(nk, 1), a_v = randn(nk, 1), a_r = randn(nq, 1);
    a_out = xmalloc(sizeof(float) * nq);
    a_att = xmalloc(sizeof(float) * (size_t)B * nh * T * T);
    att_loss();
    int bad = 0;
    double worst_sum = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < T; i++) {
                const float *p = a_att + (((size_t)b * nh + h) * T + i) * T;
                double s = 0;
                for (int j = 0; j < T; j++) {
                    int ok = j <= i && seg[b * T + j] == seg[b * T + i] && (o.window <= 0 || i - j < o.window);
                    if (!ok && p[j] != 0) bad++;
                    s += p[j];
                }
                worst_sum = fmax(worst_sum, fabs(s - 1));
            }
    char what[96];
    snprintf(what, sizeof what, "attention_ext %s mask", label);
    printf("%-4s %-40s %d nonzero masked, worst |row sum - 1| %.2e\n", bad || worst_sum > 1e-5 ? "FAIL" : "ok", what,
           bad, worst_sum);
    failures += bad || worst_sum > 1e-5;
    float *dq0 = randn(nq, 1), *dk0 = randn(nk, 1), *dv0 = randn(nk, 1);
    float *dq = copyf(dq0, nq), *dk = copyf(dk0, nk), *dv = copyf(dv0, nk);
    attention_ext_backward(dq, dk, dv, a_r, a_att, a_q, a_k, a_v, B, T, nh, nkv, hd, &a_o);
    snprintf(what, sizeof what, "attention_ext %s dq", label);
    fd_check(what, att_loss, a_q, dq, dq0, nq);
    snprintf(what, sizeof what, "attention_ext %s dk", label);
    fd_check(what, att_loss, a_k, dk, dk0, nk);
    snprintf(what, sizeof what, "attention_ext %s dv", label);
    fd_check(what, att_loss, a_v, dv, dv0, nk);
    free(dq0), free(dk0), free(dv0), free(dq), free(dk), free(dv);
    free(a_q), free(a_k), free(a_v), free(a_r), free(a_out), free(a_att);
}
static void test_attention(void) {
    /* batch 0: two packed examples then padding; batch 1: one example */
    static const int seg[2 * 7] = {0, 0, 0, 0, 0, 1, 2, 5, 5, 5, 5, 5, 5, 5};
    test_attention_case("window 3 gqa4/2", 2, 7, 4, 2, 4, seg, (AttnOpts){0.5f, 0, 3});
    test_attention_case("softcap 1.5 scale 0.8 gqa4/2", 2, 7, 4, 2, 4, seg, (AttnOpts){0.8f, 1.5f, 0});
    test_attention_case("window 2 softcap 3 mha2/2", 2, 7, 2, 2, 4, seg, (AttnOpts){0.4f, 3.0f, 2});
    /* default options = ops.h's attention_forward */
    int B = 2, T = 7, nh = 4, nkv = 2, hd = 4;
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    float *q = randn(nq, 1), *k = randn(nk, 1), *v = randn(nk, 1), *o1 = xmalloc(nq * 4), *o2 = xmalloc(nq * 4);
    float *att = xmalloc((size_t)B * nh * T * T * 4);
    AttnOpts def = {1.0f / sqrtf((float)hd), 0, 0};
    attention_forward(o1, att, q, k, v, seg, B, T, nh, nkv, hd);
    attention_ext_forward(o2, att, q, k, v, seg, B, T, nh, nkv, hd, &def);
    expect_close("attention_ext default = attention_forward", o2, o1, nq, 1e-5);
    free(q), free(k), free(v), free(o1), free(o2), free(att);
}

/* ---- soft-capped LM head ---- */
enum { G_N = 6, G_C = 5, G_V = 37 };
static const int g_tgt[G_N] = {3, -1, 36, 0, 17, 5};
static const float g_cap = 2.5f;
static float *g_h, *g_w, *g_r, g_logp[G_N], g_lse[G_N], g_ent[G_N];
static int g_argmax[G_N];
static double lp_loss(void) {
    logprobs_softcap_forward(g_logp, g_ent, g_lse, g_argmax, g_h, g_w, g_tgt, G_N, G_C, G_V, g_cap);
    return dot(g_logp, g_r, G_N);
}
static void test_logprobs_softcap(void) {
    g_h = randn(G_N * G_C, 1), g_w = randn(G_V * G_C, 1), g_r = randn(G_N, 1);
    lp_loss();
    /* naive reference in double */
    float want_lp[G_N] = {0}, want_ent[G_N] = {0};
    int am_bad = 0;
    for (int n = 0; n < G_N; n++) {
        if (g_tgt[n] < 0) {
            am_bad += g_argmax[n] != -1; /* no target, no argmax */
            continue;
        }
        double l[G_V], mx = -INFINITY, se = 0;
        int arg = 0;
        for (int v = 0; v < G_V; v++) {
            double z = 0;
            for (int c = 0; c < G_C; c++) z += (double)g_h[n * G_C + c] * g_w[v * G_C + c];
            l[v] = g_cap * tanh(z / g_cap);
            if (l[v] > mx) mx = l[v], arg = v;
        }
        am_bad += g_argmax[n] != arg;
        for (int v = 0; v < G_V; v++) se += exp(l[v] - mx);
        double lse = mx + log(se), H = 0;
        for (int v = 0; v < G_V; v++) H -= exp(l[v] - lse) * (l[v] - lse);
        want_lp[n] = (float)(l[g_tgt[n]] - lse);
        want_ent[n] = (float)H;
    }
    expect_close("logprobs_softcap logp vs double reference", g_logp, want_lp, G_N, 1e-5);
    expect_close("logprobs_softcap entropy vs double", g_ent, want_ent, G_N, 1e-5);
    if (am_bad) {
        printf("FAIL logprobs_softcap argmax: %d rows differ from the double reference\n", am_bad);
        failures++;
    } else
        printf("ok   logprobs_softcap argmax matches the double reference on %d rows\n", G_N);
    float *dh0 = randn(G_N * G_C, 1), *dw0 = randn(G_V * G_C, 1);
    float *dh = copyf(dh0, G_N * G_C), *dw = copyf(dw0, G_V * G_C);
    logprobs_softcap_backward(dh, dw, g_r, g_h, g_w, g_tgt, g_lse, G_N, G_C, G_V, g_cap);
    fd_check("logprobs_softcap dh", lp_loss, g_h, dh, dh0, G_N * G_C);
    fd_check("logprobs_softcap dw", lp_loss, g_w, dw, dw0, G_V * G_C);
    /* decoding's softcap_forward on logits gives the same capped values */
    float z[G_V], zc[G_V];
    logits_forward(z, g_h, g_w, 1, G_C, G_V);
    for (int v = 0; v < G_V; v++) zc[v] = (float)(g_cap * tanh(z[v] / g_cap));
    softcap_forward(z, G_V, g_cap);
    expect_close("softcap_forward", z, zc, G_V, 1e-6);
    free(dh0), free(dw0), free(dh), free(dw), free(g_h), free(g_w), free(g_r);
}

int main(void) {
    rng_seed(&rng, 1234);
    test_geglu();
    test_rope_freq();
    test_attention();
    test_logprobs_softcap();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all ops_ext gradient checks passed\n");
    return 0;
}
