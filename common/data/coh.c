/* coh.c — see coh.h. */
#include "coh.h"

#include <stdlib.h>
#include <string.h>

#include "prefdata.h"

/* ---- a growing string ---- */
typedef struct Str {
    char *s;
    size_t n, cap;
} Str;

static void str_add(Str *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void str_cat(Str *b, const char *s) {
    str_add(b, s, strlen(s));
}
static char *str_take(Str *b) {
    if (!b->s) str_add(b, "", 0);
    return b->s;
}

/* Renders a message list, one turn per line. */
static int render_messages(const json_t *msgs, const PairRender *r, char **out, const char *where, const char *field,
                           Error *e) {
    Str b = {0};
    for (size_t k = 0; k < json_array_size(msgs); k++) {
        const json_t *m = json_array_get(msgs, k);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content) {
            free(b.s);
            return err_set(e, EX_DATAERR, "%s: field \"%s\"[%zu] must be {\"role\": string, \"content\": string}",
                           where, field, k);
        }
        if (k) str_cat(&b, "\n");
        if (strcmp(role, "user") == 0)
            str_cat(&b, r->user_prefix);
        else if (strcmp(role, "assistant") == 0)
            str_cat(&b, r->assistant_prefix);
        else if (strcmp(role, "system") != 0) {
            free(b.s);
            return err_set(e, EX_DATAERR, "%s: field \"%s\"[%zu]: unknown role \"%s\"", where, field, k, role);
        }
        str_cat(&b, content);
    }
    *out = str_take(&b);
    return 0;
}

/* The answer of a string or of a message list ending with the assistant's turn. */
static int answer_of(const json_t *v, const char *field, const char **text, const char *where, Error *e) {
    if (!v) return err_set(e, EX_DATAERR, "%s: missing field \"%s\"", where, field);
    if (json_is_string(v)) {
        *text = json_string_value(v);
        return 0;
    }
    size_t n = json_array_size(v);
    const json_t *last = json_array_get(v, n ? n - 1 : 0);
    const char *role = json_string_value(json_object_get(last, "role"));
    *text = json_string_value(json_object_get(last, "content"));
    if (!json_is_array(v) || n == 0 || !role || !*text || strcmp(role, "assistant") != 0)
        return err_set(e, EX_DATAERR,
                       "%s: field \"%s\" must be a string or a message list ending with an assistant message", where,
                       field);
    return 0;
}

int coh_pair_texts(const json_t *rec, const PairRender *r, PairText *out, const char *where, Error *e) {
    memset(out, 0, sizeof *out);
    const json_t *cv = json_object_get(rec, "chosen"), *rv = json_object_get(rec, "rejected");
    const json_t *pv = json_object_get(rec, "prompt");
    const char *c = NULL, *rj = NULL;
    int rc;
    if ((rc = answer_of(cv, "chosen", &c, where, e)) || (rc = answer_of(rv, "rejected", &rj, where, e))) return rc;
    if (json_is_string(pv)) {
        Str b = {0};
        /* An hh-rlhf transcript prompt already carries its "Human:" markers. */
        if (strncmp(json_string_value(pv), "\n\nHuman:", 8) != 0) str_cat(&b, r->user_prefix);
        str_cat(&b, json_string_value(pv));
        out->prompt = str_take(&b);
    } else if (json_is_array(pv)) {
        if ((rc = render_messages(pv, r, &out->prompt, where, "prompt", e))) return rc;
    } else if (pv && !json_is_null(pv)) {
        return err_set(e, EX_DATAERR, "%s: field \"prompt\" must be a string or a message list", where);
    } else if (json_is_array(cv) && json_is_array(rv)) {
        /* The conversation both answers continue is the prompt. */
        json_t *pc = json_array(), *pr = json_array();
        for (size_t k = 0; k + 1 < json_array_size(cv); k++) json_array_append(pc, json_array_get(cv, k));
        for (size_t k = 0; k + 1 < json_array_size(rv); k++) json_array_append(pr, json_array_get(rv, k));
        int same = json_equal(pc, pr);
        if (!same || json_array_size(pc) == 0) {
            json_decref(pc);
            json_decref(pr);
            return err_set(e, EX_DATAERR, "%s: no \"prompt\", and chosen and rejected do not share one", where);
        }
        rc = render_messages(pc, r, &out->prompt, where, "chosen", e);
        json_decref(pc);
        json_decref(pr);
        if (rc) return rc;
    } else if (json_is_string(cv) && json_is_string(rv)) {
        /* hh-rlhf: the transcripts carry their own "Human:"/"Assistant:" markers. */
        size_t n = pd_hh_prompt_length(c, rj);
        if (n == 0)
            return err_set(e, EX_DATAERR,
                           "%s: no \"prompt\", and chosen and rejected share no prefix ending in \"\\n\\nAssistant:\"",
                           where);
        out->prompt = xmalloc(n + 1);
        memcpy(out->prompt, c, n);
        out->prompt[n] = 0;
        c += n;
        rj += n;
    } else {
        return err_set(e, EX_DATAERR, "%s: missing field \"prompt\"", where);
    }
    /* One leading space (hh-rlhf answers have it) is the separator coh_segments
     * puts back, so it is not doubled. */
    if (*c == ' ') c++;
    if (*rj == ' ') rj++;
    out->chosen = xstrdup(c);
    out->rejected = xstrdup(rj);
    return 0;
}

void coh_pair_text_free(PairText *t) {
    free(t->prompt);
    free(t->chosen);
    free(t->rejected);
    memset(t, 0, sizeof *t);
}

/* ---- Chain of Hindsight ---- */
static void template_add(CohTemplate *t, const char *pos, const char *neg) {
    t->positive = xrealloc(t->positive, (t->n + 1) * sizeof *t->positive);
    t->negative = xrealloc(t->negative, (t->n + 1) * sizeof *t->negative);
    t->positive[t->n] = xstrdup(pos);
    t->negative[t->n] = xstrdup(neg);
    t->n++;
}

int coh_template_load(CohTemplate *t, const char *name, Error *e) {
    memset(t, 0, sizeof *t);
    /* The paper's main template (Liu et al. 2023, Sec. 3) and its good/bad variant. */
    if (strcmp(name, "helpful") == 0) {
        template_add(t, "A helpful answer:", "An unhelpful answer:");
        return 0;
    }
    if (strcmp(name, "good-bad") == 0) {
        template_add(t, "A good answer:", "A bad answer:");
        return 0;
    }
    json_error_t je;
    json_t *v = json_load_file(name, 0, &je);
    if (!v) {
        if (!file_exists(name))
            return err_set(e, EX_NOINPUT, "%s: no such template file (built in: helpful, good-bad)", name);
        return err_set(e, EX_DATAERR, "%s:%d: invalid JSON at column %d: %s", name, je.line, je.column, je.text);
    }
    int rc = 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        rc = err_set(e, EX_DATAERR, "%s: expected a non-empty JSON list of [positive, negative] phrase pairs", name);
    for (size_t k = 0; !rc && k < json_array_size(v); k++) {
        const json_t *p = json_array_get(v, k);
        const char *pos = json_string_value(json_array_get(p, 0)), *neg = json_string_value(json_array_get(p, 1));
        if (!json_is_array(p) || json_array_size(p) != 2 || !pos || !neg)
            rc = err_set(e, EX_DATAERR, "%s: item %zu must be [\"positive phrase\", \"negative phrase\"]", name, k);
        else
            template_add(t, pos, neg);
    }
    json_decref(v);
    if (rc) coh_template_free(t);
    return rc;
}

void coh_template_free(CohTemplate *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->positive[i]);
        free(t->negative[i]);
    }
    free(t->positive);
    free(t->negative);
    memset(t, 0, sizeof *t);
}

static json_t *segment(const char *a, const char *b, const char *c, int train) {
    Str s = {0};
    str_cat(&s, a);
    str_cat(&s, b);
    str_cat(&s, c);
    json_t *o = json_pack("{s:s, s:b}", "text", str_take(&s), "train", train);
    free(s.s);
    return o;
}

json_t *coh_segments(const PairText *p, const char *positive, const char *negative, int negative_first,
                     const char *eos) {
    const char *phrase1 = negative_first ? negative : positive, *phrase2 = negative_first ? positive : negative;
    const char *ans1 = negative_first ? p->rejected : p->chosen, *ans2 = negative_first ? p->chosen : p->rejected;
    size_t ne = strlen(eos);
    const char *sep = (ne && (eos[ne - 1] == '\n' || eos[ne - 1] == ' ')) ? "" : " ";
    json_t *segs = json_array();
    json_array_append_new(segs, segment(p->prompt, " ", phrase1, 0));
    json_array_append_new(segs, segment(" ", ans1, eos, 1));
    json_array_append_new(segs, segment(sep, phrase2, "", 0));
    json_array_append_new(segs, segment(" ", ans2, eos, 1));
    return json_pack("{s:o}", "segments", segs);
}

char *coh_inference_prefix(const char *user_prefix, const char *positive) {
    Str s = {0};
    str_cat(&s, user_prefix);
    str_cat(&s, "{prompt} ");
    str_cat(&s, positive);
    return str_take(&s);
}
