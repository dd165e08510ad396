/* train_flags.c — the command-line flags every training program shares.  See
 * train.h (TrainFlags).  One table, so --lr or --warmup mean the same thing in sft,
 * dpo, rm-train and ppo. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/dist.h"
#include "base/outdir.h"
#include "kernels/gemm.h"
#include "model/lora.h"
#include "train.h"

enum {
    TF_VERSION = TRAIN_OPT_BASE,
    TF_REF,
    TF_LR,
    TF_EPOCHS,
    TF_MAX_STEPS,
    TF_BATCH,
    TF_ACCUM,
    TF_MAXLEN,
    TF_MAXPROMPT,
    TF_WARMUP,
    TF_WD,
    TF_CLIP,
    TF_SCHED,
    TF_BETA1,
    TF_BETA2,
    TF_EPS,
    TF_EVAL,
    TF_EVAL_EVERY,
    TF_SAVE_EVERY,
    TF_RESUME,
    TF_STOP_AFTER,
    TF_SEED,
    TF_LOG,
    TF_THREADS,
    TF_PROGRESS,
    TF_NO_PROGRESS,
    TF_TEMPLATE,
    TF_SKIP_INVALID,
    TF_SAVE_LIMIT,
    TF_DTYPE,
    TF_MIXED,
    TF_LORA_RANK,
    TF_LORA_ALPHA,
    TF_LORA_TARGETS,
    TF_MERGE,
    TF_LORA_DROPOUT,
    TF_FORCE,
    TF_REPORT_TO,
    TF_LOGGING_DIR,
    TF_GRAD_CKPT,
    TF_ATTN_IMPL,
};

static const struct option shared_opts[] = {
    {"help", no_argument, 0, 'h'},
    {"model", required_argument, 0, 'm'},
    {"out", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"version", no_argument, 0, TF_VERSION},
    {"ref", required_argument, 0, TF_REF},
    {"lr", required_argument, 0, TF_LR},
    {"epochs", required_argument, 0, TF_EPOCHS},
    {"max-steps", required_argument, 0, TF_MAX_STEPS},
    {"batch-size", required_argument, 0, TF_BATCH},
    {"grad-accum", required_argument, 0, TF_ACCUM},
    {"max-length", required_argument, 0, TF_MAXLEN},
    {"max-prompt-length", required_argument, 0, TF_MAXPROMPT},
    {"warmup", required_argument, 0, TF_WARMUP},
    {"weight-decay", required_argument, 0, TF_WD},
    {"clip-grad", required_argument, 0, TF_CLIP},
    {"lr-scheduler", required_argument, 0, TF_SCHED},
    {"adam-beta1", required_argument, 0, TF_BETA1},
    {"adam-beta2", required_argument, 0, TF_BETA2},
    {"adam-eps", required_argument, 0, TF_EPS},
    {"eval", required_argument, 0, TF_EVAL},
    {"eval-every", required_argument, 0, TF_EVAL_EVERY},
    {"save-every", required_argument, 0, TF_SAVE_EVERY},
    {"resume", no_argument, 0, TF_RESUME},
    {"stop-after", required_argument, 0, TF_STOP_AFTER},
    {"seed", required_argument, 0, TF_SEED},
    {"log", required_argument, 0, TF_LOG},
    {"threads", required_argument, 0, TF_THREADS},
    {"progress", no_argument, 0, TF_PROGRESS},
    {"no-progress", no_argument, 0, TF_NO_PROGRESS},
    {"template", required_argument, 0, TF_TEMPLATE},
    {"skip-invalid", no_argument, 0, TF_SKIP_INVALID},
    {"save-total-limit", required_argument, 0, TF_SAVE_LIMIT},
    {"dtype", required_argument, 0, TF_DTYPE},
    {"mixed-precision", required_argument, 0, TF_MIXED},
    {"lora-rank", required_argument, 0, TF_LORA_RANK},
    {"lora-alpha", required_argument, 0, TF_LORA_ALPHA},
    {"lora-targets", required_argument, 0, TF_LORA_TARGETS},
    {"merge", no_argument, 0, TF_MERGE},
    {"lora-dropout", required_argument, 0, TF_LORA_DROPOUT},
    {"force", no_argument, 0, TF_FORCE},
    {"report-to", required_argument, 0, TF_REPORT_TO},
    {"logging-dir", required_argument, 0, TF_LOGGING_DIR},
    {"gradient-checkpointing", no_argument, 0, TF_GRAD_CKPT},
    {"attn-implementation", required_argument, 0, TF_ATTN_IMPL},
};

void train_flags_default(TrainFlags *f, const char *prog) {
    memset(f, 0, sizeof *f);
    f->prog = prog;
    f->lr = 5e-5;
    f->epochs = 3;
    f->batch_size = 8;
    f->grad_accum = 1;
    f->max_length = 1024;
    f->max_prompt_length = 512;
    f->warmup_steps = 0;
    f->warmup_ratio = 0;
    f->weight_decay = 0;
    f->clip_grad = 1.0;
    f->scheduler = SCHED_LINEAR;
    f->beta1 = ADAMW_BETA1;
    f->beta2 = ADAMW_BETA2;
    f->adam_eps = ADAMW_EPS;
    f->save_every = 500;
    f->seed = 42;
    f->progress = -1;
    f->template_name = "auto";
    f->lora_dropout = -1;
}

void train_flags_usage(FILE *out) {
    fputs("Training options (shared by sft, dpo, rm-train, ppo):\n"
          "  -m, --model DIR          model to start from (HF directory)\n"
          "  -o, --out DIR            output model directory (checkpoints in DIR/checkpoint-N); an existing\n"
          "                           DIR is used only if cherry wrote it (a model or checkpoints)\n"
          "      --force              write into an existing -o directory whatever else it holds\n"
          "      --ref DIR            reference model (default: the -m model)\n"
          "      --lr X               peak learning rate\n"
          "      --epochs X           passes over the data (default 3; may be fractional)\n"
          "      --max-steps N        optimiser updates (overrides --epochs)\n"
          "      --batch-size N       examples per micro-batch (default 8)\n"
          "      --grad-accum N       micro-batches per update (default 1)\n"
          "      --max-length N       tokens per sequence (default 1024)\n"
          "      --max-prompt-length N  prompt tokens kept (default 512)\n"
          "      --warmup N|R         warm-up steps, or ratio of the total when R has a '.' (default 0)\n"
          "      --weight-decay X     AdamW decoupled weight decay (default 0)\n"
          "      --clip-grad X        clip the global gradient norm to X (default 1; 0 = off)\n"
          "      --lr-scheduler S     linear|cosine|constant, after warm-up (default linear)\n"
          "      --adam-beta1 X, --adam-beta2 X, --adam-eps X   (defaults 0.9, 0.999, 1e-8)\n"
          "      --eval FILE          evaluation data\n"
          "      --eval-every N       evaluate every N updates (default: before and after)\n"
          "      --save-every N       checkpoint every N updates (default 500; 0 = never)\n"
          "      --save-total-limit N keep only the newest N checkpoints (default 0 = all)\n"
          "      --dtype T            f32 (default) or bf16 weights in the final model\n"
          "      --mixed-precision P  no (default) or bf16: bf16 matrix products, fp32 weights and sums\n"
          "      --gradient-checkpointing  keep only each block's input; recompute the block in backward\n"
          "                           (less memory, about one more forward; same results bit for bit)\n"
          "      --attn-implementation A  auto (default: fused from 128 tokens on), eager (T x T\n"
          "                           probabilities kept)\n"
          "                           or flash (fused, FlashAttention)\n"
          "      --resume             continue from the newest DIR/checkpoint-N\n"
          "      --stop-after N       checkpoint and stop after update N (no final model)\n"
          "      --seed N             data order and initialisation (default 42)\n"
          "      --log FILE           metrics JSONL, one record per update\n"
          "      --report-to LIST     also log to: tensorboard, or none (default none)\n"
          "      --logging-dir DIR    TensorBoard event files (default OUT-logs)\n"
          "      --threads N          threads (default: all cores)\n"
          "      --progress, --no-progress   progress bar on stderr (default: if a terminal)\n"
          "  -q, --quiet              no messages except errors\n"
          "      --lora-rank R        train a LoRA adapter of rank R instead of all weights (default 0 = off)\n"
          "      --lora-alpha X       LoRA scale alpha/R (default 2R)\n"
          "      --lora-targets LIST  adapted layers, e.g. q,k,v,o,gate,up,down, c_attn, all-linear\n"
          "                           (default: PEFT's, q_proj,v_proj for llama, c_attn for gpt2)\n"
          "      --lora-dropout P     dropout on the adapter input while training (default 0)\n"
          "      --merge              write the adapter merged into a full model (default: adapter directory)\n"
          "      --template NAME      chat template: auto|plain|hh|chatml|llama3 (default auto)\n"
          "      --skip-invalid       skip bad data lines (and count them) instead of stopping\n"
          "  -h, --help               this help\n"
          "      --version            version\n",
          out);
}

/* The optimisation flags: data sizes, steps, learning rate and its schedule, AdamW.
 * Returns 1 when C is one of them. */
static int optimisation_flag(TrainFlags *f, const char *prog, int c, const char *a) {
    switch (c) {
    case TF_LR:
        f->lr = cli_double_in(prog, "--lr", a, 0, 0, INFINITY, 0);
        return 1;
    case TF_EPOCHS:
        f->epochs = cli_double_in(prog, "--epochs", a, 0, 1, INFINITY, 0);
        return 1;
    case TF_MAX_STEPS:
        f->max_steps = (long)cli_ll_min(prog, "--max-steps", a, 0);
        return 1;
    case TF_BATCH:
        f->batch_size = cli_int_min(prog, "--batch-size", a, 1);
        return 1;
    case TF_ACCUM:
        f->grad_accum = cli_int_min(prog, "--grad-accum", a, 1);
        return 1;
    case TF_MAXLEN:
        f->max_length = cli_int_min(prog, "--max-length", a, 1);
        return 1;
    case TF_MAXPROMPT:
        f->max_prompt_length = cli_int_min(prog, "--max-prompt-length", a, 1);
        return 1;
    case TF_WARMUP:
        if (strpbrk(a, ".eE")) {
            f->warmup_ratio = cli_double(prog, "--warmup", a);
            if (f->warmup_ratio < 0 || f->warmup_ratio >= 1)
                cli_usage_error(prog, "--warmup: a ratio must be in [0, 1), got '%s'", a);
            f->warmup_steps = -1;
        } else {
            f->warmup_steps = (long)cli_ll_min(prog, "--warmup", a, 0);
            f->warmup_ratio = 0;
        }
        return 1;
    case TF_WD:
        f->weight_decay = cli_double_in(prog, "--weight-decay", a, 0, 0, INFINITY, 0);
        return 1;
    case TF_CLIP:
        f->clip_grad = cli_double(prog, "--clip-grad", a);
        return 1;
    case TF_SCHED: {
        int s = lr_schedule_parse(a);
        if (s < 0) cli_usage_error(prog, "--lr-scheduler: expected linear, cosine or constant, got '%s'", a);
        f->scheduler = (LrSchedule)s;
        return 1;
    }
    case TF_BETA1:
    case TF_BETA2: {
        double b = cli_double_in(prog, c == TF_BETA1 ? "--adam-beta1" : "--adam-beta2", a, 0, 0, 1, 1);
        if (c == TF_BETA1)
            f->beta1 = b;
        else
            f->beta2 = b;
        return 1;
    }
    case TF_EPS:
        f->adam_eps = cli_double_in(prog, "--adam-eps", a, 0, 1, INFINITY, 0);
        return 1;
    }
    return 0;
}

/* The LoRA flags. Returns 1 when C is one of them. */
static int lora_flag(TrainFlags *f, const char *prog, int c, const char *a) {
    switch (c) {
    case TF_LORA_RANK:
        f->lora_rank = cli_int_min(prog, "--lora-rank", a, 0);
        return 1;
    case TF_LORA_ALPHA:
        f->lora_alpha = cli_double_in(prog, "--lora-alpha", a, 0, 1, INFINITY, 0);
        return 1;
    case TF_LORA_TARGETS:
        f->lora_targets = a;
        return 1;
    case TF_MERGE:
        f->lora_merge = 1;
        return 1;
    case TF_LORA_DROPOUT:
        f->lora_dropout = cli_double_in(prog, "--lora-dropout", a, 0, 0, 1, 1);
        return 1;
    }
    return 0;
}

/* The flags of the run: reference, evaluation, checkpoints, seed, log, threads, data.
 * Returns 1 when C is one of them. */
static int run_flag(TrainFlags *f, const char *prog, int c, const char *a) {
    switch (c) {
    case TF_REF:
        f->ref_dir = a;
        return 1;
    case TF_EVAL:
        f->eval_path = a;
        return 1;
    case TF_EVAL_EVERY:
        f->eval_every = (long)cli_ll_min(prog, "--eval-every", a, 0);
        return 1;
    case TF_SAVE_EVERY:
        f->save_every = (long)cli_ll_min(prog, "--save-every", a, 0);
        return 1;
    case TF_SAVE_LIMIT:
        f->save_total_limit = cli_int_min(prog, "--save-total-limit", a, 0);
        return 1;
    case TF_DTYPE:
        f->save_bf16 = cli_choice(prog, "--dtype", a, (const char *const[]){"f32", "bf16", NULL});
        return 1;
    case TF_RESUME:
        f->resume = 1;
        return 1;
    case TF_STOP_AFTER:
        f->stop_after = (long)cli_ll_min(prog, "--stop-after", a, 0);
        return 1;
    case TF_SEED:
        f->seed = cli_u64(prog, "--seed", a);
        return 1;
    case TF_LOG:
        f->log_path = a;
        return 1;
    case TF_FORCE:
        outdir_set_force(1);
        return 1;
    case TF_REPORT_TO: /* transformers' report_to: a comma list of integrations */
        f->report_tensorboard = 0;
        for (const char *p = a; *p;) {
            size_t n = strcspn(p, ",");
            if (n == 11 && strncmp(p, "tensorboard", 11) == 0)
                f->report_tensorboard = 1;
            else if (!(n == 4 && strncmp(p, "none", 4) == 0))
                cli_usage_error(prog, "--report-to: unknown '%.*s' (expected tensorboard or none)", (int)n, p);
            p += n;
            if (*p == ',') p++;
        }
        return 1;
    case TF_LOGGING_DIR:
        f->logging_dir = a;
        return 1;
    case TF_THREADS:
        f->threads = cli_int_min(prog, "--threads", a, 0);
        return 1;
    case TF_MIXED:
        /* torch.autocast(bfloat16) for the matrix products (kernels/gemm.h); named as
         * accelerate's mixed_precision because --dtype is the saved weights' type */
        f->mixed_bf16 = cli_choice(prog, "--mixed-precision", a, (const char *const[]){"no", "bf16", NULL});
        return 1;
    case TF_GRAD_CKPT:
        /* transformers' gradient_checkpointing; for every model the program trains */
        f->grad_checkpointing = 1;
        model_set_checkpointing(1);
        return 1;
    case TF_ATTN_IMPL: { /* TRL ModelConfig.attn_implementation */
        int k = cli_choice(prog, "--attn-implementation", a, (const char *const[]){"auto", "eager", "flash", NULL});
        model_set_flash_attention(k == 0 ? -1 : k == 2);
        return 1;
    }
    case TF_PROGRESS:
        f->progress = 1;
        return 1;
    case TF_NO_PROGRESS:
        f->progress = 0;
        return 1;
    case TF_TEMPLATE:
        f->template_name = a;
        return 1;
    case TF_SKIP_INVALID:
        f->skip_invalid = 1;
        return 1;
    }
    return 0;
}

void train_flags_parse(TrainFlags *f, int argc, char **argv, const struct option *extra, const char *extra_short,
                       TrainFlagFn fn, void *ctx, void (*usage)(FILE *out)) {
    const char *prog = f->prog;
    size_t n_shared = sizeof shared_opts / sizeof shared_opts[0], n_extra = 0;
    while (extra && extra[n_extra].name) n_extra++;
    struct option *opts = xcalloc(n_shared + n_extra + 1, sizeof *opts);
    memcpy(opts, shared_opts, sizeof shared_opts);
    if (n_extra) memcpy(opts + n_shared, extra, n_extra * sizeof *opts);
    char shortopts[128];
    snprintf(shortopts, sizeof shortopts, "hm:o:q%s", extra_short ? extra_short : "");
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        const char *a = optarg;
        if (optimisation_flag(f, prog, c, a) || lora_flag(f, prog, c, a) || run_flag(f, prog, c, a)) continue;
        switch (c) {
        case 'h':
            cli_help(usage);
        case TF_VERSION:
            cli_version(prog);
        case 'm':
            f->model_dir = a;
            break;
        case 'o':
            f->out_dir = a;
            break;
        case 'q':
            f->quiet = 1;
            break;
        case '?':
            if (optopt)
                cli_usage_error(prog, "unknown option or missing value: -%c", optopt);
            else
                cli_usage_error(prog, "unknown option or missing value: %s", argv[optind - 1]);
        default:
            if (!fn || fn(ctx, c, a) != 0) cli_usage_error(prog, "unhandled option");
        }
    }
    free(opts);
    if (!f->model_dir) cli_usage_error(prog, "-m/--model DIR is required");
    if (!f->out_dir) cli_usage_error(prog, "-o/--out DIR is required");
    if (!f->lora_rank && (f->lora_alpha > 0 || f->lora_targets || f->lora_dropout > 0))
        cli_usage_error(prog, "--lora-alpha, --lora-targets and --lora-dropout need --lora-rank R");
    if (f->lora_targets) {
        LoraConfig lc;
        Error le;
        if (lora_targets_parse(&lc, f->lora_targets, &le)) cli_usage_error(prog, "%s", le.msg);
    }
    f->inputs = argv + optind;
    f->n_inputs = argc - optind;
    gemm_threads_set(f->threads);
    Error me;
    if (f->mixed_bf16 && gemm_set_bf16(1, &me)) err_die(prog, &me);
    /* Data parallelism (dist.h): under an MPI launcher every rank parses the same
     * flags; only rank 0 talks (notes, progress) and writes outputs (train.h). */
    Error de;
    if (dist_init(&de)) err_die(prog, &de);
    if (!dist_is_root()) {
        f->quiet = 1;
        f->progress = 0;
    }
}

int train_lora_setup(const TrainFlags *f, Model *m, Error *e) {
    char desc[512];
    if (f->lora_rank == 0) {
        if (m->lora) {
            lora_merge(m); /* an adapter given as -m: train the merged model */
            if (!f->quiet) fprintf(stderr, "%s: %s: adapter merged; training all weights\n", f->prog, f->model_dir);
        }
        return 0;
    }
    if (m->lora) { /* continue training the adapter of the -m directory */
        if (m->lora->cfg.rank != f->lora_rank)
            return err_set(e, EX_USAGE, "--lora-rank %d: %s holds an adapter of rank %d", f->lora_rank, f->model_dir,
                           m->lora->cfg.rank);
        if (f->lora_alpha > 0 || f->lora_targets)
            return err_set(e, EX_USAGE,
                           "--lora-alpha/--lora-targets: %s already holds an adapter (they come from its "
                           "adapter_config.json)",
                           f->model_dir);
    } else {
        LoraConfig lc;
        lora_config_default(&lc, f->lora_rank);
        if (f->lora_alpha > 0) lc.alpha = (float)f->lora_alpha;
        if (f->lora_dropout >= 0) lc.dropout = (float)f->lora_dropout;
        if (f->lora_targets) {
            int rc = lora_targets_parse(&lc, f->lora_targets, e);
            if (rc) return rc;
        }
        /* base_model_name_or_path: an absolute path, so the adapter loads from anywhere */
        char *abs = realpath(f->model_dir, NULL);
        int rc = lora_attach(m, &lc, abs ? abs : f->model_dir, f->seed, e);
        free(abs);
        if (rc) return rc;
    }
    if (f->lora_dropout >= 0) m->lora->cfg.dropout = (float)f->lora_dropout; /* not part of the adapter's function */
    if (!f->quiet) {
        lora_describe(m, desc, sizeof desc);
        fprintf(stderr, "%s: %s\n", f->prog, desc);
    }
    return 0;
}
