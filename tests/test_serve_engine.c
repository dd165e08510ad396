/* test_serve_engine.c — serve's continuous-batching engine against generate():
 * several requests with different sampling settings (temperature, top-p, n,
 * max_tokens, stop strings) submitted at once from several threads share the batch,
 * and each request's completions are exactly what generate() gives for that prompt
 * alone with the same seed (and what `rollout` writes); a cancelled request frees its
 * slots; a reload while requests are in flight drops none, and every request names the
 * version it ran on.  Also run under ASan/UBSan (threads and the shared queue). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "generate/generate.h"
#include "serve/engine.h"
#include "serve/served.h"

#define MODEL "tests/oracle/fixtures/pref-llama-policy"
#define MODEL2 "tests/oracle/fixtures/pref-llama-ref"

typedef struct Req {
    const char *prompt;
    int n, max_tokens;
    float temperature, top_p;
    uint64_t seed;
    const char *stop;
} Req;

static const Req REQS[] = {
    {"The cat", 3, 12, 1.0f, 1.0f, 11, NULL}, {"A tree and", 1, 20, 0.7f, 0.9f, 12, NULL},
    {"Once", 2, 5, 0.0f, 1.0f, 13, NULL},     {"Red fox sky", 4, 16, 1.2f, 0.8f, 14, "e"},
    {"x", 1, 30, 1.0f, 1.0f, 15, NULL},       {"Repeat: red", 2, 9, 1.0f, 0.5f, 16, " "},
};
#define NR ((int)(sizeof REQS / sizeof REQS[0]))

/* What generate() makes of one request alone: the texts rollout would write. */
static char **expected(ServedModel *s, const Req *q) {
    IntVec ids = {0};
    json_t *p = json_string(q->prompt);
    Error e = {0};
    served_encode_prompt(s, p, &ids, &e);
    json_decref(p);
    GenConfig g = s->eos;
    g.sampler.temperature = q->temperature;
    g.sampler.top_p = q->top_p;
    g.max_new_tokens = q->max_tokens;
    g.num_samples = q->n;
    g.batch_size = 2;
    g.seed = q->seed;
    const char *stops[1] = {q->stop};
    g.stop = stops;
    g.n_stop = q->stop ? 1 : 0;
    GenSeq *out = xcalloc((size_t)q->n, sizeof(GenSeq));
    const int *pr[1] = {ids.v};
    long pid = 0;
    if (generate(&s->m, &g, s->tok, pr, &ids.n, &pid, 1, out, NULL, NULL, &e)) {
        CHECK(0, "generate: %s", e.msg);
        return NULL;
    }
    char **t = xcalloc((size_t)q->n, sizeof(char *));
    for (int i = 0; i < q->n; i++) {
        size_t len;
        tok_decode(s->tok, out[i].tokens, out[i].n_tokens - (out[i].eos ? 1 : 0), 1, &t[i], &len, &e);
        if (out[i].stop_index >= 0) {
            char *hit = strstr(t[i], q->stop);
            if (hit) *hit = 0;
        }
        gen_seq_free(&out[i]);
    }
    free(out);
    intvec_free(&ids);
    return t;
}

typedef struct Client {
    Engine *E;
    int r;
    GenJob *j;
} Client;

static GenJob *job_of(const Req *q) {
    json_t *p = json_string(q->prompt);
    GenJob *j = gen_job_new(p, q->n);
    json_decref(p);
    j->sampler.temperature = q->temperature;
    j->sampler.top_p = q->top_p;
    j->max_tokens = q->max_tokens;
    j->seed = q->seed;
    if (q->stop) j->stop[j->n_stop++] = xstrdup(q->stop);
    return j;
}

static void *client(void *arg) {
    Client *c = arg;
    c->j = job_of(&REQS[c->r]);
    Error e = {0};
    if (engine_submit(c->E, c->j, &e)) CHECK(0, "submit: %s", e.msg);
    gen_job_wait(c->j);
    return NULL;
}

int main(void) {
    ServedModel ref, s;
    Error e = {0};
    if (served_load(&ref, MODEL, CHAT_PLAIN, &e) || served_load(&s, MODEL, CHAT_PLAIN, &e)) {
        printf("FAIL load: %s\n", e.msg);
        return 1;
    }
    char **want[NR];
    for (int r = 0; r < NR; r++) want[r] = expected(&ref, &REQS[r]);
    char *v1 = xstrdup(s.version);
    EngineConfig ec = {3, 0}; /* fewer slots than sequences: requests wait and interleave */
    Engine *E = engine_start(&s, &ec, &e);
    CHECK(E != NULL, "engine_start: %s", e.msg);

    /* a cancelled request (nobody reads it) must not block the others */
    Req big = {"cancel me", 8, 60, 1.0f, 1.0f, 1, NULL};
    GenJob *cancel = job_of(&big);
    engine_submit(E, cancel, &e);
    pthread_mutex_lock(&cancel->mu);
    cancel->cancelled = 1;
    pthread_mutex_unlock(&cancel->mu);

    Client cl[NR];
    pthread_t th[NR];
    for (int r = 0; r < NR; r++) cl[r] = (Client){E, r, NULL}, pthread_create(&th[r], NULL, client, &cl[r]);
    for (int r = 0; r < NR; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < NR; r++) {
        GenJob *j = cl[r].j;
        CHECK(j->error == 0 && j->n_done == REQS[r].n, "request %d: error %d (%s)", r, j->error, j->errmsg);
        CHECK(j->version && !strcmp(j->version, v1), "request %d version", r);
        for (int i = 0; i < j->n && want[r]; i++)
            CHECK(j->out[i].text && !strcmp(j->out[i].text, want[r][i]),
                  "request %d choice %d: engine '%s', generate '%s'", r, i, j->out[i].text, want[r][i]);
        gen_job_unref(j);
    }
    gen_job_unref(cancel);

    /* an over-long prompt fails its request only */
    char longp[4096];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    Req lr = {longp, 1, 4, 1.0f, 1.0f, 1, NULL};
    GenJob *lj = job_of(&lr);
    engine_submit(E, lj, &e);
    CHECK(gen_job_wait(lj) == EX_DATAERR && strstr(lj->errmsg, "context"), "long prompt: %d %s", lj->error, lj->errmsg);
    gen_job_unref(lj);

    /* reload with requests in flight: all finish, each on one version */
    for (int r = 0; r < NR; r++) cl[r] = (Client){E, r, NULL}, pthread_create(&th[r], NULL, client, &cl[r]);
    CHECK(engine_reload(E, MODEL2, CHAT_PLAIN, &e) == 0, "reload: %s", e.msg);
    char *v2;
    engine_model_info(E, NULL, &v2, NULL);
    CHECK(strcmp(v1, v2) != 0, "reload kept the version %s", v2);
    for (int r = 0; r < NR; r++) {
        pthread_join(th[r], NULL);
        GenJob *j = cl[r].j;
        CHECK(j->error == 0 && j->n_done == REQS[r].n, "request %d during reload: %s", r, j->errmsg);
        CHECK(j->version && (!strcmp(j->version, v1) || !strcmp(j->version, v2)), "request %d version", r);
        /* on the old weights, the old answers */
        if (j->version && !strcmp(j->version, v1))
            for (int i = 0; i < j->n && want[r]; i++)
                CHECK(!strcmp(j->out[i].text, want[r][i]), "request %d choice %d after reload", r, i);
        gen_job_unref(j);
    }
    CHECK(engine_reload(E, "/nonexistent", CHAT_PLAIN, &e) != 0, "reload of a missing dir succeeded");
    char *v3;
    engine_model_info(E, NULL, &v3, NULL);
    CHECK(!strcmp(v3, v2), "a failed reload changed the model");
    engine_stop(E);
    for (int r = 0; r < NR; r++) {
        for (int i = 0; want[r] && i < REQS[r].n; i++) free(want[r][i]);
        free(want[r]);
    }
    served_free(&ref);
    free(v1), free(v2), free(v3);
    if (!failures) printf("ok: engine answers equal generate()'s; cancel, long prompt, reload in flight\n");
    return failures != 0;
}
