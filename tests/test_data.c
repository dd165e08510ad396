/* test_data.c — the data layer: every record kind, the exact prompt/completion
 * boundary, EOS, BOS, truncation and dropping, hh-rlhf implicit prompts, bad input
 * (errors naming FILE:LINE and the field, --skip-invalid counts), streaming memory,
 * and the batch layouts (right padding, targets, positions, segments, packing,
 * preference pairs). Tokenizers: tests/oracle/tokenizers/ fixtures. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/data.h"
#include "base/util.h"

#define DIR "tests/oracle/tokenizers"

static Tokenizer *gpt2, *llama, *smol;
static char tmpdir[64];

static Tokenizer *load(const char *name, int drop_user_token) {
    char path[256];
    snprintf(path, sizeof path, DIR "/%s", name);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) {
        printf("skipped: %s missing (run from the repository root)\n", path);
        exit(77);
    }
    if (drop_user_token) { /* the test-only "<|im_start|>user" added token would swallow chatml headers */
        json_t *added = json_object_get(root, "added_tokens");
        for (size_t i = 0; i < json_array_size(added); i++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(added, i), "content")), "<|im_start|>user"))
                json_array_remove(added, i--);
    }
    char *tj = path_join(tmpdir, name);
    json_dump_file(root, tj, JSON_COMPACT);
    json_decref(root);
    Tokenizer *t;
    Error e = {0};
    if (tok_load(&t, tj, &e)) {
        printf("tok_load: %s\n", e.msg);
        exit(1);
    }
    free(tj);
    return t;
}

static char *write_tmp(const char *name, const char *content) {
    char *p = path_join(tmpdir, name);
    FILE *f = fopen(p, "w");
    fputs(content, f);
    fclose(f);
    return p;
}

static IntVec enc(Tokenizer *t, const char *s) {
    IntVec v = {0};
    tok_encode(t, s, strlen(s), 0, &v);
    return v;
}

static int same_ids(const int *a, const int *b, int n) {
    return n == 0 || memcmp(a, b, (size_t)n * sizeof(int)) == 0;
}

static void print_ids(const char *label, const int *v, int n) {
    fprintf(stderr, "  %s:", label);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "\n");
}

/* Reads all examples of content with options o. */
static int read_examples(Tokenizer *t, const char *content, DataOptions *o, Example *out, int max, DataCounts *c,
                         Error *e) {
    char *p = write_tmp("in.jsonl", content);
    DataReader *r;
    int rc = data_open(&r, p, t, o, e);
    free(p);
    if (rc) return -rc;
    int n = 0;
    for (;;) {
        Example ex;
        rc = data_next(r, &ex, e);
        if (rc == DATA_END) break;
        if (rc) {
            n = -rc;
            break;
        }
        if (n < max)
            out[n++] = ex;
        else
            example_free(&ex);
    }
    if (c) *c = *data_counts(r);
    data_close(r);
    return n;
}

static void test_text_drop_empty(void) {
    DataOptions o;
    data_options_default(&o);
    Example ex[4];
    Error e = {0};
    DataCounts c;
    /* an empty text is only EOS, which bears no loss at position 0: dropped */
    int n = read_examples(gpt2, "{\"text\": \"\"}\n\n{\"text\": \"Hello world\"}\n", &o, ex, 4, &c, &e);
    CHECK(n == 1 && c.dropped == 1 && c.records == 2, "empty text dropped: n=%d dropped=%ld", n, c.dropped);
    IntVec w = enc(gpt2, "Hello world");
    intvec_push(&w, tok_eos_id(gpt2));
    CHECK(n == 1 && ex[0].n == w.n && same_ids(ex[0].ids, w.v, w.n), "text ids");
    CHECK(n == 1 && ex[0].mask[0] == 0 && ex[0].mask[1] == 1 && ex[0].mask[w.n - 1] == 1 && ex[0].prompt_len == 1,
          "text mask/prompt_len %d", ex[0].prompt_len);
    intvec_free(&w);
    for (int i = 0; i < n; i++) example_free(&ex[i]);
}

static void test_prompt_completion(void) {
    DataOptions o;
    data_options_default(&o);
    Example ex[2];
    Error e = {0};
    int eos = tok_eos_id(gpt2);
    /* joint tokenization merges " world" across the boundary; separate must not */
    IntVec joint = enc(gpt2, "in the end"), p = enc(gpt2, "in t"), c = enc(gpt2, "he end");
    int n = read_examples(gpt2, "{\"prompt\": \"in t\", \"completion\": \"he end\"}\n", &o, ex, 2, NULL, &e);
    CHECK(n == 1, "prompt-completion: %d (%s)", n, e.msg);
    IntVec w = {0};
    intvec_append(&w, p.v, p.n);
    intvec_append(&w, c.v, c.n);
    intvec_push(&w, eos);
    CHECK(joint.n < p.n + c.n, "fixture does not merge across the boundary (%d vs %d tokens)", joint.n, p.n + c.n);
    CHECK(ex[0].n == w.n && same_ids(ex[0].ids, w.v, w.n), "boundary not exact");
    if (ex[0].n != w.n || !same_ids(ex[0].ids, w.v, w.n))
        print_ids("expected", w.v, w.n), print_ids("got", ex[0].ids, ex[0].n);
    CHECK(ex[0].prompt_len == p.n, "prompt_len %d != %d", ex[0].prompt_len, p.n);
    for (int i = 0; i < ex[0].n; i++) CHECK(ex[0].mask[i] == (i >= p.n), "mask[%d] = %d", i, ex[0].mask[i]);
    example_free(&ex[0]);
    intvec_free(&joint), intvec_free(&p), intvec_free(&c), intvec_free(&w);

    /* EOS: "<|endoftext|>" in data is text unless parse_special; then not doubled */
    n = read_examples(gpt2, "{\"prompt\": \"a\", \"completion\": \"b<|endoftext|>\"}\n", &o, ex, 2, NULL, &e);
    CHECK(n == 1 && ex[0].ids[ex[0].n - 1] == eos && ex[0].ids[ex[0].n - 2] != eos, "EOS appended after text");
    example_free(&ex[0]);
    o.parse_special = 1;
    n = read_examples(gpt2, "{\"prompt\": \"a\", \"completion\": \"b<|endoftext|>\"}\n", &o, ex, 2, NULL, &e);
    CHECK(n == 1 && ex[0].ids[ex[0].n - 1] == eos && ex[0].ids[ex[0].n - 2] != eos, "EOS doubled");
    example_free(&ex[0]);
    o.parse_special = 0;
    o.add_eos = 0;
    n = read_examples(gpt2, "{\"prompt\": \"a\", \"completion\": \"b\"}\n", &o, ex, 2, NULL, &e);
    CHECK(n == 1 && ex[0].ids[ex[0].n - 1] != eos, "add_eos=0 still appends");
    example_free(&ex[0]);

    /* Llama-3 style: BOS from the post-processor in front of the prompt */
    data_options_default(&o);
    n = read_examples(llama, "{\"prompt\": \"Hi\", \"completion\": \" there\"}\n", &o, ex, 2, NULL, &e);
    int bos = tok_piece_to_id(llama, "<|begin_of_text|>");
    CHECK(n == 1 && ex[0].ids[0] == bos && ex[0].mask[0] == 0, "llama BOS");
    example_free(&ex[0]);
    o.add_bos = 0;
    n = read_examples(llama, "{\"prompt\": \"Hi\", \"completion\": \" there\"}\n", &o, ex, 2, NULL, &e);
    CHECK(n == 1 && ex[0].ids[0] != bos, "add_bos=0 still adds BOS");
    example_free(&ex[0]);
}

static void test_rollout_segments(void) {
    DataOptions o;
    data_options_default(&o);
    Example ex[2];
    Error e = {0};
    int n = read_examples(gpt2, "{\"prompt\": \"Q\", \"completion\": \"A\", \"reward\": 0.5, \"group\": 3}\n", &o, ex,
                          2, NULL, &e);
    CHECK(n == 1 && ex[0].has_reward && ex[0].reward == 0.5 && ex[0].has_group && ex[0].group == 3, "rollout fields");
    if (n == 1) example_free(&ex[0]);
    n = read_examples(gpt2,
                      "{\"segments\": [{\"text\": \"Bad: \", \"train\": false}, {\"text\": \"no\", \"train\": true},"
                      " {\"text\": \" Good:\", \"train\": false}, {\"text\": \" yes\", \"train\": true}]}\n",
                      &o, ex, 2, NULL, &e);
    CHECK(n == 1, "segments: %s", e.msg);
    IntVec a = enc(gpt2, "Bad: "), b = enc(gpt2, "no"), c = enc(gpt2, " Good:"), d = enc(gpt2, " yes");
    int want_n = a.n + b.n + c.n + d.n + 1;
    CHECK(ex[0].n == want_n, "segments length %d != %d", ex[0].n, want_n);
    for (int i = 0; i < ex[0].n && ex[0].n == want_n; i++) {
        int tr = (i >= a.n && i < a.n + b.n) || i >= a.n + b.n + c.n;
        CHECK(ex[0].mask[i] == tr, "segment mask[%d]=%d", i, ex[0].mask[i]);
    }
    CHECK(ex[0].prompt_len == a.n, "segments prompt_len %d", ex[0].prompt_len);
    example_free(&ex[0]);
    intvec_free(&a), intvec_free(&b), intvec_free(&c), intvec_free(&d);
}

static void test_conversational(void) {
    DataOptions o;
    data_options_default(&o);
    o.tpl = CHAT_CHATML;
    Example ex[2];
    Error e = {0};
    const char *rec = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                      "\"content\": \"Hello\"}]}\n";
    int n = read_examples(smol, rec, &o, ex, 2, NULL, &e);
    CHECK(n == 1, "conversational: %s", e.msg);
    char *txt;
    size_t tl;
    IntVec tr = {0};
    for (int i = 0; i < ex[0].n; i++)
        if (ex[0].mask[i]) intvec_push(&tr, ex[0].ids[i]);
    tok_decode(smol, tr.v, tr.n, 0, &txt, &tl, &e);
    CHECK(!strcmp(txt, "Hello<|im_end|>"), "trained \"%s\"", txt);
    free(txt);
    tok_decode(smol, ex[0].ids, ex[0].n, 0, &txt, &tl, &e);
    CHECK(!strcmp(txt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"), "text \"%s\"", txt);
    free(txt);
    intvec_free(&tr);
    example_free(&ex[0]);

    /* prompt-completion in message form == conversational split at the generation prompt */
    const char *pc = "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"completion\": [{\"role\": "
                     "\"assistant\", \"content\": \"Hello\"}]}\n";
    n = read_examples(smol, pc, &o, ex, 2, NULL, &e);
    CHECK(n == 1, "pc messages: %s", e.msg);
    tok_decode(smol, ex[0].ids, ex[0].n, 0, &txt, &tl, &e);
    CHECK(!strcmp(txt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"), "pc text \"%s\"",
          txt);
    free(txt);
    tok_decode(smol, ex[0].ids, ex[0].prompt_len, 0, &txt, &tl, &e);
    CHECK(!strcmp(txt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "pc prompt \"%s\"", txt);
    free(txt);
    example_free(&ex[0]);

    /* hh template on messages: EOS after the last assistant turn */
    o.tpl = CHAT_HH;
    n = read_examples(gpt2, rec, &o, ex, 2, NULL, &e);
    CHECK(n == 1 && ex[0].ids[ex[0].n - 1] == tok_eos_id(gpt2) && ex[0].mask[ex[0].n - 1], "hh EOS");
    if (n == 1) example_free(&ex[0]);

    /* auto without a chat_template: a usage error naming --template */
    o.tpl = CHAT_AUTO;
    n = read_examples(gpt2, rec, &o, ex, 2, NULL, &e);
    CHECK(n == -EX_USAGE && strstr(e.msg, "--template") && strstr(e.msg, ":1:"), "auto: %d %s", n, e.msg);
}

/* With --template auto and SmolLM2's template, conversations without a system
 * message get the template's default one, as apply_chat_template renders them. */
static void test_default_system(void) {
    char *cfg = write_tmp("tokenizer_config.json",
                          "{\"chat_template\": \"{% for message in messages %}{% if loop.first and "
                          "messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}"
                          "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                          "'<|im_end|>' + '\\n'}}{% endfor %}\", \"eos_token\": \"<|im_end|>\"}");
    Tokenizer *t = load("smol.json", 1);
    unlink(cfg);
    free(cfg);
    DataOptions o;
    data_options_default(&o);
    Example ex[2];
    Error e = {0};
    int n =
        read_examples(t,
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                      "\"content\": \"Yo\"}]}\n{\"messages\": [{\"role\": \"system\", \"content\": \"Own.\"}, "
                      "{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}]}\n",
                      &o, ex, 2, NULL, &e);
    CHECK(n == 2, "default system: %d %s", n, e.msg);
    if (n == 2) {
        char *s;
        size_t l;
        tok_decode(t, ex[0].ids, ex[0].n, 0, &s, &l, &e);
        CHECK(!strcmp(s, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
                         "assistant\nYo<|im_end|>\n"),
              "default system inserted: \"%s\"", s);
        free(s);
        tok_decode(t, ex[1].ids, ex[1].n, 0, &s, &l, &e);
        CHECK(!strncmp(s, "<|im_start|>system\nOwn.<|im_end|>", 31), "own system kept: \"%s\"", s);
        free(s);
        CHECK(ex[0].ids[ex[0].n - 2] == tok_eos_id(t), "eos from config");
        example_free(&ex[0]);
        example_free(&ex[1]);
    }
    tok_free(t);
}

static void test_preference(void) {
    DataOptions o;
    data_options_default(&o);
    Error e = {0};
    const char *recs =
        "{\"chosen\": \"\\n\\nHuman: hi\\n\\nAssistant: The answer is yes\", \"rejected\": \"\\n\\nHuman: "
        "hi\\n\\nAssistant: The answer is no\", \"margin\": 2, \"id\": 17}\n"
        "{\"chosen\": \"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: d1\", \"rejected\": "
        "\"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant: e2\"}\n"
        "{\"prompt\": \"P\", \"chosen\": \" c\", \"rejected\": \" r\", \"ref_chosen_logps\": -1.5, "
        "\"ref_rejected_logps\": -2.5, \"id\": \"x\"}\n";
    char *p = write_tmp("pref.jsonl", recs);
    PrefExample *px;
    int n;
    DataCounts c;
    int rc = data_read_all_pref(p, gpt2, &o, &px, &n, &c, &e);
    CHECK(rc == 0 && n == 3, "pref: rc=%d n=%d %s", rc, n, e.msg);
    if (n == 3) {
        char *s;
        size_t l;
        tok_decode(gpt2, px[0].prompt, px[0].n_prompt, 0, &s, &l, &e);
        CHECK(!strcmp(s, "\n\nHuman: hi\n\nAssistant:"), "implicit prompt \"%s\"", s);
        free(s);
        tok_decode(gpt2, px[0].chosen, px[0].n_chosen - 1, 0, &s, &l, &e);
        CHECK(!strcmp(s, " The answer is yes"), "implicit chosen \"%s\"", s);
        free(s);
        CHECK(px[0].chosen[px[0].n_chosen - 1] == tok_eos_id(gpt2), "chosen EOS");
        CHECK(px[0].has_margin && px[0].margin == 2 && px[0].id && !strcmp(px[0].id, "17"), "margin/id");
        tok_decode(gpt2, px[1].prompt, px[1].n_prompt, 0, &s, &l, &e);
        CHECK(!strcmp(s, "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"), "multi-turn prompt \"%s\"", s);
        free(s);
        CHECK(px[2].has_ref && px[2].ref_chosen_logp == -1.5 && px[2].ref_rejected_logp == -2.5 && !px[2].has_margin,
              "ref logps");
        /* pair batch */
        const PrefExample *pp[2] = {&px[0], &px[2]};
        Batch b;
        CHECK(batch_pairs(&b, pp, 2, 0, 0, &e) == 0, "batch_pairs: %s", e.msg);
        CHECK(b.B == 4, "pair rows %d", b.B);
        for (int r = 0; r < 4; r++) {
            const PrefExample *q = pp[r % 2];
            const int *comp = r < 2 ? q->chosen : q->rejected;
            int nc = r < 2 ? q->n_chosen : q->n_rejected, np = q->n_prompt;
            CHECK(b.lengths[r] == np + nc, "row %d length %d", r, b.lengths[r]);
            for (int t = 0; t < b.T; t++) {
                int want = t + 1 < np + nc && t + 1 >= np ? comp[t + 1 - np] : -1;
                CHECK(b.targets[r * b.T + t] == want, "pair row %d target[%d] = %d, want %d", r, t,
                      b.targets[r * b.T + t], want);
            }
        }
        batch_free(&b);
    }
    for (int i = 0; i < n; i++) pref_example_free(&px[i]);
    free(px);
    free(p);

    /* message lists with an implicit prompt (shared leading messages) */
    p = write_tmp("prefm.jsonl",
                  "{\"chosen\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": "
                  "\"Yes\"}], \"rejected\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                  "\"content\": \"No\"}]}\n");
    o.tpl = CHAT_CHATML;
    rc = data_read_all_pref(p, smol, &o, &px, &n, &c, &e);
    CHECK(rc == 0 && n == 1, "pref messages: %s", e.msg);
    if (n == 1) {
        char *s;
        size_t l;
        tok_decode(smol, px[0].chosen, px[0].n_chosen, 0, &s, &l, &e);
        CHECK(!strcmp(s, "Yes<|im_end|>\n"), "message chosen \"%s\"", s);
        free(s);
        tok_decode(smol, px[0].prompt, px[0].n_prompt, 0, &s, &l, &e);
        CHECK(!strcmp(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "message prompt \"%s\"", s);
        free(s);
        pref_example_free(&px[0]);
    }
    free(px);
    free(p);
}

static void test_truncation(void) {
    DataOptions o;
    data_options_default(&o);
    Example ex[4];
    Error e = {0};
    DataCounts c;
    IntVec pr = enc(gpt2, "one two three four five six"), co = enc(gpt2, " seven eight nine");
    const char *rec = "{\"prompt\": \"one two three four five six\", \"completion\": \" seven eight nine\"}\n";
    /* prompt cut to 3 keeping its end; completion cut to fit max_length 5 */
    o.max_prompt_length = 3;
    o.max_length = 5;
    int n = read_examples(gpt2, rec, &o, ex, 4, &c, &e);
    CHECK(n == 1 && ex[0].n == 5 && ex[0].prompt_len == 3 && c.truncated == 1, "keep_end: n=%d len=%d", n,
          n == 1 ? ex[0].n : -1);
    if (n == 1) {
        CHECK(same_ids(ex[0].ids, pr.v + pr.n - 3, 3) && same_ids(ex[0].ids + 3, co.v, 2), "keep_end ids");
        example_free(&ex[0]);
    }
    o.truncation = TRUNC_KEEP_START;
    n = read_examples(gpt2, rec, &o, ex, 4, &c, &e);
    CHECK(n == 1 && same_ids(ex[0].ids, pr.v, 3), "keep_start prompt");
    if (n == 1) example_free(&ex[0]);
    /* prompt alone too long: dropped and counted */
    o.max_prompt_length = 0;
    o.max_length = pr.n;
    n = read_examples(gpt2, rec, &o, ex, 4, &c, &e);
    CHECK(n == 0 && c.dropped == 1 && c.records == 1, "drop: n=%d dropped=%ld", n, c.dropped);
    /* text: keep_start keeps the first tokens, keep_end the last */
    o.max_length = 3;
    o.truncation = TRUNC_KEEP_END;
    n = read_examples(gpt2, "{\"text\": \"one two three four five six\"}\n", &o, ex, 4, &c, &e);
    CHECK(n == 1 && ex[0].n == 3 && ex[0].ids[2] == tok_eos_id(gpt2) && c.truncated == 1, "text keep_end");
    if (n == 1) example_free(&ex[0]);
    o.truncation = TRUNC_KEEP_START;
    n = read_examples(gpt2, "{\"text\": \"one two three four five six\"}\n", &o, ex, 4, &c, &e);
    CHECK(n == 1 && ex[0].n == 3 && same_ids(ex[0].ids, pr.v, 3), "text keep_start");
    if (n == 1) example_free(&ex[0]);
    intvec_free(&pr);
    intvec_free(&co);
}

static void test_bad_input(void) {
    struct {
        const char *line, *needle;
    } cases[] = {
        {"{\"text\": 5}", "field \"text\""},
        {"{\"prompt\": \"a\", \"completion\": 3}", "field \"completion\""},
        {"{\"prompt\": 1, \"completion\": \"b\"}", "field \"prompt\""},
        {"{\"messages\": \"hi\"}", "field \"messages\""},
        {"{\"messages\": [{\"role\": \"user\"}]}", "field \"messages[0].content\""},
        {"{\"messages\": [{\"role\": 3, \"content\": \"x\"}]}", "field \"messages[0].role\""},
        {"{\"segments\": [{\"text\": \"a\"}]}", "field \"segments[0]\""},
        {"{\"chosen\": \"a\", \"rejected\": 2}", "field \"rejected\""},
        {"{\"chosen\": \"same\", \"rejected\": \"same\"}", "do not differ"},
        {"{\"chosen\": \"a\", \"rejected\": [{\"role\": \"user\", \"content\": \"x\"}]}", "both be strings"},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"margin\": \"big\"}", "field \"margin\""},
        {"{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\", \"ref_chosen_logps\": 1}", "ref_rejected_logps"},
        {"{\"prompt\": \"p\", \"completion\": \"c\", \"reward\": \"high\"}", "field \"reward\""},
        {"{\"text\": \"bad \xff utf8\"}", "0xff"},
        {"{\"text\": \"unterminated", "invalid JSON"},
        {"[1, 2]", "JSON object"},
        {"{\"foo\": 1}", "kind"},
    };
    DataOptions o;
    data_options_default(&o);
    o.tpl = CHAT_CHATML;
    Example ex[2];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char content[512];
        snprintf(content, sizeof content, "%s\n", cases[i].line);
        Error e = {0};
        Tokenizer *t = strstr(cases[i].line, "messages") ? smol : gpt2;
        int n;
        if (strstr(cases[i].line, "chosen")) { /* preference records through the preference reader */
            char *pth = write_tmp("in.jsonl", content);
            PrefExample *px;
            int np;
            n = data_read_all_pref(pth, t, &o, &px, &np, NULL, &e);
            n = n ? -n : np;
            for (int k = 0; k < np; k++) pref_example_free(&px[k]);
            free(px);
            free(pth);
        } else {
            n = read_examples(t, content, &o, ex, 2, NULL, &e);
        }
        char *lower = xstrdup(e.msg);
        for (char *q = lower; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        char *nl = xstrdup(cases[i].needle);
        for (char *q = nl; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        CHECK(n == -EX_DATAERR && strstr(e.msg, "in.jsonl:1:") && strstr(lower, nl),
              "case %zu (%s): rc=%d msg \"%s\", expected EX_DATAERR naming in.jsonl:1 and \"%s\"", i, cases[i].line, -n,
              e.msg, cases[i].needle);
        free(lower);
        free(nl);
        if (n > 0) example_free(&ex[0]);
    }
    /* --skip-invalid: all the bad lines above plus two good ones */
    size_t cap = 8192, len = 0;
    char *all = xcalloc(cap, 1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (strstr(cases[i].line, "messages") || strstr(cases[i].line, "chosen") || strstr(cases[i].line, "reward") ||
            strstr(cases[i].line, "segments") || strstr(cases[i].line, "completion") || strstr(cases[i].line, "\"foo"))
            continue; /* a text file: only records that fail as text */
        len += (size_t)snprintf(all + len, cap - len, "%s\n{\"text\": \"ok %zu\"}\n", cases[i].line, i);
    }
    o.kind = DATA_TEXT;
    o.skip_invalid = 1;
    DataCounts c;
    Error e = {0};
    Example many[16];
    int n = read_examples(gpt2, all, &o, many, 16, &c, &e);
    CHECK(n == 4 && c.skipped == 4 && c.records == 8 && c.examples == 4, "skip: n=%d skipped=%ld records=%ld (%s)", n,
          c.skipped, c.records, e.msg);
    for (int i = 0; i < n && i < 16; i++) example_free(&many[i]);
    free(all);

    /* empty file: no examples, no error */
    data_options_default(&o);
    n = read_examples(gpt2, "", &o, many, 16, &c, &e);
    CHECK(n == 0 && c.records == 0, "empty file: %d", n);
    n = read_examples(gpt2, "\n\n  \n", &o, many, 16, &c, &e);
    CHECK(n == 0 && c.records == 0, "blank lines: %d", n);

    /* missing file */
    DataReader *r;
    CHECK(data_open(&r, "/nonexistent/x.jsonl", gpt2, &o, &e) == EX_NOINPUT, "missing file");

    /* a line over 64 MiB: an error naming the line, or skipped */
    char *big = path_join(tmpdir, "big.jsonl");
    FILE *f = fopen(big, "w");
    fputs("{\"text\": \"a\"}\n{\"text\": \"", f);
    char *chunk = xmalloc(1 << 20);
    memset(chunk, 'a', 1 << 20);
    for (int i = 0; i < 65; i++) fwrite(chunk, 1, 1 << 20, f);
    fputs("\"}\n{\"text\": \"b\"}\n", f);
    fclose(f);
    free(chunk);
    CHECK(data_open(&r, big, gpt2, &o, &e) == 0, "open big");
    Example x;
    CHECK(data_next(r, &x, &e) == 0, "first line");
    example_free(&x);
    n = data_next(r, &x, &e);
    CHECK(n == EX_DATAERR && strstr(e.msg, "big.jsonl:2:") && strstr(e.msg, "longer"), "64 MiB line: %d %s", n, e.msg);
    data_close(r);
    o.skip_invalid = 1;
    CHECK(data_open(&r, big, gpt2, &o, &e) == 0, "open big");
    int got = 0;
    while (data_next(r, &x, &e) == 0) got++, example_free(&x);
    CHECK(got == 2 && data_counts(r)->skipped == 1, "64 MiB line skipped: got %d", got);
    data_close(r);
    unlink(big);
    free(big);
}

static void test_prompt_only(void) {
    DataOptions o;
    data_options_default(&o);
    o.tpl = CHAT_CHATML;
    Error e = {0};
    char *p = write_tmp("prompts.jsonl", "{\"prompt\": \"Tell me\", \"answer\": 42}\n"
                                         "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n");
    DataReader *r;
    CHECK(data_open(&r, p, smol, &o, &e) == 0, "open");
    PromptExample px;
    CHECK(data_next_prompt(r, &px, &e) == 0, "prompt 1: %s", e.msg);
    IntVec w = enc(smol, "Tell me");
    CHECK(px.n == w.n && same_ids(px.ids, w.v, w.n), "string prompt ids");
    CHECK(json_integer_value(json_object_get(px.record, "answer")) == 42 && json_is_string(px.prompt), "record kept");
    prompt_example_free(&px);
    intvec_free(&w);
    CHECK(data_next_prompt(r, &px, &e) == 0, "prompt 2: %s", e.msg);
    char *s;
    size_t l;
    tok_decode(smol, px.ids, px.n, 0, &s, &l, &e);
    CHECK(!strcmp(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "messages prompt \"%s\"", s);
    free(s);
    CHECK(json_is_array(px.prompt), "prompt value kept");
    prompt_example_free(&px);
    CHECK(data_next_prompt(r, &px, &e) == DATA_END, "end");
    CHECK(data_reader_kind(r) == DATA_PROMPT_ONLY, "kind %s", data_kind_name(data_reader_kind(r)));
    data_close(r);
    /* data_next on prompt-only data is a usage error */
    Example ex;
    CHECK(data_open(&r, p, smol, &o, &e) == 0, "open");
    CHECK(data_next(r, &ex, &e) == EX_USAGE, "prompt-only via data_next");
    data_close(r);
    free(p);
}

static void test_batches(void) {
    int a_ids[] = {10, 11, 12, 13}, b_ids[] = {20, 21}, c_ids[] = {30, 31, 32};
    unsigned char a_m[] = {0, 0, 1, 1}, b_m[] = {0, 1}, c_m[] = {0, 1, 1};
    Example a = {.ids = a_ids, .mask = a_m, .n = 4}, b = {.ids = b_ids, .mask = b_m, .n = 2},
            c = {.ids = c_ids, .mask = c_m, .n = 3};
    const Example *list[] = {&a, &b, &c};
    Batch bt;
    Error e = {0};
    int used = batch_fill(&bt, list, 3, 2, 0, 0, 99, &e);
    CHECK(used == 2 && bt.B == 2 && bt.T == 4, "plain batch: used %d B %d T %d", used, bt.B, bt.T);
    int want_tok[] = {10, 11, 12, 13, 20, 21, 99, 99};
    int want_tgt[] = {-1, 12, 13, -1, 21, -1, -1, -1};
    int want_pos[] = {0, 1, 2, 3, 0, 1, 0, 0};
    int want_seg[] = {0, 0, 0, 0, 0, 0, BATCH_PAD_SEG, BATCH_PAD_SEG};
    CHECK(same_ids(bt.tokens, want_tok, 8) && same_ids(bt.targets, want_tgt, 8) && same_ids(bt.pos, want_pos, 8) &&
              same_ids(bt.seg, want_seg, 8),
          "plain batch layout");
    if (!same_ids(bt.targets, want_tgt, 8)) print_ids("targets", bt.targets, 8);
    CHECK(bt.lengths[0] == 4 && bt.lengths[1] == 2 && bt.n_targets == 3, "lengths/n_targets %ld", bt.n_targets);
    batch_free(&bt);
    /* packing into rows of 6: [a b] [c] */
    used = batch_fill(&bt, list, 3, 2, 6, 1, 0, &e);
    CHECK(used == 3 && bt.B == 2 && bt.T == 6 && bt.n_examples == 3, "packed: used %d B %d", used, bt.B);
    int p_tok[] = {10, 11, 12, 13, 20, 21, 30, 31, 32, 0, 0, 0};
    int p_tgt[] = {-1, 12, 13, -1, 21, -1, 31, 32, -1, -1, -1, -1};
    int p_pos[] = {0, 1, 2, 3, 0, 1, 0, 1, 2, 0, 0, 0};
    int p_seg[] = {0, 0, 0, 0, 1, 1, 0, 0, 0, BATCH_PAD_SEG, BATCH_PAD_SEG, BATCH_PAD_SEG};
    CHECK(same_ids(bt.tokens, p_tok, 12) && same_ids(bt.targets, p_tgt, 12) && same_ids(bt.pos, p_pos, 12) &&
              same_ids(bt.seg, p_seg, 12),
          "packed layout");
    if (!same_ids(bt.seg, p_seg, 12)) print_ids("seg", bt.seg, 12);
    CHECK(bt.ex_row[1] == 0 && bt.ex_start[1] == 4 && bt.ex_len[1] == 2 && bt.ex_row[2] == 1, "packed ex_*");
    batch_free(&bt);
    /* only one row: packing stops when rows run out */
    used = batch_fill(&bt, list, 3, 1, 6, 1, 0, &e);
    CHECK(used == 2 && bt.B == 1, "one packed row: used %d", used);
    batch_free(&bt);
    /* rows chosen by the caller: [c] [a b] even though c's row has room for b */
    const Example *units[] = {&c, &a, &b};
    int ulen[] = {1, 2};
    CHECK(batch_fill_units(&bt, units, ulen, 2, 6, 0, &e) == 0 && bt.B == 2 && bt.n_examples == 3, "units: %s", e.msg);
    int u_tok[] = {30, 31, 32, 0, 0, 0, 10, 11, 12, 13, 20, 21};
    int u_seg[] = {0, 0, 0, BATCH_PAD_SEG, BATCH_PAD_SEG, BATCH_PAD_SEG, 0, 0, 0, 0, 1, 1};
    CHECK(same_ids(bt.tokens, u_tok, 12) && same_ids(bt.seg, u_seg, 12) && bt.lengths[0] == 3 && bt.lengths[1] == 6,
          "units layout");
    batch_free(&bt);
    int ubad[] = {3};
    CHECK(batch_fill_units(&bt, units, ubad, 1, 6, 0, &e) == EX_DATAERR, "unit longer than a row accepted");
    /* an example longer than the row is an error */
    used = batch_fill(&bt, list, 3, 2, 3, 1, 0, &e);
    CHECK(used == -1 && e.code == EX_DATAERR, "too long for packing: %d", used);
    used = batch_fill(&bt, list, 3, 2, 3, 0, 0, &e);
    CHECK(used == -1, "too long for max_T: %d", used);
}

/* Memory must not grow with the number of records: the peak after 120000 records is
 * the peak after 40000 (by then the tokenizer's bounded word cache is full). */
static void test_streaming_memory(void) {
    char *p = path_join(tmpdir, "many.jsonl");
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 120000; i++)
        fprintf(f, "{\"prompt\": \"Question %d: what is %d plus %d?\", \"completion\": \" It is %d.\"}\n", i, i, i,
                2 * i);
    fclose(f);
    DataOptions o;
    data_options_default(&o);
    DataReader *r;
    Error e = {0};
    CHECK(data_open(&r, p, gpt2, &o, &e) == 0, "open");
    Example ex;
    size_t rss_mid = 0;
    long n = 0;
    while (data_next(r, &ex, &e) == 0) {
        example_free(&ex);
        if (++n == 40000) rss_mid = peak_rss_bytes();
    }
    size_t rss_end = peak_rss_bytes();
    CHECK(n == 120000, "streamed %ld", n);
#ifndef __SANITIZE_ADDRESS__ /* ASan's quarantine keeps freed memory on purpose */
    CHECK(rss_end < rss_mid + (1u << 20), "peak RSS grew from %zu KiB to %zu KiB", rss_mid >> 10, rss_end >> 10);
#endif
    printf("streaming: 120000 records, peak RSS %zu KiB after 40000, %zu KiB at the end\n", rss_mid >> 10,
           rss_end >> 10);
    data_close(r);
    unlink(p);
    free(p);
}

int main(void) {
    char t[] = "/tmp/cherry-data-XXXXXX";
    strcpy(tmpdir, mkdtemp(t));
    gpt2 = load("gpt2.json", 0);
    llama = load("llama3.json", 0);
    smol = load("smol.json", 1);
    test_streaming_memory(); /* first, so the peak RSS is not already set by the 65 MiB line */
    test_text_drop_empty();
    test_prompt_completion();
    test_rollout_segments();
    test_conversational();
    test_preference();
    test_default_system();
    test_truncation();
    test_bad_input();
    test_prompt_only();
    test_batches();
    tok_free(gpt2);
    tok_free(llama);
    tok_free(smol);
    remove_tree(tmpdir);
    return check_summary("test_data");
}
