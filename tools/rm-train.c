/* rm-train — a Bradley–Terry reward model from preference pairs.
 *
 * Starts from a reward model (*ForSequenceClassification, num_labels 1) or from a
 * causal LM, in which case the LM head is dropped and a score head [1, C] without
 * bias is added, drawn from normal(0, initializer_range) as transformers initialises
 * a new nn.Linear (model.h model_classifier_from_lm).  The reward of a sequence is the score
 * at its last non-pad token, read exactly as transformers does, so the saved model
 * gives the same rewards in transformers (tests/test_oracle_dpo.c checks the rule
 * against transformers' own scores).  Loss: TRL RewardTrainer's
 *   -log sigmoid(r_c - r_r - margin) + center_rewards_coefficient * (r_c + r_r)^2
 * (losses_pref.h bt_loss), averaged over pairs, through the shared loop (train.h).
 * This file only wires data, model and loss to the loop. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "data/data.h"
#include "model/lora.h"
#include "train/losses_pref.h"
#include "model/model.h"
#include "train/prefbatch.h"
#include "formats/tokenizer.h"
#include "train/train.h"

static const char *PROG = "rm-train";

static void usage(FILE *out) {
    fputs("Usage: rm-train -m MODEL -o OUT [options] [PAIRS.jsonl ...]\n"
          "Trains a reward model (Bradley-Terry) on prompt/chosen/rejected JSONL, with the\n"
          "optional per-pair \"margin\" field.  MODEL is a reward model or a causal LM (a\n"
          "score head is added).  OUT loads in transformers as *ForSequenceClassification.\n"
          "\n"
          "Reward-model options:\n"
          "      --center-rewards-coefficient X   add X * mean((r_c + r_r)^2) (default off)\n"
          "      --truncation M       keep_end|keep_start for over-long prompts (default keep_end)\n"
          "\n",
          out);
    train_flags_usage(out);
}

enum { OPT_CENTER = TRAIN_OPT_USER, OPT_TRUNC };
static const struct option rm_opts[] = {
    {"center-rewards-coefficient", required_argument, 0, OPT_CENTER},
    {"truncation", required_argument, 0, OPT_TRUNC},
    {0, 0, 0, 0},
};

typedef struct Rm {
    double center;
    const char *trunc_name;
    Model model;
    Tokenizer *tok;
    int pad_id;
    PrefExample *ex[2];
    int n[2];
    PrefScratch s;
    const PrefExample **pp;
    float *rew, *grad, *margin;
    int cap;
} Rm;

static int rm_flag(void *ctx, int opt, const char *arg) {
    Rm *r = ctx;
    switch (opt) {
    case OPT_CENTER:
        r->center = cli_double_in(PROG, "--center-rewards-coefficient", arg, 0, 0, INFINITY, 0);
        return 0;
    case OPT_TRUNC:
        r->trunc_name = arg;
        return 0;
    }
    return -1;
}

static double rm_weight(void *ctx, Split split, const int *idx, int n) {
    (void)ctx, (void)split, (void)idx;
    return n; /* mean over pairs */
}

static int rm_micro_step(void *ctx, Split split, const int *idx, int n, double scale, Metrics *mt, Error *e) {
    Rm *r = ctx;
    if (n > r->cap) {
        r->cap = n;
        r->pp = xrealloc(r->pp, (size_t)n * sizeof *r->pp);
        r->rew = xrealloc(r->rew, 2 * (size_t)n * sizeof(float));
        r->grad = xrealloc(r->grad, 2 * (size_t)n * sizeof(float));
        r->margin = xrealloc(r->margin, (size_t)n * sizeof(float));
    }
    for (int k = 0; k < n; k++) {
        r->pp[k] = &r->ex[split][idx[k]];
        r->margin[k] = (float)r->pp[k]->margin; /* 0 when the record has none */
    }
    Batch b;
    memset(&b, 0, sizeof b);
    int rc = batch_pairs(&b, r->pp, n, 0, r->pad_id, e);
    if (rc) return rc;
    prefbatch_rewards(&r->model, &b, &r->s, r->rew);
    BtMetrics m;
    double loss = bt_loss(n, r->rew, r->rew + n, r->margin, r->center, r->grad, r->grad + n, &m);
    if (split == SPLIT_TRAIN) {
        for (int i = 0; i < 2 * n; i++) r->grad[i] = (float)(r->grad[i] * n * scale); /* d(scale * sum) */
        prefbatch_rewards_backward(&r->model, &b, &r->s, r->grad);
    }
    metrics_add(mt, "loss", loss * n, n);
    metrics_add(mt, "accuracy", m.accuracy * n, n);
    metrics_add(mt, "rewards/chosen", m.rewards_chosen * n, n);
    metrics_add(mt, "rewards/rejected", m.rewards_rejected * n, n);
    metrics_add(mt, "margin", m.margin * n, n);
    /* TRL 1.x RewardTrainer: min/mean/max over the batch's rewards (chosen and rejected),
     * one value per micro-batch, averaged over the micro-batches of an update */
    double lo = r->rew[0], hi = r->rew[0], sum = 0;
    for (int i = 0; i < 2 * n; i++) {
        lo = r->rew[i] < lo ? r->rew[i] : lo;
        hi = r->rew[i] > hi ? r->rew[i] : hi;
        sum += r->rew[i];
    }
    metrics_add(mt, "min_reward", lo, 1);
    metrics_add(mt, "mean_reward", sum / (2 * n), 1);
    metrics_add(mt, "max_reward", hi, 1);
    long tokens = 0;
    for (int i = 0; i < b.B; i++) tokens += b.lengths[i];
    mt->tokens += tokens;
    batch_free(&b);
    return 0;
}

int main(int argc, char **argv) {
    cli_init(PROG);
    Rm r;
    memset(&r, 0, sizeof r);
    r.trunc_name = "keep_end";
    TrainFlags f;
    train_flags_default(&f, PROG);
    f.lr = 1e-4; /* TRL 1.x RewardConfig default */
    train_flags_parse(&f, argc, argv, rm_opts, "", rm_flag, &r, usage);
    atomic_install_signal_cleanup();

    Error e;
    memset(&e, 0, sizeof e);
    DataOptions o;
    data_options_default(&o);
    o.kind = DATA_PREFERENCE;
    if (chat_template_parse(f.template_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    if (data_truncation_parse(r.trunc_name, &o.truncation, &e)) cli_usage_error(PROG, "--truncation: %s", e.msg);
    o.skip_invalid = f.skip_invalid;

    Model start;
    if (model_load(&start, f.model_dir, &e)) err_die(PROG, &e);
    if (model_tokenizer_load(&r.tok, f.model_dir, &e)) err_die(PROG, &e);
    if (start.lora && !start.cfg.is_classifier) lora_merge(&start); /* an LM adapter: its merged model is the start */
    if (start.cfg.is_classifier) {
        r.model = start;
    } else {
        model_classifier_from_lm(&r.model, &start, f.seed);
        model_free(&start);
        if (!f.quiet)
            fprintf(stderr, "%s: %s is a causal LM: added a score head (normal(0, %g), seed %llu)\n", PROG, f.model_dir,
                    r.model.cfg.init_std, (unsigned long long)f.seed);
    }
    /* TRL RewardTrainer: a model without pad_token_id gets the tokenizer's, so the
     * saved config tells transformers where each sequence ends. */
    if (r.model.cfg.pad_id < 0) r.model.cfg.pad_id = tok_pad_id(r.tok);
    r.pad_id = r.model.cfg.pad_id >= 0 ? r.model.cfg.pad_id : 0;
    if (train_lora_setup(&f, &r.model, &e)) err_die(PROG, &e);
    int max_T = f.max_length < r.model.cfg.max_seq ? f.max_length : r.model.cfg.max_seq;
    o.max_length = max_T;
    o.max_prompt_length = f.max_prompt_length;

    if (data_read_files_pref(PROG, f.inputs, f.n_inputs, r.tok, &o, f.quiet, &r.ex[SPLIT_TRAIN], &r.n[SPLIT_TRAIN], &e))
        err_die(PROG, &e);
    if (r.n[SPLIT_TRAIN] == 0) {
        fprintf(stderr, "%s: no training pairs\n", PROG);
        return EX_DATAERR;
    }
    if (f.eval_path) {
        char *ev[1] = {(char *)f.eval_path};
        if (data_read_files_pref(PROG, ev, 1, r.tok, &o, f.quiet, &r.ex[SPLIT_EVAL], &r.n[SPLIT_EVAL], &e))
            err_die(PROG, &e);
    }

    TrainTask t;
    memset(&t, 0, sizeof t);
    t.ctx = &r;
    t.model = &r.model;
    t.tokenizer_dir = f.model_dir;
    t.n_train = r.n[SPLIT_TRAIN];
    t.n_eval = r.n[SPLIT_EVAL];
    t.weight = rm_weight;
    t.micro_step = rm_micro_step;
    int rc = train_run(&f, &t, &e);
    if (rc > 0 && rc < 128) err_die(PROG, &e);

    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < r.n[s]; i++) pref_example_free(&r.ex[s][i]);
        free(r.ex[s]);
    }
    prefbatch_scratch_free(&r.s);
    free(r.pp);
    free(r.rew);
    free(r.grad);
    free(r.margin);
    tok_free(r.tok);
    model_free(&r.model);
    return rc;
}
