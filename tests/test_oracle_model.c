/* test_oracle_model.c — cherry's model against transformers.
 *
 * For every fixture written by tests/oracle/make_fixtures.py (tiny GPT-2 / Llama
 * models saved by transformers, and models saved by cherry and loaded into
 * transformers), loads the directory with model_load, runs the same batch
 * (right-padded, padding in a segment of its own) and compares, at real positions
 * only: the final hidden states, per-token log-probs and entropies (LM models) or
 * per-token values and the pooled last-token value (classifiers), and the gradient
 * of EVERY parameter for the fixture's loss (sum of w * logp, or u * values).
 * Tolerance: |a - b| <= 1e-4 * max(|b|, floor) with floor = 5e-2 * max|b| of the
 * tensor (the reference is float64, cherry float32).  The worst error per tensor is
 * printed.  The fixtures run twice: with the default attention (the kernel that keeps
 * probabilities at these T) and with the fused one (--attn-implementation flash), whose
 * sliding windows, soft-caps and query scales get negative controls of their own.
 * Also: save/reload round trips (F32 bit-exact, BF16 within rounding) and a sharded
 * copy (model.safetensors.index.json) that must load bit-exactly. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "formats/safetensors.h"
#include "model/model.h"

#define RTOL 1e-4
#define FLOOR_FRAC 5e-2

static int failures;
static int negative_control; /* 1: mismatches are expected and counted, not failures */
static int control_mismatches;
static const char *fixdir = "tests/oracle/fixtures";

/* Compares got[i] to want[i] for i with mask[i] (mask may be NULL); prints the
 * worst error; returns 1 when within tolerance. */
static int compare(const char *fixture, const char *what, const float *got, const float *want, const int *mask,
                   size_t n) {
    double maxabs = 0;
    for (size_t i = 0; i < n; i++)
        if (!mask || mask[i]) maxabs = fmax(maxabs, fabs(want[i]));
    double floor = fmax(FLOOR_FRAC * maxabs, 1e-7);
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        double err = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor);
        if (!(err <= worst)) { /* NaN counts as worst */
            worst = isnan(err) ? INFINITY : err;
            worst_i = i;
        }
    }
    int ok = worst <= RTOL;
    if (negative_control) {
        control_mismatches += !ok;
        return ok;
    }
    printf("%s %-14s %-52s worst rel err %.2e%s\n", ok ? "ok  " : "FAIL", fixture, what, worst,
           ok ? "" : " (tolerance 1e-4)");
    if (!ok) {
        printf("     at element %zu: expected %.9g, got %.9g\n", worst_i, want[worst_i], got[worst_i]);
        failures++;
    }
    return ok;
}

/* Reads a fixture array as float32 (must have numel elements). */
static float *get(const StFile *f, const char *name, size_t numel) {
    const StTensor *t = st_find(f, name);
    if (!t) {
        printf("FAIL %s: fixture has no \"%s\"\n", f->path, name);
        failures++;
        return NULL;
    }
    if (numel && t->numel != numel) {
        printf("FAIL %s: \"%s\" has %zu elements, expected %zu\n", f->path, name, t->numel, numel);
        failures++;
        return NULL;
    }
    float *out = xmalloc(t->numel * sizeof(float) + 4);
    Error e = {0};
    if (st_to_f32(t, out, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        free(out);
        return NULL;
    }
    return out;
}

/* perturb: NULL, or "theta" (rope_theta * 1.001), "no-window" (sliding window off),
 * "no-rope-scaling" (unscaled RoPE frequencies), "attn_softcap" / "final_softcap" /
 * "query_scale" (x 1.01), "+NAME" (first element of tensor NAME + 0.01), or a tensor name whose first element is
 * changed by 1e-3 relative — used by the negative controls. */
static void check_fixture_perturbed(const char *name, const char *perturb);
static void check_fixture(const char *name) {
    check_fixture_perturbed(name, NULL);
}

static void check_fixture_perturbed(const char *name, const char *perturb) {
    char dir[512], exp_path[512];
    snprintf(dir, sizeof dir, "%s/%s", fixdir, name);
    snprintf(exp_path, sizeof exp_path, "%s/%s.safetensors", fixdir, name);
    Error e = {0};
    Model m;
    if (model_load(&m, dir, &e)) {
        printf("FAIL %s: model_load: %s\n", name, e.msg);
        failures++;
        return;
    }
    if (perturb && strcmp(perturb, "theta") == 0) {
        for (int l = 0; l < m.cfg.n_layer; l++) m.w.info[l].rope_theta *= 1.001f;
    } else if (perturb && strcmp(perturb, "no-window") == 0) {
        for (int l = 0; l < m.cfg.n_layer; l++) m.w.info[l].window = 0;
    } else if (perturb && strcmp(perturb, "no-rope-scaling") == 0) {
        for (int l = 0; l < m.cfg.n_layer; l++) m.w.info[l].rope_plain = 1;
    } else if (perturb && strcmp(perturb, "short-factors") == 0) { /* longrope: never the long ones */
        for (int l = 0; l < m.cfg.n_layer; l++) m.w.info[l].inv_freq_long = NULL;
    } else if (perturb && strcmp(perturb, "attn_softcap") == 0) {
        m.cfg.attn_softcap *= 1.01f;
    } else if (perturb && strcmp(perturb, "final_softcap") == 0) {
        m.cfg.final_softcap *= 1.01f;
    } else if (perturb && strcmp(perturb, "query_scale") == 0) {
        m.cfg.query_scale *= 1.01f;
    } else if (perturb && perturb[0] == '+') { /* Gemma's (1 + w) norms: w ~ 0, so add */
        const ParamTensor *pt = model_find_tensor(&m, perturb + 1);
        if (pt) m.params[pt->offset] += 0.01f;
    } else if (perturb) {
        const ParamTensor *pt = model_find_tensor(&m, perturb);
        if (pt) m.params[pt->offset] *= 1.001f;
    }
    StFile f;
    if (st_open(&f, exp_path, &e)) {
        printf("FAIL %s: %s\n", name, e.msg);
        failures++;
        model_free(&m);
        return;
    }
    float *ftok = NULL, *flen = NULL, *ftgt = NULL, *hidden = NULL;
    const StTensor *tt = st_find(&f, "tokens");
    if (!tt || tt->ndim != 2) {
        printf("FAIL %s: no tokens [B,T]\n", exp_path);
        failures++;
        goto out;
    }
    int B = (int)tt->shape[0], T = (int)tt->shape[1], N = B * T, C = m.cfg.d_model;
    ftok = get(&f, "tokens", N), flen = get(&f, "lengths", B), ftgt = get(&f, "targets", N);
    hidden = get(&f, "hidden", (size_t)N * C);
    if (!ftok || !flen || !ftgt || !hidden) goto out;
    int *tok = xmalloc(N * sizeof(int)), *tgt = xmalloc(N * sizeof(int)), *seg = xmalloc(N * sizeof(int));
    int *real = xmalloc(N * sizeof(int)), *realC = xmalloc((size_t)N * C * sizeof(int));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int n = b * T + t;
            tok[n] = (int)ftok[n];
            tgt[n] = (int)ftgt[n];
            real[n] = t < (int)flen[b];
            seg[n] = real[n] ? 0 : 1; /* padding: a segment of its own */
            for (int c = 0; c < C; c++) realC[(size_t)n * C + c] = real[n];
        }
    if (!negative_control)
        printf("---- %s: %s, %d layers, C=%d, heads %d/%d, vocab %d, %s%s (%s)\n", name,
               model_family_name(m.cfg.family), m.cfg.n_layer, C, m.cfg.n_head, m.cfg.n_kv_head, m.cfg.vocab_size,
               m.cfg.is_classifier ? "classifier" : "LM", m.cfg.tie_embeddings ? ", tied" : "",
               st_meta_get(&f, "transformers") ? st_meta_get(&f, "transformers") : "?");

    model_enable_grads(&m);
    model_zero_grad(&m);
    model_forward(&m, tok, NULL, seg, B, T);
    compare(name, "hidden (real positions)", m.hidden, hidden, realC, (size_t)N * C);
    if (m.cfg.is_classifier) {
        float *values = get(&f, "values", N), *pooled = get(&f, "pooled", B), *dv = get(&f, "dvalues", N);
        if (values && pooled && dv) {
            float *got = xmalloc(N * sizeof(float)), gp[64];
            model_values(&m, got);
            compare(name, "values (real positions)", got, values, real, N);
            for (int b = 0; b < B && b < 64; b++) gp[b] = got[b * T + (int)flen[b] - 1];
            compare(name, "pooled value at last real token", gp, pooled, NULL, B);
            model_values_backward(&m, dv);
            free(got);
        }
        free(values);
        free(pooled);
        free(dv);
    } else {
        float *logp = get(&f, "logp", N), *ent = get(&f, "entropy", N), *dl = get(&f, "dlogp", N);
        if (logp && ent && dl) {
            float *gl = xmalloc(N * sizeof(float)), *ge = xmalloc(N * sizeof(float));
            model_logprobs(&m, tgt, gl, ge);
            int *valid = xmalloc(N * sizeof(int));
            for (int n = 0; n < N; n++) valid[n] = tgt[n] >= 0;
            compare(name, "logp of next token", gl, logp, valid, N);
            compare(name, "entropy", ge, ent, valid, N);
            model_logprobs_backward(&m, tgt, dl);
            free(gl);
            free(ge);
            free(valid);
        }
        free(logp);
        free(ent);
        free(dl);
    }
    model_backward(&m);

    /* every parameter has a reference gradient and every reference gradient a parameter */
    int n_ref = 0;
    for (int i = 0; i < f.n; i++) n_ref += strncmp(f.tensors[i].name, "grad.", 5) == 0;
    if (n_ref != m.n_tensors) {
        printf("FAIL %s: %d reference gradients for %d parameters\n", name, n_ref, m.n_tensors);
        failures++;
    }
    for (int i = 0; i < m.n_tensors; i++) {
        const ParamTensor *pt = &m.tensors[i];
        char gname[160];
        snprintf(gname, sizeof gname, "grad.%s", pt->name);
        float *want = get(&f, gname, pt->numel);
        if (!want) continue;
        const float *g = m.grads + pt->offset;
        float *got = (float *)g, *tmp = NULL;
        if (pt->conv1d) { /* reference is transformers' Conv1D layout [in, out] */
            size_t out = (size_t)pt->shape[0], in = (size_t)pt->shape[1];
            got = tmp = xmalloc(pt->numel * sizeof(float));
            for (size_t o = 0; o < out; o++)
                for (size_t r = 0; r < in; r++) tmp[r * out + o] = g[o * in + r];
        }
        char what[200];
        snprintf(what, sizeof what, "d/d %s", pt->name);
        compare(name, what, got, want, NULL, pt->numel);
        free(tmp);
        free(want);
    }
    free(tok);
    free(tgt);
    free(seg);
    free(real);
    free(realC);
out:
    free(ftok);
    free(flen);
    free(ftgt);
    free(hidden);
    st_close(&f);
    model_free(&m);
}

/* The comparison must notice small real differences: a 0.1% change of RoPE's base
 * or of a single weight must make some comparison fail. */
/* A perturbed fixture must fail at least one comparison. */
static void negative_control_case(const char *fixture, const char *perturb) {
    negative_control = 1;
    control_mismatches = 0;
    check_fixture_perturbed(fixture, perturb);
    negative_control = 0;
    int ok = control_mismatches > 0;
    printf("%s %-14s negative control: %s -> %d comparison(s) fail, as they must\n", ok ? "ok  " : "FAIL", fixture,
           perturb, control_mismatches);
    failures += !ok;
}

static void check_negative_controls(void) {
    struct {
        const char *fixture, *perturb;
    } cases[] = {{"model-llama-gqa", "theta"},
                 {"model-llama-gqa", "model.layers.1.self_attn.k_proj.bias"},
                 {"model-gpt2", "transformer.h.0.ln_2.weight"},
                 {"model-gpt2-rm", "score.weight"},
                 {"model-llama-tied", "model.layers.0.mlp.down_proj.weight"},
                 /* every feature of the newer families changes the outputs */
                 {"model-qwen2", "model.layers.0.self_attn.k_proj.bias"},
                 {"model-llama3", "no-rope-scaling"},
                 {"model-llama-linear", "no-rope-scaling"},
                 {"model-mistral", "no-window"},
                 {"model-qwen3", "model.layers.1.self_attn.k_norm.weight"},
                 {"model-gemma2", "no-window"},
                 {"model-gemma2", "attn_softcap"},
                 {"model-gemma2", "final_softcap"},
                 {"model-gemma2", "query_scale"},
                 {"model-gemma2", "+model.layers.0.post_feedforward_layernorm.weight"},
                 {"model-gemma3", "no-window"},
                 {"model-gemma3", "no-rope-scaling"},
                 {"model-gemma3", "+model.layers.2.self_attn.q_norm.weight"},
                 {"model-phi3", "no-window"},
                 {"model-phi3-longrope", "no-rope-scaling"},
                 {"model-qwen3-yarn", "no-rope-scaling"},
                 {"model-phi3-partial", "short-factors"},
                 {"model-phi3-longrope", "short-factors"},
                 {"model-phi3", "model.layers.1.mlp.gate_up_proj.weight"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        negative_control_case(cases[i].fixture, cases[i].perturb);
}

/* The fused attention (model_set_flash_attention 1, --attn-implementation flash)
 * against transformers: every fixture again, and the negative controls of the
 * attention options, which must fail with the fused kernel too (it honours them). */
static void check_fused_attention(const char *const *names, size_t n) {
    static const char *const controls[][2] = {{"model-mistral", "no-window"},   {"model-gemma2", "no-window"},
                                              {"model-gemma2", "attn_softcap"}, {"model-gemma2", "query_scale"},
                                              {"model-gemma3", "no-window"},    {"model-phi3", "no-window"}};
    model_set_flash_attention(1);
    printf("==== the fused attention (model_set_flash_attention 1)\n");
    for (size_t i = 0; i < n; i++) check_fixture(names[i]);
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++)
        negative_control_case(controls[i][0], controls[i][1]);
    model_set_flash_attention(-1);
}

/* Save (F32, BF16) and reload; write a two-shard copy with an index and reload. */
static void check_round_trips(const char *name, const char *tmpdir) {
    char dir[512], out[600];
    snprintf(dir, sizeof dir, "%s/%s", fixdir, name);
    Error e = {0};
    Model m, r;
    if (model_load(&m, dir, &e)) {
        printf("FAIL %s: %s\n", name, e.msg);
        failures++;
        return;
    }
    snprintf(out, sizeof out, "%s/%s-f32", tmpdir, name);
    if (model_save(&m, out, dir, &e) || model_load(&r, out, &e)) {
        printf("FAIL %s: save/reload F32: %s\n", name, e.msg);
        failures++;
    } else {
        int same = r.n_params == m.n_params && memcmp(r.params, m.params, m.n_params * sizeof(float)) == 0 &&
                   memcmp(&r.cfg, &m.cfg, sizeof m.cfg) == 0;
        printf("%s %-14s save + reload F32: parameters and config %s\n", same ? "ok  " : "FAIL", name,
               same ? "bit-identical" : "DIFFER");
        failures += !same;
        model_free(&r);
    }
    snprintf(out, sizeof out, "%s/%s-bf16", tmpdir, name);
    if (model_save_dtype(&m, out, NULL, ST_BF16, &e) || model_load(&r, out, &e)) {
        printf("FAIL %s: save/reload BF16: %s\n", name, e.msg);
        failures++;
    } else {
        double worst = 0;
        for (size_t i = 0; i < m.n_params; i++)
            worst = fmax(worst, fabs(r.params[i] - m.params[i]) / fmax(fabs(m.params[i]), 1e-30));
        int ok = worst <= 1.0 / 256;
        printf("%s %-14s save + reload BF16: worst relative error %.2e (bf16 rounding <= 3.9e-03)\n",
               ok ? "ok  " : "FAIL", name, worst);
        failures += !ok;
        model_free(&r);
    }

    /* sharded: tensors alternately in two files, plus the index transformers writes */
    snprintf(out, sizeof out, "%s/%s-sharded", tmpdir, name);
    mkdir_p(out, &e);
    char path[700], *cfg_src = path_join(dir, "config.json");
    snprintf(path, sizeof path, "%s/config.json", out);
    copy_file(cfg_src, path, &e);
    free(cfg_src);
    StFile src;
    if (st_open(&src, (snprintf(path, sizeof path, "%s/model.safetensors", dir), path), &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        model_free(&m);
        return;
    }
    StWriter w[2];
    float **bufs = xcalloc((size_t)src.n, sizeof(float *));
    st_writer_init(&w[0]);
    st_writer_init(&w[1]);
    FILE *idx = fopen((snprintf(path, sizeof path, "%s/model.safetensors.index.json", out), path), "w");
    fprintf(idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < src.n; i++) {
        const StTensor *t = &src.tensors[i];
        bufs[i] = xmalloc(t->numel * sizeof(float) + 4);
        st_to_f32(t, bufs[i], &e);
        st_writer_add(&w[i % 2], t->name, bufs[i], t->ndim, t->shape);
        fprintf(idx, "%s\"%s\": \"model-%05d-of-00002.safetensors\"", i ? ", " : "", t->name, i % 2 + 1);
    }
    fprintf(idx, "}}\n");
    fclose(idx);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-00002.safetensors", out, k + 1);
        if (st_writer_write(&w[k], path, ST_F32, &e)) printf("FAIL %s\n", e.msg), failures++;
        st_writer_free(&w[k]);
    }
    for (int i = 0; i < src.n; i++) free(bufs[i]);
    free(bufs);
    st_close(&src);
    if (model_load(&r, out, &e)) {
        printf("FAIL %s: sharded load: %s\n", name, e.msg);
        failures++;
    } else {
        int same = memcmp(r.params, m.params, m.n_params * sizeof(float)) == 0;
        printf("%s %-14s two-shard copy with index: parameters %s\n", same ? "ok  " : "FAIL", name,
               same ? "bit-identical" : "DIFFER");
        failures += !same;
        model_free(&r);
    }
    model_free(&m);
}

/* Checkpoints in the other spellings transformers accepts must load to the same
 * parameters: GPT-2 names without "transformer." (as GPT2Model saves them, e.g. the
 * original openai-community/gpt2 file) plus the attn.bias / attn.masked_bias buffers
 * and a stored copy of the tied lm_head; Llama with rotary_emb.inv_freq buffers. */
static void check_other_spellings(const char *name, const char *tmpdir) {
    char dir[512], out[600], path[700];
    snprintf(dir, sizeof dir, "%s/%s", fixdir, name);
    snprintf(out, sizeof out, "%s/%s-spelling", tmpdir, name);
    Error e = {0};
    Model m, r;
    if (model_load(&m, dir, &e)) {
        printf("FAIL %s: %s\n", name, e.msg);
        failures++;
        return;
    }
    mkdir_p(out, &e);
    char *cfg_src = path_join(dir, "config.json");
    snprintf(path, sizeof path, "%s/config.json", out);
    copy_file(cfg_src, path, &e);
    free(cfg_src);
    StFile src;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st_open(&src, path, &e)) {
        printf("FAIL %s\n", e.msg);
        failures++;
        model_free(&m);
        return;
    }
    StWriter w;
    st_writer_init(&w);
    float **bufs = xcalloc((size_t)src.n, sizeof(float *));
    static float mask[16 * 16], inv_freq[4];
    int64_t mshape[4] = {1, 1, 16, 16}, fshape[1] = {4};
    const float *wte = NULL;
    int64_t wte_shape[2] = {0, 0};
    for (int i = 0; i < src.n; i++) {
        const StTensor *t = &src.tensors[i];
        bufs[i] = xmalloc(t->numel * sizeof(float) + 4);
        st_to_f32(t, bufs[i], &e);
        const char *nm = t->name;
        if (strncmp(nm, "transformer.", 12) == 0) nm += 12;
        st_writer_add(&w, nm, bufs[i], t->ndim, t->shape);
        if (strstr(nm, "wte.weight")) wte = bufs[i], wte_shape[0] = t->shape[0], wte_shape[1] = t->shape[1];
    }
    if (m.cfg.family == FAMILY_GPT2) {
        st_writer_add(&w, "h.0.attn.bias", mask, 4, mshape);
        st_writer_add(&w, "h.1.attn.masked_bias", mask, 0, NULL);
        if (m.cfg.tie_embeddings && wte) st_writer_add(&w, "lm_head.weight", wte, 2, wte_shape);
    } else {
        st_writer_add(&w, "model.layers.0.self_attn.rotary_emb.inv_freq", inv_freq, 1, fshape);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (st_writer_write(&w, path, ST_F32, &e)) printf("FAIL %s\n", e.msg), failures++;
    st_writer_free(&w);
    for (int i = 0; i < src.n; i++) free(bufs[i]);
    free(bufs);
    st_close(&src);
    if (model_load(&r, out, &e)) {
        printf("FAIL %s: other spelling: %s\n", name, e.msg);
        failures++;
    } else {
        int same = r.n_params == m.n_params && memcmp(r.params, m.params, m.n_params * sizeof(float)) == 0;
        printf("%s %-14s %s: parameters %s\n", same ? "ok  " : "FAIL", name,
               m.cfg.family == FAMILY_GPT2 ? "names without transformer., buffers, tied lm_head copy"
                                           : "rotary_emb.inv_freq buffer",
               same ? "bit-identical" : "DIFFER");
        failures += !same;
        model_free(&r);
    }
    model_free(&m);
}

/* Same seed, same input -> same outputs bit for bit (two forwards and backwards). */
static void check_determinism(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", fixdir, name);
    Error e = {0};
    Model m;
    if (model_load(&m, dir, &e)) return;
    int B = 2, T = 7, N = B * T, tok[14], tgt[14], V = m.cfg.vocab_size - 3;
    for (int n = 0; n < N; n++) tok[n] = 3 + (n * 37) % V, tgt[n] = (n % T == T - 1) ? -1 : 3 + ((n + 1) * 37) % V;
    float lp[2][14], *g[2];
    model_enable_grads(&m);
    for (int rep = 0; rep < 2; rep++) {
        model_zero_grad(&m);
        model_forward(&m, tok, NULL, NULL, B, T);
        float dl[14];
        for (int n = 0; n < N; n++) dl[n] = 1.0f;
        model_logprobs(&m, tgt, lp[rep], NULL);
        model_logprobs_backward(&m, tgt, dl);
        model_backward(&m);
        g[rep] = xmalloc(m.n_params * sizeof(float));
        memcpy(g[rep], m.grads, m.n_params * sizeof(float));
        if (rep == 0) { /* a larger, differently shaped batch in between: buffers are reused */
            int big[30];
            for (int n = 0; n < 30; n++) big[n] = 3 + (n * 11) % V;
            model_forward(&m, big, NULL, NULL, 1, 30);
            model_backward(&m);
        }
    }
    int same = memcmp(lp[0], lp[1], sizeof lp[0]) == 0 && memcmp(g[0], g[1], m.n_params * sizeof(float)) == 0;
    printf("%s %-14s repeated forward/backward bit-identical (another shape in between)\n", same ? "ok  " : "FAIL",
           name);
    failures += !same;

    /* Packing: both rows of the batch in ONE row, positions restarting and a segment
     * id each, must give the same log-probs as two rows (segments isolate them). */
    int ppos[14], pseg[14];
    for (int n = 0; n < N; n++) ppos[n] = n % T, pseg[n] = n / T;
    float packed[14];
    model_forward(&m, tok, ppos, pseg, 1, N);
    model_logprobs(&m, tgt, packed, NULL);
    compare(name, "packed row (pos restart, 2 segments) = 2 rows", packed, lp[0], NULL, N);
    free(g[0]);
    free(g[1]);
    model_free(&m);
}

int main(int argc, char **argv) {
    if (getenv("ORACLE_FIXTURES")) fixdir = getenv("ORACLE_FIXTURES");
    if (argc > 1) fixdir = argv[1];
    static const char *const names[] = {
        "model-gpt2", "model-gpt2-untied", "model-llama-gqa", "model-llama-tied", "model-gpt2-rm", "model-llama-rm",
        /* tests/oracle/make_family_fixtures.py */
        "model-qwen2", "model-qwen2-rm", "model-llama3", "model-llama-linear", "model-mistral", "model-mistral-rm",
        "model-qwen3", "model-qwen3-rm", "model-gemma2", "model-gemma2-rm", "model-gemma3", "model-gemma3-rm",
        "model-phi3", "model-phi3-rm", "model-phi3-longrope", "model-qwen3-yarn", "model-phi3-partial"};
    char probe[600];
    snprintf(probe, sizeof probe, "%s/model-gpt2/config.json", fixdir);
    if (!file_exists(probe)) {
        printf("fixtures not found in %s (run from the source root)\n", fixdir);
        return 1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_fixture(names[i]);
    /* models written by cherry and read back by transformers */
    int n_saved = 0;
    DIR *d = opendir(fixdir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strncmp(de->d_name, "cherry-saved-", 13) == 0 && !strchr(de->d_name, '.')) {
            check_fixture(de->d_name);
            n_saved++;
        }
    if (d) closedir(d);
    if (n_saved == 0) {
        printf("FAIL no cherry-saved-* fixtures in %s\n", fixdir);
        failures++;
    }
    char tmpdir[128];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cherry-test-oracle-%ld", (long)getpid());
    Error e = {0};
    mkdir_p(tmpdir, &e);
    check_negative_controls();
    check_fused_attention(names, sizeof names / sizeof names[0]);
    check_round_trips("model-gpt2", tmpdir);
    check_round_trips("model-llama-gqa", tmpdir);
    check_round_trips("model-llama-rm", tmpdir);
    const char *rt[] = {"model-qwen2", "model-qwen2-rm", "model-llama3",       "model-mistral",
                        "model-qwen3", "model-gemma2",   "model-gemma3",       "model-gemma3-rm",
                        "model-phi3",  "model-phi3-rm",  "model-phi3-longrope"};
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) check_round_trips(rt[i], tmpdir);
    check_other_spellings("model-gpt2", tmpdir);
    check_other_spellings("model-llama-tied", tmpdir);
    check_determinism("model-llama-gqa");
    check_determinism("model-gpt2");
    check_determinism("model-gemma2");
    check_determinism("model-phi3");
    remove_tree(tmpdir);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all model oracle checks passed\n");
    return 0;
}
