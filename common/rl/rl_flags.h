/* rl_flags.h — the flags of online RL (ppo(1)): algorithm, rewards, KL, and each
 * algorithm's hyper-parameters, with TRL's defaults (PPOConfig, GRPOConfig,
 * RLOOConfig), parsed and checked in one place and turned into the RlConfig of
 * losses_rl.h.  Like train_flags (train.h) and gen_flags (gen_flags.h), a program
 * lists RL_FLAG_OPTIONS in its option table and hands every option to
 * rl_flags_parse.
 * Not for: training flags (train.h), sampling flags (gen_flags.h). */
#ifndef CHERRY_RL_FLAGS_H
#define CHERRY_RL_FLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "rl_rewards.h"
#include "train/losses_rl.h"
#include "train/train.h"

#define RL_MAX_CMDS (RL_MAX_REWARDS - 1)

enum {
    RL_OPT_ALGO = TRAIN_OPT_USER,
    RL_OPT_NGEN,
    RL_OPT_EPOCHS_PPO,
    RL_OPT_MINI,
    RL_OPT_EPISODES,
    RL_OPT_RM,
    RL_OPT_CMD,
    RL_OPT_WEIGHTS,
    RL_OPT_TIMEOUT,
    RL_OPT_EOSPEN,
    RL_OPT_KLCOEF,
    RL_OPT_KLEST,
    RL_OPT_TARGETKL,
    RL_OPT_KLHORIZON,
    RL_OPT_BETA,
    RL_OPT_VM,
    RL_OPT_GAMMA,
    RL_OPT_LAM,
    RL_OPT_CLIP,
    RL_OPT_CLIPV,
    RL_OPT_VFCOEF,
    RL_OPT_EPS,
    RL_OPT_EPSHIGH,
    RL_OPT_SCALE,
    RL_OPT_LOSSTYPE,
    RL_OPT_DECAY,
};

#define RL_FLAG_OPTIONS                                                                                                \
    {"algo", required_argument, 0, RL_OPT_ALGO}, {"num-generations", required_argument, 0, RL_OPT_NGEN},               \
        {"num-ppo-epochs", required_argument, 0, RL_OPT_EPOCHS_PPO},                                                   \
        {"num-mini-batches", required_argument, 0, RL_OPT_MINI}, {"episodes", required_argument, 0, RL_OPT_EPISODES},  \
        {"reward-model", required_argument, 0, RL_OPT_RM}, {"reward-cmd", required_argument, 0, RL_OPT_CMD},           \
        {"reward-weights", required_argument, 0, RL_OPT_WEIGHTS},                                                      \
        {"reward-timeout", required_argument, 0, RL_OPT_TIMEOUT},                                                      \
        {"missing-eos-penalty", required_argument, 0, RL_OPT_EOSPEN},                                                  \
        {"kl-coef", required_argument, 0, RL_OPT_KLCOEF}, {"kl-estimator", required_argument, 0, RL_OPT_KLEST},        \
        {"target-kl", required_argument, 0, RL_OPT_TARGETKL}, {"kl-horizon", required_argument, 0, RL_OPT_KLHORIZON},  \
        {"beta", required_argument, 0, RL_OPT_BETA}, {"value-model", required_argument, 0, RL_OPT_VM},                 \
        {"gamma", required_argument, 0, RL_OPT_GAMMA}, {"lam", required_argument, 0, RL_OPT_LAM},                      \
        {"cliprange", required_argument, 0, RL_OPT_CLIP}, {"cliprange-value", required_argument, 0, RL_OPT_CLIPV},     \
        {"vf-coef", required_argument, 0, RL_OPT_VFCOEF}, {"epsilon", required_argument, 0, RL_OPT_EPS},               \
        {"epsilon-high", required_argument, 0, RL_OPT_EPSHIGH}, {"scale-rewards", required_argument, 0, RL_OPT_SCALE}, \
        {"loss-type", required_argument, 0, RL_OPT_LOSSTYPE}, {                                                        \
        "baseline-decay", required_argument, 0, RL_OPT_DECAY                                                           \
    }

typedef struct RlFlags {
    RlAlgo algo;
    int G, ppo_epochs, mini;
    long episodes;
    double timeout, eos_penalty, kl_coef, target_kl, kl_horizon, beta, gamma, lam, cliprange, cliprange_value, vf_coef,
        eps, eps_high, decay;
    int has_eos_penalty, has_eps_high, has_G, has_epochs;
    RlKlEstimator kl_est;
    RlScaleRewards scale;
    RlLossType loss_type;
    const char *rm_dir, *vm_dir, *weights_s;
    const char *cmd_s[RL_MAX_CMDS];
    int n_cmds;
} RlFlags;

/* TRL's defaults (the algorithm-dependent ones are set by rl_flags_finish). */
void rl_flags_default(RlFlags *p);
/* Takes option OPT with argument ARG when it is one of RL_FLAG_OPTIONS: returns 1,
 * else 0.  A malformed value exits with a usage error naming the flag (cli.h). */
int rl_flags_parse(RlFlags *p, const char *prog, int opt, const char *arg);
/* After parsing: the defaults that depend on --algo, and the checks that involve
 * several flags (BATCH_SIZE prompts per iteration).  Exits with a usage error. */
void rl_flags_finish(RlFlags *p, const char *prog, int batch_size);
/* The losses' configuration (max_completion_length = MAX_NEW). */
RlConfig rl_flags_config(const RlFlags *p, int max_new);
/* The weights of the rewards, the reward model first (--reward-weights, default 1
 * each) into w[RL_MAX_REWARDS].  Exits with a usage error on a wrong count. */
void rl_flags_weights(const RlFlags *p, const char *prog, double *w);
/* Whether a reference model is needed: a KL term is on. */
int rl_flags_need_ref(const RlFlags *p);
/* The help lines of the flags. */
void rl_flags_usage(FILE *out);

#endif
