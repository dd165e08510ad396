/* recstream.h — JSONL records together with their tokenized examples, streaming.
 *
 * Programs that ANNOTATE records (logprobs, score) must write each input record back
 * with new fields, so they need the parsed record and the example the data layer
 * built from it.  A RecStream reads the file twice in step: a JsonlReader for the
 * records and a DataReader (data.h) for the examples, matched by line number.
 * Records the data layer drops (prompt too long) or skips (--skip-invalid) are
 * counted and not returned.  Standard input cannot be read twice, so "-" is first
 * copied to a temporary file (removed on close); files are streamed directly.
 * Memory does not grow with the input.
 *
 * The kind is decided by the first record (data_detect_kind) unless given:
 * preference records come back as PrefExample, every other kind as Example.
 * Not for: training sets (data_read_all*), writing. */
#ifndef CHERRY_RECSTREAM_H
#define CHERRY_RECSTREAM_H

#include <jansson.h>

#include "data.h"
#include "base/jsonl.h"

typedef struct RecStream {
    JsonlReader jr;
    DataReader *dr;
    char *spool;   /* temporary copy of stdin, or NULL */
    char *name;    /* path for messages ("<stdin>" for "-") */
    DataKind kind; /* kind of every record (DATA_AUTO for an empty input) */
    int skip_invalid;
    long dropped;    /* records without an example (dropped or skipped by the data layer) */
    json_t *pending; /* record read ahead by the JSONL side */
    long pending_line;
    int eof;
} RecStream;

/* Opens PATH ("-" = stdin) with the data options O (o->kind may be DATA_AUTO).
 * tok is borrowed.  Errors: EX_NOINPUT, EX_DATAERR, EX_IOERR, EX_CANTCREAT (spool). */
int recstream_open(RecStream *s, const char *path, Tokenizer *tok, const DataOptions *o, Error *e);
/* Next record and its example: returns 0 with *rec (caller json_decref's it) and
 * either *ex (kind != preference) or *pex (preference) filled (caller frees),
 * DATA_END at the end, or a sysexits code with e set. */
int recstream_next(RecStream *s, json_t **rec, Example *ex, PrefExample *pex, Error *e);
void recstream_close(RecStream *s);

#endif
