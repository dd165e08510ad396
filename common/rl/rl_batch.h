/* rl_batch.h — a batch of prompt+completion sequences seen through its completion
 * tokens: what online RL (ppo) runs its models on.
 *
 * The sequences are right-padded rows of a data.h Batch (targets on completion
 * tokens only, padding a segment of its own).  Completion token t of sequence i is
 * predicted at row i*T + prompt_len_i - 1 + t; its log-prob, entropy and value are
 * read there (TRL: logits[:, context_length - 1 : -1], full_value[:, context_length
 * - 1 : -1]).  Per-token results come back in the flat layout of losses_rl.h:
 * sequence i owns rows off[i] .. off[i] + len[i] - 1, off[0] = 0, no gaps.
 *
 * Temperature: log-probs are of softmax(logits / T), as TRL's trainers compute them
 * for the policy and the reference.  The final hidden state is divided by T before
 * the LM head (logits = h W, so (h / T) W = logits / T) and its gradient likewise
 * after the head's backward; the trunk never sees the difference.
 * Not for: the losses (losses_rl.h), generation (generate.h). */
#ifndef CHERRY_RL_BATCH_H
#define CHERRY_RL_BATCH_H

#include "data/data.h"
#include "base/err.h"
#include "model/model.h"

typedef struct RlSeqBatch {
    Batch b;              /* rows = sequences, in order */
    int n;                /* sequences */
    int *len, *off;       /* [n] completion tokens and their flat offsets */
    size_t *row0;         /* [n] row predicting each sequence's first completion token */
    long ntok;            /* completion tokens in all */
    float *row_a, *row_b; /* [B*T] scratch */
} RlSeqBatch;

/* Builds the batch of sequences prompt[i][0..plen[i]) + comp[i][0..clen[i]) (each
 * clen >= 1).  Returns 0 or an error (EX_DATAERR from batch_fill). */
int rl_batch_build(RlSeqBatch *sb, const int *const *prompt, const int *plen, const int *const *comp, const int *clen,
                   int n, int pad_id, Error *e);
void rl_batch_free(RlSeqBatch *sb);

/* Per-row array [B*T] -> flat per-token array [ntok], and back (other rows zero). */
void rl_batch_gather(const RlSeqBatch *sb, const float *row, float *tok);
void rl_batch_scatter(const RlSeqBatch *sb, const float *tok, float *row);

/* Forward of causal LM m: flat log-probs of the completion tokens under
 * softmax(logits / temperature), and their entropies (entropy may be NULL). */
void rl_lm_logprobs(Model *m, RlSeqBatch *sb, float temperature, float *logp, float *entropy);
/* Backward of the last rl_lm_logprobs of m: accumulates into m->grads the gradient
 * of sum_t dlogp[t] * logp[t]. */
void rl_lm_backward(Model *m, RlSeqBatch *sb, float temperature, const float *dlogp);

/* Forward of the scalar head of classifier vm: the flat per-token values. */
void rl_values(Model *vm, RlSeqBatch *sb, float *values);
/* Backward of the last rl_values of vm with d loss / d values. */
void rl_values_backward(Model *vm, RlSeqBatch *sb, const float *dvalues);

#endif
