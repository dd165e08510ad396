/* gemm_cuda.h — the GPU side of the gemm seam (common/kernels/gemm.h), and the device checks
 * every CUDA wrapper shares.
 *
 * Compiled only with `make CUDA=1` (the Makefile then defines CHERRY_CUDA and adds
 * -Icuda).  Plain C API with host pointers, so common/kernels/gemm.c and the tests call it
 * without CUDA headers.  This is the seam proof, not the fast path: each call copies
 * its operands to a grow-only device workspace, runs cuBLAS and copies the result
 * back, so it pays PCIe transfers on every product (see cuda/README.md).
 * Not for: keeping tensors resident on the device (a later step: device-pointer
 * entry points such as the *_cuda_dev kernels of ops_cuda.h). */
#ifndef CHERRY_GEMM_CUDA_H
#define CHERRY_GEMM_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if a CUDA device can be used, else 0.  Never aborts: no driver, no device or a
 * broken installation all answer 0.  The first call initialises the runtime (once,
 * thread-safe); later calls return the cached answer. */
int cuda_available(void);

/* Same contract as gemm() in gemm.h (row-major, C = alpha op(A) op(B) + beta C), on the
 * GPU with cublasSgemm in full FP32 (no TF32).  Returns 0 on success.  On any CUDA
 * failure it returns -1 and C is untouched (the result is staged on the host and
 * written only after every device step succeeded), so the caller can fall back to the
 * CPU; after the first failure the GPU is disabled for the rest of the process and a
 * one-line warning goes to stderr.  Thread-safe (one lock around the device). */
int gemm_cuda(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/* Dispatch policy of gemm() under CUDA=1 (see the threshold in gemm_cuda.cu):
 *   CUDA_GEMM_OFF  never use the GPU
 *   CUDA_GEMM_AUTO products with min(M,N,K) >= 64 and 2MNK >= 2^25 flops (default)
 *   CUDA_GEMM_ALL  every product (to run a whole program through cuBLAS in tests)
 * gemm() itself never dispatches from inside an OpenMP parallel region, in any mode.
 * The initial mode comes from the environment variable CHERRY_CUDA ("0"/"off",
 * "auto", "all"); unset means auto. */
enum { CUDA_GEMM_OFF = 0, CUDA_GEMM_AUTO = 1, CUDA_GEMM_ALL = 2 };
void cuda_gemm_mode_set(int mode);
int cuda_gemm_mode(void);

/* 1 if gemm() should send an M x N x K product to the GPU now: the mode allows it,
 * the size passes the threshold and a device is available. */
int gemm_cuda_wanted(int M, int N, int K);

/* Counters since the start of the process (tests check that work really ran on the
 * device and that nothing failed). */
typedef struct CudaStats {
    unsigned long gemm_calls; /* products computed by gemm_cuda */
    unsigned long op_calls;   /* element-wise/norm kernels run by ops_cuda.cu */
    unsigned long failures;   /* CUDA errors (each one also disabled the GPU) */
} CudaStats;
void cuda_stats(CudaStats *out);

#ifdef __cplusplus
}
#endif

#endif
