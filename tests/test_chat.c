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
    CHECK(chat_detect("{{ bos_token }}[INST] {{ m }} [/INST]", &t, &e) == EX_USAGE && strstr(e.msg, "--template"),
          "unknown template: %s", e.msg);
    CHECK(chat_detect(NULL, &t, &e) == EX_USAGE, "missing template accepted");
    CHECK(chat_template_parse("jinja", &t, &e) == EX_USAGE, "bad name accepted");
    CHECK(chat_template_parse("llama3", &t, &e) == 0 && t == CHAT_LLAMA3, "llama3 name");
    CHECK(!strcmp(chat_template_name(CHAT_HH), "hh"), "name of hh");

    /* from tokenizer_config.json, with AddedToken-style and string special tokens */
    const char *cfg = "{\"chat_template\": \"{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                      "'\\\\n' + message['content'] + '<|im_end|>' + '\\\\n'}}{% endfor %}\","
                      " \"eos_token\": {\"content\": \"<|im_end|>\", \"__type\": \"AddedToken\"},"
                      " \"bos_token\": null, \"pad_token\": \"<|endoftext|>\"}";
    Tokenizer *tok = load_in_dir("smol.json", NULL, cfg, NULL);
    CHECK(chat_resolve(CHAT_AUTO, tok, &t, &e) == 0 && t == CHAT_CHATML, "resolve from config: %s", e.msg);
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

int main(void) {
    test_default_system();
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
