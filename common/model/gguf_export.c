/* gguf_export.c — see gguf_export.h.  The tensor half: names, shapes, permutation,
 * types, and the architecture keys; gguf_export_vocab.c writes the tokenizer. */
#define _GNU_SOURCE
#include "gguf_export.h"

#include <inttypes.h>
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
    {"input_layernorm", "attn_norm"}, {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},   {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},    {"mlp.up_proj", "ffn_up"},           {"mlp.down_proj", "ffn_down"},
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
    size_t stem = (size_t)(dot - rest), n = gpt2 ? 6 : 9;
    for (size_t i = 0; i < n; i++) {
        const char *h = gpt2 ? gpt2_map[i][0] : llama_map[i][0], *g = gpt2 ? gpt2_map[i][1] : llama_map[i][1];
        if (strlen(h) == stem && strncmp(rest, h, stem) == 0) {
            snprintf(out, cap, "blk.%d.%s%s", layer, g, dot);
            if (!gpt2 && strcmp(g, "attn_q") == 0) *perm = m->cfg.n_head;
            if (!gpt2 && strcmp(g, "attn_k") == 0) *perm = m->cfg.n_kv_head;
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
        gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)(c->d_model / c->n_head));
        gguf_w_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
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
    const char *arch = m.cfg.family == FAMILY_GPT2 ? "gpt2" : "llama";
    if (m.cfg.is_classifier) {
        rc = err_set(e, EX_DATAERR, "%s: a classifier (reward) model has no llama.cpp architecture to export to", dir);
        goto out;
    }
    if (m.cfg.family != FAMILY_GPT2 && m.cfg.family != FAMILY_LLAMA) {
        rc = err_set(e, EX_DATAERR, "%s: model family %s cannot be exported to GGUF yet (gpt2, llama)", dir,
                     model_family_name(m.cfg.family));
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
