/* engine.c — see engine.h.  The loop: admit waiting choices into free slots
 * (prefill), sample one token per live sequence, settle stop conditions, one
 * batched decode step; repeat.  Locks: E->mu guards the queue, the pending model and
 * the counters; each job's mu guards its outputs.  The engine never holds E->mu
 * while computing. */
#define _GNU_SOURCE /* memmem */
#include "engine.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "kernels/gemm.h"

/* ---- jobs ---------------------------------------------------------------------- */

GenJob *gen_job_new(const json_t *prompt, int n) {
    GenJob *j = xcalloc(1, sizeof *j);
    j->prompt = json_deep_copy(prompt);
    j->n = n;
    j->out = xcalloc((size_t)n, sizeof(GenChoice));
    for (int i = 0; i < n; i++) j->out[i].stop_index = -1;
    j->sampler = sampler_config_default();
    j->max_tokens = 16;
    j->refs = 1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    return j;
}

void gen_job_unref(GenJob *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0) return;
    json_decref(j->prompt);
    for (int i = 0; i < j->n; i++) {
        free(j->out[i].bytes);
        free(j->out[i].tokens);
        free(j->out[i].text);
    }
    for (int i = 0; i < j->n_stop; i++) free(j->stop[i]);
    free(j->out);
    free(j->version);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

int gen_job_wait(GenJob *j) {
    pthread_mutex_lock(&j->mu);
    while (!j->error && j->n_done < j->n) pthread_cond_wait(&j->cv, &j->mu);
    int rc = j->error;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void job_fail(GenJob *j, int code, const char *msg) {
    pthread_mutex_lock(&j->mu);
    if (!j->error) {
        j->error = code;
        snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
    }
    j->updates++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

/* ---- the engine ----------------------------------------------------------------- */

typedef struct Slot {
    GenJob *job; /* NULL = free */
    int choice;
    Sampler sampler;
    Rng rng;
    int *hist, n_hist;
    float *logits;
} Slot;

struct Engine {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work arrived / stop / pending model */
    pthread_cond_t swapped; /* a pending model became the served one */
    pthread_mutex_t reload_mu;
    GenJob *head, *tail; /* waiting jobs (some choices not yet admitted) */
    ServedModel *cur, *pending;
    int stop, waiting, running;
    char *name, *version, *dir; /* of cur, for readers without the model */
    EngineConfig cfg;
    /* engine-thread state */
    GenState *g;
    KVCache kv;
    int cap, V;
    Slot *slot;
    int *rows_tok, *rows_slot;
    unsigned char *want;
    float *step_logits;
    int max_rows;
};

static void engine_build(Engine *E) {
    ServedModel *s = E->cur;
    const ModelConfig *mc = &s->m.cfg;
    E->cap = E->cfg.context > 0 && E->cfg.context < mc->max_seq ? E->cfg.context : mc->max_seq;
    if (E->cfg.context <= 0 && E->cap > 1024) E->cap = 1024;
    E->V = mc->vocab_size;
    int S = E->cfg.slots;
    E->max_rows = E->cap > S ? E->cap : S;
    Error e;
    E->g = gen_state_new_dtype(&s->m, E->max_rows, E->cfg.dtype, &e);
    if (!E->g) die_internal("serve: %s", e.msg); /* served_load ran the same checks */
    kv_init(&E->kv, mc, S, E->cap);
    E->slot = xcalloc((size_t)S, sizeof(Slot));
    for (int i = 0; i < S; i++) {
        SamplerConfig d = sampler_config_default();
        sampler_init(&E->slot[i].sampler, &d, E->V);
        E->slot[i].hist = xmalloc((size_t)E->cap * sizeof(int));
        E->slot[i].logits = xmalloc((size_t)E->V * sizeof(float));
    }
    E->rows_tok = xmalloc((size_t)E->max_rows * sizeof(int));
    E->rows_slot = xmalloc((size_t)E->max_rows * sizeof(int));
    E->want = xcalloc((size_t)E->max_rows, 1);
    E->step_logits = xmalloc((size_t)S * E->V * sizeof(float));
    free(E->name), free(E->version), free(E->dir);
    E->name = xstrdup(s->name);
    E->version = xstrdup(s->version);
    E->dir = xstrdup(s->dir);
}

static void engine_teardown(Engine *E) {
    for (int i = 0; i < E->cfg.slots; i++) {
        sampler_free(&E->slot[i].sampler);
        free(E->slot[i].hist);
        free(E->slot[i].logits);
    }
    free(E->slot), free(E->rows_tok), free(E->rows_slot), free(E->want), free(E->step_logits);
    kv_free(&E->kv);
    gen_state_free(E->g);
    E->g = NULL;
}

/* Copies slot src's first L cached positions to slot dst (layout of KVCache in
 * generate.h: [n_layer][slots][cap][nkv*hd]). */
static void kv_copy(KVCache *kv, int dst, int src, int L) {
    size_t row = (size_t)kv->nkv * kv->hd;
    for (int l = 0; l < kv->n_layer; l++) {
        size_t a = (((size_t)l * kv->slots + dst) * kv->cap) * row, b = (((size_t)l * kv->slots + src) * kv->cap) * row;
        memcpy(kv->k + a, kv->k + b, (size_t)L * row * sizeof(float));
        memcpy(kv->v + a, kv->v + b, (size_t)L * row * sizeof(float));
    }
    kv->len[dst] = L;
}

/* Starts choice c of job j in free slot s.  pre_job and pre_slot remember the last
 * prefill of this round so sibling choices copy it. */
static void admit(Engine *E, int s, GenJob *j, int c, const IntVec *ids, GenJob **pre_job, int *pre_slot) {
    Slot *sl = &E->slot[s];
    int L = ids->n;
    if (*pre_job == j && *pre_slot >= 0 && E->slot[*pre_slot].job == j && E->kv.len[*pre_slot] == L) {
        kv_copy(&E->kv, s, *pre_slot, L);
        memcpy(sl->logits, E->slot[*pre_slot].logits, (size_t)E->V * sizeof(float));
    } else {
        E->kv.len[s] = 0;
        for (int t = 0; t < L; t++) E->rows_tok[t] = ids->v[t], E->rows_slot[t] = s, E->want[t] = t == L - 1;
        gen_forward(E->g, &E->kv, E->rows_tok, E->rows_slot, L, E->want, sl->logits, 0);
        for (int t = 0; t < L; t++) E->want[t] = 0;
        *pre_job = j;
        *pre_slot = s;
    }
    sl->job = j;
    sl->choice = c;
    sl->sampler.cfg = j->sampler;
    gen_rng_seed(&sl->rng, j->seed, 0, c);
    memcpy(sl->hist, ids->v, (size_t)L * sizeof(int));
    sl->n_hist = L;
}

/* The engine's reference to a job goes when the job has left the queue and has
 * no live sequence. */
static void maybe_release(GenJob *j) {
    if (!j->queued && j->live == 0) gen_job_unref(j);
}

/* The next waiting (job, choice) that may start now.  While a model is pending only
 * choices of jobs already started may start, so a request never straddles two
 * versions.  Jobs fully started, failed or cancelled leave the queue here.  Called
 * with E->mu held; returns NULL when none. */
static GenJob *next_waiting(Engine *E, int *choice) {
    GenJob *prev = NULL;
    for (GenJob *j = E->head; j;) {
        pthread_mutex_lock(&j->mu);
        int gone = j->cancelled || j->error;
        pthread_mutex_unlock(&j->mu);
        if (gone || j->admitted == j->n) {
            GenJob *nx = j->next;
            if (prev)
                prev->next = nx;
            else
                E->head = nx;
            if (E->tail == j) E->tail = prev;
            E->waiting--;
            j->queued = 0;
            maybe_release(j);
            j = nx;
            continue;
        }
        if (!E->pending || j->admitted > 0) {
            *choice = j->admitted++;
            return j;
        }
        prev = j;
        j = j->next;
    }
    return NULL;
}

/* A request with some choices started and others waiting (it must finish on the
 * weights it started on).  E->mu held. */
static int partly_started(const Engine *E) {
    for (const GenJob *j = E->head; j; j = j->next)
        if (j->admitted > 0 && j->admitted < j->n && !j->cancelled && !j->error) return 1;
    return 0;
}

/* Encodes j's prompt for the current model; on error fails the job. */
static int job_encode(Engine *E, GenJob *j, IntVec *ids) {
    Error e = {0};
    ids->n = 0;
    int rc = served_encode_prompt(E->cur, j->prompt, ids, &e);
    if (!rc && ids->n == 0) rc = err_set(&e, EX_DATAERR, "the prompt is empty (no tokens)");
    if (!rc && ids->n >= E->cap)
        rc = err_set(&e, EX_DATAERR, "the prompt has %d tokens; the context is %d", ids->n, E->cap);
    for (int t = 0; !rc && t < ids->n; t++)
        if (ids->v[t] < 0 || ids->v[t] >= E->V)
            rc = err_set(&e, EX_DATAERR, "token id %d outside the vocabulary", ids->v[t]);
    if (rc) job_fail(j, rc, e.msg);
    pthread_mutex_lock(&j->mu);
    if (!rc && !j->version) {
        j->prompt_tokens = ids->n;
        j->version = xstrdup(E->cur->version);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void choice_append(GenChoice *o, int tok, const char *b, int nb) {
    if (o->n_tokens == o->tok_cap) {
        o->tok_cap = o->tok_cap ? 2 * o->tok_cap : 32;
        o->tokens = xrealloc(o->tokens, (size_t)o->tok_cap * sizeof(int));
    }
    o->tokens[o->n_tokens++] = tok;
    if (nb <= 0) return;
    if (o->len + nb + 1 > o->cap) {
        o->cap = 2 * (o->len + nb) + 64;
        o->bytes = xrealloc(o->bytes, o->cap);
    }
    memcpy(o->bytes + o->len, b, (size_t)nb);
    o->len += nb;
    o->bytes[o->len] = 0;
}

/* The first stop string the newest bytes (from `before` on) completed, or -1. */
static int stop_hit(const GenJob *j, const GenChoice *o, size_t before) {
    for (int i = 0; i < j->n_stop; i++) {
        size_t sn = strlen(j->stop[i]);
        if (sn == 0 || o->len < sn) continue;
        size_t from = before + 1 > sn ? before + 1 - sn : 0;
        if (memmem(o->bytes + from, o->len - from, j->stop[i], sn)) return i;
    }
    return -1;
}

/* The final text, as rollout writes a completion: decoded without the EOS and with
 * special tokens skipped, cut before the stop string that ended it. */
static void choice_finish(const ServedModel *s, const GenJob *j, GenChoice *o) {
    char *txt = NULL;
    size_t len = 0;
    Error e;
    if (tok_decode(s->tok, o->tokens, o->n_tokens - (o->eos ? 1 : 0), 1, &txt, &len, &e)) {
        txt = xstrdup("");
        len = 0;
    }
    utf8_replace_nul(&txt, &len); /* as rollout: the logs must stay readable */
    if (o->stop_index >= 0) {
        char *hit = strstr(txt, j->stop[o->stop_index]);
        if (hit) len = (size_t)(hit - txt), txt[len] = 0;
    }
    o->text = txt;
    o->text_len = len;
    o->done = 1;
}

/* One token for every live slot, then the stop conditions.  Returns live count. */
static int sample_and_settle(Engine *E) {
    int S = E->cfg.slots;
#pragma omp parallel for schedule(dynamic)
    for (int s = 0; s < S; s++) {
        Slot *sl = &E->slot[s];
        if (!sl->job) continue;
        float lp, slp;
        int t = sampler_sample(&sl->sampler, sl->logits, sl->hist, sl->n_hist, &sl->rng, &lp, &slp);
        sl->hist[sl->n_hist++] = t;
    }
    int live = 0;
    for (int s = 0; s < S; s++) {
        Slot *sl = &E->slot[s];
        GenJob *j = sl->job;
        if (!j) continue;
        int t = sl->hist[sl->n_hist - 1];
        char buf[256];
        int eos = 0, nb = 0;
        for (int i = 0; i < E->cur->eos.n_eos; i++)
            if (t == E->cur->eos.eos_ids[i]) eos = 1;
        if (!eos && !tok_is_special(E->cur->tok, t)) {
            nb = tok_id_bytes(E->cur->tok, t, buf, sizeof buf);
            if (nb > (int)sizeof buf) nb = sizeof buf;
        }
        pthread_mutex_lock(&j->mu);
        GenChoice *o = &j->out[sl->choice];
        size_t before = o->len;
        choice_append(o, t, buf, nb);
        int done = 0;
        if (eos) {
            o->eos = o->finish_stop = done = 1;
        } else if (nb > 0 && j->n_stop > 0) {
            int k = stop_hit(j, o, before);
            if (k >= 0) o->finish_stop = done = 1, o->stop_index = k;
        }
        if (!done && (o->n_tokens >= j->max_tokens || sl->n_hist >= E->cap)) done = 1;
        int cancelled = j->cancelled;
        if (done) {
            choice_finish(E->cur, j, o);
            j->n_done++;
        }
        j->updates++;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        if (done || cancelled) {
            sl->job = NULL;
            j->live--;
            pthread_mutex_lock(&E->mu);
            maybe_release(j);
            pthread_mutex_unlock(&E->mu);
        } else
            live++;
    }
    pthread_mutex_lock(&E->mu);
    E->running = live;
    pthread_mutex_unlock(&E->mu);
    return live;
}

static void *engine_main(void *arg) {
    Engine *E = arg;
    /* a new pthread starts at the process's default OpenMP thread count, not the one
     * --threads gave the main thread (gemm_threads_set), and its products and loops
     * would use that many cores */
    omp_set_num_threads(threads_get());
    IntVec ids = {0};
    for (;;) {
        pthread_mutex_lock(&E->mu);
        int live = 0;
        for (int s = 0; s < E->cfg.slots; s++) live += E->slot[s].job != NULL;
        while (!E->stop && live == 0 && !E->head && !E->pending) pthread_cond_wait(&E->cv, &E->mu);
        if (E->stop) {
            pthread_mutex_unlock(&E->mu);
            break;
        }
        if (E->pending && live == 0 && !partly_started(E)) {
            /* every started request has finished on the old weights: switch */
            engine_teardown(E);
            served_free(E->cur);
            free(E->cur);
            E->cur = E->pending;
            E->pending = NULL;
            engine_build(E);
            pthread_cond_broadcast(&E->swapped);
        }
        /* admit waiting choices into free slots */
        GenJob *pre_job = NULL;
        int pre_slot = -1;
        for (int s = 0; s < E->cfg.slots; s++) {
            if (E->slot[s].job) continue;
            int c;
            GenJob *j = next_waiting(E, &c);
            if (!j) break;
            pthread_mutex_unlock(&E->mu);
            int rc = 0;
            if (c == 0 || pre_job != j) rc = job_encode(E, j, &ids);
            if (rc) {
                pthread_mutex_lock(&E->mu);
                j->admitted = j->n; /* failed: leaves the queue on the next scan */
                continue;
            }
            j->live++;
            admit(E, s, j, c, &ids, &pre_job, &pre_slot);
            pthread_mutex_lock(&E->mu);
        }
        pthread_mutex_unlock(&E->mu);
        live = sample_and_settle(E);
        if (live == 0) continue;
        int nr = 0;
        for (int s = 0; s < E->cfg.slots; s++)
            if (E->slot[s].job) E->rows_tok[nr] = E->slot[s].hist[E->slot[s].n_hist - 1], E->rows_slot[nr++] = s;
        gen_forward(E->g, &E->kv, E->rows_tok, E->rows_slot, nr, NULL, E->step_logits, 1);
        for (int r = 0; r < nr; r++)
            memcpy(E->slot[E->rows_slot[r]].logits, E->step_logits + (size_t)r * E->V, (size_t)E->V * sizeof(float));
    }
    intvec_free(&ids);
    return NULL;
}

Engine *engine_start(ServedModel *s, const EngineConfig *c, Error *e) {
    Engine *E = xcalloc(1, sizeof *E);
    E->cfg = *c;
    if (E->cfg.slots < 1) E->cfg.slots = 8;
    E->cur = xmalloc(sizeof *E->cur);
    *E->cur = *s;
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&E->mu, NULL);
    pthread_mutex_init(&E->reload_mu, NULL);
    pthread_cond_init(&E->cv, NULL);
    pthread_cond_init(&E->swapped, NULL);
    engine_build(E);
    if (pthread_create(&E->thread, NULL, engine_main, E)) {
        err_set(e, EX_OSERR, "cannot start the engine thread");
        return NULL;
    }
    return E;
}

void engine_stop(Engine *E) {
    pthread_mutex_lock(&E->mu);
    E->stop = 1;
    pthread_cond_broadcast(&E->cv);
    pthread_mutex_unlock(&E->mu);
    pthread_join(E->thread, NULL);
    for (int s = 0; s < E->cfg.slots; s++)
        if (E->slot[s].job) {
            GenJob *j = E->slot[s].job;
            job_fail(j, EX_UNAVAILABLE, "the server is shutting down");
            E->slot[s].job = NULL;
            j->live--;
            maybe_release(j);
        }
    for (GenJob *j = E->head, *nx; j; j = nx) {
        nx = j->next;
        job_fail(j, EX_UNAVAILABLE, "the server is shutting down");
        j->queued = 0;
        maybe_release(j);
    }
    engine_teardown(E);
    served_free(E->cur);
    free(E->cur);
    if (E->pending) served_free(E->pending), free(E->pending);
    free(E->name), free(E->version), free(E->dir);
    free(E);
}

int engine_submit(Engine *E, GenJob *j, Error *e) {
    if (j->n < 1 || j->max_tokens < 1) return err_set(e, EX_USAGE, "n and max_tokens must be >= 1");
    if (sampler_config_check(&j->sampler, e)) return e->code;
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&E->mu);
    j->next = NULL;
    if (E->tail)
        E->tail->next = j;
    else
        E->head = j;
    E->tail = j;
    E->waiting++;
    j->queued = 1;
    pthread_cond_broadcast(&E->cv);
    pthread_mutex_unlock(&E->mu);
    return 0;
}

int engine_reload(Engine *E, const char *dir, ChatTemplate tpl, Error *e) {
    pthread_mutex_lock(&E->reload_mu);
    ServedModel *s = xmalloc(sizeof *s);
    int rc = served_load(s, dir, tpl, e);
    if (rc) {
        free(s);
        pthread_mutex_unlock(&E->reload_mu);
        return rc;
    }
    pthread_mutex_lock(&E->mu);
    E->pending = s;
    pthread_cond_broadcast(&E->cv);
    while (E->pending == s) pthread_cond_wait(&E->swapped, &E->mu);
    pthread_mutex_unlock(&E->mu);
    pthread_mutex_unlock(&E->reload_mu);
    return 0;
}

void engine_model_info(Engine *E, char **name, char **version, char **dir) {
    pthread_mutex_lock(&E->mu);
    if (name) *name = xstrdup(E->name);
    if (version) *version = xstrdup(E->version);
    if (dir) *dir = xstrdup(E->dir);
    pthread_mutex_unlock(&E->mu);
}

void engine_load_info(Engine *E, int *waiting, int *running) {
    pthread_mutex_lock(&E->mu);
    *waiting = E->waiting;
    *running = E->running;
    pthread_mutex_unlock(&E->mu);
}
