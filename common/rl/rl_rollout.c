/* rl_rollout.c — the rollout batch's bookkeeping (rl_rollout.h). */
#include "rl_rollout.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void rl_rollout_free(RlRollout *r) {
    for (int i = 0; i < r->n; i++) free(r->tokens[i]);
    free(r->prompt), free(r->tokens), free(r->len), free(r->off), free(r->eos);
    free(r->old_logp), free(r->ref_logp), free(r->old_values), free(r->adv_tok), free(r->returns);
    free(r->score), free(r->adv);
    memset(r, 0, sizeof *r);
}

void rl_rollout_pack(RlRollout *r, const GenSeq *seqs, int n, const int *prompt_of) {
    rl_rollout_free(r);
    r->n = n;
    r->prompt = xmalloc((size_t)n * sizeof(int));
    r->tokens = xmalloc((size_t)n * sizeof(int *));
    r->len = xmalloc((size_t)n * sizeof(int));
    r->off = xmalloc((size_t)n * sizeof(int));
    r->eos = xmalloc((size_t)n * sizeof(int));
    r->score = xcalloc((size_t)n, sizeof(double));
    r->adv = xcalloc((size_t)n, sizeof(double));
    long ntok = 0;
    for (int i = 0; i < n; i++) {
        r->prompt[i] = prompt_of[seqs[i].prompt];
        r->len[i] = seqs[i].n_tokens;
        r->off[i] = (int)ntok;
        r->eos[i] = seqs[i].eos;
        ntok += seqs[i].n_tokens;
    }
    r->ntok = ntok;
    r->old_logp = xmalloc((size_t)(ntok ? ntok : 1) * sizeof(float));
    for (int i = 0; i < n; i++) {
        r->tokens[i] = xmalloc((size_t)(r->len[i] ? r->len[i] : 1) * sizeof(int));
        memcpy(r->tokens[i], seqs[i].tokens, (size_t)r->len[i] * sizeof(int));
        memcpy(r->old_logp + r->off[i], seqs[i].logprobs, (size_t)r->len[i] * sizeof(float));
    }
}

RlBatch rl_rollout_view(RlRollout *r) {
    return (RlBatch){.n = r->n,
                     .off = r->off,
                     .len = r->len,
                     .ntok = r->ntok,
                     .old_logp = r->old_logp,
                     .ref_logp = r->ref_logp,
                     .old_values = r->old_values,
                     .score = r->score,
                     .adv_tok = r->adv_tok,
                     .returns = r->returns,
                     .adv = r->adv};
}

/* A copy of sequence seq[j]'s rows of SRC at off[j], for j in [0, k); NULL for NULL. */
static float *gather_rows(const RlRollout *r, const float *src, const int *seq, int k, const int *off, long ntok) {
    if (!src) return NULL;
    float *out = xmalloc((size_t)(ntok ? ntok : 1) * sizeof(float));
    for (int j = 0; j < k; j++) memcpy(out + off[j], src + r->off[seq[j]], (size_t)r->len[seq[j]] * sizeof(float));
    return out;
}

void rl_rollout_gather(const RlRollout *r, const int *seq, int k, const int *off, long ntok, RlSlices *s) {
    s->old_logp = gather_rows(r, r->old_logp, seq, k, off, ntok);
    s->ref_logp = gather_rows(r, r->ref_logp, seq, k, off, ntok);
    s->adv_tok = gather_rows(r, r->adv_tok, seq, k, off, ntok);
    s->old_values = gather_rows(r, r->old_values, seq, k, off, ntok);
    s->returns = gather_rows(r, r->returns, seq, k, off, ntok);
    s->adv = xmalloc((size_t)(k ? k : 1) * sizeof(double));
    for (int j = 0; j < k; j++) s->adv[j] = r->adv[seq[j]];
}

void rl_rollout_slices_free(RlSlices *s) {
    free(s->old_logp), free(s->ref_logp), free(s->adv_tok), free(s->old_values), free(s->returns), free(s->adv);
    memset(s, 0, sizeof *s);
}

void rl_rollout_prompts(long it, int batch, int n_prompts, uint64_t seed, int *out) {
    long B = batch;
    int *perm = xmalloc((size_t)n_prompts * sizeof(int));
    long have_pass = -1;
    for (long k = 0; k < B; k++) {
        long c = it * B + k, pass = c / n_prompts;
        if (pass != have_pass) {
            for (int i = 0; i < n_prompts; i++) perm[i] = i;
            Rng r;
            rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)pass + 1);
            rng_shuffle(&r, perm, (size_t)n_prompts);
            have_pass = pass;
        }
        out[k] = perm[c % n_prompts];
    }
    free(perm);
}

void rl_rollout_pass_order(uint64_t seed, long pass, int *order, long n) {
    for (long i = 0; i < n; i++) order[i] = (int)i;
    Rng r;
    rng_seed(&r, (seed ^ 0x6d696e69ULL) * 0x9E3779B97F4A7C15ULL + (uint64_t)pass + 1);
    rng_shuffle(&r, order, (size_t)n);
}

int rl_rollout_micro_split(const int *order, long lo, long hi, int grad_accum, const int **idx, int *cnt) {
    long size = hi - lo;
    int ga = grad_accum < size ? grad_accum : (int)size, n = 0;
    for (int g = 0; g < ga; g++) {
        long a = lo + size * g / ga, z = lo + size * (g + 1) / ga;
        if (z > a) {
            idx[n] = order + a;
            cnt[n++] = (int)(z - a);
        }
    }
    return n;
}

int rl_rollout_batch(const RlRollout *r, const PromptExample *px, int pad_id, const int *seq, int k, RlSeqBatch *sb,
                     Error *e) {
    const int **pr = xmalloc((size_t)k * sizeof(int *)), **co = xmalloc((size_t)k * sizeof(int *));
    int *pl = xmalloc((size_t)k * sizeof(int)), *cl = xmalloc((size_t)k * sizeof(int));
    for (int j = 0; j < k; j++) {
        const PromptExample *p = &px[r->prompt[seq[j]]];
        pr[j] = p->ids;
        pl[j] = p->n;
        co[j] = r->tokens[seq[j]];
        cl[j] = r->len[seq[j]];
    }
    int rc = rl_batch_build(sb, pr, pl, co, cl, k, pad_id, e);
    free(pr), free(co), free(pl), free(cl);
    return rc;
}

int rl_rollout_forward(const RlRollout *r, const PromptExample *px, int pad_id, Model *m, int values, float temperature,
                       int chunk, float *out, Error *e) {
    int *seq = xmalloc((size_t)chunk * sizeof(int));
    int rc = 0;
    for (int s = 0; s < r->n && !rc; s += chunk) {
        int k = r->n - s < chunk ? r->n - s : chunk;
        for (int j = 0; j < k; j++) seq[j] = s + j;
        RlSeqBatch sb;
        if ((rc = rl_rollout_batch(r, px, pad_id, seq, k, &sb, e))) break;
        if (values)
            rl_values(m, &sb, out + r->off[s]);
        else
            rl_lm_logprobs(m, &sb, temperature, out + r->off[s], NULL);
        rl_batch_free(&sb);
    }
    free(seq);
    return rc;
}
