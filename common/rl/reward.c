/* reward.c — see reward.h. */
#include "reward.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "data/data.h"
#include "train/prefbatch.h"

int reward_score(Model *rm, const int *const *seqs, const int *lens, int n, int batch_size, float *rewards, Error *e) {
    const ModelConfig *c = &rm->cfg;
    if (!c->is_classifier)
        return err_set(e, EX_USAGE, "the reward model must be a sequence classifier with a score.weight head");
    if (batch_size < 1) batch_size = 1;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return err_set(e, EX_DATAERR, "sequence %d is empty", i);
        if (lens[i] > c->max_seq)
            return err_set(e, EX_DATAERR, "sequence %d has %d tokens; the reward model's context is %d", i, lens[i],
                           c->max_seq);
        for (int t = 0; t < lens[i]; t++)
            if (seqs[i][t] < 0 || seqs[i][t] >= c->vocab_size)
                return err_set(e, EX_DATAERR, "sequence %d: id %d at %d is outside the reward model's vocabulary (%d)",
                               i, seqs[i][t], t, c->vocab_size);
    }
    /* padding id: the model's pad token, so prefbatch_score_column skips it exactly as
     * transformers does; 0 when the model has none (then lengths decide). */
    int pad = c->pad_id >= 0 ? c->pad_id : 0;
    PrefScratch s;
    memset(&s, 0, sizeof s);
    for (int i0 = 0; i0 < n; i0 += batch_size) {
        int B = n - i0 < batch_size ? n - i0 : batch_size, T = 0;
        for (int r = 0; r < B; r++)
            if (lens[i0 + r] > T) T = lens[i0 + r];
        Batch b;
        memset(&b, 0, sizeof b);
        b.B = B;
        b.T = T;
        b.tokens = xmalloc((size_t)B * T * sizeof(int));
        b.pos = xmalloc((size_t)B * T * sizeof(int));
        b.seg = xmalloc((size_t)B * T * sizeof(int));
        b.lengths = xmalloc((size_t)B * sizeof(int));
        for (int r = 0; r < B; r++) {
            int L = lens[i0 + r];
            b.lengths[r] = L;
            for (int t = 0; t < T; t++) {
                size_t k = (size_t)r * T + t;
                b.tokens[k] = t < L ? seqs[i0 + r][t] : pad;
                b.pos[k] = t < L ? t : 0;
                b.seg[k] = t < L ? 0 : BATCH_PAD_SEG;
            }
        }
        prefbatch_rewards(rm, &b, &s, rewards + i0);
        free(b.tokens), free(b.pos), free(b.seg), free(b.lengths);
    }
    prefbatch_scratch_free(&s);
    return 0;
}

int reward_score_completions(Model *rm, const int *const *prompt, const int *plen, const int *const *comp,
                             const int *clen, int n, int batch_size, float *rewards, Error *e) {
    size_t rows = (size_t)(n > 0 ? n : 1);
    int **full = xmalloc(rows * sizeof(int *)), *flen = xmalloc(rows * sizeof(int));
    for (int i = 0; i < n; i++) {
        flen[i] = plen[i] + clen[i];
        full[i] = xmalloc((size_t)(flen[i] ? flen[i] : 1) * sizeof(int));
        memcpy(full[i], prompt[i], (size_t)plen[i] * sizeof(int));
        memcpy(full[i] + plen[i], comp[i], (size_t)clen[i] * sizeof(int));
    }
    int rc = reward_score(rm, (const int *const *)full, flen, n, batch_size, rewards, e);
    for (int i = 0; i < n; i++) free(full[i]);
    free(full), free(flen);
    return rc;
}

int reward_score_generated(Model *rm, const int *const *prompt_ids, const int *prompt_lens, const GenSeq *seqs, int n,
                           int batch_size, float *rewards, Error *e) {
    size_t rows = (size_t)(n > 0 ? n : 1);
    const int **pr = xmalloc(rows * sizeof(int *)), **co = xmalloc(rows * sizeof(int *));
    int *pl = xmalloc(rows * sizeof(int)), *cl = xmalloc(rows * sizeof(int));
    for (int i = 0; i < n; i++) {
        pr[i] = prompt_ids[seqs[i].prompt], pl[i] = prompt_lens[seqs[i].prompt];
        co[i] = seqs[i].tokens, cl[i] = seqs[i].n_tokens;
    }
    int rc = reward_score_completions(rm, pr, pl, co, cl, n, batch_size, rewards, e);
    free(pr), free(pl), free(co), free(cl);
    return rc;
}

int reward_check_tokenizer(const char *policy_dir, const char *other_dir, Error *e) {
    char *a = path_join(policy_dir, "tokenizer.json"), *b = path_join(other_dir, "tokenizer.json");
    int rc = 0;
    if (file_exists(b)) {
        char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        if (read_file(a, &x, &nx, e) == 0 && read_file(b, &y, &ny, e) == 0) {
            if (nx != ny || memcmp(x, y, nx))
                rc = err_set(e, EX_USAGE, "%s differs from %s: the model must share the policy's tokenizer", b, a);
        } else {
            rc = e->code;
        }
        free(x), free(y);
    }
    free(a), free(b);
    return rc;
}
