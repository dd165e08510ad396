/* test_jinja.c — the Jinja interpreter (formats/jinja.h) construct by construct, and
 * against hostile templates.
 *   1. tests/oracle/templates/snippets.jsonl: small templates for each statement,
 *      filter, test, method, operator and whitespace rule, rendered by the jinja2
 *      environment transformers builds (tests/oracle/make_template_fixtures.py);
 *      cherry must give the same bytes, or fail with EX_DATAERR where jinja2 raised.
 *   2. hostile templates (run under the sanitizer build too): unterminated tags and
 *      strings, nesting far past the limits, endless and huge loops, runaway output,
 *      recursion, integer overflow, invalid UTF-8 — each must end in EX_DATAERR with
 *      a message, quickly, without reading out of bounds. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "check.h"
#include "formats/jinja.h"

static int render(const char *src, size_t n, const json_t *vars, JinjaOutput *out, Error *e) {
    JinjaTemplate *t;
    int rc = jinja_parse(src, n, &t, e);
    if (rc) return rc;
    rc = jinja_render(t, vars, NULL, out, e);
    jinja_free(t);
    return rc;
}

static void test_snippets(void) {
    FILE *f = fopen("tests/oracle/templates/snippets.jsonl", "r");
    CHECK(f, "cannot read tests/oracle/templates/snippets.jsonl (run from the repository root)");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, same = 0, errs = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *c = json_loads(line, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
        CHECK(c, "bad fixture line: %s", je.text);
        if (!c) continue;
        n++;
        const char *src = json_string_value(json_object_get(c, "src"));
        JinjaOutput out;
        Error e = {0};
        int rc = render(src, strlen(src), json_object_get(c, "vars"), &out, &e);
        const json_t *want = json_object_get(c, "text");
        if (want) {
            int ok = !rc && out.len == json_string_length(want) && !memcmp(out.text, json_string_value(want), out.len);
            CHECK(ok, "snippet %d: %s\n  want [%s]\n  got  [%s]", n, src, json_string_value(want),
                  rc ? e.msg : out.text);
            same += ok;
        } else {
            CHECK(rc == EX_DATAERR, "snippet %d: %s\n  jinja2 raised %s, cherry gave rc %d [%s]", n, src,
                  json_string_value(json_object_get(c, "error")), rc, rc ? e.msg : out.text);
            errs += rc == EX_DATAERR;
        }
        if (!rc) jinja_output_free(&out);
        json_decref(c);
    }
    free(line);
    fclose(f);
    printf("snippets: %d, %d identical, %d matching errors\n", n, same, errs);
    CHECK(n >= 50, "only %d snippets", n);
}

/* a template of PREFIX repeated k times, MIDDLE, SUFFIX repeated k times */
static char *repeated(const char *prefix, int k, const char *middle, const char *suffix) {
    size_t lp = strlen(prefix), lm = strlen(middle), ls = strlen(suffix);
    char *s = xmalloc(lp * (size_t)k + lm + ls * (size_t)k + 1), *p = s;
    for (int i = 0; i < k; i++) memcpy(p, prefix, lp), p += lp;
    memcpy(p, middle, lm), p += lm;
    for (int i = 0; i < k; i++) memcpy(p, suffix, ls), p += ls;
    *p = 0;
    return s;
}

static void hostile(const char *what, const char *src, size_t n, const char *expect_in_msg) {
    JinjaOutput out;
    Error e = {0};
    clock_t t0 = clock();
    int rc = render(src, n, NULL, &out, &e);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(rc == EX_DATAERR, "%s: rc %d (want EX_DATAERR) %s", what, rc, rc ? e.msg : "rendered");
    if (rc == EX_DATAERR && expect_in_msg)
        CHECK(strstr(e.msg, expect_in_msg), "%s: message \"%s\" lacks \"%s\"", what, e.msg, expect_in_msg);
    CHECK(secs < 20, "%s: took %.1f s", what, secs);
    if (!rc) jinja_output_free(&out);
}

static void test_hostile(void) {
    static const struct {
        const char *what, *src, *msg;
    } cases[] = {
        {"unterminated {{", "Hello {{ name", "unterminated"},
        {"unterminated {%", "{% if x", "unterminated"},
        {"unterminated comment", "a {# b", "comment"},
        {"unterminated string", "{{ 'abc }}", "string"},
        {"unclosed if", "{% if true %}x", "never closed"},
        {"unclosed for", "{% for x in y %}{% if 1 %}{% endif %}", "never closed"},
        {"stray endif", "{% endif %}", "endif"},
        {"stray else", "{% for x in y %}{% else %}{% else %}{% endfor %}", "else"},
        {"bad bracket", "{{ (1] }}", "unexpected"},
        {"unknown statement", "{% frobnicate %}", "frobnicate"},
        {"include", "{% include 'x.jinja' %}", "include"},
        {"extends", "{% extends 'base' %}", "extends"},
        {"raw", "{% raw %}{{ x }}{% endraw %}", "raw"},
        {"call block", "{% call m() %}x{% endcall %}", "call"},
        {"unknown filter", "{{ x | frobnicate }}", "frobnicate"},
        {"unknown test", "{{ x is frobnicated }}", "frobnicated"},
        {"truncated escape", "{{ '\\u12' }}", "escape"},
        {"surrogate escape", "{{ '\\ud800' }}", "escape"},
        {"huge integer", "{{ 123456789012345678901234567890 }}", "too large"},
        {"bad character", "{{ x $ y }}", "unexpected character"},
        {"empty tag", "{{ }}", "expression"},
        {"call undefined", "{{ nothing() }}", "nothing"},
        {"attribute of undefined", "{{ a.b.c }}", "'a' is undefined"},
        {"endless loop", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         NULL /* steps or memory, whichever comes first */},
        {"huge output", "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", "output larger"},
        {"string doubling",
         "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
         "{% endfor %}",
         "too large"},
        {"list doubling",
         "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}"
         "{% endfor %}",
         "too large"},
        {"list repeat", "{{ [1, 2] * 1000000000000 }}", "too large"},
        {"string repeat", "{{ 'abc' * 9223372036854775807 }}", "too large"},
        {"range", "{{ range(-9223372036854775807, 9223372036854775807) }}", "range"},
        {"macro recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deep"},
        {"integer overflow", "{{ 9223372036854775807 + 1 }}", "overflow"},
        {"power overflow", "{{ 2 ** 64 }}", "overflow"},
        {"negation overflow", "{{ -(-9223372036854775807 - 1) }}", "overflow"},
        {"division overflow", "{{ (-9223372036854775807 - 1) // -1 }}", "overflow"},
        {"int filter range", "{{ 1e300|int }}", "range"},
        {"raise", "{{ raise_exception('no ' ~ 'way') }}", "no way"},
        {"sandbox", "{% set l = [] %}{{ l.append(1) }}", "unsafe"},
        {"deep nested list equality",
         "{% set ns = namespace(l=[]) %}{% for i in range(20000) %}"
         "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l == ns.l }}{{ raise_exception('done') }}",
         "done"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        hostile(cases[i].what, cases[i].src, strlen(cases[i].src), cases[i].msg);

    char *s = repeated("{% if true %}", 100000, "x", "{% endif %}");
    hostile("100000 nested ifs", s, strlen(s), "nested");
    free(s);
    s = repeated("{% for i in [1] %}", 5000, "x", "{% endfor %}");
    hostile("5000 nested fors", s, strlen(s), "nested");
    free(s);
    s = repeated("(", 100000, "1", ")");
    char *t = repeated("{{ ", 1, s, " }}");
    hostile("100000 nested parentheses", t, strlen(t), "nested");
    free(t);
    free(s);
    s = repeated("[", 100000, "", "]");
    t = repeated("{{ ", 1, s, " }}");
    hostile("100000 nested brackets", t, strlen(t), "nested");
    free(t);
    free(s);
    s = repeated("not ", 100000, "x", "");
    t = repeated("{{ ", 1, s, " }}");
    hostile("100000 nots", t, strlen(t), "nested");
    free(t);
    free(s);
    s = repeated("- ", 100000, "1", "");
    t = repeated("{{ ", 1, s, " }}");
    hostile("100000 minus signs", t, strlen(t), "nested");
    free(t);
    free(s);
    s = repeated("{{ 1 ", 1, "", "");
    hostile("template ends inside a tag", s, strlen(s), "unterminated");
    free(s);
    /* a NUL and invalid UTF-8 inside the template: rendered as bytes, no crash */
    static const char bin[] = "a\0b\xff\xfe{{ '\xc3' }}{{ '\xe2\x82'[0] }}{{ '\xf0\x9f'|length }}";
    JinjaOutput out;
    Error e = {0};
    int rc = render(bin, sizeof bin - 1, NULL, &out, &e);
    CHECK(rc == 0 && out.len >= 5 && !memcmp(out.text, "a\0b\xff\xfe", 5), "binary template: rc %d %s", rc, e.msg);
    if (!rc) jinja_output_free(&out);
    /* every prefix of a real template: parse errors or renders, never a crash */
    FILE *f = fopen("tests/oracle/templates/meta-llama-Llama-3.1-8B-Instruct.jinja", "rb");
    if (f) {
        char *src = xcalloc(1 << 14, 1);
        size_t n = fread(src, 1, (1 << 14) - 1, f);
        fclose(f);
        json_t *vars =
            json_pack("{s:[{s:s,s:s}],s:b}", "messages", "role", "user", "content", "hi", "add_generation_prompt", 1);
        int ok = 0;
        for (size_t k = 0; k <= n; k += 7) {
            JinjaTemplate *tp;
            Error pe = {0};
            if (jinja_parse(src, k, &tp, &pe)) {
                CHECK(pe.code == EX_DATAERR && pe.msg[0], "prefix %zu: rc %d", k, pe.code);
                continue;
            }
            if (!jinja_render(tp, vars, NULL, &out, &pe)) jinja_output_free(&out), ok++;
            jinja_free(tp);
        }
        CHECK(ok > 0, "no prefix rendered");
        json_decref(vars);
        free(src);
    }
}

int main(void) {
    test_snippets();
    test_hostile();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
