/* gemm.c — the only file that calls BLAS.  See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "util.h"

/* OpenBLAS's OpenMP build exports this; it sets the BLAS-internal thread count. */
void openblas_set_num_threads(int);

static int n_threads = 0;

void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS would scale C by beta; keep that behaviour explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}

void threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int threads_get(void) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

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
