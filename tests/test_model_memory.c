/* test_model_memory.c — the model's two memory savers against the plain model, for
 * every family of the oracle fixtures, one forward, a head and backward on a packed
 * batch (two segments per row, a padded tail) whose T exceeds Gemma's sliding window:
 *   - gradient checkpointing (model.h model_set_checkpointing) gives the same hidden
 *     states and the same gradient of every parameter, bit for bit, with the dense
 *     and with the fused attention;
 *   - the fused attention (model_set_flash_attention 1) gives hidden states and
 *     gradients within 1e-5 of the dense kernel's, relative to each tensor's
 *     largest gradient (float rounding carried through the layers), and not the same
 *     bits: every family takes the fused path, Gemma 2's soft-capped and scaled
 *     layers and the sliding windows of Gemma 2/3 and Mistral (4 < T) included;
 *   - the auto mode is the dense kernel at T = 24 and the fused one at T = 160
 *     (test_auto);
 *   - the LM head in one pass (model_logprobs_fused, SFT's path) gives gradients
 *     within 1e-5 of model_logprobs + model_logprobs_backward (Gemma 2's soft-capped
 *     head falls back to those two: the same bits);
 *   - a forward-only model (model_set_forward_only) gives the same hidden states and
 *     gradients, bit for bit, from fewer activation floats than a fresh plain model,
 *     and again after model_release_activations;
 *   - gradients discarded (model_grads_discard, as the trainer leaves them after an
 *     update) and left holding NaN: the next two backwards (the second adds to the
 *     first, as micro-batches do) and model_grads_settle give the gradients of zeroed
 *     ones, equal value for value (a product that overwrites may keep a -0 where
 *     adding to +0 gave +0), with no NaN left in any tensor, with either LM head and,
 *     where oneDNN is installed, bf16 products; settled with no backward, every
 *     gradient is 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "fixture.h"
#include "kernels/gemm.h"
#include "model/model.h"

/* Under AddressSanitizer, leak checking is off: with libdnnl.so.2 dlopen'ed (the bf16
 * cases of test_discard) LeakSanitizer's exit-time scan can crash on a garbage DTV
 * entry after every check has passed ("Tracer caught signal 11"; test_ops_grad.c has
 * the details).  ASan's and UBSan's memory checks stay on. */
const char *__asan_default_options(void) __attribute__((used));
const char *__asan_default_options(void) {
    return "detect_leaks=0";
}

#define B 2
#define T_MAX 160

static int T = 24;     /* the row length of make_batch and run */
static int head_fused; /* run: model_logprobs_fused instead of the two passes */
static int discarded;  /* run: model_grads_discard and NaN gradients instead of model_zero_grad */
static int passes = 1; /* run: backwards added up */
static int tokens[B * T_MAX], pos[B * T_MAX], seg[B * T_MAX], targets[B * T_MAX];
static float dlogp[B * T_MAX];

/* Row 0: two packed examples; row 1: two and a padded tail.  Rows longer than 30 pack
 * an example every 30 tokens instead, so positions stay below GPT-2's 32. */
static void make_batch(int vocab) {
    Rng r;
    rng_seed(&r, 7);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int n = b * T + t, cut = b ? 10 : 15, pad = b ? T - 3 : T;
            tokens[n] = (int)(rng_uniform(&r) * (float)(vocab - 1));
            seg[n] = t >= pad ? 2 : t >= cut;
            pos[n] = t >= cut && t < pad ? t - cut : t;
            if (T > 30) seg[n] = t >= pad ? T : t / 30, pos[n] = t % 30;
            targets[n] = t + 1 < pad ? (int)(rng_uniform(&r) * (float)(vocab - 1)) : -1;
            dlogp[n] = rng_uniform(&r) - 0.5f;
        }
}

/* One forward + head + backward; returns the gradients (malloc'd) and the hidden states in *hid. */
static float *run(Model *m, float **hid) {
    if (discarded) {
        model_grads_discard(m);
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] = NAN; /* what the backward must not read */
    } else {
        model_zero_grad(m);
    }
    model_forward(m, tokens, pos, seg, B, T);
    size_t NC = (size_t)B * T * m->cfg.d_model;
    for (int k = 0; k < passes; k++) {
        if (k) model_forward(m, tokens, pos, seg, B, T);
        if (m->cfg.is_classifier) {
            float values[B * T_MAX];
            model_values(m, values);
            model_values_backward(m, dlogp);
        } else {
            float logp[B * T_MAX];
            if (head_fused) {
                model_logprobs_fused(m, targets, dlogp, logp, NULL, NULL);
            } else {
                model_logprobs(m, targets, logp, NULL);
                model_logprobs_backward(m, targets, dlogp);
            }
        }
        model_backward(m);
    }
    model_grads_settle(m);
    *hid = xmalloc(NC * sizeof(float));
    memcpy(*hid, m->hidden, NC * sizeof(float));
    float *g = xmalloc(m->n_params * sizeof(float));
    memcpy(g, m->grads, m->n_params * sizeof(float));
    return g;
}

/* The auto mode (model.c: the fused kernel from FLASH_MIN_T = 128 tokens on, in every
 * layer): at T = 160 its results are the fused kernel's bits, checkpointed or not; at
 * the default T = 24 the dense kernel's (attention_ext's in layers with options). */
static void test_auto(Model *m, const char *name) {
    size_t np = m->n_params;
    int T0 = T;
    {
        size_t NC = (size_t)B * T * m->cfg.d_model;
        float *hd, *ha;
        model_set_flash_attention(0);
        float *gd = run(m, &hd);
        model_set_flash_attention(-1);
        float *ga = run(m, &ha);
        int same_d = !memcmp(gd, ga, np * sizeof(float)) && !memcmp(hd, ha, NC * sizeof(float));
        CHECK(same_d, "%s: auto attention at T = %d: not the dense kernel's bits", name, T);
        if (same_d) printf("ok   %-20s auto attention at T = %d: the dense kernel's bits\n", name, T);
        free(gd), free(ga), free(hd), free(ha);
    }
    T = T_MAX;
    make_batch(m->cfg.vocab_size);
    size_t NC = (size_t)B * T * m->cfg.d_model;
    float *hd, *hf, *ha, *hac;
    model_set_flash_attention(0);
    float *gd = run(m, &hd);
    model_set_flash_attention(1);
    float *gf = run(m, &hf);
    model_set_flash_attention(-1);
    float *ga = run(m, &ha);
    model_set_checkpointing(1);
    float *gac = run(m, &hac);
    model_set_checkpointing(0);
    int same_f = !memcmp(gf, ga, np * sizeof(float)) && !memcmp(hf, ha, NC * sizeof(float));
    double worst_fd = 0, gmax = 0;
    for (size_t i = 0; i < np; i++) worst_fd = fmax(worst_fd, fabs((double)gf[i] - gd[i]));
    for (size_t i = 0; i < np; i++) gmax = fmax(gmax, fabs(gd[i]));
    /* at this T (several blocks of 64, packed rows) the two kernels agree */
    CHECK(worst_fd <= 1e-5 * gmax, "%s: at T = %d the fused kernel's gradients are %.2e from the dense ones", name, T,
          worst_fd / gmax);
    int ckpt_ok = !memcmp(ga, gac, np * sizeof(float)) && !memcmp(ha, hac, NC * sizeof(float));
    CHECK(same_f, "%s: auto attention at T = %d: not the fused kernel's bits", name, T);
    CHECK(ckpt_ok, "%s: auto attention at T = %d: checkpointing changes the results", name, T);
    if (same_f && ckpt_ok)
        printf("ok   %-20s auto attention at T = %d: the fused kernel's bits; checkpointing bit-identical\n", name, T);
    free(gd), free(gf), free(ga), free(gac), free(hd), free(hf), free(ha), free(hac);
    T = T0;
    make_batch(m->cfg.vocab_size);
}

/* The largest |g - ref| of a tensor relative to its largest |ref|, over the tensors;
 * *which names that tensor. */
static double worst_rel(const Model *m, const float *g, const float *ref, const char **which) {
    double worst = 0;
    *which = "";
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        double mx = 0, d = 0;
        for (size_t j = 0; j < t->numel; j++) {
            mx = fmax(mx, fabs(ref[t->offset + j]));
            d = fmax(d, fabs((double)g[t->offset + j] - ref[t->offset + j]));
        }
        if (mx > 0 && d / mx > worst) worst = d / mx, *which = t->name;
    }
    return worst;
}

/* model_set_forward_only: a fresh model of its own (the activation block only grows),
 * the dense attention, against the plain model's h0 and g0. */
static void test_forward_only(const char *name, const float *h0, const float *g0, size_t plain_floats) {
    Model m;
    if (!fixture_load_grads(&m, name)) return;
    model_set_forward_only(&m, 1);
    model_set_flash_attention(0);
    float *h, *g = run(&m, &h);
    model_set_flash_attention(-1);
    size_t NC = (size_t)B * T * m.cfg.d_model, fo = model_activation_floats(&m);
    CHECK(memcmp(h, h0, NC * sizeof(float)) == 0 && memcmp(g, g0, m.n_params * sizeof(float)) == 0,
          "%s: a forward-only model's results differ", name);
    CHECK(fo < plain_floats, "%s: forward only: %zu activation floats, the plain model %zu", name, fo, plain_floats);
    if (fo < plain_floats)
        printf("ok   %-20s forward only: bit-identical from %zu activation floats instead of %zu\n", name, fo,
               plain_floats);
    /* released, then the same forward again: the same bits from a new block */
    model_release_activations(&m);
    CHECK(model_activation_floats(&m) == 0, "%s: model_release_activations kept %zu floats", name,
          model_activation_floats(&m));
    model_set_flash_attention(0);
    float *h2, *g2 = run(&m, &h2);
    model_set_flash_attention(-1);
    CHECK(memcmp(h2, h0, NC * sizeof(float)) == 0 && memcmp(g2, g0, m.n_params * sizeof(float)) == 0,
          "%s: a forward after model_release_activations differs", name);
    free(h2), free(g2);
    free(h), free(g);
    model_free(&m);
}

static void test_discard(const char *name) {
    Model m;
    if (!fixture_load_grads(&m, name)) return;
    Error e;
    int have_bf16 = gemm_set_bf16(1, &e) == 0, bad = -1, cases = 0;
    gemm_set_bf16(0, NULL);
    const char *what = "";
    model_set_flash_attention(0);
    passes = 2;
    for (int bf16 = 0; bf16 <= have_bf16 && bad < 0; bf16++)
        for (int fused = 0; fused <= !m.cfg.is_classifier && bad < 0; fused++) {
            if (bf16) gemm_set_bf16(1, NULL);
            head_fused = fused;
            float *h0, *g0 = run(&m, &h0);
            discarded = 1;
            float *h, *g = run(&m, &h);
            discarded = head_fused = 0;
            gemm_set_bf16(0, NULL);
            for (int i = 0; i < m.n_tensors && bad < 0; i++)
                for (size_t j = m.tensors[i].offset; j < m.tensors[i].offset + m.tensors[i].numel && bad < 0; j++)
                    if (!(g[j] == g0[j])) bad = i; /* NaN compares unequal */
            what = bf16 ? (fused ? "bf16, one-pass head" : "bf16") : (fused ? "one-pass head" : "");
            cases++;
            free(h0), free(g0), free(h), free(g);
        }
    passes = 1;
    model_set_flash_attention(-1);
    CHECK(bad < 0, "%s: discarded gradients (%s): %s differs from zeroed ones' (or kept a NaN)", name, what,
          bad >= 0 ? m.tensors[bad].name : "");
    model_grads_discard(&m);
    for (size_t i = 0; i < m.n_params; i++) m.grads[i] = NAN;
    model_grads_settle(&m);
    size_t nonzero = 0;
    for (size_t i = 0; i < m.n_params; i++) nonzero += m.grads[i] != 0.0f;
    CHECK(nonzero == 0, "%s: settled with no backward: %zu gradients not 0", name, nonzero);
    if (bad < 0 && nonzero == 0)
        printf("ok   %-20s discarded gradients: two backwards give the zeroed ones' values, every tensor (%d "
               "cases%s)\n",
               name, cases, have_bf16 ? ", bf16 among them" : "; no oneDNN, fp32 only");
    model_free(&m);
}

static void test_fixture(const char *name) {
    Model m;
    if (!fixture_load_grads(&m, name)) return;
    make_batch(m.cfg.vocab_size);
    float *h0, *h1;
    model_set_flash_attention(0);
    model_set_checkpointing(0);
    float *g0 = run(&m, &h0);
    size_t plain_floats = model_activation_floats(&m); /* the first forward of a fresh model */
    model_set_checkpointing(1);
    float *g1 = run(&m, &h1);
    /* and again without: the activation block carved for checkpointing is re-carved */
    model_set_checkpointing(0);
    float *h2, *g2 = run(&m, &h2);
    size_t NC = (size_t)B * T * m.cfg.d_model;
    /* the fused attention, without and with checkpointing */
    model_set_flash_attention(1);
    float *hf, *gf = run(&m, &hf);
    model_set_checkpointing(1);
    float *hfc, *gfc = run(&m, &hfc);
    model_set_checkpointing(0);
    model_set_flash_attention(-1);
    CHECK(memcmp(gf, gfc, m.n_params * sizeof(float)) == 0 && memcmp(hf, hfc, NC * sizeof(float)) == 0,
          "%s: checkpointing changes the fused attention's results", name);
    double hmax = 0, hdiff = 0;
    const char *worst_t;
    double worst = worst_rel(&m, gf, g0, &worst_t);
    for (size_t j = 0; j < NC; j++) {
        hmax = fmax(hmax, fabs(h0[j]));
        hdiff = fmax(hdiff, fabs((double)hf[j] - h0[j]));
    }
    /* the kernels sum in different orders, so the same bits mean the dense one ran twice */
    CHECK(memcmp(g0, gf, m.n_params * sizeof(float)) != 0,
          "%s: expected the fused attention to run (results within rounding, not the same bits), got the dense "
          "kernel's bits",
          name);
    CHECK(worst <= 1e-5 && hdiff <= 1e-5 * hmax,
          "%s: fused attention vs dense: expected within 1e-5, got gradients %.2e (%s), hidden %.2e", name, worst,
          worst_t, hdiff / hmax);
    CHECK(memcmp(h0, h1, NC * sizeof(float)) == 0, "%s: hidden states differ with checkpointing", name);
    int bad = -1;
    for (int i = 0; i < m.n_tensors && bad < 0; i++) {
        const ParamTensor *t = &m.tensors[i];
        if (memcmp(g0 + t->offset, g1 + t->offset, t->numel * sizeof(float))) bad = i;
    }
    CHECK(bad < 0, "%s: gradient of %s differs with checkpointing", name, bad >= 0 ? m.tensors[bad].name : "");
    CHECK(memcmp(g0, g2, m.n_params * sizeof(float)) == 0 && memcmp(h0, h2, NC * sizeof(float)) == 0,
          "%s: a run without checkpointing after one with it differs", name);
    double gn = 0;
    for (size_t i = 0; i < m.n_params; i++) gn += (double)g0[i] * g0[i];
    CHECK(gn > 0, "%s: zero gradient (the test would prove nothing)", name);
    printf("ok   %-20s %d tensors: checkpointing bit-identical; fused attention: gradients within %.1e, hidden "
           "%.1e\n",
           name, m.n_tensors, worst, hdiff / hmax);
    if (!m.cfg.is_classifier) { /* the one-pass head against the two passes (g0: dense attention) */
        model_set_flash_attention(0);
        head_fused = 1;
        float *hq, *gq = run(&m, &hq);
        head_fused = 0;
        model_set_flash_attention(-1);
        const char *wq_t;
        double wq = worst_rel(&m, gq, g0, &wq_t);
        int capped = m.cfg.final_softcap > 0, same = !memcmp(gq, g0, m.n_params * sizeof(float));
        CHECK(wq <= 1e-5, "%s: LM head in one pass vs two: gradients %.2e apart (%s)", name, wq, wq_t);
        CHECK(!capped || same, "%s: the soft-capped head's fallback is not the two passes' bits", name);
        printf("ok   %-20s LM head in one pass: gradients within %.1e of the two passes%s\n", name, wq,
               capped ? " (soft cap: the two passes, same bits)" : "");
        free(hq), free(gq);
    }
    test_forward_only(name, h0, g0, plain_floats);
    test_discard(name);
    free(h0), free(h1), free(h2), free(g0), free(g1), free(g2), free(hf), free(gf), free(hfc), free(gfc);
    test_auto(&m, name);
    model_free(&m);
}

int main(void) {
    const char *fx[] = {"model-gpt2",
                        "model-gpt2-rm",
                        "model-llama-gqa",
                        "model-llama-rm",
                        "model-qwen2",
                        "model-qwen3",
                        "model-mistral",
                        "model-gemma2",
                        "model-gemma3",
                        "model-phi3",
                        "model-phi3-longrope",
                        "model-llama3",
                        NULL};
    for (int i = 0; fx[i]; i++) test_fixture(fx[i]);
    model_set_checkpointing(0);
    return check_summary("test_model_memory");
}
