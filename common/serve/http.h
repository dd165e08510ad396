/* http.h — serve's HTTP server (GNU libmicrohttpd, one thread per connection): the
 * routes, bearer-token checks, body limits, and the glue between requests, the
 * engine and the logs.
 *
 *   GET  /                      the chat page (webpage.h)
 *   GET  /health                {"status": "ok", model, model_version, waiting, running}
 *   GET  /v1/models             the served model (OpenAI list form)
 *   POST /v1/chat/completions   OpenAI chat completions (stream: server-sent events)
 *   POST /v1/completions        OpenAI completions
 *   POST /v1/feedback           thumbs / ranking / pick on logged completions   (token)
 *   POST /admin/reload          {"model": DIR}? -> reload (as SIGHUP)            (token)
 *
 * A completion is logged (ilog.h, fsync'd) before its response (or the final
 * "data: [DONE]" of a stream) is sent; feedback likewise.  Errors are OpenAI-style
 * JSON: 400 malformed, 401 token, 404 unknown route/id/model, 405 method, 413 body
 * too large, 500 log write, 503 shutting down; nothing is logged for them.
 * Not for: flag parsing or signals (tools/serve.c). */
#ifndef CHERRY_HTTP_H
#define CHERRY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "base/err.h"
#include "engine.h"
#include "idindex.h"
#include "ilog.h"

typedef struct ServeConfig {
    const char *host;  /* numeric IPv4 address to bind (default 127.0.0.1) */
    int port;          /* 0 = any free port (server_port tells which) */
    const char *token; /* bearer token for /v1/feedback and /admin/reload, NULL = none */
    size_t max_body;   /* bytes (default 1 MiB) */
    ApiLimits lim;
    const char *interactions, *feedback; /* log paths */
    const char *page;                    /* chat page file, NULL = the built-in one */
    ChatTemplate tpl;
    uint64_t seed; /* seeds requests that give none (from a per-server Rng) */
    EngineConfig engine;
} ServeConfig;

void serve_config_default(ServeConfig *c);

typedef struct Server Server;

/* Loads MODEL_DIR, opens the logs (indexing the ids already there), starts the
 * engine and the listener. */
int server_start(Server **out, const char *model_dir, const ServeConfig *c, Error *e);
int server_port(const Server *s);
/* Reloads DIR (NULL = the directory served now), as POST /admin/reload. */
int server_reload(Server *s, const char *dir, Error *e);
/* Stops listening, finishes the engine, closes the logs. */
void server_stop(Server *s);

#endif
