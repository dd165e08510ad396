/* tokenizer_norm.c — normalizers of tokenizer.json, applied in order as the
 * `tokenizers` library does (normalizers/ (*.rs)):
 *   NFC                  Unicode canonical composition (tokenizer_nfc.c)
 *   Replace              every non-overlapping occurrence of a literal pattern, left
 *                        to right, becomes `content` (Llama-2/Gemma: " " -> "▁")
 *   Prepend              `prepend` in front of a non-empty string (Llama-2: "▁")
 *   Strip                whitespace (char::is_whitespace) off the left/right
 *   Sequence             the above in order
 * Not supported (EX_DATAERR naming the field): Replace with a Regex pattern,
 * Lowercase, NFD/NFKC/NFKD, BertNormalizer, StripAccents and Precompiled
 * (sentencepiece's compiled charsmap). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

static NormStep *new_step(Tokenizer *t, NormKind k) {
    t->norm = xrealloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *t->norm);
    NormStep *s = &t->norm[t->n_norm++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    return s;
}

static char *dup_json_str(const json_t *v, size_t *n) {
    *n = json_string_length(v);
    char *s = xmalloc(*n + 1);
    memcpy(s, json_string_value(v), *n + 1);
    return s;
}

int norm_parse(Tokenizer *t, const void *json_norm, const char *where, Error *e) {
    const json_t *n = json_norm;
    if (!n || json_is_null(n)) return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) return err_set(e, EX_DATAERR, "%s: field \"%s.type\" missing", t->path, where);
    if (!strcmp(type, "NFC")) {
        new_step(t, NORM_NFC);
        t->normalizer_nfc = 1;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return err_set(e, EX_DATAERR, "%s: field \"%s.normalizers\" must be an array", t->path, where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", where, i);
            int rc = norm_parse(t, json_array_get(list, i), sub, e);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Replace")) {
        const json_t *pat = json_object_get(n, "pattern"), *lit = json_object_get(pat, "String"),
                     *content = json_object_get(n, "content");
        if (!json_is_string(lit) || !json_string_length(lit))
            return err_set(e, EX_DATAERR,
                           "%s: field \"%s.pattern\": only a non-empty {\"String\": ...} pattern is supported", t->path,
                           where);
        if (!json_is_string(content))
            return err_set(e, EX_DATAERR, "%s: field \"%s.content\" must be a string", t->path, where);
        NormStep *s = new_step(t, NORM_REPLACE);
        s->pat = dup_json_str(lit, &s->pat_len);
        s->content = dup_json_str(content, &s->content_len);
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const json_t *p = json_object_get(n, "prepend");
        if (!json_is_string(p))
            return err_set(e, EX_DATAERR, "%s: field \"%s.prepend\" must be a string", t->path, where);
        NormStep *s = new_step(t, NORM_PREPEND);
        s->content = dup_json_str(p, &s->content_len);
        return 0;
    }
    if (!strcmp(type, "Strip")) {
        NormStep *s = new_step(t, NORM_STRIP);
        s->left = json_is_true(json_object_get(n, "strip_left"));
        s->right = json_is_true(json_object_get(n, "strip_right"));
        return 0;
    }
    return err_set(
        e, EX_DATAERR,
        "%s: field \"%s.type\": unsupported normalizer \"%s\" (NFC, Replace, Prepend, Strip and Sequence are)", t->path,
        where, type);
}

/* one step on (s, n): a new string, or NULL when the step changes nothing */
static char *step_apply(const NormStep *st, const char *s, size_t n, size_t *out_len) {
    switch (st->kind) {
    case NORM_NFC:
        return nfc_normalize(s, n, out_len);
    case NORM_PREPEND: {
        if (!n || !st->content_len) return NULL;
        char *r = xmalloc(n + st->content_len + 1);
        memcpy(r, st->content, st->content_len);
        memcpy(r + st->content_len, s, n);
        r[n + st->content_len] = 0;
        *out_len = n + st->content_len;
        return r;
    }
    case NORM_REPLACE: {
        size_t count = 0;
        for (size_t i = 0; i + st->pat_len <= n;)
            if (!memcmp(s + i, st->pat, st->pat_len))
                count++, i += st->pat_len;
            else
                i++;
        if (!count) return NULL;
        size_t len = n - count * st->pat_len + count * st->content_len, o = 0;
        char *r = xmalloc(len + 1);
        for (size_t i = 0; i < n;) {
            if (i + st->pat_len <= n && !memcmp(s + i, st->pat, st->pat_len)) {
                memcpy(r + o, st->content, st->content_len);
                o += st->content_len;
                i += st->pat_len;
            } else {
                r[o++] = s[i++];
            }
        }
        r[o] = 0;
        *out_len = o;
        return r;
    }
    case NORM_STRIP: {
        size_t a = 0, b = n;
        while (st->left && a < b) {
            uint32_t cp;
            int l = utf8_decode((const unsigned char *)s + a, b - a, &cp);
            if (!uni_is_whitespace(cp)) break;
            a += (size_t)l;
        }
        while (st->right && b > a) {
            size_t p = b - 1;
            while (p > a && ((unsigned char)s[p] & 0xC0) == 0x80) p--;
            uint32_t cp;
            utf8_decode((const unsigned char *)s + p, b - p, &cp);
            if (!uni_is_whitespace(cp)) break;
            b = p;
        }
        if (a == 0 && b == n) return NULL;
        char *r = xmalloc(b - a + 1);
        memcpy(r, s + a, b - a);
        r[b - a] = 0;
        *out_len = b - a;
        return r;
    }
    case NORM_LOWERCASE:
        break;
    }
    return NULL;
}

char *norm_apply(const Tokenizer *t, const char *s, size_t n, int skip_prepend, size_t *out_len) {
    char *cur = NULL;
    size_t cl = n;
    for (int i = 0; i < t->n_norm; i++) {
        if (skip_prepend && t->norm[i].kind == NORM_PREPEND) continue;
        size_t nl;
        char *r = step_apply(&t->norm[i], cur ? cur : s, cl, &nl);
        if (r) {
            free(cur);
            cur = r;
            cl = nl;
        }
    }
    if (cur) *out_len = cl;
    return cur;
}

void norm_free(Tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pat);
        free(t->norm[i].content);
    }
    free(t->norm);
    t->norm = NULL;
    t->n_norm = 0;
}
