/* tokenizer_pretok.c — pre-tokenizers from tokenizer.json: ByteLevel, Split,
 * Digits, Metaspace, WhitespaceSplit and Sequence of these, with the semantics of the `tokenizers` library:
 *
 *  - Each step applies to every current piece; empty pieces are dropped.
 *  - Split finds matches of a regex (or a literal string) left to right without
 *    overlap (Oniguruma find_iter: an empty match right after the previous match is
 *    skipped by advancing one character), labels the pieces match / non-match,
 *    flips the labels when invert, then applies SplitDelimiterBehavior:
 *      Removed            matches dropped
 *      Isolated           every piece kept on its own
 *      MergedWithPrevious a match is glued to the piece before it
 *      MergedWithNext     a match is glued to the piece after it
 *      Contiguous         adjacent matches fused into one piece
 *  - ByteLevel (GPT-2, Radford et al. 2019): optionally prepends " " to a piece that
 *    does not start with one, optionally splits with the GPT-2 regex (Isolated),
 *    then maps every byte to a printable character (bytes_to_unicode).
 *  - Digits: pieces of Unicode numeric characters (Rust char::is_numeric, i.e.
 *    general category N*), Isolated when individual_digits else Contiguous.
 *  - Metaspace (sentencepiece style, metaspace.rs): every " " becomes the replacement
 *    ("▁"), which is prepended to a piece not already starting with it — always, or
 *    ("first") only to a piece that starts the input (after an added token it does
 *    not) — then, with split, pieces are split before each replacement
 *    (MergedWithNext).  "first" is judged on the first piece of the gap between added
 *    tokens; after other steps, the first piece of a piece that starts the input
 *    does too unless a split cut it further in (the library asks
 *    offsets_original().0 == 0: Split Removed or WhitespaceSplit dropping a
 *    leading delimiter moves it).
 *  - WhitespaceSplit: split on whitespace (Rust char::is_whitespace), which is dropped.
 * Regexes are Oniguruma patterns in the file; PCRE2 with UTF+UCP accepts the ones
 * tokenizers ship (GPT-2, Llama-3, Qwen2).  Not for: normalizers or the models. */
#define _GNU_SOURCE /* memmem */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

/* pretok_encode's state for one step (see "streaming" below). */
struct PreLevel {
    Pieces out, words; /* the step's pieces; ByteLevel's regex words before mapping */
    void *spans;       /* the step's Span scratch (swapped into t->spans) */
    int spans_cap;
};

/* tokenizers' ByteLevel regex (pre_tokenizers/byte_level.rs), the GPT-2 pattern. */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

pcre2_code *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        snprintf(errbuf, errcap, "%s at offset %zu", (const char *)msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return re;
}

static int behavior_parse(const char *s) {
    if (!strcmp(s, "Removed")) return SPLIT_REMOVED;
    if (!strcmp(s, "Isolated")) return SPLIT_ISOLATED;
    if (!strcmp(s, "MergedWithPrevious")) return SPLIT_MERGED_PREV;
    if (!strcmp(s, "MergedWithNext")) return SPLIT_MERGED_NEXT;
    if (!strcmp(s, "Contiguous")) return SPLIT_CONTIGUOUS;
    return -1;
}

static int get_bool(const json_t *o, const char *k, int dflt) {
    const json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static PreStep *new_step(Tokenizer *t) {
    t->steps = xrealloc(t->steps, (size_t)(t->n_steps + 1) * sizeof *t->steps);
    PreStep *s = &t->steps[t->n_steps++];
    memset(s, 0, sizeof *s);
    return s;
}

static int parse_one(Tokenizer *t, const json_t *p, const char *where, Error *e) {
    if (!json_is_object(p)) return err_set(e, EX_DATAERR, "%s: field \"%s\" must be an object", t->path, where);
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return err_set(e, EX_DATAERR, "%s: field \"%s.type\" missing", t->path, where);
    char errbuf[300];
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return err_set(e, EX_DATAERR, "%s: field \"%s.pretokenizers\" must be an array", t->path, where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[200];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
            int rc = parse_one(t, json_array_get(list, i), sub, e);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        PreStep *s = new_step(t);
        s->kind = PRE_BYTELEVEL;
        s->add_prefix_space = get_bool(p, "add_prefix_space", 1);
        s->use_regex = get_bool(p, "use_regex", 1);
        if (s->use_regex) {
            s->re = tok_regex_compile(GPT2_PATTERN, errbuf, sizeof errbuf);
            if (!s->re) die_internal("GPT-2 pattern does not compile: %s", errbuf);
        }
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        PreStep *s = new_step(t);
        s->kind = PRE_METASPACE;
        const json_t *r = json_object_get(p, "replacement");
        const char *rep = json_is_string(r) ? json_string_value(r) : "\xe2\x96\x81";
        uint32_t cp;
        size_t rl = strlen(rep);
        if (!rl || rl > 4 || utf8_decode((const unsigned char *)rep, rl, &cp) != (int)rl)
            return err_set(e, EX_DATAERR, "%s: field \"%s.replacement\" must be one character", t->path, where);
        memcpy(s->replacement, rep, rl + 1);
        const char *ps = json_string_value(json_object_get(p, "prepend_scheme"));
        if (ps) {
            s->prepend_scheme = !strcmp(ps, "always")  ? PREPEND_ALWAYS
                                : !strcmp(ps, "first") ? PREPEND_FIRST
                                : !strcmp(ps, "never") ? PREPEND_NEVER
                                                       : -1;
            if (s->prepend_scheme < 0)
                return err_set(e, EX_DATAERR, "%s: field \"%s.prepend_scheme\": unknown value \"%s\"", t->path, where,
                               ps);
        } else { /* the older serialisation */
            s->prepend_scheme = get_bool(p, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        }
        s->split = get_bool(p, "split", 1);
        return 0;
    }
    if (!strcmp(type, "WhitespaceSplit")) {
        new_step(t)->kind = PRE_WHITESPACE_SPLIT;
        return 0;
    }
    if (!strcmp(type, "Digits")) {
        PreStep *s = new_step(t);
        s->kind = PRE_DIGITS;
        s->individual_digits = get_bool(p, "individual_digits", 0);
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const json_t *pat = json_object_get(p, "pattern");
        const char *bh = json_string_value(json_object_get(p, "behavior"));
        int b = bh ? behavior_parse(bh) : -1;
        if (b < 0)
            return err_set(e, EX_DATAERR, "%s: field \"%s.behavior\": unsupported value \"%s\"", t->path, where,
                           bh ? bh : "(missing)");
        const json_t *rx = json_object_get(pat, "Regex"), *st = json_object_get(pat, "String");
        PreStep *s = new_step(t);
        s->behavior = b;
        s->invert = get_bool(p, "invert", 0);
        if (json_is_string(rx)) {
            s->kind = PRE_SPLIT_REGEX;
            s->re = tok_regex_compile(json_string_value(rx), errbuf, sizeof errbuf);
            if (!s->re) return err_set(e, EX_DATAERR, "%s: field \"%s.pattern.Regex\": %s", t->path, where, errbuf);
        } else if (json_is_string(st)) {
            s->kind = PRE_SPLIT_STRING;
            s->literal_len = json_string_length(st);
            s->literal = xmalloc(s->literal_len + 1);
            memcpy(s->literal, json_string_value(st), s->literal_len + 1);
        } else {
            return err_set(e, EX_DATAERR, "%s: field \"%s.pattern\" must be {\"Regex\": ...} or {\"String\": ...}",
                           t->path, where);
        }
        return 0;
    }
    return err_set(e, EX_DATAERR, "%s: field \"%s.type\": unsupported pre-tokenizer \"%s\"", t->path, where, type);
}

int pretok_parse(Tokenizer *t, const void *json_pre, const char *where, Error *e) {
    const json_t *p = json_pre;
    if (!p || json_is_null(p)) return 0;
    return parse_one(t, p, where, e);
}

void pretok_free(Tokenizer *t) {
    for (int k = 0; t->lvl && k < t->n_steps; k++) {
        pieces_free(&t->lvl[k].out);
        pieces_free(&t->lvl[k].words);
        free(t->lvl[k].spans);
    }
    free(t->lvl);
    t->lvl = NULL;
    for (int i = 0; i < t->n_steps; i++) {
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
        free(t->steps[i].literal);
    }
    free(t->steps);
    t->steps = NULL;
    t->n_steps = 0;
    pieces_free(&t->pa);
    pieces_free(&t->pb);
    pieces_free(&t->pc);
    free(t->spans);
    free(t->tmp);
    if (t->md) pcre2_match_data_free(t->md);
    if (t->re_word) pcre2_code_free(t->re_word);
    if (t->re_numeric) pcre2_code_free(t->re_numeric);
}

/* ---- character classes through PCRE2's Unicode tables ---- */
static int uni_match(Tokenizer *t, pcre2_code *re, uint32_t cp) {
    char buf[4];
    int l = utf8_encode(cp, buf);
    return pcre2_match(re, (PCRE2_SPTR)buf, (PCRE2_SIZE)l, 0, PCRE2_NO_UTF_CHECK, t->md, NULL) >= 0;
}

int uni_is_numeric(Tokenizer *t, uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return uni_match(t, t->re_numeric, cp);
}

/* Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control (UTS#18 Annex C). */
int uni_is_word(Tokenizer *t, uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return uni_match(t, t->re_word, cp);
}

/* ---- splitting ---- */
typedef struct Span {
    size_t a, b;
    int match;
} Span;

/* pieces_add of s[a..b), noting in out->first_cut whether the first piece of the
 * step began at offset 0 of its input (when not, it does not start the input). */
static void add_span(Pieces *out, const char *s, size_t a, size_t b) {
    if (b > a && out->first_cut < 0) out->first_cut = a == 0;
    pieces_add(out, s + a, b - a);
}

/* The left folds of apply_behavior: a span extends the piece before it when
 * SAME_LABEL and it has that piece's label (contiguous), or when not SAME_LABEL and it
 * is a match after a non-match (merged_with_previous); else it starts a new piece. */
static void fold_left(const char *s, const Span *sp, int ns, int same_label, Pieces *out) {
    int prev = 0, have = 0;
    size_t ca = 0, cb = 0;
    for (int i = 0; i < ns; i++) {
        int joins = same_label ? sp[i].match == prev : sp[i].match && !prev;
        if (have && joins) {
            cb = sp[i].b;
        } else {
            if (have) add_span(out, s, ca, cb);
            ca = sp[i].a, cb = sp[i].b, have = 1;
        }
        prev = sp[i].match;
    }
    if (have) add_span(out, s, ca, cb);
}

/* Applies invert and the delimiter behaviour to the labelled spans of s and appends
 * the resulting non-empty pieces to out. */
static void apply_behavior(const char *s, Span *sp, int ns, int behavior, int invert, Pieces *out) {
    if (invert)
        for (int i = 0; i < ns; i++) sp[i].match = !sp[i].match;
    switch (behavior) {
    case SPLIT_REMOVED:
        for (int i = 0; i < ns; i++)
            if (!sp[i].match) add_span(out, s, sp[i].a, sp[i].b);
        break;
    case SPLIT_ISOLATED:
        for (int i = 0; i < ns; i++) add_span(out, s, sp[i].a, sp[i].b);
        break;
    case SPLIT_CONTIGUOUS:
    case SPLIT_MERGED_PREV:
        fold_left(s, sp, ns, behavior == SPLIT_CONTIGUOUS, out);
        break;
    case SPLIT_MERGED_NEXT: {
        /* the library folds from the right: a match is glued to the piece after it */
        int nxt = 0;
        for (int i = ns - 1; i >= 0; i--) {
            if (sp[i].match && !nxt && i + 1 < ns && sp[i + 1].a != (size_t)-1) {
                /* extend the following (already-built) piece to the left */
                sp[i + 1].a = sp[i].a;
                sp[i].a = (size_t)-1; /* consumed */
            }
            nxt = sp[i].match;
        }
        /* emit in order, skipping consumed spans; a consumed span's successor now starts earlier */
        for (int i = 0; i < ns; i++)
            if (sp[i].a != (size_t)-1) add_span(out, s, sp[i].a, sp[i].b);
        break;
    }
    }
}

static Span *spans_reserve(Tokenizer *t, int n) {
    if (n > t->spans_cap) {
        t->spans_cap = n * 2 + 64;
        t->spans = xrealloc(t->spans, (size_t)t->spans_cap * sizeof(Span));
    }
    return t->spans;
}

/* ---- streaming (pretok_encode) ----
 * A split step keeps its spans until the input piece is done, and the pieces of a
 * 60 MB line used to be held all at once (20x the text in spans and pieces).  Now a
 * split hands on its pieces every SPAN_BATCH spans, cutting only where the
 * delimiter behaviour cannot join the spans on either side, so the result is the
 * same; each step has its own pieces and spans (PreLevel). */
#define SPAN_BATCH 4096 /* t->span_batch when set */

static void encode_from(Tokenizer *t, int k, const char *s, size_t n, int at_start);
static void bytelevel_map(Tokenizer *t, const char *s, size_t n, Pieces *out);

/* Sends every piece of a streaming P on (to step P->next_step, through P->map_into
 * first) and empties it. */
static void pieces_drain(Tokenizer *t, Pieces *p) {
    if (!p->stream) return;
    if (p->map_into) {
        for (int i = 0; i < p->n; i++) bytelevel_map(t, p->buf + p->off[i], p->plen[i], p->map_into);
        pieces_reset(p);
        pieces_drain(t, p->map_into);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        /* the first piece sent on starts the input when this step's input did and
         * the step did not cut it further in (first_cut -1: no split made it) */
        int at_start = p->at_start && p->first_cut != 0;
        p->at_start = 0;
        encode_from(t, p->next_step, p->buf + p->off[i], p->plen[i], at_start);
    }
    pieces_reset(p);
}

/* The largest f in [1, ns) such that no delimiter behaviour joins span f-1 and
 * span f (labels after invert), or 0. */
static int safe_cut(const Span *sp, int ns, int behavior, int invert) {
    for (int f = ns - 1; f >= 1; f--) {
        int a = sp[f - 1].match ^ invert, b = sp[f].match ^ invert;
        switch (behavior) {
        case SPLIT_CONTIGUOUS:
            if (a != b) return f;
            break;
        case SPLIT_MERGED_PREV: /* a match is glued to a non-match before it */
            if (!(b && !a)) return f;
            break;
        case SPLIT_MERGED_NEXT: /* a match is glued to a non-match after it */
            if (!(a && !b)) return f;
            break;
        default:
            return f;
        }
    }
    return 0;
}

/* With a streaming OUT and a full batch: applies the behaviour to the spans before
 * a safe cut, sends their pieces on and keeps the rest.  Returns the spans left. */
static int spans_flush(Tokenizer *t, const char *s, Span *sp, int ns, int behavior, int invert, Pieces *out) {
    if (ns < (t->span_batch > 0 ? t->span_batch : SPAN_BATCH) || !out->stream) return ns;
    int f = safe_cut(sp, ns, behavior, invert);
    if (f <= 0) return ns;
    apply_behavior(s, sp, f, behavior, invert, out);
    memmove(sp, sp + f, (size_t)(ns - f) * sizeof *sp);
    pieces_drain(t, out); /* other steps use their own spans: sp stays valid */
    return ns - f;
}

void pretok_split_regex(Tokenizer *t, pcre2_code *re, const char *s, size_t n, int behavior, int invert, Pieces *out) {
    if (!n) return;
    int ns = 0;
    Span *sp = spans_reserve(t, 16);
    size_t prev = 0, last_end = 0;
    long last_match_end = -1;
    while (last_end <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, last_end, PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        size_t a = ov[0], b = ov[1];
        if (a == b && last_match_end == (long)b) {
            /* Oniguruma find_iter: no empty match right after the previous match */
            if (last_end >= n) break;
            uint32_t cp;
            last_end += (size_t)utf8_decode((const unsigned char *)s + last_end, n - last_end, &cp);
            continue;
        }
        sp = spans_reserve(t, ns + 2);
        if (prev != a) sp[ns++] = (Span){prev, a, 0};
        sp[ns++] = (Span){a, b, 1};
        prev = b;
        last_end = b;
        last_match_end = (long)b;
        if (a == b && last_end >= n) break;
        ns = spans_flush(t, s, sp, ns, behavior, invert, out);
    }
    sp = spans_reserve(t, ns + 1);
    if (prev != n) sp[ns++] = (Span){prev, n, 0};
    apply_behavior(s, sp, ns, behavior, invert, out);
}

static void split_literal(Tokenizer *t, const char *lit, size_t ll, const char *s, size_t n, int behavior, int invert,
                          Pieces *out) {
    if (!n) return;
    if (!ll) { /* empty pattern matches nothing */
        Span one = {0, n, 0};
        apply_behavior(s, &one, 1, behavior, invert, out);
        return;
    }
    int ns = 0;
    Span *sp = spans_reserve(t, 16);
    size_t prev = 0, i = 0;
    while (i + ll <= n) {
        const char *f = memmem(s + i, n - i, lit, ll);
        if (!f) break;
        size_t a = (size_t)(f - s);
        sp = spans_reserve(t, ns + 2);
        if (prev != a) sp[ns++] = (Span){prev, a, 0};
        sp[ns++] = (Span){a, a + ll, 1};
        prev = i = a + ll;
        ns = spans_flush(t, s, sp, ns, behavior, invert, out);
    }
    sp = spans_reserve(t, ns + 1);
    if (prev != n) sp[ns++] = (Span){prev, n, 0};
    apply_behavior(s, sp, ns, behavior, invert, out);
}

static void split_digits(Tokenizer *t, const char *s, size_t n, int individual, Pieces *out) {
    if (!n) return;
    int ns = 0;
    Span *sp = spans_reserve(t, 16);
    size_t prev = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (uni_is_numeric(t, cp)) {
            sp = spans_reserve(t, ns + 2);
            if (prev < i) sp[ns++] = (Span){prev, i, 0};
            sp[ns++] = (Span){i, i + (size_t)l, 1};
            prev = i + (size_t)l;
            ns = spans_flush(t, s, sp, ns, individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0, out);
        }
        i += (size_t)l;
    }
    sp = spans_reserve(t, ns + 1);
    if (prev < n) sp[ns++] = (Span){prev, n, 0};
    apply_behavior(s, sp, ns, individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0, out);
}

/* Maps bytes to the ByteLevel alphabet. */
static void bytelevel_map(Tokenizer *t, const char *s, size_t n, Pieces *out) {
    if (n * 2 > t->tmp_cap) {
        t->tmp_cap = n * 2 + 64;
        t->tmp = xrealloc(t->tmp, t->tmp_cap);
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = t->byte_char[(unsigned char)s[i]];
        t->tmp[o++] = c[0];
        if (c[1]) t->tmp[o++] = c[1];
    }
    pieces_add(out, t->tmp, o);
}

/* Appends b bytes of s to the growing buffer *buf (length *len, capacity *cap). */
static void grow_put(char **buf, size_t *len, size_t *cap, const char *s, size_t b) {
    if (!b) return; /* *buf may still be NULL, and memcpy(NULL, ..., 0) is undefined */
    if (*len + b > *cap) {
        *cap = (*len + b) * 2 + 64;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, b);
    *len += b;
}

/* A streaming OUT that holds a batch of pieces sends them on (steps that make their
 * pieces one by one rather than from spans: Metaspace, WhitespaceSplit). */
static void pieces_flush(Tokenizer *t, Pieces *out) {
    if (out->stream && out->n >= (t->span_batch > 0 ? t->span_batch : SPAN_BATCH)) pieces_drain(t, out);
}

/* Metaspace on one piece (see the top of the file).  Built a piece at a time rather
 * than replacing the whole text and splitting it again: with split, a piece ends
 * before each replacement (MergedWithNext on it: "a▁▁b" -> "a", "▁", "▁b"), so a
 * long line streams on in batches like a split and is not copied whole. */
static void metaspace(Tokenizer *t, const PreStep *st, const char *s, size_t n, int first, Pieces *out) {
    const char *rep = st->replacement;
    size_t rl = strlen(rep), len = 0, cap = 0;
    char *buf = NULL;
    int starts = n && (s[0] == ' ' || (n >= rl && !memcmp(s, rep, rl)));
    if (n && !starts && (st->prepend_scheme == PREPEND_ALWAYS || (st->prepend_scheme == PREPEND_FIRST && first)))
        grow_put(&buf, &len, &cap, rep, rl);
    for (size_t i = 0; i < n;) {
        /* the run up to the next space or replacement goes in as it is */
        size_t j = i;
        while (j < n && s[j] != ' ' && !(j + rl <= n && !memcmp(s + j, rep, rl))) j++;
        grow_put(&buf, &len, &cap, s + i, j - i);
        if (j == n) break;
        if (st->split && len) {
            pieces_add(out, buf, len);
            len = 0;
            pieces_flush(t, out);
        }
        grow_put(&buf, &len, &cap, rep, rl);
        i = j + (s[j] == ' ' ? 1 : rl);
    }
    pieces_add(out, buf, len);
    free(buf);
}

/* WhitespaceSplit on one piece: the runs between whitespace (which is dropped). */
static void whitespace_split(Tokenizer *t, const char *p, size_t pl, Pieces *out) {
    for (size_t a = 0; a < pl;) {
        uint32_t cp;
        int l = utf8_decode((const unsigned char *)p + a, pl - a, &cp);
        if (uni_is_whitespace(cp)) {
            a += (size_t)l;
            continue;
        }
        size_t b = a;
        while (b < pl) {
            l = utf8_decode((const unsigned char *)p + b, pl - b, &cp);
            if (uni_is_whitespace(cp)) break;
            b += (size_t)l;
        }
        add_span(out, p, a, b);
        pieces_flush(t, out);
        a = b;
    }
}

/* Step st on the piece p[0..pl) into nxt (through words, ByteLevel's regex words,
 * when it splits); at_start: the piece starts the input (Metaspace "first"). */
static void apply_step(Tokenizer *t, const PreStep *st, const char *p, size_t pl, int at_start, Pieces *nxt,
                       Pieces *words) {
    switch (st->kind) {
    case PRE_BYTELEVEL: {
        const char *q = p;
        size_t ql = pl;
        char *owned = NULL;
        if (st->add_prefix_space && p[0] != ' ') {
            owned = xmalloc(pl + 1);
            owned[0] = ' ';
            memcpy(owned + 1, p, pl);
            q = owned, ql = pl + 1;
        }
        if (st->use_regex) {
            /* split into words, then map each word */
            pieces_reset(words);
            words->stream = nxt->stream;
            words->map_into = nxt;
            pretok_split_regex(t, st->re, q, ql, SPLIT_ISOLATED, 0, words);
            for (int j = 0; j < words->n; j++) bytelevel_map(t, words->buf + words->off[j], words->plen[j], nxt);
            pieces_reset(words);
        } else {
            bytelevel_map(t, q, ql, nxt);
        }
        free(owned);
        break;
    }
    case PRE_SPLIT_REGEX:
        pretok_split_regex(t, st->re, p, pl, st->behavior, st->invert, nxt);
        break;
    case PRE_SPLIT_STRING:
        split_literal(t, st->literal, st->literal_len, p, pl, st->behavior, st->invert, nxt);
        break;
    case PRE_DIGITS:
        split_digits(t, p, pl, st->individual_digits, nxt);
        break;
    case PRE_WHITESPACE_SPLIT:
        whitespace_split(t, p, pl, nxt);
        break;
    case PRE_METASPACE:
        metaspace(t, st, p, pl, at_start, nxt);
        break;
    }
}

/* Steps k.. and the model on one piece, depth first; at_start: the piece starts the
 * input (the library's offsets_original().0 == 0, which Metaspace "first" asks). */
static void encode_from(Tokenizer *t, int k, const char *s, size_t n, int at_start) {
    if (k == t->n_steps) {
        if (t->unigram)
            unigram_word(t, s, n, t->enc_out);
        else
            bpe_word(t, s, n, t->enc_out);
        return;
    }
    struct PreLevel *L = &t->lvl[k];
    void *spans = t->spans;
    int spans_cap = t->spans_cap;
    t->spans = L->spans, t->spans_cap = L->spans_cap;
    pieces_reset(&L->out);
    L->out.stream = 1;
    L->out.next_step = k + 1;
    L->out.map_into = NULL;
    L->out.at_start = at_start;
    L->out.first_cut = -1;
    apply_step(t, &t->steps[k], s, n, at_start, &L->out, &L->words);
    pieces_drain(t, &L->out);
    L->spans = t->spans, L->spans_cap = t->spans_cap;
    t->spans = spans, t->spans_cap = spans_cap;
}

void pretok_encode(Tokenizer *t, const char *s, size_t n, IntVec *out) {
    if (!t->lvl && t->n_steps > 0) t->lvl = xcalloc((size_t)t->n_steps, sizeof *t->lvl);
    t->enc_out = out;
    encode_from(t, 0, s, n, t->piece_at_start);
    t->enc_out = NULL;
}
