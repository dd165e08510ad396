/* cuda_internal.h — what the .cu files of cuda/ share: one lock around the device, a
 * grow-only device workspace, a grow-only host staging buffer, the cuBLAS handle and
 * failure bookkeeping.  C++ (nvcc) only; the public API is gemm_cuda.h / ops_cuda.h.
 *
 * Locking rule: every function here except cuda_usable() and the stats counters is
 * called with cuda_lock() held, so the workspace and the handle need no other
 * synchronisation.  All device work runs on the legacy default stream and every
 * wrapper synchronises before it returns, so results are ready when the lock drops. */
#ifndef CHERRY_CUDA_INTERNAL_H
#define CHERRY_CUDA_INTERNAL_H

#include <cstddef>
#include <cublas_v2.h>
#include <cuda_runtime.h>

/* Byte alignment of the pieces carved out of the workspace (cudaMalloc itself returns
 * 256-byte aligned memory; keeping every piece on that boundary keeps loads coalesced). */
#define CUDA_WS_ALIGN 256

static inline size_t cuda_align_up(size_t n) {
    return (n + CUDA_WS_ALIGN - 1) / CUDA_WS_ALIGN * CUDA_WS_ALIGN;
}

/* 1 if the device is present and no CUDA failure has disabled it. */
int cuda_usable(void);

void cuda_lock(void);
void cuda_unlock(void);

/* Device workspace of at least `bytes` (grows by doubling, never shrinks); NULL on
 * failure (already recorded by cuda_fail). */
void *cuda_ws(size_t bytes);

/* Host staging buffer of at least `bytes`, separate from the caller's arrays so that a
 * failed copy never leaves a caller's output half written; NULL if out of memory. */
void *cuda_stage(size_t bytes);

/* The process's cuBLAS handle (created on first use, FP32 math, no TF32); NULL on
 * failure. */
cublasHandle_t cuda_blas(void);

/* Records a failure (what = the call that failed, detail = CUDA's message), prints a
 * one-line warning the first time, disables the GPU for the rest of the process and
 * returns -1. */
int cuda_fail(const char *what, const char *detail);

/* Counts work done on the device (for cuda_stats). */
void cuda_count_gemm(void);
void cuda_count_op(void);

/* Checks a runtime call; on error records it and returns -1 from the caller. */
#define CUDA_TRY(call)                                                                                                 \
    do {                                                                                                               \
        cudaError_t cuda_try_err_ = (call);                                                                            \
        if (cuda_try_err_ != cudaSuccess) return cuda_fail(#call, cudaGetErrorString(cuda_try_err_));                  \
    } while (0)

#endif
