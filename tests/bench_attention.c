/* bench_attention.c — the fused attention (ops.h attention_flash_*) against the ones
 * that keep [B, nh, T, T] probabilities, in three shapes:
 *   smollm2  SmolLM2-135M's heads (9 query heads on 3 kv heads, head size 64), no
 *            options, B = 1, T = 1024 and 2048: fused against attention_forward/backward;
 *   gemma    Gemma 2 2B's heads (8 on 4, head size 256) with its attention soft-cap
 *            of 50, query_pre_attn_scalar 224 (a scale other than 1/sqrt(hd)) and a
 *            sliding window of 512 (Gemma 3's local layers), B = 1, T = 1024 and 2048:
 *            fused against attention_ext_forward/backward (ops_ext.h, the model's
 *            kernel for these options with --attn-implementation eager), and the fused
 *            kernel without the window (row "fused-T": the whole causal row, what the
 *            window saves);
 *   smollm2-short  SmolLM2's heads, B = 8, T = 64 to 512 (the rows of the DPO and
 *            SFT benches): where the model's auto mode starts to prefer the fused kernel
 *            (model.c FLASH_MIN_T: memory against time);
 *   gemma-short  the same heads, soft-cap and scale without a window, B = 4, T = 64 to
 *            512: the fused kernel against attention_ext where layers have options.
 * Measured per kernel:
 *   - peak memory of one forward + backward beyond its inputs and outputs (q, k, v,
 *     out, dout, dq, dk, dv): the growth of the peak RSS of a child process that runs
 *     only that kernel (getrusage ru_maxrss), so allocator scratch counts too;
 *   - time of forward + backward, kernels alternating, ROUNDS rounds each (min and
 *     median, and the ratio fused / dense of each).
 * Run by `make bench`; usage: bench_attention [ROUNDS] [smollm2|smollm2-short|gemma|gemma-short]
 * (default 5 rounds, every shape).  Not a test: exits 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "kernels/ops.h"
#include "kernels/ops_ext.h"

enum { MAX_TS = 4 };

typedef struct {
    const char *name;
    int B, nh, nkv, hd;
    AttnOpts o;   /* of the dense and fused rows; scale 0: the default */
    int nkernels; /* dense, fused, and (with a window) fused without it */
    int Ts[MAX_TS], nT;
} Shape;

/* kernel 0: dense, 1: fused, 2: fused without the window */
static const char *const kernel_name[3] = {"dense", "fused", "fused-T"};

typedef struct {
    int B, T;
    size_t nq, nk;
    float *q, *k, *v, *out, *dout, *dq, *dk, *dv;
    int *seg;
} Inputs;

static void inputs_new(Inputs *in, const Shape *s, int T) {
    Rng r;
    rng_seed(&r, 1);
    in->B = s->B;
    in->T = T;
    in->nq = (size_t)s->B * T * s->nh * s->hd;
    in->nk = (size_t)s->B * T * s->nkv * s->hd;
    float **bufs[] = {&in->q, &in->out, &in->dout, &in->dq, &in->k, &in->v, &in->dk, &in->dv};
    for (int i = 0; i < 8; i++) {
        size_t n = i < 4 ? in->nq : in->nk;
        *bufs[i] = xaligned_alloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) (*bufs[i])[j] = rng_normal(&r);
    }
    in->seg = xcalloc((size_t)s->B * T, sizeof(int));
}

static void inputs_free(Inputs *in) {
    free(in->q), free(in->k), free(in->v), free(in->out), free(in->dout), free(in->dq), free(in->dk), free(in->dv);
    free(in->seg);
}

/* One forward + backward of kernel f; att is [B, nh, T, T] (dense) or [B, nh, T] (fused). */
static void run(const Shape *s, const Inputs *in, int f, float *att) {
    int B = in->B, T = in->T, nh = s->nh, nkv = s->nkv, hd = s->hd;
    AttnOpts o = s->o;
    if (o.scale == 0) o.scale = 1.0f / sqrtf((float)hd);
    int opts = s->o.scale != 0 || s->o.softcap > 0 || s->o.window > 0;
    if (f == 2) o.window = 0;
    if (f > 0) {
        attention_flash_forward(in->out, att, in->q, in->k, in->v, in->seg, B, T, nh, nkv, hd, &o);
        attention_flash_backward(in->dq, in->dk, in->dv, in->dout, in->out, att, in->q, in->k, in->v, in->seg, B, T, nh,
                                 nkv, hd, &o);
    } else if (opts) {
        attention_ext_forward(in->out, att, in->q, in->k, in->v, in->seg, B, T, nh, nkv, hd, &o);
        attention_ext_backward(in->dq, in->dk, in->dv, in->dout, att, in->q, in->k, in->v, B, T, nh, nkv, hd, &o);
    } else {
        attention_forward(in->out, att, in->q, in->k, in->v, in->seg, B, T, nh, nkv, hd);
        attention_backward(in->dq, in->dk, in->dv, in->dout, att, in->q, in->k, in->v, in->seg, B, T, nh, nkv, hd);
    }
}

static size_t att_floats(const Shape *s, int T, int f) {
    return (size_t)s->B * s->nh * T * (f ? 1 : (size_t)T);
}

/* Peak RSS growth (KiB) of a child that holds the inputs, then runs the kernel once. */
static long peak_kib(const Shape *s, int T, int f) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        Inputs in;
        inputs_new(&in, s, T);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        long before = ru.ru_maxrss;
        float *att = xaligned_alloc(att_floats(s, T, f) * sizeof(float));
        run(s, &in, f, att);
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

static void bench_shape(const Shape *s, const long kib[MAX_TS][3], int rounds) {
    int nk = s->nkernels;
    printf("%s: attention fwd+bwd, B=%d, %d heads on %d kv heads, head size %d", s->name, s->B, s->nh, s->nkv, s->hd);
    if (s->o.scale != 0) printf(", scale %.4g", s->o.scale);
    if (s->o.softcap > 0) printf(", soft-cap %g", s->o.softcap);
    if (s->o.window > 0) printf(", window %d", s->o.window);
    printf("; %d rounds alternating\n", rounds);
    printf("%5s %-8s %14s %14s %10s %10s\n", "T", "kernel", "saved (MiB)", "peak+ (MiB)", "min (ms)", "median");
    for (int ti = 0; ti < s->nT; ti++) {
        int T = s->Ts[ti];
        Inputs in;
        inputs_new(&in, s, T);
        float *att[3];
        double *t[3], med[3], mn[3];
        for (int f = 0; f < nk; f++) {
            att[f] = xaligned_alloc(att_floats(s, T, f) * sizeof(float));
            t[f] = xmalloc(sizeof(double) * rounds);
            run(s, &in, f, att[f]); /* warm-up: scratch, pages */
        }
        for (int r = 0; r < rounds; r++)
            for (int f = 0; f < nk; f++) {
                double t0 = now_seconds();
                run(s, &in, f, att[f]);
                t[f][r] = now_seconds() - t0;
            }
        for (int f = 0; f < nk; f++) {
            qsort(t[f], rounds, sizeof(double), cmpd);
            mn[f] = t[f][0];
            med[f] = t[f][rounds / 2];
            printf("%5d %-8s %14.2f %14.1f %10.1f %10.1f\n", T, kernel_name[f], att_floats(s, T, f) * 4.0 / 1048576,
                   kib[ti][f] / 1024.0, mn[f] * 1e3, med[f] * 1e3);
        }
        for (int f = 1; f < nk; f++)
            printf("%5d %s/dense time: min %.2f, median %.2f\n", T, kernel_name[f], mn[f] / mn[0], med[f] / med[0]);
        for (int f = 0; f < nk; f++) free(att[f]), free(t[f]);
        inputs_free(&in);
    }
}

int main(int argc, char **argv) {
    int rounds = 5;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] >= '0' && argv[i][0] <= '9')
            rounds = atoi(argv[i]);
        else if (!strcmp(argv[i], "smollm2") || !strcmp(argv[i], "smollm2-short") || !strcmp(argv[i], "gemma") ||
                 !strcmp(argv[i], "gemma-short"))
            only = argv[i];
        else {
            fprintf(stderr, "usage: bench_attention [ROUNDS] [smollm2|smollm2-short|gemma|gemma-short]\n");
            return 64;
        }
    }
    if (rounds < 1) rounds = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const AttnOpts gemma2 = {1.0f / sqrtf(224.0f), 50.0f, 0};
    const Shape shapes[] = {
        {"smollm2", 1, 9, 3, 64, {0, 0, 0}, 2, {1024, 2048}, 2},
        {"smollm2-short", 8, 9, 3, 64, {0, 0, 0}, 2, {64, 128, 256, 512}, 4},
        {"gemma", 1, 8, 4, 256, {gemma2.scale, gemma2.softcap, 512}, 3, {1024, 2048}, 2},
        {"gemma-short", 4, 8, 4, 256, gemma2, 2, {64, 128, 256, 512}, 4},
    };
    enum { NS = sizeof shapes / sizeof shapes[0] };
    /* the memory children first: fork after OpenMP has started its threads hangs libgomp */
    static long kib[NS][MAX_TS][3];
    for (int s = 0; s < NS; s++)
        if (!only || !strcmp(only, shapes[s].name))
            for (int i = 0; i < shapes[s].nT; i++)
                for (int f = 0; f < shapes[s].nkernels; f++) kib[s][i][f] = peak_kib(&shapes[s], shapes[s].Ts[i], f);
    for (int s = 0; s < NS; s++)
        if (!only || !strcmp(only, shapes[s].name)) bench_shape(&shapes[s], (const long(*)[3])kib[s], rounds);
    return 0;
}
