/* gemm_internal.h — private to kernels/: gemm.c's use of oneDNN's matmul primitive
 * (gemm_onednn.c).  Not for other folders: they call gemm(). */
#ifndef CHERRY_GEMM_INTERNAL_H
#define CHERRY_GEMM_INTERNAL_H

#include <stddef.h>

/* Opens libdnnl.so.2 and its matmul entry points (once).  0 when the primitive can be
 * used; -1 when the library or a symbol is missing or cherry was built without the
 * oneDNN 2.x headers (libdnnl-dev), with the reason in why. */
int gemm_onednn_open(char *why, size_t n);

/* C[M,N] = alpha op(A) op(B) + beta C (row-major, gemm()'s arguments) through one
 * oneDNN matmul primitive, planned for and run with nthr threads (gemm() uses 1: a
 * tile is one single-threaded execution, see gemm_onednn.c).  A and B are bf16
 * (uint16_t) when bf16, else float; C is float.  Primitives are created once per
 * shape and kept (bounded cache).  Returns 0 when done, -1 when no primitive exists
 * for the shape (C untouched: the caller uses another kernel). */
int gemm_onednn_matmul(int bf16, int nthr, int transA, int transB, int M, int N, int K, float alpha, const void *A,
                       int lda, const void *B, int ldb, float beta, float *C, int ldc);

#endif
