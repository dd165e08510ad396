/* simjudge.h — how a simulated user judges the answers to one prompt of the bundled
 * task (common/data/task.h), as `annotate` judges rollouts: the hidden utility (2 for
 * the right words, +1 for the polite closing), replaced with probability `noise` by a
 * uniformly random one (0..3) — a misjudgement.  From the judgements: a thumbs up for
 * an answer judged fully good (3), down otherwise, and a ranking best first (equal
 * judgements in random order).  Also the latency quantiles of the load report.
 * Not for: talking to the server (client.h). */
#ifndef CHERRY_SIMJUDGE_H
#define CHERRY_SIMJUDGE_H

#include "base/util.h"

/* texts[i] (NULL = "") are the n answers to prompt.  Fills up[n], order[n] (indices
 * best first) and adds to *gold and *utility the sums of the true (noise-free) gold
 * score and utility of the answers.  Draws from rng. */
void sim_judge(const char *prompt, const char *const *texts, int n, double noise, Rng *rng, unsigned char *up,
               int *order, double *gold, double *utility);

/* Sorts v[0..n) and returns its q-quantile (nearest rank); NAN when n is 0. */
double sim_quantile(double *v, long n, double q);

#endif
