/* prefbatch.h — running a model over preference batches: sequence log-probs for DPO
 * and logprobs, rewards for reward models and score.
 *
 * A Batch (data.h) holds B right-padded rows; batch_pairs puts prompt+chosen of pair
 * i in row i and prompt+rejected in row n+i, batch_pairs_shared the prompt once and
 * both completions in row i (prefix sharing).  Here:
 *   - prefbatch_logps: one forward, the LM head on the completion targets (its one
 *     pass over the vocabulary also gives the entropy and the argmax that
 *     prefbatch_token_stats reads), and per row the sequence log-prob (sum over
 *     completion tokens, TRL's _get_batch_logps) and the completion length;
 *   - prefbatch_logps_backward: d loss / d sequence log-prob back into the model;
 *   - prefbatch_rewards: the scalar head read at the last non-pad token of each row,
 *     exactly as transformers' *ForSequenceClassification picks it (the rightmost
 *     token != pad_token_id; the last real token when the model has no pad id).
 * Scratch buffers are kept in a PrefScratch so repeated steps do not allocate.
 * Not for: loss formulas (losses_pref.h), the training loop (train.h). */
#ifndef CHERRY_PREFBATCH_H
#define CHERRY_PREFBATCH_H

#include <stdint.h>

#include "data/data.h"
#include "model/model.h"

typedef struct PrefScratch {
    float *tok;  /* [B*T] per-token log-probs or values */
    float *dtok; /* [B*T] their gradient */
    float *ent;  /* [B*T] per-token entropy of the last prefbatch_logps */
    int *pred;   /* [B*T] its argmax token (the LM head's same pass), -1 without target */
    size_t cap;
} PrefScratch;
void prefbatch_scratch_free(PrefScratch *s);

/* Forward of m on b; seq[r] = sum of log p(target) over row r's completion tokens;
 * len[r] = number of those tokens (len may be NULL).  tok_out (may be NULL) receives
 * the per-token log-probs [B*T] (0 where targets < 0). */
void prefbatch_logps(Model *m, const Batch *b, PrefScratch *s, float *seq, int *len, float *tok_out);
/* After prefbatch_logps(m, b) (and no other forward of m since): accumulates into
 * m->grads the gradient of sum_r dseq[r] * seq[r]. */
void prefbatch_logps_backward(Model *m, const Batch *b, PrefScratch *s, const float *dseq);
/* d loss / d seq for pairs [i0, i1) of n from their own sequence log-probs: fills
 * dseq[i] (chosen) and dseq[n + i] (rejected), reading seq at i and n + i and len
 * (which holds every pair's lengths from the first call on). */
typedef void (*PrefPairGradFn)(void *ctx, int i0, int i1, int n, const float *seq, const int *len, float *dseq);
/* prefbatch_logps and prefbatch_logps_backward (then model_backward) in one call, for a
 * loss that gives each pair's gradient from that pair's log-probs alone (DPO's
 * sigmoid, IPO, ...; not AOT's sorted batch or BCO's batch mean): fn is called for a
 * range of pairs as soon as their log-probs are known, so the LM head keeps a block
 * of pairs' logits instead of recomputing them (model_logprobs_fused_grouped: three
 * products over the vocabulary instead of four).  On a shared batch a row is a pair;
 * an unshared batch is one group (fn once, for all pairs), in one pass when its
 * completion tokens fit one block of the head.  seq, len (may be NULL) and dseq
 * (2n each) as the two calls'; s's token metrics are left as prefbatch_logps leaves
 * them. */
void prefbatch_logps_train(Model *m, const Batch *b, PrefScratch *s, float *seq, int *len, float *dseq,
                           PrefPairGradFn fn, void *ctx);
/* For a batch_pairs_shared batch (b->shared) both take one sequence per example: seq[i]
 * the chosen and seq[n + i] the rejected completion of pair i, as for batch_pairs.
 * Whether prefix sharing gives m's results for pairs p[0..n): not under LoRA dropout
 * (the prompt would get one mask instead of two) or a sliding window shorter than a
 * shared row (it counts columns). */
int prefbatch_can_share(const Model *m, const PrefExample *const *p, int n);
/* The batch of pairs p[0..n) for m: batch_pairs_shared when share and
 * prefbatch_can_share, else batch_pairs (no length limit).  Errors: batch_pairs'. */
int prefbatch_pairs(Batch *b, const Model *m, const PrefExample *const *p, int n, int pad_id, int share, Error *e);

/* TRL 1.x DPOTrainer's token metrics of the last prefbatch_logps (rows 0..n-1 the
 * chosen, n..2n-1 the rejected completions; shared rows: the two branches), as sums and counts so that micro-batches
 * add up: entropy over the completion tokens of all rows; logits/chosen and
 * logits/rejected, the logits averaged over the vocabulary and over the completion
 * tokens (mean_v h.w_v = h.mean_v(w_v), so no logits are formed); the chosen tokens
 * whose argmax logit is the target (mean_token_accuracy).  Reads the entropy and
 * argmax that prefbatch_logps left in s. */
typedef struct PrefTokenStats {
    double entropy_sum, logits_chosen_sum, logits_rejected_sum;
    long tokens, chosen_tokens, rejected_tokens, chosen_correct;
} PrefTokenStats;
void prefbatch_token_stats(const Model *m, const Batch *b, int n, PrefScratch *s, PrefTokenStats *out);

/* How prefbatch_pairs_run runs a micro-batch of pairs. */
typedef struct PrefRun {
    int share; /* prefix sharing where prefbatch_can_share (prefbatch_pairs) */
    int pad_id;
    /* At most this many tokens (rows x the longest row, padding included) in one
     * forward, so that the activations kept for backward are a chunk's, not the
     * micro-batch's; a pair longer than that is a chunk of its own.  <= 0: the whole
     * micro-batch at once. */
    long chunk_tokens;
    PrefPairGradFn fn; /* training with a pairwise loss (prefbatch_logps_train); NULL: log-probs only */
    void *ctx;
} PrefRun;
/* The pairs p[0..n) in chunks of consecutive pairs (PrefRun.chunk_tokens), each
 * its own batch (prefbatch_pairs' layout, padded to the chunk's longest row):
 * seq[i] chosen and seq[n + i] rejected, len (may be NULL) the same way, as one
 * batch of all n would give to float rounding (the gradients add up chunk by chunk
 * in m->grads).  With r->fn, each chunk is prefbatch_logps_train's (fn gets
 * micro-batch indices and every pair's lengths from its first call on) and dseq
 * (2n) receives d loss / d seq; without, prefbatch_logps's.  ts (may be NULL): the
 * token metrics of all chunks.  One chunk is exactly prefbatch_pairs then the one
 * call.  The whole micro-batch is one chunk for a longrope model (RoPE factors by the
 * batch's largest position) and under LoRA dropout (masks by a row's place in the
 * batch).  Errors: prefbatch_pairs'. */
int prefbatch_pairs_run(Model *m, const PrefExample *const *p, int n, const PrefRun *r, PrefScratch *s, float *seq,
                        int *len, float *dseq, PrefTokenStats *ts, Error *e);

/* Column of row r whose value is the reward: transformers' rule. */
int prefbatch_score_column(const Batch *b, int row, int pad_id);
/* Forward of classifier m on b; rewards[r] = value at prefbatch_score_column(b, r, pad). */
void prefbatch_rewards(Model *m, const Batch *b, PrefScratch *s, float *rewards);
/* After prefbatch_rewards: accumulates the gradient of sum_r drew[r] * rewards[r]. */
void prefbatch_rewards_backward(Model *m, const Batch *b, PrefScratch *s, const float *drew);

#endif
