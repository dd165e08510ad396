/* jinja_lex.c — template source -> tokens, as jinja2's lexer (jinja2/lexer.py) does
 * it with trim_blocks=True and lstrip_blocks=True (transformers' settings):
 *   - {%- / {{- / {#- strip all whitespace before the tag; -%} -}} -#} after it;
 *   - lstrip_blocks: spaces/tabs between a line start and {% or {# are dropped (not
 *     before {{, not with {%+);
 *   - trim_blocks: one newline right after %} or #} is dropped;
 *   - keep_trailing_newline=False: one newline at the end of the source is dropped,
 *     and \r\n / \r become \n (jinja2 splits the source into lines and rejoins them);
 *   - string literals are unescaped like Python's "unicode-escape" codec.
 * Tag ends are recognised only when (), [] and {} are balanced, so {{ {'a': 1}}} works. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "jinja_impl.h"

typedef struct Lx {
    Arena *a;
    const char *s;
    size_t n, pos;
    int line;
    JTok *t;
    int nt, cap;
    Error *e;
} Lx;

static JTok *push(Lx *x, JTokKind k) {
    if (x->nt == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 256;
        x->t = xrealloc(x->t, (size_t)x->cap * sizeof *x->t);
    }
    JTok *t = &x->t[x->nt++];
    memset(t, 0, sizeof *t);
    t->k = k;
    t->line = x->line;
    return t;
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int count_nl(const char *s, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

static void emit_data(Lx *x, const char *s, size_t n) {
    if (!n) return;
    JTok *t = push(x, T_DATA);
    t->s = s;
    t->n = n;
}

/* Python unicode-escape of a string literal body into the arena. */
static int unescape(Lx *x, const char *s, size_t n, JTok *t) {
    char *o = arena_alloc(x->a, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            o[k++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n':
            o[k++] = '\n';
            break;
        case 't':
            o[k++] = '\t';
            break;
        case 'r':
            o[k++] = '\r';
            break;
        case '\\':
            o[k++] = '\\';
            break;
        case '\'':
            o[k++] = '\'';
            break;
        case '"':
            o[k++] = '"';
            break;
        case 'a':
            o[k++] = '\a';
            break;
        case 'b':
            o[k++] = '\b';
            break;
        case 'f':
            o[k++] = '\f';
            break;
        case 'v':
            o[k++] = '\v';
            break;
        case '\n':
            break; /* line continuation */
        case 'x':
        case 'u':
        case 'U': {
            int w = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            if (i + (size_t)w >= n)
                return err_set(x->e, EX_DATAERR, "chat_template line %d: truncated \\%c escape", t->line, c);
            unsigned cp = 0;
            for (int j = 1; j <= w; j++) {
                char h = s[i + j];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0) return err_set(x->e, EX_DATAERR, "chat_template line %d: bad \\%c escape", t->line, c);
                cp = cp * 16 + (unsigned)d;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return err_set(x->e, EX_DATAERR, "chat_template line %d: escape \\%c%X is not a character", t->line, c,
                               cp);
            i += (size_t)w;
            if (cp < 0x80)
                o[k++] = (char)cp;
            else if (cp < 0x800)
                o[k++] = (char)(0xC0 | cp >> 6), o[k++] = (char)(0x80 | (cp & 63));
            else if (cp < 0x10000)
                o[k++] = (char)(0xE0 | cp >> 12), o[k++] = (char)(0x80 | (cp >> 6 & 63)),
                o[k++] = (char)(0x80 | (cp & 63));
            else
                o[k++] = (char)(0xF0 | cp >> 18), o[k++] = (char)(0x80 | (cp >> 12 & 63)),
                o[k++] = (char)(0x80 | (cp >> 6 & 63)), o[k++] = (char)(0x80 | (cp & 63));
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned v = 0;
                int j = 0;
                while (j < 3 && i < n && s[i] >= '0' && s[i] <= '7') v = v * 8 + (unsigned)(s[i++] - '0'), j++;
                i--;
                if (v < 0x80)
                    o[k++] = (char)v;
                else
                    o[k++] = (char)(0xC0 | v >> 6), o[k++] = (char)(0x80 | (v & 63));
            } else { /* unknown escapes stay as written */
                o[k++] = '\\';
                o[k++] = c;
            }
        }
    }
    o[k] = 0;
    t->s = o;
    t->n = k;
    return 0;
}

static const char *const OPS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                  ">",  "=",  ".",  ",",  ":",  "|",  "(", ")", "[", "]", "{", "}"};

/* Tokens inside {{ }} or {% %} up to the end tag.  var: 1 for {{ }}.  Returns 0, and
 * sets *line_starting from how the end tag match ended (jinja2 tracks it the same way). */
static int lex_tag(Lx *x, int var, int *line_starting) {
    char stack[JINJA_MAX_DEPTH];
    int depth = 0;
    int start_line = x->line;
    for (;;) {
        while (x->pos < x->n && is_ws(x->s[x->pos])) x->line += x->s[x->pos++] == '\n';
        if (x->pos >= x->n)
            return err_set(x->e, EX_DATAERR, "chat_template line %d: unterminated %s tag (no %s)", start_line,
                           var ? "{{" : "{%", var ? "}}" : "%}");
        const char *p = x->s + x->pos;
        size_t left = x->n - x->pos;
        char close = var ? '}' : '%';
        if (!depth) {
            int minus = left >= 3 && p[0] == '-' && p[1] == close && p[2] == '}';
            int plus = !var && left >= 3 && p[0] == '+' && p[1] == close && p[2] == '}';
            if (minus || plus || (left >= 2 && p[0] == close && p[1] == '}')) {
                push(x, var ? T_VAR_END : T_BLOCK_END);
                x->pos += minus || plus ? 3 : 2;
                *line_starting = 0;
                if (minus) {
                    while (x->pos < x->n && is_ws(x->s[x->pos])) {
                        *line_starting = x->s[x->pos] == '\n';
                        x->line += x->s[x->pos++] == '\n';
                    }
                } else if (!plus && !var && x->pos < x->n && x->s[x->pos] == '\n') { /* trim_blocks */
                    x->pos++, x->line++;
                    *line_starting = 1;
                }
                return 0;
            }
        }
        char c = *p;
        if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t k = 1;
            while (k < left && (p[k] == '_' || (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                                (p[k] >= '0' && p[k] <= '9')))
                k++;
            JTok *t = push(x, T_NAME);
            t->s = p;
            t->n = k;
            x->pos += k;
        } else if (c >= '0' && c <= '9') {
            size_t k = 0;
            int is_float = 0;
            while (k < left && ((p[k] >= '0' && p[k] <= '9') || p[k] == '_')) k++;
            if (k + 1 < left && p[k] == '.' && p[k + 1] >= '0' && p[k + 1] <= '9') {
                is_float = 1;
                k++;
                while (k < left && ((p[k] >= '0' && p[k] <= '9') || p[k] == '_')) k++;
            }
            if (k < left && (p[k] == 'e' || p[k] == 'E')) {
                size_t j = k + 1;
                if (j < left && (p[j] == '+' || p[j] == '-')) j++;
                if (j < left && p[j] >= '0' && p[j] <= '9') {
                    while (j < left && p[j] >= '0' && p[j] <= '9') j++;
                    k = j;
                    is_float = 1;
                }
            }
            char buf[64];
            size_t m = 0;
            for (size_t j = 0; j < k && m + 1 < sizeof buf; j++)
                if (p[j] != '_') buf[m++] = p[j];
            buf[m] = 0;
            JTok *t = push(x, is_float ? T_FLOAT : T_INT);
            if (is_float)
                t->f = strtod(buf, NULL);
            else {
                errno = 0;
                t->i = strtoll(buf, NULL, 10);
                if (errno == ERANGE || m >= sizeof buf - 1)
                    return err_set(x->e, EX_DATAERR, "chat_template line %d: integer %s too large", x->line, buf);
            }
            x->pos += k;
        } else if (c == '\'' || c == '"') {
            size_t k = 1;
            while (k < left && p[k] != c) k += p[k] == '\\' ? 2 : 1;
            if (k >= left)
                return err_set(x->e, EX_DATAERR, "chat_template line %d: unterminated string literal", x->line);
            JTok *t = push(x, T_STRING);
            if (unescape(x, p + 1, k - 1, t)) return x->e->code;
            x->line += count_nl(p, k);
            x->pos += k + 1;
        } else {
            size_t i = 0;
            for (; i < sizeof OPS / sizeof *OPS; i++)
                if (!strncmp(p, OPS[i], strlen(OPS[i])) && strlen(OPS[i]) <= left) break;
            if (i == sizeof OPS / sizeof *OPS)
                return err_set(x->e, EX_DATAERR, "chat_template line %d: unexpected character '%c' in a tag", x->line,
                               c);
            const char *op = OPS[i];
            if (op[0] == '(' || op[0] == '[' || op[0] == '{') {
                if (depth == (int)sizeof stack)
                    return err_set(x->e, EX_DATAERR, "chat_template line %d: brackets nested deeper than %d", x->line,
                                   JINJA_MAX_DEPTH);
                stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
            } else if (op[0] == ')' || op[0] == ']' || op[0] == '}') {
                if (!depth || stack[depth - 1] != op[0])
                    return err_set(x->e, EX_DATAERR, "chat_template line %d: unexpected '%c'", x->line, op[0]);
                depth--;
            }
            JTok *t = push(x, T_OP);
            t->s = op;
            t->n = strlen(op);
            x->pos += t->n;
        }
    }
}

static int lex_all(Lx *x) {
    int line_starting = 1;
    while (x->pos < x->n) {
        const char *p = x->s + x->pos, *end = x->s + x->n, *q = p;
        while (q + 1 < end && !(q[0] == '{' && (q[1] == '{' || q[1] == '%' || q[1] == '#'))) q++;
        if (q + 1 >= end) { /* no more tags */
            emit_data(x, p, (size_t)(end - p));
            x->line += count_nl(p, (size_t)(end - p));
            break;
        }
        char kind = q[1];
        char sign = q + 2 < end && (q[2] == '-' || q[2] == '+') ? q[2] : 0;
        size_t tn = (size_t)(q - p);
        if (sign == '-') {
            while (tn && is_ws(p[tn - 1])) tn--;
        } else if (sign != '+' && kind != '{') { /* lstrip_blocks */
            size_t l = tn;
            while (l && p[l - 1] != '\n') l--;
            if ((l > 0 || line_starting) && l < tn) {
                size_t j = l;
                while (j < tn && is_ws(p[j])) j++;
                if (j == tn) tn = l;
            }
        }
        emit_data(x, p, tn);
        x->line += count_nl(p, (size_t)(q - p));
        x->pos = (size_t)(q - x->s) + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            const char *c = x->s + x->pos;
            while (c + 1 < end && !(c[0] == '#' && c[1] == '}')) c++;
            if (c + 1 >= end)
                return err_set(x->e, EX_DATAERR, "chat_template line %d: unterminated comment {#", x->line);
            int minus = c > x->s + x->pos && c[-1] == '-';
            x->line += count_nl(x->s + x->pos, (size_t)(c - (x->s + x->pos)));
            x->pos = (size_t)(c - x->s) + 2;
            line_starting = 0;
            if (minus) {
                while (x->pos < x->n && is_ws(x->s[x->pos])) {
                    line_starting = x->s[x->pos] == '\n';
                    x->line += x->s[x->pos++] == '\n';
                }
            } else if (!(c > x->s && c[-1] == '+') && x->pos < x->n && x->s[x->pos] == '\n') {
                x->pos++, x->line++;
                line_starting = 1;
            }
            continue;
        }
        push(x, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN);
        if (lex_tag(x, kind == '{', &line_starting)) return x->e->code;
    }
    push(x, T_EOF);
    return 0;
}

int jinja_lex(Arena *a, const char *src, size_t len, JTok **toks, int *n, Error *e) {
    /* newline normalisation and the dropped final newline (keep_trailing_newline=False) */
    char *s = arena_alloc(a, len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k && s[k - 1] == '\n') k--;
    Lx x = {.a = a, .s = s, .n = k, .line = 1, .e = e};
    int rc = lex_all(&x);
    if (rc) {
        free(x.t);
        return rc;
    }
    /* move the tokens into the arena so the template owns one allocation set */
    *toks = arena_alloc(a, (size_t)x.nt * sizeof **toks);
    memcpy(*toks, x.t, (size_t)x.nt * sizeof **toks);
    *n = x.nt;
    free(x.t);
    return 0;
}
