/* tokenizer_decode.c — decoders other than plain ByteLevel, as the `tokenizers`
 * library chains them (decoders/ (*.rs) decode_chain): the list of token strings
 * (added tokens included, special ones dropped with skip_special) passes through
 * each step, then is joined:
 *   Replace      each token: literal pattern -> content ("▁" -> " ")
 *   ByteFallback runs of <0xXX> tokens become the bytes' string when valid UTF-8,
 *                else one U+FFFD per token
 *   Fuse         all tokens into one
 *   Strip        each token: up to `start` leading and `stop` trailing `content` chars
 *   Metaspace    each token: the replacement becomes " ", except in the first token
 *                (unless prepend_scheme is never) where it is dropped
 *   ByteLevel    every token's characters back to bytes, all fused, lossy UTF-8
 * Plain ByteLevel tokenizers keep the faster path in tokenizer.c.  Not supported:
 * WordPiece, BPEDecoder, CTC decoders, Replace with a Regex. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

static DecStep *new_step(Tokenizer *t, DecKind k) {
    t->dec = xrealloc(t->dec, (size_t)(t->n_dec + 1) * sizeof *t->dec);
    DecStep *s = &t->dec[t->n_dec++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    return s;
}

static int one_char(const json_t *v, char out[5]) {
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    uint32_t cp;
    if (!n || n > 4 || utf8_decode((const unsigned char *)s, n, &cp) != (int)n) return -1;
    memcpy(out, s, n + 1);
    return 0;
}

int dec_parse(Tokenizer *t, const void *json_dec, const char *where, Error *e) {
    const json_t *d = json_dec;
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type) return err_set(e, EX_DATAERR, "%s: field \"%s.type\" missing", t->path, where);
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(d, "decoders");
        if (!json_is_array(list))
            return err_set(e, EX_DATAERR, "%s: field \"%s.decoders\" must be an array", t->path, where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", where, i);
            int rc = dec_parse(t, json_array_get(list, i), sub, e);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        new_step(t, DEC_BYTELEVEL);
        t->decoder_bytelevel = 1;
        return 0;
    }
    t->dec_generic = 1;
    if (!strcmp(type, "Replace")) {
        const json_t *lit = json_object_get(json_object_get(d, "pattern"), "String"),
                     *c = json_object_get(d, "content");
        if (!json_is_string(lit) || !json_string_length(lit) || !json_is_string(c))
            return err_set(e, EX_DATAERR,
                           "%s: field \"%s\": only Replace with a non-empty {\"String\": ...} pattern is supported",
                           t->path, where);
        DecStep *s = new_step(t, DEC_REPLACE);
        s->pat = xstrdup(json_string_value(lit));
        s->pat_len = json_string_length(lit);
        s->content = xstrdup(json_string_value(c));
        s->content_len = json_string_length(c);
        return 0;
    }
    if (!strcmp(type, "ByteFallback")) {
        new_step(t, DEC_BYTEFALLBACK);
        return 0;
    }
    if (!strcmp(type, "Fuse")) {
        new_step(t, DEC_FUSE);
        return 0;
    }
    if (!strcmp(type, "Strip")) {
        DecStep *s = new_step(t, DEC_STRIP);
        const json_t *a = json_object_get(d, "start"), *b = json_object_get(d, "stop");
        if (one_char(json_object_get(d, "content"), s->ch) || !json_is_integer(a) || !json_is_integer(b) ||
            json_integer_value(a) < 0 || json_integer_value(b) < 0 || json_integer_value(a) > 1000 ||
            json_integer_value(b) > 1000)
            return err_set(e, EX_DATAERR, "%s: field \"%s\": Strip needs a one-character content and start/stop counts",
                           t->path, where);
        s->start = (int)json_integer_value(a);
        s->stop = (int)json_integer_value(b);
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        DecStep *s = new_step(t, DEC_METASPACE);
        const json_t *r = json_object_get(d, "replacement");
        if (r ? one_char(r, s->ch) : (memcpy(s->ch, "\xe2\x96\x81", 4), 0))
            return err_set(e, EX_DATAERR, "%s: field \"%s.replacement\" must be one character", t->path, where);
        const char *ps = json_string_value(json_object_get(d, "prepend_scheme"));
        const json_t *aps = json_object_get(d, "add_prefix_space");
        s->prepend_scheme = ps ? (!strcmp(ps, "never")   ? PREPEND_NEVER
                                  : !strcmp(ps, "first") ? PREPEND_FIRST
                                                         : PREPEND_ALWAYS)
                               : (json_is_boolean(aps) && !json_is_true(aps) ? PREPEND_NEVER : PREPEND_ALWAYS);
        return 0;
    }
    return err_set(e, EX_DATAERR,
                   "%s: field \"%s.type\": unsupported decoder \"%s\" (ByteLevel, Replace, ByteFallback, Fuse, Strip, "
                   "Metaspace and Sequence are)",
                   t->path, where, type);
}

void dec_free(Tokenizer *t) {
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].pat);
        free(t->dec[i].content);
    }
    free(t->dec);
    t->dec = NULL;
    t->n_dec = 0;
}

/* ---- a list of owned strings ---- */
typedef struct Toks {
    char **s;
    size_t *n;
    int len, cap;
} Toks;
static void toks_push(Toks *l, char *s, size_t n) { /* takes s */
    if (l->len == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->s = xrealloc(l->s, (size_t)l->cap * sizeof *l->s);
        l->n = xrealloc(l->n, (size_t)l->cap * sizeof *l->n);
    }
    l->s[l->len] = s;
    l->n[l->len++] = n;
}
static void toks_push_copy(Toks *l, const char *s, size_t n) {
    char *c = xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    toks_push(l, c, n);
}
static void toks_free(Toks *l) {
    for (int i = 0; i < l->len; i++) free(l->s[i]);
    free(l->s);
    free(l->n);
    memset(l, 0, sizeof *l);
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}
/* "<0xXX>" -> byte (Rust u8::from_str_radix also takes "+X"), else -1 */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    if (s[3] == '+') return hexval(s[4]);
    int a = hexval(s[3]), b = hexval(s[4]);
    return a < 0 || b < 0 ? -1 : a * 16 + b;
}

static char *replace_all(const char *s, size_t n, const char *pat, size_t pl, const char *rep, size_t rl,
                         size_t *out_n) {
    size_t cap = n + 1, o = 0;
    for (size_t i = 0; i + pl <= n; i++)
        if (!memcmp(s + i, pat, pl)) cap += rl, i += pl - 1;
    char *r = xmalloc(cap);
    for (size_t i = 0; i < n;) {
        if (i + pl <= n && !memcmp(s + i, pat, pl)) {
            memcpy(r + o, rep, rl);
            o += rl;
            i += pl;
        } else {
            r[o++] = s[i++];
        }
    }
    r[o] = 0;
    *out_n = o;
    return r;
}

static void step_apply(const Tokenizer *t, const DecStep *st, Toks *in, Toks *out) {
    switch (st->kind) {
    case DEC_REPLACE:
        for (int i = 0; i < in->len; i++) {
            size_t n;
            char *r = replace_all(in->s[i], in->n[i], st->pat, st->pat_len, st->content, st->content_len, &n);
            toks_push(out, r, n);
        }
        return;
    case DEC_METASPACE: {
        size_t rl = strlen(st->ch);
        for (int i = 0; i < in->len; i++) {
            size_t n;
            int drop = i == 0 && st->prepend_scheme != PREPEND_NEVER;
            char *r = replace_all(in->s[i], in->n[i], st->ch, rl, " ", drop ? 0 : 1, &n);
            toks_push(out, r, n);
        }
        return;
    }
    case DEC_FUSE: {
        size_t total = 0;
        for (int i = 0; i < in->len; i++) total += in->n[i];
        char *r = xmalloc(total + 1);
        size_t o = 0;
        for (int i = 0; i < in->len; i++) memcpy(r + o, in->s[i], in->n[i]), o += in->n[i];
        r[o] = 0;
        toks_push(out, r, o);
        return;
    }
    case DEC_STRIP: {
        size_t cl = strlen(st->ch);
        for (int i = 0; i < in->len; i++) {
            const char *s = in->s[i];
            size_t a = 0, b = in->n[i];
            for (int k = 0; k < st->start && a + cl <= b && !memcmp(s + a, st->ch, cl); k++) a += cl;
            for (int k = 0; k < st->stop && b >= a + cl && !memcmp(s + b - cl, st->ch, cl); k++) b -= cl;
            toks_push_copy(out, s + a, b - a);
        }
        return;
    }
    case DEC_BYTEFALLBACK: {
        char *bytes = xmalloc((size_t)in->len + 1);
        size_t nb = 0;
        for (int i = 0; i <= in->len; i++) {
            int b = i < in->len ? byte_token(in->s[i], in->n[i]) : -1;
            if (b >= 0) {
                bytes[nb++] = (char)b;
                continue;
            }
            if (nb) {
                size_t fl;
                char *fixed = utf8_sanitize(bytes, nb, &fl);
                if (!fixed)
                    toks_push_copy(out, bytes, nb);
                else
                    for (size_t k = 0; k < nb; k++) toks_push_copy(out, "\xef\xbf\xbd", 3);
                free(fixed);
                nb = 0;
            }
            if (i < in->len) toks_push_copy(out, in->s[i], in->n[i]);
        }
        free(bytes);
        return;
    }
    case DEC_BYTELEVEL: {
        size_t total = 0;
        for (int i = 0; i < in->len; i++) total += in->n[i];
        char *r = xmalloc(total + 1);
        size_t o = 0;
        for (int i = 0; i < in->len; i++) {
            /* a token with a character outside the alphabet is copied as is */
            size_t start = o;
            int ok = 1;
            for (size_t k = 0; k < in->n[i];) {
                uint32_t cp;
                int l = utf8_decode((const unsigned char *)in->s[i] + k, in->n[i] - k, &cp);
                if (cp >= 512 || t->byte_of_cp[cp] < 0) {
                    ok = 0;
                    break;
                }
                r[o++] = (char)t->byte_of_cp[cp];
                k += (size_t)l;
            }
            if (!ok) {
                o = start;
                memcpy(r + o, in->s[i], in->n[i]);
                o += in->n[i];
            }
        }
        size_t fl;
        char *fixed = utf8_sanitize(r, o, &fl);
        if (fixed) {
            free(r);
            toks_push(out, fixed, fl);
        } else {
            r[o] = 0;
            toks_push(out, r, o);
        }
        return;
    }
    }
}

int dec_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, Error *e) {
    Toks cur = {0};
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->piece[id]) {
            toks_free(&cur);
            return err_set(e, EX_DATAERR, "token id %d at position %d is not in the vocabulary (size %d)", id, i,
                           t->n_ids);
        }
        if (skip_special && (t->id_flags[id] & 2)) continue;
        toks_push_copy(&cur, t->piece[id], (size_t)t->piece_len[id]);
    }
    for (int k = 0; k < t->n_dec; k++) {
        Toks nxt = {0};
        step_apply(t, &t->dec[k], &cur, &nxt);
        toks_free(&cur);
        cur = nxt;
    }
    size_t total = 0, o = 0;
    for (int i = 0; i < cur.len; i++) total += cur.n[i];
    char *r = xmalloc(total + 1);
    for (int i = 0; i < cur.len; i++) memcpy(r + o, cur.s[i], cur.n[i]), o += cur.n[i];
    r[o] = 0;
    toks_free(&cur);
    *out = r;
    *len = o;
    return 0;
}

/* One token's bytes for streaming output: a byte-fallback token is its byte, others
 * go through the Replace/Metaspace steps as a token in the middle of a text would. */
int dec_id_bytes(const Tokenizer *t, int id, char *out, int cap) {
    const char *p = t->piece[id];
    size_t n = (size_t)t->piece_len[id];
    int has_bf = 0;
    for (int k = 0; k < t->n_dec; k++) has_bf |= t->dec[k].kind == DEC_BYTEFALLBACK;
    int b = has_bf && !(t->id_flags[id] & 1) ? byte_token(p, n) : -1;
    char *cur = NULL;
    size_t cl = n;
    if (b >= 0) {
        cur = xmalloc(2);
        cur[0] = (char)b;
        cl = 1;
    } else {
        cur = xmalloc(n + 1);
        memcpy(cur, p, n);
        for (int k = 0; k < t->n_dec; k++) {
            const DecStep *st = &t->dec[k];
            if (st->kind != DEC_REPLACE && st->kind != DEC_METASPACE) continue;
            size_t nl;
            char *r = st->kind == DEC_REPLACE
                          ? replace_all(cur, cl, st->pat, st->pat_len, st->content, st->content_len, &nl)
                          : replace_all(cur, cl, st->ch, strlen(st->ch), " ", 1, &nl);
            free(cur);
            cur = r;
            cl = nl;
        }
    }
    if (out && cap > 0) memcpy(out, cur, cl < (size_t)cap ? cl : (size_t)cap);
    free(cur);
    return (int)cl;
}
