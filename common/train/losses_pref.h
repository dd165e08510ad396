/* losses_pref.h — preference losses: the DPO family and Bradley–Terry.
 *
 * Pure functions over per-SEQUENCE log-probs (sum over completion tokens) or
 * per-sequence rewards.  Each returns the loss, fills its metrics, and writes
 * d loss / d input per sequence.  Because a sequence log-prob is a plain sum of
 * token log-probs, d loss / d token-logp equals d loss / d seq-logp for every
 * completion token of that sequence: pref_seq_grad_broadcast() spreads it.
 *
 * The formulas follow TRL's DPOTrainer.dpo_loss and RewardTrainer.compute_loss
 * (trl/trainer/dpo_trainer.py, reward_trainer.py); each one cites its paper in
 * losses_pref.c.  Losses are means over the pairs of the call; the training loop
 * scales for gradient accumulation.  Everything is computed in double.
 * Not for: the SFT cross-entropy loop or PPO (losses.h), running a model (model.h). */
#ifndef CHERRY_LOSSES_PREF_H
#define CHERRY_LOSSES_PREF_H

#include "base/err.h"

typedef enum {
    PREF_SIGMOID = 0,  /* DPO (Rafailov et al. 2023, eq. 7); with label smoothing = cDPO */
    PREF_HINGE,        /* SLiC-HF (Zhao et al. 2023) / RSO hinge (Liu et al. 2023) */
    PREF_IPO,          /* IPO (Azar et al. 2023, eq. 17), length-normalised as TRL */
    PREF_ROBUST,       /* robust DPO (Chowdhury et al. 2024) */
    PREF_CDPO,         /* conservative DPO (Mitchell 2023): sigmoid + label smoothing */
    PREF_BCO_PAIR,     /* BCO (Jung et al. 2024), paired form with running reward shift */
    PREF_SPPO_HARD,    /* SPPO (Wu et al. 2024, eq. 4.7) with hard win probabilities */
    PREF_NCA_PAIR,     /* NCA (Chen et al. 2024) paired form */
    PREF_APO_ZERO,     /* APO-zero (D'Oosterlinck et al. 2024, eq. 7) */
    PREF_APO_DOWN,     /* APO-down (same paper, eq. 8) */
    PREF_SFT,          /* NLL on chosen completion tokens (token mean over the batch) */
    PREF_EXO_PAIR,     /* EXO (Ji et al. 2024, eq. 16) for K = 2; needs label smoothing > 0 */
    PREF_AOT,          /* AOT (Melnyk et al. 2024), paired: sorted log-ratio margins */
    PREF_AOT_UNPAIRED, /* AOT, unpaired: sorted chosen against sorted rejected log-ratios */
    PREF_DISCOPOP,     /* DiscoPOP (Chris Lu et al. 2024, eq. 5): log-ratio modulated loss */
    PREF_SIGMOID_NORM, /* DPO on length-normalised log-ratios (TRL's sigmoid_norm) */
    PREF_N_TYPES
} PrefLossType;

#define PREF_MAX_TERMS 8

typedef struct PrefLossConfig {
    int n_terms;
    PrefLossType type[PREF_MAX_TERMS];
    double weight[PREF_MAX_TERMS]; /* loss = sum_k weight[k] * mean_i loss_k(i) */
    double beta;                   /* default 0.1 */
    double label_smoothing;        /* sigmoid/cdpo and robust; in [0, 0.5) */
    double rpo_alpha;              /* < 0 = off; else adds rpo_alpha * NLL(chosen) (RPO) */
    double discopop_tau;           /* DiscoPOP's temperature (TRL DPOConfig.discopop_tau, 0.05) */
} PrefLossConfig;

/* Defaults: one "sigmoid" term, weight 1, beta 0.1, no smoothing, no RPO. */
void pref_loss_config_default(PrefLossConfig *c);
/* Parses --loss-type "a,b,c" and --loss-weights "1,0.5,..." (weights may be NULL =
 * all 1; otherwise there must be exactly one weight per type).  EX_USAGE on error. */
int pref_loss_parse(PrefLossConfig *c, const char *types, const char *weights, Error *e);
const char *pref_loss_name(PrefLossType t);
/* Returns 1 when some term needs reference log-probs (all but "sft"). */
int pref_loss_needs_ref(const PrefLossConfig *c);

/* Returns 1 when the gradient of the batch mean with respect to pair i's log-probs
 * needs no other pair's log-probs: every term but BCO's batch-mean shift and AOT's
 * sorted batch (the NLL of sft / RPO needs only the batch's chosen-token count). */
int pref_loss_pairwise(const PrefLossConfig *c);
/* For a pairwise config, pairs [i0, i1) of a batch of n: d_pc[i], d_pr[i] = scale * n *
 * the gradient of the mean over the n pairs that pref_loss gives (to float rounding),
 * from pair i's log-probs and the chosen lengths len_c[0..n) of the whole batch
 * (the NLL's token count). */
void pref_loss_pair_grads(const PrefLossConfig *c, int i0, int i1, int n, const float *pc, const float *pr,
                          const float *rc, const float *rr, const int *len_c, const int *len_r, double scale,
                          float *d_pc, float *d_pr);

/* State carried across steps: BCO's running mean of the implicit rewards
 * (TRL's RunningMoments: mean 0, count 1e-24 at start, one update per call). */
typedef struct PrefLossState {
    double bco_mean;
    double bco_count;
} PrefLossState;
void pref_loss_state_init(PrefLossState *s);

/* Batch means, TRL's metric names in comments. */
typedef struct PrefMetrics {
    double loss;             /* loss */
    double rewards_chosen;   /* rewards/chosen   = beta * (pc - rc) */
    double rewards_rejected; /* rewards/rejected = beta * (pr - rr) */
    double accuracies;       /* rewards/accuracies: fraction with chosen reward > rejected */
    double margins;          /* rewards/margins */
    double logps_chosen;     /* logps/chosen (summed over tokens) */
    double logps_rejected;   /* logps/rejected */
    double nll_loss;         /* NLL of the chosen tokens (token mean) */
    int n;                   /* pairs */
} PrefMetrics;

/* The DPO-family loss of n pairs.
 *   pc, pr: policy log-probs of chosen/rejected completions (sum over tokens)
 *   rc, rr: reference log-probs (may be NULL only when no term needs them)
 *   len_c, len_r: completion token counts (IPO's normalisation, the NLL mean)
 *   st: BCO state, updated once per call; NULL = shift 0 (and no update)
 * Writes d loss/d pc[i] and d loss/d pr[i] (either may be NULL) and metrics
 * (may be NULL).  Returns the loss. */
double pref_loss(const PrefLossConfig *c, PrefLossState *st, int n, const float *pc, const float *pr, const float *rc,
                 const float *rr, const int *len_c, const int *len_r, float *d_pc, float *d_pr, PrefMetrics *m);

/* ---- Bradley–Terry reward-model loss (TRL RewardTrainer) ---- */
typedef struct BtMetrics {
    double loss;
    double accuracy;         /* fraction with r_c > r_r */
    double rewards_chosen;   /* rewards/chosen: mean r_c */
    double rewards_rejected; /* rewards/rejected: mean r_r */
    double margin;           /* mean (r_c - r_r) */
    int n;
} BtMetrics;

/* loss = mean_i -log sigmoid(r_c - r_r - margin_i) + center * mean_i (r_c + r_r)^2
 * (Bradley & Terry 1952; Ouyang et al. 2022 eq. 1; the centring term is
 * Eisenstein et al. 2023).  margin may be NULL (= 0); center_coef 0 = off.
 * Writes d loss/d r_c and d loss/d r_r (may be NULL) and metrics (may be NULL). */
double bt_loss(int n, const float *r_c, const float *r_r, const float *margin, double center_coef, float *d_rc,
               float *d_rr, BtMetrics *m);

/* ---- per-token <-> per-sequence ----
 * Token row n of sequence b is b*T + t; it counts when targets[b*T+t] >= 0
 * (the targets given to model_logprobs).  seq[b] = sum of counted logp (summed in
 * double); len[b] = how many counted (len may be NULL). */
void pref_seq_sum(const float *tok_logp, const int *targets, int B, int T, float *seq, int *len);
/* dtok[b*T+t] = dseq[b] where counted, else 0 (overwrites dtok). */
void pref_seq_grad_broadcast(const float *dseq, const int *targets, int B, int T, float *dtok);

/* ---- KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
 * Optimization", eq. 7; TRL's KTOTrainer, loss_type "kto") ----
 * Unpaired: each example is one completion with a label (desirable or not).  With
 * r = policy logp - reference logp of the completion and z the KL estimate,
 *   desirable:   w_d * (1 - sigmoid(beta * (r - z)))
 *   undesirable: w_u * (1 - sigmoid(beta * (z - r)))
 * and the loss is the mean over the examples of the call (TRL: losses.nanmean()).
 * z is TRL's estimate from mismatched pairs: max(0, mean_i (policy logp - reference
 * logp) of prompt i with another example's completion), a constant for the gradient
 * (TRL detaches it). */
typedef struct KtoConfig {
    double beta;               /* default 0.1 */
    double desirable_weight;   /* default 1 */
    double undesirable_weight; /* default 1 */
} KtoConfig;
void kto_config_default(KtoConfig *c);

typedef struct KtoMetrics {
    double loss;
    double kl;               /* kl */
    double rewards_chosen;   /* rewards/chosen: mean beta * r over desirable (NAN if none) */
    double rewards_rejected; /* rewards/rejected: over undesirable (NAN if none) */
    double logps_chosen;     /* logps/chosen (NAN if none) */
    double logps_rejected;   /* logps/rejected (NAN if none) */
    int n_chosen, n_rejected;
} KtoMetrics;

/* z = max(0, mean_i (pol_kl[i] - ref_kl[i])) over n mismatched sequences (0 when n = 0). */
double kto_kl_estimate(int n, const float *pol_kl, const float *ref_kl);
/* The KTO loss of n examples: pol, ref are sequence log-probs, label[i] = 1 for a
 * desirable completion.  Writes d loss/d pol[i] (may be NULL) and metrics (may be
 * NULL).  Returns the loss. */
double kto_loss(const KtoConfig *c, int n, const float *pol, const float *ref, const unsigned char *label, double kl,
                float *d_pol, KtoMetrics *m);

#endif
