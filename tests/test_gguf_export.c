/* test_gguf_export.c — export-gguf's library side (model/gguf_export.c,
 * formats/quant.c, formats/gguf_write.c).
 *
 *  1. quant_row against gguf-py: the rows of fixtures/gguf-quant (edge cases: ties,
 *     halves, binary16 subnormals and overflow, zero blocks) give the same bytes as
 *     gguf-py's quantize in F16, BF16, Q8_0 and Q4_0 (make_gguf_quant_fixture.py).
 *  2. Llama round trip: a random tiny GQA Llama saved with the bundled tokenizer is
 *     exported in every type; the GGUF parses, its keys say what llama.cpp needs, every
 *     tensor is the HF tensor permuted (Q/K) and quantised exactly as quant_row does,
 *     and import-gguf's reader (gguf_import_llama) brings the F32 export back to the
 *     same bits and the Q8_0 export to dequant(quant(W)).
 *  3. Biases: a Llama with attention/MLP biases keeps them, Q/K biases permuted.
 *  4. GPT-2: names (attn_qkv, position_embd ...), ne order and values.
 *  5. Errors: a classifier, a missing tokenizer, an unknown pre-tokenizer, an
 *     uncreatable output; no temporary is left behind. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "formats/dequant.h"
#include "formats/gguf.h"
#include "formats/quant.h"
#include "formats/safetensors.h"
#include "model/gguf_export.h"
#include "model/model.h"

static char tmp[] = "/tmp/test_gguf_export.XXXXXX";

static void test_quant_vs_gguf_py(void) {
    StFile in;
    GgufFile g;
    Error e = {0};
    int rc = st_open(&in, "tests/oracle/fixtures/gguf-quant/input.safetensors", &e);
    CHECK(rc == 0, "open input: %s", e.msg);
    if (rc) return;
    rc = gguf_open(&g, "tests/oracle/fixtures/gguf-quant/quant.gguf", &e);
    CHECK(rc == 0, "open quant.gguf: %s", e.msg);
    if (rc) {
        st_close(&in);
        return;
    }
    const StTensor *x = st_find(&in, "x");
    const float *xf = x->data;
    static const struct {
        const char *name;
        int type;
    } cases[] = {{"t_f16", GGML_F16}, {"t_bf16", GGML_BF16}, {"t_q8_0", GGML_Q8_0}, {"t_q4_0", GGML_Q4_0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const GgufTensor *t = gguf_find_tensor(&g, cases[c].name);
        CHECK(t && t->type == cases[c].type, "%s missing", cases[c].name);
        if (!t) continue;
        size_t n = quant_row_bytes(t->type, x->numel);
        CHECK(n == t->nbytes, "%s: %zu bytes, gguf-py %llu", t->name, n, (unsigned long long)t->nbytes);
        if (n != t->nbytes) continue;
        unsigned char *got = xmalloc(n);
        CHECK(quant_row(t->type, xf, x->numel, got, &e) == 0, "%s: %s", t->name, e.msg);
        const unsigned char *want = t->data;
        int bad = 0;
        for (size_t i = 0; i < n; i++)
            if (got[i] != want[i] && bad++ < 3)
                CHECK(0, "%s byte %zu: got 0x%02x, gguf-py 0x%02x", t->name, i, got[i], want[i]);
        CHECK(bad == 0, "%s: %d of %zu bytes differ from gguf-py", t->name, bad, n);
        free(got);
    }
    gguf_close(&g);
    st_close(&in);

    /* Q4_K against llama.cpp's own quantiser (make_gguf_q4k_fixture.py) */
    rc = st_open(&in, "tests/oracle/fixtures/gguf-quant/q4k-input.safetensors", &e);
    CHECK(rc == 0, "open q4k input: %s", e.msg);
    if (rc) return;
    rc = gguf_open(&g, "tests/oracle/fixtures/gguf-quant/q4k.gguf", &e);
    CHECK(rc == 0, "open q4k.gguf: %s", e.msg);
    if (rc) {
        st_close(&in);
        return;
    }
    x = st_find(&in, "x");
    xf = x->data;
    const GgufTensor *t = gguf_find_tensor(&g, "t_q4_k");
    CHECK(t && t->type == GGML_Q4_K && quant_row_bytes(GGML_Q4_K, x->numel) == t->nbytes, "q4k fixture shape");
    if (t && quant_row_bytes(GGML_Q4_K, x->numel) == t->nbytes) {
        unsigned char *got = xmalloc(t->nbytes);
        CHECK(quant_row(GGML_Q4_K, xf, x->numel, got, &e) == 0, "Q4_K: %s", e.msg);
        int bad = 0;
        for (size_t b = 0; b < t->nbytes / 144; b++)
            if (memcmp(got + 144 * b, (const unsigned char *)t->data + 144 * b, 144) != 0 && bad++ < 3)
                CHECK(0, "Q4_K block %zu differs from llama.cpp's", b);
        CHECK(bad == 0, "Q4_K: %d of %llu blocks differ from llama.cpp's quantiser", bad,
              (unsigned long long)(t->nbytes / 144));
        /* and it reads back within the group's step */
        float *y = xmalloc(x->numel * sizeof(float));
        CHECK(dequant_row(GGML_Q4_K, got, t->nbytes, y, x->numel, &e) == 0, "Q4_K dequant");
        free(y);
        free(got);
    }
    /* constant and all-zero super-blocks are quantised without dividing by zero */
    float flat[512];
    for (int i = 0; i < 512; i++) flat[i] = i < 256 ? 0.0f : 0.25f;
    unsigned char qb[288];
    float back[512];
    CHECK(quant_row(GGML_Q4_K, flat, 512, qb, &e) == 0 && dequant_row(GGML_Q4_K, qb, 288, back, 512, &e) == 0,
          "flat Q4_K");
    CHECK(back[0] == 0.0f && fabsf(back[300] - 0.25f) < 0.02f, "flat Q4_K reads back 0 and 0.25: %g %g", back[0],
          back[300]);

    /* argument checks */
    unsigned char buf[64];
    CHECK(quant_row(GGML_Q8_0, xf, 31, buf, &e) == EX_DATAERR && strstr(e.msg, "multiple"), "31 Q8_0 elements");
    CHECK(quant_row(GGML_Q4_K, xf, 128, buf, &e) == EX_DATAERR && strstr(e.msg, "multiple"), "128 Q4_K elements");
    CHECK(quant_row(GGML_Q6_K, xf, 256, buf, &e) == EX_DATAERR && strstr(e.msg, "Q6_K"), "Q6_K refused: %s", e.msg);
    gguf_close(&g);
    st_close(&in);
}

static ModelConfig tiny_cfg(Family f, int bias) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = f;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_kv_head = f == FAMILY_GPT2 ? 4 : 2;
    c.d_model = 64; /* rows of 64: whole Q8_0/Q4_0 blocks */
    c.d_ff = f == FAMILY_GPT2 ? 256 : 96;
    c.vocab_size = 400; /* the bundled tokenizer has 391: ids 391..399 are padding */
    c.max_seq = 64;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.init_std = 0.2f;
    c.tie_embeddings = f == FAMILY_GPT2;
    c.attn_bias = f == FAMILY_GPT2 ? 1 : bias;
    c.mlp_bias = f == FAMILY_GPT2 ? 1 : bias;
    c.bos_id = c.eos_id = 0;
    c.pad_id = -1;
    return c;
}

/* Saves a random model of cfg with the bundled tokenizer into tmp/NAME. */
static char *make_model(const ModelConfig *cfg, const char *name, uint64_t seed, Model *m) {
    Error e = {0};
    model_create(m, cfg);
    model_init_random(m, seed);
    /* norms away from 1 and biases away from 0, so a lost or misplaced one shows */
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].ndim == 1)
            for (size_t j = 0; j < m->tensors[i].numel; j++)
                m->params[m->tensors[i].offset + j] += 0.01f * (float)(j % 7);
    char *dir = path_join(tmp, name);
    CHECK(model_save(m, dir, "data", &e) == 0, "save %s: %s", name, e.msg);
    return dir;
}

static uint64_t kv_u(const GgufFile *g, const char *key) {
    uint64_t v = 0;
    Error e = {0};
    CHECK(gguf_get_u64(g, key, &v, NULL, &e) == 0, "%s: %s", key, e.msg);
    return v;
}

static int str_is(const GgufFile *g, const char *key, const char *want) {
    char *s = NULL;
    Error e = {0};
    int ok = gguf_get_str(g, key, &s, NULL, &e) == 0 && strcmp(s, want) == 0;
    if (!ok) fprintf(stderr, "%s = \"%s\", expected \"%s\"\n", key, s ? s : e.msg, want);
    free(s);
    return ok;
}

/* The expected GGUF bytes->floats of HF tensor t: permuted (perm heads) then
 * quantised and dequantised row by row with type. */
static float *expect(const Model *m, const ParamTensor *t, int perm, int type) {
    int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
    float *x = xmalloc(t->numel * sizeof(float)), *y = xmalloc(t->numel * sizeof(float));
    Error e = {0};
    if (perm)
        gguf_permute_rows(m->params + t->offset, x, rows, cols, perm, &e);
    else
        memcpy(x, m->params + t->offset, t->numel * sizeof(float));
    if (t->ndim == 1) type = GGML_F32;
    size_t rb = quant_row_bytes(type, (size_t)cols);
    unsigned char *q = xmalloc(rb);
    for (int64_t r = 0; r < rows; r++) {
        quant_row(type, x + r * cols, (size_t)cols, q, &e);
        dequant_row(type, q, rb, y + r * cols, (size_t)cols, &e);
    }
    free(q);
    free(x);
    return y;
}

static void check_tensor(const GgufFile *g, const char *gname, const Model *m, const char *hf, int perm, int type) {
    const GgufTensor *t = gguf_find_tensor(g, gname);
    const ParamTensor *p = model_find_tensor(m, hf);
    CHECK(t && p, "%s (%s) missing", gname, hf);
    if (!t || !p) return;
    int want_type = p->ndim == 1 ? GGML_F32 : type;
    CHECK(t->type == want_type, "%s: type %s, expected %s", gname, ggml_type_name(t->type), ggml_type_name(want_type));
    int shape_ok = p->ndim == 1 ? (t->n_dims == 1 && t->ne[0] == p->shape[0])
                                : (t->n_dims == 2 && t->ne[0] == p->shape[1] && t->ne[1] == p->shape[0]);
    CHECK(shape_ok, "%s: ne [%lld, %lld] for HF shape [%lld, %lld]", gname, (long long)t->ne[0], (long long)t->ne[1],
          (long long)p->shape[0], (long long)(p->ndim == 2 ? p->shape[1] : 1));
    if (!shape_ok || t->type != want_type) return;
    float *got = xmalloc(p->numel * sizeof(float)), *want = expect(m, p, perm, type);
    Error e = {0};
    CHECK(dequant_row(t->type, t->data, t->nbytes, got, t->numel, &e) == 0, "%s: %s", gname, e.msg);
    CHECK(memcmp(got, want, p->numel * sizeof(float)) == 0, "%s: values differ from permute+quantise of %s", gname, hf);
    free(got);
    free(want);
}

static void test_llama(void) {
    ModelConfig cfg = tiny_cfg(FAMILY_LLAMA, 0);
    Model m;
    char *dir = make_model(&cfg, "llama", 7, &m);
    static const int types[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_0};
    static const uint32_t ftypes[] = {0, 1, 32, 7, 2};
    for (int ti = 0; ti < 5; ti++) {
        Error e = {0};
        char name[64];
        snprintf(name, sizeof name, "llama-%s.gguf", ggml_type_name(types[ti]));
        char *out = path_join(tmp, name);
        GgufExportOptions opt = {types[ti], NULL};
        GgufExportStats st;
        int rc = gguf_export(dir, out, &opt, &st, &e);
        CHECK(rc == 0, "export %s: %s", name, e.msg);
        GgufFile g;
        if (rc || gguf_open(&g, out, &e)) {
            CHECK(0, "open %s: %s", name, e.msg);
            free(out);
            continue;
        }
        CHECK(str_is(&g, "general.architecture", "llama"), "architecture");
        CHECK(str_is(&g, "general.name", "llama"), "name");
        CHECK(kv_u(&g, "general.file_type") == ftypes[ti], "%s: file_type", name);
        CHECK(kv_u(&g, "llama.block_count") == 2 && kv_u(&g, "llama.embedding_length") == 64 &&
                  kv_u(&g, "llama.feed_forward_length") == 96 && kv_u(&g, "llama.attention.head_count") == 4 &&
                  kv_u(&g, "llama.attention.head_count_kv") == 2 && kv_u(&g, "llama.context_length") == 64 &&
                  kv_u(&g, "llama.rope.dimension_count") == 16 && kv_u(&g, "llama.vocab_size") == 400,
              "%s: llama.* hyper-parameters", name);
        CHECK(str_is(&g, "tokenizer.ggml.model", "gpt2") && str_is(&g, "tokenizer.ggml.pre", "gpt-2"),
              "tokenizer model/pre");
        const GgufKV *tok = gguf_find_kv(&g, "tokenizer.ggml.tokens");
        const GgufKV *tt = gguf_find_kv(&g, "tokenizer.ggml.token_type");
        const GgufKV *mg = gguf_find_kv(&g, "tokenizer.ggml.merges");
        CHECK(tok && tok->arr_n == 400 && tt && tt->arr_n == 400 && mg && mg->arr_n == 134,
              "%s: 400 tokens and types, 134 merges", name);
        if (tok && tok->arr_n == 400 && tt) {
            int32_t t0, t395;
            memcpy(&t0, tt->arr_data, 4);
            memcpy(&t395, (const char *)tt->arr_data + 4 * 395, 4);
            CHECK(tok->arr_str[0].n == 13 && memcmp(tok->arr_str[0].p, "<|endoftext|>", 13) == 0 && t0 == 3,
                  "token 0 is <|endoftext|>, CONTROL");
            CHECK(tok->arr_str[395].n == 8 && memcmp(tok->arr_str[395].p, "[PAD395]", 8) == 0 && t395 == 5,
                  "token 395 is [PAD395], UNUSED");
        }
        CHECK(kv_u(&g, "tokenizer.ggml.eos_token_id") == 0 && kv_u(&g, "tokenizer.ggml.bos_token_id") == 0,
              "bos/eos ids");
        CHECK(g.n_tensors == (uint64_t)m.n_tensors && st.n_tensors == m.n_tensors, "%s: %llu tensors for %d", name,
              (unsigned long long)g.n_tensors, m.n_tensors);
        check_tensor(&g, "token_embd.weight", &m, "model.embed_tokens.weight", 0, types[ti]);
        check_tensor(&g, "output.weight", &m, "lm_head.weight", 0, types[ti]);
        check_tensor(&g, "output_norm.weight", &m, "model.norm.weight", 0, types[ti]);
        for (int l = 0; l < 2; l++) {
            static const char *const pairs[][2] = {{"attn_norm.weight", "input_layernorm.weight"},
                                                   {"attn_q.weight", "self_attn.q_proj.weight"},
                                                   {"attn_k.weight", "self_attn.k_proj.weight"},
                                                   {"attn_v.weight", "self_attn.v_proj.weight"},
                                                   {"attn_output.weight", "self_attn.o_proj.weight"},
                                                   {"ffn_norm.weight", "post_attention_layernorm.weight"},
                                                   {"ffn_gate.weight", "mlp.gate_proj.weight"},
                                                   {"ffn_up.weight", "mlp.up_proj.weight"},
                                                   {"ffn_down.weight", "mlp.down_proj.weight"}};
            for (int k = 0; k < 9; k++) {
                char gn[96], hn[128];
                snprintf(gn, sizeof gn, "blk.%d.%s", l, pairs[k][0]);
                snprintf(hn, sizeof hn, "model.layers.%d.%s", l, pairs[k][1]);
                int perm = k == 1 ? 4 : k == 2 ? 2 : 0;
                check_tensor(&g, gn, &m, hn, perm, types[ti]);
            }
        }
        gguf_close(&g);

        /* back through import-gguf's reader */
        if (types[ti] == GGML_F32 || types[ti] == GGML_Q8_0) {
            char *back = path_join(tmp, types[ti] == GGML_F32 ? "back-f32" : "back-q8");
            GgufImportOptions io = {1, 0};
            rc = gguf_import_llama(out, back, &io, NULL, &e);
            CHECK(rc == 0, "import %s: %s", name, e.msg);
            Model b;
            if (rc == 0 && model_load(&b, back, &e) == 0) {
                CHECK(b.n_params == m.n_params, "round trip: %zu params for %zu", b.n_params, m.n_params);
                for (int i = 0; i < m.n_tensors && b.n_params == m.n_params; i++) {
                    const ParamTensor *p = &m.tensors[i], *q = model_find_tensor(&b, p->name);
                    CHECK(q != NULL, "round trip lost %s", p->name);
                    if (!q) continue;
                    float *want = expect(&m, p, 0, types[ti]);
                    CHECK(memcmp(b.params + q->offset, want, p->numel * sizeof(float)) == 0,
                          "round trip %s: %s differs from dequant(quant(W))", name, p->name);
                    free(want);
                }
                CHECK(b.cfg.n_kv_head == 2 && b.cfg.d_ff == 96 && b.cfg.vocab_size == 400 && !b.cfg.tie_embeddings,
                      "round trip config");
                model_free(&b);
            } else
                CHECK(0, "load imported %s: %s", name, e.msg);
            free(back);
        }
        free(out);
    }
    model_free(&m);
    free(dir);
}

static void test_llama_bias(void) {
    ModelConfig cfg = tiny_cfg(FAMILY_LLAMA, 1);
    cfg.tie_embeddings = 1;
    Model m;
    char *dir = make_model(&cfg, "llama-bias", 8, &m);
    char *out = path_join(tmp, "bias.gguf");
    GgufExportOptions opt = {GGML_Q8_0, NULL};
    Error e = {0};
    GgufFile g;
    CHECK(gguf_export(dir, out, &opt, NULL, &e) == 0, "export with biases: %s", e.msg);
    if (gguf_open(&g, out, &e) == 0) {
        CHECK(gguf_find_tensor(&g, "output.weight") == NULL, "tied: no output.weight");
        check_tensor(&g, "blk.1.attn_q.bias", &m, "model.layers.1.self_attn.q_proj.bias", 4, GGML_Q8_0);
        check_tensor(&g, "blk.1.attn_k.bias", &m, "model.layers.1.self_attn.k_proj.bias", 2, GGML_Q8_0);
        check_tensor(&g, "blk.0.attn_v.bias", &m, "model.layers.0.self_attn.v_proj.bias", 0, GGML_Q8_0);
        check_tensor(&g, "blk.0.ffn_down.bias", &m, "model.layers.0.mlp.down_proj.bias", 0, GGML_Q8_0);
        gguf_close(&g);
    } else
        CHECK(0, "open bias.gguf: %s", e.msg);
    /* Q4_K on rows of 64 and 96 (not whole super-blocks of 256): every matrix falls
     * back to Q8_0, the biases and norms stay F32, the file says MOSTLY_Q4_K_S */
    opt.type = GGML_Q4_K;
    GgufExportStats st;
    CHECK(gguf_export(dir, out, &opt, &st, &e) == 0, "export q4_k: %s", e.msg);
    CHECK(st.n_fallback == st.n_quantised && st.n_quantised > 0, "q4_k: %d of %d matrices fell back", st.n_fallback,
          st.n_quantised);
    if (gguf_open(&g, out, &e) == 0) {
        CHECK(kv_u(&g, "general.file_type") == 14, "q4_k file_type");
        check_tensor(&g, "blk.0.ffn_down.weight", &m, "model.layers.0.mlp.down_proj.weight", 0, GGML_Q8_0);
        check_tensor(&g, "blk.1.attn_k.weight", &m, "model.layers.1.self_attn.k_proj.weight", 2, GGML_Q8_0);
        gguf_close(&g);
    }
    model_free(&m);
    free(dir);
    free(out);
}

static void test_gpt2(void) {
    ModelConfig cfg = tiny_cfg(FAMILY_GPT2, 1);
    Model m;
    char *dir = make_model(&cfg, "gpt2", 9, &m);
    char *out = path_join(tmp, "gpt2.gguf");
    GgufExportOptions opt = {GGML_F32, "tiny gpt2"};
    Error e = {0};
    GgufFile g;
    CHECK(gguf_export(dir, out, &opt, NULL, &e) == 0, "export gpt2: %s", e.msg);
    if (gguf_open(&g, out, &e) == 0) {
        CHECK(str_is(&g, "general.architecture", "gpt2") && str_is(&g, "general.name", "tiny gpt2"), "gpt2 general");
        CHECK(kv_u(&g, "gpt2.block_count") == 2 && kv_u(&g, "gpt2.context_length") == 64 &&
                  kv_u(&g, "gpt2.feed_forward_length") == 256 && kv_u(&g, "gpt2.attention.head_count") == 4,
              "gpt2.* hyper-parameters");
        double eps = 0;
        CHECK(gguf_get_f64(&g, "gpt2.attention.layer_norm_epsilon", &eps, NULL, &e) == 0 && (float)eps == 1e-5f,
              "gpt2 eps");
        CHECK(g.n_tensors == (uint64_t)m.n_tensors, "gpt2: %llu tensors", (unsigned long long)g.n_tensors);
        check_tensor(&g, "token_embd.weight", &m, "transformer.wte.weight", 0, GGML_F32);
        check_tensor(&g, "position_embd.weight", &m, "transformer.wpe.weight", 0, GGML_F32);
        check_tensor(&g, "blk.1.attn_qkv.weight", &m, "transformer.h.1.attn.c_attn.weight", 0, GGML_F32);
        check_tensor(&g, "blk.1.attn_qkv.bias", &m, "transformer.h.1.attn.c_attn.bias", 0, GGML_F32);
        check_tensor(&g, "blk.0.attn_output.weight", &m, "transformer.h.0.attn.c_proj.weight", 0, GGML_F32);
        check_tensor(&g, "blk.0.ffn_up.weight", &m, "transformer.h.0.mlp.c_fc.weight", 0, GGML_F32);
        check_tensor(&g, "blk.0.ffn_down.weight", &m, "transformer.h.0.mlp.c_proj.weight", 0, GGML_F32);
        check_tensor(&g, "blk.0.ffn_norm.bias", &m, "transformer.h.0.ln_2.bias", 0, GGML_F32);
        check_tensor(&g, "output_norm.bias", &m, "transformer.ln_f.bias", 0, GGML_F32);
        gguf_close(&g);
    } else
        CHECK(0, "open gpt2.gguf: %s", e.msg);
    model_free(&m);
    free(dir);
    free(out);
}

static void test_errors(void) {
    Error e = {0};
    GgufExportOptions opt = {GGML_F16, NULL};
    char *llama = path_join(tmp, "llama"), *out = path_join(tmp, "err.gguf");
    /* a classifier */
    ModelConfig cfg = tiny_cfg(FAMILY_LLAMA, 0);
    cfg.is_classifier = 1;
    Model m;
    char *rm = make_model(&cfg, "rm", 3, &m);
    model_free(&m);
    int rc = gguf_export(rm, out, &opt, NULL, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "classifier"), "classifier: %d %s", rc, e.msg);
    /* no tokenizer.json */
    cfg.is_classifier = 0;
    char *lm = make_model(&cfg, "notok", 4, &m);
    model_free(&m);
    char *tj = path_join(lm, "tokenizer.json");
    unlink(tj);
    rc = gguf_export(lm, out, &opt, NULL, &e);
    CHECK(rc == EX_NOINPUT && strstr(e.msg, "tokenizer.json"), "no tokenizer: %d %s", rc, e.msg);
    /* an unknown pre-tokenizer */
    FILE *fp = fopen(tj, "w");
    fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
          "{\"type\": \"Whitespace\"}, \"added_tokens\": []}\n",
          fp);
    fclose(fp);
    rc = gguf_export(lm, out, &opt, NULL, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "Whitespace") && strstr(e.msg, "pre_tokenizer"), "pre: %d %s", rc, e.msg);
    /* SentencePiece-style BPE */
    fp = fopen(tj, "w");
    fputs("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}, "
          "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"added_tokens\": []}\n",
          fp);
    fclose(fp);
    rc = gguf_export(lm, out, &opt, NULL, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "byte_fallback"), "byte_fallback: %d %s", rc, e.msg);
    /* uncreatable output */
    char *bad = path_join(tmp, "no/such/dir/x.gguf");
    rc = gguf_export(llama, bad, &opt, NULL, &e);
    CHECK(rc == EX_CANTCREAT, "uncreatable output: %d %s", rc, e.msg);
    CHECK(access(out, F_OK) != 0, "a failed export left %s", out);
    /* no temporaries left in tmp */
    DIR *d = opendir(tmp);
    struct dirent *de;
    while (d && (de = readdir(d))) CHECK(!strstr(de->d_name, "tmp"), "temporary left behind: %s", de->d_name);
    if (d) closedir(d);
    free(bad);
    free(tj);
    free(lm);
    free(rm);
    free(llama);
    free(out);
}

int main(void) {
    if (!mkdtemp(tmp)) return 1;
    test_quant_vs_gguf_py();
    test_llama();
    test_llama_bias();
    test_gpt2();
    test_errors();
    remove_tree(tmp);
    if (failures) return 1;
    printf("GGUF export: quantisers match gguf-py, llama/gpt2 exports and the round trip are exact\n");
    return 0;
}
