/* client.c — see client.h. */
#include "client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void http_client_global_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
    HttpClient *c = ctx;
    size_t k = size * n;
    if (c->len + k + 1 > c->cap) {
        c->cap = 2 * (c->len + k) + 1024;
        c->buf = xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, p, k);
    c->len += k;
    c->buf[c->len] = 0;
    return k;
}

int http_client_init(HttpClient *c, const char *base_url, const char *token, Error *e) {
    memset(c, 0, sizeof *c);
    c->curl = curl_easy_init();
    if (!c->curl) return err_set(e, EX_SOFTWARE, "curl_easy_init failed");
    c->base = xstrdup(base_url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/') c->base[--n] = 0;
    if (token && *token) {
        c->auth = xmalloc(strlen(token) + 32);
        sprintf(c->auth, "Authorization: Bearer %s", token);
    }
    c->timeout_s = 120;
    return 0;
}

void http_client_free(HttpClient *c) {
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->base), free(c->auth), free(c->buf);
    memset(c, 0, sizeof *c);
}

int http_json(HttpClient *c, const char *path, const json_t *body, long *status, json_t **out, double *ms, Error *e) {
    CURL *h = c->curl;
    char *url = xmalloc(strlen(c->base) + strlen(path) + 1);
    strcpy(url, c->base);
    strcat(url, path);
    char *data = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->auth) hd = curl_slist_append(hd, c->auth);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (data) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(data));
    }
    c->len = 0;
    double t0 = now_seconds();
    CURLcode rc = curl_easy_perform(h);
    if (ms) *ms = (now_seconds() - t0) * 1000;
    curl_slist_free_all(hd);
    free(data);
    int ret = 0;
    *out = NULL;
    if (rc != CURLE_OK) {
        ret = err_set(e, EX_UNAVAILABLE, "%s: %s", url, curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        json_error_t je;
        *out = c->len ? json_loadb(c->buf, c->len, JSON_ALLOW_NUL, &je) : NULL; /* a model may emit byte 0 */
    }
    free(url);
    return ret;
}
