/* rl_metrics.h — the names online RL logs its numbers under, TRL's for each
 * algorithm (INTERFACE.md "Metrics"), so a cherry log reads like the trainer's it
 * reproduces:
 *   ppo (PPOTrainer):       objective/{kl,entropy,non_score_reward,rlhf_reward,scores,
 *                           kl_coef}; per update policy/{approxkl,clipfrac,entropy}_avg,
 *                           loss/{policy,value}_avg, val/{clipfrac_avg,ratio}
 *   grpo (GRPOTrainer):     reward, reward_std; per update clip_ratio,
 *                           clip_ratio/{low,high,region}_mean, kl (with --beta), entropy
 *   rloo, reinforce:        reward, reward_std, kl, objective/{rlhf_reward,kl_coef}
 *                           (with a reference), baseline (reinforce); per update
 *                           clip_ratio, policy/approxkl_avg, entropy
 * and for all: rewards/model, rewards/cmdN (each reward's batch mean),
 * completions/{mean_length,eos_rate}, loss.
 * Not for: computing the numbers (losses_rl.h), the log file (metrics.h). */
#ifndef CHERRY_RL_METRICS_H
#define CHERRY_RL_METRICS_H

#include "base/metrics.h"
#include "rl_rewards.h"
#include "rl_rollout.h"
#include "train/losses_rl.h"

/* What a rollout batch adds besides the statistics of rl_advantages. */
typedef struct RlMetricsInfo {
    double kl_coef;     /* the coefficient in force for this batch */
    double baseline;    /* reinforce's moving baseline after the batch */
    const double *comp;     /* batch mean of each reward: the model first, then the programs */
    const double *comp_std; /* their standard deviations over the batch */
    const RlRewards *rw;    /* for each reward's name (rl_reward_name) */
    int have_rm, n_cmds;
} RlMetricsInfo;

/* The rollout metrics of batch r (once per iteration, given to every update). */
void rl_metrics_rollout(Metrics *mt, const RlConfig *c, const RlRollout *r, const RlRolloutStats *rs,
                        const RlMetricsInfo *info);

/* The metrics of one micro-batch's loss: st from rl_loss, ENT_SUM the summed entropy
 * of its NTOK tokens, HAVE_REF whether reference log-probs were used, LOSS the
 * returned loss and LOSS_WEIGHT its rl_loss_weight. */
void rl_metrics_update(Metrics *mt, const RlConfig *c, const RlStats *st, double ent_sum, long ntok, int have_ref,
                       double loss, double loss_weight);

#endif
