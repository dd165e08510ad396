/* test_losses.c — the SFT loss and sequence sums (losses.h), the metrics
 * accumulator and log (metrics.h) and the shared flag parser (train_flags.c), with
 * hand-computed values.  Small and allocation-heavy on purpose: it also runs under
 * ASan+UBSan (the loop itself is tested in test_train_loop.c). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "train/losses.h"
#include "base/metrics.h"
#include "train/train.h"
#include "base/util.h"

static void test_sft_loss(void) {
    /* rows 0 and 3 bear no loss */
    float logp[5] = {0.0f, -1.0f, -0.5f, 0.0f, -2.0f};
    int targets[5] = {-1, 7, 3, -1, 9};
    float dlogp[5] = {9, 9, 9, 9, 9};
    long n = 0;
    double loss = sft_loss(logp, targets, 5, 0.25, dlogp, &n);
    CHECK(fabs(loss - 3.5) < 1e-12, "loss sum expected 3.5 got %.12g", loss);
    CHECK(n == 3, "loss tokens expected 3 got %ld", n);
    float want[5] = {0, -0.25f, -0.25f, 0, -0.25f};
    for (int i = 0; i < 5; i++) CHECK(dlogp[i] == want[i], "dlogp[%d] expected %g got %g", i, want[i], dlogp[i]);
    /* evaluation: no gradient buffer */
    double l2 = sft_loss(logp, targets, 5, 1.0, NULL, NULL);
    CHECK(l2 == loss, "sft_loss without dlogp expected %g got %g", loss, l2);
    /* finite difference: d(scale * loss_sum)/d logp[1] = dlogp[1] */
    float lp2[5];
    memcpy(lp2, logp, sizeof lp2);
    lp2[1] += 1e-3f;
    double fd = (0.25 * sft_loss(lp2, targets, 5, 0.25, NULL, NULL) - 0.25 * loss) / 1e-3;
    CHECK(fabs(fd - dlogp[1]) < 1e-3, "finite difference expected %g got %g", dlogp[1], fd);
}

static void test_token_correct(void) {
    int pred[6] = {1, 2, 3, 4, 5, 6};
    int tgt[6] = {1, -1, 0, 4, 5, -1};
    CHECK(token_correct(pred, tgt, 6) == 3, "token_correct expected 3 got %ld", token_correct(pred, tgt, 6));
}

static void test_seq_sums(void) {
    /* two sequences in a [2,4] batch; row 0 of each has no target */
    float logp[8] = {0, -1, -2, 0, 0, -0.5f, -0.25f, -4};
    int tg[8] = {-1, 5, 6, -1, -1, 1, 2, 3};
    int start[2] = {0, 4}, len[2] = {4, 4}, cnt[2];
    double out[2];
    seq_logp_sum(logp, tg, start, len, 2, out, cnt);
    CHECK(out[0] == -3.0 && out[1] == -4.75, "seq sums expected [-3, -4.75] got [%g, %g]", out[0], out[1]);
    CHECK(cnt[0] == 2 && cnt[1] == 3, "seq counts expected [2, 3] got [%d, %d]", cnt[0], cnt[1]);
    float d[8] = {0};
    double dseq[2] = {0.5, -2};
    seq_logp_sum_backward(dseq, tg, start, len, 2, d);
    float want[8] = {0, 0.5f, 0.5f, 0, 0, -2, -2, -2};
    for (int i = 0; i < 8; i++) CHECK(d[i] == want[i], "dlogp[%d] expected %g got %g", i, want[i], d[i]);
}

static void test_metrics(void) {
    Metrics m, n;
    metrics_reset(&m);
    metrics_add(&m, "loss", 6.0, 3.0);
    metrics_add(&m, "acc", 1.0, 4.0);
    metrics_add(&m, "loss", 2.0, 1.0);
    double v;
    CHECK(metrics_get(&m, "loss", &v) == 0 && v == 2.0, "loss expected (6+2)/(3+1) = 2 got %g", v);
    CHECK(metrics_get(&m, "nope", &v) == -1, "absent metric should be -1");
    metrics_reset(&n);
    m.tokens = 10;
    metrics_merge(&n, &m, "eval_");
    CHECK(metrics_get(&n, "eval_acc", &v) == 0 && v == 0.25, "eval_acc expected 0.25 got %g", v);
    CHECK(n.tokens == 10, "merged tokens expected 10 got %ld", n.tokens);
    CHECK(!strcmp(n.name[0], "eval_loss"), "merge keeps order: first expected eval_loss got %s", n.name[0]);

    char path[128];
    snprintf(path, sizeof path, "/tmp/test_losses.%ld.jsonl", (long)getpid());
    MetricsLog l;
    Error e;
    CHECK(metrics_log_open(&l, path, -1, &e) == 0, "metrics_log_open: %s", e.msg);
    const char *names[] = {"loss", "grad_norm"};
    double vals[] = {1.5, NAN};
    CHECK(metrics_log_write(&l, 3, 0.5, names, vals, 2, &m, &e) == 0, "metrics_log_write: %s", e.msg);
    CHECK(metrics_log_close(&l, &e) == 0, "metrics_log_close: %s", e.msg);
    char *text = NULL;
    size_t len;
    CHECK(read_file(path, &text, &len, &e) == 0, "read log: %s", e.msg);
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    CHECK(o != NULL, "log line is not JSON: %s", text ? text : "(none)");
    if (o) {
        CHECK(json_integer_value(json_object_get(o, "step")) == 3, "step expected 3");
        CHECK(json_is_null(json_object_get(o, "grad_norm")), "NaN grad_norm expected null");
        CHECK(json_number_value(json_object_get(o, "acc")) == 0.25, "acc expected 0.25");
        CHECK(text[len - 1] == '\n', "record should end with a newline");
        json_decref(o);
    }
    free(text);
    text = NULL;
    /* resume: records after the checkpoint step are dropped, new ones appended */
    CHECK(metrics_log_open(&l, path, -1, &e) == 0, "metrics_log_open: %s", e.msg);
    for (long s = 1; s <= 4; s++) metrics_log_write(&l, s, 0, names, vals, 1, NULL, &e);
    metrics_log_close(&l, &e);
    CHECK(metrics_log_open(&l, path, 2, &e) == 0, "metrics_log_open(keep 2): %s", e.msg);
    metrics_log_write(&l, 3, 0, names, vals, 1, NULL, &e);
    metrics_log_close(&l, &e);
    CHECK(read_file(path, &text, &len, &e) == 0, "read log: %s", e.msg);
    const char *want = "{\"step\":1,\"epoch\":0.0,\"loss\":1.5}\n{\"step\":2,\"epoch\":0.0,\"loss\":1.5}\n"
                       "{\"step\":3,\"epoch\":0.0,\"loss\":1.5}\n";
    CHECK(text && !strcmp(text, want), "trimmed log expected:\n%sgot:\n%s", want, text ? text : "(none)");
    free(text);
    unlink(path);
}

static void test_flags(void) {
    char *argv1[] = {"x",       "-m",
                     "M",       "-o",
                     "O",       "--warmup",
                     "0.1",     "--lr",
                     "3e-4",    "--lr-scheduler",
                     "cosine",  "--batch-size",
                     "4",       "--grad-accum",
                     "2",       "--no-progress",
                     "--seed",  "9",
                     "a.jsonl", "b.jsonl",
                     NULL};
    TrainFlags f;
    train_flags_default(&f, "x");
    optind = 1;
    train_flags_parse(&f, 20, argv1, NULL, NULL, NULL, NULL, NULL);
    CHECK(!strcmp(f.model_dir, "M") && !strcmp(f.out_dir, "O"), "-m/-o not parsed");
    CHECK(f.warmup_steps == -1 && fabs(f.warmup_ratio - 0.1) < 1e-15, "--warmup 0.1 should be a ratio (got %ld, %g)",
          f.warmup_steps, f.warmup_ratio);
    CHECK(f.lr == 3e-4 && f.scheduler == SCHED_COSINE && f.batch_size == 4 && f.grad_accum == 2, "numbers not parsed");
    CHECK(f.progress == 0 && f.seed == 9, "--no-progress / --seed not parsed");
    CHECK(f.n_inputs == 2 && !strcmp(f.inputs[0], "a.jsonl") && !strcmp(f.inputs[1], "b.jsonl"),
          "inputs expected [a.jsonl, b.jsonl], got %d", f.n_inputs);
    char *argv2[] = {"x", "--model", "M", "--out", "O", "--warmup", "5", NULL};
    train_flags_default(&f, "x");
    optind = 1;
    train_flags_parse(&f, 7, argv2, NULL, NULL, NULL, NULL, NULL);
    CHECK(f.warmup_steps == 5 && f.warmup_ratio == 0, "--warmup 5 should be steps (got %ld, %g)", f.warmup_steps,
          f.warmup_ratio);
    CHECK(f.n_inputs == 0, "no inputs expected, got %d", f.n_inputs);
}

int main(void) {
    test_sft_loss();
    test_token_correct();
    test_seq_sums();
    test_metrics();
    test_flags();
    return check_summary("test_losses");
}
