/* test_reward.c — reward_score (reward.h), the scoring rollout --reward-model
 * uses, against transformers: tests/oracle/fixtures/pref-rm.json holds token
 * sequences and the scores GPT2/LlamaForSequenceClassification gave them (the
 * scalar head at the last token that is not pad_token_id; the sequences end with
 * the pad/EOS id 0, so the score is read just before it).  Checked at batch sizes 1,
 * 4 and 64 (right padding of different lengths), within 1e-4; plus the error paths. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/model.h"
#include "rl/reward.h"

#define FIX "tests/oracle/fixtures/"


int main(void) {
    json_error_t je;
    json_t *root = json_load_file(FIX "pref-rm.json", 0, &je);
    if (!root) {
        printf("FAIL: %s:%d: %s\n", FIX "pref-rm.json", je.line, je.text);
        return 1;
    }
    const json_t *models = json_object_get(root, "models");
    for (size_t mi = 0; mi < json_array_size(models); mi++) {
        const json_t *jm = json_array_get(models, mi);
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", json_string_value(json_object_get(jm, "dir")));
        Model m;
        Error e;
        if (model_load(&m, dir, &e)) {
            printf("FAIL: %s: %s\n", dir, e.msg);
            failures++;
            continue;
        }
        const json_t *seqs = json_object_get(jm, "sequences"), *scores = json_object_get(jm, "scores");
        int n = (int)json_array_size(seqs);
        int **ids = calloc(n, sizeof(int *)), *lens = calloc(n, sizeof(int));
        for (int i = 0; i < n; i++) {
            const json_t *s = json_array_get(seqs, i);
            lens[i] = (int)json_array_size(s);
            ids[i] = malloc(lens[i] * sizeof(int));
            for (int t = 0; t < lens[i]; t++) ids[i][t] = (int)json_integer_value(json_array_get(s, t));
        }
        float *r = malloc(n * sizeof(float));
        int batches[3] = {1, 4, 64};
        double worst = 0;
        for (int b = 0; b < 3; b++) {
            if (reward_score(&m, (const int *const *)ids, lens, n, batches[b], r, &e)) {
                printf("FAIL: %s: %s\n", dir, e.msg);
                failures++;
                continue;
            }
            for (int i = 0; i < n; i++) {
                double want = json_real_value(json_array_get(scores, i)), d = fabs(want - r[i]);
                if (d > worst) worst = d;
                if (d > 1e-4) {
                    printf("FAIL: %s batch %d seq %d: transformers %.6f, cherry %.6f\n", dir, batches[b], i, want,
                           r[i]);
                    failures++;
                }
            }
        }
        printf("%s: %d rewards match transformers at batch 1, 4, 64 (worst difference %.2e)\n", dir, n, worst);
        /* errors */
        int bad[2] = {1, m.cfg.vocab_size}, two = 2, zero = 0;
        const int *bp[1] = {bad};
        if (reward_score(&m, bp, &two, 1, 1, r, &e) != EX_DATAERR || !strstr(e.msg, "vocabulary")) {
            printf("FAIL: %s: an out-of-vocabulary id must be EX_DATAERR\n", dir);
            failures++;
        }
        if (reward_score(&m, bp, &zero, 1, 1, r, &e) != EX_DATAERR) {
            printf("FAIL: %s: an empty sequence must be EX_DATAERR\n", dir);
            failures++;
        }
        for (int i = 0; i < n; i++) free(ids[i]);
        free(ids), free(lens), free(r);
        model_free(&m);
    }
    /* a causal LM is not a reward model */
    Model lm;
    Error e;
    if (model_load(&lm, FIX "gen-gpt2", &e) == 0) {
        int one = 1, tok = 3;
        const int *p[1] = {&tok};
        float r;
        if (reward_score(&lm, p, &one, 1, 1, &r, &e) != EX_USAGE) {
            printf("FAIL: a causal LM must be refused as a reward model (EX_USAGE)\n");
            failures++;
        }
        model_free(&lm);
    }
    json_decref(root);
    return check_summary("test_reward");
}
