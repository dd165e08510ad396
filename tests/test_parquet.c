/* test_parquet.c — the Parquet reader (common/base/parquet*.c) through the record
 * reader (jsonl_open): every fixture of tests/oracle/make_parquet_fixtures.py (pyarrow:
 * each codec, dictionary on and off, data pages v1 and v2, nulls, list<struct>, maps,
 * several row groups, DELTA_* and BYTE_STREAM_SPLIT) yields the rows of the JSONL the
 * generator wrote beside it, key order included; the same through a pipe; and damaged
 * files (every truncation, byte flips, hostile lengths) end in EX_DATAERR naming the
 * file, never in a read out of bounds (this test also runs under ASan/UBSan). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/jsonl.h"
#include "base/parquet.h"
#include "base/util.h"
#include "check.h"

#define DIR "tests/oracle/fixtures/parquet/"

static char *dump(json_t *v) {
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* A pipe whose other end a child process fills with DATA and closes: the reader sees a
 * stream that cannot be mapped or sought, as from `cmd | tool`, with no shell involved. */
static FILE *pipe_of(const void *data, size_t n, pid_t *child) {
    int fd[2];
    if (pipe(fd)) return NULL;
    *child = fork();
    if (*child < 0) {
        close(fd[0]);
        close(fd[1]);
        return NULL;
    }
    if (*child == 0) {
        close(fd[0]);
        const char *q = data;
        while (n > 0) {
            ssize_t w = write(fd[1], q, n);
            if (w <= 0) _exit(1);
            q += w;
            n -= (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    return fdopen(fd[0], "r");
}

static void pipe_close(FILE *p, pid_t child) {
    fclose(p);
    waitpid(child, NULL, 0);
}

/* Reads every record of R; returns the count, or -1 with E set. */
static long compare_readers(JsonlReader *a, JsonlReader *b, const char *what) {
    Error e = {0};
    long n = 0;
    for (;;) {
        json_t *x = NULL, *y = NULL;
        int ra = jsonl_next(a, &x, &e);
        CHECK(!ra, "%s: row %ld: %s", what, n + 1, e.msg);
        int rb = jsonl_next(b, &y, &e);
        CHECK(!rb, "%s: jsonl %ld: %s", what, n + 1, e.msg);
        if (ra || rb || !x || !y) {
            CHECK(!x && !y, "%s: row counts differ after %ld rows (parquet %s, jsonl %s)", what, n,
                  x ? "more" : "ended", y ? "more" : "ended");
            json_decref(x);
            json_decref(y);
            return n;
        }
        char *sx = dump(x), *sy = dump(y);
        CHECK(!strcmp(sx, sy), "%s: row %ld\n  expected %s\n  got      %s", what, n + 1, sy, sx);
        free(sx);
        free(sy);
        json_decref(x);
        json_decref(y);
        n++;
    }
}

static void check_fixture(const char *name, long want_rows) {
    char pp[256], jp[256];
    snprintf(pp, sizeof pp, DIR "%s.parquet", name);
    snprintf(jp, sizeof jp, DIR "%s.jsonl", name);
    JsonlReader a, b;
    Error e = {0};
    int rc = jsonl_open(&a, pp, &e);
    CHECK(!rc, "%s: open: %s", pp, e.msg);
    if (rc) return;
    CHECK(a.pq != NULL, "%s: not recognised as Parquet", pp);
    rc = jsonl_open(&b, jp, &e);
    CHECK(!rc, "%s: %s", jp, e.msg);
    if (!rc) {
        long n = compare_readers(&a, &b, pp);
        CHECK(n == want_rows, "%s: %ld rows, expected %ld", pp, n, want_rows);
        CHECK(a.line == n, "%s: line counts rows: %ld", pp, a.line);
        jsonl_close(&b);
    }
    jsonl_close(&a);

    /* the same bytes from a pipe: read to the end, not mapped */
    char *bytes;
    size_t nbytes;
    pid_t child;
    FILE *p = NULL;
    if (!read_file(pp, &bytes, &nbytes, &e)) {
        p = pipe_of(bytes, nbytes, &child);
        free(bytes);
    }
    CHECK(p != NULL, "%s: no pipe: %s", pp, e.msg);
    if (!p) return;
    rc = jsonl_open_stream(&a, p, "<pipe>", NULL, 0, &e);
    CHECK(!rc && a.pq, "%s through a pipe: %s", pp, e.msg);
    if (!rc && !jsonl_open(&b, jp, &e)) {
        long n = compare_readers(&a, &b, "pipe");
        CHECK(n == want_rows, "%s through a pipe: %ld rows", pp, n);
        jsonl_close(&b);
    }
    jsonl_close(&a);
    pipe_close(p, child);
}

/* Reads all rows of BUF; returns 0 or the error code (E has the message). */
static int read_all(const unsigned char *src, size_t n, Error *e, long *rows) {
    void *buf = xmalloc(n ? n : 1);
    memcpy(buf, src, n);
    ParquetFile *p;
    *rows = 0;
    int rc = parquet_open_mem(&p, buf, n, 1, "hostile.parquet", e);
    if (rc) return rc;
    json_t *row;
    while (!(rc = parquet_next(p, &row, e)) && row) {
        json_decref(row);
        ++*rows;
    }
    parquet_close(p);
    return rc;
}

static void check_error(int rc, const Error *e, const char *what) {
    CHECK(rc == EX_DATAERR, "%s: exit code %d, expected %d (%s)", what, rc, EX_DATAERR, e->msg);
    CHECK(!strncmp(e->msg, "hostile.parquet: parquet: ", 26), "%s: message does not name the file: %s", what, e->msg);
}

static void check_hostile(const char *name, int flips) {
    char path[256];
    snprintf(path, sizeof path, DIR "%s.parquet", name);
    char *data;
    size_t n;
    Error e = {0};
    if (read_file(path, &data, &n, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const unsigned char *u = (const unsigned char *)data;
    long rows, good;
    int rc = read_all(u, n, &e, &good);
    CHECK(!rc && good > 0, "%s: the intact file: %s", path, e.msg);

    /* every truncation */
    for (size_t k = 0; k < n; k++) {
        rc = read_all(u, k, &e, &rows);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", k);
        check_error(rc, &e, what);
    }
    /* flipped bytes: any outcome but a crash; an error is EX_DATAERR naming the file */
    unsigned char *m = xmalloc(n);
    static const int deltas[] = {1, 0x80, 0xff};
    long errors = 0, oks = 0;
    for (size_t k = 0; k < n && flips; k++)
        for (size_t d = 0; d < sizeof deltas / sizeof *deltas; d++) {
            memcpy(m, u, n);
            m[k] = (unsigned char)(m[k] + deltas[d]);
            rc = read_all(m, n, &e, &rows);
            if (rc) {
                errors++;
                char what[64];
                snprintf(what, sizeof what, "byte %zu + %d", k, deltas[d]);
                check_error(rc, &e, what);
            } else {
                oks++;
            }
        }
    CHECK(!flips || (errors > 0 && oks > 0), "%s: flips: %ld errors, %ld read", path, errors, oks);

    /* hostile lengths: the footer length */
    memcpy(m, u, n);
    m[n - 8] = m[n - 7] = m[n - 6] = m[n - 5] = 0xff;
    rc = read_all(m, n, &e, &rows);
    check_error(rc, &e, "huge footer length");
    CHECK(strstr(e.msg, "footer length") != NULL, "huge footer length: %s", e.msg);
    /* no magic at the end, an encrypted footer */
    memcpy(m, u, n);
    memcpy(m + n - 4, "PARE", 4);
    rc = read_all(m, n, &e, &rows);
    check_error(rc, &e, "PARE");
    CHECK(strstr(e.msg, "encrypted") != NULL, "PARE: %s", e.msg);
    free(m);
    free(data);
}

/* A column chunk whose page claims more bytes than the file has: the message names
 * the row group and the column. */
static void check_page_error(void) {
    char *data;
    size_t n;
    Error e = {0};
    if (read_file(DIR "pref.parquet", &data, &n, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    unsigned char *u = (unsigned char *)data;
    /* the first page header follows the magic: field 1 (type) 0x15, then field 2
     * (uncompressed size) 0x15 <varint>, field 3 (compressed size) 0x15 <varint>.
     * Make the compressed size huge. */
    CHECK(u[4] == 0x15 && u[6] == 0x15, "pref.parquet does not start with the expected page header");
    size_t i = 7;
    while (i < n && (u[i] & 0x80)) i++;
    i++;
    CHECK(u[i] == 0x15, "page header field 3 not where expected");
    unsigned char *m = xmalloc(n + 8);
    memcpy(m, u, i + 1);
    static const unsigned char huge[] = {0xfe, 0xff, 0xff, 0xff, 0x0f}; /* zigzag(INT32_MAX) */
    memcpy(m + i + 1, huge, 5);
    size_t j = i + 1;
    while (u[j] & 0x80) j++;
    j++;
    /* keep the rest after the old varint; the file grows by the length difference,
     * so offsets shift: the footer still parses, the page is what is wrong */
    size_t rest = n - j;
    memcpy(m + i + 6, u + j, rest);
    long rows;
    int rc = read_all(m, i + 6 + rest, &e, &rows);
    check_error(rc, &e, "huge page size");
    CHECK(strstr(e.msg, "row group 0, column \"prompt\"") != NULL, "huge page size: message lacks the column: %s",
          e.msg);
    free(m);
    free(data);
}

/* JSONL through the same door: a pipe keeps its first bytes; "P..." that is not
 * Parquet is JSONL (and a JSON error); an empty input has no records. */
static void check_not_parquet(void) {
    Error e = {0};
    JsonlReader r;
    pid_t child;
    FILE *p = pipe_of("{\"a\":1}\n{\"a\":2}\n", 16, &child);
    int rc = jsonl_open_stream(&r, p, "<pipe>", NULL, 0, &e);
    CHECK(!rc && !r.pq, "jsonl pipe: %s", e.msg);
    json_t *v;
    long n = 0;
    while (!jsonl_next(&r, &v, &e) && v) {
        CHECK(json_integer_value(json_object_get(v, "a")) == n + 1, "jsonl pipe: record %ld", n + 1);
        json_decref(v);
        n++;
    }
    CHECK(n == 2, "jsonl pipe: %ld records, expected 2", n);
    jsonl_close(&r);
    pipe_close(p, child);

    p = pipe_of("PAR", 3, &child);
    rc = jsonl_open_stream(&r, p, "<pipe>", NULL, 0, &e);
    CHECK(!rc && !r.pq, "PAR: %s", e.msg);
    rc = jsonl_next(&r, &v, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "<pipe>:1: invalid JSON"), "PAR: %d %s", rc, e.msg);
    jsonl_close(&r);
    pipe_close(p, child);

    p = pipe_of("", 0, &child);
    rc = jsonl_open_stream(&r, p, "<pipe>", NULL, 0, &e);
    CHECK(!rc && !jsonl_next(&r, &v, &e) && !v, "empty pipe: %s", e.msg);
    jsonl_close(&r);
    pipe_close(p, child);
}

int main(void) {
    static const char *chat[] = {"chat-none",   "chat-snappy",     "chat-gzip", "chat-brotli",
                                 "chat-lz4",    "chat-zstd",       "chat-v2",   "chat-v2-plain",
                                 "chat-nodict", "chat-smallpages", "chat-delta"};
    for (size_t i = 0; i < sizeof chat / sizeof *chat; i++) check_fixture(chat[i], 40);
    check_fixture("types", 9);
    check_fixture("empty", 0);
    check_fixture("pref", 24);
    check_hostile("types", 1);
    check_hostile("pref", 0);
    check_page_error();
    check_not_parquet();
    return check_summary("test_parquet");
}
