/* test_attention_flash.c — the fused attention (ops.h attention_flash_*, ops_flash.c)
 * against the kernels that keep T x T probabilities: attention_forward/backward for
 * the default options, attention_ext_forward/backward (ops_ext.h) for a query scale,
 * soft-capping and sliding windows, each alone and combined.  Compared: the output
 * and dq, dk, dv for one random dout, at several T (one row, inside one block, at
 * block edges, ragged blocks, odd T, 1030 > 1024), head counts and GQA groupings (no
 * grouping, 9 on 3 as SmolLM2, 8 on 1), windows of 1 key, inside one query block,
 * wider than a key block, and T - 1, with packed segments and right padding.
 * Tolerance 1e-5 relative to the scale: max |flash - dense| / max |dense| of the
 * output, and of the gradients with max |dense| over dq, dk and dv together (also
 * printed: the 2-norm relative error, except where the exact tensor is 0).
 * Also: the same bytes at 1 and 2 threads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"

#define TOL 1e-5

static Rng rng;

static float *randn(size_t n) {
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = rng_normal(&rng);
    return p;
}

static double maxabs(const float *x, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(x[i]));
    return mx;
}

/* max |got - want| / scale: the error relative to the tensor's scale.  (Per element
 * relative errors are not a fair measure: an element of dq that cancels to ~0
 * carries the rounding of its O(1) terms in both kernels.) */
static double worst_rel(const float *got, const float *want, size_t n, double scale) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
    }
    return w / scale;
}

/* ||got - want|| / ||want|| (2-norms) */
static double norm_rel(const float *got, const float *want, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)got[i] - want[i];
        d += e * e;
        s += (double)want[i] * want[i];
    }
    return sqrt(d) / fmax(sqrt(s), 1e-6);
}

static void run_flash(float *o, float *lse, float *dq, float *dk, float *dv, const float *q, const float *k,
                      const float *v, const float *r, const int *seg, int B, int T, int nh, int nkv, int hd,
                      const AttnOpts *ao) {
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    memset(dq, 0, nq * sizeof(float));
    memset(dk, 0, nk * sizeof(float));
    memset(dv, 0, nk * sizeof(float));
    attention_flash_forward(o, lse, q, k, v, seg, B, T, nh, nkv, hd, ao);
    attention_flash_backward(dq, dk, dv, r, o, lse, q, k, v, seg, B, T, nh, nkv, hd, ao);
}

/* ao NULL: the default options against attention_*; else against attention_ext_* */
static void test_case(int B, int T, int nh, int nkv, int hd, const AttnOpts *ao) {
    size_t nq = (size_t)B * T * nh * hd, nk = (size_t)B * T * nkv * hd;
    float *q = randn(nq), *k = randn(nk), *v = randn(nk), *r = randn(nq);
    int *seg = xmalloc(sizeof(int) * (size_t)B * T);
    /* row 0: one sequence; row 1: two packed examples and right padding */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) seg[b * T + t] = b == 0 ? 0 : t < T / 3 ? 1 : t < T - T / 5 ? 2 : 3;
    float *att = xmalloc(sizeof(float) * (size_t)B * nh * T * T);
    float *o0 = xmalloc(nq * sizeof(float)), *o1 = xmalloc(nq * sizeof(float)), *o2 = xmalloc(nq * sizeof(float));
    float *lse = xmalloc(sizeof(float) * (size_t)B * nh * T);
    float *dq0 = xcalloc(nq, sizeof(float)), *dk0 = xcalloc(nk, sizeof(float)), *dv0 = xcalloc(nk, sizeof(float));
    float *dq1 = xmalloc(nq * sizeof(float)), *dk1 = xmalloc(nk * sizeof(float)), *dv1 = xmalloc(nk * sizeof(float));
    float *dq2 = xmalloc(nq * sizeof(float)), *dk2 = xmalloc(nk * sizeof(float)), *dv2 = xmalloc(nk * sizeof(float));
    if (ao) {
        attention_ext_forward(o0, att, q, k, v, seg, B, T, nh, nkv, hd, ao);
        attention_ext_backward(dq0, dk0, dv0, r, att, q, k, v, B, T, nh, nkv, hd, ao);
    } else {
        attention_forward(o0, att, q, k, v, seg, B, T, nh, nkv, hd);
        attention_backward(dq0, dk0, dv0, r, att, q, k, v, seg, B, T, nh, nkv, hd);
    }
    run_flash(o1, lse, dq1, dk1, dv1, q, k, v, r, seg, B, T, nh, nkv, hd, ao);
    /* the gradients' scale is the largest of the three: at T = 1 dq and dk are exactly
     * 0 (a softmax over one key), and both kernels give rounding noise or 0 there */
    double gs = fmax(maxabs(dq0, nq), fmax(maxabs(dk0, nk), maxabs(dv0, nk)));
    double eo = worst_rel(o1, o0, nq, maxabs(o0, nq)), eq = worst_rel(dq1, dq0, nq, gs),
           ek = worst_rel(dk1, dk0, nk, gs), ev = worst_rel(dv1, dv0, nk, gs);
    double w = fmax(fmax(eo, eq), fmax(ek, ev));
    double nr =
        fmax(fmax(norm_rel(o1, o0, nq), norm_rel(dq1, dq0, nq)), fmax(norm_rel(dk1, dk0, nk), norm_rel(dv1, dv0, nk)));
    char opts[64] = "";
    if (ao) snprintf(opts, sizeof opts, " scale %.3g cap %g window %d", ao->scale, ao->softcap, ao->window);
    printf("%-4s B=%d T=%-5d nh=%d nkv=%d hd=%-3d%s max err / max: out %.1e dq %.1e dk %.1e dv %.1e; worst 2-norm "
           "rel %.1e\n",
           w <= TOL ? "ok" : "FAIL", B, T, nh, nkv, hd, opts, eo, eq, ek, ev, nr);
    CHECK(w <= TOL, "flash attention B=%d T=%d nh=%d nkv=%d hd=%d%s: expected within %g of the dense kernel, got %.2e",
          B, T, nh, nkv, hd, opts, TOL, w);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    run_flash(o2, lse, dq2, dk2, dv2, q, k, v, r, seg, B, T, nh, nkv, hd, ao);
    omp_set_num_threads(nt);
    CHECK(!memcmp(o1, o2, nq * sizeof(float)) && !memcmp(dq1, dq2, nq * sizeof(float)) &&
              !memcmp(dk1, dk2, nk * sizeof(float)) && !memcmp(dv1, dv2, nk * sizeof(float)),
          "flash attention T=%d nh=%d nkv=%d%s: results differ between %d threads and 1", T, nh, nkv, opts, nt);
    free(q), free(k), free(v), free(r), free(seg), free(att), free(o0), free(o1), free(o2), free(lse);
    free(dq0), free(dk0), free(dv0), free(dq1), free(dk1), free(dv1), free(dq2), free(dk2), free(dv2);
}

/* The options on their own and together, at T where a window's first key block starts
 * inside a query block, a window spans several key blocks, and a row sees nothing of
 * its segment inside a whole key block (the packed row of test_case). */
static void test_options(void) {
    const int Ts[] = {5, 65, 200, 333};
    const int heads[][3] = {{4, 4, 16}, {9, 3, 64}, {8, 1, 32}};
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
        for (size_t h = 0; h < 3; h++) {
            int T = Ts[i], hd = heads[h][2];
            float sc = 1.0f / sqrtf((float)hd);
            /* a window of 1 (only the diagonal), inside a query block, wider than a key
             * block, T - 1 (all but one key), and T (the whole causal row) */
            const int windows[] = {1, 17, 150, T - 1, T};
            const AttnOpts cases[] = {
                {0.37f, 0, 0},   /* query scale alone (Gemma's query_pre_attn_scalar) */
                {sc, 1.5f, 0},   /* soft-cap alone: |s| reaches the cap, tanh bends */
                {0.3f, 2.0f, 0}, /* both */
            };
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
                test_case(2, T, heads[h][0], heads[h][1], hd, &cases[c]);
            for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
                test_case(2, T, heads[h][0], heads[h][1], hd, &(AttnOpts){sc, 0, windows[w]});
                test_case(2, T, heads[h][0], heads[h][1], hd, &(AttnOpts){0.3f, 2.0f, windows[w]});
            }
        }
    /* Gemma 3's local layers at long T: a window of 512 over T = 1030 (key blocks that
     * start mid-block), and Gemma 2's soft-cap of 50 with scale 1/sqrt(224) */
    test_case(1, 1030, 8, 1, 32, &(AttnOpts){1.0f / sqrtf(224.0f), 50.0f, 512});
    test_case(1, 1030, 4, 2, 16, &(AttnOpts){0.25f, 0, 512});
}

int main(void) {
    rng_seed(&rng, 11);
    const int Ts[] = {1, 5, 64, 65, 128, 200, 1030};
    const int heads[][3] = {{4, 4, 16}, {9, 3, 64}, {8, 1, 32}};
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++)
        for (size_t h = 0; h < 3; h++) {
            if (Ts[i] > 200 && h == 0) continue; /* keep the run short */
            test_case(2, Ts[i], heads[h][0], heads[h][1], heads[h][2], NULL);
        }
    test_options();
    return check_summary("test_attention_flash");
}
