/* test_losses_rl.c — unit tests of losses_rl.h: KL estimators, per-token rewards, GAE
 * against a hand-worked example, whitening, the group / leave-one-out / moving-average
 * baselines, the clipping rules, every loss's gradient against central finite
 * differences, the loss-type normalisations and the adaptive KL controller. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "train/losses_rl.h"
#include "base/util.h"


static void near(double got, double want, double tol, const char *what) {
    if (!(fabs(got - want) <= tol)) {
        printf("FAIL %s: expected %.9g, got %.9g (diff %.3g)\n", what, want, got, fabs(got - want));
        failures++;
    }
}

static void test_kl(void) {
    near(rl_kl(RL_KL_K1, -1.0, -1.5), 0.5, 1e-12, "k1");
    /* k3 at logr = ref - logp = -0.5: e^-0.5 - 1 + 0.5 */
    near(rl_kl(RL_KL_K3, -1.0, -1.5), exp(-0.5) - 0.5, 1e-12, "k3");
    near(rl_kl(RL_KL_K3, -2.0, -2.0), 0.0, 1e-15, "k3 zero at equality");
    for (int est = 0; est < 2; est++) {
        double h = 1e-6, lp = -0.7, rf = -1.3;
        double fd = (rl_kl(est, lp + h, rf) - rl_kl(est, lp - h, rf)) / (2 * h);
        near(rl_kl_grad(est, lp, rf), fd, 1e-6, est ? "k3 grad" : "k1 grad");
    }
    if (rl_kl_estimator_parse("k1") != RL_KL_K1 || rl_kl_estimator_parse("k3") != RL_KL_K3 ||
        rl_kl_estimator_parse("k2") != -1) {
        printf("FAIL rl_kl_estimator_parse\n");
        failures++;
    }
}

static void test_rewards_gae(void) {
    /* two sequences of 3 and 2 tokens */
    int off[2] = {0, 3}, len[2] = {3, 2};
    float lp[5] = {-1, -2, -0.5f, -1, -1}, ref[5] = {-1.5f, -2, -0.25f, -1, -2};
    double score[2] = {1.0, -2.0};
    float rw[5], kl[5];
    rl_ppo_rewards(lp, ref, off, len, 2, RL_KL_K1, 0.1, score, rw, kl);
    float want[5] = {-0.05f, 0.0f, 0.025f + 1.0f, 0.0f, -0.1f - 2.0f};
    for (int i = 0; i < 5; i++) near(rw[i], want[i], 1e-6, "ppo rewards");
    near(kl[0], 0.5, 1e-7, "ppo kl");
    /* GAE, hand-worked: r = (0, 0, 1), V = (0.5, 0.2, 0.1), gamma 0.9, lam 0.8
     *   d2 = 1 - 0.1 = 0.9;            A2 = 0.9
     *   d1 = 0 + 0.9*0.1 - 0.2 = -0.11; A1 = -0.11 + 0.72*0.9 = 0.538
     *   d0 = 0 + 0.9*0.2 - 0.5 = -0.32; A0 = -0.32 + 0.72*0.538 = 0.06736 */
    float r[3] = {0, 0, 1}, v[3] = {0.5f, 0.2f, 0.1f}, a[3], ret[3];
    rl_gae(r, v, 3, 0.9, 0.8, a, ret);
    near(a[2], 0.9, 1e-6, "gae A2");
    near(a[1], 0.538, 1e-6, "gae A1");
    near(a[0], 0.06736, 1e-6, "gae A0");
    near(ret[0], 0.06736 + 0.5, 1e-6, "gae returns");
    /* gamma = lam = 1 (TRL's default gamma, lam 1): A_t = sum of future rewards - V_t */
    rl_gae(r, v, 3, 1.0, 1.0, a, ret);
    near(a[0], 1.0 - 0.5, 1e-6, "gae Monte Carlo");
    near(ret[1], 1.0, 1e-6, "gae MC return");
}

static void test_whiten(void) {
    float x[5] = {1, 2, 3, 4, 10};
    rl_whiten(x, 5);
    double m = 0, s = 0;
    for (int i = 0; i < 5; i++) m += x[i];
    m /= 5;
    for (int i = 0; i < 5; i++) s += (x[i] - m) * (x[i] - m);
    near(m, 0.0, 1e-6, "whiten mean");
    near(s / 4, 1.0, 1e-5, "whiten unbiased variance");
    /* var of (1,2,3,4,10): mean 4, ss 9+4+1+0+36 = 50, unbiased 12.5 */
    near(x[0], (1 - 4) / sqrt(12.5 + 1e-8), 1e-6, "whiten value");
    float one[1] = {3};
    rl_whiten(one, 1);
    near(one[0], 0.0, 1e-9, "whiten single");
}

static void test_baselines(void) {
    double r[6] = {1, 2, 3, 0, 0, 0}, adv[6], sd[2];
    rl_group_advantages(r, 2, 3, RL_SCALE_GROUP, adv, sd);
    near(sd[0], 1.0, 1e-12, "group std");
    near(adv[0], -1.0 / (1.0 + 1e-4), 1e-12, "grpo adv");
    near(adv[2], 1.0 / (1.0 + 1e-4), 1e-12, "grpo adv 2");
    near(adv[4], 0.0, 1e-12, "grpo equal rewards -> 0");
    rl_group_advantages(r, 2, 3, RL_SCALE_NONE, adv, NULL);
    near(adv[0], -1.0, 1e-12, "grpo none");
    rl_group_advantages(r, 2, 3, RL_SCALE_BATCH, adv, NULL);
    near(adv[0], -1.0 / (rl_std(r, 6) + 1e-4), 1e-12, "grpo batch");
    /* std of 1,2,3,0,0,0: mean 1, ss 0+1+4+1+1+1 = 8, var 1.6 */
    near(rl_std(r, 6), sqrt(1.6), 1e-12, "rl_std");

    double rr[4] = {1, 3, 5, 7}, a[4];
    rl_rloo_advantages(rr, 1, 4, a);
    near(a[0], 1 - 15.0 / 3, 1e-12, "rloo a0");
    near(a[3], 7 - 9.0 / 3, 1e-12, "rloo a3");
    /* leave-one-out advantages sum to zero within a group: sum_i r_i - sum_i (S - r_i)/(G-1) = 0 */
    near(a[0] + a[1] + a[2] + a[3], 0.0, 1e-12, "rloo sum");

    double b = 0;
    int init = 0;
    double x1[2] = {1, 3}, x2[2] = {5, 5}, ad[2];
    rl_reinforce_advantages(x1, 2, 0.9, &b, &init, ad);
    near(ad[0], -1.0, 1e-12, "reinforce first batch uses its mean");
    near(b, 2.0, 1e-12, "reinforce baseline after 1");
    rl_reinforce_advantages(x2, 2, 0.9, &b, &init, ad);
    near(ad[0], 3.0, 1e-12, "reinforce adv 2");
    near(b, 0.9 * 2 + 0.1 * 5, 1e-12, "reinforce baseline after 2");

    if (rl_scale_rewards_parse("group") != RL_SCALE_GROUP || rl_scale_rewards_parse("batch") != RL_SCALE_BATCH ||
        rl_scale_rewards_parse("none") != RL_SCALE_NONE || rl_scale_rewards_parse("x") != -1 ||
        rl_loss_type_parse("dr_grpo") != RL_LOSS_DR_GRPO || rl_loss_type_parse("dapo") != RL_LOSS_DAPO ||
        rl_loss_type_parse("grpo") != RL_LOSS_GRPO || rl_loss_type_parse("ppo") != -1) {
        printf("FAIL parse functions\n");
        failures++;
    }
}

/* Random-ish but fixed inputs with ratios inside and outside the clip range. */
#define NT 9
static float LP[NT] = {-1.0f, -0.5f, -2.0f, -0.3f, -1.2f, -0.8f, -2.5f, -0.1f, -1.7f};
static float OLD[NT] = {-1.1f, -0.9f, -1.5f, -0.3f, -1.25f, -0.2f, -2.4f, -0.6f, -1.7f};
static float REF[NT] = {-1.3f, -0.4f, -2.2f, -0.5f, -1.0f, -0.9f, -2.0f, -0.2f, -1.1f};
static float ADV[NT] = {0.5f, -1.0f, 2.0f, 0.0f, -0.3f, 1.0f, -2.0f, 0.7f, -0.4f};

static void test_ppo_loss(void) {
    float V[NT] = {0.1f, 0.5f, -0.2f, 0.0f, 0.9f, 0.3f, -0.6f, 0.2f, 0.4f};
    float OV[NT] = {0.0f, 0.1f, 0.0f, 0.05f, 0.5f, 0.35f, 0.0f, 0.2f, 0.0f};
    float R[NT] = {1.0f, -0.5f, 0.3f, 0.0f, 2.0f, 0.3f, -1.0f, 0.0f, 0.1f};
    float dl[NT], dv[NT];
    RlStats st;
    memset(&st, 0, sizeof st);
    double scale = 0.25;
    double L = rl_ppo_loss(LP, OLD, ADV, V, OV, R, NT, 0.2, 0.2, 0.1, scale, dl, dv, &st);
    /* the loss by hand for token 0: ratio e^0.1 = 1.10517 (inside), pg = -0.5*1.10517;
     * v = 0.1 within 0.2 of 0, vf = 0.5*(0.1-1)^2 = 0.405 */
    double l0 = -0.5 * exp(0.1) + 0.1 * 0.405;
    /* token 1: ratio e^0.4 = 1.4918 > 1.2, A = -1: l1 = 1.4918, l2 = 1.2 -> pg = 1.4918
     * (unclipped is worse, so it is kept: the pessimistic bound) */
    near(st.tokens, NT, 0, "ppo tokens");
    double h = 1e-3;
    for (int t = 0; t < NT; t++) {
        float p[NT], q[NT];
        memcpy(p, LP, sizeof p);
        memcpy(q, LP, sizeof q);
        p[t] += (float)h, q[t] -= (float)h;
        double fd = (rl_ppo_loss(p, OLD, ADV, V, OV, R, NT, 0.2, 0.2, 0.1, 1, NULL, NULL, NULL) -
                     rl_ppo_loss(q, OLD, ADV, V, OV, R, NT, 0.2, 0.2, 0.1, 1, NULL, NULL, NULL)) /
                    (2 * (double)(p[t] - LP[t]));
        char what[64];
        snprintf(what, sizeof what, "ppo dlogp[%d]", t);
        near(dl[t], scale * fd, 2e-4, what);
        memcpy(p, V, sizeof p);
        memcpy(q, V, sizeof q);
        p[t] += (float)h, q[t] -= (float)h;
        fd = (rl_ppo_loss(LP, OLD, ADV, p, OV, R, NT, 0.2, 0.2, 0.1, 1, NULL, NULL, NULL) -
              rl_ppo_loss(LP, OLD, ADV, q, OV, R, NT, 0.2, 0.2, 0.1, 1, NULL, NULL, NULL)) /
             (2 * (double)(p[t] - V[t]));
        snprintf(what, sizeof what, "ppo dvalues[%d]", t);
        near(dv[t], scale * fd, 2e-4, what);
    }
    float one_lp[1] = {LP[0]}, one_old[1] = {OLD[0]}, one_a[1] = {ADV[0]}, one_v[1] = {V[0]}, one_ov[1] = {OV[0]},
          one_r[1] = {R[0]};
    near(rl_ppo_loss(one_lp, one_old, one_a, one_v, one_ov, one_r, 1, 0.2, 0.2, 0.1, 1, NULL, NULL, NULL), l0, 1e-6,
         "ppo loss token 0 by hand");
    /* token 1 is clipped-pessimistic: gradient flows (unclipped branch chosen) */
    if (!(dl[1] != 0)) {
        printf("FAIL ppo: token 1 (ratio 1.49, A<0) must keep its gradient, got 0\n");
        failures++;
    }
    /* token 2: ratio e^-0.5 = 0.61 < 0.8 with A = 2 > 0: the unclipped branch is the
     * larger loss (-1.21 > -1.6), so it keeps its gradient */
    if (!(dl[2] != 0)) {
        printf("FAIL ppo: token 2 (ratio 0.61, A>0) must keep its gradient, got 0\n");
        failures++;
    }
    /* token 7: ratio e^0.5 = 1.65 > 1.2 with A = 0.7 > 0: the clipped branch wins
     * (-0.84 > -1.15), gradient 0 */
    near(dl[7], 0.0, 0, "ppo clipped token has no gradient");
    if (!(st.clipfrac >= 1)) {
        printf("FAIL ppo clipfrac: expected >= 1 clipped token, got %g\n", st.clipfrac);
        failures++;
    }
    (void)L;
}

static void test_grpo_loss(void) {
    int off[3] = {0, 4, 6}, len[3] = {4, 2, 3};
    double adv[3] = {1.0, -0.5, 0.3};
    const char *names[4] = {"grpo", "bnpo", "dr_grpo", "dapo"};
    for (int type = 0; type < 4; type++) {
        for (int withkl = 0; withkl < 2; withkl++) {
            double beta = withkl ? 0.04 : 0.0;
            float dl[NT];
            RlStats st;
            memset(&st, 0, sizeof st);
            rl_grpo_loss(LP, OLD, REF, adv, off, len, 3, type, 0.2, 0.28, beta, 0.5, dl, &st);
            for (int t = 0; t < NT; t++) {
                float p[NT], q[NT];
                memcpy(p, LP, sizeof p);
                memcpy(q, LP, sizeof q);
                p[t] += 1e-3f, q[t] -= 1e-3f;
                double fd = (rl_grpo_loss(p, OLD, REF, adv, off, len, 3, type, 0.2, 0.28, beta, 1, NULL, NULL) -
                             rl_grpo_loss(q, OLD, REF, adv, off, len, 3, type, 0.2, 0.28, beta, 1, NULL, NULL)) /
                            (double)(p[t] - q[t]);
                char what[80];
                snprintf(what, sizeof what, "grpo %s beta %g dlogp[%d]", names[type], beta, t);
                near(dl[t], 0.5 * fd, 2e-4, what);
            }
        }
    }
    /* ratio 1 (first iteration): loss = -sum A over the units, grad = -A per token */
    float dl[NT];
    double L = rl_grpo_loss(LP, LP, NULL, adv, off, len, 3, RL_LOSS_GRPO, 0.2, 0.2, 0.0, 1, dl, NULL);
    near(L, -(1.0 - 0.5 + 0.3), 1e-12, "grpo loss at ratio 1 (per-sequence means)");
    near(dl[0], -0.25, 1e-7, "grpo grad / len");
    L = rl_grpo_loss(LP, LP, NULL, adv, off, len, 3, RL_LOSS_BNPO, 0.2, 0.2, 0.0, 1, dl, NULL);
    near(L, -(4 * 1.0 - 2 * 0.5 + 3 * 0.3), 1e-12, "bnpo loss sum over tokens");
    /* asymmetric clip: ratio 1.25 with A > 0 is inside [0.8, 1.28] but outside 1.2 */
    float a1[1] = {(float)log(1.25)}, a0[1] = {0};
    double aa[1] = {1.0};
    int o1[1] = {0}, l1[1] = {1};
    RlStats st;
    memset(&st, 0, sizeof st);
    rl_grpo_loss(a1, a0, NULL, aa, o1, l1, 1, RL_LOSS_BNPO, 0.2, 0.28, 0, 1, dl, &st);
    near(st.clipfrac, 0, 0, "epsilon_high 0.28 does not clip 1.25");
    near(dl[0], -1.25, 1e-6, "epsilon_high gradient");
    memset(&st, 0, sizeof st);
    rl_grpo_loss(a1, a0, NULL, aa, o1, l1, 1, RL_LOSS_BNPO, 0.2, 0.2, 0, 1, dl, &st);
    near(st.clipfrac, 1, 0, "epsilon_high 0.2 clips 1.25");
    near(st.clip_high, 1, 0, "clip_high counts it");
    near(st.clip_low, 0, 0, "clip_low does not");
    near(dl[0], 0, 0, "clipped token gradient");
}

static void test_seq_loss(void) {
    int off[3] = {0, 4, 6}, len[3] = {4, 2, 3};
    double adv[3] = {1.0, -0.5, 0.3};
    float dl[NT];
    RlStats st;
    memset(&st, 0, sizeof st);
    rl_seq_pg_loss(LP, OLD, adv, off, len, 3, 0.2, 0.5, dl, &st);
    for (int t = 0; t < NT; t++) {
        float p[NT], q[NT];
        memcpy(p, LP, sizeof p);
        memcpy(q, LP, sizeof q);
        p[t] += 1e-3f, q[t] -= 1e-3f;
        double fd = (rl_seq_pg_loss(p, OLD, adv, off, len, 3, 0.2, 1, NULL, NULL) -
                     rl_seq_pg_loss(q, OLD, adv, off, len, 3, 0.2, 1, NULL, NULL)) /
                    (double)(p[t] - q[t]);
        char what[64];
        snprintf(what, sizeof what, "seq pg dlogp[%d]", t);
        near(dl[t], 0.5 * fd, 2e-4, what);
    }
    /* REINFORCE identity at ratio 1: loss = -sum A, grad = -A on every token */
    double L = rl_seq_pg_loss(LP, LP, adv, off, len, 3, 0.2, 1, dl, NULL);
    near(L, -(1.0 - 0.5 + 0.3), 1e-12, "reinforce loss");
    near(dl[5], 0.5, 1e-7, "reinforce grad");
}

static void test_kl_controller(void) {
    RlKlController c = {.coef = 0.2, .target = 6.0, .horizon = 10000};
    rl_kl_update(&c, 12.0, 256); /* error clipped to 0.2 */
    near(c.coef, 0.2 * (1 + 0.2 * 256 / 10000.0), 1e-12, "adaptive kl up");
    double before = c.coef;
    rl_kl_update(&c, 5.4, 100); /* error -0.1 */
    near(c.coef, before * (1 - 0.1 * 100 / 10000.0), 1e-12, "adaptive kl down");
    RlKlController f = {.coef = 0.05, .target = 0, .horizon = 10000};
    rl_kl_update(&f, 100, 10);
    near(f.coef, 0.05, 0, "fixed kl coefficient");
}

/* rl_advantages composes the pieces as documented, for every algorithm */
static void test_advantages(void) {
    int off[4] = {0, 2, 5, 6}, len[4] = {2, 3, 1, 3};
    float old[9] = {-1, -2, -0.5f, -1, -1.5f, -0.2f, -3, -1, -0.7f};
    float ref[9] = {-1.2f, -2, -0.4f, -1.1f, -1.5f, -0.1f, -2.5f, -1, -0.9f};
    float vals[9] = {0.1f, 0.2f, 0.3f, 0.0f, -0.1f, 0.5f, 0.2f, 0.2f, 0.1f};
    double score[4] = {1.0, 0.0, 0.5, 2.0};
    float adv_tok[9], ret[9];
    double adv[4];
    RlConfig c = {.algo = RL_ALGO_PPO, .G = 2, .kl_coef = 0.1, .kl_est = RL_KL_K1, .gamma = 1, .lam = 0.95};
    RlBatch b = {.n = 4,
                 .off = off,
                 .len = len,
                 .ntok = 9,
                 .old_logp = old,
                 .ref_logp = ref,
                 .old_values = vals,
                 .score = score,
                 .adv_tok = adv_tok,
                 .returns = ret,
                 .adv = adv};
    RlRolloutStats rs;
    rl_advantages(&c, &b, NULL, &rs);
    float rw[9], want[9], wret[9];
    rl_ppo_rewards(old, ref, off, len, 4, RL_KL_K1, 0.1, score, rw, NULL);
    for (int i = 0; i < 4; i++) rl_gae(rw + off[i], vals + off[i], len[i], 1, 0.95, want + off[i], wret + off[i]);
    rl_whiten(want, 9);
    for (int t = 0; t < 9; t++) {
        near(adv_tok[t], want[t], 1e-7, "rl_advantages ppo adv");
        near(ret[t], wret[t], 1e-7, "rl_advantages ppo returns");
    }
    /* KL sums: seq0 (0.2 + 0) ; seq1 (-0.1 + 0.1 + 0); seq2 -0.1; seq3 (-0.5 + 0 + 0.2) */
    near(rs.kl, (0.2 + 0.0 - 0.1 - 0.3) / 4, 1e-6, "rollout kl");
    near(rs.scores, 3.5 / 4, 1e-12, "rollout scores");
    near(rs.entropy, 10.9 / 4, 1e-6, "rollout entropy");
    near(rs.rlhf_reward, 3.5 / 4 - 0.1 * rs.kl, 1e-9, "rollout rlhf_reward");
    near(rs.reward_std, (rl_std(score, 2) + rl_std(score + 2, 2)) / 2, 1e-12, "rollout reward_std");

    c.algo = RL_ALGO_RLOO;
    rl_advantages(&c, &b, NULL, &rs);
    double r0 = 1.0 - 0.1 * 0.2, r1 = 0.0 - 0.1 * 0.0;
    near(adv[0], r0 - r1, 1e-6, "rloo with sequence KL");
    c.algo = RL_ALGO_GRPO;
    c.scale = RL_SCALE_NONE;
    rl_advantages(&c, &b, NULL, &rs);
    near(adv[3], 0.75, 1e-12, "grpo ignores the KL in the reward");
    c.algo = RL_ALGO_REINFORCE;
    c.baseline_decay = 0.5;
    RlState st = {0, 0};
    rl_advantages(&c, &b, &st, &rs);
    if (!st.baseline_set) {
        printf("FAIL reinforce: baseline not set\n");
        failures++;
    }

    int l2[3] = {2, 3, 4};
    c.algo = RL_ALGO_PPO;
    near(rl_loss_weight(&c, l2, 3), 9, 0, "weight ppo = tokens");
    c.algo = RL_ALGO_GRPO;
    c.loss_type = RL_LOSS_GRPO;
    near(rl_loss_weight(&c, l2, 3), 3, 0, "weight grpo = sequences");
    c.loss_type = RL_LOSS_DR_GRPO;
    c.max_completion_length = 16;
    near(rl_loss_weight(&c, l2, 3), 48, 0, "weight dr_grpo");
    c.loss_type = RL_LOSS_DAPO;
    near(rl_loss_weight(&c, l2, 3), 9, 0, "weight dapo = tokens");
    c.algo = RL_ALGO_RLOO;
    near(rl_loss_weight(&c, l2, 3), 3, 0, "weight rloo = sequences");
    if (rl_algo_parse("grpo") != RL_ALGO_GRPO || rl_algo_parse("dpo") != -1 ||
        strcmp(rl_algo_name(RL_ALGO_REINFORCE), "reinforce")) {
        printf("FAIL rl_algo_parse/name\n");
        failures++;
    }
}

int main(void) {
    test_advantages();
    test_kl();
    test_rewards_gae();
    test_whiten();
    test_baselines();
    test_ppo_loss();
    test_grpo_loss();
    test_seq_loss();
    test_kl_controller();
    return check_summary("test_losses_rl");
}
