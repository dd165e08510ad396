/* test_prefix_share.c — prefix sharing (data.h batch_pairs_shared, ops.h
 * seg_branch) against the row-per-completion layout (batch_pairs), for every
 * family of the oracle fixtures: the same preference pairs (prompts of 0, 1 and
 * several tokens, completions of different lengths, one of them empty) through
 * prefbatch_logps and prefbatch_logps_backward both ways give
 *   - the same completion lengths and target count, and a shorter batch;
 *   - sequence log-probs within 1e-5 of the largest |log-prob|;
 *   - the gradient of sum_i a_i chosen_i + b_i rejected_i within 1e-5 of each
 *     tensor's largest gradient entry;
 *   - the same token metrics (prefbatch_token_stats: counts and correct argmaxes equal,
 *     sums within 1e-5);
 * with the dense attention and with the fused one (model_set_flash_attention 0 and 1),
 * which both read the branch mask, and on longer pairs (shared rows of 136 tokens:
 * several key blocks of the fused kernel, and the auto mode, which then picks the fused
 * kernel for the shared rows and the dense one for the unshared) for three families,
 * Phi-3's longrope among them.  A leak between the two branches, a wrong position or a
 * target in the wrong place moves a log-prob by far more than that.
 * prefbatch_can_share says no for a sliding window shorter than a row, yes otherwise.
 * prefbatch_pairs_run in chunks of pairs gives the whole batch's results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "data/data.h"
#include "fixture.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "train/prefbatch.h"

#define NP 5

static int *rand_ids(Rng *r, int n, int vocab) {
    int *v = xmalloc(sizeof(int) * (n ? n : 1));
    for (int i = 0; i < n; i++) v[i] = (int)(rng_uniform(r) * (float)(vocab - 1));
    return v;
}

/* Pairs with prompts of 0, 1 and several tokens and completions of 0 to 9 tokens, or
 * (long) of 0 to 50. */
static void make_pairs(PrefExample *p, int vocab, int long_pairs) {
    static const int np_s[NP] = {6, 1, 0, 9, 4}, nc_s[NP] = {5, 3, 4, 2, 0}, nr_s[NP] = {2, 7, 3, 9, 4};
    static const int np_l[NP] = {40, 1, 0, 30, 12}, nc_l[NP] = {50, 33, 40, 20, 0}, nr_l[NP] = {45, 47, 31, 9, 44};
    const int *np = long_pairs ? np_l : np_s, *nc = long_pairs ? nc_l : nc_s, *nr = long_pairs ? nr_l : nr_s;
    Rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < NP; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].n_prompt = np[i], p[i].n_chosen = nc[i], p[i].n_rejected = nr[i];
        p[i].prompt = rand_ids(&r, np[i], vocab);
        p[i].chosen = rand_ids(&r, nc[i], vocab);
        p[i].rejected = rand_ids(&r, nr[i], vocab);
        p[i].line = i + 1;
    }
}

/* seq [2 NP], len [2 NP], the token metrics and the gradient (malloc'd) of
 * sum w_k seq_k for one layout. */
static float *run(Model *m, const Batch *b, PrefScratch *s, const float *w, float *seq, int *len, PrefTokenStats *ts) {
    model_zero_grad(m);
    prefbatch_logps(m, b, s, seq, len, NULL);
    prefbatch_token_stats(m, b, NP, s, ts);
    prefbatch_logps_backward(m, b, s, w);
    float *g = xmalloc(m->n_params * sizeof(float));
    memcpy(g, m->grads, m->n_params * sizeof(float));
    return g;
}

/* The largest difference of gradient g from the reference ref, relative to each
 * tensor's largest |ref| entry, over m's tensors; *name (may be NULL) the tensor. */
static double grad_diff(const Model *m, const float *ref, const float *g, const char **name) {
    double worst = 0;
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        double mx = 0, d = 0;
        for (size_t j = pt->offset; j < pt->offset + pt->numel; j++) {
            mx = fmax(mx, fabs(ref[j]));
            d = fmax(d, fabs((double)g[j] - ref[j]));
        }
        if (mx > 0 && d / mx > worst) {
            worst = d / mx;
            if (name) *name = pt->name;
        }
    }
    return worst;
}

/* A made-up pairwise loss for prefbatch_logps_train: pair i's d loss / d seq depends on
 * its own two log-probs (a mixed-up index or pair shows in the gradient) and on the
 * batch's chosen-token count (as the NLL of sft and RPO: every length must be known
 * before the first pair's gradient). */
typedef struct OnePass {
    int calls[NP];
} OnePass;

static void pair_dseq(int i, const float *seq, const int *len, float *dseq) {
    double t = tanh(0.05 * ((double)seq[i] - seq[NP + i])), tok = 0;
    for (int j = 0; j < NP; j++) tok += len[j];
    dseq[i] = (float)(((i % 3) - 0.75) * (1 + t) + 1.0 / (1 + tok));
    dseq[NP + i] = (float)((((NP + i) % 3) - 0.75) * (1 - t));
}

static void one_pass_cb(void *ctx, int i0, int i1, int n, const float *seq, const int *len, float *dseq) {
    OnePass *o = ctx;
    for (int i = i0; i < i1; i++) o->calls[i]++, pair_dseq(i, seq, len, dseq);
}

/* prefbatch_logps_train against the two passes (prefbatch_logps, the same loss,
 * prefbatch_logps_backward) on batch b: the same log-probs, d loss / d seq and token
 * metrics, gradients within 1e-5 of each tensor's largest; each pair asked for once.
 * The long pairs make two blocks of whole pairs in the shared layout and a group
 * longer than a block (the two passes) in the unshared one. */
static void compare_one_pass(Model *m, const char *name, const Batch *b, int flash) {
    PrefScratch sc;
    memset(&sc, 0, sizeof sc);
    float s2[2 * NP], d2[2 * NP], s1[2 * NP], d1[2 * NP];
    int l1[2 * NP], l2[2 * NP];
    PrefTokenStats t1, t2;
    model_set_flash_attention(flash);
    model_zero_grad(m);
    prefbatch_logps(m, b, &sc, s1, l1, NULL);
    prefbatch_token_stats(m, b, NP, &sc, &t1);
    for (int i = 0; i < NP; i++) pair_dseq(i, s1, l1, d1);
    prefbatch_logps_backward(m, b, &sc, d1);
    float *g1 = xmalloc(m->n_params * sizeof(float));
    memcpy(g1, m->grads, m->n_params * sizeof(float));
    OnePass o;
    memset(&o, 0, sizeof o);
    for (int k = 0; k < 2 * NP; k++) s2[k] = d2[k] = NAN, l2[k] = -1; /* what the call must fill */
    model_zero_grad(m);
    prefbatch_logps_train(m, b, &sc, s2, l2, d2, one_pass_cb, &o);
    prefbatch_token_stats(m, b, NP, &sc, &t2);
    model_set_flash_attention(-1);
    const char *lay = b->shared ? "shared" : "unshared";
    double sd = 0, dd = 0, smax = 0;
    for (int k = 0; k < 2 * NP; k++) {
        smax = fmax(smax, fabs(s1[k]));
        sd = isnan(s2[k]) ? INFINITY : fmax(sd, fabs((double)s2[k] - s1[k]));
        dd = isnan(d2[k]) ? INFINITY : fmax(dd, fabs((double)d2[k] - d1[k]));
        CHECK(l1[k] == l2[k], "%s %s one pass: sequence %d has %d tokens, two passes %d", name, lay, k, l2[k], l1[k]);
    }
    for (int i = 0; i < NP; i++)
        CHECK(o.calls[i] == 1, "%s %s one pass: pair %d asked for %d times", name, lay, i, o.calls[i]);
    CHECK(sd <= 1e-5 * smax && dd <= 1e-5, "%s %s one pass: log-probs differ by %.2e, d seq by %.2e", name, lay,
          sd / smax, dd);
    CHECK(t1.tokens == t2.tokens && t1.chosen_correct == t2.chosen_correct &&
              fabs(t1.entropy_sum - t2.entropy_sum) <= 1e-5 * (1 + fabs(t1.entropy_sum)),
          "%s %s one pass: token metrics differ", name, lay);
    double worst = grad_diff(m, g1, m->grads, NULL);
    CHECK(worst <= 1e-5, "%s %s one pass (flash %d): gradients differ by %.2e of the largest", name, lay, flash, worst);
    if (worst <= 1e-5 && sd <= 1e-5 * smax)
        printf("ok   %-20s flash %d, %s rows: one pass of the head per block of pairs = two passes (%.1e)\n", name,
               flash, lay, worst);
    free(g1);
    prefbatch_scratch_free(&sc);
}

/* prefbatch_pairs_run a chunk at a time (chunk_tokens 1: a pair per chunk; 60: two
 * or three of the short pairs, or one long pair, per chunk) against the whole batch's
 * two passes: the same log-probs, lengths, d loss / d seq (the loss reads the whole
 * batch's chosen-token count), token metrics and gradients (within 1e-5); each pair
 * asked for once; and without a loss the same log-probs and metrics. */
static void compare_chunks(Model *m, const char *name, const PrefExample *const *pp, int share, long chunk) {
    Error e;
    memset(&e, 0, sizeof e);
    PrefScratch sc;
    memset(&sc, 0, sizeof sc);
    Batch b;
    CHECK(prefbatch_pairs(&b, m, pp, NP, 0, share, &e) == 0, "%s chunks: batch: %s", name, e.msg);
    float s1[2 * NP], d1[2 * NP], s2[2 * NP], d2[2 * NP], s3[2 * NP];
    int l1[2 * NP], l2[2 * NP], l3[2 * NP];
    PrefTokenStats t1, t2, t3;
    model_zero_grad(m);
    prefbatch_logps(m, &b, &sc, s1, l1, NULL);
    prefbatch_token_stats(m, &b, NP, &sc, &t1);
    for (int i = 0; i < NP; i++) pair_dseq(i, s1, l1, d1);
    prefbatch_logps_backward(m, &b, &sc, d1);
    float *g1 = xmalloc(m->n_params * sizeof(float));
    memcpy(g1, m->grads, m->n_params * sizeof(float));
    OnePass o;
    memset(&o, 0, sizeof o);
    for (int k = 0; k < 2 * NP; k++) s2[k] = d2[k] = s3[k] = NAN, l2[k] = l3[k] = -1;
    model_zero_grad(m);
    PrefRun r = {share, 0, chunk, one_pass_cb, &o};
    CHECK(prefbatch_pairs_run(m, pp, NP, &r, &sc, s2, l2, d2, &t2, &e) == 0, "%s chunks: %s", name, e.msg);
    r.fn = NULL;
    CHECK(prefbatch_pairs_run(m, pp, NP, &r, &sc, s3, l3, NULL, &t3, &e) == 0, "%s chunks: %s", name, e.msg);
    const char *lay = b.shared ? "shared" : "unshared";
    double sd = 0, dd = 0, smax = 0;
    for (int k = 0; k < 2 * NP; k++) {
        smax = fmax(smax, fabs(s1[k]));
        sd = isnan(s2[k]) || isnan(s3[k]) ? INFINITY
                                          : fmax(sd, fmax(fabs((double)s2[k] - s1[k]), fabs((double)s3[k] - s1[k])));
        dd = isnan(d2[k]) ? INFINITY : fmax(dd, fabs((double)d2[k] - d1[k]));
        CHECK(l1[k] == l2[k] && l1[k] == l3[k], "%s %s chunks of %ld: sequence %d has %d and %d tokens, whole %d", name,
              lay, chunk, k, l2[k], l3[k], l1[k]);
    }
    for (int i = 0; i < NP; i++)
        CHECK(o.calls[i] == 1, "%s %s chunks of %ld: pair %d asked for %d times", name, lay, chunk, i, o.calls[i]);
    CHECK(sd <= 1e-5 * smax && dd <= 1e-5, "%s %s chunks of %ld: log-probs differ by %.2e, d seq by %.2e", name, lay,
          chunk, sd / smax, dd);
    for (int k = 0; k < 2; k++) {
        const PrefTokenStats *t = k ? &t3 : &t2;
        CHECK(t1.tokens == t->tokens && t1.chosen_tokens == t->chosen_tokens &&
                  t1.rejected_tokens == t->rejected_tokens && t1.chosen_correct == t->chosen_correct &&
                  fabs(t1.entropy_sum - t->entropy_sum) <= 1e-5 * (1 + fabs(t1.entropy_sum)) &&
                  fabs(t1.logits_chosen_sum - t->logits_chosen_sum) <= 1e-5 * (1 + fabs(t1.logits_chosen_sum)) &&
                  fabs(t1.logits_rejected_sum - t->logits_rejected_sum) <= 1e-5 * (1 + fabs(t1.logits_rejected_sum)),
              "%s %s chunks of %ld: token metrics differ (%s)", name, lay, chunk, k ? "log-probs only" : "training");
    }
    double worst = grad_diff(m, g1, m->grads, NULL);
    CHECK(worst <= 1e-5, "%s %s chunks of %ld: gradients differ by %.2e of the largest", name, lay, chunk, worst);
    if (worst <= 1e-5 && sd <= 1e-5 * smax)
        printf("ok   %-20s %s rows, chunks of %ld tokens = the whole batch (%.1e)\n", name, lay, chunk, worst);
    free(g1);
    batch_free(&b);
    prefbatch_scratch_free(&sc);
}

static void compare(Model *m, const char *name, const PrefExample *const *pp, int flash) {
    Error e;
    Batch bu, bs;
    if (batch_pairs(&bu, pp, NP, 0, m->cfg.pad_id, &e)) {
        CHECK(0, "%s: batch_pairs: %s", name, e.msg);
        return;
    }
    CHECK(batch_pairs_shared(&bs, pp, NP, m->cfg.pad_id) == 0, "%s: batch_pairs_shared failed", name);
    CHECK(bs.B == NP && bu.B == 2 * NP && bs.shared && !bu.shared, "%s: rows %d shared, %d unshared", name, bs.B, bu.B);
    CHECK(bs.n_targets == bu.n_targets, "%s: %ld targets shared, %ld unshared", name, bs.n_targets, bu.n_targets);
    long tok_s = 0, tok_u = 0;
    for (int r = 0; r < bs.B; r++) tok_s += bs.lengths[r];
    for (int r = 0; r < bu.B; r++) tok_u += bu.lengths[r];
    CHECK(tok_s < tok_u, "%s: %ld tokens shared, not fewer than %ld", name, tok_s, tok_u);
    float w[2 * NP], su[2 * NP], ss[2 * NP];
    int lu[2 * NP], ls[2 * NP];
    for (int k = 0; k < 2 * NP; k++) w[k] = (float)(k % 3) - 0.75f;
    PrefScratch sc;
    memset(&sc, 0, sizeof sc);
    PrefTokenStats tu, tsh;
    model_set_flash_attention(flash);
    float *gu = run(m, &bu, &sc, w, su, lu, &tu), *gs = run(m, &bs, &sc, w, ss, ls, &tsh);
    model_set_flash_attention(-1);
    CHECK(tu.tokens == tsh.tokens && tu.chosen_tokens == tsh.chosen_tokens &&
              tu.rejected_tokens == tsh.rejected_tokens && tu.chosen_correct == tsh.chosen_correct,
          "%s (flash %d): token counts %ld/%ld/%ld/%ld shared, %ld/%ld/%ld/%ld unshared", name, flash, tsh.tokens,
          tsh.chosen_tokens, tsh.rejected_tokens, tsh.chosen_correct, tu.tokens, tu.chosen_tokens, tu.rejected_tokens,
          tu.chosen_correct);
    double su3[3] = {tu.entropy_sum, tu.logits_chosen_sum, tu.logits_rejected_sum};
    double ss3[3] = {tsh.entropy_sum, tsh.logits_chosen_sum, tsh.logits_rejected_sum};
    for (int k = 0; k < 3; k++)
        CHECK(fabs(ss3[k] - su3[k]) <= 1e-5 * (1 + fabs(su3[k])), "%s (flash %d): token metric %d is %g shared, %g",
              name, flash, k, ss3[k], su3[k]);
    double smax = 0, sd = 0;
    for (int k = 0; k < 2 * NP; k++) {
        smax = fmax(smax, fabs(su[k]));
        sd = fmax(sd, fabs((double)ss[k] - su[k]));
        CHECK(ls[k] == lu[k], "%s: sequence %d has %d completion tokens shared, %d unshared", name, k, ls[k], lu[k]);
    }
    CHECK(smax > 0, "%s: all log-probs zero (the test would prove nothing)", name);
    CHECK(sd <= 1e-5 * smax, "%s (flash %d): sequence log-probs differ by %.2e of the largest", name, flash, sd / smax);
    const char *worst_t = "";
    double worst = grad_diff(m, gu, gs, &worst_t);
    CHECK(worst <= 1e-5, "%s (flash %d): gradients differ by %.2e of the largest in %s", name, flash, worst, worst_t);
    if (sd <= 1e-5 * smax && worst <= 1e-5)
        printf("ok   %-20s flash %d: %ld tokens instead of %ld; log-probs within %.1e, gradients %.1e\n", name, flash,
               tok_s, tok_u, sd / smax, worst);
    compare_one_pass(m, name, &bu, flash);
    compare_one_pass(m, name, &bs, flash);
    free(gu), free(gs);
    prefbatch_scratch_free(&sc);
    batch_free(&bu), batch_free(&bs);
}

/* nowin: the fixture with its sliding windows removed (a model of its own, run both
 * ways), so that Gemma's soft-capped attention (attention_ext, the fused kernel's
 * capping) is compared too: the fixtures' windows (4, 5) are shorter than the rows. */
static void test_fixture(const char *name, int want_share, int nowin, int long_pairs) {
    Model m;
    if (!fixture_load_grads(&m, name)) return;
    if (nowin)
        for (int l = 0; l < m.cfg.n_layer; l++) m.w.info[l].window = 0;
    PrefExample p[NP];
    const PrefExample *pp[NP];
    make_pairs(p, m.cfg.vocab_size, long_pairs);
    for (int i = 0; i < NP; i++) pp[i] = &p[i];
    int can = prefbatch_can_share(&m, pp, NP);
    CHECK(can == want_share, "%s: prefbatch_can_share %d, expected %d", name, can, want_share);
    char label[64];
    snprintf(label, sizeof label, "%s%s%s", name, nowin ? " nowin" : "", long_pairs ? " long" : "");
    if (can) { /* both layouts agree only where can_share says yes */
        compare(&m, label, pp, 0);
        compare(&m, label, pp, 1);
        if (long_pairs) compare(&m, label, pp, -1);
        for (int share = 0; share < 2; share++) {
            compare_chunks(&m, label, pp, share, 1);
            compare_chunks(&m, label, pp, share, 60);
        }
    } else if (can == want_share) {
        printf("ok   %-20s prefix sharing declined, as expected\n", label);
    }
    for (int i = 0; i < NP; i++) pref_example_free(&p[i]);
    model_free(&m);
}

/* The row layout itself, on one pair: prompt [1 2 3], chosen [4 5], rejected [6]. */
static void test_layout(void) {
    int prompt[] = {1, 2, 3}, chosen[] = {4, 5}, rejected[] = {6};
    PrefExample p;
    memset(&p, 0, sizeof p);
    p.prompt = prompt, p.chosen = chosen, p.rejected = rejected;
    p.n_prompt = 3, p.n_chosen = 2, p.n_rejected = 1;
    const PrefExample *pp = &p;
    Batch b;
    batch_pairs_shared(&b, &pp, 1, 0);
    int c0 = seg_branch(0, 0), c1 = seg_branch(0, 1);
    int want_tok[] = {1, 2, 3, 4, 5, 3, 6}, want_pos[] = {0, 1, 2, 3, 4, 2, 3}, want_seg[] = {0, 0, c0, c0, c0, c1, c1};
    int want_tgt[] = {-1, -1, 4, 5, -1, 6, -1};
    CHECK(b.T == 7 && b.lengths[0] == 7, "layout: T %d, length %d, expected 7", b.T, b.lengths[0]);
    for (int t = 0; t < 7 && b.T == 7; t++)
        CHECK(b.tokens[t] == want_tok[t] && b.pos[t] == want_pos[t] && b.seg[t] == want_seg[t] &&
                  b.targets[t] == want_tgt[t],
              "layout: column %d is token %d pos %d seg %d target %d, expected %d %d %d %d", t, b.tokens[t], b.pos[t],
              b.seg[t], b.targets[t], want_tok[t], want_pos[t], want_seg[t], want_tgt[t]);
    CHECK(b.n_examples == 2 && b.ex_start[0] == 2 && b.ex_len[0] == 3 && b.ex_start[1] == 5 && b.ex_len[1] == 2,
          "layout: branches at %d+%d and %d+%d", b.ex_start[0], b.ex_len[0], b.ex_start[1], b.ex_len[1]);
    /* the mask: a branch sees its prefix and itself, not the other branch */
    CHECK(seg_visible(0, c0) && seg_visible(0, c1) && seg_visible(c1, c1) && !seg_visible(c0, c1) &&
              !seg_visible(c1, c0) && !seg_visible(c0, 0) && !seg_visible(BATCH_PAD_SEG, c0) && !seg_visible(1, 0) &&
              seg_visible(seg_branch(3, 0), seg_branch(3, 0)) && seg_visible(3, seg_branch(3, 1)) &&
              !seg_visible(2, seg_branch(3, 1)),
          "layout: seg_visible");
    batch_free(&b);
    printf("ok   layout: prefix, two branches, positions and targets\n");
}

int main(void) {
    test_layout();
    const char *share[] = {"model-gpt2",  "model-gpt2-untied", "model-llama-gqa", "model-llama-tied",
                           "model-qwen2", "model-qwen3",       "model-llama3",    NULL};
    for (int i = 0; share[i]; i++) test_fixture(share[i], 1, 0, 0);
    test_fixture("model-phi3-longrope", 1, 0, 0);
    /* windows of 4 and 5 tokens: declined; without them: shared */
    const char *windowed[] = {"model-gemma2", "model-gemma3", "model-mistral", "model-phi3", NULL};
    for (int i = 0; windowed[i]; i++) {
        test_fixture(windowed[i], 0, 0, 0);
        test_fixture(windowed[i], 1, 1, 0);
    }
    /* rows past the fused kernel's key blocks (positions up to 89: RoPE families) */
    const char *longer[] = {"model-llama-gqa", "model-qwen3", "model-phi3-longrope", NULL};
    for (int i = 0; longer[i]; i++) test_fixture(longer[i], 1, 0, 1);
    return check_summary("test_prefix_share");
}
