/* test_sampler.c — the sampler against hand-computed distributions.
 *
 * Each filter is checked by its support (which tokens can come out), by the
 * frequencies of many draws (within 5 standard errors of the expected probability)
 * and by the reported log-probabilities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate/sampler.h"

static void softmax_ref(const float *z, int V, float T, double *p) {
    double m = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) m = fmax(m, z[v] / T);
    for (int v = 0; v < V; v++) s += (p[v] = exp(z[v] / T - m));
    for (int v = 0; v < V; v++) p[v] /= s;
}

/* Draws n tokens and compares frequencies with expected probabilities want[V]. */
static void check_freq(const char *what, const SamplerConfig *cfg, const float *z, int V, const double *want, int n) {
    Sampler s;
    sampler_init(&s, cfg, V);
    Rng r;
    rng_seed(&r, 1234);
    int *cnt = calloc(V, sizeof(int));
    for (int i = 0; i < n; i++) {
        float pl, sl;
        int t = sampler_sample(&s, z, NULL, 0, &r, &pl, &sl);
        CHECK(t >= 0 && t < V, "%s: token %d out of range", what, t);
        if (t < 0 || t >= V) break;
        cnt[t]++;
        CHECK(fabs(sl - log(want[t])) < 1e-4, "%s: sample_logp of token %d: expected %.6f got %.6f", what, t,
              log(want[t]), sl);
    }
    for (int v = 0; v < V; v++) {
        double f = (double)cnt[v] / n, se = sqrt(want[v] * (1 - want[v]) / n);
        if (want[v] == 0)
            CHECK(cnt[v] == 0, "%s: token %d must never be drawn, drawn %d times", what, v, cnt[v]);
        else
            CHECK(fabs(f - want[v]) < 5 * se + 1e-9, "%s: token %d: expected p=%.4f got %.4f", what, v, want[v], f);
    }
    free(cnt);
    sampler_free(&s);
}

static void test_greedy(void) {
    float z[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, -3.0f};
    SamplerConfig c = sampler_config_default();
    c.temperature = 0;
    Sampler s;
    sampler_init(&s, &c, 6);
    Rng r, r0;
    rng_seed(&r, 7);
    r0 = r;
    float pl, sl;
    int t = sampler_sample(&s, z, NULL, 0, &r, &pl, &sl);
    CHECK(t == 1, "greedy: expected the first maximum (1), got %d", t);
    CHECK(memcmp(&r, &r0, sizeof r) == 0, "greedy must not consume the rng");
    CHECK(sl == 0, "greedy sample_logp: expected 0 got %g", sl);
    double p[6];
    softmax_ref(z, 6, 1, p);
    CHECK(fabs(pl - log(p[1])) < 1e-6, "greedy policy_logp: expected %.7f got %.7f", log(p[1]), pl);
    /* penalty on token 1 and 3 makes 4 the argmax */
    c.repetition_penalty = 1.5f;
    sampler_free(&s);
    sampler_init(&s, &c, 6);
    int hist[3] = {1, 3, 1};
    t = sampler_sample(&s, z, hist, 3, &r, &pl, &sl);
    CHECK(t == 4, "greedy with repetition penalty: expected 4 got %d", t);
    CHECK(fabs(pl - log(p[4])) < 1e-6, "policy_logp ignores the penalty: expected %.7f got %.7f", log(p[4]), pl);
    sampler_free(&s);
}

static void test_repetition_penalty(void) {
    float z[5] = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
    int hist[5] = {0, 1, 0, 0, 9}; /* duplicates count once; 9 is out of range and ignored */
    SamplerConfig c = sampler_config_default();
    Sampler s;
    sampler_init(&s, &c, 5);
    sampler_repetition_penalty(&s, z, hist, 5, 2.0f);
    float want[5] = {1.0f, -4.0f, 1.0f, 0.5f, 3.0f};
    for (int i = 0; i < 5; i++) CHECK(z[i] == want[i], "penalty: logit %d expected %g got %g", i, want[i], z[i]);
    sampler_free(&s);
}

static void test_temperature(void) {
    float z[5] = {1.0f, 0.2f, -0.5f, 0.9f, 0.0f};
    double p[5];
    SamplerConfig c = sampler_config_default();
    c.temperature = 0.7f;
    softmax_ref(z, 5, 0.7f, p);
    check_freq("temperature 0.7", &c, z, 5, p, 100000);
    c.temperature = 1.0f;
    softmax_ref(z, 5, 1.0f, p);
    check_freq("temperature 1", &c, z, 5, p, 100000);
}

static void test_top_k(void) {
    float z[5] = {1.0f, 0.2f, -0.5f, 0.9f, 0.0f};
    SamplerConfig c = sampler_config_default();
    c.top_k = 2;
    double p[5] = {0}, e0 = exp(1.0), e3 = exp(0.9);
    p[0] = e0 / (e0 + e3);
    p[3] = e3 / (e0 + e3);
    check_freq("top-k 2", &c, z, 5, p, 50000);
    /* ties with the k-th largest are kept, as transformers does */
    float zt[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    double pt[4] = {0, 0.5, 0.5, 0};
    c.top_k = 1;
    check_freq("top-k 1 with a tie", &c, zt, 4, pt, 20000);
}

static void test_top_p_min_p(void) {
    /* probabilities 0.5, 0.3, 0.15, 0.05 exactly (logits are their logs) */
    float z[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    SamplerConfig c = sampler_config_default();
    c.top_p = 0.7f; /* mass before token 1 is 0.5 < 0.7: keep; before token 2 is 0.8: drop */
    double p1[4] = {0.5 / 0.8, 0.3 / 0.8, 0, 0};
    check_freq("top-p 0.7", &c, z, 4, p1, 50000);
    c.top_p = 0.85f;
    double p2[4] = {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0};
    check_freq("top-p 0.85", &c, z, 4, p2, 50000);
    c.top_p = 0.3f; /* the top token alone */
    double p3[4] = {1, 0, 0, 0};
    check_freq("top-p 0.3", &c, z, 4, p3, 2000);
    c.top_p = 1.0f;
    c.min_p = 0.2f; /* threshold 0.1: drops 0.05 */
    check_freq("min-p 0.2", &c, z, 4, p2, 50000);
    c.min_p = 0.5f; /* threshold 0.25 */
    check_freq("min-p 0.5", &c, z, 4, p1, 50000);
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* A vocabulary-sized case: the fast top-p path must pick the same nucleus as
 * sorting everything. */
static void test_top_p_large(void) {
    int V = 50257;
    float *z = malloc(V * sizeof(float));
    Rng g;
    rng_seed(&g, 99);
    for (int v = 0; v < V; v++) z[v] = 3.0f * rng_normal(&g);
    double *p = malloc(V * sizeof(double)), *sorted = malloc(V * sizeof(double));
    softmax_ref(z, V, 1, p);
    float tops[3] = {0.5f, 0.9f, 0.99f};
    for (int k = 0; k < 3; k++) {
        memcpy(sorted, p, V * sizeof(double));
        qsort(sorted, V, sizeof(double), cmp_desc);
        double before = 0, mass = 0;
        int keep = 0;
        while (keep < V && (keep == 0 || before < tops[k])) before += sorted[keep++];
        double thr = sorted[keep - 1];
        for (int i = 0; i < keep; i++) mass += sorted[i];
        SamplerConfig c = sampler_config_default();
        c.top_p = tops[k];
        Sampler s;
        sampler_init(&s, &c, V);
        Rng r;
        rng_seed(&r, 5);
        for (int i = 0; i < 100; i++) {
            float sl;
            int t = sampler_sample(&s, z, NULL, 0, &r, NULL, &sl);
            CHECK(p[t] >= thr, "top-p %.2f: token %d with p=%g outside the nucleus (threshold %g)", tops[k], t, p[t],
                  thr);
            CHECK(fabs(sl - log(p[t] / mass)) < 1e-3, "top-p %.2f: sample_logp expected %.6f got %.6f", tops[k],
                  log(p[t] / mass), sl);
        }
        sampler_free(&s);
    }
    free(z);
    free(p);
    free(sorted);
}

/* policy_logp = log softmax(logits / T)[token] on the raw logits, whatever the
 * filters and the penalty (two code paths: a shared pass when nothing filters). */
static void test_policy_logp(void) {
    float z[6] = {1.0f, 0.2f, -0.5f, 0.9f, 0.0f, 2.5f};
    double p[6];
    softmax_ref(z, 6, 0.7f, p);
    int hist[2] = {5, 0};
    for (int variant = 0; variant < 4; variant++) {
        SamplerConfig c = sampler_config_default();
        c.temperature = 0.7f;
        if (variant == 1) c.top_k = 3;
        if (variant == 2) c.top_p = 0.8f, c.min_p = 0.05f;
        if (variant == 3) c.repetition_penalty = 1.3f;
        Sampler s;
        sampler_init(&s, &c, 6);
        Rng r;
        rng_seed(&r, 17 + variant);
        for (int i = 0; i < 200; i++) {
            float pl;
            int t = sampler_sample(&s, z, hist, 2, &r, &pl, NULL);
            CHECK(fabs(pl - log(p[t])) < 2e-6, "policy_logp variant %d token %d: expected %.7f got %.7f", variant, t,
                  log(p[t]), pl);
        }
        sampler_free(&s);
    }
}

static void test_determinism(void) {
    float z[8] = {0.1f, 0.4f, -0.2f, 0.3f, 0.0f, 0.25f, -1.0f, 0.35f};
    SamplerConfig c = sampler_config_default();
    c.top_k = 6;
    c.top_p = 0.9f;
    c.temperature = 1.3f;
    Sampler s;
    sampler_init(&s, &c, 8);
    Rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    int same = 1, distinct = 0, first = -1;
    for (int i = 0; i < 200; i++) {
        int x = sampler_sample(&s, z, NULL, 0, &a, NULL, NULL), y = sampler_sample(&s, z, NULL, 0, &b, NULL, NULL);
        same &= x == y;
        if (first < 0) first = x;
        distinct |= x != first;
    }
    CHECK(same, "same seed must give the same draws");
    CHECK(distinct, "200 draws at temperature 1.3 were all the same token");
    sampler_free(&s);
}

static void test_config_check(void) {
    Error e;
    SamplerConfig c = sampler_config_default();
    CHECK(sampler_config_check(&c, &e) == 0, "default config rejected: %s", e.msg);
    c.top_p = 0;
    CHECK(sampler_config_check(&c, &e) == EX_USAGE && strstr(e.msg, "--top-p"), "top-p 0 accepted");
    c = sampler_config_default();
    c.temperature = -1;
    CHECK(sampler_config_check(&c, &e) == EX_USAGE && strstr(e.msg, "--temperature"), "temperature -1 accepted");
    c = sampler_config_default();
    c.repetition_penalty = 0;
    CHECK(sampler_config_check(&c, &e) == EX_USAGE, "repetition penalty 0 accepted");
    c = sampler_config_default();
    c.min_p = 1.5f;
    CHECK(sampler_config_check(&c, &e) == EX_USAGE, "min-p 1.5 accepted");
    c = sampler_config_default();
    c.top_k = -1;
    CHECK(sampler_config_check(&c, &e) == EX_USAGE, "top-k -1 accepted");
}

int main(void) {
    test_greedy();
    test_repetition_penalty();
    test_temperature();
    test_top_k();
    test_top_p_min_p();
    test_top_p_large();
    test_policy_logp();
    test_determinism();
    test_config_check();
    return check_summary("test_sampler");
}
