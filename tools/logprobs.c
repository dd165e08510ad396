/* logprobs — the reference-model stage: sequence log-probs added to JSONL records.
 *
 * For prompt-completion (and rollout, text, conversational, segments) records it adds
 * "logp", the sum of log p(token | prefix) over the loss-bearing (completion) tokens;
 * for preference records it adds "ref_chosen_logps" and "ref_rejected_logps", the
 * fields dpo reads instead of running a reference model (TRL's precompute_ref_log_probs
 * names).  --per-token adds the per-token arrays.  Records are processed in batches of
 * --batch-size and written as they are done; memory does not grow with the input.
 * Tokenization and truncation are the data layer's (data.h), with dpo's defaults
 * (--max-length 1024, --max-prompt-length 512, clamped to the model's context), so the
 * numbers are the ones dpo would compute. */
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

static const char *PROG = "logprobs";

static void usage(FILE *out) {
    fputs("Usage: logprobs -m MODEL [-o OUT] [options] [FILE.jsonl ...]\n"
          "Adds sequence log-probs under MODEL to JSONL records (stdin when no file):\n"
          "\"logp\" for prompt-completion records, \"ref_chosen_logps\" and\n"
          "\"ref_rejected_logps\" for preference records (what dpo reads instead of a\n"
          "reference model).\n"
          "\n"
          "  -m, --model DIR          causal LM (HF directory)\n"
          "  -o, --out PATH           output JSONL (default '-' = stdout), written atomically\n"
          "      --per-token          also add the per-token log-prob arrays\n"
          "      --batch-size N       records per forward pass (default 8)\n"
          "      --max-length N       tokens per sequence (default 1024, at most the model's context)\n"
          "      --max-prompt-length N  prompt tokens kept, from the end (default 512)\n"
          "      --kind K             auto|prompt-completion|preference|rollout|text|conversational|segments\n"
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
    OPT_PER_TOKEN,
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
    {"per-token", no_argument, 0, OPT_PER_TOKEN},
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

typedef struct Lp {
    Model model;
    int per_token;
    PrefScratch s;
    float *seq, *tok_lp;
    int *len;
    size_t tok_cap;
    long written;
    FILE *out;
} Lp;

/* Per-token log-probs of row r (the completion tokens, in order) as a JSON array. */
static json_t *row_tokens(const Batch *b, const float *tok_lp, int r) {
    json_t *a = json_array();
    for (int t = 0; t < b->T; t++) {
        size_t k = (size_t)r * b->T + t;
        if (b->targets[k] >= 0) json_array_append_new(a, json_real(tok_lp[k]));
    }
    return a;
}

/* The per-batch step (recbatch.h): log-probs of every row, fields added, records written. */
static int lp_step(void *ctx, const Batch *b, json_t **rec, int n, int is_pref, Error *e) {
    Lp *L = ctx;
    size_t N = (size_t)b->B * b->T;
    if (N > L->tok_cap) {
        L->tok_cap = N;
        L->tok_lp = xrealloc(L->tok_lp, N * sizeof(float));
    }
    L->seq = xrealloc(L->seq, (size_t)b->B * sizeof(float));
    L->len = xrealloc(L->len, (size_t)b->B * sizeof(int));
    pref_batch_logps(&L->model, b, &L->s, L->seq, L->len, L->tok_lp);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        json_t *r = rec[i];
        if (is_pref) {
            json_object_set_new(r, "ref_chosen_logps", json_real(L->seq[i]));
            json_object_set_new(r, "ref_rejected_logps", json_real(L->seq[n + i]));
            if (L->per_token) {
                json_object_set_new(r, "ref_chosen_token_logps", row_tokens(b, L->tok_lp, i));
                json_object_set_new(r, "ref_rejected_token_logps", row_tokens(b, L->tok_lp, n + i));
            }
        } else {
            json_object_set_new(r, "logp", json_real(L->seq[i]));
            if (L->per_token) json_object_set_new(r, "token_logps", row_tokens(b, L->tok_lp, i));
        }
        rc = jsonl_write(L->out, r, e);
        L->written++;
    }
    return rc;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *out_path = "-", *kind_name = "auto", *tpl_name = "auto";
    int quiet = 0, batch = 8, per_token = 0, max_len = 1024, max_prompt = 512, skip = 0, threads = 0;
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
        case OPT_PER_TOKEN:
            per_token = 1;
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
    if (o.kind == DATA_PROMPT_ONLY) cli_usage_error(PROG, "--kind: prompt-only records have no completion to score");
    if (chat_template_parse(tpl_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    o.skip_invalid = skip;

    Lp L;
    memset(&L, 0, sizeof L);
    L.per_token = per_token;
    if (model_load(&L.model, model_dir, &e)) err_die(PROG, &e);
    if (L.model.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a sequence classifier (reward model); use score for rewards", model_dir);
    Tokenizer *tok;
    if (tok_load_dir(&tok, model_dir, &e)) err_die(PROG, &e);
    int pad_id = tok_pad_id(tok) >= 0 ? tok_pad_id(tok) : 0;
    o.max_length = max_len < L.model.cfg.max_seq ? max_len : L.model.cfg.max_seq;
    o.max_prompt_length = max_prompt;
    RecBatcher rb;
    recbatch_init(&rb, tok, pad_id, batch, lp_step, NULL, &L);

    AtomicFile af;
    if (atomic_open(&af, out_path, &e)) err_die(PROG, &e);
    L.out = af.fp;
    if (recbatch_run_files(&rb, argv + optind, argc - optind, &o, &e)) {
        atomic_abort(&af);
        err_die(PROG, &e);
    }
    if (atomic_commit(&af, &e)) err_die(PROG, &e);
    if (!quiet) fprintf(stderr, "%s: %ld records written, %ld dropped or skipped\n", PROG, L.written, rb.dropped);
    recbatch_free(&rb);
    pref_scratch_free(&L.s);
    free(L.seq);
    free(L.len);
    free(L.tok_lp);
    tok_free(tok);
    model_free(&L.model);
    return 0;
}
