/* csvread.c — see csvread.h. */
#include "csvread.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void row_clear(CsvRow *row) {
    for (size_t i = 0; i < row->n; i++) free(row->cell[i]);
    row->n = 0;
}

static void row_free(CsvRow *row) {
    row_clear(row);
    free(row->cell);
    free(row->len);
    memset(row, 0, sizeof *row);
}

/* libcsv field callback: appends one cell to the row being built. */
static void on_field(void *s, size_t len, void *data) {
    CsvReader *r = data;
    CsvRow *b = &r->building;
    if (b->n == 0) b->line = r->next_start;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->cell = xrealloc(b->cell, b->cap * sizeof *b->cell);
        b->len = xrealloc(b->len, b->cap * sizeof *b->len);
    }
    char *c = xmalloc(len + 1);
    if (len) memcpy(c, s, len);
    c[len] = 0;
    if (memchr(c, 0, len)) r->nul_error = 1;
    b->cell[b->n] = c;
    b->len[b->n] = len;
    b->n++;
}

/* libcsv end-of-row callback: moves the built row onto the ready queue. */
static void on_row(int c, void *data) {
    CsvReader *r = data;
    (void)c;
    if (r->n_ready == r->cap_ready) {
        r->cap_ready = r->cap_ready ? 2 * r->cap_ready : 4;
        r->ready = xrealloc(r->ready, r->cap_ready * sizeof *r->ready);
    }
    r->ready[r->n_ready++] = r->building;
    memset(&r->building, 0, sizeof r->building);
    /* The terminator was on the line being fed; the next row starts after it. */
    r->next_start = r->line + 1;
}

int csv_reader_open(CsvReader *r, FILE *fp, const char *name, Error *e) {
    memset(r, 0, sizeof *r);
    r->fp = fp;
    r->name = name;
    struct csv_parser *p = xmalloc(sizeof *p);
    if (csv_init(p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(p);
        return err_set(e, EX_SOFTWARE, "%s: cannot initialise the CSV parser", name);
    }
    r->parser = p;
    r->next_start = 1;
    return 0;
}

int csv_reader_next(CsvReader *r, const CsvRow **row, Error *e) {
    struct csv_parser *p = r->parser;
    *row = NULL;
    row_free(&r->current);
    while (r->head == r->n_ready) {
        r->head = r->n_ready = 0;
        if (r->eof) return 0;
        ssize_t n = getline(&r->buf, &r->bufcap, r->fp);
        if (n < 0) {
            if (ferror(r->fp)) return err_set(e, EX_IOERR, "%s: read error: %s", r->name, strerror(errno));
            r->eof = 1;
            if (csv_fini(p, on_field, on_row, r) != 0)
                return err_set(e, EX_DATAERR, "%s:%ld: unterminated quoted cell at end of file", r->name,
                               r->building.n ? r->building.line : r->next_start);
            continue;
        }
        r->line++;
        /* pstate 0 is libcsv's ROW_NOT_BEGUN: nothing of a row is pending, so a row that
         * starts in this chunk starts on this line (blank lines are skipped by libcsv). */
        if (r->building.n == 0 && p->pstate == 0) r->next_start = r->line;
        if (csv_parse(p, r->buf, (size_t)n, on_field, on_row, r) != (size_t)n)
            return err_set(e, EX_DATAERR, "%s:%ld: malformed CSV: %s (a quote inside a cell must be doubled)", r->name,
                           r->line, csv_strerror(csv_error(p)));
        if (r->nul_error) return err_set(e, EX_DATAERR, "%s:%ld: NUL byte inside a CSV cell", r->name, r->line);
    }
    r->current = r->ready[r->head++];
    *row = &r->current;
    return 0;
}

void csv_reader_close(CsvReader *r) {
    if (r->parser) {
        csv_free(r->parser);
        free(r->parser);
    }
    row_free(&r->building);
    row_free(&r->current);
    for (size_t i = r->head; i < r->n_ready; i++) row_free(&r->ready[i]);
    free(r->ready);
    free(r->buf);
    memset(r, 0, sizeof *r);
}
