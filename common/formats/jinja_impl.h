/* jinja_impl.h — internals of the Jinja interpreter shared by jinja_lex.c (source ->
 * tokens), jinja_parse.c (tokens -> tree), jinja_value.c (arena, values, Python
 * str()/json.dumps), jinja_eval.c (statements and expressions) and jinja_builtins.c
 * (filters, tests, methods, globals).  Not a public API: use jinja.h. */
#ifndef CHERRY_JINJA_IMPL_H
#define CHERRY_JINJA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "jinja.h"

/* ---- arena: every value of one parse or render lives here, freed at once ---- */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;
    size_t used_total, limit; /* limit 0 = none */
    int over;                 /* set once an allocation went over limit */
} Arena;
void *arena_alloc(Arena *a, size_t n); /* zeroed; never NULL (falls back to a static dummy when over) */
void arena_free(Arena *a);

/* ---- tokens ---- */
typedef enum JTokKind {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP
} JTokKind;
typedef struct JTok {
    JTokKind k;
    int line;
    const char *s; /* DATA, NAME, STRING (unescaped), OP text (in the arena) */
    size_t n;
    int64_t i;
    double f;
} JTok;
int jinja_lex(Arena *a, const char *src, size_t len, JTok **toks, int *n, Error *e);

/* ---- strings: bytes plus one provenance tag per byte (NULL tag = all 0) ---- */
typedef struct JStr {
    const char *s;
    const unsigned char *tag;
    size_t n;
} JStr;

/* ---- values ---- */
typedef enum VKind { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_MACRO, V_FUNC } VKind;
typedef struct JList JList;
typedef struct JDict JDict;
struct Node;
typedef struct Value {
    VKind k;
    int ns;     /* V_DICT: a namespace() (attributes assignable) */
    int markup; /* V_STR: a markupsafe.Markup (|safe, |e): `+` escapes the other side */
    union {
        int64_t i; /* V_BOOL, V_INT, V_FUNC (builtin id) */
        double f;
        JStr *s;
        JList *l;
        JDict *d;
        const struct Node *macro;
        const char *undef_name; /* V_UNDEF: what was undefined (for messages), may be NULL */
    } u;
} Value;
struct JList {
    Value *v;
    int n, cap;
    int tuple; /* a Python tuple: printed (a, b); otherwise a list */
    int gen;   /* the result of map/select/reject/selectattr/rejectattr: a generator in
                * jinja2 (always true, no len(), not JSON, not printable; |list makes a list) */
};
struct JDict {
    JStr **keys; /* string keys only (what JSON and templates use), insertion order */
    Value *vals;
    int n, cap;
};

/* ---- tree ---- */
typedef enum NodeKind {
    /* statements */
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SET_ATTR,
    N_SET_BLOCK,
    N_MACRO,
    N_BREAK,
    N_CONTINUE,
    N_BODY,   /* kids in order ({% generation %} too) */
    N_FILTER, /* {% filter f(args) %} body {% endfilter %}: name, args in kids/kids2, body in b */
    /* expressions */
    E_CONST,
    E_NAME,
    E_ATTR,
    E_ITEM,
    E_SLICE,
    E_CALL,
    E_FILTER,
    E_TEST,
    E_NOT,
    E_NEG,
    E_POS,
    E_BIN,
    E_AND,
    E_OR,
    E_COND,
    E_LIST,
    E_DICT
} NodeKind;
typedef struct Node {
    NodeKind k;
    int line;
    int op;           /* E_BIN operator char code (see jinja_parse.c), E_TEST negation */
    const char *name; /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_SET_ATTR attr, N_MACRO */
    const char *name2;
    struct Node *a, *b, *c, *d;
    struct Node **kids; /* body, list items, call args, for/set target names (E_NAME) */
    int n_kids;
    struct Node **kids2; /* else body, dict values, kwarg values, macro defaults */
    int n_kids2;
    const char **kw; /* kwarg names / macro param names [n_kids2] */
    Value cst;       /* E_CONST */
} Node;
/* binary operators in E_BIN.op */
enum {
    OP_ADD = '+',
    OP_SUB = '-',
    OP_MUL = '*',
    OP_DIV = '/',
    OP_FLOORDIV = 'f',
    OP_MOD = '%',
    OP_POW = 'p',
    OP_CAT = '~',
    OP_EQ = '=',
    OP_NE = '!',
    OP_LT = '<',
    OP_GT = '>',
    OP_LE = 'l',
    OP_GE = 'g',
    OP_IN = 'i',
    OP_NOTIN = 'n'
};

struct JinjaTemplate {
    Arena arena;
    Node *root;
};
int jinja_parse_tokens(Arena *a, JTok *toks, int n, Node **root, Error *e);

/* ---- values (jinja_value.c) ---- */
JStr *jstr_new(Arena *a, const char *s, size_t n, const unsigned char *tag); /* copies */
JStr *jstr_lit(Arena *a, const char *s);                                     /* tag 0 */
JStr *jstr_cat(Arena *a, const JStr *x, const JStr *y);
JStr *jstr_sub(Arena *a, const JStr *x, size_t off, size_t n); /* byte range */
unsigned char jstr_maxtag(const JStr *x);                      /* the tag of the whole (first nonzero) */
JStr *jstr_retag(Arena *a, const char *s, size_t n, unsigned char tag);
int jstr_eq(const JStr *x, const char *lit);
Value v_undef(const char *name);
Value v_none(void);
Value v_bool(int b);
Value v_int(int64_t i);
Value v_float(double f);
Value v_str(JStr *s);
Value v_list(Arena *a);
Value v_dict(Arena *a);
void list_push(Arena *a, JList *l, Value v);
Value *dict_get(const JDict *d, const char *key, size_t n);
void dict_set(Arena *a, JDict *d, JStr *key, Value v);
int v_truthy(Value v);
int v_equal(Value x, Value y);
const char *v_type_name(Value v);
/* Python str(v) (repr inside containers); tag of the result follows the strings in it. */
JStr *v_to_str(Arena *a, Value v);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0 = None), separators default),
 * NULL + message in *why when v holds something JSON cannot (Undefined, macros). */
JStr *v_to_json(Arena *a, Value v, int indent, const char **why);
Value v_from_json(Arena *a, const json_t *j, unsigned char tag, int messages_level);
size_t utf8_count(const char *s, size_t n);
size_t utf8_offset(const char *s, size_t n, size_t cp); /* byte offset of code point cp (clamped) */

/* ---- evaluation (jinja_eval.c) ---- */
typedef struct Scope Scope;
typedef struct Ctx {
    Arena *a;
    Scope *globals, *scope;
    char *out;
    unsigned char *tag;
    size_t out_len, out_cap;
    Error *e;
    int err, depth;
    long steps;
    int loop_ctl; /* 1 break, 2 continue */
} Ctx;
int ctx_fail(Ctx *c, const Node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int eval_expr(Ctx *c, const Node *n, Value *out);
int call_macro(Ctx *c, const Node *at, Value m, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
               Value *out);

/* ---- builtins (jinja_builtins.c) ---- */
int builtin_filter(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw,
                   Value *kwv, int nkw, Value *out);
int builtin_test(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, int *out);
int builtin_method(Ctx *c, const Node *at, Value obj, const char *name, Value *args, int nargs, const char **kw,
                   Value *kwv, int nkw, Value *out);
int builtin_global(const char *name, Value *out); /* 1 when name is a global function */
int builtin_known(const char *name, int is_test); /* filter / test names (checked at parse time) */
/* jinja_filters_more.c: sort dictsort min max sum round format escape/e; -1 when NAME is none */
JStr *html_escape(Ctx *c, const JStr *s);
int filter_more(Ctx *c, const Node *at, const char *name, Value x, Value *args, int nargs, const char **kw, Value *kwv,
                int nkw, Value *out);
int builtin_call(Ctx *c, const Node *at, int id, Value *args, int nargs, const char **kw, Value *kwv, int nkw,
                 Value *out);

#endif
