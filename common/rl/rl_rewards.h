/* rl_rewards.h — the rewards of online RL: a reward model and/or reward programs,
 * combined as a weighted sum, for a batch of sampled completions.
 *
 * The reward model scores prompt+completion at its last token (reward.h, as
 * transformers' *ForSequenceClassification); each reward program (rewardcmd.h)
 * receives one request line per completion (cherry-reward-program(5)) and answers
 * one number.  score[i] = sum_k weights[k] * reward_k(i), the reward model first,
 * then the programs in order (TRL GRPOTrainer's reward_weights).
 * Not for: advantages (losses_rl.h), running the programs (rewardcmd.h). */
#ifndef CHERRY_RL_REWARDS_H
#define CHERRY_RL_REWARDS_H

#include <jansson.h>

#include "base/err.h"
#include "data/data.h"
#include "formats/tokenizer.h"
#include "generate/generate.h"
#include "model/model.h"
#include "rewardcmd.h"

#define RL_MAX_REWARDS 9 /* a reward model and up to 8 programs */

typedef struct RlRewards {
    Model *rm;           /* NULL = no reward model */
    const char *rm_name; /* for messages */
    int rm_batch;        /* rows per reward-model pass */
    RewardCmd *cmds;     /* started reward programs */
    int n_cmds;
    double weights[RL_MAX_REWARDS];
    const Tokenizer *tok; /* decodes completions for the programs */
} RlRewards;

/* One sampled completion and what a reward needs to know about it. */
typedef struct RlCompletion {
    const int *prompt; /* prompt ids as the policy saw them */
    int plen;
    const int *tokens; /* completion ids (EOS included when sampled) */
    int n;
    const json_t *prompt_json; /* the record's prompt (string or message list) */
    long group;                /* prompt index in the run's stream of prompts */
    int sample;                /* 0 .. G-1 */
    int eos;                   /* ends with EOS */
    int stopped;               /* finished by EOS/stop rather than by length */
} RlCompletion;

/* The completion of generated sequence S whose prompt is PX; GROUP is the prompt's
 * index in the run's stream of prompts. */
RlCompletion rl_rewards_completion(const GenSeq *s, const PromptExample *px, long group);

/* The request line of a completion (cherry-reward-program(5)): compact JSON with
 * prompt, completion (text without EOS or special tokens, invalid UTF-8 and NUL as
 * U+FFFD, ids beyond the tokenizer skipped), completion_ids, group, sample,
 * finish_reason.  Returns a malloc'd string, or NULL with e set. */
char *rl_rewards_line(const Tokenizer *tok, const RlCompletion *c, Error *e);

/* Scores c[0..n): score[i] the weighted sum; comp_mean[k] (may be NULL) the batch
 * mean of component k.  A failing program is an error (rewardcmd.h); the reward
 * model's errors are prefixed with its name. */
int rl_rewards_score(const RlRewards *rw, const RlCompletion *c, int n, double *score, double *comp_mean, Error *e);
/* The same, with comp_std[k] (may be NULL) the batch standard deviation of component
 * k, Bessel-corrected as TRL's nanstd (0 when n < 2). */
int rl_rewards_score_stats(const RlRewards *rw, const RlCompletion *c, int n, double *score, double *comp_mean,
                           double *comp_std, Error *e);

/* The name of reward k in metrics, as TRL's reward_func_names: the reward model's
 * directory name (TRL: the last part of its name_or_path), a program's command name
 * (the last part of its first word; TRL: the function's __name__); a name taken by an
 * earlier reward gets "_K" (K = k + 1) appended.  Writes at most size bytes: names are
 * cut to size - 4 characters first (the metrics have a length limit, metrics.h). */
void rl_reward_name(const RlRewards *rw, int k, char *out, size_t size);

#endif
