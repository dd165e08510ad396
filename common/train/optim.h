/* optim.h — AdamW, global-norm gradient clipping and learning-rate schedules.
 *
 * The optimiser state mirrors the model's parameter block: m (first moment) and v
 * (second moment) are one contiguous float block each, laid out like m->params, so
 * an update is one flat loop and saving the state is two tensor writes (llm.c's
 * layout).  Every formula follows PyTorch / transformers so that a cherry run and a
 * transformers run with the same data and hyper-parameters agree to float rounding
 * (tests/oracle/make_sft_fixtures.py checks it):
 *   - adamw_step      = torch.optim.AdamW (single-tensor path, amsgrad=False);
 *   - grad_clip_norm  = torch.nn.utils.clip_grad_norm_ (L2 norm);
 *   - lr_schedule     = transformers get_{linear,cosine,constant}_schedule_with_warmup.
 * Results never depend on the thread count: the update is element-wise and the norm
 * is reduced over fixed-size chunks in a fixed order.
 * Not for: the training loop (train.c) or losses (losses.c). */
#ifndef CHERRY_OPTIM_H
#define CHERRY_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/safetensors.h"
#include "model/model.h"

/* One contiguous range of the parameter block and whether weight decay applies. */
typedef struct OptimGroup {
    size_t offset, numel;
    int decay;
} OptimGroup;

typedef struct AdamW {
    size_t n;     /* number of parameters (floats) */
    float *m, *v; /* [n] each, zero-initialised */
    long t;       /* number of updates done (torch's state["step"]) */
    float beta1, beta2, eps, weight_decay;
    int n_groups;
    OptimGroup *groups; /* cover [0, n) */
} AdamW;

/* torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8; weight_decay is the
 * caller's (transformers' TrainingArguments default is 0.0, torch's 1e-2). */
#define ADAMW_BETA1 0.9f
#define ADAMW_BETA2 0.999f
#define ADAMW_EPS 1e-8f

/* Creates the state for n parameters split into groups (copied).  Groups must cover
 * [0, n) without overlap; they need not be sorted. */
void adamw_init(AdamW *o, size_t n, const OptimGroup *groups, int n_groups, float beta1, float beta2, float eps,
                float weight_decay);
/* The groups of a model: one per ParamTensor, decay where ParamTensor.decay is set.
 * Which tensors decay is decided by model.c and follows the HF Trainer rule
 * (get_decay_parameter_names: no decay for biases and for LayerNorm/RMSNorm
 * weights; decay for every other weight, embeddings included). */
void adamw_init_model(AdamW *o, const Model *m, float weight_decay);
void adamw_free(AdamW *o);

/* One AdamW update of params[n] from grads[n] at learning rate lr, exactly as
 * torch.optim.AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay
 * Regularization", Algorithm 2; torch/optim/adamw.py _single_tensor_adamw):
 *   t += 1
 *   p  = p * (1 - lr * wd)                      (decay groups only)
 *   m  = m + (1 - b1) * (g - m)                 (torch: exp_avg.lerp_(g, 1 - b1))
 *   v  = b2 * v + (1 - b2) * g * g
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Parameters with a zero gradient are still updated (torch does the same: a zero
 * gradient is not a missing one). */
void adamw_step(AdamW *o, float *params, const float *grads, float lr);
/* adamw_step with every gradient read as (float)(grads[i] * gscale): gradient
 * clipping's multiplication (grad_clip_coef) done in the update's own pass instead
 * of a pass of its own that reads and writes every gradient; grads is left as it
 * was.  Bit-identical to grad_clip_norm followed by adamw_step. */
void adamw_step_scaled(AdamW *o, float *params, const float *grads, float lr, float gscale);
/* adamw_step_scaled that also sets every gradient to 0 once it is read (the update is
 * the same bits): the next accumulation then needs no clearing pass (train.c). */
void adamw_step_scaled_clear(AdamW *o, float *params, float *grads, float lr, float gscale);

/* Checkpoint form of the optimizer state (what a resumed run needs to continue
 * exactly): tensors PREFIX"exp_avg" and PREFIX"exp_avg_sq" (F32, [n]) and the step
 * in metadata PREFIX"step" (torch's state names).  adamw_state_add only queues them
 * on W (which borrows o->m, o->v until written).  adamw_state_read fills o from F
 * (read from PATH, for messages); EX_DATAERR when a tensor is missing, not F32 of n
 * elements, or the step is missing or negative. */
void adamw_state_add(StWriter *w, const AdamW *o, const char *prefix);
int adamw_state_read(AdamW *o, const StFile *f, const char *prefix, const char *path, Error *e);

/* L2 norm of grads[n] computed in double over fixed 64Ki-element chunks (each summed
 * in 32 interleaved lanes) added in order, so the result is independent of the
 * thread count. */
double grad_norm(const float *grads, size_t n);

/* torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2): computes the total norm,
 * and when max_norm > 0 multiplies the gradients by
 * min(1, max_norm / (norm + 1e-6)).  Returns the norm before clipping (what the
 * HF Trainer logs as grad_norm).  max_norm <= 0 disables clipping. */
double grad_clip_norm(float *grads, size_t n, double max_norm);
/* The factor grad_clip_norm multiplies the gradients by for a total norm NORM:
 * (float)(max_norm / (norm + 1e-6)) when that is below 1, else exactly 1 (also when
 * max_norm <= 0 or the norm is not finite). */
float grad_clip_coef(double norm, double max_norm);

typedef enum { SCHED_LINEAR = 0, SCHED_COSINE = 1, SCHED_CONSTANT = 2 } LrSchedule;

/* Parses "linear", "cosine" or "constant"; returns -1 for anything else. */
int lr_schedule_parse(const char *s);
const char *lr_schedule_name(LrSchedule s);

/* Learning-rate multiplier for the update with 0-based index step (the lr of the
 * step-th update is base_lr * lr_lambda(...)), as transformers/optimization.py
 * defines the lambdas:
 *   warm-up (all):  step < warmup  ->  step / max(1, warmup)
 *   linear:         max(0, (total - step) / max(1, total - warmup))
 *   cosine:         progress = (step - warmup) / max(1, total - warmup),
 *                   max(0, 0.5 * (1 + cos(pi * 2 * 0.5 * progress)))   (num_cycles 0.5)
 *   constant:       1
 * Note the transformers convention that with warmup > 0 the first update has lr 0. */
double lr_lambda(LrSchedule s, long step, long warmup, long total);

#endif
