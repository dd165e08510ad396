/* http.c — see http.h. */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "formats/tokenizer.h"
#include "webpage.h"

struct Server {
    ServeConfig cfg;
    char *model_dir;
    Engine *E;
    Ilog ilog, flog;
    IdIndex ix;
    struct MHD_Daemon *d;
    pthread_mutex_t mu; /* rng, model_dir */
    Rng rng;
    char *page;
    size_t page_len;
    int port;
};

void serve_config_default(ServeConfig *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->max_body = 1 << 20;
    c->lim.max_n = 16;
    c->lim.max_tokens = 512;
    c->lim.default_tokens = 128;
    c->interactions = "interactions.jsonl";
    c->feedback = "feedback.jsonl";
    c->engine.slots = 8;
}

/* ---- responses -------------------------------------------------------------------- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *body,
                                 size_t n) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    enum MHD_Result ok = send_text(c, status, "application/json", s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return send_json(c, status, api_error(msg, type));
}

static unsigned status_of(int code) {
    switch (code) {
    case EX_NOINPUT:
        return 404;
    case EX_UNAVAILABLE:
        return 503;
    case EX_IOERR:
    case EX_SOFTWARE:
    case EX_OSERR:
        return 500;
    default:
        return 400;
    }
}

/* ---- per-connection state ----------------------------------------------------------- */

typedef struct Conn {
    char *body;
    size_t len, cap;
    int too_big;
} Conn;

static void conn_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    Conn *k = *con_cls;
    if (!k) return;
    free(k->body);
    free(k);
    *con_cls = NULL;
}

/* constant-time comparison of the Authorization header with "Bearer TOKEN" */
static int authorized(Server *s, struct MHD_Connection *c) {
    if (!s->cfg.token) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->cfg.token);
    unsigned char diff = a != b;
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(h[i] ^ s->cfg.token[i]);
    return diff == 0;
}

static uint64_t next_seed(Server *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t x = rng_next(&s->rng) >> 1; /* fits a JSON integer */
    pthread_mutex_unlock(&s->mu);
    return x;
}

/* ---- streaming ------------------------------------------------------------------------ */

typedef struct Stream {
    Server *s;
    GenJob *j;
    json_t *body;
    ApiRequest req;
    char id[64], *model;
    long created;
    double t0;
    size_t *emitted;
    unsigned char *ended;
    int role_sent, finished;
    long seen;
    char *out; /* bytes ready to send */
    size_t out_len, out_off;
} Stream;

static void stream_put(Stream *st, json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t n = strlen(s);
    st->out = xrealloc(st->out, st->out_len + n + 8);
    memcpy(st->out + st->out_len, "data: ", 6);
    memcpy(st->out + st->out_len + 6, s, n);
    memcpy(st->out + st->out_len + 6 + n, "\n\n", 2);
    st->out_len += n + 8;
    free(s);
}

static void stream_raw(Stream *st, const char *s) {
    size_t n = strlen(s);
    st->out = xrealloc(st->out, st->out_len + n);
    memcpy(st->out + st->out_len, s, n);
    st->out_len += n;
}

/* How many of the n bytes can go out while generation runs: not the last
 * (longest stop string - 1) bytes, which may begin a stop string, and never half a
 * UTF-8 character. */
static size_t safe_prefix(const GenJob *j, const char *b, size_t n) {
    size_t hold = 0;
    for (int i = 0; i < j->n_stop; i++)
        if (strlen(j->stop[i]) > hold + 1) hold = strlen(j->stop[i]) - 1;
    size_t k = n > hold ? n - hold : 0;
    for (size_t back = 0; back < 4 && back < k; back++) {
        unsigned char ch = (unsigned char)b[k - 1 - back];
        if ((ch & 0xC0) == 0x80) continue; /* continuation byte */
        size_t need = ch < 0x80 ? 1 : ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1;
        if (need > back + 1) k -= back + 1; /* incomplete: hold it back */
        break;
    }
    return k;
}

/* Turns what the job has produced since the last call into SSE events.  j->mu held. */
static void stream_collect(Stream *st) {
    GenJob *j = st->j;
    if (st->req.chat && !st->role_sent && j->version) {
        for (int i = 0; i < j->n; i++)
            stream_put(st, api_chunk(&st->req, st->id, st->created, st->model, j->version, i, NULL, 0, 1, NULL));
        st->role_sent = 1;
    }
    for (int i = 0; i < j->n; i++) {
        GenChoice *c = &j->out[i];
        if (st->ended[i]) continue;
        /* what may go out now, as text: the final decode once done, else the safe
         * prefix of the raw bytes with invalid sequences replaced as the decode does,
         * so the pieces always add up to the logged text */
        char *fixed = NULL;
        const char *src = c->text;
        size_t avail = c->text_len;
        if (!c->done) {
            size_t k = c->bytes ? safe_prefix(j, c->bytes, c->len) : 0, m = 0;
            fixed = k ? utf8_sanitize(c->bytes, k, &m) : NULL;
            src = fixed ? fixed : c->bytes;
            avail = fixed ? m : k;
        }
        if (avail > st->emitted[i]) {
            stream_put(st, api_chunk(&st->req, st->id, st->created, st->model, j->version, i, src + st->emitted[i],
                                     avail - st->emitted[i], 0, NULL));
            st->emitted[i] = avail;
        }
        free(fixed);
        if (c->done) {
            stream_put(st, api_chunk(&st->req, st->id, st->created, st->model, j->version, i, NULL, 0, 0,
                                     c->finish_stop ? "stop" : "length"));
            st->ended[i] = 1;
        }
    }
}

static int log_interaction(Server *s, const ApiRequest *r, const json_t *body, const GenJob *j, const char *id,
                           long created, const char *model, double t0, Error *e) {
    char tm[40];
    ilog_time(tm, sizeof tm);
    json_t *rec = api_interaction_record(r, body, j, id, created, model, tm, (now_seconds() - t0) * 1000);
    int rc = ilog_append(&s->ilog, rec, e);
    if (!rc) idindex_add_interaction(&s->ix, rec);
    json_decref(rec);
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    Stream *st = cls;
    while (st->out_off == st->out_len) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        st->out_off = st->out_len = 0;
        GenJob *j = st->j;
        pthread_mutex_lock(&j->mu);
        while (j->updates == st->seen) pthread_cond_wait(&j->cv, &j->mu);
        st->seen = j->updates;
        int err = j->error, all = j->n_done == j->n;
        if (!err) stream_collect(st);
        char msg[600];
        snprintf(msg, sizeof msg, "%s", j->errmsg);
        pthread_mutex_unlock(&j->mu);
        if (err || all) {
            Error e = {0};
            if (err)
                stream_put(st, api_error(msg, "invalid_request_error"));
            else if (log_interaction(st->s, &st->req, st->body, j, st->id, st->created, st->model, st->t0, &e))
                stream_put(st, api_error(e.msg, "server_error"));
            stream_raw(st, "data: [DONE]\n\n");
            st->finished = 1;
        }
    }
    size_t n = st->out_len - st->out_off < max ? st->out_len - st->out_off : max;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    Stream *st = cls;
    pthread_mutex_lock(&st->j->mu);
    st->j->cancelled = 1; /* a client that went away stops its generation */
    pthread_cond_broadcast(&st->j->cv);
    pthread_mutex_unlock(&st->j->mu);
    gen_job_unref(st->j);
    json_decref(st->body);
    free(st->model), free(st->emitted), free(st->ended), free(st->out);
    free(st);
}

/* ---- routes ------------------------------------------------------------------------------ */

static enum MHD_Result do_completions(Server *s, struct MHD_Connection *c, Conn *k, int chat) {
    json_error_t je;
    json_t *body = json_loadb(k->body ? k->body : "", k->len, 0, &je);
    if (!body) {
        char m[300];
        snprintf(m, sizeof m, "the body is not JSON: %s (at byte %d)", je.text, je.position);
        return send_error(c, 400, m);
    }
    ApiRequest r;
    Error e = {0};
    if (api_parse_request(body, chat, &s->cfg.lim, &r, &e)) {
        json_decref(body);
        return send_error(c, 400, e.msg);
    }
    char *name, *version;
    engine_model_info(s->E, &name, &version, NULL);
    if (r.model && strcmp(r.model, name) && strcmp(r.model, version)) {
        char m[300];
        snprintf(m, sizeof m, "the model \"%.100s\" is not served here (this server serves \"%.100s\")", r.model, name);
        free(name), free(version);
        json_decref(body);
        return send_error(c, 404, m);
    }
    free(version);
    double t0 = now_seconds();
    long created = (long)time(NULL);
    char id[64];
    ilog_new_id(chat ? "chatcmpl" : "cmpl", id, sizeof id);
    GenJob *j = api_job(&r, next_seed(s));
    if (engine_submit(s->E, j, &e)) {
        gen_job_unref(j);
        json_decref(body);
        free(name);
        return send_error(c, 400, e.msg);
    }
    if (r.stream) {
        Stream *st = xcalloc(1, sizeof *st);
        st->s = s, st->j = j, st->body = body, st->req = r, st->model = name, st->created = created, st->t0 = t0;
        snprintf(st->id, sizeof st->id, "%s", id);
        st->emitted = xcalloc((size_t)r.n, sizeof(size_t));
        st->ended = xcalloc((size_t)r.n, 1);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Request-Id", id);
        enum MHD_Result ok = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ok;
    }
    enum MHD_Result ok;
    int rc = gen_job_wait(j);
    if (rc) {
        ok = send_error(c, status_of(rc), j->errmsg);
    } else if (log_interaction(s, &r, body, j, id, created, name, t0, &e)) {
        ok = send_error(c, 500, e.msg);
    } else
        ok = send_json(c, 200, api_response(&r, j, id, created, name));
    gen_job_unref(j);
    json_decref(body);
    free(name);
    return ok;
}

static enum MHD_Result do_feedback(Server *s, struct MHD_Connection *c, Conn *k) {
    json_error_t je;
    json_t *body = json_loadb(k->body ? k->body : "", k->len, 0, &je);
    if (!body) return send_error(c, 400, "the body is not JSON");
    char id[64], tm[40];
    ilog_new_id("fb", id, sizeof id);
    ilog_time(tm, sizeof tm);
    json_t *rec;
    Error e = {0};
    int rc = api_feedback_record(body, &s->ix, id, (long)time(NULL), tm, &rec, &e);
    json_decref(body);
    if (rc) return send_error(c, status_of(rc), e.msg);
    rc = ilog_append(&s->flog, rec, &e);
    json_decref(rec);
    if (rc) return send_error(c, 500, e.msg);
    return send_json(c, 200, json_pack("{s:s, s:s, s:s}", "id", id, "object", "feedback", "status", "logged"));
}

static enum MHD_Result do_reload(Server *s, struct MHD_Connection *c, Conn *k) {
    const char *dir = NULL;
    json_t *body = NULL;
    if (k->len > 0) {
        json_error_t je;
        body = json_loadb(k->body, k->len, 0, &je);
        const json_t *m = json_object_get(body, "model");
        if (!json_is_object(body) || (m && !json_is_string(m))) {
            json_decref(body);
            return send_error(c, 400, "the body must be {\"model\": DIR} or empty");
        }
        dir = json_string_value(m);
    }
    Error e = {0};
    int rc = server_reload(s, dir, &e);
    json_decref(body);
    if (rc) return send_error(c, rc == EX_NOINPUT ? 404 : status_of(rc), e.msg);
    char *name, *version, *mdir;
    engine_model_info(s->E, &name, &version, &mdir);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "status", "reloaded", "model", name, "model_version", version,
                          "model_dir", mdir);
    free(name), free(version), free(mdir);
    return send_json(c, 200, o);
}

static enum MHD_Result do_get(Server *s, struct MHD_Connection *c, const char *url) {
    char *name, *version;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
        return send_text(c, 200, "text/html; charset=utf-8", s->page, s->page_len);
    if (!strcmp(url, "/chat")) return send_text(c, 200, "text/html; charset=utf-8", webpage_html, strlen(webpage_html));
    engine_model_info(s->E, &name, &version, NULL);
    json_t *o = NULL;
    if (!strcmp(url, "/health")) {
        int w, r;
        engine_load_info(s->E, &w, &r);
        o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:I, s:I}", "status", "ok", "model", name, "model_version", version,
                      "waiting", w, "running", r, "interactions_logged", (json_int_t)s->ilog.records, "feedback_logged",
                      (json_int_t)s->flog.records);
    } else if (!strcmp(url, "/v1/models")) {
        o = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:s}]}", "object", "list", "data", "id", name, "object", "model",
                      "created", (json_int_t)time(NULL), "owned_by", "cherry", "version", version);
    }
    free(name), free(version);
    return o ? send_json(c, 200, o) : send_error(c, 404, "no such route");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *ver, const char *data, size_t *data_size, void **con_cls) {
    Server *s = cls;
    Conn *k = *con_cls;
    if (!k) {
        *con_cls = xcalloc(1, sizeof(Conn));
        return MHD_YES;
    }
    if (*data_size) {
        if (k->len + *data_size > s->cfg.max_body) k->too_big = 1;
        if (!k->too_big) {
            if (k->len + *data_size + 1 > k->cap) {
                k->cap = 2 * (k->len + *data_size) + 1;
                k->body = xrealloc(k->body, k->cap);
            }
            memcpy(k->body + k->len, data, *data_size);
            k->len += *data_size;
        }
        *data_size = 0;
        return MHD_YES;
    }
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    int is_post_route = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/completions") ||
                        !strcmp(url, "/v1/feedback") || !strcmp(url, "/admin/reload");
    if (is_post_route && !post) return send_error(c, 405, "use POST");
    if (!is_post_route) return get ? do_get(s, c, url) : send_error(c, 405, "use GET");
    if (k->too_big) {
        char m[96];
        snprintf(m, sizeof m, "the body is larger than %zu bytes", s->cfg.max_body);
        return send_error(c, 413, m);
    }
    if (!strcmp(url, "/v1/feedback") || !strcmp(url, "/admin/reload")) {
        if (!authorized(s, c)) return send_error(c, 401, "a valid \"Authorization: Bearer TOKEN\" header is needed");
        return url[1] == 'v' ? do_feedback(s, c, k) : do_reload(s, c, k);
    }
    return do_completions(s, c, k, !strcmp(url, "/v1/chat/completions"));
}

/* ---- life cycle -------------------------------------------------------------------------- */

static int index_record(void *ctx, json_t *rec, long line, Error *e) {
    const char *obj = json_string_value(json_object_get(rec, "object"));
    if (obj && !strcmp(obj, "interaction")) idindex_add_interaction(ctx, rec);
    return 0;
}

int server_start(Server **out, const char *model_dir, const ServeConfig *c, Error *e) {
    Server *s = xcalloc(1, sizeof *s);
    s->cfg = *c;
    s->model_dir = xstrdup(model_dir);
    pthread_mutex_init(&s->mu, NULL);
    rng_seed(&s->rng, c->seed);
    idindex_init(&s->ix);
    int rc = 0;
    if (c->page) {
        if (read_file(c->page, &s->page, &s->page_len, e)) rc = e->code;
    } else {
        s->page = xstrdup(webpage_html);
        s->page_len = strlen(s->page);
    }
    /* the model first: a server that cannot start leaves no log files behind */
    ServedModel sm;
    int loaded = !rc && served_load(&sm, model_dir, c->tpl, e) == 0;
    if (!rc && !loaded) rc = e->code;
    long torn = 0;
    if (!rc && file_exists(c->interactions) && ilog_read(c->interactions, index_record, &s->ix, &torn, e)) rc = e->code;
    if (torn) fprintf(stderr, "serve: %s: %ld torn line(s) from an earlier crash skipped\n", c->interactions, torn);
    if (!rc && ilog_open(&s->ilog, c->interactions, e)) rc = e->code;
    if (!rc && ilog_open(&s->flog, c->feedback, e)) rc = e->code;
    if (!rc && !(s->E = engine_start(&sm, &c->engine, e))) rc = e->code;
    if (rc && loaded && !s->E) served_free(&sm);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)c->port);
    if (!rc && inet_pton(AF_INET, c->host, &addr.sin_addr) != 1)
        rc = err_set(e, EX_USAGE, "--host: \"%s\" is not a numeric IPv4 address", c->host);
    if (!rc) {
        s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
                                NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                MHD_OPTION_NOTIFY_COMPLETED, conn_done, s, MHD_OPTION_CONNECTION_LIMIT, 512,
                                MHD_OPTION_CONNECTION_TIMEOUT, 300, MHD_OPTION_END);
        if (!s->d) rc = err_set(e, EX_UNAVAILABLE, "cannot listen on %s:%d (in use?)", c->host, c->port);
    }
    if (rc) {
        server_stop(s);
        return rc;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    *out = s;
    return 0;
}

int server_port(const Server *s) {
    return s->port;
}

int server_reload(Server *s, const char *dir, Error *e) {
    pthread_mutex_lock(&s->mu);
    char *d = xstrdup(dir ? dir : s->model_dir);
    pthread_mutex_unlock(&s->mu);
    int rc = engine_reload(s->E, d, s->cfg.tpl, e);
    pthread_mutex_lock(&s->mu);
    if (!rc)
        free(s->model_dir), s->model_dir = d;
    else
        free(d);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void server_stop(Server *s) {
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    if (s->E) engine_stop(s->E);
    if (s->ilog.path) ilog_close(&s->ilog);
    if (s->flog.path) ilog_close(&s->flog);
    idindex_free(&s->ix);
    free(s->page);
    free(s->model_dir);
    free(s);
}
