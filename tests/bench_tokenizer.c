/* bench_tokenizer.c — encoding throughput on English-like text, one core.
 * Target (issue 3): at least 5 MB/s per core, measured in thread CPU time so that a
 * loaded machine does not fail it.  The text is generated (seeded): common words
 * with a Zipf-like frequency plus a long tail of invented words, numbers and
 * punctuation, in lines of 5-40 words — so the word cache sees both hits and misses.
 * Usage: bench_tokenizer [tokenizer.json ...]   (default: the test fixtures) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "formats/tokenizer.h"
#include "base/util.h"

static const char *WORDS[] = {
    "the",       "of",          "and",          "to",          "a",          "in",         "is",         "that",
    "for",       "it",          "as",           "was",         "with",       "be",         "by",         "on",
    "not",       "he",          "this",         "are",         "or",         "his",        "from",       "at",
    "which",     "but",         "have",         "an",          "had",        "they",       "you",        "were",
    "their",     "one",         "all",          "we",          "can",        "her",        "has",        "there",
    "been",      "if",          "more",         "when",        "will",       "would",      "who",        "so",
    "no",        "model",       "reward",       "training",    "policy",     "language",   "human",      "preference",
    "learning",  "gradient",    "optimization", "however",     "because",    "through",    "between",    "important",
    "different", "information", "government",   "development", "experience", "understand", "particular", "university"};
static const char *SYL[] = {"ka", "lo", "ri", "the", "an", "ing", "er",  "sto", "pre", "ment", "tion", "qu",
                            "ab", "el", "is", "on",  "re", "de",  "con", "ex",  "ly",  "ous",  "ble",  "str"};

/* CPU time of this thread: throughput per core even on a loaded machine. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *gen_text(size_t target, size_t *len) {
    Rng r;
    rng_seed(&r, 42);
    char *buf = xmalloc(target + 256);
    size_t n = 0;
    int words_in_line = 0, line_len = 5 + (int)rng_below(&r, 36);
    while (n < target) {
        char w[64];
        int wl;
        double u = rng_uniform_double(&r);
        if (u < 0.80) { /* Zipf-like over the common words */
            size_t k = (size_t)(sizeof WORDS / sizeof *WORDS * (u / 0.80) * (u / 0.80));
            wl = snprintf(w, sizeof w, "%s", WORDS[k]);
        } else if (u < 0.95) {
            wl = 0;
            int s = 1 + (int)rng_below(&r, 4);
            for (int i = 0; i < s; i++) wl += snprintf(w + wl, sizeof w - (size_t)wl, "%s", SYL[rng_below(&r, 24)]);
        } else {
            wl = snprintf(w, sizeof w, "%u", (unsigned)rng_below(&r, 100000));
        }
        if (words_in_line == 0 && wl) w[0] = (char)(w[0] >= 'a' && w[0] <= 'z' ? w[0] - 32 : w[0]);
        if (words_in_line) buf[n++] = ' ';
        memcpy(buf + n, w, (size_t)wl);
        n += (size_t)wl;
        if (rng_below(&r, 12) == 0) buf[n++] = ",;:"[rng_below(&r, 3)];
        if (++words_in_line == line_len) {
            buf[n++] = '.';
            buf[n++] = '\n';
            words_in_line = 0;
            line_len = 5 + (int)rng_below(&r, 36);
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    const char *fixtures[] = {"tests/oracle/tokenizers/gpt2.json", "tests/oracle/tokenizers/llama3.json",
                              "tests/oracle/tokenizers/smol.json"};
    const char **paths = argc > 1 ? (const char **)argv + 1 : fixtures;
    int n_paths = argc > 1 ? argc - 1 : 3;
    size_t len;
    char *text = gen_text((size_t)32 << 20, &len);
    int slow = 0;
    for (int p = 0; p < n_paths; p++) {
        Tokenizer *t;
        Error e = {0};
        double t0 = now_seconds();
        if (tok_load(&t, paths[p], &e)) {
            fprintf(stderr, "bench_tokenizer: %s\n", e.msg);
            return 1;
        }
        double load = now_seconds() - t0;
        /* encode line by line, as the data layer does per record */
        IntVec ids = {0};
        long total = 0;
        t0 = now_seconds();
        double c0 = cpu_seconds();
        for (size_t i = 0; i < len;) {
            const char *nl = memchr(text + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - text) + 1 : len;
            ids.n = 0;
            tok_encode(t, text + i, end - i, 0, &ids);
            total += ids.n;
            i = end;
        }
        double cpu = cpu_seconds() - c0, secs = now_seconds() - t0;
        double mbs = (double)len / cpu / 1e6;
        printf("%-36s load %.3f s, %zu bytes -> %ld tokens: %.1f MB/s per core (%.2f Mtok/s; %.2f s CPU, %.2f s "
               "wall)%s\n",
               paths[p], load, len, total, mbs, total / cpu / 1e6, cpu, secs,
               mbs < 5.0 ? "  (below the 5 MB/s target)" : "");
        if (mbs < 5.0) slow = 1;
        intvec_free(&ids);
        tok_free(t);
    }
    free(text);
    return slow;
}
