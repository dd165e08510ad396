/* data.c — JSONL records -> Example / PrefExample / PromptExample (see data.h for
 * the kinds, the tokenization rule and truncation).  Batches are in data_batch.c.
 *
 * Each record is parsed, tokenized and released before the next is read, so memory
 * does not grow with the file.  A bad record is an EX_DATAERR naming FILE:LINE and
 * the field, or — with skip_invalid — counted and skipped.
 * Not for: Argilla/ranking exports (prefdata.c). */
#include "data.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonl.h"
#include "base/util.h"

struct DataReader {
    JsonlReader jr;
    Tokenizer *tok;
    DataOptions o;
    DataKind kind;
    ChatTemplate tpl; /* resolved on the first message list */
    int tpl_resolved;
    char *default_system; /* inserted before conversations without a system message (auto only) */
    DataCounts counts;
    json_t *pending; /* record read ahead by data_peek_kind */
    long pending_line;
};

static const char *KIND_NAMES[] = {"auto",     "text",        "prompt-completion", "conversational",
                                   "segments", "prompt-only", "preference",        "rollout"};

int data_kind_parse(const char *name, DataKind *out, Error *e) {
    for (int i = 0; name && i < (int)(sizeof KIND_NAMES / sizeof *KIND_NAMES); i++)
        if (!strcmp(name, KIND_NAMES[i])) {
            *out = (DataKind)i;
            return 0;
        }
    return err_set(e, EX_USAGE,
                   "unknown data kind \"%s\" (expected auto, text, prompt-completion, conversational, segments, "
                   "prompt-only, preference or rollout)",
                   name ? name : "(null)");
}

const char *data_kind_name(DataKind k) {
    return (int)k >= 0 && (int)k < (int)(sizeof KIND_NAMES / sizeof *KIND_NAMES) ? KIND_NAMES[k] : "?";
}

DataKind data_detect_kind(const json_t *rec) {
    /* either half of a pair makes it a preference record: {"prompt", "chosen"} is a
     * pair with "rejected" missing (a data error), not a prompt-only record */
    if (json_object_get(rec, "chosen") || json_object_get(rec, "rejected")) return DATA_PREFERENCE;
    if (json_object_get(rec, "prompt") && json_object_get(rec, "completion")) {
        if (json_object_get(rec, "reward") || json_object_get(rec, "logprob") || json_object_get(rec, "group"))
            return DATA_ROLLOUT;
        return DATA_PROMPT_COMPLETION;
    }
    if (json_object_get(rec, "segments")) return DATA_SEGMENTS;
    if (json_object_get(rec, "messages")) return DATA_CONVERSATIONAL;
    if (json_object_get(rec, "text")) return DATA_TEXT;
    if (json_object_get(rec, "prompt")) return DATA_PROMPT_ONLY;
    return DATA_AUTO;
}

int data_truncation_parse(const char *name, Truncation *out, Error *e) {
    if (name && !strcmp(name, "keep_end"))
        *out = TRUNC_KEEP_END;
    else if (name && !strcmp(name, "keep_start"))
        *out = TRUNC_KEEP_START;
    else
        return err_set(e, EX_USAGE, "unknown truncation \"%s\" (expected keep_end or keep_start)", name ? name : "");
    return 0;
}

void data_options_default(DataOptions *o) {
    memset(o, 0, sizeof *o);
    o->kind = DATA_AUTO;
    o->tpl = CHAT_AUTO;
    o->truncation = TRUNC_KEEP_END;
    o->add_eos = 1;
    o->add_bos = -1;
}

void example_free(Example *ex) {
    free(ex->ids);
    free(ex->mask);
    if (ex->record) json_decref(ex->record);
    memset(ex, 0, sizeof *ex);
}

void pref_example_free(PrefExample *p) {
    free(p->prompt);
    free(p->chosen);
    free(p->rejected);
    free(p->id);
    memset(p, 0, sizeof *p);
}

void prompt_example_free(PromptExample *p) {
    free(p->ids);
    if (p->prompt) json_decref(p->prompt);
    if (p->record) json_decref(p->record);
    memset(p, 0, sizeof *p);
}

static int data_open_common(DataReader **out, const char *path, FILE *fp, const char *name, const void *pre,
                            size_t npre, Tokenizer *tok, const DataOptions *o, Error *e) {
    *out = NULL;
    DataReader *r = xcalloc(1, sizeof *r);
    int rc = fp ? jsonl_open_stream(&r->jr, fp, name, pre, npre, e) : jsonl_open(&r->jr, path, e);
    if (rc) {
        jsonl_close(&r->jr);
        free(r);
        return rc;
    }
    r->tok = tok;
    r->o = *o;
    r->kind = o->kind;
    if (o->tpl != CHAT_AUTO) r->tpl = o->tpl, r->tpl_resolved = 1;
    *out = r;
    return 0;
}

int data_open(DataReader **out, const char *path, Tokenizer *tok, const DataOptions *o, Error *e) {
    return data_open_common(out, path, NULL, NULL, NULL, 0, tok, o, e);
}

int data_open_stream(DataReader **out, FILE *fp, const char *name, const void *pre, size_t npre, Tokenizer *tok,
                     const DataOptions *o, Error *e) {
    return data_open_common(out, NULL, fp, name, pre, npre, tok, o, e);
}

void data_close(DataReader *r) {
    if (!r) return;
    if (r->pending) json_decref(r->pending);
    free(r->default_system);
    jsonl_close(&r->jr);
    free(r);
}

DataKind data_reader_kind(const DataReader *r) {
    return r->kind;
}
const DataCounts *data_counts(const DataReader *r) {
    return &r->counts;
}
const char *data_reader_name(const DataReader *r) {
    return r->jr.name;
}

/* ---- building blocks ---- */
#define BAD(r, e, ...) bad_record(r, e, __VA_ARGS__)
static int bad_record(DataReader *r, Error *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad_record(DataReader *r, Error *e, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(e, EX_DATAERR, "%s:%ld: %s", r->jr.name, r->jr.line, msg);
}

static int resolve_tpl(DataReader *r, Error *e) {
    if (r->tpl_resolved) return 0;
    int rc = chat_resolve(CHAT_AUTO, r->tok, &r->tpl, e);
    if (rc) return err_prefix(e, "%s:%ld: messages need a chat template", r->jr.name, r->jr.line);
    r->tpl_resolved = 1;
    if (r->tpl == CHAT_CHATML) r->default_system = chat_default_system(tok_chat_template(r->tok));
    return 0;
}

/* Does this tokenizer need the post-processor prefix (BOS) in front of a prompt? */
static void add_prefix(DataReader *r, IntVec *ids, int chat) {
    if (r->o.add_bos == 0) return;
    /* llama3/chatml renderings carry their own BOS (or none), as apply_chat_template */
    if (chat && chat_has_own_bos(r->tpl)) return;
    if (r->o.add_bos == 1) {
        if (tok_bos_id(r->tok) >= 0) intvec_push(ids, tok_bos_id(r->tok));
        return;
    }
    tok_post_prefix(r->tok, ids);
}

static void push_mask(IntVec *mask, int v, int n) {
    for (int i = 0; i < n; i++) intvec_push(mask, v);
}

/* Messages: an array of {role: string, content: string}. */
/* start: the list begins a conversation, so the template's default system message
 * (if any) goes first when the list has no system message of its own. */
static int parse_messages(DataReader *r, const json_t *arr, const char *field, int start, ChatMessage **out, int *n,
                          Error *e) {
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr)) return BAD(r, e, "field \"%s\" must be a list of messages", field);
    size_t k = json_array_size(arr);
    ChatMessage *m = xcalloc(k + 2, sizeof *m);
    for (size_t i = 0; i < k; i++) {
        const json_t *o = json_array_get(arr, i);
        const json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        if (!json_is_object(o)) {
            free(m);
            return BAD(r, e, "field \"%s[%zu]\" must be an object with role and content", field, i);
        }
        if (!json_is_string(role)) {
            free(m);
            return BAD(r, e, "field \"%s[%zu].role\" must be a string", field, i);
        }
        if (!json_is_string(content)) {
            free(m);
            return BAD(r, e, "field \"%s[%zu].content\" must be a string", field, i);
        }
        if (strlen(json_string_value(content)) != json_string_length(content)) {
            free(m);
            return BAD(r, e, "field \"%s[%zu].content\" contains a NUL character", field, i);
        }
        m[i].role = json_string_value(role);
        m[i].content = json_string_value(content);
    }
    if (start && r->default_system && (k == 0 || strcmp(m[0].role, "system"))) {
        memmove(m + 1, m, k * sizeof *m);
        m[0].role = "system";
        m[0].content = r->default_system;
        k++;
    }
    *out = m;
    *n = (int)k;
    return 0;
}

/* A prompt (string or messages) -> ids, with the generation prompt for messages. */
static int encode_prompt(DataReader *r, const json_t *v, const char *field, IntVec *ids, Error *e) {
    if (json_is_string(v)) {
        add_prefix(r, ids, 0);
        if (tok_encode(r->tok, json_string_value(v), json_string_length(v), r->o.parse_special, ids))
            return BAD(r, e, "field \"%s\": characters the tokenizer has no token for", field);
        return 0;
    }
    if (!json_is_array(v)) return BAD(r, e, "field \"%s\" must be a string or a list of messages", field);
    int rc = resolve_tpl(r, e);
    if (rc) return rc;
    ChatMessage *m;
    int n;
    if ((rc = parse_messages(r, v, field, 1, &m, &n, e))) return rc;
    ChatRender cr;
    rc = chat_render_tok(r->tpl, r->tok, m, n, 1, &cr, e);
    if (rc) {
        free(m);
        return err_prefix(e, "%s:%ld: field \"%s\"", r->jr.name, r->jr.line, field);
    }
    add_prefix(r, ids, 1);
    rc = chat_tokenize(r->tok, &cr, ids, NULL, e);
    chat_render_free(&cr);
    free(m);
    return rc;
}

/* A completion (string, or messages following the prompt messages pv) -> ids and
 * mask.  String completions get EOS (add_eos); message completions get what the
 * template closes turns with, plus EOS for plain/hh. */
static int encode_completion(DataReader *r, const json_t *pv, const json_t *cv, const char *pfield, const char *cfield,
                             IntVec *ids, IntVec *mask, Error *e) {
    int eos = tok_eos_id(r->tok);
    if (json_is_string(cv)) {
        if (!json_is_string(pv) && pv)
            return BAD(r, e, "field \"%s\" is a string but \"%s\" is a list of messages", cfield, pfield);
        int before = ids->n;
        if (tok_encode(r->tok, json_string_value(cv), json_string_length(cv), r->o.parse_special, ids))
            return BAD(r, e, "field \"%s\": characters the tokenizer has no token for", cfield);
        if (r->o.add_eos && eos >= 0 && (ids->n == before || ids->v[ids->n - 1] != eos)) intvec_push(ids, eos);
        push_mask(mask, 1, ids->n - before);
        return 0;
    }
    if (!json_is_array(cv)) return BAD(r, e, "field \"%s\" must be a string or a list of messages", cfield);
    if (pv && !json_is_array(pv))
        return BAD(r, e, "field \"%s\" is a list of messages but \"%s\" is a string", cfield, pfield);
    int rc = resolve_tpl(r, e);
    if (rc) return rc;
    ChatMessage *pm = NULL, *cm = NULL;
    int pn = 0, cn = 0;
    if (pv && (rc = parse_messages(r, pv, pfield, 1, &pm, &pn, e))) return rc;
    if ((rc = parse_messages(r, cv, cfield, 0, &cm, &cn, e))) {
        free(pm);
        return rc;
    }
    if (!cn) {
        free(pm);
        free(cm);
        return BAD(r, e, "field \"%s\" is an empty list", cfield);
    }
    ChatMessage *all = xmalloc((size_t)(pn + cn) * sizeof *all);
    memcpy(all, pm, (size_t)pn * sizeof *all);
    memcpy(all + pn, cm, (size_t)cn * sizeof *all);
    ChatRender pr, full;
    rc = chat_render_tok(r->tpl, r->tok, pm, pn, 1, &pr, e);
    if (!rc) {
        rc = chat_render_tok(r->tpl, r->tok, all, pn + cn, 0, &full, e);
        if (rc) chat_render_free(&pr);
    }
    free(pm);
    free(cm);
    free(all);
    if (rc) return err_prefix(e, "%s:%ld: field \"%s\"", r->jr.name, r->jr.line, cfield);
    /* the completion is what the full rendering adds after the prompt rendering */
    int first = 0;
    while (first < full.n_spans && full.spans[first].off < pr.len) first++;
    if (pr.len > full.len || memcmp(pr.text, full.text, pr.len) != 0 ||
        (first < full.n_spans && full.spans[first].off != pr.len)) {
        chat_render_free(&pr);
        chat_render_free(&full);
        return BAD(r, e,
                   "field \"%s\": the %s rendering of the prompt is not a prefix of prompt + completion "
                   "(the completion must start with an assistant message)",
                   cfield, chat_template_name(r->tpl));
    }
    ChatRender tail = full;
    tail.spans = full.spans + first;
    tail.n_spans = full.n_spans - first;
    int before = ids->n;
    rc = chat_tokenize(r->tok, &tail, ids, mask, e);
    if (!rc && (r->tpl == CHAT_PLAIN || r->tpl == CHAT_HH) && r->o.add_eos && eos >= 0 &&
        (ids->n == before || ids->v[ids->n - 1] != eos)) {
        intvec_push(ids, eos);
        intvec_push(mask, 1);
    }
    chat_render_free(&pr);
    chat_render_free(&full);
    return rc;
}

/* The BOS/prefix tokens in front of prompt PV (what keep_end truncation keeps):
 * for string prompts and the plain/hh layouts the prefix add_prefix writes; the
 * llama3/chatml renderings carry their own and count none. */
static int prompt_prefix_len(DataReader *r, const json_t *pv) {
    if (!json_is_string(pv) && chat_has_own_bos(r->tpl)) return 0;
    IntVec tmp = {0};
    add_prefix(r, &tmp, !json_is_string(pv));
    int n = tmp.n;
    intvec_free(&tmp);
    return n;
}

/* Cuts a prompt to max_prompt_length.  keep_end keeps its last tokens but never
 * the BOS/prefix tokens in front (n_prefix), which stay. */
static int cut_prompt(DataReader *r, IntVec *p, int n_prefix) {
    int maxp = r->o.max_prompt_length;
    if (maxp <= 0 || p->n <= maxp) return 0;
    if (r->o.truncation == TRUNC_KEEP_START || n_prefix >= maxp) {
        p->n = maxp;
    } else {
        int keep = maxp - n_prefix;
        memmove(p->v + n_prefix, p->v + p->n - keep, (size_t)keep * sizeof(int));
        p->n = maxp;
    }
    return 1;
}

/* Narrows a mask built as ints to one byte per token, in place (byte i is written
 * after int i was read), and hands the buffer to the caller; *mask is emptied. */
static unsigned char *mask_bytes(IntVec *mask) {
    unsigned char *m8 = (unsigned char *)mask->v;
    for (int i = 0; i < mask->n; i++) m8[i] = (unsigned char)(mask->v[i] != 0);
    *mask = (IntVec){0};
    return m8;
}

/* Final truncation and checks of a sequence with its byte mask m (ids->n bytes,
 * owned by finish: it becomes ex->mask or is freed); fills ex. Returns 1 when the
 * example is kept, 0 when it is dropped (counted). */
static int finish(DataReader *r, IntVec *ids, unsigned char *m, int prompt_len, int n_prefix, int has_prompt,
                  Example *ex) {
    int maxl = r->o.max_length, truncated = 0;
    if (has_prompt) {
        if (maxl > 0 && prompt_len >= maxl) {
            r->counts.dropped++;
            free(m);
            return 0;
        }
        if (maxl > 0 && ids->n > maxl) ids->n = maxl, truncated = 1;
    } else if (maxl > 0 && ids->n > maxl) {
        truncated = 1;
        if (r->o.truncation == TRUNC_KEEP_START || n_prefix >= maxl) {
            ids->n = maxl;
        } else {
            int keep = maxl - n_prefix;
            memmove(ids->v + n_prefix, ids->v + ids->n - keep, (size_t)keep * sizeof(int));
            memmove(m + n_prefix, m + ids->n - keep, (size_t)keep);
            ids->n = maxl;
        }
    }
    if (ids->n) m[0] = 0; /* the first token is never predicted */
    int first = -1;
    for (int i = 0; i < ids->n && first < 0; i++)
        if (m[i]) first = i;
    if (first < 0) {
        r->counts.dropped++;
        free(m);
        return 0;
    }
    memset(ex, 0, sizeof *ex);
    ex->n = ids->n;
    /* the vectors become the example's arrays (no copy: a 60 MB line has tens of
     * millions of tokens), shrunk to size */
    ex->ids = xrealloc(ids->v, (size_t)ids->n * sizeof(int));
    ex->mask = xrealloc(m, (size_t)ids->n);
    *ids = (IntVec){0};
    ex->prompt_len = has_prompt ? prompt_len : first;
    ex->line = r->jr.line;
    if (truncated) r->counts.truncated++;
    return 1;
}

/* ---- hh-rlhf implicit prompt ---- */
/* Splits chosen/rejected strings at their longest common prefix that ends with
 * "\n\nAssistant:" (the last such occurrence inside the common prefix); without one,
 * at the whole common prefix.  Returns the prompt length in bytes. */
static size_t implicit_prompt_len(const char *c, size_t cl, const char *rj, size_t rl) {
    size_t lcp = 0;
    while (lcp < cl && lcp < rl && c[lcp] == rj[lcp]) lcp++;
    static const char mark[] = "\n\nAssistant:";
    size_t ml = sizeof mark - 1;
    for (size_t end = lcp; end >= ml; end--)
        if (memcmp(c + end - ml, mark, ml) == 0) return end;
    /* do not split inside a UTF-8 character */
    while (lcp > 0 && lcp < cl && ((unsigned char)c[lcp] & 0xC0) == 0x80) lcp--;
    return lcp;
}

/* Shared prefix of two message lists (TRL extract_prompt): the longest run of equal
 * leading messages, ending before an assistant message. */
static size_t implicit_prompt_msgs(const json_t *c, const json_t *rj) {
    size_t n = 0, nc = json_array_size(c), nr = json_array_size(rj);
    while (n < nc && n < nr && json_equal(json_array_get(c, n), json_array_get(rj, n))) n++;
    while (n > 0 && n <= nc) {
        const char *role = json_string_value(json_object_get(json_array_get(c, n), "role"));
        if (n < nc && role && !strcmp(role, "assistant")) break;
        n--;
    }
    return n;
}

/* The prompt, chosen and rejected values of a preference record, explicit or
 * implicit; the returned json values are new references. */
static int pref_fields(DataReader *r, json_t *rec, json_t **p, json_t **c, json_t **rj, Error *e) {
    json_t *pv = json_object_get(rec, "prompt"), *cv = json_object_get(rec, "chosen"),
           *rv = json_object_get(rec, "rejected");
    if (!cv) return BAD(r, e, "missing field \"chosen\"");
    if (!rv) return BAD(r, e, "missing field \"rejected\"");
    if (!json_is_string(cv) && !json_is_array(cv))
        return BAD(r, e, "field \"chosen\" must be a string or a list of messages");
    if (!json_is_string(rv) && !json_is_array(rv))
        return BAD(r, e, "field \"rejected\" must be a string or a list of messages");
    if (json_is_string(cv) != json_is_string(rv))
        return BAD(r, e, "fields \"chosen\" and \"rejected\" must both be strings or both message lists");
    if (pv) {
        *p = json_incref(pv), *c = json_incref(cv), *rj = json_incref(rv);
        return 0;
    }
    if (json_is_string(cv)) {
        const char *cs = json_string_value(cv), *rs = json_string_value(rv);
        size_t cl = json_string_length(cv), rl = json_string_length(rv);
        size_t k = implicit_prompt_len(cs, cl, rs, rl);
        if (k == cl || k == rl)
            return BAD(r, e, "no \"prompt\" and \"chosen\"/\"rejected\" do not differ after their common prefix");
        *p = json_stringn(cs, k);
        *c = json_stringn(cs + k, cl - k);
        *rj = json_stringn(rs + k, rl - k);
        return 0;
    }
    size_t k = implicit_prompt_msgs(cv, rv);
    if (k == 0) return BAD(r, e, "no \"prompt\" and \"chosen\"/\"rejected\" share no leading messages");
    *p = json_array();
    *c = json_array();
    *rj = json_array();
    for (size_t i = 0; i < json_array_size(cv); i++) json_array_append(i < k ? *p : *c, json_array_get(cv, i));
    for (size_t i = k; i < json_array_size(rv); i++) json_array_append(*rj, json_array_get(rv, i));
    return 0;
}

/* ---- per-kind conversion ---- */
static int conv_text(DataReader *r, json_t *rec, Example *ex, int *kept, Error *e) {
    const json_t *v = json_object_get(rec, "text");
    if (!v) return BAD(r, e, "missing field \"text\"");
    if (!json_is_string(v)) return BAD(r, e, "field \"text\" must be a string");
    IntVec ids = {0};
    add_prefix(r, &ids, 0);
    int np = ids.n;
    if (tok_encode(r->tok, json_string_value(v), json_string_length(v), r->o.parse_special, &ids)) {
        intvec_free(&ids);
        return BAD(r, e, "field \"text\": characters the tokenizer has no token for");
    }
    int eos = tok_eos_id(r->tok);
    if (r->o.add_eos && eos >= 0 && (ids.n == np || ids.v[ids.n - 1] != eos)) intvec_push(&ids, eos);
    /* the mask is 0 over the prefix, 1 after: built as bytes once the ids are
     * known, after the ids are shrunk to size (a huge line: 5 bytes a token, not
     * 4 + 4 with both vectors' growth slack) */
    ids.v = xrealloc(ids.v, (size_t)ids.n * sizeof(int));
    ids.cap = ids.n;
    unsigned char *m = xmalloc((size_t)ids.n);
    memset(m, 0, (size_t)np);
    memset(m + np, 1, (size_t)(ids.n - np));
    *kept = finish(r, &ids, m, np, np, 0, ex);
    intvec_free(&ids);
    return 0;
}

static int conv_segments(DataReader *r, json_t *rec, Example *ex, int *kept, Error *e) {
    const json_t *v = json_object_get(rec, "segments");
    if (!json_is_array(v)) return BAD(r, e, "field \"segments\" must be a list of {\"text\", \"train\"}");
    IntVec ids = {0}, mask = {0};
    add_prefix(r, &ids, 0);
    int np = ids.n, last_train = 0;
    push_mask(&mask, 0, np);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *s = json_array_get(v, i);
        const json_t *text = json_object_get(s, "text"), *train = json_object_get(s, "train");
        if (!json_is_string(text) || !json_is_boolean(train)) {
            intvec_free(&ids);
            intvec_free(&mask);
            return BAD(r, e, "field \"segments[%zu]\" must be {\"text\": string, \"train\": bool}", i);
        }
        int before = ids.n;
        if (tok_encode(r->tok, json_string_value(text), json_string_length(text), r->o.parse_special, &ids)) {
            intvec_free(&ids);
            intvec_free(&mask);
            return BAD(r, e, "field \"segments[%zu].text\": characters the tokenizer has no token for", i);
        }
        last_train = json_is_true(train);
        push_mask(&mask, last_train, ids.n - before);
    }
    int eos = tok_eos_id(r->tok);
    if (r->o.add_eos && eos >= 0 && (ids.n == np || ids.v[ids.n - 1] != eos)) {
        intvec_push(&ids, eos);
        intvec_push(&mask, last_train);
    }
    *kept = finish(r, &ids, mask_bytes(&mask), 0, np, 0, ex);
    intvec_free(&ids);
    intvec_free(&mask);
    return 0;
}

static int conv_conversation(DataReader *r, json_t *rec, Example *ex, int *kept, Error *e) {
    const json_t *v = json_object_get(rec, "messages");
    if (!v) return BAD(r, e, "missing field \"messages\"");
    int rc = resolve_tpl(r, e);
    if (rc) return rc;
    ChatMessage *m;
    int n;
    if ((rc = parse_messages(r, v, "messages", 1, &m, &n, e))) return rc;
    ChatRender cr;
    if ((rc = chat_render_tok(r->tpl, r->tok, m, n, 0, &cr, e))) {
        free(m);
        return err_prefix(e, "%s:%ld: field \"messages\"", r->jr.name, r->jr.line);
    }
    IntVec ids = {0}, mask = {0};
    add_prefix(r, &ids, 1);
    int np = ids.n;
    push_mask(&mask, 0, np);
    rc = chat_tokenize(r->tok, &cr, &ids, &mask, e);
    int eos = tok_eos_id(r->tok);
    if (!rc && (r->tpl == CHAT_PLAIN || r->tpl == CHAT_HH) && r->o.add_eos && eos >= 0 && n &&
        !strcmp(m[n - 1].role, "assistant") && ids.v[ids.n - 1] != eos) {
        intvec_push(&ids, eos);
        intvec_push(&mask, 1);
    }
    chat_render_free(&cr);
    free(m);
    if (!rc) *kept = finish(r, &ids, mask_bytes(&mask), 0, np, 0, ex);
    intvec_free(&ids);
    intvec_free(&mask);
    return rc;
}

/* prompt + completion (prompt-completion, rollout, preference-as-SFT). */
static int conv_pc(DataReader *r, const json_t *pv, const json_t *cv, const char *cfield, Example *ex, int *kept,
                   Error *e) {
    IntVec ids = {0}, mask = {0};
    int rc = encode_prompt(r, pv, "prompt", &ids, e);
    if (rc) goto out;
    int np = prompt_prefix_len(r, pv);
    int cut = cut_prompt(r, &ids, np);
    int plen = ids.n;
    push_mask(&mask, 0, plen);
    if ((rc = encode_completion(r, pv, cv, "prompt", cfield, &ids, &mask, e))) goto out;
    long t0 = r->counts.truncated;
    *kept = finish(r, &ids, mask_bytes(&mask), plen, np, 1, ex);
    if (*kept && cut && r->counts.truncated == t0) r->counts.truncated++;
out:
    intvec_free(&ids);
    intvec_free(&mask);
    return rc;
}

static int get_field(DataReader *r, json_t *rec, const char *f, json_t **v, Error *e) {
    *v = json_object_get(rec, f);
    if (!*v) return BAD(r, e, "missing field \"%s\"", f);
    return 0;
}

static int conv_any(DataReader *r, json_t *rec, Example *ex, int *kept, Error *e) {
    json_t *pv, *cv;
    int rc;
    switch (r->kind) {
    case DATA_TEXT:
        return conv_text(r, rec, ex, kept, e);
    case DATA_SEGMENTS:
        return conv_segments(r, rec, ex, kept, e);
    case DATA_CONVERSATIONAL:
        return conv_conversation(r, rec, ex, kept, e);
    case DATA_PROMPT_COMPLETION:
    case DATA_ROLLOUT: {
        if ((rc = get_field(r, rec, "prompt", &pv, e)) || (rc = get_field(r, rec, "completion", &cv, e))) return rc;
        double reward = 0;
        int has_reward = 0, has_group = 0;
        long group = 0;
        const json_t *rw = json_object_get(rec, "reward"), *gr = json_object_get(rec, "group");
        if (rw && !json_is_null(rw)) {
            if (!json_is_number(rw)) return BAD(r, e, "field \"reward\" must be a number");
            reward = json_number_value(rw), has_reward = 1;
        }
        if (gr && !json_is_null(gr)) {
            if (!json_is_integer(gr)) return BAD(r, e, "field \"group\" must be an integer");
            group = (long)json_integer_value(gr), has_group = 1;
        }
        if ((rc = conv_pc(r, pv, cv, "completion", ex, kept, e))) return rc;
        if (*kept) ex->reward = reward, ex->has_reward = has_reward, ex->group = group, ex->has_group = has_group;
        return 0;
    }
    case DATA_PREFERENCE: {
        json_t *p = NULL, *c = NULL, *rj = NULL;
        if ((rc = pref_fields(r, rec, &p, &c, &rj, e))) return rc;
        rc = conv_pc(r, p, c, "chosen", ex, kept, e);
        json_decref(p);
        json_decref(c);
        json_decref(rj);
        return rc;
    }
    case DATA_PROMPT_ONLY:
        return err_set(e, EX_USAGE,
                       "%s:%ld: prompt-only records have no completion to train on (they are input "
                       "for rollout and ppo)",
                       r->jr.name, r->jr.line);
    case DATA_AUTO:
        break;
    }
    return BAD(r, e, "cannot tell the kind of this record (no text, prompt, messages, segments or chosen field)");
}

/* Reads the next record (skipping invalid ones when asked) and fixes the kind. */
static int next_record(DataReader *r, json_t **rec, Error *e) {
    if (r->pending) {
        *rec = r->pending;
        r->pending = NULL;
        r->jr.line = r->pending_line;
        return 0;
    }
    for (;;) {
        int rc = jsonl_next(&r->jr, rec, e);
        if (rc) {
            if (rc == EX_DATAERR && r->o.skip_invalid) {
                r->counts.records++;
                r->counts.skipped++;
                continue;
            }
            return rc;
        }
        if (!*rec) return DATA_END;
        r->counts.records++;
        if (r->kind == DATA_AUTO) {
            r->kind = data_detect_kind(*rec);
            if (r->kind == DATA_AUTO) {
                json_decref(*rec);
                *rec = NULL;
                rc = BAD(r, e,
                         "cannot tell the kind of this record (no text, prompt, messages, segments or "
                         "chosen field); pass --kind");
                if (r->o.skip_invalid) {
                    r->counts.skipped++;
                    continue;
                }
                return rc;
            }
        }
        return 0;
    }
}

int data_peek_kind(DataReader *r, DataKind *kind, Error *e) {
    if (r->kind == DATA_AUTO && !r->pending) {
        json_t *rec;
        int rc = next_record(r, &rec, e);
        if (rc && rc != DATA_END) return rc;
        if (!rc) {
            r->pending = rec;
            r->pending_line = r->jr.line;
        }
    }
    *kind = r->kind;
    return 0;
}

int data_next(DataReader *r, Example *ex, Error *e) {
    for (;;) {
        json_t *rec;
        int rc = next_record(r, &rec, e);
        if (rc) return rc;
        int kept = 0;
        memset(ex, 0, sizeof *ex);
        rc = conv_any(r, rec, ex, &kept, e);
        if (rc) {
            json_decref(rec);
            if (rc == EX_DATAERR && r->o.skip_invalid) {
                r->counts.skipped++;
                continue;
            }
            return rc;
        }
        if (!kept) {
            json_decref(rec);
            continue;
        }
        if (r->o.keep_record)
            ex->record = rec;
        else
            json_decref(rec);
        r->counts.examples++;
        return 0;
    }
}

static int conv_pref(DataReader *r, json_t *rec, PrefExample *px, int *kept, Error *e) {
    json_t *p = NULL, *c = NULL, *rj = NULL;
    int rc = pref_fields(r, rec, &p, &c, &rj, e);
    if (rc) return rc;
    IntVec pi = {0}, ci = {0}, ri = {0}, mask = {0};
    memset(px, 0, sizeof *px);
    *kept = 0;
    if ((rc = encode_prompt(r, p, "prompt", &pi, e))) goto out;
    int np = prompt_prefix_len(r, p);
    int truncated = cut_prompt(r, &pi, np);
    if ((rc = encode_completion(r, p, c, "prompt", "chosen", &ci, &mask, e))) goto out;
    mask.n = 0;
    if ((rc = encode_completion(r, p, rj, "prompt", "rejected", &ri, &mask, e))) goto out;
    int maxl = r->o.max_length;
    if (maxl > 0 && pi.n >= maxl) {
        r->counts.dropped++;
        goto out;
    }
    if (!ci.n || !ri.n) {
        r->counts.dropped++;
        goto out;
    }
    if (maxl > 0 && pi.n + ci.n > maxl) ci.n = maxl - pi.n, truncated = 1;
    if (maxl > 0 && pi.n + ri.n > maxl) ri.n = maxl - pi.n, truncated = 1;
    if (truncated) r->counts.truncated++;
    const json_t *v;
    if ((v = json_object_get(rec, "margin")) && !json_is_null(v)) {
        if (!json_is_number(v)) {
            rc = BAD(r, e, "field \"margin\" must be a number");
            goto out;
        }
        px->margin = json_number_value(v), px->has_margin = 1;
        if (!(fabs(px->margin) <= FLT_MAX)) {
            rc = BAD(r, e, "field \"margin\" must be finite as float32, got %g", px->margin);
            goto out;
        }
    }
    const json_t *rc_ = json_object_get(rec, "ref_chosen_logps"), *rr_ = json_object_get(rec, "ref_rejected_logps");
    if ((rc_ && !json_is_null(rc_)) || (rr_ && !json_is_null(rr_))) {
        if (!json_is_number(rc_) || !json_is_number(rr_)) {
            rc = BAD(r, e, "fields \"ref_chosen_logps\" and \"ref_rejected_logps\" must both be numbers");
            goto out;
        }
        px->ref_chosen_logp = json_number_value(rc_), px->ref_rejected_logp = json_number_value(rr_);
        /* a sequence log-probability is <= 0, and the losses run in float32 */
        const char *bad_ref = !(px->ref_chosen_logp <= 0 && px->ref_chosen_logp >= -FLT_MAX) ? "ref_chosen_logps"
                              : !(px->ref_rejected_logp <= 0 && px->ref_rejected_logp >= -FLT_MAX)
                                  ? "ref_rejected_logps"
                                  : NULL;
        if (bad_ref) {
            rc = BAD(r, e, "field \"%s\" must be a log-probability: <= 0 and finite as float32, got %g", bad_ref,
                     !strcmp(bad_ref, "ref_chosen_logps") ? px->ref_chosen_logp : px->ref_rejected_logp);
            goto out;
        }
        px->has_ref = 1;
    }
    if ((v = json_object_get(rec, "id")) && !json_is_null(v)) {
        char buf[64];
        if (json_is_string(v))
            px->id = xstrdup(json_string_value(v));
        else if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v)), px->id = xstrdup(buf);
        else if (json_is_real(v))
            snprintf(buf, sizeof buf, "%.17g", json_real_value(v)), px->id = xstrdup(buf);
        else {
            rc = BAD(r, e, "field \"id\" must be a string or a number");
            goto out;
        }
    }
    px->prompt = pi.v, px->n_prompt = pi.n, pi.v = NULL;
    px->chosen = ci.v, px->n_chosen = ci.n, ci.v = NULL;
    px->rejected = ri.v, px->n_rejected = ri.n, ri.v = NULL;
    if (!px->prompt) px->prompt = xmalloc(sizeof(int));
    px->line = r->jr.line;
    *kept = 1;
out:
    if (rc) pref_example_free(px);
    intvec_free(&pi);
    intvec_free(&ci);
    intvec_free(&ri);
    intvec_free(&mask);
    json_decref(p);
    json_decref(c);
    json_decref(rj);
    return rc;
}

int data_next_pref(DataReader *r, PrefExample *px, Error *e) {
    for (;;) {
        json_t *rec;
        int rc = next_record(r, &rec, e);
        if (rc) return rc;
        if (r->kind != DATA_PREFERENCE) {
            json_decref(rec);
            return BAD(r, e, "expected preference records (chosen, rejected), this file is %s data",
                       data_kind_name(r->kind));
        }
        int kept = 0;
        rc = conv_pref(r, rec, px, &kept, e);
        json_decref(rec);
        if (rc) {
            if (rc == EX_DATAERR && r->o.skip_invalid) {
                r->counts.skipped++;
                continue;
            }
            return rc;
        }
        if (!kept) continue;
        r->counts.examples++;
        return 0;
    }
}

/* The prompt value of a record of any kind with one (a new reference). */
static int prompt_value(DataReader *r, json_t *rec, json_t **pv, Error *e) {
    switch (r->kind) {
    case DATA_PREFERENCE: {
        json_t *c, *rj;
        int rc = pref_fields(r, rec, pv, &c, &rj, e);
        if (rc) return rc;
        json_decref(c);
        json_decref(rj);
        return 0;
    }
    case DATA_CONVERSATIONAL: {
        /* the conversation minus its final assistant message */
        json_t *m = json_object_get(rec, "messages");
        if (!json_is_array(m)) return BAD(r, e, "field \"messages\" must be a list of messages");
        size_t n = json_array_size(m);
        const char *role = json_string_value(json_object_get(json_array_get(m, n ? n - 1 : 0), "role"));
        if (n && role && !strcmp(role, "assistant")) n--;
        *pv = json_array();
        for (size_t i = 0; i < n; i++) json_array_append(*pv, json_array_get(m, i));
        return 0;
    }
    case DATA_PROMPT_ONLY:
    case DATA_PROMPT_COMPLETION:
    case DATA_ROLLOUT: {
        json_t *p = json_object_get(rec, "prompt");
        if (!p && r->kind == DATA_PROMPT_ONLY) p = json_object_get(rec, "messages");
        if (!p) return BAD(r, e, "missing field \"prompt\"");
        *pv = json_incref(p);
        return 0;
    }
    default:
        return BAD(r, e, "%s records have no prompt", data_kind_name(r->kind));
    }
}

int data_next_prompt(DataReader *r, PromptExample *px, Error *e) {
    for (;;) {
        json_t *rec, *pv = NULL;
        int rc = next_record(r, &rec, e);
        if (rc) return rc;
        memset(px, 0, sizeof *px);
        IntVec ids = {0};
        rc = prompt_value(r, rec, &pv, e);
        if (!rc) rc = encode_prompt(r, pv, "prompt", &ids, e);
        if (rc) {
            if (pv) json_decref(pv);
            json_decref(rec);
            intvec_free(&ids);
            if (rc == EX_DATAERR && r->o.skip_invalid) {
                r->counts.skipped++;
                continue;
            }
            return rc;
        }
        int np = prompt_prefix_len(r, pv);
        if (cut_prompt(r, &ids, np)) r->counts.truncated++;
        if ((r->o.max_length > 0 && ids.n >= r->o.max_length) || ids.n == 0) {
            r->counts.dropped++;
            json_decref(pv);
            json_decref(rec);
            intvec_free(&ids);
            continue;
        }
        px->ids = ids.v;
        px->n = ids.n;
        px->prompt = pv;
        px->record = rec;
        px->line = r->jr.line;
        r->counts.examples++;
        return 0;
    }
}
