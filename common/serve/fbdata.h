/* fbdata.h — serve's logs turned into training data (the `feedback` program).
 *
 * Reads interaction and feedback logs (man 5 cherry-serve-log; records told apart
 * by "object", torn lines from a crash skipped) and joins each feedback to the
 * completions it names.  A user's later judgement of the same thing replaces the
 * earlier one (the last thumbs per user and completion, the last ranking per user
 * and response); picks all count.  Feedback naming ids the given interaction logs
 * do not hold is counted and skipped.  Three outputs:
 *   KTO       {prompt, completion, label} (TRL's unpaired preference format): one
 *             per thumbs, up = true.
 *   pairs     {prompt, chosen, rejected, id} (man 5 cherry-pairs): rankings through
 *             the same pair rules as rank2pairs (prefdata.h: --pairs, --aggregate
 *             over users), picks, and thumbs-up x thumbs-down completions of the
 *             same prompt; never a pair of equal texts.
 *   Argilla   2.x records, one per response with two or more completions: fields
 *             prompt and response-1..N, the users' rankings as submitted responses
 *             (status "completed"), or none ("pending") for people to rank in
 *             Argilla; an export of them goes through rank2pairs.
 * Prompts keep their form: a completions prompt is a string, a chat prompt a
 * message list (conversational records, answers as one assistant message).
 * Not for: serving or logging (http.h, ilog.h). */
#ifndef CHERRY_FBDATA_H
#define CHERRY_FBDATA_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "data/prefdata.h"

typedef struct FbThumb {
    int it, choice; /* interaction and completion index */
    int up;
    char *user;
} FbThumb;

typedef struct FbRanking {
    int it;
    int *order; /* completion indices, best first [n of the interaction] */
    char *user;
} FbRanking;

typedef struct FbPick {
    int it_c, ch_c, it_r, ch_r;
    char *id;
} FbPick;

typedef struct FbInteraction {
    char *id, *version;
    json_t *prompt;
    uint64_t prompt_hash;
    int n;
    char **text; /* [n] */
} FbInteraction;

typedef struct FbCounts {
    long interactions, feedback, thumbs, rankings, picks, replaced, unknown_ids, other_version, torn, other;
    long kto_true, kto_false, pairs_ranking, pairs_pick, pairs_thumbs, equal_texts, argilla, argilla_ranked;
} FbCounts;

typedef struct FbLogs {
    FbInteraction *it;
    int n_it, cap_it;
    FbThumb *th;
    int n_th, cap_th;
    FbRanking *rk;
    int n_rk, cap_rk;
    FbPick *pk;
    int n_pk, cap_pk;
    char **excluded; /* ids of interactions of other model versions */
    int *excl_n, n_excluded, cap_excluded;
    struct FbKey *keys; /* completion and response ids, sorted, for lookups */
    int n_keys;
    const char *const *versions; /* only interactions of these model versions (NULL = all) */
    int n_versions;
    FbCounts c;
} FbLogs;

/* Reads the logs (any mix, any order: interactions are read before feedback).
 * versions/n_versions: keep only interactions of those model versions (and the
 * feedback on them).  Errors: EX_NOINPUT, EX_DATAERR naming FILE:LINE and field. */
int fb_load(FbLogs *L, char *const *paths, int n_paths, const char *const *versions, int n_versions, Error *e);
void fb_free(FbLogs *L);

int fb_write_kto(FbLogs *L, FILE *fp, Error *e);
/* max_thumb_pairs: most thumbs pairs per prompt (0 = none). */
int fb_write_pairs(FbLogs *L, FILE *fp, const PdPairOptions *po, int max_thumb_pairs, Error *e);
int fb_write_argilla(FbLogs *L, FILE *fp, const char *question, Error *e);

#endif
