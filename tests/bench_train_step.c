/* bench_train_step.c — one training step of a GPT-2-124M-shaped model (12 layers,
 * 12 heads, width 768, vocabulary 50257, context 1024): forward, fused LM-head
 * log-probs, backward, AdamW, at B=4,T=64 and B=2,T=256.  Prints tokens/s, the
 * achieved FLOP/s as a fraction of the sgemm peak measured in the same process at the
 * same thread count, and AdamW's share of the step.  Run by `make bench`.
 *
 * FLOPs counted per step (model FLOPs, as in MFU; PaLM, Chowdhery et al. 2022, app. B):
 *   tokens * (6 P + 6 L C (T + 1))
 * P = parameters that take part in matrix products: every parameter except the
 * learned position table wpe (a lookup); the tied wte counts once, as the LM head
 * (its lookup is free).  6 = 2 (multiply-add) x 3 (forward, dinput, dweight).
 * Attention scores and the weighted sum are 2 x 2 C FLOPs per (query, key) pair
 * forward, x3 with backward; a causal query at position t sees t + 1 keys, on average
 * (T + 1) / 2, hence 6 L C (T + 1) per token.  Work the implementation does on top
 * (the LM head's logits recomputed in backward, the masked half of the diagonal
 * attention blocks, norms, softmaxes, AdamW) is not counted: it is overhead.
 * Timing: best step of --steps after a warm-up step, wall clock (what the target is
 * about), and beside it the process CPU time, which still means something on a
 * machine shared with other jobs (the wall clock then measures the neighbours).
 * OMP_WAIT_POLICY is printed: OpenBLAS's OpenMP build shares our OpenMP pool, so the
 * policy decides whether idle threads spin (best on an idle machine) or sleep (far
 * better when the cores are oversubscribed).
 * Not a test: exits 0 (64 on bad flags). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cli.h"
#include "base/util.h"
#include "bench_gpt2.h"
#include "kernels/gemm.h"
#include "model/model.h"
#include "train/optim.h"

typedef struct Times {
    double fwd, bwd, zero, adamw, step, cpu;
} Times;

/* CPU time of the whole process (all threads), seconds.  On a machine shared with
 * other jobs the wall clock measures the neighbours too; CPU time does not (it still
 * counts cache and steal effects, and time our threads spend spinning). */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* sgemm rate per CPU-second on n x n, best of reps (the CPU-time twin of
 * gemm_measure_peak). */
static double peak_per_cpu_second(int n, int reps) {
    float *a = xaligned_alloc(sizeof(float) * n * n), *b = xaligned_alloc(sizeof(float) * n * n);
    float *c = xaligned_alloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) a[i] = (float)((i * 7) % 13) * 0.01f, b[i] = (float)((i * 5) % 11) * 0.01f;
    gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_seconds();
        gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double f = 2.0 * n * n * (double)n / (cpu_seconds() - t0);
        if (f > best) best = f;
    }
    free(a), free(b), free(c);
    return best;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_train_step [--threads LIST] [--steps N] [--shapes LIST] [--grads G] [--model DIR]\n"
               "  --threads LIST  thread counts to run, e.g. 2,1 (default 2,1)\n"
               "  --steps N       timed steps per shape after one warm-up step (default 3)\n"
               "  --shapes LIST   BxT pairs, e.g. 4x64,2x256 (default)\n"
               "  --dtype D       fp32 (default) or bf16: bf16 matrix products, fp32 weights/sums/AdamW\n"
               "                  (--mixed-precision bf16 of the training programs; gemm_set_bf16)\n"
               "  --no-tiles      OpenBLAS's static threading instead of gemm()'s dynamic tiles\n"
               "  --matmul K      oneDNN's matmul primitive for the products: bf16, fp32, both or\n"
               "                  none (gemm_set_onednn_matmul; bf16 without it: oneDNN's gemm\n"
               "                  entry point, fp32 without it: OpenBLAS); default: bf16, and fp32\n"
               "                  where gemm.c takes it by default (CHERRY_F32_GEMM, cherry-training(7))\n"
               "  --attn A        attention kernel: auto (default), eager or flash\n"
               "                  (--attn-implementation of the training programs)\n"
               "  --no-peak       skip the sgemm peak measurement (no fraction of peak)\n"
               "  --grads G       discard (the backward writes the gradients anew) or clear\n"
               "                  (AdamW's pass zeroes them); default: as the trainer, discard\n"
               "                  for bf16 without AMX, else clear (gemm_overwrite_slower)\n"
               "  --model DIR     time this HF model directory (default: GPT-2-124M shape, random)\n"
               "Times forward + logprobs + backward + AdamW of a GPT-2-124M-shaped model and\n"
               "prints tokens/s and FLOP/s as a fraction of the measured sgemm peak.\n");
}

/* One step, as train.c's trainer_step: the previous step discarded the gradients
 * (model_grads_discard: the backward writes each weight's anew), so only the first
 * step clears them on its own (the zero column: 0 from the second step on); with
 * --grads clear, as the trainer in fp32 and on AMX: AdamW's pass zeroes them
 * (adamw_step_scaled_clear) and the backward adds to them.  Returns the phase times. */
static int grads_clear, grads_by_clearing = -1; /* -1: as the trainer (gemm_overwrite_slower) */
static Times train_step(Model *m, AdamW *opt, const int *tok, const int *tgt, float *logp, float *dlogp, int B, int T) {
    Times t;
    double c0 = cpu_seconds();
    double t0 = now_seconds();
    if (!grads_clear) model_zero_grad(m);
    double t1 = now_seconds();
    model_forward(m, tok, NULL, NULL, B, T);
    /* mean cross-entropy: dlogp is known first, so the LM head's forward and backward
     * are one pass, as bin/sft runs them (the fwd column includes the head's backward) */
    model_logprobs_fused(m, tgt, dlogp, logp, NULL, NULL);
    double t2 = now_seconds();
    model_backward(m);
    model_grads_settle(m);
    double t3 = now_seconds();
    if (grads_by_clearing < 0) grads_by_clearing = gemm_overwrite_slower();
    if (grads_by_clearing) {
        adamw_step_scaled_clear(opt, m->params, m->grads, 1e-4f, 1.0f);
    } else {
        adamw_step_scaled(opt, m->params, m->grads, 1e-4f, 1.0f);
        model_grads_discard(m);
    }
    grads_clear = 1;
    double t4 = now_seconds();
    t.zero = t1 - t0;
    t.fwd = t2 - t1;
    t.bwd = t3 - t2;
    t.adamw = t4 - t3;
    t.step = t4 - t0;
    t.cpu = cpu_seconds() - c0;
    return t;
}

int main(int argc, char **argv) {
    const char *threads_list = "2,1", *shapes_list = "4x64,2x256", *model_dir = NULL;
    int steps = 3, no_peak = 0, bf16 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version"))
            cli_version("bench_train_step");
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads_list = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = cli_int("bench_train_step", "--steps", argv[++i]);
        else if (!strcmp(argv[i], "--shapes") && i + 1 < argc)
            shapes_list = argv[++i];
        else if (!strcmp(argv[i], "--grads") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "clear") || !strcmp(argv[i + 1], "discard")))
            grads_by_clearing = !strcmp(argv[++i], "clear");
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model_dir = argv[++i];
        else if (!strcmp(argv[i], "--no-peak"))
            no_peak = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            if (strcmp(d, "fp32") && strcmp(d, "bf16"))
                cli_usage_error("bench_train_step", "--dtype: expected fp32 or bf16, got '%s'", d);
            bf16 = !strcmp(d, "bf16");
        } else if (!strcmp(argv[i], "--no-tiles"))
            gemm_set_tiling(0);
        else if (!strcmp(argv[i], "--matmul") && i + 1 < argc) {
            const char *k = argv[++i];
            int b = !strcmp(k, "bf16") || !strcmp(k, "both"), f = !strcmp(k, "fp32") || !strcmp(k, "both");
            if (!b && !f && strcmp(k, "none"))
                cli_usage_error("bench_train_step", "--matmul: expected bf16, fp32, both or none, got '%s'", k);
            if (gemm_set_onednn_matmul(1, b) != b || gemm_set_onednn_matmul(0, f) != f) {
                fprintf(stderr, "bench_train_step: oneDNN's matmul primitive is unavailable\n");
                return 69;
            }
        } else if (!strcmp(argv[i], "--attn") && i + 1 < argc) {
            int k = cli_choice("bench_train_step", "--attn", argv[++i],
                               (const char *const[]){"auto", "eager", "flash", NULL});
            model_set_flash_attention(k == 0 ? -1 : k == 2);
        } else
            cli_usage_error("bench_train_step", "unknown argument '%s'", argv[i]);
    }
    Error be;
    if (bf16 && gemm_set_bf16(1, &be)) {
        fprintf(stderr, "bench_train_step: %s\n", be.msg);
        return be.code;
    }
    if (steps < 1) cli_usage_error("bench_train_step", "--steps: expected >= 1, got %d", steps);
    int shapes[8][2], nshapes = 0;
    for (const char *p = shapes_list; *p && nshapes < 8;) {
        int b, t, used;
        if (sscanf(p, "%dx%d%n", &b, &t, &used) != 2 || b < 1 || t < 1 || t > 1024)
            cli_usage_error("bench_train_step", "--shapes: expected BxT[,BxT...] with T <= 1024, got '%s'",
                            shapes_list);
        shapes[nshapes][0] = b, shapes[nshapes][1] = t, nshapes++;
        p += used;
        if (*p == ',') p++;
    }
    int thr[8], nthr = 0;
    for (const char *p = threads_list; *p && nthr < 8;) {
        int n, used;
        if (sscanf(p, "%d%n", &n, &used) != 1 || n < 1)
            cli_usage_error("bench_train_step", "--threads: expected a list like 2,1, got '%s'", threads_list);
        thr[nthr++] = n;
        p += used;
        if (*p == ',') p++;
    }

    ModelConfig cfg = bench_gpt2_124m_config();
    cfg.bos_id = cfg.eos_id = 50256;
    Model m;
    if (model_dir) {
        Error e = {0};
        if (model_load(&m, model_dir, &e)) {
            fprintf(stderr, "bench_train_step: %s\n", e.msg);
            return e.code;
        }
        cfg = m.cfg;
    } else {
        model_create(&m, &cfg);
        model_init_random(&m, 1);
    }
    model_enable_grads(&m);
    AdamW opt;
    adamw_init_model(&opt, &m, 0.1f);
    const ParamTensor *wpe = model_find_tensor(&m, "transformer.wpe.weight");
    double P = (double)m.n_params - (wpe ? (double)wpe->numel : 0);
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("bench_train_step: GPT-2-124M shape, %zu parameters (%.1fM in matrix products), OMP_WAIT_POLICY=%s\n",
           m.n_params, P / 1e6, wp ? wp : "(unset)");
    printf("FLOPs/step = tokens * (6 P + 6 L C (T + 1)); best of %d steps after a warm-up step\n", steps);

    Rng r;
    rng_seed(&r, 7);
    for (int ti = 0; ti < nthr; ti++) {
        gemm_threads_set(thr[ti]);
        /* the peak moves with other load on the machine: best of three measurements */
        double peak = 0;
        for (int k = 0; k < (no_peak ? 0 : 3); k++) {
            double p = gemm_measure_peak(2048);
            if (p > peak) peak = p;
        }
        double peak_cpu = no_peak ? 0 : peak_per_cpu_second(2048, 5);
        printf("threads %d: sgemm peak %.1f GFLOP/s (wall), %.1f GFLOP per CPU-second\n", thr[ti], peak / 1e9,
               peak_cpu / 1e9);
        for (int si = 0; si < nshapes; si++) {
            int B = shapes[si][0], T = shapes[si][1], N = B * T;
            int *tok = xmalloc(sizeof(int) * N), *tgt = xmalloc(sizeof(int) * N);
            float *logp = xmalloc(sizeof(float) * N), *dlogp = xmalloc(sizeof(float) * N);
            for (int n = 0; n < N; n++) {
                tok[n] = (int)rng_below(&r, cfg.vocab_size);
                tgt[n] = (int)rng_below(&r, cfg.vocab_size);
                dlogp[n] = -1.0f / N; /* mean cross-entropy */
            }
            train_step(&m, &opt, tok, tgt, logp, dlogp, B, T); /* warm-up: allocations, page faults */
            Times best = {0}, sum = {0};
            for (int s = 0; s < steps; s++) {
                Times t = train_step(&m, &opt, tok, tgt, logp, dlogp, B, T);
                if (s == 0 || t.step < best.step) best = t;
                if (s == 0 || t.cpu < sum.cpu) sum.cpu = t.cpu; /* best CPU time */
                sum.step += t.step;
            }
            double flops = (double)N * (6.0 * P + 6.0 * cfg.n_layer * cfg.d_model * (T + 1.0));
            double rate = flops / best.step;
            printf("  B=%d T=%-4d  %7.0f tokens/s  step %.3f s (mean %.3f)  %6.1f GFLOP/s = %5.1f%% of peak"
                   "  | fwd %.3f bwd %.3f zero %.3f adamw %.3f s (AdamW %.1f%% of step)\n",
                   B, T, N / best.step, best.step, sum.step / steps, rate / 1e9, 100 * rate / peak, best.fwd, best.bwd,
                   best.zero, best.adamw, 100 * best.adamw / best.step);
            printf("RESULT cherry %s B=%d T=%d tokens_per_s=%.1f step_s=%.4f threads=%d gflop_per_token=%.4f\n",
                   bf16 ? "bf16" : "fp32", B, T, N / best.step, best.step, thr[ti], flops / N / 1e9);
            printf("             CPU time %.3f s/step: %.1f GFLOP per CPU-second = %.1f%% of the per-CPU-second peak\n",
                   sum.cpu, flops / sum.cpu / 1e9, 100 * (flops / sum.cpu) / peak_cpu);
            fflush(stdout);
            free(tok), free(tgt), free(logp), free(dlogp);
        }
    }
    adamw_free(&opt);
    model_free(&m);
    return 0;
}
