/* bench_gemm.c — the sgemm peak of this machine (gemm_measure_peak) at 1 and 2
 * threads, and the rate of gemm() on the shapes a GPT-2-124M training step uses, so
 * bench_train_step's "fraction of peak" can be read against what each matrix product
 * can reach.  Run by `make bench`.  Not a test: it always exits 0 (64 on bad flags). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "kernels/gemm.h"
#include "base/util.h"

/* One timed shape: C[M,N] (+)= op(A) op(B), best of reps. */
static double shape_rate(int ta, int tb, int M, int N, int K, int reps) {
    float *a = xaligned_alloc(sizeof(float) * (size_t)M * K);
    float *b = xaligned_alloc(sizeof(float) * (size_t)K * N);
    float *c = xaligned_alloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
    gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        gemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 1.0f, c, N);
        double dt = now_seconds() - t0;
        double f = 2.0 * M * N * (double)K / dt;
        if (f > best) best = f;
    }
    free(a), free(b), free(c);
    return best;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_gemm [--threads N] [--size N]\n"
               "Prints the sgemm peak (GFLOP/s) at 1 and 2 threads (or only N) and gemm()\n"
               "rates on the matrix shapes of a GPT-2-124M training step at B=2, T=256.\n");
}

int main(int argc, char **argv) {
    int only = 0, size = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version"))
            cli_version("bench_gemm");
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            only = cli_int("bench_gemm", "--threads", argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = cli_int("bench_gemm", "--size", argv[++i]);
        else
            cli_usage_error("bench_gemm", "unknown argument '%s'", argv[i]);
    }
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("bench_gemm: OMP_WAIT_POLICY=%s\n", wp ? wp : "(unset)");
    /* N = B*T = 512 rows, C = 768, F = 3072, V = 50257 */
    static const struct {
        const char *what;
        int ta, tb, M, N, K;
    } shapes[] = {
        {"qkv fwd   512x2304x768 (N,T)", 0, 1, 512, 2304, 768},
        {"fc fwd    512x3072x768 (N,T)", 0, 1, 512, 3072, 768},
        {"proj fwd  512x768x3072 (N,T)", 0, 1, 512, 768, 3072},
        {"fc dinp   512x768x3072 (N,N)", 0, 0, 512, 768, 3072},
        {"fc dw     3072x768x512 (T,N)", 1, 0, 3072, 768, 512},
        /* LM head: one lane's tile (ops_logprobs.c); in training each lane runs
         * single-threaded beside the others, here the product is BLAS-threaded */
        {"lm fwd    512x512x768  (N,T)", 0, 1, 512, 512, 768},
        {"lm dh     512x768x512  (N,N)", 0, 0, 512, 768, 512},
        {"lm dw     512x768x512  (T,N)", 1, 0, 512, 768, 512},
        {"att S     64x256x64    (N,T)", 0, 1, 64, 256, 64},
    };
    for (int t = 1; t <= 2; t++) {
        if (only && t != only) continue;
        gemm_threads_set(t);
        double peak = gemm_measure_peak(size);
        printf("threads %d: sgemm peak %.1f GFLOP/s (square n=%d)\n", t, peak / 1e9, size);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            double r = shape_rate(shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K, 5);
            printf("  %-32s %7.1f GFLOP/s  %5.1f%% of peak\n", shapes[s].what, r / 1e9, 100 * r / peak);
        }
    }
    return 0;
}
