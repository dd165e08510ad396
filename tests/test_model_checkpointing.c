/* test_model_checkpointing.c — gradient checkpointing (model.h
 * model_set_checkpointing) is invisible in the numbers: for every family of the
 * oracle fixtures, one forward, a head and backward with and without it give the
 * same hidden states and the same gradient of every parameter, bit for bit, on a
 * packed batch (two segments per row, a padded tail) whose T exceeds Gemma's
 * sliding window. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "model/model.h"

#define B 2
#define T 24

static int tokens[B * T], pos[B * T], seg[B * T], targets[B * T];
static float dlogp[B * T];

static void make_batch(int vocab) {
    Rng r;
    rng_seed(&r, 7);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int n = b * T + t, cut = b ? 10 : 15, pad = b ? T - 3 : T;
            tokens[n] = (int)(rng_uniform(&r) * (float)(vocab - 1));
            seg[n] = t >= pad ? 2 : t >= cut;
            pos[n] = t >= cut && t < pad ? t - cut : t;
            targets[n] = t + 1 < pad ? (int)(rng_uniform(&r) * (float)(vocab - 1)) : -1;
            dlogp[n] = rng_uniform(&r) - 0.5f;
        }
}

/* One forward + head + backward; returns the gradients (malloc'd) and the hidden states in *hid. */
static float *run(Model *m, float **hid) {
    model_zero_grad(m);
    model_forward(m, tokens, pos, seg, B, T);
    size_t NC = (size_t)B * T * m->cfg.d_model;
    if (m->cfg.is_classifier) {
        float values[B * T];
        model_values(m, values);
        model_values_backward(m, dlogp);
    } else {
        float logp[B * T];
        model_logprobs(m, targets, logp, NULL);
        model_logprobs_backward(m, targets, dlogp);
    }
    model_backward(m);
    *hid = xmalloc(NC * sizeof(float));
    memcpy(*hid, m->hidden, NC * sizeof(float));
    float *g = xmalloc(m->n_params * sizeof(float));
    memcpy(g, m->grads, m->n_params * sizeof(float));
    return g;
}

static void test_fixture(const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/oracle/fixtures/%s", name);
    Model m;
    Error e;
    if (model_load(&m, dir, &e)) {
        CHECK(0, "%s: %s", name, e.msg);
        return;
    }
    model_enable_grads(&m);
    make_batch(m.cfg.vocab_size);
    float *h0, *h1;
    model_set_checkpointing(0);
    float *g0 = run(&m, &h0);
    model_set_checkpointing(1);
    float *g1 = run(&m, &h1);
    /* and again without: the activation block carved for checkpointing is re-carved */
    model_set_checkpointing(0);
    float *h2, *g2 = run(&m, &h2);
    size_t NC = (size_t)B * T * m.cfg.d_model;
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
    printf("ok   %-20s %d tensors, gradients and hidden states bit-identical\n", name, m.n_tensors);
    free(h0), free(h1), free(h2), free(g0), free(g1), free(g2);
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
    return check_summary("test_model_checkpointing");
}
