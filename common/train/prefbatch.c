/* prefbatch.c — see prefbatch.h. */
#include "prefbatch.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/ops.h"
#include "losses_pref.h"
#include "model/lora.h"

void prefbatch_scratch_free(PrefScratch *s) {
    free(s->tok);
    free(s->dtok);
    free(s->ent);
    free(s->pred);
    memset(s, 0, sizeof *s);
}

static void scratch_need(PrefScratch *s, size_t n) {
    if (n <= s->cap) return;
    free(s->tok);
    free(s->dtok);
    free(s->ent);
    free(s->pred);
    s->tok = xmalloc(n * sizeof(float));
    s->dtok = xmalloc(n * sizeof(float));
    s->ent = xmalloc(n * sizeof(float));
    s->pred = xmalloc(n * sizeof(int));
    s->cap = n;
}

/* Sums over examples [e0, e1) (spans) of a shared batch, in column order as
 * pref_seq_sum's row sums: for batch_pairs_shared, sequence e is example e; and the
 * broadcast of their gradient to the spans' target rows. */
static void shared_seq_sum_range(const Batch *b, const float *tok, int e0, int e1, float *seq, int *len) {
    for (int e = e0; e < e1; e++) {
        size_t k0 = (size_t)b->ex_row[e] * b->T + b->ex_start[e];
        double sum = 0.0;
        int l = 0;
        for (size_t k = k0; k < k0 + (size_t)b->ex_len[e]; k++)
            if (b->targets[k] >= 0) sum += tok[k], l++;
        seq[e] = (float)sum;
        if (len) len[e] = l;
    }
}

static void shared_grad_range(const Batch *b, const float *dseq, int e0, int e1, float *dtok) {
    for (int e = e0; e < e1; e++) {
        size_t k0 = (size_t)b->ex_row[e] * b->T + b->ex_start[e];
        for (size_t k = k0; k < k0 + (size_t)b->ex_len[e]; k++)
            if (b->targets[k] >= 0) dtok[k] = dseq[e];
    }
}

static void shared_seq_sum(const Batch *b, const float *tok, float *seq, int *len) {
    shared_seq_sum_range(b, tok, 0, b->n_examples, seq, len);
}

static void shared_seq_grad_broadcast(const Batch *b, const float *dseq, float *dtok) {
    memset(dtok, 0, (size_t)b->B * b->T * sizeof(float));
    shared_grad_range(b, dseq, 0, b->n_examples, dtok);
}

void prefbatch_logps(Model *m, const Batch *b, PrefScratch *s, float *seq, int *len, float *tok_out) {
    size_t N = (size_t)b->B * b->T;
    scratch_need(s, N);
    model_forward(m, b->tokens, b->pos, b->seg, b->B, b->T);
    /* the entropy and the argmax come from the same pass over the vocabulary */
    model_logprobs_argmax(m, b->targets, s->tok, s->ent, s->pred);
    /* TRL _get_batch_logps / concatenated_forward: sum over the completion tokens */
    if (b->shared)
        shared_seq_sum(b, s->tok, seq, len);
    else
        pref_seq_sum(s->tok, b->targets, b->B, b->T, seq, len);
    if (tok_out) memcpy(tok_out, s->tok, N * sizeof(float));
}

void prefbatch_logps_backward(Model *m, const Batch *b, PrefScratch *s, const float *dseq) {
    scratch_need(s, (size_t)b->B * b->T);
    if (b->shared)
        shared_seq_grad_broadcast(b, dseq, s->dtok);
    else
        pref_seq_grad_broadcast(dseq, b->targets, b->B, b->T, s->dtok);
    model_logprobs_backward(m, b->targets, s->dtok);
    model_backward(m);
}

/* prefbatch_logps_train's groups: a shared batch's row r is pair r (its two examples r
 * and n + r); an unshared batch is one group, every pair. */
typedef struct PairGroups {
    const Batch *b;
    float *seq, *dseq;
    int *len;
    PrefPairGradFn fn;
    void *ctx;
} PairGroups;

static void pair_group_grads(void *vctx, int g0, int g1, const float *logp, float *dlogp) {
    PairGroups *p = vctx;
    const Batch *b = p->b;
    int n = b->n_examples / 2;
    if (b->shared) {
        shared_seq_sum_range(b, logp, g0, g1, p->seq, p->len);
        shared_seq_sum_range(b, logp, n + g0, n + g1, p->seq, p->len);
        p->fn(p->ctx, g0, g1, n, p->seq, p->len, p->dseq);
        shared_grad_range(b, p->dseq, g0, g1, dlogp);
        shared_grad_range(b, p->dseq, n + g0, n + g1, dlogp);
        return;
    }
    pref_seq_sum(logp, b->targets, b->B, b->T, p->seq, p->len);
    p->fn(p->ctx, 0, n, n, p->seq, p->len, p->dseq);
    pref_seq_grad_broadcast(p->dseq, b->targets, b->B, b->T, dlogp);
}

void prefbatch_logps_train(Model *m, const Batch *b, PrefScratch *s, float *seq, int *len, float *dseq,
                           PrefPairGradFn fn, void *ctx) {
    size_t N = (size_t)b->B * b->T;
    scratch_need(s, N);
    if (b->shared ? b->n_examples != 2 * b->B : b->B % 2)
        die_internal("prefbatch_logps_train: not a batch of pairs (%d rows, %d examples)", b->B, b->n_examples);
    int n = b->shared ? b->B : b->B / 2;
    int *l = len ? len : xmalloc(sizeof(int) * 2 * (size_t)(n > 0 ? n : 1));
    PairGroups pg = {b, seq, dseq, l, fn, ctx};
    /* every completion's length before any log-prob: a loss may need the batch's
     * (the NLL's token count) */
    memset(s->tok, 0, N * sizeof(float));
    if (b->shared)
        shared_seq_sum(b, s->tok, seq, l);
    else
        pref_seq_sum(s->tok, b->targets, b->B, b->T, seq, l);
    model_forward(m, b->tokens, b->pos, b->seg, b->B, b->T);
    memset(s->dtok, 0, N * sizeof(float));
    model_logprobs_fused_grouped(m, b->targets, b->shared ? b->T : (int)N, pair_group_grads, &pg, s->dtok, s->tok,
                                 s->ent, s->pred);
    if (!len) free(l);
    model_backward(m);
}

/* ---- a micro-batch of pairs a chunk at a time ---- */

/* The length of pair p's row: batch_pairs_shared's, or the longer of batch_pairs' two. */
static int pair_row_len(const PrefExample *p, int shared) {
    if (shared) return batch_pair_shared_len(p);
    int lc = p->n_prompt + p->n_chosen, lr = p->n_prompt + p->n_rejected;
    return lc > lr ? lc : lr;
}

/* End of the chunk that starts at pair i0: as many pairs as fit `budget` tokens (rows x
 * the longest row), at least one; budget <= 0: all n. */
static int chunk_end(const PrefExample *const *p, int i0, int n, int shared, long budget) {
    if (budget <= 0) return n;
    int rows = shared ? 1 : 2, T = pair_row_len(p[i0], shared), i1 = i0 + 1;
    T = T > 1 ? T : 1;
    for (; i1 < n; i1++) {
        int l = pair_row_len(p[i1], shared), t = l > T ? l : T;
        if ((long)(i1 + 1 - i0) * rows * t > budget) break;
        T = t;
    }
    return i1;
}

static void token_stats_add(PrefTokenStats *to, const PrefTokenStats *a) {
    to->entropy_sum += a->entropy_sum;
    to->logits_chosen_sum += a->logits_chosen_sum;
    to->logits_rejected_sum += a->logits_rejected_sum;
    to->tokens += a->tokens;
    to->chosen_tokens += a->chosen_tokens;
    to->rejected_tokens += a->rejected_tokens;
    to->chosen_correct += a->chosen_correct;
}

/* A chunk's pair gradients from the micro-batch's: its log-probs copied to the
 * micro-batch's seq (pairs c0.., chosen at i, rejected at n + i), fn called with
 * micro-batch indices and every pair's lengths, the gradients copied back. */
typedef struct ChunkGrads {
    int c0, n;
    float *seq, *dseq;
    const int *len;
    PrefPairGradFn fn;
    void *ctx;
} ChunkGrads;

static void chunk_pair_grads(void *vctx, int i0, int i1, int nc, const float *seq, const int *len, float *dseq) {
    ChunkGrads *g = vctx;
    (void)len;
    for (int i = i0; i < i1; i++) {
        g->seq[g->c0 + i] = seq[i];
        g->seq[g->n + g->c0 + i] = seq[nc + i];
    }
    g->fn(g->ctx, g->c0 + i0, g->c0 + i1, g->n, g->seq, g->len, g->dseq);
    for (int i = i0; i < i1; i++) {
        dseq[i] = g->dseq[g->c0 + i];
        dseq[nc + i] = g->dseq[g->n + g->c0 + i];
    }
}

int prefbatch_pairs_run(Model *m, const PrefExample *const *p, int n, const PrefRun *r, PrefScratch *s, float *seq,
                        int *len, float *dseq, PrefTokenStats *ts, Error *e) {
    int shared = r->share && prefbatch_can_share(m, p, n);
    /* longrope (Phi-3) picks its factors by the batch's largest position (model_rope):
     * a chunk could pick others than the whole micro-batch; LoRA dropout draws a row's
     * mask by its place in the forward, which chunks of pairs cannot keep (the rows of
     * the whole batch, chosen then rejected, interleave the chunks') */
    int lora_drop = m->lora && m->lora->drop_on;
    long budget = m->cfg.rope_scaling.type == ROPE_LONGROPE || lora_drop ? 0 : r->chunk_tokens;
    if (ts) memset(ts, 0, sizeof *ts);
    size_t n2 = 2 * (size_t)(n > 0 ? n : 1);
    Batch *b = xcalloc((size_t)n + 1, sizeof *b); /* at most a chunk per pair */
    int *c0 = xmalloc(sizeof(int) * ((size_t)n + 1));
    int *lens = len ? len : xmalloc(sizeof(int) * n2), *clen = xmalloc(sizeof(int) * n2);
    float *cseq = xmalloc(sizeof(float) * n2), *cdseq = xmalloc(sizeof(float) * n2);
    int rc = 0, n_chunks = 0;
    for (int i0 = 0; i0 < n && !rc; n_chunks++) {
        int i1 = chunk_end(p, i0, n, shared, budget);
        c0[n_chunks] = i0;
        /* the layout chosen for the whole micro-batch: a subset of shareable pairs is */
        rc = prefbatch_pairs(&b[n_chunks], m, p + i0, i1 - i0, r->pad_id, shared, e);
        i0 = i1;
    }
    c0[n_chunks] = n;
    /* every pair's lengths before any gradient: a loss may need the micro-batch's
     * (the NLL's token count) */
    for (int k = 0; k < n_chunks && !rc && r->fn; k++) {
        int nc = c0[k + 1] - c0[k];
        size_t N = (size_t)b[k].B * b[k].T;
        scratch_need(s, N);
        memset(s->tok, 0, N * sizeof(float));
        if (b[k].shared)
            shared_seq_sum(&b[k], s->tok, cseq, clen);
        else
            pref_seq_sum(s->tok, b[k].targets, b[k].B, b[k].T, cseq, clen);
        memcpy(lens + c0[k], clen, (size_t)nc * sizeof(int));
        memcpy(lens + n + c0[k], clen + nc, (size_t)nc * sizeof(int));
    }
    for (int k = 0; k < n_chunks && !rc; k++) {
        int nc = c0[k + 1] - c0[k];
        if (r->fn) {
            ChunkGrads g = {c0[k], n, seq, dseq, lens, r->fn, r->ctx};
            prefbatch_logps_train(m, &b[k], s, cseq, clen, cdseq, chunk_pair_grads, &g);
        } else {
            prefbatch_logps(m, &b[k], s, cseq, clen, NULL);
        }
        for (int i = 0; i < nc; i++) {
            seq[c0[k] + i] = cseq[i];
            seq[n + c0[k] + i] = cseq[nc + i];
            lens[c0[k] + i] = clen[i];
            lens[n + c0[k] + i] = clen[nc + i];
        }
        if (ts) {
            PrefTokenStats t;
            prefbatch_token_stats(m, &b[k], nc, s, &t);
            token_stats_add(ts, &t);
        }
    }
    for (int k = 0; k < n_chunks; k++) batch_free(&b[k]);
    if (!len) free(lens);
    free(b);
    free(c0);
    free(clen);
    free(cseq);
    free(cdseq);
    return rc;
}

/* Longrope (Phi-3) needs no exception: training's RoPE picks its factors by the
 * batch's largest position (model_rope without groups), np - 1 + max(nc, nr) in both
 * layouts. */
int prefbatch_can_share(const Model *m, const PrefExample *const *p, int n) {
    if (m->lora && m->lora->cfg.dropout > 0) return 0; /* one dropout mask for the prompt, not two */
    int longest = 0;
    for (int i = 0; i < n; i++) {
        int l = batch_pair_shared_len(p[i]);
        longest = l > longest ? l : longest;
    }
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const LayerInfo *li = &m->w.info[l];
        if (li->window > 0 && longest > li->window) return 0; /* the window counts columns (segments.h) */
    }
    return 1;
}

int prefbatch_pairs(Batch *b, const Model *m, const PrefExample *const *p, int n, int pad_id, int share, Error *e) {
    if (share && prefbatch_can_share(m, p, n)) return batch_pairs_shared(b, p, n, pad_id);
    return batch_pairs(b, p, n, 0, pad_id, e);
}

/* The LM head [V, C]: lm_head.weight when untied, else the tied token embedding. */
static const float *lm_head_weight(const Model *m) {
    const ParamTensor *t = model_find_tensor(m, "lm_head.weight");
    if (!t)
        t = model_find_tensor(m, m->cfg.family == FAMILY_GPT2 ? "transformer.wte.weight" : "model.embed_tokens.weight");
    if (!t) die_internal("prefbatch_token_stats: model has no LM head");
    return m->params + t->offset;
}

void prefbatch_token_stats(const Model *m, const Batch *b, int n, PrefScratch *s, PrefTokenStats *out) {
    memset(out, 0, sizeof *out);
    const int C = m->cfg.d_model, V = m->cfg.vocab_size;
    const float *w = lm_head_weight(m);
    double *wbar = xcalloc((size_t)C, sizeof(double)); /* mean over the vocabulary of the head's rows */
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) wbar[c] += w[(size_t)v * C + c];
    for (int c = 0; c < C; c++) wbar[c] /= V;
    for (int r = 0; r < b->B; r++)
        for (int t = 0; t < b->T; t++) {
            size_t k = (size_t)r * b->T + t;
            if (b->targets[k] < 0) continue;
            const float *h = m->hidden + k * C;
            double ml = 0;
            for (int c = 0; c < C; c++) ml += h[c] * wbar[c];
            out->entropy_sum += s->ent[k];
            out->tokens++;
            /* a shared row (batch_pairs_shared) is pair r: chosen before its rejected branch */
            if (b->shared ? t < b->ex_start[n + r] : r < n) {
                out->logits_chosen_sum += ml;
                out->chosen_tokens++;
                out->chosen_correct += s->pred[k] == b->targets[k];
            } else {
                out->logits_rejected_sum += ml;
                out->rejected_tokens++;
            }
        }
    free(wbar);
}

int prefbatch_score_column(const Batch *b, int row, int pad_id) {
    const int *tk = b->tokens + (size_t)row * b->T;
    int len = b->lengths[row];
    if (len <= 0) return 0;
    if (pad_id < 0) return len - 1;
    /* transformers (GPT2/Llama ForSequenceClassification): argmax over t of
     * t * (input_ids[t] != pad_token_id), i.e. the rightmost non-pad token, 0 if none.
     * Padding columns hold pad_id, so scanning the real tokens suffices. */
    for (int t = len - 1; t >= 0; t--)
        if (tk[t] != pad_id) return t;
    return 0;
}

void prefbatch_rewards(Model *m, const Batch *b, PrefScratch *s, float *rewards) {
    size_t N = (size_t)b->B * b->T;
    scratch_need(s, N);
    model_forward(m, b->tokens, b->pos, b->seg, b->B, b->T);
    model_values(m, s->tok);
    for (int r = 0; r < b->B; r++) rewards[r] = s->tok[(size_t)r * b->T + prefbatch_score_column(b, r, m->cfg.pad_id)];
}

void prefbatch_rewards_backward(Model *m, const Batch *b, PrefScratch *s, const float *drew) {
    size_t N = (size_t)b->B * b->T;
    scratch_need(s, N);
    memset(s->dtok, 0, N * sizeof(float));
    for (int r = 0; r < b->B; r++) s->dtok[(size_t)r * b->T + prefbatch_score_column(b, r, m->cfg.pad_id)] = drew[r];
    model_values_backward(m, s->dtok);
    model_backward(m);
}
