/* train_internal.h — what train.c and checkpoint.c share and nobody else uses. */
#ifndef CHERRY_TRAIN_INTERNAL_H
#define CHERRY_TRAIN_INTERNAL_H

#include "train.h"

/* "PROG: message" on stderr, rank 0 only, unless -q (clears the progress bar). */
void train_say(const Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Data parallelism: every rank still holds rank 0's weights (a collective). */
int trainer_ranks_same_weights(Trainer *tr, Error *e);
/* Restores weights, optimiser, task RNG and step from checkpoint directory DIR. */
int trainer_resume(Trainer *tr, const char *dir, Error *e);
/* Whether OUT_DIR holds any checkpoint-N entry. */
int checkpoint_dir_has_any(const char *out_dir);

#endif
