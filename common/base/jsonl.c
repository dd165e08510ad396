/* jsonl.c — see jsonl.h. */
#include "jsonl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"
#include "util.h"

/* Looks at the first bytes (PRE: NPRE of them already read by the caller): "PAR1"
 * hands the stream to the Parquet reader; anything else is read back (one byte by
 * ungetc, more through input_unread), so a pipe loses nothing. */
static int detect_format(JsonlReader *r, const void *pre0, size_t npre, Error *e) {
    unsigned char pre[4];
    size_t n = npre < 4 ? npre : 4;
    int c;
    if (n) memcpy(pre, pre0, n);
    while (n < 4 && (n == 0 || pre[n - 1] == (unsigned char)"PAR1"[n - 1]) && (c = getc(r->fp)) != EOF)
        pre[n++] = (unsigned char)c;
    if (n == 0) return 0;
    if (parquet_magic(pre, n)) return parquet_open_stream(&r->pq, r->fp, pre, n, r->name, e);
    if (n == 1 && !npre)
        ungetc(pre[0], r->fp);
    else
        r->wrap = input_unread(r->fp, pre, n);
    return 0;
}

int jsonl_open_stream(JsonlReader *r, FILE *fp, const char *name, const void *pre, size_t npre, Error *e) {
    memset(r, 0, sizeof *r);
    r->fp = fp;
    r->name = name;
    r->is_stdin = 1;
    r->cap = 1 << 16;
    r->buf = xmalloc(r->cap);
    return detect_format(r, pre, npre, e);
}

int jsonl_open(JsonlReader *r, const char *path, Error *e) {
    memset(r, 0, sizeof *r);
    if (!path || strcmp(path, "-") == 0) {
        r->fp = stdin;
        r->name = "<stdin>";
        r->is_stdin = 1;
    } else {
        r->fp = input_fopen(path, e);
        if (!r->fp) return e->code;
        r->path_owned = xstrdup(path);
        r->name = r->path_owned;
    }
    r->cap = 1 << 16;
    r->buf = xmalloc(r->cap);
    return detect_format(r, NULL, 0, e);
}

/* Reads one physical line (without the newline) into r->buf; returns its length,
 * -1 at EOF with nothing read, -2 when the line exceeds the limit. */
static long read_line(JsonlReader *r) {
    size_t n = 0;
    int c, any = 0;
    FILE *fp = r->wrap ? r->wrap : r->fp;
    while ((c = getc(fp)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (n + 1 >= r->cap) {
            if (r->cap >= JSONL_MAX_LINE) {
                /* drain the rest of the line so line numbers stay right */
                while ((c = getc(fp)) != EOF && c != '\n') {
                }
                return -2;
            }
            r->cap *= 2;
            if (r->cap > JSONL_MAX_LINE) r->cap = JSONL_MAX_LINE;
            r->buf = xrealloc(r->buf, r->cap);
        }
        r->buf[n++] = (char)c;
    }
    if (!any) return -1;
    if (n && r->buf[n - 1] == '\r') n--;
    r->buf[n] = 0;
    return (long)n;
}

int jsonl_next(JsonlReader *r, json_t **out, Error *e) {
    *out = NULL;
    if (r->pq) {
        int rc = parquet_next(r->pq, out, e);
        if (!rc && *out) r->line++;
        return rc;
    }
    for (;;) {
        long n = read_line(r);
        if (n == -1) {
            if (ferror(r->wrap ? r->wrap : r->fp)) return err_set(e, EX_IOERR, "%s: read error", r->name);
            return 0;
        }
        r->line++;
        if (n == -2)
            return err_set(e, EX_DATAERR, "%s:%ld: line longer than %zu bytes", r->name, r->line, JSONL_MAX_LINE);
        char *line = r->buf;
        if (r->line == 1 && n >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) { /* a UTF-8 byte-order mark */
            line += 3;
            n -= 3;
        }
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue; /* blank line */
        if ((size_t)n != strlen(line))
            return err_set(e, EX_DATAERR, "%s:%ld: NUL byte inside the line", r->name, r->line);
        json_error_t je;
        /* a key twice in one object has no one meaning: refused, as safetensors and
         * config.json readers refuse it */
        json_t *v = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
        if (!v)
            return err_set(e, EX_DATAERR, "%s:%ld: invalid JSON at column %d: %s", r->name, r->line, je.column,
                           je.text);
        if (!json_is_object(v)) {
            json_decref(v);
            return err_set(e, EX_DATAERR, "%s:%ld: expected a JSON object", r->name, r->line);
        }
        if (r->cap > ((size_t)1 << 20)) { /* after a huge line: do not hold its buffer while it is used */
            free(r->buf);
            r->cap = 1 << 16;
            r->buf = xmalloc(r->cap);
        }
        *out = v;
        return 0;
    }
}

void jsonl_close(JsonlReader *r) {
    parquet_close(r->pq);
    if (r->wrap) fclose(r->wrap);
    if (r->fp && !r->is_stdin) fclose(r->fp);
    free(r->buf);
    free(r->path_owned);
    memset(r, 0, sizeof *r);
}

int jsonl_write(FILE *fp, const json_t *obj, Error *e) {
    if (json_dumpf(obj, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII * 0) != 0 || fputc('\n', fp) == EOF)
        return err_set(e, EX_IOERR, "write error: %s", strerror(errno));
    return 0;
}

int json_get_string(const json_t *obj, const char *field, const char **out, const JsonlReader *r, Error *e) {
    json_t *v = json_object_get(obj, field);
    const char *name = r ? r->name : "<input>";
    long line = r ? r->line : 0;
    if (!v) return err_set(e, EX_DATAERR, "%s:%ld: missing field \"%s\"", name, line, field);
    if (!json_is_string(v)) return err_set(e, EX_DATAERR, "%s:%ld: field \"%s\" must be a string", name, line, field);
    *out = json_string_value(v);
    return 0;
}

char *json_id_string(const json_t *v) {
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    if (json_is_integer(v)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
        return xstrdup(b);
    }
    return NULL;
}
