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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "data/data.h"
#include "data/recbatch.h"
#include "formats/tokenizer.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "train/prefbatch.h"

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

typedef struct Lp {
    Model model;
    int per_token;
    PrefScratch s;
    float *seq, *tok_lp;
    int *len;
    size_t tok_cap;
    long written;
    FILE *out;
    int pad_id;
} Lp;

/* Per-token log-probs of sequence i (its completion tokens, in order) as a JSON array:
 * example i of the batch, row i of an unshared one. */
static json_t *row_tokens(const Batch *b, const float *tok_lp, int i) {
    json_t *a = json_array();
    size_t k0 = (size_t)b->ex_row[i] * b->T + b->ex_start[i];
    for (size_t k = k0; k < k0 + (size_t)b->ex_len[i]; k++)
        if (b->targets[k] >= 0) json_array_append_new(a, json_real(tok_lp[k]));
    return a;
}

/* Preference records with each prompt once (prefix sharing, as dpo computes its
 * reference), so that dpo trained on these reference log-probs matches dpo computing
 * them itself, bit for bit; a row per completion where the model needs it. */
static int lp_pairs(void *ctx, Batch *b, const PrefExample *const *p, int n, Error *e) {
    Lp *L = ctx;
    return prefbatch_pairs(b, &L->model, p, n, L->pad_id, 1, e);
}

/* The per-batch step (recbatch.h): log-probs of every row, fields added, records written. */
static int lp_step(void *ctx, const Batch *b, json_t **rec, int n, int is_pref, Error *e) {
    Lp *L = ctx;
    size_t N = (size_t)b->B * b->T;
    if (N > L->tok_cap) {
        L->tok_cap = N;
        L->tok_lp = xrealloc(L->tok_lp, N * sizeof(float));
    }
    size_t ns = (size_t)(b->n_examples > b->B ? b->n_examples : b->B); /* sequences: 2 per shared row */
    L->seq = xrealloc(L->seq, ns * sizeof(float));
    L->len = xrealloc(L->len, ns * sizeof(int));
    prefbatch_logps(&L->model, b, &L->s, L->seq, L->len, L->tok_lp);
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
    cli_init(PROG);
    RecFlags f;
    recbatch_flags_parse(&f, PROG, argc, argv, "per-token", 1, usage);
    gemm_threads_set(f.threads);
    atomic_install_signal_cleanup();
    Error e;
    memset(&e, 0, sizeof e);

    Lp L;
    memset(&L, 0, sizeof L);
    L.per_token = f.extra;
    if (model_load(&L.model, f.model_dir, &e)) err_die(PROG, &e);
    model_set_forward_only(&L.model, 1); /* the same results, a tenth of the activations */
    if (L.model.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a sequence classifier (reward model); use score for rewards", f.model_dir);
    Tokenizer *tok;
    if (model_tokenizer_load(&tok, f.model_dir, &e)) err_die(PROG, &e);
    int pad_id = tok_pad_id(tok) >= 0 ? tok_pad_id(tok) : 0;
    DataOptions o = recflags_data_options(&f, L.model.cfg.max_seq);
    RecBatcher rb;
    recbatch_init(&rb, tok, pad_id, f.batch, lp_step, NULL, &L);
    L.pad_id = pad_id;
    rb.pairs = lp_pairs;

    AtomicFile af;
    if (atomic_open(&af, f.out_path ? f.out_path : "-", &e)) err_die(PROG, &e);
    L.out = af.fp;
    if (recbatch_run_files(&rb, argv + f.first_input, argc - f.first_input, &o, &e)) {
        atomic_abort(&af);
        err_die(PROG, &e);
    }
    if (atomic_commit(&af, &e)) err_die(PROG, &e);
    if (!f.quiet) fprintf(stderr, "%s: %ld records written, %ld dropped or skipped\n", PROG, L.written, rb.dropped);
    recbatch_free(&rb);
    prefbatch_scratch_free(&L.s);
    free(L.seq);
    free(L.len);
    free(L.tok_lp);
    tok_free(tok);
    model_free(&L.model);
    return 0;
}
