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
 * and make train_run return 130/143; a second signal gives up at once, removing
 * only the temporaries of the save in progress (the handlers are async-signal-safe:
 * util.h atomic_cleanup_all).  A non-finite loss or gradient norm stops training
 * before the update with a message naming the step (EX_SOFTWARE); the checkpoints
 * already written stay.
 *
 * OUT.  trainer_init claims OUT first (outdir.h): a directory that is neither new,
 * empty, a model directory nor a checkpoint root is refused (EX_CANTCREAT; --force
 * uses it anyway), and a second run on the same OUT gets EX_TEMPFAIL.  A run that
 * ends before writing anything removes the OUT it created.
 *
 * FINAL MODEL.  config.json, model.safetensors (or the adapter files) and the
 * tokenizer files (copied from tokenizer_dir) are written into a temporary inside
 * OUT and then renamed into OUT one by one with SIGINT/SIGTERM held back, replacing
 * the files of an earlier model there (atomic_dir_commit_into).  The checkpoint-N/
 * directories are never moved, so nothing that happens during the final save can
 * cost a checkpoint.
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
