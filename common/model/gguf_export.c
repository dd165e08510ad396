/* gguf_export.c — see gguf_export.h.  The tensor half: names, shapes, permutation,
 * types, and the architecture keys; gguf_export_vocab.c writes the tokenizer. */
#define _GNU_SOURCE
#include "gguf_export.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/quant.h"
#include "gguf_export_impl.h"
#include "lora.h"
#include "model.h"

int gguf_export_type_parse(const char *s) {
    static const struct {
        const char *name;
        int type;
    } t[] = {{"f32", GGML_F32},   {"f16", GGML_F16},   {"bf16", GGML_BF16},
             {"q8_0", GGML_Q8_0}, {"q4_0", GGML_Q4_0}, {"q4_k", GGML_Q4_K}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcasecmp(s, t[i].name) == 0) return t[i].type;
    return -1;
}

/* llama.h enum llama_ftype of a file whose 2-D weights are `type` (general.file_type) */
static uint32_t file_type(int type) {
    switch (type) {
    case GGML_F16:
        return 1; /* LLAMA_FTYPE_MOSTLY_F16 */
    case GGML_Q4_0:
        return 2; /* MOSTLY_Q4_0 */
    case GGML_Q8_0:
        return 7; /* MOSTLY_Q8_0 */
    case GGML_BF16:
        return 32; /* MOSTLY_BF16 */
    case GGML_Q4_K:
        return 14; /* MOSTLY_Q4_K_S: Q4_K throughout */
    default:
        return 0; /* ALL_F32 */
    }
}

/* gguf-py tensor_mapping.py, per-layer suffixes: HF (as cherry names them) -> GGUF. */
static const char *const llama_map[][2] = {
    {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},           {"mlp.down_proj", "ffn_down"},
    {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"}, /* Qwen3 */
};
static const char *const gpt2_map[][2] = {
    {"ln_1", "attn_norm"}, {"attn.c_attn", "attn_qkv"}, {"attn.c_proj", "attn_output"},
    {"ln_2", "ffn_norm"},  {"mlp.c_fc", "ffn_up"},      {"mlp.c_proj", "ffn_down"},
};
static const char *const top_map[][2] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"transformer.wte.weight", "token_embd.weight"},
    {"transformer.wpe.weight", "position_embd.weight"},
    {"transformer.ln_f.weight", "output_norm.weight"},
    {"transformer.ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
};

/* llama.cpp's architecture for a family (convert_hf_to_gguf.py: MistralForCausalLM is
 * converted by its LlamaModel class, so Mistral is "llama"), or NULL. */
static const char *arch_of(Family f) {
    switch (f) {
    case FAMILY_GPT2:
        return "gpt2";
    case FAMILY_LLAMA:
    case FAMILY_MISTRAL:
        return "llama";
    case FAMILY_QWEN2:
        return "qwen2";
    case FAMILY_QWEN3:
        return "qwen3";
    default:
        return NULL;
    }
}

static int arch_permutes(Family f) {
    return f == FAMILY_LLAMA || f == FAMILY_MISTRAL;
}

/* GGUF name of HF tensor `hf` into out; 0 when it has none.  *perm gets the head
 * count whose rotary permutation applies (Llama q/k weights and biases), else 0. */
static int gguf_name(const Model *m, const char *hf, char *out, size_t cap, int *perm) {
    *perm = 0;
    for (size_t i = 0; i < sizeof top_map / sizeof top_map[0]; i++)
        if (strcmp(hf, top_map[i][0]) == 0) {
            snprintf(out, cap, "%s", top_map[i][1]);
            return 1;
        }
    int gpt2 = m->cfg.family == FAMILY_GPT2, layer, at = 0;
    const char *prefix = gpt2 ? "transformer.h.%d.%n" : "model.layers.%d.%n";
    if (sscanf(hf, prefix, &layer, &at) != 1 || at == 0) return 0;
    const char *rest = hf + at, *dot = strrchr(rest, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0)) return 0;
    size_t stem = (size_t)(dot - rest), n = gpt2 ? 6 : sizeof llama_map / sizeof llama_map[0];
    for (size_t i = 0; i < n; i++) {
        const char *h = gpt2 ? gpt2_map[i][0] : llama_map[i][0], *g = gpt2 ? gpt2_map[i][1] : llama_map[i][1];
        if (strlen(h) == stem && strncmp(rest, h, stem) == 0) {
            snprintf(out, cap, "blk.%d.%s%s", layer, g, dot);
            /* only llama.cpp's "llama" architecture rotates interleaved pairs; qwen2 and
             * qwen3 use the NeoX (half-split) rotation, which is Hugging Face's layout */
            int permuted = arch_permutes(m->cfg.family);
            if (permuted && strcmp(g, "attn_q") == 0) *perm = m->cfg.n_head;
            if (permuted && strcmp(g, "attn_k") == 0) *perm = m->cfg.n_kv_head;
            return 1;
        }
    }
    return 0;
}

static void arch_keys(GgufWriter *w, const ModelConfig *c, const char *arch) {
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_w_u32(w, KEY("context_length"), (uint32_t)c->max_seq);
    gguf_w_u32(w, KEY("embedding_length"), (uint32_t)c->d_model);
    gguf_w_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)c->d_ff);
    gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    if (c->family == FAMILY_GPT2) {
        gguf_w_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
    } else {
        gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
        gguf_w_f32(w, KEY("rope.freq_base"), c->rope_theta);
        gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
        gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)model_rotary_dim(c));
        gguf_w_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
        if (c->head_dim && c->head_dim != c->d_model / c->n_head) { /* Qwen3's explicit head_dim */
            gguf_w_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
            gguf_w_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
        }
        if (c->rope_scaling.type == ROPE_LINEAR) {
            gguf_w_str(w, KEY("rope.scaling.type"), "linear");
            gguf_w_f32(w, KEY("rope.scaling.factor"), c->rope_scaling.factor);
        }
    }
#undef KEY
}

/* One tensor: HF [rows, cols] (or [n]) floats -> GGUF ne [cols, rows], permuted and
 * converted. */
static int add_tensor(GgufWriter *w, const Model *m, const ParamTensor *t, int want, GgufExportStats *st, Error *e) {
    char name[160];
    int perm;
    if (!gguf_name(m, t->name, name, sizeof name, &perm))
        return err_set(e, EX_DATAERR, "tensor \"%s\" has no llama.cpp name (not exported)", t->name);
    const float *x = m->params + t->offset;
    int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
    float *tmp = NULL;
    if (perm) {
        tmp = xmalloc(t->numel * sizeof(float));
        if (gguf_permute_rows(x, tmp, rows, cols, perm, e)) {
            free(tmp);
            return err_prefix(e, "tensor \"%s\"", t->name);
        }
        x = tmp;
    }
    int type = GGML_F32;
    if (t->ndim == 2) {
        type = want;
        if (!quant_row_bytes(type, (size_t)cols)) {
            /* rows that do not fill whole blocks: Q4_K (256) falls back to Q8_0 when
             * they fill blocks of 32 (llama-quantize falls back within the legacy
             * types too), anything else to F16 as convert_hf_to_gguf.py does */
            type = want == GGML_Q4_K && quant_row_bytes(GGML_Q8_0, (size_t)cols) ? GGML_Q8_0 : GGML_F16;
            st->n_fallback++;
        }
        st->n_quantised++;
    }
    size_t nbytes = quant_row_bytes(type, (size_t)cols) * (size_t)rows;
    void *data = xmalloc(nbytes ? nbytes : 1);
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r++)
        rc = quant_row(type, x + r * cols, (size_t)cols, (uint8_t *)data + (size_t)r * (nbytes / (size_t)rows), e);
    free(tmp);
    if (rc) {
        free(data);
        return err_prefix(e, "tensor \"%s\"", t->name);
    }
    int64_t ne[2] = {cols, rows};
    gguf_w_tensor(w, name, type, t->ndim, t->ndim == 2 ? ne : &rows, data, nbytes);
    st->n_tensors++;
    st->n_params += t->numel;
    st->bytes += nbytes;
    return 0;
}

/* Llama 3.x "llama3" RoPE scaling as llama.cpp runs it: a rope_freqs.weight tensor of
 * one factor per rotated pair that divides the frequency (convert_hf_to_gguf.py
 * LlamaModel.generate_extra_tensors; the same rule as transformers'
 * _compute_llama3_parameters, which cherry applies in model/).  F32, [rotary/2]. */
static void add_llama3_rope_freqs(GgufWriter *w, const ModelConfig *c, GgufExportStats *st) {
    int dim = model_rotary_dim(c), n = dim / 2;
    double factor = c->rope_scaling.factor, lo = c->rope_scaling.low_freq, hi = c->rope_scaling.high_freq;
    double old = c->rope_scaling.original_max, lo_wavelen = old / lo, hi_wavelen = old / hi;
    float *f = xmalloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) {
        double freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / dim), wavelen = 2 * M_PI / freq;
        if (wavelen < hi_wavelen)
            f[i] = 1.0f;
        else if (wavelen > lo_wavelen)
            f[i] = (float)factor;
        else {
            double smooth = (old / wavelen - lo) / (hi - lo);
            f[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
    int64_t ne = n;
    gguf_w_tensor(w, "rope_freqs.weight", GGML_F32, 1, &ne, f, (size_t)n * sizeof(float));
    st->n_tensors++;
    st->bytes += (size_t)n * sizeof(float);
}

int gguf_export(const char *dir, const char *out, const GgufExportOptions *opt, GgufExportStats *st, Error *e) {
    GgufExportStats local;
    if (!st) st = &local;
    memset(st, 0, sizeof *st);
    if (!quant_supported(opt->type))
        return err_set(e, EX_USAGE, "GGUF type %s cannot be written (F32, F16, BF16, Q8_0, Q4_0, Q4_K)",
                       ggml_type_name(opt->type) ?: "?");
    Model m;
    int rc = model_load(&m, dir, e);
    if (rc) return rc;
    if (m.lora) lora_merge(&m); /* llama.cpp runs plain weights: fold the adapter in */
    GgufWriter *w = gguf_writer_new();
    char *tokdir = model_tokenizer_dir(dir);
    const char *arch = arch_of(m.cfg.family);
    const ModelConfig *c = &m.cfg;
    if (m.cfg.is_classifier) {
        rc = err_set(e, EX_DATAERR, "%s: a classifier (reward) model has no llama.cpp architecture to export to", dir);
        goto out;
    }
    if (!arch) {
        rc = err_set(e, EX_DATAERR,
                     "%s: model family %s cannot be exported to GGUF yet (gpt2, llama, mistral, qwen2, qwen3)", dir,
                     model_family_name(m.cfg.family));
        goto out;
    }
    /* what llama.cpp's architectures cannot express is refused, not silently dropped */
    if (c->rope_scaling.type != ROPE_DEFAULT && c->rope_scaling.type != ROPE_LINEAR &&
        !(c->rope_scaling.type == ROPE_LLAMA3 && arch_permutes(c->family))) {
        rc = err_set(e, EX_DATAERR, "%s: rope_scaling of this type cannot be exported to GGUF yet (linear, llama3)",
                     dir);
        goto out;
    }
    if (c->partial_rotary && c->partial_rotary != 1.0f) {
        rc = err_set(e, EX_DATAERR, "%s: partial_rotary_factor %g cannot be exported to GGUF yet", dir,
                     (double)c->partial_rotary);
        goto out;
    }
    if (c->sliding_window && c->sliding_window < c->max_seq) {
        /* llama.cpp's llama architecture attends to the whole context (convert_hf_to_gguf
         * drops Mistral's sliding_window too): the file is only faithful up to the window */
        rc = err_set(e, EX_DATAERR,
                     "%s: sliding_window %d is shorter than the context %d, and llama.cpp's %s architecture has no "
                     "sliding window; set max_position_embeddings <= sliding_window in a copy of config.json to "
                     "export a model that is faithful up to the window",
                     dir, c->sliding_window, c->max_seq, arch);
        goto out;
    }
    char *base = xstrdup(dir), *slash;
    while ((slash = strrchr(base, '/')) && slash[1] == 0 && slash > base) *slash = 0;
    slash = strrchr(base, '/');
    gguf_w_str(w, "general.architecture", arch);
    gguf_w_str(w, "general.name", opt->name ? opt->name : slash ? slash + 1 : base);
    free(base);
    gguf_w_u32(w, "general.file_type", file_type(opt->type));
    if (opt->type == GGML_Q8_0 || opt->type == GGML_Q4_0 || opt->type == GGML_Q4_K)
        gguf_w_u32(w, "general.quantization_version", 2);
    arch_keys(w, &m.cfg, arch);
    if ((rc = gguf_export_vocab(w, tokdir, &m.cfg, &st->pre, &st->n_merges, e))) goto out;
    if (c->rope_scaling.type == ROPE_LLAMA3) add_llama3_rope_freqs(w, c, st);
    for (int i = 0; i < m.n_tensors && !rc; i++) rc = add_tensor(w, &m, &m.tensors[i], opt->type, st, e);
    if (rc) {
        err_prefix(e, "%s", dir);
        goto out;
    }
    st->arch = arch;
    st->vocab_size = m.cfg.vocab_size;
    rc = gguf_writer_write(w, out, e);
out:
    free(tokdir);
    gguf_writer_free(w);
    model_free(&m);
    return rc;
}
