/* task.c — see task.h. */
#include "task.h"

#include <stdio.h>
#include <string.h>

static const char *const WORDS[] = {
    "red",   "blue", "green", "gold", "fox",  "cat",  "dog",   "bird", "sky",  "sea",   "sun",  "moon",  "tree", "rock",
    "river", "hill", "rain",  "snow", "wind", "fire", "stone", "leaf", "star", "cloud", "lamp", "door",  "book", "cup",
    "bread", "milk", "apple", "pear", "plum", "corn", "salt",  "rose", "bell", "ship",  "road", "bridge"};
#define N_WORDS ((int)(sizeof WORDS / sizeof WORDS[0]))

void task_prompt(Rng *r, int split, int max_words, char *prompt, size_t psz, char *words, size_t wsz) {
    if (max_words < 2) max_words = 2;
    for (;;) {
        int n = 2 + (int)rng_below(r, (uint64_t)(max_words - 1));
        int idx[16];
        unsigned h = 0;
        for (int i = 0; i < n && i < 16; i++) {
            idx[i] = (int)rng_below(r, N_WORDS);
            h = h * 31u + (unsigned)idx[i] * 7u + 1u;
        }
        /* the parity of a hash of the combination decides its split */
        if ((int)((h >> 3) & 1u) != (split & 1)) continue;
        size_t k = 0;
        words[0] = 0;
        for (int i = 0; i < n && i < 16; i++)
            k += snprintf(words + k, k < wsz ? wsz - k : 0, "%s%s", i ? " " : "", WORDS[idx[i]]);
        snprintf(prompt, psz, "Repeat: %s\nAnswer:", words);
        return;
    }
}

/* A wrong answer: one word replaced by another (never the same one). */
static void wrong_words(Rng *r, const char *words, char *out, size_t osz) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", words);
    char *tok[16];
    int n = 0;
    for (char *s = strtok(buf, " "); s && n < 16; s = strtok(NULL, " ")) tok[n++] = s;
    int which = (int)rng_below(r, (uint64_t)n);
    const char *repl;
    do repl = WORDS[rng_below(r, N_WORDS)];
    while (strcmp(repl, tok[which]) == 0);
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        k += snprintf(out + k, k < osz ? osz - k : 0, "%s%s", i ? " " : "", i == which ? repl : tok[i]);
}

void task_completion(Rng *r, TaskStyle style, const char *words, char *out, size_t osz) {
    char w[256];
    if (style == TASK_WRONG_POLITE || style == TASK_WRONG_CURT)
        wrong_words(r, words, w, sizeof w);
    else
        snprintf(w, sizeof w, "%s", words);
    int polite = style == TASK_GOOD || style == TASK_WRONG_POLITE;
    snprintf(out, osz, " %s.%s", w, polite ? " " TASK_CLOSING : "");
}

int task_prompt_words(const char *prompt, char *words, size_t wsz) {
    const char *p = strstr(prompt, "Repeat: ");
    if (!p) return -1;
    p += 8;
    const char *end = strchr(p, '\n');
    if (!end) return -1;
    size_t n = (size_t)(end - p);
    if (n == 0 || n + 1 > wsz) return -1;
    memcpy(words, p, n);
    words[n] = 0;
    return 0;
}

/* Skips trailing spaces/newlines and a literal EOS marker some tokenizers decode. */
static size_t trimmed_len(const char *s) {
    size_t n = strlen(s);
    for (;;) {
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
        static const char *const eos[] = {"<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>"};
        int cut = 0;
        for (int i = 0; i < 4; i++) {
            size_t m = strlen(eos[i]);
            if (n >= m && memcmp(s + n - m, eos[i], m) == 0) {
                n -= m;
                cut = 1;
            }
        }
        if (!cut) return n;
    }
}

int task_utility(const char *prompt, const char *completion) {
    char words[256];
    if (task_prompt_words(prompt, words, sizeof words) != 0) return -1;
    size_t n = trimmed_len(completion);
    const char *c = completion;
    while (n && *c == ' ') c++, n--;
    size_t wl = strlen(words);
    int correct = n >= wl + 1 && memcmp(c, words, wl) == 0 && c[wl] == '.';
    /* the closing counts when the completion ends with it */
    size_t cl = strlen(TASK_CLOSING);
    int polite = n >= cl && memcmp(c + n - cl, TASK_CLOSING, cl) == 0;
    return 2 * correct + polite;
}

double task_gold(const char *prompt, const char *completion) {
    char words[256], good[300];
    if (task_prompt_words(prompt, words, sizeof words) != 0) return 0;
    snprintf(good, sizeof good, " %s. %s", words, TASK_CLOSING);
    size_t n = trimmed_len(completion);
    return n == strlen(good) && memcmp(completion, good, n) == 0 ? 1.0 : 0.0;
}
