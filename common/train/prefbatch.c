/* prefbatch.c — see prefbatch.h. */
#include "prefbatch.h"

#include <stdlib.h>
#include <string.h>

#include "losses_pref.h"
#include "base/util.h"

void prefbatch_scratch_free(PrefScratch *s) {
    free(s->tok);
    free(s->dtok);
    memset(s, 0, sizeof *s);
}

static void scratch_need(PrefScratch *s, size_t n) {
    if (n <= s->cap) return;
    free(s->tok);
    free(s->dtok);
    s->tok = xmalloc(n * sizeof(float));
    s->dtok = xmalloc(n * sizeof(float));
    s->cap = n;
}

void prefbatch_logps(Model *m, const Batch *b, PrefScratch *s, float *seq, int *len, float *tok_out) {
    size_t N = (size_t)b->B * b->T;
    scratch_need(s, N);
    model_forward(m, b->tokens, b->pos, b->seg, b->B, b->T);
    model_logprobs(m, b->targets, s->tok, NULL);
    /* TRL _get_batch_logps / concatenated_forward: sum over the completion tokens */
    pref_seq_sum(s->tok, b->targets, b->B, b->T, seq, len);
    if (tok_out) memcpy(tok_out, s->tok, N * sizeof(float));
}

void prefbatch_logps_backward(Model *m, const Batch *b, PrefScratch *s, const float *dseq) {
    scratch_need(s, (size_t)b->B * b->T);
    pref_seq_grad_broadcast(dseq, b->targets, b->B, b->T, s->dtok);
    model_logprobs_backward(m, b->targets, s->dtok);
    model_backward(m);
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

