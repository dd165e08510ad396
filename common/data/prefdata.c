/* prefdata.c — normalised preference records: shape detection, aggregation of
 * several annotators, agreement, the pair strategies, and writing pairs JSONL.
 * The rules are documented for users in man/man1/rank2pairs.1 and the output format
 * in man/man5/cherry-pairs.5; keep the three in step. */
#include "prefdata.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static const char *const shape_names[PD_SHAPE_COUNT] = {
    "auto", "argilla1",      "argilla1-hf", "argilla2", "argilla2-flat", "oasst",
    "shp",  "ultrafeedback", "summarize",   "hh",       "pairs",
};

const char *pd_shape_name(PdShape s) {
    return (s >= 0 && s < PD_SHAPE_COUNT) ? shape_names[s] : "?";
}

int pd_shape_parse(const char *name, PdShape *out) {
    for (int i = 0; i < PD_SHAPE_COUNT; i++)
        if (strcmp(name, shape_names[i]) == 0) {
            *out = (PdShape)i;
            return 0;
        }
    return -1;
}

static const char *const skip_names[PD_SKIP_COUNT] = {
    "no submitted response", "only draft or discarded", "one option", "all tied",
    "too few annotators",    "low agreement",           "invalid",
};

const char *pd_skip_name(PdSkip s) {
    return (s >= 0 && s < PD_SKIP_COUNT) ? skip_names[s] : "used";
}

/* ---- records ------------------------------------------------------------------ */
void pd_record_init(PdRecord *r) {
    memset(r, 0, sizeof *r);
    r->margin = NAN;
}

void pd_record_free(PdRecord *r) {
    free(r->id);
    json_decref(r->prompt);
    for (int i = 0; i < r->n_options; i++) {
        free(r->option_name[i]);
        free(r->option_text[i]);
    }
    free(r->option_name);
    free(r->option_text);
    for (int a = 0; a < r->n_ann; a++) {
        free(r->ann[a].user);
        free(r->ann[a].rank);
    }
    free(r->ann);
    memset(r, 0, sizeof *r);
}

int pd_record_option(PdRecord *r, const char *name) {
    for (int i = 0; i < r->n_options; i++)
        if (strcmp(r->option_name[i], name) == 0) return i;
    int n = r->n_options++;
    r->option_name = xrealloc(r->option_name, r->n_options * sizeof *r->option_name);
    r->option_text = xrealloc(r->option_text, r->n_options * sizeof *r->option_text);
    r->option_name[n] = xstrdup(name);
    r->option_text[n] = NULL;
    for (int a = 0; a < r->n_ann; a++) {
        r->ann[a].rank = xrealloc(r->ann[a].rank, r->n_options * sizeof(double));
        r->ann[a].rank[n] = 0;
    }
    return n;
}

PdAnnotation *pd_record_add_annotation(PdRecord *r, const char *user, PdStatus status) {
    r->ann = xrealloc(r->ann, (r->n_ann + 1) * sizeof *r->ann);
    PdAnnotation *a = &r->ann[r->n_ann++];
    a->user = user ? xstrdup(user) : NULL;
    a->status = status;
    a->rank = xcalloc(r->n_options ? r->n_options : 1, sizeof(double));
    r->had_responses = 1;
    return a;
}

PdRecord *pd_list_push(PdRecordList *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->r = xrealloc(l->r, l->cap * sizeof *l->r);
    }
    PdRecord *r = &l->r[l->n++];
    pd_record_init(r);
    return r;
}

void pd_list_clear(PdRecordList *l) {
    for (int i = 0; i < l->n; i++) pd_record_free(&l->r[i]);
    l->n = 0;
}

/* ---- parser and shape detection ------------------------------------------------- */
void pd_parser_init(PdParser *p, PdShape forced, const char *question, const char *prompt_field) {
    memset(p, 0, sizeof *p);
    p->forced = forced;
    p->question = question;
    p->prompt_field = prompt_field;
}

void pd_parser_new_file(PdParser *p) {
    p->shape = PD_SHAPE_AUTO;
    p->prompt_used = NULL;
    p->prompt_fallback = 0;
    free(p->question_found);
    p->question_found = NULL;
}

void pd_parser_free(PdParser *p) {
    free(p->question_found);
    p->question_found = NULL;
}

static int is_response_list(const json_t *v) {
    if (!json_is_array(v) || json_array_size(v) == 0) return 0;
    const json_t *first = json_array_get(v, 0);
    return json_is_object(first) && json_object_get(first, "user_id") && json_object_get(first, "value");
}

PdShape pd_shape_detect(const json_t *row) {
    const json_t *resp = json_object_get(row, "responses");
    if (json_is_array(resp) && json_is_object(json_object_get(row, "fields"))) return PD_SHAPE_ARGILLA1;
    if (json_is_object(resp)) return PD_SHAPE_ARGILLA2;
    if (json_object_get(row, "message_tree_id") || json_is_object(json_object_get(row, "prompt")))
        return PD_SHAPE_OASST;
    if (json_object_get(row, "human_ref_A")) return PD_SHAPE_SHP;
    if (json_object_get(row, "summaries") && json_object_get(row, "choice")) return PD_SHAPE_SUMMARIZE;
    const json_t *ch = json_object_get(row, "chosen");
    if (ch && json_object_get(row, "rejected")) {
        if (json_is_array(ch) || json_object_get(row, "score_chosen")) return PD_SHAPE_ULTRAFEEDBACK;
        if (json_object_get(row, "prompt")) return PD_SHAPE_PAIRS;
        return PD_SHAPE_HH;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)row, key, v) {
        size_t n = strlen(key);
        if (n > 10 && strcmp(key + n - 10, ".responses") == 0) return PD_SHAPE_ARGILLA2_FLAT;
    }
    json_object_foreach((json_t *)row, key, v) {
        if (is_response_list(v)) return PD_SHAPE_ARGILLA1_HF;
        size_t n = strlen(key);
        if (n > 11 && strcmp(key + n - 11, "-suggestion") == 0) return PD_SHAPE_ARGILLA1_HF;
    }
    return PD_SHAPE_AUTO;
}

int pd_parse_row(PdParser *p, const json_t *row, const char *where, PdRecordList *out, Error *e) {
    if (p->shape == PD_SHAPE_AUTO) {
        PdShape s = p->forced != PD_SHAPE_AUTO ? p->forced : pd_shape_detect(row);
        if (s == PD_SHAPE_AUTO) {
            char keys[300] = "";
            const char *key;
            const json_t *v;
            json_object_foreach((json_t *)row, key, v) {
                if (strlen(keys) + strlen(key) + 3 >= sizeof keys) break;
                if (keys[0]) strcat(keys, ", ");
                strcat(keys, key);
            }
            return err_set(e, EX_DATAERR, "%s: cannot tell the input format from the fields (%s); use --format", where,
                           keys);
        }
        p->shape = s;
    }
    switch (p->shape) {
    case PD_SHAPE_ARGILLA1:
    case PD_SHAPE_ARGILLA1_HF:
    case PD_SHAPE_ARGILLA2:
    case PD_SHAPE_ARGILLA2_FLAT:
        return pd_parse_argilla(p, p->shape, row, where, out, e);
    default:
        return pd_parse_source(p, p->shape, row, where, out, e);
    }
}

int pd_prompt_from_fields(PdParser *p, const json_t *fields, const char *where, json_t **out, Error *e) {
    static const char *const fallback[] = {"prompt", "instruction", "input"};
    const json_t *v = NULL;
    const char *used = NULL;
    if (p->prompt_field) {
        used = p->prompt_field;
        v = json_object_get(fields, used);
        if (!v) return err_set(e, EX_DATAERR, "%s: missing prompt field \"%s\"", where, used);
    } else {
        for (int i = 0; i < 3 && !v; i++) {
            v = json_object_get(fields, fallback[i]);
            used = fallback[i];
        }
        if (!v)
            return err_set(
                e, EX_DATAERR,
                "%s: no prompt field (looked for \"prompt\", \"instruction\", \"input\"); use --prompt-field", where);
    }
    if (!json_is_string(v) && !json_is_array(v))
        return err_set(e, EX_DATAERR, "%s: prompt field \"%s\" must be a string or a message list", where, used);
    p->prompt_used = used;
    p->prompt_fallback = strcmp(used, "prompt") != 0;
    *out = json_incref((json_t *)v);
    return 0;
}

/* ---- agreement -------------------------------------------------------------------- */
static int sgn(double x) {
    return (x > 0) - (x < 0);
}

double pd_agreement(const PdRecord *r) {
    double sum = 0;
    int n_pairs = 0;
    for (int a = 0; a < r->n_ann; a++) {
        if (r->ann[a].status != PD_SUBMITTED) continue;
        for (int b = a + 1; b < r->n_ann; b++) {
            if (r->ann[b].status != PD_SUBMITTED) continue;
            const double *ra = r->ann[a].rank, *rb = r->ann[b].rank;
            long same = 0, total = 0;
            for (int i = 0; i < r->n_options; i++) {
                if (ra[i] == 0 || rb[i] == 0) continue;
                for (int j = i + 1; j < r->n_options; j++) {
                    if (ra[j] == 0 || rb[j] == 0) continue;
                    total++;
                    same += sgn(ra[i] - ra[j]) == sgn(rb[i] - rb[j]);
                }
            }
            if (total) {
                sum += (double)same / (double)total;
                n_pairs++;
            }
        }
    }
    return n_pairs ? sum / n_pairs : NAN;
}

/* ---- pairs ---------------------------------------------------------------------- */
static void pairs_push(PdPairList *l, int c, int r, double margin, int annotator) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->p = xrealloc(l->p, l->cap * sizeof *l->p);
    }
    l->p[l->n++] = (PdPair){c, r, margin, annotator};
}

/* Majority check for --aggregate majority: wins[c*n+r] = annotators ranking c above r. */
typedef struct Votes {
    const int *wins;
    int n;
} Votes;

/* Emits the pairs of MODE over the options with has[i] set, ordered by score
 * (higher is better).  Output order: chosen by descending score (option index breaks
 * ties), then rejected the same way — stable for the same input. */
static void pairs_from_scores(int n, const double *score, const int *has, PdPairMode mode, int annotator,
                              const Votes *votes, PdPairList *out) {
    int *ord = xmalloc((n ? n : 1) * sizeof *ord), *level = xmalloc((n ? n : 1) * sizeof *level);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!has[i]) continue;
        int k = m++;
        while (k > 0 && score[ord[k - 1]] < score[i]) { /* insertion sort, stable */
            ord[k] = ord[k - 1];
            k--;
        }
        ord[k] = i;
    }
    int n_levels = 0;
    for (int k = 0; k < m; k++) {
        if (k > 0 && score[ord[k]] != score[ord[k - 1]]) n_levels++;
        level[k] = n_levels;
    }
    n_levels++;
    for (int a = 0; a < m && n_levels > 1; a++) {
        for (int b = a + 1; b < m; b++) {
            int la = level[a], lb = level[b];
            if (la == lb) continue; /* ties never form a pair */
            int take = 0;
            switch (mode) {
            case PD_PAIRS_ALL:
                take = 1;
                break;
            case PD_PAIRS_BEST_WORST:
                take = la == 0 && lb == n_levels - 1;
                break;
            case PD_PAIRS_BEST_REST:
                take = la == 0;
                break;
            case PD_PAIRS_ADJACENT:
                take = lb == la + 1;
                break;
            }
            if (!take) continue;
            int c = ord[a], r = ord[b];
            if (votes && votes->wins[c * votes->n + r] <= votes->wins[r * votes->n + c]) continue;
            pairs_push(out, c, r, score[c] - score[r], annotator);
        }
    }
    free(ord);
    free(level);
}

PdSkip pd_record_pairs(const PdRecord *r, const PdPairOptions *o, PdPairList *out, double *agreement) {
    out->n = 0;
    *agreement = NAN;
    int n = r->n_options, n_sub = 0;
    for (int a = 0; a < r->n_ann; a++) n_sub += r->ann[a].status == PD_SUBMITTED;
    if (n_sub == 0) return r->n_ann > 0 ? PD_SKIP_NOT_SUBMITTED : PD_SKIP_NO_RESPONSE;
    int *has = xcalloc(n ? n : 1, sizeof *has);
    int n_ranked = 0;
    for (int i = 0; i < n; i++) {
        for (int a = 0; a < r->n_ann; a++)
            if (r->ann[a].status == PD_SUBMITTED && r->ann[a].rank[i] != 0) has[i] = 1;
        n_ranked += has[i];
    }
    PdSkip why = PD_USED;
    *agreement = pd_agreement(r);
    if (n_ranked < 2)
        why = PD_SKIP_ONE_OPTION;
    else if (n_sub < o->min_annotators)
        why = PD_SKIP_FEW_ANNOTATORS;
    else if (o->min_agreement > 0 && !isnan(*agreement) && *agreement < o->min_agreement)
        why = PD_SKIP_LOW_AGREEMENT;
    if (why != PD_USED) {
        free(has);
        return why;
    }
    double *score = xcalloc(n, sizeof *score);
    int *cnt = xcalloc(n, sizeof *cnt);
    if (o->aggregate == PD_AGG_EACH) {
        /* Each annotator's own ranking, in response order. */
        int *mine = xcalloc(n, sizeof *mine);
        for (int a = 0; a < r->n_ann; a++) {
            if (r->ann[a].status != PD_SUBMITTED) continue;
            for (int i = 0; i < n; i++) {
                mine[i] = r->ann[a].rank[i] != 0;
                score[i] = -r->ann[a].rank[i];
            }
            pairs_from_scores(n, score, mine, o->mode, a, NULL, out);
        }
        free(mine);
    } else if (o->aggregate == PD_AGG_MEAN) {
        /* Mean rank over the annotators who ranked the option; lower mean = better. */
        for (int a = 0; a < r->n_ann; a++) {
            if (r->ann[a].status != PD_SUBMITTED) continue;
            for (int i = 0; i < n; i++)
                if (r->ann[a].rank[i] != 0) {
                    score[i] += r->ann[a].rank[i];
                    cnt[i]++;
                }
        }
        for (int i = 0; i < n; i++)
            if (cnt[i]) score[i] = -score[i] / cnt[i];
        pairs_from_scores(n, score, has, o->mode, -1, NULL, out);
    } else if (o->aggregate == PD_AGG_BORDA) {
        /* Borda count (de Borda 1781): an annotator gives each option one point per
         * option they ranked strictly below it; unranked options get none.  Scores are
         * averaged over annotators, so with complete rankings and no ties the Borda
         * difference equals the mean-rank difference. */
        for (int a = 0; a < r->n_ann; a++) {
            if (r->ann[a].status != PD_SUBMITTED) continue;
            const double *rk = r->ann[a].rank;
            for (int i = 0; i < n; i++) {
                if (rk[i] == 0) continue;
                for (int j = 0; j < n; j++)
                    if (rk[j] != 0 && rk[j] > rk[i]) score[i] += 1;
            }
        }
        for (int i = 0; i < n; i++) score[i] /= n_sub;
        pairs_from_scores(n, score, has, o->mode, -1, NULL, out);
    } else {
        /* Majority: wins[i][j] = annotators who rank i above j.  The aggregate order is
         * the Copeland score (Copeland 1951: pairwise majority wins minus losses), and a
         * pair is written only if a strict majority of the annotators who ranked both
         * options prefer the chosen one — so a majority cycle gives no pair. */
        int *wins = xcalloc((size_t)n * n, sizeof *wins);
        for (int a = 0; a < r->n_ann; a++) {
            if (r->ann[a].status != PD_SUBMITTED) continue;
            const double *rk = r->ann[a].rank;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (rk[i] != 0 && rk[j] != 0 && rk[i] < rk[j]) wins[i * n + j]++;
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) score[i] += sgn((double)(wins[i * n + j] - wins[j * n + i]));
        Votes v = {wins, n};
        pairs_from_scores(n, score, has, o->mode, -1, &v, out);
        free(wins);
    }
    free(score);
    free(cnt);
    free(has);
    if (!isnan(r->margin))
        for (int k = 0; k < out->n; k++) out->p[k].margin = r->margin;
    return out->n ? PD_USED : PD_SKIP_ALL_TIED;
}

static json_t *answer_json(const json_t *prompt, const char *text) {
    if (!json_is_array(prompt)) return json_string(text);
    json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", text);
    return json_pack("[o]", msg);
}

int pd_pair_write(FILE *fp, const PdRecord *r, const PdPair *p, int with_margin, Error *e) {
    json_t *o = json_object();
    json_object_set(o, "prompt", r->prompt);
    json_object_set_new(o, "chosen", answer_json(r->prompt, r->option_text[p->chosen]));
    json_object_set_new(o, "rejected", answer_json(r->prompt, r->option_text[p->rejected]));
    if (r->id) json_object_set_new(o, "id", json_string(r->id));
    if (with_margin) json_object_set_new(o, "margin", json_real(p->margin));
    /* 12 significant digits: mean ranks like 4/3 print as 1.33333333333, not as
     * %.17g noise, and still round-trip every margin a ranking can produce. */
    int rc = 0;
    if (json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) != 0 || fputc('\n', fp) == EOF)
        rc = err_set(e, EX_IOERR, "write error: %s", strerror(errno));
    json_decref(o);
    return rc;
}

json_t *pd_argilla2_record(const char *id, const char *prompt, int n_options, char *const *option_names,
                           char *const *option_texts, const char *question, const char *user_id, const int *order) {
    json_t *fields = json_object();
    json_object_set_new(fields, "prompt", json_string(prompt));
    for (int i = 0; i < n_options; i++) json_object_set_new(fields, option_names[i], json_string(option_texts[i]));
    json_t *value = json_array();
    for (int i = 0; i < n_options; i++) json_array_append_new(value, json_string(option_names[order[i]]));
    json_t *resp = json_pack("{s:o, s:s, s:s}", "value", value, "user_id", user_id, "status", "submitted");
    json_t *responses = json_object();
    json_object_set_new(responses, question, json_pack("[o]", resp));
    json_t *rec = json_object();
    if (id) json_object_set_new(rec, "id", json_string(id));
    json_object_set_new(rec, "status", json_string("completed"));
    json_object_set_new(rec, "fields", fields);
    json_object_set_new(rec, "responses", responses);
    return rec;
}
