/* recbatch.h — annotate streamed JSONL records a batch at a time.
 *
 * logprobs and score do the same thing around different model calls: stream records
 * with their examples (recstream.h), gather --batch-size of them, build one padded
 * Batch (batch_pairs for preference records, batch_fill without packing for the
 * rest), let the program add its fields to the records, then free the batch and go
 * on.  This module is that loop; the program supplies the per-batch step (run the
 * model, set fields, write the records).  Memory does not grow with the input.
 * Not for: training (train.h batches shuffled, packed data). */
#ifndef CHERRY_RECBATCH_H
#define CHERRY_RECBATCH_H

#include <jansson.h>

#include "data.h"
#include "recstream.h"

/* The per-batch step: b holds the n records' rows (preference: chosen rows 0..n-1,
 * rejected rows n..2n-1, as batch_pairs lays them out).  The records stay owned by
 * the batcher (decref'd after the call).  Returns 0 or a sysexits code with e set. */
typedef int (*RecBatchFn)(void *ctx, const Batch *b, json_t **rec, int n, int is_pref, Error *e);
/* Optional check of a freshly opened stream (e.g. refuse a kind); 0 = go on. */
typedef int (*RecKindFn)(void *ctx, const RecStream *rs, Error *e);

typedef struct RecBatcher {
    Tokenizer *tok; /* borrowed */
    int pad_id, batch;
    RecBatchFn step;
    RecKindFn check; /* may be NULL */
    void *ctx;
    json_t **rec; /* the pending batch */
    Example *ex;
    PrefExample *pex;
    int n;
    long dropped; /* records the data layer dropped or skipped, over all files */
} RecBatcher;

void recbatch_init(RecBatcher *rb, Tokenizer *tok, int pad_id, int batch, RecBatchFn step, RecKindFn check, void *ctx);
/* Streams PATH ("-" = stdin) with the data options O through the step, batch by
 * batch (the last one may be short).  Errors: those of recstream, check and step. */
int recbatch_run_file(RecBatcher *rb, const char *path, const DataOptions *o, Error *e);
/* recbatch_run_file over the N_FILES paths, or over stdin when N_FILES is 0. */
int recbatch_run_files(RecBatcher *rb, char **files, int n_files, const DataOptions *o, Error *e);
void recbatch_free(RecBatcher *rb);

#endif
