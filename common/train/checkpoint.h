/* checkpoint.h — checkpoints, resume and the final save of the training loop
 * (train.h).  Included by train.h; the functions take the Trainer it defines.
 *
 * CHECKPOINTS.  OUT/checkpoint-N/ (N = updates done), written atomically: the model
 * as an HF directory (loadable by transformers), optimizer.safetensors (AdamW
 * exp_avg and exp_avg_sq as flat F32 tensors, step count in metadata) and
 * trainer_state.json (global_step, total_steps, seed, the task RNG state,
 * flags that must match on resume).  --resume continues from the newest
 * checkpoint; training N steps straight and training k, stopping, resuming to N
 * give bit-identical weights (tests/t_sft_resume.sh).
 *
 * SIGNALS AND FAILURES.  SIGINT/SIGTERM finish the current step, write a checkpoint
 * and make train_run return 130/143.  A non-finite loss or gradient norm stops
 * training before the update with a message naming the step (EX_SOFTWARE); the
 * checkpoints already written stay.
 *
 * FINAL MODEL.  OUT/ is replaced atomically by a directory with config.json,
 * model.safetensors and the tokenizer files (copied from tokenizer_dir), with the
 * checkpoint-N/ directories moved into it.
 *
 * Not for: the loop (train.h), optimiser state layout (optim.h). */
#ifndef CHERRY_CHECKPOINT_H
#define CHERRY_CHECKPOINT_H

#include "train.h"

/* Writes OUT/checkpoint-<step>/ (skipped if that step is already saved). */
int trainer_checkpoint(Trainer *tr, Error *e);
/* Writes the final model into f->out_dir (atomically, keeping checkpoints). */
int trainer_save_final(Trainer *tr, Error *e);

/* Newest OUT/checkpoint-N/ holding a trainer_state.json: returns N and sets *path
 * (malloc'd), or -1 when there is none. */
long train_find_checkpoint(const char *out_dir, char **path);

#endif
