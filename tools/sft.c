/* sft — supervised fine-tuning (and pre-training) of a causal language model.
 *
 * Reads JSONL examples (text, prompt-completion, conversational, segments; see
 * cherry-data(5)), tokenizes them with the model's tokenizer, and minimises the
 * next-token cross-entropy on the loss-bearing tokens (completion, assistant
 * turns, trained segments, or everything for text) with the shared training loop
 * (train.h).  --packing puts several examples in one row of --max-length tokens,
 * each with its own positions and attention segment.  This file only wires the data
 * layer, the model and the SFT loss to the loop. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "data/data.h"
#include "formats/tokenizer.h"
#include "kernels/ops.h"
#include "model/lora.h"
#include "model/model.h"
#include "train/losses.h"
#include "train/train.h"

static const char *PROG = "sft";

static void usage(FILE *out) {
    fputs("Usage: sft -m MODEL -o OUT [options] [DATA.jsonl ...]\n"
          "Supervised fine-tuning: next-token cross-entropy on the loss-bearing tokens of\n"
          "text, prompt-completion, conversational or segments JSONL (stdin when no file).\n"
          "\n"
          "SFT options:\n"
          "      --kind K             auto|text|prompt-completion|conversational|segments (default auto)\n"
          "      --packing            pack several examples per row of --max-length tokens\n"
          "      --truncation M       keep_start|keep_end for over-long examples (default keep_start)\n"
          "      --chunk-tokens N     run a micro-batch's rows a chunk of at most N tokens at a time\n"
          "                           (rows x row length; a longer row alone), so memory holds one\n"
          "                           chunk's activations; the same gradient to float rounding\n"
          "                           (default 0: the whole micro-batch at once)\n"
          "\n",
          out);
    train_flags_usage(out);
}

enum { OPT_KIND = TRAIN_OPT_USER, OPT_PACKING, OPT_TRUNC, OPT_CHUNK };
static const struct option sft_opts[] = {
    {"kind", required_argument, 0, OPT_KIND},
    {"packing", no_argument, 0, OPT_PACKING},
    {"truncation", required_argument, 0, OPT_TRUNC},
    {"chunk-tokens", required_argument, 0, OPT_CHUNK},
    {0, 0, 0, 0},
};

/* A split: examples, and the units the loop batches (one example each, or a packed
 * row = a run of consecutive examples that fit in max_length together). */
typedef struct SftSplit {
    Example *ex;
    int n_ex;
    long *loss_tokens; /* per example: tokens bearing loss */
    int n_units;
    int *unit_start, *unit_len; /* unit u = examples unit_start[u] .. + unit_len[u] - 1 */
} SftSplit;

typedef struct Sft {
    const char *kind_name, *trunc_name;
    int packing;
    Model model;
    Tokenizer *tok;
    int pad_id, max_T;
    int chunk_tokens; /* --chunk-tokens */
    SftSplit split[2];
    /* scratch, grown as needed */
    const Example **exs;
    float *logp, *dlogp, *ent;
    int *pred; /* the LM head's argmax per row (model_logprobs_argmax) */
    size_t cap_rows;
    int cap_exs;
} Sft;

static int sft_flag(void *ctx, int opt, const char *arg) {
    Sft *s = ctx;
    switch (opt) {
    case OPT_KIND:
        s->kind_name = arg;
        return 0;
    case OPT_PACKING:
        s->packing = 1;
        return 0;
    case OPT_CHUNK:
        s->chunk_tokens = cli_int_min(PROG, "--chunk-tokens", arg, 0);
        return 0;
    case OPT_TRUNC:
        s->trunc_name = arg;
        return 0;
    }
    return -1;
}

/* Units: without packing one per example; with packing, next-fit over the examples
 * in data order (start a new row when the next example does not fit); a
 * micro-batch of n units becomes exactly n rows (batch_fill_units).  (TRL >= 0.20 packs best-fit-decreasing by default,
 * which fills rows a little better but reorders examples; the packed rows are shuffled per epoch either way.) */
static void split_units(SftSplit *sp, int packing, int max_T) {
    sp->unit_start = xmalloc((size_t)(sp->n_ex > 0 ? sp->n_ex : 1) * sizeof(int));
    sp->unit_len = xmalloc((size_t)(sp->n_ex > 0 ? sp->n_ex : 1) * sizeof(int));
    sp->n_units = 0;
    int used = 0;
    for (int i = 0; i < sp->n_ex; i++) {
        int len = sp->ex[i].n;
        if (!packing || sp->n_units == 0 || used + len > max_T) {
            sp->unit_start[sp->n_units] = i;
            sp->unit_len[sp->n_units] = 0;
            sp->n_units++;
            used = 0;
        }
        sp->unit_len[sp->n_units - 1]++;
        used += len;
    }
    sp->loss_tokens = xmalloc((size_t)(sp->n_ex > 0 ? sp->n_ex : 1) * sizeof(long));
    for (int i = 0; i < sp->n_ex; i++) {
        long c = 0;
        for (int t = 1; t < sp->ex[i].n; t++) c += sp->ex[i].mask[t] != 0;
        sp->loss_tokens[i] = c;
    }
}

static double sft_weight(void *ctx, Split split, const int *idx, int n) {
    Sft *s = ctx;
    const SftSplit *sp = &s->split[split];
    double w = 0;
    for (int k = 0; k < n; k++) {
        int u = idx[k];
        for (int i = sp->unit_start[u]; i < sp->unit_start[u] + sp->unit_len[u]; i++) w += (double)sp->loss_tokens[i];
    }
    return w;
}

static int sft_micro_step(void *ctx, Split split, const int *idx, int n, double scale, Metrics *mt, Error *e) {
    Sft *s = ctx;
    const SftSplit *sp = &s->split[split];
    int n_ex = 0;
    for (int k = 0; k < n; k++) n_ex += sp->unit_len[idx[k]];
    if (n_ex > s->cap_exs) {
        s->cap_exs = n_ex;
        s->exs = xrealloc(s->exs, (size_t)n_ex * sizeof *s->exs);
    }
    n_ex = 0;
    for (int k = 0; k < n; k++)
        for (int i = sp->unit_start[idx[k]]; i < sp->unit_start[idx[k]] + sp->unit_len[idx[k]]; i++)
            s->exs[n_ex++] = &sp->ex[i];
    Batch b;
    memset(&b, 0, sizeof b);
    if (s->packing) {
        /* Each unit is one planned row: place it exactly so (batch_fill would re-pack
         * the shuffled run of units and could merge two of them into one row). */
        int *ulen = xmalloc((size_t)n * sizeof(int));
        for (int k = 0; k < n; k++) ulen[k] = sp->unit_len[idx[k]];
        int rc = batch_fill_units(&b, s->exs, ulen, n, s->max_T, s->pad_id, e);
        free(ulen);
        if (rc) return rc;
    } else {
        int used = batch_fill(&b, s->exs, n_ex, n, 0, 0, s->pad_id, e);
        if (used < 0) return e->code;
        if (used != n_ex || b.B != n) {
            batch_free(&b);
            return err_set(e, EX_SOFTWARE, "sft: batch_fill placed %d of %d examples in %d of %d rows", used, n_ex, b.B,
                           n);
        }
    }
    size_t N = (size_t)b.B * b.T;
    if (N > s->cap_rows) {
        s->cap_rows = N;
        s->logp = xrealloc(s->logp, N * sizeof(float));
        s->dlogp = xrealloc(s->dlogp, N * sizeof(float));
        s->ent = xrealloc(s->ent, N * sizeof(float));
        s->pred = xrealloc(s->pred, N * sizeof(int));
    }
    Model *m = &s->model;
    /* --chunk-tokens: rows a chunk at a time, so the activations kept for backward are a
     * chunk's; rows are independent and the loss is a sum over tokens, so the chunks'
     * gradients add up to the micro-batch's.  Not with longrope (Phi-3), whose RoPE
     * factors depend on the batch's largest position. */
    int rows = b.B;
    if (s->chunk_tokens > 0 && m->cfg.rope_scaling.type != ROPE_LONGROPE) {
        rows = s->chunk_tokens / (b.T > 0 ? b.T : 1);
        rows = rows < 1 ? 1 : rows > b.B ? b.B : rows;
    }
    for (int r0 = 0; r0 < b.B; r0 += rows) {
        int nr = b.B - r0 < rows ? b.B - r0 : rows;
        size_t o = (size_t)r0 * b.T, Nc = (size_t)nr * b.T;
        lora_set_dropout_row0(m, (long)o); /* the whole micro-batch's dropout masks */
        model_forward(m, b.tokens + o, b.pos + o, b.seg + o, nr, b.T);
        /* TRL's mean_token_accuracy (argmax of the logits equals the target, over the
         * loss-bearing tokens) and entropy come from the log-probs' pass over the
         * vocabulary.  Training: the loss is linear in the log-probs, so its gradient is
         * known first and the LM head's forward and backward are one pass (three
         * products over the vocabulary instead of four). */
        if (split == SPLIT_TRAIN) {
            sft_dlogp(b.targets + o, Nc, scale, s->dlogp + o);
            model_logprobs_fused(m, b.targets + o, s->dlogp + o, s->logp + o, s->ent + o, s->pred + o);
            model_backward(m);
        } else {
            model_logprobs_argmax(m, b.targets + o, s->logp + o, s->ent + o, s->pred + o);
        }
    }
    lora_set_dropout_row0(m, 0);
    long ntok = 0;
    double loss_sum = sft_loss(s->logp, b.targets, N, scale, NULL, &ntok);
    double ent_sum = 0; /* TRL's entropy: mean over the loss-bearing tokens */
    for (size_t r = 0; r < N; r++)
        if (b.targets[r] >= 0) ent_sum += s->ent[r];
    long correct = token_correct(s->pred, b.targets, N);
    metrics_add(mt, "loss", loss_sum, (double)ntok);
    metrics_add(mt, "mean_token_accuracy", (double)correct, (double)ntok);
    metrics_add(mt, "entropy", ent_sum, (double)ntok);
    long tokens = 0;
    for (int r = 0; r < b.B; r++) tokens += b.lengths[r];
    mt->tokens += tokens;
    batch_free(&b);
    return 0;
}

static void split_free(SftSplit *sp) {
    for (int i = 0; i < sp->n_ex; i++) example_free(&sp->ex[i]);
    free(sp->ex);
    free(sp->loss_tokens);
    free(sp->unit_start);
    free(sp->unit_len);
}

/* KTO data ({prompt, completion, label}, feedback --kto) marks completions that must
 * NOT be imitated with "label": false; training on them with the SFT loss would
 * teach exactly what the user disliked, so they are dropped, and said so.  The kept
 * records' JSON is released (only the token ids are needed from here on). */
static void drop_undesirable(SftSplit *sp, int quiet) {
    int k = 0;
    long dropped = 0;
    for (int i = 0; i < sp->n_ex; i++) {
        if (json_is_false(json_object_get(sp->ex[i].record, "label"))) {
            example_free(&sp->ex[i]);
            dropped++;
            continue;
        }
        if (sp->ex[i].record) json_decref(sp->ex[i].record);
        sp->ex[i].record = NULL;
        sp->ex[k++] = sp->ex[i];
    }
    sp->n_ex = k;
    if (dropped && !quiet)
        fprintf(stderr,
                "%s: dropped %ld completions with \"label\": false (undesirable in KTO data; sft "
                "imitates only desirable ones)\n",
                PROG, dropped);
}

int main(int argc, char **argv) {
    cli_init(PROG);
    Sft s;
    memset(&s, 0, sizeof s);
    s.kind_name = "auto";
    s.trunc_name = "keep_start";
    /* off by default: chunks of 512 tokens (3 of SmolLM2's 152-token rows) made a bf16
     * step ~7% slower, each chunk's products packing the weights again */
    s.chunk_tokens = 0;
    TrainFlags f;
    train_flags_default(&f, PROG);
    f.lr = 2e-5;             /* TRL SFTConfig default */
    f.max_prompt_length = 0; /* SFT cuts whole sequences to --max-length (TRL) */
    train_flags_parse(&f, argc, argv, sft_opts, "", sft_flag, &s, usage);
    atomic_install_signal_cleanup();

    Error e;
    memset(&e, 0, sizeof e);
    DataOptions o;
    data_options_default(&o);
    if (data_kind_parse(s.kind_name, &o.kind, &e)) cli_usage_error(PROG, "--kind: %s", e.msg);
    if (o.kind != DATA_AUTO && o.kind != DATA_TEXT && o.kind != DATA_PROMPT_COMPLETION &&
        o.kind != DATA_CONVERSATIONAL && o.kind != DATA_SEGMENTS)
        cli_usage_error(PROG, "--kind: sft trains on text, prompt-completion, conversational or segments, not %s",
                        s.kind_name);
    if (chat_template_parse(f.template_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    if (data_truncation_parse(s.trunc_name, &o.truncation, &e)) cli_usage_error(PROG, "--truncation: %s", e.msg);
    o.skip_invalid = f.skip_invalid;
    o.keep_record = 1; /* to see KTO's "label" (drop_undesirable), released right after */

    if (model_load(&s.model, f.model_dir, &e)) err_die(PROG, &e);
    if (s.model.cfg.is_classifier) {
        err_set(&e, EX_DATAERR, "%s: is a sequence classifier (score.weight); sft trains a causal LM", f.model_dir);
        err_die(PROG, &e);
    }
    if (train_lora_setup(&f, &s.model, &e)) err_die(PROG, &e);
    if (model_tokenizer_load(&s.tok, f.model_dir, &e)) err_die(PROG, &e);
    s.pad_id = tok_pad_id(s.tok);
    if (s.pad_id < 0) s.pad_id = 0; /* padding never bears loss nor is attended to */
    s.max_T = f.max_length;
    if (s.max_T > s.model.cfg.max_seq) {
        if (!f.quiet && f.max_length != 1024)
            fprintf(stderr, "%s: --max-length %d exceeds the model's context %d; using %d\n", PROG, f.max_length,
                    s.model.cfg.max_seq, s.model.cfg.max_seq);
        s.max_T = s.model.cfg.max_seq;
    }
    o.max_length = s.max_T;
    o.max_prompt_length = f.max_prompt_length;

    SftSplit *tr = &s.split[SPLIT_TRAIN], *ev_split = &s.split[SPLIT_EVAL];
    if (data_read_files(PROG, f.inputs, f.n_inputs, s.tok, &o, f.quiet, &tr->ex, &tr->n_ex, &e)) err_die(PROG, &e);
    drop_undesirable(tr, f.quiet);
    if (tr->n_ex == 0) {
        fprintf(stderr, "%s: no training examples\n", PROG);
        return EX_DATAERR;
    }
    if (f.eval_path) {
        char *ev[1] = {(char *)f.eval_path};
        if (data_read_files(PROG, ev, 1, s.tok, &o, f.quiet, &ev_split->ex, &ev_split->n_ex, &e)) err_die(PROG, &e);
        drop_undesirable(ev_split, f.quiet);
    }
    for (int k = 0; k < 2; k++) split_units(&s.split[k], s.packing, s.max_T);
    if (!f.quiet && s.packing)
        fprintf(stderr, "%s: packed %d examples into %d rows of %d tokens\n", PROG, s.split[0].n_ex, s.split[0].n_units,
                s.max_T);

    TrainTask t;
    memset(&t, 0, sizeof t);
    t.ctx = &s;
    t.model = &s.model;
    t.tokenizer_dir = f.model_dir;
    t.n_train = s.split[SPLIT_TRAIN].n_units;
    t.n_eval = s.split[SPLIT_EVAL].n_units;
    t.weight = sft_weight;
    t.micro_step = sft_micro_step;
    int rc = train_run(&f, &t, &e);
    if (rc > 0 && rc < 128) err_die(PROG, &e);

    for (int k = 0; k < 2; k++) split_free(&s.split[k]);
    free(s.exs);
    free(s.logp);
    free(s.dlogp);
    free(s.ent);
    free(s.pred);
    tok_free(s.tok);
    model_free(&s.model);
    return rc;
}
