/* recstream.c — see recstream.h. */
#include "recstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* Copies stdin into a fresh temporary file; returns its path (malloc'd) or NULL. */
static char *spool_stdin(Error *e) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    char *path = path_join(dir, "cherry-stdin-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        err_set(e, EX_CANTCREAT, "%s: cannot create a temporary copy of stdin: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    FILE *out = fdopen(fd, "wb");
    char buf[1 << 16];
    size_t n;
    int bad = !out;
    while (!bad && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (fwrite(buf, 1, n, out) != n) bad = 1;
    if (ferror(stdin)) bad = 1;
    if (out ? fclose(out) != 0 : close(fd) != 0) bad = 1;
    if (bad) {
        err_set(e, EX_IOERR, "<stdin>: cannot copy to %s: %s", path, strerror(errno));
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

/* Reads the next parseable record into s->pending (NULL at the end).  With
 * skip_invalid, invalid lines are counted and passed over (the data layer skips
 * the same lines). */
static int read_pending(RecStream *s, Error *e) {
    for (;;) {
        json_t *r = NULL;
        int rc = jsonl_next(&s->jr, &r, e);
        if (rc) {
            if (!s->skip_invalid) return rc;
            s->dropped++;
            continue;
        }
        s->pending = r;
        s->pending_line = s->jr.line;
        if (!r) s->eof = 1;
        return 0;
    }
}

int recstream_open(RecStream *s, const char *path, Tokenizer *tok, const DataOptions *o, Error *e) {
    memset(s, 0, sizeof *s);
    s->skip_invalid = o->skip_invalid;
    const char *real = path;
    if (!path || strcmp(path, "-") == 0) {
        s->spool = spool_stdin(e);
        if (!s->spool) return e->code;
        real = s->spool;
        s->name = xstrdup("<stdin>");
    } else {
        s->name = xstrdup(path);
    }
    int rc = jsonl_open(&s->jr, real, e);
    if (rc) goto fail;
    if (s->spool) s->jr.name = s->name; /* messages name stdin, not the spool file */
    rc = read_pending(s, e);
    if (rc) goto fail;
    DataOptions oo = *o;
    if (oo.kind == DATA_AUTO && s->pending) {
        oo.kind = data_detect_kind(s->pending);
        if (oo.kind == DATA_AUTO) {
            rc = err_set(e, EX_DATAERR,
                         "%s:%ld: cannot tell the kind of record (expected prompt+completion, chosen+rejected, "
                         "messages, segments or text)",
                         s->name, s->pending_line);
            goto fail;
        }
    }
    s->kind = oo.kind;
    rc = data_open(&s->dr, real, tok, &oo, e);
    if (rc) goto fail;
    if (s->spool) { /* both readers hold it open: the name can go now */
        unlink(s->spool);
        free(s->spool);
        s->spool = NULL;
    }
    return 0;
fail:
    recstream_close(s);
    return rc;
}

int recstream_next(RecStream *s, json_t **rec, Example *ex, PrefExample *pex, Error *e) {
    *rec = NULL;
    if (!s->dr) return DATA_END;
    long line;
    int rc;
    if (s->kind == DATA_PREFERENCE) {
        rc = data_next_pref(s->dr, pex, e);
        if (rc) return rc;
        line = pex->line;
    } else {
        rc = data_next(s->dr, ex, e);
        if (rc) return rc;
        line = ex->line;
    }
    while (!s->eof && (!s->pending || s->pending_line < line)) {
        if (s->pending) { /* a record the data layer dropped */
            json_decref(s->pending);
            s->pending = NULL;
            s->dropped++;
        }
        rc = read_pending(s, e);
        if (rc) goto fail;
    }
    if (!s->pending || s->pending_line != line) {
        rc = err_set(e, EX_SOFTWARE, "%s:%ld: record and example out of step (record line %ld)", s->name, line,
                     s->pending ? s->pending_line : -1L);
        goto fail;
    }
    *rec = s->pending;
    s->pending = NULL;
    return 0;
fail:
    if (s->kind == DATA_PREFERENCE)
        pref_example_free(pex);
    else
        example_free(ex);
    return rc;
}

void recstream_close(RecStream *s) {
    if (s->dr) data_close(s->dr);
    if (s->jr.fp) jsonl_close(&s->jr);
    if (s->pending) json_decref(s->pending);
    if (s->spool) {
        unlink(s->spool);
        free(s->spool);
    }
    free(s->name);
    memset(s, 0, sizeof *s);
}
