/* gemm.h — the one seam through which matrix products go.
 *
 * Everything that multiplies matrices calls gemm(); only gemm.c calls BLAS
 * (cblas_sgemm from OpenBLAS's OpenMP build, so BLAS and our own OpenMP loops
 * share one thread pool instead of fighting over the cores) and oneDNN
 * (gemm_onednn.c: bf16 products, and fp32 ones where its kernels are faster).  The CUDA backend
 * (cuda/) implements the same function.  Row-major throughout. */
#ifndef CHERRY_GEMM_H
#define CHERRY_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* C[M,N] = alpha * op(A) * op(B) + beta * C, row-major.
 * op(A) is [M,K]: A is [M,K] (lda >= K) or, if transA, [K,M] (lda >= M).
 * op(B) is [K,N]: B is [K,N] (ldb >= N) or, if transB, [N,K] (ldb >= K). */
void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc);

/* Large products are cut into tiles that the threads take one at a time, so a
 * thread on a core shared with another process does not hold the others up (gemm.c);
 * results are bit-identical at any thread count (a product of one tile runs on one
 * thread; a pthread of the caller's own may run its products on its own OpenMP
 * thread count, with the same bits).  gemm_set_tiling(0) hands every fp32 product to OpenBLAS's own threading
 * instead (equal static parts; bit-identical only where OpenBLAS's threaded driver
 * is, not with its Haswell kernels; bf16 products keep their tiles): for benchmarks
 * that compare the two (tests/bench_gemm). */
void gemm_set_tiling(int on);

/* bf16 mixed precision for every later gemm() of the process (on = 1), as
 * torch.autocast(bfloat16) does for matmul: A and B rounded to bfloat16, products
 * accumulated and C kept in fp32; callers keep fp32 weights, gradients and optimizer
 * state.  Needs oneDNN (libdnnl.so.2, opened at run time): EX_UNAVAILABLE when it
 * cannot be loaded.  Off (0) restores fp32 products. */
int gemm_set_bf16(int on, Error *e);
int gemm_bf16_enabled(void);
/* oneDNN's matmul primitive for bf16 (bf16 = 1) or fp32 (bf16 = 0) products: on by
 * default for bf16 (brgemm kernels, AMX where the CPU has it; off: oneDNN's bf16 gemm
 * entry point, which also runs AMX kernels, slower ones); for fp32 on by default where
 * oneDNN has AVX-512 brgemm kernels and the CPU no AMX, else off (OpenBLAS;
 * CHERRY_F32_GEMM=openblas|onednn overrides; gemm.c, f32_matmul_decide).  Needs cherry
 * built with oneDNN's headers and libdnnl.so.2 at run time; returns whether it is now
 * on (gemm.c, gemm_onednn.c).  gemm_onednn_matmul_on: whether it is on now (the fp32
 * default decided if nothing set it yet). */
int gemm_set_onednn_matmul(int bf16, int on);
int gemm_onednn_matmul_on(int bf16);
/* 0 when products write C fresh (beta 0) faster than they add into it (bf16 on
 * oneDNN's brgemm without AMX), else 1 (AMX; fp32, whose OpenBLAS zeroes C in a pass of
 * its own and whose oneDNN kernels were not measured faster at it): the trainer then
 * zeroes gradients in AdamW's pass instead of discarding them (model_grads_discard).
 * The environment's CHERRY_GRADS=discard (0) or clear (1) overrides it. */
int gemm_overwrite_slower(void);
/* The implementation oneDNN's matmul primitive uses for one single-threaded tile of this
 * shape (alpha 1, beta 0), e.g. "brg:avx512_core_amx_bf16", or NULL when the primitive
 * is unavailable; valid until many other shapes have been used. */
const char *gemm_onednn_impl(int bf16, int transA, int transB, int M, int N, int K);
/* One whole product through the primitive, planned and threaded by oneDNN at the current
 * OpenMP thread count, untiled: for tests/bench_gemm_libs.  A and B are bf16 (uint16_t)
 * when bf16, else float; -1 when the primitive is unavailable. */
int gemm_onednn_whole(int bf16, int transA, int transB, int M, int N, int K, const void *A, int lda, const void *B,
                      int ldb, float *C, int ldc);
/* bf16 shadows (gemm.c): [p, p+n) are weights just updated by an optimizer; products
 * that read them use one bf16 copy converted once after each update.  forget_all drops
 * every shadow (an optimizer freed: its weights may be freed or rewritten next). */
void gemm_bf16_weights_updated(const float *p, size_t n);
void gemm_bf16_weights_forget_all(void);
/* declare: [p, p+n) are weights an optimizer will update (or frozen weights that only
 * products read), shadowed from the next product on instead of after the first
 * update; a block with a shadow keeps it as it is.  touched: [p, p+n) were written by
 * something else (a checkpoint loaded, a LoRA merge): every shadow overlapping them is
 * converted again before its next use. */
void gemm_bf16_weights_declare(const float *p, size_t n);
void gemm_bf16_weights_touched(const float *p, size_t n);
/* The same, written by the optimizer in its own pass (saves re-reading [p, p+n) from
 * memory): begin returns the shadow of the block when bf16 is on and the block's
 * shadow has been converted whole before (else NULL: call gemm_bf16_weights_updated
 * after the update instead); the optimizer then stores gemm_bf16_convert of every
 * element it changes and calls gemm_bf16_weights_written.  Elements it does not
 * change keep their earlier conversion.  Same rounding as the products' own. */
uint16_t *gemm_bf16_weights_begin(const float *p, size_t n);
void gemm_bf16_weights_written(const float *p, size_t n);
void gemm_bf16_convert(uint16_t *dst, const float *src, size_t n);
/* bf16 copies of activations: [p, p+n) is read unchanged by the next products until
 * gemm_bf16_release(p), e.g. a norm's output by the q, k and v projections, or dY by
 * a linear layer's dX and dW products.  The first product outside parallel regions
 * that reads it converts the block once, whole; later ones read that copy (the same
 * rounding, so the same bits as converting per product).  The caller must not write
 * the block while it is held.  No-op when bf16 is off and inside parallel regions
 * (the slots are the process's; hold from the top level only); holds beyond
 * BF16_HOLDS (4) are ignored (those products convert for themselves). */
void gemm_bf16_hold(const float *p, size_t n);
void gemm_bf16_release(const float *p);

/* The OpenBLAS kernel family to force (OPENBLAS_CORETYPE) when OpenBLAS chose the
 * kernels `core` (openblas_get_corename()) on a CPU with the given features: NULL when
 * its choice stands (anything from Haswell on), "SkylakeX" or "Haswell" when it fell
 * back to a generic pre-AVX2 family on a CPU it did not recognise.  gemm.c applies it
 * at start-up (re-executing the program once); exposed for tests/test_gemm_core. */
const char *gemm_blas_core_for(const char *core, int has_avx512, int has_avx2);

/* Sets the thread count for BLAS and for our OpenMP loops (0 = all cores). */
void gemm_threads_set(int n);
int threads_get(void);

/* Measures the sgemm peak of this machine at the current thread count on square
 * matrices of size n (FLOP/s, best of a few runs). Used by `make bench`. */
double gemm_measure_peak(int n);

#endif
