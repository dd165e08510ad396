/* losses_rl.c — policy-gradient losses, advantages and KL estimators.  See
 * losses_rl.h for the formulas and their sources.  Pure functions: no model, no
 * allocation beyond what a call frees before returning. */
#include "losses_rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

int rl_kl_estimator_parse(const char *s) {
    if (!strcmp(s, "k1")) return RL_KL_K1;
    if (!strcmp(s, "k3")) return RL_KL_K3;
    return -1;
}

double rl_kl(RlKlEstimator est, double logp, double ref_logp) {
    double logr = ref_logp - logp;
    if (est == RL_KL_K1) return -logr;
    return expm1(logr) - logr; /* (e^logr - 1) - logr, accurate near 0 */
}

double rl_kl_grad(RlKlEstimator est, double logp, double ref_logp) {
    if (est == RL_KL_K1) return 1.0;
    return 1.0 - exp(ref_logp - logp);
}

void rl_ppo_rewards(const float *logp, const float *ref_logp, const int *off, const int *len, int n, RlKlEstimator est,
                    double kl_coef, const double *score, float *rewards, float *kl) {
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < len[i]; t++) {
            size_t r = (size_t)off[i] + (size_t)t;
            double k = ref_logp ? rl_kl(est, logp[r], ref_logp[r]) : 0.0;
            if (kl) kl[r] = (float)k;
            double rw = -kl_coef * k;
            if (t == len[i] - 1) rw += score[i];
            rewards[r] = (float)rw;
        }
    }
}

void rl_gae(const float *rewards, const float *values, int T, double gamma, double lam, float *adv, float *returns) {
    double last = 0.0;
    for (int t = T - 1; t >= 0; t--) {
        double next = t + 1 < T ? values[t + 1] : 0.0;
        double delta = rewards[t] + gamma * next - values[t];
        last = delta + gamma * lam * last;
        adv[t] = (float)last;
        if (returns) returns[t] = (float)(last + values[t]);
    }
}

void rl_whiten(float *x, size_t n) {
    if (n == 0) return;
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
    double var = 0;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    /* masked_var(unbiased=True): mean of squares times n / (n - 1) */
    var = n > 1 ? var / (double)(n - 1) : 0.0;
    double inv = 1.0 / sqrt(var + 1e-8);
    for (size_t i = 0; i < n; i++) x[i] = (float)((x[i] - mean) * inv);
}

int rl_scale_rewards_parse(const char *s) {
    if (!strcmp(s, "group") || !strcmp(s, "true")) return RL_SCALE_GROUP;
    if (!strcmp(s, "batch")) return RL_SCALE_BATCH;
    if (!strcmp(s, "none") || !strcmp(s, "false")) return RL_SCALE_NONE;
    return -1;
}

double rl_std(const double *x, int n) {
    if (n < 2) return 0.0;
    double mean = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    return sqrt(ss / (n - 1));
}

void rl_group_advantages(const double *r, int n_groups, int G, RlScaleRewards scale, double *adv, double *group_std) {
    double batch_std = scale == RL_SCALE_BATCH ? rl_std(r, n_groups * G) : 0.0;
    for (int g = 0; g < n_groups; g++) {
        const double *x = r + (size_t)g * G;
        double mean = 0;
        for (int i = 0; i < G; i++) mean += x[i];
        mean /= G;
        double sd = rl_std(x, G);
        if (group_std) group_std[g] = sd;
        double div = scale == RL_SCALE_GROUP ? sd + 1e-4 : scale == RL_SCALE_BATCH ? batch_std + 1e-4 : 1.0;
        for (int i = 0; i < G; i++) adv[(size_t)g * G + i] = (x[i] - mean) / div;
    }
}

void rl_rloo_advantages(const double *r, int n_groups, int G, double *adv) {
    for (int g = 0; g < n_groups; g++) {
        const double *x = r + (size_t)g * G;
        double sum = 0;
        for (int i = 0; i < G; i++) sum += x[i];
        for (int i = 0; i < G; i++) adv[(size_t)g * G + i] = G > 1 ? x[i] - (sum - x[i]) / (G - 1) : 0.0;
    }
}

void rl_reinforce_advantages(const double *r, int n, double decay, double *baseline, int *initialised, double *adv) {
    double mean = 0;
    for (int i = 0; i < n; i++) mean += r[i];
    mean = n > 0 ? mean / n : 0.0;
    if (!*initialised) {
        *baseline = mean;
        *initialised = 1;
    }
    for (int i = 0; i < n; i++) adv[i] = r[i] - *baseline;
    *baseline = decay * *baseline + (1.0 - decay) * mean;
}

static double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/* d/dx of max(a(x), b(x)) with torch.maximum's rule: the gradient of the larger,
 * half of each on a tie. */
static double dmax(double a, double b, double da, double db) {
    if (a > b) return da;
    if (b > a) return db;
    return 0.5 * (da + db);
}

double rl_ppo_loss(const float *logp, const float *old_logp, const float *adv, const float *values,
                   const float *old_values, const float *returns, size_t N, double cliprange, double cliprange_value,
                   double vf_coef, double scale, float *dlogp, float *dvalues, RlStats *st) {
    double total = 0;
    int with_value = values && old_values && returns;
    for (size_t t = 0; t < N; t++) {
        double d = (double)logp[t] - (double)old_logp[t];
        double ratio = exp(d), A = adv[t];
        double cr = clampd(ratio, 1.0 - cliprange, 1.0 + cliprange);
        double l1 = -A * ratio, l2 = -A * cr;
        double pg = l1 > l2 ? l1 : l2;
        int inside = ratio >= 1.0 - cliprange && ratio <= 1.0 + cliprange;
        double g = dmax(l1, l2, -A * ratio, inside ? -A * ratio : 0.0);
        double loss = pg;
        if (st) {
            st->pg_loss += pg;
            st->clipfrac += l2 > l1;
            st->approxkl += 0.5 * d * d;
            st->ratio += ratio;
            st->tokens += 1;
        }
        if (dlogp) dlogp[t] = (float)(scale * g);
        if (with_value) {
            double v = values[t], ov = old_values[t], R = returns[t];
            double vc = ov + clampd(v - ov, -cliprange_value, cliprange_value);
            double v1 = (v - R) * (v - R), v2 = (vc - R) * (vc - R);
            double vf = 0.5 * (v1 > v2 ? v1 : v2);
            int vin = v - ov >= -cliprange_value && v - ov <= cliprange_value;
            double gv = dmax(v1, v2, v - R, vin ? vc - R : 0.0);
            loss += vf_coef * vf;
            if (st) {
                st->vf_loss += vf;
                st->vf_clipfrac += v2 > v1;
            }
            if (dvalues) dvalues[t] = (float)(scale * vf_coef * gv);
        } else if (dvalues) {
            dvalues[t] = 0.0f;
        }
        total += loss;
    }
    return total;
}

int rl_loss_type_parse(const char *s) {
    if (!strcmp(s, "grpo")) return RL_LOSS_GRPO;
    if (!strcmp(s, "bnpo")) return RL_LOSS_BNPO;
    if (!strcmp(s, "dr_grpo")) return RL_LOSS_DR_GRPO;
    if (!strcmp(s, "dapo")) return RL_LOSS_DAPO;
    return -1;
}

double rl_grpo_loss(const float *logp, const float *old_logp, const float *ref_logp, const double *adv, const int *off,
                    const int *len, int n, RlLossType type, double eps_low, double eps_high, double beta, double scale,
                    float *dlogp, RlStats *st) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double A = adv[i], seq = 0;
        /* grpo averages each sequence over its own tokens first */
        double w = type == RL_LOSS_GRPO ? 1.0 / (len[i] > 0 ? len[i] : 1) : 1.0;
        for (int t = 0; t < len[i]; t++) {
            size_t r = (size_t)off[i] + (size_t)t;
            double d = (double)logp[r] - (double)old_logp[r];
            double ratio = exp(d);
            double cr = clampd(ratio, 1.0 - eps_low, 1.0 + eps_high);
            double u1 = ratio * A, u2 = cr * A;
            int inside = ratio >= 1.0 - eps_low && ratio <= 1.0 + eps_high;
            /* -min(u1, u2) = max(-u1, -u2) */
            double l = u1 < u2 ? -u1 : -u2;
            double g = dmax(-u1, -u2, -A * ratio, inside ? -A * ratio : 0.0);
            if (st) {
                int lo = ratio < 1.0 - eps_low && A<0, hi = ratio> 1.0 + eps_high && A > 0;
                st->clipfrac += lo || hi;
                st->clip_low += lo;
                st->clip_high += hi;
                st->approxkl += 0.5 * d * d;
                st->ratio += ratio;
                st->tokens += 1;
                st->pg_loss += l;
            }
            if (beta != 0.0 && ref_logp) {
                double k = rl_kl(RL_KL_K3, logp[r], ref_logp[r]);
                l += beta * k;
                g += beta * rl_kl_grad(RL_KL_K3, logp[r], ref_logp[r]);
                if (st) st->kl += k;
            }
            seq += l;
            if (dlogp) dlogp[r] = (float)(scale * w * g);
        }
        total += w * seq;
    }
    return total;
}

double rl_seq_pg_loss(const float *logp, const float *old_logp, const double *adv, const int *off, const int *len,
                      int n, double cliprange, double scale, float *dlogp, RlStats *st) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double s = 0, so = 0;
        for (int t = 0; t < len[i]; t++) {
            s += logp[(size_t)off[i] + t];
            so += old_logp[(size_t)off[i] + t];
        }
        double d = s - so, ratio = exp(d), A = adv[i];
        double cr = clampd(ratio, 1.0 - cliprange, 1.0 + cliprange);
        double l1 = -A * ratio, l2 = -A * cr;
        double l = l1 > l2 ? l1 : l2;
        int inside = ratio >= 1.0 - cliprange && ratio <= 1.0 + cliprange;
        double g = dmax(l1, l2, -A * ratio, inside ? -A * ratio : 0.0);
        total += l;
        if (st) {
            st->pg_loss += l;
            st->clipfrac += l2 > l1;
            st->approxkl += 0.5 * d * d;
            st->ratio += ratio;
            st->tokens += 1;
        }
        if (dlogp)
            for (int t = 0; t < len[i]; t++) dlogp[(size_t)off[i] + t] = (float)(scale * g);
    }
    return total;
}

void rl_kl_update(RlKlController *c, double kl, double n_steps) {
    if (!(c->target > 0) || !(c->horizon > 0) || !isfinite(kl)) return;
    double err = clampd(kl / c->target - 1.0, -0.2, 0.2);
    c->coef *= 1.0 + err * n_steps / c->horizon;
}

static const char *ALGO_NAMES[] = {"ppo", "grpo", "rloo", "reinforce"};

int rl_algo_parse(const char *s) {
    for (int a = 0; a < 4; a++)
        if (!strcmp(s, ALGO_NAMES[a])) return a;
    return -1;
}

const char *rl_algo_name(RlAlgo a) {
    return (unsigned)a < 4 ? ALGO_NAMES[a] : "?";
}

void rl_advantages(const RlConfig *c, RlBatch *b, RlState *st, RlRolloutStats *out) {
    int n = b->n, G = c->G > 0 ? c->G : 1, groups = n / G;
    memset(out, 0, sizeof *out);
    double *seq_kl = xcalloc((size_t)(n ? n : 1), sizeof(double)), *rs = xcalloc((size_t)(n ? n : 1), sizeof(double));
    for (int i = 0; i < n; i++) {
        out->scores += b->score[i];
        for (int t = 0; t < b->len[i]; t++) {
            size_t r = (size_t)b->off[i] + t;
            out->entropy -= b->old_logp[r];
            if (b->ref_logp) seq_kl[i] += rl_kl(c->kl_est, b->old_logp[r], b->ref_logp[r]);
        }
        out->kl += seq_kl[i];
    }
    out->scores /= n;
    out->entropy /= n;
    out->kl /= n;
    /* reward_std: TRL logs the mean of the per-prompt stds */
    if (G > 1) {
        for (int g = 0; g < groups; g++) out->reward_std += rl_std(b->score + (size_t)g * G, G);
        out->reward_std /= groups;
    } else {
        out->reward_std = rl_std(b->score, n);
    }
    double coef = c->algo == RL_ALGO_GRPO ? 0.0 : c->kl_coef;
    out->non_score_reward = -coef * out->kl;
    out->rlhf_reward = out->scores + out->non_score_reward;
    switch (c->algo) {
    case RL_ALGO_PPO: {
        float *rewards = xmalloc((size_t)(b->ntok ? b->ntok : 1) * sizeof(float));
        rl_ppo_rewards(b->old_logp, b->ref_logp, b->off, b->len, n, c->kl_est, c->kl_coef, b->score, rewards, NULL);
        for (int i = 0; i < n; i++)
            rl_gae(rewards + b->off[i], b->old_values + b->off[i], b->len[i], c->gamma, c->lam, b->adv_tok + b->off[i],
                   b->returns + b->off[i]);
        rl_whiten(b->adv_tok, (size_t)b->ntok);
        free(rewards);
        break;
    }
    case RL_ALGO_GRPO:
        rl_group_advantages(b->score, groups, G, c->scale, b->adv, NULL);
        break;
    case RL_ALGO_RLOO:
    case RL_ALGO_REINFORCE:
        for (int i = 0; i < n; i++) rs[i] = b->score[i] - c->kl_coef * seq_kl[i];
        if (c->algo == RL_ALGO_RLOO) {
            rl_rloo_advantages(rs, groups, G, b->adv);
        } else {
            RlState local = {0, 0};
            RlState *s = st ? st : &local;
            rl_reinforce_advantages(rs, n, c->baseline_decay, &s->baseline, &s->baseline_set, b->adv);
        }
        break;
    }
    free(seq_kl);
    free(rs);
}

double rl_loss_weight(const RlConfig *c, const int *len, int n) {
    long tok = 0;
    for (int i = 0; i < n; i++) tok += len[i];
    switch (c->algo) {
    case RL_ALGO_PPO:
        return (double)tok; /* TRL masked_mean over the mini-batch's tokens */
    case RL_ALGO_GRPO:
        if (c->loss_type == RL_LOSS_GRPO) return n;
        if (c->loss_type == RL_LOSS_DR_GRPO) return (double)n * c->max_completion_length;
        return (double)tok;
    default:
        return n;
    }
}

double rl_loss(const RlConfig *c, const float *logp, const float *old_logp, const float *ref_logp, const float *values,
               const float *old_values, const float *adv_tok, const float *returns, const double *adv, const int *off,
               const int *len, int n, double scale, float *dlogp, float *dvalues, RlStats *st) {
    size_t ntok = 0;
    for (int i = 0; i < n; i++) ntok += (size_t)len[i];
    switch (c->algo) {
    case RL_ALGO_PPO:
        /* the flat arrays are contiguous, so the token loss runs over all of them */
        return rl_ppo_loss(logp, old_logp, adv_tok, values, old_values, returns, ntok, c->cliprange, c->cliprange_value,
                           c->vf_coef, scale, dlogp, dvalues, st);
    case RL_ALGO_GRPO:
        return rl_grpo_loss(logp, old_logp, ref_logp, adv, off, len, n, c->loss_type, c->eps_low, c->eps_high, c->beta,
                            scale, dlogp, st);
    default:
        return rl_seq_pg_loss(logp, old_logp, adv, off, len, n, c->cliprange, scale, dlogp, st);
    }
}
