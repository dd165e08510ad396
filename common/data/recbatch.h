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
#include <stdio.h>

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
    /* builds the batch of preference records (NULL: batch_pairs); set after init, e.g.
     * to batch_pairs_shared where the model allows it (logprobs) */
    int (*pairs)(void *ctx, Batch *b, const PrefExample *const *p, int n, Error *e);
} RecBatcher;

void recbatch_init(RecBatcher *rb, Tokenizer *tok, int pad_id, int batch, RecBatchFn step, RecKindFn check, void *ctx);
/* Streams PATH ("-" = stdin) with the data options O through the step, batch by
 * batch (the last one may be short).  Errors: those of recstream, check and step. */
int recbatch_run_file(RecBatcher *rb, const char *path, const DataOptions *o, Error *e);
/* recbatch_run_file over the N_FILES paths, or over stdin when N_FILES is 0. */
int recbatch_run_files(RecBatcher *rb, char **files, int n_files, const DataOptions *o, Error *e);
void recbatch_free(RecBatcher *rb);

/* ---- the command line the annotating programs share ------------------------------
 * -m/--model DIR, -o/--out PATH, -q, -h, --version, --batch-size N (8),
 * --max-length N (1024), --max-prompt-length N (512), --kind, --template,
 * --skip-invalid, --threads N, and --seed/--progress/--no-progress accepted for
 * uniformity; plus the program's one boolean switch EXTRA (e.g. "per-token"). */
typedef struct RecFlags {
    const char *model_dir, *out_path; /* out_path NULL unless -o was given */
    int quiet, batch, max_length, max_prompt_length, threads;
    int extra;        /* 1 when --EXTRA was given */
    DataOptions data; /* kind, template and skip_invalid from the flags; the lengths are
                       * the caller's to set (they are clamped to the model) */
    int first_input;  /* argv index of the first input file (argc: none, read stdin) */
} RecFlags;

/* Parses argv or exits: usage(stdout) and 0 for -h, cli_version for --version, a
 * usage error (64) for a bad or missing flag; with REJECT_PROMPT_ONLY, --kind
 * prompt-only is one too (no completion to work on). */
void recbatch_flags_parse(RecFlags *f, const char *prog, int argc, char **argv, const char *extra,
                          int reject_prompt_only, void (*usage)(FILE *));

/* The data options of F for a model of context MAX_SEQ: F's kind, template and
 * skip_invalid, --max-length cut to MAX_SEQ, --max-prompt-length as given. */
DataOptions recflags_data_options(const RecFlags *f, int max_seq);

#endif
