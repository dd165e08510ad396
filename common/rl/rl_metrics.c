/* rl_metrics.c — TRL's metric names for online RL (rl_metrics.h). */
#include "rl_metrics.h"

#include <stdio.h>

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
    int k = 0;
    if (info->have_rm) metrics_add(mt, "rewards/model", info->comp[k++], 1);
    for (int i = 0; i < info->n_cmds; i++) {
        char name[32];
        snprintf(name, sizeof name, "rewards/cmd%d", i + 1);
        metrics_add(mt, name, info->comp[k++], 1);
    }
    long eos_count = 0;
    for (int i = 0; i < r->n; i++) eos_count += r->eos[i];
    metrics_add(mt, "completions/mean_length", (double)r->ntok / r->n, 1);
    metrics_add(mt, "completions/eos_rate", (double)eos_count / r->n, 1);
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
