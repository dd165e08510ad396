/* ops.h — the transformer's layers as _forward/_backward pairs.
 *
 * Conventions (as in llm.c):
 *  - Activations are row-major [N, C] with N = B*T rows (one per token).
 *  - Backward functions ACCUMULATE (+=) into parameter gradients and into input
 *    gradients (dinp += ...), so a caller zeroes gradients once per step; except
 *    linear_backward_set and the element-wise backwards with accumulate = 0, which
 *    overwrite the input gradient (the model's first write into a buffer: no zeroing).
 *  - Linear weights are stored [OC, C] (nn.Linear layout) for both families;
 *    GPT-2's Conv1D [in,out] checkpoints are transposed on load and save.
 *  - Non-GEMM loops use OpenMP over rows; results do not depend on the thread count
 *    (every reduction over rows is done in a fixed order).
 * Not for: model wiring (model.c) or losses (losses.c). */
#ifndef CHERRY_OPS_H
#define CHERRY_OPS_H

#include <stddef.h>

#include "base/segments.h"

/* ---- token embedding: out[n,:] = wte[tokens[n],:]  (wte is [V,C]) ---- */
void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C);
void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C);

/* ---- learned positions (GPT-2): out[n,:] += wpe[pos[n],:]  (wpe is [maxT,C]) ----
 * pos[] is per token so packed rows can restart positions per example. */
void position_forward(float *out, const int *pos, const float *wpe, int N, int C);
void position_backward(float *dwpe, const float *dout, const int *pos, int N, int C);

/* ---- layernorm: out = (x - mean) * rstd * w + b; saves mean[N], rstd[N] ---- */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                       int C, float eps);
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        const float *mean, const float *rstd, int N, int C);

/* ---- rmsnorm (Llama): out = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) ---- */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                      int N, int C);

/* ---- linear: out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] (bias may be NULL) ----
 * backward: dinp += dout @ w; dw += dout^T @ inp; dbias += sum_n dout. Any of
 * dinp, dw, dbias may be NULL (not needed). */
void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);
void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w, int N,
                     int C, int OC);
/* The same with dinp overwritten (dinp = dout @ w), so it need not be zeroed first. */
void linear_backward_set(float *dinp, float *dw, float *dbias, const float *dout, const float *inp, const float *w,
                         int N, int C, int OC);
/* Both: dinp = dout @ w + dinp_beta dinp, dw = dout^T @ inp + dw_beta dw (betas 0 or 1). */
void linear_backward_betas(float dinp_beta, float dw_beta, float *dinp, float *dw, float *dbias, const float *dout,
                           const float *inp, const float *w, int N, int C, int OC);

/* ---- rotary position embedding, HF "rotate_half" convention ----
 * x is [N, nh, hd] (a row of heads per token), rotated in place by pos[n]:
 *   for i < hd/2: freq = theta^(-2i/hd), a = pos*freq,
 *   x1' = x1*cos(a) - x2*sin(a),  x2' = x2*cos(a) + x1*sin(a)
 * where x1 = x[i], x2 = x[i + hd/2].  Backward applies the transpose rotation to
 * the gradient in place (dx = R^T dy). */
void rope_forward(float *x, const int *pos, int N, int nh, int hd, float theta);
void rope_backward(float *dx, const int *pos, int N, int nh, int hd, float theta);

/* ---- causal self-attention with grouped-query heads and segment masking ----
 * q is [B,T,nh,hd], k and v are [B,T,nkv,hd] (nh % nkv == 0; head h uses kv head
 * h / (nh/nkv)).  Query i attends key j iff j <= i and seg_visible(seg[b,j],
 * seg[b,i]) (seg is [B,T]; right padding gets a segment id of its own, packed examples
 * get one each, the branches of a shared prefix seg_branch ids).  Scale
 * 1/sqrt(hd).  out is [B,T,nh,hd]; att [B,nh,T,T] keeps the softmax probabilities for
 * backward (entries that are masked are 0).
 * Backward accumulates into dq, dk, dv. */

/* (seg_visible, seg_branch: base/segments.h) */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, const int *seg, int B,
                       int T, int nh, int nkv, int hd);
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                        const float *k, const float *v, const int *seg, int B, int T, int nh, int nkv, int hd);

/* Options of attention_flash_* and ops_ext.h's attention_ext_*: scores
 * s = scale * q.k; when softcap > 0, s = softcap * tanh(s / softcap) (before the
 * mask); query i attends key j iff j <= i, same segment, and (window <= 0 or
 * i - j < window), i.e. the window keys i - window + 1 .. i. */
typedef struct AttnOpts {
    float scale;
    float softcap;
    int window;
} AttnOpts;

/* The same attention fused (FlashAttention, ops_flash.c): never more than a block of
 * 64 x 128 scores per thread.  o NULL: attention_forward's (scale 1/sqrt(hd), no
 * capping, no window); otherwise the options above, as attention_ext_forward; with a
 * window only the key blocks that reach into it are computed (O(T W), not O(T^2)).
 * lse [B,nh,T] gets each query row's log-sum-exp of its (scaled, capped) scores,
 * which backward uses with the forward's out to recompute the probabilities block by
 * block.  Matches attention_* / attention_ext_* to float rounding (tests: within 1e-5 relative
 * to the largest gradient; worst seen 9.6e-7).
 * Backward (the same o) accumulates into dq, dk, dv (any may be NULL). */
void attention_flash_forward(float *out, float *lse, const float *q, const float *k, const float *v, const int *seg,
                             int B, int T, int nh, int nkv, int hd, const AttnOpts *o);
void attention_flash_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                              const float *q, const float *k, const float *v, const int *seg, int B, int T, int nh,
                              int nkv, int hd, const AttnOpts *o);

/* ---- GELU, tanh approximation (GPT-2's gelu_new) ---- */
void gelu_forward(float *out, const float *inp, size_t n);
/* backward: dinp += (accumulate) or = (not) gelu'(inp) dout */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, int accumulate);

/* ---- SiLU-gated MLP core (Llama): out = silu(gate) * up ---- */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/* backward: dgate, dup added to (accumulate) or overwritten; either may be NULL */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n,
                     int accumulate);

/* ---- residual: out = a + b ; backward: da += dout, db += dout ---- */
void residual_forward(float *out, const float *a, const float *b, size_t n);
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---- fused LM head + log-softmax + gather ----
 * For each row n with targets[n] >= 0:
 *   logits = h[n,:] @ w^T   (w is [V,C], the tied or untied LM head)
 *   logp[n] = logits[t] - logsumexp(logits),  entropy[n] = -sum p log p
 * Rows with targets[n] < 0 get logp = 0, entropy = 0 and no gradient.
 * Computed in chunks of rows so that at most chunk_rows x V logits exist at a time;
 * the full [N, V] logits tensor is never allocated.  lse[N] is saved for backward
 * (entropy may be NULL).  argmax (may be NULL) receives, from the same pass, the
 * first v maximising the logits of each row with a target (-1 for the others):
 * TRL's mean_token_accuracy without a second pass over the vocabulary.
 * Backward takes dlogp[N] (d loss / d logp) and accumulates dh[N,C] and dw[V,C]
 * (dw may be NULL; with dw_beta 0 dw is overwritten, with 1 added to), recomputing
 * each chunk's logits:
 *   dlogits = dlogp[n] * (onehot(t) - softmax(logits)). */
void logprobs_forward(float *logp, float *entropy, float *lse, int *argmax, const float *h, const float *w,
                      const int *targets, int N, int C, int V);
void logprobs_backward(float *dh, float *dw, const float *dlogp, const float *h, const float *w, const int *targets,
                       const float *lse, int N, int C, int V, float dw_beta);

/* Both at once when dlogp is known before the forward (a loss linear in the log-probs:
 * SFT's cross-entropy): the outputs of logprobs_forward (no lse) and the accumulation
 * of logprobs_backward, each block of up to 256 rows keeping its logits over the
 * whole vocabulary (at most 64 MiB, in a scratch buffer kept between calls) instead
 * of recomputing them: three products over the vocabulary instead of four.  entropy,
 * argmax, dh and dw may be NULL; rows with dlogp 0 add nothing; dw_beta as
 * logprobs_backward's. */
void logprobs_forward_backward(float *logp, float *entropy, int *argmax, float *dh, float *dw, const float *dlogp,
                               const float *h, const float *w, const int *targets, int N, int C, int V, float dw_beta);

/* logprobs_forward_backward for a loss whose d loss / d logp of a row depends on the
 * log-probs of its own group only (DPO: a pair's two sequences): the N rows are
 * N / group_len groups of group_len consecutive rows, and fn(ctx, g0, g1, logp,
 * dlogp) must fill dlogp for every row with a target in groups [g0, g1), whose logp
 * are then final.  fn is called once for every group, in order, and must not call
 * the LM-head kernels (the block's logits are held in their scratch meanwhile).
 * Blocks hold whole groups (up to 256 rows, 64 MiB of logits); a group with more
 * target rows than that gets the two passes over its own rows (logprobs_forward, fn,
 * logprobs_backward), the other groups stay in one pass.  Bits depend on the shapes,
 * the targets and group_len only, never on the thread count. */
typedef void (*LogpGroupFn)(void *ctx, int g0, int g1, const float *logp, float *dlogp);
void logprobs_forward_backward_grouped(float *logp, float *entropy, int *argmax, float *dh, float *dw, float *dlogp,
                                       LogpGroupFn fn, void *ctx, int group_len, const float *h, const float *w,
                                       const int *targets, int N, int C, int V, float dw_beta);

/* Full logits for a few rows (decoding): out[N,V] = h @ w^T. */
void logits_forward(float *out, const float *h, const float *w, int N, int C, int V);

#endif
