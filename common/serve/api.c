/* api.c — see api.h. */
#include "api.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "formats/tokenizer.h"

#define MAX_STOP_BYTES 64
#define MAX_COMMENT 4096
#define MAX_USER 128

static int bad(Error *e, const char *fmt, const char *field) {
    return err_set(e, EX_DATAERR, fmt, field);
}

/* A number field within [lo, hi] (absent: keeps *out). */
static int get_num(const json_t *body, const char *f, double lo, double hi, double *out, Error *e) {
    const json_t *v = json_object_get(body, f);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return bad(e, "field \"%s\" must be a number", f);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return err_set(e, EX_DATAERR, "field \"%s\" must be in [%g, %g]", f, lo, hi);
    *out = x;
    return 0;
}

static int get_int(const json_t *body, const char *f, long lo, long hi, int *out, Error *e) {
    const json_t *v = json_object_get(body, f);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return bad(e, "field \"%s\" must be an integer", f);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return err_set(e, EX_DATAERR, "field \"%s\" must be in [%ld, %ld]", f, lo, hi);
    *out = (int)x;
    return 0;
}

static int check_messages(const json_t *m, Error *e) {
    if (!json_is_array(m) || json_array_size(m) == 0)
        return bad(e, "field \"%s\" must be a non-empty list", "messages");
    for (size_t i = 0; i < json_array_size(m); i++) {
        const json_t *o = json_array_get(m, i);
        const json_t *role = json_object_get(o, "role"), *content = json_object_get(o, "content");
        if (!json_is_object(o) || !json_is_string(role) || !json_is_string(content))
            return err_set(e, EX_DATAERR, "field \"messages[%zu]\" must have string \"role\" and \"content\"", i);
        const char *r = json_string_value(role);
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return err_set(e, EX_DATAERR, "field \"messages[%zu].role\": expected system, user or assistant", i);
    }
    return 0;
}

int api_parse_request(const json_t *body, int chat, const ApiLimits *lim, ApiRequest *r, Error *e) {
    memset(r, 0, sizeof *r);
    r->chat = chat;
    if (!json_is_object(body)) return err_set(e, EX_DATAERR, "the body must be a JSON object");
    if (chat) {
        r->prompt = json_object_get(body, "messages");
        if (check_messages(r->prompt, e)) return e->code;
    } else {
        const json_t *p = json_object_get(body, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (json_is_array(p)) return bad(e, "field \"%s\": one prompt per request (a string)", "prompt");
        if (!json_is_string(p) || json_string_length(p) == 0)
            return bad(e, "field \"%s\" must be a non-empty string", "prompt");
        if (strlen(json_string_value(p)) != json_string_length(p))
            return bad(e, "field \"%s\" contains a NUL character", "prompt");
        r->prompt = p;
    }
    const json_t *model = json_object_get(body, "model");
    if (model && !json_is_null(model) && !json_is_string(model))
        return bad(e, "field \"%s\" must be a string", "model");
    r->model = json_string_value(model);
    r->n = 1;
    r->temperature = 1;
    r->top_p = 1;
    r->max_tokens = lim->default_tokens;
    if (get_int(body, "n", 1, lim->max_n, &r->n, e)) return e->code;
    if (get_int(body, "max_tokens", 1, lim->max_tokens, &r->max_tokens, e)) return e->code;
    if (get_int(body, "max_completion_tokens", 1, lim->max_tokens, &r->max_tokens, e)) return e->code;
    if (get_num(body, "temperature", 0, 2, &r->temperature, e)) return e->code;
    if (get_num(body, "top_p", 0, 1, &r->top_p, e)) return e->code;
    if (r->top_p <= 0) return bad(e, "field \"%s\" must be > 0", "top_p");
    const json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) return bad(e, "field \"%s\" must be an integer", "seed");
        r->seed = (uint64_t)json_integer_value(seed);
        r->has_seed = 1;
    }
    const json_t *stream = json_object_get(body, "stream");
    if (stream && !json_is_null(stream) && !json_is_boolean(stream))
        return bad(e, "field \"%s\" must be true or false", "stream");
    r->stream = json_is_true(stream);
    const json_t *stop = json_object_get(body, "stop");
    if (json_is_string(stop)) {
        r->stop[r->n_stop++] = json_string_value(stop);
    } else if (json_is_array(stop)) {
        if (json_array_size(stop) > GENJOB_MAX_STOP) return bad(e, "field \"%s\": at most 4 stop strings", "stop");
        for (size_t i = 0; i < json_array_size(stop); i++) {
            if (!json_is_string(json_array_get(stop, i))) return bad(e, "field \"%s\" must hold strings", "stop");
            r->stop[r->n_stop++] = json_string_value(json_array_get(stop, i));
        }
    } else if (stop && !json_is_null(stop))
        return bad(e, "field \"%s\" must be a string or a list of strings", "stop");
    for (int i = 0; i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        if (n == 0 || n > MAX_STOP_BYTES) return bad(e, "field \"%s\": each stop string must have 1..64 bytes", "stop");
    }
    return 0;
}

GenJob *api_job(const ApiRequest *r, uint64_t seed) {
    GenJob *j = gen_job_new(r->prompt, r->n);
    j->sampler.temperature = (float)r->temperature;
    j->sampler.top_p = (float)r->top_p;
    j->max_tokens = r->max_tokens;
    j->seed = r->has_seed ? r->seed : seed;
    for (int i = 0; i < r->n_stop; i++) j->stop[j->n_stop++] = xstrdup(r->stop[i]);
    return j;
}

static const char *finish_name(const GenChoice *c) {
    return c->finish_stop ? "stop" : "length";
}

static json_t *choice_id(const char *id, int i) {
    char b[96];
    snprintf(b, sizeof b, "%s-%d", id, i);
    return json_string(b);
}

static json_t *usage(const GenJob *j) {
    long ct = 0;
    for (int i = 0; i < j->n; i++) ct += j->out[i].n_tokens;
    return json_pack("{s:i, s:I, s:I}", "prompt_tokens", j->prompt_tokens, "completion_tokens", (json_int_t)ct,
                     "total_tokens", (json_int_t)(ct + j->prompt_tokens));
}

json_t *api_response(const ApiRequest *r, const GenJob *j, const char *id, long created, const char *model) {
    json_t *choices = json_array();
    for (int i = 0; i < j->n; i++) {
        const GenChoice *c = &j->out[i];
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(i));
        json_object_set_new(ch, "id", choice_id(id, i));
        if (r->chat)
            json_object_set_new(ch, "message",
                                json_pack("{s:s, s:s%}", "role", "assistant", "content", c->text, c->text_len));
        else {
            json_object_set_new(ch, "text", json_stringn(c->text, c->text_len));
            json_object_set_new(ch, "logprobs", json_null());
        }
        json_object_set_new(ch, "finish_reason", json_string(finish_name(c)));
        json_array_append_new(choices, ch);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string(r->chat ? "chat.completion" : "text_completion"));
    json_object_set_new(o, "created", json_integer(created));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "system_fingerprint", json_string(j->version ? j->version : ""));
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage(j));
    return o;
}

/* A JSON string of n bytes that may not be valid UTF-8 (a streamed piece of a random
 * model's output): invalid sequences become U+FFFD, as the final text's decode does. */
static json_t *lossy_string(const char *s, size_t n) {
    size_t m;
    char *fixed = utf8_sanitize(s, n, &m);
    json_t *o = fixed ? json_stringn(fixed, m) : json_stringn(s, n);
    free(fixed);
    return o ? o : json_string("");
}

json_t *api_chunk(const ApiRequest *r, const char *id, long created, const char *model, const char *version, int index,
                  const char *text, size_t len, int role, const char *finish) {
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(index));
    json_object_set_new(ch, "id", choice_id(id, index));
    if (r->chat) {
        json_t *d = json_object();
        if (role) json_object_set_new(d, "role", json_string("assistant"));
        if (text) json_object_set_new(d, "content", lossy_string(text, len));
        json_object_set_new(ch, "delta", d);
    } else {
        json_object_set_new(ch, "text", text ? lossy_string(text, len) : json_string(""));
        json_object_set_new(ch, "logprobs", json_null());
    }
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "object", json_string(r->chat ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(o, "created", json_integer(created));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "system_fingerprint", json_string(version ? version : ""));
    json_object_set_new(o, "choices", json_pack("[o]", ch));
    return o;
}

json_t *api_interaction_record(const ApiRequest *r, const json_t *body, const GenJob *j, const char *id, long created,
                               const char *model, const char *time, double latency_ms) {
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("interaction"));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "created", json_integer(created));
    json_object_set_new(o, "time", json_string(time));
    json_object_set_new(o, "endpoint", json_string(r->chat ? "/v1/chat/completions" : "/v1/completions"));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "model_version", json_string(j->version ? j->version : ""));
    json_object_set_new(o, "prompt", json_deep_copy(r->prompt));
    json_t *stop = json_array();
    for (int i = 0; i < r->n_stop; i++) json_array_append_new(stop, json_string(r->stop[i]));
    json_object_set_new(o, "sampling",
                        json_pack("{s:f, s:f, s:i, s:i, s:I, s:o, s:b}", "temperature", r->temperature, "top_p",
                                  r->top_p, "max_tokens", r->max_tokens, "n", r->n, "seed", (json_int_t)j->seed, "stop",
                                  stop, "stream", r->stream));
    json_t *choices = json_array();
    for (int i = 0; i < j->n; i++) {
        const GenChoice *c = &j->out[i];
        json_array_append_new(choices, json_pack("{s:o, s:i, s:s%, s:s, s:i}", "id", choice_id(id, i), "index", i,
                                                 "text", c->text ? c->text : "", c->text ? c->text_len : 0,
                                                 "finish_reason", finish_name(c), "tokens", c->n_tokens));
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage(j));
    json_object_set_new(o, "latency_ms", json_real(round(latency_ms * 1000) / 1000));
    json_object_set_new(o, "request", json_deep_copy(body));
    return o;
}

/* A completion id field that the index knows. */
static int known_completion(const json_t *body, const char *f, IdIndex *ix, IdEntry *ent, Error *e) {
    const char *id = json_string_value(json_object_get(body, f));
    if (!id) return bad(e, "field \"%s\" must be a completion id (a string)", f);
    if (!idindex_get(ix, id, ent) || !ent->response)
        return err_set(e, EX_NOINPUT, "field \"%s\": unknown completion id \"%.100s\"", f, id);
    return 0;
}

static int feedback_thumbs(const json_t *body, IdIndex *ix, json_t *o, Error *e) {
    IdEntry c;
    if (known_completion(body, "completion_id", ix, &c, e)) return e->code;
    const char *v = json_string_value(json_object_get(body, "value"));
    if (!v || (strcmp(v, "up") && strcmp(v, "down"))) return bad(e, "field \"%s\" must be \"up\" or \"down\"", "value");
    json_object_set_new(o, "completion_id", json_string(c.id));
    json_object_set_new(o, "response_id", json_string(c.response));
    json_object_set_new(o, "value", json_string(v));
    return 0;
}

static int feedback_ranking(const json_t *body, IdIndex *ix, json_t *o, Error *e) {
    const char *rid = json_string_value(json_object_get(body, "response_id"));
    if (!rid) return bad(e, "field \"%s\" must be a response id (a string)", "response_id");
    IdEntry r;
    if (!idindex_get(ix, rid, &r) || r.response)
        return err_set(e, EX_NOINPUT, "field \"response_id\": unknown response id \"%.100s\"", rid);
    const json_t *rk = json_object_get(body, "ranking");
    if (!json_is_array(rk)) return bad(e, "field \"%s\" must be a list of completion ids, best first", "ranking");
    if (r.index < 2) return err_set(e, EX_DATAERR, "response \"%.100s\" has one completion: nothing to rank", rid);
    if ((int)json_array_size(rk) != r.index)
        return err_set(e, EX_DATAERR, "field \"ranking\" must list all %d completions of the response, got %zu",
                       r.index, json_array_size(rk));
    unsigned char seen[64] = {0};
    for (size_t i = 0; i < json_array_size(rk); i++) {
        const char *cid = json_string_value(json_array_get(rk, i));
        IdEntry c;
        if (!cid) return err_set(e, EX_DATAERR, "field \"ranking[%zu]\" must be a completion id", i);
        if (!idindex_get(ix, cid, &c) || !c.response)
            return err_set(e, EX_NOINPUT, "field \"ranking[%zu]\": unknown completion id \"%.100s\"", i, cid);
        if (strcmp(c.response, rid) || c.index < 0 || c.index >= 64)
            return err_set(e, EX_DATAERR, "field \"ranking[%zu]\": \"%.100s\" is not a completion of %.100s", i, cid,
                           rid);
        if (seen[c.index]++) return err_set(e, EX_DATAERR, "field \"ranking[%zu]\": \"%.100s\" listed twice", i, cid);
    }
    json_object_set_new(o, "response_id", json_string(rid));
    json_object_set_new(o, "ranking", json_deep_copy(rk));
    return 0;
}

static int feedback_pick(const json_t *body, IdIndex *ix, json_t *o, Error *e) {
    IdEntry c, r;
    if (known_completion(body, "chosen", ix, &c, e) || known_completion(body, "rejected", ix, &r, e)) return e->code;
    if (!strcmp(c.id, r.id))
        return err_set(e, EX_DATAERR, "fields \"chosen\" and \"rejected\" name the same completion");
    if (c.prompt_hash != r.prompt_hash)
        return err_set(e, EX_DATAERR, "fields \"chosen\" and \"rejected\" answer different prompts");
    json_object_set_new(o, "chosen", json_string(c.id));
    json_object_set_new(o, "rejected", json_string(r.id));
    return 0;
}

int api_feedback_record(const json_t *body, IdIndex *ix, const char *id, long created, const char *time, json_t **out,
                        Error *e) {
    *out = NULL;
    if (!json_is_object(body)) return err_set(e, EX_DATAERR, "the body must be a JSON object");
    const char *type = json_string_value(json_object_get(body, "type"));
    if (!type) return bad(e, "field \"%s\" must be \"thumbs\", \"ranking\" or \"pick\"", "type");
    const json_t *comment = json_object_get(body, "comment"), *user = json_object_get(body, "user");
    if (comment && !json_is_null(comment) && (!json_is_string(comment) || json_string_length(comment) > MAX_COMMENT))
        return bad(e, "field \"%s\" must be a string of at most 4096 bytes", "comment");
    if (user && !json_is_null(user) && (!json_is_string(user) || json_string_length(user) > MAX_USER))
        return bad(e, "field \"%s\" must be a string of at most 128 bytes", "user");
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("feedback"));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "created", json_integer(created));
    json_object_set_new(o, "time", json_string(time));
    json_object_set_new(o, "type", json_string(type));
    int rc;
    if (!strcmp(type, "thumbs"))
        rc = feedback_thumbs(body, ix, o, e);
    else if (!strcmp(type, "ranking"))
        rc = feedback_ranking(body, ix, o, e);
    else if (!strcmp(type, "pick"))
        rc = feedback_pick(body, ix, o, e);
    else
        rc = bad(e, "field \"%s\" must be \"thumbs\", \"ranking\" or \"pick\"", "type");
    if (rc) {
        json_decref(o);
        return rc;
    }
    if (json_is_string(user)) json_object_set(o, "user", (json_t *)user);
    if (json_is_string(comment)) json_object_set(o, "comment", (json_t *)comment);
    *out = o;
    return 0;
}

json_t *api_error(const char *message, const char *type) {
    return json_pack("{s:{s:s, s:s, s:n}}", "error", "message", message, "type", type, "code");
}
