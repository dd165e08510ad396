/* test_tokenizer_errors.c — hostile and unsupported tokenizer.json files give a
 * clear error naming the file and the JSON field (never a crash; this test also runs
 * under ASan+UBSan), and hostile text never breaks encoding: random bytes encode,
 * decode to valid UTF-8, and re-encode to the same ids. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/tokenizer.h"
#include "model/model.h"
#include "base/util.h"

static char dir[64];

/* Loads the GPT-2 fixture with `path` (a dotted JSON path) set to the JSON value
 * `value` ("DELETE" removes it), and checks the error code and message. */
static void expect_error(const char *path, const char *value, int code, const char *needle) {
    json_t *root = json_load_file("tests/oracle/tokenizers/gpt2.json", 0, NULL);
    json_t *obj = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *last = buf, *dot;
    while ((dot = strchr(last, '.'))) {
        *dot = 0;
        obj = json_object_get(obj, last);
        last = dot + 1;
    }
    if (!strcmp(value, "DELETE")) {
        json_object_del(obj, last);
    } else {
        json_error_t je;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
        if (!v) {
            printf("bad test value %s: %s\n", value, je.text);
            exit(1);
        }
        json_object_set_new(obj, last, v);
    }
    char *p = path_join(dir, "tokenizer.json");
    json_dump_file(root, p, JSON_COMPACT);
    json_decref(root);
    Tokenizer *t = NULL;
    Error e = {0};
    int rc = tok_load(&t, p, &e);
    CHECK(rc == code && t == NULL && strstr(e.msg, needle) && strstr(e.msg, "tokenizer.json"),
          "%s = %.60s: expected code %d and a message with \"%s\", got %d \"%s\"", path, value, code, needle, rc,
          e.msg);
    if (t) tok_free(t);
    free(p);
}

static void write_file(const char *name, const char *content) {
    char *p = path_join(dir, name);
    FILE *f = fopen(p, "w");
    fputs(content, f);
    fclose(f);
    free(p);
}

static void test_bad_files(void) {
    expect_error("model.type", "\"WordPiece\"", EX_DATAERR, "field \"model.type\": unsupported model type \"WordPiece\"");
    /* a BPE vocabulary (an object) under model.type Unigram */
    expect_error("model.type", "\"Unigram\"", EX_DATAERR, "field \"model.vocab\" must be a non-empty array");
    expect_error("model", "DELETE", EX_DATAERR, "field \"model\"");
    expect_error("model.vocab", "[1,2]", EX_DATAERR, "field \"model.vocab\"");
    expect_error("model.vocab", "{\"a\": \"x\"}", EX_DATAERR, "field \"model.vocab\"");
    expect_error("model.vocab", "{\"a\": 0, \"b\": 0}", EX_DATAERR, "id 0");
    expect_error("model.vocab", "{\"a\": -5}", EX_DATAERR, "field \"model.vocab\"");
    expect_error("model.merges", "[\"a\"]", EX_DATAERR, "field \"model.merges[0]\"");
    expect_error("model.merges", "[[\"a\"]]", EX_DATAERR, "field \"model.merges[0]\"");
    expect_error("model.merges", "[\"zzzq zzzr\"]", EX_DATAERR, "not in the vocabulary");
    expect_error("model.merges", "7", EX_DATAERR, "field \"model.merges\"");
    expect_error("model.dropout", "0.1", EX_DATAERR, "field \"model.dropout\"");
    expect_error("model.continuing_subword_prefix", "\"##\"", EX_DATAERR, "continuing_subword_prefix");
    expect_error("model.unk_token", "\"<nope>\"", EX_DATAERR, "field \"model.unk_token\"");
    expect_error("added_tokens", "[{\"id\": \"x\", \"content\": \"a\"}]", EX_DATAERR, "field \"added_tokens[0].id\"");
    expect_error("added_tokens", "[{\"id\": 5}]", EX_DATAERR, "field \"added_tokens[0].content\"");
    expect_error("added_tokens", "{}", EX_DATAERR, "field \"added_tokens\"");
    expect_error("normalizer", "{\"type\": \"NFKC\"}", EX_DATAERR, "unsupported normalizer \"NFKC\"");
    expect_error("pre_tokenizer", "{\"type\": \"BertPreTokenizer\"}", EX_DATAERR,
                 "field \"pre_tokenizer.type\": unsupported pre-tokenizer \"BertPreTokenizer\"");
    expect_error("pre_tokenizer", "{\"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"}", EX_DATAERR,
                 "pre_tokenizer.prepend_scheme");
    expect_error("pre_tokenizer", "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}", EX_DATAERR,
                 "pre_tokenizer.replacement");
    expect_error("normalizer", "{\"type\": \"Replace\", \"pattern\": {\"Regex\": \" +\"}, \"content\": \"x\"}",
                 EX_DATAERR, "normalizer.pattern");
    expect_error("normalizer", "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}", EX_DATAERR,
                 "unsupported normalizer \"Precompiled\"");
    expect_error("decoder", "{\"type\": \"Strip\", \"content\": \" \", \"start\": -1, \"stop\": 0}", EX_DATAERR,
                 "Strip needs");
    expect_error("pre_tokenizer", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Punctuation\"}]}",
                 EX_DATAERR, "pre_tokenizer.pretokenizers[0].type");
    expect_error("pre_tokenizer",
                 "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": "
                 "\"Isolated\", \"invert\": false}",
                 EX_DATAERR, "field \"pre_tokenizer.pattern.Regex\"");
    expect_error("pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Weird\"}",
                 EX_DATAERR, "field \"pre_tokenizer.behavior\"");
    expect_error("pre_tokenizer", "{\"type\": \"Split\", \"pattern\": 3, \"behavior\": \"Removed\"}", EX_DATAERR,
                 "field \"pre_tokenizer.pattern\"");
    expect_error("pre_tokenizer", "[]", EX_DATAERR, "field \"pre_tokenizer\"");
    expect_error("decoder", "{\"type\": \"WordPiece\"}", EX_DATAERR, "unsupported decoder \"WordPiece\"");
    expect_error("post_processor", "{\"type\": \"Whatever\"}", EX_DATAERR, "unsupported post-processor");
    expect_error("post_processor",
                 "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"X\"}}]}", EX_DATAERR,
                 "\"X\"");

    /* not JSON, not an object, empty, missing */
    Tokenizer *t = NULL;
    Error e = {0};
    char *p = path_join(dir, "bad.json");
    write_file("bad.json", "{\"model\": ");
    CHECK(tok_load(&t, p, &e) == EX_DATAERR && strstr(e.msg, "bad.json:1:"), "truncated JSON: %s", e.msg);
    write_file("bad.json", "[1]");
    CHECK(tok_load(&t, p, &e) == EX_DATAERR && strstr(e.msg, "JSON object"), "array: %s", e.msg);
    write_file("bad.json", "");
    CHECK(tok_load(&t, p, &e) == EX_DATAERR, "empty file: %s", e.msg);
    write_file("bad.json", "{\"model\": {\"vocab\": {\"\\u00ff\": 0}, \"merges\": []}, \"x\": \"\xff\"}");
    CHECK(tok_load(&t, p, &e) == EX_DATAERR, "invalid UTF-8 in tokenizer.json: %s", e.msg);
    free(p);
    CHECK(tok_load(&t, "/nonexistent/tokenizer.json", &e) == EX_NOINPUT, "missing: %s", e.msg);
    CHECK(model_tokenizer_load(&t, "/nonexistent", &e) == EX_NOINPUT, "missing dir: %s", e.msg);
}

/* xorshift for reproducible random bytes */
static uint64_t rs = 88172645463325252ULL;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void test_fuzz(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/oracle/tokenizers/%s", name);
    Tokenizer *t;
    Error e = {0};
    if (tok_load(&t, path, &e)) {
        printf("%s\n", e.msg);
        exit(1);
    }
    static const char *frag[] = {"<|endoftext|>", "<|im_start|>", "<mask>", "[[sep]]", "hello", "\xf0\x9f\x98",
                                 "\xe2\x82",      "\xff",         " ",      "\n\n",    "'s",    "123"};
    char buf[512];
    for (int it = 0; it < 3000; it++) {
        int n = (int)(rnd() % 200);
        int len = 0;
        for (int i = 0; i < n && len < 400; i++) {
            if (rnd() % 8 == 0) {
                const char *f = frag[rnd() % (sizeof frag / sizeof *frag)];
                size_t fl = strlen(f);
                memcpy(buf + len, f, fl);
                len += (int)fl;
            } else {
                buf[len++] = (char)(rnd() % 256);
            }
        }
        for (int ps = 0; ps < 2; ps++) {
            IntVec ids = {0};
            tok_encode(t, buf, (size_t)len, ps, &ids);
            char *dec;
            size_t dl;
            int rc = tok_decode(t, ids.v, ids.n, 0, &dec, &dl, &e);
            CHECK(rc == 0, "decode of own ids failed: %s", e.msg);
            if (rc) continue;
            /* the decoded text is valid UTF-8 and encodes back to the same ids
             * (the pre-tokenizer splits the same way once invalid bytes are U+FFFD) */
            IntVec again = {0};
            tok_encode(t, dec, dl, ps, &again);
            int same = again.n == ids.n && (!ids.n || !memcmp(again.v, ids.v, (size_t)ids.n * sizeof(int)));
            CHECK(same || !strcmp(name, "smol.json") /* lstrip/rstrip tokens eat whitespace */,
                  "%s: re-encode differs (iteration %d, %d vs %d ids)", name, it, again.n, ids.n);
            intvec_free(&again);
            free(dec);
            intvec_free(&ids);
        }
    }
    /* decode errors: ids out of range */
    int bad[] = {1, -3};
    char *dec;
    size_t dl;
    CHECK(tok_decode(t, bad, 2, 0, &dec, &dl, &e) == EX_DATAERR && strstr(e.msg, "-3"), "bad id: %s", e.msg);
    int big[] = {tok_vocab_size(t)};
    CHECK(tok_decode(t, big, 1, 0, &dec, &dl, &e) == EX_DATAERR, "id = vocab size accepted");
    char one[8];
    CHECK(tok_id_bytes(t, -1, one, 8) == -1 && tok_id_to_piece(t, 1 << 30) == NULL, "bad id accessors");
    tok_free(t);
}

int main(void) {
    if (access("tests/oracle/tokenizers/gpt2.json", R_OK)) {
        printf("skipped: tests/oracle/tokenizers missing (run from the repository root)\n");
        return 77;
    }
    char tmpl[] = "/tmp/cherry-tokerr-XXXXXX";
    strcpy(dir, mkdtemp(tmpl));
    test_bad_files();
    test_fuzz("gpt2.json");
    test_fuzz("llama3.json");
    test_fuzz("smol.json");
    remove_tree(dir);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
