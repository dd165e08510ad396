/* recbatch.c — the stream/batch/annotate loop of logprobs and score (recbatch.h). */
#include "recbatch.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void recbatch_init(RecBatcher *rb, Tokenizer *tok, int pad_id, int batch, RecBatchFn step, RecKindFn check, void *ctx) {
    memset(rb, 0, sizeof *rb);
    rb->tok = tok;
    rb->pad_id = pad_id;
    rb->batch = batch;
    rb->step = step;
    rb->check = check;
    rb->ctx = ctx;
    rb->rec = xcalloc((size_t)batch, sizeof *rb->rec);
    rb->ex = xcalloc((size_t)batch, sizeof *rb->ex);
    rb->pex = xcalloc((size_t)batch, sizeof *rb->pex);
}

/* Builds the Batch of the pending records, runs the step, frees them. */
static int recbatch_flush(RecBatcher *rb, int is_pref, Error *e) {
    if (rb->n == 0) return 0;
    Batch b;
    memset(&b, 0, sizeof b);
    int rc;
    if (is_pref) {
        const PrefExample **pp = xmalloc((size_t)rb->n * sizeof *pp);
        for (int i = 0; i < rb->n; i++) pp[i] = &rb->pex[i];
        rc = rb->pairs ? rb->pairs(rb->ctx, &b, pp, rb->n, e) : batch_pairs(&b, pp, rb->n, 0, rb->pad_id, e);
        free(pp);
    } else {
        const Example **pp = xmalloc((size_t)rb->n * sizeof *pp);
        for (int i = 0; i < rb->n; i++) pp[i] = &rb->ex[i];
        rc = batch_fill(&b, pp, rb->n, rb->n, 0, 0, rb->pad_id, e);
        rc = rc == rb->n ? 0 : rc < 0 ? e->code : err_set(e, EX_SOFTWARE, "batch_fill placed %d of %d", rc, rb->n);
        free(pp);
    }
    if (rc) return rc;
    rc = rb->step(rb->ctx, &b, rb->rec, rb->n, is_pref, e);
    for (int i = 0; i < rb->n; i++) {
        json_decref(rb->rec[i]);
        if (is_pref)
            pref_example_free(&rb->pex[i]);
        else
            example_free(&rb->ex[i]);
    }
    rb->n = 0;
    batch_free(&b);
    return rc;
}

int recbatch_run_file(RecBatcher *rb, const char *path, const DataOptions *o, Error *e) {
    RecStream rs;
    int rc = recstream_open(&rs, path, rb->tok, o, e);
    if (rc) return rc;
    int is_pref = rs.kind == DATA_PREFERENCE;
    if (rb->check) rc = rb->check(rb->ctx, &rs, e);
    while (!rc) {
        json_t *r;
        rc = recstream_next(&rs, &r, &rb->ex[rb->n], &rb->pex[rb->n], e);
        if (rc == DATA_END) {
            rc = recbatch_flush(rb, is_pref, e);
            break;
        }
        if (rc) break;
        rb->rec[rb->n++] = r;
        if (rb->n == rb->batch) rc = recbatch_flush(rb, is_pref, e);
    }
    rb->dropped += rs.dropped;
    recstream_close(&rs);
    return rc;
}

int recbatch_run_files(RecBatcher *rb, char **files, int n_files, const DataOptions *o, Error *e) {
    if (n_files == 0) return recbatch_run_file(rb, "-", o, e);
    int rc = 0;
    for (int i = 0; i < n_files && !rc; i++) rc = recbatch_run_file(rb, files[i], o, e);
    return rc;
}

void recbatch_free(RecBatcher *rb) {
    free(rb->rec);
    free(rb->ex);
    free(rb->pex);
    memset(rb, 0, sizeof *rb);
}
