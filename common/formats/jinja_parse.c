/* jinja_parse.c — tokens -> tree, following jinja2's parser (jinja2/parser.py):
 *   expr    := or ['if' or ['else' expr]]            (conditional expression)
 *   or      := and ('or' and)*      and := not ('and' not)*      not := 'not' not | cmp
 *   cmp     := add (('=='|'!='|'<'|'>'|'<='|'>='|'in'|'not' 'in') add)*
 *   add     := cat (('+'|'-') cat)*  cat := mul ('~' mul)*
 *   mul     := pow (('*'|'/'|'//'|'%') pow)*         pow := unary ('**' unary)*
 *   unary   := ('-'|'+') unary | primary postfix*, then filters '|f(args)' and tests
 *              'is [not] t(args)' (a filter binds to the whole unary: -x|abs = abs(-x))
 *   primary := name | string+ | number | '(' expr [',' ...] ')' | '[' ... ']' | '{' k: v '}'
 * Statements: if/elif/else, for (tuple targets, inline if, else), set (names, tuples,
 * ns.attr, block set), macro, break, continue, filter blocks, generation.  Anything else is an
 * error naming the tag. */
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

typedef struct Ps {
    Arena *a;
    JTok *t;
    int n, i, depth;
    Error *e;
} Ps;

static JTok *cur(Ps *p) {
    return &p->t[p->i];
}
static int is_op(Ps *p, const char *op) {
    JTok *t = cur(p);
    return t->k == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}
static int is_name(Ps *p, const char *nm) {
    JTok *t = cur(p);
    return t->k == T_NAME && t->n == strlen(nm) && !memcmp(t->s, nm, t->n);
}
static int describe(JTok *t, char *buf, size_t cap) {
    static const char *names[] = {"end of template", "text",    "'{{'",   "'}}'",    "'{%'", "'%}'", "name",
                                  "string",          "integer", "number", "operator"};
    if (t->k == T_NAME || t->k == T_OP) return snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s);
    return snprintf(buf, cap, "%s", names[t->k]);
}
static int fail(Ps *p, const char *what) {
    char got[64];
    describe(cur(p), got, sizeof got);
    return err_set(p->e, EX_DATAERR, "chat_template line %d: %s (got %s)", cur(p)->line, what, got);
}
static int expect_op(Ps *p, const char *op) {
    if (!is_op(p, op)) {
        char w[48];
        snprintf(w, sizeof w, "expected '%s'", op);
        return fail(p, w);
    }
    p->i++;
    return 0;
}
static const char *take_name(Ps *p) {
    JTok *t = cur(p);
    if (t->k != T_NAME) return NULL;
    char *s = arena_alloc(p->a, t->n + 1);
    memcpy(s, t->s, t->n);
    p->i++;
    return s;
}
static Node *node(Ps *p, NodeKind k) {
    Node *n = arena_alloc(p->a, sizeof *n);
    n->k = k;
    n->line = cur(p)->line;
    return n;
}
/* growable node arrays built in the arena (old copies are simply abandoned) */
static void add_kid(Ps *p, Node ***arr, int *n, Node *x) {
    if ((*n & (*n - 1)) == 0) { /* n is 0 or a power of two: grow */
        Node **na = arena_alloc(p->a, (size_t)(*n ? 2 * *n : 1) * sizeof *na);
        if (*n) memcpy(na, *arr, (size_t)*n * sizeof *na);
        *arr = na;
    }
    (*arr)[(*n)++] = x;
}
static void add_kw(Ps *p, const char ***arr, int n, const char *x) { /* n = count before adding */
    if ((n & (n - 1)) == 0) {
        const char **na = arena_alloc(p->a, (size_t)(n ? 2 * n : 1) * sizeof *na);
        if (n) memcpy(na, *arr, (size_t)n * sizeof *na);
        *arr = na;
    }
    (*arr)[n] = x;
}

static int parse_expr(Ps *p, Node **out);
static int parse_or(Ps *p, Node **out);
static int parse_unary(Ps *p, Node **out, int with_filter);

static int enter(Ps *p) {
    if (++p->depth > JINJA_MAX_DEPTH)
        return err_set(p->e, EX_DATAERR, "chat_template line %d: expressions or blocks nested deeper than %d",
                       cur(p)->line, JINJA_MAX_DEPTH);
    return 0;
}

/* (args, kw=val) after '(' has been consumed; fills n->kids / kw / kids2. */
static int parse_args(Ps *p, Node *n) {
    while (!is_op(p, ")")) {
        if (n->n_kids + n->n_kids2 && expect_op(p, ",")) return p->e->code;
        if (is_op(p, ")")) break;
        if (cur(p)->k == T_NAME && p->t[p->i + 1].k == T_OP && p->t[p->i + 1].n == 1 && p->t[p->i + 1].s[0] == '=') {
            const char *k = take_name(p);
            p->i++;
            Node *v;
            if (parse_expr(p, &v)) return p->e->code;
            add_kw(p, &n->kw, n->n_kids2, k);
            add_kid(p, &n->kids2, &n->n_kids2, v);
        } else {
            if (n->n_kids2) return fail(p, "positional argument after a keyword argument");
            Node *v;
            if (parse_expr(p, &v)) return p->e->code;
            add_kid(p, &n->kids, &n->n_kids, v);
        }
    }
    p->i++;
    return 0;
}

static int parse_primary(Ps *p, Node **out) {
    JTok *t = cur(p);
    Node *n;
    if (enter(p)) return p->e->code;
    if (t->k == T_NAME) {
        const char *s = take_name(p);
        n = node(p, E_CONST);
        if (!strcmp(s, "true") || !strcmp(s, "True"))
            n->cst = v_bool(1);
        else if (!strcmp(s, "false") || !strcmp(s, "False"))
            n->cst = v_bool(0);
        else if (!strcmp(s, "none") || !strcmp(s, "None"))
            n->cst = v_none();
        else
            n->k = E_NAME, n->name = s;
    } else if (t->k == T_STRING) {
        JStr *s = jstr_new(p->a, t->s, t->n, NULL);
        p->i++;
        while (cur(p)->k == T_STRING) { /* adjacent literals concatenate */
            s = jstr_cat(p->a, s, jstr_new(p->a, cur(p)->s, cur(p)->n, NULL));
            p->i++;
        }
        n = node(p, E_CONST);
        n->cst = v_str(s);
    } else if (t->k == T_INT || t->k == T_FLOAT) {
        n = node(p, E_CONST);
        n->cst = t->k == T_INT ? v_int(t->i) : v_float(t->f);
        p->i++;
    } else if (is_op(p, "(")) {
        p->i++;
        if (is_op(p, ")")) { /* empty tuple */
            p->i++;
            n = node(p, E_LIST);
            n->op = 1;
        } else {
            if (parse_expr(p, &n)) return p->e->code;
            if (is_op(p, ",")) { /* tuple */
                Node *l = node(p, E_LIST);
                l->op = 1;
                add_kid(p, &l->kids, &l->n_kids, n);
                while (is_op(p, ",")) {
                    p->i++;
                    if (is_op(p, ")")) break;
                    Node *x;
                    if (parse_expr(p, &x)) return p->e->code;
                    add_kid(p, &l->kids, &l->n_kids, x);
                }
                n = l;
            }
            if (expect_op(p, ")")) return p->e->code;
        }
    } else if (is_op(p, "[")) {
        p->i++;
        n = node(p, E_LIST);
        while (!is_op(p, "]")) {
            if (n->n_kids && expect_op(p, ",")) return p->e->code;
            if (is_op(p, "]")) break;
            Node *x;
            if (parse_expr(p, &x)) return p->e->code;
            add_kid(p, &n->kids, &n->n_kids, x);
        }
        p->i++;
    } else if (is_op(p, "{")) {
        p->i++;
        n = node(p, E_DICT);
        while (!is_op(p, "}")) {
            if (n->n_kids && expect_op(p, ",")) return p->e->code;
            if (is_op(p, "}")) break;
            Node *k, *v;
            if (parse_expr(p, &k) || expect_op(p, ":") || parse_expr(p, &v)) return p->e->code;
            add_kid(p, &n->kids, &n->n_kids, k);
            add_kid(p, &n->kids2, &n->n_kids2, v);
        }
        p->i++;
    } else {
        return fail(p, "expected an expression");
    }
    p->depth--;
    *out = n;
    return 0;
}

/* a[b], a[b:c:d], a.b, a(...) */
static int parse_postfix(Ps *p, Node **io) {
    for (;;) {
        if (is_op(p, ".")) {
            p->i++;
            Node *n = node(p, E_ATTR);
            n->a = *io;
            if (cur(p)->k == T_INT) { /* a.0 is a[0] */
                n->k = E_ITEM;
                n->b = node(p, E_CONST);
                n->b->cst = v_int(cur(p)->i);
                p->i++;
            } else if (!(n->name = take_name(p))) {
                return fail(p, "expected an attribute name after '.'");
            }
            *io = n;
        } else if (is_op(p, "[")) {
            p->i++;
            Node *parts[3] = {0};
            int k = 0, is_slice = 0;
            for (;;) {
                if (!is_op(p, ":") && !is_op(p, "]") && parse_expr(p, &parts[k])) return p->e->code;
                if (is_op(p, ":") && k < 2) {
                    is_slice = 1;
                    k++;
                    p->i++;
                    continue;
                }
                break;
            }
            if (expect_op(p, "]")) return p->e->code;
            Node *n = node(p, is_slice ? E_SLICE : E_ITEM);
            n->a = *io;
            if (is_slice)
                n->b = parts[0], n->c = parts[1], n->d = parts[2];
            else if (!(n->b = parts[0]))
                return fail(p, "empty subscript");
            *io = n;
        } else if (is_op(p, "(")) {
            p->i++;
            Node *n = node(p, E_CALL);
            n->a = *io;
            if (parse_args(p, n)) return p->e->code;
            *io = n;
        } else {
            return 0;
        }
    }
}

static int parse_filters_tests(Ps *p, Node **io) {
    for (;;) {
        if (is_op(p, "|")) {
            p->i++;
            Node *n = node(p, E_FILTER);
            n->a = *io;
            int line = cur(p)->line;
            if (!(n->name = take_name(p))) return fail(p, "expected a filter name after '|'");
            if (!builtin_known(n->name, 0))
                return err_set(p->e, EX_DATAERR, "chat_template line %d: unsupported Jinja filter '%s'", line, n->name);
            if (is_op(p, "(")) {
                p->i++;
                if (parse_args(p, n)) return p->e->code;
            }
            *io = n;
        } else if (is_name(p, "is")) {
            p->i++;
            Node *n = node(p, E_TEST);
            n->a = *io;
            if (is_name(p, "not")) n->op = 1, p->i++;
            if (!(n->name = take_name(p))) {
                /* `is none` etc. are names; `is true` too */
                return fail(p, "expected a test name after 'is'");
            }
            if (!builtin_known(n->name, 1))
                return err_set(p->e, EX_DATAERR, "chat_template line %d: unsupported Jinja test '%s'", n->line,
                               n->name);
            if (is_op(p, "(")) {
                p->i++;
                if (parse_args(p, n)) return p->e->code;
            } else {
                JTok *t = cur(p);
                int arg = t->k == T_STRING || t->k == T_INT || t->k == T_FLOAT || is_op(p, "[") || is_op(p, "{") ||
                          is_op(p, "(") ||
                          (t->k == T_NAME && !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and") &&
                           !is_name(p, "if") && !is_name(p, "is") && !is_name(p, "in") && !is_name(p, "not"));
                if (arg) { /* `is sameas x`, `is equalto 'user'`: one argument without parentheses */
                    Node *x;
                    if (parse_primary(p, &x) || parse_postfix(p, &x)) return p->e->code;
                    add_kid(p, &n->kids, &n->n_kids, x);
                }
            }
            *io = n;
        } else if (is_op(p, "(")) {
            p->i++;
            Node *n = node(p, E_CALL);
            n->a = *io;
            if (parse_args(p, n)) return p->e->code;
            *io = n;
        } else {
            return 0;
        }
    }
}

static int parse_unary(Ps *p, Node **out, int with_filter) {
    if (enter(p)) return p->e->code;
    Node *n;
    if (is_op(p, "-") || is_op(p, "+")) {
        n = node(p, is_op(p, "-") ? E_NEG : E_POS);
        p->i++;
        if (parse_unary(p, &n->a, 0)) return p->e->code;
    } else {
        if (parse_primary(p, &n) || parse_postfix(p, &n)) return p->e->code;
    }
    if (with_filter && parse_filters_tests(p, &n)) return p->e->code;
    p->depth--;
    *out = n;
    return 0;
}

static Node *bin(Ps *p, int op, Node *a, Node *b) {
    Node *n = node(p, E_BIN);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

/* The arithmetic levels, loosest first, as jinja2's parser nests them (parse_math1
 * + -, parse_concat ~, parse_math2 * / // %, parse_pow **), each left-associative
 * over the next; below the last, a unary operand with its filters and tests. */
typedef struct BinOp {
    const char *tok;
    int op;
} BinOp;
static const BinOp ADD_OPS[] = {{"+", OP_ADD}, {"-", OP_SUB}, {NULL, 0}};
static const BinOp CAT_OPS[] = {{"~", OP_CAT}, {NULL, 0}};
static const BinOp MUL_OPS[] = {{"*", OP_MUL}, {"/", OP_DIV}, {"//", OP_FLOORDIV}, {"%", OP_MOD}, {NULL, 0}};
static const BinOp POW_OPS[] = {{"**", OP_POW}, {NULL, 0}};
static const BinOp *const ARITH_LEVELS[] = {ADD_OPS, CAT_OPS, MUL_OPS, POW_OPS};
enum { N_ARITH_LEVELS = sizeof ARITH_LEVELS / sizeof ARITH_LEVELS[0] };

static int parse_arith(Ps *p, Node **out, int level) {
    if (level == N_ARITH_LEVELS) return parse_unary(p, out, 1);
    if (parse_arith(p, out, level + 1)) return p->e->code;
    for (;;) {
        int op = 0;
        for (const BinOp *b = ARITH_LEVELS[level]; b->tok && !op; b++)
            if (is_op(p, b->tok)) op = b->op;
        if (!op) return 0;
        p->i++;
        Node *r = NULL;
        if (parse_arith(p, &r, level + 1)) return p->e->code;
        *out = bin(p, op, *out, r);
    }
}
static int parse_cmp(Ps *p, Node **out) {
    if (parse_arith(p, out, 0)) return p->e->code;
    for (;;) {
        int op = is_op(p, "==")     ? OP_EQ
                 : is_op(p, "!=")   ? OP_NE
                 : is_op(p, "<")    ? OP_LT
                 : is_op(p, ">")    ? OP_GT
                 : is_op(p, "<=")   ? OP_LE
                 : is_op(p, ">=")   ? OP_GE
                 : is_name(p, "in") ? OP_IN
                                    : 0;
        if (!op && is_name(p, "not") && p->t[p->i + 1].k == T_NAME && p->t[p->i + 1].n == 2 &&
            !memcmp(p->t[p->i + 1].s, "in", 2)) {
            op = OP_NOTIN;
            p->i++;
        }
        if (!op) return 0;
        p->i++;
        Node *r = NULL;
        if (parse_arith(p, &r, 0)) return p->e->code;
        *out = bin(p, op, *out, r);
    }
}
static int parse_not(Ps *p, Node **out) {
    if (is_name(p, "not")) {
        if (enter(p)) return p->e->code;
        Node *n = node(p, E_NOT);
        p->i++;
        if (parse_not(p, &n->a)) return p->e->code;
        p->depth--;
        *out = n;
        return 0;
    }
    return parse_cmp(p, out);
}
/* KEYWORD ("and", "or") between operands of SUB, left-associative, into KIND nodes. */
static int parse_bool_chain(Ps *p, Node **out, const char *keyword, NodeKind kind, int (*sub)(Ps *, Node **)) {
    if (sub(p, out)) return p->e->code;
    while (is_name(p, keyword)) {
        p->i++;
        Node *n = node(p, kind);
        n->a = *out;
        if (sub(p, &n->b)) return p->e->code;
        *out = n;
    }
    return 0;
}
static int parse_and(Ps *p, Node **out) {
    return parse_bool_chain(p, out, "and", E_AND, parse_not);
}
static int parse_or(Ps *p, Node **out) {
    return parse_bool_chain(p, out, "or", E_OR, parse_and);
}
static int parse_expr(Ps *p, Node **out) {
    if (enter(p)) return p->e->code;
    if (parse_or(p, out)) return p->e->code;
    while (is_name(p, "if")) {
        p->i++;
        Node *n = node(p, E_COND);
        n->b = *out; /* value when true */
        if (parse_or(p, &n->a)) return p->e->code;
        if (is_name(p, "else")) {
            p->i++;
            if (parse_expr(p, &n->c)) return p->e->code;
        }
        *out = n;
    }
    p->depth--;
    return 0;
}

/* ---- statements ---- */
static int parse_body(Ps *p, Node *body, const char *const *ends, const char **which);

static int block_end(Ps *p) {
    if (cur(p)->k != T_BLOCK_END) return fail(p, "expected '%}'");
    p->i++;
    return 0;
}

/* targets: name or name, name ... (for and set) */
static int parse_targets(Ps *p, Node *n) {
    do {
        if (n->n_kids) p->i++;
        Node *t = node(p, E_NAME);
        if (!(t->name = take_name(p))) return fail(p, "expected a variable name");
        add_kid(p, &n->kids, &n->n_kids, t);
    } while (is_op(p, ","));
    return 0;
}

static int parse_if(Ps *p, Node *n) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    const char *which;
    if (parse_expr(p, &n->a) || block_end(p)) return p->e->code;
    n->b = node(p, N_BODY);
    if (parse_body(p, n->b, ends, &which)) return p->e->code;
    if (!strcmp(which, "elif")) {
        n->c = node(p, N_IF);
        return parse_if(p, n->c);
    }
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endif", NULL};
        if (block_end(p)) return p->e->code;
        n->c = node(p, N_BODY);
        if (parse_body(p, n->c, ends2, &which)) return p->e->code;
    }
    return block_end(p);
}

static int parse_for(Ps *p, Node *n) {
    static const char *const ends[] = {"else", "endfor", NULL};
    const char *which;
    if (parse_targets(p, n)) return p->e->code;
    if (!is_name(p, "in")) return fail(p, "expected 'in' in a for loop");
    p->i++;
    /* the iterable is parsed without the conditional expression so `if` filters items */
    if (parse_or(p, &n->a)) return p->e->code;
    if (is_name(p, "if")) {
        p->i++;
        if (parse_expr(p, &n->b)) return p->e->code;
    }
    if (is_name(p, "recursive")) return fail(p, "unsupported: recursive for loops");
    if (block_end(p)) return p->e->code;
    n->c = node(p, N_BODY);
    if (parse_body(p, n->c, ends, &which)) return p->e->code;
    if (!strcmp(which, "else")) {
        static const char *const ends2[] = {"endfor", NULL};
        if (block_end(p)) return p->e->code;
        n->d = node(p, N_BODY);
        if (parse_body(p, n->d, ends2, &which)) return p->e->code;
    }
    return block_end(p);
}

static int parse_set(Ps *p, Node *n) {
    if (cur(p)->k == T_NAME && p->t[p->i + 1].k == T_OP && p->t[p->i + 1].s[0] == '.') {
        n->k = N_SET_ATTR;
        n->name = take_name(p);
        p->i++;
        if (!(n->name2 = take_name(p))) return fail(p, "expected an attribute name");
        if (expect_op(p, "=") || parse_expr(p, &n->a)) return p->e->code;
        return block_end(p);
    }
    if (parse_targets(p, n)) return p->e->code;
    if (cur(p)->k == T_BLOCK_END && n->n_kids == 1) { /* {% set x %}...{% endset %} */
        static const char *const ends[] = {"endset", NULL};
        const char *which;
        n->k = N_SET_BLOCK;
        p->i++;
        n->b = node(p, N_BODY);
        if (parse_body(p, n->b, ends, &which)) return p->e->code;
        return block_end(p);
    }
    if (expect_op(p, "=")) return p->e->code;
    if (parse_expr(p, &n->a)) return p->e->code;
    if (is_op(p, ",")) { /* set a, b = x, y */
        Node *l = node(p, E_LIST);
        add_kid(p, &l->kids, &l->n_kids, n->a);
        while (is_op(p, ",")) {
            p->i++;
            Node *x;
            if (parse_expr(p, &x)) return p->e->code;
            add_kid(p, &l->kids, &l->n_kids, x);
        }
        n->a = l;
    }
    return block_end(p);
}

static int parse_macro(Ps *p, Node *n) {
    static const char *const ends[] = {"endmacro", NULL};
    const char *which;
    if (!(n->name = take_name(p))) return fail(p, "expected a macro name");
    if (expect_op(p, "(")) return p->e->code;
    /* params: names in kw[], defaults in kids2[] (NULL = required) */
    while (!is_op(p, ")")) {
        if (n->n_kids2 && expect_op(p, ",")) return p->e->code;
        const char *nm = take_name(p);
        if (!nm) return fail(p, "expected a parameter name");
        Node *def = NULL;
        if (is_op(p, "=")) {
            p->i++;
            if (parse_expr(p, &def)) return p->e->code;
        }
        add_kw(p, &n->kw, n->n_kids2, nm);
        add_kid(p, &n->kids2, &n->n_kids2, def);
    }
    p->i++;
    if (block_end(p)) return p->e->code;
    n->b = node(p, N_BODY);
    if (parse_body(p, n->b, ends, &which)) return p->e->code;
    return block_end(p);
}

/* One {% ... %} statement after '{%' (the tag name is current). */
static int parse_stmt(Ps *p, Node *body) {
    JTok *t = cur(p);
    if (t->k != T_NAME) return fail(p, "expected a statement name after '{%'");
    const char *nm = take_name(p);
    Node *n = node(p, N_BODY);
    n->line = t->line;
    if (enter(p)) return p->e->code;
    if (!strcmp(nm, "if")) {
        n->k = N_IF;
        if (parse_if(p, n)) return p->e->code;
    } else if (!strcmp(nm, "for")) {
        n->k = N_FOR;
        if (parse_for(p, n)) return p->e->code;
    } else if (!strcmp(nm, "set")) {
        n->k = N_SET;
        if (parse_set(p, n)) return p->e->code;
    } else if (!strcmp(nm, "macro")) {
        n->k = N_MACRO;
        if (parse_macro(p, n)) return p->e->code;
    } else if (!strcmp(nm, "break") || !strcmp(nm, "continue")) {
        n->k = nm[0] == 'b' ? N_BREAK : N_CONTINUE;
        if (block_end(p)) return p->e->code;
    } else if (!strcmp(nm, "filter")) { /* a filter applied to the rendered body */
        static const char *const ends[] = {"endfilter", NULL};
        const char *which;
        n->k = N_FILTER;
        int line = cur(p)->line;
        if (!(n->name = take_name(p))) return fail(p, "expected a filter name after {% filter");
        if (!builtin_known(n->name, 0))
            return err_set(p->e, EX_DATAERR, "chat_template line %d: unsupported Jinja filter '%s'", line, n->name);
        if (is_op(p, "(")) {
            p->i++;
            if (parse_args(p, n)) return p->e->code;
        }
        n->b = node(p, N_BODY);
        if (block_end(p) || parse_body(p, n->b, ends, &which) || block_end(p)) return p->e->code;
    } else if (!strcmp(nm, "generation")) { /* transformers' AssistantTracker: renders its body */
        static const char *const ends[] = {"endgeneration", NULL};
        const char *which;
        if (block_end(p) || parse_body(p, n, ends, &which) || block_end(p)) return p->e->code;
    } else {
        p->i--;
        return err_set(p->e, EX_DATAERR, "chat_template line %d: unsupported Jinja construct '{%% %s %%}'", t->line,
                       nm);
    }
    p->depth--;
    add_kid(p, &body->kids, &body->n_kids, n);
    return 0;
}

/* Statements until one of ENDS (a NULL-terminated list of tag names; NULL list = until
 * the end of the template).  On return *which is the end tag found, whose name has
 * been consumed (its %} has not). */
static int parse_body(Ps *p, Node *body, const char *const *ends, const char **which) {
    int start = cur(p)->line;
    for (;;) {
        JTok *t = cur(p);
        switch (t->k) {
        case T_EOF:
            if (ends) {
                return err_set(p->e, EX_DATAERR,
                               "chat_template line %d: block opened here is never closed (expected {%% %s %%})",
                               start - 0, ends[0]);
            }
            return 0;
        case T_DATA: {
            Node *n = node(p, N_TEXT);
            n->cst = v_str(jstr_new(p->a, t->s, t->n, NULL));
            add_kid(p, &body->kids, &body->n_kids, n);
            p->i++;
            break;
        }
        case T_VAR_BEGIN: {
            p->i++;
            Node *n = node(p, N_OUTPUT);
            if (parse_expr(p, &n->a)) return p->e->code;
            if (cur(p)->k != T_VAR_END) return fail(p, "expected '}}'");
            p->i++;
            add_kid(p, &body->kids, &body->n_kids, n);
            break;
        }
        case T_BLOCK_BEGIN: {
            p->i++;
            for (int k = 0; ends && ends[k]; k++)
                if (is_name(p, ends[k])) {
                    *which = ends[k];
                    p->i++;
                    return 0;
                }
            if (cur(p)->k == T_NAME) {
                static const char *const closers[] = {"endif", "endfor",        "endset",    "endmacro", "elif",
                                                      "else",  "endgeneration", "endfilter", NULL};
                for (int k = 0; closers[k]; k++)
                    if (is_name(p, closers[k]))
                        return err_set(p->e, EX_DATAERR, "chat_template line %d: unexpected {%% %s %%}%s%s",
                                       cur(p)->line, closers[k], ends ? ", expected {% " : "", ends ? ends[0] : "");
            }
            if (parse_stmt(p, body)) return p->e->code;
            break;
        }
        default:
            return fail(p, "unexpected token");
        }
    }
}

int jinja_parse_tokens(Arena *a, JTok *toks, int n, Node **root, Error *e) {
    Ps p = {.a = a, .t = toks, .n = n, .e = e};
    Node *r = node(&p, N_BODY);
    const char *which = NULL;
    if (parse_body(&p, r, NULL, &which)) return e->code;
    *root = r;
    return 0;
}

int jinja_parse(const char *src, size_t len, JinjaTemplate **out, Error *e) {
    JinjaTemplate *t = calloc(1, sizeof *t);
    if (!t) return err_set(e, EX_SOFTWARE, "out of memory");
    t->arena.limit = JINJA_MAX_MEMORY;
    JTok *toks;
    int n;
    int rc = jinja_lex(&t->arena, src, len, &toks, &n, e);
    if (!rc) rc = jinja_parse_tokens(&t->arena, toks, n, &t->root, e);
    if (!rc && t->arena.over)
        rc = err_set(e, EX_DATAERR, "chat_template: larger than %u bytes of memory", JINJA_MAX_MEMORY);
    if (rc) {
        jinja_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void jinja_free(JinjaTemplate *t) {
    if (!t) return;
    arena_free(&t->arena);
    free(t);
}
