/* rl_batch.c — completion-token views of prompt+completion batches (rl_batch.h). */
#include "rl_batch.h"

#include <string.h>

#include "base/util.h"

int rl_batch_build(RlSeqBatch *sb, const int *const *prompt, const int *plen, const int *const *comp, const int *clen,
                   int n, int pad_id, Error *e) {
    memset(sb, 0, sizeof *sb);
    Example *ex = xcalloc((size_t)(n ? n : 1), sizeof(Example));
    const Example **pp = xmalloc((size_t)(n ? n : 1) * sizeof *pp);
    for (int i = 0; i < n; i++) {
        int len = plen[i] + clen[i];
        ex[i].ids = xmalloc((size_t)len * sizeof(int));
        ex[i].mask = xcalloc((size_t)len, 1);
        memcpy(ex[i].ids, prompt[i], (size_t)plen[i] * sizeof(int));
        memcpy(ex[i].ids + plen[i], comp[i], (size_t)clen[i] * sizeof(int));
        for (int t = plen[i]; t < len; t++) ex[i].mask[t] = 1; /* completion tokens bear the loss */
        ex[i].n = len;
        ex[i].prompt_len = plen[i];
        pp[i] = &ex[i];
    }
    int used = batch_fill(&sb->b, pp, n, n, 0, 0, pad_id, e);
    for (int i = 0; i < n; i++) free(ex[i].ids), free(ex[i].mask);
    free(ex);
    free(pp);
    if (used < 0) return e->code;
    if (used != n) {
        batch_free(&sb->b);
        return err_set(e, EX_SOFTWARE, "batch_fill placed %d of %d sequences", used, n);
    }
    sb->n = n;
    sb->len = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    sb->off = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    sb->row0 = xmalloc((size_t)(n ? n : 1) * sizeof(size_t));
    for (int i = 0; i < n; i++) {
        sb->len[i] = clen[i];
        sb->off[i] = (int)sb->ntok;
        sb->row0[i] = (size_t)i * sb->b.T + (size_t)plen[i] - 1;
        sb->ntok += clen[i];
    }
    size_t rows = (size_t)sb->b.B * sb->b.T;
    sb->row_a = xmalloc((rows ? rows : 1) * sizeof(float));
    sb->row_b = xmalloc((rows ? rows : 1) * sizeof(float));
    return 0;
}

void rl_batch_free(RlSeqBatch *sb) {
    batch_free(&sb->b);
    free(sb->len), free(sb->off), free(sb->row0), free(sb->row_a), free(sb->row_b);
    memset(sb, 0, sizeof *sb);
}

void rl_batch_gather(const RlSeqBatch *sb, const float *row, float *tok) {
    for (int i = 0; i < sb->n; i++)
        for (int t = 0; t < sb->len[i]; t++) tok[sb->off[i] + t] = row[sb->row0[i] + (size_t)t];
}

void rl_batch_scatter(const RlSeqBatch *sb, const float *tok, float *row) {
    memset(row, 0, (size_t)sb->b.B * sb->b.T * sizeof(float));
    for (int i = 0; i < sb->n; i++)
        for (int t = 0; t < sb->len[i]; t++) row[sb->row0[i] + (size_t)t] = tok[sb->off[i] + t];
}

static void scale_rows(float *x, size_t n, float temperature) {
    if (temperature == 1.0f) return;
    float s = 1.0f / temperature;
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void rl_lm_logprobs(Model *m, RlSeqBatch *sb, float temperature, float *logp, float *entropy) {
    const Batch *b = &sb->b;
    model_forward(m, b->tokens, b->pos, b->seg, b->B, b->T);
    scale_rows(m->hidden, (size_t)b->B * b->T * m->cfg.d_model, temperature);
    model_logprobs(m, b->targets, sb->row_a, entropy ? sb->row_b : NULL);
    rl_batch_gather(sb, sb->row_a, logp);
    if (entropy) rl_batch_gather(sb, sb->row_b, entropy);
}

void rl_lm_backward(Model *m, RlSeqBatch *sb, float temperature, const float *dlogp) {
    const Batch *b = &sb->b;
    rl_batch_scatter(sb, dlogp, sb->row_a);
    model_logprobs_backward(m, b->targets, sb->row_a);
    scale_rows(m->dhidden, (size_t)b->B * b->T * m->cfg.d_model, temperature);
    model_backward(m);
}

void rl_values(Model *vm, RlSeqBatch *sb, float *values) {
    const Batch *b = &sb->b;
    model_forward(vm, b->tokens, b->pos, b->seg, b->B, b->T);
    model_values(vm, sb->row_a);
    rl_batch_gather(sb, sb->row_a, values);
}

void rl_values_backward(Model *vm, RlSeqBatch *sb, const float *dvalues) {
    rl_batch_scatter(sb, dvalues, sb->row_a);
    model_values_backward(vm, sb->row_a);
    model_backward(vm);
}
