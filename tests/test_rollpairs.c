/* test_rollpairs.c — pairs from scored rollouts (rollpairs.h): best-worst,
 * all-ranked, and RSO's rejection sampling (Liu et al. 2023, Algorithm 1) checked by
 * its limits (beta -> 0 picks the top rewards, beta -> inf accepts in order) and by
 * the acceptance probability exp((r - r_max)/beta) measured over many draws. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "data/rollpairs.h"

static void expect_pairs(const char *what, PairStrategy s, const float *r, int n, int k, double beta, const int *want,
                         int nwant) {
    int c[64], j[64];
    Rng rng;
    rng_seed(&rng, 1);
    int np = rollpairs_from_rewards(s, r, n, k, beta, &rng, c, j);
    CHECK(np == nwant, "%s: expected %d pairs, got %d", what, nwant, np);
    for (int i = 0; i < np && i < nwant; i++)
        CHECK(c[i] == want[2 * i] && j[i] == want[2 * i + 1], "%s: pair %d expected (%d, %d) got (%d, %d)", what, i,
              want[2 * i], want[2 * i + 1], c[i], j[i]);
}

int main(void) {
    PairStrategy s;
    CHECK(rollpairs_strategy_parse("best-worst", &s) == 0 && s == PAIRS_BEST_WORST, "parse best-worst");
    CHECK(rollpairs_strategy_parse("rso", &s) == 0 && s == PAIRS_RSO, "parse rso");
    CHECK(rollpairs_strategy_parse("all-ranked", &s) == 0 && s == PAIRS_ALL_RANKED, "parse all-ranked");
    CHECK(rollpairs_strategy_parse("best", &s) == -1, "unknown strategy accepted");

    float r1[4] = {0.1f, 0.5f, -0.2f, 0.5f};
    int w1[2] = {1, 2}; /* first of the tied best, the worst */
    expect_pairs("best-worst", PAIRS_BEST_WORST, r1, 4, 0, 0, w1, 1);
    float tie[3] = {2, 2, 2};
    expect_pairs("best-worst all tied", PAIRS_BEST_WORST, tie, 3, 0, 0, NULL, 0);
    expect_pairs("best-worst one sample", PAIRS_BEST_WORST, r1, 1, 0, 0, NULL, 0);
    float r2[3] = {1, 2, 3};
    int w2[6] = {2, 1, 2, 0, 1, 0};
    expect_pairs("all-ranked", PAIRS_ALL_RANKED, r2, 3, 0, 0, w2, 3);
    float r3[3] = {1, 1, 2};
    int w3[4] = {2, 0, 2, 1};
    expect_pairs("all-ranked with a tie", PAIRS_ALL_RANKED, r3, 3, 0, 0, w3, 2);

    /* RSO limits */
    float r4[6] = {0.3f, 2.0f, -1.0f, 1.5f, 0.0f, 1.0f};
    int sel[6];
    Rng rng;
    rng_seed(&rng, 9);
    int m = rollpairs_rso_select(r4, 6, 3, 1e-6, &rng, sel);
    CHECK(m == 3 && sel[0] == 1 && sel[1] == 3 && sel[2] == 5,
          "rso beta->0: expected the top three rewards 1,3,5 in order, got %d: %d %d %d", m, sel[0], sel[1], sel[2]);
    m = rollpairs_rso_select(r4, 6, 4, 1e9, &rng, sel);
    CHECK(m == 4 && sel[0] == 0 && sel[1] == 1 && sel[2] == 2 && sel[3] == 3,
          "rso beta->inf: expected 0 1 2 3 (everything accepted in order), got %d: %d %d %d %d", m, sel[0], sel[1],
          sel[2], sel[3]);
    m = rollpairs_rso_select(r4, 6, 10, 0.5, &rng, sel);
    CHECK(m == 6, "rso with K > N selects all N, got %d", m);
    /* beta -> 0: select 1,3,5,0 -> sorted 1(2.0) 3(1.5) 5(1.0) 0(0.3) -> pairs (1,0), (3,5) */
    int w4[4] = {1, 0, 3, 5};
    expect_pairs("rso pairs outside-in", PAIRS_RSO, r4, 6, 4, 1e-6, w4, 2);

    /* acceptance probability: rewards {-1, 0}, K = 1, beta = 1: the first candidate
     * is accepted with probability exp(-1); otherwise the second (the maximum) is. */
    float r5[2] = {-1.0f, 0.0f};
    int first = 0, N = 40000;
    for (int t = 0; t < N; t++) {
        rollpairs_rso_select(r5, 2, 1, 1.0, &rng, sel);
        first += sel[0] == 0;
    }
    double p = (double)first / N, want = exp(-1.0), se = sqrt(want * (1 - want) / N);
    CHECK(fabs(p - want) < 5 * se, "rso acceptance: expected P = %.4f, got %.4f", want, p);
    /* beta = 0.5 halves the log-acceptance: exp(-2) */
    first = 0;
    for (int t = 0; t < N; t++) {
        rollpairs_rso_select(r5, 2, 1, 0.5, &rng, sel);
        first += sel[0] == 0;
    }
    p = (double)first / N, want = exp(-2.0), se = sqrt(want * (1 - want) / N);
    CHECK(fabs(p - want) < 5 * se, "rso acceptance beta 0.5: expected P = %.4f, got %.4f", want, p);

    return check_summary("test_rollpairs");
}
