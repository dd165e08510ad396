/* rl_flags.c — the flags of online RL (rl_flags.h). */
#include "rl_flags.h"

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

static double pos_double(const char *prog, const char *flag, const char *arg, int allow_zero) {
    double v = cli_double(prog, flag, arg);
    if (!(allow_zero ? v >= 0 : v > 0))
        cli_usage_error(prog, "%s: must be %s, got '%s'", flag, allow_zero ? ">= 0" : "> 0", arg);
    return v;
}

int rl_flags_parse(RlFlags *p, const char *prog, int opt, const char *arg) {
    switch (opt) {
    case RL_OPT_ALGO:
        if ((int)(p->algo = (RlAlgo)rl_algo_parse(arg)) < 0)
            cli_usage_error(prog, "--algo: expected ppo, grpo, rloo or reinforce, got '%s'", arg);
        return 1;
    case RL_OPT_NGEN:
        p->G = cli_int(prog, "--num-generations", arg);
        if (p->G < 1) cli_usage_error(prog, "--num-generations: must be >= 1, got '%s'", arg);
        p->has_G = 1;
        return 1;
    case RL_OPT_EPOCHS_PPO:
        p->ppo_epochs = cli_int(prog, "--num-ppo-epochs", arg);
        if (p->ppo_epochs < 1) cli_usage_error(prog, "--num-ppo-epochs: must be >= 1, got '%s'", arg);
        p->has_epochs = 1;
        return 1;
    case RL_OPT_MINI:
        p->mini = cli_int(prog, "--num-mini-batches", arg);
        if (p->mini < 1) cli_usage_error(prog, "--num-mini-batches: must be >= 1, got '%s'", arg);
        return 1;
    case RL_OPT_EPISODES:
        p->episodes = cli_ll(prog, "--episodes", arg);
        if (p->episodes < 1) cli_usage_error(prog, "--episodes: must be >= 1, got '%s'", arg);
        return 1;
    case RL_OPT_RM:
        p->rm_dir = arg;
        return 1;
    case RL_OPT_CMD:
        if (p->n_cmds >= RL_MAX_CMDS) cli_usage_error(prog, "--reward-cmd: at most %d reward programs", RL_MAX_CMDS);
        if (!*arg) cli_usage_error(prog, "--reward-cmd: empty command");
        p->cmd_s[p->n_cmds++] = arg;
        return 1;
    case RL_OPT_WEIGHTS:
        p->weights_s = arg;
        return 1;
    case RL_OPT_TIMEOUT:
        p->timeout = pos_double(prog, "--reward-timeout", arg, 1);
        return 1;
    case RL_OPT_EOSPEN:
        p->eos_penalty = cli_double(prog, "--missing-eos-penalty", arg);
        p->has_eos_penalty = 1;
        return 1;
    case RL_OPT_KLCOEF:
        p->kl_coef = pos_double(prog, "--kl-coef", arg, 1);
        return 1;
    case RL_OPT_KLEST:
        if ((int)(p->kl_est = (RlKlEstimator)rl_kl_estimator_parse(arg)) < 0)
            cli_usage_error(prog, "--kl-estimator: expected k1 or k3, got '%s'", arg);
        return 1;
    case RL_OPT_TARGETKL:
        p->target_kl = pos_double(prog, "--target-kl", arg, 1);
        return 1;
    case RL_OPT_KLHORIZON:
        p->kl_horizon = pos_double(prog, "--kl-horizon", arg, 0);
        return 1;
    case RL_OPT_BETA:
        p->beta = pos_double(prog, "--beta", arg, 1);
        return 1;
    case RL_OPT_VM:
        p->vm_dir = arg;
        return 1;
    case RL_OPT_GAMMA:
        p->gamma = pos_double(prog, "--gamma", arg, 1);
        if (p->gamma > 1) cli_usage_error(prog, "--gamma: must be in [0, 1], got '%s'", arg);
        return 1;
    case RL_OPT_LAM:
        p->lam = pos_double(prog, "--lam", arg, 1);
        if (p->lam > 1) cli_usage_error(prog, "--lam: must be in [0, 1], got '%s'", arg);
        return 1;
    case RL_OPT_CLIP:
        p->cliprange = pos_double(prog, "--cliprange", arg, 0);
        return 1;
    case RL_OPT_CLIPV:
        p->cliprange_value = pos_double(prog, "--cliprange-value", arg, 0);
        return 1;
    case RL_OPT_VFCOEF:
        p->vf_coef = pos_double(prog, "--vf-coef", arg, 1);
        return 1;
    case RL_OPT_EPS:
        p->eps = pos_double(prog, "--epsilon", arg, 0);
        if (p->eps >= 1) cli_usage_error(prog, "--epsilon: must be in (0, 1), got '%s'", arg);
        return 1;
    case RL_OPT_EPSHIGH:
        p->eps_high = pos_double(prog, "--epsilon-high", arg, 0);
        p->has_eps_high = 1;
        return 1;
    case RL_OPT_SCALE:
        if ((int)(p->scale = (RlScaleRewards)rl_scale_rewards_parse(arg)) < 0)
            cli_usage_error(prog, "--scale-rewards: expected group, batch or none, got '%s'", arg);
        return 1;
    case RL_OPT_LOSSTYPE:
        if ((int)(p->loss_type = (RlLossType)rl_loss_type_parse(arg)) < 0)
            cli_usage_error(prog, "--loss-type: expected grpo, bnpo, dr_grpo or dapo, got '%s'", arg);
        return 1;
    case RL_OPT_DECAY:
        p->decay = pos_double(prog, "--baseline-decay", arg, 1);
        if (p->decay >= 1) cli_usage_error(prog, "--baseline-decay: must be in [0, 1), got '%s'", arg);
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
