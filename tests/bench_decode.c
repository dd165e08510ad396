/* bench_decode.c — decode speed of the KV-cache generator.
 *
 * For the GPT-2-124M shape (random weights; speed does not depend on their values)
 * and for SmolLM2-135M when models/smollm2-135m-instruct exists, measures decode
 * tokens/s at batch 1 and batch 16 (8-token prompts, then 48 or 32 decode steps with
 * sampling, through generate(); prefill excluded).  At batch 1 a decode step
 * must read every weight once, so weights_bytes / memory_bandwidth is a lower bound
 * on the time per token; the memory bandwidth is measured here by a multi-threaded
 * streaming read of a buffer far larger than the caches.  The same rates on one
 * thread, timed by CPU time, are printed too: on a machine shared with other jobs
 * the wall-clock figures measure the load as much as the code.  Prints both, and checks
 * the promise of issue 7: batch 16 delivers at least 6x the tokens/s of batch 1
 * ("NOT MET" when it does not; exit 1 then only with CHERRY_BENCH_STRICT=1). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "bench_gpt2.h"
#include "generate/generate.h"
#include "kernels/decode.h"
#include "kernels/gemm.h"
#include "model/model.h"

/* Best of 3 streaming reads of 1 GiB (floats summed in 8 independent lanes per
 * thread, so the loop is limited by memory, not by the adder latency). */
static double measure_bandwidth(void) {
    size_t n = (size_t)1 << 28; /* 1 GiB of floats */
    float *a = xmalloc(n * sizeof(float));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = (float)(i & 1023);
    double best = 0, sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds(), total = 0;
#pragma omp parallel reduction(+ : total)
        {
            float acc[16] = {0};
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i += 16)
                for (int j = 0; j < 16; j++) acc[j] += a[i + j];
            for (int j = 0; j < 16; j++) total += acc[j];
        }
        double dt = now_seconds() - t0, bw = n * sizeof(float) / dt;
        sink += total;
        if (bw > best) best = bw;
    }
    free(a);
    if (sink == 42) printf(" ");
    return best;
}

/* Decode timing from generate()'s progress callback, which runs after every step:
 * the clock starts at the first call (every sequence prefilled and its first token
 * sampled) and the rate counts the tokens of the steps after it, so prefill is
 * excluded. */
typedef struct Clock {
    int cpu; /* 1: process CPU time (robust to other processes when single-threaded) */
    double t_first, t_last;
    long tok_first, tok_last;
} Clock;

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void on_step(void *ctx, int done, long tokens) {
    Clock *c = ctx;
    double t = c->cpu ? cpu_seconds() : now_seconds();
    if (c->t_first == 0) c->t_first = t, c->tok_first = tokens;
    c->t_last = t;
    c->tok_last = tokens;
}

/* tokens/s of generate() decoding `steps` tokens for each of `batch` sequences
 * (8-token prompts, sampling at `temperature`, decode weights of `dtype`), best of
 * two runs. */
static double decode_rate_dt(Model *m, int batch, int steps, int cpu, float temperature, DecodeDtype dtype) {
    int L = 8;
    int **prompts = xmalloc(batch * sizeof(int *)), *lens = xmalloc(batch * sizeof(int));
    for (int b = 0; b < batch; b++) {
        prompts[b] = xmalloc(L * sizeof(int));
        for (int t = 0; t < L; t++) prompts[b][t] = (b * 131 + t * 17 + 5) % m->cfg.vocab_size;
        lens[b] = L;
    }
    GenConfig c = gen_config_default();
    c.batch_size = batch;
    c.seed = 1;
    c.sampler.temperature = temperature;
    c.max_new_tokens = steps + 1;
    c.dtype = dtype;
    GenSeq *out = xcalloc(batch, sizeof(GenSeq));
    Error e;
    double best = 0;
    for (int rep = 0; rep < 2; rep++) {
        Clock ck = {.cpu = cpu};
        if (generate(m, &c, NULL, (const int *const *)prompts, lens, NULL, batch, out, on_step, &ck, &e))
            die_internal("%s", e.msg);
        for (int b = 0; b < batch; b++) gen_seq_free(&out[b]);
        double r = (ck.tok_last - ck.tok_first) / (ck.t_last - ck.t_first);
        if (r > best) best = r;
    }
    for (int b = 0; b < batch; b++) free(prompts[b]);
    free(prompts), free(lens), free(out);
    return best;
}

static double decode_rate_t(Model *m, int batch, int steps, int cpu, float temperature) {
    return decode_rate_dt(m, batch, steps, cpu, temperature, DECODE_FP32);
}

static double decode_rate(Model *m, int batch, int steps, int cpu) {
    return decode_rate_t(m, batch, steps, cpu, 1.0f);
}

/* --peer DIR [NEW [THREADS [DTYPE [BATCH [LABEL]]]]]: greedy decoding of DIR, BATCH
 * sequences (default 1) of NEW tokens after the first, decode weights fp32, bf16 or
 * int8 (printed as q8_0),
 * one line per run for tests/bench/peers.sh (its llama.cpp peer decodes the same
 * prompts the same way: tests/oracle/bench_llamacpp_decode.py):
 *   RESULT cherry LABEL/DTYPE B=BATCH new=NEW tokens_per_s=X */
static int peer_mode(const char *dir, int steps, const char *dtype, int batch, const char *label) {
    Model m;
    Error e;
    if (model_load(&m, dir, &e)) {
        fprintf(stderr, "bench_decode: %s\n", e.msg);
        return e.code;
    }
    DecodeDtype dt = DECODE_FP32; /* an unknown DTYPE: fp32, as before */
    decode_dtype_parse(dtype, &dt);
    double r = decode_rate_dt(&m, batch, steps, 0, 0.0f, dt);
    /* int8 is keyed q8_0: the llama.cpp row it is paired with (the same quantization
     * of the weights and of the products' inputs) */
    printf("RESULT cherry %s/%s B=%d new=%d tokens_per_s=%.1f (%d threads, greedy, %s kernel)\n", label,
           dt == DECODE_BF16   ? "bf16"
           : dt == DECODE_INT8 ? "q8_0"
                               : "f32",
           batch, steps, r, threads_get(),
           dt == DECODE_BF16   ? decode_bf16_kernel()
           : dt == DECODE_INT8 ? decode_int8_kernel()
                               : "fp32");
    model_free(&m);
    return 0;
}

static int bench_model(const char *name, Model *m, double bw) {
    double bytes = (double)m->n_params * sizeof(float);
    double r1 = decode_rate(m, 1, 48, 0), r16 = decode_rate(m, 16, 32, 0);
    double bound = bw / bytes;
    printf("%-28s params %.1fM (%.0f MB f32)\n", name, m->n_params / 1e6, bytes / 1e6);
    printf("  batch  1: %7.1f tok/s   (memory-bandwidth bound %.1f tok/s: %.0f%% of it)\n", r1, bound,
           100 * r1 / bound);
    printf("  batch 16: %7.1f tok/s   (%.1fx batch 1; issue 7 asks >= 6x)\n", r16, r16 / r1);
    /* the same on one thread, timed by CPU time: what the code does when the cores
     * are shared with other jobs (wall-clock figures then measure the load) */
    int nt = threads_get();
    gemm_threads_set(1);
    double c1 = decode_rate(m, 1, 24, 1), c16 = decode_rate(m, 16, 16, 1);
    gemm_threads_set(nt);
    printf("  1 thread, CPU time: batch 1 %.1f tok/s, batch 16 %.1f tok/s (%.1fx)\n", c1, c16, c16 / c1);
    if (r16 < 6 * r1) {
        printf("NOT MET: %s: batch 16 gives %.1fx the tokens/s of batch 1, issue 7 asks at least 6x\n", name, r16 / r1);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "--peer")) {
        gemm_threads_set(argc >= 5 ? atoi(argv[4]) : 2);
        const char *base = strrchr(argv[2], '/') && strrchr(argv[2], '/')[1] ? strrchr(argv[2], '/') + 1 : argv[2];
        return peer_mode(argv[2], argc >= 4 ? atoi(argv[3]) : 48, argc >= 6 ? argv[5] : "f32",
                         argc >= 7 ? atoi(argv[6]) : 1, argc >= 8 ? argv[7] : base);
    }
    double bw = measure_bandwidth();
    printf("memory bandwidth (streaming read, %d threads): %.1f GB/s\n", omp_get_max_threads(), bw / 1e9);
    int fails = 0;
    ModelConfig c = bench_gpt2_124m_config();
    Model m;
    model_create(&m, &c);
    model_init_random(&m, 1);
    fails += bench_model("GPT-2-124M shape (random)", &m, bw);
    model_free(&m);
    const char *smol = "models/smollm2-135m-instruct";
    char cfg[256];
    snprintf(cfg, sizeof cfg, "%s/config.json", smol);
    if (file_exists(cfg)) {
        Error e;
        if (model_load(&m, smol, &e)) {
            printf("FAIL: %s: %s\n", smol, e.msg);
            return 1;
        }
        fails += bench_model("SmolLM2-135M", &m, bw);
        model_free(&m);
    } else {
        printf("SmolLM2-135M: %s not present (make models/smollm2-135m-instruct), skipped\n", smol);
    }
    /* A benchmark measures; on a shared machine the ratio moves with the load, so a
     * miss fails `make bench` (which stops at the first failure) only when asked. */
    const char *strict = getenv("CHERRY_BENCH_STRICT");
    return fails && strict && *strict == '1' ? 1 : 0;
}
