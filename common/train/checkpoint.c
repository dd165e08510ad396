/* checkpoint.c — checkpoints, resume and the final save of the training loop: the
 * CHECKPOINTS and FINAL MODEL parts of train.h's contract.  Not for: the loop
 * itself (train.c), the optimiser's tensors (optim.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/dist.h"
#include "base/outdir.h"
#include "formats/safetensors.h"
#include "model/lora.h"
#include "train_internal.h"

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
int trainer_ranks_same_weights(Trainer *tr, Error *e) {
    if (tr->n_ranks <= 1) return 0;
    int rc = dist_check_same(tr->t->model->params, tr->t->model->n_params, "model weights", e);
    if (rc == 0 && tr->t->model->lora)
        rc = dist_check_same(tr->t->model->lora->params, tr->t->model->lora->n_params, "LoRA adapter", e);
    return dist_agree(rc, e);
}

int trainer_checkpoint(Trainer *tr, Error *e) {
    if (tr->step == tr->last_checkpoint) return 0;
    int rc = trainer_ranks_same_weights(tr, e);
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
        train_say(tr, "saved %s", final);
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

int trainer_resume(Trainer *tr, const char *dir, Error *e) {
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
            train_say(tr, "warning: %s: %s was %lld, now %lld; the resumed run will differ from an uninterrupted one",
                      spath, same[i].name, (long long)json_integer_value(v), same[i].want);
    }
    const char *seed_s = json_string_value(json_object_get(o, "seed"));
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, f->seed);
    if (seed_s && strcmp(seed_s, buf) != 0)
        train_say(tr, "warning: %s: seed was %s, now %s; the data order will differ", spath, seed_s, buf);

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

int checkpoint_dir_has_any(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d))) found = checkpoint_number(de->d_name) >= 0;
    closedir(d);
    return found;
}

/* ---- final model ---------------------------------------------------------------------- */
static int save_final_root(Trainer *tr, Error *e);

int trainer_save_final(Trainer *tr, Error *e) {
    int rc = trainer_ranks_same_weights(tr, e);
    if (rc) return rc;
    if (tr->rank == 0) rc = save_final_root(tr, e);
    return dist_agree(rc, e);
}

/* The final model goes INTO OUT, file by file (atomic_dir_commit_into): the
 * checkpoints in OUT are never moved, so no signal, failure or cleanup during the
 * final save can reach them. */
static int save_final_root(Trainer *tr, Error *e) {
    AtomicDir ad;
    int rc = atomic_dir_begin_into(&ad, tr->f->out_dir, e);
    if (rc) return rc;
    rc = save_model_into(tr, ad.tmp, 1, e);
    if (rc) {
        atomic_dir_abort(&ad);
        return rc;
    }
    return atomic_dir_commit_into(&ad, outdir_is_model_file, e);
}
