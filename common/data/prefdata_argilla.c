/* prefdata_argilla.c — Argilla ranking-question exports -> PdRecord.
 *
 * Shapes (argilla-io/argilla; field names as the SDKs write them):
 *  1.x SDK/API records   {"fields": {...}, "external_id"?, "id"?,
 *                         "responses": [{"user_id", "status",
 *                           "values": {Q: {"value": [{"value": OPT, "rank": R}, ...]}}}]}
 *  1.x HF-datasets rows  {FIELD: text, ..., Q: [{"user_id", "status",
 *                           "value": [{"rank", "value"}] | {"rank": [...], "value": [...]}}],
 *                         "Q-suggestion": ..., "external_id", "metadata": "<JSON string>"}
 *  2.x nested records    {"id", "status": "pending"|"completed", "fields": {...},
 *                         "responses": {Q: [{"value": [OPT best first], "user_id", "status"?}]}}
 *  2.x flat rows         {FIELD: text, ..., "Q.responses": [[OPT best first], ...],
 *                         "Q.responses.users": [...], "Q.responses.status": [...]}
 * In 1.x a rank is 1 (best) .. number of options and may repeat (ties); in 2.x the
 * value is the options in order, best first, so there are no ties.  Only responses
 * whose status is "submitted" are read for ranks; a 2.x response without a status is
 * taken as submitted (older SDKs omit it; the record status is not used because a
 * "pending" record may already hold submitted responses when several are required). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "prefdata.h"

/* MISSING (NULL: a status is required) counts responses taken as submitted for
 * lack of one: a 2.x export without statuses cannot tell drafts from submissions,
 * and rank2pairs warns about that (prefdata.h PdRecord.status_missing). */
static int status_parse(const json_t *v, int *missing, PdStatus *out, const char *where, Error *e) {
    if (!v || json_is_null(v)) {
        if (missing) {
            (*missing)++;
            *out = PD_SUBMITTED;
            return 0;
        }
        return err_set(e, EX_DATAERR, "%s: response has no \"status\"", where);
    }
    const char *s = json_string_value(v);
    if (!s) return err_set(e, EX_DATAERR, "%s: response \"status\" must be a string", where);
    if (strcmp(s, "submitted") == 0)
        *out = PD_SUBMITTED;
    else if (strcmp(s, "draft") == 0 || strcmp(s, "pending") == 0)
        *out = PD_DRAFT;
    else if (strcmp(s, "discarded") == 0)
        *out = PD_DISCARDED;
    else
        return err_set(e, EX_DATAERR, "%s: unknown response status \"%s\" (expected submitted, draft or discarded)",
                       where, s);
    return 0;
}

static const char *user_of(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    return NULL;
}

/* A rank must be a whole number from 1 to the number of options in the response. */
static int rank_parse(const json_t *v, size_t n, double *out, const char *where, const char *q, Error *e) {
    if (!json_is_number(v)) return err_set(e, EX_DATAERR, "%s: question \"%s\": rank must be a number", where, q);
    double r = json_number_value(v);
    if (r != floor(r) || r < 1 || r > (double)n)
        return err_set(e, EX_DATAERR, "%s: question \"%s\": rank %g out of range (1..%zu)", where, q, r, n);
    *out = r;
    return 0;
}

static int set_rank(PdRecord *rec, PdAnnotation **ann, const char *opt, double rank, const char *where, const char *q,
                    Error *e) {
    int a_index = (int)(*ann - rec->ann);
    int i = pd_record_option(rec, opt); /* may reallocate rank arrays, not rec->ann */
    *ann = &rec->ann[a_index];
    if ((*ann)->rank[i] != 0)
        return err_set(e, EX_DATAERR, "%s: question \"%s\": option \"%s\" ranked twice by one annotator", where, q,
                       opt);
    (*ann)->rank[i] = rank;
    return 0;
}

/* 1.x ranking value: [{"value": OPT, "rank": R}] or (HF rows) {"rank": [...], "value": [...]}. */
static int ranking_1x(PdRecord *rec, PdAnnotation *ann, const json_t *value, const char *where, const char *q,
                      Error *e) {
    if (json_is_object(value)) {
        const json_t *ranks = json_object_get(value, "rank"), *vals = json_object_get(value, "value");
        if (!json_is_array(ranks) || !json_is_array(vals))
            return err_set(e, EX_DATAERR, "%s: question \"%s\": value must hold \"rank\" and \"value\" lists", where,
                           q);
        size_t n = json_array_size(vals);
        if (json_array_size(ranks) != n)
            return err_set(e, EX_DATAERR,
                           "%s: question \"%s\": parallel lists of different lengths (\"rank\" has %zu, \"value\" "
                           "has %zu)",
                           where, q, json_array_size(ranks), n);
        for (size_t k = 0; k < n; k++) {
            const char *opt = json_string_value(json_array_get(vals, k));
            if (!opt) return err_set(e, EX_DATAERR, "%s: question \"%s\": value[%zu] must be a string", where, q, k);
            double r = 0;
            int rc = rank_parse(json_array_get(ranks, k), n, &r, where, q, e);
            if (rc || (rc = set_rank(rec, &ann, opt, r, where, q, e))) return rc;
        }
        return 0;
    }
    if (!json_is_array(value))
        return err_set(e, EX_DATAERR, "%s: question \"%s\": ranking value must be a list of {value, rank}", where, q);
    size_t n = json_array_size(value);
    for (size_t k = 0; k < n; k++) {
        const json_t *it = json_array_get(value, k);
        const char *opt = json_string_value(json_object_get(it, "value"));
        if (!json_is_object(it) || !opt)
            return err_set(e, EX_DATAERR, "%s: question \"%s\": item %zu must be {\"value\": string, \"rank\": n}",
                           where, q, k);
        double r = 0;
        int rc = rank_parse(json_object_get(it, "rank"), n, &r, where, q, e);
        if (rc || (rc = set_rank(rec, &ann, opt, r, where, q, e))) return rc;
    }
    return 0;
}

/* 2.x ranking value: the options, best first. */
static int ranking_2x(PdRecord *rec, PdAnnotation *ann, const json_t *value, const char *where, const char *q,
                      Error *e) {
    if (!json_is_array(value))
        return err_set(e, EX_DATAERR, "%s: question \"%s\": ranking value must be a list of options, best first", where,
                       q);
    for (size_t k = 0; k < json_array_size(value); k++) {
        const char *opt = json_string_value(json_array_get(value, k));
        if (!opt) return err_set(e, EX_DATAERR, "%s: question \"%s\": value[%zu] must be a string", where, q, k);
        int rc = set_rank(rec, &ann, opt, (double)(k + 1), where, q, e);
        if (rc) return rc;
    }
    return 0;
}

/* ---- which question -------------------------------------------------------------- */
static int is_ranking_1x(const json_t *v) {
    if (json_is_object(v)) return json_is_array(json_object_get(v, "rank")) && json_object_get(v, "value");
    if (!json_is_array(v) || json_array_size(v) == 0) return 0;
    const json_t *it = json_array_get(v, 0);
    return json_is_object(it) && json_object_get(it, "rank") && json_object_get(it, "value");
}

static int is_string_list(const json_t *v) {
    if (!json_is_array(v) || json_array_size(v) == 0) return 0;
    for (size_t k = 0; k < json_array_size(v); k++)
        if (!json_is_string(json_array_get(v, k))) return 0;
    return 1;
}

typedef struct Names {
    char *v[16];
    int n;
} Names;

static void names_add(Names *s, const char *name, size_t len) {
    for (int i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && strncmp(s->v[i], name, len) == 0) return;
    if (s->n < 16) {
        s->v[s->n] = xmalloc(len + 1);
        memcpy(s->v[s->n], name, len);
        s->v[s->n][len] = 0;
        s->n++;
    }
}

static void names_free(Names *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    s->n = 0;
}

/* Ranking-shaped questions present in this row. */
static void find_questions(PdShape shape, const json_t *row, Names *out) {
    const char *key;
    const json_t *v;
    if (shape == PD_SHAPE_ARGILLA1) {
        const json_t *resp = json_object_get(row, "responses");
        for (size_t k = 0; k < json_array_size(resp); k++) {
            const json_t *vals = json_object_get(json_array_get(resp, k), "values");
            json_object_foreach((json_t *)vals, key, v) {
                if (is_ranking_1x(json_object_get(v, "value"))) names_add(out, key, strlen(key));
            }
        }
    } else if (shape == PD_SHAPE_ARGILLA1_HF) {
        json_object_foreach((json_t *)row, key, v) {
            if (!json_is_array(v)) continue;
            for (size_t k = 0; k < json_array_size(v); k++) {
                const json_t *it = json_array_get(v, k);
                if (json_is_object(it) && json_object_get(it, "user_id") &&
                    is_ranking_1x(json_object_get(it, "value"))) {
                    names_add(out, key, strlen(key));
                    break;
                }
            }
        }
    } else if (shape == PD_SHAPE_ARGILLA2) {
        json_object_foreach(json_object_get(row, "responses"), key, v) {
            for (size_t k = 0; k < json_array_size(v); k++)
                if (is_string_list(json_object_get(json_array_get(v, k), "value"))) {
                    names_add(out, key, strlen(key));
                    break;
                }
        }
    } else {
        json_object_foreach((json_t *)row, key, v) {
            size_t n = strlen(key);
            if (n <= 10 || strcmp(key + n - 10, ".responses") != 0) continue;
            for (size_t k = 0; k < json_array_size(v); k++)
                if (is_string_list(json_array_get(v, k))) {
                    names_add(out, key, n - 10);
                    break;
                }
        }
    }
}

/* Sets *q to the question to read, or NULL when this row has no ranking answer yet
 * and none was named or seen before (the record then has no response). */
static int pick_question(PdParser *p, PdShape shape, const json_t *row, const char *where, const char **q, Error *e) {
    *q = p->question ? p->question : p->question_found;
    if (*q) return 0;
    Names s = {0};
    find_questions(shape, row, &s);
    if (s.n > 1) {
        char list[400] = "";
        for (int i = 0; i < s.n; i++) {
            if (strlen(list) + strlen(s.v[i]) + 4 >= sizeof list) break;
            if (i) strcat(list, ", ");
            strcat(list, s.v[i]);
        }
        names_free(&s);
        return err_set(e, EX_DATAERR, "%s: several ranking questions (%s); choose one with --question", where, list);
    }
    if (s.n == 1) {
        p->question_found = s.v[0];
        s.v[0] = NULL;
        *q = p->question_found;
    }
    return 0;
}

/* ---- the four shapes ------------------------------------------------------------- */
static int read_1x_records(PdRecord *rec, const json_t *row, const char *q, const char *where, Error *e) {
    const json_t *resp = json_object_get(row, "responses");
    if (!json_is_array(resp) && !json_is_null(resp) && resp)
        return err_set(e, EX_DATAERR, "%s: \"responses\" must be a list", where);
    for (size_t k = 0; k < json_array_size(resp); k++) {
        const json_t *r = json_array_get(resp, k);
        char w[600];
        snprintf(w, sizeof w, "%s: responses[%zu]", where, k);
        if (!json_is_object(r)) return err_set(e, EX_DATAERR, "%s: must be an object", w);
        const json_t *vals = json_object_get(r, "values");
        if (vals && !json_is_object(vals)) return err_set(e, EX_DATAERR, "%s: \"values\" must be an object", w);
        const json_t *qv = json_object_get(vals, q);
        PdStatus st;
        int rc = status_parse(json_object_get(r, "status"), NULL, &st, w, e);
        if (rc) return rc;
        if (!qv) {
            /* A discarded response may carry no values; a submitted one that skips the
             * question simply did not answer it. */
            if (st != PD_SUBMITTED) pd_record_add_annotation(rec, user_of(json_object_get(r, "user_id")), st);
            continue;
        }
        PdAnnotation *a = pd_record_add_annotation(rec, user_of(json_object_get(r, "user_id")), st);
        if (st != PD_SUBMITTED) continue;
        if (!json_is_object(qv) || !json_object_get(qv, "value"))
            return err_set(e, EX_DATAERR, "%s: values.%s must be {\"value\": [...]}", w, q);
        if ((rc = ranking_1x(rec, a, json_object_get(qv, "value"), w, q, e))) return rc;
    }
    return 0;
}

static int read_1x_hf(PdRecord *rec, const json_t *row, const char *q, const char *where, Error *e) {
    const json_t *list = json_object_get(row, q);
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list))
        return err_set(e, EX_DATAERR, "%s: question \"%s\" must be a list of responses", where, q);
    for (size_t k = 0; k < json_array_size(list); k++) {
        const json_t *r = json_array_get(list, k);
        char w[600];
        snprintf(w, sizeof w, "%s: %s[%zu]", where, q, k);
        if (!json_is_object(r)) return err_set(e, EX_DATAERR, "%s: must be {\"user_id\", \"value\", \"status\"}", w);
        PdStatus st;
        int rc = status_parse(json_object_get(r, "status"), NULL, &st, w, e);
        if (rc) return rc;
        PdAnnotation *a = pd_record_add_annotation(rec, user_of(json_object_get(r, "user_id")), st);
        if (st != PD_SUBMITTED) continue;
        const json_t *v = json_object_get(r, "value");
        if (!v) return err_set(e, EX_DATAERR, "%s: missing field \"value\"", w);
        if ((rc = ranking_1x(rec, a, v, w, q, e))) return rc;
    }
    return 0;
}

static int read_2x_nested(PdRecord *rec, const json_t *row, const char *q, const char *where, Error *e) {
    const json_t *list = json_object_get(json_object_get(row, "responses"), q);
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return err_set(e, EX_DATAERR, "%s: responses.%s must be a list of responses", where, q);
    for (size_t k = 0; k < json_array_size(list); k++) {
        const json_t *r = json_array_get(list, k);
        char w[600];
        snprintf(w, sizeof w, "%s: responses.%s[%zu]", where, q, k);
        if (!json_is_object(r)) return err_set(e, EX_DATAERR, "%s: must be {\"value\", \"user_id\", \"status\"}", w);
        PdStatus st;
        int rc = status_parse(json_object_get(r, "status"), &rec->status_missing, &st, w, e);
        if (rc) return rc;
        PdAnnotation *a = pd_record_add_annotation(rec, user_of(json_object_get(r, "user_id")), st);
        if (st != PD_SUBMITTED) continue;
        const json_t *v = json_object_get(r, "value");
        if (!v) return err_set(e, EX_DATAERR, "%s: missing field \"value\"", w);
        if ((rc = ranking_2x(rec, a, v, w, q, e))) return rc;
    }
    return 0;
}

static int read_2x_flat(PdRecord *rec, const json_t *row, const char *q, const char *where, Error *e) {
    char kv[512], ku[512], ks[512];
    snprintf(kv, sizeof kv, "%s.responses", q);
    snprintf(ku, sizeof ku, "%s.responses.users", q);
    snprintf(ks, sizeof ks, "%s.responses.status", q);
    const json_t *vals = json_object_get(row, kv), *users = json_object_get(row, ku), *stat = json_object_get(row, ks);
    /* CSV writes an absent list as an empty cell. */
#define EMPTY(x) (!(x) || json_is_null(x) || (json_is_string(x) && json_string_length(x) == 0))
    if (EMPTY(vals)) return 0;
    if (!json_is_array(vals)) return err_set(e, EX_DATAERR, "%s: \"%s\" must be a list", where, kv);
    size_t n = json_array_size(vals);
    if (!EMPTY(users) && (!json_is_array(users) || json_array_size(users) != n))
        return err_set(e, EX_DATAERR, "%s: parallel lists of different lengths (\"%s\" has %zu, \"%s\" has %zu)", where,
                       kv, n, ku, json_is_array(users) ? json_array_size(users) : 0);
    if (!EMPTY(stat) && (!json_is_array(stat) || json_array_size(stat) != n))
        return err_set(e, EX_DATAERR, "%s: parallel lists of different lengths (\"%s\" has %zu, \"%s\" has %zu)", where,
                       kv, n, ks, json_is_array(stat) ? json_array_size(stat) : 0);
#undef EMPTY
    for (size_t k = 0; k < n; k++) {
        char w[600];
        snprintf(w, sizeof w, "%s: %s[%zu]", where, kv, k);
        PdStatus st;
        int rc = status_parse(json_array_get(stat, k), &rec->status_missing, &st, w, e);
        if (rc) return rc;
        PdAnnotation *a = pd_record_add_annotation(rec, user_of(json_array_get(users, k)), st);
        if (st != PD_SUBMITTED) continue;
        if ((rc = ranking_2x(rec, a, json_array_get(vals, k), w, q, e))) return rc;
    }
    return 0;
}

/* Option texts: Argilla options usually name the record's response fields.  If any
 * option names a text field, all must (an option naming no field is then an unknown
 * option); if none does, the option strings are the texts themselves. */
static int resolve_texts(PdRecord *rec, const json_t *fields, const char *where, const char *q, Error *e) {
    int matched = 0;
    for (int i = 0; i < rec->n_options; i++) matched += json_is_string(json_object_get(fields, rec->option_name[i]));
    for (int i = 0; i < rec->n_options; i++) {
        const json_t *f = json_object_get(fields, rec->option_name[i]);
        if (matched == 0)
            rec->option_text[i] = xstrdup(rec->option_name[i]);
        else if (json_is_string(f))
            rec->option_text[i] = xstrdup(json_string_value(f));
        else
            return err_set(e, EX_DATAERR,
                           "%s: question \"%s\": unknown option \"%s\" (no text field of that name, while other "
                           "options name fields)",
                           where, q, rec->option_name[i]);
    }
    return 0;
}

static char *id_of(const json_t *row) {
    static const char *const keys[] = {"external_id", "id"};
    for (int i = 0; i < 2; i++) {
        char *id = json_id_string(json_object_get(row, keys[i]));
        if (id) return id;
    }
    return NULL;
}

int pd_parse_argilla(PdParser *p, PdShape shape, const json_t *row, const char *where, PdRecordList *out, Error *e) {
    const json_t *fields = row;
    if (shape == PD_SHAPE_ARGILLA1 || shape == PD_SHAPE_ARGILLA2) {
        fields = json_object_get(row, "fields");
        if (!json_is_object(fields)) return err_set(e, EX_DATAERR, "%s: missing object field \"fields\"", where);
    }
    const char *q;
    int rc = pick_question(p, shape, row, where, &q, e);
    if (rc) return rc;
    PdRecord *rec = pd_list_push(out);
    rec->id = id_of(row);
    if ((rc = pd_prompt_from_fields(p, fields, where, &rec->prompt, e))) goto fail;
    if (!q) return 0; /* no ranking answer anywhere yet: no response */
    switch (shape) {
    case PD_SHAPE_ARGILLA1:
        rc = read_1x_records(rec, row, q, where, e);
        break;
    case PD_SHAPE_ARGILLA1_HF:
        rc = read_1x_hf(rec, row, q, where, e);
        break;
    case PD_SHAPE_ARGILLA2:
        rc = read_2x_nested(rec, row, q, where, e);
        break;
    default:
        rc = read_2x_flat(rec, row, q, where, e);
        break;
    }
    if (rc || (rc = resolve_texts(rec, fields, where, q, e))) goto fail;
    return 0;
fail:
    pd_record_free(rec);
    out->n--;
    return rc;
}
