/* rl_rollout.h — one batch of generated sequences in online RL, and the
 * bookkeeping around it: which prompts an iteration takes, the model batch of any
 * subset of its sequences, and forward passes over all of them in chunks.
 *
 * Per-token arrays are flat (losses_rl.h layout): sequence i's completion tokens
 * are rows off[i] .. off[i] + len[i] - 1.  Prompts are not copied: sequence i's
 * prompt is px[prompt[i]] of the caller's PromptExample array.
 * Not for: generating (generate.h), rewards (rl_rewards.h), losses (losses_rl.h). */
#ifndef CHERRY_RL_ROLLOUT_H
#define CHERRY_RL_ROLLOUT_H

#include <stdint.h>

#include "base/err.h"
#include "data/data.h"
#include "generate/generate.h"
#include "model/model.h"
#include "rl_batch.h"
#include "train/losses_rl.h"

typedef struct RlRollout {
    int n;                                 /* sequences = prompts * G */
    int *prompt;                           /* index into the caller's prompts */
    int **tokens;                          /* completion ids (owned) */
    int *len, *off;                        /* completion lengths and offsets */
    int *eos;                              /* completion ends with EOS */
    long ntok;                             /* total completion tokens */
    float *old_logp;                       /* sampling log-probs [ntok] */
    float *ref_logp;                       /* [ntok] or NULL */
    float *old_values, *adv_tok, *returns; /* ppo [ntok] */
    double *score;                         /* combined reward per sequence */
    double *adv;                           /* per-sequence advantage (grpo, rloo, reinforce) */
} RlRollout;

/* Frees every array and zeroes r (a zeroed RlRollout is empty). */
void rl_rollout_free(RlRollout *r);

/* Packs generate()'s n sequences into r (freed first): sequence i's prompt is
 * prompt_of[seqs[i].prompt], its tokens and sampling log-probs are copied, score and
 * adv are zeroed, the reference, value and advantage arrays are left NULL. */
void rl_rollout_pack(RlRollout *r, const GenSeq *seqs, int n, const int *prompt_of);

/* r as the batch of losses_rl.h rl_advantages (the arrays shared, not copied). */
RlBatch rl_rollout_view(RlRollout *r);

/* A micro-batch's slices of the rollout arrays, packed in micro-batch order (sequence
 * seq[j]'s tokens at off[j]); the arrays r lacks are NULL. */
typedef struct RlSlices {
    float *old_logp, *ref_logp;            /* [ntok] */
    float *adv_tok, *old_values, *returns; /* ppo [ntok] */
    double *adv;                           /* [k] per-sequence advantages */
} RlSlices;
void rl_rollout_gather(const RlRollout *r, const int *seq, int k, const int *off, long ntok, RlSlices *s);
void rl_rollout_slices_free(RlSlices *s);

/* The prompts of iteration IT: positions it*batch .. it*batch+batch-1 of the stream
 * of passes over the n_prompts prompts, each pass a Fisher-Yates shuffle seeded from
 * (seed, pass) only, so a resumed run takes the same prompts. */
void rl_rollout_prompts(long it, int batch, int n_prompts, uint64_t seed, int *out);

/* The order of the sequences 0..n-1 of a batch in optimisation pass PASS (counted
 * over the run: iteration * passes + pass): a shuffle seeded from (seed, pass). */
void rl_rollout_pass_order(uint64_t seed, long pass, int *order, long n);
/* Splits the update order[lo..hi) into up to GRAD_ACCUM micro-batches of near-equal
 * size: idx[j] = order + start_j, cnt[j] its size.  Returns how many. */
int rl_rollout_micro_split(const int *order, long lo, long hi, int grad_accum, const int **idx, int *cnt);

/* The model batch (rl_batch.h) of sequences seq[0..k) of r, in that order. */
int rl_rollout_batch(const RlRollout *r, const PromptExample *px, int pad_id, const int *seq, int k, RlSeqBatch *sb,
                     Error *e);

/* One forward pass over every sequence of r, CHUNK sequences at a time, into the flat
 * per-token array out[ntok]: the values of classifier m when VALUES, else the
 * log-probs of causal LM m under softmax(logits / temperature). */
int rl_rollout_forward(const RlRollout *r, const PromptExample *px, int pad_id, Model *m, int values, float temperature,
                       int chunk, float *out, Error *e);

#endif
