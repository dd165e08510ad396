/* bench_gemm.c — the sgemm peak of this machine (gemm_measure_peak, on OpenBLAS) at 1 and 2
 * threads, and the rate of gemm() on the shapes a GPT-2-124M training step uses, so
 * bench_train_step's "fraction of peak" can be read against what each matrix product
 * can reach.  At 2 threads each shape is timed both ways gemm() can thread it
 * (gemm_set_tiling: dynamic tiles vs OpenBLAS's equal static parts), alternating
 * runs, and the ratio tiled/static is printed as min and median over the runs.
 * --spin keeps one core busy with a spinning child process meanwhile (the straggler
 * case the tiles are for).  Run by `make bench`.  Not a test: it always exits 0 (64
 * on bad flags). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/util.h"
#include "kernels/gemm.h"

typedef struct {
    float *a, *b, *c;
    int ta, tb, M, N, K;
} Shape;

static Shape shape_new(int ta, int tb, int M, int N, int K) {
    Shape s = {xaligned_alloc(sizeof(float) * (size_t)M * K),
               xaligned_alloc(sizeof(float) * (size_t)K * N),
               xaligned_alloc(sizeof(float) * (size_t)M * N),
               ta,
               tb,
               M,
               N,
               K};
    for (size_t i = 0; i < (size_t)M * K; i++) s.a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)K * N; i++) s.b[i] = (float)((i * 5) % 11) * 0.01f;
    memset(s.c, 0, sizeof(float) * (size_t)M * N);
    return s;
}

/* FLOP/s of the best of `calls` back-to-back products. */
static double shape_rate(const Shape *s, int calls) {
    double best = 0;
    for (int r = 0; r < calls; r++) {
        double t0 = now_seconds();
        gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, s->a, s->ta ? s->M : s->K, s->b, s->tb ? s->K : s->N, 1.0f, s->c,
             s->N);
        double f = 2.0 * s->M * s->N * (double)s->K / (now_seconds() - t0);
        if (f > best) best = f;
    }
    return best;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_gemm [--threads N] [--size N] [--rounds N] [--spin]\n"
               "Prints the sgemm peak (GFLOP/s) at 1 and 2 threads (or only N) and gemm()\n"
               "rates on the matrix shapes of a GPT-2-124M training step at B=2, T=256; with\n"
               "more than one thread, tiled (dynamic) against OpenBLAS-threaded (static), in\n"
               "alternating rounds (default 5).  --spin: a child process spins on one core.\n");
}

int main(int argc, char **argv) {
    int only = 0, size = 2048, rounds = 5, spin = 0;
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
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = cli_int("bench_gemm", "--rounds", argv[++i]);
        else if (!strcmp(argv[i], "--spin"))
            spin = 1;
        else
            cli_usage_error("bench_gemm", "unknown argument '%s'", argv[i]);
    }
    if (rounds < 1 || rounds > 100) cli_usage_error("bench_gemm", "--rounds: expected 1..100, got %d", rounds);
    /* OpenBLAS in both columns, whatever fp32's default (gemm.c, f32_matmul_decide):
     * the tiles against OpenBLAS's own threads, the same kernel */
    gemm_set_onednn_matmul(0, 0);
    pid_t spinner = -1;
    if (spin) {
        spinner = fork();
        if (spinner == 0) {
            alarm(600); /* never outlives a forgotten parent by long */
            for (volatile unsigned long x = 0;; x++) {
            }
        }
    }
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("bench_gemm: OMP_WAIT_POLICY=%s%s\n", wp ? wp : "(unset)",
           spinner > 0 ? ", one core kept busy by a spinning process" : "");
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
         * single-threaded beside the others, here the product is threaded */
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
        if (t > 1) printf("  %-32s %9s %9s  %s\n", "shape", "tiled", "static", "tiled/static min, median (GFLOP/s)");
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            Shape s = shape_new(shapes[k].ta, shapes[k].tb, shapes[k].M, shapes[k].N, shapes[k].K);
            if (t == 1) {
                double r = shape_rate(&s, 5);
                printf("  %-32s %7.1f GFLOP/s  %5.1f%% of peak\n", shapes[k].what, r / 1e9, 100 * r / peak);
            } else {
                double rt[100], rs[100], q[100];
                for (int r = 0; r < rounds; r++) {
                    gemm_set_tiling(r % 2 == 0);
                    double x = shape_rate(&s, 3);
                    gemm_set_tiling(r % 2 != 0);
                    double y = shape_rate(&s, 3);
                    rt[r] = r % 2 == 0 ? x : y;
                    rs[r] = r % 2 == 0 ? y : x;
                    q[r] = rt[r] / rs[r];
                }
                gemm_set_tiling(1);
                double mt = median(rt, rounds), ms = median(rs, rounds), mq = median(q, rounds);
                printf("  %-32s %9.1f %9.1f  %.2fx %.2fx\n", shapes[k].what, mt / 1e9, ms / 1e9, q[0], mq);
            }
            free(s.a), free(s.b), free(s.c);
        }
    }
    if (spinner > 0) {
        kill(spinner, SIGKILL);
        waitpid(spinner, NULL, 0);
    }
    return 0;
}
