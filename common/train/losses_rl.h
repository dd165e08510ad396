/* losses_rl.h — online RL maths as pure functions: KL estimators, per-token PPO
 * rewards, GAE, whitening, group / leave-one-out / moving-average baselines, the
 * clipped policy-gradient losses of PPO, GRPO, RLOO and REINFORCE, the clipped value
 * loss, and the adaptive KL controller.
 *
 * Layout.  A batch holds n sequences; sequence i owns the len[i] completion tokens
 * at rows off[i] .. off[i]+len[i]-1 of every per-token array (flat, concatenated),
 * so no padding ever enters a sum.  logp are the current policy's log-probs of the
 * sampled tokens, old_logp the sampling policy's (kept from generation), ref_logp
 * the reference model's.
 *
 * Formulas follow TRL (huggingface/trl: trainer/ppo_trainer.py, grpo_trainer.py,
 * rloo_trainer.py, trainer/utils.py masked_whiten) and the papers they implement:
 *   PPO   Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7
 *         (clipped surrogate) and eq. 9 (value loss); Ziegler et al. 2019 (per-token
 *         KL penalty, adaptive KL controller, section 2.2);
 *   GAE   Schulman et al. 2016, "High-Dimensional Continuous Control Using
 *         Generalized Advantage Estimation", eq. 16;
 *   GRPO  Shao et al. 2024, "DeepSeekMath", eq. 3 and 4 (k3 KL, group-normalised
 *         advantages); Dr. GRPO (Liu et al. 2025) and DAPO (Yu et al. 2025) loss
 *         normalisations and the asymmetric clip (epsilon_high);
 *   RLOO  Ahmadian et al. 2024, "Back to Basics", eq. 5 (leave-one-out baseline);
 *   REINFORCE  Williams 1992, with a moving-average baseline.
 * Every function accumulates in double in row order, so results are deterministic.
 * Losses return SUMS over their units (tokens or sequences, as documented) and take
 * a `scale` multiplying their gradients, like losses.h: the caller divides by the
 * weight of the whole optimiser step (train.h, NORMALISATION).
 * Not for: running models, sampling, rewards from programs (rewardcmd.h). */
#ifndef CHERRY_LOSSES_RL_H
#define CHERRY_LOSSES_RL_H

#include <stddef.h>

/* ---- KL estimators (Schulman 2020, "Approximating KL divergence") -------------- */
typedef enum { RL_KL_K1 = 0, RL_KL_K3 = 1 } RlKlEstimator;
/* "k1" | "k3"; returns -1 for anything else. */
int rl_kl_estimator_parse(const char *s);

/* Per-token estimate of KL(policy || ref) from the sampled token:
 *   k1 = logp - ref_logp
 *   k3 = exp(ref_logp - logp) - (ref_logp - logp) - 1    (unbiased, always >= 0)
 * (TRL PPOTrainer: logr = ref - logp; kl = -logr or (logr.exp() - 1) - logr;
 * GRPOTrainer's per_token_kl is k3.) */
double rl_kl(RlKlEstimator est, double logp, double ref_logp);
/* d rl_kl / d logp. */
double rl_kl_grad(RlKlEstimator est, double logp, double ref_logp);

/* ---- PPO: rewards, GAE, whitening ------------------------------------------------ */

/* Per-token rewards of PPO-RLHF (Ziegler et al. 2019 eq. 2; TRL PPOTrainer):
 *   rewards[t] = -kl_coef * kl_t,   plus score[i] on the LAST token of sequence i.
 * kl (may be NULL) receives kl_t.  ref_logp NULL means no reference (kl_t = 0). */
void rl_ppo_rewards(const float *logp, const float *ref_logp, const int *off, const int *len, int n, RlKlEstimator est,
                    double kl_coef, const double *score, float *rewards, float *kl);

/* Generalised advantage estimation over one sequence of T tokens (GAE eq. 16, as TRL's
 * loop: nextvalue = values[t+1], 0 after the last token):
 *   delta_t = r_t + gamma V_{t+1} - V_t,   A_t = delta_t + gamma lam A_{t+1},
 *   returns_t = A_t + V_t. */
void rl_gae(const float *rewards, const float *values, int T, double gamma, double lam, float *adv, float *returns);

/* TRL masked_whiten(shift_mean=True) over x[0..n): mean, unbiased variance
 * (torch's masked_var with Bessel's correction n/(n-1)), then
 *   x = (x - mean) / sqrt(var + 1e-8).
 * With n < 2 the variance is taken as 0 (TRL raises; a single token has no spread). */
void rl_whiten(float *x, size_t n);

/* ---- sequence-level baselines ---------------------------------------------------- */
typedef enum { RL_SCALE_GROUP = 0, RL_SCALE_BATCH = 1, RL_SCALE_NONE = 2 } RlScaleRewards;
/* "group" | "batch" | "none" (TRL GRPOConfig.scale_rewards; "true"/"false" accepted
 * as group/none, the older boolean form).  Returns -1 otherwise. */
int rl_scale_rewards_parse(const char *s);

/* GRPO advantages (TRL GRPOTrainer._generate_and_score_completions) for n_groups
 * groups of G consecutive rewards:
 *   A = r - mean_group(r), divided by (std + 1e-4) where std is the unbiased
 *   standard deviation (torch.std) of the group (RL_SCALE_GROUP) or of the whole
 *   batch (RL_SCALE_BATCH), or not divided (RL_SCALE_NONE).
 * group_std (may be NULL) receives each group's std (for the reward_std metric). */
void rl_group_advantages(const double *r, int n_groups, int G, RlScaleRewards scale, double *adv, double *group_std);

/* RLOO (Ahmadian et al. 2024 eq. 5; TRL RLOOTrainer): with G >= 2 samples per group,
 *   A_i = r_i - (sum_j r_j - r_i) / (G - 1). */
void rl_rloo_advantages(const double *r, int n_groups, int G, double *adv);

/* REINFORCE with a moving-average baseline b: A_i = r_i - b for every i, then
 * b = decay * b + (1 - decay) * mean(r).  *initialised = 0 makes the first batch
 * use its own mean as b (so the first update is not driven by an arbitrary zero). */
void rl_reinforce_advantages(const double *r, int n, double decay, double *baseline, int *initialised, double *adv);

/* Unbiased standard deviation (torch.std) of x[0..n); 0 when n < 2. */
double rl_std(const double *x, int n);

/* ---- losses ------------------------------------------------------------------------ */

/* Metrics sums of one loss call.  Each field is a SUM over the units named; the
 * caller divides by the counts it accumulates over a step. */
typedef struct RlStats {
    double pg_loss;     /* sum of the per-token (or per-sequence) policy losses */
    double vf_loss;     /* PPO: sum of 0.5 * max(vf1, vf2) per token */
    double clipfrac;    /* PPO: tokens with pg_losses2 > pg_losses; GRPO: tokens in a clipped region */
    double clip_low;    /* GRPO: tokens with ratio < 1 - eps_low and A < 0 (TRL clip_ratio/low_mean) */
    double clip_high;   /* GRPO: tokens with ratio > 1 + eps_high and A > 0 (clip_ratio/high_mean) */
    double vf_clipfrac; /* PPO: tokens with vf_losses2 > vf_losses1 */
    double approxkl;    /* sum of 0.5 * (logp - old_logp)^2 (TRL policy/approxkl_avg) */
    double kl;          /* GRPO: sum of the per-token k3 KL (when ref given) */
    double ratio;       /* sum of exp(logp - old_logp) */
    double tokens;      /* tokens (or sequences for the sequence losses) summed */
} RlStats;

/* PPO clipped surrogate + clipped value loss over the tokens of n sequences
 * (TRL PPOTrainer, per token t):
 *   ratio = exp(logp - old_logp)
 *   pg    = max(-A ratio, -A clip(ratio, 1 - cliprange, 1 + cliprange))
 *   vclip = old_values + clip(values - old_values, -cliprange_value, cliprange_value)
 *   vf    = 0.5 max((values - returns)^2, (vclip - returns)^2)
 *   loss  = sum_t (pg + vf_coef vf)                        (returned)
 * dlogp[t] = scale * d loss/d logp, dvalues[t] = scale * d loss/d values (either may
 * be NULL; values/old_values/returns NULL = no value loss).  N = total tokens. */
double rl_ppo_loss(const float *logp, const float *old_logp, const float *adv, const float *values,
                   const float *old_values, const float *returns, size_t N, double cliprange, double cliprange_value,
                   double vf_coef, double scale, float *dlogp, float *dvalues, RlStats *st);

/* GRPO loss normalisations (TRL GRPOConfig.loss_type). */
typedef enum { RL_LOSS_GRPO = 0, RL_LOSS_BNPO = 1, RL_LOSS_DR_GRPO = 2, RL_LOSS_DAPO = 3 } RlLossType;
int rl_loss_type_parse(const char *s); /* "grpo" | "bnpo" | "dr_grpo" | "dapo" */

/* GRPO per-token loss (TRL GRPOTrainer._compute_loss), sequence i's advantage adv[i]
 * broadcast over its tokens:
 *   ratio = exp(logp - old_logp),  l_t = -min(ratio A, clip(ratio, 1-eps_low, 1+eps_high) A)
 *          + beta * k3(logp, ref_logp)   (when beta != 0 and ref_logp given)
 * returned: the sum of the units the loss type averages, i.e.
 *   grpo:          sum_i (sum_t l_t) / len_i         (unit: a sequence)
 *   bnpo, dapo:    sum_i sum_t l_t                   (unit: a token; the caller
 *                  divides by the update's tokens, TRL's dapo normaliser — TRL's bnpo
 *                  divides each micro-batch by its own, the same without accumulation)
 *   dr_grpo:       sum_i sum_t l_t                   (unit: max_completion_length tokens)
 * so the caller's weight is n sequences, the token count, or n * max_completion_length.
 * clipfrac counts tokens with (ratio < 1-eps_low and A < 0) or (ratio > 1+eps_high and
 * A > 0) (TRL's clip_ratio/region).  dlogp (may be NULL) = scale * d returned / d logp. */
double rl_grpo_loss(const float *logp, const float *old_logp, const float *ref_logp, const double *adv, const int *off,
                    const int *len, int n, RlLossType type, double eps_low, double eps_high, double beta, double scale,
                    float *dlogp, RlStats *st);

/* Sequence-level clipped policy gradient of RLOO (TRL RLOOTrainer <= 0.19) and
 * REINFORCE: per sequence i, with s_i = sum_t logp, s_old_i = sum_t old_logp,
 *   ratio_i = exp(s_i - s_old_i)
 *   l_i = max(-A_i ratio_i, -A_i clip(ratio_i, 1 - cliprange, 1 + cliprange))
 * returns sum_i l_i (unit: a sequence); dlogp[t] = scale * d l_i / d s_i for every
 * token of sequence i.  With one optimisation epoch ratio = 1 and this is exactly
 * REINFORCE's -A_i * grad sum_t log pi.  clipfrac counts clipped sequences. */
double rl_seq_pg_loss(const float *logp, const float *old_logp, const double *adv, const int *off, const int *len,
                      int n, double cliprange, double scale, float *dlogp, RlStats *st);

/* ---- adaptive KL controller (Ziegler et al. 2019 section 2.2; TRL's
 * AdaptiveKLController) ---------------------------------------------------------------
 *   e = clip(kl / target - 1, -0.2, 0.2),  coef *= 1 + e * n_steps / horizon */
typedef struct RlKlController {
    double coef, target, horizon; /* target <= 0: fixed coefficient */
} RlKlController;
void rl_kl_update(RlKlController *c, double kl, double n_steps);

/* ---- one algorithm end to end (what ppo's outer loop and the oracle test share) ---- */
typedef enum { RL_ALGO_PPO = 0, RL_ALGO_GRPO = 1, RL_ALGO_RLOO = 2, RL_ALGO_REINFORCE = 3 } RlAlgo;
int rl_algo_parse(const char *s); /* "ppo" | "grpo" | "rloo" | "reinforce" */
const char *rl_algo_name(RlAlgo a);

typedef struct RlConfig {
    RlAlgo algo;
    int G;                           /* completions per prompt (consecutive sequences form a group) */
    double kl_coef;                  /* ppo: per-token penalty; rloo/reinforce: sequence penalty */
    RlKlEstimator kl_est;            /* for the penalty and the logged KL */
    double gamma, lam;               /* ppo GAE */
    double cliprange;                /* ppo, rloo, reinforce */
    double cliprange_value, vf_coef; /* ppo */
    double eps_low, eps_high, beta;  /* grpo */
    RlScaleRewards scale;            /* grpo */
    RlLossType loss_type;            /* grpo */
    int max_completion_length;       /* grpo dr_grpo normaliser */
    double baseline_decay;           /* reinforce */
} RlConfig;

/* A batch of n sequences in the flat layout.  Inputs: off, len, old_logp, ref_logp
 * (NULL = no reference), old_values (ppo), score.  Outputs of rl_advantages: adv_tok
 * and returns (ppo, [ntok]) or adv (per sequence, the others). */
typedef struct RlBatch {
    int n;
    const int *off, *len;
    long ntok;
    const float *old_logp, *ref_logp, *old_values;
    const double *score;
    float *adv_tok, *returns;
    double *adv;
} RlBatch;

/* Batch statistics for the log (TRL's names in the comments). */
typedef struct RlRolloutStats {
    double scores;           /* objective/scores, reward: mean score */
    double kl;               /* objective/kl, kl: mean over sequences of the summed KL */
    double entropy;          /* objective/entropy: mean over sequences of sum(-old_logp) */
    double non_score_reward; /* objective/non_score_reward: -kl_coef * kl */
    double rlhf_reward;      /* objective/rlhf_reward: scores + non_score_reward */
    double reward_std;       /* reward_std: mean of the groups' std (batch std when G = 1) */
} RlRolloutStats;

/* Moving state across batches (reinforce's baseline). */
typedef struct RlState {
    double baseline;
    int baseline_set;
} RlState;

/* Advantages of one batch for c->algo:
 *   ppo:   rl_ppo_rewards (kl from old_logp vs ref_logp), rl_gae per sequence,
 *          rl_whiten over all tokens of the batch (TRL PPOTrainer);
 *   grpo:  rl_group_advantages of the scores;
 *   rloo:  rl_rloo_advantages of score - kl_coef * summed KL;
 *   reinforce: rl_reinforce_advantages of the same.
 * st may be NULL (needed for reinforce).  Returns the batch statistics in *out. */
void rl_advantages(const RlConfig *c, RlBatch *b, RlState *st, RlRolloutStats *out);

/* What the summed loss of sequences with lengths len[0..n) is divided by: tokens
 * (ppo, grpo bnpo/dapo), sequences (grpo "grpo", rloo, reinforce) or
 * sequences * max_completion_length (dr_grpo). */
double rl_loss_weight(const RlConfig *c, const int *len, int n);

/* The loss of c->algo over n sequences (flat arrays of this micro-batch; values and
 * adv_tok/returns/old_values only for ppo, adv only for the others):
 * returns the summed loss (rl_loss_weight's units) and fills dlogp (and dvalues for
 * ppo) with scale * its gradient; statistics are ADDED to *st. */
double rl_loss(const RlConfig *c, const float *logp, const float *old_logp, const float *ref_logp, const float *values,
               const float *old_values, const float *adv_tok, const float *returns, const double *adv, const int *off,
               const int *len, int n, double scale, float *dlogp, float *dvalues, RlStats *st);

#endif
