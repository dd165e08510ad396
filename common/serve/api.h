/* api.h — the OpenAI-compatible request and response bodies of serve, and the
 * records it logs (man 5 cherry-serve-log).
 *
 * Requests (OpenAI API reference, "Create chat completion" / "Create completion"):
 * messages (chat) or prompt (completions: a string, or a list of one string), n,
 * temperature, top_p, max_tokens (or max_completion_tokens), stop (a string or up
 * to 4), seed, stream, model.  Other fields are accepted and ignored, as clients
 * send many.  Responses carry an id ("chatcmpl-..." / "cmpl-..."), each choice an
 * id of its own ("<response id>-<index>") for feedback, and system_fingerprint =
 * the model version.  Feedback bodies (POST /v1/feedback) are checked against the
 * ids the interaction log holds.
 * Errors are EX_DATAERR (HTTP 400) naming the field, EX_NOINPUT (404) for an
 * unknown id or model.  Not for: HTTP itself (http.h). */
#ifndef CHERRY_API_H
#define CHERRY_API_H

#include <jansson.h>
#include <stdint.h>

#include "base/err.h"
#include "engine.h"
#include "idindex.h"

typedef struct ApiLimits {
    int max_n;          /* most choices per request (default 16) */
    int max_tokens;     /* most tokens per choice (default 512) */
    int default_tokens; /* when the request gives none (default 128) */
} ApiLimits;

typedef struct ApiRequest {
    int chat;             /* /v1/chat/completions (messages) or /v1/completions (prompt) */
    const json_t *prompt; /* borrowed from the body: a message list or a string */
    const char *model;    /* NULL when absent */
    int n, max_tokens, stream, has_seed;
    double temperature, top_p;
    uint64_t seed;
    const char *stop[GENJOB_MAX_STOP];
    int n_stop;
} ApiRequest;

/* Validates a request body.  EX_DATAERR with a message naming the field. */
int api_parse_request(const json_t *body, int chat, const ApiLimits *lim, ApiRequest *r, Error *e);
/* A job for the engine from a parsed request; seed = the request's or `seed`. */
GenJob *api_job(const ApiRequest *r, uint64_t seed);

/* The response object (non-streaming) for a finished job. */
json_t *api_response(const ApiRequest *r, const GenJob *j, const char *id, long created, const char *model);
/* One streaming chunk: a delta of choice `index` (text may be NULL with role set for
 * the first chat chunk), or its end (finish = "stop"/"length"). */
json_t *api_chunk(const ApiRequest *r, const char *id, long created, const char *model, const char *version, int index,
                  const char *text, size_t len, int role, const char *finish);

/* The interaction record: request, prompt, sampling settings, completions, model
 * and version, time. */
json_t *api_interaction_record(const ApiRequest *r, const json_t *body, const GenJob *j, const char *id, long created,
                               const char *model, const char *time, double latency_ms);

/* Checks a feedback body against the index and builds the record to log.
 * Types: thumbs {completion_id, value: "up"|"down"}; ranking {response_id,
 * ranking: [completion ids, best first, each of the response's once]}; pick
 * {chosen, rejected: completion ids of the same prompt}; all with optional
 * comment and user.  EX_DATAERR (400) or EX_NOINPUT (404, unknown id). */
int api_feedback_record(const json_t *body, IdIndex *ix, const char *id, long created, const char *time, json_t **out,
                        Error *e);

/* {"error": {"message", "type", "code"}} as OpenAI writes errors. */
json_t *api_error(const char *message, const char *type);

#endif
