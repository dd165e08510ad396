/* train.c — the training loop, checkpoints and resume.  See train.h for the
 * contract (normalisation, data order, schedule, log, checkpoints, signals). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/dist.h"
#include "model/lora.h"
#include "formats/safetensors.h"

/* ---- signals: finish the step, checkpoint, exit 128+sig ---------------------- */
static volatile sig_atomic_t stop_signal;
/* With several ranks, the largest signal any rank had seen at the last step's
 * exchange: every rank stops after the same step (see trainer_step). */
static int agreed_signal;
static struct sigaction old_int, old_term;
static int handlers_installed;

static void train_signal_handler(int sig) {
    if (stop_signal) { /* second signal: give up at once, leaving no temporaries */
        atomic_cleanup_all();
        _exit(128 + sig);
    }
    stop_signal = sig;
}

static void signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_signal_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    handlers_installed = 1;
}

static void signals_restore(void) {
    if (!handlers_installed) return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    handlers_installed = 0;
}

int trainer_stop_signal(void) {
    return dist_size() > 1 ? agreed_signal : stop_signal;
}

/* ---- helpers ------------------------------------------------------------------ */
static void say(const Trainer *tr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const Trainer *tr, const char *fmt, ...) {
    if (tr->f->quiet || tr->rank != 0) return;
    progress_clear((Progress *)&tr->progress);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tr->f->prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static char *checkpoint_path(const char *out_dir, long step) {
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%ld", step);
    return path_join(out_dir, name);
}

/* "checkpoint-N" -> N, else -1. */
static long checkpoint_number(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0) return -1;
    const char *s = name + 11;
    if (!*s) return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000000L) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

long train_find_checkpoint(const char *out_dir, char **path) {
    DIR *d = opendir(out_dir);
    if (!d) return -1;
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long n = checkpoint_number(de->d_name);
        if (n <= best) continue;
        char *dir = path_join(out_dir, de->d_name);
        char *st = path_join(dir, "trainer_state.json");
        if (file_exists(st)) best = n;
        free(st);
        free(dir);
    }
    closedir(d);
    if (best >= 0 && path) *path = checkpoint_path(out_dir, best);
    return best;
}

/* Saves the model into DIR (an existing directory).  model_save writes a directory
 * atomically itself, so it writes a subdirectory whose files we then move up.
 * Checkpoints are always F32 (resume must be exact); the final model follows
 * --dtype. */
static int save_model_into(Trainer *tr, const char *dir, int final, Error *e) {
    TrainTask *t = tr->t;
    if (t->save) return t->save(t->ctx, dir, e);
    char *sub = path_join(dir, "model.tmp");
    StDtype dt = final && tr->f->save_bf16 ? ST_BF16 : ST_F32;
    if (final && tr->f->lora_merge) lora_merge(t->model); /* --merge: a plain model directory */
    int rc = model_save_dtype(t->model, sub, t->tokenizer_dir, dt, e);
    if (rc == 0) {
        DIR *d = opendir(sub);
        if (!d) rc = err_set(e, EX_IOERR, "%s: cannot read: %s", sub, strerror(errno));
        struct dirent *de;
        while (d && rc == 0 && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char *from = path_join(sub, de->d_name), *to = path_join(dir, de->d_name);
            if (rename(from, to) != 0) rc = err_set(e, EX_CANTCREAT, "%s: cannot move: %s", to, strerror(errno));
            free(from);
            free(to);
        }
        if (d) closedir(d);
    }
    remove_tree(sub);
    free(sub);
    return rc;
}

static int load_model_from(Trainer *tr, const char *dir, Error *e) {
    TrainTask *t = tr->t;
    int rc = lora_check_checkpoint(t->model, dir, e);
    if (rc) return rc;
    if (t->load) return t->load(t->ctx, dir, e);
    return model_load_params(t->model, dir, e); /* LoRA: the adapter only; the base is unchanged */
}

/* ---- checkpoint state ---------------------------------------------------------- */
static int write_state(Trainer *tr, const char *dir, Error *e) {
    const TrainFlags *f = tr->f;
    /* optimizer.safetensors: AdamW moments as flat tensors, the step in metadata */
    StWriter w;
    st_writer_init(&w);
    adamw_state_add(&w, &tr->opt, "");
    char buf[64];
    char *opath = path_join(dir, "optimizer.safetensors");
    int rc = st_writer_write(&w, opath, ST_F32, e);
    st_writer_free(&w);
    free(opath);
    if (rc) return rc;

    json_t *o = json_object();
    json_object_set_new(o, "global_step", json_integer(tr->step));
    json_object_set_new(o, "total_steps", json_integer(tr->total_steps));
    json_object_set_new(o, "epoch", json_real((double)tr->step / (double)tr->steps_per_epoch));
    json_object_set_new(o, "num_tokens", json_integer(tr->tokens_seen));
    snprintf(buf, sizeof buf, "%" PRIu64, f->seed);
    json_object_set_new(o, "seed", json_string(buf));
    json_t *rng = json_array();
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%016" PRIx64, tr->t->rng.s[i]);
        json_array_append_new(rng, json_string(buf));
    }
    json_object_set_new(o, "task_rng", rng);
    json_object_set_new(o, "n_train", json_integer(tr->t->n_train));
    json_object_set_new(o, "batch_size", json_integer(f->batch_size));
    json_object_set_new(o, "grad_accum", json_integer(f->grad_accum));
    json_object_set_new(o, "lr", json_real(f->lr));
    char *spath = path_join(dir, "trainer_state.json");
    AtomicFile af;
    rc = atomic_open(&af, spath, e);
    if (rc == 0) {
        if (json_dumpf(o, af.fp, JSON_INDENT(2)) != 0 || fputc('\n', af.fp) == EOF) {
            atomic_abort(&af);
            rc = err_set(e, EX_IOERR, "%s: write error", spath);
        } else {
            rc = atomic_commit(&af, e);
        }
    }
    free(spath);
    json_decref(o);
    return rc;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* --save-total-limit: removes all but the newest N checkpoint directories (as the
 * HF Trainer's save_total_limit does; the newest one is what --resume needs). */
static void checkpoints_prune(Trainer *tr) {
    DIR *d = opendir(tr->f->out_dir);
    if (!d) return;
    long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long k = checkpoint_number(de->d_name);
        if (k < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            steps = xrealloc(steps, cap * sizeof *steps);
        }
        steps[n++] = k;
    }
    closedir(d);
    if (n > 0) qsort(steps, n, sizeof *steps, cmp_long);
    for (size_t i = 0; i + (size_t)tr->f->save_total_limit < n; i++) {
        char *p = checkpoint_path(tr->f->out_dir, steps[i]);
        remove_tree(p);
        free(p);
    }
    free(steps);
}

/* Data parallelism: before rank 0 saves, every rank must still hold the weights
 * rank 0 holds (dist.h DETERMINISM); a difference would be a bug, not noise. */
static int ranks_same_weights(Trainer *tr, Error *e) {
    if (tr->n_ranks <= 1) return 0;
    int rc = dist_check_same(tr->t->model->params, tr->t->model->n_params, "model weights", e);
    if (rc == 0 && tr->t->model->lora)
        rc = dist_check_same(tr->t->model->lora->params, tr->t->model->lora->n_params, "LoRA adapter", e);
    return dist_agree(rc, e);
}

int trainer_checkpoint(Trainer *tr, Error *e) {
    if (tr->step == tr->last_checkpoint) return 0;
    int rc = ranks_same_weights(tr, e);
    if (rc) return rc;
    char *final = checkpoint_path(tr->f->out_dir, tr->step);
    if (tr->rank == 0) {
        AtomicDir ad;
        rc = atomic_dir_begin(&ad, final, e);
        if (rc == 0) rc = save_model_into(tr, ad.tmp, 0, e);
        if (rc == 0) rc = write_state(tr, ad.tmp, e);
        if (rc == 0)
            rc = atomic_dir_commit(&ad, e);
        else
            atomic_dir_abort(&ad);
    }
    rc = dist_agree(rc, e); /* the others wait until rank 0's checkpoint is complete */
    if (rc == 0) {
        tr->last_checkpoint = tr->step;
        say(tr, "saved %s", final);
        if (tr->rank == 0 && tr->f->save_total_limit > 0) checkpoints_prune(tr);
    }
    free(final);
    return rc;
}

static int parse_hex64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno || end == s || *end || strlen(s) != 16) return -1;
    *out = v;
    return 0;
}

static int resume_from(Trainer *tr, const char *dir, Error *e) {
    const TrainFlags *f = tr->f;
    char *spath = path_join(dir, "trainer_state.json");
    json_error_t je;
    json_t *o = json_load_file(spath, 0, &je);
    int rc = 0;
    if (!o) {
        rc = err_set(e, EX_DATAERR, "%s:%d: %s", spath, je.line, je.text);
        goto out;
    }
    json_t *gs = json_object_get(o, "global_step"), *rng = json_object_get(o, "task_rng");
    if (!json_is_integer(gs) || json_integer_value(gs) < 0) {
        rc = err_set(e, EX_DATAERR, "%s: field \"global_step\" must be a non-negative integer", spath);
        goto out;
    }
    if (!json_is_array(rng) || json_array_size(rng) != 4) {
        rc = err_set(e, EX_DATAERR, "%s: field \"task_rng\" must be an array of 4 hex strings", spath);
        goto out;
    }
    Rng r;
    for (int i = 0; i < 4; i++) {
        const char *s = json_string_value(json_array_get(rng, i));
        if (!s || parse_hex64(s, &r.s[i])) {
            rc = err_set(e, EX_DATAERR, "%s: field \"task_rng\"[%d] must be 16 hex digits", spath, i);
            goto out;
        }
    }
    /* Settings that decide the data order or the schedule: a different value still
     * resumes, but not into the run that was interrupted. */
    struct {
        const char *name;
        long long want;
    } same[] = {{"total_steps", tr->total_steps},
                {"n_train", tr->t->n_train},
                {"batch_size", f->batch_size},
                {"grad_accum", f->grad_accum}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        json_t *v = json_object_get(o, same[i].name);
        if (json_is_integer(v) && json_integer_value(v) != same[i].want)
            say(tr, "warning: %s: %s was %lld, now %lld; the resumed run will differ from an uninterrupted one", spath,
                same[i].name, (long long)json_integer_value(v), same[i].want);
    }
    const char *seed_s = json_string_value(json_object_get(o, "seed"));
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, f->seed);
    if (seed_s && strcmp(seed_s, buf) != 0)
        say(tr, "warning: %s: seed was %s, now %s; the data order will differ", spath, seed_s, buf);

    /* weights */
    rc = load_model_from(tr, dir, e);
    if (rc) goto out;
    /* optimiser */
    char *opath = path_join(dir, "optimizer.safetensors");
    StFile sf;
    rc = st_open(&sf, opath, e);
    if (rc == 0) {
        rc = adamw_state_read(&tr->opt, &sf, "", opath, e);
        st_close(&sf);
    }
    free(opath);
    if (rc) goto out;
    tr->t->rng = r;
    tr->step = (long)json_integer_value(gs);
    tr->last_checkpoint = tr->step;
    json_t *nt = json_object_get(o, "num_tokens");
    tr->tokens_seen = json_is_integer(nt) ? (long)json_integer_value(nt) : 0;
out:
    json_decref(o);
    free(spath);
    return rc;
}

/* ---- setup ------------------------------------------------------------------------ */
static int dir_has_checkpoints(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d))) found = checkpoint_number(de->d_name) >= 0;
    closedir(d);
    return found;
}

int trainer_init(Trainer *tr, const TrainFlags *f, TrainTask *t, long total_steps, long steps_per_epoch, Error *e) {
    memset(tr, 0, sizeof *tr);
    tr->f = f;
    tr->t = t;
    int rc = dist_init(e);
    if (rc) return rc;
    tr->rank = dist_rank();
    tr->n_ranks = dist_size();
    tr->total_steps = total_steps;
    tr->steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
    tr->last_checkpoint = -1;
    /* transformers TrainingArguments.get_warmup_steps: ceil(ratio * total) */
    tr->warmup = f->warmup_steps >= 0 ? f->warmup_steps : (long)ceil(f->warmup_ratio * (double)total_steps);
    rng_seed(&t->rng, f->seed ^ 0x7461736b726e67ULL); /* "taskrng": separate from the data order */
    model_enable_grads(t->model);
    adamw_init_model(&tr->opt, t->model, (float)f->weight_decay);
    tr->opt.beta1 = (float)f->beta1;
    tr->opt.beta2 = (float)f->beta2;
    tr->opt.eps = (float)f->adam_eps;

    char *ck = NULL;
    if (f->resume && train_find_checkpoint(f->out_dir, &ck) >= 0) {
        rc = resume_from(tr, ck, e);
        if (rc)
            err_prefix(e, "--resume");
        else if (!f->quiet && tr->rank == 0)
            fprintf(stderr, "%s: resuming from %s (step %ld of %ld)\n", f->prog, ck, tr->step, total_steps);
    } else {
        if (f->resume && !f->quiet && tr->rank == 0)
            fprintf(stderr, "%s: --resume: no checkpoint in %s; starting fresh\n", f->prog, f->out_dir);
        if (!f->resume && dir_has_checkpoints(f->out_dir))
            rc = err_set(e, EX_CANTCREAT,
                         "%s: holds checkpoints of an earlier run; pass --resume to continue it or remove them",
                         f->out_dir);
    }
    free(ck);
    /* only rank 0 writes: the output directory and the log are its */
    if (rc == 0 && tr->rank == 0) rc = mkdir_p(f->out_dir, e);
    if (rc == 0 && tr->rank == 0)
        rc = metrics_log_open(&tr->log, f->log_path, f->resume && tr->step > 0 ? tr->step : -1, e);
    if (rc == 0 && tr->rank == 0 && f->report_tensorboard) { /* --report-to tensorboard */
        size_t n = strlen(f->out_dir) + 8;
        char *dir = xmalloc(n);
        snprintf(dir, n, "%s-logs", f->out_dir);
        rc = metrics_log_open_tensorboard(&tr->log, f->logging_dir ? f->logging_dir : dir, e);
        free(dir);
    }
    rc = dist_agree(rc, e);
    if (rc == 0 && tr->n_ranks > 1) {
        /* every rank resumed from the same checkpoint and starts from the same weights */
        long step0 = tr->step;
        rc = dist_broadcast(&step0, sizeof step0, 0, e);
        if (rc == 0 && step0 != tr->step)
            rc = err_set(e, EX_SOFTWARE,
                         "rank %d resumed at step %ld, rank 0 at step %ld (--resume needs %s on a file system "
                         "every rank sees)",
                         tr->rank, tr->step, step0, f->out_dir);
        rc = dist_agree(rc, e);
        if (rc == 0) rc = ranks_same_weights(tr, e);
    }
    if (rc) {
        Error e2;
        metrics_log_close(&tr->log, &e2);
        adamw_free(&tr->opt);
        return rc;
    }
    stop_signal = 0;
    agreed_signal = 0;
    signals_install();
    progress_init(&tr->progress, f->quiet || tr->rank != 0 ? 0 : cli_progress_enabled(f->progress), tr->step);
    return 0;
}

int trainer_finish(Trainer *tr, Error *e) {
    progress_clear(&tr->progress);
    int rc = metrics_log_close(&tr->log, e);
    adamw_free(&tr->opt);
    signals_restore();
    return dist_agree(rc, e);
}

/* ---- data parallelism (train.h DATA PARALLELISM) ------------------------------------ */
/* This rank's share of a step: units r, r+N, ... of the step's micro-batches taken
 * in order, regrouped into micro-batches of at most the largest one's size. */
typedef struct RankShare {
    int n_micro;
    const int **idx;
    int *cnt;
    int *units;
} RankShare;

static void rank_share(RankShare *s, int rank, int n_ranks, int n_micro, const int *const *idx, const int *n) {
    long total = 0;
    int mb = 1;
    for (int j = 0; j < n_micro; j++) {
        total += n[j];
        if (n[j] > mb) mb = n[j];
    }
    long mine = total > rank ? (total - rank + n_ranks - 1) / n_ranks : 0;
    s->units = xmalloc((size_t)(mine ? mine : 1) * sizeof(int));
    long u = 0, k = 0;
    for (int j = 0; j < n_micro; j++)
        for (int i = 0; i < n[j]; i++, u++)
            if (u % n_ranks == rank) s->units[k++] = idx[j][i];
    s->n_micro = (int)((mine + mb - 1) / mb);
    s->idx = xmalloc((size_t)(s->n_micro ? s->n_micro : 1) * sizeof *s->idx);
    s->cnt = xmalloc((size_t)(s->n_micro ? s->n_micro : 1) * sizeof(int));
    for (int j = 0; j < s->n_micro; j++) {
        s->idx[j] = s->units + (long)j * mb;
        s->cnt[j] = (int)(mine - (long)j * mb < mb ? mine - (long)j * mb : mb);
    }
}

static void rank_share_free(RankShare *s) {
    free(s->units);
    free(s->idx);
    free(s->cnt);
}

/* Replaces mt by the sum of every rank's metrics, added in rank order so every rank
 * gets the same numbers; *sig (may be NULL) gets the largest stop signal any rank
 * has seen.  A collective. */
static int metrics_allreduce(Metrics *mt, int *sig, Error *e) {
    int n = dist_size();
    typedef struct {
        Metrics mt;
        int sig;
    } Report;
    Report mine, *all = xmalloc((size_t)n * sizeof *all);
    memset(&mine, 0, sizeof mine);
    mine.mt = *mt;
    mine.sig = stop_signal;
    int rc = dist_allgather(&mine, sizeof mine, all, e);
    if (rc == 0) {
        metrics_reset(mt);
        int s = 0;
        for (int r = 0; r < n; r++) {
            metrics_merge(mt, &all[r].mt, "");
            if (all[r].sig > s) s = all[r].sig;
        }
        if (sig) *sig = s;
    }
    free(all);
    return rc;
}

/* Seed of the LoRA dropout masks of micro-step j of the coming update (lora.h): a
 * function of (--seed, step, j, rank) only, so a resumed run draws the same masks. */
static uint64_t dropout_seed(const Trainer *tr, int j) {
    return tr->f->seed * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)tr->step << 20) ^ ((uint64_t)j << 4) ^
           (uint64_t)tr->rank * 0xD1B54A32D192ED03ULL;
}

/* ---- one update --------------------------------------------------------------------- */
int trainer_step(Trainer *tr, int n_micro, const int *const *idx, const int *n, const Metrics *extra, Metrics *out,
                 Error *e) {
    TrainTask *t = tr->t;
    Model *m = t->model;
    double t0 = now_seconds();
    double W = 0;
    for (int j = 0; j < n_micro; j++) W += t->weight(t->ctx, SPLIT_TRAIN, idx[j], n[j]);
    /* A step with nothing to learn from (every example masked out) still counts;
     * its gradient is zero. */
    double scale = W > 0 ? 1.0 / W : 0.0;
    Metrics mt;
    metrics_reset(&mt);
    model_zero_grad(m);
    if (tr->n_ranks <= 1) {
        for (int j = 0; j < n_micro; j++) {
            lora_set_dropout(m, 1, dropout_seed(tr, j));
            int rc = t->micro_step(t->ctx, SPLIT_TRAIN, idx[j], n[j], scale, &mt, e);
            lora_set_dropout(m, 0, 0);
            if (rc) return err_prefix(e, "step %ld", tr->step + 1);
        }
    } else {
        RankShare sh;
        rank_share(&sh, tr->rank, tr->n_ranks, n_micro, idx, n);
        int rc = 0;
        for (int j = 0; j < sh.n_micro && rc == 0; j++) {
            lora_set_dropout(m, 1, dropout_seed(tr, j));
            rc = t->micro_step(t->ctx, SPLIT_TRAIN, sh.idx[j], sh.cnt[j], scale, &mt, e);
            lora_set_dropout(m, 0, 0);
            if (rc) err_prefix(e, "step %ld", tr->step + 1);
        }
        rank_share_free(&sh);
        /* a micro-step that failed on any rank stops every rank here; a failed
         * exchange (an MPI error) is not agreed on and aborts the job at exit */
        rc = dist_agree(rc, e);
        if (rc == 0) rc = metrics_allreduce(&mt, &agreed_signal, e);
        if (rc == 0) { /* the trainable block: the adapter alone under LoRA */
            float *g;
            size_t gn;
            (void)model_train_params(m, &g, &gn);
            rc = dist_allreduce_sum(g, gn, e);
        }
        if (rc == 0 && t->extra_grads) rc = dist_allreduce_sum(t->extra_grads, t->n_extra_grads, e);
        if (rc) return rc;
    }
    double loss = NAN;
    if (metrics_get(&mt, "loss", &loss) != 0) loss = 0.0;
    float *tgrads;
    size_t tn;
    float *tparams = model_train_params(m, &tgrads, &tn); /* the adapter alone under LoRA */
    double norm = grad_clip_norm(tgrads, tn, tr->f->clip_grad);
    if (!isfinite(loss) || !isfinite(norm)) {
        char last[64] = "none";
        if (tr->last_checkpoint >= 0) snprintf(last, sizeof last, "checkpoint-%ld", tr->last_checkpoint);
        return err_set(e, EX_SOFTWARE,
                       "step %ld: loss is %g and gradient norm %g; stopped before the update (last checkpoint: %s)",
                       tr->step + 1, loss, norm, last);
    }
    double lr = tr->f->lr * lr_lambda(tr->f->scheduler, tr->step, tr->warmup, tr->total_steps);
    adamw_step(&tr->opt, tparams, tgrads, (float)lr);
    tr->step++;
    tr->tokens_seen += mt.tokens;
    double dt = now_seconds() - t0;
    double tps = dt > 0 ? (double)mt.tokens / dt : 0;
    const char *names[] = {"loss", "learning_rate", "grad_norm", "tokens_per_s", "num_tokens"};
    double vals[] = {loss, lr, norm, tps, (double)tr->tokens_seen};
    /* the loop's own fields come first; the task's "loss" is not repeated */
    Metrics rest;
    metrics_reset(&rest);
    for (int i = 0; i < mt.n; i++)
        if (strcmp(mt.name[i], "loss") != 0) metrics_add(&rest, mt.name[i], mt.sum[i], mt.count[i]);
    if (extra) metrics_merge(&rest, extra, "");
    int rc =
        metrics_log_write(&tr->log, tr->step, (double)tr->step / (double)tr->steps_per_epoch, names, vals, 5, &rest, e);
    rc = dist_agree(rc, e); /* only rank 0 writes the log */
    if (rc) return rc;
    progress_update(&tr->progress, tr->step, tr->total_steps, loss, tps);
    if (out) *out = mt;
    return 0;
}

int trainer_eval(Trainer *tr, Metrics *out, Error *e) {
    TrainTask *t = tr->t;
    if (t->n_eval <= 0) return 0;
    int bs = tr->f->batch_size;
    int *idx = xmalloc((size_t)bs * sizeof(int));
    Metrics mt;
    metrics_reset(&mt);
    int rc = 0;
    long batch = 0;
    for (long s = 0; s < t->n_eval && rc == 0; s += bs, batch++) {
        if (batch % tr->n_ranks != tr->rank) continue; /* batch b is rank b mod N's */
        int k = (int)(t->n_eval - s < bs ? t->n_eval - s : bs);
        for (int i = 0; i < k; i++) idx[i] = (int)(s + i);
        rc = t->micro_step(t->ctx, SPLIT_EVAL, idx, k, 0.0, &mt, e);
        if (rc) err_prefix(e, "eval at step %ld", tr->step);
    }
    free(idx);
    if (tr->n_ranks > 1) {
        rc = dist_agree(rc, e);
        if (rc == 0) rc = metrics_allreduce(&mt, NULL, e);
    }
    if (rc) return rc;
    Metrics pre;
    metrics_reset(&pre);
    metrics_merge(&pre, &mt, "eval_");
    rc = metrics_log_write(&tr->log, tr->step, (double)tr->step / (double)tr->steps_per_epoch, NULL, NULL, 0, &pre, e);
    rc = dist_agree(rc, e);
    if (rc) return rc;
    double el;
    if (metrics_get(&pre, "eval_loss", &el) == 0) say(tr, "step %ld: eval_loss %.6f", tr->step, el);
    if (out) *out = pre;
    return 0;
}

/* ---- final model ---------------------------------------------------------------------- */
static int save_final_root(Trainer *tr, Error *e);

int trainer_save_final(Trainer *tr, Error *e) {
    int rc = ranks_same_weights(tr, e);
    if (rc) return rc;
    if (tr->rank == 0) rc = save_final_root(tr, e);
    return dist_agree(rc, e);
}

static int save_final_root(Trainer *tr, Error *e) {
    const char *out = tr->f->out_dir;
    AtomicDir ad;
    int rc = atomic_dir_begin(&ad, out, e);
    if (rc) return rc;
    rc = save_model_into(tr, ad.tmp, 1, e);
    if (rc) {
        atomic_dir_abort(&ad);
        return rc;
    }
    /* carry the checkpoints over into the new directory before it replaces OUT */
    DIR *d = opendir(out);
    if (d) {
        struct dirent *de;
        while (rc == 0 && (de = readdir(d))) {
            if (checkpoint_number(de->d_name) < 0) continue;
            char *from = path_join(out, de->d_name), *to = path_join(ad.tmp, de->d_name);
            if (rename(from, to) != 0) rc = err_set(e, EX_CANTCREAT, "%s: cannot move: %s", from, strerror(errno));
            free(from);
            free(to);
        }
        closedir(d);
    }
    if (rc) {
        /* put back what was moved, then drop the temporary */
        DIR *d2 = opendir(ad.tmp);
        if (d2) {
            struct dirent *de;
            while ((de = readdir(d2))) {
                if (checkpoint_number(de->d_name) < 0) continue;
                char *from = path_join(ad.tmp, de->d_name), *to = path_join(out, de->d_name);
                rename(from, to);
                free(from);
                free(to);
            }
            closedir(d2);
        }
        atomic_dir_abort(&ad);
        return rc;
    }
    return atomic_dir_commit(&ad, e);
}

/* ---- the epoch loop --------------------------------------------------------------------- */
static void epoch_order(uint64_t seed, long epoch, int *perm, long n) {
    for (long i = 0; i < n; i++) perm[i] = (int)i;
    Rng r;
    /* one stream per epoch, independent of everything else the run draws */
    rng_seed(&r, seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    rng_shuffle(&r, perm, (size_t)n);
}

int train_run(const TrainFlags *f, TrainTask *t, Error *e) {
    if (t->n_train < 1) return err_set(e, EX_DATAERR, "no training examples");
    if (t->n_train > 0x7fffffffL) return err_set(e, EX_DATAERR, "too many training examples (%ld)", t->n_train);
    const long bs = f->batch_size, ga = f->grad_accum;
    const long mb_per_epoch = (t->n_train + bs - 1) / bs;
    const long steps_per_epoch = (mb_per_epoch + ga - 1) / ga;
    long total = f->max_steps > 0 ? f->max_steps : (long)ceil(f->epochs * (double)steps_per_epoch - 1e-9);
    if (total < 1) total = 1;
    Trainer tr;
    int rc = trainer_init(&tr, f, t, total, steps_per_epoch, e);
    if (rc) return rc;
    if (!f->quiet && tr.rank == 0)
        fprintf(
            stderr,
            "%s: %ld training units, %ld steps (%ld per epoch; batch %ld x %ld accumulation), lr %g %s, warm-up %ld\n",
            f->prog, t->n_train, total, steps_per_epoch, bs, ga, f->lr, lr_schedule_name(f->scheduler), tr.warmup);

    int *perm = xmalloc((size_t)t->n_train * sizeof(int));
    long perm_epoch = -1;
    const int **idx = xmalloc((size_t)ga * sizeof *idx);
    int *cnt = xmalloc((size_t)ga * sizeof(int));
    int sig = 0;
    double t_start = now_seconds();
    long tokens_start = tr.tokens_seen, step_start = tr.step;
    double last_loss = NAN;

    if (t->n_eval > 0 && tr.step == 0) rc = trainer_eval(&tr, NULL, e);
    while (rc == 0 && tr.step < total) {
        long epoch = tr.step / steps_per_epoch, k = tr.step % steps_per_epoch;
        if (epoch != perm_epoch) {
            epoch_order(f->seed, epoch, perm, t->n_train);
            perm_epoch = epoch;
        }
        int n_micro = 0;
        for (long j = k * ga; j < (k + 1) * ga && j < mb_per_epoch; j++) {
            long lo = j * bs, hi = lo + bs < t->n_train ? lo + bs : t->n_train;
            idx[n_micro] = perm + lo;
            cnt[n_micro] = (int)(hi - lo);
            n_micro++;
        }
        Metrics mt;
        rc = trainer_step(&tr, n_micro, idx, cnt, NULL, &mt, e);
        if (rc) break;
        metrics_get(&mt, "loss", &last_loss);
        if (t->n_eval > 0 && f->eval_every > 0 && tr.step % f->eval_every == 0 && tr.step < total)
            rc = trainer_eval(&tr, NULL, e);
        if (rc) break;
        if ((sig = trainer_stop_signal()) != 0) break;
        if (f->save_every > 0 && tr.step % f->save_every == 0 && tr.step < total) rc = trainer_checkpoint(&tr, e);
        if (rc) break;
        if (f->stop_after > 0 && tr.step >= f->stop_after && tr.step < total) break;
        if ((sig = trainer_stop_signal()) != 0) break;
    }
    int stopped_early = rc == 0 && tr.step < total;
    if (rc == 0 && stopped_early) {
        if (sig) say(&tr, "%s: writing a checkpoint at step %ld", strsignal(sig), tr.step);
        rc = trainer_checkpoint(&tr, e);
    }
    if (rc == 0 && !stopped_early) {
        if (t->n_eval > 0) rc = trainer_eval(&tr, NULL, e);
        if (rc == 0) rc = trainer_save_final(&tr, e);
        if (rc == 0) {
            double dt = now_seconds() - t_start;
            say(&tr, "done: %ld steps, final loss %.6f, %.0f tokens/s, model in %s", tr.step - step_start, last_loss,
                dt > 0 ? (double)(tr.tokens_seen - tokens_start) / dt : 0.0, f->out_dir);
        }
    }
    Error e2;
    int rc2 = trainer_finish(&tr, &e2);
    if (rc == 0 && rc2) {
        *e = e2;
        rc = rc2;
    }
    free(perm);
    free(idx);
    free(cnt);
    /* every rank returns the same status, so they exit together (dist.h FAILURE) */
    return dist_agree(rc ? rc : stopped_early && sig ? 128 + sig : 0, e);
}
