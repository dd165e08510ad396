/* gguf_import.c — a llama-architecture GGUF (llama.cpp) as a Hugging Face
 * LlamaForCausalLM directory: the inverse of llama.cpp's convert_hf_to_gguf.py for
 * the tensors, hyper-parameters and byte-level BPE tokenizer it writes.
 *
 * What is undone, and where it is defined:
 *   - tensor names: gguf-py/gguf/tensor_mapping.py (token_embd <- model.embed_tokens,
 *     blk.N.attn_q <- model.layers.N.self_attn.q_proj, ...);
 *   - shapes: GGUF lists ne[] fastest first, HF/PyTorch slowest first;
 *   - quantisation: dequant.c (ggml block formats);
 *   - the rotary permutation of Q and K: convert_hf_to_gguf.py LlamaModel.permute
 *     (see gguf_unpermute_rows);
 *   - hyper-parameters: llama.* keys (gguf.md "LLM" section) -> LlamaConfig fields;
 *   - tokenizer: tokenizer.ggml.* keys -> tokenizer.json in the `tokenizers` serde
 *     form; tokenizer.ggml.pre names a pre-tokenizer that llama.cpp hard-codes
 *     (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_*): we write the HF pre-tokenizer it was
 *     detected from (convert_hf_to_gguf.py get_vocab_base_pre).
 * Not for: other architectures or SentencePiece ("llama" tokenizer model) vocabularies
 * — refused with a message, never approximated. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "dequant.h"
#include "gguf.h"
#include "safetensors.h"

/* gguf-py constants.py TokenType */
enum { TOK_NORMAL = 1, TOK_UNKNOWN = 2, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5, TOK_BYTE = 6 };

/* convert_hf_to_gguf.py permute(w, n_head), LlamaModel.permute:
 *   w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols)
 * so GGUF row h*hd + 2*i + j holds HF row h*hd + j*hd/2 + i.  TO_GGUF: IN has the HF
 * rows and OUT gets the GGUF ones (apply); else the other way (undo). */
static int rotary_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head, int to_gguf, Error *e) {
    if (n_head <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0)
        return err_set(e, EX_DATAERR, "cannot %s the rotary permutation: %" PRId64 " rows in %d heads",
                       to_gguf ? "apply" : "undo", rows, n_head);
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++) {
                int64_t g = h * hd + 2 * i + j, f = h * hd + j * half + i;
                memcpy(out + (to_gguf ? g : f) * cols, in + (to_gguf ? f : g) * cols, (size_t)cols * sizeof(float));
            }
    return 0;
}

int gguf_unpermute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head, Error *e) {
    return rotary_rows(in, out, rows, cols, n_head, 0, e);
}

int gguf_permute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head, Error *e) {
    return rotary_rows(in, out, rows, cols, n_head, 1, e);
}

/* ---- a string -> id hash for the vocabulary (duplicate and merge checks) ---- */
typedef struct VocabHash {
    const GgufStr *keys; /* the token strings, indexed by id */
    int *slot;           /* id or -1 */
    size_t cap;
} VocabHash;

static uint64_t fnv1a(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static int vh_find(const VocabHash *v, const char *p, uint64_t n) {
    for (size_t i = fnv1a(p, n) & (v->cap - 1);; i = (i + 1) & (v->cap - 1)) {
        int id = v->slot[i];
        if (id < 0) return -1;
        if (v->keys[id].n == n && memcmp(v->keys[id].p, p, n) == 0) return id;
    }
}

/* Returns the id of an earlier duplicate of token id, or -1 after inserting it. */
static int vh_insert(VocabHash *v, int id) {
    const GgufStr *s = &v->keys[id];
    for (size_t i = fnv1a(s->p, s->n) & (v->cap - 1);; i = (i + 1) & (v->cap - 1)) {
        int o = v->slot[i];
        if (o < 0) {
            v->slot[i] = id;
            return -1;
        }
        if (v->keys[o].n == s->n && memcmp(v->keys[o].p, s->p, s->n) == 0) return o;
    }
}

/* ---- small JSON helpers ---- */
static json_t *json_str_n(const GgufStr *s) {
    return json_stringn(s->p, s->n);
} /* NULL if not UTF-8 */

/* The shortest decimal that reads back as the same float, as a double, so that
 * 1e-5f is written "1e-05" and not 9.99999974737875e-06 (Python's json does the same
 * for the float32 values HF configs hold). */
static double float_shortest(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

static json_t *json_num_float(float f) {
    double d = float_shortest(f);
    if (d == floor(d) && fabs(d) < 9007199254740992.0) return json_integer((json_int_t)d);
    return json_real(d);
}

static int json_write(json_t *root, const char *dir, const char *name, Error *e) {
    char *path = path_join(dir, name);
    FILE *fp = fopen(path, "w");
    int rc = 0;
    if (!fp)
        rc = err_set(e, EX_CANTCREAT, "%s: cannot create", path);
    else {
        int bad = json_dumpf(root, fp, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0;
        bad |= fputc('\n', fp) == EOF;
        bad |= fclose(fp) != 0;
        if (bad) rc = err_set(e, EX_IOERR, "%s: write failed", path);
    }
    free(path);
    return rc;
}

/* ---- hyper-parameters ---- */
typedef struct Hparams {
    uint64_t n_layer, d_model, d_ff, n_head, n_kv_head, ctx;
    double rope_theta, eps;
    int head_dim;
    /* RoPE scaling: 0 none, 1 linear (rope.scaling.factor), 2 llama3 (the
     * rope_freqs.weight tensor, fitted by fit_llama3) */
    int scaling;
    double factor, low_freq, high_freq;
    long original_max;
} Hparams;

static int read_hparams(const GgufFile *g, Hparams *h, Error *e) {
    int found, rc;
    if ((rc = gguf_get_u64(g, "llama.block_count", &h->n_layer, NULL, e))) return rc;
    if ((rc = gguf_get_u64(g, "llama.embedding_length", &h->d_model, NULL, e))) return rc;
    if ((rc = gguf_get_u64(g, "llama.feed_forward_length", &h->d_ff, NULL, e))) return rc;
    if ((rc = gguf_get_u64(g, "llama.attention.head_count", &h->n_head, NULL, e))) return rc;
    if ((rc = gguf_get_u64(g, "llama.attention.head_count_kv", &h->n_kv_head, &found, e))) return rc;
    if (!found) h->n_kv_head = h->n_head; /* gguf.md: defaults to head_count */
    if ((rc = gguf_get_u64(g, "llama.context_length", &h->ctx, NULL, e))) return rc;
    if ((rc = gguf_get_f64(g, "llama.rope.freq_base", &h->rope_theta, &found, e))) return rc;
    if (!found) h->rope_theta = 10000.0; /* llama.cpp's default */
    if ((rc = gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &h->eps, NULL, e))) return rc;
    const uint64_t lim = 1u << 24;
    if (h->n_layer < 1 || h->n_layer > 4096 || h->d_model < 1 || h->d_model > lim || h->d_ff < 1 || h->d_ff > lim ||
        h->n_head < 1 || h->n_head > 4096 || h->n_kv_head < 1 || h->ctx < 1 || h->ctx > ((uint64_t)1 << 31))
        return err_set(e, EX_DATAERR,
                       "%s: implausible hyper-parameters (block_count %" PRIu64 ", embedding_length %" PRIu64
                       ", feed_forward_length %" PRIu64 ", head_count %" PRIu64 ", context_length %" PRIu64 ")",
                       g->path, h->n_layer, h->d_model, h->d_ff, h->n_head, h->ctx);
    if (h->d_model % h->n_head != 0 || h->n_head % h->n_kv_head != 0)
        return err_set(e, EX_DATAERR,
                       "%s: embedding_length %" PRIu64 " / head_count %" PRIu64 " / head_count_kv %" PRIu64
                       " do not divide",
                       g->path, h->d_model, h->n_head, h->n_kv_head);
    h->head_dim = (int)(h->d_model / h->n_head);
    if (h->head_dim % 2) return err_set(e, EX_DATAERR, "%s: head dimension %d is odd", g->path, h->head_dim);
    uint64_t v;
    /* partial rotary or a head size other than C/H have no LlamaConfig equivalent here */
    if ((rc = gguf_get_u64(g, "llama.rope.dimension_count", &v, &found, e))) return rc;
    if (found && v != (uint64_t)h->head_dim)
        return err_set(e, EX_DATAERR, "%s: llama.rope.dimension_count %" PRIu64 " != head size %d (partial rotary)",
                       g->path, v, h->head_dim);
    const char *hd_keys[] = {"llama.attention.key_length", "llama.attention.value_length"};
    for (int i = 0; i < 2; i++) {
        if ((rc = gguf_get_u64(g, hd_keys[i], &v, &found, e))) return rc;
        if (found && v != (uint64_t)h->head_dim)
            return err_set(e, EX_DATAERR, "%s: %s %" PRIu64 " != embedding_length / head_count = %d", g->path,
                           hd_keys[i], v, h->head_dim);
    }
    char *scaling = NULL;
    if ((rc = gguf_get_str(g, "llama.rope.scaling.type", &scaling, &found, e))) return rc;
    h->scaling = 0;
    if (found && strcmp(scaling, "linear") == 0) {
        h->scaling = 1;
        if ((rc = gguf_get_f64(g, "llama.rope.scaling.factor", &h->factor, NULL, e))) {
            free(scaling);
            return rc;
        }
        if (!(h->factor >= 1 && h->factor <= 1024)) {
            free(scaling);
            return err_set(e, EX_DATAERR, "%s: llama.rope.scaling.factor %g out of range (1..1024)", g->path,
                           h->factor);
        }
    } else if (found && strcmp(scaling, "none") != 0) {
        rc = err_set(e, EX_DATAERR, "%s: llama.rope.scaling.type \"%s\" is not supported (none, linear)", g->path,
                     scaling);
        free(scaling);
        return rc;
    }
    free(scaling);
    if (!(h->eps > 0 && h->eps < 1) || !(h->rope_theta > 0 && isfinite(h->rope_theta)))
        return err_set(e, EX_DATAERR, "%s: layer_norm_rms_epsilon %g or rope.freq_base %g out of range", g->path,
                       h->eps, h->rope_theta);
    return 0;
}

/* ---- tensors ---- */
typedef struct OutTensor {
    char hf[160];
    const GgufTensor *src;
    int64_t shape[2];
    int ndim;
    int permute_heads; /* 0 = none, else n_head for gguf_unpermute_rows */
    float *data;
} OutTensor;

/* gguf-py tensor_mapping.py, the llama subset: per-layer GGUF suffix -> HF suffix. */
static const struct {
    const char *gguf, *hf;
} layer_map[] = {
    {"attn_norm.weight", "input_layernorm.weight"},    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},      {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},       {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
#define N_LAYER_MAP (int)(sizeof layer_map / sizeof layer_map[0])

/* Checks the GGUF shape (ne order) of a tensor against the HF [rows, cols]. */
static int want_shape(const GgufFile *g, const GgufTensor *t, int ndim, int64_t rows, int64_t cols, Error *e) {
    int ok = t->n_dims == ndim && (ndim == 1 ? t->ne[0] == rows : (t->ne[0] == cols && t->ne[1] == rows));
    if (ok) return 0;
    char got[96] = "", want[64];
    for (int d = 0; d < t->n_dims; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (ndim == 1)
        snprintf(want, sizeof want, "%" PRId64, rows);
    else
        snprintf(want, sizeof want, "%" PRId64 ", %" PRId64, cols, rows);
    return err_set(e, EX_DATAERR, "%s: tensor \"%s\": shape (ne) [%s], expected [%s]", g->path, t->name, got, want);
}

static int plan_tensors(const GgufFile *g, const Hparams *h, int vocab, OutTensor **out, int *n_out, int *tied,
                        Error *e) {
    int cap = 4 + (int)h->n_layer * N_LAYER_MAP, n = 0, rc = 0;
    OutTensor *o = xcalloc((size_t)cap, sizeof *o);
    char *used = xcalloc(g->n_tensors ? g->n_tensors : 1, 1);
    int64_t C = (int64_t)h->d_model, F = (int64_t)h->d_ff, hd = h->head_dim;
    int64_t q_rows = (int64_t)h->n_head * hd, kv_rows = (int64_t)h->n_kv_head * hd;

#define ADD(gname, hfname, nd, rows, cols, perm, required)                                                             \
    do {                                                                                                               \
        const GgufTensor *t_ = gguf_find_tensor(g, gname);                                                             \
        if (!t_) {                                                                                                     \
            if (required) {                                                                                            \
                rc = err_set(e, EX_DATAERR, "%s: missing tensor \"%s\"", g->path, gname);                              \
                goto fail;                                                                                             \
            }                                                                                                          \
            break;                                                                                                     \
        }                                                                                                              \
        if ((rc = want_shape(g, t_, nd, rows, cols, e))) goto fail;                                                    \
        if (!dequant_supported(t_->type)) {                                                                            \
            rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" has type %s; supported: " DEQUANT_SUPPORTED, g->path,       \
                         gname, ggml_type_name(t_->type));                                                             \
            goto fail;                                                                                                 \
        }                                                                                                              \
        used[t_ - g->tensors] = 1;                                                                                     \
        OutTensor *ot_ = &o[n++];                                                                                      \
        snprintf(ot_->hf, sizeof ot_->hf, "%s", hfname);                                                               \
        ot_->src = t_;                                                                                                 \
        ot_->ndim = nd;                                                                                                \
        ot_->shape[0] = rows;                                                                                          \
        ot_->shape[1] = cols;                                                                                          \
        ot_->permute_heads = perm;                                                                                     \
    } while (0)

    ADD("token_embd.weight", "model.embed_tokens.weight", 2, vocab, C, 0, 1);
    for (uint64_t l = 0; l < h->n_layer; l++)
        for (int k = 0; k < N_LAYER_MAP; k++) {
            char gname[96], hfname[160];
            snprintf(gname, sizeof gname, "blk.%" PRIu64 ".%s", l, layer_map[k].gguf);
            snprintf(hfname, sizeof hfname, "model.layers.%" PRIu64 ".%s", l, layer_map[k].hf);
            const char *s = layer_map[k].gguf;
            if (strncmp(s, "attn_norm", 9) == 0 || strncmp(s, "ffn_norm", 8) == 0)
                ADD(gname, hfname, 1, C, 1, 0, 1);
            else if (strncmp(s, "attn_q.", 7) == 0)
                ADD(gname, hfname, 2, q_rows, C, (int)h->n_head, 1);
            else if (strncmp(s, "attn_k.", 7) == 0)
                ADD(gname, hfname, 2, kv_rows, C, (int)h->n_kv_head, 1);
            else if (strncmp(s, "attn_v.", 7) == 0)
                ADD(gname, hfname, 2, kv_rows, C, 0, 1);
            else if (strncmp(s, "attn_output", 11) == 0)
                ADD(gname, hfname, 2, C, q_rows, 0, 1);
            else if (strncmp(s, "ffn_down", 8) == 0)
                ADD(gname, hfname, 2, C, F, 0, 1);
            else /* gate, up */
                ADD(gname, hfname, 2, F, C, 0, 1);
        }
    ADD("output_norm.weight", "model.norm.weight", 1, C, 1, 0, 1);
    int before = n;
    ADD("output.weight", "lm_head.weight", 2, vocab, C, 0, 0);
    *tied = n == before;
    /* Llama 3.x RoPE scaling: not a weight of the HF model but config.json's
     * rope_scaling (gguf_import_llama fits it); read, not written to safetensors */
    before = n;
    ADD("rope_freqs.weight", "", 1, hd / 2, 1, 0, 0);
#undef ADD
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!used[i]) {
            rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" has no LlamaForCausalLM equivalent (not imported)", g->path,
                         g->tensors[i].name);
            goto fail;
        }
    free(used);
    *out = o;
    *n_out = n;
    return 0;
fail:
    free(used);
    free(o);
    return rc;
}

static int load_tensor(const GgufFile *g, OutTensor *t, int keep_rotary, Error *e) {
    size_t numel = (size_t)t->src->numel;
    float *buf = xmalloc(numel * sizeof(float));
    int rc = dequant_row(t->src->type, t->src->data, (size_t)t->src->nbytes, buf, numel, e);
    if (rc) {
        free(buf);
        return err_prefix(e, "%s: tensor \"%s\"", g->path, t->src->name);
    }
    if (t->permute_heads && !keep_rotary) {
        float *hf = xmalloc(numel * sizeof(float));
        rc = gguf_unpermute_rows(buf, hf, t->shape[0], t->shape[1], t->permute_heads, e);
        free(buf);
        buf = hf;
        if (rc) {
            free(buf);
            return err_prefix(e, "%s: tensor \"%s\"", g->path, t->src->name);
        }
    }
    t->data = buf;
    return 0;
}

/* Llama 3.x RoPE scaling from llama.cpp's rope_freqs.weight, one divisor f[i] per
 * rotated pair i (convert_hf_to_gguf.py LlamaModel.generate_extra_tensors, the rule of
 * transformers' _compute_llama3_parameters): with wavelength w = 2 pi / freq_i,
 * f = 1 for w < old/high, f = factor for w > old/low, and between them
 * 1/f = (1 - s)/factor + s with s = (old/w - low)/(high - low).  factor is the
 * largest f.  s is linear in 1/w, s = A/w + B, and only A = old/(high - low) and
 * B = -low/(high - low) matter, so low = 1 is chosen (Meta's value), which gives
 * high = 1 - 1/B and old = -A/B; A and B are fitted to the two outermost pairs of
 * the smooth band.  With fewer than two pairs in the band, Meta's low 1 and high 4
 * are assumed and old is placed to reproduce the tensor.  The result is checked by
 * recomputing every f; a tensor this rule does not reproduce is refused. */
static double llama3_divisor(double w, double factor, double lo, double hi, double old) {
    if (w < old / hi) return 1.0;
    if (w > old / lo) return factor;
    double s = (old / w - lo) / (hi - lo);
    return 1.0 / ((1 - s) / factor + s);
}

/* the first i whose divisor the parameters do not reproduce within 1e-4, or -1 */
static int llama3_mismatch(const float *f, const double *wl, int n, double factor, double lo, double hi, double old) {
    for (int i = 0; i < n; i++) {
        double want = llama3_divisor(wl[i], factor, lo, hi, old);
        if (fabs(want - f[i]) > 1e-4 * want) return i;
    }
    return -1;
}

static int fit_llama3(const GgufFile *g, const float *f, int n, Hparams *h, Error *e) {
    int dim = 2 * n;
    double factor = 1, tol = 1e-4;
    for (int i = 0; i < n; i++) {
        if (!(f[i] >= 1 - tol && f[i] <= 1024))
            return err_set(e, EX_DATAERR, "%s: rope_freqs.weight[%d] = %g is not a RoPE divisor in 1..1024", g->path, i,
                           (double)f[i]);
        if (f[i] > factor) factor = f[i];
    }
    /* wavelengths grow with i; the band is where 1 < f < factor */
    int first = -1, last = -1, last_one = -1, first_full = n;
    for (int i = 0; i < n; i++) {
        if (f[i] <= 1 + tol) last_one = i;
        if (f[i] >= factor * (1 - tol) && first_full == n) first_full = i;
        if (f[i] > 1 + tol && f[i] < factor * (1 - tol)) {
            if (first < 0) first = i;
            last = i;
        }
    }
    double wl[1024];
    if (n > 1024) return err_set(e, EX_DATAERR, "%s: rope_freqs.weight has %d entries (at most 1024)", g->path, n);
    for (int i = 0; i < n; i++) wl[i] = 2 * M_PI * pow(h->rope_theta, (double)(2 * i) / dim);
    double lo = 1, hi = 4, old;
    if (factor <= 1 + tol) return err_set(e, EX_DATAERR, "%s: rope_freqs.weight scales nothing", g->path);
    if (first >= 0 && last > first) {
        double s1 = (1 / f[first] - 1 / factor) / (1 - 1 / factor), s2 = (1 / f[last] - 1 / factor) / (1 - 1 / factor);
        double x1 = 1 / wl[first], x2 = 1 / wl[last];
        double A = (s1 - s2) / (x1 - x2), B = s1 - A * x1;
        if (!(A > 0 && B < 0)) return err_set(e, EX_DATAERR, "%s: rope_freqs.weight is not a llama3 scaling", g->path);
        hi = 1 - 1 / B;
        old = -A / B;
    } else if (first >= 0) { /* one pair in the band: s = (old/w - 1)/3 */
        double s = (1 / f[first] - 1 / factor) / (1 - 1 / factor);
        old = (3 * s + 1) * wl[first];
    } else { /* no band: old/4 above the last unscaled wavelength, old below the first scaled one */
        double a = last_one >= 0 ? 4 * wl[last_one] : 0, b = first_full < n ? wl[first_full] : 4 * a + 1;
        old = a > 0 ? sqrt(a * b) : b / 2;
    }
    /* the fit carries float rounding (high 3.99999995 for 4): keep rounded values
     * when they reproduce the tensor as well */
    long old_i = lround(old);
    if (old_i >= 1 && fabs((double)old_i - old) < 1e-3 * old) old = (double)old_i;
    double hi_r = round(hi * 1e4) / 1e4;
    if (hi_r > lo && llama3_mismatch(f, wl, n, factor, lo, hi_r, old) < 0) hi = hi_r;
    int i = llama3_mismatch(f, wl, n, factor, lo, hi, old);
    if (i >= 0)
        return err_set(e, EX_DATAERR,
                       "%s: rope_freqs.weight[%d] = %g is not what a llama3 RoPE scaling gives (%g with factor %g, "
                       "high_freq_factor %g, original_max_position_embeddings %g)",
                       g->path, i, (double)f[i], llama3_divisor(wl[i], factor, lo, hi, old), factor, hi, old);
    if (old != (double)(long)old)
        return err_set(e, EX_DATAERR, "%s: rope_freqs.weight: original context %g is not a whole number", g->path, old);
    h->scaling = 2;
    h->factor = factor;
    h->low_freq = lo;
    h->high_freq = hi;
    h->original_max = (long)old;
    return 0;
}

/* ---- tokenizer ---- */
typedef struct Vocab {
    const GgufKV *tokens, *merges;
    int32_t *types; /* NULL = all normal */
    int n;
    int bos, eos, unk, pad; /* -1 when absent */
    int add_bos, add_eos;
    char *model, *pre, *chat_template;
} Vocab;

static void vocab_free(Vocab *v) {
    free(v->types);
    free(v->model);
    free(v->pre);
    free(v->chat_template);
}

static int read_token_id(const GgufFile *g, const char *key, int n, int *out, Error *e) {
    uint64_t v;
    int found, rc = gguf_get_u64(g, key, &v, &found, e);
    *out = -1;
    if (rc) return rc;
    if (!found) return 0;
    if (v >= (uint64_t)n)
        return err_set(e, EX_DATAERR, "%s: %s = %" PRIu64 " is outside the vocabulary of %d tokens", g->path, key, v,
                       n);
    *out = (int)v;
    return 0;
}

static int read_vocab(const GgufFile *g, Vocab *v, Error *e) {
    memset(v, 0, sizeof *v);
    int rc, found;
    if ((rc = gguf_get_str(g, "tokenizer.ggml.model", &v->model, NULL, e))) return rc;
    if (strcmp(v->model, "gpt2") != 0)
        return err_set(e, EX_DATAERR,
                       "%s: tokenizer.ggml.model \"%s\" is not supported (only \"gpt2\", byte-level BPE)", g->path,
                       v->model);
    v->tokens = gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!v->tokens || v->tokens->type != GGUF_ARRAY || v->tokens->arr_type != GGUF_STRING)
        return err_set(e, EX_DATAERR, "%s: missing or mistyped key \"tokenizer.ggml.tokens\" (array of strings)",
                       g->path);
    if (v->tokens->arr_n < 1 || v->tokens->arr_n > (1u << 24))
        return err_set(e, EX_DATAERR, "%s: tokenizer.ggml.tokens has %" PRIu64 " entries", g->path, v->tokens->arr_n);
    v->n = (int)v->tokens->arr_n;
    v->merges = gguf_find_kv(g, "tokenizer.ggml.merges");
    if (!v->merges || v->merges->type != GGUF_ARRAY || v->merges->arr_type != GGUF_STRING)
        return err_set(e, EX_DATAERR, "%s: missing or mistyped key \"tokenizer.ggml.merges\" (array of strings)",
                       g->path);
    const GgufKV *tt = gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->type != GGUF_ARRAY || (tt->arr_type != GGUF_INT32 && tt->arr_type != GGUF_UINT32) ||
            tt->arr_n != (uint64_t)v->n)
            return err_set(e, EX_DATAERR,
                           "%s: key \"tokenizer.ggml.token_type\" must be an array of %d int32 (one per token)",
                           g->path, v->n);
        v->types = xmalloc((size_t)v->n * sizeof(int32_t));
        memcpy(v->types, tt->arr_data, (size_t)v->n * sizeof(int32_t)); /* little-endian host */
        for (int i = 0; i < v->n; i++)
            if (v->types[i] < TOK_NORMAL || v->types[i] > TOK_BYTE)
                return err_set(e, EX_DATAERR, "%s: tokenizer.ggml.token_type[%d] = %d is not a token type (1..6)",
                               g->path, i, v->types[i]);
    }
    if ((rc = read_token_id(g, "tokenizer.ggml.bos_token_id", v->n, &v->bos, e))) return rc;
    if ((rc = read_token_id(g, "tokenizer.ggml.eos_token_id", v->n, &v->eos, e))) return rc;
    if ((rc = read_token_id(g, "tokenizer.ggml.unknown_token_id", v->n, &v->unk, e))) return rc;
    if ((rc = read_token_id(g, "tokenizer.ggml.padding_token_id", v->n, &v->pad, e))) return rc;
    if ((rc = gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, &found, e))) return rc;
    if ((rc = gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, &found, e))) return rc;
    if (v->add_bos && v->bos < 0)
        return err_set(e, EX_DATAERR, "%s: add_bos_token is set but there is no bos_token_id", g->path);
    if (v->add_eos && v->eos < 0)
        return err_set(e, EX_DATAERR, "%s: add_eos_token is set but there is no eos_token_id", g->path);
    if ((rc = gguf_get_str(g, "tokenizer.ggml.pre", &v->pre, &found, e))) return rc;
    if (!found) v->pre = xstrdup("default");
    if ((rc = gguf_get_str(g, "tokenizer.chat_template", &v->chat_template, &found, e))) return rc;
    return 0;
}

static json_t *byte_level(int add_prefix_space, int trim_offsets, int use_regex) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", add_prefix_space, "trim_offsets",
                     trim_offsets, "use_regex", use_regex);
}

/* The HF pre-tokenizer that llama.cpp's tokenizer.ggml.pre value stands for.
 * llama-vocab.cpp gives each pre type a list of regexes; the values below are the HF
 * tokenizer.json components those regexes were transcribed from (convert_hf_to_gguf.py
 * detects the pre type by hashing the HF tokenizer's output). */
static json_t *pre_tokenizer_for(const char *pre) {
    /* LLAMA_VOCAB_PRE_TYPE_SMOLLM (and STARCODER, REFACT, COMMAND_R, CODESHELL, EXAONE,
     * MINERVA): {"\p{N}", the GPT-2 regex} = HF Sequence[Digits(individual_digits),
     * ByteLevel(use_regex)], which is what SmolLM2's and StarCoder's tokenizer.json hold. */
    static const char *digits_bytelevel[] = {"smollm",    "starcoder", "refact",    "command-r",
                                             "codeshell", "exaone",    "minerva-7b"};
    for (size_t i = 0; i < sizeof digits_bytelevel / sizeof *digits_bytelevel; i++)
        if (strcmp(pre, digits_bytelevel[i]) == 0)
            return json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Digits",
                             "individual_digits", 1, byte_level(0, 1, 1));
    /* LLAMA_VOCAB_PRE_TYPE_GPT2 (and MPT, OLMO, JAIS): the GPT-2 regex alone =
     * ByteLevel(use_regex); "default" is what llama.cpp assumes when the key is absent. */
    static const char *gpt2[] = {"gpt-2", "gpt2", "default", "mpt", "olmo", "jais"};
    for (size_t i = 0; i < sizeof gpt2 / sizeof *gpt2; i++)
        if (strcmp(pre, gpt2[i]) == 0) return byte_level(0, 1, 1);
    /* LLAMA_VOCAB_PRE_TYPE_LLAMA3 ("llama-bpe"): Llama-3's Split regex, isolated, then
     * ByteLevel without its own regex. */
    if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0)
        return json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers", "type", "Split",
                         "pattern", "Regex",
                         "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                         "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                         "behavior", "Isolated", "invert", 0, byte_level(0, 0, 0));
    return NULL;
}

static json_t *added_token(const GgufStr *content, int id, int special) {
    json_t *c = json_str_n(content);
    if (!c) return NULL;
    /* tokenizers serialises AddedToken as {id, content, single_word, lstrip, rstrip,
     * normalized, special}; special tokens are never normalised. */
    return json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", c, "single_word", 0, "lstrip", 0,
                     "rstrip", 0, "normalized", !special, "special", special);
}

static int is_added(const Vocab *v, int id) {
    return v->types && (v->types[id] == TOK_CONTROL || v->types[id] == TOK_USER_DEFINED);
}

static json_t *token_json(const Vocab *v, int id) {
    return json_str_n(&v->tokens->arr_str[id]);
}

static int write_tokenizer(const GgufFile *g, const Vocab *v, const Hparams *h, const char *dir, Error *e) {
    const GgufStr *toks = v->tokens->arr_str;
    int rc = 0;
    json_t *pre = pre_tokenizer_for(v->pre);
    if (!pre)
        return err_set(e, EX_DATAERR,
                       "%s: tokenizer.ggml.pre \"%s\" is not supported (supported: smollm, starcoder, refact, "
                       "command-r, codeshell, exaone, minerva-7b, gpt-2, default, mpt, olmo, jais, llama-bpe)",
                       g->path, v->pre);

    /* vocabulary: unique, valid UTF-8 strings, in id order */
    VocabHash vh = {toks, NULL, 1};
    while (vh.cap < (size_t)v->n * 2) vh.cap <<= 1;
    vh.slot = xmalloc(vh.cap * sizeof(int));
    memset(vh.slot, 0xff, vh.cap * sizeof(int));
    json_t *vocab = json_object(), *added = json_array(), *merges = json_array();
    json_t *root = NULL, *cfg = NULL, *decoder = NULL, *stmap = NULL;
    for (int i = 0; i < v->n; i++) {
        int dup = vh_insert(&vh, i);
        if (dup >= 0) {
            rc = err_set(e, EX_DATAERR, "%s: tokenizer.ggml.tokens[%d] repeats token %d (\"%.*s\")", g->path, i, dup,
                         (int)(toks[i].n > 40 ? 40 : toks[i].n), toks[i].p);
            goto out;
        }
        json_t *k = token_json(v, i);
        if (!k || toks[i].n == 0) {
            json_decref(k);
            rc = err_set(e, EX_DATAERR, "%s: tokenizer.ggml.tokens[%d] is empty or not valid UTF-8", g->path, i);
            goto out;
        }
        json_object_setn_new_nocheck(vocab, toks[i].p, toks[i].n, json_integer(i));
        json_decref(k);
        if (is_added(v, i)) json_array_append_new(added, added_token(&toks[i], i, v->types[i] == TOK_CONTROL));
    }
    /* merges: "left right", both sides in the vocabulary, as tokenizers requires */
    for (uint64_t i = 0; i < v->merges->arr_n; i++) {
        const GgufStr *m = &v->merges->arr_str[i];
        const char *sp = m->n ? memchr(m->p, ' ', m->n) : NULL;
        uint64_t ln = sp ? (uint64_t)(sp - m->p) : 0, rn = sp ? m->n - ln - 1 : 0;
        if (!sp || ln == 0 || rn == 0 || memchr(sp + 1, ' ', rn)) {
            rc = err_set(e, EX_DATAERR, "%s: tokenizer.ggml.merges[%" PRIu64 "] is not two tokens separated by a space",
                         g->path, i);
            goto out;
        }
        int a = vh_find(&vh, m->p, ln), b = vh_find(&vh, sp + 1, rn);
        if (a < 0 || b < 0) {
            rc = err_set(e, EX_DATAERR, "%s: tokenizer.ggml.merges[%" PRIu64 "] \"%.*s\": %s side is not a token",
                         g->path, i, (int)(m->n > 60 ? 60 : m->n), m->p, a < 0 ? "left" : "right");
            goto out;
        }
        json_array_append_new(merges, json_str_n(m)); /* valid UTF-8: both halves are tokens */
    }

    json_t *post;
    if (v->add_bos || v->add_eos) {
        /* llama.cpp adds BOS/EOS itself; HF does it with TemplateProcessing */
        json_t *single = json_array(), *pair = json_array(), *special = json_object();
        int ids[2] = {v->add_bos ? v->bos : -1, v->add_eos ? v->eos : -1};
        for (int part = 0; part < 2; part++) {
            json_t *seq = part == 0 ? single : pair;
            for (int s = 0; s < (part == 0 ? 1 : 2); s++) {
                const char *which = s == 0 ? "A" : "B";
                if (ids[0] >= 0)
                    json_array_append_new(
                        seq, json_pack("{s:{s:o, s:i}}", "SpecialToken", "id", token_json(v, ids[0]), "type_id", s));
                json_array_append_new(seq, json_pack("{s:{s:s, s:i}}", "Sequence", "id", which, "type_id", s));
                if (ids[1] >= 0)
                    json_array_append_new(
                        seq, json_pack("{s:{s:o, s:i}}", "SpecialToken", "id", token_json(v, ids[1]), "type_id", s));
            }
        }
        for (int k = 0; k < 2; k++)
            if (ids[k] >= 0)
                json_object_setn_new_nocheck(special, toks[ids[k]].p, toks[ids[k]].n,
                                             json_pack("{s:o, s:[i], s:[o]}", "id", token_json(v, ids[k]), "ids",
                                                       ids[k], "tokens", token_json(v, ids[k])));
        post = json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                         "special_tokens", special);
    } else
        post = byte_level(1, 0, 1); /* GPT-2's: adds nothing, only fixes offsets */
    decoder = byte_level(1, 1, 1);

    root = json_object();
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", pre);
    json_object_set_new(root, "post_processor", post);
    json_object_set_new(root, "decoder", decoder);
    json_object_set_new(root, "model",
                        json_pack("{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                                  "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0,
                                  "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges));
    added = vocab = merges = pre = decoder = NULL;
    if ((rc = json_write(root, dir, "tokenizer.json", e))) goto out;

    /* tokenizer_config.json and special_tokens_map.json: what transformers'
     * AutoTokenizer reads beside tokenizer.json (token strings, template, limits). */
    cfg = json_object();
    stmap = json_object();
    json_object_set_new(cfg, "add_bos_token", json_boolean(v->add_bos));
    json_object_set_new(cfg, "add_eos_token", json_boolean(v->add_eos));
    json_object_set_new(cfg, "add_prefix_space", json_false());
    json_t *dec = json_object();
    for (int i = 0; i < v->n; i++)
        if (is_added(v, i)) {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            int special = v->types[i] == TOK_CONTROL;
            json_object_set_new(dec, key,
                                json_pack("{s:o, s:b, s:b, s:b, s:b, s:b}", "content", token_json(v, i), "lstrip", 0,
                                          "normalized", !special, "rstrip", 0, "single_word", 0, "special", special));
        }
    json_object_set_new(cfg, "added_tokens_decoder", dec);
    const struct {
        const char *name;
        int id;
    } named[] = {{"bos_token", v->bos}, {"eos_token", v->eos}, {"pad_token", v->pad}, {"unk_token", v->unk}};
    for (size_t k = 0; k < sizeof named / sizeof *named; k++)
        if (named[k].id >= 0) {
            json_object_set_new(cfg, named[k].name, token_json(v, named[k].id));
            json_object_set_new(stmap, named[k].name, token_json(v, named[k].id));
        }
    if (v->chat_template) json_object_set_new(cfg, "chat_template", json_string(v->chat_template));
    json_object_set_new(cfg, "clean_up_tokenization_spaces", json_false());
    json_object_set_new(cfg, "model_max_length", json_integer((json_int_t)h->ctx));
    json_object_set_new(cfg, "tokenizer_class", json_string("PreTrainedTokenizerFast"));
    if (v->chat_template && !json_object_get(cfg, "chat_template")) {
        rc = err_set(e, EX_DATAERR, "%s: tokenizer.chat_template is not valid UTF-8", g->path);
        goto out;
    }
    if ((rc = json_write(cfg, dir, "tokenizer_config.json", e))) goto out;
    rc = json_write(stmap, dir, "special_tokens_map.json", e);
out:
    free(vh.slot);
    json_decref(vocab);
    json_decref(added);
    json_decref(merges);
    json_decref(pre);
    json_decref(decoder);
    json_decref(root);
    json_decref(cfg);
    json_decref(stmap);
    return rc;
}

static int write_configs(const Hparams *h, const Vocab *v, int tied, const char *dir, Error *e) {
    /* transformers LlamaConfig field names (configuration_llama.py) */
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(c, "model_type", json_string("llama"));
    json_object_set_new(c, "attention_bias", json_false());
    json_object_set_new(c, "attention_dropout", json_real(0.0));
    json_object_set_new(c, "bos_token_id", v->bos >= 0 ? json_integer(v->bos) : json_null());
    json_object_set_new(c, "eos_token_id", v->eos >= 0 ? json_integer(v->eos) : json_null());
    if (v->pad >= 0) json_object_set_new(c, "pad_token_id", json_integer(v->pad));
    json_object_set_new(c, "head_dim", json_integer(h->head_dim));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "hidden_size", json_integer((json_int_t)h->d_model));
    json_object_set_new(c, "initializer_range", json_real(0.02)); /* not in GGUF; LlamaConfig's default */
    json_object_set_new(c, "intermediate_size", json_integer((json_int_t)h->d_ff));
    json_object_set_new(c, "max_position_embeddings", json_integer((json_int_t)h->ctx));
    json_object_set_new(c, "mlp_bias", json_false());
    json_object_set_new(c, "num_attention_heads", json_integer((json_int_t)h->n_head));
    json_object_set_new(c, "num_hidden_layers", json_integer((json_int_t)h->n_layer));
    json_object_set_new(c, "num_key_value_heads", json_integer((json_int_t)h->n_kv_head));
    json_object_set_new(c, "pretraining_tp", json_integer(1));
    json_object_set_new(c, "rms_norm_eps", json_num_float((float)h->eps));
    if (h->scaling == 1)
        json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear", "factor", h->factor));
    else if (h->scaling == 2)
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:I}", "rope_type", "llama3", "factor", h->factor,
                                      "low_freq_factor", h->low_freq, "high_freq_factor", h->high_freq,
                                      "original_max_position_embeddings", (json_int_t)h->original_max));
    else
        json_object_set_new(c, "rope_scaling", json_null());
    json_object_set_new(c, "rope_theta", json_num_float((float)h->rope_theta));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(tied));
    json_object_set_new(c, "torch_dtype", json_string("float32"));
    json_object_set_new(c, "use_cache", json_true());
    json_object_set_new(c, "vocab_size", json_integer(v->n));
    int rc = json_write(c, dir, "config.json", e);
    json_decref(c);
    if (rc) return rc;
    json_t *gc = json_object();
    if (v->bos >= 0) json_object_set_new(gc, "bos_token_id", json_integer(v->bos));
    if (v->eos >= 0) json_object_set_new(gc, "eos_token_id", json_integer(v->eos));
    if (v->pad >= 0) json_object_set_new(gc, "pad_token_id", json_integer(v->pad));
    rc = json_write(gc, dir, "generation_config.json", e);
    json_decref(gc);
    return rc;
}

int gguf_import_llama(const char *gguf_path, const char *outdir, const GgufImportOptions *opt, GgufImportStats *stats,
                      Error *e) {
    GgufImportOptions defaults = {0};
    if (!opt) opt = &defaults;
    GgufFile g;
    int rc = gguf_open(&g, gguf_path, e);
    if (rc) return rc;
    Hparams h;
    Vocab v;
    memset(&v, 0, sizeof v);
    OutTensor *ts = NULL;
    int n_ts = 0, tied = 0;
    AtomicDir ad = {0};
    StWriter w;
    st_writer_init(&w);

    char *arch = NULL;
    if ((rc = gguf_get_str(&g, "general.architecture", &arch, NULL, e))) goto done;
    if (strcmp(arch, "llama") != 0) {
        rc = err_set(e, EX_DATAERR, "%s: general.architecture \"%s\" is not supported (only \"llama\")", g.path, arch);
        goto done;
    }
    if ((rc = read_hparams(&g, &h, e))) goto done;
    if ((rc = read_vocab(&g, &v, e))) goto done;
    if ((rc = plan_tensors(&g, &h, v.n, &ts, &n_ts, &tied, e))) goto done;

    /* everything is validated: claim the output before the slow part */
    if ((rc = atomic_dir_begin(&ad, outdir, e))) goto done;
    uint64_t n_params = 0;
    for (int i = 0; i < n_ts; i++) {
        if ((rc = load_tensor(&g, &ts[i], opt->keep_rotary, e))) goto done;
        if (!ts[i].hf[0]) { /* rope_freqs.weight: config, not a weight */
            if ((rc = fit_llama3(&g, ts[i].data, (int)ts[i].shape[0], &h, e))) goto done;
            continue;
        }
        st_writer_add(&w, ts[i].hf, ts[i].data, ts[i].ndim, ts[i].shape);
        n_params += ts[i].src->numel;
    }
    char *name = NULL;
    int found;
    if (gguf_get_str(&g, "general.name", &name, &found, NULL) == 0 && found) {
        st_writer_meta(&w, "source", name);
        free(name);
    }
    st_writer_meta(&w, "format", "pt");

    char *st_path = path_join(ad.tmp, "model.safetensors");
    rc = st_writer_write(&w, st_path, ST_F32, e);
    free(st_path);
    if (rc) goto done;
    if ((rc = write_configs(&h, &v, tied, ad.tmp, e))) goto done;
    if ((rc = write_tokenizer(&g, &v, &h, ad.tmp, e))) goto done;
    if ((rc = atomic_dir_commit(&ad, e))) goto done;
    if (stats) {
        stats->n_params = n_params;
        stats->n_tensors = n_ts;
        stats->n_layers = (int)h.n_layer;
        stats->vocab_size = v.n;
        stats->tied = tied;
    }
done:
    if (rc && ad.tmp) atomic_dir_abort(&ad);
    st_writer_free(&w);
    for (int i = 0; i < n_ts; i++) free(ts[i].data);
    free(ts);
    vocab_free(&v);
    free(arch);
    gguf_close(&g);
    return rc;
}
