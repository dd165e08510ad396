/* ops_cuda.h — the first GPU ops: element-wise layers and RMSNorm, in two forms.
 *
 *  *_cuda      the op in common/kernels/ops.h on host pointers, backward ops in their
 *              accumulating form (+=, the CPU's accumulate = 1; no such argument here).  Operands are
 *              copied to the device, the kernel runs, results are staged on the host
 *              and written to the caller's arrays only when every device step
 *              succeeded; if the GPU is absent or fails, the CPU op runs instead, so a
 *              call always produces the op's result.  cuda_stats() tells which ran.
 *  *_cuda_dev  the kernels themselves on DEVICE pointers (already resident), launched
 *              on the default stream without synchronising; they return 0, or -1 if
 *              the launch failed (the failure is recorded as by gemm_cuda).  These are
 *              the building blocks of a device-resident forward/backward.
 * Only with `make CUDA=1`.  Not on the GPU yet: embedding, layernorm, rope, attention,
 * the fused log-softmax (see cuda/README.md). */
#ifndef CHERRY_OPS_CUDA_H
#define CHERRY_OPS_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void gelu_forward_cuda(float *out, const float *inp, size_t n);
void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n);
void swiglu_forward_cuda(float *out, const float *gate, const float *up, size_t n);
void swiglu_backward_cuda(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
void residual_forward_cuda(float *out, const float *a, const float *b, size_t n);
void residual_backward_cuda(float *da, float *db, const float *dout, size_t n);
void rmsnorm_forward_cuda(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
void rmsnorm_backward_cuda(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                           const float *rstd, int N, int C);

int gelu_forward_cuda_dev(float *out, const float *inp, size_t n);
int gelu_backward_cuda_dev(float *dinp, const float *inp, const float *dout, size_t n);
int swiglu_forward_cuda_dev(float *out, const float *gate, const float *up, size_t n);
int swiglu_backward_cuda_dev(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
int residual_forward_cuda_dev(float *out, const float *a, const float *b, size_t n);
int residual_backward_cuda_dev(float *da, float *db, const float *dout, size_t n);
int rmsnorm_forward_cuda_dev(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
int rmsnorm_backward_cuda_dev(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                              const float *rstd, int N, int C);

#ifdef __cplusplus
}
#endif

#endif
