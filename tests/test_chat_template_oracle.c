/* test_chat_template_oracle.c — the Jinja interpreter (formats/jinja.h) against
 * transformers' apply_chat_template: every real template in tests/oracle/templates/
 * over every conversation there, add_generation_prompt false and true, byte for byte
 * (fixtures by tests/oracle/make_template_fixtures.py).  Where transformers raised
 * (raise_exception in the template, or a jinja2 error), cherry must fail with
 * EX_DATAERR.  Also checks the provenance tags: bytes of message k carry tag 1 + k.
 * Then token_cases.jsonl: the same templates through --template jinja and
 * chat_tokenize with the test tokenizers (sentencepiece-style BPE for Llama-2,
 * Mistral, Zephyr, Gemma; byte-level for Llama-3.1, Qwen) must give the ids of
 * apply_chat_template(tokenize=True), and the train mask must cover exactly the
 * assistant replies. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "formats/chat.h"
#include "formats/jinja.h"

#define DIR "tests/oracle/templates"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = xmalloc((size_t)len + 1);
    *n = fread(s, 1, (size_t)len, f);
    s[*n] = 0;
    fclose(f);
    return s;
}

/* first differing byte, for the failure message */
static size_t first_diff(const char *a, size_t na, const char *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* tokenizer file (patched) + tokenizer_config.json with the template, in a temp dir */
static Tokenizer *load_with_template(const char *tokfile, const json_t *patch, const char *tpl_file,
                                     const json_t *vars) {
    char path[512];
    snprintf(path, sizeof path, "tests/oracle/tokenizers/%s", tokfile);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return NULL;
    if (json_is_object(patch)) json_object_update(root, (json_t *)patch);
    char tmpl[] = "/tmp/cherry-tplok-XXXXXX";
    char *d = mkdtemp(tmpl);
    char *tj = path_join(d, "tokenizer.json"), *cj = path_join(d, "tokenizer_config.json");
    json_dump_file(root, tj, JSON_COMPACT);
    json_decref(root);
    snprintf(path, sizeof path, DIR "/%s", tpl_file);
    size_t n;
    char *src = slurp(path, &n);
    json_t *cfg = json_deep_copy(vars);
    json_object_set_new(cfg, "chat_template", json_stringn(src ? src : "", src ? n : 0));
    json_dump_file(cfg, cj, JSON_COMPACT);
    json_decref(cfg);
    free(src);
    Tokenizer *t = NULL;
    Error e = {0};
    if (tok_load_dir(&t, d, &e)) printf("tok_load_dir: %s\n", e.msg);
    remove(tj);
    remove(cj);
    rmdir(d);
    free(tj);
    free(cj);
    return t;
}

static void token_cases(const json_t *convs) {
    FILE *f = fopen(DIR "/token_cases.jsonl", "r");
    CHECK(f, "cannot read " DIR "/token_cases.jsonl");
    if (!f) return;
    char *line = NULL, key[1024] = "";
    size_t cap = 0;
    Tokenizer *t = NULL;
    int n = 0, same = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, 0, NULL);
        if (!c) continue;
        n++;
        const char *tpl = json_string_value(json_object_get(c, "template"));
        const char *tokf = json_string_value(json_object_get(c, "tok"));
        char k[1024];
        snprintf(k, sizeof k, "%s|%s", tpl, tokf);
        if (strcmp(k, key)) {
            tok_free(t);
            t = load_with_template(tokf, json_object_get(c, "patch"), tpl, json_object_get(c, "vars"));
            snprintf(key, sizeof key, "%s", k);
        }
        CHECK(t, "%s: tokenizer did not load", k);
        if (!t) {
            json_decref(c);
            continue;
        }
        int ci = (int)json_integer_value(json_object_get(c, "conv")), gen = json_is_true(json_object_get(c, "gen"));
        const json_t *conv = json_array_get(convs, (size_t)ci), *msgs = json_object_get(conv, "messages");
        const json_t *tools = json_object_get(conv, "tools");
        ChatRender r;
        Error e = {0};
        IntVec ids = {0}, mask = {0};
        int rc = chat_render_json(t, msgs, json_is_null(tools) ? NULL : tools, gen, &r, &e);
        CHECK(rc == 0, "%s conv %d gen %d: %s", tpl, ci, gen, e.msg);
        if (!rc) rc = chat_tokenize(t, &r, &ids, &mask, &e);
        const json_t *want = json_object_get(c, "ids");
        int ok = !rc && (int)json_array_size(want) == ids.n;
        for (int i = 0; ok && i < ids.n; i++) ok = json_integer_value(json_array_get(want, (size_t)i)) == ids.v[i];
        if (!ok) {
            char got[2048] = "", exp[2048] = "";
            for (int i = 0; i < ids.n && strlen(got) < 1900; i++) snprintf(got + strlen(got), 16, " %d", ids.v[i]);
            for (size_t i = 0; i < json_array_size(want) && strlen(exp) < 1900; i++)
                snprintf(exp + strlen(exp), 16, " %d", (int)json_integer_value(json_array_get(want, i)));
            CHECK(0, "%s (%s) conv %d gen %d: ids differ from apply_chat_template's\n  want%s\n  got %s\n  text [%s]",
                  tpl, tokf, ci, gen, exp, got, rc ? e.msg : r.text);
        }
        same += ok;
        /* the train mask: nothing without an assistant message, something with one */
        int n_asst = 0, n_train = 0;
        for (size_t i = 0; i < json_array_size(msgs); i++)
            n_asst += !strcmp(json_string_value(json_object_get(json_array_get(msgs, i), "role")), "assistant");
        for (int i = 0; i < mask.n; i++) n_train += mask.v[i];
        CHECK(!rc && mask.n == ids.n && (n_asst ? n_train > 0 : n_train == 0),
              "%s conv %d: %d tokens train, %d assistant messages", tpl, ci, n_train, n_asst);
        intvec_free(&ids);
        intvec_free(&mask);
        if (!rc || r.text) chat_render_free(&r);
        json_decref(c);
    }
    tok_free(t);
    free(line);
    fclose(f);
    printf("chat templates tokenized: %d cases, %d with the ids of apply_chat_template\n", n, same);
    CHECK(n >= 100, "only %d token cases", n);
}

int main(void) {
    json_error_t je;
    json_t *convs = json_load_file(DIR "/conversations.json", 0, &je);
    if (!convs) {
        printf("cannot read %s/conversations.json: %s\n", DIR, je.text);
        return 1;
    }
    FILE *f = fopen(DIR "/cases.jsonl", "r");
    if (!f) {
        printf("cannot read %s/cases.jsonl\n", DIR);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    int n_same = 0, n_err = 0, n_cases = 0, n_fail = 0;
    char last_name[256] = "";
    JinjaTemplate *t = NULL;
    Error perr = {0};
    int parse_rc = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, 0, &je);
        if (!c) continue;
        n_cases++;
        const char *name = json_string_value(json_object_get(c, "template"));
        if (strcmp(name, last_name)) {
            jinja_free(t);
            t = NULL;
            char path[512];
            snprintf(path, sizeof path, DIR "/%s", name);
            size_t n;
            char *src = slurp(path, &n);
            CHECK(src, "cannot read %s", path);
            parse_rc = src ? jinja_parse(src, n, &t, &perr) : 1;
            CHECK(parse_rc == 0, "%s: parse: %s", name, perr.msg);
            free(src);
            snprintf(last_name, sizeof last_name, "%s", name);
        }
        if (parse_rc) {
            json_decref(c);
            n_fail++;
            continue;
        }
        int ci = (int)json_integer_value(json_object_get(c, "conv"));
        json_t *conv = json_array_get(convs, (size_t)ci);
        json_t *trusted = json_deep_copy(json_object_get(c, "vars"));
        json_object_set_new(trusted, "add_generation_prompt", json_boolean(json_is_true(json_object_get(c, "gen"))));
        json_t *data = json_object();
        json_object_set(data, "messages", json_object_get(conv, "messages"));
        json_object_set(data, "tools", json_object_get(conv, "tools"));
        json_object_set_new(data, "documents", json_null());
        JinjaOutput out;
        Error e = {0};
        int rc = jinja_render(t, trusted, data, &out, &e);
        const json_t *want = json_object_get(c, "text");
        if (want) {
            const char *w = json_string_value(want);
            size_t wn = json_string_length(want);
            int same = rc == 0 && out.len == wn && !memcmp(out.text, w, wn);
            if (!same) {
                n_fail++;
                if (rc) {
                    CHECK(0, "%s conv %d gen %d: render failed: %s", name, ci, json_is_true(json_object_get(c, "gen")),
                          e.msg);
                } else {
                    size_t d = first_diff(out.text, out.len, w, wn);
                    size_t from = d > 40 ? d - 40 : 0;
                    CHECK(0, "%s conv %d gen %d: differs at byte %zu of %zu/%zu:\n  got  [%.*s]\n  want [%.*s]", name,
                          ci, json_is_true(json_object_get(c, "gen")), d, out.len, wn,
                          (int)(out.len - from > 120 ? 120 : out.len - from), out.text + from,
                          (int)(wn - from > 120 ? 120 : wn - from), w + from);
                }
            } else {
                n_same++;
                /* provenance: every byte of a message's content that appears verbatim
                 * is tagged with that message (spot check on the first message) */
                const char *content =
                    json_string_value(json_object_get(json_array_get(json_object_get(conv, "messages"), 0), "content"));
                if (content && strlen(content) > 3) {
                    const char *p = strstr(out.text, content);
                    if (p) {
                        size_t off = (size_t)(p - out.text), k = 0;
                        while (k < strlen(content) && out.tag[off + k] == 1) k++;
                        /* a later message could repeat the text; accept any tagged occurrence */
                        int ok = k == strlen(content);
                        for (p = strstr(p + 1, content); !ok && p; p = strstr(p + 1, content)) {
                            off = (size_t)(p - out.text);
                            for (k = 0; k < strlen(content) && out.tag[off + k] == 1;) k++;
                            ok = k == strlen(content);
                        }
                        CHECK(ok, "%s conv %d: first message's content not tagged 1", name, ci);
                    }
                }
            }
        } else {
            if (rc != EX_DATAERR) {
                n_fail++;
                CHECK(0, "%s conv %d gen %d: transformers raised (%s) but cherry rendered (rc %d)", name, ci,
                      json_is_true(json_object_get(c, "gen")), json_string_value(json_object_get(c, "error")), rc);
            } else {
                n_err++;
            }
        }
        if (!rc) jinja_output_free(&out);
        json_decref(trusted);
        json_decref(data);
        json_decref(c);
    }
    jinja_free(t);
    free(line);
    fclose(f);
    token_cases(convs);
    json_decref(convs);
    printf("chat templates: %d cases, %d byte-identical renderings, %d matching errors, %d failures\n", n_cases, n_same,
           n_err, n_fail);
    CHECK(n_cases > 300, "only %d cases", n_cases);
    return failures ? 1 : 0;
}
