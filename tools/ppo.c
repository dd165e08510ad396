/* ppo — online RL for a causal LM: PPO, GRPO, RLOO and REINFORCE, rewarded by a
 * reward model and/or reward programs.  Policy directory in, policy directory out:
 * the swap-in for dpo.
 *
 * One ITERATION: take --batch-size prompts (shuffled per pass over the data, a
 * function of (seed, pass) only), generate --num-generations completions each with
 * the shared KV-cache generator (generate.h; the sampling log-probs it returns are
 * the "old" log-probs), score them (rl_rewards.h: weighted sum), compute the
 * reference log-probs once (when a KL term is on), compute advantages (losses_rl.h),
 * then optimise for --num-ppo-epochs passes, each split into --num-mini-batches
 * optimiser updates of --grad-accum micro-batches.  Every update is one trainer_step
 * of the shared loop (train.h: normalisation, clipping, AdamW, schedule, metrics
 * log, NaN guard, checkpoints, SIGINT); the units of a step are sequences.
 *
 * Algorithms (TRL's trainers; formulas and citations in losses_rl.h):
 *   ppo        per-token KL penalty in the reward, score on the last token, GAE,
 *              whitened advantages, clipped surrogate, clipped value loss.  The value
 *              function is a scalar head on its OWN copy of a trunk (TRL's choice),
 *              initialised from --value-model, else the reward model, else the
 *              policy's trunk with a fresh head; it has its own AdamW at the policy's
 *              lr and its own gradient clipping (TRL clips policy and value jointly).
 *   grpo       group-normalised advantages, asymmetric clipped ratio, optional k3 KL
 *              in the loss (--beta), loss normalisations grpo|bnpo|dr_grpo|dapo.
 *   rloo       sequence-level KL penalty in the reward, leave-one-out baseline,
 *              sequence-level clipped ratio (TRL RLOOTrainer <= 0.19).
 *   reinforce  as rloo with a moving-average baseline instead of leave-one-out.
 * Log-probs are of softmax(logits / --temperature), as TRL recomputes them
 * (rl_batch.h runs the models on the completion tokens).
 * Memory: the policy with gradients and AdamW state; the reference weights only when
 * a KL term is on; the value model (with its optimiser) for ppo only; the reward
 * model when given. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strsignal */
#endif
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/dist.h"
#include "data/data.h"
#include "formats/tokenizer.h"
#include "generate/gen_flags.h"
#include "generate/generate.h"
#include "model/lora.h"
#include "model/model.h"
#include "rl/reward.h"
#include "rl/rl_batch.h"
#include "rl/rl_ckpt.h"
#include "rl/rl_flags.h"
#include "rl/rl_metrics.h"
#include "rl/rl_rewards.h"
#include "rl/rl_rollout.h"
#include "train/losses_rl.h"
#include "train/optim.h"
#include "train/train.h"

static const char *PROG = "ppo";

static void usage(FILE *out) {
    fputs("Usage: ppo -m POLICY -o OUT (--reward-model DIR | --reward-cmd CMD)... [options] [PROMPTS.jsonl ...]\n"
          "Online RL of a causal LM on prompt-only JSONL (stdin when no file): generate,\n"
          "score, compute advantages, optimise.  --batch-size is prompts per iteration.\n"
          "\n"
          "Algorithm:\n"
          "      --algo A               ppo (default), grpo, rloo or reinforce\n"
          "      --num-generations G    completions per prompt (default: 1 ppo/reinforce, 4 grpo/rloo)\n"
          "      --num-ppo-epochs E     optimisation passes per batch (default 4; grpo and reinforce 1)\n"
          "      --num-mini-batches M   updates per pass (default 1); --grad-accum splits each\n"
          "      --episodes N           stop after N generated sequences (default: --epochs over prompts)\n"
          "Generation:\n",
          out);
    gen_flags_usage(out, 32, "> 0, also of the log-probs (default 0.7 ppo, else 1)");
    rl_flags_usage(out);
    train_flags_usage(out);
}

static const struct option ppo_opts[] = {RL_FLAG_OPTIONS, GEN_FLAG_OPTIONS, {0, 0, 0, 0}};

#define GEN_SLOTS 64 /* sequences decoded together */

typedef struct Ppo {
    RlFlags rf;   /* the RL flags (rl_flags.h) */
    RlConfig cfg; /* the same, for losses_rl.h (kl_coef follows the controller) */
    const TrainFlags *f;
    Model policy, ref, vm, rm;
    int have_ref, have_vm, have_rm;
    AdamW vopt;
    Tokenizer *tok;
    GenConfig gen; /* sampling: temperature is also the log-probs' (rl_batch.h) */
    GenFlags gf;
    PromptExample *px;
    int n_px;
    RewardCmd cmds[RL_MAX_CMDS];
    RlRewards rw; /* the reward model and the programs, weighted */
    RlKlController klc;
    RlState rls; /* reinforce baseline */
    RlRollout ro;
    TrainTask task;
    int saving_final;
} Ppo;

static int ppo_flag(void *ctx, int opt, const char *arg) {
    Ppo *p = ctx;
    /* optarg points into argv, which --stop unescapes in place */
    if (gen_flags_parse(&p->gf, PROG, opt, (char *)arg) || rl_flags_parse(&p->rf, PROG, opt, arg)) return 0;
    return -1;
}

/* ---- helpers ------------------------------------------------------------------- */

/* The padding id of the model batches. */
static int pad_id(const Ppo *p) {
    return tok_pad_id(p->tok) >= 0 ? tok_pad_id(p->tok) : 0;
}

/* Rows per forward pass outside the updates (reference, old values, reward model):
 * the size of an update's micro-batch, so no pass needs more activation memory than
 * training itself. */
static int micro_rows(const Ppo *p) {
    long n = (long)p->f->batch_size * p->rf.G;
    long per = (n + p->rf.mini - 1) / p->rf.mini;
    per = (per + p->f->grad_accum - 1) / p->f->grad_accum;
    return per < 1 ? 1 : (int)per;
}

/* ---- rollout ---------------------------------------------------------------------- */

/* Generates G completions for each of the B prompts pidx[0..B) of iteration IT. */
static int generate_batch(Ppo *p, long it, const int *pidx, int B, GenSeq *seqs, Error *e) {
    const int **ids = xmalloc((size_t)B * sizeof(int *));
    int *lens = xmalloc((size_t)B * sizeof(int));
    long *gid = xmalloc((size_t)B * sizeof(long));
    for (int i = 0; i < B; i++) {
        ids[i] = p->px[pidx[i]].ids;
        lens[i] = p->px[pidx[i]].n;
        gid[i] = it * (long)B + i; /* a fresh sampling stream for every generated group */
    }
    GenConfig gc = p->gen;
    int n = B * p->rf.G;
    gc.num_samples = p->rf.G;
    gc.batch_size = n < GEN_SLOTS ? n : GEN_SLOTS; /* results do not depend on it (generate.h) */
    /* decoding reads the weights directly: fold a LoRA adapter in for the generation
     * and restore the base bit for bit afterwards (lora.h) */
    float *saved = lora_merge_temporary(&p->policy);
    lora_set_enabled(&p->policy, 0);
    int rc = generate(&p->policy, &gc, p->tok, ids, lens, gid, B, seqs, NULL, NULL, e);
    lora_set_enabled(&p->policy, 1);
    lora_unmerge(&p->policy, saved);
    free(ids), free(lens), free(gid);
    return rc ? err_prefix(e, "generation") : 0;
}

/* Scores the n generated sequences into p->ro.score (comp: each reward's batch mean)
 * and applies --missing-eos-penalty (TRL: scores[~contains_eos] -= missing_eos_penalty). */
static int score_batch(Ppo *p, long it, const GenSeq *seqs, int n, double *comp, double *comp_std, Error *e) {
    RlRollout *r = &p->ro;
    RlCompletion *cs = xmalloc((size_t)n * sizeof(RlCompletion));
    for (int i = 0; i < n; i++)
        cs[i] = rl_rewards_completion(&seqs[i], &p->px[r->prompt[i]], it * (long)p->f->batch_size + seqs[i].prompt);
    int rc = rl_rewards_score_stats(&p->rw, cs, n, r->score, comp, comp_std, e);
    free(cs);
    for (int i = 0; i < n && !rc; i++)
        if (p->rf.has_eos_penalty && !r->eos[i]) r->score[i] -= p->rf.eos_penalty;
    return rc;
}

/* Reference log-probs (once per batch) and, for ppo, the value model's values before
 * any update: forward passes in chunks of the micro-batch size. */
static int forward_batch(Ppo *p, Error *e) {
    RlRollout *r = &p->ro;
    int rc = 0, rows = micro_rows(p);
    size_t nb = (size_t)(r->ntok ? r->ntok : 1) * sizeof(float);
    if (rl_flags_need_ref(&p->rf)) {
        r->ref_logp = xmalloc(nb);
        Model *ref = p->have_ref ? &p->ref : &p->policy;
        if (!p->have_ref) lora_set_enabled(&p->policy, 0); /* LoRA: the reference is the adapter off */
        rc = rl_rollout_forward(r, p->px, pad_id(p), ref, 0, p->gen.sampler.temperature, rows, r->ref_logp, e);
        if (!p->have_ref) lora_set_enabled(&p->policy, 1);
        if (rc) return rc;
    }
    if (p->rf.algo == RL_ALGO_PPO) {
        r->old_values = xmalloc(nb);
        r->adv_tok = xmalloc(nb);
        r->returns = xmalloc(nb);
        rc = rl_rollout_forward(r, p->px, pad_id(p), &p->vm, 1, p->gen.sampler.temperature, rows, r->old_values, e);
    }
    return rc;
}

/* Generates and scores one batch and computes the advantages; rollout metrics go to
 * *mt (passed to every update of the iteration). */
static int make_rollout(Ppo *p, long it, Metrics *mt, Error *e) {
    RlRollout *r = &p->ro;
    rl_rollout_free(r);
    int B = p->f->batch_size, n = B * p->rf.G;
    int *pidx = xmalloc((size_t)B * sizeof(int));
    rl_rollout_prompts(it, B, p->n_px, p->f->seed, pidx);
    GenSeq *seqs = xcalloc((size_t)n, sizeof(GenSeq));
    double comp[RL_MAX_REWARDS] = {0}, comp_std[RL_MAX_REWARDS] = {0};
    int rc = generate_batch(p, it, pidx, B, seqs, e);
    if (rc == 0) {
        rl_rollout_pack(r, seqs, n, pidx);
        rc = score_batch(p, it, seqs, n, comp, comp_std, e);
    }
    for (int i = 0; i < n; i++) gen_seq_free(&seqs[i]);
    free(seqs), free(pidx);
    if (rc == 0) rc = forward_batch(p, e);
    if (rc) return rc;
    p->cfg.kl_coef = p->klc.coef;
    RlBatch rb = rl_rollout_view(r);
    RlRolloutStats rs;
    rl_advantages(&p->cfg, &rb, &p->rls, &rs);
    RlMetricsInfo info = {.kl_coef = p->klc.coef,
                          .baseline = p->rls.baseline,
                          .comp = comp,
                          .comp_std = comp_std,
                          .rw = &p->rw,
                          .have_rm = p->have_rm,
                          .n_cmds = p->rf.n_cmds};
    rl_metrics_rollout(mt, &p->cfg, r, &rs, &info);
    /* the adaptive controller sees the batch's KL (TRL: kl_ctl.update(mean_kl, batch)) */
    if (p->rf.target_kl > 0) rl_kl_update(&p->klc, rs.kl, n);
    return 0;
}

/* ---- the task callbacks ------------------------------------------------------------ */

static double ppo_weight(void *ctx, Split split, const int *idx, int n) {
    Ppo *p = ctx;
    (void)split;
    int *len = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    for (int j = 0; j < n; j++) len[j] = p->ro.len[idx[j]];
    double w = rl_loss_weight(&p->cfg, len, n);
    free(len);
    return w;
}

static int ppo_micro_step(void *ctx, Split split, const int *seq, int k, double scale, Metrics *mt, Error *e) {
    Ppo *p = ctx;
    if (split != SPLIT_TRAIN) return err_set(e, EX_SOFTWARE, "ppo has no evaluation split");
    RlSeqBatch sb;
    int rc = rl_rollout_batch(&p->ro, p->px, pad_id(p), seq, k, &sb, e);
    if (rc) return rc;
    size_t ntok = (size_t)sb.ntok, nb = (ntok ? ntok : 1) * sizeof(float);
    int ppo = p->rf.algo == RL_ALGO_PPO;
    RlSlices sl; /* the micro-batch's slices of the rollout arrays */
    rl_rollout_gather(&p->ro, seq, k, sb.off, sb.ntok, &sl);
    float *logp = xmalloc(nb), *ent = xmalloc(nb), *dlogp = xmalloc(nb);
    float *vals = ppo ? xmalloc(nb) : NULL, *dvals = ppo ? xmalloc(nb) : NULL;
    rl_lm_logprobs(&p->policy, &sb, p->gen.sampler.temperature, logp, ent);
    double ent_sum = 0;
    for (size_t t = 0; t < ntok; t++) ent_sum += ent[t];
    if (ppo) rl_values(&p->vm, &sb, vals);
    RlStats st;
    memset(&st, 0, sizeof st);
    double loss = rl_loss(&p->cfg, logp, sl.old_logp, sl.ref_logp, vals, sl.old_values, sl.adv_tok, sl.returns, sl.adv,
                          sb.off, sb.len, k, scale, dlogp, dvals, &st);
    if (ppo) rl_values_backward(&p->vm, &sb, dvals);
    rl_metrics_update(mt, &p->cfg, &st, ent_sum, (long)ntok, sl.ref_logp != NULL, loss,
                      rl_loss_weight(&p->cfg, sb.len, k));
    rl_lm_backward(&p->policy, &sb, p->gen.sampler.temperature, dlogp);
    for (int j = 0; j < sb.b.B; j++) mt->tokens += sb.b.lengths[j];
    rl_batch_free(&sb);
    rl_rollout_slices_free(&sl);
    free(logp), free(ent), free(dlogp), free(vals), free(dvals);
    return 0;
}

/* Checkpoints hold the policy, value_model/ (ppo) and ppo_state.safetensors: the
 * value model's AdamW moments and, in metadata, the adaptive KL coefficient and the
 * REINFORCE baseline, so a run resumed at an iteration boundary continues exactly.
 * The final output holds the policy only (what the next pipeline stage reads). */
static int ppo_save(void *ctx, const char *dir, Error *e) {
    Ppo *p = ctx;
    if (p->saving_final && p->f->lora_merge) lora_merge(&p->policy); /* --merge */
    int rc = model_save(&p->policy, dir, p->f->model_dir, e);
    if (rc || p->saving_final) return rc;
    if (p->have_vm) {
        char *vd = path_join(dir, "value_model");
        rc = model_save(&p->vm, vd, NULL, e);
        free(vd);
        if (rc) return rc;
    }
    return rl_ckpt_write(dir, p->have_vm ? &p->vopt : NULL, &p->klc, &p->rls, e);
}

static int ppo_load(void *ctx, const char *dir, Error *e) {
    Ppo *p = ctx;
    int rc = model_load_params(&p->policy, dir, e);
    if (rc == 0 && p->have_vm) {
        char *vd = path_join(dir, "value_model");
        rc = model_load_params(&p->vm, vd, e);
        free(vd);
    }
    if (rc == 0) rc = rl_ckpt_read(dir, p->have_vm ? &p->vopt : NULL, &p->klc, &p->rls, e);
    return rc;
}

/* ---- models -------------------------------------------------------------------------- */

/* The value model: a classifier copy of DIR's trunk.  A causal LM (the policy) gets
 * a fresh score head, N(0, initializer_range) as transformers initialises it
 * (model_classifier_from_lm). */
static int load_value_model(Ppo *p, const char *dir, Error *e) {
    Model src;
    int rc = model_load(&src, dir, e);
    if (rc) return rc;
    lora_merge(&src); /* the value model is trained in full, from the merged weights */
    if (src.cfg.is_classifier) {
        p->vm = src;
        return 0;
    }
    model_classifier_from_lm(&p->vm, &src, p->f->seed ^ 0x76616c7565ULL /* "value" */);
    model_free(&src);
    return 0;
}

/* The policy, its tokenizer and EOS ids, the reward model, the reference (when a KL
 * term is on) and the value model (ppo); exits on error. */
static void load_models(Ppo *p) {
    const TrainFlags *f = p->f;
    Error e;
    memset(&e, 0, sizeof e);
    if (model_load(&p->policy, f->model_dir, &e)) err_die(PROG, &e);
    if (p->policy.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a sequence classifier (reward model); the policy must be a causal LM",
                        f->model_dir);
    if (train_lora_setup(f, &p->policy, &e)) err_die(PROG, &e);
    if (model_tokenizer_load(&p->tok, f->model_dir, &e)) err_die(PROG, &e);
    if (p->policy.cfg.max_seq - p->gen.max_new_tokens < 1)
        cli_usage_error(PROG, "--max-new-tokens %d leaves no room for a prompt in the %d-token context",
                        p->gen.max_new_tokens, p->policy.cfg.max_seq);
    if (gen_collect_eos(&p->gen, &p->policy, p->tok, f->model_dir, &e)) err_die(PROG, &e);
    if (p->rf.rm_dir) {
        if (reward_check_tokenizer(f->model_dir, p->rf.rm_dir, &e)) err_die(PROG, &e);
        if (model_load(&p->rm, p->rf.rm_dir, &e)) err_die(PROG, &e);
        lora_merge(&p->rm);
        model_set_forward_only(&p->rm, 1); /* scores only: the same results, less memory */
        if (!p->rm.cfg.is_classifier)
            cli_usage_error(PROG, "--reward-model %s: has no score head (a *ForSequenceClassification directory)",
                            p->rf.rm_dir);
    }
    if (rl_flags_need_ref(&p->rf) && p->policy.lora && !f->ref_dir) {
        if (!f->quiet)
            fprintf(stderr, "%s: reference = the policy with its LoRA adapter off (no second model in memory)\n", PROG);
    } else if (rl_flags_need_ref(&p->rf)) {
        const char *rd = f->ref_dir ? f->ref_dir : f->model_dir;
        if (model_load(&p->ref, rd, &e)) err_die(PROG, &e);
        model_set_forward_only(&p->ref, 1); /* forwards only: the same results, less memory */
        if (p->ref.cfg.is_classifier || p->ref.cfg.vocab_size != p->policy.cfg.vocab_size)
            cli_usage_error(PROG, "--ref %s: must be a causal LM with the policy's vocabulary (%d tokens)", rd,
                            p->policy.cfg.vocab_size);
        p->have_ref = 1;
    }
    if (p->rf.algo == RL_ALGO_PPO) {
        const char *vd = p->rf.vm_dir ? p->rf.vm_dir : p->rf.rm_dir ? p->rf.rm_dir : f->model_dir;
        if (p->rf.vm_dir && reward_check_tokenizer(f->model_dir, p->rf.vm_dir, &e)) err_die(PROG, &e);
        if (load_value_model(p, vd, &e)) err_die(PROG, &e);
        if (p->vm.cfg.vocab_size != p->policy.cfg.vocab_size)
            cli_usage_error(PROG, "--value-model %s: vocabulary of %d tokens, the policy has %d", vd,
                            p->vm.cfg.vocab_size, p->policy.cfg.vocab_size);
        p->have_vm = 1;
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* The value model's update at the lr the policy's update just used, with its own
 * gradient clipping (TRL clips policy and value jointly; see the top of the file). */
static int value_step(Ppo *p, const Trainer *tr, Error *e) {
    const TrainFlags *f = p->f;
    double lr = f->lr * lr_lambda(f->scheduler, tr->step - 1, tr->warmup, tr->total_steps);
    double vn = grad_norm(p->vm.grads, p->vm.n_params);
    if (!isfinite(vn)) return err_set(e, EX_SOFTWARE, "step %ld: value-model gradient norm is %g", tr->step, vn);
    /* the clipping factor applied in AdamW's own pass */
    adamw_step_scaled(&p->vopt, p->vm.params, p->vm.grads, (float)lr, grad_clip_coef(vn, f->clip_grad));
    return 0;
}

/* The --num-ppo-epochs passes over iteration IT's batch, each a fresh shuffle split
 * into --num-mini-batches updates of up to --grad-accum micro-batches.  *sig is set
 * when a signal asks to stop. */
static int optimise_batch(Ppo *p, Trainer *tr, long it, long total, Metrics *roll, int *sig, Error *e) {
    const TrainFlags *f = p->f;
    const long n_seq = (long)f->batch_size * p->rf.G;
    int *order = xmalloc((size_t)n_seq * sizeof(int));
    const int **idx = xmalloc((size_t)(n_seq + 1) * sizeof *idx);
    int *cnt = xmalloc((size_t)(n_seq + 1) * sizeof(int));
    int rc = 0;
    for (int ep = 0; ep < p->rf.ppo_epochs && rc == 0 && tr->step < total && !*sig; ep++) {
        rl_rollout_pass_order(f->seed, it * p->rf.ppo_epochs + ep, order, n_seq);
        for (int mb = 0; mb < p->rf.mini && rc == 0 && tr->step < total; mb++) {
            long lo = n_seq * mb / p->rf.mini, hi = n_seq * (mb + 1) / p->rf.mini;
            int n_micro = rl_rollout_micro_split(order, lo, hi, f->grad_accum, idx, cnt);
            if (p->have_vm) model_zero_grad(&p->vm);
            rc = trainer_step(tr, n_micro, idx, cnt, roll, NULL, e);
            if (rc == 0 && p->have_vm) rc = value_step(p, tr, e);
            if (rc == 0 && (*sig = trainer_stop_signal()) != 0) break;
        }
    }
    free(order), free(idx), free(cnt);
    return rc;
}

/* Iterations until the last update (--max-steps, --episodes or --epochs), and the
 * updates that makes. */
static long plan_iterations(const Ppo *p, long *total) {
    const TrainFlags *f = p->f;
    const long per_iter = (long)p->rf.ppo_epochs * p->rf.mini, n_seq = (long)f->batch_size * p->rf.G;
    long iters;
    if (f->max_steps > 0)
        iters = (f->max_steps + per_iter - 1) / per_iter;
    else if (p->rf.episodes > 0)
        iters = (p->rf.episodes + n_seq - 1) / n_seq;
    else
        iters = (long)ceil(f->epochs * (double)p->n_px / f->batch_size - 1e-9);
    if (iters < 1) iters = 1;
    *total = f->max_steps > 0 ? f->max_steps : iters * per_iter;
    return iters;
}

static int start_trainer(Ppo *p, Trainer *tr, long total, Error *e) {
    const TrainFlags *f = p->f;
    TrainTask *t = &p->task; /* the trainer keeps a pointer to it */
    memset(t, 0, sizeof *t);
    t->ctx = p;
    t->model = &p->policy;
    t->tokenizer_dir = f->model_dir;
    t->n_train = p->n_px;
    t->weight = ppo_weight;
    t->micro_step = ppo_micro_step;
    t->save = ppo_save;
    t->load = ppo_load;
    long steps_per_epoch = (long)ceil((double)p->n_px / f->batch_size) * p->rf.ppo_epochs * p->rf.mini;
    if (p->have_vm) { /* before trainer_init, whose --resume restores its state (ppo_load) */
        model_enable_grads(&p->vm);
        adamw_init_model(&p->vopt, &p->vm, (float)f->weight_decay);
        p->vopt.beta1 = (float)f->beta1, p->vopt.beta2 = (float)f->beta2, p->vopt.eps = (float)f->adam_eps;
        t->extra_grads = p->vm.grads; /* summed over ranks with the policy's (train.h) */
        t->n_extra_grads = p->vm.n_params;
    }
    return trainer_init(tr, f, t, total, steps_per_epoch, e);
}

/* Writes the final model, or a checkpoint when the run stopped early; returns the
 * exit status (128 + signal when a signal stopped it). */
static int finish_run(Ppo *p, Trainer *tr, long total, int rc, int sig, Error *e) {
    const TrainFlags *f = p->f;
    int stopped_early = tr->step < total;
    if (rc == 0 && stopped_early) {
        if (sig > 0 && !f->quiet)
            fprintf(stderr, "%s: %s: writing a checkpoint at step %ld\n", PROG, strsignal(sig), tr->step);
        rc = trainer_checkpoint(tr, e);
    }
    if (rc == 0 && !stopped_early) {
        p->saving_final = 1;
        rc = trainer_save_final(tr, e);
        if (rc == 0 && !f->quiet) fprintf(stderr, "%s: done: %ld updates, model in %s\n", PROG, tr->step, f->out_dir);
    }
    Error e2;
    int rc2 = trainer_finish(tr, &e2);
    if (rc == 0 && rc2) {
        *e = e2;
        rc = rc2;
    }
    return dist_agree(rc ? rc : stopped_early && sig > 0 ? 128 + sig : 0, e);
}

static int run(Ppo *p, Error *e) {
    const TrainFlags *f = p->f;
    const long per_iter_updates = (long)p->rf.ppo_epochs * p->rf.mini;
    long total, iters = plan_iterations(p, &total);
    Trainer tr;
    int rc = start_trainer(p, &tr, total, e);
    if (rc) return rc;
    if (!f->quiet)
        fprintf(stderr,
                "%s: %s on %d prompts: %ld iterations of %d prompts x %d generations, %d epochs x %d mini-batches "
                "(%ld updates), lr %g%s%s\n",
                PROG, rl_algo_name(p->rf.algo), p->n_px, iters, f->batch_size, p->rf.G, p->rf.ppo_epochs, p->rf.mini,
                total, f->lr, p->have_ref ? ", reference loaded" : "", p->have_vm ? ", value model" : "");
    int sig = 0;
    long it = tr.step / per_iter_updates;
    /* a resumed run restarts the interrupted iteration from its first update */
    long skip = tr.step % per_iter_updates;
    if (skip && !f->quiet)
        fprintf(stderr, "%s: resuming mid-iteration: %ld update(s) of iteration %ld are redone on a fresh batch\n",
                PROG, skip, it + 1);
    while (rc == 0 && tr.step < total && !sig) {
        long step0 = tr.step;
        Metrics roll;
        metrics_reset(&roll);
        rc = make_rollout(p, it, &roll, e);
        /* every rank generates and scores the same batch; a reward program that
         * failed on one rank stops them all at the same point (dist.h) */
        rc = dist_agree(rc, e);
        if (rc) {
            /* a failed reward program (or generation) stops training with a checkpoint */
            Error e2;
            if (tr.step > 0 && trainer_checkpoint(&tr, &e2) == 0 && !f->quiet)
                fprintf(stderr, "%s: stopped at step %ld; checkpoint written\n", PROG, tr.step);
            break;
        }
        rc = optimise_batch(p, &tr, it, total, &roll, &sig, e);
        it++;
        /* --save-every and --stop-after act at the end of the iteration that reaches
         * them: a checkpoint between iterations resumes bit for bit (a signal stops
         * at once; its resumed run regenerates the interrupted iteration's batch) */
        if (rc == 0 && !sig && tr.step < total) {
            if (f->save_every > 0 && tr.step / f->save_every > step0 / f->save_every) rc = trainer_checkpoint(&tr, e);
            if (f->stop_after > 0 && tr.step >= f->stop_after) sig = -1;
        }
    }
    return finish_run(p, &tr, total, rc, sig, e);
}

/* ---- main ------------------------------------------------------------------------------ */

/* Flags, defaults and the checks that need no model; exits on a usage error. */
static void parse_flags(Ppo *p, TrainFlags *f, int argc, char **argv) {
    memset(p, 0, sizeof *p);
    rl_flags_default(&p->rf);
    p->gen = gen_config_default();
    p->gen.max_new_tokens = 32;
    gen_flags_init(&p->gf, &p->gen);
    train_flags_default(f, PROG);
    f->lr = 3e-6; /* TRL PPOConfig learning_rate */
    f->batch_size = 8;
    train_flags_parse(f, argc, argv, ppo_opts, "", ppo_flag, p, usage);
    p->f = f;
    rl_flags_finish(&p->rf, PROG, f->batch_size);
    if (!p->gf.has_temperature) p->gen.sampler.temperature = p->rf.algo == RL_ALGO_PPO ? 0.7f : 1.0f;
    gen_flags_finish(&p->gf, PROG);
    if (!(p->gen.sampler.temperature > 0))
        cli_usage_error(PROG, "--temperature: must be > 0 (the log-probs are of softmax(logits / T)), got %g",
                        p->gen.sampler.temperature);
    p->gen.seed = f->seed;
    if (f->eval_path) cli_usage_error(PROG, "--eval is not supported (evaluate the output with cherry-eval(1))");
    p->cfg = rl_flags_config(&p->rf, p->gen.max_new_tokens);
    p->klc.coef = p->rf.kl_coef;
    p->klc.target = p->rf.target_kl;
    p->klc.horizon = p->rf.kl_horizon;
    p->have_rm = p->rf.rm_dir != NULL;
    rl_flags_weights(&p->rf, PROG, p->rw.weights);
}

/* The prompts (each cut to leave room for --max-new-tokens) and the reward programs. */
static void read_inputs(Ppo *p) {
    const TrainFlags *f = p->f;
    Error e;
    memset(&e, 0, sizeof e);
    DataOptions o;
    data_options_default(&o);
    o.kind = DATA_AUTO;
    if (chat_template_parse(f->template_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    o.skip_invalid = f->skip_invalid;
    int room = p->policy.cfg.max_seq - p->gen.max_new_tokens;
    o.max_prompt_length = f->max_prompt_length > 0 && f->max_prompt_length < room ? f->max_prompt_length : room;
    o.truncation = TRUNC_KEEP_END;
    if (data_read_files_prompts(PROG, f->inputs, f->n_inputs, p->tok, &o, f->quiet, &p->px, &p->n_px, &e))
        err_die(PROG, &e);
    if (p->n_px == 0) {
        fprintf(stderr, "%s: no prompts\n", PROG);
        exit(EX_DATAERR);
    }
    for (int c = 0; c < p->rf.n_cmds; c++)
        if (rewardcmd_start(&p->cmds[c], p->rf.cmd_s[c], p->rf.timeout, &e)) err_die(PROG, &e);
    p->rw.rm = p->have_rm ? &p->rm : NULL;
    p->rw.rm_name = p->rf.rm_dir;
    p->rw.rm_batch = micro_rows(p);
    p->rw.cmds = p->cmds;
    p->rw.n_cmds = p->rf.n_cmds;
    p->rw.tok = p->tok;
}

int main(int argc, char **argv) {
    cli_init(PROG);
    Ppo p;
    TrainFlags f;
    parse_flags(&p, &f, argc, argv);
    atomic_install_signal_cleanup();
    load_models(&p);
    read_inputs(&p);
    Error e;
    memset(&e, 0, sizeof e);
    int rc = run(&p, &e);
    for (int c = 0; c < p.rf.n_cmds; c++) rewardcmd_close(&p.cmds[c]);
    if (rc > 0 && rc < 128) err_die(PROG, &e);

    rl_rollout_free(&p.ro);
    for (int i = 0; i < p.n_px; i++) prompt_example_free(&p.px[i]);
    free(p.px);
    if (p.have_vm) adamw_free(&p.vopt), model_free(&p.vm);
    if (p.have_ref) model_free(&p.ref);
    if (p.have_rm) model_free(&p.rm);
    tok_free(p.tok);
    model_free(&p.policy);
    return rc;
}
