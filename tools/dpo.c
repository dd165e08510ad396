/* dpo — Direct Preference Optimization and its relatives on preference pairs.
 *
 * Reads preference JSONL (prompt, chosen, rejected; see cherry-data(5)), and trains
 * the policy -m with the loss(es) of --loss-type (losses_pref.h: DPO sigmoid, hinge,
 * IPO, robust, cDPO, BCO, SPPO, NCA, APO, SFT; weighted by --loss-weights; plus RPO's
 * NLL with --rpo-alpha) through the shared training loop (train.h).
 *
 * The reference: records that carry ref_chosen_logps / ref_rejected_logps (written by
 * logprobs) are used as they are, and when every record has them no reference model
 * is loaded at all.  Otherwise the missing reference log-probs are computed ONCE, in a
 * first pass before training, with --ref or (default) the policy's starting weights,
 * and the reference model is freed before the first update.  Chosen and rejected of a
 * pair go through the model in one batch (rows 0..n-1 chosen, n..2n-1 rejected, as
 * TRL's concatenated_forward).  Sequence log-prob = sum over completion tokens.
 * This file only wires data, model and loss to the loop. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "data/data.h"
#include "formats/tokenizer.h"
#include "kernels/gemm.h"
#include "model/lora.h"
#include "model/model.h"
#include "train/losses_pref.h"
#include "train/prefbatch.h"
#include "train/train.h"

static const char *PROG = "dpo";

static void usage(FILE *out) {
    fputs("Usage: dpo -m MODEL -o OUT [options] [PAIRS.jsonl ...]\n"
          "Preference optimisation of a causal LM on prompt/chosen/rejected JSONL (stdin\n"
          "when no file).  The reference is --ref, or the starting weights of -m, or the\n"
          "ref_chosen_logps/ref_rejected_logps fields of the records (see logprobs(1)).\n"
          "\n"
          "DPO options:\n"
          "      --beta X             temperature of the implicit reward (default 0.1)\n"
          "      --loss-type LIST     comma list of sigmoid, hinge, ipo, robust, cdpo, bco_pair,\n"
          "                           sppo_hard, nca_pair, apo_zero, apo_down, sft, exo_pair, aot,\n"
          "                           aot_unpaired, discopop, sigmoid_norm (default sigmoid)\n"
          "      --loss-weights LIST  one weight per loss type (default all 1)\n"
          "      --label-smoothing X  label noise for robust, cdpo/sigmoid and aot, in [0, 0.5); exo_pair's\n"
          "                           epsilon, > 0 (default 0)\n"
          "      --discopop-tau X     DiscoPOP's temperature (default 0.05)\n"
          "      --rpo-alpha X        add X * NLL of the chosen completions (RPO; default off)\n"
          "      --truncation M       keep_end|keep_start for over-long prompts (default keep_end)\n"
          "      --no-prefix-sharing  a row per completion, each with its prompt (default: each\n"
          "                           prompt once per pair, both completions attending to it)\n"
          "      --chunk-tokens N     run a micro-batch's pairs a chunk of at most N tokens at a\n"
          "                           time (rows x longest row; a longer pair alone), so memory\n"
          "                           holds one chunk's activations; the same gradient to float\n"
          "                           rounding (default 512; 0 = the whole micro-batch at once;\n"
          "                           with bco_pair, aot, aot_unpaired or kto in the loss, or LoRA\n"
          "                           dropout, training runs the whole micro-batch)\n"
          "\n"
          "KTO (--loss-type kto; unpaired records {prompt, completion, label}, as TRL's KTOTrainer):\n"
          "      --desirable-weight X    weight of label-true completions (default 1)\n"
          "      --undesirable-weight X  weight of label-false completions (default 1)\n"
          "\n",
          out);
    train_flags_usage(out);
}

enum {
    OPT_BETA = TRAIN_OPT_USER,
    OPT_LOSS,
    OPT_WEIGHTS,
    OPT_LS,
    OPT_RPO,
    OPT_TRUNC,
    OPT_TAU,
    OPT_DESW,
    OPT_UNDW,
    OPT_NOSHARE,
    OPT_CHUNK
};
static const struct option dpo_opts[] = {
    {"beta", required_argument, 0, OPT_BETA},
    {"loss-type", required_argument, 0, OPT_LOSS},
    {"loss-weights", required_argument, 0, OPT_WEIGHTS},
    {"label-smoothing", required_argument, 0, OPT_LS},
    {"rpo-alpha", required_argument, 0, OPT_RPO},
    {"truncation", required_argument, 0, OPT_TRUNC},
    {"discopop-tau", required_argument, 0, OPT_TAU},
    {"desirable-weight", required_argument, 0, OPT_DESW},
    {"undesirable-weight", required_argument, 0, OPT_UNDW},
    {"no-prefix-sharing", no_argument, 0, OPT_NOSHARE},
    {"chunk-tokens", required_argument, 0, OPT_CHUNK},
    {0, 0, 0, 0},
};

typedef struct Dpo {
    const char *loss_types, *loss_weights, *trunc_name;
    double beta, label_smoothing, rpo_alpha, discopop_tau;
    PrefLossConfig lc;
    PrefLossState st; /* BCO's running shift: advanced by training steps only */
    Model model;
    Tokenizer *tok;
    int pad_id, max_T;
    int no_share;     /* --no-prefix-sharing */
    int chunk_tokens; /* --chunk-tokens */
    PrefExample *ex[2];
    int n[2];
    /* scratch */
    PrefScratch s;
    const PrefExample **pp;
    float *seq, *grad, *rc, *rr;
    int *len;
    int cap;
    double scale; /* the micro-step's gradient scale, for dpo_pair_grads */
    /* KTO: ex[s][i] holds prompt, completion (as chosen) and its KL completion (as
     * rejected); label[s][i] says whether the completion is desirable */
    int kto;
    KtoConfig kc;
    unsigned char *label[2], *lab;
} Dpo;

static int dpo_flag(void *ctx, int opt, const char *arg) {
    Dpo *d = ctx;
    switch (opt) {
    case OPT_NOSHARE:
        d->no_share = 1;
        return 0;
    case OPT_CHUNK:
        d->chunk_tokens = cli_int_min(PROG, "--chunk-tokens", arg, 0);
        return 0;
    case OPT_BETA:
        d->beta = cli_double(PROG, "--beta", arg);
        if (!(d->beta > 0)) cli_usage_error(PROG, "--beta: must be > 0, got '%s'", arg);
        return 0;
    case OPT_LOSS:
        d->loss_types = arg;
        return 0;
    case OPT_WEIGHTS:
        d->loss_weights = arg;
        return 0;
    case OPT_LS:
        d->label_smoothing = cli_double(PROG, "--label-smoothing", arg);
        if (d->label_smoothing < 0 || d->label_smoothing >= 0.5)
            cli_usage_error(PROG, "--label-smoothing: must be in [0, 0.5), got '%s'", arg);
        return 0;
    case OPT_RPO:
        d->rpo_alpha = cli_double(PROG, "--rpo-alpha", arg);
        if (d->rpo_alpha < 0) cli_usage_error(PROG, "--rpo-alpha: must be >= 0, got '%s'", arg);
        return 0;
    case OPT_TRUNC:
        d->trunc_name = arg;
        return 0;
    case OPT_TAU:
        d->discopop_tau = cli_double(PROG, "--discopop-tau", arg);
        if (!(d->discopop_tau > 0)) cli_usage_error(PROG, "--discopop-tau: must be > 0, got '%s'", arg);
        return 0;
    case OPT_DESW:
    case OPT_UNDW: {
        double w = cli_double(PROG, opt == OPT_DESW ? "--desirable-weight" : "--undesirable-weight", arg);
        if (!(w > 0))
            cli_usage_error(PROG, "%s: must be > 0, got '%s'",
                            opt == OPT_DESW ? "--desirable-weight" : "--undesirable-weight", arg);
        *(opt == OPT_DESW ? &d->kc.desirable_weight : &d->kc.undesirable_weight) = w;
        return 0;
    }
    }
    return -1;
}

static void need(Dpo *d, int n) {
    if (n <= d->cap) return;
    d->cap = n;
    d->pp = xrealloc(d->pp, (size_t)n * sizeof *d->pp);
    d->seq = xrealloc(d->seq, 2 * (size_t)n * sizeof(float));
    d->grad = xrealloc(d->grad, 2 * (size_t)n * sizeof(float));
    d->len = xrealloc(d->len, 2 * (size_t)n * sizeof(int));
    d->rc = xrealloc(d->rc, (size_t)n * sizeof(float));
    d->rr = xrealloc(d->rr, (size_t)n * sizeof(float));
    d->lab = xrealloc(d->lab, (size_t)n);
}

static double dpo_weight(void *ctx, Split split, const int *idx, int n) {
    (void)ctx, (void)split, (void)idx;
    return n; /* the loss is a mean over pairs (TRL: losses.mean()) */
}

/* The micro-batch's pairs idx[0..n) of SPLIT into d->pp, their reference
 * log-probs into d->rc (chosen; KTO: the completion) and d->rr (rejected; KTO: the
 * KL completion). */
static void gather_pairs(Dpo *d, Split split, const int *idx, int n) {
    need(d, n);
    for (int k = 0; k < n; k++) {
        const PrefExample *p = &d->ex[split][idx[k]];
        d->pp[k] = p;
        d->rc[k] = (float)p->ref_chosen_logp;
        d->rr[k] = (float)p->ref_rejected_logp;
    }
}

/* The batch of d->pp[0..n) for model m: each prompt once (prefix sharing: about a
 * quarter fewer tokens when prompt and completions are of a length; the same results
 * to float rounding) unless --no-prefix-sharing or m needs a row per completion
 * (prefbatch_can_share).  Rows as batch_pairs either way: seq[i] chosen, seq[n + i]
 * rejected (KTO: the completion and its KL completion, which share the prompt). */
static int pairs_batch(Dpo *d, const Model *m, Batch *b, int n, Error *e) {
    return prefbatch_pairs(b, m, d->pp, n, d->pad_id, !d->no_share, e);
}

/* The tokens of d->pp[0..n) as TRL counts them (num_tokens): each completion with its
 * prompt, whatever the layout (prefix sharing computes fewer; tokens_per_s is then the
 * rate of TRL-layout tokens).  rejected = 0: the completions only (KTO, whose KL
 * completions TRL does not count either). */
static long pair_tokens(const Dpo *d, int n, int rejected) {
    long t = 0;
    for (int i = 0; i < n; i++) {
        const PrefExample *p = d->pp[i];
        t += p->n_prompt + p->n_chosen + (rejected ? p->n_prompt + p->n_rejected : 0);
    }
    return t;
}

/* prefbatch_logps_train's d loss / d seq of pairs [i0, i1) of the micro-batch, for a
 * pairwise loss: the two-pass path's d(mean over the n pairs) * n * scale. */
static void dpo_pair_grads(void *ctx, int i0, int i1, int n, const float *seq, const int *len, float *dseq) {
    Dpo *d = ctx;
    int need_ref = pref_loss_needs_ref(&d->lc);
    pref_loss_pair_grads(&d->lc, i0, i1, n, seq, seq + n, need_ref ? d->rc : NULL, need_ref ? d->rr : NULL, len,
                         len + n, d->scale, dseq, dseq + n);
}

static int dpo_micro_step(void *ctx, Split split, const int *idx, int n, double scale, Metrics *mt, Error *e) {
    Dpo *d = ctx;
    gather_pairs(d, split, idx, n);
    int need_ref = pref_loss_needs_ref(&d->lc);
    /* Training with a pairwise loss: each pair's gradient is known as soon as its
     * log-probs are, so the LM head runs forward and backward in one pass (and
     * model_backward with it), a chunk of pairs at a time (--chunk-tokens), and so does
     * evaluation's forward; other losses train on the whole micro-batch: the log-probs,
     * the loss, then the backward. */
    int fused = split == SPLIT_TRAIN && pref_loss_pairwise(&d->lc);
    int whole = split == SPLIT_TRAIN && !fused;
    PrefTokenStats ts;
    Batch b;
    memset(&b, 0, sizeof b);
    if (whole) {
        int rc = pairs_batch(d, &d->model, &b, n, e);
        if (rc) return rc;
        prefbatch_logps(&d->model, &b, &d->s, d->seq, d->len, NULL);
        prefbatch_token_stats(&d->model, &b, n, &d->s, &ts);
    } else {
        d->scale = scale;
        PrefRun r = {!d->no_share, d->pad_id, d->chunk_tokens, fused ? dpo_pair_grads : NULL, d};
        int rc = prefbatch_pairs_run(&d->model, d->pp, n, &r, &d->s, d->seq, d->len, d->grad, &ts, e);
        if (rc) return rc;
    }
    PrefLossState eval_st = d->st; /* evaluation must not move BCO's running shift */
    PrefMetrics m;
    double loss =
        pref_loss(&d->lc, split == SPLIT_TRAIN ? &d->st : &eval_st, n, d->seq, d->seq + n, need_ref ? d->rc : NULL,
                  need_ref ? d->rr : NULL, d->len, d->len + n, whole ? d->grad : NULL, whole ? d->grad + n : NULL, &m);
    if (whole) {
        /* pref_loss gives d(mean over the n pairs); the loop wants d(scale * sum). */
        for (int r = 0; r < 2 * n; r++) d->grad[r] = (float)(d->grad[r] * n * scale);
        prefbatch_logps_backward(&d->model, &b, &d->s, d->grad);
        batch_free(&b);
    }
    metrics_add(mt, "loss", loss * n, n);
    if (need_ref) {
        metrics_add(mt, "rewards/chosen", m.rewards_chosen * n, n);
        metrics_add(mt, "rewards/rejected", m.rewards_rejected * n, n);
        metrics_add(mt, "rewards/accuracies", m.accuracies * n, n);
        metrics_add(mt, "rewards/margins", m.margins * n, n);
    }
    metrics_add(mt, "logps/chosen", m.logps_chosen * n, n);
    metrics_add(mt, "logps/rejected", m.logps_rejected * n, n);
    int has_nll = d->lc.rpo_alpha >= 0;
    for (int k = 0; k < d->lc.n_terms; k++) has_nll |= d->lc.type[k] == PREF_SFT;
    if (has_nll) metrics_add(mt, "nll_loss", m.nll_loss * n, n);
    /* TRL 1.x DPOTrainer's token metrics (prefbatch.h) */
    metrics_add(mt, "entropy", ts.entropy_sum, (double)ts.tokens);
    metrics_add(mt, "logits/chosen", ts.logits_chosen_sum, (double)ts.chosen_tokens);
    metrics_add(mt, "logits/rejected", ts.logits_rejected_sum, (double)ts.rejected_tokens);
    metrics_add(mt, "mean_token_accuracy", (double)ts.chosen_correct, (double)ts.chosen_tokens);
    mt->tokens += pair_tokens(d, n, 1);
    return 0;
}

/* KTO (losses_pref.h): rows 0..n-1 are prompt i + its completion, rows n..2n-1
 * prompt i + its KL completion; the KL estimate z comes from the second half and
 * is a constant for the gradient (TRL detaches it), so those rows get no gradient. */
static int kto_micro_step(void *ctx, Split split, const int *idx, int n, double scale, Metrics *mt, Error *e) {
    Dpo *d = ctx;
    gather_pairs(d, split, idx, n);
    for (int k = 0; k < n; k++) d->lab[k] = d->label[split][idx[k]];
    Batch b;
    memset(&b, 0, sizeof b);
    int rc = pairs_batch(d, &d->model, &b, n, e);
    if (rc) return rc;
    prefbatch_logps(&d->model, &b, &d->s, d->seq, d->len, NULL);
    double kl = kto_kl_estimate(n, d->seq + n, d->rr);
    KtoMetrics m;
    double loss = kto_loss(&d->kc, n, d->seq, d->rc, d->lab, kl, d->grad, &m);
    if (split == SPLIT_TRAIN) {
        for (int r = 0; r < n; r++) d->grad[r] = (float)(d->grad[r] * n * scale);
        for (int r = n; r < 2 * n; r++) d->grad[r] = 0;
        prefbatch_logps_backward(&d->model, &b, &d->s, d->grad);
    }
    metrics_add(mt, "loss", loss * n, n);
    metrics_add(mt, "kl", kl * n, n);
    if (m.n_chosen) {
        metrics_add(mt, "rewards/chosen", m.rewards_chosen * m.n_chosen, m.n_chosen);
        metrics_add(mt, "logps/chosen", m.logps_chosen * m.n_chosen, m.n_chosen);
    }
    if (m.n_rejected) {
        metrics_add(mt, "rewards/rejected", m.rewards_rejected * m.n_rejected, m.n_rejected);
        metrics_add(mt, "logps/rejected", m.logps_rejected * m.n_rejected, m.n_rejected);
    }
    mt->tokens += pair_tokens(d, n, 0);
    batch_free(&b);
    return 0;
}

static int *copy_ids(const int *v, int n) {
    int *c = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    memcpy(c, v, (size_t)n * sizeof(int));
    return c;
}

/* TRL's unpaired format {prompt, completion, label} from PATHS into ex/label.  The
 * KL completion of example i is that of the previous example of its chunk of
 * `batch` consecutive examples (the first takes the last): TRL's
 * add_kl_completion_ids, fixed at load time so the reference log-probs of the KL
 * sequences are computed once, as TRL's precompute_ref_log_probs does.  Cut to fit
 * max_T after the prompt. */
static int kto_read(char **paths, int n_paths, Tokenizer *tok, const DataOptions *o, int quiet, int batch, int max_T,
                    PrefExample **ex_out, unsigned char **label_out, int *n_out, long *dropped_neg, Error *e) {
    Example *ex = NULL;
    int n = 0;
    char *stdin_path[1] = {"-"};
    if (n_paths == 0) paths = stdin_path, n_paths = 1;
    PrefExample *pe = NULL;
    unsigned char *label = NULL;
    int total = 0;
    for (int f = 0; f < n_paths; f++) {
        ex = NULL, n = 0;
        if (data_read_files(PROG, paths + f, 1, tok, o, quiet, &ex, &n, e)) return e->code;
        pe = xrealloc(pe, (size_t)(total + n + 1) * sizeof *pe);
        label = xrealloc(label, (size_t)(total + n + 1));
        for (int i = 0; i < n; i++) {
            const json_t *l = json_object_get(ex[i].record, "label");
            if (!json_is_boolean(l)) {
                int rc = err_set(e, EX_DATAERR,
                                 "%s:%ld: field \"label\" must be true or false (KTO records are "
                                 "{prompt, completion, label})",
                                 strcmp(paths[f], "-") ? paths[f] : "<stdin>", ex[i].line);
                for (int k = 0; k < n; k++) example_free(&ex[k]);
                free(ex);
                return rc;
            }
            PrefExample *p = &pe[total + i];
            memset(p, 0, sizeof *p);
            p->prompt = copy_ids(ex[i].ids, ex[i].prompt_len);
            p->n_prompt = ex[i].prompt_len;
            p->chosen = copy_ids(ex[i].ids + ex[i].prompt_len, ex[i].n - ex[i].prompt_len);
            p->n_chosen = ex[i].n - ex[i].prompt_len;
            p->line = ex[i].line;
            label[total + i] = json_is_true(l);
            example_free(&ex[i]);
        }
        free(ex);
        total += n;
    }
    for (int c0 = 0; c0 < total; c0 += batch) {
        int c1 = c0 + batch < total ? c0 + batch : total;
        for (int i = c0; i < c1; i++) {
            const PrefExample *q = &pe[i == c0 ? c1 - 1 : i - 1];
            int room = max_T - pe[i].n_prompt, k = q->n_chosen < room ? q->n_chosen : room;
            pe[i].rejected = copy_ids(q->chosen, k);
            pe[i].n_rejected = k;
        }
    }
    long neg = 0;
    for (int i = 0; i < total; i++) neg += !label[i];
    *dropped_neg = neg;
    *ex_out = pe;
    *label_out = label;
    *n_out = total;
    return 0;
}

/* The first pass: reference log-probs of every pair that does not carry them, with
 * REF (already loaded), batch_size pairs at a time in data order, each batch whole as
 * logprobs(1) runs it, so that reference log-probs read from its records are the same
 * bits.  The forward keeps only checkpointing's activations (block inputs and one
 * block's set; model_set_forward_only: the same results), and the buffers are freed
 * afterwards, so that the chunked training steps (--chunk-tokens) allocate only what
 * they need: a whole batch in that layout can still outgrow a chunk's full set (about
 * 26k floats a token against 177k for SmolLM2: beyond ~3.4k tokens a batch). */
static long compute_ref(Dpo *d, Model *ref, int batch) {
    long done = 0;
    model_set_forward_only(ref, 1);
    for (int split = 0; split < 2; split++) {
        int i = 0;
        while (i < d->n[split]) {
            int n = 0;
            need(d, batch);
            for (; i < d->n[split] && n < batch; i++)
                if (!d->ex[split][i].has_ref) d->pp[n++] = &d->ex[split][i];
            if (!n) continue;
            Batch b;
            memset(&b, 0, sizeof b);
            Error e = {0};
            if (pairs_batch(d, ref, &b, n, &e)) err_die(PROG, &e);
            prefbatch_logps(ref, &b, &d->s, d->seq, NULL, NULL);
            batch_free(&b);
            for (int k = 0; k < n; k++) {
                PrefExample *p = (PrefExample *)d->pp[k];
                p->ref_chosen_logp = d->seq[k];
                p->ref_rejected_logp = d->seq[n + k];
                p->has_ref = 1;
            }
            done += n;
        }
    }
    model_set_forward_only(ref, 0);
    model_release_activations(ref);
    return done;
}

int main(int argc, char **argv) {
    cli_init(PROG);
    Dpo d;
    memset(&d, 0, sizeof d);
    d.loss_types = "sigmoid";
    d.trunc_name = "keep_end"; /* TRL 0.x DPOConfig.truncation_mode; why not 1.x's keep_start: cherry-trl(7) */
    d.beta = 0.1;
    d.rpo_alpha = -1;
    d.discopop_tau = 0.05; /* TRL DPOConfig.discopop_tau */
    d.chunk_tokens = 512;
    kto_config_default(&d.kc);
    TrainFlags f;
    train_flags_default(&f, PROG);
    f.lr = 1e-6; /* TRL DPOConfig default */
    train_flags_parse(&f, argc, argv, dpo_opts, "", dpo_flag, &d, usage);
    atomic_install_signal_cleanup();

    Error e;
    memset(&e, 0, sizeof e);
    pref_loss_config_default(&d.lc);
    d.kto = strcmp(d.loss_types, "kto") == 0;
    if (d.kto) {
        if (d.loss_weights || d.rpo_alpha >= 0 || d.label_smoothing > 0)
            cli_usage_error(PROG, "--loss-type kto takes no --loss-weights, --rpo-alpha or --label-smoothing");
        if (f.batch_size < 2)
            cli_usage_error(PROG, "--loss-type kto needs --batch-size >= 2 (the KL estimate uses the other "
                                  "completions of the batch)");
        d.kc.beta = d.beta;
    } else if (strstr(d.loss_types, "kto"))
        cli_usage_error(PROG, "--loss-type kto cannot be combined with other loss types");
    else if (pref_loss_parse(&d.lc, d.loss_types, d.loss_weights, &e))
        cli_usage_error(PROG, "%s", e.msg);
    d.lc.beta = d.beta;
    d.lc.label_smoothing = d.label_smoothing;
    d.lc.rpo_alpha = d.rpo_alpha;
    d.lc.discopop_tau = d.discopop_tau;
    for (int k = 0; k < d.lc.n_terms; k++) /* EXO's target (1-eps, eps) needs eps > 0 (TRL refuses 0 too) */
        if (d.lc.type[k] == PREF_EXO_PAIR && !(d.label_smoothing > 0))
            cli_usage_error(PROG, "--loss-type exo_pair needs --label-smoothing > 0 (the EXO paper uses 1e-3)");
    pref_loss_state_init(&d.st);

    DataOptions o;
    data_options_default(&o);
    o.kind = DATA_PREFERENCE;
    if (chat_template_parse(f.template_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    if (data_truncation_parse(d.trunc_name, &o.truncation, &e)) cli_usage_error(PROG, "--truncation: %s", e.msg);
    o.skip_invalid = f.skip_invalid;

    if (model_load(&d.model, f.model_dir, &e)) err_die(PROG, &e);
    if (d.model.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a sequence classifier (reward model); dpo needs a causal LM", f.model_dir);
    if (train_lora_setup(&f, &d.model, &e)) err_die(PROG, &e);
    if (model_tokenizer_load(&d.tok, f.model_dir, &e)) err_die(PROG, &e);
    d.pad_id = tok_pad_id(d.tok) >= 0 ? tok_pad_id(d.tok) : 0;
    d.max_T = f.max_length < d.model.cfg.max_seq ? f.max_length : d.model.cfg.max_seq;
    o.max_length = d.max_T;
    o.max_prompt_length = f.max_prompt_length;

    if (d.kto) {
        o.kind = DATA_PROMPT_COMPLETION;
        o.keep_record = 1; /* for "label" */
        long neg[2] = {0, 0};
        if (kto_read(f.inputs, f.n_inputs, d.tok, &o, f.quiet, f.batch_size, d.max_T, &d.ex[SPLIT_TRAIN],
                     &d.label[SPLIT_TRAIN], &d.n[SPLIT_TRAIN], &neg[0], &e))
            err_die(PROG, &e);
        char *ev[1] = {(char *)f.eval_path};
        if (f.eval_path && kto_read(ev, 1, d.tok, &o, f.quiet, f.batch_size, d.max_T, &d.ex[SPLIT_EVAL],
                                    &d.label[SPLIT_EVAL], &d.n[SPLIT_EVAL], &neg[1], &e))
            err_die(PROG, &e);
        if (!f.quiet)
            fprintf(stderr, "%s: KTO: %d examples (%ld desirable, %ld undesirable)\n", PROG, d.n[SPLIT_TRAIN],
                    d.n[SPLIT_TRAIN] - neg[0], neg[0]);
    } else if (data_read_files_pref(PROG, f.inputs, f.n_inputs, d.tok, &o, f.quiet, &d.ex[SPLIT_TRAIN],
                                    &d.n[SPLIT_TRAIN], &e))
        err_die(PROG, &e);
    if (d.n[SPLIT_TRAIN] == 0) {
        fprintf(stderr, "%s: no training %s\n", PROG, d.kto ? "examples" : "pairs");
        return EX_DATAERR;
    }
    if (f.eval_path && !d.kto) {
        char *ev[1] = {(char *)f.eval_path};
        if (data_read_files_pref(PROG, ev, 1, d.tok, &o, f.quiet, &d.ex[SPLIT_EVAL], &d.n[SPLIT_EVAL], &e))
            err_die(PROG, &e);
    }

    /* The reference, once. */
    long missing = 0, total = d.n[0] + d.n[1];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < d.n[s]; i++) missing += !d.ex[s][i].has_ref;
    int needs_ref = d.kto || pref_loss_needs_ref(&d.lc);
    if (needs_ref && missing > 0) {
        double t0 = now_seconds();
        long done;
        if (f.ref_dir) {
            Model ref;
            if (model_load(&ref, f.ref_dir, &e)) err_die(PROG, &e);
            if (ref.cfg.is_classifier || ref.cfg.vocab_size != d.model.cfg.vocab_size)
                cli_usage_error(PROG, "--ref %s: must be a causal LM with the policy's vocabulary (%d tokens)",
                                f.ref_dir, d.model.cfg.vocab_size);
            done = compute_ref(&d, &ref, f.batch_size);
            model_free(&ref);
        } else if (d.model.lora) {
            /* LoRA: the reference is the same weights with the adapter off (TRL with a
             * PEFT model and no ref_model: model.disable_adapter()); no second model */
            if (!f.quiet)
                fprintf(stderr,
                        "%s: reference = the -m weights with the LoRA adapter off (no second model in memory)\n", PROG);
            lora_set_enabled(&d.model, 0);
            done = compute_ref(&d, &d.model, f.batch_size);
            lora_set_enabled(&d.model, 1);
        } else {
            /* --mixed-precision bf16: the pass reads the weights' bf16 copy the training
             * keeps (gemm.h), converted once instead of per product */
            gemm_bf16_weights_declare(d.model.params, d.model.n_params);
            done = compute_ref(&d, &d.model, f.batch_size); /* the starting weights */
        }
        if (!f.quiet)
            fprintf(stderr, "%s: reference log-probs of %ld pairs computed in %.1fs (%ld from the records)\n", PROG,
                    done, now_seconds() - t0, total - missing);
    } else if (!f.quiet && needs_ref) {
        fprintf(stderr, "%s: reference log-probs of all %ld pairs read from the records; no reference model\n", PROG,
                total);
    }

    TrainTask t;
    memset(&t, 0, sizeof t);
    t.ctx = &d;
    t.model = &d.model;
    t.tokenizer_dir = f.model_dir;
    t.n_train = d.n[SPLIT_TRAIN];
    t.n_eval = d.n[SPLIT_EVAL];
    t.weight = dpo_weight;
    t.micro_step = d.kto ? kto_micro_step : dpo_micro_step;
    int rc = train_run(&f, &t, &e);
    if (rc > 0 && rc < 128) err_die(PROG, &e);

    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < d.n[s]; i++) pref_example_free(&d.ex[s][i]);
        free(d.ex[s]);
        free(d.label[s]);
    }
    free(d.lab);
    prefbatch_scratch_free(&d.s);
    free(d.pp);
    free(d.seq);
    free(d.grad);
    free(d.len);
    free(d.rc);
    free(d.rr);
    tok_free(d.tok);
    model_free(&d.model);
    return rc;
}
