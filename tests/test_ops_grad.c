/* test_ops_grad.c — finite-difference gradient checks for every op in ops.h.
 *
 * Each op is wrapped in a scalar loss L = sum_i r_i * out_i with fixed random r, so
 * the analytic gradient of every input and parameter is what backward produces with
 * dout = r.  The numerical gradient is the fourth-order central difference
 *   (8 (L(x+e) - L(x-e)) - (L(x+2e) - L(x-2e))) / (12 e)
 * with L summed in double.  Why fourth order: the outputs are float32, so rounding
 * noise in L grows like 2^-24 |L| / e and e cannot be small; with the O(e^4)
 * stencil e = 5e-2 (1e-1 for the LM head, whose outputs are log-probs ~ -10 with
 * float ulps ~1e-6) keeps truncation small (e^4 f^(5) / 30 ~ 1e-7) and rounding
 * ~1e-4 relative at worst (measured: attention over 1000 outputs, 6e-4 at e = 5e-2,
 * 3e-3 at e = 1e-2).  Tolerance 2e-3 on the relative error
 *   |g_analytic - g_numeric| / max(|g_analytic|, |g_numeric|, 1e-2 * max|g|)
 * is above the observed noise, while any wrong term (a missing factor, a wrong
 * index, a missing mask) shows up as an O(1e-1..1) error.
 * Backward must ACCUMULATE, so gradients start at random values and the analytic
 * gradient is what was added.
 * Also: bit-identical results at 1 and 2 threads, and logprobs / entropy / argmax /
 * logits against a naive full-softmax reference in double. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"

/* Under AddressSanitizer: LeakSanitizer's exit-time scan walks every thread's dynamic
 * TLS, and with oneDNN's libdnnl.so.2 dlopen'ed (the bf16 cases) on Debian 12 (glibc
 * 2.36, GCC 12's libsanitizer) it can read a garbage DTV entry and crash ("Tracer
 * caught signal 11", "DTLS ... at 0x1000003a3-...") after every check has passed; it
 * does so on some runs and not others.  Leak checking is therefore off for this test
 * alone; ASan's and UBSan's memory checks stay on.  (Read by the ASan runtime only.) */
const char *__asan_default_options(void) __attribute__((used));
const char *__asan_default_options(void) {
    return "detect_leaks=0";
}

#define TOL 2e-3
#define EPS 5e-2f

static int failures = 0;
static Rng rng;

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

/* Compares the gradient accumulated into g (which held g0 before backward) with the
 * central difference of loss() w.r.t. x.  idx/nidx select elements (NULL = all). */
static float eps = EPS;
static double loss_at(double (*loss)(void), float *x, float v) {
    *x = v;
    return loss();
}
static void fd_check(const char *what, double (*loss)(void), float *x, const float *g, const float *g0, size_t n,
                     const size_t *idx, size_t nidx) {
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs((double)g[i] - g0[i]));
    double floor = 1e-2 * gmax + 1e-6, worst = 0;
    size_t worst_i = 0;
    double worst_a = 0, worst_n = 0;
    size_t cnt = idx ? nidx : n;
    for (size_t k = 0; k < cnt; k++) {
        size_t i = idx ? idx[k] : k;
        float save = x[i];
        /* the steps actually taken in float (x +- e is rounded) */
        float xp1 = save + eps, xm1 = save - eps, xp2 = save + 2 * eps, xm2 = save - 2 * eps;
        double d1 = loss_at(loss, &x[i], xp1) - loss_at(loss, &x[i], xm1);
        double d2 = loss_at(loss, &x[i], xp2) - loss_at(loss, &x[i], xm2);
        x[i] = save;
        /* Richardson: D(h) = f' + c h^2 + O(h^4), so (4 D(e) - D(2e)) / 3 = f' + O(e^4) */
        double D1 = d1 / ((double)xp1 - xm1), D2 = d2 / ((double)xp2 - xm2);
        double num = (4 * D1 - D2) / 3;
        double ana = (double)g[i] - g0[i];
        double den = fmax(fmax(fabs(ana), fabs(num)), floor);
        double rel = fabs(ana - num) / den;
        if (rel > worst) {
            worst = rel;
            worst_i = i;
            worst_a = ana;
            worst_n = num;
        }
    }
    int ok = worst <= TOL;
    printf("%-4s %-34s worst rel err %.2e over %zu elems (max|g| %.3g)\n", ok ? "ok" : "FAIL", what, worst, cnt, gmax);
    if (!ok) {
        printf("     element %zu: expected (finite difference) %.6g, got (backward) %.6g\n", worst_i, worst_n, worst_a);
        failures++;
    }
}

/* ---- embedding + position --------------------------------------------------------- */
enum { E_N = 7, E_C = 5, E_V = 6, E_T = 4 };
static const int e_tok[E_N] = {1, 3, 1, 0, 5, 3, 1};
static const int e_pos[E_N] = {0, 1, 2, 0, 1, 3, 0}; /* packed rows restart */
static float *e_wte, *e_wpe, *e_r, *e_out;
static double e_loss(void) {
    embedding_forward(e_out, e_tok, e_wte, E_N, E_C);
    position_forward(e_out, e_pos, e_wpe, E_N, E_C);
    return dot(e_out, e_r, E_N * E_C);
}
static void test_embedding(void) {
    e_wte = randn(E_V * E_C, 1);
    e_wpe = randn(E_T * E_C, 1);
    e_r = randn(E_N * E_C, 1);
    e_out = xmalloc(sizeof(float) * E_N * E_C);
    float *g0 = randn(E_V * E_C, 1), *g = copyf(g0, E_V * E_C);
    float *p0 = randn(E_T * E_C, 1), *p = copyf(p0, E_T * E_C);
    e_loss();
    embedding_backward(g, e_r, e_tok, E_N, E_C);
    position_backward(p, e_r, e_pos, E_N, E_C);
    fd_check("embedding dwte", e_loss, e_wte, g, g0, E_V * E_C, NULL, 0);
    fd_check("position dwpe", e_loss, e_wpe, p, p0, E_T * E_C, NULL, 0);
    free(g0), free(g), free(p0), free(p), free(e_wte), free(e_wpe), free(e_r), free(e_out);
}

/* ---- layernorm / rmsnorm ------------------------------------------------------------ */
enum { L_N = 4, L_C = 37 }; /* C >= 16 and not a multiple of 16: rmsnorm's 16-lane sums and their tail */
static float *l_x, *l_w, *l_b, *l_r, *l_out, l_mean[L_N], l_rstd[L_N];
static double ln_loss(void) {
    layernorm_forward(l_out, l_mean, l_rstd, l_x, l_w, l_b, L_N, L_C, 1e-5f);
    return dot(l_out, l_r, L_N * L_C);
}
static double rms_loss(void) {
    rmsnorm_forward(l_out, l_rstd, l_x, l_w, L_N, L_C, 1e-6f);
    return dot(l_out, l_r, L_N * L_C);
}
static void test_norms(void) {
    l_x = randn(L_N * L_C, 1);
    for (int i = 0; i < L_N * L_C; i++) l_x[i] += 0.5f; /* nonzero mean */
    l_w = randn(L_C, 1);
    l_b = randn(L_C, 1);
    l_r = randn(L_N * L_C, 1);
    l_out = xmalloc(sizeof(float) * L_N * L_C);
    float *dx0 = randn(L_N * L_C, 1), *dw0 = randn(L_C, 1), *db0 = randn(L_C, 1);
    float *dx = copyf(dx0, L_N * L_C), *dw = copyf(dw0, L_C), *db = copyf(db0, L_C);
    ln_loss();
    layernorm_backward(dx, dw, db, l_r, l_x, l_w, l_mean, l_rstd, L_N, L_C);
    fd_check("layernorm dinp", ln_loss, l_x, dx, dx0, L_N * L_C, NULL, 0);
    fd_check("layernorm dw", ln_loss, l_w, dw, dw0, L_C, NULL, 0);
    fd_check("layernorm db", ln_loss, l_b, db, db0, L_C, NULL, 0);
    memcpy(dx, dx0, sizeof(float) * L_N * L_C);
    memcpy(dw, dw0, sizeof(float) * L_C);
    rms_loss();
    rmsnorm_backward(dx, dw, l_r, l_x, l_w, l_rstd, L_N, L_C);
    fd_check("rmsnorm dinp", rms_loss, l_x, dx, dx0, L_N * L_C, NULL, 0);
    fd_check("rmsnorm dw", rms_loss, l_w, dw, dw0, L_C, NULL, 0);
    free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db);
    free(l_x), free(l_w), free(l_b), free(l_r), free(l_out);
}

/* ---- linear ----------------------------------------------------------------------------- */
enum { F_N = 5, F_C = 6, F_OC = 7 };
static float *f_x, *f_w, *f_b, *f_r, *f_out;
static int f_bias;
static double lin_loss(void) {
    linear_forward(f_out, f_x, f_w, f_bias ? f_b : NULL, F_N, F_C, F_OC);
    return dot(f_out, f_r, F_N * F_OC);
}
static void test_linear(void) {
    f_x = randn(F_N * F_C, 1);
    f_w = randn(F_OC * F_C, 1);
    f_b = randn(F_OC, 1);
    f_r = randn(F_N * F_OC, 1);
    f_out = xmalloc(sizeof(float) * F_N * F_OC);
    for (f_bias = 1; f_bias >= 0; f_bias--) {
        float *dx0 = randn(F_N * F_C, 1), *dw0 = randn(F_OC * F_C, 1), *db0 = randn(F_OC, 1);
        float *dx = copyf(dx0, F_N * F_C), *dw = copyf(dw0, F_OC * F_C), *db = copyf(db0, F_OC);
        lin_loss();
        linear_backward(dx, dw, f_bias ? db : NULL, f_r, f_x, f_w, F_N, F_C, F_OC);
        fd_check(f_bias ? "linear+bias dinp" : "linear nobias dinp", lin_loss, f_x, dx, dx0, F_N * F_C, NULL, 0);
        fd_check(f_bias ? "linear+bias dw" : "linear nobias dw", lin_loss, f_w, dw, dw0, F_OC * F_C, NULL, 0);
        if (f_bias) fd_check("linear+bias dbias", lin_loss, f_b, db, db0, F_OC, NULL, 0);
        /* NULL gradients are skipped and leave nothing behind */
        float *dx2 = copyf(dx0, F_N * F_C);
        linear_backward(dx2, NULL, NULL, f_r, f_x, f_w, F_N, F_C, F_OC);
        if (memcmp(dx2, dx, sizeof(float) * F_N * F_C) != 0) {
            printf("FAIL linear_backward with dw = dbias = NULL: dinp differs from the full call\n");
            failures++;
        }
        /* linear_backward_set overwrites dinp (NaN before) and adds to dw and dbias as
         * linear_backward does; dinp as linear_backward into zeros */
        float *dx3 = xmalloc(sizeof(float) * F_N * F_C), *dxz = xcalloc(F_N * F_C, sizeof(float));
        float *dw3 = copyf(dw0, F_OC * F_C), *db3 = copyf(db0, F_OC);
        for (int i = 0; i < F_N * F_C; i++) dx3[i] = NAN;
        linear_backward_set(dx3, dw3, f_bias ? db3 : NULL, f_r, f_x, f_w, F_N, F_C, F_OC);
        linear_backward(dxz, NULL, NULL, f_r, f_x, f_w, F_N, F_C, F_OC);
        if (memcmp(dx3, dxz, sizeof(float) * F_N * F_C) || memcmp(dw3, dw, sizeof(float) * F_OC * F_C) ||
            (f_bias && memcmp(db3, db, sizeof(float) * F_OC))) {
            printf("FAIL linear_backward_set: not linear_backward with dinp zeroed first\n");
            failures++;
        }
        free(dx3), free(dxz), free(dw3), free(db3);
        free(dx2), free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db);
    }
    free(f_x), free(f_w), free(f_b), free(f_r), free(f_out);
}

/* ---- rope ----------------------------------------------------------------------------------- */
enum { R_N = 5, R_NH = 3, R_HD = 8 };
static const int r_pos[R_N] = {0, 1, 2, 97, 1};
static float *r_x, *r_r, *r_out;
static double rope_loss(void) {
    memcpy(r_out, r_x, sizeof(float) * R_N * R_NH * R_HD);
    rope_forward(r_out, r_pos, R_N, R_NH, R_HD, 10000.0f);
    return dot(r_out, r_r, R_N * R_NH * R_HD);
}
static void test_rope(void) {
    size_t n = R_N * R_NH * R_HD;
    r_x = randn(n, 1);
    r_r = randn(n, 1);
    r_out = xmalloc(sizeof(float) * n);
    float *dx = copyf(r_r, n), *zero = xcalloc(n, sizeof(float));
    rope_backward(dx, r_pos, R_N, R_NH, R_HD, 10000.0f);
    /* rope_backward transforms in place (it is not accumulating by design: ops.h) */
    fd_check("rope dx", rope_loss, r_x, dx, zero, n, NULL, 0);
    /* position 0 is the identity */
    rope_loss();
    double d = 0;
    for (int i = 0; i < R_NH * R_HD; i++) d = fmax(d, fabs(r_out[i] - r_x[i]));
    if (d != 0) {
        printf("FAIL rope at pos 0: expected identity, got max change %g\n", d);
        failures++;
    }
    free(dx), free(zero), free(r_x), free(r_r), free(r_out);
}

/* ---- attention ------------------------------------------------------------------------------ */
static int a_B, a_T, a_nh, a_nkv, a_hd;
static int a_flash;           /* attention_flash_* (a_att holds the log-sum-exps) */
static const AttnOpts *a_opt; /* the fused kernel's options (NULL: the defaults) */
static int *a_seg;
static float *a_q, *a_k, *a_v, *a_r, *a_out, *a_att;
static double att_loss(void) {
    if (a_flash)
        attention_flash_forward(a_out, a_att, a_q, a_k, a_v, a_seg, a_B, a_T, a_nh, a_nkv, a_hd, a_opt);
    else
        attention_forward(a_out, a_att, a_q, a_k, a_v, a_seg, a_B, a_T, a_nh, a_nkv, a_hd);
    return dot(a_out, a_r, (size_t)a_B * a_T * a_nh * a_hd);
}
/* Up to max_n random distinct-ish indices of [0,n) (all when n <= max_n). */
static size_t *sample_idx(size_t n, size_t max_n, size_t *cnt) {
    size_t m = n < max_n ? n : max_n;
    size_t *idx = xmalloc(sizeof(size_t) * m);
    for (size_t i = 0; i < m; i++) idx[i] = n <= max_n ? i : rng_below(&rng, n);
    *cnt = m;
    return idx;
}
static const char *label_flash(const char *label) {
    static char buf[96];
    snprintf(buf, sizeof buf, "flash %s", label);
    return buf;
}
static void test_attention_case(const char *label, int B, int T, int nh, int nkv, int hd, const int *seg,
                                size_t max_elems) {
    a_B = B, a_T = T, a_nh = nh, a_nkv = nkv, a_hd = hd;
    a_seg = (int *)seg;
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    a_q = randn(nq, 1), a_k = randn(nk, 1), a_v = randn(nk, 1), a_r = randn(nq, 1);
    a_out = xmalloc(sizeof(float) * nq);
    a_att = xmalloc(sizeof(float) * (size_t)B * nh * T * T);
    float *dq0 = randn(nq, 1), *dk0 = randn(nk, 1), *dv0 = randn(nk, 1);
    float *dq = copyf(dq0, nq), *dk = copyf(dk0, nk), *dv = copyf(dv0, nk);
    att_loss();
    /* the mask: probabilities outside j <= i, same segment are exactly 0, rows sum to 1 */
    double worst_sum = 0;
    int mask_bad = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < T; i++) {
                const float *p = a_att + (((size_t)b * nh + h) * T + i) * T;
                double s = 0;
                for (int j = 0; j < T; j++) {
                    int allowed = j <= i && seg[b * T + j] == seg[b * T + i];
                    if (!allowed && p[j] != 0) mask_bad++;
                    s += p[j];
                }
                worst_sum = fmax(worst_sum, fabs(s - 1));
            }
    if (a_flash) mask_bad = 0, worst_sum = 0; /* no probabilities kept */
    if (mask_bad || worst_sum > 1e-5) {
        printf("FAIL attention %s mask: expected 0 masked entries and row sums 1, got %d nonzero masked, "
               "|sum-1| %.2e\n",
               label, mask_bad, worst_sum);
        failures++;
    }
    if (a_flash)
        attention_flash_backward(dq, dk, dv, a_r, a_out, a_att, a_q, a_k, a_v, seg, B, T, nh, nkv, hd, a_opt);
    else
        attention_backward(dq, dk, dv, a_r, a_att, a_q, a_k, a_v, seg, B, T, nh, nkv, hd);
    char what[96];
    if (a_flash) label = label_flash(label);
    size_t cnt, *idx;
    idx = sample_idx(nq, max_elems, &cnt);
    snprintf(what, sizeof what, "attention %s dq", label);
    fd_check(what, att_loss, a_q, dq, dq0, nq, idx, cnt);
    free(idx);
    idx = sample_idx(nk, max_elems, &cnt);
    snprintf(what, sizeof what, "attention %s dk", label);
    fd_check(what, att_loss, a_k, dk, dk0, nk, idx, cnt);
    snprintf(what, sizeof what, "attention %s dv", label);
    fd_check(what, att_loss, a_v, dv, dv0, nk, idx, cnt);
    free(idx);
    free(dq0), free(dk0), free(dv0), free(dq), free(dk), free(dv);
    free(a_q), free(a_k), free(a_v), free(a_r), free(a_out), free(a_att);
}
static void test_attention(void) {
    /* GQA 4 query heads on 2 kv heads; batch 0 packs two examples then right padding
     * (its own segment); batch 1 is one example */
    static const int seg1[2 * 7] = {0, 0, 0, 1, 1, 1, 2, 5, 5, 5, 5, 5, 5, 5};
    test_attention_case("gqa4/2 seg+pad T=7", 2, 7, 4, 2, 4, seg1, 100000);
    /* T = 130 crosses two causal row blocks (64) and a ragged last block */
    int T = 130;
    int *seg2 = xmalloc(sizeof(int) * T);
    for (int t = 0; t < T; t++) seg2[t] = t < 70 ? 0 : (t < 120 ? 1 : 2);
    test_attention_case("gqa2/1 T=130", 1, T, 2, 1, 4, seg2, 400);
    /* no grouping (GPT-2): kv heads accumulate in place; T = 70 crosses a block */
    int *seg3 = xmalloc(sizeof(int) * 2 * 70);
    for (int t = 0; t < 140; t++) seg3[t] = t < 70 ? (t < 40 ? 0 : 1) : 4;
    test_attention_case("mha3/3 T=70", 2, 70, 3, 3, 4, seg3, 400);
    /* the fused kernel (ops_flash.c) on the same cases: key blocks of 128 and query
     * blocks of 64, so T = 130 has a ragged key block too */
    a_flash = 1;
    test_attention_case("gqa4/2 seg+pad T=7", 2, 7, 4, 2, 4, seg1, 100000);
    test_attention_case("gqa2/1 T=130", 1, T, 2, 1, 4, seg2, 400);
    test_attention_case("mha3/3 T=70", 2, 70, 3, 3, 4, seg3, 400);
    /* and with options (ops.h AttnOpts): a query scale, soft-capping whose tanh bends
     * (scores of N(0,1) inputs against a cap of 1.5), windows of 3 keys, of 40 (shorter
     * than the first, 70-row segment, so it hides keys there; the key blocks of the
     * query block at 64 start mid-block, at 25) and of 5 */
    const AttnOpts scale_only = {0.6f, 0, 0}, cap_only = {0.5f, 1.5f, 0}, win3 = {0.5f, 0, 3}, all3 = {0.6f, 1.5f, 3},
                   cap_win40 = {0.5f, 2.0f, 40}, win5 = {0.5f, 0, 5};
    a_opt = &scale_only;
    test_attention_case("scale 0.6 mha3/3 T=70", 2, 70, 3, 3, 4, seg3, 400);
    a_opt = &cap_only;
    test_attention_case("cap 1.5 gqa4/2 seg+pad T=7", 2, 7, 4, 2, 4, seg1, 100000);
    a_opt = &win3;
    test_attention_case("window 3 gqa4/2 seg+pad T=7", 2, 7, 4, 2, 4, seg1, 100000);
    a_opt = &all3;
    test_attention_case("scale cap window 3 gqa4/2 seg+pad T=7", 2, 7, 4, 2, 4, seg1, 100000);
    a_opt = &cap_win40;
    test_attention_case("cap 2 window 40 gqa2/1 T=130", 1, T, 2, 1, 4, seg2, 400);
    a_opt = &win5;
    test_attention_case("window 5 mha3/3 T=70", 2, 70, 3, 3, 4, seg3, 400);
    a_opt = NULL;
    a_flash = 0;
    free(seg3);
    free(seg2);
}

/* ---- gelu / swiglu / residual ------------------------------------------------------------------- */
enum { P_N = 60 };
static float *p_a, *p_b, *p_r, *p_out;
static double gelu_loss(void) {
    gelu_forward(p_out, p_a, P_N);
    return dot(p_out, p_r, P_N);
}
static double swiglu_loss(void) {
    swiglu_forward(p_out, p_a, p_b, P_N);
    return dot(p_out, p_r, P_N);
}
static double residual_loss(void) {
    residual_forward(p_out, p_a, p_b, P_N);
    return dot(p_out, p_r, P_N);
}
static void test_pointwise(void) {
    p_a = randn(P_N, 2), p_b = randn(P_N, 1), p_r = randn(P_N, 1);
    p_out = xmalloc(sizeof(float) * P_N);
    float *da0 = randn(P_N, 1), *db0 = randn(P_N, 1);
    float *da = copyf(da0, P_N), *db = copyf(db0, P_N);
    gelu_backward(da, p_a, p_r, P_N, 1);
    fd_check("gelu dinp", gelu_loss, p_a, da, da0, P_N, NULL, 0);
    /* gelu_new at a few points (values from transformers' NewGELUActivation) */
    float xs[3] = {-1.0f, 0.5f, 2.0f}, ys[3];
    const double want[3] = {-0.15880800939172324, 0.34571400982514394, 1.9545976940871754};
    gelu_forward(ys, xs, 3);
    for (int i = 0; i < 3; i++)
        if (fabs(ys[i] - want[i]) > 1e-6) {
            printf("FAIL gelu(%g): expected %.9f, got %.9f\n", xs[i], want[i], ys[i]);
            failures++;
        }
    memcpy(da, da0, sizeof(float) * P_N);
    swiglu_backward(da, db, p_r, p_a, p_b, P_N, 1);
    fd_check("swiglu dgate", swiglu_loss, p_a, da, da0, P_N, NULL, 0);
    fd_check("swiglu dup", swiglu_loss, p_b, db, db0, P_N, NULL, 0);
    /* accumulate = 0 overwrites (NaN before): the same as adding into zeros */
    {
        float *z1 = xcalloc(P_N, sizeof(float)), *z2 = xcalloc(P_N, sizeof(float));
        float *n1 = xmalloc(sizeof(float) * P_N), *n2 = xmalloc(sizeof(float) * P_N);
        for (int i = 0; i < P_N; i++) n1[i] = n2[i] = NAN;
        gelu_backward(z1, p_a, p_r, P_N, 1);
        gelu_backward(n1, p_a, p_r, P_N, 0);
        int bad = memcmp(z1, n1, sizeof(float) * P_N) != 0;
        for (int k = 0; k < 3; k++) { /* both outputs, dgate only, dup only */
            memset(z1, 0, sizeof(float) * P_N), memset(z2, 0, sizeof(float) * P_N);
            for (int i = 0; i < P_N; i++) n1[i] = n2[i] = NAN;
            swiglu_backward(k == 2 ? NULL : z1, k == 1 ? NULL : z2, p_r, p_a, p_b, P_N, 1);
            swiglu_backward(k == 2 ? NULL : n1, k == 1 ? NULL : n2, p_r, p_a, p_b, P_N, 0);
            bad |= k != 2 && memcmp(z1, n1, sizeof(float) * P_N);
            bad |= k != 1 && memcmp(z2, n2, sizeof(float) * P_N);
        }
        if (bad) {
            printf("FAIL gelu/swiglu backward with accumulate = 0: not the sums into zeros\n");
            failures++;
        }
        free(z1), free(z2), free(n1), free(n2);
    }
    memcpy(da, da0, sizeof(float) * P_N);
    memcpy(db, db0, sizeof(float) * P_N);
    residual_backward(da, db, p_r, P_N);
    fd_check("residual da", residual_loss, p_a, da, da0, P_N, NULL, 0);
    fd_check("residual db", residual_loss, p_b, db, db0, P_N, NULL, 0);
    free(da0), free(db0), free(da), free(db), free(p_a), free(p_b), free(p_r), free(p_out);
}

/* ---- logprobs --------------------------------------------------------------------------------- */
/* V = 8229: each of the 8 vocabulary lanes walks two 512-column slices, the second
 * ragged (ops_logprobs.c). */
enum { G_N = 10, G_C = 8, G_V = 2 * 4096 + 37 };
static const int g_tgt[G_N] = {3, -1, 4100, 8228, 0, -1, 5, 8200, 4095, 4096};
static float *g_h, *g_w, *g_r, g_logp[G_N], g_lse[G_N], g_ent[G_N];
static double lp_loss(void) {
    logprobs_forward(g_logp, g_ent, g_lse, NULL, g_h, g_w, g_tgt, G_N, G_C, G_V);
    return dot(g_logp, g_r, G_N);
}
static void test_logprobs_grad(void) {
    g_h = randn(G_N * G_C, 1);
    g_w = randn((size_t)G_V * G_C, 0.5f);
    g_r = randn(G_N, 1);
    float *dh0 = randn(G_N * G_C, 1), *dh = copyf(dh0, G_N * G_C);
    float *dw0 = randn((size_t)G_V * G_C, 1), *dw = copyf(dw0, (size_t)G_V * G_C);
    lp_loss();
    for (int n = 0; n < G_N; n++)
        if (g_tgt[n] < 0 && (g_logp[n] != 0 || g_ent[n] != 0)) {
            printf("FAIL logprobs row %d with target -1: expected logp = entropy = 0, got %g, %g\n", n, g_logp[n],
                   g_ent[n]);
            failures++;
        }
    logprobs_backward(dh, dw, g_r, g_h, g_w, g_tgt, g_lse, G_N, G_C, G_V, 1.0f);
    eps = 1e-1f;
    fd_check("logprobs dh", lp_loss, g_h, dh, dh0, G_N * G_C, NULL, 0);
    /* rows of w: every target row plus random ones */
    size_t cnt = 0, *idx = xmalloc(sizeof(size_t) * (G_N * G_C + 300));
    for (int n = 0; n < G_N; n++)
        if (g_tgt[n] >= 0)
            for (int c = 0; c < G_C; c++) idx[cnt++] = (size_t)g_tgt[n] * G_C + c;
    for (int i = 0; i < 300; i++) idx[cnt++] = rng_below(&rng, (size_t)G_V * G_C);
    fd_check("logprobs dw", lp_loss, g_w, dw, dw0, (size_t)G_V * G_C, idx, cnt);
    eps = EPS;
    /* rows with target -1 receive no gradient */
    for (int n = 0; n < G_N; n++)
        if (g_tgt[n] < 0)
            for (int c = 0; c < G_C; c++)
                if (dh[n * G_C + c] != dh0[n * G_C + c]) {
                    printf("FAIL logprobs row %d with target -1: expected no gradient, got %g\n", n,
                           dh[n * G_C + c] - dh0[n * G_C + c]);
                    failures++;
                    c = G_C;
                }
    free(idx), free(dh0), free(dh), free(dw0), free(dw), free(g_h), free(g_w), free(g_r);
}

/* Naive reference in double: full logits row, softmax, gather, entropy, and the
 * gradients.  Called with N = 600 (two 512-row blocks), V = 5097 (two slices per
 * lane), and with V = 5 < 8 lanes (empty lanes). */
static void test_logprobs_reference(int N, int C, int V) {
    float *h = randn((size_t)N * C, 1), *w = randn((size_t)V * C, 0.7f), *dl = randn(N, 1);
    int *tgt = xmalloc(sizeof(int) * N);
    for (int n = 0; n < N; n++) tgt[n] = n % 17 == 3 ? -1 : (int)rng_below(&rng, V);
    tgt[N > 5 ? 5 : 0] = V - 1;
    for (int n = 6; n < N; n += 13) dl[n] = 0.0f; /* rows the loss ignores, with a target or without */
    float *logp = xmalloc(sizeof(float) * N), *ent = xmalloc(sizeof(float) * N), *lse = xmalloc(sizeof(float) * N);
    float *dh = xcalloc((size_t)N * C, sizeof(float)), *dw = xcalloc((size_t)V * C, sizeof(float));
    int *am = xmalloc(sizeof(int) * N);
    logprobs_forward(logp, ent, lse, am, h, w, tgt, N, C, V);
    logprobs_backward(dh, dw, dl, h, w, tgt, lse, N, C, V, 1.0f);
    /* the one-pass version (blocks of up to 256 rows: 600 rows are three, the last short) */
    float *logp2 = xmalloc(sizeof(float) * N), *ent2 = xmalloc(sizeof(float) * N);
    float *dh2 = xcalloc((size_t)N * C, sizeof(float)), *dw2 = xcalloc((size_t)V * C, sizeof(float));
    int *am2 = xmalloc(sizeof(int) * N);
    logprobs_forward_backward(logp2, ent2, am2, dh2, dw2, dl, h, w, tgt, N, C, V, 1.0f);
    /* a second call adds to dh and dw (and takes no entropy or argmax): twice the sums */
    float *dh3 = copyf(dh2, (size_t)N * C), *dw3 = copyf(dw2, (size_t)V * C), *logp3 = xmalloc(sizeof(float) * N);
    logprobs_forward_backward(logp3, NULL, NULL, dh3, dw3, dl, h, w, tgt, N, C, V, 1.0f);
    /* dw_beta 0: dw holding NaN is overwritten, the same values as added to zeros;
     * with no row to learn from it is zeroed */
    float *dw4 = xmalloc(sizeof(float) * (size_t)V * C), *dw5 = xmalloc(sizeof(float) * (size_t)V * C);
    float *dh4 = xcalloc((size_t)N * C, sizeof(float)), *dh5 = xcalloc((size_t)N * C, sizeof(float));
    for (size_t i = 0; i < (size_t)V * C; i++) dw4[i] = dw5[i] = NAN;
    logprobs_backward(dh4, dw4, dl, h, w, tgt, lse, N, C, V, 0.0f);
    float *lp_tmp = xmalloc(sizeof(float) * N); /* logp3 is compared below */
    logprobs_forward_backward(lp_tmp, NULL, NULL, dh5, dw5, dl, h, w, tgt, N, C, V, 0.0f);
    int overwrite_bad = 0;
    for (size_t i = 0; i < (size_t)V * C; i++) overwrite_bad += !(dw4[i] == dw[i]) + !(dw5[i] == dw2[i]);
    /* dlogp 0 everywhere (logprobs_backward selects no row) and no target at all (nor
     * does the one-pass head: its "no block wrote it" case) */
    float *none = xcalloc(N, sizeof(float));
    int *no_tgt = xmalloc(sizeof(int) * N);
    for (int n = 0; n < N; n++) no_tgt[n] = -1;
    for (size_t i = 0; i < (size_t)V * C; i++) dw4[i] = dw5[i] = NAN;
    logprobs_backward(dh4, dw4, none, h, w, tgt, lse, N, C, V, 0.0f);
    logprobs_forward_backward(lp_tmp, NULL, NULL, NULL, dw5, dl, h, w, no_tgt, N, C, V, 0.0f);
    free(no_tgt), free(lp_tmp);
    for (size_t i = 0; i < (size_t)V * C; i++) overwrite_bad += (dw4[i] != 0.0f) + (dw5[i] != 0.0f);
    if (overwrite_bad) {
        printf("FAIL logprobs V=%d dw_beta 0: %d values differ from adding to zeros (or were not written)\n", V,
               overwrite_bad);
        failures++;
    } else
        printf("ok   logprobs V=%-5d dw_beta 0 overwrites dw: the values of adding to zeros, both paths\n", V);
    free(dw4), free(dw5), free(dh4), free(dh5), free(none);
    int R = N < 3 ? N : 3; /* logits_forward on a few rows */
    float *lf = xmalloc(sizeof(float) * (size_t)R * V);
    logits_forward(lf, h, w, R, C, V);
    double *l = xmalloc(sizeof(double) * V);
    double *rdh = xcalloc((size_t)N * C, sizeof(double)), *rdw = xcalloc((size_t)V * C, sizeof(double));
    double e_lp = 0, e_ent = 0, e_lf = 0, e_lp2 = 0, e_ent2 = 0;
    int am_bad = 0;
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY;
        int arg = 0;
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)h[n * C + c] * w[(size_t)v * C + c];
            l[v] = s;
            if (s > mx) mx = s, arg = v;
            if (n < R) e_lf = fmax(e_lf, fabs(lf[(size_t)n * V + v] - s) / (fabs(s) + 1));
        }
        /* argmax may legitimately differ only on float near-ties; rows without a
         * target get none (-1) */
        if (tgt[n] < 0) {
            am_bad += am[n] != -1;
            am_bad += am2[n] != -1 || logp2[n] != 0.0f || ent2[n] != 0.0f;
            continue;
        }
        if (am[n] != arg && (am[n] < 0 || am[n] >= V || fabs(l[am[n]] - mx) > 1e-4)) am_bad++;
        if (am2[n] != arg && (am2[n] < 0 || am2[n] >= V || fabs(l[am2[n]] - mx) > 1e-4)) am_bad++;
        double se = 0;
        for (int v = 0; v < V; v++) se += exp(l[v] - mx);
        double ls = mx + log(se), H = 0;
        for (int v = 0; v < V; v++) {
            double p = exp(l[v] - ls);
            H -= p * (l[v] - ls);
            double d = dl[n] * ((v == tgt[n]) - p);
            for (int c = 0; c < C; c++) {
                rdh[n * C + c] += d * w[(size_t)v * C + c];
                rdw[(size_t)v * C + c] += d * h[n * C + c];
            }
        }
        e_lp = fmax(e_lp, fabs(logp[n] - (l[tgt[n]] - ls)) / (fabs(l[tgt[n]] - ls) + 1));
        e_ent = fmax(e_ent, fabs(ent[n] - H) / (fabs(H) + 1));
        e_lp2 = fmax(e_lp2, fabs(logp2[n] - (l[tgt[n]] - ls)) / (fabs(l[tgt[n]] - ls) + 1));
        e_ent2 = fmax(e_ent2, fabs(ent2[n] - H) / (fabs(H) + 1));
    }
    double e_dh = 0, e_dw = 0, mdh = 0, mdw = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) mdh = fmax(mdh, fabs(rdh[i]));
    for (size_t i = 0; i < (size_t)V * C; i++) mdw = fmax(mdw, fabs(rdw[i]));
    for (size_t i = 0; i < (size_t)N * C; i++) e_dh = fmax(e_dh, fabs(dh[i] - rdh[i]) / mdh);
    for (size_t i = 0; i < (size_t)V * C; i++) e_dw = fmax(e_dw, fabs(dw[i] - rdw[i]) / mdw);
    double e_dh2 = 0, e_dw2 = 0, e_acc = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) e_dh2 = fmax(e_dh2, fabs(dh2[i] - rdh[i]) / mdh);
    for (size_t i = 0; i < (size_t)V * C; i++) e_dw2 = fmax(e_dw2, fabs(dw2[i] - rdw[i]) / mdw);
    for (size_t i = 0; i < (size_t)N * C; i++) e_acc = fmax(e_acc, fabs(dh3[i] - 2 * rdh[i]) / (2 * mdh));
    for (size_t i = 0; i < (size_t)V * C; i++) e_acc = fmax(e_acc, fabs(dw3[i] - 2 * rdw[i]) / (2 * mdw));
    for (int n = 0; n < N; n++) e_acc = fmax(e_acc, logp3[n] != logp2[n]);
    struct {
        const char *name;
        double err;
    } r[] = {{"logp vs naive", e_lp},      {"entropy vs naive", e_ent}, {"dh vs naive", e_dh},
             {"dw vs naive", e_dw},        {"logits_forward", e_lf},    {"one-pass logp", e_lp2},
             {"one-pass entropy", e_ent2}, {"one-pass dh", e_dh2},      {"one-pass dw", e_dw2},
             {"one-pass, added", e_acc}};
    for (int i = 0; i < 10; i++) {
        int ok = r[i].err <= 1e-5;
        printf("%-4s logprobs V=%-5d %-19s worst rel err %.2e\n", ok ? "ok" : "FAIL", V, r[i].name, r[i].err);
        if (!ok) {
            printf("     expected <= 1e-5\n");
            failures++;
        }
    }
    if (am_bad) {
        printf("FAIL logprobs argmax: %d rows differ from the naive argmax\n", am_bad);
        failures++;
    } else
        printf("ok   logprobs argmax matches the naive argmax on %d rows (V=%d)\n", N, V);
    free(l), free(rdh), free(rdw), free(lf), free(am), free(h), free(w), free(dl), free(tgt), free(logp), free(ent);
    free(lse), free(dh), free(dw), free(logp2), free(ent2), free(dh2), free(dw2), free(am2), free(dh3), free(dw3);
    free(logp3);
}

/* logprobs_forward_backward_grouped: a made-up loss whose d loss / d logp of a row is
 * a function of the sum of its group's log-probs (as DPO's of a pair's).  The callback
 * must come once for every group, in order, when the group's log-probs are final;
 * the results must match the two passes with the same function applied between them
 * (logprobs_forward, dlogp, logprobs_backward), and be bit-identical at 1 and 2
 * threads.  group_len 100 with most rows targeted: blocks of two whole groups (three
 * do not fit in 256 rows), the last group without targets.  group_len 300 with
 * counts[g] targets in group g: groups without targets in the middle (one inside a
 * block, one starting the block after a long group, one before a long group) and at
 * the end, and groups of 280 targets, longer than a block, which take the two passes
 * between the blocks. */
typedef struct GroupCheck {
    int group_len, next, bad;
    const int *tgt;
    double *sum_at_call; /* each group's log-prob sum when the callback saw it */
} GroupCheck;

static void group_dlogp(const int *tgt, int group_len, int g, double sum, float *dlogp) {
    for (int i = g * group_len; i < (g + 1) * group_len; i++)
        if (tgt[i] >= 0) dlogp[i] = (float)((i % 2 ? 0.5 : -0.3) * tanh(0.01 * sum + g));
}

static void group_cb(void *ctx, int g0, int g1, const float *logp, float *dlogp) {
    GroupCheck *k = ctx;
    if (g0 != k->next || g1 <= g0) k->bad++;
    k->next = g1;
    for (int g = g0; g < g1; g++) {
        double sum = 0;
        for (int i = g * k->group_len; i < (g + 1) * k->group_len; i++)
            if (k->tgt[i] >= 0) sum += logp[i];
        k->sum_at_call[g] = sum;
        group_dlogp(k->tgt, k->group_len, g, sum, dlogp);
    }
}

static void test_logprobs_grouped(int group_len, int n_groups, const int *counts) {
    const int C = 8, V = 4096 + 1001, N = group_len * n_groups;
    float *h = randn((size_t)N * C, 1), *w = randn((size_t)V * C, 0.7f);
    int *tgt = xmalloc(sizeof(int) * N);
    for (int n = 0; n < N; n++)
        if (counts)
            tgt[n] = n % group_len < counts[n / group_len] ? (int)rng_below(&rng, V) : -1;
        else
            tgt[n] = n % 11 == 4 || n >= N - group_len ? -1 : (int)rng_below(&rng, V);
    /* the two passes */
    float *logp = xmalloc(sizeof(float) * N), *lse = xmalloc(sizeof(float) * N), *dl = xcalloc(N, sizeof(float));
    float *dh = xcalloc((size_t)N * C, sizeof(float)), *dw = xcalloc((size_t)V * C, sizeof(float));
    logprobs_forward(logp, NULL, lse, NULL, h, w, tgt, N, C, V);
    for (int g = 0; g < n_groups; g++) {
        double sum = 0;
        for (int i = g * group_len; i < (g + 1) * group_len; i++)
            if (tgt[i] >= 0) sum += logp[i];
        group_dlogp(tgt, group_len, g, sum, dl);
    }
    logprobs_backward(dh, dw, dl, h, w, tgt, lse, N, C, V, 1.0f);
    double e_lp = 0, e_dl = 0, e_dh = 0, e_dw = 0, mdh = 0, mdw = 0;
    int bits = 1, bad_calls = 0, stale = 0;
    float *keep[3] = {0};
    for (int nt = 1; nt <= 2; nt++) {
        gemm_threads_set(nt);
        float *lp2 = xmalloc(sizeof(float) * N), *dl2 = xcalloc(N, sizeof(float));
        float *dh2 = xcalloc((size_t)N * C, sizeof(float)), *dw2 = xcalloc((size_t)V * C, sizeof(float));
        GroupCheck k = {group_len, 0, 0, tgt, xcalloc(n_groups, sizeof(double))};
        logprobs_forward_backward_grouped(lp2, NULL, NULL, dh2, dw2, dl2, group_cb, &k, group_len, h, w, tgt, N, C, V,
                                          1.0f);
        bad_calls += k.bad + (k.next != n_groups);
        for (int g = 0; g < n_groups; g++) {
            double sum = 0;
            for (int i = g * group_len; i < (g + 1) * group_len; i++)
                if (tgt[i] >= 0) sum += lp2[i];
            stale += sum != k.sum_at_call[g];
        }
        for (int n = 0; n < N; n++) {
            e_lp = fmax(e_lp, fabs(lp2[n] - logp[n]) / (fabs(logp[n]) + 1));
            e_dl = fmax(e_dl, fabs(dl2[n] - dl[n]));
        }
        for (size_t i = 0; i < (size_t)N * C; i++) mdh = fmax(mdh, fabs(dh[i]));
        for (size_t i = 0; i < (size_t)V * C; i++) mdw = fmax(mdw, fabs(dw[i]));
        for (size_t i = 0; i < (size_t)N * C; i++) e_dh = fmax(e_dh, fabs(dh2[i] - dh[i]) / mdh);
        for (size_t i = 0; i < (size_t)V * C; i++) e_dw = fmax(e_dw, fabs(dw2[i] - dw[i]) / mdw);
        if (nt == 1) {
            keep[0] = lp2, keep[1] = dh2, keep[2] = dw2;
        } else {
            bits = !memcmp(keep[0], lp2, sizeof(float) * N) && !memcmp(keep[1], dh2, sizeof(float) * N * C) &&
                   !memcmp(keep[2], dw2, sizeof(float) * V * C);
            free(lp2), free(dh2), free(dw2);
        }
        free(dl2), free(k.sum_at_call);
    }
    gemm_threads_set(0);
    int same = 1;
    { /* dw_beta 0 (long groups take logprobs_backward inside): NaN overwritten, the same values */
        float *lp2 = xmalloc(sizeof(float) * N), *dl2 = xcalloc(N, sizeof(float));
        float *dh2 = xcalloc((size_t)N * C, sizeof(float)), *dw2 = xmalloc(sizeof(float) * (size_t)V * C);
        for (size_t i = 0; i < (size_t)V * C; i++) dw2[i] = NAN;
        GroupCheck k = {group_len, 0, 0, tgt, xcalloc(n_groups, sizeof(double))};
        logprobs_forward_backward_grouped(lp2, NULL, NULL, dh2, dw2, dl2, group_cb, &k, group_len, h, w, tgt, N, C, V,
                                          0.0f);
        for (size_t i = 0; i < (size_t)V * C; i++) same &= dw2[i] == keep[2][i];
        free(lp2), free(dl2), free(dh2), free(dw2), free(k.sum_at_call);
    }
    int ok = e_lp <= 1e-5 && e_dl <= 1e-5 && e_dh <= 1e-5 && e_dw <= 1e-5 && bits && same && !bad_calls && !stale;
    printf("%-4s logprobs grouped (%d groups of %d): against the two passes logp %.1e dlogp %.1e dh %.1e dw %.1e; "
           "callbacks in order once per group %s, on final log-probs %s; 1 and 2 threads %s; dw_beta 0 %s\n",
           ok ? "ok" : "FAIL", n_groups, group_len, e_lp, e_dl, e_dh, e_dw, bad_calls ? "NO" : "yes",
           stale ? "NO" : "yes", bits ? "bit-identical" : "DIFFER", same ? "the same values" : "DIFFERS");
    if (!ok) failures++;
    free(keep[0]), free(keep[1]), free(keep[2]);
    free(h), free(w), free(tgt), free(logp), free(lse), free(dl), free(dh), free(dw);
}

/* The argmax on exact ties: the first index, as torch.argmax and TRL's
 * mean_token_accuracy (is_top1) take it, whichever vocabulary slice, lane or thread the
 * tied logits fall in.  Row n's hidden state is the unit vector e_n, so its logits are
 * exactly column n of W: small noise, and 10 where ties are planted.  With the soft cap
 * 30, raw logits 999, 1000 and 1001 all cap to 30.0f: the capped argmax is the first
 * of them, not the raw maximum. */
static void test_logprobs_argmax_ties(void) {
    enum { C = 4, V = 20000, N = 6 };
    float *w = xmalloc(sizeof(float) * V * C), h[N * C] = {0}, lp[N], ent[N], lse[N];
    for (int i = 0; i < V * C; i++) w[i] = (float)((i * 7919) % 1000 - 500) * 1e-5f;
    for (int n = 0; n < C; n++) h[n * C + n] = 1.0f;
    w[5 * C + 0] = w[700 * C + 0] = w[1300 * C + 0] = 10;    /* across slices and lanes: 5 */
    w[700 * C + 1] = w[1300 * C + 1] = 10;                   /* 700 */
    w[600 * C + 2] = w[650 * C + 2] = w[19999 * C + 2] = 10; /* inside a slice, and the last column: 600 */
    w[1249 * C + 3] = w[1250 * C + 3] = 10;                  /* neighbours: 1249 */
    int tgt[N] = {1, 2, 3, 4, 5, 6}, am[N];
    const int want[N] = {5, 700, 600, 1249, 0, 0}; /* rows 4 and 5: every logit is 0 */
    int bad = 0;
    for (int nt = 1; nt <= 2; nt++) {
        gemm_threads_set(nt);
        logprobs_forward(lp, ent, lse, am, h, w, tgt, N, C, V);
        for (int n = 0; n < N; n++) bad += am[n] != want[n];
        logprobs_softcap_forward(lp, ent, lse, am, h, w, tgt, N, C, V, 30.0f);
        for (int n = 0; n < N; n++) bad += am[n] != want[n];
    }
    w[50 * C + 0] = 999, w[100 * C + 0] = 1000, w[200 * C + 0] = 1001;
    logprobs_softcap_forward(lp, ent, lse, am, h, w, tgt, N, C, V, 30.0f);
    int capped = am[0];
    logprobs_forward(lp, ent, lse, am, h, w, tgt, N, C, V);
    bad += capped != 50 || am[0] != 200;
    gemm_threads_set(0);
    if (bad) {
        printf("FAIL logprobs argmax on exact ties: %d wrong (capped saturation: %d, want 50; raw %d, want 200)\n", bad,
               capped, am[0]);
        failures++;
    } else
        printf("ok   logprobs argmax on exact ties: the first index, at 1 and 2 threads, raw and soft-capped\n");
    free(w);
}

/* ---- forward values against naive double-precision formulas ----------------------------------------
 * The finite differences prove backward matches forward; these prove forward is the
 * layer it claims to be (scale, mask, rotation convention, normalisation). */
static void report_fwd(const char *what, double err, double tol) {
    int ok = err <= tol;
    printf("%-4s forward %-27s worst rel err %.2e (tolerance %.0e)\n", ok ? "ok" : "FAIL", what, err, tol);
    if (!ok) failures++;
}
static void test_forward_reference(void) {
    /* attention: B=2, T=9, nh=4, nkv=2, hd=8, segments and padding */
    int B = 2, T = 9, nh = 4, nkv = 2, hd = 8;
    static const int seg[18] = {0, 0, 0, 0, 1, 1, 1, 9, 9, 3, 3, 3, 3, 3, 3, 3, 3, 3};
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    float *q = randn(nq, 1), *k = randn(nk, 1), *v = randn(nk, 1), *o = xmalloc(sizeof(float) * nq);
    float *att = xmalloc(sizeof(float) * (size_t)B * nh * T * T);
    attention_forward(o, att, q, k, v, seg, B, T, nh, nkv, hd);
    double err = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < T; i++) {
                int kh = h / (nh / nkv);
                double s[9], mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    if (seg[b * T + j] != seg[b * T + i]) continue;
                    double d = 0;
                    for (int c = 0; c < hd; c++)
                        d += (double)q[((size_t)(b * T + i) * nh + h) * hd + c] *
                             k[((size_t)(b * T + j) * nkv + kh) * hd + c];
                    s[j] = d / sqrt(hd);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= i; j++)
                    if (seg[b * T + j] == seg[b * T + i]) sum += exp(s[j] - mx);
                for (int c = 0; c < hd; c++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++)
                        if (seg[b * T + j] == seg[b * T + i])
                            acc += exp(s[j] - mx) / sum * v[((size_t)(b * T + j) * nkv + kh) * hd + c];
                    err = fmax(err, fabs(o[((size_t)(b * T + i) * nh + h) * hd + c] - acc) / (fabs(acc) + 1));
                }
            }
    report_fwd("attention vs naive", err, 1e-6);
    /* rope: rotate_half pairs (i, i + hd/2) with angle pos * theta^(-2i/hd) */
    int pos[3] = {0, 5, 1000};
    float *x = randn(3 * 2 * hd, 1), *y = copyf(x, 3 * 2 * hd);
    rope_forward(y, pos, 3, 2, hd, 500000.0f);
    err = 0;
    for (int n = 0; n < 3; n++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < hd / 2; i++) {
                const float *xv = x + (n * 2 + h) * hd;
                double a = pos[n] * pow(500000.0, -2.0 * i / hd);
                double r1 = xv[i] * cos(a) - xv[i + hd / 2] * sin(a), r2 = xv[i + hd / 2] * cos(a) + xv[i] * sin(a);
                err = fmax(err, fabs(y[(n * 2 + h) * hd + i] - r1) + fabs(y[(n * 2 + h) * hd + i + hd / 2] - r2));
            }
    report_fwd("rope vs formula", err, 1e-4); /* f32 angles at pos 1000: see ops_attention.c */
    /* layernorm / rmsnorm / linear / gelu against their formulas */
    int N = 3, C = 37, OC = 5;
    float *in = randn(N * C, 2), *w = randn(C, 1), *bb = randn(C, 1), *out = xmalloc(sizeof(float) * N * C);
    float mean[3], rstd[3];
    layernorm_forward(out, mean, rstd, in, w, bb, N, C, 1e-5f);
    double e_ln = 0, e_rms = 0, e_lin = 0;
    for (int n = 0; n < N; n++) {
        double m = 0, var = 0;
        for (int c = 0; c < C; c++) m += in[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++) var += (in[n * C + c] - m) * (in[n * C + c] - m);
        var /= C;
        for (int c = 0; c < C; c++)
            e_ln = fmax(e_ln, fabs(out[n * C + c] - ((in[n * C + c] - m) / sqrt(var + 1e-5) * w[c] + bb[c])));
    }
    rmsnorm_forward(out, rstd, in, w, N, C, 1e-6f);
    for (int n = 0; n < N; n++) {
        double ms = 0;
        for (int c = 0; c < C; c++) ms += (double)in[n * C + c] * in[n * C + c];
        ms /= C;
        for (int c = 0; c < C; c++) e_rms = fmax(e_rms, fabs(out[n * C + c] - in[n * C + c] / sqrt(ms + 1e-6) * w[c]));
    }
    float *lw = randn(OC * C, 1), *lo = xmalloc(sizeof(float) * N * OC);
    linear_forward(lo, in, lw, bb, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o2 = 0; o2 < OC; o2++) {
            double acc = bb[o2];
            for (int c = 0; c < C; c++) acc += (double)in[n * C + c] * lw[o2 * C + c];
            e_lin = fmax(e_lin, fabs(lo[n * OC + o2] - acc) / (fabs(acc) + 1));
        }
    report_fwd("layernorm vs formula", e_ln, 1e-5);
    report_fwd("rmsnorm vs formula", e_rms, 1e-5);
    report_fwd("linear vs naive", e_lin, 1e-5);
    free(q), free(k), free(v), free(o), free(att), free(x), free(y), free(in), free(w), free(bb), free(out);
    free(lw), free(lo);
}

/* gemm() must give the same bits at 1 and 2 threads for every K (OpenBLAS blocks K
 * differently in its threaded driver, and with its Haswell kernels also splits C
 * differently for any K >= 64; gemm.c compensates).  On OpenBLAS whatever the fp32
 * default.  Shapes gemm_tiles leaves whole: 64 x 72 (gemm() cuts it in two column
 * stripes), 72 x 40 (two row stripes), 30 x 31 (too narrow to cut: one tile, on one
 * thread in a region from K = 71 on) and 4 x 4 (small enough for OpenBLAS never to
 * thread: gemm.c's direct call). */
typedef struct {
    int K, ta, tb, m, n;
    const float *a, *b;
    float *c;
} GemmJob;

/* A pthread of the caller's own: its OpenMP thread count is the process default,
 * whatever gemm_threads_set made the main thread's (a server's engine thread). */
static void *gemm_job(void *p) {
    GemmJob *j = p;
    gemm(j->ta, j->tb, j->m, j->n, j->K, 1.0f, j->a, j->ta ? j->m : j->K, j->b, j->tb ? j->K : j->n, 0.0f, j->c, j->n);
    return NULL;
}

static void test_gemm_threads(void) {
    int M = 64, N = 72, Kmax = 1100, bad = 0, first_bad = 0;
    int was = gemm_onednn_matmul_on(0);
    gemm_set_onednn_matmul(0, 0);
    float *a = randn((size_t)80 * Kmax, 1), *b = randn((size_t)Kmax * N, 1); /* op(A) up to 72 rows */
    float *c1 = xmalloc(sizeof(float) * M * N), *c2 = xmalloc(sizeof(float) * M * N);
    for (int K = 16; K <= Kmax; K += K < 290 ? 7 : 3) {
        int ta = K % 2, tb = (K / 3) % 2;
        static const int shapes[4][2] = {{64, 72}, {72, 40}, {30, 31}, {4, 4}};
        for (int shape = 0; shape < 4; shape++) {
            int m = shapes[shape][0], n = shapes[shape][1];
            gemm_threads_set(1);
            gemm(ta, tb, m, n, K, 1.0f, a, ta ? m : K, b, tb ? K : n, 0.0f, c1, n);
            gemm_threads_set(2);
            gemm(ta, tb, m, n, K, 1.0f, a, ta ? m : K, b, tb ? K : n, 0.0f, c2, n);
            if (memcmp(c1, c2, sizeof(float) * m * n) != 0 && bad++ == 0) first_bad = K;
        }
        for (int shape = 0; shape < 3 && K % 5 == 0; shape += 2) {
            /* main thread at one thread, the product made on another pthread */
            int m = shapes[shape][0], n = shapes[shape][1];
            gemm_threads_set(1);
            gemm(ta, tb, m, n, K, 1.0f, a, ta ? m : K, b, tb ? K : n, 0.0f, c1, n);
            GemmJob j = {K, ta, tb, m, n, a, b, c2};
            pthread_t th;
            if (pthread_create(&th, NULL, gemm_job, &j) == 0) {
                pthread_join(th, NULL);
                if (memcmp(c1, c2, sizeof(float) * m * n) != 0 && bad++ == 0) first_bad = K;
            }
            gemm_threads_set(2);
        }
    }
    if (bad) {
        printf("FAIL gemm at 1 vs 2 threads: expected identical bits, got %d products differing (first K=%d)\n", bad,
               first_bad);
        failures++;
    } else
        printf("ok   gemm bit-identical at 1 and 2 threads for K = 16..%d (64 x 72, 72 x 40, 30 x 31, 4 x 4; and on a "
               "pthread)\n",
               Kmax);
    gemm_set_onednn_matmul(0, was);
    free(a), free(b), free(c1), free(c2);
}

/* Large products are cut into tiles taken dynamically by the threads (gemm.c); C must
 * still be the same bits at 1, 2 and 3 threads, with tiling across N (N >= M) and
 * across M, for every transpose pair, and also match a naive product closely.  Run
 * with OpenBLAS (mm = 0) and with oneDNN's matmul primitive (mm = 1,
 * gemm_set_onednn_matmul). */
static void test_gemm_tiles(int mm) {
    static const int shapes[][3] = {{96, 700, 777}, {700, 96, 777}, {130, 1000, 64}, {517, 515, 300}, {600, 600, 50}};
    const char *kernel = mm ? "oneDNN matmul" : "OpenBLAS";
    int was = gemm_onednn_matmul_on(0); /* the fp32 default, restored at the end */
    if (gemm_set_onednn_matmul(0, mm) != mm) {
        printf("skip gemm tiles on oneDNN's matmul primitive: unavailable (libdnnl.so.2, libdnnl-dev at build)\n");
        return;
    }
    int bad = 0;
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = randn((size_t)M * K, 1), *b = randn((size_t)K * N, 1);
        float *c0 = randn((size_t)M * N, 1), *c[3];
        for (int tr = 0; tr < 4; tr++) {
            int ta = tr & 1, tb = tr >> 1;
            for (int t = 0; t < 3; t++) {
                c[t] = xmalloc(sizeof(float) * M * N);
                memcpy(c[t], c0, sizeof(float) * M * N);
                gemm_threads_set(t + 1);
                gemm(ta, tb, M, N, K, 0.5f, a, ta ? M : K, b, tb ? K : N, 0.25f, c[t], N);
            }
            gemm_threads_set(2);
            for (int t = 1; t < 3; t++)
                if (memcmp(c[0], c[t], sizeof(float) * M * N) && !bad++)
                    printf("FAIL gemm tiles (%s) %dx%dx%d ta=%d tb=%d: %d threads differ from 1\n", kernel, M, N, K, ta,
                           tb, t + 1);
            for (int i = 0; i < M; i += 37)
                for (int j = 0; j < N; j += 29) {
                    double acc = 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)(ta ? a[(size_t)k * M + i] : a[(size_t)i * K + k]) *
                               (tb ? b[(size_t)j * K + k] : b[(size_t)k * N + j]);
                    double want = 0.5 * acc + 0.25 * c0[(size_t)i * N + j];
                    worst = fmax(worst, fabs(c[0][(size_t)i * N + j] - want) / (fabs(want) + 1));
                }
            for (int t = 0; t < 3; t++) free(c[t]);
        }
        free(a), free(b), free(c0);
    }
    gemm_set_onednn_matmul(0, was);
    if (bad || worst > 5e-5) {
        printf("FAIL gemm tiles (%s): %d shape/transpose cases differ across thread counts, worst rel err %.2e\n",
               kernel, bad, worst);
        failures++;
    } else
        printf("ok   gemm tiles (%s) bit-identical at 1, 2 and 3 threads (5 shapes x 4 transposes), rel err %.2e\n",
               kernel, worst);
}

/* bf16 mixed precision (gemm_set_bf16): C must equal the fp32-accumulated product of
 * the bf16-rounded inputs (round to nearest even) to fp32 rounding, and be the same
 * bits at 1, 2 and 3 threads, on a tiled and an untiled shape, and also inside a
 * parallel region (how attention and the LM head call gemm) at 1 and 2 threads. */
static float bf16_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

static void test_gemm_bf16(int mm) {
    Error e;
    if (gemm_set_bf16(1, &e)) {
        printf("FAIL gemm bf16: %s\n", e.msg);
        failures++;
        return;
    }
    /* mm: oneDNN's matmul primitive (the default where available), else its gemm entry */
    const char *kernel = mm ? "oneDNN matmul" : "oneDNN gemm";
    if (gemm_set_onednn_matmul(1, mm) != mm) {
        printf("skip gemm bf16 on oneDNN's matmul primitive: unavailable (libdnnl-dev at build)\n");
        gemm_set_bf16(0, NULL);
        return;
    }
    if (mm) {
        /* the primitive must really exist for the tiles (else every tile would quietly
         * take the gemm entry point and this case would test that twice), and be one
         * of oneDNN's optimised kernels, not its reference loops */
        const char *impl = gemm_onednn_impl(1, 0, 1, 96, 700, 777);
        if (!impl || !strncmp(impl, "ref", 3)) {
            printf("FAIL gemm bf16: oneDNN's matmul primitive is %s for a 96x700x777 tile\n", impl ? impl : "missing");
            failures++;
        } else
            printf("     gemm bf16 tiles run oneDNN's %s\n", impl);
    }
    static const int shapes[][3] = {{96, 700, 777}, {40, 33, 70}, {300, 64, 512}};
    int bad = 0;
    double worst = 0, worst_f32 = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = randn((size_t)M * K, 1), *b = randn((size_t)K * N, 1), *c0 = randn((size_t)M * N, 1), *c[6];
        for (int tr = 0; tr < 4; tr++) {
            int ta = tr & 1, tb = tr >> 1;
            /* runs 0-2: 1, 2, 3 threads; 3: 2 threads again (a repeat gives the same
             * bits); 4, 5: called inside a parallel region (one untiled call, gemm.c)
             * of 2 threads and of 1, compared with each other */
            for (int t = 0; t < 6; t++) {
                c[t] = xmalloc(sizeof(float) * M * N);
                memcpy(c[t], c0, sizeof(float) * M * N);
                gemm_threads_set(t < 3 ? t + 1 : t == 5 ? 1 : 2);
                if (t < 4)
                    gemm(ta, tb, M, N, K, 0.5f, a, ta ? M : K, b, tb ? K : N, 0.25f, c[t], N);
                else {
#pragma omp parallel for
                    for (int i = 0; i < 2; i++)
                        if (i == 1) gemm(ta, tb, M, N, K, 0.5f, a, ta ? M : K, b, tb ? K : N, 0.25f, c[t], N);
                }
            }
            gemm_threads_set(2);
            for (int t = 1; t < 6; t++) {
                int ref = t < 5 ? 0 : 4;
                if (t != 4 && memcmp(c[ref], c[t], sizeof(float) * M * N) && !bad++)
                    printf("FAIL gemm bf16 (%s) %dx%dx%d ta=%d tb=%d: run %d differs from run %d\n", kernel, M, N, K,
                           ta, tb, t, ref);
            }
            for (int i = 0; i < M; i += 7)
                for (int j = 0; j < N; j += 5) {
                    double acc = 0, acc32 = 0;
                    for (int k = 0; k < K; k++) {
                        float x = ta ? a[(size_t)k * M + i] : a[(size_t)i * K + k];
                        float y = tb ? b[(size_t)j * K + k] : b[(size_t)k * N + j];
                        acc += (double)bf16_of(x) * bf16_of(y);
                        acc32 += (double)x * y;
                    }
                    double want = 0.5 * acc + 0.25 * c0[(size_t)i * N + j];
                    for (int t = 0; t < 5; t += 4) { /* top level and nested */
                        double got = c[t][(size_t)i * N + j];
                        worst = fmax(worst, fabs(got - want) / (fabs(want) + 1));
                        worst_f32 = fmax(worst_f32,
                                         fabs(got - (0.5 * acc32 + 0.25 * c0[(size_t)i * N + j])) / (fabs(want) + 1));
                    }
                }
            for (int t = 0; t < 6; t++) free(c[t]);
        }
        free(a), free(b), free(c0);
    }
    gemm_set_bf16(0, NULL);
    gemm_set_onednn_matmul(1, 1);
    /* fp32 accumulation of K <= 777 terms: ~1e-6; the bf16 rounding itself (2^-9 per
     * input) shows against the fp32 product, and must */
    if (bad || worst > 5e-5 || worst_f32 < 1e-4) {
        printf("FAIL gemm bf16 (%s): %d cases differ across threads, rel err vs bf16 inputs %.2e (tol 5e-5), "
               "vs fp32 %.2e (expected > 1e-4)\n",
               kernel, bad, worst, worst_f32);
        failures++;
    } else
        printf("ok   gemm bf16 (%s) = fp32 sum of bf16 inputs (rel err %.2e; %.2e from fp32), same bits at 1/2/3 "
               "threads, repeated, and nested at 1/2 threads\n",
               kernel, worst, worst_f32);
}

/* The matmul primitives are cached per shape, at most 128 (gemm_onednn.c): more shapes
 * than that evict the least recently used, and a shape made again after its eviction
 * must give the same bits as the first time; every product stays within the bf16
 * tolerance of test_gemm_bf16. */
static void test_gemm_bf16_cache(void) {
    Error e;
    if (gemm_set_bf16(1, &e) || !gemm_set_onednn_matmul(1, 1)) {
        gemm_set_bf16(0, NULL);
        printf("skip gemm bf16 primitive cache: oneDNN's matmul primitive unavailable\n");
        return;
    }
    const int M = 8, K = 40, nshapes = 150;
    float *a = randn((size_t)M * K, 1), *b = randn((size_t)K * (16 + nshapes), 1);
    float *first = xmalloc(sizeof(float) * M * 16), *c = xmalloc(sizeof(float) * M * (16 + nshapes));
    int bad = 0;
    double worst = 0;
    for (int s = 0; s <= nshapes; s++) {
        int N = 16 + (s == nshapes ? 0 : s); /* the last one repeats the first shape */
        gemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
        if (s == 0) memcpy(first, c, sizeof(float) * M * N);
        if (s == nshapes && memcmp(first, c, sizeof(float) * M * N) && !bad++)
            printf("FAIL gemm bf16 cache: %dx%dx%d made again after eviction differs\n", M, N, K);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += (double)bf16_of(a[i * K + k]) * bf16_of(b[(size_t)k * N + j]);
                worst = fmax(worst, fabs(c[(size_t)i * N + j] - acc) / (fabs(acc) + 1));
            }
    }
    gemm_set_bf16(0, NULL);
    free(a), free(b), free(first), free(c);
    if (bad || worst > 5e-5) {
        printf("FAIL gemm bf16 cache: %d repeated shapes differ, rel err %.2e (tol 5e-5)\n", bad, worst);
        failures++;
    } else
        printf("ok   gemm bf16 over %d shapes (> the 128 cached primitives): rel err %.2e, same bits after eviction\n",
               nshapes, worst);
}

/* bf16 shadows (gemm_bf16_weights_updated): a product that reads a weight block through
 * its bf16 copy must give the same bits as converting per product, with a sub-matrix
 * of the block (leading dimension wider than the matrix) on either side and either
 * transpose, at the top level and inside a parallel region; and after the weights
 * change and are declared updated again, the copy must follow (a stale copy fails). */
static void bf16_product(int ta, int tb, int M, int N, int K, const float *x, const float *w, int ldw, float *c,
                         int nested) {
    memset(c, 0, sizeof(float) * M * N);
    if (!nested) {
        gemm(ta, tb, M, N, K, 1.0f, x, ta ? M : K, w, ldw, 0.0f, c, N);
        return;
    }
#pragma omp parallel for
    for (int i = 0; i < 2; i++)
        if (i == 1) gemm(ta, tb, M, N, K, 1.0f, x, ta ? M : K, w, ldw, 0.0f, c, N);
}

/* bf16_product with both leading dimensions given. */
static void bf16_product_any(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                             float *c, int nested) {
    memset(c, 0, sizeof(float) * M * N);
    if (!nested) {
        gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, c, N);
        return;
    }
#pragma omp parallel for
    for (int i = 0; i < 2; i++)
        if (i == 1) gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, c, N);
}

static void test_gemm_bf16_shadow(void) {
    Error e;
    if (gemm_set_bf16(1, &e)) {
        printf("FAIL gemm bf16 shadow: %s\n", e.msg);
        failures++;
        return;
    }
    /* op(W) is [K,N]: W [K,N] or [N,K] inside a wider block; 2 M N K = 17 MFLOP: two
     * column stripes at the top level, so the stripes of W are read from its copy */
    const int M = 64, N = 300, K = 440, ldw = 480;
    const size_t nblock = (size_t)ldw * 480 + 100;
    float *block = randn(nblock, 3), *x = randn((size_t)M * K, 4);
    float *want = xmalloc(sizeof(float) * M * N), *got = xmalloc(sizeof(float) * M * N);
    int bad = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            for (size_t i = 0; i < nblock; i += 3) block[i] *= -1.5f; /* an optimizer step */
        for (int tb = 0; tb < 2; tb++)
            for (int nested = 0; nested < 2; nested++) {
                const float *w = block + 100;
                gemm_bf16_weights_forget_all();
                bf16_product(0, tb, M, N, K, x, w, ldw, want, nested);
                gemm_bf16_weights_updated(block, nblock);
                if (round == 1) bf16_product(0, tb, M, N, K, x, w, ldw, got, 0); /* fills the copy */
                bf16_product(0, tb, M, N, K, x, w, ldw, got, nested);
                if (memcmp(want, got, sizeof(float) * M * N) && !bad++)
                    printf("FAIL gemm bf16 shadow: round %d tb=%d nested=%d differs from per-product conversion\n",
                           round, tb, nested);
            }
    }
    /* A inside the block: rows of the block as the left operand, whole (64 x 300: column
     * stripes) and cut into row stripes (448 x 64) */
    float *b2 = randn((size_t)K * N, 5);
    for (int s = 0; s < 2; s++) {
        int M2 = s ? 448 : M, N2 = s ? 64 : N;
        float *w2 = xmalloc(sizeof(float) * M2 * N2), *g2 = xmalloc(sizeof(float) * M2 * N2);
        gemm_bf16_weights_forget_all();
        memset(w2, 0, sizeof(float) * M2 * N2);
        gemm(0, 0, M2, N2, K, 1.0f, block + 7, ldw, b2, N2, 0.0f, w2, N2);
        gemm_bf16_weights_updated(block, nblock);
        memset(g2, 0, sizeof(float) * M2 * N2);
        gemm(0, 0, M2, N2, K, 1.0f, block + 7, ldw, b2, N2, 0.0f, g2, N2);
        if (memcmp(w2, g2, sizeof(float) * M2 * N2) && !bad++)
            printf("FAIL gemm bf16 shadow: weights as A (%dx%d) differ from per-product conversion\n", M2, N2);
        free(w2), free(g2);
    }
    for (size_t i = 0; i < nblock; i += 5) block[i] += 0.75f; /* updated and declared: copy must follow */
    gemm_bf16_weights_updated(block, nblock);
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, got, N);
    gemm_bf16_weights_forget_all();
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, want, N);
    if (memcmp(want, got, sizeof(float) * M * N) && !bad++)
        printf("FAIL gemm bf16 shadow: the copy did not follow an update\n");
    /* declared before any update (trainer_init, dpo's reference pass): the first
     * product converts the block whole and reads the copy; a write behind the copy
     * (a LoRA merge, a checkpoint loaded) is seen only once declared touched, here a
     * small range inside it; declaring the block again
     * keeps a fresh copy as it is */
    gemm_bf16_weights_forget_all();
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, want, N);
    gemm_bf16_weights_declare(block, nblock);
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, got, N);
    if (memcmp(want, got, sizeof(float) * M * N) && !bad++)
        printf("FAIL gemm bf16 shadow: a declared block's copy differs from per-product conversion\n");
    for (size_t i = 0; i < 4000; i++) block[i] *= 2.0f; /* behind the copy's back */
    gemm_bf16_weights_declare(block, nblock);
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, got, N);
    if (memcmp(want, got, sizeof(float) * M * N) && !bad++) /* the unchanged copy: the old weights' product */
        printf("FAIL gemm bf16 shadow: declaring a block again converted it again\n");
    gemm_bf16_weights_touched(block + 5, 10); /* a part of the block: the whole copy goes stale */
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, got, N);
    gemm_bf16_weights_forget_all();
    gemm(0, 0, M, N, K, 1.0f, block + 7, ldw, b2, N, 0.0f, want, N);
    if (memcmp(want, got, sizeof(float) * M * N) && !bad++)
        printf("FAIL gemm bf16 shadow: the copy did not follow a write declared touched\n");
    gemm_set_bf16(0, NULL);
    free(block), free(x), free(b2), free(want), free(got);
    if (bad)
        failures++;
    else
        printf("ok   gemm bf16 shadow of updated and declared weights = per-product conversion, bit for bit, follows "
               "updates and touched writes\n");
}

/* Held activations (gemm_bf16_hold): products that read a held block, as either operand,
 * a sub-matrix of it (leading dimension wider than the matrix) with either transpose,
 * at the top level and inside a parallel region (first use nested: no copy is made
 * there), give the same bits as converting per product; and after a release, a block
 * written and held again is read anew (a stale copy fails). */
static void test_gemm_bf16_hold(void) {
    Error e;
    if (gemm_set_bf16(1, &e)) {
        printf("FAIL gemm bf16 hold: %s\n", e.msg);
        failures++;
        return;
    }
    /* op(X) is [M,K] or [K,N] inside a wider block; 2 M N K = 20 MFLOP: two tiles at the top level */
    const int M = 128, N = 192, K = 400, ld = 432;
    const size_t nblock = (size_t)ld * 410 + 40;
    float *block = randn(nblock, 6), *w = randn((size_t)K * N, 7);
    float *want = xmalloc(sizeof(float) * M * N), *got = xmalloc(sizeof(float) * M * N);
    int bad = 0, cases = 0;
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            for (size_t i = 0; i < nblock; i += 3) block[i] = block[i] * -1.25f + 0.5f; /* rewritten after release */
        for (int side = 0; side < 2; side++)                 /* the held block as A (x) or as B */
            for (int tr = 0; tr < 2; tr++)                   /* its transpose */
                for (int nested = 0; nested < 3; nested++) { /* 2: nested first, then top level */
                    const float *x = block + 40;
                    int ta = side == 0 ? tr : 0, tb = side == 1 ? tr : 0;
                    const float *A = side == 0 ? x : w, *B = side == 1 ? x : w;
                    int lda = side == 0 ? ld : (ta ? M : K), ldb = side == 1 ? ld : (tb ? K : N);
                    /* the other operand [K,N] or [M,K] dense: w holds enough for either */
                    bf16_product_any(ta, tb, M, N, K, A, lda, B, ldb, want, nested == 1);
                    gemm_bf16_hold(block, nblock);
                    if (nested == 2) bf16_product_any(ta, tb, M, N, K, A, lda, B, ldb, got, 1);
                    bf16_product_any(ta, tb, M, N, K, A, lda, B, ldb, got, nested == 1);
                    bf16_product_any(ta, tb, M, N, K, A, lda, B, ldb, got, nested == 1); /* the copy again */
                    gemm_bf16_release(block);
                    cases++;
                    if (memcmp(want, got, sizeof(float) * M * N) && !bad++)
                        printf("FAIL gemm bf16 hold: round %d side %d trans %d nested %d differs from per-product "
                               "conversion\n",
                               round, side, tr, nested);
                }
    }
    gemm_set_bf16(0, NULL);
    free(block), free(w), free(want), free(got);
    if (bad)
        failures++;
    else
        printf("ok   gemm bf16 held activations = per-product conversion, bit for bit (%d cases), read anew after "
               "release\n",
               cases);
}

/* ---- 1 vs 2 threads: bit-identical outputs and gradients ------------------------------------------ */
typedef struct {
    float *buf[32];
    size_t len[32];
    int n;
} Snap;

static void snap_add(Snap *s, const float *p, size_t n) {
    s->buf[s->n] = copyf(p, n);
    s->len[s->n++] = n;
}

/* Runs every op forward and backward on mid-sized inputs (big enough for both the
 * OpenMP loops and OpenBLAS to split work) and records everything produced. */
static void run_all_ops(Snap *s, uint64_t seed) {
    Rng saved = rng;
    rng_seed(&rng, seed);
    int N = 256, C = 192, OC = 384, V = 9000, B = 2, T = 100, nh = 4, nkv = 2, hd = 16;
    int *tok = xmalloc(sizeof(int) * N), *pos = xmalloc(sizeof(int) * N), *seg = xmalloc(sizeof(int) * B * T);
    for (int n = 0; n < N; n++) tok[n] = (int)rng_below(&rng, V), pos[n] = n % 50;
    for (int i = 0; i < B * T; i++) seg[i] = (i % T) < 60 ? 0 : 1;
    float *wte = randn((size_t)V * C, 1), *wpe = randn(50 * C, 1), *x = xmalloc(sizeof(float) * N * C);
    float *dwte = xcalloc((size_t)V * C, 4), *dwpe = xcalloc(50 * C, 4);
    embedding_forward(x, tok, wte, N, C);
    position_forward(x, pos, wpe, N, C);
    float *lw = randn(C, 1), *lb = randn(C, 1), *y = xmalloc(sizeof(float) * N * C), mean[256], rstd[256];
    float *dy = randn(N * C, 1), *dx = xcalloc(N * C, 4), *dlw = xcalloc(C, 4), *dlb = xcalloc(C, 4);
    layernorm_forward(y, mean, rstd, x, lw, lb, N, C, 1e-5f);
    layernorm_backward(dx, dlw, dlb, dy, x, lw, mean, rstd, N, C);
    rmsnorm_forward(y, rstd, x, lw, N, C, 1e-5f);
    rmsnorm_backward(dx, dlw, dy, x, lw, rstd, N, C);
    embedding_backward(dwte, dx, tok, N, C);
    position_backward(dwpe, dx, pos, N, C);
    snap_add(s, y, N * C), snap_add(s, dx, N * C), snap_add(s, dlw, C), snap_add(s, dlb, C);
    snap_add(s, dwpe, 50 * C);
    float *w = randn(OC * C, 0.1f), *bias = randn(OC, 1), *o = xmalloc(sizeof(float) * N * OC);
    float *dout = randn(N * OC, 1), *dw = xcalloc(OC * C, 4), *db = xcalloc(OC, 4);
    linear_forward(o, x, w, bias, N, C, OC);
    linear_backward(dx, dw, db, dout, x, w, N, C, OC);
    snap_add(s, o, N * OC), snap_add(s, dw, OC * C), snap_add(s, db, OC);
    gelu_forward(o, o, (size_t)N * OC);
    gelu_backward(dout, o, dout, (size_t)N * OC, 1);
    swiglu_backward(dout, dw, dout, o, o, (size_t)OC * C, 1);
    snap_add(s, dout, N * OC);
    /* attention on [B,T] = 200 rows of x's first columns */
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    float *q = randn(nq, 1), *k = randn(nk, 1), *v = randn(nk, 1), *ao = xmalloc(sizeof(float) * nq);
    float *att = xmalloc(sizeof(float) * (size_t)B * nh * T * T), *dao = randn(nq, 1);
    float *dq = xcalloc(nq, 4), *dk = xcalloc(nk, 4), *dv = xcalloc(nk, 4);
    rope_forward(q, pos, B * T, nh, hd, 10000.0f);
    rope_forward(k, pos, B * T, nkv, hd, 10000.0f);
    attention_forward(ao, att, q, k, v, seg, B, T, nh, nkv, hd);
    attention_backward(dq, dk, dv, dao, att, q, k, v, seg, B, T, nh, nkv, hd);
    rope_backward(dq, pos, B * T, nh, hd, 10000.0f);
    snap_add(s, ao, nq), snap_add(s, dq, nq), snap_add(s, dk, nk), snap_add(s, dv, nk);
    /* and without grouping (kv = the first nq floats of fresh buffers) */
    float *k2 = randn(nq, 1), *v2 = randn(nq, 1), *dk2 = xcalloc(nq, 4), *dv2 = xcalloc(nq, 4);
    attention_forward(ao, att, q, k2, v2, seg, B, T, nh, nh, hd);
    attention_backward(dq, dk2, dv2, dao, att, q, k2, v2, seg, B, T, nh, nh, hd);
    snap_add(s, ao, nq), snap_add(s, dq, nq), snap_add(s, dk2, nq), snap_add(s, dv2, nq);
    free(k2), free(v2), free(dk2), free(dv2);
    /* logprobs on y with wte as the tied head */
    float *lp = xmalloc(sizeof(float) * N), *ent = xmalloc(sizeof(float) * N), *lse = xmalloc(sizeof(float) * N);
    float *dlp = randn(N, 1), *dh = xcalloc(N * C, 4);
    for (int n = 0; n < N; n += 7) tok[n] = -1;
    logprobs_forward(lp, ent, lse, NULL, y, wte, tok, N, C, V);
    logprobs_backward(dh, dwte, dlp, y, wte, tok, lse, N, C, V, 1.0f);
    snap_add(s, lp, N), snap_add(s, ent, N), snap_add(s, dh, N * C), snap_add(s, dwte, (size_t)V * C);
    logprobs_forward_backward(lp, ent, NULL, dh, dwte, dlp, y, wte, tok, N, C, V, 1.0f); /* the one-pass version */
    snap_add(s, lp, N), snap_add(s, ent, N), snap_add(s, dh, N * C), snap_add(s, dwte, (size_t)V * C);
    free(tok), free(pos), free(seg), free(wte), free(wpe), free(x), free(dwte), free(dwpe), free(lw), free(lb);
    free(y), free(dy), free(dx), free(dlw), free(dlb), free(w), free(bias), free(o), free(dout), free(dw), free(db);
    free(q), free(k), free(v), free(ao), free(att), free(dao), free(dq), free(dk), free(dv), free(lp), free(ent);
    free(lse), free(dlp), free(dh);
    rng = saved;
}

static void test_threads(void) {
    Snap s1 = {0}, s2 = {0};
    gemm_threads_set(1);
    run_all_ops(&s1, 42);
    gemm_threads_set(2);
    run_all_ops(&s2, 42);
    int bad = 0;
    for (int i = 0; i < s1.n; i++)
        if (memcmp(s1.buf[i], s2.buf[i], sizeof(float) * s1.len[i]) != 0) {
            size_t j = 0;
            while (j < s1.len[i] && memcmp(&s1.buf[i][j], &s2.buf[i][j], sizeof(float)) == 0) j++;
            printf("FAIL threads: tensor %d differs at element %zu: 1 thread %.9g, 2 threads %.9g\n", i, j,
                   s1.buf[i][j], s2.buf[i][j]);
            bad++;
        }
    if (bad)
        failures++;
    else
        printf("ok   %d output/gradient tensors bit-identical with 1 and 2 threads\n", s1.n);
    for (int i = 0; i < s1.n; i++) free(s1.buf[i]), free(s2.buf[i]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng_seed(&rng, 1234);
    gemm_threads_set(0);
    test_embedding();
    test_norms();
    test_linear();
    test_rope();
    test_attention();
    test_pointwise();
    test_logprobs_grad();
    test_logprobs_reference(600, 16, 4096 + 1001);
    test_logprobs_reference(7, 4, 5);
    test_logprobs_grouped(100, 7, NULL);
    static const int counts[] = {90, 0, 100, 280, 0, 120, 100, 60, 0, 280, 0};
    test_logprobs_grouped(300, (int)(sizeof counts / sizeof *counts), counts);
    test_logprobs_argmax_ties();
    test_forward_reference();
    test_gemm_threads();
    test_gemm_tiles(0);
    test_gemm_tiles(1);
    test_gemm_bf16(1);
    test_gemm_bf16(0);
    test_gemm_bf16_cache();
    test_gemm_bf16_shadow();
    test_gemm_bf16_hold();
    test_threads();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all op gradient checks passed\n");
    return 0;
}
