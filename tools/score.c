/* score — rewards from a reward model added to JSONL records.
 *
 * prompt-completion and rollout records get "reward"; preference records get
 * "chosen_reward" and "rejected_reward".  The reward of a sequence (prompt +
 * completion, tokenized as for training) is the score head at its last non-pad token,
 * as transformers' *ForSequenceClassification reads it (prefbatch.h).  Records are
 * processed in batches of --batch-size and written as they are done (streaming).
 * --accuracy (pairs) prints {"accuracy", "pairs", "mean_margin"} as one JSON line on
 * stdout; then the annotated records are written only when -o is given. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data.h"
#include "gemm.h"
#include "model.h"
#include "prefbatch.h"
#include "recbatch.h"
#include "tokenizer.h"
#include "util.h"

static const char *PROG = "score";

static void usage(FILE *out) {
    fputs("Usage: score -m REWARD_MODEL [-o OUT] [options] [FILE.jsonl ...]\n"
          "Adds rewards to JSONL records (stdin when no file): \"reward\" for prompt-completion\n"
          "and rollout records, \"chosen_reward\" and \"rejected_reward\" for preference pairs.\n"
          "\n"
          "  -m, --model DIR          reward model (*ForSequenceClassification HF directory)\n"
          "  -o, --out PATH           output JSONL (default '-' = stdout), written atomically\n"
          "      --accuracy           pairs: print {\"accuracy\",\"pairs\",\"mean_margin\"} on stdout\n"
          "                           (records are then written only with -o)\n"
          "      --batch-size N       records per forward pass (default 8)\n"
          "      --max-length N       tokens per sequence (default 1024, at most the model's context)\n"
          "      --max-prompt-length N  prompt tokens kept, from the end (default 512)\n"
          "      --kind K             auto|prompt-completion|rollout|preference|text|conversational\n"
          "      --template NAME      chat template: auto|plain|hh|chatml|llama3 (default auto)\n"
          "      --skip-invalid       skip bad lines (and count them) instead of stopping\n"
          "      --threads N          threads (default: all cores)\n"
          "  -q, --quiet              no summary on stderr\n"
          "  -h, --help               this help\n"
          "      --version            version\n",
          out);
}

enum {
    OPT_VERSION = 1000,
    OPT_ACC,
    OPT_BATCH,
    OPT_MAXLEN,
    OPT_MAXPROMPT,
    OPT_KIND,
    OPT_TEMPLATE,
    OPT_SKIP,
    OPT_THREADS,
    OPT_SEED,
    OPT_PROGRESS,
    OPT_NO_PROGRESS
};

static const struct option opts[] = {
    {"help", no_argument, 0, 'h'},
    {"model", required_argument, 0, 'm'},
    {"out", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"version", no_argument, 0, OPT_VERSION},
    {"accuracy", no_argument, 0, OPT_ACC},
    {"batch-size", required_argument, 0, OPT_BATCH},
    {"max-length", required_argument, 0, OPT_MAXLEN},
    {"max-prompt-length", required_argument, 0, OPT_MAXPROMPT},
    {"kind", required_argument, 0, OPT_KIND},
    {"template", required_argument, 0, OPT_TEMPLATE},
    {"skip-invalid", no_argument, 0, OPT_SKIP},
    {"threads", required_argument, 0, OPT_THREADS},
    {"seed", required_argument, 0, OPT_SEED},
    {"progress", no_argument, 0, OPT_PROGRESS},
    {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
    {0, 0, 0, 0},
};

typedef struct Sc {
    Model model;
    PrefScratch s;
    float *rew;
    int accuracy;
    long written, scored, pairs, correct;
    double margin_sum;
    FILE *out; /* NULL = do not write records */
} Sc;

/* The per-batch step (recbatch.h): rewards of every row, fields added, records written. */
static int sc_step(void *ctx, const Batch *b, json_t **rec, int n, int is_pref, Error *e) {
    Sc *S = ctx;
    S->rew = xrealloc(S->rew, (size_t)b->B * sizeof(float));
    rm_batch_rewards(&S->model, b, &S->s, S->rew);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        json_t *r = rec[i];
        if (is_pref) {
            float c = S->rew[i], j = S->rew[n + i];
            json_object_set_new(r, "chosen_reward", json_real(c));
            json_object_set_new(r, "rejected_reward", json_real(j));
            S->pairs++;
            S->correct += c > j;
            S->margin_sum += (double)c - j;
        } else {
            json_object_set_new(r, "reward", json_real(S->rew[i]));
        }
        S->scored++;
        if (S->out) {
            rc = jsonl_write(S->out, r, e);
            S->written++;
        }
    }
    return rc;
}

/* Refuses, per file, records that have nothing to score or no pairs for --accuracy. */
static int sc_check(void *ctx, const RecStream *rs, Error *e) {
    const Sc *S = ctx;
    if (rs->kind == DATA_PROMPT_ONLY)
        return err_set(e, EX_DATAERR, "%s: prompt-only records have no completion to score", rs->name);
    if (S->accuracy && rs->kind != DATA_PREFERENCE && rs->kind != DATA_AUTO)
        return err_set(e, EX_DATAERR, "%s: --accuracy needs preference pairs (chosen, rejected), got %s records",
                       rs->name, data_kind_name(rs->kind));
    return 0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *out_path = NULL, *kind_name = "auto", *tpl_name = "auto";
    int quiet = 0, batch = 8, accuracy = 0, max_len = 1024, max_prompt = 512, skip = 0, threads = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hm:o:q", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            cli_version(PROG);
        case 'm':
            model_dir = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case OPT_ACC:
            accuracy = 1;
            break;
        case OPT_BATCH:
            batch = cli_int(PROG, "--batch-size", optarg);
            if (batch < 1) cli_usage_error(PROG, "--batch-size: expected a positive integer, got '%s'", optarg);
            break;
        case OPT_MAXLEN:
            max_len = cli_int(PROG, "--max-length", optarg);
            if (max_len < 1) cli_usage_error(PROG, "--max-length: expected a positive integer, got '%s'", optarg);
            break;
        case OPT_MAXPROMPT:
            max_prompt = cli_int(PROG, "--max-prompt-length", optarg);
            if (max_prompt < 0) cli_usage_error(PROG, "--max-prompt-length: expected >= 0, got '%s'", optarg);
            break;
        case OPT_KIND:
            kind_name = optarg;
            break;
        case OPT_TEMPLATE:
            tpl_name = optarg;
            break;
        case OPT_SKIP:
            skip = 1;
            break;
        case OPT_THREADS:
            threads = cli_int(PROG, "--threads", optarg);
            if (threads < 0) cli_usage_error(PROG, "--threads: expected >= 0, got '%s'", optarg);
            break;
        case OPT_SEED: /* accepted for uniformity; nothing here is random */
            (void)cli_u64(PROG, "--seed", optarg);
            break;
        case OPT_PROGRESS:
        case OPT_NO_PROGRESS:
            break;
        default:
            cli_usage_error(PROG, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!model_dir) cli_usage_error(PROG, "-m/--model is required");
    threads_set(threads);
    atomic_install_signal_cleanup();

    Error e;
    memset(&e, 0, sizeof e);
    DataOptions o;
    data_options_default(&o);
    if (data_kind_parse(kind_name, &o.kind, &e)) cli_usage_error(PROG, "--kind: %s", e.msg);
    if (chat_template_parse(tpl_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    o.skip_invalid = skip;

    Sc S;
    memset(&S, 0, sizeof S);
    S.accuracy = accuracy;
    if (model_load(&S.model, model_dir, &e)) err_die(PROG, &e);
    if (!S.model.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a causal LM, not a reward model (train one with rm-train)", model_dir);
    Tokenizer *tok;
    if (tok_load_dir(&tok, model_dir, &e)) err_die(PROG, &e);
    int pad_id = S.model.cfg.pad_id >= 0 ? S.model.cfg.pad_id : tok_pad_id(tok) >= 0 ? tok_pad_id(tok) : 0;
    o.max_length = max_len < S.model.cfg.max_seq ? max_len : S.model.cfg.max_seq;
    o.max_prompt_length = max_prompt;
    RecBatcher rb;
    recbatch_init(&rb, tok, pad_id, batch, sc_step, sc_check, &S);

    AtomicFile af;
    int writing = !accuracy || out_path;
    if (writing) {
        if (atomic_open(&af, out_path ? out_path : "-", &e)) err_die(PROG, &e);
        S.out = af.fp;
    }
    if (recbatch_run_files(&rb, argv + optind, argc - optind, &o, &e)) {
        if (writing) atomic_abort(&af);
        err_die(PROG, &e);
    }
    if (writing && atomic_commit(&af, &e)) err_die(PROG, &e);
    if (accuracy) {
        printf("{\"accuracy\": %.6f, \"pairs\": %ld, \"mean_margin\": %.6f}\n",
               S.pairs ? (double)S.correct / S.pairs : 0.0, S.pairs, S.pairs ? S.margin_sum / S.pairs : 0.0);
        fflush(stdout);
    }
    if (!quiet) fprintf(stderr, "%s: %ld records scored, %ld dropped or skipped\n", PROG, S.scored, rb.dropped);
    recbatch_free(&rb);
    pref_scratch_free(&S.s);
    free(S.rew);
    tok_free(tok);
    model_free(&S.model);
    return 0;
}
