/* reward.h — scoring token sequences with a reward model (a *ForSequenceClassification
 * directory with num_labels 1), in batches.
 *
 * The reward of a sequence is the scalar head at its last non-pad token, the rule of
 * transformers' GPT2/LlamaForSequenceClassification (prefbatch.h prefbatch_score_column), so
 * a reward computed here equals the one transformers and `score` compute.  Sequences
 * are right-padded into batches of up to batch_size rows; a row's reward does not
 * depend on the other rows (padding is a segment of its own, and causal attention
 * never lets a real token see the padding after it).
 * Not for: training the reward model (rm-train) or reading pairs (prefbatch.h). */
#ifndef CHERRY_REWARD_H
#define CHERRY_REWARD_H

#include "base/err.h"
#include "generate/generate.h"
#include "model/model.h"

/* rewards[i] = reward of seqs[i][0..lens[i]).  rm must be a classifier.
 * Errors: EX_USAGE (not a classifier), EX_DATAERR (a sequence empty, longer than the
 * model's context or with an id outside its vocabulary, naming which). */
int reward_score(Model *rm, const int *const *seqs, const int *lens, int n, int batch_size, float *rewards, Error *e);

/* rewards[i] = reward of prompt[i][0..plen[i]) followed by comp[i][0..clen[i]): what a
 * reward model reads of a sampled completion (rollout, eval, ppo).  As reward_score. */
int reward_score_completions(Model *rm, const int *const *prompt, const int *plen, const int *const *comp,
                             const int *clen, int n, int batch_size, float *rewards, Error *e);

/* The same for generate()'s output: rewards[i] of prompt_ids[seqs[i].prompt] followed
 * by seqs[i].tokens, for i in [0, n). */
int reward_score_generated(Model *rm, const int *const *prompt_ids, const int *prompt_lens, const GenSeq *seqs, int n,
                           int batch_size, float *rewards, Error *e);

/* The model in OTHER_DIR must read the policy's token ids: EX_USAGE unless its
 * tokenizer.json is the policy's byte for byte (a directory without one passes). */
int reward_check_tokenizer(const char *policy_dir, const char *other_dir, Error *e);

#endif
