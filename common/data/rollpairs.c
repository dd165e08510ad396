/* rollpairs.c — see rollpairs.h. */
#define _GNU_SOURCE /* qsort_r */
#include "rollpairs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int rollpairs_strategy_parse(const char *name, PairStrategy *out) {
    if (!strcmp(name, "best-worst"))
        *out = PAIRS_BEST_WORST;
    else if (!strcmp(name, "all-ranked"))
        *out = PAIRS_ALL_RANKED;
    else if (!strcmp(name, "rso"))
        *out = PAIRS_RSO;
    else
        return -1;
    return 0;
}

const char *rollpairs_strategy_name(PairStrategy s) {
    switch (s) {
    case PAIRS_BEST_WORST:
        return "best-worst";
    case PAIRS_ALL_RANKED:
        return "all-ranked";
    case PAIRS_RSO:
        return "rso";
    default:
        return "none";
    }
}

int rollpairs_rso_select(const float *reward, int n, int k, double beta, Rng *rng, int *sel) {
    if (k > n) k = n;
    unsigned char *taken = calloc(n > 0 ? n : 1, 1);
    int m = 0;
    while (m < k) {
        /* r_max over the candidates still in the pool */
        float rmax = -INFINITY;
        for (int i = 0; i < n; i++)
            if (!taken[i] && reward[i] > rmax) rmax = reward[i];
        /* one pass: accept each with probability exp((r - r_max) / beta); the
         * maximum is accepted with probability 1, so every pass makes progress */
        for (int i = 0; i < n && m < k; i++) {
            if (taken[i]) continue;
            double u = rng_uniform_double(rng);
            if (u < exp(((double)reward[i] - rmax) / beta)) {
                taken[i] = 1;
                sel[m++] = i;
            }
        }
    }
    free(taken);
    return m;
}

static int by_reward_desc(const void *a, const void *b, void *arg) {
    const float *r = arg;
    int x = *(const int *)a, y = *(const int *)b;
    if (r[x] != r[y]) return r[x] > r[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int rollpairs_from_rewards(PairStrategy s, const float *reward, int n, int k, double beta, Rng *rng, int *chosen,
                       int *rejected) {
    int np = 0;
    if (n < 2) return 0;
    int *idx = malloc(n * sizeof(int));
    int m = n;
    if (s == PAIRS_RSO)
        m = rollpairs_rso_select(reward, n, k, beta, rng, idx);
    else
        for (int i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, (size_t)m, sizeof(int), by_reward_desc, (void *)reward);
    switch (s) {
    case PAIRS_BEST_WORST:
        if (reward[idx[0]] > reward[idx[m - 1]]) chosen[np] = idx[0], rejected[np++] = idx[m - 1];
        break;
    case PAIRS_ALL_RANKED:
        for (int a = 0; a < m; a++)
            for (int b = a + 1; b < m; b++)
                if (reward[idx[a]] > reward[idx[b]]) chosen[np] = idx[a], rejected[np++] = idx[b];
        break;
    case PAIRS_RSO:
        for (int a = 0; a < m / 2; a++)
            if (reward[idx[a]] > reward[idx[m - 1 - a]]) chosen[np] = idx[a], rejected[np++] = idx[m - 1 - a];
        break;
    default:
        break;
    }
    free(idx);
    return np;
}
