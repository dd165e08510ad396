/* prefdata_input.c — the containers preference exports come in, as rows of JSON.
 *
 * JSONL and CSV are streamed (one row in memory); a file that is one JSON array
 * (Argilla 2.x `records.to_json`, a `json.dump` of a list) is loaded whole: a JSON
 * array cannot be validated without reading to its end, and that is the documented
 * exception to streaming.  CSV follows RFC 4180 with a header row; cells that hold
 * lists or objects must be JSON (pandas writes Python reprs — single quotes, None,
 * True — which are refused with a hint, since guessing their meaning is unsafe). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "prefdata.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* A file starting with '{' whose first line is an unfinished object is one
 * pretty-printed JSON document, not JSON Lines: a single record, or an API response
 * whose "items" (Argilla 1.x REST) or "records" list holds the records.  Returns 1 when
 * IN was switched to reading that document (errors are left in E), 0 to read JSONL. */
static int json_document_instead(PdInput *in, long skipped, int *rc, Error *e) {
    *rc = 0;
    long start = ftell(in->fp);
    if (start < 0) return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in->fp);
    json_error_t je;
    json_t *v = n > 0 ? json_loadb(line, (size_t)n, 0, &je) : NULL;
    int unfinished = n > 0 && !v && (strstr(je.text, "premature end") || strstr(je.text, "end of file"));
    json_decref(v);
    free(line);
    if (fseek(in->fp, start, SEEK_SET) != 0) {
        *rc = err_set(e, EX_IOERR, "%s: cannot seek: %s", in->name, strerror(errno));
        return 1;
    }
    if (!unfinished) return 0;
    in->kind = PD_CONT_ARRAY;
    json_t *doc = json_loadf(in->fp, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        *rc = err_set(e, EX_DATAERR, "%s:%d: invalid JSON at column %d: %s", in->name, je.line + (int)skipped,
                      je.column, je.text);
        return 1;
    }
    json_t *list = json_object_get(doc, "items");
    if (!json_is_array(list)) list = json_object_get(doc, "records");
    if (json_is_array(list)) {
        in->array = json_incref(list);
    } else {
        in->array = json_array();
        json_array_append(in->array, doc);
    }
    json_decref(doc);
    return 1;
}

int pd_input_open(PdInput *in, const char *path, Error *e) {
    memset(in, 0, sizeof *in);
    if (!path || strcmp(path, "-") == 0) {
        in->fp = stdin;
        in->is_stdin = 1;
        in->name = "<stdin>";
    } else {
        in->fp = input_fopen(path, e);
        if (!in->fp) return e->code;
        in->name = path;
    }
    /* Peek at the first non-blank byte (and skip a UTF-8 byte-order mark). */
    int c;
    long skipped = 0;
    while ((c = getc(in->fp)) != EOF &&
           (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xEF || c == 0xBB || c == 0xBF))
        if (c == '\n') skipped++;
    if (c != EOF) ungetc(c, in->fp);
    if (c == 'P' && !(path && ends_with(path, ".csv"))) { /* Parquet ("PAR1") rows come from the JSONL reader */
        unsigned char pre[4];
        size_t n = fread(pre, 1, 4, in->fp);
        if (n == 4 && !memcmp(pre, "PAR1", 4)) {
            in->kind = PD_CONT_JSONL;
            return jsonl_open_stream(&in->jl, in->fp, in->name, pre, n, e);
        }
        in->raw = in->fp;
        in->fp = input_unread(in->raw, pre, n);
    }
    if (path && ends_with(path, ".csv"))
        in->kind = PD_CONT_CSV;
    else if (c == '[')
        in->kind = PD_CONT_ARRAY;
    else if (c == '{' || c == EOF)
        in->kind = PD_CONT_JSONL;
    else
        in->kind = PD_CONT_CSV;

    int doc_rc = 0;
    if (in->kind == PD_CONT_JSONL && !in->is_stdin && c == '{' && json_document_instead(in, skipped, &doc_rc, e)) {
        if (doc_rc) return doc_rc;
    } else if (in->kind == PD_CONT_JSONL) {
        /* Share the stream with a JsonlReader: its fields are public, and it reads with
         * getc, so the peeked byte is seen again. */
        in->jl.fp = in->fp;
        in->jl.name = in->name;
        in->jl.is_stdin = 1; /* we close the file ourselves */
        in->jl.cap = 1 << 16;
        in->jl.buf = xmalloc(in->jl.cap);
        in->jl.line = skipped;
    } else if (in->kind == PD_CONT_ARRAY) {
        json_error_t je;
        in->array = json_loadf(in->fp, JSON_REJECT_DUPLICATES, &je);
        if (!in->array)
            return err_set(e, EX_DATAERR, "%s:%d: invalid JSON at column %d: %s", in->name, je.line + (int)skipped,
                           je.column, je.text);
        if (!json_is_array(in->array)) return err_set(e, EX_DATAERR, "%s: expected a JSON array", in->name);
    } else {
        int rc = csv_reader_open(&in->csv, in->fp, in->name, e);
        if (rc) return rc;
        in->csv.line = skipped; /* blank lines before the header were read by the peek */
        in->csv.next_start = skipped + 1;
        const CsvRow *row;
        if ((rc = csv_reader_next(&in->csv, &row, e))) return rc;
        if (!row) return 0; /* empty file: no rows */
        in->n_header = row->n;
        in->header = xcalloc(row->n, sizeof *in->header);
        for (size_t i = 0; i < row->n; i++) {
            if (row->len[i] == 0)
                return err_set(e, EX_DATAERR, "%s:%ld: CSV header: column %zu has no name", in->name, row->line, i + 1);
            for (size_t j = 0; j < i; j++)
                if (strcmp(in->header[j], row->cell[i]) == 0)
                    return err_set(e, EX_DATAERR, "%s:%ld: CSV header: column \"%s\" appears twice", in->name,
                                   row->line, row->cell[i]);
            json_t *check = json_stringn(row->cell[i], row->len[i]);
            if (!check)
                return err_set(e, EX_DATAERR, "%s:%ld: CSV header: column %zu is not valid UTF-8", in->name, row->line,
                               i + 1);
            json_decref(check);
            in->header[i] = xstrdup(row->cell[i]);
        }
    }
    return 0;
}

/* A Python literal where JSON was expected: a list or dict whose first item is a
 * 'single-quoted' string, or a dict written as {'key': ...}, or None/True/False items. */
static int looks_like_python_repr(const char *s) {
    const char *p = s;
    while (*p == '[' || *p == '{' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '\'' || strncmp(p, "None", 4) == 0 || strncmp(p, "True", 4) == 0 || strncmp(p, "False", 5) == 0) return 1;
    return strstr(s, "': ") != NULL || strstr(s, ": None") != NULL;
}

int pd_csv_cell(const char *cell, size_t len, json_t **out, const char *where, const char *column, Error *e) {
    const char *p = cell;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p != '[' && *p != '{') {
        *out = json_stringn(cell, len);
        if (!*out) return err_set(e, EX_DATAERR, "%s: column \"%s\": invalid UTF-8", where, column);
        return 0;
    }
    json_error_t je;
    *out = json_loadb(cell, len, JSON_REJECT_DUPLICATES, &je);
    if (*out) return 0;
    if (looks_like_python_repr(cell))
        return err_set(e, EX_DATAERR,
                       "%s: column \"%s\" holds a Python repr, not JSON (single quotes/None/True); export the "
                       "dataset as JSON or JSONL instead (Argilla: records.to_json, datasets: to_json)",
                       where, column);
    /* Text that merely starts with a bracket ("[INST] ...") stays text. */
    *out = json_stringn(cell, len);
    if (!*out) return err_set(e, EX_DATAERR, "%s: column \"%s\": invalid UTF-8", where, column);
    return 0;
}

int pd_input_next(PdInput *in, json_t **row, Error *e) {
    *row = NULL;
    if (in->kind == PD_CONT_JSONL) {
        int rc = jsonl_next(&in->jl, row, e);
        snprintf(in->where, sizeof in->where, "%s:%ld", in->name, in->jl.line);
        if (rc && rc != EX_DATAERR) in->broken = 1;
        return rc;
    }
    if (in->kind == PD_CONT_ARRAY) {
        if (in->index >= json_array_size(in->array)) return 0;
        size_t i = in->index++;
        snprintf(in->where, sizeof in->where, "%s:[%zu]", in->name, i);
        json_t *v = json_array_get(in->array, i);
        if (!json_is_object(v)) return err_set(e, EX_DATAERR, "%s: expected a JSON object", in->where);
        *row = json_incref(v);
        return 0;
    }
    if (!in->header) return 0;
    const CsvRow *r;
    int rc = csv_reader_next(&in->csv, &r, e);
    if (rc) in->broken = 1; /* libcsv cannot resynchronise after a syntax error */
    if (rc || !r) return rc;
    snprintf(in->where, sizeof in->where, "%s:%ld", in->name, r->line);
    if (r->n != in->n_header)
        return err_set(e, EX_DATAERR, "%s: row has %zu cells, the header has %zu", in->where, r->n, in->n_header);
    json_t *obj = json_object();
    for (size_t i = 0; i < r->n; i++) {
        json_t *v;
        if ((rc = pd_csv_cell(r->cell[i], r->len[i], &v, in->where, in->header[i], e))) {
            json_decref(obj);
            return rc;
        }
        json_object_set_new(obj, in->header[i], v);
    }
    *row = obj;
    return 0;
}

void pd_input_close(PdInput *in) {
    if (in->kind == PD_CONT_JSONL) jsonl_close(&in->jl); /* jl.is_stdin: in->fp stays open */
    if (in->kind == PD_CONT_CSV) csv_reader_close(&in->csv);
    json_decref(in->array);
    for (size_t i = 0; i < in->n_header; i++) free(in->header[i]);
    free(in->header);
    if (in->raw) {
        fclose(in->fp); /* the read-back stream; the file itself is closed below */
        in->fp = in->raw;
    }
    if (in->fp && !in->is_stdin) fclose(in->fp);
    memset(in, 0, sizeof *in);
}
