/* bench_attention.c — the fused attention (ops.h attention_flash_*) against the one
 * that keeps [B, nh, T, T] probabilities (attention_forward/backward), at SmolLM2-135M's
 * heads (9 query heads on 3 kv heads, head size 64), B = 1, T = 1024 and 2048:
 *   - peak memory of one forward + backward beyond its inputs and outputs (q, k, v,
 *     out, dout, dq, dk, dv): the growth of the peak RSS of a child process that runs
 *     only that kernel (getrusage ru_maxrss), so allocator scratch counts too;
 *   - time of forward + backward, kernels alternating, ROUNDS rounds each (min and
 *     median, and the ratio fused / dense of each).
 * Run by `make bench`; usage: bench_attention [ROUNDS].  Not a test: exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "kernels/ops.h"

enum { NH = 9, NKV = 3, HD = 64 };

typedef struct {
    int T;
    size_t nq, nk;
    float *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    int *seg;
} Inputs;

static void inputs_new(Inputs *in, int T) {
    Rng r;
    rng_seed(&r, 1);
    in->T = T;
    in->nq = (size_t)T * NH * HD;
    in->nk = (size_t)T * NKV * HD;
    float **bufs[] = {&in->q, &in->out, &in->dout, &in->dq, &in->k, &in->v, &in->dk, &in->dv};
    for (int i = 0; i < 8; i++) {
        size_t n = i < 4 ? in->nq : in->nk;
        *bufs[i] = xaligned_alloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) (*bufs[i])[j] = rng_normal(&r);
    }
    in->seg = xcalloc((size_t)T, sizeof(int));
}

/* One forward + backward; att is [nh, T, T] (dense) or [nh, T] (fused). */
static void run(const Inputs *in, int flash, float *att) {
    int T = in->T;
    if (flash) {
        attention_flash_forward(in->out, att, in->q, in->k, in->v, in->seg, 1, T, NH, NKV, HD);
        attention_flash_backward(in->dq, in->dk, in->dv, in->dout, in->out, att, in->q, in->k, in->v, in->seg, 1, T, NH,
                                 NKV, HD);
    } else {
        attention_forward(in->out, att, in->q, in->k, in->v, in->seg, 1, T, NH, NKV, HD);
        attention_backward(in->dq, in->dk, in->dv, in->dout, att, in->q, in->k, in->v, in->seg, 1, T, NH, NKV, HD);
    }
}

static size_t att_floats(int T, int flash) {
    return (size_t)NH * T * (flash ? 1 : (size_t)T);
}

/* Peak RSS growth (KiB) of a child that holds the inputs, then runs the kernel once. */
static long peak_kib(int T, int flash) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        Inputs in;
        inputs_new(&in, T);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long before = ru.ru_maxrss;
        float *att = xaligned_alloc(att_floats(T, flash) * sizeof(float));
        run(&in, flash, att);
        getrusage(RUSAGE_SELF, &ru);
        long grow = ru.ru_maxrss - before;
        if (write(fd[1], &grow, sizeof grow) != sizeof grow) _exit(1);
        _exit(0);
    }
    long grow = -1;
    close(fd[1]);
    if (read(fd[0], &grow, sizeof grow) != sizeof grow) grow = -1;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return grow;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* the memory children first: fork after OpenMP has started its threads hangs libgomp */
    long kib[2][2];
    for (int i = 0; i < 2; i++)
        for (int f = 0; f < 2; f++) kib[i][f] = peak_kib(1024 << i, f);
    printf("attention fwd+bwd, B=1, %d heads on %d kv heads, head size %d, %d rounds alternating\n", NH, NKV, HD,
           rounds);
    printf("%5s %-6s %14s %14s %10s %10s\n", "T", "kernel", "saved (MiB)", "peak+ (MiB)", "min (ms)", "median");
    for (int T = 1024; T <= 2048; T *= 2) {
        Inputs in;
        inputs_new(&in, T);
        float *att[2] = {xaligned_alloc(att_floats(T, 0) * sizeof(float)),
                         xaligned_alloc(att_floats(T, 1) * sizeof(float))};
        double *t[2] = {xmalloc(sizeof(double) * rounds), xmalloc(sizeof(double) * rounds)};
        run(&in, 0, att[0]); /* warm-up: scratch, pages */
        run(&in, 1, att[1]);
        for (int r = 0; r < rounds; r++)
            for (int f = 0; f < 2; f++) {
                double t0 = now_seconds();
                run(&in, f, att[f]);
                t[f][r] = now_seconds() - t0;
            }
        double med[2], mn[2];
        for (int f = 0; f < 2; f++) {
            qsort(t[f], rounds, sizeof(double), cmpd);
            mn[f] = t[f][0];
            med[f] = t[f][rounds / 2];
            printf("%5d %-6s %14.2f %14.1f %10.1f %10.1f\n", T, f ? "fused" : "dense", att_floats(T, f) * 4.0 / 1048576,
                   kib[T / 2048][f] / 1024.0, mn[f] * 1e3, med[f] * 1e3);
        }
        printf("%5d fused/dense time: min %.2f, median %.2f\n", T, mn[1] / mn[0], med[1] / med[0]);
        free(att[0]), free(att[1]), free(t[0]), free(t[1]);
    }
    return 0;
}
