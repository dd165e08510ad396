/* jinja_filters_more.c — the less common jinja2 filters that Hub chat templates still
 * use: sort, dictsort, min, max, sum, round, format (printf-style %s %d %i %r %f %%),
 * escape/e (markupsafe's HTML escaping, giving a Markup), with jinja2 3.1's defaults (sort, dictsort,
 * min and max compare strings case-insensitively unless case_sensitive=true; sorting is
 * stable; round is Python's round, half to even on the exact binary value). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

static Value kw_or_pos(const char **kw, Value *kwv, int nkw, const char *name, Value *args, int nargs, int pos) {
    for (int i = 0; i < nkw; i++)
        if (!strcmp(kw[i], name)) return kwv[i];
    return pos >= 0 && pos < nargs ? args[pos] : v_undef(NULL);
}

/* dotted attribute path on mappings, as jinja2's make_attrgetter */
static Value attr_path(Value v, const JStr *path) {
    size_t b = 0;
    for (size_t i = 0; i <= path->n; i++) {
        if (i < path->n && path->s[i] != '.') continue;
        Value *x = v.k == V_DICT ? dict_get(v.u.d, path->s + b, i - b) : NULL;
        if (!x) return v_undef(NULL);
        v = *x;
        b = i + 1;
    }
    return v;
}

/* Python ordering of two sort keys; *bad set on incomparable types */
static int order(Value a, Value b, int fold, int *bad) {
    int an = a.k == V_INT || a.k == V_BOOL || a.k == V_FLOAT, bn = b.k == V_INT || b.k == V_BOOL || b.k == V_FLOAT;
    if (an && bn) {
        double x = a.k == V_FLOAT ? a.u.f : (double)a.u.i, y = b.k == V_FLOAT ? b.u.f : (double)b.u.i;
        if (a.k != V_FLOAT && b.k != V_FLOAT) return a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
        return x < y ? -1 : x > y;
    }
    if (a.k == V_STR && b.k == V_STR) {
        size_t n = a.u.s->n < b.u.s->n ? a.u.s->n : b.u.s->n;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)a.u.s->s[i], y = (unsigned char)b.u.s->s[i];
            if (fold && x >= 'A' && x <= 'Z') x += 32;
            if (fold && y >= 'A' && y <= 'Z') y += 32;
            if (x != y) return x < y ? -1 : 1;
        }
        return a.u.s->n < b.u.s->n ? -1 : a.u.s->n > b.u.s->n;
    }
    *bad = 1;
    return 0;
}

static int items_of(Ctx *c, const Node *at, Value x, JList *out) {
    memset(out, 0, sizeof *out);
    if (x.k == V_LIST) {
        for (int i = 0; i < x.u.l->n; i++) list_push(c->a, out, x.u.l->v[i]);
        return 0;
    }
    if (x.k == V_DICT && !x.ns) {
        for (int i = 0; i < x.u.d->n; i++) list_push(c->a, out, v_str(x.u.d->keys[i]));
        return 0;
    }
    if (x.k == V_UNDEF) return 0;
    return ctx_fail(c, at, "'%s' object is not iterable", v_type_name(x));
}

/* stable insertion sort of items by keys (lists in templates are short); *OUT is the
 * sorted list (the items' storage, not a copy) */
static int sort_items(Ctx *c, const Node *at, JList *items, Value *keys, int fold, int reverse, Value *out) {
    int bad = 0;
    for (int i = 1; i < items->n; i++) {
        Value it = items->v[i], k = keys[i];
        int j = i;
        while (j > 0) {
            int o = order(keys[j - 1], k, fold, &bad);
            if (reverse ? o >= 0 : o <= 0) break;
            items->v[j] = items->v[j - 1], keys[j] = keys[j - 1];
            j--;
        }
        items->v[j] = it, keys[j] = k;
    }
    if (bad) return ctx_fail(c, at, "'<' not supported between these values");
    *out = v_list(c->a);
    *out->u.l = *items;
    return 0;
}

static int f_sort(Ctx *c, const Node *at, Value x, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                  Value *out) {
    JList items;
    if (items_of(c, at, x, &items)) return c->err;
    Value rev = kw_or_pos(kw, kwv, nkw, "reverse", args, nargs, 0),
          cs = kw_or_pos(kw, kwv, nkw, "case_sensitive", args, nargs, 1),
          attr = kw_or_pos(kw, kwv, nkw, "attribute", args, nargs, 2);
    Value *keys = arena_alloc(c->a, (size_t)(items.n + 1) * sizeof *keys);
    for (int i = 0; i < items.n; i++) keys[i] = attr.k == V_STR ? attr_path(items.v[i], attr.u.s) : items.v[i];
    return sort_items(c, at, &items, keys, !v_truthy(cs), v_truthy(rev), out) ? c->err : 0;
}

static int f_dictsort(Ctx *c, const Node *at, Value x, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                      Value *out) {
    if (x.k != V_DICT) return ctx_fail(c, at, "dictsort: expected a mapping, got %s", v_type_name(x));
    Value cs = kw_or_pos(kw, kwv, nkw, "case_sensitive", args, nargs, 0),
          by = kw_or_pos(kw, kwv, nkw, "by", args, nargs, 1), rev = kw_or_pos(kw, kwv, nkw, "reverse", args, nargs, 2);
    int by_value = by.k == V_STR && jstr_eq(by.u.s, "value");
    JList items = {0};
    Value *keys = arena_alloc(c->a, (size_t)(x.u.d->n + 1) * sizeof *keys);
    for (int i = 0; i < x.u.d->n; i++) {
        Value p = v_list(c->a);
        p.u.l->tuple = 1;
        list_push(c->a, p.u.l, v_str(x.u.d->keys[i]));
        list_push(c->a, p.u.l, x.u.d->vals[i]);
        list_push(c->a, &items, p);
        keys[i] = by_value ? x.u.d->vals[i] : v_str(x.u.d->keys[i]);
    }
    return sort_items(c, at, &items, keys, !v_truthy(cs), v_truthy(rev), out) ? c->err : 0;
}

static int f_minmax(Ctx *c, const Node *at, Value x, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                    int want_max, Value *out) {
    JList items;
    if (items_of(c, at, x, &items)) return c->err;
    Value cs = kw_or_pos(kw, kwv, nkw, "case_sensitive", args, nargs, 0),
          attr = kw_or_pos(kw, kwv, nkw, "attribute", args, nargs, 1);
    *out = v_undef(NULL);
    Value best = v_undef(NULL);
    int bad = 0;
    for (int i = 0; i < items.n; i++) {
        Value k = attr.k == V_STR ? attr_path(items.v[i], attr.u.s) : items.v[i];
        if (i == 0 || (want_max ? order(k, best, !v_truthy(cs), &bad) > 0 : order(k, best, !v_truthy(cs), &bad) < 0))
            best = k, *out = items.v[i];
    }
    return bad ? ctx_fail(c, at, "'<' not supported between these values") : 0;
}

static int f_sum(Ctx *c, const Node *at, Value x, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                 Value *out) {
    JList items;
    if (items_of(c, at, x, &items)) return c->err;
    Value attr = kw_or_pos(kw, kwv, nkw, "attribute", args, nargs, 0),
          st = kw_or_pos(kw, kwv, nkw, "start", args, nargs, 1);
    int is_float = st.k == V_FLOAT;
    int64_t si = st.k == V_INT ? st.u.i : 0;
    double sf = st.k == V_FLOAT ? st.u.f : (double)si;
    for (int i = 0; i < items.n; i++) {
        Value v = attr.k == V_STR ? attr_path(items.v[i], attr.u.s) : items.v[i];
        if (v.k == V_FLOAT)
            is_float = 1, sf += v.u.f;
        else if (v.k == V_INT || v.k == V_BOOL) {
            if (__builtin_add_overflow(si, v.u.i, &si)) return ctx_fail(c, at, "integer overflow");
            sf += (double)v.u.i;
        } else
            return ctx_fail(c, at, "sum: unsupported operand type '%s'", v_type_name(v));
    }
    *out = is_float ? v_float(sf) : v_int(si);
    return 0;
}

static int f_round(Ctx *c, const Node *at, Value x, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                   Value *out) {
    Value pv = kw_or_pos(kw, kwv, nkw, "precision", args, nargs, 0),
          mv = kw_or_pos(kw, kwv, nkw, "method", args, nargs, 1);
    int p = pv.k == V_INT ? (int)(pv.u.i < 0 ? 0 : pv.u.i > 17 ? 17 : pv.u.i) : 0;
    const char *m = mv.k == V_STR ? mv.u.s->s : "common";
    if (x.k == V_INT && !strcmp(m, "common")) { /* Python: round(int, n) is that int */
        *out = x;
        return 0;
    }
    if (x.k != V_INT && x.k != V_FLOAT) return ctx_fail(c, at, "round: expected a number, got %s", v_type_name(x));
    double f = x.k == V_FLOAT ? x.u.f : (double)x.u.i, scale = pow(10, p);
    if (!strcmp(m, "floor"))
        f = floor(f * scale) / scale;
    else if (!strcmp(m, "ceil"))
        f = ceil(f * scale) / scale;
    else if (!strcmp(m, "common")) {
        /* printf rounds the exact binary value half to even: Python's round */
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", p, f);
        f = strtod(buf, NULL);
    } else
        return ctx_fail(c, at, "round: method must be common, floor or ceil");
    *out = v_float(f);
    return 0;
}

/* Python's "fmt" % args for %s %r %d %i %f %% */
static int f_format(Ctx *c, const Node *at, Value x, Value *args, int nargs, Value *out) {
    JStr *f = v_to_str(c->a, x), *r = jstr_lit(c->a, "");
    int k = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->s[i] != '%') {
            r = jstr_cat(c->a, r, jstr_sub(c->a, f, i, 1));
            continue;
        }
        char conv = i + 1 < f->n ? f->s[++i] : 0;
        if (conv == '%') {
            r = jstr_cat(c->a, r, jstr_lit(c->a, "%"));
            continue;
        }
        if (k >= nargs) return ctx_fail(c, at, "format: not enough arguments for format string");
        Value v = args[k++];
        char buf[64];
        if (conv == 's')
            r = jstr_cat(c->a, r, v_to_str(c->a, v));
        else if (conv == 'r') {
            Value l = v_list(c->a); /* repr: print it as a list element, without the brackets */
            list_push(c->a, l.u.l, v);
            JStr *s = v_to_str(c->a, l);
            r = jstr_cat(c->a, r, jstr_sub(c->a, s, 1, s->n - 2));
        } else if ((conv == 'd' || conv == 'i') && (v.k == V_INT || v.k == V_BOOL || v.k == V_FLOAT)) {
            snprintf(buf, sizeof buf, "%lld", (long long)(v.k == V_FLOAT ? (int64_t)v.u.f : v.u.i));
            r = jstr_cat(c->a, r, jstr_lit(c->a, buf));
        } else if (conv == 'f' && (v.k == V_INT || v.k == V_BOOL || v.k == V_FLOAT)) {
            snprintf(buf, sizeof buf, "%f", v.k == V_FLOAT ? v.u.f : (double)v.u.i);
            r = jstr_cat(c->a, r, jstr_lit(c->a, buf));
        } else
            return ctx_fail(c, at, "format: unsupported conversion '%%%c' for %s", conv ? conv : '?', v_type_name(v));
        if (r->n > JINJA_MAX_OUTPUT) return ctx_fail(c, at, "string too large");
    }
    if (k < nargs) return ctx_fail(c, at, "format: not all arguments converted during string formatting");
    *out = v_str(r);
    return 0;
}

/* markupsafe.escape: & < > " ' */
JStr *html_escape(Ctx *c, const JStr *s) {
    JStr *r = jstr_lit(c->a, "");
    size_t from = 0;
    for (size_t i = 0; i <= s->n; i++) {
        const char *rep = NULL;
        if (i < s->n) switch (s->s[i]) {
            case '&':
                rep = "&amp;";
                break;
            case '<':
                rep = "&lt;";
                break;
            case '>':
                rep = "&gt;";
                break;
            case '"':
                rep = "&#34;";
                break;
            case '\'':
                rep = "&#39;";
                break;
            }
        if (!rep && i < s->n) continue;
        r = jstr_cat(c->a, r, jstr_sub(c->a, s, from, i - from));
        if (rep) r = jstr_cat(c->a, r, jstr_retag(c->a, rep, strlen(rep), s->tag ? s->tag[i] : 0));
        from = i + 1;
    }
    return r;
}

static int f_escape(Ctx *c, Value x, Value *out) {
    /* an existing Markup is not escaped twice */
    *out = v_str(x.k == V_STR && x.markup ? x.u.s : html_escape(c, v_to_str(c->a, x)));
    out->markup = 1;
    return 0;
}

int filter_more(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw, Value *kwv,
                int nkw, Value *out) {
    if (!strcmp(name, "sort")) return f_sort(c, at, x, args, nargs, kw, kwv, nkw, out);
    if (!strcmp(name, "dictsort")) return f_dictsort(c, at, x, args, nargs, kw, kwv, nkw, out);
    if (!strcmp(name, "min") || !strcmp(name, "max"))
        return f_minmax(c, at, x, args, nargs, kw, kwv, nkw, name[1] == 'a', out);
    if (!strcmp(name, "sum")) return f_sum(c, at, x, args, nargs, kw, kwv, nkw, out);
    if (!strcmp(name, "round")) return f_round(c, at, x, args, nargs, kw, kwv, nkw, out);
    if (!strcmp(name, "format")) return f_format(c, at, x, args, nargs, out);
    if (!strcmp(name, "escape") || !strcmp(name, "e")) return f_escape(c, x, out);
    return -1;
}
