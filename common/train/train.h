/* train.h — the one training loop every trainer (sft, dpo, rm-train, ppo) shares.
 *
 * A trainer is a TrainTask: a data set of n_train "units" (examples, packed rows,
 * preference pairs...) and two callbacks, weight() and micro_step().  The loop owns
 * everything else: shuffled epochs, micro-batches and gradient accumulation,
 * normalisation, clipping, AdamW, the lr schedule, evaluation, the metrics log, the
 * progress bar, checkpoints, resume, the NaN guard, SIGINT/SIGTERM and the final
 * save.  A trainer therefore looks like:
 *
 *     TrainFlags f;  train_flags_default(&f, "sft");  f.lr = 2e-5;
 *     train_flags_parse(&f, argc, argv, my_opts, "", my_flag_fn, &ctx, my_usage);
 *     ... load model (model_load), read data ...
 *     TrainTask t = {.ctx = &ctx, .model = &model, .tokenizer_dir = f.model_dir,
 *                    .n_train = n, .n_eval = n_eval,
 *                    .weight = my_weight, .micro_step = my_micro_step};
 *     int rc = train_run(&f, &t, &err);      (0, 128+signal, or an error code)
 *
 * NORMALISATION.  The loss of an optimiser step is the SUM of the per-unit losses of
 * all its micro-batches divided by the total weight W of those micro-batches (the
 * loss-bearing tokens for SFT; the pairs for DPO/RM).  The loop asks weight() for
 * every micro-batch of the step first, then calls micro_step(..., scale = 1/W), so
 * every micro-batch's gradient is already divided by the step's W and accumulating
 * them gives exactly the gradient of the whole batch's mean loss.  This is what
 * transformers >= 4.46 does with num_items_in_batch (TRL's SFTTrainer included):
 * the result does not depend on how a batch is split by --grad-accum, unlike a mean
 * of per-micro-batch means, which over-weights tokens of short micro-batches.
 *
 * DATA ORDER.  Epoch e visits the units in the order of a Fisher-Yates shuffle
 * seeded from (seed, e); step k of an epoch takes micro-batches k*grad_accum ...
 * (k+1)*grad_accum - 1 of batch_size units each (the last micro-batch of an epoch
 * may be short, and the last step of an epoch may have fewer micro-batches).  Steps
 * per epoch = ceil(ceil(n_train / batch_size) / grad_accum).  Because the order is
 * a function of (seed, epoch) only, a resumed run sees exactly the batches the
 * uninterrupted run would have.
 *
 * SCHEDULE.  total steps = --max-steps when > 0, else ceil(epochs * steps/epoch);
 * warm-up = --warmup (an integer = steps; a value with a decimal point in [0,1) = a
 * ratio of the total, rounded up as transformers' get_warmup_steps does).  The lr
 * of update s (0-based) is lr * lr_lambda(schedule, s, warmup, total) (optim.h).
 *
 * LOG.  One JSONL record per step: step (updates done), epoch (fractional), loss,
 * lr (of this update), grad_norm (before clipping), tokens_per_s, num_tokens
 * (tokens processed so far), then the task's metrics.  Every step's loss and metrics
 * are computed before that step's update, so the first record describes the
 * initial model.  With --eval, a record {step, epoch, eval_loss, eval_<metric>...}
 * is written before the first update, every --eval-every steps and at the end.
 *
 * CHECKPOINTS, RESUME, SIGNALS AND THE FINAL MODEL: checkpoint.h.
 *
 * DATA PARALLELISM (dist.h; `make MPI=1`, run as `mpirun -np N PROG ...`).  Every
 * rank loads the model and the data and walks the same steps.  W is computed by
 * every rank over the whole step, exactly as one process does.  The units of a step
 * (its micro-batches concatenated in order) are then dealt round-robin: rank r runs
 * units r, r+N, r+2N, ... in micro-batches of at most the step's largest
 * micro-batch size, each with scale = 1/W.  The gradients (and the task's
 * extra_grads) are summed over ranks with one MPI_Allreduce, the metrics (sum,
 * count, tokens) are gathered and added in rank order, so clipping and AdamW see
 * the whole step's gradient on every rank and every rank holds the same weights
 * (checked by hash before every checkpoint and the final save).  Evaluation deals
 * the eval batches the same way (batch b to rank b mod N).  Only rank 0 writes the
 * log, checkpoints and the final model and shows progress; failures and signals
 * are agreed on by all ranks at every step, so they stop together.  --resume needs
 * OUT on a file system every rank sees.  N ranks match one process up to the order
 * of float additions (not bit for bit); the same N gives the same bytes every run.
 *
 * Not for: losses (losses.h, losses_pref.h), model code (model.h), data (data.h). */
#ifndef CHERRY_TRAIN_H
#define CHERRY_TRAIN_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/metrics.h"
#include "base/util.h"
#include "model/model.h"
#include "optim.h"

/* ---- flags shared by every training program ---------------------------------- */
typedef struct TrainFlags {
    const char *prog;              /* program name for messages */
    const char *model_dir;         /* -m/--model DIR (required) */
    const char *out_dir;           /* -o/--out DIR (required) */
    const char *ref_dir;           /* --ref DIR (default: the -m model, where a trainer needs one) */
    double lr;                     /* --lr */
    double epochs;                 /* --epochs (may be fractional) */
    long max_steps;                /* --max-steps; > 0 overrides --epochs */
    int batch_size;                /* --batch-size: units per micro-batch */
    int grad_accum;                /* --grad-accum: micro-batches per update */
    int max_length;                /* --max-length (tokens per sequence / packed row) */
    int max_prompt_length;         /* --max-prompt-length */
    long warmup_steps;             /* --warmup N */
    double warmup_ratio;           /* --warmup 0.x (used when warmup_steps < 0) */
    double weight_decay;           /* --weight-decay */
    double clip_grad;              /* --clip-grad (<= 0: no clipping) */
    LrSchedule scheduler;          /* --lr-scheduler cosine|linear|constant */
    double beta1, beta2, adam_eps; /* --adam-beta1, --adam-beta2, --adam-eps */
    const char *eval_path;         /* --eval FILE */
    long eval_every;               /* --eval-every N (0 = only before and after training) */
    long save_every;               /* --save-every N (0 = no periodic checkpoints) */
    int save_total_limit;          /* --save-total-limit N: keep the newest N checkpoints (0 = all) */
    int save_bf16;                 /* --dtype bf16: final model in BF16 (checkpoints stay F32) */
    int mixed_bf16;                /* --mixed-precision bf16: bf16 matrix products (gemm_set_bf16) */
    int grad_checkpointing;        /* --gradient-checkpointing (model_set_checkpointing) */
    int resume;                    /* --resume */
    long stop_after;               /* --stop-after N: checkpoint and stop after update N (0 = off) */
    uint64_t seed;                 /* --seed */
    const char *log_path;          /* --log FILE */
    int threads;                   /* --threads N (0 = all cores) */
    int progress;                  /* --progress 1, --no-progress 0, default -1 (auto) */
    int quiet;                     /* -q */
    const char *template_name;     /* --template NAME (default "auto") */
    int skip_invalid;              /* --skip-invalid */
    char **inputs;                 /* positional arguments (training data files) */
    int n_inputs;
    /* LoRA (lora.h; engineer "lora"): --lora-rank R (0 = full fine-tuning),
     * --lora-alpha (default 2R), --lora-targets LIST (default: PEFT's per family),
     * --merge (the final model has the adapter folded in), --lora-dropout */
    int lora_rank;
    double lora_alpha;
    const char *lora_targets;
    int lora_merge;
    double lora_dropout; /* --lora-dropout P (default 0; -1 = not given) */
    /* --report-to tensorboard: TensorBoard event files (tbevents.h) in --logging-dir
     * (default OUT-logs: OUT itself is replaced whole by the final model) */
    int report_tensorboard;
    const char *logging_dir;
} TrainFlags;

/* Defaults (transformers TrainingArguments where it has one): lr 5e-5, epochs 3,
 * batch 8, grad-accum 1, max-length 1024, max-prompt-length 512, warmup 0,
 * weight-decay 0, clip-grad 1.0, linear schedule, betas (0.9, 0.999), eps 1e-8,
 * save-every 500, seed 42, template auto.  Trainers change what differs for them
 * (e.g. TRL's SFT lr 2e-5, DPO 1e-6) before parsing. */
void train_flags_default(TrainFlags *f, const char *prog);

/* Option values of the shared long-only flags are TRAIN_OPT_BASE..; a program's own
 * long-only options must use values >= TRAIN_OPT_USER. */
#define TRAIN_OPT_BASE 1000
#define TRAIN_OPT_USER 2000

/* Called for every option the shared set does not know; returns 0 if it handled
 * it, -1 if not (then the usual usage error follows). */
typedef int (*TrainFlagFn)(void *ctx, int opt, const char *arg);

/* Parses argv with getopt_long: the shared flags plus EXTRA (a {0}-terminated
 * option array, may be NULL) and the short options EXTRA_SHORT (e.g. "k:", may be
 * NULL or "").  -h/--help calls usage(stdout) and exits 0; --version prints the
 * version and exits 0; errors print "PROG: ..." and exit 64.  Checks: -m and -o
 * given, numbers in range.  Also applies --threads (gemm_threads_set). */
void train_flags_parse(TrainFlags *f, int argc, char **argv, const struct option *extra, const char *extra_short,
                       TrainFlagFn fn, void *ctx, void (*usage)(FILE *out));
/* Applies the LoRA flags to a freshly loaded model (call before train_run): with
 * --lora-rank, attaches a new adapter (or keeps the adapter the -m directory
 * already has, which must have that rank); without it, an adapter loaded with -m is
 * merged and the whole model is trained.  Prints lora_describe unless -q. */
int train_lora_setup(const TrainFlags *f, Model *m, Error *e);
/* Prints the shared flags' help lines (for a program's usage()). */
void train_flags_usage(FILE *out);

/* ---- the task ----------------------------------------------------------------- */
typedef enum { SPLIT_TRAIN = 0, SPLIT_EVAL = 1 } Split;

typedef struct TrainTask {
    void *ctx;
    Model *model;              /* trained in place; grads enabled by the loop */
    const char *tokenizer_dir; /* tokenizer files copied into checkpoints and the final model */
    long n_train;              /* units in the training set (>= 1) */
    long n_eval;               /* units in the eval set (0 = none) */
    /* What the summed loss of units idx[0..n-1] of SPLIT is divided by (tokens
     * bearing loss for SFT, pairs for DPO).  Must be cheap (no forward pass). */
    double (*weight)(void *ctx, Split split, const int *idx, int n);
    /* Forward (and for SPLIT_TRAIN backward) of units idx[0..n-1]:
     *   - add "loss" to mt as (sum of the units' losses, weight of the units), plus
     *     any other metrics (TRL names), and the processed tokens to mt->tokens;
     *   - for SPLIT_TRAIN, ACCUMULATE into the model's gradients the gradient of
     *     scale * (sum of the units' losses); the loop zeroes gradients once per step.
     *     (With a loss that is a mean over n units, pass d(mean)/d(x) * n * scale.)
     * Returns 0 or a sysexits code with e set. */
    int (*micro_step)(void *ctx, Split split, const int *idx, int n, double scale, Metrics *mt, Error *e);
    /* Optional: writes the model into DIR (an existing, empty directory).  NULL =
     * model_save(model, DIR, tokenizer_dir) (BF16 for the final model when
     * f->save_bf16; a custom saver reads that flag itself). */
    int (*save)(void *ctx, const char *dir, Error *e);
    /* Optional: restores the trained weights from checkpoint directory DIR (as
     * written by save).  NULL = model_load(DIR) copied into model->params. */
    int (*load)(void *ctx, const char *dir, Error *e);
    /* Randomness the task needs (sampling, dropout-like choices): seeded from
     * --seed by the loop, saved in checkpoints and restored on resume. */
    Rng rng;
    /* Optional: gradients outside the model that micro_step also accumulates (ppo's
     * value model).  The loop only sums them over ranks (data parallelism, see
     * above), after the micro-steps and before it returns; the task clips and
     * applies them itself. */
    float *extra_grads;
    size_t n_extra_grads;
} TrainTask;

/* ---- the loop ------------------------------------------------------------------ */
/* Runs the whole training: resume (if asked), epochs, eval, checkpoints, final
 * save into f->out_dir.  Returns 0 on success, 130/143 after SIGINT/SIGTERM (a
 * checkpoint was written), or an error code with e set.  Prints a summary line to
 * stderr unless -q. */
int train_run(const TrainFlags *f, TrainTask *t, Error *e);

/* ---- lower level: for trainers with their own outer loop (ppo) ---------------- */
typedef struct Trainer {
    const TrainFlags *f;
    TrainTask *t;
    AdamW opt;
    long step;        /* updates done */
    long total_steps; /* for the lr schedule and the progress bar */
    long warmup;      /* warm-up steps */
    long steps_per_epoch;
    long tokens_seen;     /* num_tokens */
    long last_checkpoint; /* step of the newest checkpoint written or loaded (-1 = none) */
    MetricsLog log;
    Progress progress;
    int rank, n_ranks; /* data parallelism (dist.h): this process and how many */
    int created_out;   /* OUT did not exist before this run (removed again if left empty) */
    int grads_clear;   /* the last update left every gradient 0: the next step need not clear them */
} Trainer;

/* Sets up the optimiser, the log and the signal handlers; with f->resume loads the
 * newest checkpoint of f->out_dir (model weights, optimiser, RNG, step).
 * total_steps is the length of the lr schedule.  steps_per_epoch (>= 1) is used for
 * the "epoch" field only. */
int trainer_init(Trainer *tr, const TrainFlags *f, TrainTask *t, long total_steps, long steps_per_epoch, Error *e);
/* One optimiser update over n_micro micro-batches (micro-batch j = units
 * idx[j][0..n[j]-1] of the training split): weights, micro-steps, clip, NaN guard,
 * AdamW at the scheduled lr, log record (with EXTRA's metrics appended when not
 * NULL), progress.  Step metrics are returned in *out when not NULL. */
int trainer_step(Trainer *tr, int n_micro, const int *const *idx, const int *n, const Metrics *extra, Metrics *out,
                 Error *e);
/* Evaluates the whole eval split in order (batch_size units per call) and logs
 * an eval record; *out (may be NULL) gets the metrics with "eval_" prefixes. */
int trainer_eval(Trainer *tr, Metrics *out, Error *e);
/* 0, or SIGINT/SIGTERM when one arrived since trainer_init. */
int trainer_stop_signal(void);
/* Closes the log, frees the optimiser, restores signal handlers. */
int trainer_finish(Trainer *tr, Error *e);

/* checkpoints, resume, the final save */
#include "checkpoint.h"

#endif
