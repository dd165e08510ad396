/* rl_metrics.c — TRL's metric names for online RL (rl_metrics.h). */
#include "rl_metrics.h"

#include <stdio.h>

/* TRL 1.x GRPOTrainer/RLOOTrainer's completion statistics: lengths of all and of
 * the terminated (EOS-ended) completions (0 when none), the fraction cut off by the
 * length limit, and the fraction of prompt groups whose rewards are all equal
 * (no learning signal for a group-relative advantage) */
static void rl_completion_metrics(Metrics *mt, const RlConfig *c, const RlRollout *r) {
    int n = r->n, lo = n ? r->len[0] : 0, hi = 0, tlo = 0, thi = 0, nt = 0;
    long tsum = 0;
    for (int i = 0; i < n; i++) {
        lo = r->len[i] < lo ? r->len[i] : lo;
        hi = r->len[i] > hi ? r->len[i] : hi;
        if (!r->eos[i]) continue;
        tlo = nt == 0 || r->len[i] < tlo ? r->len[i] : tlo;
        thi = r->len[i] > thi ? r->len[i] : thi;
        tsum += r->len[i];
        nt++;
    }
    metrics_add(mt, "completions/min_length", lo, 1);
    metrics_add(mt, "completions/max_length", hi, 1);
    metrics_add(mt, "completions/clipped_ratio", n ? 1.0 - (double)nt / n : 0, 1);
    metrics_add(mt, "completions/mean_terminated_length", nt ? (double)tsum / nt : 0, 1);
    metrics_add(mt, "completions/min_terminated_length", tlo, 1);
    metrics_add(mt, "completions/max_terminated_length", thi, 1);
    if (c->algo == RL_ALGO_GRPO || c->algo == RL_ALGO_RLOO) {
        int groups = n / c->G, zero = 0;
        for (int g = 0; g < groups; g++) /* TRL: isclose(std, 0), atol 1e-8 */
            zero += rl_std(r->score + (size_t)g * c->G, c->G) <= 1e-8;
        metrics_add(mt, "frac_reward_zero_std", groups ? (double)zero / groups : 0, 1);
    }
}

void rl_metrics_rollout(Metrics *mt, const RlConfig *c, const RlRollout *r, const RlRolloutStats *rs,
                        const RlMetricsInfo *info) {
    if (c->algo == RL_ALGO_PPO) {
        metrics_add(mt, "objective/kl", rs->kl, 1);
        metrics_add(mt, "objective/entropy", rs->entropy, 1);
        metrics_add(mt, "objective/non_score_reward", rs->non_score_reward, 1);
        metrics_add(mt, "objective/rlhf_reward", rs->rlhf_reward, 1);
        metrics_add(mt, "objective/scores", rs->scores, 1);
        metrics_add(mt, "objective/kl_coef", info->kl_coef, 1);
    } else {
        metrics_add(mt, "reward", rs->scores, 1);
        metrics_add(mt, "reward_std", rs->reward_std, 1);
        if (c->algo != RL_ALGO_GRPO && r->ref_logp) {
            metrics_add(mt, "kl", rs->kl, 1);
            metrics_add(mt, "objective/rlhf_reward", rs->rlhf_reward, 1);
            metrics_add(mt, "objective/kl_coef", info->kl_coef, 1);
        }
        if (c->algo == RL_ALGO_REINFORCE) metrics_add(mt, "baseline", info->baseline, 1);
    }
    /* TRL GRPOTrainer/RLOOTrainer: rewards/<reward_func_name>/mean and /std per reward */
    for (int k = 0; k < (info->have_rm ? 1 : 0) + info->n_cmds; k++) {
        /* rewards/<name>/mean must fit a metric name (METRICS_NAME bytes with its NUL) */
        char rname[METRICS_NAME - 13], name[METRICS_NAME + 16];
        rl_reward_name(info->rw, k, rname, sizeof rname);
        snprintf(name, sizeof name, "rewards/%s/mean", rname);
        metrics_add(mt, name, info->comp[k], 1);
        snprintf(name, sizeof name, "rewards/%s/std", rname);
        metrics_add(mt, name, info->comp_std[k], 1);
    }
    long eos_count = 0;
    for (int i = 0; i < r->n; i++) eos_count += r->eos[i];
    metrics_add(mt, "completions/mean_length", (double)r->ntok / r->n, 1);
    metrics_add(mt, "completions/eos_rate", (double)eos_count / r->n, 1);
    rl_completion_metrics(mt, c, r);
}

void rl_metrics_update(Metrics *mt, const RlConfig *c, const RlStats *st, double ent_sum, long ntok, int have_ref,
                       double loss, double loss_weight) {
    if (c->algo == RL_ALGO_PPO) {
        metrics_add(mt, "policy/approxkl_avg", st->approxkl, st->tokens);
        metrics_add(mt, "policy/clipfrac_avg", st->clipfrac, st->tokens);
        metrics_add(mt, "loss/policy_avg", st->pg_loss, st->tokens);
        metrics_add(mt, "loss/value_avg", st->vf_loss, st->tokens);
        metrics_add(mt, "val/clipfrac_avg", st->vf_clipfrac, st->tokens);
        metrics_add(mt, "policy/entropy_avg", ent_sum, (double)ntok);
        metrics_add(mt, "val/ratio", st->ratio, st->tokens);
    } else {
        metrics_add(mt, "clip_ratio", st->clipfrac, st->tokens);
        if (c->algo == RL_ALGO_GRPO) { /* TRL >= 0.17's names for the same counts */
            metrics_add(mt, "clip_ratio/low_mean", st->clip_low, st->tokens);
            metrics_add(mt, "clip_ratio/high_mean", st->clip_high, st->tokens);
            metrics_add(mt, "clip_ratio/region_mean", st->clipfrac, st->tokens);
        }
        if (c->algo == RL_ALGO_GRPO && c->beta != 0 && have_ref) metrics_add(mt, "kl", st->kl, st->tokens);
        if (c->algo != RL_ALGO_GRPO) metrics_add(mt, "policy/approxkl_avg", st->approxkl, st->tokens);
        metrics_add(mt, "entropy", ent_sum, (double)ntok);
    }
    metrics_add(mt, "loss", loss, loss_weight);
}
