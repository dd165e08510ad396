/* test_tokenizer_stream.c — the streaming pre-tokenizer (tokenizer_pretok.c
 * pretok_encode) gives the ids of the one-batch pre-tokenizer on long texts: for
 * every Split behaviour (Removed, Isolated, MergedWithPrevious, MergedWithNext,
 * Contiguous), invert on and off, a literal split, Digits, and the real GPT-2,
 * Llama-3 and SmolLM2 tokenizers, texts of a few thousand words are encoded with
 * pieces sent on every 1, 2, 3, 5, 64 spans and with no batching at all; the ids
 * must be identical.  The same for Metaspace (every prepend_scheme, split on and
 * off), WhitespaceSplit, sequences of them with splits, and the Unigram
 * tokenizers; and Metaspace "first" after a split that drops the start of the
 * input does not prepend (ids from tokenizers 0.23.3).  (Run under ASan+UBSan too.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "check.h"
#include "formats/tokenizer.h"
#include "formats/tokenizer_impl.h"

static char dir[64];

static Tokenizer *load_pre(const char *pre) {
    char json[4096];
    /* a byte-level vocabulary of single characters, so every piece encodes */
    snprintf(json, sizeof json,
             "{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": %s, "
             "\"post_processor\": null, \"decoder\": null, \"model\": {\"type\": \"BPE\", \"vocab\": {"
             "\"a\": 0, \"b\": 1, \" \": 2, \"1\": 3, \"2\": 4, \",\": 5, \"ab\": 6, \" a\": 7, \"x\": 8,"
             " \"\\u2581\": 9},"
             " \"merges\": [[\"a\", \"b\"], [\" \", \"a\"]]}}",
             pre);
    char *p = path_join(dir, "tokenizer.json");
    FILE *f = fopen(p, "w");
    fputs(json, f);
    fclose(f);
    Tokenizer *t = NULL;
    Error e;
    if (tok_load(&t, p, &e)) printf("FAIL load %s: %s\n", pre, e.msg), failures++;
    free(p);
    return t;
}

/* ids of TEXT with batches of B spans (B = 1<<30: one batch) */
static void encode_b(Tokenizer *t, int b, const char *text, size_t n, IntVec *ids) {
    t->span_batch = b;
    ids->n = 0;
    tok_encode(t, text, n, 0, ids);
    t->span_batch = 0;
}

static void compare(Tokenizer *t, const char *what, const char *text, size_t n) {
    IntVec want = {0}, got = {0};
    encode_b(t, 1 << 30, text, n, &want);
    static const int batches[] = {1, 2, 3, 5, 64};
    for (int i = 0; i < 5; i++) {
        encode_b(t, batches[i], text, n, &got);
        int same = got.n == want.n && (want.n == 0 || !memcmp(got.v, want.v, (size_t)want.n * sizeof(int)));
        CHECK(same, "%s: batches of %d spans give %d ids, one batch %d", what, batches[i], got.n, want.n);
    }
    CHECK(want.n > 100, "%s: only %d ids", what, want.n);
    intvec_free(&want);
    intvec_free(&got);
}

/* a text of random runs of the characters the splits below care about */
static char *random_text(unsigned seed, size_t n) {
    static const char alphabet[] = "aab  ,12x";
    char *s = malloc(n + 1);
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) s[i] = alphabet[rng_below(&r, sizeof alphabet - 1)];
    s[n] = 0;
    return s;
}

#define MS(scheme, split)                                                                                              \
    "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": \"" scheme "\", \"split\": " split "}"
#define SEQ2(a, b) "{\"type\": \"Sequence\", \"pretokenizers\": [" a ", " b "]}"
#define SPLIT(pat, behavior)                                                                                           \
    "{\"type\": \"Split\", \"pattern\": {\"String\": \"" pat "\"}, \"behavior\": \"" behavior "\", \"invert\": false}"

/* ids of TEXT must be WANT (n_want of them) */
static void expect(Tokenizer *t, const char *what, const char *text, const int *want, int n_want) {
    IntVec got = {0};
    tok_encode(t, text, strlen(text), 0, &got);
    int same = got.n == n_want && !memcmp(got.v, want, (size_t)n_want * sizeof(int));
    CHECK(same, "%s on \"%s\": %d ids (first %d), want %d", what, text, got.n, got.n ? got.v[0] : -1, n_want);
    intvec_free(&got);
}

/* Metaspace and WhitespaceSplit stream like the splits, and "first" follows the
 * offsets: a piece cut further into the input no longer starts it. */
static void metaspace_cases(const char *text, size_t n) {
    const char *pres[] = {
        MS("always", "true"),
        MS("first", "true"),
        MS("never", "true"),
        MS("first", "false"),
        "{\"type\": \"WhitespaceSplit\"}",
        SEQ2("{\"type\": \"WhitespaceSplit\"}", MS("first", "true")),
        SEQ2(SPLIT(",", "Removed"), MS("first", "true")),
        SEQ2(MS("always", "true"), SPLIT("a", "MergedWithPrevious")),
    };
    for (int i = 0; i < 8; i++) {
        Tokenizer *t = load_pre(pres[i]);
        if (t) compare(t, pres[i], text, n), tok_free(t);
    }
    /* tokenizers 0.23.3: "bab" pre-tokenizes to [("b", (2, 3))], no prepend */
    Tokenizer *t = load_pre(SEQ2(SPLIT("ba", "Removed"), MS("first", "true")));
    if (t) {
        expect(t, "Split Removed + Metaspace first", "bab", (const int[]){1}, 1);
        expect(t, "Split Removed + Metaspace first", "xbab", (const int[]){9, 8, 1}, 3);
        expect(t, "Split Removed + Metaspace first", "b ab", (const int[]){9, 1, 9, 6}, 4);
        tok_free(t);
    }
    t = load_pre(SEQ2("{\"type\": \"WhitespaceSplit\"}", MS("first", "true")));
    if (t) {
        expect(t, "WhitespaceSplit + Metaspace first", "  ab ab", (const int[]){6, 6}, 2);
        expect(t, "WhitespaceSplit + Metaspace first", "ab ab", (const int[]){9, 6, 6}, 3);
        tok_free(t);
    }
    t = load_pre(SEQ2(SPLIT(" ", "MergedWithNext"), MS("first", "true")));
    if (t) {
        expect(t, "Split MergedWithNext + Metaspace first", " ab ab", (const int[]){9, 6, 9, 6}, 4);
        tok_free(t);
    }
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_tokenizer_stream.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    static const char *const behaviors[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                            "Contiguous"};
    char *text = random_text(7, 20000);
    size_t n = strlen(text);
    for (int b = 0; b < 5; b++)
        for (int inv = 0; inv < 2; inv++) {
            char pre[512], what[128];
            snprintf(pre, sizeof pre,
                     "{\"type\": \"Split\", \"pattern\": {\"Regex\": \" +|,\"}, \"behavior\": \"%s\", \"invert\": %s}",
                     behaviors[b], inv ? "true" : "false");
            snprintf(what, sizeof what, "regex split %s%s", behaviors[b], inv ? " inverted" : "");
            Tokenizer *t = load_pre(pre);
            if (t) compare(t, what, text, n), tok_free(t);
            snprintf(pre, sizeof pre,
                     "{\"type\": \"Split\", \"pattern\": {\"String\": \"a\"}, \"behavior\": \"%s\", \"invert\": %s}",
                     behaviors[b], inv ? "true" : "false");
            snprintf(what, sizeof what, "literal split %s%s", behaviors[b], inv ? " inverted" : "");
            t = load_pre(pre);
            if (t) compare(t, what, text, n), tok_free(t);
        }
    const char *seqs[] = {
        "{\"type\": \"Digits\", \"individual_digits\": true}",
        "{\"type\": \"Digits\", \"individual_digits\": false}",
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \",\"}, "
        "\"behavior\": \"MergedWithNext\", \"invert\": false}, {\"type\": \"Digits\", \"individual_digits\": true},"
        " {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Contiguous\", \"invert\": true}]}",
    };
    for (int i = 0; i < 3; i++) {
        Tokenizer *t = load_pre(seqs[i]);
        if (t) compare(t, seqs[i], text, n), tok_free(t);
    }
    metaspace_cases(text, n);
    free(text);
    /* the real tokenizers on real-looking text */
    const char *files[] = {"tests/oracle/tokenizers/gpt2.json", "tests/oracle/tokenizers/llama3.json",
                           "tests/oracle/tokenizers/smol.json", "tests/oracle/tokenizers/unigram.json",
                           "tests/oracle/tokenizers/unigram_bf.json"};
    size_t cap = 200000, len = 0;
    char *prose = malloc(cap);
    const char *words[] = {"The ",  "cat ", "sat  ", "on\n", "2024 ", "mats, ", "don't ", "\xc3\xa9t\xc3\xa9 ",
                           "  \n\n"};
    Rng r;
    rng_seed(&r, 3);
    while (len + 16 < cap) {
        const char *w = words[rng_below(&r, 9)];
        memcpy(prose + len, w, strlen(w));
        len += strlen(w);
    }
    for (int i = 0; i < 5; i++) {
        Tokenizer *t;
        Error e;
        if (tok_load(&t, files[i], &e)) {
            printf("FAIL %s\n", e.msg);
            failures++;
            continue;
        }
        compare(t, files[i], prose, len);
        tok_free(t);
    }
    free(prose);
    char *p = path_join(dir, "tokenizer.json");
    unlink(p);
    free(p);
    rmdir(dir);
    if (failures) return 1;
    printf("test_tokenizer_stream: all checks passed\n");
    return 0;
}
