/* generate.c — see generate.h.  Reads top to bottom like llama2.c's run.c: the
 * weights by name, the cache, one forward step over a set of rows, the loop that
 * prefills, samples and decodes.
 *
 * The forward here is the same transformer as model.c (GPT-2: Radford et al. 2019,
 * pre-LN blocks, learned positions, gelu_new MLP; Llama: Touvron et al. 2023,
 * RMSNorm, RoPE, SwiGLU, grouped-query attention), written for the cached case:
 * each row is one token at a known position of one sequence, attending to that
 * sequence's cached keys and values.  model.c keeps its activations private, so
 * this file reaches the parameters through model_find_tensor by their Hugging Face
 * names (as transformers saves them) and calls the per-row ops of ops.h. */
#define _GNU_SOURCE /* memmem */
#include "generate.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/lora.h"
#include "kernels/ops.h"
#include "base/util.h"

/* ---- weights by name ------------------------------------------------------------ */

typedef struct LayerW {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *qkv_w, *qkv_b;                     /* GPT-2 fused c_attn [3C, C] */
    const float *q_w, *k_w, *v_w, *q_b, *k_b, *v_b; /* Llama */
    const float *o_w, *o_b;
    const float *fc_w, *fc_b, *proj_w, *proj_b;                   /* GPT-2 MLP */
    const float *gate_w, *up_w, *down_w, *gate_b, *up_b, *down_b; /* Llama MLP */
} LayerW;

typedef struct Weights {
    const float *wte, *wpe, *lnf_w, *lnf_b, *lm_head;
    LayerW *layer;
} Weights;

/* transformers saves GPT2LMHeadModel under "transformer." and LlamaForCausalLM under
 * "model."; a bare base model (GPT2Model, LlamaModel, e.g. the original gpt2 hub
 * file) has no prefix.  Both spellings are accepted. */
static const float *wfind(const Model *m, int required, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const float *wfind(const Model *m, int required, const char *fmt, ...) {
    char name[160], pref[176];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const char *prefix = m->cfg.family == FAMILY_GPT2 ? "transformer." : "model.";
    snprintf(pref, sizeof pref, "%s%s", prefix, name);
    const ParamTensor *t = model_find_tensor(m, pref);
    if (!t) t = model_find_tensor(m, name);
    if (!t && required) return NULL;
    return t ? m->params + t->offset : NULL;
}

static int weights_bind(Weights *w, const Model *m, Error *e) {
    const ModelConfig *c = &m->cfg;
    int gpt2 = c->family == FAMILY_GPT2;
    memset(w, 0, sizeof *w);
    /* decoding reads m->params directly: an enabled LoRA adapter must be merged first
     * (lora_merge, or lora_merge_temporary around generation) */
    if (m->lora && m->lora->enabled)
        return err_set(e, EX_SOFTWARE, "generation needs the LoRA adapter merged into the weights (lora_merge)");
    w->layer = xcalloc((size_t)c->n_layer, sizeof(LayerW));
    const char *missing = NULL;
#define NEED(dst, ...)                                                                                                 \
    do {                                                                                                               \
        (dst) = wfind(m, 1, __VA_ARGS__);                                                                              \
        if (!(dst) && !missing) missing = #dst;                                                                        \
    } while (0)
    if (gpt2) {
        NEED(w->wte, "wte.weight");
        NEED(w->wpe, "wpe.weight");
        NEED(w->lnf_w, "ln_f.weight");
        NEED(w->lnf_b, "ln_f.bias");
    } else {
        NEED(w->wte, "embed_tokens.weight");
        NEED(w->lnf_w, "norm.weight");
    }
    const ParamTensor *head = model_find_tensor(m, "lm_head.weight");
    w->lm_head = head ? m->params + head->offset : (c->tie_embeddings ? w->wte : NULL);
    if (!w->lm_head && !missing) missing = "lm_head.weight";
    for (int l = 0; l < c->n_layer && !missing; l++) {
        LayerW *L = &w->layer[l];
        if (gpt2) {
            NEED(L->ln1_w, "h.%d.ln_1.weight", l);
            NEED(L->ln1_b, "h.%d.ln_1.bias", l);
            NEED(L->qkv_w, "h.%d.attn.c_attn.weight", l);
            NEED(L->qkv_b, "h.%d.attn.c_attn.bias", l);
            NEED(L->o_w, "h.%d.attn.c_proj.weight", l);
            NEED(L->o_b, "h.%d.attn.c_proj.bias", l);
            NEED(L->ln2_w, "h.%d.ln_2.weight", l);
            NEED(L->ln2_b, "h.%d.ln_2.bias", l);
            NEED(L->fc_w, "h.%d.mlp.c_fc.weight", l);
            NEED(L->fc_b, "h.%d.mlp.c_fc.bias", l);
            NEED(L->proj_w, "h.%d.mlp.c_proj.weight", l);
            NEED(L->proj_b, "h.%d.mlp.c_proj.bias", l);
        } else {
            NEED(L->ln1_w, "layers.%d.input_layernorm.weight", l);
            NEED(L->ln2_w, "layers.%d.post_attention_layernorm.weight", l);
            NEED(L->q_w, "layers.%d.self_attn.q_proj.weight", l);
            NEED(L->k_w, "layers.%d.self_attn.k_proj.weight", l);
            NEED(L->v_w, "layers.%d.self_attn.v_proj.weight", l);
            NEED(L->o_w, "layers.%d.self_attn.o_proj.weight", l);
            NEED(L->gate_w, "layers.%d.mlp.gate_proj.weight", l);
            NEED(L->up_w, "layers.%d.mlp.up_proj.weight", l);
            NEED(L->down_w, "layers.%d.mlp.down_proj.weight", l);
            if (c->attn_bias) {
                NEED(L->q_b, "layers.%d.self_attn.q_proj.bias", l);
                NEED(L->k_b, "layers.%d.self_attn.k_proj.bias", l);
                NEED(L->v_b, "layers.%d.self_attn.v_proj.bias", l);
                L->o_b = wfind(m, 0, "layers.%d.self_attn.o_proj.bias", l);
            }
            if (c->mlp_bias) {
                NEED(L->gate_b, "layers.%d.mlp.gate_proj.bias", l);
                NEED(L->up_b, "layers.%d.mlp.up_proj.bias", l);
                NEED(L->down_b, "layers.%d.mlp.down_proj.bias", l);
            }
        }
    }
#undef NEED
    if (missing) {
        free(w->layer);
        w->layer = NULL;
        return err_set(e, EX_DATAERR, "model has no tensor for %s (a causal LM with an LM head is needed)", missing);
    }
    return 0;
}

/* ---- the cache ------------------------------------------------------------------ */

void kv_init(KVCache *c, const ModelConfig *cfg, int slots, int cap) {
    c->slots = slots;
    c->cap = cap;
    c->n_layer = cfg->n_layer;
    c->nkv = cfg->n_kv_head;
    c->hd = cfg->d_model / cfg->n_head;
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
    Weights w;
    int max_rows;
    float *x, *h, *q, *k, *v, *qkv, *att, *ff1, *ff2, *mean, *rstd, *hlast;
    int *pos;
    float *scores; /* [threads][score_cap]: n_head x positions per thread */
    int score_cap, threads;
    struct Packed *packed; /* every linear of the trunk and the LM head, repacked */
    int n_packed;
};

static void pack_all(GenState *g);
static void packed_free_all(GenState *g);

GenState *gen_state_new(const Model *m, int max_rows, Error *e) {
    GenState *g = xcalloc(1, sizeof *g);
    g->m = m;
    if (weights_bind(&g->w, m, e)) {
        free(g);
        return NULL;
    }
    const ModelConfig *c = &m->cfg;
    size_t R = (size_t)max_rows, C = c->d_model, hd = C / c->n_head, kvd = (size_t)c->n_kv_head * hd;
    g->max_rows = max_rows;
    g->x = xmalloc(R * C * sizeof(float));
    g->h = xmalloc(R * C * sizeof(float));
    g->q = xmalloc(R * C * sizeof(float));
    g->k = xmalloc(R * kvd * sizeof(float));
    g->v = xmalloc(R * kvd * sizeof(float));
    g->qkv = xmalloc(R * (C + 2 * kvd) * sizeof(float));
    g->att = xmalloc(R * C * sizeof(float));
    g->ff1 = xmalloc(R * c->d_ff * sizeof(float));
    g->ff2 = xmalloc(R * c->d_ff * sizeof(float));
    g->hlast = xmalloc(R * C * sizeof(float));
    g->mean = xmalloc(R * sizeof(float));
    g->rstd = xmalloc(R * sizeof(float));
    g->pos = xmalloc(R * sizeof(int));
    g->threads = omp_get_max_threads();
    pack_all(g);
    return g;
}

void gen_state_free(GenState *g) {
    if (!g) return;
    packed_free_all(g);
    free(g->w.layer);
    free(g->x), free(g->h), free(g->q), free(g->k), free(g->v), free(g->qkv), free(g->att);
    free(g->ff1), free(g->ff2), free(g->hlast), free(g->mean), free(g->rstd), free(g->pos), free(g->scores);
    free(g);
}

/* ---- batch-invariant linear over packed weights ---------------------------------------
 * out[n,o] = in[n,:] . w[o,:] + bias[o], each (n, o) summed in ONE fixed order: a
 * single chain of fused multiply-adds over i = 0..C-1, then the bias.  The loops
 * are blocked for speed (RB rows x PW outputs: every weight load serves RB rows,
 * which is what makes batch 16 cheaper per token than batch 1), but a block only
 * decides which chains run side by side, never the order inside one, so a row's
 * result does not depend on which or how many rows are decoded with it.  BLAS gives
 * no such guarantee (it changes kernels and splits with the shape).
 *
 * The weights are repacked once per GenState into panels of PW outputs, [C][PW]
 * contiguous per panel (zero-padded past OC), so a panel streams sequentially and
 * each step i is one or two vector loads broadcast-multiplied by x[n,i] (the layout
 * of BLAS micro-kernels).  Costs one extra copy of the matrices while generating. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
#define RB 8 /* 8 rows x 2 vectors = 16 accumulators of the 32 registers */
typedef __m512 vec;
static inline vec vzero(void) {
    return _mm512_setzero_ps();
}
static inline vec vload(const float *p) {
    return _mm512_loadu_ps(p);
}
static inline vec vset1(float x) {
    return _mm512_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline void vstore(float *p, vec a) {
    _mm512_storeu_ps(p, a);
}
#elif defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
/* Explicit FMA: left to itself the compiler may fuse a*b+c in some unrolled variants
 * and not in others, and a fused and an unfused product round differently. */
#define VL 8
#define RB 6 /* 6 rows x 2 vectors = 12 accumulators of the 16 registers */
typedef __m256 vec;
static inline vec vzero(void) {
    return _mm256_setzero_ps();
}
static inline vec vload(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline vec vset1(float x) {
    return _mm256_set1_ps(x);
}
static inline vec vfma(vec a, vec b, vec c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline void vstore(float *p, vec a) {
    _mm256_storeu_ps(p, a);
}
#else
/* No FMA instructions: nothing can be fused, every variant rounds alike.  SSE-sized
 * vectors (the baseline of x86-64, and what other targets split into anyway). */
#define VL 4
#define RB 4
typedef float vec __attribute__((vector_size(16)));
static inline vec vzero(void) {
    return (vec){0};
}
static inline vec vload(const float *p) {
    vec r;
    memcpy(&r, p, sizeof r);
    return r;
}
static inline vec vset1(float x) {
    return (vec){x, x, x, x};
}
static inline vec vfma(vec a, vec b, vec c) {
    return a * b + c;
}
static inline void vstore(float *p, vec a) {
    memcpy(p, &a, sizeof a);
}
#endif
#define PW (2 * VL) /* outputs per panel */

typedef struct Packed {
    const float *w; /* the [OC, C] original, the key of the lookup */
    float *p;       /* [npanel][C][PW] */
    int C, OC, npanel;
} Packed;

static void pack_weights(Packed *pk, const float *w, int C, int OC) {
    pk->w = w;
    pk->C = C;
    pk->OC = OC;
    pk->npanel = (OC + PW - 1) / PW;
    pk->p = xaligned_alloc((size_t)pk->npanel * C * PW * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int p = 0; p < pk->npanel; p++) {
        float *dst = pk->p + (size_t)p * C * PW;
        for (int j = 0; j < PW; j++) {
            int o = p * PW + j;
            if (o >= OC) continue; /* stays zero (xaligned_alloc zeroes) */
            const float *src = w + (size_t)o * C;
            for (int i = 0; i < C; i++) dst[(size_t)i * PW + j] = src[i];
        }
    }
}

/* Writes a block's accumulators (+ bias) for the valid outputs of panel p. */
static inline void store_row(float *out, vec lo, vec hi, const float *bias, int p, int OC) {
    float t[PW];
    vstore(t, lo);
    vstore(t + VL, hi);
    int o0 = p * PW, m = OC - o0 < PW ? OC - o0 : PW;
    for (int j = 0; j < m; j++) out[o0 + j] = t[j] + (bias ? bias[o0 + j] : 0.0f);
}

/* RB rows x one panel. */
static void packed_block(float *out, const float *in, const Packed *pk, const float *bias, int n, int p) {
    int C = pk->C, OC = pk->OC;
    const float *w = pk->p + (size_t)p * C * PW;
    const float *x = in + (size_t)n * C;
    vec l[RB], h[RB];
    for (int r = 0; r < RB; r++) l[r] = vzero(), h[r] = vzero();
    for (int i = 0; i < C; i++, w += PW) {
        vec wl = vload(w), wh = vload(w + VL);
        for (int r = 0; r < RB; r++) {
            vec xb = vset1(x[(size_t)r * C + i]);
            l[r] = vfma(xb, wl, l[r]);
            h[r] = vfma(xb, wh, h[r]);
        }
    }
    for (int r = 0; r < RB; r++) store_row(out + (size_t)(n + r) * OC, l[r], h[r], bias, p, OC);
}

/* One row x one panel: the batch-1 case, streaming the panel at memory speed. */
static void packed_row(float *out, const float *in, const Packed *pk, const float *bias, int n, int p) {
    int C = pk->C, OC = pk->OC;
    const float *w = pk->p + (size_t)p * C * PW;
    const float *x = in + (size_t)n * C;
    vec l = vzero(), h = vzero();
    for (int i = 0; i < C; i++, w += PW) {
        vec xb = vset1(x[i]);
        l = vfma(xb, vload(w), l);
        h = vfma(xb, vload(w + VL), h);
    }
    store_row(out + (size_t)n * OC, l, h, bias, p, OC);
}

static void linear_invariant(float *out, const float *in, const Packed *pk, const float *bias, int N, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int p = 0; p < pk->npanel; p++) {
        int n = 0;
        for (; n + RB <= N; n += RB) packed_block(out, in, pk, bias, n, p);
        for (; n < N; n++) packed_row(out, in, pk, bias, n, p);
    }
}

static const Packed *packed_find(const GenState *g, const float *w) {
    for (int i = 0; i < g->n_packed; i++)
        if (g->packed[i].w == w) return &g->packed[i];
    die_internal("generate: no packed copy of a weight matrix");
}

static void pack_all(GenState *g) {
    const ModelConfig *c = &g->m->cfg;
    int C = c->d_model, F = c->d_ff, kvd = c->n_kv_head * (C / c->n_head);
    g->packed = xcalloc((size_t)c->n_layer * 7 + 1, sizeof(Packed));
    Packed *pk = g->packed;
    for (int l = 0; l < c->n_layer; l++) {
        const LayerW *L = &g->w.layer[l];
        if (c->family == FAMILY_GPT2) {
            pack_weights(pk++, L->qkv_w, C, 3 * C);
            pack_weights(pk++, L->o_w, C, C);
            pack_weights(pk++, L->fc_w, C, F);
            pack_weights(pk++, L->proj_w, F, C);
        } else {
            pack_weights(pk++, L->q_w, C, C);
            pack_weights(pk++, L->k_w, C, kvd);
            pack_weights(pk++, L->v_w, C, kvd);
            pack_weights(pk++, L->o_w, C, C);
            pack_weights(pk++, L->gate_w, C, F);
            pack_weights(pk++, L->up_w, C, F);
            pack_weights(pk++, L->down_w, F, C);
        }
    }
    pack_weights(pk++, g->w.lm_head, C, c->vocab_size);
    g->n_packed = (int)(pk - g->packed);
}

static void packed_free_all(GenState *g) {
    for (int i = 0; i < g->n_packed; i++) free(g->packed[i].p);
    free(g->packed);
}

/* lin > 0: the batch-invariant kernel on lin threads; 0: BLAS on the original
 * weights (prefill, where each prompt runs alone and throughput wins). */
static void linear(const GenState *g, float *out, const float *in, const float *w, const float *bias, int N, int C,
                   int OC, int lin) {
    if (lin)
        linear_invariant(out, in, packed_find(g, w), bias, N, lin);
    else
        linear_forward(out, in, w, bias, N, C, OC);
}

/* ---- cached attention ----------------------------------------------------------------
 * Row r (slot s, position p) attends to positions 0..p of slot s (Vaswani et al. 2017,
 * eq. 1, scale 1/sqrt(hd)); query head h reads kv head h / (nh / nkv) (GQA, Ainslie
 * et al. 2023).  One (row, head) per task; a row's result never depends on others. */
/* Sum of the lanes in a fixed tree: lane j += lane j + VL/2, then + VL/4, ...,
 * lane 0 + lane 1 (shuffles where available, the same adds in the same order). */
static inline float lanes_sum(vec a) {
#if VL == 16
    __m256 s8 =
        _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
#elif VL == 8
    __m256 s8 = a;
#endif
#if VL >= 8
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
#else
    float t[VL];
    vstore(t, a);
    for (int h = VL / 2; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) t[j] += t[j + h];
    return t[0];
#endif
}

/* q . k in a fixed order (VL lanes, the lane tree, the scalar tail). */
static inline float dot_fixed(const float *a, const float *b, int n) {
    int nv = n & ~(VL - 1);
    vec acc = vzero();
    for (int i = 0; i < nv; i += VL) acc = vfma(vload(a + i), vload(b + i), acc);
    float d = lanes_sum(acc);
    for (int i = nv; i < n; i++) d += a[i] * b[i];
    return d;
}

/* Heads h0..h1-1 of row r (slot s, position p).  Positions are the outer loop so
 * the cache is read a whole key/value row (every head) at a time, sequentially:
 * the cache is far larger than the caches of the CPU and a head-by-head walk reads
 * it in 256-byte pieces at a stride the prefetchers miss.  sc holds [h1-h0][p+1]
 * scores.  Not inlined: rows processed by either of the two parallel layouts below
 * run this same machine code, so a row's result never depends on the layout. */
static __attribute__((noinline)) void attend_row(GenState *g, const KVCache *kv, int l, int r, int s, int p, int h0,
                                                 int h1, float *sc) {
    const ModelConfig *c = &g->m->cfg;
    int nh = c->n_head, nkv = c->n_kv_head, hd = c->d_model / nh, grp = nh / nkv, P = p + 1;
    float scale = 1.0f / sqrtf((float)hd);
    const float *q = g->q + (size_t)r * nh * hd;
    for (int j = 0; j < P; j++) {
        const float *k = kv->k + kv_off(kv, l, s, j);
        for (int h = h0; h < h1; h++)
            sc[(size_t)(h - h0) * P + j] = dot_fixed(q + (size_t)h * hd, k + (size_t)(h / grp) * hd, hd) * scale;
    }
    float inv[h1 - h0];
    for (int h = h0; h < h1; h++) {
        float *row = sc + (size_t)(h - h0) * P, mx = -INFINITY;
        for (int j = 0; j < P; j++)
            if (row[j] > mx) mx = row[j];
        double sum = 0;
        for (int j = 0; j < P; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        inv[h - h0] = (float)(1.0 / sum);
        float *o = g->att + ((size_t)r * nh + h) * hd;
        for (int i = 0; i < hd; i++) o[i] = 0;
    }
    for (int j = 0; j < P; j++) {
        const float *v = kv->v + kv_off(kv, l, s, j);
        for (int h = h0; h < h1; h++) {
            const float *vh = v + (size_t)(h / grp) * hd;
            float a = sc[(size_t)(h - h0) * P + j] * inv[h - h0];
            float *o = g->att + ((size_t)r * nh + h) * hd;
            for (int i = 0; i < hd; i++) o[i] += a * vh[i];
        }
    }
}

/* Vaswani et al. 2017, eq. 1, scale 1/sqrt(hd), over each row's cached positions
 * 0..p; query head h reads kv head h / (nh / nkv) (GQA, Ainslie et al. 2023).
 * Rows in parallel when there are enough of them (decode batches, prefill),
 * otherwise heads (batch 1). */
static void attention_cached(GenState *g, const KVCache *kv, int l, const int *slots, int n, int nt) {
    int nh = g->m->cfg.n_head;
    if (n >= nt) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int r = 0; r < n; r++) {
            float *sc = g->scores + (size_t)omp_get_thread_num() * g->score_cap;
            attend_row(g, kv, l, r, slots[r], g->pos[r], 0, nh, sc);
        }
    } else {
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
        for (int r = 0; r < n; r++)
            for (int h = 0; h < nh; h++) {
                float *sc = g->scores + (size_t)omp_get_thread_num() * g->score_cap;
                attend_row(g, kv, l, r, slots[r], g->pos[r], h, h + 1, sc);
            }
    }
}

/* ---- one forward step over a set of rows --------------------------------------------- */

void gen_forward(GenState *g, KVCache *kv, const int *tokens, const int *slots, int n, const unsigned char *want_logits,
                 float *logits, int inv) {
    const Model *m = g->m;
    const ModelConfig *c = &m->cfg;
    const Weights *w = &g->w;
    int C = c->d_model, nh = c->n_head, nkv = c->n_kv_head, hd = C / nh, kvd = nkv * hd, F = c->d_ff;
    int gpt2 = c->family == FAMILY_GPT2;
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
    if (gpt2) position_forward(g->x, g->pos, w->wpe, n, C);
    for (int l = 0; l < c->n_layer; l++) {
        const LayerW *L = &w->layer[l];
        /* attention block */
        if (gpt2) {
            layernorm_forward(g->h, g->mean, g->rstd, g->x, L->ln1_w, L->ln1_b, n, C, c->norm_eps);
            linear(g, g->qkv, g->h, L->qkv_w, L->qkv_b, n, C, 3 * C, lin);
            for (int r = 0; r < n; r++) {
                const float *src = g->qkv + (size_t)r * 3 * C;
                memcpy(g->q + (size_t)r * C, src, C * sizeof(float));
                memcpy(g->k + (size_t)r * C, src + C, C * sizeof(float));
                memcpy(g->v + (size_t)r * C, src + 2 * C, C * sizeof(float));
            }
        } else {
            rmsnorm_forward(g->h, g->rstd, g->x, L->ln1_w, n, C, c->norm_eps);
            linear(g, g->q, g->h, L->q_w, L->q_b, n, C, C, lin);
            linear(g, g->k, g->h, L->k_w, L->k_b, n, C, kvd, lin);
            linear(g, g->v, g->h, L->v_w, L->v_b, n, C, kvd, lin);
            rope_forward(g->q, g->pos, n, nh, hd, c->rope_theta);
            rope_forward(g->k, g->pos, n, nkv, hd, c->rope_theta);
        }
        for (int r = 0; r < n; r++) {
            size_t off = kv_off(kv, l, slots[r], g->pos[r]);
            memcpy(kv->k + off, g->k + (size_t)r * kvd, kvd * sizeof(float));
            memcpy(kv->v + off, g->v + (size_t)r * kvd, kvd * sizeof(float));
        }
        attention_cached(g, kv, l, slots, n, nt);
        linear(g, g->h, g->att, L->o_w, L->o_b, n, C, C, lin);
        residual_forward(g->x, g->x, g->h, (size_t)n * C);
        /* MLP block */
        if (gpt2) {
            layernorm_forward(g->h, g->mean, g->rstd, g->x, L->ln2_w, L->ln2_b, n, C, c->norm_eps);
            linear(g, g->ff1, g->h, L->fc_w, L->fc_b, n, C, F, lin);
            gelu_forward(g->ff2, g->ff1, (size_t)n * F);
            linear(g, g->h, g->ff2, L->proj_w, L->proj_b, n, F, C, lin);
        } else {
            rmsnorm_forward(g->h, g->rstd, g->x, L->ln2_w, n, C, c->norm_eps);
            linear(g, g->ff1, g->h, L->gate_w, L->gate_b, n, C, F, lin);
            linear(g, g->ff2, g->h, L->up_w, L->up_b, n, C, F, lin);
            swiglu_forward(g->ff1, g->ff1, g->ff2, (size_t)n * F);
            linear(g, g->h, g->ff1, L->down_w, L->down_b, n, F, C, lin);
        }
        residual_forward(g->x, g->x, g->h, (size_t)n * C);
    }
    for (int r = 0; r < n; r++) kv->len[slots[r]] = g->pos[r] + 1;

    /* final norm and LM head, only for the rows that want logits */
    int nl = 0;
    for (int r = 0; r < n; r++)
        if (!want_logits || want_logits[r]) memcpy(g->h + (size_t)nl++ * C, g->x + (size_t)r * C, C * sizeof(float));
    if (nl > 0) {
        if (gpt2)
            layernorm_forward(g->hlast, g->mean, g->rstd, g->h, w->lnf_w, w->lnf_b, nl, C, c->norm_eps);
        else
            rmsnorm_forward(g->hlast, g->rstd, g->h, w->lnf_w, nl, C, c->norm_eps);
        linear_invariant(logits, g->hlast, packed_find(g, w->lm_head), NULL, nl, nt);
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

int generate(Model *m, const GenConfig *cfg, const Tokenizer *tok, const int *const *prompts, const int *lens,
             const long *prompt_ids, int n, GenSeq *out, void (*progress)(void *ctx, int done, long tokens),
             void *progress_ctx, Error *e) {
    const ModelConfig *mc = &m->cfg;
    int V = mc->vocab_size;
    if (cfg->max_new_tokens < 1) return err_set(e, EX_USAGE, "--max-new-tokens must be >= 1");
    if (cfg->num_samples < 1) return err_set(e, EX_USAGE, "--num-samples must be >= 1");
    if (cfg->batch_size < 1) return err_set(e, EX_USAGE, "--batch-size must be >= 1");
    if (cfg->n_stop > 0 && !tok) return err_set(e, EX_USAGE, "stop strings need a tokenizer");
    if (sampler_config_check(&cfg->sampler, e)) return e->code;
    int maxlen = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return err_set(e, EX_DATAERR, "prompt %d is empty", i);
        if (lens[i] >= mc->max_seq)
            return err_set(e, EX_DATAERR, "prompt %d has %d tokens; the model's context is %d", i, lens[i],
                           mc->max_seq);
        for (int t = 0; t < lens[i]; t++)
            if (prompts[i][t] < 0 || prompts[i][t] >= V)
                return err_set(e, EX_DATAERR, "prompt %d: token %d is id %d, outside the vocabulary (%d)", i, t,
                               prompts[i][t], V);
        if (lens[i] > maxlen) maxlen = lens[i];
    }
    long nseq = (long)n * cfg->num_samples;
    if (nseq == 0) return 0;
    /* a sequence never outgrows the context: bounds the cache and the per-sequence
     * buffers however large --max-new-tokens is (long: no int overflow) */
    int cap = (long)maxlen + cfg->max_new_tokens < mc->max_seq ? maxlen + cfg->max_new_tokens : mc->max_seq;
    size_t room = (size_t)(cfg->max_new_tokens < mc->max_seq ? cfg->max_new_tokens : mc->max_seq);
    int nslot = cfg->batch_size < nseq ? cfg->batch_size : (int)nseq;
    GenState *g = gen_state_new(m, maxlen > nslot ? maxlen : nslot, e);
    if (!g) return e->code;
    KVCache kv;
    kv_init(&kv, mc, nslot, cap);
    Slot *slot = xcalloc((size_t)nslot, sizeof(Slot));
    for (int s = 0; s < nslot; s++) {
        slot[s].seq = -1;
        sampler_init(&slot[s].sampler, &cfg->sampler, V);
        slot[s].hist = xmalloc((size_t)cap * sizeof(int));
        slot[s].logits = xmalloc((size_t)V * sizeof(float));
    }
    /* The last prompt prefilled: its keys/values and last logits, so the other
     * samples of that prompt start from a copy instead of a second prefill. */
    int pre_prompt = -1;
    size_t kvrow = (size_t)kv.nkv * kv.hd;
    float *pre_k = xmalloc((size_t)mc->n_layer * maxlen * kvrow * sizeof(float));
    float *pre_v = xmalloc((size_t)mc->n_layer * maxlen * kvrow * sizeof(float));
    float *pre_logits = xmalloc((size_t)V * sizeof(float));
    int *rows_tok = xmalloc((size_t)(maxlen > nslot ? maxlen : nslot) * sizeof(int));
    int *rows_slot = xmalloc((size_t)(maxlen > nslot ? maxlen : nslot) * sizeof(int));
    unsigned char *want = xcalloc((size_t)(maxlen > nslot ? maxlen : nslot), 1);
    float *step_logits = xmalloc((size_t)nslot * V * sizeof(float));
    long next = 0, finished = 0, tokens_out = 0;

    while (finished < nseq) {
        /* 1. start waiting sequences in free slots (prefill, or copy the prefix) */
        for (int s = 0; s < nslot && next < nseq; s++) {
            if (slot[s].seq >= 0) continue;
            Slot *sl = &slot[s];
            int p = (int)(next / cfg->num_samples), smp = (int)(next % cfg->num_samples), L = lens[p];
            if (pre_prompt == p) {
                for (int l = 0; l < mc->n_layer; l++) {
                    memcpy(kv.k + kv_off(&kv, l, s, 0), pre_k + (size_t)l * maxlen * kvrow, L * kvrow * sizeof(float));
                    memcpy(kv.v + kv_off(&kv, l, s, 0), pre_v + (size_t)l * maxlen * kvrow, L * kvrow * sizeof(float));
                }
                kv.len[s] = L;
                memcpy(sl->logits, pre_logits, (size_t)V * sizeof(float));
            } else {
                kv.len[s] = 0;
                for (int t = 0; t < L; t++) rows_tok[t] = prompts[p][t], rows_slot[t] = s, want[t] = t == L - 1;
                gen_forward(g, &kv, rows_tok, rows_slot, L, want, sl->logits, 0);
                for (int t = 0; t < L; t++) want[t] = 0;
                for (int l = 0; l < mc->n_layer; l++) {
                    memcpy(pre_k + (size_t)l * maxlen * kvrow, kv.k + kv_off(&kv, l, s, 0), L * kvrow * sizeof(float));
                    memcpy(pre_v + (size_t)l * maxlen * kvrow, kv.v + kv_off(&kv, l, s, 0), L * kvrow * sizeof(float));
                }
                memcpy(pre_logits, sl->logits, (size_t)V * sizeof(float));
                pre_prompt = p;
            }
            GenSeq *q = &out[next];
            memset(q, 0, sizeof *q);
            q->prompt = p;
            q->sample = smp;
            q->stop_index = -1;
            q->tokens = xmalloc(room * sizeof(int));
            q->logprobs = xmalloc(room * sizeof(float));
            q->sample_logprobs = xmalloc(room * sizeof(float));
            gen_rng_seed(&sl->rng, cfg->seed, prompt_ids ? prompt_ids[p] : p, smp);
            memcpy(sl->hist, prompts[p], (size_t)L * sizeof(int));
            sl->n_hist = L;
            sl->text_len = 0;
            sl->done = 0;
            sl->seq = (int)next++;
        }
        /* 2. sample one token for every live sequence (independent per slot) */
#pragma omp parallel for schedule(dynamic)
        for (int s = 0; s < nslot; s++) {
            Slot *sl = &slot[s];
            if (sl->seq < 0) continue;
            GenSeq *q = &out[sl->seq];
            float lp, slp;
            int t = sampler_sample(&sl->sampler, sl->logits, sl->hist, sl->n_hist, &sl->rng, &lp, &slp);
            q->tokens[q->n_tokens] = t;
            q->logprobs[q->n_tokens] = lp;
            q->sample_logprobs[q->n_tokens] = slp;
            q->n_tokens++;
            q->logprob += lp;
            sl->hist[sl->n_hist++] = t;
        }
        /* 3. stop conditions (serial: the tokenizer is not shared across threads) */
        for (int s = 0; s < nslot; s++) {
            Slot *sl = &slot[s];
            if (sl->seq < 0) continue;
            GenSeq *q = &out[sl->seq];
            int t = q->tokens[q->n_tokens - 1];
            tokens_out++;
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
            if (sl->done) {
                sl->seq = -1;
                finished++;
            }
        }
        if (progress) progress(progress_ctx, (int)finished, tokens_out);
        /* 4. one decode step for the sequences still running */
        int nr = 0;
        for (int s = 0; s < nslot; s++)
            if (slot[s].seq >= 0) rows_tok[nr] = slot[s].hist[slot[s].n_hist - 1], rows_slot[nr++] = s;
        if (nr == 0) continue;
        gen_forward(g, &kv, rows_tok, rows_slot, nr, NULL, step_logits, 1);
        for (int r = 0; r < nr; r++)
            memcpy(slot[rows_slot[r]].logits, step_logits + (size_t)r * V, (size_t)V * sizeof(float));
    }

    for (int s = 0; s < nslot; s++) {
        sampler_free(&slot[s].sampler);
        free(slot[s].hist);
        free(slot[s].text);
        free(slot[s].logits);
    }
    free(slot);
    free(pre_k), free(pre_v), free(pre_logits), free(rows_tok), free(rows_slot), free(want), free(step_logits);
    kv_free(&kv);
    gen_state_free(g);
    return 0;
}
