/* gemm_cuda.cu — row-major gemm on cuBLAS, and the policy deciding when gemm() uses it.
 *
 * cuBLAS is column-major (cuBLAS docs, "Data layout").  A row-major X buffer read as
 * column-major is X^T, so the row-major product C = op(A) op(B) is computed as the
 * column-major product C^T = op(B)^T op(A)^T: cublasSgemm(opB, opA, m=N, n=M, k=K,
 * B, A, C) with the op flags unchanged (op(B)^T of the buffer-as-column-major B^T is B^T
 * itself when B is not transposed, i.e. CUBLAS_OP_N, and CUBLAS_OP_T when it is).
 *
 * Host pointers in, host pointers out: each call packs A and B (and C when beta != 0)
 * into one device workspace with cudaMemcpy2D (which also drops the lda/ldb/ldc padding,
 * and never reads past the last used element of a row, as the CPU BLAS would not),
 * runs the product, copies C to a host staging buffer and only then into the caller's C.
 * This is the seam proof, not the fast path: the transfers cost 4 (MK + KN + MN) bytes
 * (+ MN when beta != 0) over PCIe on every call.
 *
 * Determinism: cuBLAS gives bit-identical results run to run on the same GPU model and
 * toolkit when one stream is used (cuBLAS docs, "Results reproducibility"), which is
 * what we do; results differ from the CPU path in the last bits (different summation
 * order), as they differ between GPU models. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>

#include "cuda_internal.h"
#include "gemm_cuda.h"

/* ---- dispatch policy ---------------------------------------------------------------
 * A product goes to the GPU when it is big enough for the copies to pay:
 *   min(M, N, K) >= 64: the arithmetic intensity of the transfers, 2MNK flops over
 *     4 (MK + KN + 2MN) bytes, is roughly min(M,N,K)/4 to /2 flop/byte; at 64 that is
 *     >= 16 flop/byte, i.e. >= ~200 GFLOP/s sustained over a ~12 GB/s PCIe 3 x16 link,
 *     more than the CPU sgemm of a small machine (bench_gemm measures it).  Decoding
 *     (M = 1..16 rows) and per-head attention blocks stay on the CPU.
 *   2MNK >= 2^25 (~33.5 MFLOP, e.g. 256^3): below that a launch, a synchronisation and
 *     four copies (~30-60 us) are comparable with the whole CPU product.
 * Both numbers are estimates for a PCIe card; CHERRY_CUDA=all forces every product. */
#define CUDA_GEMM_MIN_DIM 64
#define CUDA_GEMM_MIN_FLOPS 33554432.0 /* 2^25 */

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static int gemm_mode = CUDA_GEMM_AUTO;

static void mode_from_env(void) {
    const char *s = getenv("CHERRY_CUDA");
    if (!s || !*s || !strcmp(s, "auto") || !strcmp(s, "1")) return;
    if (!strcmp(s, "0") || !strcmp(s, "off")) {
        __atomic_store_n(&gemm_mode, CUDA_GEMM_OFF, __ATOMIC_RELEASE);
    } else if (!strcmp(s, "all")) {
        __atomic_store_n(&gemm_mode, CUDA_GEMM_ALL, __ATOMIC_RELEASE);
    } else {
        fprintf(stderr, "cherry: CHERRY_CUDA=\"%s\" is not one of 0, off, auto, 1, all; using auto\n", s);
    }
}

extern "C" void cuda_gemm_mode_set(int mode) {
    pthread_once(&mode_once, mode_from_env); /* so a later first query cannot undo this */
    if (mode < CUDA_GEMM_OFF || mode > CUDA_GEMM_ALL) mode = CUDA_GEMM_AUTO;
    __atomic_store_n(&gemm_mode, mode, __ATOMIC_RELEASE);
}

extern "C" int cuda_gemm_mode(void) {
    pthread_once(&mode_once, mode_from_env);
    return __atomic_load_n(&gemm_mode, __ATOMIC_ACQUIRE);
}

extern "C" int gemm_cuda_wanted(int M, int N, int K) {
    int mode = cuda_gemm_mode();
    if (mode == CUDA_GEMM_OFF || M <= 0 || N <= 0 || K <= 0) return 0;
    if (mode == CUDA_GEMM_AUTO) {
        int mn = M < N ? M : N;
        mn = mn < K ? mn : K;
        if (mn < CUDA_GEMM_MIN_DIM || 2.0 * M * N * (double)K < CUDA_GEMM_MIN_FLOPS) return 0;
    }
    return cuda_usable();
}

/* ---- the product --------------------------------------------------------------------- */

/* Body of gemm_cuda with the lock held; returns 0 or -1. */
static int gemm_cuda_locked(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc) {
    size_t a_rows = transA ? K : M, a_cols = transA ? M : K;
    size_t b_rows = transB ? N : K, b_cols = transB ? K : N;
    size_t a_bytes = a_rows * a_cols * sizeof(float), b_bytes = b_rows * b_cols * sizeof(float);
    size_t c_bytes = (size_t)M * N * sizeof(float);
    size_t off_b = cuda_align_up(a_bytes), off_c = off_b + cuda_align_up(b_bytes);
    char *ws = (char *)cuda_ws(off_c + c_bytes);
    if (!ws) return -1;
    float *dA = (float *)ws, *dB = (float *)(ws + off_b), *dC = (float *)(ws + off_c);
    cublasHandle_t h = cuda_blas();
    if (!h) return -1;
    float *stage = (float *)cuda_stage(c_bytes);
    if (!stage) return -1;

    CUDA_TRY(cudaMemcpy2D(dA, a_cols * sizeof(float), A, (size_t)lda * sizeof(float), a_cols * sizeof(float), a_rows,
                          cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpy2D(dB, b_cols * sizeof(float), B, (size_t)ldb * sizeof(float), b_cols * sizeof(float), b_rows,
                          cudaMemcpyHostToDevice));
    /* With beta == 0 C is output only: BLAS (and cuBLAS) do not read it, so NaNs in the
     * caller's C must not leak in -- and the copy is saved. */
    if (beta != 0.0f)
        CUDA_TRY(cudaMemcpy2D(dC, (size_t)N * sizeof(float), C, (size_t)ldc * sizeof(float), (size_t)N * sizeof(float),
                              M, cudaMemcpyHostToDevice));

    cublasOperation_t opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N, opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t s = cublasSgemm(h, opB, opA, N, M, K, &alpha, dB, (int)b_cols, dA, (int)a_cols, &beta, dC, N);
    if (s != CUBLAS_STATUS_SUCCESS) return cuda_fail("cublasSgemm", cublasGetStatusString(s));
    /* cudaMemcpy device-to-pageable-host waits for the product (same stream). */
    CUDA_TRY(cudaMemcpy(stage, dC, c_bytes, cudaMemcpyDeviceToHost));
    CUDA_TRY(cudaGetLastError());

    for (int i = 0; i < M; i++) memcpy(C + (size_t)i * ldc, stage + (size_t)i * N, (size_t)N * sizeof(float));
    cuda_count_gemm();
    return 0;
}

extern "C" int gemm_cuda(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return 0;
    if (K <= 0) {
        /* as gemm.c: the product is empty, C = beta C (0 when beta == 0, never beta*NaN) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return 0;
    }
    /* Leading dimensions too small are the caller's bug: let the CPU BLAS report it
     * rather than disabling the GPU for the process. */
    if (lda < (transA ? M : K) || ldb < (transB ? K : N) || ldc < N) return -1;
    if (!cuda_usable()) return -1;
    cuda_lock();
    int rc = gemm_cuda_locked(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    cuda_unlock();
    return rc;
}
