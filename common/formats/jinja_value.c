/* jinja_value.c — the interpreter's memory and values: an arena per template and per
 * render, tagged strings, lists, dicts, and the Python conversions templates print
 * through: str() (repr inside containers: ['a', 1, None, True]), float repr (shortest
 * round-trip, 1e+16 style exponents), equality as Python (1 == 1.0 == True), and
 * json.dumps(ensure_ascii=False) for the tojson filter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "jinja_impl.h"

/* ---- arena ---- */
struct ArenaBlock {
    ArenaBlock *next;
    size_t used, cap;
    max_align_t data[];
};

void *arena_alloc(Arena *a, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    /* the limit is checked by the evaluator at every step (a->over); single requests
     * are bounded by the callers (strings never exceed JINJA_MAX_OUTPUT) */
    if (a->limit && a->used_total + n > a->limit) a->over = 1;
    ArenaBlock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 16) ? n : (1u << 16);
        b = xmalloc(sizeof *b + cap);
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    a->used_total += n;
    memset(p, 0, n);
    return p;
}

void arena_free(Arena *a) {
    for (ArenaBlock *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ---- strings ---- */
JStr *jstr_new(Arena *a, const char *s, size_t n, const unsigned char *tag) {
    JStr *r = arena_alloc(a, sizeof *r);
    r->s = "";
    if (a->over) return r; /* r is scratch: n = 0 */
    char *d = arena_alloc(a, n + 1);
    if (a->over) return r;
    memcpy(d, s, n);
    r->s = d;
    r->n = n;
    if (tag) {
        size_t k = 0;
        while (k < n && !tag[k]) k++;
        if (k < n) {
            unsigned char *t = arena_alloc(a, n);
            if (a->over) return r;
            memcpy(t, tag, n);
            r->tag = t;
        }
    }
    return r;
}
JStr *jstr_lit(Arena *a, const char *s) {
    return jstr_new(a, s, strlen(s), NULL);
}
JStr *jstr_retag(Arena *a, const char *s, size_t n, unsigned char tag) {
    JStr *r = jstr_new(a, s, n, NULL);
    if (tag && n && !a->over) {
        unsigned char *t = arena_alloc(a, n);
        if (a->over) return r;
        memset(t, tag, n);
        r->tag = t;
    }
    return r;
}
JStr *jstr_cat(Arena *a, const JStr *x, const JStr *y) {
    JStr *r = arena_alloc(a, sizeof *r);
    r->s = "";
    if (a->over) return r;
    char *d = arena_alloc(a, x->n + y->n + 1);
    if (a->over) return r;
    if (x->n) memcpy(d, x->s, x->n);
    if (y->n) memcpy(d + x->n, y->s, y->n);
    r->s = d;
    r->n = x->n + y->n;
    if (x->tag || y->tag) {
        unsigned char *t = arena_alloc(a, r->n + 1);
        if (a->over) return r;
        if (x->tag) memcpy(t, x->tag, x->n);
        if (y->tag) memcpy(t + x->n, y->tag, y->n);
        r->tag = t;
    }
    return r;
}
JStr *jstr_sub(Arena *a, const JStr *x, size_t off, size_t n) {
    if (off > x->n) off = x->n;
    if (n > x->n - off) n = x->n - off;
    return jstr_new(a, x->s + off, n, x->tag ? x->tag + off : NULL);
}
unsigned char jstr_maxtag(const JStr *x) {
    if (!x->tag) return 0;
    for (size_t i = 0; i < x->n; i++)
        if (x->tag[i]) return x->tag[i];
    return 0;
}
int jstr_eq(const JStr *x, const char *lit) {
    size_t n = strlen(lit);
    return x->n == n && !memcmp(x->s, lit, n);
}

size_t utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}
size_t utf8_offset(const char *s, size_t n, size_t cp) {
    size_t i = 0;
    while (i < n && cp) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        cp--;
    }
    return i;
}

/* ---- values ---- */
Value v_undef(const char *name) {
    Value v = {.k = V_UNDEF};
    v.u.undef_name = name;
    return v;
}
Value v_none(void) {
    return (Value){.k = V_NONE};
}
Value v_bool(int b) {
    Value v = {.k = V_BOOL};
    v.u.i = !!b;
    return v;
}
Value v_int(int64_t i) {
    Value v = {.k = V_INT};
    v.u.i = i;
    return v;
}
Value v_float(double f) {
    Value v = {.k = V_FLOAT};
    v.u.f = f;
    return v;
}
Value v_str(JStr *s) {
    Value v = {.k = V_STR};
    v.u.s = s;
    return v;
}
Value v_list(Arena *a) {
    Value v = {.k = V_LIST};
    v.u.l = arena_alloc(a, sizeof *v.u.l);
    return v;
}
Value v_dict(Arena *a) {
    Value v = {.k = V_DICT};
    v.u.d = arena_alloc(a, sizeof *v.u.d);
    return v;
}
void list_push(Arena *a, JList *l, Value v) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 4;
        Value *nv = arena_alloc(a, (size_t)cap * sizeof *nv);
        if (a->over) return;
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}
Value *dict_get(const JDict *d, const char *key, size_t n) {
    for (int i = 0; i < d->n; i++)
        if (d->keys[i]->n == n && (!n || !memcmp(d->keys[i]->s, key, n))) return &d->vals[i];
    return NULL;
}
void dict_set(Arena *a, JDict *d, JStr *key, Value v) {
    Value *old = dict_get(d, key->s, key->n);
    if (old) {
        *old = v;
        return;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 4;
        JStr **nk = arena_alloc(a, (size_t)cap * sizeof *nk);
        Value *nv = arena_alloc(a, (size_t)cap * sizeof *nv);
        if (a->over) return;
        if (d->n) memcpy(nk, d->keys, (size_t)d->n * sizeof *nk), memcpy(nv, d->vals, (size_t)d->n * sizeof *nv);
        d->keys = nk;
        d->vals = nv;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = v;
}

int v_truthy(Value v) {
    switch (v.k) {
    case V_UNDEF:
    case V_NONE:
        return 0;
    case V_BOOL:
    case V_INT:
        return v.u.i != 0;
    case V_FLOAT:
        return v.u.f != 0;
    case V_STR:
        return v.u.s->n != 0;
    case V_LIST:
        return v.u.l->gen || v.u.l->n != 0;
    case V_DICT:
        return v.k == V_DICT && (v.ns || v.u.d->n != 0);
    default:
        return 1;
    }
}

static int is_num(Value v) {
    return v.k == V_BOOL || v.k == V_INT || v.k == V_FLOAT;
}
static int eq_rec(Value x, Value y, int depth);
int v_equal(Value x, Value y) {
    return eq_rec(x, y, 0);
}
/* depth-limited: templates can build lists nested arbitrarily deep ({% set ns.l = [ns.l] %}) */
static int eq_rec(Value x, Value y, int depth) {
    if (depth > JINJA_MAX_DEPTH) return 0;
    if (is_num(x) && is_num(y)) {
        if (x.k == V_FLOAT || y.k == V_FLOAT)
            return (x.k == V_FLOAT ? x.u.f : (double)x.u.i) == (y.k == V_FLOAT ? y.u.f : (double)y.u.i);
        return x.u.i == y.u.i;
    }
    if (x.k != y.k) return 0;
    switch (x.k) {
    case V_UNDEF:
    case V_NONE:
        return 1;
    case V_STR:
        return x.u.s->n == y.u.s->n && !memcmp(x.u.s->s, y.u.s->s, x.u.s->n);
    case V_LIST:
        if (x.u.l->n != y.u.l->n) return 0;
        for (int i = 0; i < x.u.l->n; i++)
            if (!eq_rec(x.u.l->v[i], y.u.l->v[i], depth + 1)) return 0;
        return 1;
    case V_DICT:
        if (x.ns || y.ns) return x.u.d == y.u.d;
        if (x.u.d->n != y.u.d->n) return 0;
        for (int i = 0; i < x.u.d->n; i++) {
            Value *o = dict_get(y.u.d, x.u.d->keys[i]->s, x.u.d->keys[i]->n);
            if (!o || !eq_rec(x.u.d->vals[i], *o, depth + 1)) return 0;
        }
        return 1;
    case V_MACRO:
        return x.u.macro == y.u.macro;
    case V_FUNC:
        return x.u.i == y.u.i;
    default:
        return 0;
    }
}

const char *v_type_name(Value v) {
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int",   "float",
                                        "str",       "list",     "dict", "macro", "builtin"};
    if (v.k == V_DICT && v.ns) return "Namespace";
    return names[v.k];
}

/* ---- building strings: a growable byte+tag buffer in malloc memory ---- */
typedef struct SB {
    char *s;
    unsigned char *t;
    size_t n, cap;
    int tagged;
} SB;
static void sb_put(SB *b, const char *s, size_t n, const unsigned char *tag, unsigned char fill) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
        b->t = xrealloc(b->t, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    if (tag)
        memcpy(b->t + b->n, tag, n);
    else
        memset(b->t + b->n, fill, n);
    if (tag || fill) b->tagged = 1;
    b->n += n;
}
static void sb_lit(SB *b, const char *s) {
    sb_put(b, s, strlen(s), NULL, 0);
}
static JStr *sb_done(Arena *a, SB *b) {
    JStr *r = jstr_new(a, b->s ? b->s : "", b->n, b->tagged ? b->t : NULL);
    free(b->s);
    free(b->t);
    return r;
}

/* Python float repr: the shortest %.{p}g that reads back exactly, in repr's layout. */
static void float_repr(double f, char *buf, size_t cap) {
    if (isnan(f)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f > 0 ? "inf" : "-inf");
        return;
    }
    char tmp[40];
    int p = 1;
    for (; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = d.ddde[+-]XX with p significant digits */
    char digits[24] = {0};
    int nd = 0;
    const char *c = tmp;
    int neg = *c == '-';
    if (neg) c++;
    for (; *c && *c != 'e'; c++)
        if (*c != '.') digits[nd++] = *c;
    int exp = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = buf;
    size_t left = cap;
#define PUT(...)                                                                                                       \
    do {                                                                                                               \
        int w_ = snprintf(o, left, __VA_ARGS__);                                                                       \
        o += w_;                                                                                                       \
        left -= (size_t)w_;                                                                                            \
    } while (0)
    if (neg) PUT("-");
    if (exp < -4 || exp >= 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        PUT("0.");
        for (int i = 0; i < -exp - 1; i++) PUT("0");
        PUT("%s", digits);
    } else {
        for (int i = 0; i <= exp; i++) PUT("%c", i < nd ? digits[i] : '0');
        PUT(".");
        if (nd > exp + 1)
            PUT("%s", digits + exp + 1);
        else
            PUT("0");
    }
#undef PUT
}

/* The escape of byte C in a string quoted with Q (built in BUF when it has to be), or
 * NULL for the byte itself. */
typedef const char *(*EscapeFn)(unsigned char c, char q, char buf[8]);

/* S between quotes Q, each byte through ESCAPE.  The quotes carry the string's
 * highest tag; an escape the tag of its byte when ESC_OWN_TAG, else the highest too. */
static void put_quoted(SB *b, const JStr *s, char q, EscapeFn escape, int esc_own_tag) {
    unsigned char tg = jstr_maxtag(s);
    sb_put(b, &q, 1, NULL, tg);
    for (size_t i = 0; i < s->n; i++) {
        char buf[8];
        const char *r = escape((unsigned char)s->s[i], q, buf);
        if (r)
            sb_put(b, r, strlen(r), NULL, esc_own_tag ? (s->tag ? s->tag[i] : 0) : tg);
        else
            sb_put(b, s->s + i, 1, s->tag ? s->tag + i : NULL, 0);
    }
    sb_put(b, &q, 1, NULL, tg);
}

/* Python's repr of a str: \\ \n \r \t, the quote, other controls as \xNN. */
static const char *py_escape(unsigned char c, char q, char buf[8]) {
    if (c == '\\') return "\\\\";
    if (c == '\n') return "\\n";
    if (c == '\r') return "\\r";
    if (c == '\t') return "\\t";
    if (c == (unsigned char)q) return q == '\'' ? "\\'" : "\\\"";
    if (c < 0x20 || c == 0x7f) {
        snprintf(buf, 8, "\\x%02x", c);
        return buf;
    }
    return NULL;
}

static void str_repr(SB *b, const JStr *s) {
    int has_sq = memchr(s->s, '\'', s->n) != NULL, has_dq = memchr(s->s, '"', s->n) != NULL;
    put_quoted(b, s, has_sq && !has_dq ? '"' : '\'', py_escape, 0);
}

static void to_str_rec(SB *b, Value v, int repr, int depth) {
    char buf[64];
    if (depth > JINJA_MAX_DEPTH) {
        sb_lit(b, "...");
        return;
    }
    switch (v.k) {
    case V_UNDEF:
        return;
    case V_NONE:
        sb_lit(b, "None");
        return;
    case V_BOOL:
        sb_lit(b, v.u.i ? "True" : "False");
        return;
    case V_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
        sb_lit(b, buf);
        return;
    case V_FLOAT:
        float_repr(v.u.f, buf, sizeof buf);
        sb_lit(b, buf);
        return;
    case V_STR:
        if (repr)
            str_repr(b, v.u.s);
        else
            sb_put(b, v.u.s->s, v.u.s->n, v.u.s->tag, 0);
        return;
    case V_LIST:
        sb_lit(b, v.u.l->tuple ? "(" : "[");
        for (int i = 0; i < v.u.l->n; i++) {
            if (i) sb_lit(b, ", ");
            to_str_rec(b, v.u.l->v[i], 1, depth + 1);
        }
        sb_lit(b, v.u.l->tuple ? (v.u.l->n == 1 ? ",)" : ")") : "]");
        return;
    case V_DICT:
        if (v.ns) {
            sb_lit(b, "<Namespace>");
            return;
        }
        sb_lit(b, "{");
        for (int i = 0; i < v.u.d->n; i++) {
            if (i) sb_lit(b, ", ");
            str_repr(b, v.u.d->keys[i]);
            sb_lit(b, ": ");
            to_str_rec(b, v.u.d->vals[i], 1, depth + 1);
        }
        sb_lit(b, "}");
        return;
    case V_MACRO:
        sb_lit(b, "<Macro>");
        return;
    case V_FUNC:
        sb_lit(b, "<built-in function>");
        return;
    }
}

JStr *v_to_str(Arena *a, Value v) {
    if (v.k == V_STR) return v.u.s;
    SB b = {0};
    to_str_rec(&b, v, 0, 0);
    return sb_done(a, &b);
}

/* ---- json.dumps ---- */
/* The escapes of json.dumps: \" \\ \n \r \t \b \f, other controls as \u00NN. */
static const char *json_escape(unsigned char c, char q, char buf[8]) {
    (void)q;
    if (c == '"') return "\\\"";
    if (c == '\\') return "\\\\";
    if (c == '\n') return "\\n";
    if (c == '\r') return "\\r";
    if (c == '\t') return "\\t";
    if (c == '\b') return "\\b";
    if (c == '\f') return "\\f";
    if (c < 0x20) {
        snprintf(buf, 8, "\\u%04x", c);
        return buf;
    }
    return NULL;
}

static void json_str(SB *b, const JStr *s) {
    put_quoted(b, s, '"', json_escape, 1);
}
static void json_nl(SB *b, int indent, int level) {
    sb_lit(b, "\n");
    for (int i = 0; i < indent * level; i++) sb_lit(b, " ");
}
static int json_rec(SB *b, Value v, int indent, int level, const char **why) {
    char buf[64];
    if (level > JINJA_MAX_DEPTH) {
        *why = "nested too deeply";
        return -1;
    }
    switch (v.k) {
    case V_NONE:
        sb_lit(b, "null");
        return 0;
    case V_BOOL:
        sb_lit(b, v.u.i ? "true" : "false");
        return 0;
    case V_INT:
        snprintf(buf, sizeof buf, "%lld", (long long)v.u.i);
        sb_lit(b, buf);
        return 0;
    case V_FLOAT:
        if (isnan(v.u.f))
            sb_lit(b, "NaN");
        else if (isinf(v.u.f))
            sb_lit(b, v.u.f > 0 ? "Infinity" : "-Infinity");
        else {
            float_repr(v.u.f, buf, sizeof buf);
            sb_lit(b, buf);
        }
        return 0;
    case V_STR:
        json_str(b, v.u.s);
        return 0;
    case V_LIST:
        if (v.u.l->gen) {
            *why = "Object of type generator is not JSON serializable";
            return -1;
        }
        if (!v.u.l->n) {
            sb_lit(b, "[]");
            return 0;
        }
        sb_lit(b, "[");
        for (int i = 0; i < v.u.l->n; i++) {
            if (i) sb_lit(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, level + 1);
            if (json_rec(b, v.u.l->v[i], indent, level + 1, why)) return -1;
        }
        if (indent >= 0) json_nl(b, indent, level);
        sb_lit(b, "]");
        return 0;
    case V_DICT:
        if (v.ns) break;
        if (!v.u.d->n) {
            sb_lit(b, "{}");
            return 0;
        }
        sb_lit(b, "{");
        for (int i = 0; i < v.u.d->n; i++) {
            if (i) sb_lit(b, indent >= 0 ? "," : ", ");
            if (indent >= 0) json_nl(b, indent, level + 1);
            json_str(b, v.u.d->keys[i]);
            sb_lit(b, ": ");
            if (json_rec(b, v.u.d->vals[i], indent, level + 1, why)) return -1;
        }
        if (indent >= 0) json_nl(b, indent, level);
        sb_lit(b, "}");
        return 0;
    default:
        break;
    }
    *why = v.k == V_UNDEF ? "Object of type Undefined is not JSON serializable"
                          : "Object of this type is not JSON serializable";
    return -1;
}
JStr *v_to_json(Arena *a, Value v, int indent, const char **why) {
    SB b = {0};
    if (json_rec(&b, v, indent, 0, why)) {
        free(b.s);
        free(b.t);
        return NULL;
    }
    return sb_done(a, &b);
}

/* JSON -> values.  messages_level: 1 for the top-level data object, whose "messages"
 * array gives each message its own tag (1 + k % 250); 0 elsewhere. */
static Value from_json_tag(Arena *a, const json_t *j, unsigned char tag) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        Value d = v_dict(a);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x) {
            dict_set(a, d.u.d, jstr_lit(a, k), from_json_tag(a, x, tag));
        }
        return d;
    }
    case JSON_ARRAY: {
        Value l = v_list(a);
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) {
            list_push(a, l.u.l, from_json_tag(a, x, tag));
        }
        return l;
    }
    case JSON_STRING:
        return v_str(jstr_retag(a, json_string_value(j), json_string_length(j), tag));
    case JSON_INTEGER:
        return v_int((int64_t)json_integer_value(j));
    case JSON_REAL:
        return v_float(json_real_value(j));
    case JSON_TRUE:
        return v_bool(1);
    case JSON_FALSE:
        return v_bool(0);
    default:
        return v_none();
    }
}
Value v_from_json(Arena *a, const json_t *j, unsigned char tag, int messages_level) {
    if (!messages_level || !json_is_object(j)) return from_json_tag(a, j, tag);
    Value d = v_dict(a);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)j, k, x) {
        Value v;
        if (!strcmp(k, "messages") && json_is_array(x) && tag) {
            v = v_list(a);
            size_t i;
            json_t *m;
            json_array_foreach(x, i, m) {
                Value mv = from_json_tag(a, m, (unsigned char)(1 + i % 250));
                /* the role is data too (never a control token) but not the message's own text */
                Value *role = mv.k == V_DICT ? dict_get(mv.u.d, "role", 4) : NULL;
                if (role && role->k == V_STR) *role = v_str(jstr_retag(a, role->u.s->s, role->u.s->n, 255));
                list_push(a, v.u.l, mv);
            }
        } else {
            v = from_json_tag(a, x, tag);
        }
        dict_set(a, d.u.d, jstr_lit(a, k), v);
    }
    return d;
}
