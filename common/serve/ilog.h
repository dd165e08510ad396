/* ilog.h — the append-only JSONL logs of serve (interactions and feedback; man 5
 * cherry-serve-log).
 *
 * Durability: each record is one line written with ONE write(2) on a descriptor
 * opened O_APPEND, then fdatasync(2), before the client gets its response; so a
 * response a client received is on disk, and records never interleave.  A crash in
 * the middle of a write can at worst leave an unterminated last line: opening a log
 * whose last byte is not a newline first terminates that fragment, so the next
 * record starts on a line of its own, and readers (ilog_read) skip an invalid line
 * only when it is such a fragment, saying so.
 * Not for: metrics (metrics.h) or outputs written whole (AtomicFile). */
#ifndef CHERRY_ILOG_H
#define CHERRY_ILOG_H

#include <jansson.h>
#include <pthread.h>

#include "base/err.h"

typedef struct Ilog {
    int fd;
    char *path;
    int sync; /* 1 (default): fdatasync after every record */
    pthread_mutex_t mu;
    long records; /* appended by this process */
} Ilog;

/* Opens (creating, mode 0644) PATH for appending.  EX_CANTCREAT, EX_IOERR. */
int ilog_open(Ilog *l, const char *path, Error *e);
void ilog_close(Ilog *l);
/* Appends REC as one compact line.  EX_IOERR (the record may be absent). */
int ilog_append(Ilog *l, const json_t *rec, Error *e);

/* Reads every record of a log, calling fn(ctx, record, line) for each (the record
 * is borrowed).  A line that is not a JSON object is EX_DATAERR naming PATH:LINE,
 * unless it is a torn fragment (no final newline, or followed only by records
 * written after a crash): those are counted in *torn and skipped.  fn returning
 * non-zero stops the read with that code.  A missing file is EX_NOINPUT. */
int ilog_read(const char *path, int (*fn)(void *ctx, json_t *rec, long line, Error *e), void *ctx, long *torn,
              Error *e);

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" for now, into buf (>= 32 bytes). */
void ilog_time(char *buf, size_t n);
/* A fresh id "PREFIX-" + 24 random hex digits (getrandom), into buf (>= 48 bytes). */
void ilog_new_id(const char *prefix, char *buf, size_t n);

#endif
