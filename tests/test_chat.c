/* test_chat.c — chat templates: rendering and tokenization against the models' Jinja
 * templates (rendered by jinja2, tokenized by the `tokenizers` library; fixtures in
 * tests/oracle/tokenizers/chat_cases.jsonl), loss masks on assistant turns,
 * special-token injection from user text, hh/plain layouts, detection from
 * tokenizer_config.json, and the error paths. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/chat.h"
#include "formats/jinja.h"
#include "check.h"
#include "base/util.h"
#include "model/model.h"

#define DIR "tests/oracle/tokenizers"

/* Writes DIR/name with top-level keys replaced by patch into a fresh temporary
 * directory (plus an optional tokenizer_config.json) and loads it. */
static Tokenizer *load_in_dir(const char *name, const json_t *patch, const char *config_json, char *dir_out) {
    char path[512];
    snprintf(path, sizeof path, DIR "/%s", name);
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) {
        printf("cannot read %s\n", path);
        exit(1);
    }
    if (patch) json_object_update(root, (json_t *)patch);
    char tmpl[] = "/tmp/cherry-chat-XXXXXX";
    char *d = mkdtemp(tmpl);
    char *tj = path_join(d, "tokenizer.json");
    json_dump_file(root, tj, JSON_COMPACT);
    json_decref(root);
    if (config_json) {
        char *cj = path_join(d, "tokenizer_config.json");
        FILE *f = fopen(cj, "w");
        fputs(config_json, f);
        fclose(f);
        free(cj);
    }
    Tokenizer *t;
    Error e = {0};
    if (model_tokenizer_load(&t, d, &e)) {
        printf("model_tokenizer_load: %s\n", e.msg);
        exit(1);
    }
    free(tj);
    if (dir_out)
        strcpy(dir_out, d);
    else
        remove_tree(d);
    return t;
}

static ChatMessage *messages_of(const json_t *arr, int *n) {
    *n = (int)json_array_size(arr);
    ChatMessage *m = xcalloc((size_t)*n + 1, sizeof *m);
    for (int i = 0; i < *n; i++) {
        m[i].role = json_string_value(json_object_get(json_array_get(arr, (size_t)i), "role"));
        m[i].content = json_string_value(json_object_get(json_array_get(arr, (size_t)i), "content"));
    }
    return m;
}

/* The models' Jinja sources of the built-in layouts (as in make_tokenizer_fixtures.py). */
static const char CHATML_JINJA[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char LLAMA3_JINJA[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

static char *config_with_template(const char *src, const char *bos, const char *eos) {
    json_t *o = json_object();
    json_object_set_new(o, "chat_template", json_string(src));
    if (bos) json_object_set_new(o, "bos_token", json_string(bos));
    if (eos) json_object_set_new(o, "eos_token", json_string(eos));
    char *s = json_dumps(o, 0);
    json_decref(o);
    return s;
}

/* The same conversation through --template jinja (the model's own template run by the
 * interpreter): same text, same ids, same train mask as the built-in layout. */
static void jinja_parity(const json_t *tokname, const json_t *patch, ChatTemplate tpl, const ChatMessage *m, int n,
                         int gen, const ChatRender *want, const IntVec *wids, const IntVec *wmask) {
    char *cfg = tpl == CHAT_CHATML ? config_with_template(CHATML_JINJA, NULL, "<|im_end|>")
                                   : config_with_template(LLAMA3_JINJA, "<|begin_of_text|>", "<|eot_id|>");
    Tokenizer *t = load_in_dir(json_string_value(tokname), patch, cfg, NULL);
    free(cfg);
    ChatTemplate got_tpl;
    Error e = {0};
    CHECK(chat_resolve(CHAT_AUTO, t, &got_tpl, &e) == 0 && got_tpl == tpl, "auto on the %s source: %d (%s)",
          chat_template_name(tpl), got_tpl, e.msg);
    ChatRender r;
    CHECK(chat_render_tok(CHAT_JINJA, t, m, n, gen, &r, &e) == 0, "jinja render: %s", e.msg);
    CHECK(r.len == want->len && !memcmp(r.text, want->text, r.len), "jinja %s:\n  expected \"%s\"\n  got      \"%s\"",
          chat_template_name(tpl), want->text, r.text);
    IntVec ids = {0}, mask = {0};
    CHECK(chat_tokenize(t, &r, &ids, &mask, &e) == 0, "jinja tokenize: %s", e.msg);
    int same = ids.n == wids->n && mask.n == wmask->n;
    for (int i = 0; same && i < ids.n; i++) same = ids.v[i] == wids->v[i] && mask.v[i] == wmask->v[i];
    CHECK(same, "jinja %s: ids or train mask differ from the built-in layout's (%d vs %d ids) for \"%s\"",
          chat_template_name(tpl), ids.n, wids->n, want->text);
    intvec_free(&ids);
    intvec_free(&mask);
    chat_render_free(&r);
    tok_free(t);
}

static void test_oracle_cases(void) {
    FILE *f = fopen(DIR "/chat_cases.jsonl", "r");
    if (!f) {
        printf("skipped: " DIR "/chat_cases.jsonl missing (run from the repository root)\n");
        exit(77);
    }
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0, n_ids = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *c = json_loads(line, 0, NULL);
        ChatTemplate tpl;
        Error e = {0};
        CHECK(chat_template_parse(json_string_value(json_object_get(c, "template")), &tpl, &e) == 0, "%s", e.msg);
        Tokenizer *t =
            load_in_dir(json_string_value(json_object_get(c, "tok")), json_object_get(c, "patch"), NULL, NULL);
        int n;
        ChatMessage *m = messages_of(json_object_get(c, "messages"), &n);
        int gen = json_is_true(json_object_get(c, "add_generation_prompt"));
        ChatRender r;
        CHECK(chat_render(tpl, m, n, gen, &r, &e) == 0, "render: %s", e.msg);
        const char *want = json_string_value(json_object_get(c, "text"));
        CHECK(!strcmp(r.text, want), "%s render differs:\n  expected \"%s\"\n  got      \"%s\"",
              chat_template_name(tpl), want, r.text);
        IntVec ids = {0}, mask = {0};
        CHECK(chat_tokenize(t, &r, &ids, &mask, &e) == 0, "tokenize: %s", e.msg);
        CHECK(ids.n == mask.n, "mask length %d != ids %d", mask.n, ids.n);
        jinja_parity(json_object_get(c, "tok"), json_object_get(c, "patch"), tpl, m, n, gen, &r, &ids, &mask);
        const json_t *wids = json_object_get(c, "ids");
        if (json_is_array(wids)) {
            int same = (int)json_array_size(wids) == ids.n;
            for (int i = 0; same && i < ids.n; i++)
                same = json_integer_value(json_array_get(wids, (size_t)i)) == ids.v[i];
            CHECK(same, "%s ids differ from the library's for \"%s\"", chat_template_name(tpl), want);
            n_ids++;
        } else {
            /* user text with special-token strings: they stay text */
            int start_id = tok_piece_to_id(t, tpl == CHAT_CHATML ? "<|im_start|>" : "<|start_header_id|>");
            int count = 0;
            for (int i = 0; i < ids.n; i++) count += ids.v[i] == start_id;
            CHECK(count == n + gen, "special token injected from content: %d headers for %d messages", count, n + gen);
        }
        /* the trained tokens are exactly the assistant contents and their closing tokens */
        IntVec tr = {0};
        for (int i = 0; i < ids.n; i++)
            if (mask.v[i]) intvec_push(&tr, ids.v[i]);
        char *got;
        size_t gl;
        CHECK(tok_decode(t, tr.v, tr.n, 0, &got, &gl, &e) == 0, "decode: %s", e.msg);
        char expect[4096] = "";
        for (int i = 0; i < n; i++) {
            if (strcmp(m[i].role, "assistant")) continue;
            const char *s = m[i].content;
            size_t l = strlen(s);
            if (tpl == CHAT_LLAMA3) { /* | trim */
                while (*s == ' ' || *s == '\n') s++, l--;
                while (l && (s[l - 1] == ' ' || s[l - 1] == '\n')) l--;
            }
            strncat(expect, s, l);
            strcat(expect, tpl == CHAT_CHATML ? "<|im_end|>" : "<|eot_id|>");
        }
        CHECK(!strcmp(got, expect), "trained text:\n  expected \"%s\"\n  got      \"%s\"", expect, got);
        free(got);
        intvec_free(&tr);
        intvec_free(&ids);
        intvec_free(&mask);
        chat_render_free(&r);
        free(m);
        tok_free(t);
        json_decref(c);
        n_cases++;
    }
    free(line);
    fclose(f);
    CHECK(n_cases >= 16 && n_ids >= 12, "only %d cases (%d with ids)", n_cases, n_ids);
    printf("chat oracle: %d cases, %d id sequences compared\n", n_cases, n_ids);
}

static void test_hh_plain(void) {
    ChatMessage m[] = {{"system", "Be nice."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}};
    ChatRender r;
    Error e = {0};
    CHECK(chat_render(CHAT_HH, m, 4, 1, &r, &e) == 0, "%s", e.msg);
    const char *want = "Be nice.\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Bye\n\nAssistant:";
    CHECK(!strcmp(r.text, want), "hh:\n  expected \"%s\"\n  got      \"%s\"", want, r.text);
    /* trained spans: " " and "Hello!" only */
    char trained[256] = "";
    for (int i = 0; i < r.n_spans; i++)
        if (r.spans[i].train) strncat(trained, r.text + r.spans[i].off, r.spans[i].len);
    CHECK(!strcmp(trained, " Hello!"), "hh trained text \"%s\"", trained);
    chat_render_free(&r);

    CHECK(chat_render(CHAT_PLAIN, m + 1, 3, 1, &r, &e) == 0, "%s", e.msg);
    CHECK(!strcmp(r.text, "Hi\n\nHello!\n\nBye\n\n"), "plain: got \"%s\"", r.text);
    chat_render_free(&r);
    CHECK(chat_render(CHAT_PLAIN, m + 1, 2, 0, &r, &e) == 0, "%s", e.msg);
    CHECK(!strcmp(r.text, "Hi\n\nHello!"), "plain without generation prompt: got \"%s\"", r.text);
    chat_render_free(&r);

    ChatMessage bad[] = {{"tool", "x"}};
    CHECK(chat_render(CHAT_HH, bad, 1, 0, &r, &e) == EX_DATAERR && strstr(e.msg, "tool"), "hh bad role: %s", e.msg);
    CHECK(chat_render(CHAT_AUTO, m, 1, 0, &r, &e) == EX_SOFTWARE, "unresolved template accepted");
    ChatMessage nul[] = {{"user", NULL}};
    CHECK(chat_render(CHAT_CHATML, nul, 1, 0, &r, &e) == EX_DATAERR, "NULL content accepted");
}

static void test_detect(void) {
    ChatTemplate t;
    Error e = {0};
    CHECK(chat_detect("{{'<|im_start|>' + message['role']}}<|im_end|>", &t, &e) == 0 && t == CHAT_CHATML, "chatml");
    CHECK(chat_detect("{{ '<|start_header_id|>' }}{{ '<|eot_id|>' }}", &t, &e) == 0 && t == CHAT_LLAMA3, "llama3");
    CHECK(chat_detect("{{ '\\n\\nHuman: ' }}{{ '\\n\\nAssistant:' }}", &t, &e) == 0 && t == CHAT_HH, "hh");
    CHECK(chat_detect("{{ bos_token }}[INST] {{ m }} [/INST]", &t, &e) == 0 && t == CHAT_JINJA,
          "other templates are run as Jinja: %d", t);
    CHECK(chat_detect(NULL, &t, &e) == EX_USAGE, "missing template accepted");
    CHECK(chat_template_parse("frobnicate", &t, &e) == EX_USAGE, "bad name accepted");
    CHECK(chat_template_parse("jinja", &t, &e) == 0 && t == CHAT_JINJA, "jinja name");
    CHECK(chat_template_parse("llama3", &t, &e) == 0 && t == CHAT_LLAMA3, "llama3 name");
    CHECK(!strcmp(chat_template_name(CHAT_HH), "hh"), "name of hh");

    /* from tokenizer_config.json, with AddedToken-style and string special tokens */
    const char *cfg = "{\"chat_template\": \"{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                      "'\\\\n' + message['content'] + '<|im_end|>' + '\\\\n'}}{% endfor %}\","
                      " \"eos_token\": {\"content\": \"<|im_end|>\", \"__type\": \"AddedToken\"},"
                      " \"bos_token\": null, \"pad_token\": \"<|endoftext|>\"}";
    Tokenizer *tok = load_in_dir("smol.json", NULL, cfg, NULL);
    /* this template has no generation prompt, so the built-in chatml (which adds one) does not match */
    CHECK(chat_resolve(CHAT_AUTO, tok, &t, &e) == 0 && t == CHAT_JINJA, "resolve from config: %s", chat_template_name(t));
    CHECK(chat_resolve(CHAT_HH, tok, &t, &e) == 0 && t == CHAT_HH, "explicit template wins");
    CHECK(tok_eos_id(tok) == tok_piece_to_id(tok, "<|im_end|>"), "eos from config: %d", tok_eos_id(tok));
    CHECK(tok_pad_id(tok) == tok_piece_to_id(tok, "<|endoftext|>"), "pad from config: %d", tok_pad_id(tok));
    CHECK(tok_bos_id(tok) == -1, "bos null in config: %d", tok_bos_id(tok));
    tok_free(tok);
    tok = load_in_dir("gpt2.json", NULL, NULL, NULL);
    CHECK(chat_resolve(CHAT_AUTO, tok, &t, &e) == EX_USAGE, "auto without tokenizer_config accepted");
    CHECK(tok_eos_id(tok) == tok_piece_to_id(tok, "<|endoftext|>") && tok_pad_id(tok) == tok_eos_id(tok),
          "eos/pad fallback: %d %d", tok_eos_id(tok), tok_pad_id(tok));
    /* a llama3 rendering needs tokens a GPT-2 vocabulary does not have */
    ChatMessage m[] = {{"user", "hi"}};
    ChatRender r;
    IntVec ids = {0};
    CHECK(chat_render(CHAT_LLAMA3, m, 1, 1, &r, &e) == 0, "%s", e.msg);
    CHECK(chat_tokenize(tok, &r, &ids, NULL, &e) == EX_DATAERR && strstr(e.msg, "<|begin_of_text|>"),
          "missing template token: %s", e.msg);
    intvec_free(&ids);
    chat_render_free(&r);
    tok_free(tok);
}

static void test_default_system(void) {
    /* SmolLM2-135M-Instruct's chat_template (newlines literal inside Jinja strings) */
    const char *smol = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
                       "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                       "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
                       "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
                       "'<|im_start|>assistant\n' }}{% endif %}";
    char *d = chat_default_system(smol);
    CHECK(d && !strcmp(d, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"), "smol: \"%s\"",
          d ? d : "(null)");
    free(d);
    /* Qwen2 style: Jinja escapes, and a first occurrence that is not a literal */
    const char *qwen = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n' + tools }}{% endif %}"
                       "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful "
                       "assistant.<|im_end|>\\n' }}{% endif %}";
    d = chat_default_system(qwen);
    CHECK(d && !strcmp(d, "You are a helpful assistant."), "qwen: \"%s\"", d ? d : "(null)");
    free(d);
    const char *plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                        "'<|im_end|>' + '\n'}}{% endfor %}";
    CHECK(chat_default_system(plain) == NULL, "template without a default system message");
    CHECK(chat_default_system(NULL) == NULL, "NULL source");
}

static char *read_template(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "tests/oracle/templates/%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = xcalloc(1 << 16, 1);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    s[n] = 0;
    fclose(f);
    return s;
}

/* auto: a recognised family only when it renders like the model's template */
static void test_auto_choice(void) {
    static const struct {
        const char *file, *tok, *bos, *eos;
        ChatTemplate want;
    } cases[] = {
        {"HuggingFaceTB-SmolLM2-135M-Instruct.jinja", "smol.json", "<|im_start|>", "<|im_end|>", CHAT_CHATML},
        {"chatml-OpenHermes-2.5-Mistral-7B.jinja", "smol.json", NULL, "<|im_end|>", CHAT_CHATML},
        {"meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3.json", "<|begin_of_text|>", "<|eot_id|>", CHAT_JINJA},
        /* default system prompt in an else branch; Qwen3's empty <think> block on the last turn */
        {"Qwen-Qwen2.5-7B-Instruct.jinja", "smol.json", NULL, "<|im_end|>", CHAT_JINJA},
        {"Qwen-Qwen3-0.6B.jinja", "smol.json", NULL, "<|im_end|>", CHAT_JINJA},
        {"HuggingFaceH4-zephyr-7b-beta.jinja", "smol.json", NULL, "<|endoftext|>", CHAT_JINJA},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *src = read_template(cases[i].file);
        CHECK(src, "cannot read %s", cases[i].file);
        if (!src) continue;
        char *cfg = config_with_template(src, cases[i].bos, cases[i].eos);
        Tokenizer *t = load_in_dir(cases[i].tok, NULL, cfg, NULL);
        ChatTemplate got;
        Error e = {0};
        CHECK(chat_resolve(CHAT_AUTO, t, &got, &e) == 0 && got == cases[i].want, "%s: auto chose %s (%s)",
              cases[i].file, chat_template_name(got), e.msg);
        if (cases[i].want == CHAT_JINJA) {
            /* train mask: the assistant contents and the token closing each turn */
            ChatMessage m[] = {{"system", "Be brief."}, {"user", "Hi <|eot_id|> there"}, {"assistant", "Hello, friend."},
                               {"user", "Bye"}, {"assistant", "  See you.\n"}};
            ChatRender r;
            IntVec ids = {0}, mask = {0}, tr = {0};
            CHECK(chat_render_tok(got, t, m, 5, 0, &r, &e) == 0, "%s: %s", cases[i].file, e.msg);
            CHECK(chat_tokenize(t, &r, &ids, &mask, &e) == 0, "%s: %s", cases[i].file, e.msg);
            for (int k = 0; k < ids.n; k++)
                if (mask.v[k]) intvec_push(&tr, ids.v[k]);
            char *txt;
            size_t tl;
            CHECK(tok_decode(t, tr.v, tr.n, 0, &txt, &tl, &e) == 0, "decode: %s", e.msg);
            const char *want = !strcmp(cases[i].tok, "llama3.json") ? "Hello, friend.<|eot_id|>See you.<|eot_id|>"
                               : strstr(cases[i].file, "zephyr") ? "Hello, friend.<|endoftext|>  See you.\n<|endoftext|>"
                               /* the last turn is what the model writes after the generation prompt */
                               : strstr(cases[i].file, "Qwen3") ? "Hello, friend.<|im_end|><think>\n\n</think>\n\n  See you.\n<|im_end|>"
                                                                 : "Hello, friend.<|im_end|>  See you.\n<|im_end|>";
            CHECK(!strcmp(txt, want), "%s: trained text \"%s\", expected \"%s\"", cases[i].file, txt, want);
            /* user text never becomes a control token */
            int eot = tok_piece_to_id(t, "<|eot_id|>"), n_eot = 0;
            for (int k = 0; k < ids.n; k++) n_eot += ids.v[k] == eot;
            if (eot >= 0) CHECK(n_eot == 5, "%s: %d <|eot_id|> tokens for 5 turns (injection?)", cases[i].file, n_eot);
            free(txt);
            intvec_free(&ids);
            intvec_free(&mask);
            intvec_free(&tr);
            chat_render_free(&r);
        }
        tok_free(t);
        free(cfg);
        free(src);
    }
    /* a template the interpreter cannot run: EX_DATAERR naming the construct */
    char *cfg = config_with_template("{% include 'other.jinja' %}", NULL, NULL);
    Tokenizer *t = load_in_dir("smol.json", NULL, cfg, NULL);
    ChatTemplate got;
    Error e = {0};
    CHECK(chat_resolve(CHAT_AUTO, t, &got, &e) == EX_DATAERR && strstr(e.msg, "include"), "unsupported: %s", e.msg);
    /* a template that raises: EX_DATAERR with its message */
    tok_free(t);
    free(cfg);
    cfg = config_with_template("{{ raise_exception('Only user roles') }}", NULL, NULL);
    t = load_in_dir("smol.json", NULL, cfg, NULL);
    CHECK(chat_resolve(CHAT_AUTO, t, &got, &e) == 0 && got == CHAT_JINJA, "resolve: %s", e.msg);
    ChatMessage m[] = {{"user", "x"}};
    ChatRender r;
    CHECK(chat_render_tok(got, t, m, 1, 0, &r, &e) == EX_DATAERR && strstr(e.msg, "Only user roles"), "raise: %s",
          e.msg);
    tok_free(t);
    free(cfg);
}

int main(void) {
    test_default_system();
    test_auto_choice();
    test_oracle_cases();
    test_hh_plain();
    test_detect();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
