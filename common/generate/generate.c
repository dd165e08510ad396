/* generate.c — see generate.h.  Reads top to bottom like llama2.c's run.c: the
 * cache, one forward step over a set of rows, the loop that prefills, samples and
 * decodes.
 *
 * The forward here is the same transformer as model.c, written for the cached case:
 * each row is one token at a known position of one sequence, attending to that
 * sequence's cached keys and values.  The weights come from the model's view
 * (m->w, filled by model_create from the family table) and the per-family pieces
 * (norms, RoPE, activation, scales) from model.h, so no tensor name appears here.
 * The SIMD kernels (packed batch-invariant linears, cached attention rows) are in
 * kernels/decode.c. */
#define _GNU_SOURCE /* memmem */
#include "generate.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/decode.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"
#include "model/lora.h"

/* ---- the cache ------------------------------------------------------------------ */

void kv_init(KVCache *c, const ModelConfig *cfg, int slots, int cap) {
    c->slots = slots;
    c->cap = cap;
    c->n_layer = cfg->n_layer;
    c->nkv = cfg->n_kv_head;
    c->hd = model_head_dim(cfg);
    size_t n = (size_t)cfg->n_layer * slots * cap * c->nkv * c->hd;
    c->k = xmalloc(n * sizeof(float));
    c->v = xmalloc(n * sizeof(float));
    c->len = xcalloc((size_t)slots, sizeof(int));
}

void kv_free(KVCache *c) {
    free(c->k);
    free(c->v);
    free(c->len);
    memset(c, 0, sizeof *c);
}

/* Row of position pos of slot s in layer l: [nkv*hd] floats. */
static inline size_t kv_off(const KVCache *c, int l, int s, int pos) {
    return (((size_t)l * c->slots + s) * c->cap + pos) * (size_t)c->nkv * c->hd;
}

/* ---- scratch ---------------------------------------------------------------------- */

struct GenState {
    const Model *m;
    int max_rows;
    float *x, *h, *q, *k, *v, *qkv, *att, *ff1, *ff2, *gu, *mean, *rstd, *rstdh, *hlast;
    int *pos;
    float *scores; /* [threads][score_cap]: n_head x positions per thread */
    int score_cap, threads;
    DecodePacked *packed; /* every linear of the trunk and the LM head, repacked */
    int n_packed;
    DecodeDtype dtype;
};

static void pack_all(GenState *g);
static void packed_free_all(GenState *g);

GenState *gen_state_new(const Model *m, int max_rows, Error *e) {
    return gen_state_new_dtype(m, max_rows, DECODE_FP32, e);
}

GenState *gen_state_new_dtype(const Model *m, int max_rows, DecodeDtype dtype, Error *e) {
    /* decoding reads m->params directly: an enabled LoRA adapter must be merged first
     * (lora_merge, or lora_merge_temporary around generation) */
    if (m->lora && m->lora->enabled) {
        err_set(e, EX_SOFTWARE, "generation needs the LoRA adapter merged into the weights (lora_merge)");
        return NULL;
    }
    if (!m->w.lm_head) {
        err_set(e, EX_DATAERR, "model has no LM head (a causal LM is needed, not a classifier)");
        return NULL;
    }
    GenState *g = xcalloc(1, sizeof *g);
    g->m = m;
    const ModelConfig *c = &m->cfg;
    size_t R = (size_t)max_rows, C = c->d_model, hd = model_head_dim(c), Q = (size_t)c->n_head * hd;
    size_t kvd = (size_t)c->n_kv_head * hd, F = c->d_ff;
    g->max_rows = max_rows;
    g->x = xmalloc(R * C * sizeof(float));
    g->h = xmalloc(R * (C > Q ? C : Q) * sizeof(float));
    g->q = xmalloc(R * Q * sizeof(float));
    g->k = xmalloc(R * kvd * sizeof(float));
    g->v = xmalloc(R * kvd * sizeof(float));
    g->qkv = xmalloc(R * (Q + 2 * kvd) * sizeof(float));
    g->att = xmalloc(R * Q * sizeof(float));
    g->ff1 = xmalloc(R * F * sizeof(float));
    g->ff2 = xmalloc(R * F * sizeof(float));
    g->gu = xmalloc(R * 2 * F * sizeof(float));
    g->hlast = xmalloc(R * C * sizeof(float));
    g->mean = xmalloc(R * sizeof(float));
    g->rstd = xmalloc(R * sizeof(float));
    g->rstdh = xmalloc(R * c->n_head * sizeof(float));
    g->pos = xmalloc(R * sizeof(int));
    g->threads = omp_get_max_threads();
    g->dtype = dtype;
    pack_all(g);
    return g;
}

void gen_state_free(GenState *g) {
    if (!g) return;
    packed_free_all(g);
    free(g->x), free(g->h), free(g->q), free(g->k), free(g->v), free(g->qkv), free(g->att), free(g->gu);
    free(g->ff1), free(g->ff2), free(g->hlast), free(g->mean), free(g->rstd), free(g->rstdh), free(g->pos);
    free(g->scores);
    free(g);
}

static const DecodePacked *packed_find(const GenState *g, const float *w) {
    for (int i = 0; i < g->n_packed; i++)
        if (g->packed[i].w == w) return &g->packed[i];
    die_internal("generate: no packed copy of a weight matrix");
}

/* Every linear of every block (those the family has) and the LM head. */
static void pack_all(GenState *g) {
    const ModelConfig *c = &g->m->cfg;
    int C = c->d_model, F = c->d_ff, hd = model_head_dim(c), Q = c->n_head * hd, kvd = c->n_kv_head * hd;
    g->packed = xcalloc((size_t)c->n_layer * 9 + 1, sizeof(DecodePacked));
    DecodePacked *pk = g->packed;
    for (int l = 0; l < c->n_layer; l++) {
        const LayerWeights *L = &g->m->w.layer[l];
        const struct {
            const float *w;
            int in, out;
        } lin[] = {{L->qkv_w, C, Q + 2 * kvd}, {L->q_w, C, Q},    {L->k_w, C, kvd}, {L->v_w, C, kvd}, {L->o_w, Q, C},
                   {L->gate_up_w, C, 2 * F},   {L->gate_w, C, F}, {L->up_w, C, F},  {L->down_w, F, C}};
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
            if (lin[i].w) decode_pack_dtype(pk++, lin[i].w, lin[i].in, lin[i].out, g->dtype);
    }
    decode_pack_dtype(pk++, g->m->w.lm_head, C, c->vocab_size, g->dtype);
    g->n_packed = (int)(pk - g->packed);
}

static void packed_free_all(GenState *g) {
    for (int i = 0; i < g->n_packed; i++) decode_packed_free(&g->packed[i]);
    free(g->packed);
}

/* lin > 0: the batch-invariant kernel on lin threads; 0: BLAS on the original
 * weights (prefill, where each prompt runs alone and throughput wins). */
static void linear(const GenState *g, float *out, const float *in, const float *w, const float *bias, int N, int C,
                   int OC, int lin) {
    if (lin)
        decode_linear(out, in, packed_find(g, w), bias, N, lin);
    else
        linear_forward(out, in, w, bias, N, C, OC);
}

/* ---- cached attention ----------------------------------------------------------------
 * Vaswani et al. 2017, eq. 1, over each row's cached positions (0..p, or the last
 * `window` of them on a sliding layer); query head h reads kv head h / (nh / nkv)
 * (GQA, Ainslie et al. 2023).  Rows in parallel when there are enough of them
 * (decode batches, prefill), otherwise heads (batch 1).  One (row, heads) per task;
 * a row's result never depends on others. */
static void attend(GenState *g, const KVCache *kv, int l, int r, int s, int h0, int h1, float *sc) {
    const ModelConfig *c = &g->m->cfg;
    int nh = c->n_head, hd = kv->hd, p = g->pos[r], win = g->m->w.info[l].window;
    int j0 = win > 0 && p + 1 > win ? p + 1 - win : 0;
    decode_attend_row(g->att + (size_t)r * nh * hd, g->q + (size_t)r * nh * hd, kv->k + kv_off(kv, l, s, 0),
                      kv->v + kv_off(kv, l, s, 0), (size_t)kv->nkv * hd, j0, p + 1, nh, kv->nkv, hd, h0, h1,
                      model_attn_scale(c), c->attn_softcap, sc);
}

typedef struct AttendJob {
    GenState *g;
    const KVCache *kv;
    const int *slots;
    int l, nh, by_head;
} AttendJob;

/* Item = a row (every head) or, by_head, a (row, head) pair; tid picks the scratch. */
static void attend_task(void *arg, int item, int tid) {
    const AttendJob *j = arg;
    float *sc = j->g->scores + (size_t)tid * j->g->score_cap;
    int r = j->by_head ? item / j->nh : item, h0 = j->by_head ? item % j->nh : 0, h1 = j->by_head ? h0 + 1 : j->nh;
    attend(j->g, j->kv, j->l, r, j->slots[r], h0, h1, sc);
}

static void attention_cached(GenState *g, const KVCache *kv, int l, const int *slots, int n, int nt) {
    int nh = g->m->cfg.n_head;
    AttendJob j = {g, kv, slots, l, nh, n < nt};
    if (nt > g->threads) nt = g->threads; /* scratch is for g->threads threads */
    decode_parallel(nt, j.by_head ? n * nh : n, attend_task, &j);
}

/* ---- one forward step over a set of rows --------------------------------------------- */

/* x += attention block of layer l for n rows (keys/values stored in the cache). */
static void gen_attn_block(GenState *g, KVCache *kv, int l, const int *slots, int n, int lin, int nt) {
    const Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *L = &m->w.layer[l];
    int C = c->d_model, nh = c->n_head, nkv = c->n_kv_head, hd = model_head_dim(c), Q = nh * hd, kvd = nkv * hd;
    model_norm_forward(m, g->h, g->mean, g->rstd, g->x, L->ln1_w, L->ln1_b, n, C);
    if (L->qkv_w) {
        linear(g, g->qkv, g->h, L->qkv_w, L->qkv_b, n, C, Q + 2 * kvd, lin);
        for (int r = 0; r < n; r++) {
            const float *src = g->qkv + (size_t)r * (Q + 2 * kvd);
            memcpy(g->q + (size_t)r * Q, src, Q * sizeof(float));
            memcpy(g->k + (size_t)r * kvd, src + Q, kvd * sizeof(float));
            memcpy(g->v + (size_t)r * kvd, src + Q + kvd, kvd * sizeof(float));
        }
    } else {
        linear(g, g->q, g->h, L->q_w, L->q_b, n, C, Q, lin);
        linear(g, g->k, g->h, L->k_w, L->k_b, n, C, kvd, lin);
        linear(g, g->v, g->h, L->v_w, L->v_b, n, C, kvd, lin);
    }
    if (L->q_norm) { /* per-head norms, in place (each row is read before it is written) */
        model_norm_forward(m, g->q, NULL, g->rstdh, g->q, L->q_norm, NULL, n * nh, hd);
        model_norm_forward(m, g->k, NULL, g->rstdh, g->k, L->k_norm, NULL, n * nkv, hd);
    }
    /* a prompt's rows share a slot: longrope chooses its factors per sequence */
    model_rope(m, l, g->q, g->pos, slots, n, nh, 0);
    model_rope(m, l, g->k, g->pos, slots, n, nkv, 0);
    for (int r = 0; r < n; r++) {
        size_t off = kv_off(kv, l, slots[r], g->pos[r]);
        memcpy(kv->k + off, g->k + (size_t)r * kvd, kvd * sizeof(float));
        memcpy(kv->v + off, g->v + (size_t)r * kvd, kvd * sizeof(float));
    }
    attention_cached(g, kv, l, slots, n, nt);
    linear(g, g->h, g->att, L->o_w, L->o_b, n, Q, C, lin);
    if (L->post_attn_norm) model_norm_forward(m, g->h, NULL, g->rstd, g->h, L->post_attn_norm, NULL, n, C);
    residual_forward(g->x, g->x, g->h, (size_t)n * C);
}

/* x += MLP block of layer l for n rows. */
static void gen_mlp_block(GenState *g, int l, int n, int lin) {
    const Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const LayerWeights *L = &m->w.layer[l];
    int C = c->d_model, F = c->d_ff;
    model_norm_forward(m, g->h, g->mean, g->rstd, g->x, L->ln2_w, L->ln2_b, n, C);
    const float *act = g->ff1;
    if (L->gate_up_w) { /* Phi-3: first half gate, second half up */
        linear(g, g->gu, g->h, L->gate_up_w, NULL, n, C, 2 * F, lin);
        for (int r = 0; r < n; r++) {
            memcpy(g->ff1 + (size_t)r * F, g->gu + (size_t)r * 2 * F, F * sizeof(float));
            memcpy(g->ff2 + (size_t)r * F, g->gu + (size_t)r * 2 * F + F, F * sizeof(float));
        }
        model_mlp_act(m, g->ff1, g->ff1, g->ff2, (size_t)n * F);
    } else if (L->gate_w) {
        linear(g, g->ff1, g->h, L->gate_w, L->gate_b, n, C, F, lin);
        linear(g, g->ff2, g->h, L->up_w, L->up_b, n, C, F, lin);
        model_mlp_act(m, g->ff1, g->ff1, g->ff2, (size_t)n * F);
    } else { /* GPT-2: gelu(c_fc(h)) */
        linear(g, g->ff1, g->h, L->up_w, L->up_b, n, C, F, lin);
        model_mlp_act(m, g->ff2, g->ff1, NULL, (size_t)n * F);
        act = g->ff2;
    }
    linear(g, g->h, act, L->down_w, L->down_b, n, F, C, lin);
    if (L->post_ff_norm) model_norm_forward(m, g->h, NULL, g->rstd, g->h, L->post_ff_norm, NULL, n, C);
    residual_forward(g->x, g->x, g->h, (size_t)n * C);
}

void gen_forward(GenState *g, KVCache *kv, const int *tokens, const int *slots, int n, const unsigned char *want_logits,
                 float *logits, int inv) {
    const Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const ModelView *w = &m->w;
    int C = c->d_model, nh = c->n_head;
    if (n > g->max_rows) die_internal("gen_forward: %d rows, state holds %d", n, g->max_rows);
    for (int r = 0; r < n; r++) g->pos[r] = (r > 0 && slots[r] == slots[r - 1]) ? g->pos[r - 1] + 1 : kv->len[slots[r]];
    /* Decode rows are few: the per-row ops (norms, activations, residuals) cost less
     * than waking a thread team, so they run on this thread and only the matrix
     * products and attention fan out (fewer barriers per step, which also matters
     * when other processes compete for the cores). */
    int nt = g->threads, lin = inv ? nt : 0;
    if (inv) omp_set_num_threads(1);
    if (g->score_cap < kv->cap * nh) {
        free(g->scores);
        g->score_cap = kv->cap * nh;
        g->scores = xmalloc((size_t)g->threads * g->score_cap * sizeof(float));
    }

    embedding_forward(g->x, tokens, w->wte, n, C);
    float es = model_embed_scale(m);
    if (es != 1.0f)
        for (size_t i = 0; i < (size_t)n * C; i++) g->x[i] *= es;
    if (w->wpe) position_forward(g->x, g->pos, w->wpe, n, C);
    for (int l = 0; l < c->n_layer; l++) {
        gen_attn_block(g, kv, l, slots, n, lin, nt);
        gen_mlp_block(g, l, n, lin);
    }
    for (int r = 0; r < n; r++) kv->len[slots[r]] = g->pos[r] + 1;

    /* final norm and LM head, only for the rows that want logits */
    int nl = 0;
    for (int r = 0; r < n; r++)
        if (!want_logits || want_logits[r]) memcpy(g->h + (size_t)nl++ * C, g->x + (size_t)r * C, C * sizeof(float));
    if (nl > 0) {
        model_norm_forward(m, g->hlast, g->mean, g->rstd, g->h, w->lnf_w, w->lnf_b, nl, C);
        decode_linear(logits, g->hlast, packed_find(g, w->lm_head), NULL, nl, nt);
        if (c->final_softcap > 0) softcap_forward(logits, (size_t)nl * c->vocab_size, c->final_softcap);
    }
    if (inv) omp_set_num_threads(nt);
}

/* ---- generation loop ------------------------------------------------------------------- */

GenConfig gen_config_default(void) {
    GenConfig c;
    memset(&c, 0, sizeof c);
    c.sampler = sampler_config_default();
    c.max_new_tokens = 64;
    c.num_samples = 1;
    c.batch_size = 8;
    return c;
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gen_rng_seed(Rng *r, uint64_t seed, long prompt_id, int sample) {
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ ((uint64_t)prompt_id * 0x9e3779b97f4a7c15ULL + 1));
    h = mix64(h ^ ((uint64_t)sample * 0xd1b54a32d192ed03ULL + 2));
    rng_seed(r, h);
}

void gen_seq_free(GenSeq *s) {
    free(s->tokens);
    free(s->logprobs);
    free(s->sample_logprobs);
    memset(s, 0, sizeof *s);
}

/* Per-slot state of a running sequence. */
typedef struct Slot {
    int seq; /* index into out[], -1 when free */
    Sampler sampler;
    Rng rng;
    int *hist; /* prompt + generated, for the repetition penalty */
    int n_hist;
    char *text; /* generated bytes, for stop strings */
    size_t text_len, text_cap;
    float *logits; /* [V] pending logits */
    int done;
} Slot;

/* Returns the index of the first stop string that now occurs in the generated bytes
 * (only the window that the newest token can have completed is searched), or -1. */
static int stop_match(const GenConfig *cfg, const Slot *sl, size_t before) {
    for (int i = 0; i < cfg->n_stop; i++) {
        size_t sn = strlen(cfg->stop[i]);
        if (sn == 0 || sl->text_len < sn) continue;
        size_t from = before + 1 > sn ? before + 1 - sn : 0;
        if (memmem(sl->text + from, sl->text_len - from, cfg->stop[i], sn)) return i;
    }
    return -1;
}

/* Flags and prompts: EX_USAGE / EX_DATAERR naming the prompt; *maxlen the longest. */
static int check_inputs(const ModelConfig *mc, const GenConfig *cfg, const Tokenizer *tok, const int *const *prompts,
                        const int *lens, int n, int *maxlen, Error *e) {
    int V = mc->vocab_size;
    if (cfg->max_new_tokens < 1) return err_set(e, EX_USAGE, "--max-new-tokens must be >= 1");
    if (cfg->num_samples < 1) return err_set(e, EX_USAGE, "--num-samples must be >= 1");
    if (cfg->batch_size < 1) return err_set(e, EX_USAGE, "--batch-size must be >= 1");
    if (cfg->n_stop > 0 && !tok) return err_set(e, EX_USAGE, "stop strings need a tokenizer");
    if (sampler_config_check(&cfg->sampler, e)) return e->code;
    *maxlen = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return err_set(e, EX_DATAERR, "prompt %d is empty", i);
        if (lens[i] >= mc->max_seq)
            return err_set(e, EX_DATAERR, "prompt %d has %d tokens; the model's context is %d", i, lens[i],
                           mc->max_seq);
        for (int t = 0; t < lens[i]; t++)
            if (prompts[i][t] < 0 || prompts[i][t] >= V)
                return err_set(e, EX_DATAERR, "prompt %d: token %d is id %d, outside the vocabulary (%d)", i, t,
                               prompts[i][t], V);
        if (lens[i] > *maxlen) *maxlen = lens[i];
    }
    return 0;
}

/* The state of one generate() call: cache, slots, the last prefilled prompt. */
typedef struct Run {
    const GenConfig *cfg;
    const ModelConfig *mc;
    GenState *g;
    KVCache kv;
    Slot *slot;
    int nslot, maxlen;
    /* The last prompt prefilled: its keys/values and last logits, so the other
     * samples of that prompt start from a copy instead of a second prefill. */
    int pre_prompt;
    float *pre_k, *pre_v, *pre_logits;
    int *rows_tok, *rows_slot;
    unsigned char *want;
    float *step_logits;
} Run;

/* Starts sequence `next` (prompt p, sample smp) in free slot s: prefill, or copy the
 * prefix of the prompt prefilled last; out[next] is initialised. */
static void start_seq(Run *R, int s, long next, const int *const *prompts, const int *lens, const long *prompt_ids,
                      GenSeq *out) {
    const GenConfig *cfg = R->cfg;
    const ModelConfig *mc = R->mc;
    KVCache *kv = &R->kv;
    Slot *sl = &R->slot[s];
    int V = mc->vocab_size, maxlen = R->maxlen;
    int p = (int)(next / cfg->num_samples), smp = (int)(next % cfg->num_samples), L = lens[p];
    size_t kvrow = (size_t)kv->nkv * kv->hd;
    if (R->pre_prompt == p) {
        for (int l = 0; l < mc->n_layer; l++) {
            memcpy(kv->k + kv_off(kv, l, s, 0), R->pre_k + (size_t)l * maxlen * kvrow, L * kvrow * sizeof(float));
            memcpy(kv->v + kv_off(kv, l, s, 0), R->pre_v + (size_t)l * maxlen * kvrow, L * kvrow * sizeof(float));
        }
        kv->len[s] = L;
        memcpy(sl->logits, R->pre_logits, (size_t)V * sizeof(float));
    } else {
        kv->len[s] = 0;
        for (int t = 0; t < L; t++) R->rows_tok[t] = prompts[p][t], R->rows_slot[t] = s, R->want[t] = t == L - 1;
        gen_forward(R->g, kv, R->rows_tok, R->rows_slot, L, R->want, sl->logits, 0);
        for (int t = 0; t < L; t++) R->want[t] = 0;
        for (int l = 0; l < mc->n_layer; l++) {
            memcpy(R->pre_k + (size_t)l * maxlen * kvrow, kv->k + kv_off(kv, l, s, 0), L * kvrow * sizeof(float));
            memcpy(R->pre_v + (size_t)l * maxlen * kvrow, kv->v + kv_off(kv, l, s, 0), L * kvrow * sizeof(float));
        }
        memcpy(R->pre_logits, sl->logits, (size_t)V * sizeof(float));
        R->pre_prompt = p;
    }
    GenSeq *q = &out[next];
    memset(q, 0, sizeof *q);
    q->prompt = p;
    q->sample = smp;
    q->stop_index = -1;
    /* at most the context's length: bounded however large --max-new-tokens is */
    size_t room = (size_t)(cfg->max_new_tokens < mc->max_seq ? cfg->max_new_tokens : mc->max_seq);
    q->tokens = xmalloc(room * sizeof(int));
    q->logprobs = xmalloc(room * sizeof(float));
    q->sample_logprobs = xmalloc(room * sizeof(float));
    gen_rng_seed(&sl->rng, cfg->seed, prompt_ids ? prompt_ids[p] : p, smp);
    memcpy(sl->hist, prompts[p], (size_t)L * sizeof(int));
    sl->n_hist = L;
    sl->text_len = 0;
    sl->done = 0;
    sl->seq = (int)next;
}

/* Stop conditions of the slot's newest token: EOS, a stop string, the length limits.
 * Returns 1 when the sequence is finished. */
static int check_stop(const GenConfig *cfg, const ModelConfig *mc, const Tokenizer *tok, Slot *sl, GenSeq *q) {
    int t = q->tokens[q->n_tokens - 1];
    for (int i = 0; i < cfg->n_eos; i++)
        if (t == cfg->eos_ids[i]) q->eos = 1;
    if (q->eos) {
        q->finish = GEN_FINISH_STOP;
        sl->done = 1;
    } else if (cfg->n_stop > 0) {
        char buf[256];
        int nb = tok_id_bytes(tok, t, buf, sizeof buf);
        if (nb > (int)sizeof buf) nb = sizeof buf;
        if (nb > 0) {
            size_t before = sl->text_len;
            if (sl->text_len + nb > sl->text_cap) {
                sl->text_cap = 2 * (sl->text_len + nb) + 64;
                sl->text = xrealloc(sl->text, sl->text_cap);
            }
            memcpy(sl->text + sl->text_len, buf, (size_t)nb);
            sl->text_len += nb;
            int k = stop_match(cfg, sl, before);
            if (k >= 0) {
                q->finish = GEN_FINISH_STOP;
                q->stop_index = k;
                sl->done = 1;
            }
        }
    }
    /* the whole sequence must fit the context, as transformers' max_length (and so a
     * full recompute of prompt + completion stays possible) */
    if (!sl->done && (q->n_tokens >= cfg->max_new_tokens || sl->n_hist >= mc->max_seq)) {
        q->finish = GEN_FINISH_LENGTH;
        sl->done = 1;
    }
    return sl->done;
}

/* LongRoPE (Phi-3): the token at position original_max_position_embeddings is the
 * first past the original context, where the long factors take over for the whole
 * sequence.  transformers' Phi3ForCausalLM.prepare_inputs_for_generation drops the
 * cache at that step and recomputes every position with the long factors; so does
 * this: slot s is prefilled again with its history (prompt + generated tokens). */
static void reprefill(Run *R, int s) {
    Slot *sl = &R->slot[s];
    int L = sl->n_hist;
    R->kv.len[s] = 0;
    for (int t = 0; t < L; t++) R->rows_tok[t] = sl->hist[t], R->rows_slot[t] = s, R->want[t] = t == L - 1;
    gen_forward(R->g, &R->kv, R->rows_tok, R->rows_slot, L, R->want, sl->logits, 0);
    for (int t = 0; t < L; t++) R->want[t] = 0;
}

/* Step 2 of the loop for slot s: sample its next token, append it.  On the decode
 * pool (decode_parallel), like the step's other loops: a slot's draw uses its own
 * RNG, so the thread that runs it changes nothing. */
typedef struct SampleJob {
    Slot *slot;
    GenSeq *out;
} SampleJob;

static void sample_task(void *arg, int s, int tid) {
    const SampleJob *j = arg;
    Slot *sl = &j->slot[s];
    if (sl->seq < 0) return;
    GenSeq *q = &j->out[sl->seq];
    float lp, slp;
    int t = sampler_sample(&sl->sampler, sl->logits, sl->hist, sl->n_hist, &sl->rng, &lp, &slp);
    q->tokens[q->n_tokens] = t;
    q->logprobs[q->n_tokens] = lp;
    q->sample_logprobs[q->n_tokens] = slp;
    q->n_tokens++;
    q->logprob += lp;
    sl->hist[sl->n_hist++] = t;
}

static void run_free(Run *R) {
    for (int s = 0; s < R->nslot; s++) {
        sampler_free(&R->slot[s].sampler);
        free(R->slot[s].hist);
        free(R->slot[s].text);
        free(R->slot[s].logits);
    }
    free(R->slot);
    free(R->pre_k), free(R->pre_v), free(R->pre_logits), free(R->rows_tok), free(R->rows_slot), free(R->want);
    free(R->step_logits);
    kv_free(&R->kv);
    gen_state_free(R->g);
}

int generate(Model *m, const GenConfig *cfg, const Tokenizer *tok, const int *const *prompts, const int *lens,
             const long *prompt_ids, int n, GenSeq *out, void (*progress)(void *ctx, int done, long tokens),
             void *progress_ctx, Error *e) {
    const ModelConfig *mc = &m->cfg;
    int V = mc->vocab_size, maxlen = 0;
    if (check_inputs(mc, cfg, tok, prompts, lens, n, &maxlen, e)) return e->code;
    long nseq = (long)n * cfg->num_samples;
    if (nseq == 0) return 0;
    Run R = {.cfg = cfg, .mc = mc, .maxlen = maxlen, .pre_prompt = -1};
    /* a sequence never outgrows the context: bounds the cache and the per-sequence
     * buffers however large --max-new-tokens is (long: no int overflow) */
    int cap = (long)maxlen + cfg->max_new_tokens < mc->max_seq ? maxlen + cfg->max_new_tokens : mc->max_seq;
    R.nslot = cfg->batch_size < nseq ? cfg->batch_size : (int)nseq;
    int rows = maxlen > R.nslot ? maxlen : R.nslot;
    int long_from = mc->n_layer ? m->w.info[0].long_from : 0; /* longrope: see reprefill */
    if (long_from > 0 && cap > rows) rows = cap;
    R.g = gen_state_new_dtype(m, rows, cfg->dtype, e);
    if (!R.g) return e->code;
    kv_init(&R.kv, mc, R.nslot, cap);
    R.slot = xcalloc((size_t)R.nslot, sizeof(Slot));
    for (int s = 0; s < R.nslot; s++) {
        R.slot[s].seq = -1;
        sampler_init(&R.slot[s].sampler, &cfg->sampler, V);
        R.slot[s].hist = xmalloc((size_t)cap * sizeof(int));
        R.slot[s].logits = xmalloc((size_t)V * sizeof(float));
    }
    size_t kvrow = (size_t)R.kv.nkv * R.kv.hd;
    R.pre_k = xmalloc((size_t)mc->n_layer * maxlen * kvrow * sizeof(float));
    R.pre_v = xmalloc((size_t)mc->n_layer * maxlen * kvrow * sizeof(float));
    R.pre_logits = xmalloc((size_t)V * sizeof(float));
    R.rows_tok = xmalloc((size_t)rows * sizeof(int));
    R.rows_slot = xmalloc((size_t)rows * sizeof(int));
    R.want = xcalloc((size_t)rows, 1);
    R.step_logits = xmalloc((size_t)R.nslot * V * sizeof(float));
    long next = 0, finished = 0, tokens_out = 0;
    Slot *slot = R.slot;
    int nslot = R.nslot;

    while (finished < nseq) {
        /* 1. start waiting sequences in free slots (prefill, or copy the prefix) */
        for (int s = 0; s < nslot && next < nseq; s++)
            if (slot[s].seq < 0) start_seq(&R, s, next++, prompts, lens, prompt_ids, out);
        /* 2. sample one token for every live sequence (independent per slot) */
        SampleJob sj = {slot, out};
        decode_parallel(R.g->threads, nslot, sample_task, &sj);
        /* 3. stop conditions (serial: the tokenizer is not shared across threads) */
        for (int s = 0; s < nslot; s++) {
            if (slot[s].seq < 0) continue;
            tokens_out++;
            if (check_stop(cfg, mc, tok, &slot[s], &out[slot[s].seq])) {
                slot[s].seq = -1;
                finished++;
            }
        }
        if (progress) progress(progress_ctx, (int)finished, tokens_out);
        /* 4. one decode step for the sequences still running */
        int nr = 0;
        for (int s = 0; s < nslot; s++) /* first: reprefill uses the row buffers */
            if (slot[s].seq >= 0 && long_from > 0 && slot[s].n_hist - 1 == long_from) reprefill(&R, s);
        for (int s = 0; s < nslot; s++)
            if (slot[s].seq >= 0 && !(long_from > 0 && slot[s].n_hist - 1 == long_from))
                R.rows_tok[nr] = slot[s].hist[slot[s].n_hist - 1], R.rows_slot[nr++] = s;
        if (nr == 0) continue;
        gen_forward(R.g, &R.kv, R.rows_tok, R.rows_slot, nr, NULL, R.step_logits, 1);
        for (int r = 0; r < nr; r++)
            memcpy(slot[R.rows_slot[r]].logits, R.step_logits + (size_t)r * V, (size_t)V * sizeof(float));
    }
    run_free(&R);
    return 0;
}
