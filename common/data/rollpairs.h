/* rollpairs.h — preference pairs straight from scored rollouts.
 *
 * A group is the N completions sampled for one prompt, each with a reward.  Three
 * ways to turn a group into (chosen, rejected) pairs:
 *   best-worst  the highest against the lowest reward (one pair; the best-of-n /
 *               "RAFT"-style pairing used by TRL's examples);
 *   all-ranked  every two completions with different rewards, the higher chosen
 *               (N(N-1)/2 pairs at most);
 *   rso         statistical rejection sampling (Liu et al. 2023, "Statistical
 *               Rejection Sampling Improves Preference Optimization", Algorithm 1):
 *               K completions are drawn from the group so that they approximate
 *               samples of the optimal policy pi*(y|x) ~ pi_sft(y|x) exp(r(x,y)/beta);
 *               each round takes r_max over the candidates left and accepts each in
 *               turn with probability exp((r - r_max) / beta) until K are accepted.
 *               The selected are then sorted by reward and paired from the outside
 *               in: best with worst, second best with second worst, ... (K/2
 *               disjoint pairs, each with the largest margin left), as the paper
 *               pairs the sampled responses and labels each pair with the reward.
 * In every strategy, completions with equal rewards never form a pair, and ties in
 * ordering are broken by sample index, so the result is deterministic given the Rng.
 * Not for: pairs from human rankings (prefdata.h). */
#ifndef CHERRY_ROLLPAIRS_H
#define CHERRY_ROLLPAIRS_H

#include "base/util.h"

typedef enum { PAIRS_NONE = 0, PAIRS_BEST_WORST, PAIRS_ALL_RANKED, PAIRS_RSO } PairStrategy;

/* "best-worst" | "all-ranked" | "rso" -> *out; returns 0, or -1 when unknown. */
int rollpairs_strategy_parse(const char *name, PairStrategy *out);
const char *rollpairs_strategy_name(PairStrategy s);

/* RSO Algorithm 1: writes min(k, n) selected indices into sel (in acceptance order)
 * and returns their number.  beta > 0. */
int rollpairs_rso_select(const float *reward, int n, int k, double beta, Rng *rng, int *sel);

/* Pairs of group reward[0..n) by strategy s (k, beta, rng only for rso; rng may be
 * NULL otherwise).  chosen[i], rejected[i] are sample indices; the arrays must hold
 * n*(n-1)/2 entries.  Returns the number of pairs. */
int rollpairs_from_rewards(PairStrategy s, const float *reward, int n, int k, double beta, Rng *rng, int *chosen,
                       int *rejected);

#endif
