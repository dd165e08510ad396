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
#include "data/data.h"
#include "base/dist.h"
#include "generate/generate.h"
#include "model/lora.h"
#include "train/losses_rl.h"
#include "model/model.h"
#include "train/optim.h"
#include "rl/rl_batch.h"
#include "rl/rl_ckpt.h"
#include "rl/rl_rewards.h"
#include "rl/rl_rollout.h"
#include "formats/tokenizer.h"
#include "train/train.h"

static const char *PROG = "ppo";

#define MAX_CMDS (RL_MAX_REWARDS - 1)

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
          "Generation:\n"
          "      --max-new-tokens N     completion length (default 32)\n"
          "      --temperature T        sampling and log-prob temperature (default 0.7 ppo, else 1)\n"
          "      --top-k K, --top-p P   sampling filters (default off)\n"
          "Rewards:\n"
          "      --reward-model DIR     sequence classifier scoring prompt+completion\n"
          "      --reward-cmd CMD       reward program: JSON lines in, one number per line out\n"
          "                             (repeatable; see ppo(1))\n"
          "      --reward-weights LIST  weights of the rewards, model first (default all 1)\n"
          "      --reward-timeout S     seconds to wait for an answer (default 60; 0 = forever)\n"
          "      --missing-eos-penalty X  subtract X from the score of completions without EOS\n"
          "KL (reference = --ref or the starting policy; not loaded when the coefficient is 0):\n"
          "      --kl-coef X            per-token (ppo) or sequence (rloo, reinforce) penalty (default 0.05)\n"
          "      --kl-estimator K       k1 (default) or k3\n"
          "      --target-kl X          adaptive KL controller target (default 0 = fixed coefficient)\n"
          "      --kl-horizon N         adaptive controller horizon (default 10000)\n"
          "      --beta X               grpo: k3 KL coefficient in the loss (default 0)\n"
          "PPO:\n"
          "      --value-model DIR      initial value model (default: the reward model, else the policy)\n"
          "      --gamma X              discount (default 1)      --lam X   GAE lambda (default 0.95)\n"
          "      --cliprange X          policy ratio clip (default 0.2)\n"
          "      --cliprange-value X    value clip (default 0.2)  --vf-coef X  value loss weight (default 0.1)\n"
          "GRPO:\n"
          "      --epsilon X            lower clip (default 0.2)  --epsilon-high X  upper (default = epsilon)\n"
          "      --scale-rewards S      group (default), batch or none\n"
          "      --loss-type T          grpo, bnpo, dr_grpo or dapo (default dapo)\n"
          "REINFORCE:\n"
          "      --baseline-decay X     moving-average baseline decay (default 0.9)\n"
          "\n",
          out);
    train_flags_usage(out);
}

enum {
    OPT_ALGO = TRAIN_OPT_USER,
    OPT_NGEN,
    OPT_EPOCHS_PPO,
    OPT_MINI,
    OPT_EPISODES,
    OPT_MAXNEW,
    OPT_TEMP,
    OPT_TOPK,
    OPT_TOPP,
    OPT_RM,
    OPT_CMD,
    OPT_WEIGHTS,
    OPT_TIMEOUT,
    OPT_EOSPEN,
    OPT_KLCOEF,
    OPT_KLEST,
    OPT_TARGETKL,
    OPT_KLHORIZON,
    OPT_BETA,
    OPT_VM,
    OPT_GAMMA,
    OPT_LAM,
    OPT_CLIP,
    OPT_CLIPV,
    OPT_VFCOEF,
    OPT_EPS,
    OPT_EPSHIGH,
    OPT_SCALE,
    OPT_LOSSTYPE,
    OPT_DECAY,
};
static const struct option ppo_opts[] = {
    {"algo", required_argument, 0, OPT_ALGO},
    {"num-generations", required_argument, 0, OPT_NGEN},
    {"num-ppo-epochs", required_argument, 0, OPT_EPOCHS_PPO},
    {"num-mini-batches", required_argument, 0, OPT_MINI},
    {"episodes", required_argument, 0, OPT_EPISODES},
    {"max-new-tokens", required_argument, 0, OPT_MAXNEW},
    {"temperature", required_argument, 0, OPT_TEMP},
    {"top-k", required_argument, 0, OPT_TOPK},
    {"top-p", required_argument, 0, OPT_TOPP},
    {"reward-model", required_argument, 0, OPT_RM},
    {"reward-cmd", required_argument, 0, OPT_CMD},
    {"reward-weights", required_argument, 0, OPT_WEIGHTS},
    {"reward-timeout", required_argument, 0, OPT_TIMEOUT},
    {"missing-eos-penalty", required_argument, 0, OPT_EOSPEN},
    {"kl-coef", required_argument, 0, OPT_KLCOEF},
    {"kl-estimator", required_argument, 0, OPT_KLEST},
    {"target-kl", required_argument, 0, OPT_TARGETKL},
    {"kl-horizon", required_argument, 0, OPT_KLHORIZON},
    {"beta", required_argument, 0, OPT_BETA},
    {"value-model", required_argument, 0, OPT_VM},
    {"gamma", required_argument, 0, OPT_GAMMA},
    {"lam", required_argument, 0, OPT_LAM},
    {"cliprange", required_argument, 0, OPT_CLIP},
    {"cliprange-value", required_argument, 0, OPT_CLIPV},
    {"vf-coef", required_argument, 0, OPT_VFCOEF},
    {"epsilon", required_argument, 0, OPT_EPS},
    {"epsilon-high", required_argument, 0, OPT_EPSHIGH},
    {"scale-rewards", required_argument, 0, OPT_SCALE},
    {"loss-type", required_argument, 0, OPT_LOSSTYPE},
    {"baseline-decay", required_argument, 0, OPT_DECAY},
    {0, 0, 0, 0},
};

#define GEN_SLOTS 64 /* sequences decoded together */

typedef struct Ppo {
    RlAlgo algo;
    RlConfig cfg; /* the above, for losses_rl.h (kl_coef follows the controller) */
    int G, ppo_epochs, mini, max_new, top_k;
    long episodes;
    double temperature, top_p, timeout, eos_penalty, kl_coef, target_kl, kl_horizon, beta, gamma, lam, cliprange,
        cliprange_value, vf_coef, eps, eps_high, decay;
    int has_eos_penalty, has_temperature, has_eps_high, has_G, has_epochs;
    RlKlEstimator kl_est;
    RlScaleRewards scale;
    RlLossType loss_type;
    const char *rm_dir, *vm_dir, *weights_s;
    const char *cmd_s[MAX_CMDS];
    int n_cmds;

    const TrainFlags *f;
    Model policy, ref, vm, rm;
    int have_ref, have_vm, have_rm;
    AdamW vopt;
    Tokenizer *tok;
    GenConfig gen;
    PromptExample *px;
    int n_px;
    RewardCmd cmds[MAX_CMDS];
    RlRewards rw; /* the reward model and the programs, weighted */
    RlKlController klc;
    RlState rls; /* reinforce baseline */
    RlRollout ro;
    int saving_final;
} Ppo;

static double pos_double(const char *flag, const char *arg, int allow_zero) {
    double v = cli_double(PROG, flag, arg);
    if (!(allow_zero ? v >= 0 : v > 0))
        cli_usage_error(PROG, "%s: must be %s, got '%s'", flag, allow_zero ? ">= 0" : "> 0", arg);
    return v;
}

static int ppo_flag(void *ctx, int opt, const char *arg) {
    Ppo *p = ctx;
    switch (opt) {
    case OPT_ALGO:
        if ((int)(p->algo = (RlAlgo)rl_algo_parse(arg)) < 0)
            cli_usage_error(PROG, "--algo: expected ppo, grpo, rloo or reinforce, got '%s'", arg);
        return 0;
    case OPT_NGEN:
        p->G = cli_int(PROG, "--num-generations", arg);
        if (p->G < 1) cli_usage_error(PROG, "--num-generations: must be >= 1, got '%s'", arg);
        p->has_G = 1;
        return 0;
    case OPT_EPOCHS_PPO:
        p->ppo_epochs = cli_int(PROG, "--num-ppo-epochs", arg);
        if (p->ppo_epochs < 1) cli_usage_error(PROG, "--num-ppo-epochs: must be >= 1, got '%s'", arg);
        p->has_epochs = 1;
        return 0;
    case OPT_MINI:
        p->mini = cli_int(PROG, "--num-mini-batches", arg);
        if (p->mini < 1) cli_usage_error(PROG, "--num-mini-batches: must be >= 1, got '%s'", arg);
        return 0;
    case OPT_EPISODES:
        p->episodes = cli_ll(PROG, "--episodes", arg);
        if (p->episodes < 1) cli_usage_error(PROG, "--episodes: must be >= 1, got '%s'", arg);
        return 0;
    case OPT_MAXNEW:
        p->max_new = cli_int(PROG, "--max-new-tokens", arg);
        if (p->max_new < 1) cli_usage_error(PROG, "--max-new-tokens: must be >= 1, got '%s'", arg);
        return 0;
    case OPT_TEMP:
        p->temperature = pos_double("--temperature", arg, 0);
        p->has_temperature = 1;
        return 0;
    case OPT_TOPK:
        p->top_k = cli_int(PROG, "--top-k", arg);
        if (p->top_k < 0) cli_usage_error(PROG, "--top-k: must be >= 0, got '%s'", arg);
        return 0;
    case OPT_TOPP:
        p->top_p = pos_double("--top-p", arg, 0);
        if (p->top_p > 1) cli_usage_error(PROG, "--top-p: must be in (0, 1], got '%s'", arg);
        return 0;
    case OPT_RM:
        p->rm_dir = arg;
        return 0;
    case OPT_CMD:
        if (p->n_cmds >= MAX_CMDS) cli_usage_error(PROG, "--reward-cmd: at most %d reward programs", MAX_CMDS);
        if (!*arg) cli_usage_error(PROG, "--reward-cmd: empty command");
        p->cmd_s[p->n_cmds++] = arg;
        return 0;
    case OPT_WEIGHTS:
        p->weights_s = arg;
        return 0;
    case OPT_TIMEOUT:
        p->timeout = pos_double("--reward-timeout", arg, 1);
        return 0;
    case OPT_EOSPEN:
        p->eos_penalty = cli_double(PROG, "--missing-eos-penalty", arg);
        p->has_eos_penalty = 1;
        return 0;
    case OPT_KLCOEF:
        p->kl_coef = pos_double("--kl-coef", arg, 1);
        return 0;
    case OPT_KLEST:
        if ((int)(p->kl_est = (RlKlEstimator)rl_kl_estimator_parse(arg)) < 0)
            cli_usage_error(PROG, "--kl-estimator: expected k1 or k3, got '%s'", arg);
        return 0;
    case OPT_TARGETKL:
        p->target_kl = pos_double("--target-kl", arg, 1);
        return 0;
    case OPT_KLHORIZON:
        p->kl_horizon = pos_double("--kl-horizon", arg, 0);
        return 0;
    case OPT_BETA:
        p->beta = pos_double("--beta", arg, 1);
        return 0;
    case OPT_VM:
        p->vm_dir = arg;
        return 0;
    case OPT_GAMMA:
        p->gamma = pos_double("--gamma", arg, 1);
        if (p->gamma > 1) cli_usage_error(PROG, "--gamma: must be in [0, 1], got '%s'", arg);
        return 0;
    case OPT_LAM:
        p->lam = pos_double("--lam", arg, 1);
        if (p->lam > 1) cli_usage_error(PROG, "--lam: must be in [0, 1], got '%s'", arg);
        return 0;
    case OPT_CLIP:
        p->cliprange = pos_double("--cliprange", arg, 0);
        return 0;
    case OPT_CLIPV:
        p->cliprange_value = pos_double("--cliprange-value", arg, 0);
        return 0;
    case OPT_VFCOEF:
        p->vf_coef = pos_double("--vf-coef", arg, 1);
        return 0;
    case OPT_EPS:
        p->eps = pos_double("--epsilon", arg, 0);
        if (p->eps >= 1) cli_usage_error(PROG, "--epsilon: must be in (0, 1), got '%s'", arg);
        return 0;
    case OPT_EPSHIGH:
        p->eps_high = pos_double("--epsilon-high", arg, 0);
        p->has_eps_high = 1;
        return 0;
    case OPT_SCALE:
        if ((int)(p->scale = (RlScaleRewards)rl_scale_rewards_parse(arg)) < 0)
            cli_usage_error(PROG, "--scale-rewards: expected group, batch or none, got '%s'", arg);
        return 0;
    case OPT_LOSSTYPE:
        if ((int)(p->loss_type = (RlLossType)rl_loss_type_parse(arg)) < 0)
            cli_usage_error(PROG, "--loss-type: expected grpo, bnpo, dr_grpo or dapo, got '%s'", arg);
        return 0;
    case OPT_DECAY:
        p->decay = pos_double("--baseline-decay", arg, 1);
        if (p->decay >= 1) cli_usage_error(PROG, "--baseline-decay: must be in [0, 1), got '%s'", arg);
        return 0;
    }
    return -1;
}

/* ---- helpers ------------------------------------------------------------------- */

static int same_tokenizer(const char *a_dir, const char *b_dir, Error *e) {
    char *a = path_join(a_dir, "tokenizer.json"), *b = path_join(b_dir, "tokenizer.json");
    int rc = 0;
    if (file_exists(b)) {
        char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        if (read_file(a, &x, &nx, e) == 0 && read_file(b, &y, &ny, e) == 0) {
            if (nx != ny || memcmp(x, y, nx))
                rc = err_set(e, EX_USAGE, "%s differs from %s: the model must share the policy's tokenizer", b, a);
        } else {
            rc = e->code;
        }
        free(x), free(y);
    }
    free(a), free(b);
    return rc;
}

/* The padding id of the model batches. */
static int pad_id(const Ppo *p) {
    return tok_pad_id(p->tok) >= 0 ? tok_pad_id(p->tok) : 0;
}

/* Rows per forward pass outside the updates (reference, old values, reward model):
 * the size of an update's micro-batch, so no pass needs more activation memory than
 * training itself. */
static int micro_rows(const Ppo *p) {
    long n = (long)p->f->batch_size * p->G;
    long per = (n + p->mini - 1) / p->mini;
    per = (per + p->f->grad_accum - 1) / p->f->grad_accum;
    return per < 1 ? 1 : (int)per;
}

/* ---- rollout ---------------------------------------------------------------------- */

/* Reference log-probs (once per batch) and, for ppo, the value model's values
 * before any update: forward passes in chunks of the micro-batch size. */
static int rollout_forward(Ppo *p, Model *m, int values, float *out, Error *e) {
    return rl_rollout_forward(&p->ro, p->px, pad_id(p), m, values, (float)p->temperature, micro_rows(p), out, e);
}

static int needs_ref(const Ppo *p) {
    return p->algo == RL_ALGO_GRPO ? p->beta != 0 : p->kl_coef != 0 || p->target_kl > 0;
}

/* Generates and scores one batch and computes the advantages; rollout metrics go to
 * *mt (passed to every update of the iteration). */
static int make_rollout(Ppo *p, long it, Metrics *mt, Error *e) {
    const TrainFlags *f = p->f;
    RlRollout *r = &p->ro;
    rl_rollout_free(r);
    int B = f->batch_size, G = p->G, n = B * G;
    int *pidx = xmalloc((size_t)B * sizeof(int));
    rl_iteration_prompts(it, f->batch_size, p->n_px, f->seed, pidx);
    const int **ids = xmalloc((size_t)B * sizeof(int *));
    int *lens = xmalloc((size_t)B * sizeof(int));
    long *gid = xmalloc((size_t)B * sizeof(long));
    for (int i = 0; i < B; i++) {
        ids[i] = p->px[pidx[i]].ids;
        lens[i] = p->px[pidx[i]].n;
        gid[i] = it * (long)B + i; /* a fresh sampling stream for every generated group */
    }
    GenSeq *seqs = xcalloc((size_t)n, sizeof(GenSeq));
    GenConfig gc = p->gen;
    gc.num_samples = G;
    gc.batch_size = n < GEN_SLOTS ? n : GEN_SLOTS; /* results do not depend on it (generate.h) */
    /* decoding reads the weights directly: fold a LoRA adapter in for the generation
     * and restore the base bit for bit afterwards (lora.h) */
    float *saved = lora_merge_temporary(&p->policy);
    lora_set_enabled(&p->policy, 0);
    int rc = generate(&p->policy, &gc, p->tok, ids, lens, gid, B, seqs, NULL, NULL, e);
    lora_set_enabled(&p->policy, 1);
    lora_unmerge(&p->policy, saved);
    free(ids), free(lens), free(gid);
    if (rc) {
        free(seqs), free(pidx);
        return err_prefix(e, "generation");
    }
    r->n = n;
    r->prompt = xmalloc((size_t)n * sizeof(int));
    r->tokens = xmalloc((size_t)n * sizeof(int *));
    r->len = xmalloc((size_t)n * sizeof(int));
    r->off = xmalloc((size_t)n * sizeof(int));
    r->eos = xmalloc((size_t)n * sizeof(int));
    r->score = xcalloc((size_t)n, sizeof(double));
    r->adv = xcalloc((size_t)n, sizeof(double));
    long ntok = 0;
    for (int i = 0; i < n; i++) {
        r->prompt[i] = pidx[seqs[i].prompt];
        r->len[i] = seqs[i].n_tokens;
        r->off[i] = (int)ntok;
        r->eos[i] = seqs[i].eos;
        ntok += seqs[i].n_tokens;
    }
    r->ntok = ntok;
    r->old_logp = xmalloc((size_t)ntok * sizeof(float));
    for (int i = 0; i < n; i++) {
        r->tokens[i] = xmalloc((size_t)r->len[i] * sizeof(int));
        memcpy(r->tokens[i], seqs[i].tokens, (size_t)r->len[i] * sizeof(int));
        memcpy(r->old_logp + r->off[i], seqs[i].logprobs, (size_t)r->len[i] * sizeof(float));
    }
    RlCompletion *cs = xmalloc((size_t)n * sizeof(RlCompletion));
    for (int i = 0; i < n; i++) {
        const PromptExample *px = &p->px[r->prompt[i]];
        cs[i] = (RlCompletion){.prompt = px->ids,
                               .plen = px->n,
                               .tokens = seqs[i].tokens,
                               .n = seqs[i].n_tokens,
                               .prompt_json = px->prompt,
                               .group = it * (long)B + seqs[i].prompt,
                               .sample = seqs[i].sample,
                               .eos = seqs[i].eos,
                               .stopped = seqs[i].finish == GEN_FINISH_STOP};
    }
    double comp[RL_MAX_REWARDS] = {0}, comp_std[RL_MAX_REWARDS] = {0};
    rc = rl_rewards_score_stats(&p->rw, cs, n, r->score, comp, comp_std, e);
    free(cs);
    for (int i = 0; i < n; i++) gen_seq_free(&seqs[i]);
    free(seqs);
    free(pidx);
    if (rc) return rc;

    /* TRL: scores[~contains_eos] -= missing_eos_penalty */
    long eos_count = 0;
    for (int i = 0; i < n; i++) {
        eos_count += r->eos[i];
        if (p->has_eos_penalty && !r->eos[i]) r->score[i] -= p->eos_penalty;
    }
    if (needs_ref(p)) {
        r->ref_logp = xmalloc((size_t)ntok * sizeof(float));
        if (p->have_ref) {
            rc = rollout_forward(p, &p->ref, 0, r->ref_logp, e);
        } else { /* LoRA: the reference is the policy with its adapter off */
            lora_set_enabled(&p->policy, 0);
            rc = rollout_forward(p, &p->policy, 0, r->ref_logp, e);
            lora_set_enabled(&p->policy, 1);
        }
        if (rc) return rc;
    }
    if (p->algo == RL_ALGO_PPO) {
        r->old_values = xmalloc((size_t)ntok * sizeof(float));
        r->adv_tok = xmalloc((size_t)ntok * sizeof(float));
        r->returns = xmalloc((size_t)ntok * sizeof(float));
        if ((rc = rollout_forward(p, &p->vm, 1, r->old_values, e))) return rc;
    }
    p->cfg.kl_coef = p->klc.coef;
    RlBatch rb = {.n = n,
                  .off = r->off,
                  .len = r->len,
                  .ntok = ntok,
                  .old_logp = r->old_logp,
                  .ref_logp = r->ref_logp,
                  .old_values = r->old_values,
                  .score = r->score,
                  .adv_tok = r->adv_tok,
                  .returns = r->returns,
                  .adv = r->adv};
    RlRolloutStats rs;
    rl_advantages(&p->cfg, &rb, &p->rls, &rs);
    if (p->algo == RL_ALGO_PPO) {
        metrics_add(mt, "objective/kl", rs.kl, 1);
        metrics_add(mt, "objective/entropy", rs.entropy, 1);
        metrics_add(mt, "objective/non_score_reward", rs.non_score_reward, 1);
        metrics_add(mt, "objective/rlhf_reward", rs.rlhf_reward, 1);
        metrics_add(mt, "objective/scores", rs.scores, 1);
        metrics_add(mt, "objective/kl_coef", p->klc.coef, 1);
    } else {
        metrics_add(mt, "reward", rs.scores, 1);
        metrics_add(mt, "reward_std", rs.reward_std, 1);
        if (p->algo != RL_ALGO_GRPO && r->ref_logp) {
            metrics_add(mt, "kl", rs.kl, 1);
            metrics_add(mt, "objective/rlhf_reward", rs.rlhf_reward, 1);
            metrics_add(mt, "objective/kl_coef", p->klc.coef, 1);
        }
        if (p->algo == RL_ALGO_REINFORCE) metrics_add(mt, "baseline", p->rls.baseline, 1);
    }
    /* TRL GRPOTrainer/RLOOTrainer: rewards/<reward_func_name>/mean and /std per reward */
    for (int k = 0; k < (p->have_rm ? 1 : 0) + p->n_cmds; k++) {
        /* rewards/<name>/mean must fit a metric name (METRICS_NAME bytes with its NUL) */
        char rname[METRICS_NAME - 13], name[METRICS_NAME + 16];
        rl_reward_name(&p->rw, k, rname, sizeof rname);
        snprintf(name, sizeof name, "rewards/%s/mean", rname);
        metrics_add(mt, name, comp[k], 1);
        snprintf(name, sizeof name, "rewards/%s/std", rname);
        metrics_add(mt, name, comp_std[k], 1);
    }
    metrics_add(mt, "completions/mean_length", (double)ntok / n, 1);
    metrics_add(mt, "completions/eos_rate", (double)eos_count / n, 1);
    /* TRL 1.x GRPOTrainer/RLOOTrainer's completion statistics: lengths of all and of
     * the terminated (EOS-ended) completions (0 when none), the fraction cut off by the
     * length limit, and the fraction of prompt groups whose rewards are all equal
     * (no learning signal for a group-relative advantage) */
    {
        int lo = n ? r->len[0] : 0, hi = 0, tlo = 0, thi = 0, nt = 0;
        long tsum = 0;
        for (int i = 0; i < n; i++) {
            lo = r->len[i] < lo ? r->len[i] : lo;
            hi = r->len[i] > hi ? r->len[i] : hi;
            if (!r->eos[i]) continue;
            tlo = nt == 0 || r->len[i] < tlo ? r->len[i] : tlo;
            thi = r->len[i] > thi ? r->len[i] : thi;
            tsum += r->len[i];
            nt++;
        }
        metrics_add(mt, "completions/min_length", lo, 1);
        metrics_add(mt, "completions/max_length", hi, 1);
        metrics_add(mt, "completions/clipped_ratio", n ? 1.0 - (double)nt / n : 0, 1);
        metrics_add(mt, "completions/mean_terminated_length", nt ? (double)tsum / nt : 0, 1);
        metrics_add(mt, "completions/min_terminated_length", tlo, 1);
        metrics_add(mt, "completions/max_terminated_length", thi, 1);
        if (p->algo == RL_ALGO_GRPO || p->algo == RL_ALGO_RLOO) {
            int groups = n / p->G, zero = 0;
            for (int g = 0; g < groups; g++) /* TRL: isclose(std, 0), atol 1e-8 */
                zero += rl_std(r->score + (size_t)g * p->G, p->G) <= 1e-8;
            metrics_add(mt, "frac_reward_zero_std", groups ? (double)zero / groups : 0, 1);
        }
    }
    /* the adaptive controller sees the batch's KL (TRL: kl_ctl.update(mean_kl, batch)) */
    if (p->target_kl > 0) rl_kl_update(&p->klc, rs.kl, n);
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
    RlRollout *r = &p->ro;
    if (split != SPLIT_TRAIN) return err_set(e, EX_SOFTWARE, "ppo has no evaluation split");
    RlSeqBatch sb;
    int rc = rl_rollout_batch(r, p->px, pad_id(p), seq, k, &sb, e);
    if (rc) return rc;
    size_t ntok = (size_t)sb.ntok, nb = (ntok ? ntok : 1) * sizeof(float);
    int ppo = p->algo == RL_ALGO_PPO;
    /* the micro-batch's slices of the rollout arrays, in micro-batch order */
    float *old = xmalloc(nb), *ref = r->ref_logp ? xmalloc(nb) : NULL;
    float *adv = ppo ? xmalloc(nb) : NULL, *ov = ppo ? xmalloc(nb) : NULL, *ret = ppo ? xmalloc(nb) : NULL;
    float *logp = xmalloc(nb), *ent = xmalloc(nb), *dlogp = xmalloc(nb);
    float *vals = ppo ? xmalloc(nb) : NULL, *dvals = ppo ? xmalloc(nb) : NULL;
    double *sadv = xmalloc((size_t)k * sizeof(double));
    for (int j = 0; j < k; j++) {
        int i = seq[j];
        size_t o = (size_t)sb.off[j], n = (size_t)r->len[i] * sizeof(float);
        sadv[j] = r->adv[i];
        memcpy(old + o, r->old_logp + r->off[i], n);
        if (ref) memcpy(ref + o, r->ref_logp + r->off[i], n);
        if (ppo) {
            memcpy(adv + o, r->adv_tok + r->off[i], n);
            memcpy(ov + o, r->old_values + r->off[i], n);
            memcpy(ret + o, r->returns + r->off[i], n);
        }
    }
    rl_lm_logprobs(&p->policy, &sb, (float)p->temperature, logp, ent);
    double ent_sum = 0;
    for (size_t t = 0; t < ntok; t++) ent_sum += ent[t];
    if (ppo) rl_values(&p->vm, &sb, vals);
    RlStats st;
    memset(&st, 0, sizeof st);
    double loss =
        rl_loss(&p->cfg, logp, old, ref, vals, ov, adv, ret, sadv, sb.off, sb.len, k, scale, dlogp, dvals, &st);
    if (ppo) {
        rl_values_backward(&p->vm, &sb, dvals);
        metrics_add(mt, "policy/approxkl_avg", st.approxkl, st.tokens);
        metrics_add(mt, "policy/clipfrac_avg", st.clipfrac, st.tokens);
        metrics_add(mt, "loss/policy_avg", st.pg_loss, st.tokens);
        metrics_add(mt, "loss/value_avg", st.vf_loss, st.tokens);
        metrics_add(mt, "val/clipfrac_avg", st.vf_clipfrac, st.tokens);
        metrics_add(mt, "policy/entropy_avg", ent_sum, (double)ntok);
        metrics_add(mt, "val/ratio", st.ratio, st.tokens);
    } else {
        metrics_add(mt, "clip_ratio", st.clipfrac, st.tokens);
        if (p->algo == RL_ALGO_GRPO) { /* TRL >= 0.17's names for the same counts */
            metrics_add(mt, "clip_ratio/low_mean", st.clip_low, st.tokens);
            metrics_add(mt, "clip_ratio/high_mean", st.clip_high, st.tokens);
            metrics_add(mt, "clip_ratio/region_mean", st.clipfrac, st.tokens);
        }
        if (p->algo == RL_ALGO_GRPO && p->beta != 0 && ref) metrics_add(mt, "kl", st.kl, st.tokens);
        if (p->algo != RL_ALGO_GRPO) metrics_add(mt, "policy/approxkl_avg", st.approxkl, st.tokens);
        metrics_add(mt, "entropy", ent_sum, (double)ntok);
    }
    metrics_add(mt, "loss", loss, rl_loss_weight(&p->cfg, sb.len, k));
    rl_lm_backward(&p->policy, &sb, (float)p->temperature, dlogp);
    long tokens = 0;
    for (int j = 0; j < sb.b.B; j++) tokens += sb.b.lengths[j];
    mt->tokens += tokens;
    rl_batch_free(&sb);
    free(old), free(ref), free(adv), free(ov), free(ret), free(logp), free(ent), free(dlogp), free(vals), free(dvals);
    free(sadv);
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
 * a fresh score head, N(0, initializer_range) as transformers initialises it. */
static int load_value_model(Ppo *p, const char *dir, Error *e) {
    Model src;
    memset(&src, 0, sizeof src);
    int rc = model_load(&src, dir, e);
    if (rc) return rc;
    lora_merge(&src); /* the value model is trained in full, from the merged weights */
    if (src.cfg.is_classifier) {
        p->vm = src;
        return 0;
    }
    ModelConfig c = src.cfg;
    c.is_classifier = 1;
    model_create(&p->vm, &c);
    model_init_random(&p->vm, p->f->seed ^ 0x76616c7565ULL /* "value" */);
    for (int i = 0; i < p->vm.n_tensors; i++) {
        const ParamTensor *t = &p->vm.tensors[i];
        const ParamTensor *s = model_find_tensor(&src, t->name);
        if (s && s->numel == t->numel)
            memcpy(p->vm.params + t->offset, src.params + s->offset, t->numel * sizeof(float));
    }
    model_free(&src);
    return 0;
}

static void parse_weights(Ppo *p) {
    int n = p->have_rm + p->n_cmds;
    for (int k = 0; k < n; k++) p->rw.weights[k] = 1.0;
    if (!p->weights_s) return;
    char *s = xstrdup(p->weights_s), *save = NULL;
    int k = 0;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k >= n) cli_usage_error(PROG, "--reward-weights: %d weights for %d rewards", k + 1, n);
        p->rw.weights[k++] = cli_double(PROG, "--reward-weights", tok);
    }
    if (k != n) cli_usage_error(PROG, "--reward-weights: %d weights for %d rewards (model first, then programs)", k, n);
    free(s);
}

static int read_prompts(Ppo *p, const TrainFlags *f, const DataOptions *o, Error *e) {
    char *stdin_path[1] = {"-"};
    char **paths = f->n_inputs ? f->inputs : stdin_path;
    int n_paths = f->n_inputs ? f->n_inputs : 1, cap = 0;
    for (int k = 0; k < n_paths; k++) {
        DataReader *r;
        int rc = data_open(&r, paths[k], p->tok, o, e);
        if (rc) return rc;
        for (;;) {
            if (p->n_px == cap) {
                cap = cap ? 2 * cap : 64;
                p->px = xrealloc(p->px, (size_t)cap * sizeof(PromptExample));
            }
            rc = data_next_prompt(r, &p->px[p->n_px], e);
            if (rc == DATA_END) {
                rc = 0;
                break;
            }
            if (rc) {
                err_prefix(e, "%s", data_reader_name(r));
                break;
            }
            p->n_px++;
        }
        const DataCounts *c = data_counts(r);
        if (!f->quiet && (c->dropped || c->skipped || c->truncated))
            fprintf(stderr, "%s: %s: %ld records, %ld prompts (%ld truncated, %ld dropped, %ld invalid skipped)\n",
                    PROG, paths[k], c->records, c->examples, c->truncated, c->dropped, c->skipped);
        data_close(r);
        if (rc) return rc;
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static int run(Ppo *p, Error *e) {
    const TrainFlags *f = p->f;
    const long per_iter_updates = (long)p->ppo_epochs * p->mini;
    const long n_seq = (long)f->batch_size * p->G;
    long iters;
    if (f->max_steps > 0)
        iters = (f->max_steps + per_iter_updates - 1) / per_iter_updates;
    else if (p->episodes > 0)
        iters = (p->episodes + n_seq - 1) / n_seq;
    else
        iters = (long)ceil(f->epochs * (double)p->n_px / f->batch_size - 1e-9);
    if (iters < 1) iters = 1;
    long total = f->max_steps > 0 ? f->max_steps : iters * per_iter_updates;

    TrainTask t;
    memset(&t, 0, sizeof t);
    t.ctx = p;
    t.model = &p->policy;
    t.tokenizer_dir = f->model_dir;
    t.n_train = p->n_px;
    t.weight = ppo_weight;
    t.micro_step = ppo_micro_step;
    t.save = ppo_save;
    t.load = ppo_load;
    Trainer tr;
    long steps_per_epoch = (long)ceil((double)p->n_px / f->batch_size) * per_iter_updates;
    if (p->have_vm) { /* before trainer_init, whose --resume restores its state (ppo_load) */
        model_enable_grads(&p->vm);
        adamw_init_model(&p->vopt, &p->vm, (float)f->weight_decay);
        p->vopt.beta1 = (float)f->beta1, p->vopt.beta2 = (float)f->beta2, p->vopt.eps = (float)f->adam_eps;
        t.extra_grads = p->vm.grads; /* summed over ranks with the policy's (train.h) */
        t.n_extra_grads = p->vm.n_params;
    }
    int rc = trainer_init(&tr, f, &t, total, steps_per_epoch, e);
    if (rc) return rc;
    if (!f->quiet)
        fprintf(stderr,
                "%s: %s on %d prompts: %ld iterations of %d prompts x %d generations, %d epochs x %d mini-batches "
                "(%ld updates), lr %g%s%s\n",
                PROG, rl_algo_name(p->algo), p->n_px, iters, f->batch_size, p->G, p->ppo_epochs, p->mini, total, f->lr,
                p->have_ref ? ", reference loaded" : "", p->have_vm ? ", value model" : "");

    int *order = xmalloc((size_t)n_seq * sizeof(int));
    const int **idx = xmalloc((size_t)(n_seq + 1) * sizeof *idx);
    int *cnt = xmalloc((size_t)(n_seq + 1) * sizeof(int));
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
        for (int ep = 0; ep < p->ppo_epochs && rc == 0 && tr.step < total && !sig; ep++) {
            for (long i = 0; i < n_seq; i++) order[i] = (int)i;
            Rng r;
            rng_seed(&r, (f->seed ^ 0x6d696e69ULL) * 0x9E3779B97F4A7C15ULL + (uint64_t)(it * p->ppo_epochs + ep) + 1);
            rng_shuffle(&r, order, (size_t)n_seq);
            for (int mb = 0; mb < p->mini && rc == 0 && tr.step < total; mb++) {
                long lo = n_seq * mb / p->mini, hi = n_seq * (mb + 1) / p->mini;
                long size = hi - lo;
                int ga = f->grad_accum < size ? f->grad_accum : (int)size, n_micro = 0;
                for (int g = 0; g < ga; g++) {
                    long a = lo + size * g / ga, z = lo + size * (g + 1) / ga;
                    if (z > a) {
                        idx[n_micro] = order + a;
                        cnt[n_micro++] = (int)(z - a);
                    }
                }
                if (p->have_vm) model_zero_grad(&p->vm);
                rc = trainer_step(&tr, n_micro, idx, cnt, &roll, NULL, e);
                if (rc) break;
                if (p->have_vm) {
                    /* the value model's update at the lr the policy's update used */
                    double lr = f->lr * lr_lambda(f->scheduler, tr.step - 1, tr.warmup, tr.total_steps);
                    double vn = grad_clip_norm(p->vm.grads, p->vm.n_params, f->clip_grad);
                    if (!isfinite(vn)) {
                        rc = err_set(e, EX_SOFTWARE, "step %ld: value-model gradient norm is %g", tr.step, vn);
                        break;
                    }
                    adamw_step(&p->vopt, p->vm.params, p->vm.grads, (float)lr);
                }
                if ((sig = trainer_stop_signal()) != 0) break;
            }
        }
        it++;
        /* --save-every and --stop-after act at the end of the iteration that reaches
         * them: a checkpoint between iterations resumes bit for bit (a signal stops
         * at once; its resumed run regenerates the interrupted iteration's batch) */
        if (rc == 0 && !sig && tr.step < total) {
            if (f->save_every > 0 && tr.step / f->save_every > step0 / f->save_every) rc = trainer_checkpoint(&tr, e);
            if (f->stop_after > 0 && tr.step >= f->stop_after) sig = -1;
        }
    }
    int stopped_early = tr.step < total;
    if (rc == 0 && stopped_early) {
        if (sig > 0 && !f->quiet)
            fprintf(stderr, "%s: %s: writing a checkpoint at step %ld\n", PROG, strsignal(sig), tr.step);
        rc = trainer_checkpoint(&tr, e);
    }
    if (rc == 0 && !stopped_early) {
        p->saving_final = 1;
        rc = trainer_save_final(&tr, e);
        if (rc == 0 && !f->quiet) fprintf(stderr, "%s: done: %ld updates, model in %s\n", PROG, tr.step, f->out_dir);
    }
    Error e2;
    int rc2 = trainer_finish(&tr, &e2);
    if (rc == 0 && rc2) {
        *e = e2;
        rc = rc2;
    }
    free(order), free(idx), free(cnt);
    return dist_agree(rc ? rc : stopped_early && sig > 0 ? 128 + sig : 0, e);
}

int main(int argc, char **argv) {
    Ppo p;
    memset(&p, 0, sizeof p);
    p.mini = 1;
    p.max_new = 32;
    p.top_p = 1.0;
    p.timeout = 60;
    p.kl_coef = 0.05;     /* TRL PPOConfig / RLOOConfig kl_coef */
    p.kl_horizon = 10000; /* TRL AdaptiveKLController horizon */
    p.gamma = 1.0;        /* TRL PPOConfig */
    p.lam = 0.95;
    p.cliprange = 0.2;
    p.cliprange_value = 0.2;
    p.vf_coef = 0.1;
    p.eps = 0.2; /* TRL GRPOConfig epsilon */
    p.decay = 0.9;
    p.loss_type = RL_LOSS_DAPO; /* TRL GRPOConfig default */
    p.scale = RL_SCALE_GROUP;
    TrainFlags f;
    train_flags_default(&f, PROG);
    f.lr = 3e-6; /* TRL PPOConfig learning_rate */
    f.batch_size = 8;
    train_flags_parse(&f, argc, argv, ppo_opts, "", ppo_flag, &p, usage);
    p.f = &f;
    atomic_install_signal_cleanup();
    if (!p.has_G) p.G = p.algo == RL_ALGO_GRPO || p.algo == RL_ALGO_RLOO ? 4 : 1;
    if (!p.has_epochs) p.ppo_epochs = p.algo == RL_ALGO_GRPO || p.algo == RL_ALGO_REINFORCE ? 1 : 4;
    if (!p.has_temperature) p.temperature = p.algo == RL_ALGO_PPO ? 0.7 : 1.0;
    if (!p.has_eps_high) p.eps_high = p.eps;
    if (p.algo == RL_ALGO_RLOO && p.G < 2) cli_usage_error(PROG, "--algo rloo needs --num-generations >= 2");
    if (p.algo == RL_ALGO_GRPO && p.G < 2 && p.scale == RL_SCALE_GROUP)
        cli_usage_error(PROG, "--algo grpo needs --num-generations >= 2 (the group is the baseline)");
    if (!p.rm_dir && !p.n_cmds) cli_usage_error(PROG, "a reward is needed: --reward-model DIR and/or --reward-cmd CMD");
    if (f.eval_path) cli_usage_error(PROG, "--eval is not supported (evaluate the output with cherry-eval(1))");
    if ((long)f.batch_size * p.G < p.mini)
        cli_usage_error(PROG, "--num-mini-batches %d is more than the %d sequences of a batch", p.mini,
                        f.batch_size * p.G);
    p.cfg = (RlConfig){.algo = p.algo,
                       .G = p.G,
                       .kl_coef = p.kl_coef,
                       .kl_est = p.kl_est,
                       .gamma = p.gamma,
                       .lam = p.lam,
                       .cliprange = p.cliprange,
                       .cliprange_value = p.cliprange_value,
                       .vf_coef = p.vf_coef,
                       .eps_low = p.eps,
                       .eps_high = p.eps_high,
                       .beta = p.beta,
                       .scale = p.scale,
                       .loss_type = p.loss_type,
                       .max_completion_length = p.max_new,
                       .baseline_decay = p.decay};
    p.klc.coef = p.kl_coef;
    p.klc.target = p.target_kl;
    p.klc.horizon = p.kl_horizon;
    p.have_rm = p.rm_dir != NULL;
    parse_weights(&p);

    Error e;
    memset(&e, 0, sizeof e);
    if (model_load(&p.policy, f.model_dir, &e)) err_die(PROG, &e);
    if (p.policy.cfg.is_classifier)
        cli_usage_error(PROG, "%s: is a sequence classifier (reward model); the policy must be a causal LM",
                        f.model_dir);
    if (train_lora_setup(&f, &p.policy, &e)) err_die(PROG, &e);
    if (model_tokenizer_load(&p.tok, f.model_dir, &e)) err_die(PROG, &e);
    if (p.policy.cfg.max_seq - p.max_new < 1)
        cli_usage_error(PROG, "--max-new-tokens %d leaves no room for a prompt in the %d-token context", p.max_new,
                        p.policy.cfg.max_seq);

    p.gen = gen_config_default();
    p.gen.max_new_tokens = p.max_new;
    p.gen.seed = f.seed;
    p.gen.sampler.temperature = (float)p.temperature;
    p.gen.sampler.top_k = p.top_k;
    p.gen.sampler.top_p = (float)p.top_p;
    if (sampler_config_check(&p.gen.sampler, &e)) cli_usage_error(PROG, "%s", e.msg);
    if (gen_collect_eos(&p.gen, &p.policy, p.tok, f.model_dir, &e)) err_die(PROG, &e);

    if (p.rm_dir) {
        if (same_tokenizer(f.model_dir, p.rm_dir, &e)) err_die(PROG, &e);
        if (model_load(&p.rm, p.rm_dir, &e)) err_die(PROG, &e);
        lora_merge(&p.rm);
        if (!p.rm.cfg.is_classifier)
            cli_usage_error(PROG, "--reward-model %s: has no score head (a *ForSequenceClassification directory)",
                            p.rm_dir);
    }
    if (needs_ref(&p) && p.policy.lora && !f.ref_dir) {
        if (!f.quiet)
            fprintf(stderr, "%s: reference = the policy with its LoRA adapter off (no second model in memory)\n", PROG);
    } else if (needs_ref(&p)) {
        const char *rd = f.ref_dir ? f.ref_dir : f.model_dir;
        if (model_load(&p.ref, rd, &e)) err_die(PROG, &e);
        if (p.ref.cfg.is_classifier || p.ref.cfg.vocab_size != p.policy.cfg.vocab_size)
            cli_usage_error(PROG, "--ref %s: must be a causal LM with the policy's vocabulary (%d tokens)", rd,
                            p.policy.cfg.vocab_size);
        p.have_ref = 1;
    }
    if (p.algo == RL_ALGO_PPO) {
        const char *vd = p.vm_dir ? p.vm_dir : p.rm_dir ? p.rm_dir : f.model_dir;
        if (p.vm_dir && same_tokenizer(f.model_dir, p.vm_dir, &e)) err_die(PROG, &e);
        if (load_value_model(&p, vd, &e)) err_die(PROG, &e);
        if (p.vm.cfg.vocab_size != p.policy.cfg.vocab_size)
            cli_usage_error(PROG, "--value-model %s: vocabulary of %d tokens, the policy has %d", vd,
                            p.vm.cfg.vocab_size, p.policy.cfg.vocab_size);
        p.have_vm = 1;
    }

    DataOptions o;
    data_options_default(&o);
    o.kind = DATA_AUTO;
    if (chat_template_parse(f.template_name, &o.tpl, &e)) cli_usage_error(PROG, "--template: %s", e.msg);
    o.skip_invalid = f.skip_invalid;
    int room = p.policy.cfg.max_seq - p.max_new;
    o.max_prompt_length = f.max_prompt_length > 0 && f.max_prompt_length < room ? f.max_prompt_length : room;
    o.truncation = TRUNC_KEEP_END;
    if (read_prompts(&p, &f, &o, &e)) err_die(PROG, &e);
    if (p.n_px == 0) {
        fprintf(stderr, "%s: no prompts\n", PROG);
        return EX_DATAERR;
    }
    for (int c = 0; c < p.n_cmds; c++)
        if (rewardcmd_start(&p.cmds[c], p.cmd_s[c], p.timeout, &e)) err_die(PROG, &e);
    p.rw.rm = p.have_rm ? &p.rm : NULL;
    p.rw.rm_name = p.rm_dir;
    p.rw.rm_batch = micro_rows(&p);
    p.rw.cmds = p.cmds;
    p.rw.n_cmds = p.n_cmds;
    p.rw.tok = p.tok;

    int rc = run(&p, &e);
    for (int c = 0; c < p.n_cmds; c++) rewardcmd_close(&p.cmds[c]);
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
