/* rl_flags.c — the flags of online RL (rl_flags.h). */
#include "rl_flags.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"

void rl_flags_usage(FILE *out) {
    fputs("Rewards:\n"
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
}

void rl_flags_default(RlFlags *p) {
    memset(p, 0, sizeof *p);
    p->mini = 1;
    p->timeout = 60;
    p->kl_coef = 0.05;     /* TRL PPOConfig / RLOOConfig kl_coef */
    p->kl_horizon = 10000; /* TRL AdaptiveKLController horizon */
    p->gamma = 1.0;        /* TRL PPOConfig */
    p->lam = 0.95;
    p->cliprange = 0.2;
    p->cliprange_value = 0.2;
    p->vf_coef = 0.1;
    p->eps = 0.2; /* TRL GRPOConfig epsilon */
    p->decay = 0.9;
    p->loss_type = RL_LOSS_DAPO; /* TRL GRPOConfig default */
    p->scale = RL_SCALE_GROUP;
}

/* The real-valued flags: where each goes, its range (cli_double_in) and the "given"
 * flag it sets (-1: none). */
typedef struct RealFlag {
    const char *name;
    size_t off;
    double lo, hi;
    long has;
    int opt, lo_open, hi_open;
} RealFlag;

#define RF(o, n, field, lo, lo_open, hi, hi_open, has)                                                                 \
    { n, offsetof(RlFlags, field), lo, hi, has, o, lo_open, hi_open }
static const RealFlag REAL_FLAGS[] = {
    RF(RL_OPT_TIMEOUT, "--reward-timeout", timeout, 0, 0, INFINITY, 0, -1),
    RF(RL_OPT_EOSPEN, "--missing-eos-penalty", eos_penalty, -INFINITY, 0, INFINITY, 0,
       (long)offsetof(RlFlags, has_eos_penalty)),
    RF(RL_OPT_KLCOEF, "--kl-coef", kl_coef, 0, 0, INFINITY, 0, -1),
    RF(RL_OPT_TARGETKL, "--target-kl", target_kl, 0, 0, INFINITY, 0, -1),
    RF(RL_OPT_KLHORIZON, "--kl-horizon", kl_horizon, 0, 1, INFINITY, 0, -1),
    RF(RL_OPT_BETA, "--beta", beta, 0, 0, INFINITY, 0, -1),
    RF(RL_OPT_GAMMA, "--gamma", gamma, 0, 0, 1, 0, -1),
    RF(RL_OPT_LAM, "--lam", lam, 0, 0, 1, 0, -1),
    RF(RL_OPT_CLIP, "--cliprange", cliprange, 0, 1, INFINITY, 0, -1),
    RF(RL_OPT_CLIPV, "--cliprange-value", cliprange_value, 0, 1, INFINITY, 0, -1),
    RF(RL_OPT_VFCOEF, "--vf-coef", vf_coef, 0, 0, INFINITY, 0, -1),
    RF(RL_OPT_EPS, "--epsilon", eps, 0, 1, 1, 1, -1),
    RF(RL_OPT_EPSHIGH, "--epsilon-high", eps_high, 0, 1, INFINITY, 0, (long)offsetof(RlFlags, has_eps_high)),
    RF(RL_OPT_DECAY, "--baseline-decay", decay, 0, 0, 1, 1, -1),
};
#undef RF

static int real_flag(RlFlags *p, const char *prog, int opt, const char *arg) {
    for (size_t i = 0; i < sizeof REAL_FLAGS / sizeof REAL_FLAGS[0]; i++) {
        const RealFlag *r = &REAL_FLAGS[i];
        if (r->opt != opt) continue;
        *(double *)((char *)p + r->off) = cli_double_in(prog, r->name, arg, r->lo, r->lo_open, r->hi, r->hi_open);
        if (r->has >= 0) *(int *)((char *)p + r->has) = 1;
        return 1;
    }
    return 0;
}

int rl_flags_parse(RlFlags *p, const char *prog, int opt, const char *arg) {
    if (real_flag(p, prog, opt, arg)) return 1;
    switch (opt) {
    case RL_OPT_ALGO:
        if ((int)(p->algo = (RlAlgo)rl_algo_parse(arg)) < 0)
            cli_usage_error(prog, "--algo: expected ppo, grpo, rloo or reinforce, got '%s'", arg);
        return 1;
    case RL_OPT_NGEN:
        p->G = cli_int_min(prog, "--num-generations", arg, 1);
        p->has_G = 1;
        return 1;
    case RL_OPT_EPOCHS_PPO:
        p->ppo_epochs = cli_int_min(prog, "--num-ppo-epochs", arg, 1);
        p->has_epochs = 1;
        return 1;
    case RL_OPT_MINI:
        p->mini = cli_int_min(prog, "--num-mini-batches", arg, 1);
        return 1;
    case RL_OPT_EPISODES:
        p->episodes = cli_ll_min(prog, "--episodes", arg, 1);
        return 1;
    case RL_OPT_RM:
        p->rm_dir = arg;
        return 1;
    case RL_OPT_VM:
        p->vm_dir = arg;
        return 1;
    case RL_OPT_WEIGHTS:
        p->weights_s = arg;
        return 1;
    case RL_OPT_CMD:
        if (p->n_cmds >= RL_MAX_CMDS) cli_usage_error(prog, "--reward-cmd: at most %d reward programs", RL_MAX_CMDS);
        if (!*arg) cli_usage_error(prog, "--reward-cmd: empty command");
        p->cmd_s[p->n_cmds++] = arg;
        return 1;
    case RL_OPT_KLEST:
        if ((int)(p->kl_est = (RlKlEstimator)rl_kl_estimator_parse(arg)) < 0)
            cli_usage_error(prog, "--kl-estimator: expected k1 or k3, got '%s'", arg);
        return 1;
    case RL_OPT_SCALE:
        if ((int)(p->scale = (RlScaleRewards)rl_scale_rewards_parse(arg)) < 0)
            cli_usage_error(prog, "--scale-rewards: expected group, batch or none, got '%s'", arg);
        return 1;
    case RL_OPT_LOSSTYPE:
        if ((int)(p->loss_type = (RlLossType)rl_loss_type_parse(arg)) < 0)
            cli_usage_error(prog, "--loss-type: expected grpo, bnpo, dr_grpo or dapo, got '%s'", arg);
        return 1;
    }
    return 0;
}

void rl_flags_finish(RlFlags *p, const char *prog, int batch_size) {
    if (!p->has_G) p->G = p->algo == RL_ALGO_GRPO || p->algo == RL_ALGO_RLOO ? 4 : 1;
    if (!p->has_epochs) p->ppo_epochs = p->algo == RL_ALGO_GRPO || p->algo == RL_ALGO_REINFORCE ? 1 : 4;
    if (!p->has_eps_high) p->eps_high = p->eps;
    if (p->algo == RL_ALGO_RLOO && p->G < 2) cli_usage_error(prog, "--algo rloo needs --num-generations >= 2");
    if (p->algo == RL_ALGO_GRPO && p->G < 2 && p->scale == RL_SCALE_GROUP)
        cli_usage_error(prog, "--algo grpo needs --num-generations >= 2 (the group is the baseline)");
    if (!p->rm_dir && !p->n_cmds)
        cli_usage_error(prog, "a reward is needed: --reward-model DIR and/or --reward-cmd CMD");
    if ((long)batch_size * p->G < p->mini)
        cli_usage_error(prog, "--num-mini-batches %d is more than the %d sequences of a batch", p->mini,
                        batch_size * p->G);
}

RlConfig rl_flags_config(const RlFlags *p, int max_new) {
    return (RlConfig){.algo = p->algo,
                      .G = p->G,
                      .kl_coef = p->kl_coef,
                      .kl_est = p->kl_est,
                      .gamma = p->gamma,
                      .lam = p->lam,
                      .cliprange = p->cliprange,
                      .cliprange_value = p->cliprange_value,
                      .vf_coef = p->vf_coef,
                      .eps_low = p->eps,
                      .eps_high = p->eps_high,
                      .beta = p->beta,
                      .scale = p->scale,
                      .loss_type = p->loss_type,
                      .max_completion_length = max_new,
                      .baseline_decay = p->decay};
}

void rl_flags_weights(const RlFlags *p, const char *prog, double *w) {
    int n = (p->rm_dir != NULL) + p->n_cmds;
    for (int k = 0; k < n; k++) w[k] = 1.0;
    if (!p->weights_s) return;
    char *s = xstrdup(p->weights_s), *save = NULL;
    int k = 0;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (k >= n) cli_usage_error(prog, "--reward-weights: %d weights for %d rewards", k + 1, n);
        w[k++] = cli_double(prog, "--reward-weights", tok);
    }
    if (k != n) cli_usage_error(prog, "--reward-weights: %d weights for %d rewards (model first, then programs)", k, n);
    free(s);
}

int rl_flags_need_ref(const RlFlags *p) {
    return p->algo == RL_ALGO_GRPO ? p->beta != 0 : p->kl_coef != 0 || p->target_kl > 0;
}
