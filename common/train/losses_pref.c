/* losses_pref.c — see losses_pref.h.
 *
 * Notation per pair i (all log-probs summed over completion tokens):
 *   cl = pc - rc   (chosen log-ratio, policy vs reference)
 *   rl = pr - rr   (rejected log-ratio)
 *   h  = cl - rl   (TRL's "logits"; DPO's implicit reward margin / beta)
 * Every loss term below is written with its derivative next to it; the unit test
 * (tests/test_losses_pref.c) checks each derivative by finite differences and the
 * oracle (tests/oracle/make_pref_fixtures.py) checks the values against PyTorch. */
#include "losses_pref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *const pref_names[PREF_N_TYPES] = {
    "sigmoid",  "hinge",    "ipo", "robust",   "cdpo", "bco_pair",     "sppo_hard", "nca_pair",
    "apo_zero", "apo_down", "sft", "exo_pair", "aot",  "aot_unpaired", "discopop",  "sigmoid_norm",
};

const char *pref_loss_name(PrefLossType t) {
    return (t >= 0 && t < PREF_N_TYPES) ? pref_names[t] : "?";
}

void pref_loss_config_default(PrefLossConfig *c) {
    memset(c, 0, sizeof *c);
    c->n_terms = 1;
    c->type[0] = PREF_SIGMOID;
    c->weight[0] = 1.0;
    c->beta = 0.1;
    c->label_smoothing = 0.0;
    c->rpo_alpha = -1.0;
    c->discopop_tau = 0.05;
}

int pref_loss_parse(PrefLossConfig *c, const char *types, const char *weights, Error *e) {
    if (!types || !*types) return err_set(e, EX_USAGE, "--loss-type: empty list");
    int n = 0;
    const char *p = types;
    while (*p) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (n == PREF_MAX_TERMS) return err_set(e, EX_USAGE, "--loss-type: more than %d terms", PREF_MAX_TERMS);
        int found = -1;
        for (int t = 0; t < PREF_N_TYPES; t++)
            if (strlen(pref_names[t]) == len && strncmp(pref_names[t], p, len) == 0) found = t;
        if (found < 0)
            return err_set(e, EX_USAGE,
                           "--loss-type: unknown loss '%.*s' (expected sigmoid, hinge, ipo, robust, cdpo, bco_pair, "
                           "sppo_hard, nca_pair, apo_zero, apo_down, sft, exo_pair, aot, aot_unpaired, discopop or "
                           "sigmoid_norm)",
                           (int)len, p);
        c->type[n] = (PrefLossType)found;
        c->weight[n] = 1.0;
        n++;
        if (!q) break;
        p = q + 1;
        if (!*p) return err_set(e, EX_USAGE, "--loss-type: trailing comma");
    }
    c->n_terms = n;
    if (weights && *weights) {
        int k = 0;
        p = weights;
        for (;;) {
            char *end;
            double w = strtod(p, &end);
            if (end == p || (*end && *end != ',') || !isfinite(w))
                return err_set(e, EX_USAGE, "--loss-weights: expected a comma list of numbers, got '%s'", weights);
            if (k == n) return err_set(e, EX_USAGE, "--loss-weights: more weights than loss types (%d)", n);
            c->weight[k++] = w;
            if (!*end) break;
            p = end + 1;
        }
        if (k != n) return err_set(e, EX_USAGE, "--loss-weights: %d weights for %d loss types", k, n);
    }
    return 0;
}

int pref_loss_needs_ref(const PrefLossConfig *c) {
    for (int k = 0; k < c->n_terms; k++)
        if (c->type[k] != PREF_SFT) return 1;
    return 0;
}

int pref_loss_pairwise(const PrefLossConfig *c) {
    for (int k = 0; k < c->n_terms; k++) {
        PrefLossType t = c->type[k];
        if (t == PREF_BCO_PAIR || t == PREF_AOT || t == PREF_AOT_UNPAIRED) return 0;
    }
    return 1;
}

void pref_loss_pair_grads(const PrefLossConfig *c, int i0, int i1, int n, const float *pc, const float *pr,
                          const float *rc, const float *rr, const int *len_c, const int *len_r, double scale,
                          float *d_pc, float *d_pr) {
    if (!pref_loss_pairwise(c)) die_internal("pref_loss_pair_grads: the loss is not pairwise");
    /* The NLL of sft and RPO is a mean over the batch's chosen tokens: d/d pc[i] of the
     * batch loss is (its weights) * -1/tokens, the same for every pair (pref_loss).
     * The other terms are each pair's own: pref_loss of the pair alone, without it. */
    PrefLossConfig own = *c;
    double nll_w = c->rpo_alpha >= 0 ? c->rpo_alpha : 0.0;
    own.rpo_alpha = -1;
    own.n_terms = 0;
    for (int k = 0; k < c->n_terms; k++)
        if (c->type[k] == PREF_SFT) {
            nll_w += c->weight[k];
        } else {
            own.type[own.n_terms] = c->type[k];
            own.weight[own.n_terms++] = c->weight[k];
        }
    double tok = 0;
    for (int i = 0; i < n; i++) tok += len_c[i];
    double dnll = tok > 0 ? -nll_w / tok : 0.0; /* d (batch mean) / d pc[i] */
    for (int i = i0; i < i1; i++) {
        float gc = 0, gr = 0;
        if (own.n_terms)
            pref_loss(&own, NULL, 1, pc + i, pr + i, rc ? rc + i : NULL, rr ? rr + i : NULL, len_c + i, len_r + i, &gc,
                      &gr, NULL);
        d_pc[i] = (float)((gc + dnll * n) * scale);
        d_pr[i] = (float)(gr * scale);
    }
}

void pref_loss_state_init(PrefLossState *s) {
    s->bco_mean = 0.0;
    s->bco_count = 1e-24; /* TRL RunningMoments starts at count 1e-24 */
}

/* log sigmoid(x) without overflow: -log(1 + exp(-x)). */
static double log_sigmoid(double x) {
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}
static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double z = exp(x);
    return z / (1.0 + z);
}

/* ---- AOT: alignment via optimal transport (Melnyk et al. 2024, "Distributional
 * Preference Alignment of LLMs via Optimal Transport", eq. 8 and its unpaired form).
 * The batch's log-ratios are sorted, and the j-th smallest of one side is compared
 * with the j-th smallest of the other (first-order stochastic dominance in 1-D is
 * solved by sorting), with the cDPO loss per position:
 *   L_j = -(1-ls) log sigma(beta d_j) - ls log sigma(-beta d_j),
 *   dL_j/dd_j = beta (sigma(beta d_j) - (1-ls)).
 * aot (paired):   d_j = sort(pc - pr)_j - sort(rc - rr)_j; the gradient reaches the
 *                 pair whose policy margin has rank j (the reference side is constant).
 * aot_unpaired:   d_j = sort(cl)_j - sort(rl)_j; +grad to the chosen sequence of rank
 *                 j among the cl, -grad to the rejected sequence of rank j among the rl.
 * L[j] receives the loss of position j; dcl[i], drl[i] the gradient by pair i. */
static const double *sort_keys;
static int by_key(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    double x = sort_keys[i], y = sort_keys[j];
    return x < y ? -1 : x > y ? 1 : (i > j) - (i < j); /* ties: by index, deterministic */
}
static void argsort(const double *key, int n, int *idx) {
    for (int i = 0; i < n; i++) idx[i] = i;
    sort_keys = key;
    qsort(idx, (size_t)n, sizeof *idx, by_key);
    sort_keys = NULL;
}

static void aot_terms(int unpaired, int n, const float *pc, const float *pr, const float *rc, const float *rr,
                      double beta, double ls, double *L, double *dcl, double *drl) {
    double *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    int *ia = malloc((size_t)n * sizeof *ia), *ib = malloc((size_t)n * sizeof *ib);
    if (!a || !b || !ia || !ib) abort();
    for (int i = 0; i < n; i++) {
        if (unpaired) {
            a[i] = (double)pc[i] - rc[i]; /* chosen log-ratios */
            b[i] = (double)pr[i] - rr[i]; /* rejected log-ratios */
        } else {
            a[i] = (double)pc[i] - pr[i]; /* policy margins */
            b[i] = (double)rc[i] - rr[i]; /* reference margins */
        }
        dcl[i] = drl[i] = 0;
    }
    argsort(a, n, ia);
    argsort(b, n, ib);
    for (int j = 0; j < n; j++) {
        double z = beta * (a[ia[j]] - b[ib[j]]);
        L[j] = -(1 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
        double g = beta * (sigmoid(z) - (1 - ls));
        if (unpaired) {
            dcl[ia[j]] += g;
            drl[ib[j]] -= g;
        } else { /* d a_i / d pc_i = 1, d a_i / d pr_i = -1 */
            dcl[ia[j]] += g;
            drl[ia[j]] -= g;
        }
    }
    free(a), free(b), free(ia), free(ib);
}

double pref_loss(const PrefLossConfig *c, PrefLossState *st, int n, const float *pc, const float *pr, const float *rc,
                 const float *rr, const int *len_c, const int *len_r, float *d_pc, float *d_pr, PrefMetrics *m) {
    const double beta = c->beta, ls = c->label_smoothing;
    if (n <= 0) {
        if (m) memset(m, 0, sizeof *m);
        return 0.0;
    }
    double *gc = xcalloc((size_t)n, sizeof *gc), *gr = xcalloc((size_t)n, sizeof *gr);

    /* NLL of the chosen completions as TRL's rpo/sft terms compute it:
     * F.cross_entropy over all chosen completion tokens of the batch = a token mean.
     * d nll / d pc[i] = -1 / total tokens for every i. */
    double tok = 0.0, sum_pc = 0.0;
    for (int i = 0; i < n; i++) {
        tok += len_c ? len_c[i] : 0;
        sum_pc += pc[i];
    }
    double nll = tok > 0 ? -sum_pc / tok : 0.0;
    double dnll = tok > 0 ? -1.0 / tok : 0.0;

    /* BCO's reward shift delta: the running mean of the batch-mean implicit reward
     * (Jung et al. 2024, sec. 3; TRL's RunningMoments over mean(cat(r_c, r_r))),
     * updated before use and treated as a constant (detached). */
    double delta = 0.0;
    int has_bco = 0;
    for (int k = 0; k < c->n_terms; k++) has_bco |= c->type[k] == PREF_BCO_PAIR;
    if (has_bco && st && rc && rr) {
        double mean = 0.0;
        for (int i = 0; i < n; i++) mean += beta * ((double)pc[i] - rc[i]) + beta * ((double)pr[i] - rr[i]);
        mean /= 2.0 * n;
        double tot = st->bco_count + 1.0;
        st->bco_mean += (mean - st->bco_mean) * 1.0 / tot;
        st->bco_count = tot;
        delta = st->bco_mean;
    }

    double loss = 0.0;
    double *aot_L = NULL, *aot_dc = NULL, *aot_dr = NULL; /* AOT's batch-wide terms */
    for (int k = 0; k < c->n_terms; k++) {
        const double w = c->weight[k];
        double sum = 0.0;
        if ((c->type[k] == PREF_AOT || c->type[k] == PREF_AOT_UNPAIRED) && rc && rr) {
            if (!aot_L) {
                aot_L = malloc((size_t)n * sizeof *aot_L);
                aot_dc = malloc((size_t)n * sizeof *aot_dc);
                aot_dr = malloc((size_t)n * sizeof *aot_dr);
                if (!aot_L || !aot_dc || !aot_dr) abort();
            }
            aot_terms(c->type[k] == PREF_AOT_UNPAIRED, n, pc, pr, rc, rr, beta, ls, aot_L, aot_dc, aot_dr);
        }
        for (int i = 0; i < n; i++) {
            double cl = 0, rl = 0;
            if (rc && rr) {
                cl = (double)pc[i] - rc[i];
                rl = (double)pr[i] - rr[i];
            }
            const double h = cl - rl, z = beta * h;
            double L = 0, dcl = 0, drl = 0; /* dL/dcl, dL/drl; d/dpc = dcl, d/dpr = drl */
            switch (c->type[k]) {
            case PREF_SIGMOID:
            case PREF_CDPO: {
                /* DPO eq. 7: L = -log sigma(beta h).  cDPO (Mitchell 2023) mixes in the
                 * flipped label with probability ls:
                 *   L = -(1-ls) log sigma(z) - ls log sigma(-z),  dL/dz = sigma(z) - (1-ls). */
                L = -(1 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
                double dz = sigmoid(z) - (1 - ls);
                dcl = beta * dz;
                drl = -beta * dz;
                break;
            }
            case PREF_ROBUST: {
                /* Robust DPO (Chowdhury et al. 2024, eq. 10), unbiased under label noise ls:
                 *   L = (-(1-ls) log sigma(z) + ls log sigma(-z)) / (1 - 2 ls)
                 *   dL/dz = sigma(z) - (1-ls)/(1-2ls). */
                L = (-(1 - ls) * log_sigmoid(z) + ls * log_sigmoid(-z)) / (1 - 2 * ls);
                double dz = sigmoid(z) - (1 - ls) / (1 - 2 * ls);
                dcl = beta * dz;
                drl = -beta * dz;
                break;
            }
            case PREF_HINGE: {
                /* SLiC-HF calibration loss (Zhao et al. 2023, eq. 2) in RSO's normalised
                 * form (Liu et al. 2023, eq. 9): L = max(0, 1 - beta h). */
                double a = 1 - z;
                L = a > 0 ? a : 0;
                double dz = a > 0 ? -1.0 : 0.0;
                dcl = beta * dz;
                drl = -beta * dz;
                break;
            }
            case PREF_IPO: {
                /* IPO (Azar et al. 2023, eq. 17, beta = tau): L = (h' - 1/(2 beta))^2 where TRL
                 * normalises each log-ratio by its completion length (h' = cl/|c| - rl/|r|),
                 * as confirmed with the IPO authors. */
                double lc = len_c && len_c[i] > 0 ? len_c[i] : 1, lr = len_r && len_r[i] > 0 ? len_r[i] : 1;
                double d = cl / lc - rl / lr, a = d - 1.0 / (2 * beta);
                L = a * a;
                dcl = 2 * a / lc;
                drl = -2 * a / lr;
                break;
            }
            case PREF_BCO_PAIR: {
                /* BCO (Jung et al. 2024, eq. 8) on pairs: chosen classified as positive,
                 * rejected as negative around the shift delta:
                 *   L = -log sigma(beta cl - delta) - log sigma(-(beta rl - delta)). */
                double u = beta * cl - delta, v = beta * rl - delta;
                L = -log_sigmoid(u) - log_sigmoid(-v);
                dcl = -beta * (1 - sigmoid(u));
                drl = beta * sigmoid(v);
                break;
            }
            case PREF_SPPO_HARD: {
                /* SPPO (Wu et al. 2024, Algorithm 1 eq. 4.7) with P(win) = 1 for the chosen
                 * and 0 for the rejected: L = (cl - 1/(2 beta))^2 + (rl + 1/(2 beta))^2. */
                double a = cl - 0.5 / beta, b = rl + 0.5 / beta;
                L = a * a + b * b;
                dcl = 2 * a;
                drl = 2 * b;
                break;
            }
            case PREF_NCA_PAIR: {
                /* NCA (Chen et al. 2024, eq. 11) for K = 2 responses:
                 *   L = -log sigma(beta cl) - 1/2 log sigma(-beta cl) - 1/2 log sigma(-beta rl). */
                double u = beta * cl, v = beta * rl;
                L = -log_sigmoid(u) - 0.5 * log_sigmoid(-u) - 0.5 * log_sigmoid(-v);
                dcl = beta * (-(1 - sigmoid(u)) + 0.5 * sigmoid(u));
                drl = beta * 0.5 * sigmoid(v);
                break;
            }
            case PREF_APO_ZERO: {
                /* APO-zero (D'Oosterlinck et al. 2024, eq. 7): raise chosen, lower rejected:
                 *   L = 1 - sigma(beta cl) + sigma(beta rl). */
                double su = sigmoid(beta * cl), sv = sigmoid(beta * rl);
                L = 1 - su + sv;
                dcl = -beta * su * (1 - su);
                drl = beta * sv * (1 - sv);
                break;
            }
            case PREF_APO_DOWN: {
                /* APO-down (same paper, eq. 8): lower chosen, lower rejected more:
                 *   L = sigma(beta cl) + 1 - sigma(beta (cl - rl)). */
                double su = sigmoid(beta * cl), sz = sigmoid(z);
                L = su + 1 - sz;
                dcl = beta * su * (1 - su) - beta * sz * (1 - sz);
                drl = beta * sz * (1 - sz);
                break;
            }
            case PREF_EXO_PAIR: {
                /* EXO-pref (Ji et al. 2024, "Towards Efficient Exact Optimization of Language
                 * Model Alignment", eq. 16) for K = 2: KL(p_f || p_rh) between the policy's
                 * softmax over {chosen, rejected}, p_f = (sigma(z), sigma(-z)), and the
                 * smoothed label p_rh = (1-eps, eps), eps = label smoothing (> 0):
                 *   L = sigma(z) (log sigma(z) - log(1-eps)) + sigma(-z) (log sigma(-z) - log eps).
                 * With q = sigma(z), log q - log(1-q) = z, so
                 *   dL/dz = q (1-q) (z - log(1-eps) + log eps). */
                double q = sigmoid(z), lpw = log1p(-ls), lpl = log(ls);
                L = q * (log_sigmoid(z) - lpw) + (1 - q) * (log_sigmoid(-z) - lpl);
                double dz = q * (1 - q) * (z - lpw + lpl);
                dcl = beta * dz;
                drl = -beta * dz;
                break;
            }
            case PREF_AOT:
            case PREF_AOT_UNPAIRED:
                /* the sorted terms of aot_terms: position i's loss, pair i's gradient */
                L = aot_L ? aot_L[i] : 0;
                dcl = aot_L ? aot_dc[i] : 0;
                drl = aot_L ? aot_dr[i] : 0;
                break;
            case PREF_DISCOPOP: {
                /* DiscoPOP (Chris Lu et al. 2024, "Discovering Preference Optimization
                 * Algorithms with and for LLMs", eq. 5): a blend of the logistic and the
                 * exponential loss, mixed by m = sigma(z / tau):
                 *   L = -log sigma(z) (1 - m) + exp(-z) m,
                 *   dL/dz = -(1 - sigma(z)) (1 - m) + log sigma(z) m' - exp(-z) m + exp(-z) m',
                 * with m' = m (1 - m) / tau. */
                double tau = c->discopop_tau, m = sigmoid(z / tau), dm = m * (1 - m) / tau, ez = exp(-z);
                L = -log_sigmoid(z) * (1 - m) + ez * m;
                double dz = -(1 - sigmoid(z)) * (1 - m) + log_sigmoid(z) * dm - ez * m + ez * dm;
                dcl = beta * dz;
                drl = -beta * dz;
                break;
            }
            case PREF_SIGMOID_NORM: {
                /* DPO on per-token log-ratios (TRL's sigmoid_norm): the IPO length
                 * normalisation inside DPO's loss, d = cl/|c| - rl/|r|,
                 *   L = -log sigma(beta d),  dL/dd = -beta (1 - sigma(beta d)). */
                double lc = len_c && len_c[i] > 0 ? len_c[i] : 1, lr = len_r && len_r[i] > 0 ? len_r[i] : 1;
                double d = cl / lc - rl / lr;
                L = -log_sigmoid(beta * d);
                double dd = -beta * (1 - sigmoid(beta * d));
                dcl = dd / lc;
                drl = -dd / lr;
                break;
            }
            case PREF_SFT:
                /* The batch NLL, the same value for every pair (TRL expands the scalar), so
                 * the mean over pairs is the NLL itself and d/d pc[i] = dnll, not dnll/n. */
                L = nll;
                dcl = n * dnll;
                drl = 0;
                break;
            default:
                die_internal("pref_loss: unknown loss type %d", (int)c->type[k]);
            }
            sum += L;
            gc[i] += w * dcl / n;
            gr[i] += w * drl / n;
        }
        loss += w * sum / n;
    }
    free(aot_L), free(aot_dc), free(aot_dr);
    /* RPO (Pang et al. 2024, v3): loss + alpha * NLL(chosen). */
    if (c->rpo_alpha >= 0) {
        loss += c->rpo_alpha * nll;
        for (int i = 0; i < n; i++) gc[i] += c->rpo_alpha * dnll;
    }
    if (d_pc)
        for (int i = 0; i < n; i++) d_pc[i] = (float)gc[i];
    if (d_pr)
        for (int i = 0; i < n; i++) d_pr[i] = (float)gr[i];
    free(gc);
    free(gr);

    if (m) {
        memset(m, 0, sizeof *m);
        m->n = n;
        m->loss = loss;
        m->nll_loss = nll;
        for (int i = 0; i < n; i++) {
            double rwc = rc ? beta * ((double)pc[i] - rc[i]) : 0, rwr = rr ? beta * ((double)pr[i] - rr[i]) : 0;
            m->rewards_chosen += rwc;
            m->rewards_rejected += rwr;
            m->accuracies += rwc > rwr ? 1.0 : 0.0;
            m->margins += rwc - rwr;
            m->logps_chosen += pc[i];
            m->logps_rejected += pr[i];
        }
        m->rewards_chosen /= n;
        m->rewards_rejected /= n;
        m->accuracies /= n;
        m->margins /= n;
        m->logps_chosen /= n;
        m->logps_rejected /= n;
    }
    return loss;
}

double bt_loss(int n, const float *r_c, const float *r_r, const float *margin, double center_coef, float *d_rc,
               float *d_rr, BtMetrics *m) {
    if (n <= 0) {
        if (m) memset(m, 0, sizeof *m);
        return 0.0;
    }
    double loss = 0.0, acc = 0, sc = 0, sr = 0, sm = 0;
    for (int i = 0; i < n; i++) {
        /* Bradley–Terry: P(c > r) = sigma(r_c - r_r); InstructGPT's RM loss (Ouyang et al.
         * 2022, eq. 1) is its negative log-likelihood; Llama 2 (Touvron et al. 2023, eq. 2)
         * subtracts a margin m(r) inside the sigmoid. */
        double d = (double)r_c[i] - r_r[i] - (margin ? margin[i] : 0.0);
        /* Centring (Eisenstein et al. 2023): + coef * (r_c + r_r)^2 keeps rewards near 0. */
        double s = (double)r_c[i] + r_r[i];
        loss += -log_sigmoid(d) + center_coef * s * s;
        double g = -(1 - sigmoid(d)); /* d(-log sigma(d))/dd */
        if (d_rc) d_rc[i] = (float)((g + 2 * center_coef * s) / n);
        if (d_rr) d_rr[i] = (float)((-g + 2 * center_coef * s) / n);
        acc += r_c[i] > r_r[i];
        sc += r_c[i];
        sr += r_r[i];
        sm += (double)r_c[i] - r_r[i];
    }
    loss /= n;
    if (m) {
        m->n = n;
        m->loss = loss;
        m->accuracy = acc / n;
        m->rewards_chosen = sc / n;
        m->rewards_rejected = sr / n;
        m->margin = sm / n;
    }
    return loss;
}

void pref_seq_sum(const float *tok_logp, const int *targets, int B, int T, float *seq, int *len) {
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        int l = 0;
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)b * T + t;
            if (targets[k] >= 0) {
                s += tok_logp[k];
                l++;
            }
        }
        seq[b] = (float)s;
        if (len) len[b] = l;
    }
}

void pref_seq_grad_broadcast(const float *dseq, const int *targets, int B, int T, float *dtok) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)b * T + t;
            dtok[k] = targets[k] >= 0 ? dseq[b] : 0.0f;
        }
}

/* ---- KTO ---------------------------------------------------------------------------
 * Ethayarajh et al. 2024, eq. 7, in TRL's form (trl/trainer/kto_trainer.py,
 * KTOTrainer._compute_loss, loss_type "kto"): the value function is
 * sigmoid(beta * (r - z)) for desirable and sigmoid(beta * (z - r)) for undesirable
 * completions, and the loss is weight * (1 - value), averaged over the batch. */
void kto_config_default(KtoConfig *c) {
    c->beta = 0.1;
    c->desirable_weight = 1;
    c->undesirable_weight = 1;
}

double kto_kl_estimate(int n, const float *pol_kl, const float *ref_kl) {
    if (n <= 0) return 0;
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)pol_kl[i] - (double)ref_kl[i];
    double z = s / n;
    return z > 0 ? z : 0; /* TRL: .clamp(min=0) */
}

static double sigmoid_d(double x) {
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

double kto_loss(const KtoConfig *c, int n, const float *pol, const float *ref, const unsigned char *label, double kl,
                float *d_pol, KtoMetrics *m) {
    double loss = 0, rc = 0, rr = 0, lc = 0, lr = 0;
    int nc = 0, nr = 0;
    for (int i = 0; i < n; i++) {
        double r = (double)pol[i] - (double)ref[i];
        double a = label[i] ? c->beta * (r - kl) : c->beta * (kl - r);
        double w = label[i] ? c->desirable_weight : c->undesirable_weight;
        double s = sigmoid_d(a);
        loss += w * (1 - s);
        /* d/dr of w * (1 - sigmoid(a)) = -w * s * (1 - s) * da/dr, da/dr = +-beta */
        double g = -w * s * (1 - s) * (label[i] ? c->beta : -c->beta);
        if (d_pol) d_pol[i] = (float)(g / n);
        if (label[i])
            rc += c->beta * r, lc += pol[i], nc++;
        else
            rr += c->beta * r, lr += pol[i], nr++;
    }
    loss = n > 0 ? loss / n : 0;
    if (m) {
        m->loss = loss;
        m->kl = kl;
        m->n_chosen = nc;
        m->n_rejected = nr;
        m->rewards_chosen = nc ? rc / nc : NAN;
        m->rewards_rejected = nr ? rr / nr : NAN;
        m->logps_chosen = nc ? lc / nc : NAN;
        m->logps_rejected = nr ? lr / nr : NAN;
    }
    return loss;
}
