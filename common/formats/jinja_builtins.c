/* jinja_builtins.c — the filters, tests, str/dict methods and global functions chat
 * templates use, with jinja2 3.1 / Python 3 behaviour (jinja2/filters.py, tests.py,
 * sandbox.py; transformers' raise_exception, namespace, dict and tojson):
 *   filters  trim length count upper lower default(d) items join replace string
 *            capitalize title first last list selectattr rejectattr select reject
 *            map(attribute=) tojson abs int float safe reverse indent unique, and in
 *            jinja_filters_more.c sort dictsort min max sum round format escape/e
 *   tests    defined undefined none string number integer float mapping iterable
 *            sequence boolean true false callable eq/equalto/== ne/!= lt le gt ge in
 *            odd even divisibleby sameas lower upper
 *   methods  str: strip lstrip rstrip split rsplit startswith endswith upper lower
 *            title capitalize replace find count join format splitlines removeprefix
 *            removesuffix isdigit...
 *            dict: items keys values get; loop.cycle
 *   globals  range namespace dict raise_exception strftime_now (SOURCE_DATE_EPOCH
 *            pins the date, as in reproducible builds)
 * Case mapping (upper/lower/title/capitalize) is ASCII-only: non-ASCII letters are
 * left as they are (Python would map them). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_impl.h"

enum { F_RANGE = 1, F_NAMESPACE, F_DICT, F_RAISE, F_STRFTIME };

int builtin_global(const char *name, Value *out) {
    static const struct {
        const char *n;
        int id;
    } g[] = {{"range", F_RANGE},
             {"namespace", F_NAMESPACE},
             {"dict", F_DICT},
             {"raise_exception", F_RAISE},
             {"strftime_now", F_STRFTIME}};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++)
        if (!strcmp(name, g[i].n)) {
            *out = (Value){.k = V_FUNC};
            out->u.i = g[i].id;
            return 1;
        }
    return 0;
}

static Value kwarg(const char **kw, Value *kwv, int nkw, const char *name, Value *args, int nargs, int pos) {
    for (int i = 0; i < nkw; i++)
        if (!strcmp(kw[i], name)) return kwv[i];
    if (pos >= 0 && pos < nargs) return args[pos];
    return v_undef(NULL);
}

int builtin_call(Ctx *c, const Node *at, int id, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                 Value *out) {
    switch (id) {
    case F_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (nargs < 1 || nargs > 3) return ctx_fail(c, at, "range expected 1 to 3 arguments, got %d", nargs);
        for (int i = 0; i < nargs; i++) {
            if (args[i].k != V_INT && args[i].k != V_BOOL) return ctx_fail(c, at, "range() arguments must be integers");
            v[nargs == 1 ? 1 : i] = args[i].u.i;
        }
        if (!v[2]) return ctx_fail(c, at, "range() arg 3 must not be zero");
        __int128 span = v[2] > 0 ? (__int128)v[1] - v[0] : (__int128)v[0] - v[1],
                 st = v[2] > 0 ? v[2] : -(__int128)v[2];
        __int128 n = span > 0 ? (span + st - 1) / st : 0;
        if (n > 100000) /* jinja2's sandbox MAX_RANGE */
            return ctx_fail(c, at, "range too big (the sandbox allows 100000 items)");
        Value l = v_list(c->a);
        for (int64_t i = 0; i < (int64_t)n; i++) list_push(c->a, l.u.l, v_int(v[0] + i * v[2]));
        *out = l;
        return 0;
    }
    case F_NAMESPACE:
    case F_DICT: {
        Value d = v_dict(c->a);
        d.ns = id == F_NAMESPACE;
        for (int i = 0; i < nargs; i++) {
            if (args[i].k != V_DICT)
                return ctx_fail(c, at, "%s() takes a mapping", id == F_DICT ? "dict" : "namespace");
            for (int k = 0; k < args[i].u.d->n; k++) dict_set(c->a, d.u.d, args[i].u.d->keys[k], args[i].u.d->vals[k]);
        }
        for (int i = 0; i < nkw; i++) {
            if (d.ns && kw[i][0] == '_') return ctx_fail(c, at, "namespace attributes cannot start with '_'");
            dict_set(c->a, d.u.d, jstr_lit(c->a, kw[i]), kwv[i]);
        }
        *out = d;
        return 0;
    }
    case F_STRFTIME: { /* transformers: datetime.now().strftime(format) */
        if (nargs != 1 || args[0].k != V_STR || args[0].u.s->n > 200)
            return ctx_fail(c, at, "strftime_now takes one format string");
        const char *sde = getenv("SOURCE_DATE_EPOCH"); /* reproducible builds' convention */
        time_t now = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char fmt[208], buf[512];
        memcpy(fmt, args[0].u.s->s, args[0].u.s->n);
        fmt[args[0].u.s->n] = 0;
        size_t n = strftime(buf, sizeof buf, fmt, &tm);
        *out = v_str(jstr_new(c->a, buf, n, NULL));
        return 0;
    }
    case F_RAISE: {
        JStr *m = nargs ? v_to_str(c->a, args[0]) : jstr_lit(c->a, "");
        if (c->err) return c->err;
        c->err = err_set(c->e, EX_DATAERR, "chat_template raised an exception (line %d): %.*s", at->line,
                         (int)(m->n > 500 ? 500 : m->n), m->s);
        return c->err;
    }
    }
    return ctx_fail(c, at, "unknown function");
}

/* ---- string helpers ---- */
static uint32_t cp_at(const JStr *s, size_t i, size_t *len) {
    const unsigned char *p = (const unsigned char *)s->s + i;
    size_t n = s->n - i;
    if (p[0] < 0x80 || n < 2) return *len = 1, p[0];
    if (p[0] < 0xE0) return *len = 2, (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    if (p[0] < 0xF0 || n < 4) {
        if (n < 3) return *len = 1, p[0];
        return *len = 3, (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    }
    return *len = 4,
           (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
}
/* Python str.isspace */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
/* does code point c occur in chars (a UTF-8 set, NULL = whitespace) */
static int in_set(uint32_t c, const JStr *chars) {
    if (!chars) return py_space(c);
    for (size_t i = 0; i < chars->n;) {
        size_t l;
        if (cp_at(chars, i, &l) == c) return 1;
        i += l;
    }
    return 0;
}
static JStr *strip(Arena *a, const JStr *s, const JStr *chars, int left, int right) {
    size_t b = 0, e = s->n, l;
    if (left)
        while (b < e && in_set(cp_at(s, b, &l), chars)) b += l;
    if (right)
        while (e > b) {
            size_t k = e - 1;
            while (k > b && ((unsigned char)s->s[k] & 0xC0) == 0x80) k--;
            if (!in_set(cp_at(s, k, &l), chars)) break;
            e = k;
        }
    return jstr_sub(a, s, b, e - b);
}
static JStr *map_case(Arena *a, const JStr *s, int mode) { /* 0 lower 1 upper 2 title 3 capitalize */
    JStr *r = jstr_new(a, s->s, s->n, s->tag);
    char *d = (char *)r->s;
    int prev_letter = 0;
    for (size_t i = 0; i < r->n; i++) {
        char ch = d[i];
        int is_letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ((unsigned char)ch >= 0x80);
        int up = mode == 1 || (mode == 2 && !prev_letter) || (mode == 3 && i == 0);
        if (up && ch >= 'a' && ch <= 'z') d[i] = (char)(ch - 32);
        if (!up && ch >= 'A' && ch <= 'Z') d[i] = (char)(ch + 32);
        prev_letter = is_letter;
    }
    return r;
}
static int find(const JStr *h, const JStr *n, size_t from) { /* byte offset or -1 */
    if (n->n > h->n) return -1;
    for (size_t i = from; i + n->n <= h->n; i++)
        if (!memcmp(h->s + i, n->s, n->n)) return (int)i;
    return -1;
}
static JStr *replace(Ctx *c, const JStr *s, const JStr *old, const JStr *new, int64_t count) {
    JStr *r = jstr_lit(c->a, "");
    size_t pos = 0;
    int64_t done = 0;
    if (!old->n) { /* Python inserts `new` between every character */
        for (size_t i = 0; i <= s->n && (count < 0 || done < count);) {
            r = jstr_cat(c->a, r, new);
            done++;
            if (i == s->n) {
                pos = i;
                break;
            }
            size_t l;
            cp_at(s, i, &l);
            r = jstr_cat(c->a, r, jstr_sub(c->a, s, i, l));
            i += l;
            pos = i;
            if (r->n > JINJA_MAX_OUTPUT) break;
        }
        return jstr_cat(c->a, r, jstr_sub(c->a, s, pos, s->n - pos));
    }
    for (int k; (count < 0 || done < count) && (k = find(s, old, pos)) >= 0; done++) {
        r = jstr_cat(c->a, jstr_cat(c->a, r, jstr_sub(c->a, s, pos, (size_t)k - pos)), new);
        pos = (size_t)k + old->n;
        if (r->n > JINJA_MAX_OUTPUT) break;
    }
    return jstr_cat(c->a, r, jstr_sub(c->a, s, pos, s->n - pos));
}
static Value split(Ctx *c, const JStr *s, const JStr *sep, int64_t maxsplit) {
    Value l = v_list(c->a);
    size_t i = 0, len;
    int64_t done = 0;
    if (!sep) { /* runs of whitespace, no empty strings */
        for (;;) {
            while (i < s->n && py_space(cp_at(s, i, &len))) i += len;
            if (i >= s->n) break;
            size_t b = i;
            if (maxsplit >= 0 && done >= maxsplit) {
                size_t e = s->n;
                JStr *rest = jstr_sub(c->a, s, b, e - b);
                list_push(c->a, l.u.l, v_str(strip(c->a, rest, NULL, 0, 1)));
                break;
            }
            while (i < s->n && !py_space(cp_at(s, i, &len))) i += len;
            list_push(c->a, l.u.l, v_str(jstr_sub(c->a, s, b, i - b)));
            done++;
        }
        return l;
    }
    for (int k; (maxsplit < 0 || done < maxsplit) && (k = find(s, sep, i)) >= 0; done++) {
        list_push(c->a, l.u.l, v_str(jstr_sub(c->a, s, i, (size_t)k - i)));
        i = (size_t)k + sep->n;
    }
    list_push(c->a, l.u.l, v_str(jstr_sub(c->a, s, i, s->n - i)));
    return l;
}

static int want_str(Ctx *c, const Node *at, Value v, const char *what, JStr **out) {
    if (v.k != V_STR) return ctx_fail(c, at, "%s: expected a string, got %s", what, v_type_name(v));
    *out = v.u.s;
    return 0;
}

static int64_t length_of(Value x) {
    if (x.k == V_LIST && x.u.l->gen) return -1; /* generators have no len() */
    switch (x.k) {
    case V_STR:
        return (int64_t)utf8_count(x.u.s->s, x.u.s->n);
    case V_LIST:
        return x.u.l->n;
    case V_DICT:
        return x.u.d->n;
    default:
        return x.k == V_UNDEF ? 0 : -1;
    }
}

/* list of values of an iterable (for filters over sequences) */
static int as_list(Ctx *c, const Node *at, Value x, JList *out) {
    memset(out, 0, sizeof *out);
    if (x.k == V_LIST) {
        *out = *x.u.l;
        return 0;
    }
    if (x.k == V_DICT) {
        for (int i = 0; i < x.u.d->n; i++) list_push(c->a, out, v_str(x.u.d->keys[i]));
        return 0;
    }
    if (x.k == V_STR) {
        for (size_t i = 0, l; i < x.u.s->n; i += l) {
            cp_at(x.u.s, i, &l);
            list_push(c->a, out, v_str(jstr_sub(c->a, x.u.s, i, l)));
        }
        return 0;
    }
    if (x.k == V_UNDEF) return 0;
    return ctx_fail(c, at, "'%s' object is not iterable", v_type_name(x));
}

/* item.attr with dotted paths ("function.name"), jinja2's make_attrgetter */
static Value get_attr_path(Ctx *c, Value v, const JStr *path) {
    size_t b = 0;
    for (size_t i = 0; i <= path->n; i++) {
        if (i < path->n && path->s[i] != '.') continue;
        if (v.k != V_DICT) return v_undef(NULL);
        Value *x = dict_get(v.u.d, path->s + b, i - b);
        if (!x) return v_undef(NULL);
        v = *x;
        b = i + 1;
    }
    (void)c;
    return v;
}

static const char *const FILTERS[] = {
    "trim",     "length",     "count", "upper", "lower", "default", "d",          "items",      "join",   "replace",
    "string",   "capitalize", "title", "first", "last",  "list",    "selectattr", "rejectattr", "select", "reject",
    "map",      "tojson",     "abs",   "int",   "float", "safe",    "reverse",    "indent",     "unique", "sort",
    "dictsort", "min",        "max",   "sum",   "round", "format",  "escape",     "e",          NULL};
static const char *const TESTS[] = {"defined", "undefined", "none",        "string",  "number", "integer", "float",
                                    "mapping", "iterable",  "sequence",    "boolean", "true",   "false",   "callable",
                                    "eq",      "equalto",   "==",          "ne",      "!=",     "lt",      "<",
                                    "le",      "<=",        "gt",          ">",       "ge",     ">=",      "in",
                                    "odd",     "even",      "divisibleby", "sameas",  "lower",  "upper",   NULL};
int builtin_known(const char *name, int is_test) {
    for (const char *const *p = is_test ? TESTS : FILTERS; *p; p++)
        if (!strcmp(*p, name)) return 1;
    return 0;
}

int builtin_test(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, int *out) {
    Value a = nargs ? args[0] : v_undef(NULL);
    int r = 0;
    if (!strcmp(name, "defined"))
        r = x.k != V_UNDEF;
    else if (!strcmp(name, "undefined"))
        r = x.k == V_UNDEF;
    else if (!strcmp(name, "none"))
        r = x.k == V_NONE;
    else if (!strcmp(name, "string"))
        r = x.k == V_STR;
    else if (!strcmp(name, "number"))
        r = x.k == V_INT || x.k == V_FLOAT || x.k == V_BOOL;
    else if (!strcmp(name, "integer"))
        r = x.k == V_INT;
    else if (!strcmp(name, "float"))
        r = x.k == V_FLOAT;
    else if (!strcmp(name, "mapping"))
        r = x.k == V_DICT && !x.ns;
    else if (!strcmp(name, "iterable"))
        r = x.k == V_LIST || x.k == V_STR || (x.k == V_DICT && !x.ns) || x.k == V_UNDEF;
    else if (!strcmp(name, "sequence"))
        r = x.k == V_LIST || x.k == V_STR || (x.k == V_DICT && !x.ns);
    else if (!strcmp(name, "boolean"))
        r = x.k == V_BOOL;
    else if (!strcmp(name, "true"))
        r = x.k == V_BOOL && x.u.i;
    else if (!strcmp(name, "false"))
        r = x.k == V_BOOL && !x.u.i;
    else if (!strcmp(name, "callable"))
        r = x.k == V_MACRO || x.k == V_FUNC;
    else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "=="))
        r = v_equal(x, a);
    else if (!strcmp(name, "ne") || !strcmp(name, "!="))
        r = !v_equal(x, a);
    else if (!strcmp(name, "sameas"))
        r = v_equal(x, a) && (x.k == V_NONE || x.k == V_BOOL || x.k == V_UNDEF || (x.k == V_LIST && x.u.l == a.u.l) ||
                              (x.k == V_DICT && x.u.d == a.u.d));
    else if (!strcmp(name, "in")) {
        Node tmp = {.k = E_BIN, .op = OP_IN, .line = at->line};
        (void)tmp;
        if (a.k == V_STR && x.k == V_STR) {
            Value hay = a;
            r = 0;
            for (size_t i = 0; x.u.s->n <= hay.u.s->n && i + x.u.s->n <= hay.u.s->n && !r; i++)
                r = !memcmp(hay.u.s->s + i, x.u.s->s, x.u.s->n);
        } else if (a.k == V_LIST) {
            for (int i = 0; i < a.u.l->n && !r; i++) r = v_equal(a.u.l->v[i], x);
        } else if (a.k == V_DICT) {
            r = x.k == V_STR && dict_get(a.u.d, x.u.s->s, x.u.s->n);
        } else {
            return ctx_fail(c, at, "test 'in' needs a container");
        }
    } else if (!strcmp(name, "lt") || !strcmp(name, "<") || !strcmp(name, "le") || !strcmp(name, "<=") ||
               !strcmp(name, "gt") || !strcmp(name, ">") || !strcmp(name, "ge") || !strcmp(name, ">=")) {
        double fx, fa;
        if (!((x.k == V_INT || x.k == V_FLOAT) && (a.k == V_INT || a.k == V_FLOAT)))
            return ctx_fail(c, at, "test '%s' needs numbers", name);
        fx = x.k == V_INT ? (double)x.u.i : x.u.f;
        fa = a.k == V_INT ? (double)a.u.i : a.u.f;
        r = name[0] == 'l' || name[0] == '<' ? (name[1] == 'e' || name[1] == '=' ? fx <= fa : fx < fa)
                                             : (name[1] == 'e' || name[1] == '=' ? fx >= fa : fx > fa);
    } else if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (x.k != V_INT) return ctx_fail(c, at, "test '%s' needs an integer", name);
        int64_t m = name[0] == 'd' ? (a.k == V_INT ? a.u.i : 0) : 2;
        if (!m) return ctx_fail(c, at, "divisibleby needs a nonzero integer");
        r = name[0] == 'o' ? x.u.i % 2 != 0 : x.u.i % m == 0;
    } else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        JStr *s = v_to_str(c->a, x), *m = map_case(c->a, s, name[0] == 'u');
        r = !memcmp(s->s, m->s, s->n);
    } else {
        return ctx_fail(c, at, "unsupported Jinja test '%s'", name);
    }
    *out = r;
    return 0;
}

static int filter_select(Ctx *c, const Node *at, Value x, Value *args, int nargs, int by_attr, int keep, Value *out) {
    JList items = {0};
    /* jinja2 filters nothing out of a falsy value (none | selectattr(...) is empty) */
    if (v_truthy(x) && as_list(c, at, x, &items)) return c->err;
    Value l = v_list(c->a);
    l.u.l->gen = 1; /* a generator in jinja2 */
    int k0 = by_attr ? 1 : 0;
    if (by_attr && (nargs < 1 || args[0].k != V_STR))
        return ctx_fail(c, at, "selectattr/rejectattr need an attribute name");
    for (int i = 0; i < items.n; i++) {
        Value v = by_attr ? get_attr_path(c, items.v[i], args[0].u.s) : items.v[i];
        int r;
        if (nargs > k0) {
            if (args[k0].k != V_STR) return ctx_fail(c, at, "test name must be a string");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)args[k0].u.s->n, args[k0].u.s->s);
            if (builtin_test(c, at, name, v, args + k0 + 1, nargs - k0 - 1, &r)) return c->err;
        } else {
            r = v_truthy(v);
        }
        if (r == keep) list_push(c->a, l.u.l, items.v[i]);
    }
    *out = l;
    return 0;
}

/* filters on one value (strings, numbers, JSON); -1 when NAME is not one of them */
static int filter_value(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw,
                        Value *kwv, int nkw, Value *out) {
    Value a0 = nargs ? args[0] : v_undef(NULL);
    JStr *s;
    if (!strcmp(name, "trim")) {
        Value ch = kwarg(kw, kwv, nkw, "chars", args, nargs, 0);
        *out = v_str(strip(c->a, v_to_str(c->a, x), ch.k == V_STR ? ch.u.s : NULL, 1, 1));
    } else if (!strcmp(name, "default") || !strcmp(name, "d")) {
        Value boolean = kwarg(kw, kwv, nkw, "boolean", args, nargs, 1);
        Value dv = kwarg(kw, kwv, nkw, "default_value", args, nargs, 0);
        if (dv.k == V_UNDEF) dv = v_str(jstr_lit(c->a, ""));
        *out = x.k == V_UNDEF || (v_truthy(boolean) && !v_truthy(x)) ? dv : x;
    } else if (!strcmp(name, "replace")) {
        if (nargs < 2) return ctx_fail(c, at, "replace needs two arguments");
        Value cnt = kwarg(kw, kwv, nkw, "count", args, nargs, 2);
        *out = v_str(replace(c, v_to_str(c->a, x), v_to_str(c->a, args[0]), v_to_str(c->a, args[1]),
                             cnt.k == V_INT ? cnt.u.i : -1));
    } else if (!strcmp(name, "string") || !strcmp(name, "safe")) {
        *out = v_str(v_to_str(c->a, x));
        out->markup = name[1] == 'a' || (x.k == V_STR && x.markup);
    } else if (!strcmp(name, "tojson")) {
        Value ind = kwarg(kw, kwv, nkw, "indent", args, nargs, 0);
        const char *why = NULL;
        for (int i = 0; i < nkw; i++)
            if (strcmp(kw[i], "indent") && strcmp(kw[i], "ensure_ascii") && strcmp(kw[i], "sort_keys") &&
                strcmp(kw[i], "separators"))
                return ctx_fail(c, at, "tojson: unsupported argument '%s'", kw[i]);
        if (v_truthy(kwarg(kw, kwv, nkw, "ensure_ascii", NULL, 0, -1)) ||
            v_truthy(kwarg(kw, kwv, nkw, "sort_keys", NULL, 0, -1)) ||
            kwarg(kw, kwv, nkw, "separators", NULL, 0, -1).k != V_UNDEF)
            return ctx_fail(c, at, "tojson: only indent= is supported");
        JStr *r = v_to_json(c->a, x, ind.k == V_INT ? (int)(ind.u.i > 64 ? 64 : ind.u.i < 0 ? 0 : ind.u.i) : -1, &why);
        if (!r) return ctx_fail(c, at, "tojson: %s", why);
        *out = v_str(r);
    } else if (!strcmp(name, "abs")) {
        if (x.k == V_INT && x.u.i == INT64_MIN) return ctx_fail(c, at, "integer overflow");
        if (x.k == V_INT)
            *out = v_int(x.u.i < 0 ? -x.u.i : x.u.i);
        else if (x.k == V_FLOAT)
            *out = v_float(fabs(x.u.f));
        else
            return ctx_fail(c, at, "abs: bad operand %s", v_type_name(x));
    } else if (!strcmp(name, "int") || !strcmp(name, "float")) {
        double f = 0;
        if (x.k == V_INT || x.k == V_BOOL)
            f = (double)x.u.i;
        else if (x.k == V_FLOAT)
            f = x.u.f;
        else if (x.k == V_STR) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.*s", (int)(x.u.s->n > 60 ? 60 : x.u.s->n), x.u.s->s);
            char *end;
            f = strtod(buf, &end);
            if (end == buf) f = a0.k == V_INT ? (double)a0.u.i : a0.k == V_FLOAT ? a0.u.f : 0;
        }
        if (name[0] == 'i' && !(f > -9.2e18 && f < 9.2e18)) return ctx_fail(c, at, "int: %g out of range", f);
        *out = name[0] == 'i' ? v_int((int64_t)f) : v_float(f);
    } else if (!strcmp(name, "indent")) {
        Value w = kwarg(kw, kwv, nkw, "width", args, nargs, 0), first = kwarg(kw, kwv, nkw, "first", args, nargs, 1),
              blank = kwarg(kw, kwv, nkw, "blank", args, nargs, 2);
        JStr *pad = w.k == V_STR ? w.u.s : NULL;
        if (!pad) {
            int64_t n = w.k == V_INT ? w.u.i : 4;
            char sp[65];
            if (n < 0) n = 0;
            if (n > 64) n = 64;
            memset(sp, ' ', (size_t)n);
            pad = jstr_new(c->a, sp, (size_t)n, NULL);
        }
        s = v_to_str(c->a, x);
        JStr *r = v_truthy(first) ? pad : jstr_lit(c->a, "");
        for (size_t i = 0; i < s->n; i++) {
            r = jstr_cat(c->a, r, jstr_sub(c->a, s, i, 1));
            if (s->s[i] == '\n' && i + 1 < s->n && (v_truthy(blank) || s->s[i + 1] != '\n')) r = jstr_cat(c->a, r, pad);
            if (r->n > JINJA_MAX_OUTPUT) return ctx_fail(c, at, "string too large");
        }
        *out = v_str(r);
    } else {
        return -1;
    }
    return 0;
}

/* filters on sequences and mappings; -1 when NAME is not one of them */
static int filter_sequence(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw,
                           Value *kwv, int nkw, Value *out) {
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        int64_t n = length_of(x);
        if (n < 0) return ctx_fail(c, at, "object of type '%s' has no len()", v_type_name(x));
        *out = v_int(n);
    } else if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
               !strcmp(name, "title")) {
        int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 't' ? 2 : 3;
        *out = v_str(map_case(c->a, v_to_str(c->a, x), mode));
    } else if (!strcmp(name, "items")) {
        if (x.k == V_UNDEF) {
            *out = v_list(c->a);
            return 0;
        }
        if (x.k != V_DICT) return ctx_fail(c, at, "items filter: expected a mapping, got %s", v_type_name(x));
        Value l = v_list(c->a);
        for (int i = 0; i < x.u.d->n; i++) {
            Value p = v_list(c->a);
            p.u.l->tuple = 1;
            list_push(c->a, p.u.l, v_str(x.u.d->keys[i]));
            list_push(c->a, p.u.l, x.u.d->vals[i]);
            list_push(c->a, l.u.l, p);
        }
        *out = l;
    } else if (!strcmp(name, "join")) {
        JList items;
        Value sep = kwarg(kw, kwv, nkw, "d", args, nargs, 0), attr = kwarg(kw, kwv, nkw, "attribute", args, nargs, 1);
        if (as_list(c, at, x, &items)) return c->err;
        JStr *r = jstr_lit(c->a, ""), *sp = sep.k == V_UNDEF ? jstr_lit(c->a, "") : v_to_str(c->a, sep);
        for (int i = 0; i < items.n; i++) {
            Value v = attr.k == V_STR ? get_attr_path(c, items.v[i], attr.u.s) : items.v[i];
            if (i) r = jstr_cat(c->a, r, sp);
            r = jstr_cat(c->a, r, v_to_str(c->a, v));
            if (r->n > JINJA_MAX_OUTPUT) return ctx_fail(c, at, "string too large");
        }
        *out = v_str(r);
    } else if (!strcmp(name, "first") || !strcmp(name, "last")) {
        JList items;
        if (as_list(c, at, x, &items)) return c->err;
        *out = items.n ? items.v[name[0] == 'f' ? 0 : items.n - 1] : v_undef(NULL);
    } else if (!strcmp(name, "list")) {
        JList items;
        if (as_list(c, at, x, &items)) return c->err;
        Value l = v_list(c->a);
        for (int i = 0; i < items.n; i++) list_push(c->a, l.u.l, items.v[i]);
        *out = l;
    } else if (!strcmp(name, "reverse")) {
        if (x.k == V_STR) {
            JStr *r = jstr_lit(c->a, "");
            for (size_t i = 0, l; i < x.u.s->n; i += l) {
                cp_at(x.u.s, i, &l);
                r = jstr_cat(c->a, jstr_sub(c->a, x.u.s, i, l), r);
            }
            *out = v_str(r);
            return 0;
        }
        JList items;
        if (as_list(c, at, x, &items)) return c->err;
        Value l = v_list(c->a);
        for (int i = items.n - 1; i >= 0; i--) list_push(c->a, l.u.l, items.v[i]);
        *out = l;
    } else if (!strcmp(name, "unique")) {
        JList items;
        if (as_list(c, at, x, &items)) return c->err;
        Value l = v_list(c->a);
        for (int i = 0; i < items.n; i++) {
            int seen = 0;
            for (int k = 0; k < l.u.l->n && !seen; k++) seen = v_equal(l.u.l->v[k], items.v[i]);
            if (!seen) list_push(c->a, l.u.l, items.v[i]);
        }
        *out = l;
    } else if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr")) {
        return filter_select(c, at, x, args, nargs, 1, name[0] == 's', out);
    } else if (!strcmp(name, "select") || !strcmp(name, "reject")) {
        return filter_select(c, at, x, args, nargs, 0, name[0] == 's', out);
    } else if (!strcmp(name, "map")) {
        JList items = {0};
        Value attr = kwarg(kw, kwv, nkw, "attribute", NULL, 0, -1);
        if (v_truthy(x) && as_list(c, at, x, &items)) return c->err;
        Value l = v_list(c->a);
        l.u.l->gen = 1;
        for (int i = 0; i < items.n; i++) {
            Value v;
            if (attr.k == V_STR) {
                v = get_attr_path(c, items.v[i], attr.u.s);
                if (v.k == V_UNDEF) v = kwarg(kw, kwv, nkw, "default", NULL, 0, -1);
            } else if (nargs >= 1 && args[0].k == V_STR) {
                char fname[64];
                snprintf(fname, sizeof fname, "%.*s", (int)args[0].u.s->n, args[0].u.s->s);
                if (!builtin_known(fname, 0)) return ctx_fail(c, at, "unsupported Jinja filter '%s'", fname);
                if (builtin_filter(c, at, fname, items.v[i], args + 1, nargs - 1, NULL, NULL, 0, &v)) return c->err;
            } else {
                return ctx_fail(c, at, "map needs a filter name or attribute=");
            }
            list_push(c->a, l.u.l, v);
        }
        *out = l;
    } else {
        return -1;
    }
    return 0;
}

int builtin_filter(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw,
                   Value *kwv, int nkw, Value *out) {
    int rc = filter_value(c, at, name, x, args, nargs, kw, kwv, nkw, out);
    if (rc == -1) rc = filter_sequence(c, at, name, x, args, nargs, kw, kwv, nkw, out);
    if (rc == -1) rc = filter_more(c, at, name, x, args, nargs, kw, kwv, nkw, out);
    return rc == -1 ? ctx_fail(c, at, "unsupported Jinja filter '%s'", name) : rc;
}

/* str.format with {} / {0} / {name} fields only (no format specs). */
static int str_format(Ctx *c, const Node *at, const JStr *f, Value *args, int nargs, const char **kw, Value *kwv,
                      int nkw, Value *out) {
    JStr *r = jstr_lit(c->a, "");
    int auto_i = 0;
    for (size_t i = 0; i < f->n; i++) {
        char ch = f->s[i];
        if ((ch == '{' || ch == '}') && i + 1 < f->n && f->s[i + 1] == ch) {
            r = jstr_cat(c->a, r, jstr_sub(c->a, f, i, 1));
            i++;
            continue;
        }
        if (ch != '{') {
            r = jstr_cat(c->a, r, jstr_sub(c->a, f, i, 1));
            continue;
        }
        size_t j = i + 1;
        while (j < f->n && f->s[j] != '}') j++;
        if (j >= f->n) return ctx_fail(c, at, "str.format: unterminated '{'");
        Value v = v_undef(NULL);
        if (j == i + 1)
            v = auto_i < nargs ? args[auto_i++] : v_undef(NULL);
        else if (f->s[i + 1] >= '0' && f->s[i + 1] <= '9') {
            int k = atoi(f->s + i + 1);
            if (k < nargs) v = args[k];
        } else {
            for (int k = 0; k < nkw; k++)
                if (strlen(kw[k]) == j - i - 1 && !memcmp(kw[k], f->s + i + 1, j - i - 1)) v = kwv[k];
        }
        if (v.k == V_UNDEF) return ctx_fail(c, at, "str.format: missing or unsupported field");
        r = jstr_cat(c->a, r, v_to_str(c->a, v));
        i = j;
    }
    *out = v_str(r);
    return 0;
}

int builtin_method(Ctx *c, const Node *at, Value obj, const char *name, Value *args, int nargs, const char **kw,
                   Value *kwv, int nkw, Value *out) {
    if (obj.k == V_STR) {
        const JStr *s = obj.u.s;
        Value a0 = nargs ? args[0] : v_undef(NULL);
        JStr *x = NULL;
        if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
            *out = v_str(strip(c->a, s, a0.k == V_STR ? a0.u.s : NULL, name[0] != 'r', name[0] != 'l'));
        } else if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
            Value sep = kwarg(kw, kwv, nkw, "sep", args, nargs, 0),
                  mx = kwarg(kw, kwv, nkw, "maxsplit", args, nargs, 1);
            if (sep.k == V_STR && !sep.u.s->n) return ctx_fail(c, at, "empty separator");
            if (name[0] == 'r' && mx.k == V_INT && mx.u.i >= 0)
                return ctx_fail(c, at, "rsplit with maxsplit is not supported");
            *out = split(c, s, sep.k == V_STR ? sep.u.s : NULL, mx.k == V_INT ? mx.u.i : -1);
        } else if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            int r = 0;
            int n = a0.k == V_LIST ? a0.u.l->n : 1;
            for (int i = 0; i < n && !r; i++) {
                Value p = a0.k == V_LIST ? a0.u.l->v[i] : a0;
                if (want_str(c, at, p, name, &x)) return c->err;
                r = x->n <= s->n && !memcmp(name[0] == 's' ? s->s : s->s + s->n - x->n, x->s, x->n);
            }
            *out = v_bool(r);
        } else if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
                   !strcmp(name, "capitalize")) {
            int mode = name[0] == 'l' ? 0 : name[0] == 'u' ? 1 : name[0] == 't' ? 2 : 3;
            *out = v_str(map_case(c->a, s, mode));
        } else if (!strcmp(name, "replace")) {
            if (nargs < 2 || args[0].k != V_STR || args[1].k != V_STR)
                return ctx_fail(c, at, "replace needs two strings");
            *out = v_str(replace(c, s, args[0].u.s, args[1].u.s, nargs > 2 && args[2].k == V_INT ? args[2].u.i : -1));
        } else if (!strcmp(name, "find") || !strcmp(name, "count") || !strcmp(name, "index")) {
            if (want_str(c, at, a0, name, &x)) return c->err;
            if (name[0] == 'c') {
                int64_t n = 0;
                if (!x->n)
                    n = (int64_t)utf8_count(s->s, s->n) + 1;
                else
                    for (int k = find(s, x, 0); k >= 0; k = find(s, x, (size_t)k + x->n)) n++;
                *out = v_int(n);
            } else {
                int k = find(s, x, 0);
                if (k < 0 && name[0] == 'i') return ctx_fail(c, at, "substring not found");
                *out = v_int(k < 0 ? -1 : (int64_t)utf8_count(s->s, (size_t)k));
            }
        } else if (!strcmp(name, "join")) {
            JList items;
            if (as_list(c, at, a0, &items)) return c->err;
            JStr *r = jstr_lit(c->a, "");
            for (int i = 0; i < items.n; i++) {
                if (want_str(c, at, items.v[i], "join", &x)) return c->err;
                if (i) r = jstr_cat(c->a, r, s);
                r = jstr_cat(c->a, r, x);
                if (r->n > JINJA_MAX_OUTPUT) return ctx_fail(c, at, "string too large");
            }
            *out = v_str(r);
        } else if (!strcmp(name, "format")) {
            return str_format(c, at, s, args, nargs, kw, kwv, nkw, out);
        } else if (!strcmp(name, "removeprefix") || !strcmp(name, "removesuffix")) {
            if (want_str(c, at, a0, name, &x)) return c->err;
            int pre = name[6] == 'p';
            int has = x->n <= s->n && !memcmp(pre ? s->s : s->s + s->n - x->n, x->s, x->n);
            *out = v_str(has ? jstr_sub(c->a, s, pre ? x->n : 0, s->n - x->n) : (JStr *)s);
        } else if (!strcmp(name, "splitlines")) {
            Value l = v_list(c->a);
            size_t b = 0;
            for (size_t i = 0; i < s->n; i++)
                if (s->s[i] == '\n' || s->s[i] == '\r') {
                    list_push(c->a, l.u.l, v_str(jstr_sub(c->a, s, b, i - b)));
                    if (s->s[i] == '\r' && i + 1 < s->n && s->s[i + 1] == '\n') i++;
                    b = i + 1;
                }
            if (b < s->n) list_push(c->a, l.u.l, v_str(jstr_sub(c->a, s, b, s->n - b)));
            *out = l;
        } else if (!strcmp(name, "isdigit") || !strcmp(name, "isspace") || !strcmp(name, "isalpha") ||
                   !strcmp(name, "isalnum")) {
            int r = s->n > 0;
            for (size_t i = 0; i < s->n && r; i++) {
                unsigned char ch = (unsigned char)s->s[i];
                int dg = ch >= '0' && ch <= '9', al = (ch | 32) >= 'a' && (ch | 32) <= 'z';
                r = name[2] == 'd' ? dg : name[2] == 's' ? py_space(ch) : name[4] == 'h' ? al : (al || dg);
            }
            *out = v_bool(r);
        } else {
            return ctx_fail(c, at, "unsupported str method '%s'", name);
        }
        return 0;
    }
    if (obj.k == V_DICT && !obj.ns) {
        JDict *d = obj.u.d;
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            Value l = v_list(c->a);
            for (int i = 0; i < d->n; i++) {
                if (name[0] == 'k')
                    list_push(c->a, l.u.l, v_str(d->keys[i]));
                else if (name[0] == 'v')
                    list_push(c->a, l.u.l, d->vals[i]);
                else {
                    Value p = v_list(c->a);
                    p.u.l->tuple = 1;
                    list_push(c->a, p.u.l, v_str(d->keys[i]));
                    list_push(c->a, p.u.l, d->vals[i]);
                    list_push(c->a, l.u.l, p);
                }
            }
            *out = l;
            return 0;
        }
        Value *i0 = dict_get(d, "index0", 6);
        if (!strcmp(name, "cycle") && i0 && i0->k == V_INT && dict_get(d, "revindex0", 9)) { /* loop.cycle */
            if (!nargs) return ctx_fail(c, at, "loop.cycle needs at least one value");
            *out = args[i0->u.i % nargs];
            return 0;
        }
        if (!strcmp(name, "get")) {
            Value *v = nargs && args[0].k == V_STR ? dict_get(d, args[0].u.s->s, args[0].u.s->n) : NULL;
            *out = v ? *v : nargs > 1 ? args[1] : v_none();
            return 0;
        }
    }
    if (obj.k == V_LIST && (!strcmp(name, "append") || !strcmp(name, "pop") || !strcmp(name, "extend") ||
                            !strcmp(name, "insert") || !strcmp(name, "remove") || !strcmp(name, "clear")))
        return ctx_fail(c, at, "unsafe: the sandbox forbids modifying a list (%s)", name);
    return ctx_fail(c, at, "unsupported method '%s' on %s", name, v_type_name(obj));
}
