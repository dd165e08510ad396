/* test_lora.c — LoRA adapters (lora.h) on tiny random GPT-2 and Llama models:
 *
 *  1. a fresh adapter (B = 0) leaves log-probs bit-identical; A follows PEFT's
 *     kaiming-uniform bound 1/sqrt(in);
 *  2. finite differences: d(sum w * logp)/d(A, B) and d(sum u * value)/d(score copy)
 *     from model_backward agree with central differences (double-checked in float),
 *     also with dropout on (fixed masks: same seed, same masks; off = no dropout);
 *  3. the base is frozen: no base gradient block, base parameters untouched;
 *  4. adapters off == the base model exactly; merged == base + adapter (1e-5);
 *     a temporary merge is undone bit for bit;
 *  5. save/load round trip: PEFT tensor names and shapes, same log-probs; loading
 *     the adapter directory finds the base via base_model_name_or_path;
 *  6. --lora-targets parsing and errors (a target matching nothing). */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "formats/safetensors.h"
#include "model/lora.h"
#include "model/model.h"

enum { B = 2, T = 6, V = 37 };

static ModelConfig tiny(Family f, int classifier) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = f;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = f != FAMILY_GPT2 ? 2 : 4;
    c.d_model = 16;
    c.d_ff = 24;
    c.vocab_size = V;
    c.max_seq = 32;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.init_std = 0.2f;
    c.tie_embeddings = 1;
    c.attn_bias = c.mlp_bias = f == FAMILY_GPT2;
    c.bos_id = c.eos_id = c.pad_id = -1;
    c.is_classifier = classifier;
    if (f == FAMILY_GEMMA2 || f == FAMILY_GEMMA3) { /* the attention of ops_ext.h under the adapters */
        c.head_dim = 8, c.sliding_window = 3, c.sliding_pattern = 2;
        c.attn_softcap = f == FAMILY_GEMMA2 ? 5.0f : 0, c.final_softcap = f == FAMILY_GEMMA2 ? 8.0f : 0;
    }
    if (f == FAMILY_PHI3) c.sliding_window = 4;
    return c;
}

static int tokens[B * T], targets[B * T];
static float wts[B * T];

static void make_batch(void) {
    Rng r;
    rng_seed(&r, 7);
    for (int n = 0; n < B * T; n++) tokens[n] = (int)rng_below(&r, V);
    for (int n = 0; n < B * T; n++) {
        targets[n] = (n % T == T - 1) ? -1 : tokens[n + 1];
        wts[n] = 0.3f + 0.1f * (float)(n % 5);
    }
}

/* The scalar loss the gradient check differentiates: sum w * logp (LM) or
 * sum w * value (classifier), computed in double from float outputs. */
static double loss_of(Model *m) {
    float out[B * T];
    model_forward(m, tokens, NULL, NULL, B, T);
    if (m->cfg.is_classifier)
        model_values(m, out);
    else
        model_logprobs(m, targets, out, NULL);
    double s = 0;
    for (int n = 0; n < B * T; n++) s += (double)wts[n] * out[n];
    return s;
}

static void backward_of(Model *m) {
    model_zero_grad(m);
    (void)loss_of(m);
    if (m->cfg.is_classifier)
        model_values_backward(m, wts);
    else
        model_logprobs_backward(m, targets, wts);
    model_backward(m);
}

static void randomize_adapter(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    Lora *L = m->lora;
    for (int j = 0; j < L->n_mods; j++) {
        float *Bm = L->params + L->mods[j].b_off;
        for (size_t i = 0; i < (size_t)L->mods[j].out * L->cfg.rank; i++) Bm[i] = 0.3f * rng_normal(&r);
    }
}

static void test_gradcheck(Family f, int classifier, const char *targets_list, float dropout) {
    const char *fam = model_family_name(f);
    ModelConfig c = tiny(f, classifier);
    Model m;
    model_create(&m, &c);
    model_init_random(&m, 11);
    LoraConfig lc;
    lora_config_default(&lc, 3);
    lc.alpha = 5.0f;
    lc.dropout = dropout;
    Error e = {0};
    if (targets_list) CHECK(lora_targets_parse(&lc, targets_list, &e) == 0, "%s: parse: %s", fam, e.msg);
    CHECK(lora_attach(&m, &lc, "/nonexistent", 5, &e) == 0, "%s: attach: %s", fam, e.msg);
    if (!m.lora) return;
    Lora *L = m.lora;
    CHECK(fabsf(L->scale - 5.0f / 3.0f) < 1e-7f, "%s: scale: expected %g, got %g", fam, 5.0 / 3.0, (double)L->scale);
    /* PEFT init: A in (-1/sqrt(in), 1/sqrt(in)), B = 0 */
    for (int j = 0; j < L->n_mods; j++) {
        float bound = 1.0f / sqrtf((float)L->mods[j].in), amax = 0;
        for (size_t i = 0; i < (size_t)L->cfg.rank * L->mods[j].in; i++)
            amax = fmaxf(amax, fabsf(L->params[L->mods[j].a_off + i]));
        CHECK(amax <= bound && amax > 0.5f * bound, "%s: A of %s: max |a| %g, bound %g", fam, L->mods[j].path,
              (double)amax, (double)bound);
        for (size_t i = 0; i < (size_t)L->mods[j].out * L->cfg.rank; i++)
            CHECK(L->params[L->mods[j].b_off + i] == 0.0f, "%s: B not zero", fam);
    }
    /* 1. fresh adapter: bit-identical to the base */
    Model base;
    model_create(&base, &c);
    model_init_random(&base, 11);
    double l0 = loss_of(&base), l1 = loss_of(&m);
    CHECK(l0 == l1, "%s: fresh adapter changed the output: base %.17g, with adapter %.17g", fam, l0, l1);

    randomize_adapter(&m, 99);
    if (dropout > 0) {
        /* training forwards drop adapter inputs; the masks follow the seed */
        double nodrop = loss_of(&m);
        lora_set_dropout(&m, 1, 4242);
        double d1 = loss_of(&m), d2 = loss_of(&m);
        lora_set_dropout(&m, 1, 4243);
        double d3 = loss_of(&m);
        lora_set_dropout(&m, 0, 0);
        double back = loss_of(&m);
        CHECK(d1 == d2 && d1 != nodrop && d3 != d1 && back == nodrop,
              "%s: dropout: off %.9g, seed A %.9g / %.9g, seed B %.9g, off again %.9g", fam, nodrop, d1, d2, d3, back);
        lora_set_dropout(&m, 1, 4242); /* the gradient check below runs with these masks */
    }
    model_enable_grads(&m);
    CHECK(m.grads == NULL, "%s: a frozen base must have no gradient block", fam);
    CHECK(L->grads != NULL, "%s: adapter gradients not allocated", fam);
    float *before = xmalloc(m.n_params * sizeof(float));
    memcpy(before, m.params, m.n_params * sizeof(float));
    backward_of(&m);
    CHECK(memcmp(before, m.params, m.n_params * sizeof(float)) == 0, "%s: base parameters changed", fam);
    free(before);

    /* 2. central differences on a sample of adapter parameters */
    float *g = xmalloc(L->n_params * sizeof(float));
    memcpy(g, L->grads, L->n_params * sizeof(float));
    double worst = 0;
    int checked = 0;
    for (size_t i = 0; i < L->n_params; i += 1 + L->n_params / 60) {
        /* central differences at h and h/2 combined by Richardson extrapolation
         * (4 D(h/2) - D(h)) / 3: O(h^4) truncation, so float rounding dominates */
        float keep = L->params[i];
        double D[2];
        for (int k = 0; k < 2; k++) {
            float h = k ? 5e-3f : 1e-2f;
            L->params[i] = keep + h;
            double lp = loss_of(&m);
            L->params[i] = keep - h;
            double lm = loss_of(&m);
            L->params[i] = keep;
            D[k] = (lp - lm) / (double)((keep + h) - (keep - h));
        }
        double fd = (4 * D[1] - D[0]) / 3, an = g[i];
        double err = fabs(fd - an) / fmax(1e-2, fabs(fd) + fabs(an));
        if (err > worst) worst = err;
        checked++;
    }
    CHECK(worst < 2e-2, "%s%s: worst relative gradient error %g over %d adapter parameters (expected < 2e-2)", fam,
          classifier ? "-rm" : "", worst, checked);
    double gsum = 0;
    for (size_t i = 0; i < L->n_params; i++) gsum += fabs(g[i]);
    CHECK(gsum > 0, "%s: all adapter gradients are zero", fam);
    free(g);

    lora_set_dropout(&m, 0, 0);
    /* 4. adapters off == base exactly; merged == adapters on */
    lora_set_enabled(&m, 0);
    double loff = loss_of(&m);
    CHECK(loff == l0, "%s: adapters off: expected the base %.17g, got %.17g", fam, l0, loff);
    lora_set_enabled(&m, 1);
    double lon = loss_of(&m);
    CHECK(lon != l0, "%s: a non-zero adapter did not change the output", fam);
    float *orig = xmalloc(m.n_params * sizeof(float));
    memcpy(orig, m.params, m.n_params * sizeof(float));
    float *saved = lora_merge_temporary(&m);
    lora_set_enabled(&m, 0);
    double ltmp = loss_of(&m);
    lora_set_enabled(&m, 1);
    lora_unmerge(&m, saved);
    CHECK(memcmp(orig, m.params, m.n_params * sizeof(float)) == 0, "%s: lora_unmerge did not restore the base", fam);
    CHECK(fabs(ltmp - lon) < 1e-5 * fmax(1, fabs(lon)), "%s: temporary merge: expected %.9g, got %.9g", fam, lon, ltmp);
    free(orig);
    lora_merge(&m);
    CHECK(m.lora == NULL, "%s: merge must detach the adapter", fam);
    double lmerged = loss_of(&m);
    CHECK(fabs(lmerged - lon) < 1e-5 * fmax(1, fabs(lon)), "%s: merged: expected %.9g, got %.9g", fam, lon, lmerged);
    model_free(&base);
    model_free(&m);
}

/* Rewrites DIR/adapter_config.json with FIND replaced by REPL (or the tensor file
 * with one tensor renamed) and expects model_load to fail with CODE and NEEDLE. */
static void expect_bad(const char *dir, const char *file, const char *find, const char *repl, int code,
                       const char *needle) {
    char *path = path_join(dir, file), *text = NULL;
    size_t len = 0;
    Error e = {0};
    if (read_file(path, &text, &len, &e)) {
        CHECK(0, "read %s: %s", path, e.msg);
        free(path);
        return;
    }
    char *at = memmem(text, len, find, strlen(find));
    CHECK(at != NULL, "%s: '%s' not found", path, find);
    if (at) {
        FILE *fp = fopen(path, "wb");
        fwrite(text, 1, (size_t)(at - text), fp);
        fwrite(repl, 1, strlen(repl), fp);
        fwrite(at + strlen(find), 1, len - (size_t)(at - text) - strlen(find), fp);
        fclose(fp);
        Model m;
        int rc = model_load(&m, dir, &e);
        CHECK(rc == code && strstr(e.msg, needle), "%s -> %s: expected exit %d and '%s', got %d '%s'", find, repl, code,
              needle, rc, rc ? e.msg : "");
        if (rc == 0) model_free(&m);
        fp = fopen(path, "wb"); /* restore */
        fwrite(text, 1, len, fp);
        fclose(fp);
    }
    free(text);
    free(path);
}

static void test_bad_adapters(const char *ad, const char *base) {
    const char *cfg = "adapter_config.json", *st = "adapter_model.safetensors";
    expect_bad(ad, cfg, "\"LORA\"", "\"IA3\"", EX_DATAERR, "peft_type");
    expect_bad(ad, cfg, "\"r\": 2", "\"r\": 0", EX_DATAERR, "\"r\"");
    expect_bad(ad, cfg, "\"use_dora\": false", "\"use_dora\": true", EX_DATAERR, "use_dora");
    expect_bad(ad, cfg, "\"bias\": \"none\"", "\"bias\": \"all\"", EX_DATAERR, "bias");
    expect_bad(ad, cfg, "\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 4}", EX_DATAERR, "rank_pattern");
    expect_bad(ad, cfg, "\"layers_to_transform\": null", "\"layers_to_transform\": [0]", EX_DATAERR,
               "layers_to_transform");
    expect_bad(ad, cfg, "\"lora_alpha\": 4", "\"lora_alpha\": \"4\"", EX_DATAERR, "lora_alpha");
    expect_bad(ad, cfg, "\"peft_type\"", "\"peft_type\" ", 0, ""); /* whitespace: still valid */
    expect_bad(ad, cfg, "{", "[", EX_DATAERR, "invalid JSON");
    expect_bad(ad, cfg, "\"v_proj\"", "\"w_proj\"", EX_USAGE, "w_proj");
    char absbase[4096];
    snprintf(absbase, sizeof absbase, "\"%s\"", base);
    expect_bad(ad, cfg, absbase, "\"/nonexistent/base\"", EX_NOINPUT, "base_model_name_or_path");
    /* tensors: a renamed one is missing (and the renamed one unexpected); a shape lie */
    expect_bad(ad, st, "layers.1.self_attn.v_proj.lora_B", "layers.1.self_attn.v_proj.lora_C", EX_DATAERR,
               "missing tensor");
    expect_bad(ad, st, "[8,2]", "[2,8]", EX_DATAERR, "wrong shape");
}

/* 5. files: base directory + adapter directory, PEFT names, reload */
static void test_files(Family f) {
    const char *fam = model_family_name(f);
    ModelConfig c = tiny(f, 0);
    char tmpl[] = "/tmp/test_lora.XXXXXX";
    char *root = mkdtemp(tmpl);
    CHECK(root != NULL, "mkdtemp");
    if (!root) return;
    char *base_dir = path_join(root, "base"), *ad_dir = path_join(root, "adapter");
    Model m;
    model_create(&m, &c);
    model_init_random(&m, 3);
    Error e = {0};
    CHECK(model_save(&m, base_dir, NULL, &e) == 0, "%s: save base: %s", fam, e.msg);
    LoraConfig lc;
    lora_config_default(&lc, 2);
    CHECK(lora_attach(&m, &lc, base_dir, 1, &e) == 0, "%s: attach: %s", fam, e.msg);
    randomize_adapter(&m, 5);
    double l_on = loss_of(&m);
    CHECK(model_save(&m, ad_dir, NULL, &e) == 0, "%s: save adapter: %s", fam, e.msg);

    char *st_path = path_join(ad_dir, "adapter_model.safetensors");
    StFile sf;
    if (st_open(&sf, st_path, &e) == 0) {
        const char *a_name = f == FAMILY_GPT2 ? "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"
                                              : "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight";
        const char *b_name = f == FAMILY_GPT2 ? "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"
                                              : "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
        const StTensor *ta = st_find(&sf, a_name), *tb = st_find(&sf, b_name);
        int out = f == FAMILY_GPT2 ? 3 * 16 : 8; /* c_attn 3C; v_proj n_kv * hd */
        CHECK(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 16, "%s: %s missing or not [2, 16]", fam,
              a_name);
        CHECK(tb && tb->ndim == 2 && tb->shape[0] == out && tb->shape[1] == 2, "%s: %s missing or not [%d, 2]", fam,
              b_name, out);
        CHECK(sf.n == 2 * m.lora->n_mods, "%s: expected %d tensors, got %d", fam, 2 * m.lora->n_mods, sf.n);
        st_close(&sf);
    } else {
        CHECK(0, "%s: %s", fam, e.msg);
    }
    free(st_path);
    char *w = path_join(ad_dir, "model.safetensors");
    CHECK(!file_exists(w), "%s: the adapter directory must not hold base weights", fam);
    free(w);

    Model r;
    CHECK(model_load(&r, ad_dir, &e) == 0, "%s: load adapter dir: %s", fam, e.msg);
    if (r.lora) {
        double l_re = loss_of(&r);
        CHECK(l_re == l_on, "%s: reloaded adapter: expected %.17g, got %.17g", fam, l_on, l_re);
        CHECK(r.lora->cfg.rank == 2 && r.lora->cfg.alpha == 4.0f, "%s: rank/alpha not restored (r=%d alpha=%g)", fam,
              r.lora->cfg.rank, (double)r.lora->cfg.alpha);
        model_free(&r);
    } else {
        CHECK(0, "%s: loaded model has no adapter", fam);
    }
    /* malformed adapter directories: each is refused with EX_DATAERR naming the field */
    if (f == FAMILY_LLAMA) test_bad_adapters(ad_dir, base_dir);
    /* resume path: an existing adapter gets its parameters overwritten */
    Model s;
    model_create(&s, &c);
    model_init_random(&s, 3);
    CHECK(lora_attach(&s, &lc, base_dir, 77, &e) == 0, "%s: attach 2: %s", fam, e.msg);
    CHECK(lora_load(&s, ad_dir, &e) == 0, "%s: lora_load into an adapter: %s", fam, e.msg);
    CHECK(loss_of(&s) == l_on, "%s: lora_load did not restore the adapter", fam);
    model_free(&s);
    /* a different rank is refused */
    LoraConfig lc3;
    lora_config_default(&lc3, 3);
    model_create(&s, &c);
    CHECK(lora_attach(&s, &lc3, base_dir, 1, &e) == 0, "%s: attach r3: %s", fam, e.msg);
    CHECK(lora_load(&s, ad_dir, &e) == EX_DATAERR, "%s: a rank-2 adapter loaded into a rank-3 one", fam);
    model_free(&s);

    model_free(&m);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", root);
    free(base_dir);
    free(ad_dir);
}

static void test_targets(void) {
    LoraConfig lc;
    Error e = {0};
    lora_config_default(&lc, 4);
    CHECK(lc.alpha == 8.0f, "default alpha: expected 8 for r=4, got %g", (double)lc.alpha);
    CHECK(lora_targets_parse(&lc, "q,k,v,o,gate,up,down", &e) == 0 && lc.n_targets == 7 &&
              !strcmp(lc.targets[4], "gate_proj"),
          "short target names: %s", e.msg);
    CHECK(lora_targets_parse(&lc, "q,,v", &e) == EX_USAGE, "empty target accepted");
    CHECK(lora_targets_parse(&lc, "q;rm", &e) == EX_USAGE, "bad character accepted");
    ModelConfig c = tiny(FAMILY_GPT2, 0);
    Model m;
    model_create(&m, &c);
    CHECK(lora_targets_parse(&lc, "q_proj", &e) == 0, "parse q_proj");
    int rc = lora_attach(&m, &lc, "", 1, &e);
    CHECK(rc == EX_USAGE && strstr(e.msg, "q_proj") && strstr(e.msg, "c_attn"),
          "q_proj on GPT-2: expected EX_USAGE naming the target and the model's layers, got %d '%s'", rc, e.msg);
    CHECK(m.lora == NULL, "failed attach left an adapter");
    CHECK(lora_targets_parse(&lc, "c_proj", &e) == 0 && lora_attach(&m, &lc, "", 1, &e) == 0, "c_proj: %s", e.msg);
    CHECK(m.lora && m.lora->n_mods == 4, "c_proj matches attn.c_proj and mlp.c_proj in 2 layers: expected 4, got %d",
          m.lora ? m.lora->n_mods : -1);
    model_free(&m);
    model_create(&m, &c);
    CHECK(lora_targets_parse(&lc, "all-linear", &e) == 0 && lora_attach(&m, &lc, "", 1, &e) == 0, "all-linear: %s",
          e.msg);
    CHECK(m.lora && m.lora->n_mods == 8 && m.lora->cfg.n_targets == 3,
          "all-linear on GPT-2: expected 8 modules, 3 names, got %d, %d", m.lora ? m.lora->n_mods : -1,
          m.lora ? m.lora->cfg.n_targets : -1);
    model_free(&m);
}

int main(void) {
    make_batch();
    test_targets();
    test_gradcheck(FAMILY_GPT2, 0, NULL, 0);
    test_gradcheck(FAMILY_GPT2, 0, "all-linear", 0);
    test_gradcheck(FAMILY_LLAMA, 0, "q,k,v,o,gate,up,down", 0);
    test_gradcheck(FAMILY_LLAMA, 1, NULL, 0);
    test_gradcheck(FAMILY_GPT2, 1, "c_fc", 0);
    test_gradcheck(FAMILY_LLAMA, 0, "all-linear", 0.3f); /* dropout: same masks in forward and backward */
    test_gradcheck(FAMILY_GPT2, 0, "c_attn,c_proj", 0.3f);
    /* newer families: PEFT's default targets (Phi-3 qkv_proj, the others q/v) and all-linear */
    test_gradcheck(FAMILY_QWEN2, 0, NULL, 0);
    test_gradcheck(FAMILY_PHI3, 0, NULL, 0);
    test_gradcheck(FAMILY_PHI3, 1, "all-linear", 0);
    test_gradcheck(FAMILY_GEMMA2, 0, "all-linear", 0);
    test_gradcheck(FAMILY_GEMMA3, 1, NULL, 0);
    test_gradcheck(FAMILY_QWEN3, 0, "q,k,v,o,gate,up,down", 0);
    test_files(FAMILY_GPT2);
    test_files(FAMILY_LLAMA);
    if (failures) {
        fprintf(stderr, "test_lora: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_lora: ok\n");
    return 0;
}
