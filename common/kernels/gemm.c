/* gemm.c — the only file that calls BLAS.  See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/util.h"
#ifdef CHERRY_CUDA
#include "gemm_cuda.h" /* cuda/, on the include path only with make CUDA=1 */
#endif

/* OpenBLAS's OpenMP build exports this; it sets the BLAS-internal thread count. */
void openblas_set_num_threads(int);

static int n_threads = 0;

/* The threading model.  BLAS and our own loops share one OpenMP pool (we link
 * OpenBLAS's OpenMP build, so there is no second pool to fight).  What remains is
 * how idle pool threads wait: libgomp's default spins for a while before sleeping,
 * and a spinning thread steals the core from whatever else runs, so on a busy
 * 2-core machine a tiny training run took 24.6 s with OMP_WAIT_POLICY=active
 * against 0.96 s passive (60 SFT steps of the bundled task, load average ~7).
 * Passive waiting is therefore the default.  libgomp reads the policy only once,
 * in its own constructor, before any code of ours runs, so the only way to set a
 * default is to set the variable and re-execute the program (once: the variable is
 * then present).  A user's own OMP_WAIT_POLICY is always respected; the
 * re-execution is skipped if /proc/self/exe cannot be executed.  glibc passes
 * (argc, argv, envp) to constructors. */
__attribute__((constructor)) static void threads_default_passive_wait(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (getenv("OMP_WAIT_POLICY") || !argv || !argv[0]) return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with libgomp's default policy */
}

void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS would scale C by beta; keep that behaviour explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
#ifdef CHERRY_CUDA
    /* GPU backend (make CUDA=1, cuda/gemm_cuda.cu): large products go to cuBLAS when a
     * device is present (threshold and CHERRY_CUDA=0|auto|all in gemm_cuda.h).  Not from
     * inside OpenMP regions (attention's per-head products): those are small and would
     * only queue on the device lock.  gemm_cuda leaves C untouched when it fails, so the
     * CPU path below is the fallback. */
    if (!omp_in_parallel() && gemm_cuda_wanted(M, N, K) &&
        gemm_cuda(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
#endif
    /* Thread-count independence: OpenBLAS's single- and multi-threaded level-3
     * drivers (driver/level3/level3.c vs level3_thread.c, 0.3.21) split the last
     * K range in (GEMM_Q, 2 GEMM_Q) differently unless it is a multiple of 32, so
     * for K > GEMM_Q (320 on this machine) the sums are ordered differently at 1 and
     * 2 threads.  Splitting K into a multiple of 32 and a tail < 32 makes both drivers
     * block K identically (measured: every K up to 1700 bit-identical; ops'
     * test_ops_grad checks it).  The tail is a rank-<32 update of C. */
    int k_tail = K > 32 ? K % 32 : 0, k_head = K - k_tail;
    CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, k_head, alpha, A, lda, B, ldb, beta, C, ldc);
    if (k_tail) {
        const float *A2 = transA ? A + (size_t)k_head * lda : A + k_head;
        const float *B2 = transB ? B + k_head : B + (size_t)k_head * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, k_tail, alpha, A2, lda, B2, ldb, 1.0f, C, ldc);
    }
}

void gemm_threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int threads_get(void) {
    return n_threads > 0 ? n_threads : omp_get_max_threads();
}

double gemm_measure_peak(int n) {
    float *a = xaligned_alloc(sizeof(float) * n * n);
    float *b = xaligned_alloc(sizeof(float) * n * n);
    float *c = xaligned_alloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_seconds();
        gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_seconds() - t0;
        double flops = 2.0 * n * n * (double)n / dt;
        if (flops > best) best = flops;
    }
    free(a);
    free(b);
    free(c);
    return best;
}
