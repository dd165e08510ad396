/* metrics.h — named training metrics, the metrics JSONL log, the progress bar.
 *
 * A Metrics value accumulates (sum, count) pairs by name during a step; the value
 * reported is sum / count, so metrics from several micro-batches combine as
 * weighted means (a loss summed over tokens with count = tokens gives the token
 * mean; an accuracy summed over pairs with count = pairs gives the pair mean).
 * Names follow TRL (INTERFACE.md "Metrics"); the order of first use is the order
 * in the log record.
 *
 * The log is JSONL, one object per record, flushed after every record so it can be
 * followed while training runs (`tail -f`).  It is the one output that is not
 * written atomically: a log that only appeared at the end would defeat its purpose.
 * On --resume the records up to the checkpoint's step are kept (later ones, logged
 * by the interrupted run after its last checkpoint, are dropped: the resumed run
 * logs those steps again) and new records are appended.
 * Not for: the training loop itself (train.h). */
#ifndef CHERRY_METRICS_H
#define CHERRY_METRICS_H

#include <stdio.h>

#include "err.h"
#include "tbevents.h"

#define METRICS_MAX 48
#define METRICS_NAME 48

typedef struct Metrics {
    int n;
    char name[METRICS_MAX][METRICS_NAME];
    double sum[METRICS_MAX], count[METRICS_MAX];
    long tokens; /* tokens processed (non-padding, forward passes), for tokens_per_s */
} Metrics;

void metrics_reset(Metrics *m);
/* Adds sum and count to NAME (created on first use; more than METRICS_MAX names is
 * an internal error). */
void metrics_add(Metrics *m, const char *name, double sum, double count);
/* sum / count of NAME into *out; returns 0, or -1 when NAME is absent or count 0. */
int metrics_get(const Metrics *m, const char *name, double *out);
/* Adds every metric of src into dst, names prefixed with PREFIX (may be ""). */
void metrics_merge(Metrics *dst, const Metrics *src, const char *prefix);

/* Metrics log: path NULL = no log. */
typedef struct MetricsLog {
    FILE *fp;
    char *path;
    TbWriter tb; /* TensorBoard event file, when opened */
} MetricsLog;
/* Opens PATH.  keep_through < 0: a new, empty log.  keep_through >= 0: an existing
 * log keeps its records whose "step" is <= keep_through (rewritten atomically),
 * and new records are appended. */
int metrics_log_open(MetricsLog *l, const char *path, long keep_through, Error *e);
/* Writes {"step": step, "epoch": epoch, <head fields>, <metrics...>}: head_names /
 * head_values are plain numbers written first (e.g. loss, lr, grad_norm); then every
 * metric of m as sum/count.  Non-finite values are written as null. */
int metrics_log_write(MetricsLog *l, long step, double epoch, const char *const *head_names, const double *head_values,
                      int n_head, const Metrics *m, Error *e);
/* Also writes every record as TensorBoard scalars (tbevents.h) into a new event file
 * in DIR; works with or without a JSONL path.  Tags: tb_tag(name). */
int metrics_log_open_tensorboard(MetricsLog *l, const char *dir, Error *e);
int metrics_log_close(MetricsLog *l, Error *e);

/* Progress bar on stderr: "step 12/300 | loss 2.3456 | 1234 tok/s | ETA 1:23". */
typedef struct Progress {
    int enabled;
    double t_start;
    long step_start; /* first step of this run (for the ETA after a resume) */
    int shown;
} Progress;
void progress_init(Progress *p, int enabled, long step_start);
void progress_update(Progress *p, long step, long total, double loss, double tokens_per_s);
/* Clears the bar line (so messages that follow start on a clean line). */
void progress_clear(Progress *p);

#endif
