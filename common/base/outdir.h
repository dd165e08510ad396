/* outdir.h — which existing -o OUT directories a program may replace, and the lock
 * that keeps two runs from writing the same OUT.
 *
 * The directory outputs (sft, dpo, rm-train, ppo, init-model, import-gguf; every
 * atomic_dir_commit) replace OUT as a whole.  Replacing must never destroy what a
 * user put there, so an existing OUT is replaced only when it is a directory cherry
 * itself writes:
 *   - an empty directory, or
 *   - a directory that holds config.json, adapter_config.json or a checkpoint-N/
 *     and nothing but the entries cherry writes into a model directory or a
 *     checkpoint root: config.json, model.safetensors, adapter_config.json,
 *     adapter_model.safetensors, the tokenizer side files (tokenizer.json,
 *     tokenizer_config.json, special_tokens_map.json, generation_config.json,
 *     chat_template.jinja, vocab.json, merges.txt, added_tokens.json),
 *     optimizer.safetensors, trainer_state.json, ppo_state.safetensors,
 *     value_model/, checkpoint-N/ and cherry's own temporaries (NAME.tmp-PID-N,
 *     model.tmp).
 * The recognition is by content, not by a marker file, so outputs of earlier cherry
 * versions and a plain Hugging Face model directory count, while a directory with
 * anything else in it (a README, a .git, the user's data) does not.  Anything else
 * is refused with EX_CANTCREAT naming the path and the first foreign entry; --force
 * (outdir_set_force) lets a program replace any directory, never a file, a symbolic
 * link or a device.
 *
 * The lock: outdir_lock takes flock(LOCK_EX|LOCK_NB) on the file ".NAME.lock" beside
 * OUT (OUT's parent must be writable anyway: the temporaries go there).  The file is
 * left in place (unlinking a lock file races with the next locker); the lock goes
 * with the process.  A second run on the same OUT gets EX_TEMPFAIL.
 *
 * Not for: single-file outputs (util.h atomic_open). */
#ifndef CHERRY_OUTDIR_H
#define CHERRY_OUTDIR_H

#include "err.h"

/* --force: from now on any existing directory may be replaced (files never). */
void outdir_set_force(int force);
int outdir_force(void);

/* 0 when PATH does not exist or may be replaced (see above), else EX_CANTCREAT with
 * e set ("PATH: exists and is not ...; refusing to replace it"). */
int outdir_check(const char *path, Error *e);

/* Takes the lock of output PATH for the rest of the process: 0, EX_TEMPFAIL when
 * another process holds it, EX_CANTCREAT when the lock file cannot be created.
 * Taking the same PATH's lock twice in one process is a no-op. */
int outdir_lock(const char *path, Error *e);

/* Whether NAME is a file cherry writes at the top of a model directory (config.json,
 * model.safetensors, the adapter and tokenizer files): what a new final model
 * replaces in OUT (atomic_dir_commit_into). */
int outdir_is_model_file(const char *name);

/* The files a model directory may carry besides its config and weights (the
 * tokenizer's, the chat template, generation_config.json), NULL-terminated: what
 * model_copy_side_files copies along. */
extern const char *const outdir_side_files[];

/* Check and lock, in the order a program wants them at start-up. */
int outdir_claim(const char *path, Error *e);

#endif
