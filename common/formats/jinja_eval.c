/* jinja_eval.c — runs a parsed template: statements write to a tagged output buffer,
 * expressions evaluate to values with Python semantics (jinja2's runtime plus the
 * sandbox's rules as transformers configures it).
 * Scoping follows jinja2: a for-loop body gets a fresh scope per iteration (a set
 * inside it is invisible to the next iteration and after the loop — hence
 * namespace()); if-blocks share the enclosing scope; a macro body sees its arguments
 * and the template's top-level names.
 * Undefined follows jinja2's default Undefined: it prints as "", iterates as empty,
 * is falsy, but attribute/item access, arithmetic and calls on it are errors. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "jinja_impl.h"

#define MAX_EVAL_DEPTH 3000
#define MAX_MACRO_DEPTH 64
#define MAX_LIST 1000000u /* elements a list may reach */

struct Scope {
    Scope *parent;
    const char **names;
    Value *vals;
    int n, cap;
};

int ctx_fail(Ctx *c, const Node *n, const char *fmt, ...) {
    if (c->err) return c->err;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->err = err_set(c->e, EX_DATAERR, "chat_template line %d: %s", n ? n->line : 0, msg);
    return c->err;
}

static Scope *scope_new(Ctx *c, Scope *parent) {
    Scope *s = arena_alloc(c->a, sizeof *s);
    s->parent = parent;
    return s;
}
static Value *scope_find(Scope *s, const char *name) {
    for (; s; s = s->parent)
        for (int i = s->n - 1; i >= 0; i--)
            if (!strcmp(s->names[i], name)) return &s->vals[i];
    return NULL;
}
static void scope_set(Ctx *c, Scope *s, const char *name, Value v) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name)) {
            s->vals[i] = v;
            return;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        const char **nn = arena_alloc(c->a, (size_t)cap * sizeof *nn);
        Value *nv = arena_alloc(c->a, (size_t)cap * sizeof *nv);
        if (s->n) memcpy(nn, s->names, (size_t)s->n * sizeof *nn), memcpy(nv, s->vals, (size_t)s->n * sizeof *nv);
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
}

static int step(Ctx *c, const Node *n) {
    if (c->err) return c->err;
    if (++c->steps > JINJA_MAX_STEPS)
        return ctx_fail(c, n, "more than %ld evaluation steps (endless loop?)", JINJA_MAX_STEPS);
    if (c->a->over) return ctx_fail(c, n, "uses more than %u bytes of memory", JINJA_MAX_MEMORY);
    return 0;
}

static int emit(Ctx *c, const Node *at, const JStr *s) {
    if (!s->n) return 0;
    if (c->out_len + s->n > JINJA_MAX_OUTPUT) return ctx_fail(c, at, "output larger than %u bytes", JINJA_MAX_OUTPUT);
    if (c->out_len + s->n + 1 > c->out_cap) {
        c->out_cap = (c->out_len + s->n + 1) * 2;
        c->out = xrealloc(c->out, c->out_cap);
        c->tag = xrealloc(c->tag, c->out_cap);
    }
    memcpy(c->out + c->out_len, s->s, s->n);
    if (s->tag)
        memcpy(c->tag + c->out_len, s->tag, s->n);
    else
        memset(c->tag + c->out_len, 0, s->n);
    c->out_len += s->n;
    return 0;
}

static int exec_body(Ctx *c, const Node *body);

/* Runs BODY into a fresh buffer and returns what it wrote as a string (macros, set blocks). */
static int capture(Ctx *c, const Node *body, Scope *scope, Value *out) {
    char *so = c->out;
    unsigned char *st = c->tag;
    size_t sl = c->out_len, sc = c->out_cap;
    Scope *ss = c->scope;
    c->out = NULL, c->tag = NULL, c->out_len = 0, c->out_cap = 0;
    c->scope = scope;
    int rc = exec_body(c, body);
    JStr *r = rc ? NULL : jstr_new(c->a, c->out ? c->out : "", c->out_len, c->tag);
    free(c->out);
    free(c->tag);
    c->out = so, c->tag = st, c->out_len = sl, c->out_cap = sc;
    c->scope = ss;
    if (rc) return rc;
    *out = v_str(r);
    return 0;
}

int call_macro(Ctx *c, const Node *at, Value m, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
               Value *out) {
    const Node *mn = m.u.macro;
    if (c->depth > MAX_MACRO_DEPTH * 40) return ctx_fail(c, at, "macro calls nested too deeply");
    if (nargs > mn->n_kids2)
        return ctx_fail(c, at, "macro '%s' takes %d arguments, got %d", mn->name, mn->n_kids2, nargs);
    /* the macro body sees its parameters and the template's top-level names (the
     * scope right under globals, see jinja_render), not the caller's locals */
    Scope *s = scope_new(c, c->globals);
    for (Scope *t = c->scope; t; t = t->parent)
        if (t->parent == c->globals) {
            s->parent = t;
            break;
        }
    for (int i = 0; i < mn->n_kids2; i++) {
        Value v = v_undef(mn->kw[i]);
        int have = 0;
        if (i < nargs) v = args[i], have = 1;
        for (int k = 0; k < nkw; k++)
            if (!strcmp(kw[k], mn->kw[i])) v = kwv[k], have = 1;
        if (!have && mn->kids2[i]) {
            Scope *saved = c->scope;
            c->scope = s;
            int rc = eval_expr(c, mn->kids2[i], &v);
            c->scope = saved;
            if (rc) return rc;
        }
        scope_set(c, s, mn->kw[i], v);
    }
    for (int k = 0; k < nkw; k++) {
        int ok = 0;
        for (int i = 0; i < mn->n_kids2; i++) ok |= !strcmp(kw[k], mn->kw[i]);
        if (!ok) return ctx_fail(c, at, "macro '%s' has no parameter '%s'", mn->name, kw[k]);
    }
    c->depth += 40;
    int rc = capture(c, mn->b, s, out);
    c->depth -= 40;
    return rc;
}

/* ---- expressions ---- */
static int undefined_error(Ctx *c, const Node *at, Value v) {
    if (v.u.undef_name) return ctx_fail(c, at, "'%s' is undefined", v.u.undef_name);
    return ctx_fail(c, at, "an undefined value was used");
}

static int as_index(Value v, int64_t *i) {
    if (v.k == V_INT || v.k == V_BOOL) {
        *i = v.u.i;
        return 1;
    }
    return 0;
}

static int eval_item(Ctx *c, const Node *at, Value obj, Value key, Value *out) {
    if (obj.k == V_UNDEF) return undefined_error(c, at, obj);
    if (obj.k == V_LIST && obj.u.l->gen) { /* jinja2: getitem fails, so Undefined */
        *out = v_undef(NULL);
        return 0;
    }
    int64_t i;
    *out = v_undef(NULL);
    if (obj.k == V_DICT) {
        if (key.k == V_STR) {
            Value *v = dict_get(obj.u.d, key.u.s->s, key.u.s->n);
            if (v) *out = *v;
        }
        return 0;
    }
    if (obj.k == V_LIST && as_index(key, &i)) {
        if (i < 0) i += obj.u.l->n;
        if (i >= 0 && i < obj.u.l->n) *out = obj.u.l->v[i];
        return 0;
    }
    if (obj.k == V_STR && as_index(key, &i)) {
        int64_t n = (int64_t)utf8_count(obj.u.s->s, obj.u.s->n);
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
            size_t a = utf8_offset(obj.u.s->s, obj.u.s->n, (size_t)i);
            size_t b = utf8_offset(obj.u.s->s, obj.u.s->n, (size_t)i + 1);
            *out = v_str(jstr_sub(c->a, obj.u.s, a, b - a));
        }
        return 0;
    }
    return 0; /* jinja2: missing item -> Undefined */
}

/* Python slice indices for a sequence of length n. */
static void slice_indices(int64_t n, int has[3], int64_t v[3], int64_t *start, int64_t *stop, int64_t *stepv) {
    int64_t st = has[2] ? v[2] : 1;
    int64_t lo, hi;
    if (st > 0) {
        lo = has[0] ? v[0] : 0;
        hi = has[1] ? v[1] : n;
        if (lo < 0) lo += n;
        if (hi < 0) hi += n;
        lo = lo < 0 ? 0 : lo > n ? n : lo;
        hi = hi < 0 ? 0 : hi > n ? n : hi;
    } else {
        lo = has[0] ? v[0] : n - 1;
        hi = has[1] ? v[1] : -1 - n; /* "before the start" */
        if (has[0] && lo < 0) lo += n;
        if (has[1] && hi < 0) hi += n;
        if (!has[1]) hi = -1;
        lo = lo < -1 ? -1 : lo >= n ? n - 1 : lo;
        hi = hi < -1 ? -1 : hi >= n ? n - 1 : hi;
    }
    *start = lo, *stop = hi, *stepv = st;
}

static int eval_slice(Ctx *c, const Node *n, Value obj, Value *out) {
    if (obj.k == V_UNDEF) return undefined_error(c, n, obj);
    if (obj.k == V_LIST && obj.u.l->gen) {
        *out = v_undef(NULL);
        return 0;
    }
    const Node *parts[3] = {n->b, n->c, n->d};
    int has[3] = {0};
    int64_t v[3] = {0};
    for (int k = 0; k < 3; k++) {
        if (!parts[k]) continue;
        Value x;
        if (eval_expr(c, parts[k], &x)) return c->err;
        if (x.k == V_NONE) continue;
        if (!as_index(x, &v[k])) return ctx_fail(c, n, "slice indices must be integers");
        has[k] = 1;
    }
    if (has[2] && v[2] == 0) return ctx_fail(c, n, "slice step cannot be zero");
    int64_t len = obj.k == V_LIST ? obj.u.l->n : obj.k == V_STR ? (int64_t)utf8_count(obj.u.s->s, obj.u.s->n) : -1;
    if (len < 0) return ctx_fail(c, n, "'%s' object is not subscriptable", v_type_name(obj));
    int64_t lo, hi, st;
    slice_indices(len, has, v, &lo, &hi, &st);
    if (obj.k == V_LIST) {
        Value r = v_list(c->a);
        for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
            list_push(c->a, r.u.l, obj.u.l->v[i]);
            if (st > 0 ? hi - i <= st : i - hi <= -st) break; /* no overflow past the end */
        }
        *out = r;
        return 0;
    }
    JStr *s = obj.u.s;
    if (st == 1) {
        size_t a = utf8_offset(s->s, s->n, (size_t)lo), b = utf8_offset(s->s, s->n, (size_t)(hi > lo ? hi : lo));
        *out = v_str(jstr_sub(c->a, s, a, b - a));
        return 0;
    }
    JStr *r = jstr_lit(c->a, "");
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
        size_t a = utf8_offset(s->s, s->n, (size_t)i), b = utf8_offset(s->s, s->n, (size_t)i + 1);
        r = jstr_cat(c->a, r, jstr_sub(c->a, s, a, b - a));
        if (step(c, n)) return c->err;
        if (st > 0 ? hi - i <= st : i - hi <= -st) break;
    }
    *out = v_str(r);
    return 0;
}

static int num(Value v, double *f, int *is_int, int64_t *i) {
    if (v.k == V_INT || v.k == V_BOOL) {
        *i = v.u.i;
        *f = (double)v.u.i;
        *is_int = 1;
        return 1;
    }
    if (v.k == V_FLOAT) {
        *f = v.u.f;
        *is_int = 0;
        return 1;
    }
    return 0;
}

static int cmp_values(Ctx *c, const Node *n, Value x, Value y, int *res) {
    double fx, fy;
    int ix = 0, iy = 0;
    int64_t ax = 0, ay = 0;
    if (num(x, &fx, &ix, &ax) && num(y, &fy, &iy, &ay)) {
        *res = ix && iy ? (ax < ay ? -1 : ax > ay) : (fx < fy ? -1 : fx > fy);
        return 0;
    }
    if (x.k == V_STR && y.k == V_STR) {
        size_t m = x.u.s->n < y.u.s->n ? x.u.s->n : y.u.s->n;
        int r = memcmp(x.u.s->s, y.u.s->s, m);
        *res = r ? (r < 0 ? -1 : 1) : (x.u.s->n < y.u.s->n ? -1 : x.u.s->n > y.u.s->n);
        return 0;
    }
    if (x.k == V_UNDEF) return undefined_error(c, n, x);
    if (y.k == V_UNDEF) return undefined_error(c, n, y);
    return ctx_fail(c, n, "cannot compare '%s' with '%s'", v_type_name(x), v_type_name(y));
}

static int contains(Ctx *c, const Node *n, Value hay, Value needle, int *res) {
    *res = 0;
    if (hay.k == V_STR) {
        if (needle.k != V_STR)
            return ctx_fail(c, n, "'in <string>' requires string as left operand, not %s", v_type_name(needle));
        const JStr *h = hay.u.s, *s = needle.u.s;
        if (!s->n) *res = 1;
        for (size_t i = 0; !*res && s->n <= h->n && i <= h->n - s->n; i++) *res = !memcmp(h->s + i, s->s, s->n);
        return 0;
    }
    if (hay.k == V_LIST) {
        for (int i = 0; i < hay.u.l->n && !*res; i++) *res = v_equal(hay.u.l->v[i], needle);
        return 0;
    }
    if (hay.k == V_DICT) {
        *res = needle.k == V_STR && dict_get(hay.u.d, needle.u.s->s, needle.u.s->n);
        return 0;
    }
    if (hay.k == V_UNDEF) return 0;
    return ctx_fail(c, n, "argument of type '%s' is not iterable", v_type_name(hay));
}

static int repeat(Ctx *c, const Node *n, Value seq, int64_t k, Value *out) {
    if (k < 0 || (seq.k == V_STR ? !seq.u.s->n : !seq.u.l->n)) k = 0;
    if (seq.k == V_STR) {
        const JStr *s = seq.u.s;
        if (s->n && (uint64_t)k > JINJA_MAX_OUTPUT / s->n) return ctx_fail(c, n, "string repetition too large");
        JStr *r = jstr_new(c->a, "", 0, NULL);
        char *d = arena_alloc(c->a, s->n * (size_t)k + 1);
        unsigned char *t = s->tag ? arena_alloc(c->a, s->n * (size_t)k + 1) : NULL;
        for (int64_t i = 0; i < k; i++) {
            memcpy(d + (size_t)i * s->n, s->s, s->n);
            if (t) memcpy(t + (size_t)i * s->n, s->tag, s->n);
        }
        r->s = d, r->tag = t, r->n = s->n * (size_t)k;
        *out = v_str(r);
        return 0;
    }
    if ((uint64_t)k > MAX_LIST / (uint64_t)(seq.u.l->n ? seq.u.l->n : 1))
        return ctx_fail(c, n, "list repetition too large");
    Value r = v_list(c->a);
    for (int64_t i = 0; i < k; i++)
        for (int j = 0; j < seq.u.l->n; j++) list_push(c->a, r.u.l, seq.u.l->v[j]);
    *out = r;
    return 0;
}

static int eval_bin(Ctx *c, const Node *n, Value x, Value y, Value *out) {
    int op = n->op, r = 0;
    if (op == OP_CAT) {
        JStr *a = v_to_str(c->a, x), *b = v_to_str(c->a, y);
        if (a->n + b->n > JINJA_MAX_OUTPUT) return ctx_fail(c, n, "string too large");
        *out = v_str(jstr_cat(c->a, a, b));
        return 0;
    }
    if (op == OP_EQ || op == OP_NE) {
        *out = v_bool(v_equal(x, y) == (op == OP_EQ));
        return 0;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        if (contains(c, n, y, x, &r)) return c->err;
        *out = v_bool(r == (op == OP_IN));
        return 0;
    }
    if (op == OP_LT || op == OP_GT || op == OP_LE || op == OP_GE) {
        if (cmp_values(c, n, x, y, &r)) return c->err;
        *out = v_bool(op == OP_LT ? r < 0 : op == OP_GT ? r > 0 : op == OP_LE ? r <= 0 : r >= 0);
        return 0;
    }
    if (x.k == V_UNDEF) return undefined_error(c, n, x);
    if (y.k == V_UNDEF) return undefined_error(c, n, y);
    if (op == OP_ADD && x.k == V_STR && y.k == V_STR) {
        if (x.u.s->n + y.u.s->n > (x.markup || y.markup ? JINJA_MAX_OUTPUT / 6 : JINJA_MAX_OUTPUT))
            return ctx_fail(c, n, "string too large");
        /* Markup + str escapes the str (markupsafe's __add__/__radd__) */
        JStr *a = y.markup && !x.markup ? html_escape(c, x.u.s) : x.u.s;
        JStr *b = x.markup && !y.markup ? html_escape(c, y.u.s) : y.u.s;
        *out = v_str(jstr_cat(c->a, a, b));
        out->markup = x.markup || y.markup;
        return 0;
    }
    if (op == OP_ADD && x.k == V_LIST && y.k == V_LIST && !x.u.l->gen && !y.u.l->gen) {
        if ((uint64_t)x.u.l->n + (uint64_t)y.u.l->n > MAX_LIST) return ctx_fail(c, n, "list too large");
        Value l = v_list(c->a);
        for (int i = 0; i < x.u.l->n; i++) list_push(c->a, l.u.l, x.u.l->v[i]);
        for (int i = 0; i < y.u.l->n; i++) list_push(c->a, l.u.l, y.u.l->v[i]);
        *out = l;
        return 0;
    }
    double fx, fy;
    int ix = 0, iy = 0;
    int64_t ax = 0, ay = 0;
    if (op == OP_MUL && (x.k == V_STR || x.k == V_LIST) && num(y, &fy, &iy, &ay) && iy) return repeat(c, n, x, ay, out);
    if (op == OP_MUL && (y.k == V_STR || y.k == V_LIST) && num(x, &fx, &ix, &ax) && ix) return repeat(c, n, y, ax, out);
    if (!num(x, &fx, &ix, &ax) || !num(y, &fy, &iy, &ay))
        return ctx_fail(c, n, "unsupported operand types for '%s': '%s' and '%s'",
                        op == OP_ADD        ? "+"
                        : op == OP_SUB      ? "-"
                        : op == OP_MUL      ? "*"
                        : op == OP_DIV      ? "/"
                        : op == OP_FLOORDIV ? "//"
                        : op == OP_MOD      ? "%"
                                            : "**",
                        v_type_name(x), v_type_name(y));
    int both_int = ix && iy;
    int64_t ir;
    switch (op) {
    case OP_ADD:
        if (both_int && __builtin_add_overflow(ax, ay, &ir)) return ctx_fail(c, n, "integer overflow");
        *out = both_int ? v_int(ir) : v_float(fx + fy);
        return 0;
    case OP_SUB:
        if (both_int && __builtin_sub_overflow(ax, ay, &ir)) return ctx_fail(c, n, "integer overflow");
        *out = both_int ? v_int(ir) : v_float(fx - fy);
        return 0;
    case OP_MUL:
        if (both_int && __builtin_mul_overflow(ax, ay, &ir)) return ctx_fail(c, n, "integer overflow");
        *out = both_int ? v_int(ir) : v_float(fx * fy);
        return 0;
    case OP_DIV:
        if (fy == 0) return ctx_fail(c, n, "division by zero");
        *out = v_float(fx / fy);
        return 0;
    case OP_FLOORDIV:
    case OP_MOD:
        if (fy == 0) return ctx_fail(c, n, "integer division or modulo by zero");
        if (both_int) { /* Python floors toward -infinity */
            if (ax == INT64_MIN && ay == -1) return ctx_fail(c, n, "integer overflow");
            int64_t q = ax / ay, m = ax % ay;
            if (m && ((m < 0) != (ay < 0))) q--, m += ay;
            *out = v_int(op == OP_MOD ? m : q);
        } else {
            double q = floor(fx / fy), m = fx - q * fy;
            *out = v_float(op == OP_MOD ? m : q);
        }
        return 0;
    case OP_POW:
        if (both_int && ay >= 0) { /* square and multiply, refusing what int64 cannot hold */
            int64_t p = 1, b = ax;
            for (int64_t e = ay; e; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(p, b, &p)) return ctx_fail(c, n, "integer overflow");
                if (e > 1 && __builtin_mul_overflow(b, b, &b)) return ctx_fail(c, n, "integer overflow");
            }
            *out = v_int(p);
        } else {
            *out = v_float(pow(fx, fy));
        }
        return 0;
    }
    return ctx_fail(c, n, "unknown operator");
}

/* evaluated call arguments */
typedef struct Args {
    Value *v, *kwv;
    int n, nkw;
} Args;
static int eval_args(Ctx *c, const Node *n, Args *a) {
    a->n = n->n_kids, a->nkw = n->n_kids2;
    a->v = arena_alloc(c->a, (size_t)(a->n + 1) * sizeof *a->v);
    a->kwv = arena_alloc(c->a, (size_t)(a->nkw + 1) * sizeof *a->kwv);
    for (int i = 0; i < a->n; i++)
        if (eval_expr(c, n->kids[i], &a->v[i])) return c->err;
    for (int i = 0; i < a->nkw; i++)
        if (eval_expr(c, n->kids2[i], &a->kwv[i])) return c->err;
    return 0;
}

static int eval_call(Ctx *c, const Node *n, Value *out) {
    Args a;
    if (n->a->k == E_ATTR) { /* obj.method(...) */
        Value obj;
        if (eval_expr(c, n->a->a, &obj)) return c->err;
        if (obj.k == V_UNDEF) return undefined_error(c, n, obj);
        if (eval_args(c, n, &a)) return c->err;
        if (obj.k == V_DICT) {
            Value *f = dict_get(obj.u.d, n->a->name, strlen(n->a->name));
            if (f && f->k == V_MACRO) return call_macro(c, n, *f, a.v, a.n, n->kw, a.kwv, a.nkw, out);
        }
        return builtin_method(c, n, obj, n->a->name, a.v, a.n, n->kw, a.kwv, a.nkw, out);
    }
    Value f;
    if (eval_expr(c, n->a, &f)) return c->err;
    if (f.k == V_UNDEF) return undefined_error(c, n, f);
    if (eval_args(c, n, &a)) return c->err;
    if (f.k == V_MACRO) return call_macro(c, n, f, a.v, a.n, n->kw, a.kwv, a.nkw, out);
    if (f.k == V_FUNC) return builtin_call(c, n, (int)f.u.i, a.v, a.n, n->kw, a.kwv, a.nkw, out);
    return ctx_fail(c, n, "'%s' object is not callable", v_type_name(f));
}

static int eval_inner(Ctx *c, const Node *n, Value *out) {
    Value x = {0}, y = {0};
    switch (n->k) {
    case E_CONST:
        *out = n->cst;
        return 0;
    case E_NAME: {
        Value *v = scope_find(c->scope, n->name);
        if (v)
            *out = *v;
        else if (!builtin_global(n->name, out))
            *out = v_undef(n->name);
        return 0;
    }
    case E_ATTR:
        if (eval_expr(c, n->a, &x)) return c->err;
        if (x.k == V_UNDEF) return undefined_error(c, n, x);
        *out = v_undef(n->name);
        if (x.k == V_DICT) {
            Value *v = dict_get(x.u.d, n->name, strlen(n->name));
            if (v) *out = *v;
        }
        return 0;
    case E_ITEM:
        if (eval_expr(c, n->a, &x) || eval_expr(c, n->b, &y)) return c->err;
        return eval_item(c, n, x, y, out);
    case E_SLICE:
        if (eval_expr(c, n->a, &x)) return c->err;
        return eval_slice(c, n, x, out);
    case E_CALL:
        return eval_call(c, n, out);
    case E_FILTER: {
        Args a;
        if (eval_expr(c, n->a, &x) || eval_args(c, n, &a)) return c->err;
        return builtin_filter(c, n, n->name, x, a.v, a.n, n->kw, a.kwv, a.nkw, out);
    }
    case E_TEST: {
        Args a;
        int r;
        if (eval_expr(c, n->a, &x) || eval_args(c, n, &a)) return c->err;
        if (builtin_test(c, n, n->name, x, a.v, a.n, &r)) return c->err;
        *out = v_bool(n->op ? !r : r);
        return 0;
    }
    case E_NOT:
        if (eval_expr(c, n->a, &x)) return c->err;
        *out = v_bool(!v_truthy(x));
        return 0;
    case E_NEG:
    case E_POS:
        if (eval_expr(c, n->a, &x)) return c->err;
        if ((x.k == V_INT || x.k == V_BOOL) && x.u.i == INT64_MIN && n->k == E_NEG)
            return ctx_fail(c, n, "integer overflow");
        if (x.k == V_INT || x.k == V_BOOL)
            *out = v_int(n->k == E_NEG ? -x.u.i : x.u.i);
        else if (x.k == V_FLOAT)
            *out = v_float(n->k == E_NEG ? -x.u.f : x.u.f);
        else if (x.k == V_UNDEF)
            return undefined_error(c, n, x);
        else
            return ctx_fail(c, n, "bad operand type for unary %c: '%s'", n->k == E_NEG ? '-' : '+', v_type_name(x));
        return 0;
    case E_BIN:
        if (eval_expr(c, n->a, &x) || eval_expr(c, n->b, &y)) return c->err;
        return eval_bin(c, n, x, y, out);
    case E_AND:
    case E_OR:
        if (eval_expr(c, n->a, &x)) return c->err;
        if (v_truthy(x) == (n->k == E_OR)) {
            *out = x;
            return 0;
        }
        return eval_expr(c, n->b, out);
    case E_COND:
        if (eval_expr(c, n->a, &x)) return c->err;
        if (v_truthy(x)) return eval_expr(c, n->b, out);
        if (n->c) return eval_expr(c, n->c, out);
        *out = v_undef(NULL);
        return 0;
    case E_LIST: {
        Value l = v_list(c->a);
        l.u.l->tuple = n->op;
        for (int i = 0; i < n->n_kids; i++) {
            if (eval_expr(c, n->kids[i], &x)) return c->err;
            list_push(c->a, l.u.l, x);
        }
        *out = l;
        return 0;
    }
    case E_DICT: {
        Value d = v_dict(c->a);
        for (int i = 0; i < n->n_kids; i++) {
            if (eval_expr(c, n->kids[i], &x) || eval_expr(c, n->kids2[i], &y)) return c->err;
            if (x.k != V_STR) return ctx_fail(c, n, "dict keys must be strings here");
            dict_set(c->a, d.u.d, x.u.s, y);
        }
        *out = d;
        return 0;
    }
    default:
        return ctx_fail(c, n, "not an expression");
    }
}

int eval_expr(Ctx *c, const Node *n, Value *out) {
    if (step(c, n)) return c->err;
    if (++c->depth > MAX_EVAL_DEPTH) return ctx_fail(c, n, "evaluation nested too deeply");
    int rc = eval_inner(c, n, out);
    c->depth--;
    if (!rc && c->err) rc = c->err;
    return rc;
}

/* ---- statements ---- */
static int bind_targets(Ctx *c, const Node *n, Scope *s, Value v) {
    if (n->n_kids == 1) {
        scope_set(c, s, n->kids[0]->name, v);
        return 0;
    }
    if (v.k != V_LIST || v.u.l->n != n->n_kids)
        return ctx_fail(c, n, "cannot unpack %s into %d names", v_type_name(v), n->n_kids);
    for (int i = 0; i < n->n_kids; i++) scope_set(c, s, n->kids[i]->name, v.u.l->v[i]);
    return 0;
}

static int iter_items(Ctx *c, const Node *n, Value it, JList *out) {
    if (it.k == V_LIST) {
        *out = *it.u.l;
    } else if (it.k == V_DICT && !it.ns) {
        memset(out, 0, sizeof *out);
        for (int i = 0; i < it.u.d->n; i++) list_push(c->a, out, v_str(it.u.d->keys[i]));
    } else if (it.k == V_STR) {
        memset(out, 0, sizeof *out);
        const JStr *s = it.u.s;
        for (size_t i = 0; i < s->n;) {
            size_t j = i + 1;
            while (j < s->n && ((unsigned char)s->s[j] & 0xC0) == 0x80) j++;
            list_push(c->a, out, v_str(jstr_sub(c->a, s, i, j - i)));
            i = j;
        }
    } else if (it.k == V_UNDEF) {
        memset(out, 0, sizeof *out);
    } else {
        return ctx_fail(c, n, "'%s' object is not iterable", v_type_name(it));
    }
    return 0;
}

static Value make_loop(Ctx *c, JList *items, int i) {
    Value d = v_dict(c->a);
    int len = items->n;
    JDict *L = d.u.d;
    dict_set(c->a, L, jstr_lit(c->a, "index"), v_int(i + 1));
    dict_set(c->a, L, jstr_lit(c->a, "index0"), v_int(i));
    dict_set(c->a, L, jstr_lit(c->a, "revindex"), v_int(len - i));
    dict_set(c->a, L, jstr_lit(c->a, "revindex0"), v_int(len - i - 1));
    dict_set(c->a, L, jstr_lit(c->a, "first"), v_bool(i == 0));
    dict_set(c->a, L, jstr_lit(c->a, "last"), v_bool(i == len - 1));
    dict_set(c->a, L, jstr_lit(c->a, "length"), v_int(len));
    dict_set(c->a, L, jstr_lit(c->a, "depth"), v_int(1));
    dict_set(c->a, L, jstr_lit(c->a, "depth0"), v_int(0));
    dict_set(c->a, L, jstr_lit(c->a, "previtem"), i > 0 ? items->v[i - 1] : v_undef("loop.previtem"));
    dict_set(c->a, L, jstr_lit(c->a, "nextitem"), i + 1 < len ? items->v[i + 1] : v_undef("loop.nextitem"));
    return d;
}

static int exec_for(Ctx *c, const Node *n) {
    Value it;
    JList all, items = {0};
    if (eval_expr(c, n->a, &it) || iter_items(c, n, it, &all)) return c->err;
    if (n->b) { /* `for x in xs if cond`: filtered before loop.* is computed */
        for (int i = 0; i < all.n; i++) {
            Scope *s = scope_new(c, c->scope);
            if (bind_targets(c, n, s, all.v[i])) return c->err;
            Scope *saved = c->scope;
            c->scope = s;
            Value keep;
            int rc = eval_expr(c, n->b, &keep);
            c->scope = saved;
            if (rc) return rc;
            if (v_truthy(keep)) list_push(c->a, &items, all.v[i]);
        }
    } else {
        items = all;
    }
    Scope *outer = c->scope;
    for (int i = 0; i < items.n; i++) {
        Scope *s = scope_new(c, outer);
        if (bind_targets(c, n, s, items.v[i])) return c->err;
        scope_set(c, s, "loop", make_loop(c, &items, i));
        c->scope = s;
        int rc = exec_body(c, n->c);
        c->scope = outer;
        if (rc) return rc;
        int ctl = c->loop_ctl;
        c->loop_ctl = 0;
        if (ctl == 1) break;
    }
    if (!items.n && n->d) return exec_body(c, n->d);
    return 0;
}

static int exec_stmt(Ctx *c, const Node *n) {
    Value v;
    if (step(c, n)) return c->err;
    switch (n->k) {
    case N_TEXT:
        return emit(c, n, n->cst.u.s);
    case N_OUTPUT:
        if (eval_expr(c, n->a, &v)) return c->err;
        /* jinja2 would print "<generator object ... at 0x...>": not reproducible */
        if (v.k == V_LIST && v.u.l->gen) return ctx_fail(c, n, "printing a generator (add |list)");
        return emit(c, n, v_to_str(c->a, v));
    case N_IF:
        for (const Node *b = n; b;) {
            if (b->k == N_BODY) return exec_body(c, b);
            if (eval_expr(c, b->a, &v)) return c->err;
            if (v_truthy(v)) return exec_body(c, b->b);
            b = b->c;
        }
        return 0;
    case N_FOR:
        return exec_for(c, n);
    case N_SET:
        if (eval_expr(c, n->a, &v)) return c->err;
        return bind_targets(c, n, c->scope, v);
    case N_SET_ATTR: {
        Value *ns = scope_find(c->scope, n->name);
        if (!ns || ns->k != V_DICT || !ns->ns)
            return ctx_fail(c, n, "cannot assign attribute on non-namespace object '%s'", n->name);
        if (n->name2[0] == '_') return ctx_fail(c, n, "namespace attributes cannot start with '_'");
        if (eval_expr(c, n->a, &v)) return c->err;
        dict_set(c->a, ns->u.d, jstr_lit(c->a, n->name2), v);
        return 0;
    }
    case N_FILTER: {
        Value *av = arena_alloc(c->a, (size_t)(n->n_kids + 1) * sizeof *av);
        Value *kv = arena_alloc(c->a, (size_t)(n->n_kids2 + 1) * sizeof *kv);
        for (int i = 0; i < n->n_kids; i++)
            if (eval_expr(c, n->kids[i], &av[i])) return c->err;
        for (int i = 0; i < n->n_kids2; i++)
            if (eval_expr(c, n->kids2[i], &kv[i])) return c->err;
        if (capture(c, n->b, c->scope, &v)) return c->err;
        Value r;
        if (builtin_filter(c, n, n->name, v, av, n->n_kids, n->kw, kv, n->n_kids2, &r)) return c->err;
        return emit(c, n, v_to_str(c->a, r));
    }
    case N_SET_BLOCK:
        if (capture(c, n->b, c->scope, &v)) return c->err;
        scope_set(c, c->scope, n->kids[0]->name, v);
        return 0;
    case N_MACRO: {
        Value m = {.k = V_MACRO};
        m.u.macro = n;
        scope_set(c, c->scope, n->name, m);
        return 0;
    }
    case N_BREAK:
    case N_CONTINUE:
        c->loop_ctl = n->k == N_BREAK ? 1 : 2;
        return 0;
    case N_BODY:
        return exec_body(c, n);
    default:
        return ctx_fail(c, n, "not a statement");
    }
}

static int exec_body(Ctx *c, const Node *body) {
    if (++c->depth > MAX_EVAL_DEPTH) return ctx_fail(c, body, "blocks nested too deeply");
    for (int i = 0; i < body->n_kids; i++) {
        if (exec_stmt(c, body->kids[i])) return c->err;
        if (c->loop_ctl) break;
    }
    c->depth--;
    return 0;
}

static void add_vars(Ctx *c, Scope *s, const json_t *obj, unsigned char tag) {
    if (!obj || !json_is_object(obj)) return;
    Value d = v_from_json(c->a, obj, tag, 1);
    for (int i = 0; i < d.u.d->n; i++) {
        char *name = arena_alloc(c->a, d.u.d->keys[i]->n + 1);
        memcpy(name, d.u.d->keys[i]->s, d.u.d->keys[i]->n);
        scope_set(c, s, name, d.u.d->vals[i]);
    }
}

int jinja_render(const JinjaTemplate *t, const json_t *trusted, const json_t *data, JinjaOutput *out, Error *e) {
    memset(out, 0, sizeof *out);
    Arena a = {.limit = JINJA_MAX_MEMORY};
    Ctx c = {.a = &a, .e = e};
    c.globals = scope_new(&c, NULL);
    add_vars(&c, c.globals, trusted, 0);
    add_vars(&c, c.globals, data, 255);
    c.scope = scope_new(&c, c.globals); /* the template's top level */
    int rc = exec_body(&c, t->root);
    if (!rc && c.err) rc = c.err;
    if (rc) {
        free(c.out);
        free(c.tag);
        arena_free(&a);
        return rc;
    }
    out->text = xmalloc(c.out_len + 1);
    if (c.out_len) memcpy(out->text, c.out, c.out_len);
    out->text[c.out_len] = 0;
    out->tag = xmalloc(c.out_len + 1);
    if (c.out_len) memcpy(out->tag, c.tag, c.out_len);
    out->len = c.out_len;
    free(c.out);
    free(c.tag);
    arena_free(&a);
    return 0;
}

void jinja_output_free(JinjaOutput *o) {
    free(o->text);
    free(o->tag);
    memset(o, 0, sizeof *o);
}
