/* test_tokenizer_bpe.c — edges of the BPE model (tokenizer_bpe.c, parse_merges in
 * tokenizer.c), run under ASan+UBSan too:
 *   - a bad merge after good ones is an error naming model.merges[i], without
 *     leaking the merge buffer (LeakSanitizer fails the sanitizer run otherwise);
 *   - a word with no token (a character outside the vocabulary, no unk token, no
 *     byte fallback) makes tok_encode return EX_DATAERR instead of silently
 *     encoding to nothing, and encoding it into an empty vector passes no NULL
 *     pointer to memcpy (UBSan nonnull-attribute);
 *   - a word that dropped characters is not cached: it is an error every time;
 *   - the same for a Unigram model without unk_id (tokenizer_unigram.c; the library
 *     fails with "Encountered an unknown token but `unk_id` is missing"), and with
 *     one the character is its unknown token (ids from tokenizers 0.23.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "formats/tokenizer.h"

static char dir[64];

static Tokenizer *load_text(const char *json, Error *e, int *rc) {
    char *p = path_join(dir, "tokenizer.json");
    FILE *f = fopen(p, "w");
    fputs(json, f);
    fclose(f);
    Tokenizer *t = NULL;
    *rc = tok_load(&t, p, e);
    free(p);
    return t;
}

#define TOK(VOCAB, MERGES)                                                                                             \
    "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": null, "                     \
    "\"post_processor\": null, \"decoder\": null, \"model\": {\"type\": \"BPE\", \"vocab\": " VOCAB                    \
    ", \"merges\": " MERGES "}}"

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_tokenizer_bpe.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    Error e = {0};
    int rc;

    /* parse_merges: the error after a merge that allocated the buffer */
    Tokenizer *t = load_text(TOK("{\"a\": 0, \"b\": 1, \"ab\": 2}", "[\"a b\", 7]"), &e, &rc);
    CHECK(rc == EX_DATAERR && !t && strstr(e.msg, "model.merges[1]"), "bad second merge: got %d \"%s\"", rc, e.msg);
    t = load_text(TOK("{\"a\": 0, \"b\": 1, \"ab\": 2}", "[\"a b\", \"a c\"]"), &e, &rc);
    CHECK(rc == EX_DATAERR && !t && strstr(e.msg, "model.merges[1]"), "unknown part: got %d \"%s\"", rc, e.msg);
    t = load_text(TOK("{\"a\": 0, \"b\": 1, \"ab\": 2}", "[\"a b\", \"a b c\"]"), &e, &rc);
    CHECK(rc == EX_DATAERR && !t && strstr(e.msg, "model.merges[1]"), "three parts: got %d \"%s\"", rc, e.msg);

    /* a vocabulary without 'x', no unk, no byte fallback */
    t = load_text(TOK("{\"a\": 0, \"b\": 1, \"ab\": 2}", "[\"a b\"]"), &e, &rc);
    CHECK(rc == 0 && t, "small BPE tokenizer: %s", e.msg);
    if (t) {
        IntVec ids = {0};
        CHECK(tok_encode(t, "ab", 2, 0, &ids) == 0 && ids.n == 1 && ids.v[0] == 2, "\"ab\" -> [2], got n=%d", ids.n);
        intvec_free(&ids);
        for (int pass = 0; pass < 2; pass++) { /* the second time from the word cache */
            ids = (IntVec){0};
            rc = tok_encode(t, "x", 1, 0, &ids);
            CHECK(rc == EX_DATAERR && ids.n == 0, "pass %d: \"x\" has no token: expected EX_DATAERR, got %d (n=%d)",
                  pass, rc, ids.n);
            intvec_free(&ids);
        }
        ids = (IntVec){0};
        rc = tok_encode(t, "axb", 3, 0, &ids);
        CHECK(rc == EX_DATAERR, "\"axb\": expected EX_DATAERR, got %d (n=%d)", rc, ids.n);
        intvec_free(&ids);
        tok_free(t);
    }
    { /* generated text with NUL bytes: U+FFFD each, so the JSONL line can be read back */
        size_t len = 6;
        char *txt = xmalloc(len);
        memcpy(txt, "a\0b\0\0c", len); /* 6 bytes, 3 of them NUL */
        utf8_replace_nul(&txt, &len);
        CHECK(len == 12 && !memcmp(txt, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c", 12),
              "utf8_replace_nul: got %zu bytes", len);
        free(txt);
        len = 3;
        txt = xstrdup("abc");
        utf8_replace_nul(&txt, &len);
        CHECK(len == 3 && !memcmp(txt, "abc", 3), "utf8_replace_nul without NUL changed the text");
        free(txt);
    }
#define UNI(VOCAB, UNK)                                                                                                \
    "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": null, "                     \
    "\"post_processor\": null, \"decoder\": null, \"model\": {\"type\": \"Unigram\", \"vocab\": " VOCAB UNK "}}"
    t = load_text(UNI("[[\"a\", -1.0], [\"b\", -2.0]]", ""), &e, &rc);
    CHECK(rc == 0 && t, "small Unigram tokenizer: %s", e.msg);
    if (t) {
        IntVec ids = {0};
        CHECK(tok_encode(t, "ab", 2, 0, &ids) == 0 && ids.n == 2 && ids.v[0] == 0 && ids.v[1] == 1,
              "Unigram \"ab\" -> [0, 1], got n=%d", ids.n);
        ids.n = 0;
        rc = tok_encode(t, "axb", 3, 0, &ids);
        CHECK(rc == EX_DATAERR && ids.n == 2, "Unigram \"axb\" without unk_id: expected EX_DATAERR, got %d (n=%d)", rc,
              ids.n);
        intvec_free(&ids);
        tok_free(t);
    }
    t = load_text(UNI("[[\"<unk>\", 0.0], [\"a\", -1.0], [\"b\", -2.0]]", ", \"unk_id\": 0"), &e, &rc);
    CHECK(rc == 0 && t, "small Unigram tokenizer with unk_id: %s", e.msg);
    if (t) {
        IntVec ids = {0};
        rc = tok_encode(t, "axb", 3, 0, &ids);
        CHECK(rc == 0 && ids.n == 3 && ids.v[0] == 1 && ids.v[1] == 0 && ids.v[2] == 2,
              "Unigram \"axb\" with unk_id -> [1, 0, 2]: got %d (n=%d)", rc, ids.n);
        intvec_free(&ids);
        tok_free(t);
    }
    char *p = path_join(dir, "tokenizer.json");
    unlink(p);
    free(p);
    rmdir(dir);
    if (failures) return 1;
    printf("test_tokenizer_bpe: all checks passed\n");
    return 0;
}
