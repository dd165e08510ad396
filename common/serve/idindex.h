/* idindex.h — which response and completion ids the interaction log holds, so
 * feedback can be checked before it is logged (an unknown id is a 404, a ranking
 * must name exactly the n completions of one response, a pick two completions of
 * the same prompt).  Filled from the log at start-up and as records are appended.
 * Thread-safe.  Not for: the texts themselves (the log has them). */
#ifndef CHERRY_IDINDEX_H
#define CHERRY_IDINDEX_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

typedef struct IdEntry {
    char *id;
    char *response; /* for a completion: its response id; for a response: NULL */
    int index;      /* completion: its index in the response; response: n */
    uint64_t prompt_hash;
    struct IdEntry *next;
} IdEntry;

typedef struct IdIndex {
    IdEntry **bucket;
    size_t n_bucket, count;
    pthread_mutex_t mu;
} IdIndex;

void idindex_init(IdIndex *x);
void idindex_free(IdIndex *x);
/* Adds an interaction record's response id and its choices' ids (records without
 * them are ignored).  Returns the number of ids added. */
int idindex_add_interaction(IdIndex *x, const json_t *rec);
/* Looks an id up: 1 and *out filled (strings borrowed, valid while x lives), or 0. */
int idindex_get(IdIndex *x, const char *id, IdEntry *out);
/* Hash of a prompt value (compact JSON, sorted keys), equal for equal prompts. */
uint64_t idindex_prompt_hash(const json_t *prompt);

#endif
