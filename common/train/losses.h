/* losses.h — token-level losses as pure functions over per-token log-probs.
 *
 * The training loop's seam: a trainer runs the model and its LM head to get
 * logp[n] = log p(target_n | prefix) for every row n of a batch (rows with
 * targets[n] < 0 bear no loss), calls a loss here, and hands the returned
 * d loss / d logp back to model_logprobs_backward.  Nothing here touches a model.
 *
 * Normalisation is the CALLER's: losses return SUMS over their rows and take a
 * `scale` that multiplies the gradient, so the loop can divide by the number of
 * loss-bearing tokens of the whole accumulated batch (train.h explains why).
 * Everything is accumulated in double in row order (deterministic).
 * Preference losses (DPO family, Bradley-Terry) are in losses_pref.h.
 * Not for: running a model, optimisation. */
#ifndef CHERRY_LOSSES_H
#define CHERRY_LOSSES_H

#include <stddef.h>

/* Supervised fine-tuning / pre-training cross-entropy (the causal-LM loss of
 * transformers' ForCausalLMLoss with num_items_in_batch, as TRL's SFTTrainer uses
 * it): over rows with targets[n] >= 0,
 *     loss_sum = -sum_n logp[n]              (returned)
 *     dlogp[n] = -scale                      (0 on rows without a target)
 * so the loss the optimiser sees is scale * loss_sum.  *n_tokens (may be NULL)
 * receives the number of loss-bearing rows.  dlogp may be NULL (evaluation). */
double sft_loss(const float *logp, const int *targets, size_t N, double scale, float *dlogp, long *n_tokens);
/* sft_loss's dlogp alone: it does not depend on the log-probs, so it is known before
 * them (model_logprobs_fused then runs the LM head's forward and backward in one pass). */
void sft_dlogp(const int *targets, size_t N, double scale, float *dlogp);

/* Correct next-token predictions: correct = #{n : targets[n] >= 0
 * and pred[n] == targets[n]} — TRL's mean_token_accuracy numerator (its denominator
 * is the number of loss-bearing rows). */
long token_correct(const int *pred, const int *targets, size_t N);

/* Sequence log-prob: out[i] = sum of logp over the loss-bearing rows of sequence i,
 * where sequence i is rows [start[i], start[i] + len[i]) (for a padded [B,T] batch
 * without packing, start[i] = i*T and len[i] = T).  count[i] (may be NULL) gets the
 * number of loss-bearing rows.  This is how DPO/RM/PPO turn token log-probs into
 * per-sequence quantities. */
void seq_logp_sum(const float *logp, const int *targets, const int *start, const int *len, int n_seq, double *out,
                  int *count);
/* Backward of seq_logp_sum: dlogp[r] += dseq[i] for each loss-bearing row r of
 * sequence i (dlogp must be zeroed by the caller first). */
void seq_logp_sum_backward(const double *dseq, const int *targets, const int *start, const int *len, int n_seq,
                           float *dlogp);

#endif
