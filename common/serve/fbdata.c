/* fbdata.c — see fbdata.h. */
#include "fbdata.h"

#include <stdlib.h>
#include <string.h>

#include "base/jsonl.h"
#include "base/util.h"
#include "idindex.h"
#include "ilog.h"

typedef struct FbKey {
    const char *id;
    int it, choice; /* choice -1: a response id */
} FbKey;

#define PUSH(arr, n, cap)                                                                                              \
    do {                                                                                                               \
        if ((n) == (cap)) {                                                                                            \
            (cap) = (cap) ? 2 * (cap) : 16;                                                                            \
            (arr) = xrealloc((arr), (size_t)(cap) * sizeof *(arr));                                                    \
        }                                                                                                              \
    } while (0)

typedef struct Pass {
    FbLogs *L;
    const char *path;
    int feedback; /* 0: reading interactions, 1: reading feedback */
} Pass;

static int keep_version(const FbLogs *L, const char *v) {
    if (!L->versions) return 1;
    for (int i = 0; i < L->n_versions; i++)
        if (v && !strcmp(v, L->versions[i])) return 1;
    return 0;
}

static int add_interaction(Pass *P, json_t *rec, long line, Error *e) {
    FbLogs *L = P->L;
    const char *id = json_string_value(json_object_get(rec, "id"));
    const char *ver = json_string_value(json_object_get(rec, "model_version"));
    json_t *prompt = json_object_get(rec, "prompt"), *choices = json_object_get(rec, "choices");
    if (!id) return err_set(e, EX_DATAERR, "%s:%ld: field \"id\" must be a string", P->path, line);
    if (!json_is_string(prompt) && !json_is_array(prompt))
        return err_set(e, EX_DATAERR, "%s:%ld: field \"prompt\" must be a string or a message list", P->path, line);
    if (!json_is_array(choices) || json_array_size(choices) == 0)
        return err_set(e, EX_DATAERR, "%s:%ld: field \"choices\" must be a non-empty list", P->path, line);
    L->c.interactions++;
    if (!keep_version(L, ver)) {
        /* remembered, so feedback on it counts as "other version", not "unknown id" */
        PUSH(L->excluded, L->n_excluded, L->cap_excluded);
        L->excl_n = xrealloc(L->excl_n, (size_t)L->cap_excluded * sizeof(int));
        L->excluded[L->n_excluded] = xstrdup(id);
        L->excl_n[L->n_excluded++] = (int)json_array_size(choices);
        return 0;
    }
    PUSH(L->it, L->n_it, L->cap_it);
    FbInteraction *it = &L->it[L->n_it];
    memset(it, 0, sizeof *it);
    it->n = (int)json_array_size(choices);
    it->text = xcalloc((size_t)it->n, sizeof(char *));
    for (int i = 0; i < it->n; i++) {
        const json_t *c = json_array_get(choices, i);
        const char *t = json_string_value(json_object_get(c, "text"));
        json_int_t idx = json_integer_value(json_object_get(c, "index"));
        if (!t || idx != i) {
            free(it->text);
            return err_set(e, EX_DATAERR, "%s:%ld: field \"choices[%d]\" needs \"text\" and \"index\": %d", P->path,
                           line, i, i);
        }
        it->text[i] = xstrdup(t);
    }
    it->id = xstrdup(id);
    it->version = xstrdup(ver ? ver : "");
    it->prompt = json_incref(prompt);
    it->prompt_hash = idindex_prompt_hash(prompt);
    L->n_it++;
    return 0;
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(((const FbKey *)a)->id, ((const FbKey *)b)->id);
}

static void build_keys(FbLogs *L) {
    int n = 0;
    for (int i = 0; i < L->n_it; i++) n += 1 + L->it[i].n;
    for (int i = 0; i < L->n_excluded; i++) n += 1 + L->excl_n[i];
    L->keys = xcalloc((size_t)n ? (size_t)n : 1, sizeof(FbKey));
    /* choice ids are "<response id>-<index>" (api.h); kept in one allocation per key */
    for (int i = 0; i < L->n_it; i++) {
        L->keys[L->n_keys++] = (FbKey){xstrdup(L->it[i].id), i, -1};
        for (int c = 0; c < L->it[i].n; c++) {
            char *s = xmalloc(strlen(L->it[i].id) + 16);
            sprintf(s, "%s-%d", L->it[i].id, c);
            L->keys[L->n_keys++] = (FbKey){s, i, c};
        }
    }
    for (int i = 0; i < L->n_excluded; i++) {
        L->keys[L->n_keys++] = (FbKey){xstrdup(L->excluded[i]), -1, -1};
        for (int c = 0; c < L->excl_n[i]; c++) {
            char *s = xmalloc(strlen(L->excluded[i]) + 16);
            sprintf(s, "%s-%d", L->excluded[i], c);
            L->keys[L->n_keys++] = (FbKey){s, -1, c};
        }
    }
    qsort(L->keys, (size_t)L->n_keys, sizeof(FbKey), key_cmp);
}

static const FbKey *find(const FbLogs *L, const char *id) {
    if (!id) return NULL;
    FbKey k = {id, 0, 0};
    return bsearch(&k, L->keys, (size_t)L->n_keys, sizeof(FbKey), key_cmp);
}

/* Feedback naming an interaction of a model version not selected: skipped, counted. */
static int other_version(FbLogs *L, const FbKey *a, const FbKey *b) {
    if ((a && a->it < 0) || (b && b->it < 0)) return L->c.other_version++, 1;
    return 0;
}

static char *user_of(const json_t *rec) {
    const char *u = json_string_value(json_object_get(rec, "user"));
    return xstrdup(u ? u : "anonymous");
}

static int add_thumbs(FbLogs *L, json_t *rec) {
    const FbKey *k = find(L, json_string_value(json_object_get(rec, "completion_id")));
    const char *v = json_string_value(json_object_get(rec, "value"));
    if (other_version(L, k, NULL)) return 0;
    if (!k || k->choice < 0 || !v) return L->c.unknown_ids++, 0;
    char *user = user_of(rec);
    for (int i = 0; i < L->n_th; i++) /* the user's later thumbs replaces the earlier */
        if (L->th[i].it == k->it && L->th[i].choice == k->choice && !strcmp(L->th[i].user, user)) {
            L->th[i].up = !strcmp(v, "up");
            L->c.replaced++;
            free(user);
            return 0;
        }
    PUSH(L->th, L->n_th, L->cap_th);
    L->th[L->n_th++] = (FbThumb){k->it, k->choice, !strcmp(v, "up"), user};
    L->c.thumbs++;
    return 0;
}

static int add_ranking(FbLogs *L, json_t *rec, const char *path, long line, Error *e) {
    const FbKey *r = find(L, json_string_value(json_object_get(rec, "response_id")));
    const json_t *rk = json_object_get(rec, "ranking");
    if (other_version(L, r, NULL)) return 0;
    if (!r || r->choice >= 0) return L->c.unknown_ids++, 0;
    const FbInteraction *it = &L->it[r->it];
    if (!json_is_array(rk) || (int)json_array_size(rk) != it->n)
        return err_set(e, EX_DATAERR, "%s:%ld: field \"ranking\" must list the %d completions of %s", path, line, it->n,
                       it->id);
    int *order = xmalloc((size_t)it->n * sizeof(int));
    for (int i = 0; i < it->n; i++) {
        const FbKey *c = find(L, json_string_value(json_array_get(rk, i)));
        if (!c || c->it != r->it) {
            free(order);
            return err_set(e, EX_DATAERR, "%s:%ld: field \"ranking[%d]\" is not a completion of %s", path, line, i,
                           it->id);
        }
        order[i] = c->choice;
    }
    char *user = user_of(rec);
    for (int i = 0; i < L->n_rk; i++)
        if (L->rk[i].it == r->it && !strcmp(L->rk[i].user, user)) {
            free(L->rk[i].order);
            L->rk[i].order = order;
            L->c.replaced++;
            free(user);
            return 0;
        }
    PUSH(L->rk, L->n_rk, L->cap_rk);
    L->rk[L->n_rk++] = (FbRanking){r->it, order, user};
    L->c.rankings++;
    return 0;
}

static int add_pick(FbLogs *L, json_t *rec) {
    const FbKey *c = find(L, json_string_value(json_object_get(rec, "chosen")));
    const FbKey *r = find(L, json_string_value(json_object_get(rec, "rejected")));
    if (other_version(L, c, r)) return 0;
    if (!c || !r || c->choice < 0 || r->choice < 0) return L->c.unknown_ids++, 0;
    const char *id = json_string_value(json_object_get(rec, "id"));
    PUSH(L->pk, L->n_pk, L->cap_pk);
    L->pk[L->n_pk++] = (FbPick){c->it, c->choice, r->it, r->choice, xstrdup(id ? id : "pick")};
    L->c.picks++;
    return 0;
}

static int on_record(void *ctx, json_t *rec, long line, Error *e) {
    Pass *P = ctx;
    const char *obj = json_string_value(json_object_get(rec, "object"));
    if (!obj) return err_set(e, EX_DATAERR, "%s:%ld: field \"object\" must be a string", P->path, line);
    int is_fb = !strcmp(obj, "feedback"), is_it = !strcmp(obj, "interaction");
    if (!is_fb && !is_it) {
        if (!P->feedback) P->L->c.other++;
        return 0;
    }
    if (!P->feedback) return is_it ? add_interaction(P, rec, line, e) : 0;
    if (!is_fb) return 0;
    P->L->c.feedback++;
    const char *type = json_string_value(json_object_get(rec, "type"));
    if (!type) return err_set(e, EX_DATAERR, "%s:%ld: field \"type\" must be a string", P->path, line);
    if (!strcmp(type, "thumbs")) return add_thumbs(P->L, rec);
    if (!strcmp(type, "ranking")) return add_ranking(P->L, rec, P->path, line, e);
    if (!strcmp(type, "pick")) return add_pick(P->L, rec);
    return err_set(e, EX_DATAERR, "%s:%ld: field \"type\": unknown feedback type \"%s\"", P->path, line, type);
}

int fb_load(FbLogs *L, char *const *paths, int n_paths, const char *const *versions, int n_versions, Error *e) {
    memset(L, 0, sizeof *L);
    L->versions = versions;
    L->n_versions = n_versions;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) build_keys(L);
        for (int i = 0; i < n_paths; i++) {
            Pass P = {L, paths[i], pass};
            long torn = 0;
            if (ilog_read(paths[i], on_record, &P, &torn, e)) return e->code;
            if (pass == 0) L->c.torn += torn;
        }
    }
    return 0;
}

void fb_free(FbLogs *L) {
    for (int i = 0; i < L->n_it; i++) {
        for (int c = 0; c < L->it[i].n; c++) free(L->it[i].text[c]);
        free(L->it[i].text), free(L->it[i].id), free(L->it[i].version);
        json_decref(L->it[i].prompt);
    }
    for (int i = 0; i < L->n_th; i++) free(L->th[i].user);
    for (int i = 0; i < L->n_rk; i++) free(L->rk[i].order), free(L->rk[i].user);
    for (int i = 0; i < L->n_pk; i++) free(L->pk[i].id);
    for (int i = 0; i < L->n_keys; i++) free((char *)L->keys[i].id);
    for (int i = 0; i < L->n_excluded; i++) free(L->excluded[i]);
    free(L->excluded), free(L->excl_n);
    free(L->it), free(L->th), free(L->rk), free(L->pk), free(L->keys);
    memset(L, 0, sizeof *L);
}

/* TRL's conversational form: a message-list prompt gets a one-message answer. */
static json_t *answer(const json_t *prompt, const char *text) {
    if (!json_is_array(prompt)) return json_string(text);
    return json_pack("[{s:s, s:s}]", "role", "assistant", "content", text);
}

static int put(FILE *fp, json_t *o, Error *e) {
    int rc = jsonl_write(fp, o, e);
    json_decref(o);
    return rc;
}

int fb_write_kto(FbLogs *L, FILE *fp, Error *e) {
    for (int i = 0; i < L->n_th; i++) {
        const FbThumb *t = &L->th[i];
        const FbInteraction *it = &L->it[t->it];
        json_t *o = json_pack("{s:O, s:o, s:b}", "prompt", it->prompt, "completion",
                              answer(it->prompt, it->text[t->choice]), "label", t->up);
        if (put(fp, o, e)) return e->code;
        if (t->up)
            L->c.kto_true++;
        else
            L->c.kto_false++;
    }
    return 0;
}

/* One chosen-over-rejected pair as a two-option record, through pd_pair_write. */
static int write_pair(FILE *fp, const FbInteraction *pit, const char *chosen, const char *rejected, const char *id,
                      long *count, FbCounts *c, Error *e) {
    if (!strcmp(chosen, rejected)) return c->equal_texts++, 0;
    PdRecord r;
    pd_record_init(&r);
    r.id = xstrdup(id);
    r.prompt = json_incref(pit->prompt);
    int a = pd_record_option(&r, "chosen"), b = pd_record_option(&r, "rejected");
    r.option_text[a] = xstrdup(chosen);
    r.option_text[b] = xstrdup(rejected);
    PdPair p = {a, b, 1.0, -1};
    int rc = pd_pair_write(fp, &r, &p, 0, e);
    pd_record_free(&r);
    if (!rc) (*count)++;
    return rc;
}

/* The users' rankings of one response as a PdRecord (options response-1..N). */
static void ranking_record(const FbLogs *L, int it_i, PdRecord *r) {
    const FbInteraction *it = &L->it[it_i];
    pd_record_init(r);
    r->id = xstrdup(it->id);
    r->prompt = json_incref(it->prompt);
    for (int c = 0; c < it->n; c++) {
        char name[32];
        snprintf(name, sizeof name, "response-%d", c + 1);
        int k = pd_record_option(r, name);
        r->option_text[k] = xstrdup(it->text[c]);
    }
    for (int i = 0; i < L->n_rk; i++) {
        if (L->rk[i].it != it_i) continue;
        PdAnnotation *a = pd_record_add_annotation(r, L->rk[i].user, PD_SUBMITTED);
        for (int pos = 0; pos < it->n; pos++) a->rank[L->rk[i].order[pos]] = pos + 1;
    }
}

static int ranking_pairs(FbLogs *L, FILE *fp, const PdPairOptions *po, Error *e) {
    unsigned char *done = xcalloc((size_t)L->n_it + 1, 1);
    PdPairList pl = {0};
    int rc = 0;
    for (int i = 0; i < L->n_rk && !rc; i++) {
        int it_i = L->rk[i].it;
        if (done[it_i]++) continue;
        PdRecord r;
        ranking_record(L, it_i, &r);
        double agreement;
        if (pd_record_pairs(&r, po, &pl, &agreement) == PD_USED)
            for (int k = 0; k < pl.n && !rc; k++) {
                if (!strcmp(r.option_text[pl.p[k].chosen], r.option_text[pl.p[k].rejected])) {
                    L->c.equal_texts++;
                    continue;
                }
                rc = pd_pair_write(fp, &r, &pl.p[k], 0, e);
                L->c.pairs_ranking++;
            }
        pd_record_free(&r);
    }
    free(pl.p);
    free(done);
    return rc;
}

/* Thumbs up x thumbs down of completions of the same prompt (any response, any
 * user), in log order, at most max per prompt. */
static int thumbs_pairs(FbLogs *L, FILE *fp, int max, Error *e) {
    unsigned char *used = xcalloc((size_t)L->n_th + 1, 1);
    int rc = 0;
    for (int i = 0; i < L->n_th && !rc; i++) {
        if (used[i]) continue;
        uint64_t ph = L->it[L->th[i].it].prompt_hash;
        int made = 0;
        for (int u = i; u < L->n_th && !rc; u++) {
            if (L->it[L->th[u].it].prompt_hash != ph) continue;
            used[u] = 1;
            if (!L->th[u].up) continue;
            for (int d = i; d < L->n_th && !rc && made < max; d++) {
                if (L->th[d].up || L->it[L->th[d].it].prompt_hash != ph) continue;
                const FbInteraction *a = &L->it[L->th[u].it], *b = &L->it[L->th[d].it];
                char id[160];
                snprintf(id, sizeof id, "thumbs:%s-%d>%s-%d", a->id, L->th[u].choice, b->id, L->th[d].choice);
                long before = L->c.pairs_thumbs;
                rc = write_pair(fp, a, a->text[L->th[u].choice], b->text[L->th[d].choice], id, &L->c.pairs_thumbs,
                                &L->c, e);
                made += L->c.pairs_thumbs > before;
            }
        }
    }
    free(used);
    return rc;
}

int fb_write_pairs(FbLogs *L, FILE *fp, const PdPairOptions *po, int max_thumb_pairs, Error *e) {
    if (ranking_pairs(L, fp, po, e)) return e->code;
    for (int i = 0; i < L->n_pk; i++) {
        const FbPick *p = &L->pk[i];
        if (write_pair(fp, &L->it[p->it_c], L->it[p->it_c].text[p->ch_c], L->it[p->it_r].text[p->ch_r], p->id,
                       &L->c.pairs_pick, &L->c, e))
            return e->code;
    }
    return max_thumb_pairs > 0 ? thumbs_pairs(L, fp, max_thumb_pairs, e) : 0;
}

int fb_write_argilla(FbLogs *L, FILE *fp, const char *question, Error *e) {
    for (int i = 0; i < L->n_it; i++) {
        const FbInteraction *it = &L->it[i];
        if (it->n < 2) continue;
        json_t *fields = json_object();
        json_object_set(fields, "prompt", it->prompt);
        for (int c = 0; c < it->n; c++) {
            char name[32];
            snprintf(name, sizeof name, "response-%d", c + 1);
            json_object_set_new(fields, name, json_string(it->text[c]));
        }
        json_t *resp = json_array();
        for (int k = 0; k < L->n_rk; k++) {
            if (L->rk[k].it != i) continue;
            json_t *value = json_array();
            for (int pos = 0; pos < it->n; pos++) {
                char name[32];
                snprintf(name, sizeof name, "response-%d", L->rk[k].order[pos] + 1);
                json_array_append_new(value, json_string(name));
            }
            json_array_append_new(
                resp, json_pack("{s:o, s:s, s:s}", "value", value, "user_id", L->rk[k].user, "status", "submitted"));
        }
        int ranked = json_array_size(resp) > 0;
        json_t *responses = json_object();
        if (ranked)
            json_object_set_new(responses, question, resp);
        else
            json_decref(resp);
        json_t *o = json_pack("{s:s, s:s, s:o, s:{s:s}, s:o, s:{}}", "id", it->id, "status",
                              ranked ? "completed" : "pending", "fields", fields, "metadata", "model_version",
                              it->version, "responses", responses, "suggestions");
        if (put(fp, o, e)) return e->code;
        L->c.argilla++;
        L->c.argilla_ranked += ranked;
    }
    return 0;
}
