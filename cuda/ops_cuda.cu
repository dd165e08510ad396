/* ops_cuda.cu — GELU, SwiGLU, residual and RMSNorm kernels with their host wrappers
 * (see ops_cuda.h).  Each kernel computes the same formula as its CPU twin in
 * common/kernels/ops.c, cited there; the GPU results agree with the CPU's to ~1e-6 relative
 * (expf rounding, FMA contraction and the reduction tree differ), which
 * tests/test_cuda_parity.c checks where a GPU exists.
 *
 * Reductions are in double with a fixed tree (RMSNorm rows) or a fixed sequential
 * order (RMSNorm dw, one thread per column), so results do not depend on scheduling:
 * same input, same output, run to run. */
#include <cstddef>
#include <cstring>

#include "cuda_internal.h"
#include "gemm_cuda.h"
#include "ops_cuda.h"
extern "C" {
#include "kernels/ops.h"
}

#define EW_THREADS 256     /* threads per block of the element-wise kernels */
#define EW_MAX_BLOCKS 4096 /* grid-stride beyond this: enough blocks to fill any current GPU */
#define ROW_THREADS 256    /* threads per row of the RMSNorm kernels (power of two: tree) */

/* sigmoid exactly as ops_sigmoidf (common/kernels/ops_fastmath.h): the exponent is clamped to
 * [-87.3, 88.3], so both sides saturate at the same tiny value instead of the GPU
 * reaching 0 where the CPU gives ~4.5e-39. */
__device__ static inline float sigmoid_d(float x) {
    float z = fminf(fmaxf(-x, -87.3f), 88.3f);
    return 1.0f / (1.0f + expf(z));
}

/* GELU (tanh form, GPT-2's gelu_new) as x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3);
 * Hendrycks & Gimpel 2016 sec. 2 -- see common/kernels/ops.c for why sigmoid(2u). */
#define GELU_K0 0.7978845608028654f
#define GELU_K1 0.044715f

__global__ static void gelu_fwd_k(float *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = x * sigmoid_d(2.0f * GELU_K0 * (x + GELU_K1 * x * x * x));
    }
}

/* d/dx [x s] = s + 2 x s (1 - s) u',  u' = sqrt(2/pi)(1 + 3 * 0.044715 x^2) */
__global__ static void gelu_bwd_k(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        float s = sigmoid_d(2.0f * GELU_K0 * (x + GELU_K1 * x * x * x));
        float g = s + 2.0f * x * s * (1.0f - s) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
        dinp[i] += g * dout[i];
    }
}

/* SwiGLU core, Shazeer 2020 eq. 6: silu(gate) * up, silu'(g) = s (1 + g (1 - s)). */
__global__ static void swiglu_fwd_k(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g * sigmoid_d(g) * up[i];
    }
}

__global__ static void swiglu_bwd_k(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                    size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        float s = sigmoid_d(g);
        if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

__global__ static void residual_fwd_k(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ static void residual_bwd_k(float *da, float *db, const float *dout, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

/* Sums v over the block (ROW_THREADS threads) with a fixed binary tree; every thread
 * gets the total. */
__device__ static double block_sum(double v, double *red) {
    int t = threadIdx.x;
    red[t] = v;
    __syncthreads();
    for (int s = ROW_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) red[t] += red[t + s];
        __syncthreads();
    }
    double total = red[0];
    __syncthreads(); /* red may be reused by the caller's next block_sum */
    return total;
}

/* RMSNorm (Zhang & Sennrich 2019, eq. 4; LlamaRMSNorm): one block per row,
 *   rstd = 1 / sqrt(mean(x^2) + eps),  out = w * (x * rstd). */
__global__ static void rmsnorm_fwd_k(float *out, float *rstd, const float *inp, const float *w, int C, float eps) {
    __shared__ double red[ROW_THREADS];
    size_t row = blockIdx.x;
    const float *x = inp + row * C;
    float *o = out + row * C;
    double ss = 0;
    for (int c = threadIdx.x; c < C; c += ROW_THREADS) ss += (double)x[c] * x[c];
    ss = block_sum(ss, red);
    float rs = (float)(1.0 / sqrt(ss / C + eps));
    for (int c = threadIdx.x; c < C; c += ROW_THREADS) o[c] = w[c] * (x[c] * rs);
    if (threadIdx.x == 0) rstd[row] = rs;
}

/* With xhat = x rstd, g = dout w:  dx += rstd (g - xhat mean_c(g xhat))  (as common/kernels/ops.c). */
__global__ static void rmsnorm_bwd_dx_k(float *dinp, const float *dout, const float *inp, const float *w,
                                        const float *rstd, int C) {
    __shared__ double red[ROW_THREADS];
    size_t row = blockIdx.x;
    const float *x = inp + row * C, *dy = dout + row * C;
    float *dx = dinp + row * C;
    float rs = rstd[row];
    double sgx = 0;
    for (int c = threadIdx.x; c < C; c += ROW_THREADS) sgx += (double)(dy[c] * w[c]) * (x[c] * rs);
    sgx = block_sum(sgx, red);
    float mgx = (float)(sgx / C);
    for (int c = threadIdx.x; c < C; c += ROW_THREADS) dx[c] += rs * (dy[c] * w[c] - (x[c] * rs) * mgx);
}

/* dw[c] += sum_n dout[n,c] xhat[n,c]: one thread per column, rows in order (the CPU's
 * order), double accumulator; adjacent threads read adjacent columns (coalesced). */
__global__ static void rmsnorm_bwd_dw_k(float *dw, const float *dout, const float *inp, const float *rstd, int N,
                                        int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double acc = 0;
    for (int n = 0; n < N; n++) acc += dout[(size_t)n * C + c] * (inp[(size_t)n * C + c] * rstd[n]);
    dw[c] += (float)acc;
}

/* ---- device-pointer launchers ------------------------------------------------------ */

static unsigned ew_blocks(size_t n) {
    size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < EW_MAX_BLOCKS ? b : EW_MAX_BLOCKS);
}

/* A launch error (bad configuration, no kernel image for this GPU) shows up in
 * cudaGetLastError right after the launch. */
static int launched(const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_fail(what, cudaGetErrorString(e));
    cuda_count_op();
    return 0;
}

extern "C" int gelu_forward_cuda_dev(float *out, const float *inp, size_t n) {
    if (n == 0) return 0;
    gelu_fwd_k<<<ew_blocks(n), EW_THREADS>>>(out, inp, n);
    return launched("gelu_forward kernel");
}
extern "C" int gelu_backward_cuda_dev(float *dinp, const float *inp, const float *dout, size_t n) {
    if (n == 0) return 0;
    gelu_bwd_k<<<ew_blocks(n), EW_THREADS>>>(dinp, inp, dout, n);
    return launched("gelu_backward kernel");
}
extern "C" int swiglu_forward_cuda_dev(float *out, const float *gate, const float *up, size_t n) {
    if (n == 0) return 0;
    swiglu_fwd_k<<<ew_blocks(n), EW_THREADS>>>(out, gate, up, n);
    return launched("swiglu_forward kernel");
}
extern "C" int swiglu_backward_cuda_dev(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                        size_t n) {
    if (n == 0 || (!dgate && !dup)) return 0;
    swiglu_bwd_k<<<ew_blocks(n), EW_THREADS>>>(dgate, dup, dout, gate, up, n);
    return launched("swiglu_backward kernel");
}
extern "C" int residual_forward_cuda_dev(float *out, const float *a, const float *b, size_t n) {
    if (n == 0) return 0;
    residual_fwd_k<<<ew_blocks(n), EW_THREADS>>>(out, a, b, n);
    return launched("residual_forward kernel");
}
extern "C" int residual_backward_cuda_dev(float *da, float *db, const float *dout, size_t n) {
    if (n == 0 || (!da && !db)) return 0;
    residual_bwd_k<<<ew_blocks(n), EW_THREADS>>>(da, db, dout, n);
    return launched("residual_backward kernel");
}
extern "C" int rmsnorm_forward_cuda_dev(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                                        float eps) {
    if (N <= 0 || C <= 0) return 0;
    rmsnorm_fwd_k<<<N, ROW_THREADS>>>(out, rstd, inp, w, C, eps);
    return launched("rmsnorm_forward kernel");
}
extern "C" int rmsnorm_backward_cuda_dev(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                         const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return 0;
    if (dinp) {
        rmsnorm_bwd_dx_k<<<N, ROW_THREADS>>>(dinp, dout, inp, w, rstd, C);
        if (launched("rmsnorm_backward (dx) kernel")) return -1;
    }
    if (dw) {
        rmsnorm_bwd_dw_k<<<(C + EW_THREADS - 1) / EW_THREADS, EW_THREADS>>>(dw, dout, inp, rstd, N, C);
        if (launched("rmsnorm_backward (dw) kernel")) return -1;
    }
    return 0;
}

/* ---- host-pointer wrappers ------------------------------------------------------------
 * One operand of a wrapper: `in` is copied to the device before the kernel (NULL: output
 * only), `out` receives the device contents afterwards (NULL: input only); for the
 * accumulating outputs of backward ops both are the caller's array.  n == 0 (an absent
 * optional gradient) gives dev == NULL. */
struct Operand {
    const float *in;
    float *out;
    size_t n;
    float *dev;
};

/* Copies the operands in, runs launch(), stages the outputs on the host and writes the
 * caller's arrays only after everything succeeded.  Returns 0 or -1. */
template <typename F> static int run_on_device(Operand *ops, int nops, F launch) {
    if (!cuda_usable()) return -1;
    cuda_lock();
    int rc = -1;
    size_t dev_bytes = 0, out_bytes = 0;
    for (int i = 0; i < nops; i++) {
        dev_bytes += cuda_align_up(ops[i].n * sizeof(float));
        if (ops[i].out) out_bytes += ops[i].n * sizeof(float);
    }
    char *ws = (char *)cuda_ws(dev_bytes ? dev_bytes : 1);
    float *stage = ws ? (float *)cuda_stage(out_bytes ? out_bytes : 1) : NULL;
    if (stage) {
        size_t off = 0;
        for (int i = 0; i < nops; i++) {
            ops[i].dev = ops[i].n ? (float *)(ws + off) : NULL;
            off += cuda_align_up(ops[i].n * sizeof(float));
        }
        rc = 0;
        for (int i = 0; i < nops && rc == 0; i++) {
            if (!ops[i].in || !ops[i].n) continue;
            cudaError_t e = cudaMemcpy(ops[i].dev, ops[i].in, ops[i].n * sizeof(float), cudaMemcpyHostToDevice);
            if (e != cudaSuccess) rc = cuda_fail("cudaMemcpy (to device)", cudaGetErrorString(e));
        }
        if (rc == 0) rc = launch();
        size_t so = 0;
        for (int i = 0; i < nops && rc == 0; i++) {
            if (!ops[i].out || !ops[i].n) continue;
            cudaError_t e = cudaMemcpy(stage + so, ops[i].dev, ops[i].n * sizeof(float), cudaMemcpyDeviceToHost);
            if (e != cudaSuccess) rc = cuda_fail("cudaMemcpy (to host)", cudaGetErrorString(e));
            so += ops[i].n;
        }
        if (rc == 0) {
            so = 0;
            for (int i = 0; i < nops; i++) {
                if (!ops[i].out || !ops[i].n) continue;
                memcpy(ops[i].out, stage + so, ops[i].n * sizeof(float));
                so += ops[i].n;
            }
        }
    }
    cuda_unlock();
    return rc;
}

extern "C" void gelu_forward_cuda(float *out, const float *inp, size_t n) {
    Operand o[] = {{NULL, out, n, NULL}, {inp, NULL, n, NULL}};
    if (n == 0 || run_on_device(o, 2, [&] { return gelu_forward_cuda_dev(o[0].dev, o[1].dev, n); }) == 0) return;
    gelu_forward(out, inp, n);
}

extern "C" void gelu_backward_cuda(float *dinp, const float *inp, const float *dout, size_t n) {
    Operand o[] = {{dinp, dinp, n, NULL}, {inp, NULL, n, NULL}, {dout, NULL, n, NULL}};
    if (n == 0 || run_on_device(o, 3, [&] { return gelu_backward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, n); }) == 0)
        return;
    gelu_backward(dinp, inp, dout, n, 1);
}

extern "C" void swiglu_forward_cuda(float *out, const float *gate, const float *up, size_t n) {
    Operand o[] = {{NULL, out, n, NULL}, {gate, NULL, n, NULL}, {up, NULL, n, NULL}};
    if (n == 0 || run_on_device(o, 3, [&] { return swiglu_forward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, n); }) == 0)
        return;
    swiglu_forward(out, gate, up, n);
}

extern "C" void swiglu_backward_cuda(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                                     size_t n) {
    Operand o[] = {{dgate, dgate, dgate ? n : 0, NULL},
                   {dup, dup, dup ? n : 0, NULL},
                   {dout, NULL, n, NULL},
                   {gate, NULL, n, NULL},
                   {up, NULL, n, NULL}};
    if (n == 0 || (!dgate && !dup)) return;
    if (run_on_device(
            o, 5, [&] { return swiglu_backward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, o[3].dev, o[4].dev, n); }) == 0)
        return;
    swiglu_backward(dgate, dup, dout, gate, up, n, 1);
}

extern "C" void residual_forward_cuda(float *out, const float *a, const float *b, size_t n) {
    Operand o[] = {{NULL, out, n, NULL}, {a, NULL, n, NULL}, {b, NULL, n, NULL}};
    if (n == 0 || run_on_device(o, 3, [&] { return residual_forward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, n); }) == 0)
        return;
    residual_forward(out, a, b, n);
}

extern "C" void residual_backward_cuda(float *da, float *db, const float *dout, size_t n) {
    Operand o[] = {{da, da, da ? n : 0, NULL}, {db, db, db ? n : 0, NULL}, {dout, NULL, n, NULL}};
    if (n == 0 || (!da && !db)) return;
    if (run_on_device(o, 3, [&] { return residual_backward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, n); }) == 0) return;
    residual_backward(da, db, dout, n);
}

extern "C" void rmsnorm_forward_cuda(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                                     float eps) {
    if (N <= 0 || C <= 0) return;
    size_t nc = (size_t)N * C;
    Operand o[] = {
        {NULL, out, nc, NULL}, {NULL, rstd, (size_t)N, NULL}, {inp, NULL, nc, NULL}, {w, NULL, (size_t)C, NULL}};
    if (run_on_device(o, 4,
                      [&] { return rmsnorm_forward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, o[3].dev, N, C, eps); }) == 0)
        return;
    rmsnorm_forward(out, rstd, inp, w, N, C, eps);
}

extern "C" void rmsnorm_backward_cuda(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                      const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0 || (!dinp && !dw)) return;
    size_t nc = (size_t)N * C;
    Operand o[] = {{dinp, dinp, dinp ? nc : 0, NULL},
                   {dw, dw, dw ? (size_t)C : 0, NULL},
                   {dout, NULL, nc, NULL},
                   {inp, NULL, nc, NULL},
                   {w, NULL, (size_t)C, NULL},
                   {rstd, NULL, (size_t)N, NULL}};
    if (run_on_device(o, 6, [&] {
            return rmsnorm_backward_cuda_dev(o[0].dev, o[1].dev, o[2].dev, o[3].dev, o[4].dev, o[5].dev, N, C);
        }) == 0)
        return;
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}
