/* simulate-users — simulated people using a `serve` endpoint: they send the bundled
 * task's prompts through POST /v1/completions and judge the answers with the task's
 * hidden gold rule (common/data/task.h, as `annotate` does), with noise, giving
 * thumbs up/down and a ranking through POST /v1/feedback (man 1 simulate-users).
 * Also the load generator of `make bench`: --clients concurrent connections,
 * --feedback none, latency percentiles and requests/s in the report.
 *
 * Reproducible: prompt i (of repeat k) is sent with seed hash(--seed, i, k), and the
 * judgement noise of prompt i comes from its own Rng, so the requests, answers and
 * feedback do not depend on --clients or on timing. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "base/util.h"
#include "generate/generate.h"
#include "serve/client.h"
#include "serve/simjudge.h"

static const char *prog = "simulate-users";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s --url URL [OPTION]... [PROMPTS.jsonl]\n"
           "Chat with a serve endpoint as simulated users and give noisy feedback by the task's gold rule.\n"
           "\n"
           "      --url URL          the server (e.g. http://127.0.0.1:8000)\n"
           "      --token TOKEN      bearer token for /v1/feedback (default: $CHERRY_TOKEN)\n"
           "  -n, --n N              answers per prompt (default 4)\n"
           "      --max-tokens N     tokens per answer (default 24)\n"
           "      --temperature T    (default 1)\n"
           "      --stop STRING      stop string, \\n for newline (repeatable; default none)\n"
           "      --feedback WHAT    thumbs | ranking | both (default) | none\n"
           "      --noise P          probability that a judgement is random (default 0.1)\n"
           "      --users K          simulated users, prompts shared round-robin (default 3)\n"
           "      --clients C        concurrent connections (default 4)\n"
           "      --repeat R         send every prompt R times (default 1)\n"
           "      --ids FILE         append the id of every answered request (one per line, flushed)\n"
           "      --report FILE      the summary as JSON (default: none; the summary line goes to stderr)\n"
           "      --seed N           (default 1)\n"
           "  -q, --quiet            no summary on stderr\n"
           "  -h, --help             this help\n"
           "      --version          version\n",
           prog);
}

typedef struct Opts {
    const char *url, *token, *ids_path, *report, *prompts;
    int n, max_tokens, users, clients, repeat, quiet, thumbs, ranking;
    double temperature, noise;
    const char *stop[8];
    int n_stop;
    uint64_t seed;
} Opts;

typedef struct Shared {
    const Opts *o;
    char **prompts;
    int n_prompts;
    long next, total; /* work items: prompt x repeat */
    pthread_mutex_t mu;
    FILE *ids;
    double *lat; /* [total] ms of each completion request, NAN if it failed */
    long ok, failed, fb_sent, fb_failed, up, down, rankings, answers;
    double gold, util;
    char first_error[512];
} Shared;

static char *unescape(const char *s) {
    char *o = xstrdup(s), *w = o;
    for (const char *r = s; *r; r++) {
        if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
        } else
            *w++ = *r;
    }
    *w = 0;
    return o;
}

static void note_error(Shared *S, const char *msg) {
    pthread_mutex_lock(&S->mu);
    if (!S->first_error[0]) snprintf(S->first_error, sizeof S->first_error, "%s", msg);
    pthread_mutex_unlock(&S->mu);
}

static void send_feedback(Shared *S, HttpClient *c, json_t *fb) {
    long st = 0;
    json_t *r = NULL;
    Error e = {0};
    int rc = http_json(c, "/v1/feedback", fb, &st, &r, NULL, &e);
    pthread_mutex_lock(&S->mu);
    if (rc || st != 200) {
        S->fb_failed++;
        if (!S->first_error[0])
            snprintf(S->first_error, sizeof S->first_error, "feedback: %s", rc ? e.msg : r ? json_dumps(r, 0) : "?");
    } else
        S->fb_sent++;
    pthread_mutex_unlock(&S->mu);
    json_decref(r);
    json_decref(fb);
}

/* One user turn: the request, the judgement, the feedback. */
static void one(Shared *S, HttpClient *c, long item) {
    const Opts *o = S->o;
    int p = (int)(item % S->n_prompts), k = (int)(item / S->n_prompts);
    Rng rng;
    gen_rng_seed(&rng, o->seed, p, k);
    json_t *stop = json_array();
    for (int i = 0; i < o->n_stop; i++) json_array_append_new(stop, json_string(o->stop[i]));
    char user[32];
    snprintf(user, sizeof user, "user-%d", p % o->users + 1);
    json_t *req = json_pack("{s:s, s:i, s:i, s:f, s:I, s:o, s:s}", "prompt", S->prompts[p], "n", o->n, "max_tokens",
                            o->max_tokens, "temperature", o->temperature, "seed", (json_int_t)(rng_next(&rng) >> 12),
                            "stop", stop, "user", user);
    long st = 0;
    json_t *r = NULL;
    double ms = 0;
    Error e = {0};
    int rc = http_json(c, "/v1/completions", req, &st, &r, &ms, &e);
    json_decref(req);
    const json_t *choices = json_object_get(r, "choices");
    const char *id = json_string_value(json_object_get(r, "id"));
    if (rc || st != 200 || !json_is_array(choices) || !id) {
        char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
        char msg[400];
        snprintf(msg, sizeof msg, "request %ld: %s", item, rc ? e.msg : s ? s : "no JSON reply");
        free(s);
        note_error(S, msg);
        pthread_mutex_lock(&S->mu);
        S->failed++;
        S->lat[item] = NAN;
        pthread_mutex_unlock(&S->mu);
        json_decref(r);
        return;
    }
    int n = (int)json_array_size(choices);
    const char **texts = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) texts[i] = json_string_value(json_object_get(json_array_get(choices, i), "text"));
    unsigned char *up = xmalloc((size_t)n);
    int *order = xmalloc((size_t)n * sizeof(int));
    double gold = 0, util = 0;
    sim_judge(S->prompts[p], texts, n, o->noise, &rng, up, order, &gold, &util);
    pthread_mutex_lock(&S->mu);
    S->ok++;
    S->lat[item] = ms;
    S->answers += n;
    S->gold += gold;
    S->util += util;
    if (S->ids) {
        fprintf(S->ids, "%s\n", id);
        fflush(S->ids);
    }
    pthread_mutex_unlock(&S->mu);
    for (int i = 0; o->thumbs && i < n; i++) {
        char cid[128];
        snprintf(cid, sizeof cid, "%s-%d", id, i);
        send_feedback(S, c,
                      json_pack("{s:s, s:s, s:s, s:s}", "type", "thumbs", "completion_id", cid, "value",
                                up[i] ? "up" : "down", "user", user));
        pthread_mutex_lock(&S->mu);
        if (up[i])
            S->up++;
        else
            S->down++;
        pthread_mutex_unlock(&S->mu);
    }
    if (o->ranking && n >= 2) {
        json_t *ranking = json_array();
        for (int i = 0; i < n; i++) {
            char cid[128];
            snprintf(cid, sizeof cid, "%s-%d", id, order[i]);
            json_array_append_new(ranking, json_string(cid));
        }
        send_feedback(
            S, c,
            json_pack("{s:s, s:s, s:o, s:s}", "type", "ranking", "response_id", id, "ranking", ranking, "user", user));
        pthread_mutex_lock(&S->mu);
        S->rankings++;
        pthread_mutex_unlock(&S->mu);
    }
    free(texts), free(up), free(order);
    json_decref(r);
}

static void *worker(void *arg) {
    Shared *S = arg;
    HttpClient c;
    Error e = {0};
    if (http_client_init(&c, S->o->url, S->o->token, &e)) {
        note_error(S, e.msg);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&S->mu);
        long item = S->next < S->total ? S->next++ : -1;
        pthread_mutex_unlock(&S->mu);
        if (item < 0) break;
        one(S, &c, item);
    }
    http_client_free(&c);
    return NULL;
}

static void parse_args(Opts *o, int argc, char **argv) {
    enum {
        O_URL = 256,
        O_TOKEN,
        O_MAXTOK,
        O_TEMP,
        O_STOP,
        O_FB,
        O_NOISE,
        O_USERS,
        O_CLIENTS,
        O_REPEAT,
        O_IDS,
        O_REPORT,
        O_SEED,
        O_VERSION
    };
    static const struct option longopts[] = {{"url", required_argument, 0, O_URL},
                                             {"token", required_argument, 0, O_TOKEN},
                                             {"n", required_argument, 0, 'n'},
                                             {"max-tokens", required_argument, 0, O_MAXTOK},
                                             {"temperature", required_argument, 0, O_TEMP},
                                             {"stop", required_argument, 0, O_STOP},
                                             {"feedback", required_argument, 0, O_FB},
                                             {"noise", required_argument, 0, O_NOISE},
                                             {"users", required_argument, 0, O_USERS},
                                             {"clients", required_argument, 0, O_CLIENTS},
                                             {"repeat", required_argument, 0, O_REPEAT},
                                             {"ids", required_argument, 0, O_IDS},
                                             {"report", required_argument, 0, O_REPORT},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    static const char *const FB[] = {"thumbs", "ranking", "both", "none", NULL};
    memset(o, 0, sizeof *o);
    o->token = getenv("CHERRY_TOKEN");
    o->n = 4, o->max_tokens = 24, o->users = 3, o->clients = 4, o->repeat = 1;
    o->temperature = 1, o->noise = 0.1, o->seed = 1, o->thumbs = o->ranking = 1;
    int c;
    while ((c = getopt_long(argc, argv, "n:qh", longopts, NULL)) != -1) {
        switch (c) {
        case O_URL:
            o->url = optarg;
            break;
        case O_TOKEN:
            o->token = optarg;
            break;
        case 'n':
            o->n = cli_int(prog, "--n", optarg);
            break;
        case O_MAXTOK:
            o->max_tokens = cli_int(prog, "--max-tokens", optarg);
            break;
        case O_TEMP:
            o->temperature = cli_double(prog, "--temperature", optarg);
            break;
        case O_STOP:
            if (o->n_stop == 4) cli_usage_error(prog, "--stop: at most 4");
            o->stop[o->n_stop++] = unescape(optarg);
            break;
        case O_FB: {
            int k = cli_choice(prog, "--feedback", optarg, FB);
            o->thumbs = k == 0 || k == 2;
            o->ranking = k == 1 || k == 2;
            break;
        }
        case O_NOISE:
            o->noise = cli_double(prog, "--noise", optarg);
            break;
        case O_USERS:
            o->users = cli_int(prog, "--users", optarg);
            break;
        case O_CLIENTS:
            o->clients = cli_int(prog, "--clients", optarg);
            break;
        case O_REPEAT:
            o->repeat = cli_int(prog, "--repeat", optarg);
            break;
        case O_IDS:
            o->ids_path = optarg;
            break;
        case O_REPORT:
            o->report = optarg;
            break;
        case O_SEED:
            o->seed = cli_u64(prog, "--seed", optarg);
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, &o->quiet);
        }
    }
    if (!o->url) cli_usage_error(prog, "--url URL is required");
    if (o->n < 1 || o->n > 64) cli_usage_error(prog, "--n must be in 1..64");
    if (o->max_tokens < 1) cli_usage_error(prog, "--max-tokens must be >= 1");
    if (o->noise < 0 || o->noise > 1) cli_usage_error(prog, "--noise must be in [0,1]");
    if (o->users < 1) cli_usage_error(prog, "--users must be >= 1");
    if (o->clients < 1 || o->clients > 256) cli_usage_error(prog, "--clients must be in 1..256");
    if (o->repeat < 1) cli_usage_error(prog, "--repeat must be >= 1");
    o->prompts = cli_one_file(prog, argc, argv, "prompts file");
}

static int read_prompts(const char *path, Shared *S, Error *e) {
    JsonlReader r;
    if (jsonl_open(&r, path, e)) return e->code;
    json_t *rec;
    int cap = 0;
    while (!jsonl_next(&r, &rec, e) && rec) {
        const char *p;
        if (json_get_string(rec, "prompt", &p, &r, e)) {
            json_decref(rec);
            jsonl_close(&r);
            return e->code;
        }
        if (S->n_prompts == cap) cap = cap ? 2 * cap : 64, S->prompts = xrealloc(S->prompts, cap * sizeof(char *));
        S->prompts[S->n_prompts++] = xstrdup(p);
        json_decref(rec);
    }
    jsonl_close(&r);
    if (e->code) return e->code;
    if (S->n_prompts == 0) return err_set(e, EX_DATAERR, "%s: no prompts", path);
    return 0;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Opts o;
    parse_args(&o, argc, argv);
    Shared S;
    memset(&S, 0, sizeof S);
    S.o = &o;
    Error e = {0};
    if (read_prompts(o.prompts, &S, &e)) err_die(prog, &e);
    if (o.ids_path && !(S.ids = fopen(o.ids_path, "a"))) {
        err_set(&e, EX_CANTCREAT, "%s: cannot open", o.ids_path);
        err_die(prog, &e);
    }
    S.total = (long)S.n_prompts * o.repeat;
    S.lat = xmalloc((size_t)S.total * sizeof(double));
    pthread_mutex_init(&S.mu, NULL);
    http_client_global_init();
    double t0 = now_seconds();
    pthread_t *th = xcalloc((size_t)o.clients, sizeof(pthread_t));
    for (int i = 0; i < o.clients; i++) pthread_create(&th[i], NULL, worker, &S);
    for (int i = 0; i < o.clients; i++) pthread_join(th[i], NULL);
    double wall = now_seconds() - t0;
    if (S.ids) fclose(S.ids);
    double *ok = xmalloc((size_t)S.total * sizeof(double));
    long nok = 0;
    for (long i = 0; i < S.total; i++)
        if (!isnan(S.lat[i])) ok[nok++] = S.lat[i];
    double p50 = sim_quantile(ok, nok, 0.5), p99 = sim_quantile(ok, nok, 0.99);
    double gold = S.answers ? S.gold / S.answers : 0, util = S.answers ? S.util / S.answers : 0;
    if (o.report) {
        json_t *rep =
            json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:i}", "requests",
                      (json_int_t)S.total, "ok", (json_int_t)S.ok, "failed", (json_int_t)S.failed, "seconds", wall,
                      "requests_per_s", wall > 0 ? S.ok / wall : 0.0, "latency_p50_ms", nok ? p50 : 0.0,
                      "latency_p99_ms", nok ? p99 : 0.0, "gold", gold, "utility", util, "thumbs_up", (json_int_t)S.up,
                      "thumbs_down", (json_int_t)S.down, "rankings", (json_int_t)S.rankings, "feedback_sent",
                      (json_int_t)S.fb_sent, "feedback_failed", (json_int_t)S.fb_failed, "clients", o.clients);
        AtomicFile af;
        if (atomic_open(&af, o.report, &e) || jsonl_write(af.fp, rep, &e) || atomic_commit(&af, &e)) err_die(prog, &e);
        json_decref(rep);
    }
    if (!o.quiet) {
        fprintf(stderr,
                "%s: %ld/%ld requests ok in %.2f s (%.1f/s, p50 %.1f ms, p99 %.1f ms, %d clients); gold %.3f of %ld "
                "answers; feedback: %ld up, %ld down, %ld rankings (%ld failed)\n",
                prog, S.ok, S.total, wall, wall > 0 ? S.ok / wall : 0.0, p50, p99, o.clients, gold, S.answers, S.up,
                S.down, S.rankings, S.fb_failed);
        if (S.first_error[0]) fprintf(stderr, "%s: first error: %s\n", prog, S.first_error);
    }
    int rc = S.failed || S.fb_failed ? EX_UNAVAILABLE : 0;
    for (int i = 0; i < S.n_prompts; i++) free(S.prompts[i]);
    free(S.prompts), free(S.lat), free(ok), free(th);
    return rc;
}
