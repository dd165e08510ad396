/* test_oracle_kto.c — cherry's KTO against PyTorch (TRL's formula).
 *
 * Fixture from tests/oracle/make_kto_fixtures.py: four unpaired examples on the tiny
 * Llama policy/reference pair, their KL completions (rotated by +1 in the batch, as
 * TRL's KTOTrainer builds them), and for each case (beta, desirable/undesirable
 * weights; one with policy and reference swapped so the KL estimate clamps to 0):
 *   1. sequence log-probs of the matched and KL sequences, policy and reference,
 *      through the same batch_pairs layout dpo uses (matched rows, then KL rows);
 *   2. the KL estimate, the loss, TRL's metrics and d loss / d policy log-prob.
 * Tolerance 1e-4. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "data/data.h"
#include "model/model.h"
#include "train/losses_pref.h"
#include "train/prefbatch.h"

#define FIX "tests/oracle/fixtures/"
#define TOL 1e-4

static int failures;

static void check(double got, double want, const char *what) {
    if (!(fabs(got - want) <= TOL * fmax(1.0, fabs(want)))) {
        printf("FAIL %s: expected %.8g, got %.8g\n", what, want, got);
        failures++;
    }
}

static int *ints(const json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int *v = xmalloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int i = 0; i < *n; i++) v[i] = (int)json_integer_value(json_array_get(a, i));
    return v;
}

static double num(const json_t *o, const char *k) {
    return json_number_value(json_object_get(o, k));
}

int main(void) {
    json_error_t je;
    json_t *fx = json_load_file(FIX "pref-kto.json", 0, &je);
    if (!fx) {
        printf("FAIL cannot read " FIX "pref-kto.json: %s\n", je.text);
        return 1;
    }
    Model pol, ref;
    Error e = {0};
    if (model_load(&pol, FIX "pref-llama-policy", &e) || model_load(&ref, FIX "pref-llama-ref", &e)) {
        printf("FAIL %s\n", e.msg);
        return 1;
    }
    const json_t *exs = json_object_get(fx, "examples"), *klc = json_object_get(fx, "kl_completion");
    int n = (int)json_array_size(exs);
    PrefExample *pe = xcalloc((size_t)n, sizeof *pe);
    const PrefExample **pp = xmalloc((size_t)n * sizeof *pp);
    unsigned char *label = xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        const json_t *o = json_array_get(exs, i);
        pe[i].prompt = ints(json_object_get(o, "prompt"), &pe[i].n_prompt);
        pe[i].chosen = ints(json_object_get(o, "completion"), &pe[i].n_chosen);
        pe[i].rejected = ints(json_array_get(klc, i), &pe[i].n_rejected);
        label[i] = json_is_true(json_object_get(o, "label"));
        pp[i] = &pe[i];
    }
    Batch b = {0};
    if (batch_pairs(&b, pp, n, 0, 0, &e)) {
        printf("FAIL batch_pairs: %s\n", e.msg);
        return 1;
    }
    PrefScratch s = {0};
    float *lp[2];
    Model *m[2] = {&pol, &ref};
    const char *keys[2][2] = {{"policy_logps", "policy_kl_logps"}, {"ref_logps", "ref_kl_logps"}};
    for (int k = 0; k < 2; k++) {
        lp[k] = xmalloc(2 * (size_t)n * sizeof(float));
        prefbatch_logps(m[k], &b, &s, lp[k], NULL, NULL);
        for (int r = 0; r < 2 * n; r++) {
            char what[96];
            snprintf(what, sizeof what, "%s[%d]", keys[k][r / n], r % n);
            check(lp[k][r], json_number_value(json_array_get(json_object_get(fx, keys[k][r / n]), r % n)), what);
        }
    }
    size_t ci;
    json_t *cs;
    json_array_foreach(json_object_get(fx, "cases"), ci, cs) {
        KtoConfig c;
        kto_config_default(&c);
        c.beta = num(cs, "beta");
        c.desirable_weight = num(cs, "desirable_weight");
        c.undesirable_weight = num(cs, "undesirable_weight");
        int sw = json_is_true(json_object_get(cs, "swap"));
        const float *P = lp[sw], *R = lp[!sw];
        double kl = kto_kl_estimate(n, P + n, R + n);
        float *d = xmalloc((size_t)n * sizeof(float));
        KtoMetrics km;
        double loss = kto_loss(&c, n, P, R, label, kl, d, &km);
        char what[128];
        const json_t *mt = json_object_get(cs, "metrics");
        snprintf(what, sizeof what, "case %zu kl", ci);
        check(kl, num(mt, "kl"), what);
        snprintf(what, sizeof what, "case %zu loss", ci);
        check(loss, num(cs, "loss"), what);
        const char *names[4] = {"rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"};
        double got[4] = {km.rewards_chosen, km.rewards_rejected, km.logps_chosen, km.logps_rejected};
        for (int k = 0; k < 4; k++) {
            snprintf(what, sizeof what, "case %zu %s", ci, names[k]);
            check(got[k], num(mt, names[k]), what);
        }
        for (int i = 0; i < n; i++) {
            snprintf(what, sizeof what, "case %zu dloss/dlogp[%d]", ci, i);
            check(d[i], json_number_value(json_array_get(json_object_get(cs, "dlogp"), i)), what);
        }
        free(d);
    }
    /* no examples: no loss, no KL */
    check(kto_kl_estimate(0, NULL, NULL), 0, "empty KL estimate");
    batch_free(&b);
    prefbatch_scratch_free(&s);
    for (int i = 0; i < n; i++) pref_example_free(&pe[i]);
    free(pe), free(pp), free(label), free(lp[0]), free(lp[1]);
    model_free(&pol);
    model_free(&ref);
    json_decref(fx);
    if (failures)
        printf("%d failure(s)\n", failures);
    else
        printf("ok: KTO log-probs, KL estimate, loss, metrics and gradients match TRL's formula\n");
    return failures != 0;
}
