/* bench_fma_peak.c — the machine's fp32 ceiling: fused multiply-adds per second that
 * the cores can retire when nothing but FMAs runs (no loads, no stores, no
 * dependencies between the chains), at --threads threads at once.
 *
 * Why: issue 18 asks for ratios against PyTorch, and a ratio has a ceiling.  If the
 * peer already runs at a fraction f of this peak, no implementation doing the same
 * FLOPs in fp32 can beat it by more than 1/f.  tests/bench/peers.sh prints both sides'
 * training step as a fraction of this number.
 *
 * How: every thread keeps 12 independent accumulators (AVX-512: 16 floats each; AVX2:
 * 8), enough to cover the FMA latency (4 cycles) on two FMA ports, and updates each
 * one per iteration; the compiler is given no way to fold the chains (the result is
 * printed).  FLOPs = 2 per lane per FMA.  A short trial (about 20 ms) is repeated
 * and the best kept: on a machine shared with other jobs some trials get whole
 * cores, so the best of many approaches the true peak (a trial that shared a core
 * only lowers the rate, it never raises it).
 * The peak is the build's instruction set's (-march): a build without AVX-512 measures
 * AVX2 on an AVX-512 machine, and the scalar fallback is no FMA peak at all; the
 * first line of output names the set.  "per_thread": two threads on the two
 * hyperthreads of one core share its FMA ports.
 * Output: `RESULT fma_peak fp32 threads=N gflops=X per_thread=Y isa=S`.
 * Not a test: exits 0 (64 on bad flags). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"

#define CHAINS 12

#if defined(__AVX512F__)
#define LANES 16
#define ISA "avx512"
/* n iterations of CHAINS independent FMAs; returns a checksum so nothing is dead */
__attribute__((noinline)) static float fma_chains(long n, float seed) {
    __m512 acc[CHAINS];
    const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(seed + (float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += _mm512_reduce_add_ps(acc[i]);
    return s;
}
#elif defined(__AVX2__) && defined(__FMA__)
#define LANES 8
#define ISA "avx2"
__attribute__((noinline)) static float fma_chains(long n, float seed) {
    __m256 acc[CHAINS];
    const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps(seed + (float)i);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
    float lanes[8], s = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(lanes, acc[i]);
        for (int j = 0; j < 8; j++) s += lanes[j];
    }
    return s;
}
#else
#define LANES 1
#define ISA "scalar"
__attribute__((noinline)) static float fma_chains(long n, float seed) {
    float acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = seed + (float)i;
    for (long k = 0; k < n; k++)
        for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * 0.999999f + 1e-7f;
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += acc[i];
    return s;
}
#endif

static void usage(FILE *f) {
    fprintf(f, "usage: bench_fma_peak [--threads N] [--trials N]\n"
               "  --threads N  threads running FMAs at once (default 2)\n"
               "  --trials N   trials of about 20 ms; the best is printed (default 60)\n"
               "Prints the fp32 fused-multiply-add peak of the cores, GFLOP/s.\n");
}

int main(int argc, char **argv) {
    int threads = 2, trials = 60;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version"))
            cli_version("bench_fma_peak");
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = cli_int("bench_fma_peak", "--threads", argv[++i]);
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
            trials = cli_int("bench_fma_peak", "--trials", argv[++i]);
        else
            cli_usage_error("bench_fma_peak", "unknown argument '%s'", argv[i]);
    }
    if (threads < 1 || trials < 1) cli_usage_error("bench_fma_peak", "--threads and --trials must be >= 1");
    /* iterations per trial: about 20 ms at ~150 GFLOP/s per thread (long enough that
     * waking the second thread, tens of microseconds, does not count) */
    const long n = 3000000000L / (2L * LANES * CHAINS);
    double best = 0;
    float check = 0;
    for (int t = 0; t < trials; t++) {
        float s = 0;
        double t0 = now_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : s)
        s += fma_chains(n, (float)omp_get_thread_num());
        double dt = now_seconds() - t0, rate = 2.0 * LANES * CHAINS * (double)n * threads / dt;
        if (rate > best) best = rate;
        check += s;
    }
    printf("bench_fma_peak: %s, %d-lane fp32 FMA, %d chains per thread, best of %d trials (checksum %g)\n", ISA, LANES,
           CHAINS, trials, (double)check);
    printf("RESULT fma_peak fp32 threads=%d gflops=%.1f per_thread=%.1f isa=%s\n", threads, best / 1e9,
           best / 1e9 / threads, ISA);
    return 0;
}
