/* simjudge.c — see simjudge.h. */
#include "simjudge.h"

#include <math.h>
#include <stdlib.h>

#include "data/task.h"

typedef struct Judged {
    int index;
    double u;
} Judged;

static int by_u_desc(const void *a, const void *b) {
    double x = ((const Judged *)a)->u, y = ((const Judged *)b)->u;
    return x < y ? 1 : x > y ? -1 : 0;
}

void sim_judge(const char *prompt, const char *const *texts, int n, double noise, Rng *rng, unsigned char *up,
               int *order, double *gold, double *utility) {
    Judged *j = xcalloc((size_t)(n > 0 ? n : 1), sizeof *j);
    for (int i = 0; i < n; i++) {
        const char *t = texts[i] ? texts[i] : "";
        int u = task_utility(prompt, t);
        if (u < 0) u = 0;
        *gold += task_gold(prompt, t);
        *utility += u;
        if (rng_uniform_double(rng) < noise) u = (int)rng_below(rng, 4); /* a misjudgement */
        up[i] = u >= 3; /* only a fully good answer (right words, polite) earns a thumbs up */
        j[i].index = i;
        j[i].u = u + 0.5 * rng_uniform_double(rng); /* equal judgements in random order */
    }
    qsort(j, (size_t)n, sizeof *j, by_u_desc);
    for (int i = 0; i < n; i++) order[i] = j[i].index;
    free(j);
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double sim_quantile(double *v, long n, double q) {
    if (n == 0) return NAN;
    qsort(v, (size_t)n, sizeof(double), dbl_cmp);
    long k = (long)ceil(q * n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}
