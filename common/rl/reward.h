/* reward.h — scoring token sequences with a reward model (a *ForSequenceClassification
 * directory with num_labels 1), in batches.
 *
 * The reward of a sequence is the scalar head at its last non-pad token, the rule of
 * transformers' GPT2/LlamaForSequenceClassification (prefbatch.h rm_score_column), so
 * a reward computed here equals the one transformers and `score` compute.  Sequences
 * are right-padded into batches of up to batch_size rows; a row's reward does not
 * depend on the other rows (padding is a segment of its own, and causal attention
 * never lets a real token see the padding after it).
 * Not for: training the reward model (rm-train) or reading pairs (prefbatch.h). */
#ifndef CHERRY_REWARD_H
#define CHERRY_REWARD_H

#include "base/err.h"
#include "model/model.h"

/* rewards[i] = reward of seqs[i][0..lens[i]).  rm must be a classifier.
 * Errors: EX_USAGE (not a classifier), EX_DATAERR (a sequence empty, longer than the
 * model's context or with an id outside its vocabulary, naming which). */
int reward_score(Model *rm, const int *const *seqs, const int *lens, int n, int batch_size, float *rewards, Error *e);

#endif
