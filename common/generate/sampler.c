/* sampler.c — see sampler.h.
 *
 * Each filter narrows a candidate list (s->cand[0..n)) instead of writing -inf into
 * a copy of the logits, so later steps only touch survivors; the semantics are those
 * of transformers' logits warpers (generation/logits_process.py):
 *   TemperatureLogitsWarper  scores / temperature
 *   TopKLogitsWarper         remove scores < k-th largest score (ties with it stay)
 *   TopPLogitsWarper         sort ascending, remove tokens whose cumulative
 *                            probability <= 1 - top_p (Holtzman et al. 2019, eq. 3)
 *   MinPLogitsWarper         remove tokens with p < min_p * p_max (Nguyen et al. 2024)
 * all keeping at least one token.  The final draw walks the survivors in a fixed
 * order with one uniform number, so a seed reproduces a choice exactly. */
#define _GNU_SOURCE /* qsort_r */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

SamplerConfig sampler_config_default(void) {
    SamplerConfig c = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repetition_penalty = 1.0f};
    return c;
}

int sampler_config_check(const SamplerConfig *c, Error *e) {
    if (!(c->temperature >= 0) || !isfinite(c->temperature))
        return err_set(e, EX_USAGE, "--temperature must be >= 0 (got %g)", c->temperature);
    if (c->top_k < 0) return err_set(e, EX_USAGE, "--top-k must be >= 0 (got %d)", c->top_k);
    if (!(c->top_p > 0 && c->top_p <= 1)) return err_set(e, EX_USAGE, "--top-p must be in (0, 1] (got %g)", c->top_p);
    if (!(c->min_p >= 0 && c->min_p <= 1)) return err_set(e, EX_USAGE, "--min-p must be in [0, 1] (got %g)", c->min_p);
    if (!(c->repetition_penalty > 0) || !isfinite(c->repetition_penalty))
        return err_set(e, EX_USAGE, "--repetition-penalty must be > 0 (got %g)", c->repetition_penalty);
    return 0;
}

void sampler_init(Sampler *s, const SamplerConfig *cfg, int V) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->V = V;
    s->work = xmalloc((size_t)V * sizeof(float));
    s->tmp = xmalloc((size_t)V * sizeof(float));
    s->cand = xmalloc((size_t)V * sizeof(int));
    s->seen = xcalloc((size_t)V, sizeof(unsigned));
}

void sampler_free(Sampler *s) {
    free(s->work);
    free(s->tmp);
    free(s->cand);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

void sampler_repetition_penalty(Sampler *s, float *logits, const int *hist, int n, float penalty) {
    if (penalty == 1.0f || n <= 0) return;
    if (++s->stamp == 0) { /* wrapped: old stamps could collide with new ones */
        memset(s->seen, 0, (size_t)s->V * sizeof(unsigned));
        s->stamp = 1;
    }
    for (int i = 0; i < n; i++) {
        int t = hist[i];
        if (t < 0 || t >= s->V || s->seen[t] == s->stamp) continue;
        s->seen[t] = s->stamp;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
    }
}

float sampler_logprob(const float *logits, int V, int token, float tau) {
    /* float exponentials (vectorisable, ~1 ulp) summed in double: the result is
     * within ~1e-7 of the all-double computation at a fraction of its cost, which
     * matters because it runs for every sampled token over the whole vocabulary */
    float inv = 1.0f / tau, m = -INFINITY;
    for (int v = 0; v < V; v++)
        if (logits[v] * inv > m) m = logits[v] * inv;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += expf(logits[v] * inv - m);
    if (!(sum > 0)) return -INFINITY; /* every logit -inf (or NaN): no distribution */
    return (float)((double)(logits[token] * inv - m) - log(sum));
}

static int argmax_first(const float *z, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    return best;
}

/* k-th largest (1-based) of a[0..n) by quickselect; a is permuted. */
static float kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want];
    }
    return a[want];
}

/* Sort candidates by probability, largest first, ties by token id (deterministic). */
static int cmp_prob_desc(const void *a, const void *b, void *arg) {
    const float *p = arg;
    int x = *(const int *)a, y = *(const int *)b;
    float px = p[x], py = p[y];
    if (px != py) return px > py ? -1 : 1;
    return (x > y) - (x < y);
}

/* Normalises p over the candidates; returns the maximum probability (and the sum
 * before normalising in *total when not NULL). */
static float normalise(float *p, const int *cand, int n, double *total) {
    double sum = 0;
    float mx = 0;
    for (int i = 0; i < n; i++) sum += p[cand[i]];
    for (int i = 0; i < n; i++) {
        p[cand[i]] = (float)(p[cand[i]] / sum);
        if (p[cand[i]] > mx) mx = p[cand[i]];
    }
    if (total) *total = sum;
    return mx;
}

/* Top-p over normalised probabilities p (Holtzman et al. 2019): keep the descending
 * prefix while the mass before a token is < top_p.  Only tokens that can be in the
 * nucleus are sorted: all tokens >= a threshold c form a descending prefix, so if
 * their mass already reaches top_p the nucleus lies inside them.  c starts near the
 * top and is lowered until that holds (at worst every candidate is sorted). */
static int top_p_filter(int *cand, int n, float *p, float top_p, float pmax) {
    int *sel = cand;
    int m = n;
    for (float c = pmax * 1e-2f; c > 0; c *= 1e-2f) {
        double mass = 0;
        int cnt = 0;
        for (int i = 0; i < n; i++)
            if (p[cand[i]] >= c) mass += p[cand[i]], cnt++;
        if (mass >= top_p || cnt == n) {
            /* move the tokens >= c to the front (stable, keeps determinism) */
            int w = 0;
            for (int i = 0; i < n; i++)
                if (p[cand[i]] >= c) {
                    int t = cand[i];
                    cand[i] = cand[w];
                    cand[w++] = t;
                }
            m = w;
            break;
        }
        if (c < FLT_MIN) break;
    }
    qsort_r(sel, (size_t)m, sizeof(int), cmp_prob_desc, p);
    double before = 0;
    int keep = 0;
    while (keep < m && (keep == 0 || before < top_p)) before += p[sel[keep++]];
    return keep;
}

int sampler_sample(Sampler *s, const float *logits, const int *hist, int n_hist, Rng *rng, float *policy_logp,
                   float *sample_logp) {
    const SamplerConfig *c = &s->cfg;
    int V = s->V;
    float *z = s->work;
    memcpy(z, logits, (size_t)V * sizeof(float));
    sampler_repetition_penalty(s, z, hist, n_hist, c->repetition_penalty);
    float tau = c->temperature > 0 ? c->temperature : 1.0f;
    int token;
    if (c->temperature == 0) {
        token = argmax_first(z, V);
        if (sample_logp) *sample_logp = 0;
        if (policy_logp) *policy_logp = sampler_logprob(logits, V, token, tau);
        return token;
    }
    int n = 0;
    float zmax = -INFINITY;
    for (int v = 0; v < V; v++) {
        z[v] /= c->temperature;
        if (z[v] > -INFINITY) {
            s->cand[n++] = v;
            if (z[v] > zmax) zmax = z[v];
        }
    }
    if (n == 0) { /* every logit is -inf: nothing sensible to draw; take token 0 */
        if (sample_logp) *sample_logp = -INFINITY;
        if (policy_logp) *policy_logp = -INFINITY;
        return 0;
    }
    if (c->top_k > 0 && c->top_k < n) {
        for (int i = 0; i < n; i++) s->tmp[i] = z[s->cand[i]];
        float kth = kth_largest(s->tmp, n, c->top_k);
        int w = 0;
        for (int i = 0; i < n; i++)
            if (z[s->cand[i]] >= kth) s->cand[w++] = s->cand[i];
        n = w;
    }
    /* probabilities over the survivors; z becomes p in place.  When nothing has
     * been changed or removed yet (no penalty, every logit finite, no top-k), this
     * sum is also the normaliser of the policy distribution softmax(logits / T),
     * which then costs no second pass over the vocabulary. */
    int policy_from_sum = c->repetition_penalty == 1.0f && n == V;
    double total;
    for (int i = 0; i < n; i++) z[s->cand[i]] = expf(z[s->cand[i]] - zmax);
    float pmax = normalise(z, s->cand, n, &total);
    if (c->top_p < 1.0f && n > 1) {
        n = top_p_filter(s->cand, n, z, c->top_p, pmax);
        pmax = normalise(z, s->cand, n, NULL);
    }
    if (c->min_p > 0 && n > 1) {
        float thr = c->min_p * pmax;
        int w = 0;
        for (int i = 0; i < n; i++)
            if (z[s->cand[i]] >= thr) s->cand[w++] = s->cand[i];
        n = w;
        normalise(z, s->cand, n, NULL);
    }
    /* inverse-CDF draw over the survivors in candidate order */
    double u = rng_uniform_double(rng), cum = 0;
    token = s->cand[n - 1];
    for (int i = 0; i < n; i++) {
        cum += z[s->cand[i]];
        if (u < cum) {
            token = s->cand[i];
            break;
        }
    }
    if (sample_logp) *sample_logp = logf(z[token]);
    if (policy_logp)
        *policy_logp = policy_from_sum ? (float)((double)(logits[token] / c->temperature - zmax) - log(total))
                                       : sampler_logprob(logits, V, token, tau);
    return token;
}
