/* data_files.c — whole files of examples read into arrays (data.h: data_read_all_pref,
 * data_read_files*), for the trainers that shuffle their data every epoch and the
 * programs that take every prompt at once (ppo, eval).  One generic reader serves
 * the three example types through small adapters.
 * Not for: streaming (data_next*, recstream.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "data.h"

/* How to read and free one element type. */
typedef struct ElemType {
    size_t size;
    int (*next)(DataReader *r, void *elem, Error *e);
    void (*free_elem)(void *elem);
    const char *noun; /* what the count line calls the examples */
} ElemType;

static int next_example(DataReader *r, void *x, Error *e) {
    return data_next(r, x, e);
}
static void free_example(void *x) {
    example_free(x);
}
static int next_pref(DataReader *r, void *x, Error *e) {
    return data_next_pref(r, x, e);
}
static void free_pref(void *x) {
    pref_example_free(x);
}

static int next_prompt(DataReader *r, void *x, Error *e) {
    return data_next_prompt(r, x, e);
}
static void free_prompt(void *x) {
    prompt_example_free(x);
}

static const ElemType EXAMPLES = {sizeof(Example), next_example, free_example, "examples"};
static const ElemType PAIRS = {sizeof(PrefExample), next_pref, free_pref, "pairs"};
static const ElemType PROMPTS = {sizeof(PromptExample), next_prompt, free_prompt, "prompts"};

static int read_all(const ElemType *t, const char *path, Tokenizer *tok, const DataOptions *o, void **out, int *n,
                    DataCounts *counts, Error *e) {
    DataReader *r;
    *out = NULL;
    *n = 0;
    int rc = data_open(&r, path, tok, o, e);
    if (rc) return rc;
    int cap = 0;
    char *a = NULL;
    for (;;) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            a = xrealloc(a, (size_t)cap * t->size);
        }
        rc = t->next(r, a + (size_t)*n * t->size, e);
        if (rc == DATA_END) {
            rc = 0;
            break;
        }
        if (rc) break;
        (*n)++;
    }
    if (counts) *counts = *data_counts(r);
    data_close(r);
    if (rc) {
        for (int i = 0; i < *n; i++) t->free_elem(a + (size_t)i * t->size);
        free(a);
        *n = 0;
        return rc;
    }
    *out = a;
    return 0;
}

int data_read_all_pref(const char *path, Tokenizer *tok, const DataOptions *o, PrefExample **out, int *n,
                       DataCounts *counts, Error *e) {
    void *a;
    int rc = read_all(&PAIRS, path, tok, o, &a, n, counts, e);
    *out = a;
    return rc;
}

static int read_files(const ElemType *t, const char *prog, char **paths, int n_paths, Tokenizer *tok,
                      const DataOptions *o, int quiet, void **out, int *n, Error *e) {
    char *stdin_path[1] = {"-"};
    if (n_paths == 0) {
        paths = stdin_path;
        n_paths = 1;
    }
    for (int p = 0; p < n_paths; p++) {
        void *ex = NULL;
        int k = 0;
        DataCounts c;
        memset(&c, 0, sizeof c);
        int rc = read_all(t, paths[p], tok, o, &ex, &k, &c, e);
        if (rc) return rc;
        if (!quiet && (c.dropped || c.skipped || c.truncated))
            fprintf(stderr, "%s: %s: %ld records, %ld %s (%ld truncated, %ld dropped, %ld invalid skipped)\n", prog,
                    paths[p], c.records, c.examples, t->noun, c.truncated, c.dropped, c.skipped);
        *out = xrealloc(*out, (size_t)(*n + k + 1) * t->size);
        if (k) memcpy((char *)*out + (size_t)*n * t->size, ex, (size_t)k * t->size);
        *n += k;
        free(ex);
    }
    return 0;
}

int data_read_files(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o, int quiet,
                    Example **out, int *n, Error *e) {
    void *a = *out;
    int rc = read_files(&EXAMPLES, prog, paths, n_paths, tok, o, quiet, &a, n, e);
    *out = a;
    return rc;
}

int data_read_files_pref(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o, int quiet,
                         PrefExample **out, int *n, Error *e) {
    void *a = *out;
    int rc = read_files(&PAIRS, prog, paths, n_paths, tok, o, quiet, &a, n, e);
    *out = a;
    return rc;
}

int data_read_files_prompts(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o,
                            int quiet, PromptExample **out, int *n, Error *e) {
    void *a = *out;
    int rc = read_files(&PROMPTS, prog, paths, n_paths, tok, o, quiet, &a, n, e);
    *out = a;
    return rc;
}
