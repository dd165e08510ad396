/* gguf_export_vocab.c — the tokenizer of a model directory as llama.cpp's
 * tokenizer.ggml.* metadata (gguf.md "Tokenizer"; what convert_hf_to_gguf.py's
 * get_vocab_base and gguf-py's SpecialVocab write for a byte-level BPE tokenizer).
 *
 *   tokens      one string per id 0..vocab_size-1; ids the tokenizer lacks (an
 *               embedding padded past the vocabulary) become "[PAD<id>]", type UNUSED
 *   token_type  NORMAL, CONTROL for special added tokens, USER_DEFINED for other
 *               added tokens (gguf-py constants.py TokenType)
 *   merges      "left right", in rank order
 *   pre         the name llama.cpp gives the pre-tokenizer (llama-vocab.cpp
 *               LLAMA_VOCAB_PRE_TYPE_*): recognised from tokenizer.json's
 *               pre_tokenizer, the inverse of gguf_import's table
 *   ids         bos/eos/pad/unk from tokenizer_config.json's token strings, else
 *               config.json's ids; add_bos_token/add_eos_token from
 *               tokenizer_config.json (false when absent)
 *   template    tokenizer_config.json chat_template (a string, or the "default" of
 *               a named list), else chat_template.jinja */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gguf_export_impl.h"

enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER_DEFINED = 4, TOK_UNUSED = 5 };

static json_t *load_json(const char *dir, const char *name, int required, Error *e, int *rc) {
    char *p = path_join(dir, name);
    *rc = 0;
    json_t *j = NULL;
    if (!file_exists(p)) {
        if (required) *rc = err_set(e, EX_NOINPUT, "%s: missing (needed for the GGUF vocabulary)", p);
    } else {
        json_error_t je;
        j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
        if (!j) *rc = err_set(e, EX_DATAERR, "%s:%d: invalid JSON: %s", p, je.line, je.text);
    }
    free(p);
    return j;
}

/* Regexes of tokenizer.json Split pre-tokenizers llama.cpp knows by name. */
#define LLAMA3_RE                                                                                                      \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                                         \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"                                                                     \
    "\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                                                       \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"  \
    "\\s+(?!\\S)|\\s+"

static int is_type(json_t *o, const char *t) {
    const char *s = json_string_value(json_object_get(o, "type"));
    return s && strcmp(s, t) == 0;
}

static int bytelevel_regex(json_t *o, int want_regex) {
    json_t *r = json_object_get(o, "use_regex");
    int use = r ? json_is_true(r) : 1; /* tokenizers' default */
    return is_type(o, "ByteLevel") && use == want_regex && !json_is_true(json_object_get(o, "add_prefix_space"));
}

/* The llama.cpp pre-tokenizer name of a tokenizer.json pre_tokenizer, or NULL. */
static const char *pre_name(json_t *pre) {
    if (bytelevel_regex(pre, 1)) return "gpt-2";
    if (!is_type(pre, "Sequence")) return NULL;
    json_t *seq = json_object_get(pre, "pretokenizers");
    if (json_array_size(seq) != 2) return NULL;
    json_t *a = json_array_get(seq, 0), *b = json_array_get(seq, 1);
    if (is_type(a, "Digits") && json_is_true(json_object_get(a, "individual_digits")) && bytelevel_regex(b, 1))
        return "smollm";
    if (is_type(a, "Split") && bytelevel_regex(b, 0)) {
        const char *re = json_string_value(json_object_get(json_object_get(a, "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(a, "behavior"));
        if (!re || !beh || strcmp(beh, "Isolated") != 0 || json_is_true(json_object_get(a, "invert"))) return NULL;
        if (strcmp(re, LLAMA3_RE) == 0) return "llama-bpe";
        if (strcmp(re, QWEN2_RE) == 0) return "qwen2";
    }
    return NULL;
}

/* A special-token entry of tokenizer_config.json: a string or {"content": ...}. */
static const char *token_string(json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

static int find_token(char **tokens, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (tokens[i] && strcmp(tokens[i], s) == 0) return i;
    return -1;
}

static char *chat_template(json_t *tc, const char *dir) {
    json_t *t = tc ? json_object_get(tc, "chat_template") : NULL;
    if (json_is_string(t)) return xstrdup(json_string_value(t));
    if (json_is_array(t)) { /* [{"name": "default", "template": "..."}, ...] */
        size_t i;
        json_t *it;
        json_array_foreach(t, i, it) {
            const char *nm = json_string_value(json_object_get(it, "name"));
            if (nm && strcmp(nm, "default") == 0 && json_is_string(json_object_get(it, "template")))
                return xstrdup(json_string_value(json_object_get(it, "template")));
        }
    }
    char *p = path_join(dir, "chat_template.jinja"), *text = NULL;
    size_t len;
    Error ignore;
    if (file_exists(p) && read_file(p, &text, &len, &ignore) != 0) text = NULL;
    free(p);
    return text;
}

typedef struct Vocab {
    int n;
    char **tokens; /* n strings (NUL-free: tokenizer.json strings are JSON) */
    int32_t *types;
    char **merges;
    size_t n_merges;
} Vocab;

static void vocab_free(Vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tokens[i]);
    for (size_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
}

static int read_model(json_t *tj, const char *path, int n_vocab, Vocab *v, Error *e) {
    json_t *model = json_object_get(tj, "model");
    if (!is_type(model, "BPE"))
        return err_set(e, EX_DATAERR,
                       "%s: model type \"%s\" cannot be exported (only byte-level BPE, llama.cpp's \"gpt2\" "
                       "vocabulary, field \"model.type\")",
                       path, json_string_value(json_object_get(model, "type")) ?: "?");
    if (json_is_true(json_object_get(model, "byte_fallback")))
        return err_set(e, EX_DATAERR,
                       "%s: a BPE with byte_fallback (SentencePiece-style, llama.cpp's \"llama\" vocabulary) "
                       "cannot be exported yet (field \"model.byte_fallback\")",
                       path);
    v->n = n_vocab;
    v->tokens = xcalloc((size_t)n_vocab, sizeof(char *));
    v->types = xmalloc((size_t)n_vocab * sizeof(int32_t));
    const char *k;
    json_t *id;
    json_object_foreach(json_object_get(model, "vocab"), k, id) {
        json_int_t i = json_integer_value(id);
        if (!json_is_integer(id) || i < 0 || i >= n_vocab)
            return err_set(e, EX_DATAERR, "%s: token \"%s\" has id %lld outside the model's %d embeddings", path, k,
                           (long long)i, n_vocab);
        free(v->tokens[i]);
        v->tokens[i] = xstrdup(k);
        v->types[i] = TOK_NORMAL;
    }
    size_t ai;
    json_t *at;
    json_array_foreach(json_object_get(tj, "added_tokens"), ai, at) {
        json_int_t i = json_integer_value(json_object_get(at, "id"));
        const char *c = json_string_value(json_object_get(at, "content"));
        if (!c || i < 0 || i >= n_vocab)
            return err_set(e, EX_DATAERR, "%s: added_tokens[%zu] has no content or an id outside the %d embeddings",
                           path, ai, n_vocab);
        free(v->tokens[i]);
        v->tokens[i] = xstrdup(c);
        v->types[i] = json_is_true(json_object_get(at, "special")) ? TOK_CONTROL : TOK_USER_DEFINED;
    }
    for (int i = 0; i < n_vocab; i++)
        if (!v->tokens[i]) { /* convert_hf_to_gguf.py: "[PAD{i}]", UNUSED */
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%d]", i);
            v->tokens[i] = xstrdup(buf);
            v->types[i] = TOK_UNUSED;
        }
    json_t *mg = json_object_get(model, "merges");
    v->n_merges = json_array_size(mg);
    v->merges = xcalloc(v->n_merges ? v->n_merges : 1, sizeof(char *));
    for (size_t i = 0; i < v->n_merges; i++) {
        json_t *m = json_array_get(mg, i);
        if (json_is_string(m))
            v->merges[i] = xstrdup(json_string_value(m));
        else if (json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                 json_is_string(json_array_get(m, 1))) {
            const char *a = json_string_value(json_array_get(m, 0)), *b = json_string_value(json_array_get(m, 1));
            if (asprintf(&v->merges[i], "%s %s", a, b) < 0) die_internal("out of memory");
        } else
            return err_set(e, EX_DATAERR, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
    }
    return 0;
}

int gguf_export_vocab(GgufWriter *w, const char *dir, const ModelConfig *cfg, const char **pre_out, int *n_merges,
                      Error *e) {
    int rc;
    json_t *tj = load_json(dir, "tokenizer.json", 1, e, &rc);
    if (rc) return rc;
    json_t *tc = load_json(dir, "tokenizer_config.json", 0, e, &rc);
    if (rc) {
        json_decref(tj);
        return rc;
    }
    char *path = path_join(dir, "tokenizer.json");
    Vocab v = {0};
    char *tmpl = NULL;
    const char *pre = pre_name(json_object_get(tj, "pre_tokenizer"));
    if (!pre) {
        char *s = json_dumps(json_object_get(tj, "pre_tokenizer"), JSON_COMPACT);
        rc = err_set(e, EX_DATAERR,
                     "%s: pre_tokenizer %.200s has no llama.cpp equivalent cherry knows (known: GPT-2 ByteLevel, "
                     "SmolLM Digits+ByteLevel, Llama-3 and Qwen2 Split regexes)",
                     path, s ? s : "null");
        free(s);
        goto out;
    }
    if ((rc = read_model(tj, path, cfg->vocab_size, &v, e))) goto out;

    int ids[4] = {cfg->bos_id, cfg->eos_id, cfg->pad_id, -1};
    static const char *names[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    for (int k = 0; k < 4; k++) {
        const char *s = tc ? token_string(json_object_get(tc, names[k])) : NULL;
        int id = s ? find_token(v.tokens, v.n, s) : -1;
        if (id >= 0) ids[k] = id;
        if (ids[k] >= v.n) ids[k] = -1;
    }
    int add_bos = tc && json_is_true(json_object_get(tc, "add_bos_token"));
    int add_eos = tc && json_is_true(json_object_get(tc, "add_eos_token"));
    if ((add_bos && ids[0] < 0) || (add_eos && ids[1] < 0)) {
        rc = err_set(e, EX_DATAERR, "%s/tokenizer_config.json: add_%s_token is set but the model has no %s token", dir,
                     add_bos ? "bos" : "eos", add_bos ? "bos" : "eos");
        goto out;
    }
    tmpl = chat_template(tc, dir);

    gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_str(w, "tokenizer.ggml.pre", pre);
    gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, NULL, (size_t)v.n);
    gguf_w_arr_i32(w, "tokenizer.ggml.token_type", v.types, (size_t)v.n);
    gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, NULL, v.n_merges);
    static const char *keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                  "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"};
    for (int k = 0; k < 4; k++)
        if (ids[k] >= 0) gguf_w_u32(w, keys[k], (uint32_t)ids[k]);
    gguf_w_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    gguf_w_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    if (tmpl) gguf_w_str(w, "tokenizer.chat_template", tmpl);
    *pre_out = pre;
    *n_merges = (int)v.n_merges;
out:
    free(tmpl);
    vocab_free(&v);
    free(path);
    json_decref(tj);
    json_decref(tc);
    return rc;
}
