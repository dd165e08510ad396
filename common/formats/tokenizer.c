/* tokenizer.c — loading tokenizer.json, added tokens, the encode/decode driver.
 * See tokenizer.h for what is supported; the pipeline follows the `tokenizers`
 * library (tokenizer/mod.rs, added_vocabulary.rs):
 *   1. invalid UTF-8 -> U+FFFD (maximal subparts), as Python's decode("replace")
 *   2. added tokens with normalized=false are split out of the raw text
 *      (leftmost-longest, with single_word / lstrip / rstrip),
 *   3. the rest is normalized (none or NFC) and added tokens with
 *      normalized=true are split out of it,
 *   4. the remaining pieces go through the pre-tokenizer (tokenizer_pretok.c) and
 *      each resulting word through the BPE model (tokenizer_bpe.c).
 * Decoding: runs of model tokens go through the decoder (ByteLevel: characters back
 * to bytes, then lossy UTF-8), added tokens are copied verbatim between them.
 * Not for: chat templates (chat.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "jinja.h"
#include "tokenizer_impl.h"

/* ---- ByteLevel alphabet: GPT-2 bytes_to_unicode (openai/gpt-2 src/encoder.py) ----
 * Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other
 * 68 bytes map, in order, to U+0100 + k. */
static void bytelevel_init(Tokenizer *t) {
    int cp_of[256];
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = printable ? b : 256 + k++;
    }
    for (int i = 0; i < 512; i++) t->byte_of_cp[i] = -1;
    for (int b = 0; b < 256; b++) {
        t->byte_of_cp[cp_of[b]] = b;
        char buf[4];
        int l = utf8_encode((uint32_t)cp_of[b], buf);
        memset(t->byte_char[b], 0, 3);
        memcpy(t->byte_char[b], buf, (size_t)l);
    }
}

static int lookup_token(const Tokenizer *t, const char *s) {
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return t->added[i].id;
    return strmap_get(&t->vocab, s, strlen(s));
}

/* ---- loading ---- */
static int parse_vocab(Tokenizer *t, const json_t *model, Error *e) {
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return err_set(e, EX_DATAERR, "%s: field \"model.vocab\" must be an object", t->path);
    int max_id = -1;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return err_set(e, EX_DATAERR, "%s: field \"model.vocab\": id of \"%s\" must be an integer in [0, 2^24)",
                           t->path, k);
        if (json_integer_value(v) > max_id) max_id = (int)json_integer_value(v);
    }
    t->n_ids = max_id + 1;
    t->piece = xcalloc((size_t)t->n_ids + 1, sizeof(char *));
    t->piece_len = xcalloc((size_t)t->n_ids + 1, sizeof(int));
    json_object_foreach((json_t *)vocab, k, v) {
        int id = (int)json_integer_value(v);
        size_t len = strlen(k);
        if (t->piece[id])
            return err_set(e, EX_DATAERR, "%s: field \"model.vocab\": id %d is used by \"%s\" and \"%s\"", t->path, id,
                           t->piece[id], k);
        t->piece[id] = xstrdup(k);
        t->piece_len[id] = (int)len;
        strmap_put(&t->vocab, k, len, id);
    }
    return 0;
}

static int merge_part_id(Tokenizer *t, const char *s, size_t len, size_t rank, Error *e) {
    int id = strmap_get(&t->vocab, s, len);
    if (id < 0)
        return -err_set(e, EX_DATAERR, "%s: field \"model.merges[%zu]\": token \"%.*s\" is not in the vocabulary",
                        t->path, rank, (int)len, s);
    return id;
}

static int parse_merges(Tokenizer *t, const json_t *model, Error *e) {
    const json_t *merges = json_object_get(model, "merges");
    if (!merges || json_is_null(merges)) return 0;
    if (!json_is_array(merges)) return err_set(e, EX_DATAERR, "%s: field \"model.merges\" must be an array", t->path);
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t r = 0; r < json_array_size(merges) && !rc; r++) {
        const json_t *m = json_array_get(merges, r);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) { /* the older form: "a b", exactly one space */
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = err_set(e, EX_DATAERR, "%s: field \"model.merges[%zu]\": \"%s\" is not \"a b\"", t->path, r, s);
                break; /* the buffer is freed below (it leaked on every error return) */
            }
            a = s, la = (size_t)(sp - s), b = sp + 1, lb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0)), la = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1)), lb = json_string_length(json_array_get(m, 1));
        } else {
            rc =
                err_set(e, EX_DATAERR, "%s: field \"model.merges[%zu]\" must be \"a b\" or [\"a\", \"b\"]", t->path, r);
            break;
        }
        int ia = merge_part_id(t, a, la, r, e);
        int ib = ia < 0 ? ia : merge_part_id(t, b, lb, r, e);
        if (ib < 0) {
            rc = -ib;
            break;
        }
        if (la + lb + 1 > cap) {
            cap = la + lb + 64;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int nid = strmap_get(&t->vocab, buf, la + lb);
        if (nid < 0)
            rc = err_set(e, EX_DATAERR,
                         "%s: field \"model.merges[%zu]\": merged token \"%.*s\" is not in the vocabulary", t->path, r,
                         (int)(la + lb), buf);
        else
            bpe_merge_put(t, ia, ib, (int)r, nid);
    }
    free(buf);
    return rc;
}

static int parse_model(Tokenizer *t, const json_t *root, Error *e) {
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return err_set(e, EX_DATAERR, "%s: field \"model\" missing or not an object", t->path);
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && !strcmp(type, "Unigram")) return unigram_parse(t, model, e);
    if (type && strcmp(type, "BPE"))
        return err_set(e, EX_DATAERR, "%s: field \"model.type\": unsupported model type \"%s\" (BPE and Unigram are)",
                       t->path, type);
    if (!type && !json_object_get(model, "merges"))
        return err_set(e, EX_DATAERR, "%s: field \"model.type\" missing and no \"model.merges\": not a BPE model",
                       t->path);
    const json_t *v;
    if ((v = json_object_get(model, "dropout")) && !json_is_null(v) && json_number_value(v) > 0)
        return err_set(e, EX_DATAERR, "%s: field \"model.dropout\": BPE dropout is not supported (not deterministic)",
                       t->path);
    const char *fields[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(model, fields[i]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 0))
            return err_set(e, EX_DATAERR, "%s: field \"model.%s\": not supported (byte-level BPE only)", t->path,
                           fields[i]);
    }
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    int rc = parse_vocab(t, model, e);
    if (rc) return rc;
    t->unk_id = -1;
    v = json_object_get(model, "unk_token");
    if (json_is_string(v)) {
        t->unk_id = strmap_get(&t->vocab, json_string_value(v), json_string_length(v));
        if (t->unk_id < 0)
            return err_set(e, EX_DATAERR, "%s: field \"model.unk_token\": \"%s\" is not in the vocabulary", t->path,
                           json_string_value(v));
    }
    for (int cp = 0; cp < 512; cp++) {
        char buf[4];
        int l = utf8_encode((uint32_t)cp, buf);
        t->cp_id[cp] = strmap_get(&t->vocab, buf, (size_t)l);
    }
    return parse_merges(t, model, e);
}

static void set_build(Tokenizer *t, AddedSet *set, int normalized) {
    int n = 0;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].len) n++;
    set->n = n;
    set->idx = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    set->bucket_start = xcalloc(257, sizeof(int));
    /* counting sort by first byte; inside a bucket, longest first */
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].len)
            set->bucket_start[(unsigned char)t->added[i].content[0] + 1]++;
    for (int b = 0; b < 256; b++) set->bucket_start[b + 1] += set->bucket_start[b];
    int *fill = xcalloc(256, sizeof(int));
    for (int i = 0; i < t->n_added; i++) {
        const AddedTok *a = &t->added[i];
        if (a->normalized != normalized || !a->len) continue;
        int b = (unsigned char)a->content[0];
        int at = set->bucket_start[b] + fill[b]++;
        /* insertion keeping longest first (stable for equal lengths) */
        while (at > set->bucket_start[b] && t->added[set->idx[at - 1]].len < a->len) {
            set->idx[at] = set->idx[at - 1];
            at--;
        }
        set->idx[at] = i;
    }
    free(fill);
}

static int parse_added(Tokenizer *t, const json_t *root, Error *e) {
    const json_t *list = json_object_get(root, "added_tokens");
    if (!list || json_is_null(list))
        list = NULL;
    else if (!json_is_array(list))
        return err_set(e, EX_DATAERR, "%s: field \"added_tokens\" must be an array", t->path);
    size_t n = list ? json_array_size(list) : 0;
    t->added = xcalloc(n ? n : 1, sizeof(AddedTok));
    int max_id = t->n_ids - 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(list, i);
        const json_t *id = json_object_get(o, "id"), *content = json_object_get(o, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24))
            return err_set(e, EX_DATAERR, "%s: field \"added_tokens[%zu].id\" must be an integer in [0, 2^24)", t->path,
                           i);
        if (!json_is_string(content))
            return err_set(e, EX_DATAERR, "%s: field \"added_tokens[%zu].content\" must be a string", t->path, i);
        AddedTok *a = &t->added[t->n_added++];
        a->id = (int)json_integer_value(id);
        a->len = json_string_length(content);
        a->content = xmalloc(a->len + 1);
        memcpy(a->content, json_string_value(content), a->len + 1);
        a->single_word = json_is_true(json_object_get(o, "single_word"));
        a->lstrip = json_is_true(json_object_get(o, "lstrip"));
        a->rstrip = json_is_true(json_object_get(o, "rstrip"));
        const json_t *nz = json_object_get(o, "normalized");
        a->special = json_is_true(json_object_get(o, "special"));
        a->normalized = json_is_boolean(nz) ? json_is_true(nz) : !a->special; /* AddedToken::from default */
        if (a->id > max_id) max_id = a->id;
    }
    if (max_id + 1 > t->n_ids) {
        t->piece = xrealloc(t->piece, (size_t)(max_id + 2) * sizeof(char *));
        t->piece_len = xrealloc(t->piece_len, (size_t)(max_id + 2) * sizeof(int));
        for (int i = t->n_ids; i <= max_id + 1; i++) t->piece[i] = NULL, t->piece_len[i] = 0;
        t->n_ids = max_id + 1;
    }
    t->id_flags = xcalloc((size_t)t->n_ids + 1, 1);
    for (int i = 0; i < t->n_added; i++) {
        AddedTok *a = &t->added[i];
        t->id_flags[a->id] = (unsigned char)(1 | (a->special ? 2 : 0));
        if (!t->piece[a->id]) {
            t->piece[a->id] = xstrdup(a->content);
            t->piece_len[a->id] = (int)a->len;
        }
    }
    set_build(t, &t->set_raw, 0);
    set_build(t, &t->set_norm, 1);
    return 0;
}

/* normalizer steps: tokenizer_norm.c */
static int parse_normalizer(Tokenizer *t, const json_t *root, Error *e) {
    int rc = norm_parse(t, json_object_get(root, "normalizer"), "normalizer", e);
    if (rc || !t->n_norm) return rc;
    /* added tokens with normalized=true match against their normalized form
     * (added_vocabulary.rs refresh_added_tokens normalizes their content) */
    for (int i = 0; i < t->n_added; i++) {
        AddedTok *a = &t->added[i];
        size_t nl;
        char *nf = a->normalized ? norm_apply(t, a->content, a->len, 0, &nl) : NULL;
        if (nf) {
            free(a->content);
            a->content = nf;
            a->len = nl;
        }
    }
    free(t->set_norm.idx);
    free(t->set_norm.bucket_start);
    set_build(t, &t->set_norm, 1);
    return 0;
}

static int post_special(Tokenizer *t, const json_t *pp, const char *name, IntVec *out, const char *where, Error *e) {
    /* TemplateProcessing: special_tokens[name].ids */
    const json_t *st = json_object_get(json_object_get(pp, "special_tokens"), name);
    const json_t *ids = json_object_get(st, "ids");
    if (!json_is_array(ids))
        return err_set(e, EX_DATAERR, "%s: field \"%s.special_tokens\": no ids for \"%s\"", t->path, where, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= t->n_ids)
            return err_set(e, EX_DATAERR, "%s: field \"%s.special_tokens.%s.ids\": bad id", t->path, where, name);
        intvec_push(out, (int)json_integer_value(v));
    }
    return 0;
}

static int parse_post_one(Tokenizer *t, const json_t *pp, const char *where, Error *e) {
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type) return err_set(e, EX_DATAERR, "%s: field \"%s.type\" missing", t->path, where);
    if (!strcmp(type, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(pp, "processors");
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.processors[%zu]", where, i);
            int rc = parse_post_one(t, json_array_get(list, i), sub, e);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const json_t *single = json_object_get(pp, "single");
        if (!json_is_array(single))
            return err_set(e, EX_DATAERR, "%s: field \"%s.single\" must be an array", t->path, where);
        t->post_prefix.n = t->post_suffix.n = 0;
        int seen_a = 0;
        for (size_t i = 0; i < json_array_size(single); i++) {
            const json_t *it = json_array_get(single, i);
            const json_t *sp = json_object_get(it, "SpecialToken");
            if (sp) {
                const char *id = json_string_value(json_object_get(sp, "id"));
                if (!id)
                    return err_set(e, EX_DATAERR, "%s: field \"%s.single[%zu].SpecialToken.id\"", t->path, where, i);
                int rc = post_special(t, pp, id, seen_a ? &t->post_suffix : &t->post_prefix, where, e);
                if (rc) return rc;
            } else if (json_object_get(it, "Sequence")) {
                seen_a = 1;
            } else {
                return err_set(e, EX_DATAERR, "%s: field \"%s.single[%zu]\": expected SpecialToken or Sequence",
                               t->path, where, i);
            }
        }
        return 0;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
        if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1)))
            return err_set(e, EX_DATAERR, "%s: field \"%s.cls\"/\"sep\" must be [token, id]", t->path, where);
        t->post_prefix.n = t->post_suffix.n = 0;
        intvec_push(&t->post_prefix, (int)json_integer_value(json_array_get(cls, 1)));
        intvec_push(&t->post_suffix, (int)json_integer_value(json_array_get(sep, 1)));
        return 0;
    }
    return err_set(e, EX_DATAERR, "%s: field \"%s.type\": unsupported post-processor \"%s\"", t->path, where, type);
}

/* tokenizer_config.json values: a string, or an AddedToken object {"content": ...}. */
static const char *config_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static void load_config(Tokenizer *t) {
    t->bos_id = t->eos_id = t->pad_id = -1;
    char *dir = xstrdup(t->path);
    char *slash = strrchr(dir, '/');
    char *cfg_path;
    if (slash) {
        slash[1] = 0;
        cfg_path = path_join(dir, "tokenizer_config.json");
    } else {
        cfg_path = xstrdup("tokenizer_config.json");
    }
    free(dir);
    json_t *cfg = file_exists(cfg_path) ? json_load_file(cfg_path, 0, NULL) : NULL;
    free(cfg_path);
    int have_bos = 0, have_eos = 0, have_pad = 0;
    if (cfg) {
        const char *s;
        if ((s = config_token(cfg, "bos_token"))) t->bos_id = lookup_token(t, s), have_bos = 1;
        if ((s = config_token(cfg, "eos_token"))) t->eos_id = lookup_token(t, s), have_eos = 1;
        if ((s = config_token(cfg, "pad_token"))) t->pad_id = lookup_token(t, s), have_pad = 1;
        const json_t *ct = json_object_get(cfg, "chat_template");
        if (json_is_string(ct)) {
            t->chat_template = xstrdup(json_string_value(ct));
        } else if (json_is_array(ct)) { /* [{"name": "default", "template": ...}, ...] */
            for (size_t i = 0; i < json_array_size(ct) && !t->chat_template; i++) {
                const json_t *o = json_array_get(ct, i);
                const char *nm = json_string_value(json_object_get(o, "name"));
                if (nm && !strcmp(nm, "default") && json_is_string(json_object_get(o, "template")))
                    t->chat_template = xstrdup(json_string_value(json_object_get(o, "template")));
            }
            if (!t->chat_template && json_is_string(json_object_get(json_array_get(ct, 0), "template")))
                t->chat_template = xstrdup(json_string_value(json_object_get(json_array_get(ct, 0), "template")));
        }
        json_decref(cfg);
    }
    static const char *eos_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|eot_id|>"};
    static const char *bos_names[] = {"<|begin_of_text|>", "<s>"};
    for (size_t i = 0; !have_eos && t->eos_id < 0 && i < sizeof eos_names / sizeof *eos_names; i++)
        t->eos_id = lookup_token(t, eos_names[i]);
    for (size_t i = 0; !have_bos && t->bos_id < 0 && i < sizeof bos_names / sizeof *bos_names; i++)
        t->bos_id = lookup_token(t, bos_names[i]);
    if (!have_pad || t->pad_id < 0) t->pad_id = t->eos_id; /* TRL: pad_token = eos_token when unset */
}

static int tok_parse(Tokenizer *t, const json_t *root, Error *e) {
    int rc;
    if ((rc = parse_model(t, root, e))) return rc;
    if ((rc = parse_added(t, root, e))) return rc;
    if ((rc = parse_normalizer(t, root, e))) return rc;
    if ((rc = pretok_parse(t, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", e))) return rc;
    const json_t *pp = json_object_get(root, "post_processor");
    if (pp && !json_is_null(pp) && (rc = parse_post_one(t, pp, "post_processor", e))) return rc;
    const json_t *d = json_object_get(root, "decoder");
    if (d && !json_is_null(d) && (rc = dec_parse(t, d, "decoder", e))) return rc;
    return 0;
}

int tok_load(Tokenizer **out, const char *path, Error *e) {
    *out = NULL;
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, e);
    if (rc) return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return err_set(e, EX_DATAERR, "%s:%d: invalid JSON at column %d: %s", path, je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, EX_DATAERR, "%s: expected a JSON object", path);
    }
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->path = xstrdup(path);
    bytelevel_init(t);
    t->md = pcre2_match_data_create(4, NULL);
    char errbuf[256];
    t->re_numeric = tok_regex_compile("^\\p{N}", errbuf, sizeof errbuf);
    /* Rust regex \w = Alphabetic + M + Nd + Pc + Join_Control; PCRE2 >= 10.40 knows
     * binary properties, older ones get the nearest general-category form. */
    t->re_word = tok_regex_compile("^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]", errbuf, sizeof errbuf);
    if (!t->re_word)
        t->re_word = tok_regex_compile("^[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]", errbuf, sizeof errbuf);
    if (!t->re_numeric || !t->re_word) die_internal("PCRE2 Unicode classes do not compile: %s", errbuf);
    rc = tok_parse(t, root, e);
    json_decref(root);
    if (rc) {
        tok_free(t);
        return rc;
    }
    load_config(t);
    *out = t;
    return 0;
}

int tok_load_dir(Tokenizer **t, const char *dir, Error *e) {
    char *p = path_join(dir, "tokenizer.json");
    int rc = tok_load(t, p, e);
    free(p);
    return rc;
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_ids; i++) free(t->piece[i]);
    free(t->piece);
    free(t->piece_len);
    free(t->id_flags);
    strmap_free(&t->vocab);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->set_raw.idx);
    free(t->set_raw.bucket_start);
    free(t->set_norm.idx);
    free(t->set_norm.bucket_start);
    pretok_free(t);
    bpe_free(t);
    intvec_free(&t->post_prefix);
    intvec_free(&t->post_suffix);
    free(t->chat_template);
    jinja_free(t->jinja);
    norm_free(t);
    dec_free(t);
    free(t->score);
    free(t->path);
    free(t);
}

/* ---- encoding ---- */
static void encode_model(Tokenizer *t, const char *s, size_t n, IntVec *out) {
    if (!n) return;
    pretok_encode(t, s, n, out); /* uses t->piece_at_start */
}

/* Longest token of the set that occurs at s[i] (index into t->added), or -1. */
static int added_at(const Tokenizer *t, const AddedSet *set, const char *s, size_t n, size_t i) {
    int b = (unsigned char)s[i];
    for (int k = set->bucket_start[b]; k < set->bucket_start[b + 1]; k++) {
        const AddedTok *a = &t->added[set->idx[k]];
        if (a->len <= n - i && memcmp(s + i, a->content, a->len) == 0) return set->idx[k];
    }
    return -1;
}

static size_t prev_char_start(const char *s, size_t i) {
    do i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

static void encode_normalized(Tokenizer *t, const char *s, size_t n, int parse_special, int at_start, IntVec *out);

/* One added-token pass (added_vocabulary.rs find_matches): gaps go to the next
 * pass (normalized tokens) or to the model. */
static void encode_pass(Tokenizer *t, const char *s, size_t n, int pass, int parse_special, IntVec *out) {
    const AddedSet *set = pass == 0 ? &t->set_raw : &t->set_norm;
    size_t start_offset = 0, i = 0;
    if (set->n)
        while (i < n) {
            int k = added_at(t, set, s, n, i);
            if (k < 0) {
                i++;
                continue;
            }
            const AddedTok *a = &t->added[k];
            size_t start = i, stop = i + a->len;
            i = stop; /* matches never overlap, even when this one is discarded */
            if (a->special && !parse_special) continue;
            if (a->single_word) {
                uint32_t cp;
                int left_ok = 1, right_ok = 1;
                if (start > 0) {
                    size_t p = prev_char_start(s, start);
                    utf8_decode((const unsigned char *)s + p, start - p, &cp);
                    left_ok = !uni_is_word(t, cp);
                }
                if (stop < n) {
                    utf8_decode((const unsigned char *)s + stop, n - stop, &cp);
                    right_ok = !uni_is_word(t, cp);
                }
                if (!left_ok || !right_ok) continue;
            }
            if (a->lstrip) {
                size_t ns = start;
                while (ns > 0) {
                    size_t p = prev_char_start(s, ns);
                    uint32_t cp;
                    utf8_decode((const unsigned char *)s + p, ns - p, &cp);
                    if (!uni_is_whitespace(cp)) break;
                    ns = p;
                }
                start = ns > start_offset ? ns : start_offset;
            }
            if (a->rstrip) {
                while (stop < n) {
                    uint32_t cp;
                    int l = utf8_decode((const unsigned char *)s + stop, n - stop, &cp);
                    if (!uni_is_whitespace(cp)) break;
                    stop += (size_t)l;
                }
                i = stop;
            }
            if (start_offset < start) {
                int at_start = t->piece_at_start && start_offset == 0;
                if (pass == 0)
                    encode_normalized(t, s + start_offset, start - start_offset, parse_special, at_start, out);
                else
                    t->piece_at_start = at_start, encode_model(t, s + start_offset, start - start_offset, out);
            }
            intvec_push(out, a->id);
            start_offset = stop;
            t->piece_at_start = 0; /* what follows an added token does not start the input */
            t->continue_gap = 0;   /* ... and starts a gap of its own */
        }
    if (start_offset < n) {
        int at_start = t->piece_at_start && start_offset == 0;
        if (pass == 0)
            encode_normalized(t, s + start_offset, n - start_offset, parse_special, at_start, out);
        else
            t->piece_at_start = at_start, encode_model(t, s + start_offset, n - start_offset, out);
    }
}

/* A piece between non-normalized added tokens: normalize it, then the second pass. */
static void encode_normalized(Tokenizer *t, const char *s, size_t n, int parse_special, int at_start, IntVec *out) {
    size_t nl;
    int skip_prepend = t->continue_gap;
    t->continue_gap = 0; /* only the first gap continues the caller's text */
    char *nf = t->n_norm ? norm_apply(t, s, n, skip_prepend, &nl) : NULL;
    int saved = t->piece_at_start;
    t->piece_at_start = at_start;
    encode_pass(t, nf ? nf : s, nf ? nl : n, 1, parse_special, out);
    t->piece_at_start = saved;
    free(nf);
}

int tok_encode(Tokenizer *t, const char *text, size_t len, int parse_special, IntVec *out) {
    return tok_encode_part(t, text, len, parse_special, TOK_STARTS_INPUT, out);
}

int tok_encode_part(Tokenizer *t, const char *text, size_t len, int parse_special, int where, IntVec *out) {
    size_t n = len;
    char *fixed = len ? utf8_sanitize(text, len, &n) : NULL;
    t->n_dropped = 0;
    t->piece_at_start = where == TOK_STARTS_INPUT;
    t->continue_gap = where == TOK_CONTINUES;
    encode_pass(t, fixed ? fixed : text, n, 0, parse_special, out);
    t->continue_gap = 0;
    free(fixed);
    return t->n_dropped ? EX_DATAERR : 0;
}

void tok_post_prefix(const Tokenizer *t, IntVec *out) {
    intvec_append(out, t->post_prefix.v, t->post_prefix.n);
}
void tok_post_suffix(const Tokenizer *t, IntVec *out) {
    intvec_append(out, t->post_suffix.v, t->post_suffix.n);
}

/* ---- decoding ---- */
typedef struct Buf {
    char *p;
    size_t n, cap;
} Buf;
static void buf_add(Buf *b, const char *s, size_t n) {
    b->p = xgrow(b->p, &b->cap, b->n + n + 1, 256, 1);
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* ByteLevel decoder on one token (decoders/byte_level.rs): every character back to
 * its byte; a token with any character outside the alphabet is copied as is. */
static void bytelevel_token(const Tokenizer *t, const char *p, size_t n, Buf *b) {
    char tmp[256];
    char *o = n <= sizeof tmp ? tmp : xmalloc(n);
    size_t k = 0;
    int ok = 1;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const unsigned char *)p + i, n - i, &cp);
        if (cp >= 512 || t->byte_of_cp[cp] < 0) {
            ok = 0;
            break;
        }
        o[k++] = (char)t->byte_of_cp[cp];
        i += (size_t)l;
    }
    if (ok)
        buf_add(b, o, k);
    else
        buf_add(b, p, n);
    if (o != tmp) free(o);
}

int tok_id_bytes(const Tokenizer *t, int id, char *out, int cap) {
    if (id < 0 || id >= t->n_ids || !t->piece[id]) return -1;
    if (t->dec_generic) return dec_id_bytes(t, id, out, cap);
    Buf b = {0};
    if ((t->id_flags[id] & 1) || !t->decoder_bytelevel)
        buf_add(&b, t->piece[id], (size_t)t->piece_len[id]);
    else
        bytelevel_token(t, t->piece[id], (size_t)t->piece_len[id], &b);
    int n = (int)b.n;
    if (out && cap > 0) memcpy(out, b.p ? b.p : "", (size_t)(n < cap ? n : cap));
    free(b.p);
    return n;
}

/* Appends the decoded chunk of model tokens to result, as lossy UTF-8. */
static void flush_chunk(const Tokenizer *t, Buf *chunk, int chunk_tokens, Buf *result) {
    if (!chunk_tokens) return;
    (void)t;
    size_t n;
    char *fixed = chunk->n ? utf8_sanitize(chunk->p, chunk->n, &n) : NULL;
    if (fixed) {
        buf_add(result, fixed, n);
        free(fixed);
    } else if (chunk->n) {
        buf_add(result, chunk->p, chunk->n);
    }
    chunk->n = 0;
}

int tok_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, Error *e) {
    if (t->dec_generic) return dec_decode(t, ids, n, skip_special, out, len, e);
    Buf result = {0}, chunk = {0};
    int chunk_tokens = 0;
    buf_add(&result, "", 0);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->piece[id]) {
            free(result.p);
            free(chunk.p);
            return err_set(e, EX_DATAERR, "token id %d at position %d is not in the vocabulary (size %d)", id, i,
                           t->n_ids);
        }
        if (t->id_flags[id] & 1) { /* added token: verbatim, between decoded chunks */
            if (skip_special && (t->id_flags[id] & 2)) continue;
            flush_chunk(t, &chunk, chunk_tokens, &result);
            if (!t->decoder_bytelevel && result.n) buf_add(&result, " ", 1);
            chunk_tokens = 0;
            buf_add(&result, t->piece[id], (size_t)t->piece_len[id]);
            continue;
        }
        if (t->decoder_bytelevel) {
            bytelevel_token(t, t->piece[id], (size_t)t->piece_len[id], &chunk);
        } else { /* no decoder: tokens joined by spaces */
            if (chunk_tokens) buf_add(&chunk, " ", 1);
            buf_add(&chunk, t->piece[id], (size_t)t->piece_len[id]);
        }
        chunk_tokens++;
    }
    flush_chunk(t, &chunk, chunk_tokens, &result);
    free(chunk.p);
    *out = result.p;
    *len = result.n;
    return 0;
}

/* ---- accessors ---- */
int tok_vocab_size(const Tokenizer *t) {
    return t->n_ids;
}
const char *tok_id_to_piece(const Tokenizer *t, int id) {
    return id >= 0 && id < t->n_ids ? t->piece[id] : NULL;
}
int tok_piece_to_id(const Tokenizer *t, const char *piece) {
    return lookup_token(t, piece);
}
int tok_is_special(const Tokenizer *t, int id) {
    return id >= 0 && id < t->n_ids && (t->id_flags[id] & 2);
}
int tok_bos_id(const Tokenizer *t) {
    return t->bos_id;
}
int tok_eos_id(const Tokenizer *t) {
    return t->eos_id;
}
int tok_pad_id(const Tokenizer *t) {
    return t->pad_id;
}
const char *tok_chat_template(const Tokenizer *t) {
    return t->chat_template;
}
const char *tok_path(const Tokenizer *t) {
    return t->path;
}
