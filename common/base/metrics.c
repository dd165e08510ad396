/* metrics.c — named metrics, JSONL log, progress bar.  See metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/time.h>

#include "jsonl.h"
#include "util.h"

void metrics_reset(Metrics *m) {
    memset(m, 0, sizeof *m);
}

static int metrics_find(const Metrics *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->name[i], name)) return i;
    return -1;
}

void metrics_add(Metrics *m, const char *name, double sum, double count) {
    int i = metrics_find(m, name);
    if (i < 0) {
        if (m->n >= METRICS_MAX) die_internal("metrics: more than %d names (adding \"%s\")", METRICS_MAX, name);
        if (strlen(name) >= METRICS_NAME) die_internal("metrics: name too long: \"%s\"", name);
        i = m->n++;
        strcpy(m->name[i], name);
        m->sum[i] = 0;
        m->count[i] = 0;
    }
    m->sum[i] += sum;
    m->count[i] += count;
}

int metrics_get(const Metrics *m, const char *name, double *out) {
    int i = metrics_find(m, name);
    if (i < 0 || m->count[i] == 0) return -1;
    *out = m->sum[i] / m->count[i];
    return 0;
}

void metrics_merge(Metrics *dst, const Metrics *src, const char *prefix) {
    char buf[METRICS_NAME * 2];
    for (int i = 0; i < src->n; i++) {
        snprintf(buf, sizeof buf, "%s%s", prefix, src->name[i]);
        metrics_add(dst, buf, src->sum[i], src->count[i]);
    }
    dst->tokens += src->tokens;
}

/* Keeps the records of PATH with step <= keep_through (see metrics.h). */
static int metrics_log_trim(const char *path, long keep_through, Error *e) {
    char *text = NULL;
    size_t len = 0;
    if (!file_exists(path)) return 0;
    int rc = read_file(path, &text, &len, e);
    if (rc) return rc;
    AtomicFile af;
    rc = atomic_open(&af, path, e);
    if (rc) {
        free(text);
        return rc;
    }
    char *line = text;
    while (line < text + len) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        json_error_t je;
        json_t *o = json_loadb(line, n, 0, &je);
        json_t *st = o ? json_object_get(o, "step") : NULL;
        if (json_is_integer(st) && json_integer_value(st) <= keep_through) {
            fwrite(line, 1, n, af.fp);
            fputc('\n', af.fp);
        }
        json_decref(o);
        line += n + 1;
    }
    free(text);
    return atomic_commit(&af, e);
}

int metrics_log_open(MetricsLog *l, const char *path, long keep_through, Error *e) {
    memset(l, 0, sizeof *l);
    if (!path) return 0;
    if (keep_through >= 0) {
        int rc = metrics_log_trim(path, keep_through, e);
        if (rc) return rc;
    }
    l->fp = fopen(path, keep_through >= 0 ? "a" : "w");
    if (!l->fp) return err_set(e, EX_CANTCREAT, "%s: cannot create: %s", path, strerror(errno));
    l->path = xstrdup(path);
    return 0;
}

static json_t *json_num(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

int metrics_log_open_tensorboard(MetricsLog *l, const char *dir, Error *e) {
    return tb_open(&l->tb, dir, e);
}

static double wall_seconds(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

/* The record as TensorBoard scalars: head values and metrics (epoch too, as the
 * transformers callback logs train/epoch). */
static int metrics_log_tb(MetricsLog *l, long step, double epoch, const char *const *head_names,
                          const double *head_values, int n_head, const Metrics *m, Error *e) {
    int cap = 1 + n_head + (m ? m->n : 0), k = 0;
    char(*tags)[METRICS_NAME + 8] = xmalloc((size_t)cap * sizeof *tags);
    const char **tp = xmalloc((size_t)cap * sizeof *tp);
    double *v = xmalloc((size_t)cap * sizeof *v);
    int eval_only = m && m->n > 0 && strncmp(m->name[0], "eval_", 5) == 0;
    if (!eval_only) {
        tb_tag("epoch", tags[k], sizeof tags[k]);
        v[k++] = epoch;
    }
    for (int i = 0; i < n_head; i++) {
        tb_tag(head_names[i], tags[k], sizeof tags[k]);
        v[k++] = head_values[i];
    }
    for (int i = 0; m && i < m->n; i++)
        if (m->count[i] != 0) {
            tb_tag(m->name[i], tags[k], sizeof tags[k]);
            v[k++] = m->sum[i] / m->count[i];
        }
    for (int i = 0; i < k; i++) tp[i] = tags[i];
    int rc = tb_write_scalars(&l->tb, step, wall_seconds(), tp, v, k, e);
    free(tags), free(tp), free(v);
    return rc;
}

int metrics_log_write(MetricsLog *l, long step, double epoch, const char *const *head_names, const double *head_values,
                      int n_head, const Metrics *m, Error *e) {
    if (l->tb.fp) {
        int rc = metrics_log_tb(l, step, epoch, head_names, head_values, n_head, m, e);
        if (rc) return rc;
    }
    if (!l->fp) return 0;
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "epoch", json_num(epoch));
    for (int i = 0; i < n_head; i++) json_object_set_new(o, head_names[i], json_num(head_values[i]));
    if (m)
        for (int i = 0; i < m->n; i++)
            if (m->count[i] != 0) json_object_set_new(o, m->name[i], json_num(m->sum[i] / m->count[i]));
    int rc = jsonl_write(l->fp, o, e);
    json_decref(o);
    if (rc) return rc;
    if (fflush(l->fp) != 0) return err_set(e, EX_IOERR, "%s: write error: %s", l->path, strerror(errno));
    return 0;
}

int metrics_log_close(MetricsLog *l, Error *e) {
    int rc = 0;
    if (l->fp && fclose(l->fp) != 0) rc = err_set(e, EX_IOERR, "%s: write error: %s", l->path, strerror(errno));
    Error e2;
    if (tb_close(&l->tb, &e2) && rc == 0) {
        *e = e2;
        rc = e2.code;
    }
    free(l->path);
    memset(l, 0, sizeof *l);
    return rc;
}

void progress_init(Progress *p, int enabled, long step_start) {
    p->enabled = enabled;
    p->t_start = now_seconds();
    p->step_start = step_start;
    p->shown = 0;
}

void progress_update(Progress *p, long step, long total, double loss, double tokens_per_s) {
    if (!p->enabled) return;
    double el = now_seconds() - p->t_start;
    long done = step - p->step_start;
    char eta[32] = "?";
    if (done > 0) {
        long s = (long)(el / done * (double)(total - step) + 0.5);
        if (s >= 3600)
            snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
        else
            snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    fprintf(stderr, "\r\033[Kstep %ld/%ld | loss %.4f | %.0f tok/s | ETA %s", step, total, loss, tokens_per_s, eta);
    fflush(stderr);
    p->shown = 1;
}

void progress_clear(Progress *p) {
    if (!p->enabled || !p->shown) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
    p->shown = 0;
}
