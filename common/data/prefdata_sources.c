/* prefdata_sources.c — public preference datasets other than Argilla -> PdRecord.
 *
 *  oasst          OpenAssistant message trees ({"message_tree_id", "prompt": message},
 *                 message = {"message_id", "role": prompter|assistant, "text", "rank",
 *                 "replies": [...]}); sibling assistant replies are ranked by "rank"
 *                 (0 = best), one record per parent with two or more ranked replies.
 *  shp            Stanford Human Preferences: "history", "human_ref_A", "human_ref_B",
 *                 "labels" (1 = A preferred, 0 = B preferred; SHP dataset card).
 *  ultrafeedback  "chosen"/"rejected" message lists (or strings), "prompt"?,
 *                 "score_chosen"/"score_rejected" (equal scores = a tie, dropped).
 *  summarize      openai/summarize_from_feedback comparisons: "info": {"id", "post"
 *                 (or "article")}, "summaries": [{"text"}, {"text"}], "choice": 0|1.
 *  hh             Anthropic hh-rlhf: "chosen"/"rejected" full transcripts; the prompt is
 *                 the longest common prefix that ends at the last "\n\nAssistant:".
 *  pairs          "prompt", "chosen", "rejected" (strings or message lists).
 * Each becomes a record whose options are ranked by one submitted annotator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "prefdata.h"

/* A record with two options ranked RA and RB (1 = better, equal = tie). */
static PdRecord *two_options(PdRecordList *out, char *id, json_t *prompt, const char *a, const char *b, double ra,
                             double rb) {
    PdRecord *rec = pd_list_push(out);
    rec->id = id;
    rec->prompt = prompt;
    int ia = pd_record_option(rec, "A"), ib = pd_record_option(rec, "B");
    rec->option_text[ia] = xstrdup(a);
    rec->option_text[ib] = xstrdup(b);
    PdAnnotation *an = pd_record_add_annotation(rec, NULL, PD_SUBMITTED);
    an->rank[ia] = ra;
    an->rank[ib] = rb;
    return rec;
}

static int need_string(const json_t *row, const char *field, const char **out, const char *where, Error *e) {
    const json_t *v = json_object_get(row, field);
    if (!v) return err_set(e, EX_DATAERR, "%s: missing field \"%s\"", where, field);
    if (!json_is_string(v)) return err_set(e, EX_DATAERR, "%s: field \"%s\" must be a string", where, field);
    *out = json_string_value(v);
    return 0;
}

/* ---- OASST ------------------------------------------------------------------------- */
#define OASST_MAX_DEPTH 512

static int oasst_walk(const json_t *node, json_t *path, int depth, const char *tree_id, const char *where,
                      PdRecordList *out, Error *e) {
    if (depth > OASST_MAX_DEPTH)
        return err_set(e, EX_DATAERR, "%s: message tree deeper than %d", where, OASST_MAX_DEPTH);
    const json_t *replies = json_object_get(node, "replies");
    if (replies && !json_is_array(replies) && !json_is_null(replies))
        return err_set(e, EX_DATAERR, "%s: \"replies\" must be a list", where);
    /* The ranked assistant replies of this node form one record. */
    int n_ranked = 0;
    for (size_t k = 0; k < json_array_size(replies); k++) {
        const json_t *r = json_array_get(replies, k);
        const json_t *rank = json_object_get(r, "rank");
        if (!json_is_object(r)) return err_set(e, EX_DATAERR, "%s: each reply must be a message object", where);
        if (json_is_true(json_object_get(r, "deleted"))) continue;
        if (rank && !json_is_null(rank)) {
            double v = json_number_value(rank);
            if (!json_is_number(rank) || v != floor(v) || v < 0 || v > (double)json_array_size(replies))
                return err_set(e, EX_DATAERR, "%s: reply \"rank\" must be a whole number from 0 (best)", where);
            const char *role = json_string_value(json_object_get(r, "role"));
            if (role && strcmp(role, "assistant") == 0) n_ranked++;
        }
    }
    if (n_ranked >= 2) {
        PdRecord *rec = pd_list_push(out);
        char *mid = json_id_string(json_object_get(node, "message_id"));
        rec->id = mid ? mid : (tree_id ? xstrdup(tree_id) : NULL);
        /* One prompter turn -> a plain prompt string; a longer path -> messages. */
        if (json_array_size(path) == 1)
            rec->prompt = json_incref(json_object_get(json_array_get(path, 0), "content"));
        else
            rec->prompt = json_deep_copy(path);
        PdAnnotation *an = pd_record_add_annotation(rec, NULL, PD_SUBMITTED);
        for (size_t k = 0; k < json_array_size(replies); k++) {
            const json_t *r = json_array_get(replies, k);
            const json_t *rank = json_object_get(r, "rank");
            const char *role = json_string_value(json_object_get(r, "role"));
            if (json_is_true(json_object_get(r, "deleted")) || !rank || json_is_null(rank) || !role ||
                strcmp(role, "assistant") != 0)
                continue;
            const char *text = json_string_value(json_object_get(r, "text"));
            if (!text) return err_set(e, EX_DATAERR, "%s: reply without a \"text\" string", where);
            char name[32];
            snprintf(name, sizeof name, "%zu", k);
            int a_index = (int)(an - rec->ann);
            int i = pd_record_option(rec, name);
            an = &rec->ann[a_index];
            rec->option_text[i] = xstrdup(text);
            an->rank[i] = json_number_value(rank) + 1; /* rank 0 (best) -> 1 */
        }
    }
    for (size_t k = 0; k < json_array_size(replies); k++) {
        const json_t *r = json_array_get(replies, k);
        if (json_is_true(json_object_get(r, "deleted"))) continue;
        const char *role = json_string_value(json_object_get(r, "role"));
        const char *text = json_string_value(json_object_get(r, "text"));
        if (!role || !text) return err_set(e, EX_DATAERR, "%s: message without \"role\" and \"text\" strings", where);
        const char *chat_role = strcmp(role, "prompter") == 0    ? "user"
                                : strcmp(role, "assistant") == 0 ? "assistant"
                                                                 : NULL;
        if (!chat_role) return err_set(e, EX_DATAERR, "%s: unknown message role \"%s\"", where, role);
        json_array_append_new(path, json_pack("{s:s, s:s}", "role", chat_role, "content", text));
        int rc = oasst_walk(r, path, depth + 1, tree_id, where, out, e);
        json_array_remove(path, json_array_size(path) - 1);
        if (rc) return rc;
    }
    return 0;
}

static int parse_oasst(const json_t *row, const char *where, PdRecordList *out, Error *e) {
    const json_t *root = json_object_get(row, "prompt");
    if (!json_is_object(root))
        return err_set(e, EX_DATAERR,
                       "%s: expected a message tree with a \"prompt\" message (flat OASST message rows are not "
                       "supported; use the *.trees.jsonl export)",
                       where);
    const char *text = json_string_value(json_object_get(root, "text"));
    if (!text) return err_set(e, EX_DATAERR, "%s: root message without a \"text\" string", where);
    char *tree_id = json_id_string(json_object_get(row, "message_tree_id"));
    json_t *path = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
    int n0 = out->n;
    int rc = oasst_walk(root, path, 0, tree_id, where, out, e);
    json_decref(path);
    free(tree_id);
    if (rc)
        while (out->n > n0) pd_record_free(&out->r[--out->n]);
    return rc;
}

/* ---- SHP, summarize ---------------------------------------------------------------- */
static int parse_shp(const json_t *row, const char *where, PdRecordList *out, Error *e) {
    const char *hist = NULL, *a = NULL, *b = NULL;
    int rc;
    if ((rc = need_string(row, "history", &hist, where, e)) || (rc = need_string(row, "human_ref_A", &a, where, e)) ||
        (rc = need_string(row, "human_ref_B", &b, where, e)))
        return rc;
    const json_t *lab = json_object_get(row, "labels");
    if (!json_is_integer(lab) || (json_integer_value(lab) != 0 && json_integer_value(lab) != 1))
        return err_set(e, EX_DATAERR, "%s: field \"labels\" must be 0 or 1", where);
    int a_wins = json_integer_value(lab) == 1;
    two_options(out, json_id_string(json_object_get(row, "post_id")), json_string(hist), a, b, a_wins ? 1 : 2,
                a_wins ? 2 : 1);
    return 0;
}

/* The prompt of a summarize_from_feedback comparison in TRL's layout
 * (trl/examples/datasets/tldr_preference.py, the trl-lib/tldr-preference dataset):
 *   Reddit posts  "SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
 *   CNN/DM        "Article:\n{article}\n\nTL;DR:"
 * A post without subreddit or title leaves that line out.  The summaries keep their
 * leading space, so prompt + summary reads "TL;DR: ...". */
static json_t *summarize_prompt(const json_t *info, const char *post, int is_article) {
    const char *sub = json_string_value(json_object_get(info, "subreddit"));
    const char *title = json_string_value(json_object_get(info, "title"));
    size_t n = strlen(post) + (sub ? strlen(sub) : 0) + (title ? strlen(title) : 0) + 64;
    char *s = xmalloc(n);
    if (is_article)
        snprintf(s, n, "Article:\n%s\n\nTL;DR:", post);
    else
        snprintf(s, n, "%s%s%s%s%s%sPOST: %s\n\nTL;DR:", sub ? "SUBREDDIT: r/" : "", sub ? sub : "", sub ? "\n\n" : "",
                 title ? "TITLE: " : "", title ? title : "", title ? "\n\n" : "", post);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static int parse_summarize(const json_t *row, const char *where, PdRecordList *out, Error *e) {
    const json_t *info = json_object_get(row, "info");
    if (!json_is_object(info)) return err_set(e, EX_DATAERR, "%s: missing object field \"info\"", where);
    const json_t *post = json_object_get(info, "post");
    int is_article = 0;
    if (!json_is_string(post)) post = json_object_get(info, "article"), is_article = 1;
    if (!json_is_string(post)) return err_set(e, EX_DATAERR, "%s: field \"info.post\" must be a string", where);
    const json_t *s = json_object_get(row, "summaries");
    if (!json_is_array(s) || json_array_size(s) != 2)
        return err_set(e, EX_DATAERR, "%s: field \"summaries\" must be a list of two summaries", where);
    const char *t0 = json_string_value(json_object_get(json_array_get(s, 0), "text"));
    const char *t1 = json_string_value(json_object_get(json_array_get(s, 1), "text"));
    if (!t0 || !t1) return err_set(e, EX_DATAERR, "%s: each summary needs a \"text\" string", where);
    const json_t *ch = json_object_get(row, "choice");
    if (!json_is_integer(ch) || (json_integer_value(ch) != 0 && json_integer_value(ch) != 1))
        return err_set(e, EX_DATAERR, "%s: field \"choice\" must be 0 or 1", where);
    int first = json_integer_value(ch) == 0;
    json_t *prompt = summarize_prompt(info, json_string_value(post), is_article);
    if (!prompt) return err_set(e, EX_DATAERR, "%s: field \"info.post\" is not valid UTF-8", where);
    two_options(out, json_id_string(json_object_get(info, "id")), prompt, t0, t1, first ? 1 : 2, first ? 2 : 1);
    return 0;
}

/* ---- hh-rlhf ------------------------------------------------------------------------ */
#define HH_ASSISTANT "\n\nAssistant:"

/* The implicit prompt (INTERFACE.md "preference"): TRL's hh-rlhf preprocessing keeps
 * everything up to and including the last "\n\nAssistant:" the two transcripts share. */
size_t pd_hh_prompt_length(const char *a, const char *b) {
    size_t lcp = 0;
    while (a[lcp] && a[lcp] == b[lcp]) lcp++;
    size_t m = strlen(HH_ASSISTANT);
    for (size_t end = lcp; end >= m; end--)
        if (memcmp(a + end - m, HH_ASSISTANT, m) == 0) return end;
    return 0;
}

static int parse_hh(const json_t *row, const char *where, PdRecordList *out, Error *e) {
    const char *c = NULL, *r = NULL;
    int rc;
    if ((rc = need_string(row, "chosen", &c, where, e)) || (rc = need_string(row, "rejected", &r, where, e))) return rc;
    size_t n = pd_hh_prompt_length(c, r);
    if (n == 0)
        return err_set(e, EX_DATAERR, "%s: chosen and rejected share no prefix ending in \"\\n\\nAssistant:\"", where);
    int tie = strcmp(c, r) == 0;
    two_options(out, json_id_string(json_object_get(row, "id")), json_stringn(c, n), c + n, r + n, 1, tie ? 1 : 2);
    return 0;
}

/* ---- UltraFeedback and plain pairs ---------------------------------------------------- */
/* An answer is a string or a message list whose last message is the assistant's; the
 * messages before it are the conversation so far (*prefix, borrowed). */
static int answer_text(const json_t *v, const char *field, const char **text, const json_t **last, const char *where,
                       Error *e) {
    *last = NULL;
    if (json_is_string(v)) {
        *text = json_string_value(v);
        return 0;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0)
        return err_set(e, EX_DATAERR, "%s: field \"%s\" must be a string or a non-empty message list", where, field);
    const json_t *m = json_array_get(v, n - 1);
    const char *role = json_string_value(json_object_get(m, "role"));
    *text = json_string_value(json_object_get(m, "content"));
    if (!role || !*text || strcmp(role, "assistant") != 0)
        return err_set(e, EX_DATAERR,
                       "%s: field \"%s\": the last message must be {\"role\": \"assistant\", \"content\"}", where,
                       field);
    *last = m;
    return 0;
}

/* Messages of V before its last one, as a new array. */
static json_t *messages_before_last(const json_t *v) {
    json_t *a = json_array();
    for (size_t k = 0; k + 1 < json_array_size(v); k++) json_array_append(a, json_array_get(v, k));
    return a;
}

static int parse_pairs(const json_t *row, int with_scores, const char *where, PdRecordList *out, Error *e) {
    const json_t *cv = json_object_get(row, "chosen"), *rv = json_object_get(row, "rejected");
    if (!cv || !rv) return err_set(e, EX_DATAERR, "%s: missing field \"%s\"", where, cv ? "rejected" : "chosen");
    const char *c = NULL, *r = NULL;
    const json_t *cl, *rl;
    int rc;
    if ((rc = answer_text(cv, "chosen", &c, &cl, where, e)) || (rc = answer_text(rv, "rejected", &r, &rl, where, e)))
        return rc;
    json_t *prompt = NULL;
    const json_t *pv = json_object_get(row, "prompt");
    if (json_is_string(pv) || json_is_array(pv)) {
        prompt = json_incref((json_t *)pv);
    } else if (pv && !json_is_null(pv)) {
        return err_set(e, EX_DATAERR, "%s: field \"prompt\" must be a string or a message list", where);
    } else if (cl && rl) {
        /* The prompt is the conversation both answers continue. */
        json_t *pc = messages_before_last(cv), *pr = messages_before_last(rv);
        int same = json_equal(pc, pr);
        json_decref(pr);
        if (!same || json_array_size(pc) == 0) {
            json_decref(pc);
            return err_set(e, EX_DATAERR, "%s: chosen and rejected do not continue the same conversation", where);
        }
        const json_t *only = json_array_get(pc, 0);
        const char *role = json_string_value(json_object_get(only, "role"));
        if (json_array_size(pc) == 1 && role && strcmp(role, "user") == 0 &&
            json_is_string(json_object_get(only, "content"))) {
            prompt = json_incref(json_object_get(only, "content"));
            json_decref(pc);
        } else {
            prompt = pc;
        }
    } else {
        return err_set(e, EX_DATAERR, "%s: missing field \"prompt\"", where);
    }
    double margin = NAN;
    int tie = strcmp(c, r) == 0;
    const json_t *sc = json_object_get(row, "score_chosen"), *sr = json_object_get(row, "score_rejected");
    if (with_scores && sc && sr && !json_is_null(sc) && !json_is_null(sr)) {
        if (!json_is_number(sc) || !json_is_number(sr)) {
            json_decref(prompt);
            return err_set(e, EX_DATAERR, "%s: \"score_chosen\" and \"score_rejected\" must be numbers", where);
        }
        margin = json_number_value(sc) - json_number_value(sr);
        if (margin < 0) {
            json_decref(prompt);
            return err_set(e, EX_DATAERR, "%s: score_chosen (%g) is below score_rejected (%g)", where,
                           json_number_value(sc), json_number_value(sr));
        }
        tie = tie || margin == 0;
    }
    const json_t *m = json_object_get(row, "margin");
    if (isnan(margin) && json_is_number(m)) margin = json_number_value(m);
    const json_t *idv = json_object_get(row, "id");
    if (!idv) idv = json_object_get(row, "prompt_id");
    PdRecord *rec = two_options(out, json_id_string(idv), prompt, c, r, 1, tie ? 1 : 2);
    rec->margin = margin;
    return 0;
}

int pd_parse_source(PdParser *p, PdShape shape, const json_t *row, const char *where, PdRecordList *out, Error *e) {
    (void)p;
    switch (shape) {
    case PD_SHAPE_OASST:
        return parse_oasst(row, where, out, e);
    case PD_SHAPE_SHP:
        return parse_shp(row, where, out, e);
    case PD_SHAPE_ULTRAFEEDBACK:
        return parse_pairs(row, 1, where, out, e);
    case PD_SHAPE_SUMMARIZE:
        return parse_summarize(row, where, out, e);
    case PD_SHAPE_HH:
        return parse_hh(row, where, out, e);
    case PD_SHAPE_PAIRS:
        return parse_pairs(row, 0, where, out, e);
    default:
        return err_set(e, EX_SOFTWARE, "%s: no reader for format %s", where, pd_shape_name(shape));
    }
}
