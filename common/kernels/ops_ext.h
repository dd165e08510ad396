/* ops_ext.h — the ops the newer model families add to ops.h's, as _forward/_backward
 * pairs with ops.h's conventions (row-major [N, C], backward accumulates, or with
 * accumulate = 0 overwrites).
 *   geglu:        Gemma's MLP core gelu_tanh(gate) * up
 *   rope_freq:    RoPE with an explicit inverse-frequency table (scaled RoPE:
 *                 linear, llama3, longrope, yarn; Gemma 3's local/global bases)
 *   rope_part:    the same on the first rot dimensions of each head (partial rotary)
 *   attention_ext: causal GQA attention with a sliding window, a query scale other
 *                 than 1/sqrt(hd) and tanh soft-capping of the scores (Gemma 2)
 *   logprobs_softcap: the LM head of logprobs_forward with final-logit soft-capping
 *   softcap:      y = c tanh(x / c) in place (decoding logits)
 * Not for: the ops of GPT-2 and Llama (ops.h), which keep their tuned kernels. */
#ifndef CHERRY_OPS_EXT_H
#define CHERRY_OPS_EXT_H

#include <stddef.h>

#include "ops.h"

/* ---- GeGLU core (Shazeer 2020, eq. 5 with GELU's tanh form): out = gelu(gate) * up ---- */
void geglu_forward(float *out, const float *gate, const float *up, size_t n);
/* backward: dgate, dup added to (accumulate) or overwritten; either may be NULL */
void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n,
                    int accumulate);

/* ---- RoPE as rope_forward (ops.h) with angle = f32(pos) * inv_freq[i], i < hd/2 ---- */
void rope_freq_forward(float *x, const int *pos, int N, int nh, int hd, const float *inv_freq);
void rope_freq_backward(float *dx, const int *pos, int N, int nh, int hd, const float *inv_freq);
/* ---- partial RoPE: only the first rot (even) dimensions of each head rotate, pairs
 * (i, i + rot/2) with inv_freq[rot/2]; the others pass through ---- */
void rope_part_forward(float *x, const int *pos, int N, int nh, int hd, int rot, const float *inv_freq);
void rope_part_backward(float *dx, const int *pos, int N, int nh, int hd, int rot, const float *inv_freq);

/* ---- attention with options ----
 * As attention_forward (ops.h) with ops.h's AttnOpts: a query scale, tanh
 * soft-capping of the scores and a sliding window.  att [B,nh,T,T] keeps the
 * probabilities.  Backward recomputes the scores for the soft-capping derivative.
 * (attention_flash_* takes the same options without the T x T probabilities.) */
void attention_ext_forward(float *out, float *att, const float *q, const float *k, const float *v, const int *seg,
                           int B, int T, int nh, int nkv, int hd, const AttnOpts *o);
void attention_ext_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                            const float *k, const float *v, int B, int T, int nh, int nkv, int hd, const AttnOpts *o);

/* ---- LM head with final soft-capping: logits = cap * tanh((h @ w^T) / cap) ----
 * Same contract as logprobs_forward/backward (ops.h); argmax is that of the capped
 * logits (the model's output logits, which TRL's mean_token_accuracy reads). */
void logprobs_softcap_forward(float *logp, float *entropy, float *lse, int *argmax, const float *h, const float *w,
                              const int *targets, int N, int C, int V, float cap);
void logprobs_softcap_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w,
                               const int *targets, const float *lse, int N, int C, int V, float cap);

/* ---- y = cap * tanh(x / cap), in place ---- */
void softcap_forward(float *x, size_t n, float cap);

#endif
