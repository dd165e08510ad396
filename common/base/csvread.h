/* csvread.h — streaming CSV rows (RFC 4180) with line numbers, on top of libcsv.
 *
 * The file is fed to libcsv one physical line at a time, so memory holds one row,
 * never the file, and every row knows the line it starts on (a quoted cell may span
 * lines).  Strict mode: a stray quote or an unterminated quoted cell is an error that
 * names FILE:LINE.  Not for: interpreting cells (prefdata_input.c turns a row into a
 * JSON object using the header). */
#ifndef CHERRY_CSVREAD_H
#define CHERRY_CSVREAD_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef struct CsvRow {
    char **cell;   /* NUL-terminated cells, owned by the reader */
    size_t *len;   /* byte length of each cell */
    size_t n, cap; /* number of cells, capacity */
    long line;     /* line the row starts on (1-based) */
} CsvRow;

typedef struct CsvReader {
    FILE *fp;         /* not owned */
    const char *name; /* for messages */
    void *parser;     /* struct csv_parser * */
    long line;        /* physical lines read so far */
    long next_start;  /* line on which the next row starts */
    CsvRow building;  /* row being assembled by the callbacks */
    CsvRow *ready;    /* completed rows not yet returned (FIFO) */
    size_t n_ready, cap_ready, head;
    CsvRow current; /* row last returned */
    char *buf;
    size_t bufcap;
    int eof, nul_error;
} CsvReader;

/* Reads CSV from FP (already open; not closed by csv_reader_close). */
int csv_reader_open(CsvReader *r, FILE *fp, const char *name, Error *e);
/* Returns 0 with *row set (valid until the next call), 0 with *row == NULL at end of
 * input, or EX_DATAERR / EX_IOERR with the message naming FILE:LINE. */
int csv_reader_next(CsvReader *r, const CsvRow **row, Error *e);
void csv_reader_close(CsvReader *r);

#endif
