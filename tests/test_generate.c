/* test_generate.c — the KV-cache generation path against a full recompute, and the
 * reproducibility promises of generate.h.
 *
 *  1. Every generated token's log-prob from the cached path equals the one from
 *     model_forward + model_logprobs on prompt + completion (within 2e-4), for the
 *     tiny GPT-2 and Llama fixtures and for random models whose widths exercise the
 *     kernels' tails (C not a multiple of 16, tied embeddings, attention biases).
 *  2. Batch invariance: the same (prompt, sample) gives bit-identical tokens and
 *     log-probs at batch sizes 1, 3 and 16 and with the prompts in another order.
 *  3. Stop conditions: EOS ends a sequence with finish "stop" and the EOS kept;
 *     max_new_tokens and the model's context end it with "length".
 *  4. Bad prompts are errors naming the prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "generate/generate.h"
#include "kernels/ops.h"
#include "model/model.h"

#define NP 5
static const int P0[] = {5, 17, 42, 3, 9}, P1[] = {7}, P2[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, P3[] = {64, 64, 64},
                 P4[] = {30, 31};
static const int *PROMPTS[NP] = {P0, P1, P2, P3, P4};
static const int LENS[NP] = {5, 1, 11, 3, 2};

/* Log-probs of seq's tokens by a full forward over prompt + completion, at
 * temperature tau: model_logprobs for tau = 1, else log softmax(logits / tau) from
 * the full logits of the recomputed hidden states. */
static void recompute(Model *m, const int *prompt, int plen, const GenSeq *q, float tau, float *out) {
    int T = plen + q->n_tokens;
    int *tok = malloc(T * sizeof(int)), *tgt = malloc(T * sizeof(int));
    float *lp = malloc(T * sizeof(float));
    memcpy(tok, prompt, plen * sizeof(int));
    memcpy(tok + plen, q->tokens, q->n_tokens * sizeof(int));
    for (int t = 0; t < T; t++) tgt[t] = (t + 1 < T && t + 1 >= plen) ? tok[t + 1] : -1;
    model_forward(m, tok, NULL, NULL, 1, T);
    model_logprobs(m, tgt, lp, NULL);
    for (int i = 0; i < q->n_tokens; i++) out[i] = lp[plen - 1 + i];
    if (tau != 1.0f) {
        int C = m->cfg.d_model, V = m->cfg.vocab_size;
        float *logits = malloc(V * sizeof(float));
        for (int i = 0; i < q->n_tokens; i++) {
            logits_forward(logits, m->hidden + (size_t)(plen - 1 + i) * C, m->w.lm_head, 1, C, V);
            out[i] = sampler_logprob(logits, V, q->tokens[i], tau);
        }
        free(logits);
    }
    free(tok);
    free(tgt);
    free(lp);
}

static void check_recompute(const char *name, Model *m, float temperature) {
    GenConfig c = gen_config_default();
    c.max_new_tokens = 12;
    c.num_samples = 2;
    c.batch_size = 3;
    c.seed = 11;
    c.sampler.temperature = temperature;
    GenSeq out[NP * 2];
    Error e;
    int rc = generate(m, &c, NULL, PROMPTS, LENS, NULL, NP, out, NULL, NULL, &e);
    CHECK(rc == 0, "%s: generate failed: %s", name, e.msg);
    if (rc) return;
    double worst = 0;
    for (int i = 0; i < NP * 2; i++) {
        GenSeq *q = &out[i];
        CHECK(q->prompt == i / 2 && q->sample == i % 2, "%s: out[%d] is (prompt %d, sample %d)", name, i, q->prompt,
              q->sample);
        CHECK(q->n_tokens == 12 && q->finish == GEN_FINISH_LENGTH, "%s: seq %d: %d tokens, finish %d", name, i,
              q->n_tokens, q->finish);
        float ref[64];
        recompute(m, PROMPTS[q->prompt], LENS[q->prompt], q, temperature, ref);
        double sum = 0;
        for (int t = 0; t < q->n_tokens; t++) {
            double d = fabs(ref[t] - q->logprobs[t]);
            if (d > worst) worst = d;
            sum += q->logprobs[t];
            CHECK(d < 2e-4, "%s: seq %d token %d: full recompute log-prob %.6f, KV cache %.6f", name, i, t, ref[t],
                  q->logprobs[t]);
        }
        CHECK(fabs(sum - q->logprob) < 1e-4, "%s: seq %d: logprob sum %.6f, tokens add to %.6f", name, i, q->logprob,
              sum);
        gen_seq_free(q);
    }
    printf("%s (temperature %g): worst |KV cache - recompute| log-prob difference %.2e\n", name, temperature, worst);
}

static void check_invariance(const char *name, Model *m) {
    GenConfig c = gen_config_default();
    c.max_new_tokens = 10;
    c.num_samples = 3;
    c.seed = 2024;
    c.sampler.temperature = 1.0f;
    c.sampler.top_k = 40;
    c.sampler.top_p = 0.95f;
    GenSeq ref[NP * 3], got[NP * 3];
    Error e;
    c.batch_size = 1;
    CHECK(generate(m, &c, NULL, PROMPTS, LENS, NULL, NP, ref, NULL, NULL, &e) == 0, "%s: %s", name, e.msg);
    int sizes[2] = {3, 16};
    for (int k = 0; k < 2; k++) {
        c.batch_size = sizes[k];
        CHECK(generate(m, &c, NULL, PROMPTS, LENS, NULL, NP, got, NULL, NULL, &e) == 0, "%s: %s", name, e.msg);
        for (int i = 0; i < NP * 3; i++) {
            int same = got[i].n_tokens == ref[i].n_tokens &&
                       !memcmp(got[i].tokens, ref[i].tokens, ref[i].n_tokens * sizeof(int)) &&
                       !memcmp(got[i].logprobs, ref[i].logprobs, ref[i].n_tokens * sizeof(float));
            CHECK(same, "%s: batch %d, seq %d differs from batch 1 (first token %d vs %d, logprob %.9g vs %.9g)", name,
                  sizes[k], i, got[i].tokens[0], ref[i].tokens[0], got[i].logprob, ref[i].logprob);
            gen_seq_free(&got[i]);
        }
    }
    /* the same prompts in reverse order, with their global ids */
    const int *rp[NP];
    int rl[NP];
    long ids[NP];
    for (int i = 0; i < NP; i++) rp[i] = PROMPTS[NP - 1 - i], rl[i] = LENS[NP - 1 - i], ids[i] = NP - 1 - i;
    c.batch_size = 4;
    CHECK(generate(m, &c, NULL, rp, rl, ids, NP, got, NULL, NULL, &e) == 0, "%s: %s", name, e.msg);
    int distinct = 0;
    for (int i = 0; i < NP; i++)
        for (int s = 0; s < 3; s++) {
            GenSeq *a = &got[i * 3 + s], *b = &ref[(NP - 1 - i) * 3 + s];
            CHECK(a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, b->n_tokens * sizeof(int)) &&
                      a->logprob == b->logprob,
                  "%s: prompt %d sample %d changes when the prompts are reordered", name, NP - 1 - i, s);
            if (s > 0 && memcmp(got[i * 3].tokens, a->tokens, a->n_tokens * sizeof(int))) distinct = 1;
        }
    for (int i = 0; i < NP * 3; i++) gen_seq_free(&got[i]);
    CHECK(distinct, "%s: the samples of a prompt are all identical (one RNG stream per sample expected)", name);
    for (int i = 0; i < NP * 3; i++) gen_seq_free(&ref[i]);
    printf("%s: batch 1, 3, 16 and reordered prompts give identical sequences\n", name);
}

static void check_stops(const char *name, Model *m) {
    GenConfig c = gen_config_default();
    c.sampler.temperature = 0;
    c.max_new_tokens = 8;
    GenSeq a, b;
    Error e;
    CHECK(generate(m, &c, NULL, PROMPTS, LENS, NULL, 1, &a, NULL, NULL, &e) == 0, "%s", e.msg);
    CHECK(a.n_tokens == 8 && a.finish == GEN_FINISH_LENGTH && !a.eos, "%s: greedy to length: %d tokens, finish %d",
          name, a.n_tokens, a.finish);
    /* make an early greedy token the EOS: the sequence must end there, EOS kept */
    int k = 3; /* the latest of the first four tokens that has not appeared before it */
    for (; k > 0; k--) {
        int first = 1;
        for (int j = 0; j < k; j++) first &= a.tokens[j] != a.tokens[k];
        if (first) break;
    }
    c.eos_ids[0] = a.tokens[k];
    c.n_eos = 1;
    CHECK(generate(m, &c, NULL, PROMPTS, LENS, NULL, 1, &b, NULL, NULL, &e) == 0, "%s", e.msg);
    CHECK(b.n_tokens == k + 1 && b.finish == GEN_FINISH_STOP && b.eos && b.tokens[k] == a.tokens[k],
          "%s: EOS %d at step %d: expected %d tokens ending in it with finish stop, got %d tokens, finish %d", name,
          a.tokens[k], k, k + 1, b.n_tokens, b.finish);
    gen_seq_free(&a);
    gen_seq_free(&b);
    /* context limit: a prompt 3 short of max_seq gets 3 tokens */
    int L = m->cfg.max_seq - 3;
    int *lp = malloc(L * sizeof(int));
    for (int i = 0; i < L; i++) lp[i] = (i * 7) % m->cfg.vocab_size;
    const int *pp[1] = {lp};
    c.n_eos = 0;
    c.max_new_tokens = 50;
    CHECK(generate(m, &c, NULL, pp, &L, NULL, 1, &a, NULL, NULL, &e) == 0, "%s", e.msg);
    CHECK(a.n_tokens == 3 && a.finish == GEN_FINISH_LENGTH, "%s: at the context limit: expected 3 tokens, got %d", name,
          a.n_tokens);
    gen_seq_free(&a);
    /* bad prompts */
    L = m->cfg.max_seq;
    CHECK(generate(m, &c, NULL, pp, &L, NULL, 1, &a, NULL, NULL, &e) == EX_DATAERR && strstr(e.msg, "prompt 0"),
          "%s: a prompt as long as the context must be EX_DATAERR", name);
    int bad[2] = {1, m->cfg.vocab_size}, two = 2;
    const int *bp[1] = {bad};
    CHECK(generate(m, &c, NULL, bp, &two, NULL, 1, &a, NULL, NULL, &e) == EX_DATAERR && strstr(e.msg, "vocabulary"),
          "%s: an out-of-vocabulary id must be EX_DATAERR", name);
    c.max_new_tokens = 0;
    CHECK(generate(m, &c, NULL, PROMPTS, LENS, NULL, 1, &a, NULL, NULL, &e) == EX_USAGE, "max_new_tokens 0 accepted");
    free(lp);
}

static int load(Model *m, const char *dir) {
    Error e;
    if (model_load(m, dir, &e)) {
        printf("FAIL: cannot load %s: %s\n", dir, e.msg);
        failures++;
        return 1;
    }
    return 0;
}

/* 2 layers, 4 query / 2 key-value heads, vocabulary 77, context 48. */
static ModelConfig small_config(Family f, int C, int F) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = f;
    c.n_layer = 2, c.n_head = 4, c.n_kv_head = 2, c.d_model = C, c.d_ff = F, c.vocab_size = 77, c.max_seq = 48;
    c.norm_eps = 1e-5f, c.rope_theta = 500.0f, c.init_std = 0.3f, c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

/* A random model of c: KV-cache decode against recompute, and batch invariance. */
static void check_random(const char *name, const ModelConfig *c, uint64_t seed) {
    Model m;
    model_create(&m, c);
    model_init_random(&m, seed);
    check_recompute(name, &m, 1.0f);
    check_invariance(name, &m);
    model_free(&m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    Model m;
    const char *dirs[2] = {"tests/oracle/fixtures/gen-gpt2", "tests/oracle/fixtures/gen-llama"};
    for (int i = 0; i < 2; i++) {
        if (load(&m, dirs[i])) continue;
        check_recompute(dirs[i], &m, 1.0f);
        check_recompute(dirs[i], &m, 0.7f);
        check_invariance(dirs[i], &m);
        check_stops(dirs[i], &m);
        model_free(&m);
    }
    /* random models with awkward widths: C = 40 (16-lane tail + 8-lane part),
     * hd = 8, one kv head, tied embeddings, attention and MLP biases */
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.family = FAMILY_LLAMA;
    c.n_layer = 2, c.n_head = 5, c.n_kv_head = 1, c.d_model = 40, c.d_ff = 52, c.vocab_size = 77, c.max_seq = 48;
    c.norm_eps = 1e-5f, c.rope_theta = 500.0f, c.init_std = 0.3f, c.tie_embeddings = 1, c.attn_bias = 1;
    c.mlp_bias = 1, c.bos_id = c.eos_id = c.pad_id = -1;
    model_create(&m, &c);
    model_init_random(&m, 3);
    check_recompute("random llama C=40", &m, 1.0f);
    check_invariance("random llama C=40", &m);
    model_free(&m);
    c.family = FAMILY_GPT2;
    c.n_head = 4, c.n_kv_head = 4, c.d_model = 36, c.d_ff = 4 * 36, c.vocab_size = 91;
    model_create(&m, &c);
    model_init_random(&m, 4);
    check_recompute("random gpt2 C=36", &m, 1.0f);
    check_stops("random gpt2 C=36", &m);
    model_free(&m);
    /* the newer families' decode paths against the training forward: Gemma 2 (head_dim
     * 12 != C/heads, window 5 on alternate layers, soft-caps, query scale, (1+w) norms,
     * GeGLU, sandwich norms), Phi-3 (fused qkv and gate_up, window 4 everywhere),
     * Qwen3 (q/k norms) with llama3 RoPE scaling */
    c = small_config(FAMILY_GEMMA2, 40, 52);
    c.head_dim = 12, c.tie_embeddings = 1;
    c.sliding_window = 5, c.sliding_pattern = 2, c.attn_softcap = 3.0f, c.final_softcap = 4.0f, c.query_scale = 10.0f;
    check_random("random gemma2 C=40 hd=12", &c, 5);
    c = small_config(FAMILY_PHI3, 32, 40);
    c.sliding_window = 4;
    check_random("random phi3 window 4", &c, 6);
    c = small_config(FAMILY_QWEN3, 32, 40);
    c.head_dim = 16, c.rope_theta = 10000.0f;
    c.rope_scaling.type = ROPE_LLAMA3, c.rope_scaling.factor = 8, c.rope_scaling.low_freq = 1;
    c.rope_scaling.high_freq = 4, c.rope_scaling.original_max = 16;
    check_random("random qwen3 hd=16 llama3 rope", &c, 7);
    /* longrope: sequences cross the original context (8) while decoding, where the
     * slot is prefilled again with the long factors; a recompute of the whole sequence
     * uses the long factors for the earlier tokens too, so only invariance applies */
    c = small_config(FAMILY_PHI3, 32, 40);
    c.rope_scaling.type = ROPE_LONGROPE, c.rope_scaling.original_max = 8, c.rope_scaling.n_factors = 4;
    c.rope_scaling.attn_factor = 1.3f, c.rope_scaling.factor = 6;
    for (int i = 0; i < 4; i++)
        c.rope_scaling.short_factor[i] = 1.0f + 0.1f * i, c.rope_scaling.long_factor[i] = 2.0f + i;
    Model lm;
    model_create(&lm, &c);
    model_init_random(&lm, 8);
    check_invariance("random phi3 longrope", &lm);
    model_free(&lm);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("generate: all checks passed\n");
    return 0;
}
