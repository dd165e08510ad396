/* rl_ckpt.h — the online-RL state a checkpoint holds besides the weights, so a run
 * resumed at an iteration boundary continues exactly: DIR/ppo_state.safetensors with
 * the value model's AdamW moments (tensors value_exp_avg, value_exp_avg_sq, metadata
 * value_step; optim.h adamw_state_add) and, in metadata, the adaptive KL coefficient
 * (kl_coef) and the REINFORCE baseline (baseline, baseline_set), doubles as %.17g
 * so they read back bit for bit.  See ppo(1) FILES.
 * Not for: the policy and value-model weights (model_save / model_load_params). */
#ifndef CHERRY_RL_CKPT_H
#define CHERRY_RL_CKPT_H

#include "base/err.h"
#include "train/losses_rl.h"
#include "train/optim.h"

/* Writes DIR/ppo_state.safetensors; vopt NULL when there is no value model. */
int rl_ckpt_write(const char *dir, const AdamW *vopt, const RlKlController *klc, const RlState *rls, Error *e);
/* Reads it back into klc, rls and (when not NULL) vopt.  Errors: those of st_open,
 * EX_DATAERR naming the file when metadata or the value moments are missing. */
int rl_ckpt_read(const char *dir, AdamW *vopt, RlKlController *klc, RlState *rls, Error *e);

#endif
