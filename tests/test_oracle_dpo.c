/* test_oracle_dpo.c — cherry's DPO step and reward model against PyTorch.
 *
 * Fixtures from tests/oracle/make_pref_fixtures.py (transformers + TRL's formulas):
 *   pref-dpo.json, pref-jac-<family>.safetensors, pref-{gpt2,llama}-{ref,policy}/
 *   pref-rm.json, pref-rmgrad-<family>.safetensors, pref-{gpt2,llama}-rm/
 *   pref-dpo-extra.json: the later loss types (exo_pair, aot, aot_unpaired, discopop,
 *   sigmoid_norm) on the same models, appended to each family's cases, and TRL 1.x's
 *   token metrics (entropy, logits/chosen, logits/rejected, mean_token_accuracy)
 * For each family (GPT-2 with tied embeddings, Llama with GQA and untied head):
 *   1. per-sequence log-probs of policy and reference on the fixed pairs (one
 *      batch_pairs batch, chosen rows then rejected rows);
 *   2. for every loss type (and a weighted combination with RPO): the loss, TRL's
 *      metrics, d loss/d logp and EVERY parameter gradient of the first step.  The
 *      expected gradient is sum_r dL/dlogp_r * dlogp_r/dtheta from the fixture's
 *      Jacobian (the script checks that identity against direct autograd);
 *   3. the reward model: scores at the last non-pad token, the Bradley–Terry loss
 *      with margin and centring, its metrics and every parameter gradient.
 * Tolerance 1e-4 (absolute, or relative to the largest entry of a tensor when that
 * is larger than 1). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "data/data.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "train/losses_pref.h"
#include "train/prefbatch.h"

#define FIX "tests/oracle/fixtures/"
#define TOL 1e-4

static int failures;

static void check(double got, double want, double tol, const char *fam, const char *what) {
    if (!(fabs(got - want) <= tol)) {
        printf("FAIL %s: %s: expected %.8g, got %.8g (diff %.3g, tol %.3g)\n", fam, what, want, got, fabs(got - want),
               tol);
        failures++;
    }
}

static int *ints(const json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int *v = xmalloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int i = 0; i < *n; i++) v[i] = (int)json_integer_value(json_array_get(a, i));
    return v;
}

static int load_model(Model *m, const char *name) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", name);
    Error e = {0};
    if (model_load(m, path, &e)) {
        printf("FAIL cannot load %s: %s\n", path, e.msg);
        failures++;
        return -1;
    }
    return 0;
}

/* Compares m->grads with the expected gradient of every tensor.  want(t, buf) fills
 * buf[numel] in HF layout ([in, out] for Conv1D); returns the worst difference. */
typedef int (*WantFn)(void *ctx, const ParamTensor *t, float *buf);

static double compare_grads(const Model *m, WantFn want, void *ctx, const char *fam, const char *what) {
    double worst = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *w = xmalloc(t->numel * sizeof(float));
        if (want(ctx, t, w)) {
            printf("FAIL %s: %s: no expected gradient for %s\n", fam, what, t->name);
            failures++;
            free(w);
            continue;
        }
        const float *g = m->grads + t->offset;
        double scale = 0;
        for (size_t j = 0; j < t->numel; j++) scale = fmax(scale, fabs(w[j]));
        double tol = TOL * fmax(1.0, scale), bad = 0;
        size_t at = 0;
        for (size_t j = 0; j < t->numel; j++) {
            size_t k = j;
            if (t->conv1d) { /* memory [out, in] <- file [in, out] */
                size_t out = (size_t)t->shape[0], in = (size_t)t->shape[1], o = j / in, c = j % in;
                k = c * out + o;
            }
            double d = fabs((double)g[j] - w[k]);
            if (d > bad) bad = d, at = j;
            if (d / fmax(1.0, scale) > worst) worst = d / fmax(1.0, scale);
        }
        if (bad > tol) {
            printf("FAIL %s: %s: gradient of %s differs at %zu by %.3g (tol %.3g, largest entry %.3g)\n", fam, what,
                   t->name, at, bad, tol, scale);
            failures++;
        }
        free(w);
    }
    return worst;
}

typedef struct JacCtx {
    StFile *st;
    int rows;
    const double *dlogp;
} JacCtx;

static int want_from_jac(void *ctx, const ParamTensor *t, float *buf) {
    JacCtx *c = ctx;
    memset(buf, 0, t->numel * sizeof(float));
    double *acc = xcalloc(t->numel, sizeof(double));
    float *tmp = xmalloc(t->numel * sizeof(float));
    int rc = 0;
    for (int r = 0; r < c->rows && !rc; r++) {
        char name[160];
        snprintf(name, sizeof name, "%d/%s", r, t->name);
        const StTensor *st = st_find(c->st, name);
        Error e = {0};
        if (!st || st->numel != t->numel || st_to_f32(st, tmp, &e)) {
            rc = -1;
            break;
        }
        for (size_t j = 0; j < t->numel; j++) acc[j] += c->dlogp[r] * tmp[j];
    }
    for (size_t j = 0; j < t->numel; j++) buf[j] = (float)acc[j];
    free(acc);
    free(tmp);
    return rc;
}

static int want_from_file(void *ctx, const ParamTensor *t, float *buf) {
    const StTensor *st = st_find((StFile *)ctx, t->name);
    Error e = {0};
    if (!st || st->numel != t->numel || st_to_f32(st, buf, &e)) return -1;
    return 0;
}

/* Joins a JSON array of strings or numbers with commas. */
static void join(const json_t *a, char *out, size_t cap) {
    out[0] = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        size_t l = strlen(out);
        if (json_is_string(v))
            snprintf(out + l, cap - l, "%s%s", i ? "," : "", json_string_value(v));
        else
            snprintf(out + l, cap - l, "%s%.17g", i ? "," : "", json_number_value(v));
    }
}

static PrefExample *make_pairs(const json_t *pairs, int *n_out, int with_eos) {
    int n = (int)json_array_size(pairs);
    PrefExample *p = xcalloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) {
        const json_t *o = json_array_get(pairs, i);
        p[i].prompt = ints(json_object_get(o, "prompt"), &p[i].n_prompt);
        p[i].chosen = ints(json_object_get(o, "chosen"), &p[i].n_chosen);
        p[i].rejected = ints(json_object_get(o, "rejected"), &p[i].n_rejected);
        if (with_eos) { /* the reward fixture's sequences end with EOS (id 0) */
            p[i].chosen = xrealloc(p[i].chosen, (size_t)(p[i].n_chosen + 1) * sizeof(int));
            p[i].chosen[p[i].n_chosen++] = 0;
            p[i].rejected = xrealloc(p[i].rejected, (size_t)(p[i].n_rejected + 1) * sizeof(int));
            p[i].rejected[p[i].n_rejected++] = 0;
        }
    }
    *n_out = n;
    return p;
}

/* TRL 1.x DPOTrainer's token metrics (entropy, logits/chosen, logits/rejected,
 * mean_token_accuracy) of the policy on pref-dpo-extra.json's token_pairs, whose
 * chosen answers start with the policy's greedy tokens (so the accuracy is not 0). */
static void token_metrics(Model *pol, const json_t *fm, const char *fam) {
    const json_t *tp = json_object_get(fm, "token_pairs"), *want = json_object_get(fm, "token_metrics");
    if (!tp || !want) {
        printf("FAIL %s: pref-dpo-extra.json has no token_pairs/token_metrics\n", fam);
        failures++;
        return;
    }
    int n;
    PrefExample *pe = make_pairs(tp, &n, 0);
    const PrefExample **pp = xmalloc((size_t)n * sizeof *pp);
    for (int i = 0; i < n; i++) pp[i] = &pe[i];
    Batch b = {0};
    Error e = {0};
    PrefScratch s = {0};
    float *lp = xmalloc(2 * (size_t)n * sizeof(float));
    if (batch_pairs(&b, pp, n, 0, 0, &e)) {
        printf("FAIL %s: batch_pairs: %s\n", fam, e.msg);
        failures++;
    } else {
        prefbatch_logps(pol, &b, &s, lp, NULL, NULL);
        PrefTokenStats ts;
        prefbatch_token_stats(pol, &b, n, &s, &ts);
        const char *names[4] = {"entropy", "logits/chosen", "logits/rejected", "mean_token_accuracy"};
        double got[4] = {ts.entropy_sum / ts.tokens, ts.logits_chosen_sum / ts.chosen_tokens,
                         ts.logits_rejected_sum / ts.rejected_tokens, (double)ts.chosen_correct / ts.chosen_tokens};
        for (int k = 0; k < 4; k++) {
            double w = json_number_value(json_object_get(want, names[k]));
            check(got[k], w, k == 3 ? 1e-12 : k == 0 ? TOL * fmax(1, fabs(w)) : 1e-6, fam, names[k]); /* logits ~0.01 */
            printf("%s %-20s %.6f (torch %.6f)\n", fam, names[k], got[k], w);
        }
    }
    batch_free(&b);
    prefbatch_scratch_free(&s);
    for (int i = 0; i < n; i++) pref_example_free(&pe[i]);
    free(pe);
    free(pp);
    free(lp);
}

/* The step as dpo runs it with a pairwise loss (prefbatch_logps_train: each pair's
 * gradient from its own log-probs, the LM head in one pass), in both layouts. */
typedef struct FusedCtx {
    const PrefLossConfig *c;
    const float *ref_lp;
    int n, *calls; /* calls[i]: how often pair i's gradient was asked for */
} FusedCtx;

static void fused_pair_grads(void *vctx, int i0, int i1, int n, const float *seq, const int *len, float *dseq) {
    FusedCtx *f = vctx;
    for (int i = i0; i < i1; i++) f->calls[i]++;
    pref_loss_pair_grads(f->c, i0, i1, n, seq, seq + n, f->ref_lp, f->ref_lp + f->n, len, len + n, 1.0 / n, dseq,
                         dseq + n);
}

static void fused_step(Model *pol, const PrefExample *const *pp, int n, const PrefLossConfig *c, const float *ref_lp,
                       const float *want_lp, const double *dl, WantFn want, void *jc, const char *fam,
                       const char *types) {
    for (int share = 0; share < 2; share++) {
        Batch b = {0};
        Error e = {0};
        if (share ? batch_pairs_shared(&b, pp, n, 0) : batch_pairs(&b, pp, n, 0, 0, &e)) {
            printf("FAIL %s: batch: %s\n", fam, e.msg);
            failures++;
            return;
        }
        PrefScratch s = {0};
        float *seq = xmalloc(2 * n * sizeof(float)), *d = xmalloc(2 * n * sizeof(float));
        int *len = xmalloc(2 * n * sizeof(int)), *calls = xcalloc((size_t)n, sizeof(int));
        for (int r = 0; r < 2 * n; r++) seq[r] = d[r] = NAN, len[r] = -1; /* what the call must fill */
        FusedCtx f = {c, ref_lp, n, calls};
        model_zero_grad(pol);
        prefbatch_logps_train(pol, &b, &s, seq, len, d, fused_pair_grads, &f);
        char what[300];
        for (int i = 0; i < n; i++)
            if (calls[i] != 1) {
                printf("FAIL %s: [%s] fused %s: pair %d's gradient asked for %d times\n", fam, types,
                       share ? "shared" : "unshared", i, calls[i]);
                failures++;
            }
        for (int r = 0; r < 2 * n; r++) {
            snprintf(what, sizeof what, "[%s] fused %s: policy logp of row %d", types, share ? "shared" : "unshared",
                     r);
            check(seq[r], want_lp[r], TOL, fam, what);
            snprintf(what, sizeof what, "[%s] fused %s: d loss / d logp[%d]", types, share ? "shared" : "unshared", r);
            check(d[r], dl[r], TOL * fmax(1, fabs(dl[r])), fam, what);
        }
        snprintf(what, sizeof what, "[%s] fused %s", types, share ? "shared" : "unshared");
        double worst = compare_grads(pol, want, jc, fam, what);
        printf("%s %-14s one-pass head, %s rows: worst gradient difference %.2e\n", fam, types,
               share ? "shared" : "unshared", worst);
        free(seq), free(d), free(len), free(calls);
        prefbatch_scratch_free(&s);
        batch_free(&b);
    }
}

static void dpo_family(const json_t *fm, const json_t *pairs_json) {
    const char *fam = json_string_value(json_object_get(fm, "family"));
    Model ref, pol;
    if (load_model(&ref, json_string_value(json_object_get(fm, "ref")))) return;
    if (load_model(&pol, json_string_value(json_object_get(fm, "policy")))) return;
    model_enable_grads(&pol);

    int n;
    PrefExample *pe = make_pairs(pairs_json, &n, 0);
    const PrefExample **pp = xmalloc((size_t)n * sizeof *pp);
    for (int i = 0; i < n; i++) pp[i] = &pe[i];
    Batch b = {0};
    Error e = {0};
    if (batch_pairs(&b, pp, n, 0, 0, &e)) {
        printf("FAIL %s: batch_pairs: %s\n", fam, e.msg);
        failures++;
        return;
    }
    PrefScratch s = {0};
    float *ref_lp = xmalloc(2 * n * sizeof(float)), *pol_lp = xmalloc(2 * n * sizeof(float));
    int *len = xmalloc(2 * n * sizeof(int));
    prefbatch_logps(&ref, &b, &s, ref_lp, NULL, NULL);
    prefbatch_logps(&pol, &b, &s, pol_lp, len, NULL);
    for (int r = 0; r < 2 * n; r++) {
        char what[64];
        snprintf(what, sizeof what, "reference logp of row %d", r);
        check(ref_lp[r], json_number_value(json_array_get(json_object_get(fm, "ref_logps"), r)), TOL, fam, what);
        snprintf(what, sizeof what, "policy logp of row %d", r);
        check(pol_lp[r], json_number_value(json_array_get(json_object_get(fm, "policy_logps"), r)), TOL, fam, what);
        const PrefExample *x = &pe[r % n];
        check(len[r], r < n ? x->n_chosen : x->n_rejected, 0, fam, "completion length");
    }

    token_metrics(&pol, fm, fam);

    char jpath[256];
    snprintf(jpath, sizeof jpath, FIX "pref-jac-%s.safetensors", fam);
    StFile jac;
    if (st_open(&jac, jpath, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        return;
    }
    size_t ci;
    json_t *cs;
    json_array_foreach(json_object_get(fm, "cases"), ci, cs) {
        char types[256], weights[256], what[300];
        join(json_object_get(cs, "loss_type"), types, sizeof types);
        PrefLossConfig c;
        pref_loss_config_default(&c);
        weights[0] = 0;
        if (json_object_get(cs, "loss_weights")) join(json_object_get(cs, "loss_weights"), weights, sizeof weights);
        if (pref_loss_parse(&c, types, weights[0] ? weights : NULL, &e)) {
            printf("FAIL %s: %s\n", fam, e.msg);
            failures++;
            continue;
        }
        if (json_object_get(cs, "beta")) c.beta = json_number_value(json_object_get(cs, "beta"));
        if (json_object_get(cs, "label_smoothing"))
            c.label_smoothing = json_number_value(json_object_get(cs, "label_smoothing"));
        if (json_object_get(cs, "rpo_alpha")) c.rpo_alpha = json_number_value(json_object_get(cs, "rpo_alpha"));
        if (json_object_get(cs, "discopop_tau"))
            c.discopop_tau = json_number_value(json_object_get(cs, "discopop_tau"));

        /* the step as dpo runs it: forward the policy, loss, backward */
        PrefLossState st;
        pref_loss_state_init(&st);
        model_zero_grad(&pol);
        prefbatch_logps(&pol, &b, &s, pol_lp, len, NULL);
        float *d = xmalloc(2 * n * sizeof(float));
        PrefMetrics m;
        double loss = pref_loss(&c, &st, n, pol_lp, pol_lp + n, ref_lp, ref_lp + n, len, len + n, d, d + n, &m);
        prefbatch_logps_backward(&pol, &b, &s, d);

        double want_loss = json_number_value(json_object_get(cs, "loss"));
        snprintf(what, sizeof what, "[%s] loss", types);
        check(loss, want_loss, TOL * fmax(1, fabs(want_loss)), fam, what);
        const json_t *mt = json_object_get(cs, "metrics");
        const char *names[6] = {"rewards/chosen",  "rewards/rejected", "rewards/accuracies",
                                "rewards/margins", "logps/chosen",     "logps/rejected"};
        double got[6] = {m.rewards_chosen, m.rewards_rejected, m.accuracies,
                         m.margins,        m.logps_chosen,     m.logps_rejected};
        for (int k = 0; k < 6; k++) {
            snprintf(what, sizeof what, "[%s] %s", types, names[k]);
            check(got[k], json_number_value(json_object_get(mt, names[k])), TOL, fam, what);
        }
        double *dl = xmalloc(2 * n * sizeof(double));
        for (int r = 0; r < 2 * n; r++) {
            dl[r] = json_number_value(json_array_get(json_object_get(cs, "dlogp"), r));
            snprintf(what, sizeof what, "[%s] d loss / d logp[%d]", types, r);
            check(d[r], dl[r], TOL * fmax(1, fabs(dl[r])), fam, what);
        }
        JacCtx jc = {&jac, 2 * n, dl};
        snprintf(what, sizeof what, "[%s]", types);
        double worst = compare_grads(&pol, want_from_jac, &jc, fam, what);
        printf("%s %-14s loss %.6f (torch %.6f)  worst gradient difference %.2e\n", fam, types, loss, want_loss, worst);
        if (pref_loss_pairwise(&c)) {
            float *want_lp = xmalloc(2 * n * sizeof(float));
            for (int r = 0; r < 2 * n; r++)
                want_lp[r] = (float)json_number_value(json_array_get(json_object_get(fm, "policy_logps"), r));
            fused_step(&pol, pp, n, &c, ref_lp, want_lp, dl, want_from_jac, &jc, fam, types);
            free(want_lp);
        }
        free(d);
        free(dl);
    }
    st_close(&jac);
    batch_free(&b);
    prefbatch_scratch_free(&s);
    for (int i = 0; i < n; i++) pref_example_free(&pe[i]);
    free(pe);
    free(pp);
    free(ref_lp);
    free(pol_lp);
    free(len);
    model_free(&ref);
    model_free(&pol);
}

static void rm_family(const json_t *fm, const json_t *pairs_json) {
    const char *fam = json_string_value(json_object_get(fm, "family"));
    Model rm;
    if (load_model(&rm, json_string_value(json_object_get(fm, "dir")))) return;
    check(rm.cfg.is_classifier, 1, 0, fam, "reward model loads as a classifier");
    check(rm.cfg.pad_id, 0, 0, fam, "pad_token_id");
    model_enable_grads(&rm);
    int n;
    PrefExample *pe = make_pairs(pairs_json, &n, 1);
    const PrefExample **pp = xmalloc((size_t)n * sizeof *pp);
    for (int i = 0; i < n; i++) pp[i] = &pe[i];
    Batch b = {0};
    Error e = {0};
    if (batch_pairs(&b, pp, n, 0, rm.cfg.pad_id, &e)) {
        printf("FAIL %s: batch_pairs: %s\n", fam, e.msg);
        failures++;
        return;
    }
    PrefScratch s = {0};
    float *rw = xmalloc(2 * n * sizeof(float)), *d = xmalloc(2 * n * sizeof(float)), mg[16];
    model_zero_grad(&rm);
    prefbatch_rewards(&rm, &b, &s, rw);
    for (int r = 0; r < 2 * n; r++) {
        char what[64];
        snprintf(what, sizeof what, "score of row %d", r);
        check(rw[r], json_number_value(json_array_get(json_object_get(fm, "scores"), r)), TOL, fam, what);
    }
    for (int i = 0; i < n; i++) mg[i] = (float)json_number_value(json_array_get(json_object_get(fm, "margin"), i));
    BtMetrics m;
    double center = json_number_value(json_object_get(fm, "center_rewards_coefficient"));
    double loss = bt_loss(n, rw, rw + n, mg, center, d, d + n, &m);
    check(loss, json_number_value(json_object_get(fm, "loss")), TOL, fam, "Bradley-Terry loss");
    check(m.accuracy, json_number_value(json_object_get(fm, "accuracy")), TOL, fam, "accuracy");
    check(m.rewards_chosen, json_number_value(json_object_get(fm, "rewards/chosen")), TOL, fam, "rewards/chosen");
    check(m.rewards_rejected, json_number_value(json_object_get(fm, "rewards/rejected")), TOL, fam, "rewards/rejected");
    check(m.margin, json_number_value(json_object_get(fm, "margin_mean")), TOL, fam, "margin");
    prefbatch_rewards_backward(&rm, &b, &s, d);
    char gpath[256];
    snprintf(gpath, sizeof gpath, FIX "pref-rmgrad-%s.safetensors", fam);
    StFile g;
    if (st_open(&g, gpath, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
    } else {
        double worst = compare_grads(&rm, want_from_file, &g, fam, "reward model");
        printf("%s reward model: loss %.6f  worst gradient difference %.2e\n", fam, loss, worst);
        st_close(&g);
    }
    batch_free(&b);
    prefbatch_scratch_free(&s);
    for (int i = 0; i < n; i++) pref_example_free(&pe[i]);
    free(pe);
    free(pp);
    free(rw);
    free(d);
    model_free(&rm);
}

int main(void) {
    json_error_t je;
    json_t *dpo = json_load_file(FIX "pref-dpo.json", 0, &je);
    json_t *rm = json_load_file(FIX "pref-rm.json", 0, &je);
    if (!dpo || !rm) {
        printf("FAIL cannot read the fixtures: %s\n", je.text);
        return 1;
    }
    const json_t *pairs = json_object_get(dpo, "pairs");
    size_t i;
    json_t *fm;
    json_t *extra = json_load_file(FIX "pref-dpo-extra.json", 0, &je);
    if (!extra) {
        printf("FAIL cannot read pref-dpo-extra.json: %s\n", je.text);
        failures++;
    }
    size_t n_extra = 0;
    json_array_foreach(json_object_get(dpo, "models"), i, fm) {
        size_t j;
        json_t *xm;
        json_array_foreach(json_object_get(extra, "models"), j, xm) {
            if (!json_equal(json_object_get(xm, "family"), json_object_get(fm, "family"))) continue;
            n_extra += json_array_size(json_object_get(xm, "cases"));
            json_array_extend(json_object_get(fm, "cases"), json_object_get(xm, "cases"));
            json_object_set(fm, "token_pairs", json_object_get(xm, "token_pairs"));
            json_object_set(fm, "token_metrics", json_object_get(xm, "token_metrics"));
        }
    }
    if (extra && n_extra < 2 * 9) {
        printf("FAIL pref-dpo-extra.json: expected 9 cases per family, found %zu in all\n", n_extra);
        failures++;
    }
    json_decref(extra);
    json_array_foreach(json_object_get(dpo, "models"), i, fm) dpo_family(fm, pairs);
    json_array_foreach(json_object_get(rm, "models"), i, fm) rm_family(fm, pairs);
    json_decref(dpo);
    json_decref(rm);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("DPO and reward-model steps match PyTorch within %g\n", TOL);
    return 0;
}
