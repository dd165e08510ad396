/* train.c — the training loop.  See train.h for the contract (normalisation, data
 * order, schedule, log, signals); checkpoints and resume are in checkpoint.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "train.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/dist.h"
#include "base/outdir.h"
#include "kernels/gemm.h"
#include "model/lora.h"
#include "train_internal.h"

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
void train_say(const Trainer *tr, const char *fmt, ...) {
    if (tr->f->quiet || tr->rank != 0) return;
    progress_clear((Progress *)&tr->progress);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tr->f->prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- setup ------------------------------------------------------------------------ */
int trainer_init(Trainer *tr, const TrainFlags *f, TrainTask *t, long total_steps, long steps_per_epoch, Error *e) {
    memset(tr, 0, sizeof *tr);
    tr->f = f;
    tr->t = t;
    int rc = dist_init(e);
    if (rc) return rc;
    tr->rank = dist_rank();
    tr->n_ranks = dist_size();
    /* OUT: refuse a directory cherry did not write and a second run on it before
     * any work (outdir.h); only rank 0 writes, so only rank 0 locks */
    if (tr->rank == 0) {
        rc = outdir_claim(f->out_dir, e);
        tr->created_out = rc == 0 && !file_exists(f->out_dir);
    }
    rc = dist_agree(rc, e);
    if (rc) return rc;
    tr->total_steps = total_steps;
    tr->steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
    tr->last_checkpoint = -1;
    /* transformers TrainingArguments.get_warmup_steps: ceil(ratio * total) */
    tr->warmup = f->warmup_steps >= 0 ? f->warmup_steps : (long)ceil(f->warmup_ratio * (double)total_steps);
    rng_seed(&t->rng, f->seed ^ 0x7461736b726e67ULL); /* "taskrng": separate from the data order */
    /* gradients made here are calloc's zeros, untouched: the first step need not clear
     * them (a pass over 4 bytes a parameter, and the pages' first touch moved into it),
     * and in discard mode its backward writes them instead of adding to zeros */
    int fresh = t->model->lora ? !t->model->lora->grads : !t->model->grads;
    model_enable_grads(t->model);
    if (fresh) {
        tr->grads_clear = 1;
        if (!gemm_overwrite_slower()) model_grads_discard(t->model);
    }
    adamw_init_model(&tr->opt, t->model, (float)f->weight_decay);
    tr->opt.beta1 = (float)f->beta1;
    tr->opt.beta2 = (float)f->beta2;
    tr->opt.eps = (float)f->adam_eps;

    char *ck = NULL;
    if (f->resume && train_find_checkpoint(f->out_dir, &ck) >= 0) {
        rc = trainer_resume(tr, ck, e);
        if (rc)
            err_prefix(e, "--resume");
        else if (!f->quiet && tr->rank == 0)
            fprintf(stderr, "%s: resuming from %s (step %ld of %ld)\n", f->prog, ck, tr->step, total_steps);
    } else {
        if (f->resume && !f->quiet && tr->rank == 0)
            fprintf(stderr, "%s: --resume: no checkpoint in %s; starting fresh\n", f->prog, f->out_dir);
        if (!f->resume && checkpoint_dir_has_any(f->out_dir))
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
        if (rc == 0) rc = trainer_ranks_same_weights(tr, e);
    }
    if (rc) {
        Error e2;
        metrics_log_close(&tr->log, &e2);
        adamw_free(&tr->opt);
        if (tr->created_out && tr->rank == 0) rmdir(f->out_dir);
        return rc;
    }
    /* --mixed-precision bf16: the trained block's products read one bf16 copy from the
     * first step on, not only after the first update (gemm.h; the same bits; the
     * first step converted every weight per product, the LM head once per block of
     * rows) */
    float *tgrads;
    size_t tn;
    float *tparams = model_train_params(t->model, &tgrads, &tn);
    gemm_bf16_weights_declare(tparams, tn);
    stop_signal = 0;
    agreed_signal = 0;
    signals_install();
    progress_init(&tr->progress, f->quiet || tr->rank != 0 ? 0 : cli_progress_enabled(f->progress), tr->step);
    return 0;
}

int trainer_finish(Trainer *tr, Error *e) {
    progress_clear(&tr->progress);
    /* a run that stopped before writing anything leaves no empty OUT behind
     * (rmdir removes only an empty directory) */
    if (tr->created_out && tr->rank == 0) rmdir(tr->f->out_dir);
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

/* The NaN guard: the weights are still those before this step (the last good
 * ones), so they are written as checkpoint-<step> (checkpoint-0 = the initial
 * model) before stopping: the run can be inspected or resumed with other settings,
 * and OUT is never left empty.  The inputs that can carry non-finite values
 * (reward answers, ref_*_logps, margins) are refused with EX_DATAERR where they are
 * read; what reaches this guard is numerical (EX_SOFTWARE).  A collective: every
 * rank sees the same reduced loss and norm. */
static int nonfinite_stop(Trainer *tr, double loss, double norm, const char *norm_of, Error *e) {
    Error e2 = {0};
    char saved[96] = "no checkpoint could be written";
    int ck = trainer_checkpoint(tr, &e2);
    if (ck == 0) snprintf(saved, sizeof saved, "checkpoint-%ld holds the weights before it", tr->last_checkpoint);
    return err_set(e, EX_SOFTWARE, "step %ld: loss is %g and %s norm %g; stopped before the update (%s%s%s)",
                   tr->step + 1, loss, norm_of, norm, saved, ck ? ": " : "", ck ? e2.msg : "");
}

/* Whether a gradient block is finite (a sum of squares in double: a huge but finite
 * gradient, which clipping handles, stays finite). */
static double sum_squares(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
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
    /* the last update zeroed the gradients in AdamW's pass or discarded them
     * (model_grads_discard: the backward writes them anew; gemm_overwrite_slower
     * chooses), which covers them all while the trainable block is every gradient
     * there is (the base's are freed when a LoRA adapter is attached, lora.c); a
     * step that stopped before its update left them as they were */
    if (m->lora && m->grads) die_internal("trainer_step: base gradients beside a LoRA adapter's");
    if (!tr->grads_clear) model_zero_grad(m);
    tr->grads_clear = 0;
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
        model_grads_settle(m); /* before the exchange reads them */
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
    model_grads_settle(m);                                /* the gradients no backward reached are zero */
    float *tparams = model_train_params(m, &tgrads, &tn); /* the adapter alone under LoRA */
    /* clipping's factor is applied inside AdamW's pass (adamw_step_scaled) */
    double norm = grad_norm(tgrads, tn);
    if (!isfinite(loss) || !isfinite(norm)) return nonfinite_stop(tr, loss, norm, "gradient", e);
    /* the task's second model (ppo's value model) updates after this one: a
     * non-finite gradient there stops the run here too, before either model moves */
    if (t->extra_grads && !isfinite(sum_squares(t->extra_grads, t->n_extra_grads)))
        return nonfinite_stop(tr, loss, sqrt(sum_squares(t->extra_grads, t->n_extra_grads)),
                              "extra (value-model) gradient", e);
    double lr = tr->f->lr * lr_lambda(tr->f->scheduler, tr->step, tr->warmup, tr->total_steps);
    float coef = grad_clip_coef(norm, tr->f->clip_grad);
    if (gemm_overwrite_slower()) { /* fp32, AMX: the products add into gradients AdamW's pass zeroes */
        adamw_step_scaled_clear(&tr->opt, tparams, tgrads, (float)lr, coef);
    } else {
        adamw_step_scaled(&tr->opt, tparams, tgrads, (float)lr, coef);
        model_grads_discard(m); /* the next backward writes them anew */
    }
    tr->grads_clear = 1; /* tgrads are every gradient model_zero_grad clears (model_train_params) */
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
    if (metrics_get(&pre, "eval_loss", &el) == 0) train_say(tr, "step %ld: eval_loss %.6f", tr->step, el);
    if (out) *out = pre;
    return 0;
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
        if (sig) train_say(&tr, "%s: writing a checkpoint at step %ld", strsignal(sig), tr.step);
        rc = trainer_checkpoint(&tr, e);
    }
    if (rc == 0 && !stopped_early) {
        if (t->n_eval > 0) rc = trainer_eval(&tr, NULL, e);
        if (rc == 0) rc = trainer_save_final(&tr, e);
        if (rc == 0) {
            double dt = now_seconds() - t_start;
            train_say(&tr, "done: %ld steps, final loss %.6f, %.0f tokens/s, model in %s", tr.step - step_start,
                      last_loss, dt > 0 ? (double)(tr.tokens_seen - tokens_start) / dt : 0.0, f->out_dir);
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
