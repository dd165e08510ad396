/* reward.c — see reward.h. */
#include "reward.h"

#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "train/prefbatch.h"
#include "base/util.h"

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
    /* padding id: the model's pad token, so rm_score_column skips it exactly as
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
        rm_batch_rewards(rm, &b, &s, rewards + i0);
        free(b.tokens), free(b.pos), free(b.seg), free(b.lengths);
    }
    pref_scratch_free(&s);
    return 0;
}
