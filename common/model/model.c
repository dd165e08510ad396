/* model.c — the transformer: parameter layout, initialisation, forward, backward and
 * the two heads, for GPT-2 and Llama.
 *
 * GPT-2 (Radford et al. 2019; transformers modeling_gpt2.py):
 *   x = wte[tok] + wpe[pos]
 *   per block:  x += c_proj(attn(ln_1(x)));  x += mlp.c_proj(gelu_new(c_fc(ln_2(x))))
 *   hidden = ln_f(x)
 * Llama (Touvron et al. 2023; transformers modeling_llama.py):
 *   x = embed_tokens[tok]
 *   per block:  x += o_proj(attn(rope(q), rope(k), v)) on input_layernorm(x)
 *               x += down_proj(silu(gate_proj(h)) * up_proj(h)), h = post_attention_layernorm(x)
 *   hidden = norm(x)
 * Attention is causal, restricted to the query's segment (padding is a segment of its
 * own), scaled by 1/sqrt(head_dim); Llama's heads share k/v heads in groups (GQA).
 *
 * Layout (llm.c): parameters are one block carved into ParamTensors in a fixed order;
 * activations of the last forward are one block carved per layer, reallocated only
 * when a larger (B, T) arrives; backward scratch is one more block.  Backward
 * accumulates into m->grads, so callers zero gradients once per optimizer step.
 * Not for: file I/O (model_io.c), config.json (model_config.c), losses, sampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "model.h"
#include "kernels/ops.h"
#include "base/util.h"

enum { INIT_NORMAL, INIT_NORMAL_RESID, INIT_ZERO, INIT_ONE };

/* Indices into m->tensors (-1 = absent). */
typedef struct LayerIdx {
    int ln1_w, ln1_b, ln2_w, ln2_b;
    int qkv_w, qkv_b;                               /* GPT-2 c_attn (fused q, k, v) */
    int q_w, q_b, k_w, k_b, v_w, v_b;               /* Llama */
    int o_w, o_b;                                   /* attn c_proj / o_proj */
    int fc_w, fc_b, proj_w, proj_b;                 /* GPT-2 c_fc, mlp.c_proj */
    int gate_w, gate_b, up_w, up_b, down_w, down_b; /* Llama */
} LayerIdx;

/* Activations of one layer for the last forward (pointers into ModelImpl.act). */
typedef struct LayerAct {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;       /* [N, 3C] GPT-2 only */
    float *q, *k, *v; /* [N, nh*hd], [N, nkv*hd] x2 (after RoPE for Llama) */
    float *att;       /* [B, nh, T, T] */
    float *atty;      /* [N, C] attention output before the projection */
    float *res1;      /* [N, C] x + attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *f1, *f2; /* [N, F]: GPT-2 c_fc out, gelu out; Llama gate, up */
    float *f3;      /* [N, F]: Llama silu(gate) * up */
    float *res2;    /* [N, C] block output */
} LayerAct;

struct ModelImpl {
    int *init_kind; /* per tensor */
    LayerIdx *L;
    int wte, wpe, lnf_w, lnf_b, lm_head, score;
    /* activations */
    size_t act_cap, bwd_cap; /* floats allocated */
    int int_cap;
    float *act, *bwd;
    LayerAct *la;
    float *enc, *lnf_mean, *lnf_rstd, *lse, *scratch;
    int *tokens, *pos, *seg;
    /* backward scratch */
    float *dresid, *dln, *dq, *dk, *dv, *dqkv, *datty, *dF1, *dF2, *dF3;
    int have_lse;
};

const char *model_family_name(Family f) {
    return f == FAMILY_GPT2 ? "gpt2" : "llama";
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

#define ADD(ndim, d0, d1, init, conv, ...)                                                                             \
    (snprintf(nm, sizeof nm, __VA_ARGS__), add_tensor(m, nm, ndim, d0, d1, init, conv))

/* Builds m->tensors for cfg in the order transformers lists the state dict. */
static void build_layout(Model *m) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    int C = c->d_model, F = c->d_ff, V = c->vocab_size, hd = C / c->n_head, KV = c->n_kv_head * hd;
    char nm[128];
    I->L = xcalloc((size_t)c->n_layer, sizeof(LayerIdx));
    I->wpe = I->lnf_b = I->lm_head = I->score = -1;
    if (c->family == FAMILY_GPT2) {
        I->wte = ADD(2, V, C, INIT_NORMAL, 0, "transformer.wte.weight");
        I->wpe = ADD(2, c->max_seq, C, INIT_NORMAL, 0, "transformer.wpe.weight");
        for (int l = 0; l < c->n_layer; l++) {
            LayerIdx *L = &I->L[l];
            memset(L, -1, sizeof *L);
            L->ln1_w = ADD(1, C, 0, INIT_ONE, 0, "transformer.h.%d.ln_1.weight", l);
            L->ln1_b = ADD(1, C, 0, INIT_ZERO, 0, "transformer.h.%d.ln_1.bias", l);
            L->qkv_w = ADD(2, 3 * C, C, INIT_NORMAL, 1, "transformer.h.%d.attn.c_attn.weight", l);
            L->qkv_b = ADD(1, 3 * C, 0, INIT_ZERO, 0, "transformer.h.%d.attn.c_attn.bias", l);
            L->o_w = ADD(2, C, C, INIT_NORMAL_RESID, 1, "transformer.h.%d.attn.c_proj.weight", l);
            L->o_b = ADD(1, C, 0, INIT_ZERO, 0, "transformer.h.%d.attn.c_proj.bias", l);
            L->ln2_w = ADD(1, C, 0, INIT_ONE, 0, "transformer.h.%d.ln_2.weight", l);
            L->ln2_b = ADD(1, C, 0, INIT_ZERO, 0, "transformer.h.%d.ln_2.bias", l);
            L->fc_w = ADD(2, F, C, INIT_NORMAL, 1, "transformer.h.%d.mlp.c_fc.weight", l);
            L->fc_b = ADD(1, F, 0, INIT_ZERO, 0, "transformer.h.%d.mlp.c_fc.bias", l);
            L->proj_w = ADD(2, C, F, INIT_NORMAL_RESID, 1, "transformer.h.%d.mlp.c_proj.weight", l);
            L->proj_b = ADD(1, C, 0, INIT_ZERO, 0, "transformer.h.%d.mlp.c_proj.bias", l);
        }
        I->lnf_w = ADD(1, C, 0, INIT_ONE, 0, "transformer.ln_f.weight");
        I->lnf_b = ADD(1, C, 0, INIT_ZERO, 0, "transformer.ln_f.bias");
    } else {
        I->wte = ADD(2, V, C, INIT_NORMAL, 0, "model.embed_tokens.weight");
        for (int l = 0; l < c->n_layer; l++) {
            LayerIdx *L = &I->L[l];
            memset(L, -1, sizeof *L);
            const char *p = "model.layers";
            L->ln1_w = ADD(1, C, 0, INIT_ONE, 0, "%s.%d.input_layernorm.weight", p, l);
            L->q_w = ADD(2, C, C, INIT_NORMAL, 0, "%s.%d.self_attn.q_proj.weight", p, l);
            if (c->attn_bias) L->q_b = ADD(1, C, 0, INIT_ZERO, 0, "%s.%d.self_attn.q_proj.bias", p, l);
            L->k_w = ADD(2, KV, C, INIT_NORMAL, 0, "%s.%d.self_attn.k_proj.weight", p, l);
            if (c->attn_bias) L->k_b = ADD(1, KV, 0, INIT_ZERO, 0, "%s.%d.self_attn.k_proj.bias", p, l);
            L->v_w = ADD(2, KV, C, INIT_NORMAL, 0, "%s.%d.self_attn.v_proj.weight", p, l);
            if (c->attn_bias) L->v_b = ADD(1, KV, 0, INIT_ZERO, 0, "%s.%d.self_attn.v_proj.bias", p, l);
            L->o_w = ADD(2, C, C, INIT_NORMAL, 0, "%s.%d.self_attn.o_proj.weight", p, l);
            if (c->attn_bias) L->o_b = ADD(1, C, 0, INIT_ZERO, 0, "%s.%d.self_attn.o_proj.bias", p, l);
            L->gate_w = ADD(2, F, C, INIT_NORMAL, 0, "%s.%d.mlp.gate_proj.weight", p, l);
            if (c->mlp_bias) L->gate_b = ADD(1, F, 0, INIT_ZERO, 0, "%s.%d.mlp.gate_proj.bias", p, l);
            L->up_w = ADD(2, F, C, INIT_NORMAL, 0, "%s.%d.mlp.up_proj.weight", p, l);
            if (c->mlp_bias) L->up_b = ADD(1, F, 0, INIT_ZERO, 0, "%s.%d.mlp.up_proj.bias", p, l);
            L->down_w = ADD(2, C, F, INIT_NORMAL, 0, "%s.%d.mlp.down_proj.weight", p, l);
            if (c->mlp_bias) L->down_b = ADD(1, C, 0, INIT_ZERO, 0, "%s.%d.mlp.down_proj.bias", p, l);
            L->ln2_w = ADD(1, C, 0, INIT_ONE, 0, "%s.%d.post_attention_layernorm.weight", p, l);
        }
        I->lnf_w = ADD(1, C, 0, INIT_ONE, 0, "model.norm.weight");
    }
    (void)KV;
    if (c->is_classifier)
        I->score = ADD(2, 1, C, INIT_NORMAL, 0, "score.weight");
    else if (!c->tie_embeddings)
        I->lm_head = ADD(2, V, C, INIT_NORMAL, 0, "lm_head.weight");
}
#undef ADD

void model_create(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->impl = xcalloc(1, sizeof(ModelImpl));
    build_layout(m);
    /* calloc: pages of a large model are only touched when filled */
    m->params = xcalloc(m->n_params, sizeof(float));
}

void model_free(Model *m) {
    if (!m->impl) return;
    lora_free(m);
    ModelImpl *I = m->impl;
    free(I->init_kind);
    free(I->L);
    free(I->act);
    free(I->bwd);
    free(I->la);
    free(I->tokens);
    free(I->pos);
    free(I->seg);
    free(I);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->dhidden);
    memset(m, 0, sizeof *m);
}

const ParamTensor *model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* transformers _init_weights (GPT2PreTrainedModel, LlamaPreTrainedModel): Linear,
 * Conv1D and Embedding weights ~ N(0, initializer_range); biases 0; LayerNorm and
 * RMSNorm weights 1; GPT-2 additionally re-draws every "c_proj.weight" with std
 * initializer_range / sqrt(2 n_layer) (GPT-2 paper, section 2.3, "scale the weights of
 * residual layers at initialization by 1/sqrt(N)"). */
void model_init_random(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    float std = m->cfg.init_std, std_resid = std / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        switch (m->impl->init_kind[i]) {
        case INIT_ZERO:
            memset(p, 0, t->numel * sizeof(float));
            break;
        case INIT_ONE:
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
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
    if (!m->grads) m->grads = xcalloc(m->n_params, sizeof(float));
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

void model_zero_grad(Model *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
    if (m->lora && m->lora->grads) memset(m->lora->grads, 0, m->lora->n_params * sizeof(float));
}

/* ---- activations ---- */

static float *P(const Model *m, int idx) {
    return idx < 0 ? NULL : m->params + m->tensors[idx].offset;
}
/* NULL when the base has no gradients (frozen under a LoRA adapter). */
static float *G(const Model *m, int idx) {
    return idx < 0 || !m->grads ? NULL : m->grads + m->tensors[idx].offset;
}

/* A linear layer with its LoRA adapter (lora.h) when one is attached. */
static void lin_fwd(Model *m, int w, int b, float *out, const float *inp, int N, int C, int OC) {
    linear_forward(out, inp, P(m, w), P(m, b), N, C, OC);
    if (m->lora) lora_linear_forward(m, w, out, inp, N);
}
static void lin_bwd(Model *m, int w, int b, float *dinp, const float *dout, const float *inp, int N, int C, int OC) {
    linear_backward(dinp, G(m, w), G(m, b), dout, inp, P(m, w), N, C, OC);
    if (m->lora) lora_linear_backward(m, w, dinp, dout, inp, N);
}

/* Carves the activation block for (B, T); with base == NULL only counts. */
static size_t carve_acts(Model *m, float *base, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    size_t N = (size_t)B * T, C = c->d_model, F = c->d_ff, KV = (size_t)c->n_kv_head * (C / c->n_head);
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
    TAKE(I->scratch, N * C);
    for (int l = 0; l < c->n_layer; l++) {
        LayerAct tmp = {0}, *a = base ? &I->la[l] : &tmp;
        memset(a, 0, sizeof *a);
        TAKE(a->ln1, N * C);
        TAKE(a->ln1_mean, N);
        TAKE(a->ln1_rstd, N);
        if (c->family == FAMILY_GPT2) TAKE(a->qkv, N * 3 * C);
        TAKE(a->q, N * C);
        TAKE(a->k, N * KV);
        TAKE(a->v, N * KV);
        TAKE(a->att, (size_t)B * c->n_head * T * T);
        TAKE(a->atty, N * C);
        TAKE(a->res1, N * C);
        TAKE(a->ln2, N * C);
        TAKE(a->ln2_mean, N);
        TAKE(a->ln2_rstd, N);
        TAKE(a->f1, N * F);
        TAKE(a->f2, N * F);
        if (c->family == FAMILY_LLAMA) TAKE(a->f3, N * F);
        TAKE(a->res2, N * C);
    }
    return at;
}

static size_t carve_bwd(Model *m, float *base, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    size_t N = (size_t)B * T, C = c->d_model, F = c->d_ff, KV = (size_t)c->n_kv_head * (C / c->n_head);
    size_t at = 0;
    TAKE(I->dresid, N * C);
    TAKE(I->dln, N * C);
    TAKE(I->dq, N * C);
    TAKE(I->dk, N * KV);
    TAKE(I->dv, N * KV);
    if (c->family == FAMILY_GPT2) TAKE(I->dqkv, N * 3 * C);
    TAKE(I->datty, N * C);
    TAKE(I->dF1, N * F);
    TAKE(I->dF2, N * F);
    TAKE(I->dF3, N * F);
#undef TAKE
    return at;
}

static void ensure_acts(Model *m, int B, int T) {
    ModelImpl *I = m->impl;
    size_t need = carve_acts(m, NULL, B, T);
    if (need > I->act_cap) {
        free(I->act);
        I->act = xaligned_alloc(need * sizeof(float));
        I->act_cap = need;
    }
    if (!I->la) I->la = xcalloc((size_t)m->cfg.n_layer, sizeof(LayerAct));
    carve_acts(m, I->act, B, T);
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

/* ---- forward ---- */

void model_forward(Model *m, const int *tokens, const int *pos, const int *seg, int B, int T) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    if (B < 1 || T < 1) die_internal("model_forward: empty batch B=%d T=%d", B, T);
    ensure_acts(m, B, T);
    m->B = B;
    m->T = T;
    I->have_lse = 0;
    int N = B * T, C = c->d_model, F = c->d_ff, nh = c->n_head, nkv = c->n_kv_head, hd = C / nh, KV = nkv * hd;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= c->vocab_size)
            die_internal("model_forward: token %d at row %d outside the vocabulary (%d)", tokens[n], n, c->vocab_size);
        I->tokens[n] = tokens[n];
        I->pos[n] = pos ? pos[n] : n % T;
        I->seg[n] = seg ? seg[n] : 0;
        if (c->family == FAMILY_GPT2 && (I->pos[n] < 0 || I->pos[n] >= c->max_seq))
            die_internal("model_forward: position %d outside the %d learned positions", I->pos[n], c->max_seq);
    }
    memset(m->dhidden, 0, (size_t)N * C * sizeof(float));
    if (m->lora) lora_forward_begin(m, N);

    embedding_forward(I->enc, I->tokens, P(m, I->wte), N, C);
    if (c->family == FAMILY_GPT2) position_forward(I->enc, I->pos, P(m, I->wpe), N, C);

    const float *x = I->enc;
    for (int l = 0; l < c->n_layer; l++) {
        const LayerIdx *L = &I->L[l];
        LayerAct *a = &I->la[l];
        if (c->family == FAMILY_GPT2) {
            layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, P(m, L->ln1_w), P(m, L->ln1_b), N, C, c->norm_eps);
            lin_fwd(m, L->qkv_w, L->qkv_b, a->qkv, a->ln1, N, C, 3 * C);
            /* split [N, 3C] into q, k, v [N, C] (transformers: c_attn(x).split(C, dim=2)) */
            for (int n = 0; n < N; n++) {
                const float *row = a->qkv + (size_t)n * 3 * C;
                memcpy(a->q + (size_t)n * C, row, C * sizeof(float));
                memcpy(a->k + (size_t)n * C, row + C, C * sizeof(float));
                memcpy(a->v + (size_t)n * C, row + 2 * C, C * sizeof(float));
            }
        } else {
            rmsnorm_forward(a->ln1, a->ln1_rstd, x, P(m, L->ln1_w), N, C, c->norm_eps);
            lin_fwd(m, L->q_w, L->q_b, a->q, a->ln1, N, C, C);
            lin_fwd(m, L->k_w, L->k_b, a->k, a->ln1, N, C, KV);
            lin_fwd(m, L->v_w, L->v_b, a->v, a->ln1, N, C, KV);
            rope_forward(a->q, I->pos, N, nh, hd, c->rope_theta);
            rope_forward(a->k, I->pos, N, nkv, hd, c->rope_theta);
        }
        attention_forward(a->atty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd);
        lin_fwd(m, L->o_w, L->o_b, I->scratch, a->atty, N, C, C);
        residual_forward(a->res1, x, I->scratch, (size_t)N * C);
        if (c->family == FAMILY_GPT2) {
            layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, P(m, L->ln2_w), P(m, L->ln2_b), N, C,
                              c->norm_eps);
            lin_fwd(m, L->fc_w, L->fc_b, a->f1, a->ln2, N, C, F);
            gelu_forward(a->f2, a->f1, (size_t)N * F);
            lin_fwd(m, L->proj_w, L->proj_b, I->scratch, a->f2, N, F, C);
        } else {
            rmsnorm_forward(a->ln2, a->ln2_rstd, a->res1, P(m, L->ln2_w), N, C, c->norm_eps);
            lin_fwd(m, L->gate_w, L->gate_b, a->f1, a->ln2, N, C, F);
            lin_fwd(m, L->up_w, L->up_b, a->f2, a->ln2, N, C, F);
            swiglu_forward(a->f3, a->f1, a->f2, (size_t)N * F);
            lin_fwd(m, L->down_w, L->down_b, I->scratch, a->f3, N, F, C);
        }
        residual_forward(a->res2, a->res1, I->scratch, (size_t)N * C);
        x = a->res2;
    }
    if (c->family == FAMILY_GPT2)
        layernorm_forward(m->hidden, I->lnf_mean, I->lnf_rstd, x, P(m, I->lnf_w), P(m, I->lnf_b), N, C, c->norm_eps);
    else
        rmsnorm_forward(m->hidden, I->lnf_rstd, x, P(m, I->lnf_w), N, C, c->norm_eps);
}

/* ---- backward ---- */

static void zero(float *p, size_t n) {
    memset(p, 0, n * sizeof(float));
}

void model_backward(Model *m) {
    const ModelConfig *c = &m->cfg;
    ModelImpl *I = m->impl;
    if (!m->grads && !(m->lora && m->lora->grads)) die_internal("model_backward: call model_enable_grads first");
    if (!m->B) die_internal("model_backward: no forward to differentiate");
    ensure_bwd(m);
    int B = m->B, T = m->T, N = B * T, C = c->d_model, F = c->d_ff, nh = c->n_head, nkv = c->n_kv_head;
    int hd = C / nh, KV = nkv * hd;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    const float *xlast = c->n_layer ? I->la[c->n_layer - 1].res2 : I->enc;

    zero(I->dresid, NC);
    if (c->family == FAMILY_GPT2)
        layernorm_backward(I->dresid, G(m, I->lnf_w), G(m, I->lnf_b), m->dhidden, xlast, P(m, I->lnf_w), I->lnf_mean,
                           I->lnf_rstd, N, C);
    else
        rmsnorm_backward(I->dresid, G(m, I->lnf_w), m->dhidden, xlast, P(m, I->lnf_w), I->lnf_rstd, N, C);

    /* I->dresid holds d loss / d (residual stream); each block's two residual additions
     * pass it through unchanged, and the norms' backward add their part into it. */
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const LayerIdx *L = &I->L[l];
        const LayerAct *a = &I->la[l];
        const float *x = l ? I->la[l - 1].res2 : I->enc;
        /* MLP */
        zero(I->dln, NC);
        if (c->family == FAMILY_GPT2) {
            zero(I->dF1, NF);
            zero(I->dF2, NF);
            lin_bwd(m, L->proj_w, L->proj_b, I->dF2, I->dresid, a->f2, N, F, C);
            gelu_backward(I->dF1, a->f1, I->dF2, NF);
            lin_bwd(m, L->fc_w, L->fc_b, I->dln, I->dF1, a->ln2, N, C, F);
            layernorm_backward(I->dresid, G(m, L->ln2_w), G(m, L->ln2_b), I->dln, a->res1, P(m, L->ln2_w), a->ln2_mean,
                               a->ln2_rstd, N, C);
        } else {
            zero(I->dF1, NF);
            zero(I->dF2, NF);
            zero(I->dF3, NF);
            lin_bwd(m, L->down_w, L->down_b, I->dF3, I->dresid, a->f3, N, F, C);
            swiglu_backward(I->dF1, I->dF2, I->dF3, a->f1, a->f2, NF);
            lin_bwd(m, L->gate_w, L->gate_b, I->dln, I->dF1, a->ln2, N, C, F);
            lin_bwd(m, L->up_w, L->up_b, I->dln, I->dF2, a->ln2, N, C, F);
            rmsnorm_backward(I->dresid, G(m, L->ln2_w), I->dln, a->res1, P(m, L->ln2_w), a->ln2_rstd, N, C);
        }
        /* attention */
        zero(I->datty, NC);
        lin_bwd(m, L->o_w, L->o_b, I->datty, I->dresid, a->atty, N, C, C);
        zero(I->dq, NC);
        zero(I->dk, (size_t)N * KV);
        zero(I->dv, (size_t)N * KV);
        attention_backward(I->dq, I->dk, I->dv, I->datty, a->att, a->q, a->k, a->v, I->seg, B, T, nh, nkv, hd);
        zero(I->dln, NC);
        if (c->family == FAMILY_GPT2) {
            for (int n = 0; n < N; n++) {
                float *row = I->dqkv + (size_t)n * 3 * C;
                memcpy(row, I->dq + (size_t)n * C, C * sizeof(float));
                memcpy(row + C, I->dk + (size_t)n * C, C * sizeof(float));
                memcpy(row + 2 * C, I->dv + (size_t)n * C, C * sizeof(float));
            }
            lin_bwd(m, L->qkv_w, L->qkv_b, I->dln, I->dqkv, a->ln1, N, C, 3 * C);
            layernorm_backward(I->dresid, G(m, L->ln1_w), G(m, L->ln1_b), I->dln, x, P(m, L->ln1_w), a->ln1_mean,
                               a->ln1_rstd, N, C);
        } else {
            rope_backward(I->dq, I->pos, N, nh, hd, c->rope_theta);
            rope_backward(I->dk, I->pos, N, nkv, hd, c->rope_theta);
            lin_bwd(m, L->q_w, L->q_b, I->dln, I->dq, a->ln1, N, C, C);
            lin_bwd(m, L->k_w, L->k_b, I->dln, I->dk, a->ln1, N, C, KV);
            lin_bwd(m, L->v_w, L->v_b, I->dln, I->dv, a->ln1, N, C, KV);
            rmsnorm_backward(I->dresid, G(m, L->ln1_w), I->dln, x, P(m, L->ln1_w), a->ln1_rstd, N, C);
        }
    }
    if (!m->grads) return; /* frozen base: no embedding gradients */
    if (c->family == FAMILY_GPT2) position_backward(G(m, I->wpe), I->dresid, I->pos, N, C);
    embedding_backward(G(m, I->wte), I->dresid, I->tokens, N, C);
}

/* ---- heads ---- */

static int lm_head_index(const Model *m) {
    if (m->impl->lm_head >= 0) return m->impl->lm_head;
    if (m->cfg.tie_embeddings) return m->impl->wte;
    die_internal("model has no LM head (a classifier with untied embeddings)");
}

void model_logprobs(Model *m, const int *targets, float *logp, float *entropy) {
    if (!m->B) die_internal("model_logprobs: no forward");
    int N = m->B * m->T, V = m->cfg.vocab_size;
    for (int n = 0; n < N; n++)
        if (targets[n] >= V) die_internal("model_logprobs: target %d outside the vocabulary (%d)", targets[n], V);
    logprobs_forward(logp, entropy, m->impl->lse, m->hidden, P(m, lm_head_index(m)), targets, N, m->cfg.d_model, V);
    m->impl->have_lse = 1;
}

void model_logprobs_backward(Model *m, const int *targets, const float *dlogp) {
    if (!m->impl->have_lse) die_internal("model_logprobs_backward: call model_logprobs first");
    int N = m->B * m->T;
    int h = lm_head_index(m);
    logprobs_backward(m->dhidden, m->grads ? G(m, h) : NULL, dlogp, m->hidden, P(m, h), targets, m->impl->lse, N,
                      m->cfg.d_model, m->cfg.vocab_size);
}

void model_values(Model *m, float *values) {
    if (m->impl->score < 0) die_internal("model_values: not a classifier (no score.weight)");
    if (!m->B) die_internal("model_values: no forward");
    const float *w = m->lora && lora_score_weight(m) ? lora_score_weight(m) : P(m, m->impl->score);
    linear_forward(values, m->hidden, w, NULL, m->B * m->T, m->cfg.d_model, 1);
}

void model_values_backward(Model *m, const float *dvalues) {
    if (m->impl->score < 0) die_internal("model_values_backward: not a classifier (no score.weight)");
    const float *w = P(m, m->impl->score);
    float *dw = G(m, m->impl->score);
    if (m->lora && lora_score_grad(m)) { /* the adapter's trainable copy of the head */
        w = m->lora->params + m->lora->score_off;
        dw = lora_score_grad(m);
    }
    linear_backward(m->dhidden, dw, NULL, dvalues, m->hidden, w, m->B * m->T, m->cfg.d_model, 1);
}
