/* test_oracle_ppo.c — one update of each ppo algorithm against PyTorch.
 *
 * Fixtures from tests/oracle/make_ppo_fixtures.py (torch, formulas written from TRL's
 * trainers): ppo-oracle.json, ppo-grads-<family>.safetensors and the models
 * ppo-<family>-{policy,ref,value}/.  For the tiny GPT-2 (tied embeddings) and the
 * tiny Llama (GQA, untied head), on a fixed batch (2 prompts x 2 completions of
 * lengths 3, 5, 2, 6) with fixed scores, old log-probs and old values:
 *   1. per-token log-probs of softmax(logits / 0.7) of policy and reference, and
 *      the value model's per-token values;
 *   2. for every case (ppo k1/k3, grpo dapo/grpo/dr_grpo with group/batch/none
 *      scaling and beta, rloo, reinforce): the advantages (rl_advantages), the batch
 *      statistics, the loss of the step (rl_loss / rl_loss_weight, what ppo's
 *      micro-step calls), TRL's metrics, and EVERY parameter gradient of the policy
 *      (and of the value model for ppo) after the backward pass with the
 *      temperature.  The models run through rl_batch.h and the maths through
 *      losses_rl.h, the same calls tools/ppo.c makes.
 * Tolerance 1e-4 (absolute, or relative to the largest entry when that exceeds 1). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/data.h"
#include "kernels/gemm.h"
#include "train/losses_rl.h"
#include "model/model.h"
#include "rl/rl_batch.h"
#include "formats/safetensors.h"
#include "base/util.h"

#define FIX "tests/oracle/fixtures/"
#define TOL 1e-4

static int failures;

static void check(double got, double want, const char *fam, const char *what) {
    double tol = TOL * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol)) {
        printf("FAIL %s: %s: expected %.8g, got %.8g (diff %.3g)\n", fam, what, want, got, fabs(got - want));
        failures++;
    }
}

static float *floats(const json_t *a, size_t *n) {
    *n = json_array_size(a);
    float *v = xmalloc((*n ? *n : 1) * sizeof(float));
    for (size_t i = 0; i < *n; i++) v[i] = (float)json_number_value(json_array_get(a, i));
    return v;
}

static int load(Model *m, const char *fam, const char *what) {
    char path[256];
    snprintf(path, sizeof path, FIX "ppo-%s-%s", fam, what);
    Error e = {0};
    if (model_load(m, path, &e)) {
        printf("FAIL cannot load %s: %s\n", path, e.msg);
        failures++;
        return -1;
    }
    return 0;
}

static void compare_grads(const Model *m, StFile *st, const char *prefix, const char *fam, const char *what) {
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%s/%s", prefix, t->name);
        const StTensor *s = st_find(st, name);
        float *w = xmalloc(t->numel * sizeof(float));
        Error e = {0};
        if (!s || s->numel != t->numel || st_to_f32(s, w, &e)) {
            printf("FAIL %s: %s: no expected gradient %s\n", fam, what, name);
            failures++;
            free(w);
            continue;
        }
        double scale = 0, bad = 0;
        size_t at = 0;
        for (size_t j = 0; j < t->numel; j++) scale = fmax(scale, fabs(w[j]));
        for (size_t j = 0; j < t->numel; j++) {
            size_t k = j;
            if (t->conv1d) { /* memory [out, in] <- file [in, out] */
                size_t out = (size_t)t->shape[0], in = (size_t)t->shape[1], o = j / in, c = j % in;
                k = c * out + o;
            }
            double d = fabs((double)m->grads[t->offset + j] - w[k]);
            if (d > bad) bad = d, at = j;
        }
        if (bad > TOL * fmax(1.0, scale)) {
            printf("FAIL %s: %s: gradient of %s differs at %zu by %.3g (largest entry %.3g)\n", fam, what, t->name, at,
                   bad, scale);
            failures++;
        }
        free(w);
    }
}

static RlConfig config_of(const json_t *c, int G) {
    RlConfig r;
    memset(&r, 0, sizeof r);
    r.algo = (RlAlgo)rl_algo_parse(json_string_value(json_object_get(c, "algo")));
    r.G = G;
    const json_t *v;
    if ((v = json_object_get(c, "kl_coef"))) r.kl_coef = json_number_value(v);
    if ((v = json_object_get(c, "kl_est"))) r.kl_est = (RlKlEstimator)rl_kl_estimator_parse(json_string_value(v));
    if ((v = json_object_get(c, "gamma"))) r.gamma = json_number_value(v);
    if ((v = json_object_get(c, "lam"))) r.lam = json_number_value(v);
    if ((v = json_object_get(c, "cliprange"))) r.cliprange = json_number_value(v);
    if ((v = json_object_get(c, "cliprange_value"))) r.cliprange_value = json_number_value(v);
    if ((v = json_object_get(c, "vf_coef"))) r.vf_coef = json_number_value(v);
    if ((v = json_object_get(c, "beta"))) r.beta = json_number_value(v);
    if ((v = json_object_get(c, "eps"))) r.eps_low = json_number_value(v);
    if ((v = json_object_get(c, "eps_high"))) r.eps_high = json_number_value(v);
    if ((v = json_object_get(c, "scale"))) r.scale = (RlScaleRewards)rl_scale_rewards_parse(json_string_value(v));
    if ((v = json_object_get(c, "loss_type"))) r.loss_type = (RlLossType)rl_loss_type_parse(json_string_value(v));
    if ((v = json_object_get(c, "max_completion_length"))) r.max_completion_length = (int)json_number_value(v);
    if ((v = json_object_get(c, "decay"))) r.baseline_decay = json_number_value(v);
    return r;
}

static double metric(const json_t *c, const char *name) {
    return json_number_value(json_object_get(json_object_get(c, "metrics"), name));
}

static void run_family(const char *fam, const json_t *J) {
    Model pol, ref, vm;
    memset(&pol, 0, sizeof pol), memset(&ref, 0, sizeof ref), memset(&vm, 0, sizeof vm);
    if (load(&pol, fam, "policy") || load(&ref, fam, "ref") || load(&vm, fam, "value")) return;
    char gpath[256];
    snprintf(gpath, sizeof gpath, FIX "ppo-grads-%s.safetensors", fam);
    StFile st;
    Error e = {0};
    if (st_open(&st, gpath, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        return;
    }
    float temp = (float)json_number_value(json_object_get(J, "temperature"));
    int G = (int)json_integer_value(json_object_get(J, "G"));
    const json_t *prompts = json_object_get(J, "prompts"), *comps = json_object_get(J, "completions");
    int n = (int)json_array_size(comps);
    int *pr[4], *co[4], plen[4], clen[4];
    for (int i = 0; i < n && i < 4; i++) {
        const json_t *p = json_array_get(prompts, (size_t)(i / G)), *c = json_array_get(comps, (size_t)i);
        plen[i] = (int)json_array_size(p);
        clen[i] = (int)json_array_size(c);
        pr[i] = xmalloc((size_t)plen[i] * sizeof(int));
        co[i] = xmalloc((size_t)clen[i] * sizeof(int));
        for (int t = 0; t < plen[i]; t++) pr[i][t] = (int)json_integer_value(json_array_get(p, (size_t)t));
        for (int t = 0; t < clen[i]; t++) co[i][t] = (int)json_integer_value(json_array_get(c, (size_t)t));
    }
    RlSeqBatch sb;
    if (n != 4 || rl_batch_build(&sb, (const int *const *)pr, plen, (const int *const *)co, clen, n, 0, &e)) {
        printf("FAIL %s: cannot build the batch of %d sequences: %s\n", fam, n, e.msg);
        failures++;
        return;
    }
    long ntok = sb.ntok;
    size_t nt;
    float *logp = xmalloc((size_t)ntok * sizeof(float)), *ref_lp = xmalloc((size_t)ntok * sizeof(float));
    float *vals = xmalloc((size_t)ntok * sizeof(float)), *dlogp = xmalloc((size_t)ntok * sizeof(float));
    float *dvals = xmalloc((size_t)ntok * sizeof(float));
    float *old = floats(json_object_get(J, "old_logp"), &nt), *old_v = floats(json_object_get(J, "old_values"), &nt);
    float *w_logp = floats(json_object_get(J, "logp"), &nt), *w_ref = floats(json_object_get(J, "ref_logp"), &nt);
    float *w_vals = floats(json_object_get(J, "values"), &nt);
    size_t ns;
    float *sc = floats(json_object_get(J, "scores"), &ns);
    double score[4];
    for (int i = 0; i < n; i++) score[i] = sc[i];

    /* 1. log-probs and values */
    rl_lm_logprobs(&ref, &sb, temp, ref_lp, NULL);
    rl_lm_logprobs(&pol, &sb, temp, logp, NULL);
    rl_values(&vm, &sb, vals);
    for (long t = 0; t < ntok; t++) {
        char what[64];
        snprintf(what, sizeof what, "policy logp[%ld]", t);
        check(logp[t], w_logp[t], fam, what);
        snprintf(what, sizeof what, "ref logp[%ld]", t);
        check(ref_lp[t], w_ref[t], fam, what);
        snprintf(what, sizeof what, "value[%ld]", t);
        check(vals[t], w_vals[t], fam, what);
    }

    /* 2. every case */
    model_enable_grads(&pol);
    model_enable_grads(&vm);
    const json_t *cases = json_object_get(J, "cases");
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        const json_t *c = json_array_get(cases, ci);
        const char *cname = json_string_value(json_object_get(c, "name"));
        char what[128];
        RlConfig cfg = config_of(c, G);
        int ppo = cfg.algo == RL_ALGO_PPO;
        int with_ref = cfg.algo == RL_ALGO_GRPO ? cfg.beta != 0 : cfg.kl_coef != 0;
        float *adv_tok = xmalloc((size_t)ntok * sizeof(float)), *ret = xmalloc((size_t)ntok * sizeof(float));
        double adv[4];
        RlBatch rb = {.n = n,
                      .off = sb.off,
                      .len = sb.len,
                      .ntok = ntok,
                      .old_logp = old,
                      .ref_logp = with_ref ? ref_lp : NULL,
                      .old_values = old_v,
                      .score = score,
                      .adv_tok = adv_tok,
                      .returns = ret,
                      .adv = adv};
        RlRolloutStats rs;
        RlState state = {0, 0};
        rl_advantages(&cfg, &rb, &state, &rs);
        const json_t *wadv = json_object_get(c, "adv");
        for (size_t k = 0; k < json_array_size(wadv); k++) {
            snprintf(what, sizeof what, "%s adv[%zu]", cname, k);
            check(ppo ? adv_tok[k] : adv[k], json_number_value(json_array_get(wadv, k)), fam, what);
        }
        const json_t *ws = json_object_get(c, "stats");
        snprintf(what, sizeof what, "%s scores", cname);
        check(rs.scores, json_number_value(json_object_get(ws, "scores")), fam, what);
        snprintf(what, sizeof what, "%s entropy (objective/entropy)", cname);
        check(rs.entropy, json_number_value(json_object_get(ws, "entropy")), fam, what);
        snprintf(what, sizeof what, "%s reward_std", cname);
        check(rs.reward_std, json_number_value(json_object_get(ws, "reward_std")), fam, what);
        if (with_ref && cfg.algo != RL_ALGO_GRPO) {
            snprintf(what, sizeof what, "%s kl (objective/kl)", cname);
            check(rs.kl, json_number_value(json_object_get(ws, "kl")), fam, what);
            snprintf(what, sizeof what, "%s rlhf_reward", cname);
            check(rs.rlhf_reward, json_number_value(json_object_get(ws, "rlhf_reward")), fam, what);
        }

        /* the step: forward, loss / W, backward */
        model_zero_grad(&pol);
        model_zero_grad(&vm);
        double W = rl_loss_weight(&cfg, sb.len, n);
        rl_lm_logprobs(&pol, &sb, temp, logp, NULL);
        if (ppo) rl_values(&vm, &sb, vals);
        RlStats s;
        memset(&s, 0, sizeof s);
        double L = rl_loss(&cfg, logp, old, with_ref ? ref_lp : NULL, vals, old_v, adv_tok, ret, adv, sb.off, sb.len, n,
                           1.0 / W, dlogp, dvals, &s);
        snprintf(what, sizeof what, "%s loss", cname);
        check(L / W, json_number_value(json_object_get(c, "loss")), fam, what);
        if (ppo) {
            snprintf(what, sizeof what, "%s policy/clipfrac_avg", cname);
            check(s.clipfrac / s.tokens, metric(c, "policy/clipfrac_avg"), fam, what);
            snprintf(what, sizeof what, "%s policy/approxkl_avg", cname);
            check(s.approxkl / s.tokens, metric(c, "policy/approxkl_avg"), fam, what);
            snprintf(what, sizeof what, "%s loss/policy_avg", cname);
            check(s.pg_loss / s.tokens, metric(c, "loss/policy_avg"), fam, what);
            snprintf(what, sizeof what, "%s loss/value_avg", cname);
            check(s.vf_loss / s.tokens, metric(c, "loss/value_avg"), fam, what);
            snprintf(what, sizeof what, "%s val/clipfrac_avg", cname);
            check(s.vf_clipfrac / s.tokens, metric(c, "val/clipfrac_avg"), fam, what);
            snprintf(what, sizeof what, "%s val/ratio", cname);
            check(s.ratio / s.tokens, metric(c, "val/ratio"), fam, what);
        } else {
            snprintf(what, sizeof what, "%s clip_ratio", cname);
            check(s.clipfrac / s.tokens, metric(c, "clip_ratio"), fam, what);
            if (cfg.algo == RL_ALGO_GRPO && cfg.beta != 0) {
                snprintf(what, sizeof what, "%s kl", cname);
                check(s.kl / s.tokens, metric(c, "kl"), fam, what);
            }
            if (cfg.algo != RL_ALGO_GRPO) {
                snprintf(what, sizeof what, "%s policy/approxkl_avg", cname);
                check(s.approxkl / s.tokens, metric(c, "policy/approxkl_avg"), fam, what);
            }
        }
        rl_lm_backward(&pol, &sb, temp, dlogp);
        char prefix[128];
        snprintf(prefix, sizeof prefix, "%s/policy", cname);
        compare_grads(&pol, &st, prefix, fam, cname);
        if (ppo) {
            rl_values_backward(&vm, &sb, dvals);
            snprintf(prefix, sizeof prefix, "%s/value", cname);
            compare_grads(&vm, &st, prefix, fam, cname);
        }
        free(adv_tok), free(ret);
    }
    for (int i = 0; i < n; i++) free(pr[i]), free(co[i]);
    rl_batch_free(&sb);
    free(logp), free(ref_lp), free(vals), free(dlogp), free(dvals);
    free(old), free(old_v), free(w_logp), free(w_ref), free(w_vals), free(sc);
    st_close(&st);
    model_free(&pol), model_free(&ref), model_free(&vm);
}

int main(void) {
    gemm_threads_set(1); /* tiny models: threads only add scheduling noise */
    json_error_t je;
    json_t *root = json_load_file(FIX "ppo-oracle.json", 0, &je);
    if (!root) {
        printf("FAIL " FIX "ppo-oracle.json:%d: %s\n", je.line, je.text);
        return 1;
    }
    const char *fams[2] = {"gpt2", "llama"};
    for (int k = 0; k < 2; k++) {
        const json_t *J = json_object_get(root, fams[k]);
        if (!J) {
            printf("FAIL ppo-oracle.json: no \"%s\"\n", fams[k]);
            failures++;
            continue;
        }
        run_family(fams[k], J);
    }
    json_decref(root);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("ok: 2 families x 7 cases (loss, metrics, advantages, every gradient) within %g of PyTorch\n", TOL);
    return 0;
}
