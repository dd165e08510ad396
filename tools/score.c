/* score — rewards from a reward model added to JSONL records.
 *
 * prompt-completion and rollout records get "reward"; preference records get
 * "chosen_reward" and "rejected_reward".  The reward of a sequence (prompt +
 * completion, tokenized as for training) is the score head at its last non-pad token,
 * as transformers' *ForSequenceClassification reads it (prefbatch.h).  Records are
 * processed in batches of --batch-size and written as they are done (streaming).
 * --accuracy (pairs) prints {"accuracy", "pairs", "mean_margin"} as one JSON line on
 * stdout; then the annotated records are written only when -o is given. */
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
    prefbatch_rewards(&S->model, b, &S->s, S->rew);
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
    cli_init(PROG);
    RecFlags f;
    recbatch_flags_parse(&f, PROG, argc, argv, "accuracy", 0, usage);
    gemm_threads_set(f.threads);
    atomic_install_signal_cleanup();
    Error e;
    memset(&e, 0, sizeof e);

    Sc S;
    memset(&S, 0, sizeof S);
    S.accuracy = f.extra;
    if (model_load(&S.model, f.model_dir, &e)) err_die(PROG, &e);
    model_set_forward_only(&S.model, 1); /* the same results, a tenth of the activations */
    if (!S.model.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a causal LM, not a reward model (train one with rm-train)", f.model_dir);
    Tokenizer *tok;
    if (model_tokenizer_load(&tok, f.model_dir, &e)) err_die(PROG, &e);
    int pad_id = S.model.cfg.pad_id >= 0 ? S.model.cfg.pad_id : tok_pad_id(tok) >= 0 ? tok_pad_id(tok) : 0;
    DataOptions o = recflags_data_options(&f, S.model.cfg.max_seq);
    RecBatcher rb;
    recbatch_init(&rb, tok, pad_id, f.batch, sc_step, sc_check, &S);

    AtomicFile af;
    int writing = !S.accuracy || f.out_path;
    if (writing) {
        if (atomic_open(&af, f.out_path ? f.out_path : "-", &e)) err_die(PROG, &e);
        S.out = af.fp;
    }
    if (recbatch_run_files(&rb, argv + f.first_input, argc - f.first_input, &o, &e)) {
        if (writing) atomic_abort(&af);
        err_die(PROG, &e);
    }
    if (writing && atomic_commit(&af, &e)) err_die(PROG, &e);
    if (S.accuracy) {
        printf("{\"accuracy\": %.6f, \"pairs\": %ld, \"mean_margin\": %.6f}\n",
               S.pairs ? (double)S.correct / S.pairs : 0.0, S.pairs, S.pairs ? S.margin_sum / S.pairs : 0.0);
        fflush(stdout);
    }
    if (!f.quiet) fprintf(stderr, "%s: %ld records scored, %ld dropped or skipped\n", PROG, S.scored, rb.dropped);
    recbatch_free(&rb);
    prefbatch_scratch_free(&S.s);
    free(S.rew);
    tok_free(tok);
    model_free(&S.model);
    return 0;
}
