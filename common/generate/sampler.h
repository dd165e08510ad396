/* sampler.h — turning one row of next-token logits into one token.
 *
 * The processing order is transformers' (generation/utils.py _get_logits_processor):
 * repetition penalty, then temperature, top-k, top-p, min-p; at temperature 0 the
 * token is the argmax of the penalised logits (greedy decoding, as do_sample=False).
 * The sampler is pure given its Rng: the caller owns one Rng per sequence, so the
 * token drawn for a sequence never depends on what else is in the batch.
 * Not for: running the model (generate.c) or choosing when to stop. */
#ifndef CHERRY_SAMPLER_H
#define CHERRY_SAMPLER_H

#include "base/util.h"

typedef struct SamplerConfig {
    float temperature;        /* 0 = greedy; else logits / temperature */
    int top_k;                /* 0 = off; keep tokens whose logit >= the k-th largest */
    float top_p;              /* 1 = off; keep the smallest set with probability mass >= top_p */
    float min_p;              /* 0 = off; drop tokens with p < min_p * p_max */
    float repetition_penalty; /* 1 = off; CTRL penalty on every token already in the sequence */
} SamplerConfig;

/* The defaults above: temperature 1, no filtering, no penalty. */
SamplerConfig sampler_config_default(void);
/* Checks ranges; on error returns EX_USAGE with a message naming the option. */
int sampler_config_check(const SamplerConfig *c, Error *e);

typedef struct Sampler {
    SamplerConfig cfg;
    int V;
    float *work;    /* [V] processed logits / probabilities */
    float *tmp;     /* [V] scratch for top-k selection */
    int *cand;      /* [V] candidate indices */
    unsigned *seen; /* [V] stamps for de-duplicating the repetition-penalty history */
    unsigned stamp;
} Sampler;

void sampler_init(Sampler *s, const SamplerConfig *cfg, int V);
void sampler_free(Sampler *s);

/* Repetition penalty (Keskar et al. 2019, CTRL, section 4.1, as transformers'
 * RepetitionPenaltyLogitsProcessor): for every distinct token t in hist[0..n),
 * logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty. */
void sampler_repetition_penalty(Sampler *s, float *logits, const int *hist, int n, float penalty);

/* Draws the next token from logits[V] (not modified).  hist[0..n_hist) is the
 * sequence so far (prompt and generated), used by the repetition penalty.
 * Outputs (each may be NULL):
 *   *policy_logp = log softmax(logits / tau)[token], tau = temperature (1 when
 *                  greedy): the log-probability under the policy the token came
 *                  from, computed on the raw logits as TRL's trainers recompute it;
 *   *sample_logp = log of the probability with which the token was actually
 *                  drawn after penalty and filtering (0 for greedy).
 * rng is only consumed when temperature > 0 (one draw per token). */
int sampler_sample(Sampler *s, const float *logits, const int *hist, int n_hist, Rng *rng, float *policy_logp,
                   float *sample_logp);

/* log softmax(logits / tau)[token], in double internally. */
float sampler_logprob(const float *logits, int V, int token, float tau);

#endif
