/* bench_sft.c — SFT throughput through the real training loop (trainer_step: the
 * SFT micro-step as tools/sft.c does it — forward, fused log-probs with the argmax
 * for mean_token_accuracy from the same pass, cross-entropy, backward — then clipping
 * and AdamW) on the
 * GPT-2-124M shape (12 layers, 12 heads, width 768, vocab 50257, context 1024) at
 * B=4,T=64 and B=2,T=256, at the thread count of the machine (--threads 0).
 *
 * FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B "model FLOPs
 * utilization"): 6 * P + 12 * L * C * T for forward + backward, P = parameters
 * (the tied LM head counted once; the argmax costs no product of its own, and the
 * LM head's recomputation in backward is not model work).  The fraction printed is achieved FLOP/s
 * divided by the sgemm peak measured now (gemm_measure_peak) at the same thread
 * count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "bench_gpt2.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "train/losses.h"
#include "train/train.h"

typedef struct Bench {
    Model m;
    int B, T;
    int *tokens, *targets, *pred;
    float *logp, *dlogp;
} Bench;

static double bench_weight(void *ctx, Split s, const int *idx, int n) {
    Bench *b = ctx;
    return (double)n * (b->T - 1);
}

static int bench_micro_step(void *ctx, Split s, const int *idx, int n, double scale, Metrics *mt, Error *e) {
    Bench *b = ctx;
    Model *m = &b->m;
    size_t N = (size_t)b->B * b->T;
    model_forward(m, b->tokens, NULL, NULL, b->B, b->T);
    sft_dlogp(b->targets, N, scale, b->dlogp); /* as tools/sft.c: the LM head in one pass */
    model_logprobs_fused(m, b->targets, b->dlogp, b->logp, NULL, b->pred);
    long ntok;
    double loss = sft_loss(b->logp, b->targets, N, scale, NULL, &ntok);
    long correct = token_correct(b->pred, b->targets, N);
    model_backward(m);
    metrics_add(mt, "loss", loss, (double)ntok);
    metrics_add(mt, "mean_token_accuracy", (double)correct, (double)ntok);
    mt->tokens += (long)N;
    return 0;
}

static void run(Bench *b, int B, int T, double peak, int steps) {
    b->B = B;
    b->T = T;
    size_t N = (size_t)B * T;
    b->tokens = xmalloc(N * sizeof(int));
    b->targets = xmalloc(N * sizeof(int));
    b->pred = xmalloc(N * sizeof(int));
    b->logp = xmalloc(N * sizeof(float));
    b->dlogp = xmalloc(N * sizeof(float));
    Rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < N; i++) b->tokens[i] = (int)rng_below(&r, (uint64_t)b->m.cfg.vocab_size);
    for (int row = 0; row < B; row++)
        for (int t = 0; t < T; t++) b->targets[row * T + t] = t + 1 < T ? b->tokens[row * T + t + 1] : -1;

    TrainFlags f;
    train_flags_default(&f, "bench_sft");
    f.model_dir = "(bench)";
    char out[128];
    snprintf(out, sizeof out, "/tmp/bench_sft.%ld", (long)getpid());
    f.out_dir = out;
    f.lr = 1e-4;
    f.batch_size = B;
    f.quiet = 1;
    f.progress = 0;
    TrainTask task;
    memset(&task, 0, sizeof task);
    task.ctx = b;
    task.model = &b->m;
    task.n_train = B;
    task.weight = bench_weight;
    task.micro_step = bench_micro_step;
    Trainer tr;
    Error e;
    if (trainer_init(&tr, &f, &task, steps + 1, 1, &e)) {
        fprintf(stderr, "bench_sft: %s\n", e.msg);
        exit(1);
    }
    int idx[64];
    for (int i = 0; i < B; i++) idx[i] = i;
    const int *mb[1] = {idx};
    int cnt[1] = {B};
    /* one warm-up step (allocations, page faults) */
    if (trainer_step(&tr, 1, mb, cnt, NULL, NULL, &e)) {
        fprintf(stderr, "bench_sft: %s\n", e.msg);
        exit(1);
    }
    double t0 = now_seconds();
    for (int s = 0; s < steps; s++)
        if (trainer_step(&tr, 1, mb, cnt, NULL, NULL, &e)) {
            fprintf(stderr, "bench_sft: %s\n", e.msg);
            exit(1);
        }
    double dt = (now_seconds() - t0) / steps;
    trainer_finish(&tr, &e);
    remove_tree(out);
    const ModelConfig *c = &b->m.cfg;
    double tokens = (double)N;
    double flops = tokens * (6.0 * (double)b->m.n_params + 12.0 * c->n_layer * c->d_model * (double)T);
    printf("sft GPT-2-124M B=%d T=%d: %.0f tokens/s, %.2f s/step, %.1f GFLOP/s = %.1f%% of sgemm peak (%.1f GFLOP/s, "
           "%d threads)\n",
           B, T, tokens / dt, dt, flops / dt / 1e9, 100.0 * flops / dt / peak, peak / 1e9, threads_get());
    free(b->tokens);
    free(b->targets);
    free(b->pred);
    free(b->logp);
    free(b->dlogp);
}

int main(void) {
    gemm_threads_set(0);
    ModelConfig c = bench_gpt2_124m_config();
    c.bos_id = c.eos_id = c.pad_id = 50256;
    Bench b;
    memset(&b, 0, sizeof b);
    model_create(&b.m, &c);
    model_init_random(&b.m, 1);
    /* the peak is the best of three measurements: on a shared machine one of them
     * may be slowed by other work, and a low peak would flatter the fraction */
    double peak = 0;
    for (int i = 0; i < 3; i++) peak = fmax(peak, gemm_measure_peak(1024));
    printf("sgemm peak: %.1f GFLOP/s at %d threads\n", peak / 1e9, threads_get());
    run(&b, 4, 64, peak, 2);
    run(&b, 2, 256, peak, 2);
    model_free(&b.m);
    return 0;
}
