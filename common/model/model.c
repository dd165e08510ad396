/* model.c — the transformer: parameter layout, initialisation, forward, backward and
 * the two heads, for every family of model_family.c's table.
 *
 * One block, with the pieces a family may lack in brackets:
 *   x = embed[tok] [* sqrt(C), Gemma] [+ wpe[pos], GPT-2]
 *   h = norm1(x);  q, k, v = proj(h) (fused or not, [biases])
 *   [q, k = per-head RMSNorm(q, k), Qwen3 / Gemma 3];  [q, k = RoPE(q, k)]
 *   a = o_proj(attention(q, k, v)) [post_attn_norm(a), Gemma];  x += a
 *   h = norm2(x);  m = down(act(gate(h)) * up(h))  or  down(gelu(up(h))) (GPT-2)
 *   [post_ff_norm(m), Gemma];  x += m
 *   hidden = norm_f(x)
 * Norms are LayerNorm (GPT-2), RMSNorm, or Gemma's RMSNorm x (1 + w).  Attention is
 * causal, restricted to the query's segment (padding is a segment of its own),
 * scaled by 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar), grouped-query, with
 * an optional sliding window and tanh soft-capping (ops_ext.h).  Sources per family
 * in model_family.c.
 *
 * Layout (llm.c): parameters are one block carved into ParamTensors in the order of
 * the family's table; m->w points into it by role; activations of the last forward
 * are one block carved per layer, reallocated only when a larger (B, T) arrives;
 * backward scratch is one more block.  Backward accumulates into m->grads, so
 * callers zero gradients once per optimizer step.
 * Not for: file I/O (model_io.c), config.json (model_config.c), losses, sampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"
#include "lora.h"
#include "model.h"
#include "model_internal.h"

/* Activations of one layer for the last forward (pointers into ModelImpl.act). */
typedef struct LayerAct {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;               /* [N, Q + 2 KV] fused projection output */
    float *qr, *kr;           /* [N, Q], [N, KV] q, k before their per-head norms */
    float *qn_rstd, *kn_rstd; /* [N nh], [N nkv] */
    float *q, *k, *v;         /* [N, Q], [N, KV] x2 (after norms and RoPE) */
    float *att;               /* [B, nh, T, T] */
    float *atty;              /* [N, Q] attention output before the projection */
    float *ao, *ao_rstd;      /* [N, C] o_proj output before post_attn_norm (Gemma) */
    float *res1;              /* [N, C] x + attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *gu;           /* [N, 2F] fused gate_up output (Phi-3) */
    float *f1, *f2;      /* [N, F]: gate, up (gated); up out, act out (GPT-2) */
    float *f3;           /* [N, F]: act(gate) * up */
    float *mo, *mo_rstd; /* [N, C] down output before post_ff_norm (Gemma) */
    float *res2;         /* [N, C] block output */
} LayerAct;

struct ModelImpl {
    const FamilySpec *fam;
    int *init_kind;     /* per tensor */
    int lm_head, score; /* tensor indices, -1 = absent */
    float *inv_freq;    /* [2][hd/2]: global and local (sliding) RoPE tables */
    float *normw;       /* [max(C, hd)] scratch: 1 + w of a Gemma norm */
    /* activations */
    size_t act_cap, bwd_cap; /* floats allocated */
    int int_cap;
    float *act, *bwd;
    LayerAct *la;
    float *enc, *lnf_mean, *lnf_rstd, *lse, *scratch;
    /* shared by every layer: the norm outputs (ln1, ln2) and the MLP's activation output
     * (f3 gated, f2 GPT-2), cheap to recompute in backward from what the layer keeps */
    float *ln_shared, *act_shared;
    int *tokens, *pos, *seg;
    /* backward scratch */
    float *dresid, *dln, *dq, *dk, *dv, *dqkv, *datty, *dF1, *dF2, *dF3, *dgu, *dqr, *dkr, *dbr;
    int have_lse;
    int ckpt;         /* the last forward kept only block inputs (model_set_checkpointing) */
    int forward_only; /* model_set_forward_only: every forward keeps checkpointing's set */
    int flash;        /* model_set_flash_attention's mode at the last forward */
    /* model_grads_discard: per tensor, 1 while its gradient holds old values that the
     * next backward overwrites instead of adding to (n_tensors flags, NULL until then) */
    unsigned char *gstale;
};

/* Gradient checkpointing for every model of the process (model_set_checkpointing). */
static int checkpointing;

void model_set_checkpointing(int on) {
    checkpointing = on != 0;
}

int model_checkpointing(void) {
    return checkpointing;
}

void model_set_forward_only(Model *m, int on) {
    m->impl->forward_only = on != 0;
}

size_t model_activation_floats(const Model *m) {
    return m->impl->act_cap;
}

/* Fused attention (model_set_flash_attention): -1 from FLASH_MIN_T on, 0 never, 1 always.
 * The fused kernel never holds the [B, nh, T, T] probabilities (saved for backward by
 * the dense one), so from 128 tokens on it is the default in every layer, as
 * transformers' sdpa is (TRL's default): SmolLM2-135M, B = 8, T = 128, DPO: peak RSS
 * 2984 -> 2851 MiB (135 MB of probabilities), and at T = 512 it would save 2.1 GB.
 * Its cost is a second QK^T in backward: 1.28x the dense kernel's time at T = 128,
 * 1.10x at 256, 1.04x at 512 (bench_attention smollm2-short), a few percent of
 * attention's share of a step.  Layers with options (soft-cap, query scale, window)
 * gain more: attention_ext computes all T x T scores and caps them with libm's tanhf
 * (tests/bench/README.md: Gemma 2 heads, B = 4, the fused kernel 0.62x its time at
 * T = 128, 0.43x at 512). */
static int flash_mode = -1;
#define FLASH_MIN_T 128

void model_set_flash_attention(int mode) {
    flash_mode = mode < 0 ? -1 : mode > 0;
}

/* ---- parameter layout ---- */

static int add_tensor(Model *m, const char *name, int ndim, int64_t d0, int64_t d1, int init, int conv1d) {
    int i = m->n_tensors++;
    m->tensors = xrealloc(m->tensors, (size_t)m->n_tensors * sizeof *m->tensors);
    m->impl->init_kind = xrealloc(m->impl->init_kind, (size_t)m->n_tensors * sizeof(int));
    ParamTensor *t = &m->tensors[i];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    t->offset = m->n_params;
    t->decay = ndim >= 2; /* HF Trainer: no decay for biases and norm weights */
    t->conv1d = conv1d;
    m->impl->init_kind[i] = init;
    m->n_params += t->numel;
    return i;
}

/* Adds the tensors of table ts (those the config has); slot_of[k] gets each one's index. */
static void add_specs(Model *m, const TensorSpec *ts, int layer, int *slot_of) {
    const ModelConfig *c = &m->cfg;
    const FamilySpec *f = m->impl->fam;
    char nm[128];
    for (; ts->name; ts++) {
        if (!family_has(c, ts)) continue;
        if (layer >= 0)
            snprintf(nm, sizeof nm, "%s%s.%d.%s", f->prefix, f->blocks, layer, ts->name);
        else
            snprintf(nm, sizeof nm, "%s%s", f->prefix, ts->name);
        int nd = ts->d1 == D_NONE ? 1 : 2;
        int i = add_tensor(m, nm, nd, family_dim(c, ts->d0), nd > 1 ? family_dim(c, ts->d1) : 0, ts->init, ts->conv1d);
        slot_of[ts->slot / sizeof(float *)] = i;
    }
}

/* Builds m->tensors for cfg from the family's table, in the order transformers lists
 * the state dict; returns the tensor index of every slot (-1 absent). */
static int *build_layout(Model *m, int *glob) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    int nglob = (int)(sizeof(ModelView) / sizeof(float *));
    for (int k = 0; k < nglob; k++) glob[k] = -1;
    int *lay = xmalloc((size_t)c->n_layer * LW_SLOTS * sizeof(int));
    for (int k = 0; k < c->n_layer * LW_SLOTS; k++) lay[k] = -1;
    add_specs(m, I->fam->pre, -1, glob);
    for (int l = 0; l < c->n_layer; l++) add_specs(m, I->fam->layer, l, lay + (size_t)l * LW_SLOTS);
    add_specs(m, I->fam->post, -1, glob);
    I->lm_head = I->score = -1;
    if (c->is_classifier)
        I->score = add_tensor(m, "score.weight", 2, 1, c->d_model, INIT_NORMAL, 0);
    else if (!c->tie_embeddings)
        I->lm_head = add_tensor(m, "lm_head.weight", 2, c->vocab_size, c->d_model, INIT_NORMAL, 0);
    return lay;
}

/* YaRN (transformers _compute_yarn_parameters): the dimension turning `rot` times over
 * the original context is dim ln(orig / (2 pi rot)) / (2 ln base) (in double, as the
 * Python there); frequencies below the ramp are interpolated (/ factor), above kept. */
static double yarn_dim(double rot, int dim, double base, int orig) {
    return dim * log(orig / (rot * 2 * M_PI)) / (2 * log(base));
}

static void yarn_table(float *inv, const ModelConfig *c, float theta) {
    int dim = model_rotary_dim(c), half = dim / 2, orig = c->rope_scaling.original_max;
    double lo = yarn_dim(c->rope_scaling.beta_fast, dim, theta, orig);
    double hi = yarn_dim(c->rope_scaling.beta_slow, dim, theta, orig);
    if (!c->rope_scaling.no_truncate) lo = floor(lo), hi = ceil(hi);
    lo = lo > 0 ? lo : 0;
    hi = hi < dim - 1 ? hi : dim - 1;
    if (lo == hi) hi += 0.001;
    for (int i = 0; i < half; i++) {
        float pf = powf(theta, (float)(2 * i) / (float)dim);
        float extra = 1.0f / pf, inter = 1.0f / (c->rope_scaling.factor * pf);
        float ramp = ((float)i - (float)lo) / (float)(hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        float ef = 1.0f - ramp; /* the extrapolation share */
        inv[i] = inter * (1.0f - ef) + extra * ef;
    }
}

/* transformers _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
 * _compute_llama3_parameters and _compute_longrope_parameters (modeling_rope_utils.py;
 * LongRoPE, Ding et al. 2024), in float32 as there.  scaled: 0 unscaled, 1 the
 * config's scaling (longrope: short factors), 2 longrope's long factors. */
static void rope_table(float *inv, const ModelConfig *c, float theta, int scaled) {
    int hd = model_rotary_dim(c), half = hd / 2;
    for (int i = 0; i < half; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
    if (!scaled || c->rope_scaling.type == ROPE_DEFAULT) return;
    if (c->rope_scaling.type == ROPE_YARN) {
        yarn_table(inv, c, theta);
        return;
    }
    if (c->rope_scaling.type == ROPE_LONGROPE) { /* scaled = 1: short factors, 2: long */
        const float *ext = scaled == 2 ? c->rope_scaling.long_factor : c->rope_scaling.short_factor;
        for (int i = 0; i < half; i++) inv[i] = 1.0f / (ext[i] * powf(theta, (float)(2 * i) / (float)hd));
        return;
    }
    float factor = c->rope_scaling.factor;
    if (c->rope_scaling.type == ROPE_LINEAR) {
        for (int i = 0; i < half; i++) inv[i] /= factor;
        return;
    }
    /* llama3: long wavelengths divided by factor, short kept, a smooth blend between */
    float lo = c->rope_scaling.low_freq, hi = c->rope_scaling.high_freq, old = (float)c->rope_scaling.original_max;
    float lo_wl = old / lo, hi_wl = old / hi;
    for (int i = 0; i < half; i++) {
        float wl = 2.0f * (float)M_PI / inv[i];
        float f = wl > lo_wl ? inv[i] / factor : inv[i];
        float smooth = (old / wl - lo) / (hi - lo);
        float sm = (1.0f - smooth) * f / factor + smooth * f;
        inv[i] = !(wl < hi_wl) && !(wl > lo_wl) ? sm : f;
    }
}

/* Fills m->w (pointers into m->params) and the per-layer settings. */
static void fill_view(Model *m, const int *glob, const int *lay) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    float **g = (float **)&m->w;
    int nglob = (int)(sizeof(ModelView) / sizeof(float *));
    LayerWeights *layer = xcalloc((size_t)c->n_layer, sizeof(LayerWeights));
    LayerInfo *info = xcalloc((size_t)c->n_layer, sizeof(LayerInfo));
    memset(&m->w, 0, sizeof m->w);
    for (int k = 0; k < nglob; k++) g[k] = glob[k] >= 0 ? m->params + m->tensors[glob[k]].offset : NULL;
    m->w.lm_head = I->lm_head >= 0 ? m->params + m->tensors[I->lm_head].offset
                                   : (c->tie_embeddings && !c->is_classifier ? m->w.wte : NULL);
    m->w.score = I->score >= 0 ? m->params + m->tensors[I->score].offset : NULL;
    int rd = model_rotary_dim(c), half = rd / 2 > 0 ? rd / 2 : 1;
    I->inv_freq = xmalloc(3 * (size_t)half * sizeof(float));
    float local = c->rope_local_theta > 0 ? c->rope_local_theta : c->rope_theta;
    int longrope = c->rope_scaling.type == ROPE_LONGROPE;
    rope_table(I->inv_freq, c, c->rope_theta, 1);
    rope_table(I->inv_freq + half, c, local, 0);
    if (longrope) rope_table(I->inv_freq + 2 * half, c, c->rope_theta, 2);
    for (int l = 0; l < c->n_layer; l++) {
        float **p = (float **)&layer[l];
        for (int k = 0; k < LW_SLOTS; k++) {
            int i = lay[(size_t)l * LW_SLOTS + k];
            p[k] = i >= 0 ? m->params + m->tensors[i].offset : NULL;
        }
        LayerInfo *li = &info[l];
        int slides = family_layer_slides(c, l);
        li->window = slides ? c->sliding_window : 0;
        if (I->fam->learned_pos) continue;
        int loc = slides && c->rope_local_theta > 0;
        li->inv_freq = I->inv_freq + (loc ? half : 0);
        li->rope_theta = loc ? local : c->rope_theta;
        li->rope_plain = (loc || c->rope_scaling.type == ROPE_DEFAULT) && rd == model_head_dim(c);
        li->rope_scale = 1.0f;
        if (longrope && !loc) {
            li->inv_freq_long = I->inv_freq + 2 * half;
            li->long_from = c->rope_scaling.original_max;
        }
        if ((longrope || c->rope_scaling.type == ROPE_YARN) && !loc) li->rope_scale = c->rope_scaling.attn_factor;
    }
    m->w.layer = layer;
    m->w.info = info;
}

void model_create(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->impl = xcalloc(1, sizeof(ModelImpl));
    m->impl->fam = family_spec(cfg->family);
    int glob[sizeof(ModelView) / sizeof(float *)];
    int *lay = build_layout(m, glob);
    /* calloc: pages of a large model are only touched when filled */
    m->params = xcalloc_huge(m->n_params, sizeof(float));
    fill_view(m, glob, lay);
    free(lay);
    int hd = model_head_dim(cfg);
    m->impl->normw = xmalloc((size_t)(cfg->d_model > hd ? cfg->d_model : hd) * sizeof(float));
}

void model_free(Model *m) {
    if (!m->impl) return;
    lora_free(m);
    model_release_activations(m);
    ModelImpl *I = m->impl;
    free(I->init_kind);
    free(I->inv_freq);
    free(I->normw);
    free(I->la);
    free(I->gstale);
    free(I);
    free(m->w.layer);
    free(m->w.info);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void model_release_activations(Model *m) {
    ModelImpl *I = m->impl;
    free(I->act);
    free(I->bwd);
    free(I->tokens);
    free(I->pos);
    free(I->seg);
    free(m->dhidden);
    I->act = I->bwd = NULL;
    I->tokens = I->pos = I->seg = NULL;
    m->dhidden = m->hidden = NULL;
    I->act_cap = I->bwd_cap = 0;
    I->int_cap = 0;
    I->have_lse = 0;
    m->B = m->T = 0; /* no forward to read: the heads die as before any forward */
}

const ParamTensor *model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* transformers _init_weights (GPT2PreTrainedModel, LlamaPreTrainedModel and the
 * others): Linear, Conv1D and Embedding weights ~ N(0, initializer_range); biases 0;
 * norm weights 1 (0 for Gemma's (1 + w) norms); GPT-2 additionally re-draws every
 * "c_proj.weight" with std initializer_range / sqrt(2 n_layer) (GPT-2 paper, section
 * 2.3, "scale the weights of residual layers at initialization by 1/sqrt(N)"). */
void model_init_random(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    float std = m->cfg.init_std, std_resid = std / sqrtf(2.0f * (float)m->cfg.n_layer);
    float norm_one = m->impl->fam->norm == NORM_RMS_1P ? 0.0f : 1.0f;
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        switch (m->impl->init_kind[i]) {
        case INIT_ZERO:
            memset(p, 0, t->numel * sizeof(float));
            break;
        case INIT_NORM:
            for (size_t j = 0; j < t->numel; j++) p[j] = norm_one;
            break;
        default: {
            float s = m->impl->init_kind[i] == INIT_NORMAL_RESID ? std_resid : std;
            for (size_t j = 0; j < t->numel; j++) p[j] = rng_normal(&r) * s;
        }
        }
    }
}

void model_enable_grads(Model *m) {
    if (m->lora) { /* base frozen: gradients for the adapter only */
        if (!m->lora->grads) m->lora->grads = xcalloc(m->lora->n_params ? m->lora->n_params : 1, sizeof(float));
        return;
    }
    if (!m->grads) m->grads = xcalloc_huge(m->n_params, sizeof(float));
}

float *model_train_params(Model *m, float **grads, size_t *n) {
    if (m->lora) {
        *grads = m->lora->grads;
        *n = m->lora->n_params;
        return m->lora->params;
    }
    *grads = m->grads;
    *n = m->n_params;
    return m->params;
}

/* Clears n floats in 1 MiB chunks handed out one at a time: GPT-2-124M's gradients
 * are 500 MB, which one core's memset took 0.1-0.2 s of every step to clear, and a
 * thread on a core shared with another process takes fewer chunks. */
static void zero_floats(float *p, size_t n) {
    const size_t chunk = (size_t)1 << 18;
    if (n < 4 * chunk) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    long nc = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(dynamic, 1)
    for (long c = 0; c < nc; c++) {
        size_t c0 = (size_t)c * chunk, cn = n - c0 < chunk ? n - c0 : chunk;
        memset(p + c0, 0, cn * sizeof(float));
    }
}

void model_zero_grad(Model *m) {
    if (m->grads) zero_floats(m->grads, m->n_params);
    if (m->lora && m->lora->grads) zero_floats(m->lora->grads, m->lora->n_params);
    if (m->impl->gstale) memset(m->impl->gstale, 0, (size_t)m->n_tensors);
}

/* The gradients after an update are not needed again, so instead of zeroing all of
 * them (a pass writing 4 bytes per parameter) each tensor is marked, and the next
 * backward's first product into a weight's gradient writes it with beta = 0 (Gw:
 * lin_bwd, the LM head's first block of rows), which also spares that product
 * reading the old values; a gradient that is added to some other way is zeroed first
 * (G), one that nothing reached by the end of the backward is zeroed by
 * model_grads_settle.  On GPT-2-124M that is 123.5 M of the 124.4 M gradients (all
 * but the norms', biases' and position embeddings') written once per step instead
 * of zeroed, read and written: a bf16 step at B=4,T=64 0.630 against 0.647 s (best
 * of 10 alternating runs, Zen 4).  Only where that pays (gemm_overwrite_slower: bf16
 * without AMX). */
void model_grads_discard(Model *m) {
    if (m->lora && m->lora->grads) zero_floats(m->lora->grads, m->lora->n_params);
    if (!m->grads) return;
    ModelImpl *I = m->impl;
    if (!I->gstale) I->gstale = xmalloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1));
    memset(I->gstale, 1, (size_t)m->n_tensors);
}

/* Tensor t's gradient zeroed if it was discarded (m->grads and the flags exist). */
static void grad_unstale(const Model *m, int t) {
    if (!m->impl->gstale[t]) return;
    zero_floats(m->grads + m->tensors[t].offset, m->tensors[t].numel);
    m->impl->gstale[t] = 0;
}

void model_grads_settle(Model *m) {
    if (!m->grads || !m->impl->gstale) return;
    for (int t = 0; t < m->n_tensors; t++) grad_unstale(m, t);
}

/* ---- weights, gradients, linears and norms by pointer ---- */

/* Index of the tensor at p (tensors are laid out in increasing offsets). */
static int tensor_of(const Model *m, const float *p) {
    size_t off = (size_t)(p - m->params);
    int lo = 0, hi = m->n_tensors - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->tensors[mid].offset <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* NULL when absent or when the base has no gradients (frozen under a LoRA adapter).
 * For a caller that adds to it: a discarded gradient (model_grads_discard) is zeroed
 * first.  From the top level only (the flags are not shared safely between threads). */
static float *G(const Model *m, const float *p) {
    if (!p || !m->grads) return NULL;
    if (m->impl->gstale) grad_unstale(m, tensor_of(m, p));
    return m->grads + (p - m->params);
}

/* The same for a product that writes the gradient of all n floats from p, which must
 * be a whole tensor: *beta = 0 when the gradient was discarded (the product
 * overwrites it), else 1 (it adds).  A part of a tensor is added to, as G. */
static float *Gw(const Model *m, const float *p, size_t n, float *beta) {
    *beta = 1.0f;
    if (!p || !m->grads) return NULL;
    if (m->impl->gstale) {
        int t = tensor_of(m, p);
        if (m->impl->gstale[t] && m->params + m->tensors[t].offset == p && m->tensors[t].numel == n) {
            m->impl->gstale[t] = 0;
            *beta = 0.0f;
        } else {
            grad_unstale(m, t);
        }
    }
    return m->grads + (p - m->params);
}

/* A linear layer with its LoRA adapter (lora.h) when one is attached. */
static void lin_fwd(Model *m, const float *w, const float *b, float *out, const float *inp, int N, int C, int OC) {
    linear_forward(out, inp, w, b, N, C, OC);
    if (m->lora) lora_linear_forward(m, tensor_of(m, w), out, inp, N);
}
/* set: dinp is overwritten (linear_backward_set), else added to */
static void lin_bwd(Model *m, int set, const float *w, const float *b, float *dinp, const float *dout, const float *inp,
                    int N, int C, int OC) {
    float dw_beta;
    float *dw = Gw(m, w, (size_t)OC * C, &dw_beta);
    linear_backward_betas(set ? 0.0f : 1.0f, dw_beta, dinp, dw, G(m, b), dout, inp, w, N, C, OC);
    if (m->lora) lora_linear_backward(m, tensor_of(m, w), dinp, dout, inp, N);
}

/* The weight a norm multiplies by: w, or 1 + w for Gemma (GemmaRMSNorm). */
static const float *norm_w(const Model *m, const float *w, int C) {
    if (m->impl->fam->norm != NORM_RMS_1P) return w;
    for (int c = 0; c < C; c++) m->impl->normw[c] = 1.0f + w[c];
    return m->impl->normw;
}

void model_norm_forward(const Model *m, float *out, float *mean, float *rstd, const float *x, const float *w,
                        const float *b, int N, int C) {
    if (m->impl->fam->norm == NORM_LAYER)
        layernorm_forward(out, mean, rstd, x, w, b, N, C, m->cfg.norm_eps);
    else
        rmsnorm_forward(out, rstd, x, norm_w(m, w, C), N, C, m->cfg.norm_eps);
}

static void norm_bwd(Model *m, float *dinp, const float *dout, const float *x, const float *w, const float *b,
                     const float *mean, const float *rstd, int N, int C) {
    if (m->impl->fam->norm == NORM_LAYER)
        layernorm_backward(dinp, G(m, w), G(m, b), dout, x, w, mean, rstd, N, C);
    else
        rmsnorm_backward(dinp, G(m, w), dout, x, norm_w(m, w, C), rstd, N, C);
}

/* ---- activations ---- */

static int layer_flash(const Model *m, int l, int T);

/* Carves the activation block for (B, T); with base == NULL only counts.  With ckpt
 * (gradient checkpointing) only layer 0 gets a full LayerAct; every other layer
 * shares layer 0's pieces and owns only its output res2 (the next block's input), so
 * the block holds L N C floats plus one layer's activations. */
static size_t carve_acts(Model *m, float *base, int B, int T, int ckpt) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    size_t N = (size_t)B * T, C = c->d_model, F = c->d_ff;
    size_t Q = (size_t)family_dim(c, D_Q), KV = (size_t)family_dim(c, D_KV);
    size_t at = 0;
#define TAKE(ptr, n)                                                                                                   \
    do {                                                                                                               \
        if (base) (ptr) = base + at;                                                                                   \
        at += ((size_t)(n) + 15) / 16 * 16; /* 64-byte aligned pieces */                                               \
    } while (0)
    TAKE(I->enc, N * C);
    TAKE(m->hidden, N * C);
    TAKE(I->lnf_mean, N);
    TAKE(I->lnf_rstd, N);
    TAKE(I->lse, N);
    TAKE(I->scratch, N * (C > Q ? C : Q));
    TAKE(I->ln_shared, N * C);
    TAKE(I->act_shared, N * F);
    for (int l = 0; l < c->n_layer; l++) {
        const LayerWeights *W = &m->w.layer[l];
        LayerAct tmp = {0}, *a = base ? &I->la[l] : &tmp;
        memset(a, 0, sizeof *a);
        if (ckpt && l > 0) {
            if (base) *a = I->la[0];
            TAKE(a->res2, N * C);
            continue;
        }
        a->ln1 = a->ln2 = I->ln_shared; /* recomputed in backward (ln_recompute) */
        TAKE(a->ln1_mean, N);
        TAKE(a->ln1_rstd, N);
        if (W->qkv_w) TAKE(a->qkv, N * (Q + 2 * KV));
        if (W->q_norm) {
            TAKE(a->qr, N * Q);
            TAKE(a->kr, N * KV);
            TAKE(a->qn_rstd, N * c->n_head);
            TAKE(a->kn_rstd, N * c->n_kv_head);
        }
        TAKE(a->q, N * Q);
        TAKE(a->k, N * KV);
        TAKE(a->v, N * KV);
        /* [B, nh, T, T] probabilities, or [B, nh, T] log-sum-exps of the fused kernel; the
         * layer-0 set that checkpointing shares holds the largest of any layer */
        size_t natt = 0;
        for (int j = ckpt ? 0 : l; j < (ckpt ? c->n_layer : l + 1); j++) {
            size_t nj = (size_t)B * c->n_head * T * (layer_flash(m, j, T) ? 1 : (size_t)T);
            natt = nj > natt ? nj : natt;
        }
        TAKE(a->att, natt);
        TAKE(a->atty, N * Q);
        if (W->post_attn_norm) {
            TAKE(a->ao, N * C);
            TAKE(a->ao_rstd, N);
        }
        TAKE(a->res1, N * C);
        TAKE(a->ln2_mean, N);
        TAKE(a->ln2_rstd, N);
        if (W->gate_up_w) TAKE(a->gu, N * 2 * F);
        TAKE(a->f1, N * F);
        if (I->fam->gated) {
            TAKE(a->f2, N * F);
            a->f3 = I->act_shared; /* recomputed in backward (mlp_act_recompute) */
        } else {
            a->f2 = I->act_shared;
        }
        if (W->post_ff_norm) {
            TAKE(a->mo, N * C);
            TAKE(a->mo_rstd, N);
        }
        TAKE(a->res2, N * C);
    }
    return at;
}

static size_t carve_bwd(Model *m, float *base, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    const LayerWeights *W = &m->w.layer[0];
    size_t N = (size_t)B * T, C = c->d_model, F = c->d_ff;
    size_t Q = (size_t)family_dim(c, D_Q), KV = (size_t)family_dim(c, D_KV);
    size_t at = 0;
    TAKE(I->dresid, N * C);
    TAKE(I->dln, N * C);
    TAKE(I->dq, N * Q);
    TAKE(I->dk, N * KV);
    TAKE(I->dv, N * KV);
    if (W->qkv_w) TAKE(I->dqkv, N * (Q + 2 * KV));
    TAKE(I->datty, N * Q);
    TAKE(I->dF1, N * F);
    TAKE(I->dF2, N * F);
    TAKE(I->dF3, N * F);
    if (W->gate_up_w) TAKE(I->dgu, N * 2 * F);
    if (W->q_norm) {
        TAKE(I->dqr, N * Q);
        TAKE(I->dkr, N * KV);
    }
    if (W->post_attn_norm || W->post_ff_norm) TAKE(I->dbr, N * C);
#undef TAKE
    return at;
}

static void ensure_acts(Model *m, int B, int T, int ckpt) {
    ModelImpl *I = m->impl;
    size_t need = carve_acts(m, NULL, B, T, ckpt);
    if (need > I->act_cap) {
        free(I->act);
        I->act = xaligned_alloc(need * sizeof(float));
        I->act_cap = need;
    }
    if (!I->la) I->la = xcalloc((size_t)m->cfg.n_layer, sizeof(LayerAct));
    carve_acts(m, I->act, B, T, ckpt);
    I->ckpt = ckpt;
    int N = B * T;
    if (N > I->int_cap) {
        free(I->tokens);
        free(I->pos);
        free(I->seg);
        free(m->dhidden);
        I->tokens = xmalloc((size_t)N * sizeof(int));
        I->pos = xmalloc((size_t)N * sizeof(int));
        I->seg = xmalloc((size_t)N * sizeof(int));
        m->dhidden = xaligned_alloc((size_t)N * m->cfg.d_model * sizeof(float));
        I->int_cap = N;
    }
}

static void ensure_bwd(Model *m) {
    ModelImpl *I = m->impl;
    size_t need = carve_bwd(m, NULL, m->B, m->T);
    if (need > I->bwd_cap) {
        free(I->bwd);
        I->bwd = xaligned_alloc(need * sizeof(float));
        I->bwd_cap = need;
    }
    carve_bwd(m, I->bwd, m->B, m->T);
}

/* ---- per-layer pieces shared with generation ---- */

/* Rows [r0, r1) with one table; then the longrope scale. */
static void rope_rows(const Model *m, const LayerInfo *li, const float *inv, float *x, const int *pos, int r0, int r1,
                      int nh, int inverse) {
    int hd = model_head_dim(&m->cfg), rd = model_rotary_dim(&m->cfg);
    float *xr = x + (size_t)r0 * nh * hd;
    if (li->rope_plain) {
        if (inverse)
            rope_backward(xr, pos + r0, r1 - r0, nh, hd, li->rope_theta);
        else
            rope_forward(xr, pos + r0, r1 - r0, nh, hd, li->rope_theta);
    } else if (inverse) {
        rope_part_backward(xr, pos + r0, r1 - r0, nh, hd, rd, inv);
    } else {
        rope_part_forward(xr, pos + r0, r1 - r0, nh, hd, rd, inv);
    }
    /* (s R)^T = s R^T: forward and backward scale alike; only the rotated dimensions
     * (transformers scales cos and sin) */
    if (li->rope_scale != 1.0f)
        for (size_t v = 0; v < (size_t)(r1 - r0) * nh; v++)
            for (int i = 0; i < rd; i++) xr[v * hd + i] *= li->rope_scale;
}

void model_rope(const Model *m, int l, float *x, const int *pos, const int *group, int N, int nh, int inverse) {
    const LayerInfo *li = &m->w.info[l];
    if (!li->inv_freq) return;
    if (!li->inv_freq_long) {
        rope_rows(m, li, li->inv_freq, x, pos, 0, N, nh, inverse);
        return;
    }
    for (int r0 = 0, r1; r0 < N; r0 = r1) { /* longrope: per group, by its longest position */
        int mx = pos[r0];
        for (r1 = r0 + 1; r1 < N && (!group || group[r1] == group[r0]); r1++) mx = pos[r1] > mx ? pos[r1] : mx;
        rope_rows(m, li, mx + 1 > li->long_from ? li->inv_freq_long : li->inv_freq, x, pos, r0, r1, nh, inverse);
    }
}

float model_attn_scale(const ModelConfig *c) {
    return 1.0f / sqrtf(c->query_scale > 0 ? c->query_scale : (float)model_head_dim(c));
}

float model_embed_scale(const Model *m) {
    return m->impl->fam->embed_scale ? sqrtf((float)m->cfg.d_model) : 1.0f;
}

void model_mlp_act(const Model *m, float *out, const float *gate, const float *up, size_t n) {
    if (!m->impl->fam->gated)
        gelu_forward(out, gate, n);
    else if (m->impl->fam->act == ACT_GELU_TANH)
        geglu_forward(out, gate, up, n);
    else
        swiglu_forward(out, gate, up, n);
}

/* Attention options of layer l for a row length T; *plain when ops.h's kernels apply
 * (default scale, no capping; the window only matters when T exceeds it). */
static AttnOpts attn_opts(const Model *m, int l, int T, int *plain) {
    const ModelConfig *c = &m->cfg;
    AttnOpts o = {model_attn_scale(c), c->attn_softcap, m->w.info[l].window};
    if (o.window >= T) o.window = 0;
    *plain = c->attn_softcap <= 0 && (c->query_scale <= 0 || c->query_scale == (float)model_head_dim(c));
    return o;
}

/* Whether layer l runs the fused attention (ops_flash.c) at row length T: the mode, and
 * in auto mode T against FLASH_MIN_T.  The fused kernel takes every option itself. */
static int layer_flash(const Model *m, int l, int T) {
    int mode = m->impl->flash;
    if (mode >= 0) return mode;
    return T >= FLASH_MIN_T;
}

/* Splits rows of [N, a + b + c] into three row-major blocks (NULL dst: skipped). */
static void split3(const float *src, float *d0, float *d1, float *d2, int N, int a, int b, int c) {
    for (int n = 0; n < N; n++) {
        const float *row = src + (size_t)n * (a + b + c);
        if (d0) memcpy(d0 + (size_t)n * a, row, a * sizeof(float));
        if (d1) memcpy(d1 + (size_t)n * b, row + a, b * sizeof(float));
        if (d2) memcpy(d2 + (size_t)n * c, row + a + b, c * sizeof(float));
    }
}

static void join3(float *dst, const float *s0, const float *s1, const float *s2, int N, int a, int b, int c) {
    for (int n = 0; n < N; n++) {
        float *row = dst + (size_t)n * (a + b + c);
        memcpy(row, s0 + (size_t)n * a, a * sizeof(float));
        memcpy(row + a, s1 + (size_t)n * b, b * sizeof(float));
        if (c) memcpy(row + a + b, s2 + (size_t)n * c, c * sizeof(float));
    }
}

/* ---- forward ---- */

/* res1 = x + attention(norm(x)) for layer l. */
static void attn_block_forward(Model *m, int l, const float *x, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    const LayerWeights *W = &m->w.layer[l];
    LayerAct *a = &I->la[l];
    int N = B * T, C = c->d_model, nh = c->n_head, nkv = c->n_kv_head, hd = model_head_dim(c);
    int Q = nh * hd, KV = nkv * hd;
    float *q = W->q_norm ? a->qr : a->q, *k = W->q_norm ? a->kr : a->k;
    model_norm_forward(m, a->ln1, a->ln1_mean, a->ln1_rstd, x, W->ln1_w, W->ln1_b, N, C);
    if (W->qkv_w) {
        /* transformers: c_attn(x).split(C, dim=2) / qkv_proj(x) sliced q, k, v */
        lin_fwd(m, W->qkv_w, W->qkv_b, a->qkv, a->ln1, N, C, Q + 2 * KV);
        split3(a->qkv, q, k, a->v, N, Q, KV, KV);
    } else {
        gemm_bf16_hold(a->ln1, (size_t)N * C); /* bf16: converted once for the three */
        lin_fwd(m, W->q_w, W->q_b, q, a->ln1, N, C, Q);
        lin_fwd(m, W->k_w, W->k_b, k, a->ln1, N, C, KV);
        lin_fwd(m, W->v_w, W->v_b, a->v, a->ln1, N, C, KV);
        gemm_bf16_release(a->ln1);
    }
    if (W->q_norm) { /* Qwen3 / Gemma 3: RMSNorm over each head before RoPE */
        model_norm_forward(m, a->q, NULL, a->qn_rstd, a->qr, W->q_norm, NULL, N * nh, hd);
        model_norm_forward(m, a->k, NULL, a->kn_rstd, a->kr, W->k_norm, NULL, N * nkv, hd);
    }
    model_rope(m, l, a->q, I->pos, NULL, N, nh, 0);
    model_rope(m, l, a->k, I->pos, NULL, N, nkv, 0);
    int plain;
    AttnOpts o = attn_opts(m, l, T, &plain);
    if (layer_flash(m, l, T)) /* a->att holds the log-sum-exps */
        attention_flash_forward(a->atty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd, &o);
    else if (plain && o.window == 0)
        attention_forward(a->atty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd);
    else
        attention_ext_forward(a->atty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd, &o);
    lin_fwd(m, W->o_w, W->o_b, W->post_attn_norm ? a->ao : I->scratch, a->atty, N, Q, C);
    if (W->post_attn_norm) model_norm_forward(m, I->scratch, NULL, a->ao_rstd, a->ao, W->post_attn_norm, NULL, N, C);
    residual_forward(a->res1, x, I->scratch, (size_t)N * C);
}

/* res2 = res1 + mlp(norm(res1)) for layer l. */
static void mlp_block_forward(Model *m, int l, int N) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    const LayerWeights *W = &m->w.layer[l];
    LayerAct *a = &I->la[l];
    int C = c->d_model, F = c->d_ff;
    model_norm_forward(m, a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, W->ln2_w, W->ln2_b, N, C);
    if (W->gate_up_w) { /* Phi-3: gate_up_proj(x).chunk(2) = gate, up */
        lin_fwd(m, W->gate_up_w, NULL, a->gu, a->ln2, N, C, 2 * F);
        split3(a->gu, a->f1, a->f2, NULL, N, F, F, 0);
    } else if (I->fam->gated) {
        gemm_bf16_hold(a->ln2, (size_t)N * C);
        lin_fwd(m, W->gate_w, W->gate_b, a->f1, a->ln2, N, C, F);
        lin_fwd(m, W->up_w, W->up_b, a->f2, a->ln2, N, C, F);
        gemm_bf16_release(a->ln2);
    } else {
        lin_fwd(m, W->up_w, W->up_b, a->f1, a->ln2, N, C, F);
    }
    const float *act = a->f2;
    if (I->fam->gated) {
        model_mlp_act(m, a->f3, a->f1, a->f2, (size_t)N * F);
        act = a->f3;
    } else {
        model_mlp_act(m, a->f2, a->f1, NULL, (size_t)N * F);
    }
    lin_fwd(m, W->down_w, W->down_b, W->post_ff_norm ? a->mo : I->scratch, act, N, F, C);
    if (W->post_ff_norm) model_norm_forward(m, I->scratch, NULL, a->mo_rstd, a->mo, W->post_ff_norm, NULL, N, C);
    residual_forward(a->res2, a->res1, I->scratch, (size_t)N * C);
}

void model_forward(Model *m, const int *tokens, const int *pos, const int *seg, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    if (B < 1 || T < 1) die_internal("model_forward: empty batch B=%d T=%d", B, T);
    I->flash = flash_mode;
    ensure_acts(m, B, T, checkpointing || I->forward_only);
    m->B = B;
    m->T = T;
    I->have_lse = 0;
    int N = B * T, C = c->d_model;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->vocab_size)
            die_internal("model_forward: token %d at row %d outside the vocabulary (%d)", tokens[n], n, c->vocab_size);
        I->tokens[n] = tokens[n];
        I->pos[n] = pos ? pos[n] : n % T;
        I->seg[n] = seg ? seg[n] : 0;
        if (I->fam->learned_pos && (I->pos[n] < 0 || I->pos[n] >= c->max_seq))
            die_internal("model_forward: position %d outside the %d learned positions", I->pos[n], c->max_seq);
    }
    memset(m->dhidden, 0, (size_t)N * C * sizeof(float));
    if (m->lora) lora_forward_begin(m, N);

    embedding_forward(I->enc, I->tokens, m->w.wte, N, C);
    if (I->fam->embed_scale) { /* Gemma: embeddings x sqrt(hidden_size) */
        float s = model_embed_scale(m);
        for (size_t i = 0; i < (size_t)N * C; i++) I->enc[i] *= s;
    }
    if (m->w.wpe) position_forward(I->enc, I->pos, m->w.wpe, N, C);

    const float *x = I->enc;
    for (int l = 0; l < c->n_layer; l++) {
        attn_block_forward(m, l, x, B, T);
        mlp_block_forward(m, l, N);
        x = I->la[l].res2;
    }
    model_norm_forward(m, m->hidden, I->lnf_mean, I->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b, N, C);
}

/* ---- backward ---- */

static void zero(float *p, size_t n) {
    memset(p, 0, n * sizeof(float));
}

/* Activation memory: a layer keeps its norms' inputs, means and rstds but not their
 * outputs, and the MLP's gate and up but not act(gate) * up (GPT-2: gelu(fc)); backward
 * recomputes them into the buffers every layer shares (ModelImpl.ln_shared,
 * act_shared) with the same functions on the same inputs, so the values, and every
 * gradient, are bit-identical to keeping them; about 1 % of a step's time for
 * 2C + F floats per token and layer (SmolLM2-135M: 330 MB of 1.2 GB at 1024 tokens). */
static void ln_recompute(Model *m, float *out, float *mean, float *rstd, const float *x, const float *w, const float *b,
                         int N) {
    model_norm_forward(m, out, mean, rstd, x, w, b, N, m->cfg.d_model);
}

/* Backward of mlp_block_forward: I->dresid (d res2) gains the part through the MLP. */
static void mlp_block_backward(Model *m, int l, int N) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    const LayerWeights *W = &m->w.layer[l];
    const LayerAct *a = &I->la[l];
    int C = c->d_model, F = c->d_ff;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    const float *dbranch = I->dresid;
    if (W->post_ff_norm) {
        zero(I->dbr, NC);
        norm_bwd(m, I->dbr, I->dresid, a->mo, W->post_ff_norm, NULL, NULL, a->mo_rstd, N, C);
        dbranch = I->dbr;
    }
    ln_recompute(m, a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, W->ln2_w, W->ln2_b, N);
    model_mlp_act(m, I->fam->gated ? a->f3 : a->f2, a->f1, I->fam->gated ? a->f2 : NULL, NF);
    /* the first write into dF3, dF1, dF2 and dln overwrites it (no zeroing pass: with
     * datty in attention's backward ~30 MB per SmolLM2 layer at 1024 tokens) */
    if (I->fam->gated) {
        lin_bwd(m, 1, W->down_w, W->down_b, I->dF3, dbranch, a->f3, N, F, C);
        if (I->fam->act == ACT_GELU_TANH)
            geglu_backward(I->dF1, I->dF2, I->dF3, a->f1, a->f2, NF, 0);
        else
            swiglu_backward(I->dF1, I->dF2, I->dF3, a->f1, a->f2, NF, 0);
        if (W->gate_up_w) {
            join3(I->dgu, I->dF1, I->dF2, NULL, N, F, F, 0);
            lin_bwd(m, 1, W->gate_up_w, NULL, I->dln, I->dgu, a->ln2, N, C, 2 * F);
        } else {
            gemm_bf16_hold(a->ln2, (size_t)N * C);
            lin_bwd(m, 1, W->gate_w, W->gate_b, I->dln, I->dF1, a->ln2, N, C, F);
            lin_bwd(m, 0, W->up_w, W->up_b, I->dln, I->dF2, a->ln2, N, C, F);
            gemm_bf16_release(a->ln2);
        }
    } else {
        lin_bwd(m, 1, W->down_w, W->down_b, I->dF2, dbranch, a->f2, N, F, C);
        gelu_backward(I->dF1, a->f1, I->dF2, NF, 0);
        lin_bwd(m, 1, W->up_w, W->up_b, I->dln, I->dF1, a->ln2, N, C, F);
    }
    norm_bwd(m, I->dresid, I->dln, a->res1, W->ln2_w, W->ln2_b, a->ln2_mean, a->ln2_rstd, N, C);
}

/* Backward of attn_block_forward: I->dresid (d res1) gains the part through attention. */
static void attn_block_backward(Model *m, int l, const float *x) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    const LayerWeights *W = &m->w.layer[l];
    const LayerAct *a = &I->la[l];
    int B = m->B, T = m->T, N = B * T, C = c->d_model, nh = c->n_head, nkv = c->n_kv_head, hd = model_head_dim(c);
    int Q = nh * hd, KV = nkv * hd;
    const float *dbranch = I->dresid;
    if (W->post_attn_norm) {
        zero(I->dbr, (size_t)N * C);
        norm_bwd(m, I->dbr, I->dresid, a->ao, W->post_attn_norm, NULL, NULL, a->ao_rstd, N, C);
        dbranch = I->dbr;
    }
    lin_bwd(m, 1, W->o_w, W->o_b, I->datty, dbranch, a->atty, N, Q, C);
    zero(I->dq, (size_t)N * Q);
    zero(I->dk, (size_t)N * KV);
    zero(I->dv, (size_t)N * KV);
    int plain;
    AttnOpts o = attn_opts(m, l, T, &plain);
    if (layer_flash(m, l, T))
        attention_flash_backward(I->dq, I->dk, I->dv, I->datty, a->atty, a->att, a->q, a->k, a->v, I->seg, B, T, nh,
                                 nkv, hd, &o);
    else if (plain) /* masked entries of att are 0: the window needs nothing more */
        attention_backward(I->dq, I->dk, I->dv, I->datty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd);
    else
        attention_ext_backward(I->dq, I->dk, I->dv, I->datty, a->att, a->q, a->k, a->v, B, T, nh, nkv, hd, &o);
    model_rope(m, l, I->dq, I->pos, NULL, N, nh, 1);
    model_rope(m, l, I->dk, I->pos, NULL, N, nkv, 1);
    float *dq = I->dq, *dk = I->dk;
    if (W->q_norm) {
        zero(I->dqr, (size_t)N * Q);
        zero(I->dkr, (size_t)N * KV);
        norm_bwd(m, I->dqr, I->dq, a->qr, W->q_norm, NULL, NULL, a->qn_rstd, N * nh, hd);
        norm_bwd(m, I->dkr, I->dk, a->kr, W->k_norm, NULL, NULL, a->kn_rstd, N * nkv, hd);
        dq = I->dqr;
        dk = I->dkr;
    }
    ln_recompute(m, a->ln1, a->ln1_mean, a->ln1_rstd, x, W->ln1_w, W->ln1_b, N);
    if (W->qkv_w) {
        join3(I->dqkv, dq, dk, I->dv, N, Q, KV, KV);
        lin_bwd(m, 1, W->qkv_w, W->qkv_b, I->dln, I->dqkv, a->ln1, N, C, Q + 2 * KV);
    } else {
        gemm_bf16_hold(a->ln1, (size_t)N * C);
        lin_bwd(m, 1, W->q_w, W->q_b, I->dln, dq, a->ln1, N, C, Q);
        lin_bwd(m, 0, W->k_w, W->k_b, I->dln, dk, a->ln1, N, C, KV);
        lin_bwd(m, 0, W->v_w, W->v_b, I->dln, I->dv, a->ln1, N, C, KV);
        gemm_bf16_release(a->ln1);
    }
    norm_bwd(m, I->dresid, I->dln, x, W->ln1_w, W->ln1_b, a->ln1_mean, a->ln1_rstd, N, C);
}

void model_backward(Model *m) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    if (!m->grads && !(m->lora && m->lora->grads)) die_internal("model_backward: call model_enable_grads first");
    if (!m->B) die_internal("model_backward: no forward to differentiate");
    ensure_bwd(m);
    int N = m->B * m->T, C = c->d_model;
    size_t NC = (size_t)N * C;
    const float *xlast = c->n_layer ? I->la[c->n_layer - 1].res2 : I->enc;

    zero(I->dresid, NC);
    norm_bwd(m, I->dresid, m->dhidden, xlast, m->w.lnf_w, m->w.lnf_b, I->lnf_mean, I->lnf_rstd, N, C);

    /* I->dresid holds d loss / d (residual stream); each block's two residual additions
     * pass it through unchanged, and the norms' backward add their part into it. */
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const float *x = l ? I->la[l - 1].res2 : I->enc;
        if (I->ckpt) { /* Chen et al. 2016: recompute the block from its input (bit-identical) */
            attn_block_forward(m, l, x, m->B, m->T);
            mlp_block_forward(m, l, N);
        }
        mlp_block_backward(m, l, N);
        attn_block_backward(m, l, x);
    }
    if (!m->grads) return; /* frozen base: no embedding gradients */
    if (m->w.wpe) position_backward(G(m, m->w.wpe), I->dresid, I->pos, N, C);
    if (I->fam->embed_scale) {
        float s = model_embed_scale(m);
        for (size_t i = 0; i < NC; i++) I->dresid[i] *= s;
    }
    embedding_backward(G(m, m->w.wte), I->dresid, I->tokens, N, C);
}

/* ---- heads ---- */

static const float *lm_head(const Model *m) {
    if (!m->w.lm_head) die_internal("model has no LM head (a classifier)");
    return m->w.lm_head;
}

/* The LM head's gradient for its products (Gw): *beta 0 when they overwrite it. */
static float *lm_head_grad(const Model *m, float *beta) {
    return Gw(m, lm_head(m), (size_t)m->cfg.vocab_size * m->cfg.d_model, beta);
}

/* Every target of the LM head's callers is a token of the vocabulary (or < 0: none). */
static void check_targets(const int *targets, int N, int V) {
    for (int n = 0; n < N; n++)
        if (targets[n] >= V) die_internal("model_logprobs: target %d outside the vocabulary (%d)", targets[n], V);
}

void model_logprobs(Model *m, const int *targets, float *logp, float *entropy) {
    model_logprobs_argmax(m, targets, logp, entropy, NULL);
}

void model_logprobs_argmax(Model *m, const int *targets, float *logp, float *entropy, int *argmax) {
    if (!m->B) die_internal("model_logprobs: no forward");
    int N = m->B * m->T, V = m->cfg.vocab_size;
    check_targets(targets, N, V);
    if (m->cfg.final_softcap > 0)
        logprobs_softcap_forward(logp, entropy, m->impl->lse, argmax, m->hidden, lm_head(m), targets, N, m->cfg.d_model,
                                 V, m->cfg.final_softcap);
    else
        logprobs_forward(logp, entropy, m->impl->lse, argmax, m->hidden, lm_head(m), targets, N, m->cfg.d_model, V);
    m->impl->have_lse = 1;
}

void model_logprobs_backward(Model *m, const int *targets, const float *dlogp) {
    if (!m->impl->have_lse) die_internal("model_logprobs_backward: call model_logprobs first");
    int N = m->B * m->T;
    const float *h = lm_head(m);
    if (m->cfg.final_softcap > 0)
        logprobs_softcap_backward(m->dhidden, G(m, h), dlogp, m->hidden, h, targets, m->impl->lse, N, m->cfg.d_model,
                                  m->cfg.vocab_size, m->cfg.final_softcap);
    else {
        float dw_beta;
        float *dw = lm_head_grad(m, &dw_beta);
        logprobs_backward(m->dhidden, dw, dlogp, m->hidden, h, targets, m->impl->lse, N, m->cfg.d_model,
                          m->cfg.vocab_size, dw_beta);
    }
}

void model_logprobs_fused(Model *m, const int *targets, const float *dlogp, float *logp, float *entropy, int *argmax) {
    if (!m->B) die_internal("model_logprobs_fused: no forward");
    int N = m->B * m->T, V = m->cfg.vocab_size;
    check_targets(targets, N, V);
    if (m->cfg.final_softcap > 0) { /* no fused soft-capped head: the two passes */
        model_logprobs_argmax(m, targets, logp, entropy, argmax);
        model_logprobs_backward(m, targets, dlogp);
        return;
    }
    const float *h = lm_head(m);
    float dw_beta;
    float *dw = lm_head_grad(m, &dw_beta);
    logprobs_forward_backward(logp, entropy, argmax, m->dhidden, dw, dlogp, m->hidden, h, targets, N, m->cfg.d_model, V,
                              dw_beta);
    m->impl->have_lse = 0; /* no lse kept: a later model_logprobs_backward is an error */
}

void model_logprobs_fused_grouped(Model *m, const int *targets, int group_len, LogpGroupFn fn, void *ctx, float *dlogp,
                                  float *logp, float *entropy, int *argmax) {
    if (!m->B) die_internal("model_logprobs_fused_grouped: no forward");
    int N = m->B * m->T, V = m->cfg.vocab_size;
    check_targets(targets, N, V);
    if (m->cfg.final_softcap > 0) { /* no fused soft-capped head: the two passes, fn between them */
        model_logprobs_argmax(m, targets, logp, entropy, argmax);
        fn(ctx, 0, N / group_len, logp, dlogp);
        model_logprobs_backward(m, targets, dlogp);
        return;
    }
    const float *h = lm_head(m);
    float dw_beta;
    float *dw = lm_head_grad(m, &dw_beta);
    logprobs_forward_backward_grouped(logp, entropy, argmax, m->dhidden, dw, dlogp, fn, ctx, group_len, m->hidden, h,
                                      targets, N, m->cfg.d_model, V, dw_beta);
    m->impl->have_lse = 0;
}

void model_values(Model *m, float *values) {
    if (!m->w.score) die_internal("model_values: not a classifier (no score.weight)");
    if (!m->B) die_internal("model_values: no forward");
    const float *w = m->lora && lora_score_weight(m) ? lora_score_weight(m) : m->w.score;
    linear_forward(values, m->hidden, w, NULL, m->B * m->T, m->cfg.d_model, 1);
}

void model_values_backward(Model *m, const float *dvalues) {
    if (!m->w.score) die_internal("model_values_backward: not a classifier (no score.weight)");
    const float *w = m->w.score;
    float *dw = G(m, m->w.score);
    if (m->lora && lora_score_grad(m)) { /* the adapter's trainable copy of the head */
        w = m->lora->params + m->lora->score_off;
        dw = lora_score_grad(m);
    }
    linear_backward(m->dhidden, dw, NULL, dvalues, m->hidden, w, m->B * m->T, m->cfg.d_model, 1);
}
