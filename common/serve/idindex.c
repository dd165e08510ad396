/* idindex.c — see idindex.h.  A chained hash table (FNV-1a), grown at load 1. */
#include "idindex.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

void idindex_init(IdIndex *x) {
    memset(x, 0, sizeof *x);
    x->n_bucket = 1024;
    x->bucket = xcalloc(x->n_bucket, sizeof(IdEntry *));
    pthread_mutex_init(&x->mu, NULL);
}

void idindex_free(IdIndex *x) {
    for (size_t b = 0; b < x->n_bucket; b++)
        for (IdEntry *p = x->bucket[b], *nx; p; p = nx) {
            nx = p->next;
            free(p->id);
            free(p->response);
            free(p);
        }
    free(x->bucket);
    pthread_mutex_destroy(&x->mu);
    memset(x, 0, sizeof *x);
}

static void grow(IdIndex *x) {
    size_t nb = 2 * x->n_bucket;
    IdEntry **b = xcalloc(nb, sizeof(IdEntry *));
    for (size_t i = 0; i < x->n_bucket; i++)
        for (IdEntry *p = x->bucket[i], *nx; p; p = nx) {
            nx = p->next;
            size_t k = fnv(p->id, strlen(p->id)) % nb;
            p->next = b[k];
            b[k] = p;
        }
    free(x->bucket);
    x->bucket = b;
    x->n_bucket = nb;
}

/* x->mu held.  An id already present keeps its first entry. */
static int put(IdIndex *x, const char *id, const char *response, int index, uint64_t ph) {
    size_t k = fnv(id, strlen(id)) % x->n_bucket;
    for (IdEntry *p = x->bucket[k]; p; p = p->next)
        if (!strcmp(p->id, id)) return 0;
    IdEntry *p = xcalloc(1, sizeof *p);
    p->id = xstrdup(id);
    p->response = response ? xstrdup(response) : NULL;
    p->index = index;
    p->prompt_hash = ph;
    p->next = x->bucket[k];
    x->bucket[k] = p;
    if (++x->count > x->n_bucket) grow(x);
    return 1;
}

uint64_t idindex_prompt_hash(const json_t *prompt) {
    char *s = json_dumps(prompt, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint64_t h = s ? fnv(s, strlen(s)) : 0;
    free(s);
    return h;
}

int idindex_add_interaction(IdIndex *x, const json_t *rec) {
    const char *rid = json_string_value(json_object_get(rec, "id"));
    const json_t *choices = json_object_get(rec, "choices");
    if (!rid || !json_is_array(choices)) return 0;
    uint64_t ph = idindex_prompt_hash(json_object_get(rec, "prompt"));
    pthread_mutex_lock(&x->mu);
    int added = put(x, rid, NULL, (int)json_array_size(choices), ph);
    for (size_t i = 0; i < json_array_size(choices); i++) {
        const json_t *c = json_array_get(choices, i);
        const char *cid = json_string_value(json_object_get(c, "id"));
        json_int_t idx = json_integer_value(json_object_get(c, "index"));
        if (cid) added += put(x, cid, rid, (int)idx, ph);
    }
    pthread_mutex_unlock(&x->mu);
    return added;
}

int idindex_get(IdIndex *x, const char *id, IdEntry *out) {
    pthread_mutex_lock(&x->mu);
    size_t k = fnv(id, strlen(id)) % x->n_bucket;
    int found = 0;
    for (IdEntry *p = x->bucket[k]; p; p = p->next)
        if (!strcmp(p->id, id)) {
            *out = *p;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&x->mu);
    return found;
}
