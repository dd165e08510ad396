/* jsonl.h — reading JSON Lines with file:line context, streaming.
 *
 * One record per line; memory does not grow with the number of records.  Blank
 * lines are skipped.  Lines longer than JSONL_MAX_LINE (64 MiB) are an error, not an
 * allocation.  Each record is parsed with jansson (which rejects invalid UTF-8);
 * a key that occurs twice in an object is an error, a UTF-8 byte-order mark before
 * the first line is skipped, and a directory given as the input is refused.
 * Not for: writing (use json_dumpf on an AtomicFile) or CSV (prefdata.c). */
#ifndef CHERRY_JSONL_H
#define CHERRY_JSONL_H

#include <jansson.h>
#include <stdio.h>

#include "err.h"

#define JSONL_MAX_LINE ((size_t)64 << 20)

typedef struct JsonlReader {
    FILE *fp;
    const char *name; /* for messages: the path or "<stdin>" */
    char *path_owned;
    long line; /* line number of the record last returned (1-based) */
    char *buf;
    size_t cap;
    int is_stdin;           /* also: FP belongs to the caller, do not close it */
    FILE *wrap;             /* FP with its peeked first bytes read back (input_unread) */
    struct ParquetFile *pq; /* set when the input is Parquet */
} JsonlReader;

/* Opens PATH ("-" or NULL = stdin). */
int jsonl_open(JsonlReader *r, const char *path, Error *e);
/* Reads the already open stream FP (not closed by jsonl_close); NAME for messages.
 * PRE holds the NPRE (<= 4) bytes the caller already read from FP to look at it. */
int jsonl_open_stream(JsonlReader *r, FILE *fp, const char *name, const void *pre, size_t npre, Error *e);
/* Reads the next record into *out (caller json_decref's it).  Returns 0 with *out
 * set, 0 with *out == NULL at end of file, or an error code (message names
 * FILE:LINE).  A top-level value that is not an object is an error. */
int jsonl_next(JsonlReader *r, json_t **out, Error *e);
void jsonl_close(JsonlReader *r);

/* Writes one record as a compact line (keys in insertion order) and a newline. */
int jsonl_write(FILE *fp, const json_t *obj, Error *e);

/* Field accessors that produce "FILE:LINE: field \"x\" ..." errors. */
int json_get_string(const json_t *obj, const char *field, const char **out, const JsonlReader *r, Error *e);

/* An id field's value as a new string: a string as it is, an integer in decimal;
 * NULL for anything else (or NULL).  Datasets spell ids both ways. */
char *json_id_string(const json_t *v);

#endif
