/* lora.c — LoRA adapters: configuration, attach, forward/backward hooks, merge.
 * See lora.h for the formulas; the PEFT files are lora_io.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "base/util.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "lora.h"
#include "model_internal.h"

void lora_config_default(LoraConfig *cfg, int rank) {
    memset(cfg, 0, sizeof *cfg);
    cfg->rank = rank;
    cfg->alpha = 2.0f * (float)rank;
}

int lora_config_add_target(LoraConfig *cfg, const char *name, Error *e) {
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
        int rc = lora_config_add_target(cfg, full, e);
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

int lora_build(Model *m, const LoraConfig *cfg, Error *e) {
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
        if (md->in > L->max_in) L->max_in = md->in;
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
        for (int j = 0; j < L->n_mods; j++) (void)lora_config_add_target(&L->cfg, leaf_name(L->mods[j].path), e);
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
        /* PEFT TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (model_family.c) */
        const FamilySpec *f = family_spec(m->cfg.family);
        for (int i = 0; i < 2 && f->lora_default[i]; i++)
            snprintf(cfg.targets[cfg.n_targets++], sizeof cfg.targets[0], "%s", f->lora_default[i]);
    }
    int rc = lora_build(m, &cfg, e);
    if (rc) return rc;
    Lora *L = m->lora;
    if (!L) return err_set(e, EX_SOFTWARE, "lora_attach: no adapter built");
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
    gemm_bf16_weights_touched(L->params, L->n_params); /* a shadow of the freed block is never read */
    free(L->mods);
    free(L->mod_of);
    free(L->params);
    free(L->grads);
    free(L->xa);
    free(L->dxa);
    free(L->xd);
    free(L->base_dir);
    free(L);
    m->lora = NULL;
}

void lora_set_enabled(Model *m, int on) {
    if (m->lora) m->lora->enabled = on != 0;
}

void lora_set_dropout(Model *m, int on, uint64_t seed) {
    if (!m->lora) return;
    m->lora->drop_on = on && m->lora->cfg.dropout > 0;
    m->lora->drop_seed = seed;
    m->lora->drop_row0 = 0;
}

void lora_set_dropout_row0(Model *m, long row0) {
    if (m->lora) m->lora->drop_row0 = row0;
}

/* Row n of module j's dropout mask: an Rng of its own, so rows can be drawn in any
 * order (threads) and backward can draw them again. */
static void mask_rng(Rng *r, uint64_t seed, int j, long n) {
    rng_seed(r, seed ^ ((uint64_t)(j + 1) * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)(n + 1) * 0xC2B2AE3D27D4EB4FULL));
}

/* out[N, in] = dropout(inp): kept elements scaled by 1/(1-p) (torch.nn.Dropout). */
static void dropout_forward(const Lora *L, int j, float *out, const float *inp, int N, int in) {
    float p = L->cfg.dropout, inv = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        Rng r;
        mask_rng(&r, L->fwd_seed, j, L->fwd_row0 + n);
        const float *x = inp + (size_t)n * in;
        float *y = out + (size_t)n * in;
        for (int i = 0; i < in; i++) y[i] = rng_uniform(&r) < p ? 0.0f : x[i] * inv;
    }
}

/* dinp += mask / (1-p) * g, the same masks as dropout_forward. */
static void dropout_backward(const Lora *L, int j, float *dinp, const float *g, int N, int in) {
    float p = L->cfg.dropout, inv = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        Rng r;
        mask_rng(&r, L->fwd_seed, j, L->fwd_row0 + n);
        const float *gn = g + (size_t)n * in;
        float *d = dinp + (size_t)n * in;
        for (int i = 0; i < in; i++)
            if (!(rng_uniform(&r) < p)) d[i] += gn[i] * inv;
    }
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
    char drop[32] = "";
    if (L->cfg.dropout > 0) snprintf(drop, sizeof drop, " dropout=%g", (double)L->cfg.dropout);
    snprintf(buf, n, "LoRA r=%d alpha=%g%s on %d modules (%s)%s: %zu trainable parameters of %zu (%.3f%%)", L->cfg.rank,
             (double)L->cfg.alpha, drop, L->n_mods, names, L->score ? " + score head" : "", L->n_params,
             L->n_params + m->n_params, 100.0 * (double)L->n_params / (double)(L->n_params + m->n_params));
}

/* ---- hooks ---- */

void lora_forward_begin(Model *m, int N) {
    Lora *L = m->lora;
    if (!L) return;
    L->fwd_on = L->enabled;
    L->fwd_drop = L->enabled && L->drop_on;
    L->fwd_seed = L->drop_seed;
    L->fwd_row0 = L->drop_row0;
    L->N = N;
    if (!L->enabled) return;
    if (L->fwd_drop && (size_t)N * L->max_in > L->xd_cap) {
        free(L->xd);
        L->xd_cap = (size_t)N * L->max_in;
        L->xd = xaligned_alloc(L->xd_cap * sizeof(float));
    }
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
    if (L->fwd_drop) { /* PEFT: lora_B(lora_A(dropout(x))) */
        dropout_forward(L, j, L->xd, inp, N, md->in);
        inp = L->xd;
    }
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
    if (!L->fwd_drop) {
        gemm(1, 0, r, md->in, N, 1.0f, L->dxa, r, inp, md->in, 1.0f, dA, md->in);
        if (dinp) gemm(0, 0, N, md->in, r, 1.0f, L->dxa, r, A, md->in, 1.0f, dinp, md->in);
        return;
    }
    /* with dropout, A saw xd = dropout(inp): dA += dxa^T @ xd, dinp += mask/(1-p) * (dxa @ A) */
    dropout_forward(L, j, L->xd, inp, N, md->in);
    gemm(1, 0, r, md->in, N, 1.0f, L->dxa, r, L->xd, md->in, 1.0f, dA, md->in);
    if (dinp) {
        gemm(0, 0, N, md->in, r, 1.0f, L->dxa, r, A, md->in, 0.0f, L->xd, md->in);
        dropout_backward(L, j, dinp, L->xd, N, md->in);
    }
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
    gemm_bf16_weights_touched(m->params, m->n_params); /* the products' bf16 copy (gemm.h) */
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
    gemm_bf16_weights_touched(m->params, m->n_params); /* the products' bf16 copy (gemm.h) */
    free(saved);
}
