/* lora.c — LoRA adapters: attach, forward/backward hooks, merge, PEFT files.
 * See lora.h for the formulas and the file format. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "gemm.h"
#include "lora.h"
#include "ops.h"
#include "util.h"

#define PEFT_PREFIX "base_model.model."

void lora_config_default(LoraConfig *cfg, int rank) {
    memset(cfg, 0, sizeof *cfg);
    cfg->rank = rank;
    cfg->alpha = 2.0f * (float)rank;
}

static int add_target(LoraConfig *cfg, const char *name, Error *e) {
    for (int i = 0; i < cfg->n_targets; i++)
        if (!strcmp(cfg->targets[i], name)) return 0;
    if (cfg->n_targets >= LORA_MAX_TARGETS)
        return err_set(e, EX_USAGE, "--lora-targets: more than %d module names", LORA_MAX_TARGETS);
    if (strlen(name) >= sizeof cfg->targets[0])
        return err_set(e, EX_USAGE, "--lora-targets: module name '%s' is too long", name);
    snprintf(cfg->targets[cfg->n_targets++], sizeof cfg->targets[0], "%s", name);
    return 0;
}

int lora_targets_parse(LoraConfig *cfg, const char *list, Error *e) {
    static const char *shorts[][2] = {{"q", "q_proj"},       {"k", "k_proj"},   {"v", "v_proj"},      {"o", "o_proj"},
                                      {"gate", "gate_proj"}, {"up", "up_proj"}, {"down", "down_proj"}};
    cfg->n_targets = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        if (len == 0 || len >= sizeof name)
            return err_set(e, EX_USAGE, "--lora-targets: empty or too long module name in '%s'", list);
        memcpy(name, p, len);
        name[len] = 0;
        for (size_t i = 0; i < len; i++)
            if (!(name[i] == '_' || name[i] == '-' || name[i] == '.' || (name[i] >= 'a' && name[i] <= 'z') ||
                  (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9')))
                return err_set(e, EX_USAGE, "--lora-targets: bad module name '%s'", name);
        const char *full = name;
        for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
            if (!strcmp(name, shorts[i][0])) full = shorts[i][1];
        int rc = add_target(cfg, full, e);
        if (rc) return rc;
        p += len;
        if (*p == ',') p++;
    }
    if (cfg->n_targets == 0) return err_set(e, EX_USAGE, "--lora-targets: no module names in '%s'", list);
    return 0;
}

/* A linear layer of a block: a 2-D ".weight" inside transformer.h.N / model.layers.N. */
static int is_block_linear(const ParamTensor *t) {
    size_t n = strlen(t->name);
    if (t->ndim != 2 || n < 8 || strcmp(t->name + n - 7, ".weight") != 0) return 0;
    return strstr(t->name, ".h.") != NULL || strstr(t->name, ".layers.") != NULL;
}

/* PEFT check_target_module_exists for a list: key == target or key ends with "." + target. */
static int target_matches(const char *path, const char *target) {
    size_t lp = strlen(path), lt = strlen(target);
    if (!strcmp(path, target)) return 1;
    return lp > lt && path[lp - lt - 1] == '.' && !strcmp(path + lp - lt, target);
}

static const char *leaf_name(const char *path) {
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

/* Builds the modules of m for cfg (targets already defaulted); no parameters yet. */
static int lora_build(Model *m, const LoraConfig *cfg, Error *e) {
    Lora *L = xcalloc(1, sizeof *L);
    L->cfg = *cfg;
    int all = cfg->n_targets == 1 && !strcmp(cfg->targets[0], "all-linear");
    L->mod_of = xmalloc((size_t)m->n_tensors * sizeof(int));
    int *hits = xcalloc(LORA_MAX_TARGETS, sizeof(int));
    char avail[256] = "";
    for (int i = 0; i < m->n_tensors; i++) {
        L->mod_of[i] = -1;
        const ParamTensor *t = &m->tensors[i];
        if (!is_block_linear(t)) continue;
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)(strlen(t->name) - 7), t->name);
        const char *leaf = leaf_name(path);
        if (!strstr(avail, leaf) && strlen(avail) + strlen(leaf) + 3 < sizeof avail) {
            if (*avail) strcat(avail, ", ");
            strcat(avail, leaf);
        }
        int match = all;
        for (int k = 0; k < cfg->n_targets && !all; k++)
            if (target_matches(path, cfg->targets[k])) match = 1, hits[k]++;
        if (!match) continue;
        L->mods = xrealloc(L->mods, (size_t)(L->n_mods + 1) * sizeof *L->mods);
        LoraModule *md = &L->mods[L->n_mods];
        memset(md, 0, sizeof *md);
        md->base = i;
        md->out = (int)t->shape[0];
        md->in = (int)t->shape[1];
        snprintf(md->path, sizeof md->path, "%s", path);
        L->mod_of[i] = L->n_mods++;
    }
    for (int k = 0; k < cfg->n_targets && !all; k++)
        if (!hits[k]) {
            int rc = err_set(e, EX_USAGE, "LoRA target '%s' matches no linear layer of this %s model (it has: %s)",
                             cfg->targets[k], model_family_name(m->cfg.family), avail);
            free(hits);
            free(L->mod_of);
            free(L->mods);
            free(L);
            return rc;
        }
    free(hits);
    if (all) {
        /* record the leaf names actually adapted, as PEFT expands "all-linear" */
        L->cfg.n_targets = 0;
        for (int j = 0; j < L->n_mods; j++) (void)add_target(&L->cfg, leaf_name(L->mods[j].path), e);
    }
    size_t r = (size_t)cfg->rank, at = 0;
    for (int j = 0; j < L->n_mods; j++) {
        L->mods[j].a_off = at;
        at += r * (size_t)L->mods[j].in;
        L->mods[j].b_off = at;
        at += (size_t)L->mods[j].out * r;
    }
    const ParamTensor *score = model_find_tensor(m, "score.weight");
    if (m->cfg.is_classifier && score) {
        L->score = 1;
        L->score_off = at;
        at += score->numel;
    }
    L->n_params = at;
    L->params = xcalloc(at ? at : 1, sizeof(float));
    L->scale = cfg->rslora ? cfg->alpha / sqrtf((float)cfg->rank) : cfg->alpha / (float)cfg->rank;
    L->enabled = 1;
    m->lora = L;
    return 0;
}

int lora_attach(Model *m, const LoraConfig *cfg_in, const char *base_dir, uint64_t seed, Error *e) {
    if (m->lora) return err_set(e, EX_SOFTWARE, "lora_attach: the model already has an adapter");
    if (cfg_in->rank < 1) return err_set(e, EX_USAGE, "--lora-rank: must be >= 1, got %d", cfg_in->rank);
    LoraConfig cfg = *cfg_in;
    if (cfg.n_targets == 0) {
        /* PEFT TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING */
        if (m->cfg.family == FAMILY_GPT2) {
            snprintf(cfg.targets[0], sizeof cfg.targets[0], "c_attn");
            cfg.n_targets = 1;
        } else {
            snprintf(cfg.targets[0], sizeof cfg.targets[0], "q_proj");
            snprintf(cfg.targets[1], sizeof cfg.targets[1], "v_proj");
            cfg.n_targets = 2;
        }
    }
    int rc = lora_build(m, &cfg, e);
    if (rc) return rc;
    Lora *L = m->lora;
    /* PEFT reset_lora_parameters: nn.init.kaiming_uniform_(A, a=sqrt(5)); gain =
     * sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in) = 1/sqrt(in);
     * B = 0.  One RNG for the whole adapter, modules in layout order. */
    Rng rng;
    rng_seed(&rng, seed ^ 0x6c6f7261696e6974ULL); /* "lorainit" */
    for (int j = 0; j < L->n_mods; j++) {
        float bound = 1.0f / sqrtf((float)L->mods[j].in);
        float *A = L->params + L->mods[j].a_off;
        for (size_t i = 0; i < (size_t)cfg.rank * L->mods[j].in; i++) A[i] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
    }
    if (L->score) {
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        memcpy(L->params + L->score_off, m->params + s->offset, s->numel * sizeof(float));
    }
    L->base_dir = xstrdup(base_dir ? base_dir : "");
    free(m->grads); /* the base is frozen */
    m->grads = NULL;
    return 0;
}

void lora_free(Model *m) {
    Lora *L = m->lora;
    if (!L) return;
    free(L->mods);
    free(L->mod_of);
    free(L->params);
    free(L->grads);
    free(L->xa);
    free(L->dxa);
    free(L->base_dir);
    free(L);
    m->lora = NULL;
}

void lora_set_enabled(Model *m, int on) {
    if (m->lora) m->lora->enabled = on != 0;
}

void lora_describe(const Model *m, char *buf, size_t n) {
    const Lora *L = m->lora;
    if (!L) {
        snprintf(buf, n, "no adapter");
        return;
    }
    char names[256] = "";
    for (int k = 0; k < L->cfg.n_targets; k++) {
        if (strlen(names) + strlen(L->cfg.targets[k]) + 3 >= sizeof names) break;
        if (k) strcat(names, ", ");
        strcat(names, L->cfg.targets[k]);
    }
    snprintf(buf, n, "LoRA r=%d alpha=%g on %d modules (%s)%s: %zu trainable parameters of %zu (%.3f%%)", L->cfg.rank,
             (double)L->cfg.alpha, L->n_mods, names, L->score ? " + score head" : "", L->n_params,
             L->n_params + m->n_params, 100.0 * (double)L->n_params / (double)(L->n_params + m->n_params));
}

/* ---- hooks ---- */

void lora_forward_begin(Model *m, int N) {
    Lora *L = m->lora;
    if (!L) return;
    L->fwd_on = L->enabled;
    L->N = N;
    if (!L->enabled) return;
    size_t need = (size_t)L->n_mods * N * L->cfg.rank;
    if (need > L->xa_cap) {
        free(L->xa);
        L->xa = xaligned_alloc((need ? need : 1) * sizeof(float));
        L->xa_cap = need;
    }
}

void lora_linear_forward(Model *m, int tensor, float *out, const float *inp, int N) {
    Lora *L = m->lora;
    if (!L || !L->fwd_on) return;
    int j = L->mod_of[tensor];
    if (j < 0) return;
    if (N != L->N) die_internal("lora_linear_forward: %d rows, the forward has %d", N, L->N);
    const LoraModule *md = &L->mods[j];
    int r = L->cfg.rank;
    float *xa = L->xa + (size_t)j * N * r;
    /* xa[N, r] = inp[N, in] @ A^T;  out[N, out] += scale * xa @ B^T */
    linear_forward(xa, inp, L->params + md->a_off, NULL, N, md->in, r);
    gemm(0, 1, N, md->out, r, L->scale, xa, r, L->params + md->b_off, r, 1.0f, out, md->out);
}

void lora_linear_backward(Model *m, int tensor, float *dinp, const float *dout, const float *inp, int N) {
    Lora *L = m->lora;
    if (!L || !L->fwd_on) return;
    int j = L->mod_of[tensor];
    if (j < 0) return;
    if (!L->grads) die_internal("lora_linear_backward: call model_enable_grads first");
    const LoraModule *md = &L->mods[j];
    int r = L->cfg.rank;
    const float *xa = L->xa + (size_t)j * N * r;
    const float *A = L->params + md->a_off, *B = L->params + md->b_off;
    float *dA = L->grads + md->a_off, *dB = L->grads + md->b_off;
    size_t need = (size_t)N * r;
    if (need > L->dxa_cap) {
        free(L->dxa);
        L->dxa = xaligned_alloc(need * sizeof(float));
        L->dxa_cap = need;
    }
    /* with y = scale * xa B^T and xa = inp A^T:
     *   dB  += scale * dout^T @ xa          [out, r]
     *   dxa  = scale * dout @ B             [N, r]
     *   dA  += dxa^T @ inp                  [r, in]
     *   dinp += dxa @ A                     [N, in] */
    gemm(1, 0, md->out, r, N, L->scale, dout, md->out, xa, r, 1.0f, dB, r);
    gemm(0, 0, N, r, md->out, L->scale, dout, md->out, B, r, 0.0f, L->dxa, r);
    gemm(1, 0, r, md->in, N, 1.0f, L->dxa, r, inp, md->in, 1.0f, dA, md->in);
    if (dinp) gemm(0, 0, N, md->in, r, 1.0f, L->dxa, r, A, md->in, 1.0f, dinp, md->in);
}

float *lora_score_weight(const Model *m) {
    const Lora *L = m->lora;
    return L && L->score && L->enabled ? L->params + L->score_off : NULL;
}

float *lora_score_grad(const Model *m) {
    const Lora *L = m->lora;
    return L && L->score && L->fwd_on && L->grads ? L->grads + L->score_off : NULL;
}

/* ---- merge ---- */

static void merge_into(Model *m) {
    Lora *L = m->lora;
    for (int j = 0; j < L->n_mods; j++) {
        const LoraModule *md = &L->mods[j];
        float *W = m->params + m->tensors[md->base].offset;
        /* W[out, in] += scale * B[out, r] @ A[r, in] (PEFT get_delta_weight; for Conv1D
         * PEFT transposes the delta to its [in, out] weight: the same sum here) */
        gemm(0, 0, md->out, md->in, L->cfg.rank, L->scale, L->params + md->b_off, L->cfg.rank, L->params + md->a_off,
             md->in, 1.0f, W, md->in);
    }
    if (L->score) {
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        memcpy(m->params + s->offset, L->params + L->score_off, s->numel * sizeof(float));
    }
}

void lora_merge(Model *m) {
    if (!m->lora) return;
    merge_into(m);
    lora_free(m);
}

float *lora_merge_temporary(Model *m) {
    Lora *L = m->lora;
    if (!L) return NULL;
    size_t n = 0;
    for (int j = 0; j < L->n_mods; j++) n += m->tensors[L->mods[j].base].numel;
    const ParamTensor *s = L->score ? model_find_tensor(m, "score.weight") : NULL;
    if (s) n += s->numel;
    float *saved = xmalloc((n ? n : 1) * sizeof(float)), *p = saved;
    for (int j = 0; j < L->n_mods; j++) {
        const ParamTensor *t = &m->tensors[L->mods[j].base];
        memcpy(p, m->params + t->offset, t->numel * sizeof(float));
        p += t->numel;
    }
    if (s) memcpy(p, m->params + s->offset, s->numel * sizeof(float));
    if (L->enabled) merge_into(m);
    return saved;
}

void lora_unmerge(Model *m, float *saved) {
    Lora *L = m->lora;
    if (!L || !saved) return;
    const float *p = saved;
    for (int j = 0; j < L->n_mods; j++) {
        const ParamTensor *t = &m->tensors[L->mods[j].base];
        memcpy(m->params + t->offset, p, t->numel * sizeof(float));
        p += t->numel;
    }
    const ParamTensor *s = L->score ? model_find_tensor(m, "score.weight") : NULL;
    if (s) memcpy(m->params + s->offset, p, s->numel * sizeof(float));
    free(saved);
}

/* ---- files ---- */

int lora_dir_has_adapter(const char *dir) {
    char *p = path_join(dir, "adapter_config.json");
    int r = file_exists(p);
    free(p);
    return r;
}

static int dir_has_weights(const char *dir) {
    char *a = path_join(dir, "model.safetensors"), *b = path_join(dir, "model.safetensors.index.json");
    int r = file_exists(a) || file_exists(b);
    free(a);
    free(b);
    return r;
}

static int read_adapter_config(const char *dir, json_t **out, char **path_out, Error *e) {
    char *path = path_join(dir, "adapter_config.json");
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, e);
    if (rc) {
        free(path);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) {
        rc = err_set(e, EX_DATAERR, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
        free(path);
        return rc;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        rc = err_set(e, EX_DATAERR, "%s:1: expected a JSON object", path);
        free(path);
        return rc;
    }
    *out = root;
    *path_out = path;
    return 0;
}

int lora_base_dir(const char *dir, char **base, Error *e) {
    if (dir_has_weights(dir)) {
        *base = xstrdup(dir);
        return 0;
    }
    json_t *root;
    char *path;
    int rc = read_adapter_config(dir, &root, &path, e);
    if (rc) return rc;
    json_t *b = json_object_get(root, "base_model_name_or_path");
    if (!json_is_string(b) || !*json_string_value(b)) {
        rc = err_set(e, EX_DATAERR,
                     "%s: no model weights beside the adapter and no base model (field \"base_model_name_or_path\")",
                     path);
    } else {
        const char *s = json_string_value(b);
        *base = s[0] == '/' ? xstrdup(s) : path_join(dir, s);
        if (!dir_has_weights(*base)) {
            rc = err_set(e, EX_NOINPUT,
                         "%s: base model '%s' (field \"base_model_name_or_path\") is not a model directory here; "
                         "a Hub name must be downloaded first",
                         path, s);
            free(*base);
            *base = NULL;
        }
    }
    json_decref(root);
    free(path);
    return rc;
}

/* Parses adapter_config.json into cfg; rejects what cherry cannot apply exactly. */
static int parse_adapter_config(json_t *root, const char *path, LoraConfig *cfg, char **base, Error *e) {
    lora_config_default(cfg, 0);
    json_t *v = json_object_get(root, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0)
        return err_set(e, EX_DATAERR, "%s: only LoRA adapters are supported (field \"peft_type\" must be \"LORA\")",
                       path);
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
        return err_set(e, EX_DATAERR, "%s: expected a rank between 1 and 65536 (field \"r\")", path);
    cfg->rank = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (!json_is_number(v)) return err_set(e, EX_DATAERR, "%s: expected a number (field \"lora_alpha\")", path);
    cfg->alpha = (float)json_number_value(v);
    v = json_object_get(root, "use_rslora");
    cfg->rslora = json_is_true(v);
    v = json_object_get(root, "use_dora");
    if (json_is_true(v))
        return err_set(e, EX_DATAERR, "%s: DoRA adapters are not supported (field \"use_dora\")", path);
    v = json_object_get(root, "bias");
    if (v && !json_is_null(v) && !(json_is_string(v) && !strcmp(json_string_value(v), "none")))
        return err_set(e, EX_DATAERR, "%s: only bias \"none\" is supported (field \"bias\")", path);
    /* settings that change which weights are adapted or how: refused rather than
     * silently ignored (null, false, {} and [] mean "not used") */
    const char *unsupported[] = {
        "layers_to_transform", "rank_pattern", "alpha_pattern",           "exclude_modules", "layer_replication",
        "target_parameters",   "lora_bias",    "trainable_token_indices", "use_qalora",      "alora_invocation_tokens"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        v = json_object_get(root, unsupported[i]);
        if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_object(v) && json_object_size(v) == 0) &&
            !(json_is_array(v) && json_array_size(v) == 0))
            return err_set(e, EX_DATAERR, "%s: this LoRA variant is not supported (field \"%s\")", path,
                           unsupported[i]);
    }
    v = json_object_get(root, "target_modules");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(e, EX_DATAERR,
                       "%s: expected a list of module names (field \"target_modules\"; regular expressions are not "
                       "supported)",
                       path);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it))
            return err_set(e, EX_DATAERR, "%s: expected strings (field \"target_modules\"[%zu])", path, i);
        int rc = add_target(cfg, json_string_value(it), e);
        if (rc) return err_prefix(e, "%s", path);
    }
    v = json_object_get(root, "base_model_name_or_path");
    *base = json_is_string(v) ? xstrdup(json_string_value(v)) : xstrdup("");
    return 0;
}

static char *peft_name(const char *path, const char *what) {
    size_t n = strlen(PEFT_PREFIX) + strlen(path) + strlen(what) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, PEFT_PREFIX "%s.%s", path, what);
    return s;
}

static int read_tensor(const StFile *f, const char *name, int64_t d0, int64_t d1, float *dst, int *used, Error *e) {
    const StTensor *t = st_find(f, name);
    if (!t) return err_set(e, EX_DATAERR, "%s: missing tensor \"%s\"", f->path, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\" has the wrong shape (expected [%lld, %lld])", f->path, name,
                       (long long)d0, (long long)d1);
    (*used)++;
    return st_to_f32(t, dst, e);
}

int lora_load(Model *m, const char *dir, Error *e) {
    json_t *root;
    char *cpath;
    int rc = read_adapter_config(dir, &root, &cpath, e);
    if (rc) return rc;
    LoraConfig cfg;
    char *base = NULL;
    rc = parse_adapter_config(root, cpath, &cfg, &base, e);
    json_decref(root);
    if (rc) {
        free(cpath);
        free(base);
        return rc;
    }
    int fresh = m->lora == NULL;
    if (fresh) {
        rc = lora_build(m, &cfg, e);
        if (rc) err_prefix(e, "%s", cpath);
        if (!rc) m->lora->base_dir = xstrdup(base);
    } else {
        /* resume: the adapter must have the same shape as the one being trained */
        Lora *L = m->lora;
        int same = L->cfg.rank == cfg.rank && L->cfg.n_targets == cfg.n_targets;
        for (int k = 0; same && k < cfg.n_targets; k++) same = !strcmp(L->cfg.targets[k], cfg.targets[k]);
        if (!same)
            rc = err_set(e, EX_DATAERR, "%s: adapter (r=%d) differs from the one being trained (r=%d, targets)", cpath,
                         cfg.rank, L->cfg.rank);
    }
    free(base);
    free(cpath);
    if (rc) return rc;
    Lora *L = m->lora;
    char *wpath = path_join(dir, "adapter_model.safetensors");
    StFile f;
    rc = st_open(&f, wpath, e);
    free(wpath);
    if (rc) {
        if (fresh) lora_free(m);
        return rc;
    }
    int used = 0;
    for (int j = 0; j < L->n_mods && !rc; j++) {
        const LoraModule *md = &L->mods[j];
        char *na = peft_name(md->path, "lora_A.weight"), *nb = peft_name(md->path, "lora_B.weight");
        rc = read_tensor(&f, na, L->cfg.rank, md->in, L->params + md->a_off, &used, e);
        if (!rc) rc = read_tensor(&f, nb, md->out, L->cfg.rank, L->params + md->b_off, &used, e);
        free(na);
        free(nb);
    }
    if (!rc && L->score) {
        const StTensor *t = st_find(&f, PEFT_PREFIX "score.weight");
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        if (t) {
            rc = read_tensor(&f, PEFT_PREFIX "score.weight", s->shape[0], s->shape[1], L->params + L->score_off, &used,
                             e);
        } else {
            memcpy(L->params + L->score_off, m->params + s->offset, s->numel * sizeof(float));
        }
    }
    if (!rc && used != f.n) {
        for (int i = 0; i < f.n; i++) {
            const char *nm = f.tensors[i].name;
            int known = 0;
            for (int j = 0; j < L->n_mods && !known; j++) {
                char *na = peft_name(L->mods[j].path, "lora_A.weight"),
                     *nb = peft_name(L->mods[j].path, "lora_B.weight");
                known = !strcmp(nm, na) || !strcmp(nm, nb);
                free(na);
                free(nb);
            }
            if (L->score && !strcmp(nm, PEFT_PREFIX "score.weight")) known = 1;
            if (!known) {
                rc = err_set(e, EX_DATAERR, "%s: unexpected tensor \"%s\" (not a LoRA weight of the targets)", f.path,
                             nm);
                break;
            }
        }
    }
    st_close(&f);
    if (rc && fresh) lora_free(m);
    if (!rc && fresh) {
        free(m->grads);
        m->grads = NULL;
    }
    return rc;
}

int lora_save(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e) {
    const Lora *L = m->lora;
    if (!L) return err_set(e, EX_SOFTWARE, "lora_save: the model has no adapter");
    if (dtype != ST_F32 && dtype != ST_BF16)
        return err_set(e, EX_SOFTWARE, "lora_save: dtype %s not supported", st_dtype_name(dtype));
    AtomicDir ad;
    int rc = atomic_dir_begin(&ad, dir, e);
    if (rc) return rc;
    char *p = path_join(ad.tmp, "config.json");
    rc = model_config_save_dtype(&m->cfg, p, "float32", e);
    free(p);

    /* adapter_config.json: PEFT LoraConfig fields (peft/tuners/lora/config.py) */
    json_t *c = json_object();
    json_t *targets = json_array();
    for (int k = 0; k < L->cfg.n_targets; k++) json_array_append_new(targets, json_string(L->cfg.targets[k]));
    json_object_set_new(c, "alpha_pattern", json_object());
    json_object_set_new(c, "base_model_name_or_path", json_string(L->base_dir ? L->base_dir : ""));
    json_object_set_new(c, "bias", json_string("none"));
    json_object_set_new(c, "fan_in_fan_out", json_boolean(m->cfg.family == FAMILY_GPT2));
    json_object_set_new(c, "inference_mode", json_true());
    json_object_set_new(c, "init_lora_weights", json_true());
    json_object_set_new(c, "layers_pattern", json_null());
    json_object_set_new(c, "layers_to_transform", json_null());
    json_object_set_new(c, "lora_alpha",
                        L->cfg.alpha == floorf(L->cfg.alpha) && fabsf(L->cfg.alpha) < 1e9f
                            ? json_integer((json_int_t)L->cfg.alpha)
                            : json_real(L->cfg.alpha));
    json_object_set_new(c, "lora_dropout", json_real(0.0));
    if (L->score) {
        json_t *ms = json_array();
        json_array_append_new(ms, json_string("score"));
        json_object_set_new(c, "modules_to_save", ms);
    } else {
        json_object_set_new(c, "modules_to_save", json_null());
    }
    json_object_set_new(c, "peft_type", json_string("LORA"));
    json_object_set_new(c, "r", json_integer(L->cfg.rank));
    json_object_set_new(c, "rank_pattern", json_object());
    json_object_set_new(c, "revision", json_null());
    json_object_set_new(c, "target_modules", targets);
    json_object_set_new(c, "task_type", json_string(m->cfg.is_classifier ? "SEQ_CLS" : "CAUSAL_LM"));
    json_object_set_new(c, "use_dora", json_false());
    json_object_set_new(c, "use_rslora", json_boolean(L->cfg.rslora));
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(c);
    if (!rc) {
        p = path_join(ad.tmp, "adapter_config.json");
        FILE *fp = fopen(p, "w");
        if (!fp || fputs(text, fp) < 0 || fputc('\n', fp) < 0 || fclose(fp) != 0)
            rc = err_set(e, EX_IOERR, "%s: cannot write: %s", p, strerror(errno));
        free(p);
    }
    free(text);

    StWriter wr;
    st_writer_init(&wr);
    st_writer_meta(&wr, "format", "pt");
    char **names = xcalloc((size_t)2 * L->n_mods + 1, sizeof(char *));
    for (int j = 0; j < L->n_mods; j++) {
        const LoraModule *md = &L->mods[j];
        int64_t sa[2] = {L->cfg.rank, md->in}, sb[2] = {md->out, L->cfg.rank};
        names[2 * j] = peft_name(md->path, "lora_A.weight");
        names[2 * j + 1] = peft_name(md->path, "lora_B.weight");
        st_writer_add(&wr, names[2 * j], L->params + md->a_off, 2, sa);
        st_writer_add(&wr, names[2 * j + 1], L->params + md->b_off, 2, sb);
    }
    if (L->score) {
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        int64_t ss[2] = {s->shape[0], s->shape[1]};
        st_writer_add(&wr, PEFT_PREFIX "score.weight", L->params + L->score_off, 2, ss);
    }
    if (!rc) {
        p = path_join(ad.tmp, "adapter_model.safetensors");
        rc = st_writer_write(&wr, p, dtype, e);
        free(p);
    }
    st_writer_free(&wr);
    for (int j = 0; j < 2 * L->n_mods; j++) free(names[j]);
    free(names);
    if (!rc && tokenizer_src_dir) rc = model_copy_side_files(tokenizer_src_dir, ad.tmp, e);
    if (rc) {
        atomic_dir_abort(&ad);
        return rc;
    }
    return atomic_dir_commit(&ad, e);
}
