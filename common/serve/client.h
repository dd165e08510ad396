/* client.h — a small JSON-over-HTTP client (libcurl) for programs that talk to
 * serve: the simulated users of the online loop and the load test.  One
 * HttpClient per thread (a libcurl easy handle keeps its connection alive).
 * Not for: the server side (http.h). */
#ifndef CHERRY_CLIENT_H
#define CHERRY_CLIENT_H

#include <jansson.h>

#include "base/err.h"

typedef struct HttpClient {
    void *curl;
    char *base; /* "http://127.0.0.1:8000" */
    char *auth; /* "Authorization: Bearer ..." or NULL */
    char *buf;
    size_t len, cap;
    int timeout_s;
} HttpClient;

/* Calls curl_global_init once per process (call before starting threads). */
void http_client_global_init(void);
int http_client_init(HttpClient *c, const char *base_url, const char *token, Error *e);
void http_client_free(HttpClient *c);
/* POSTs BODY (NULL = GET) to base + path.  *status gets the HTTP status, *out the
 * parsed JSON reply (NULL when the reply is not JSON), *ms the wall time.
 * Errors: EX_UNAVAILABLE (cannot connect, timeout), naming the URL. */
int http_json(HttpClient *c, const char *path, const json_t *body, long *status, json_t **out, double *ms, Error *e);

#endif
