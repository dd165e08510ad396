/* test_cuda_parity.c — the GPU backend (cuda/) against the CPU ops.
 *
 * Runs only where it can: built without `make CUDA=1` it prints "skipped: built
 * without CUDA=1", built with it on a machine without a usable device it prints
 * "skipped: no CUDA device"; both exit 77.  With a device it checks:
 *  - gemm_cuda against the CPU gemm() for every transA/transB, odd sizes, padded
 *    leading dimensions (the padding of C must stay untouched), alpha != 1, beta = 0
 *    (C full of NaN: it must not be read) and beta != 0.  Tolerance: 1e-5 relative to
 *    the error scale of a float dot product, |alpha| sum_k |a_ik b_kj| + |beta c_ij|
 *    (the classic gemm error bound; an element-wise relative test would fail wherever
 *    the sum cancels, on the CPU too);
 *  - bit-identical results from two identical GPU products (one stream, fixed
 *    algorithm);
 *  - gemm()'s dispatch: CHERRY_CUDA modes off / auto (small products stay on the CPU,
 *    256^3 goes to the GPU) / all, counted by cuda_stats();
 *  - each *_cuda op (GELU, SwiGLU, residual, RMSNorm forward and backward, with
 *    accumulation into non-zero gradients and with NULL optional gradients) against
 *    its ops.h twin: |gpu - cpu| <= 1e-5 |cpu| + 1e-6 max|cpu| (the second term only
 *    matters where a value is a cancellation of O(max) terms, e.g. RMSNorm's dx);
 *  - that every op really ran on the device and no CUDA call failed. */
#include <stdio.h>

#ifndef CHERRY_CUDA
int main(void) {
    puts("skipped: built without CUDA=1");
    return 77;
}
#else
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "gemm_cuda.h"
#include "kernels/gemm.h"
#include "kernels/ops.h"
#include "ops_cuda.h"

/* Under the sanitizer build, ASan's protected shadow gap overlaps the addresses the
 * CUDA driver maps, and device initialisation fails unless the gap is unprotected
 * (AddressSanitizer flags, protect_shadow_gap).  Read only when linked with ASan. */
const char *__asan_default_options(void) {
    return "protect_shadow_gap=0";
}

static int failures;
static Rng rng;

static float *rand_array(size_t n, float lo, float hi) {
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * rng_uniform(&rng);
    return p;
}

static float *copy_array(const float *a, size_t n) {
    float *p = xmalloc(sizeof(float) * (n ? n : 1));
    memcpy(p, a, sizeof(float) * n);
    return p;
}

/* Element-wise comparison with the tolerance of the header comment. */
static void check_close(const char *what, const float *gpu, const float *cpu, size_t n) {
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(cpu[i]));
    size_t worst = 0, bad = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)gpu[i] - cpu[i]), tol = 1e-5 * fabs(cpu[i]) + 1e-6 * amax;
        if (!(d <= tol)) bad++; /* also catches NaN */
        double ex = tol > 0 ? d / tol : d;
        if (!(ex <= worst_excess)) worst_excess = ex, worst = i;
    }
    if (bad) {
        printf("FAIL %s: %zu of %zu values differ; worst at %zu: expected %.9g (cpu), got %.9g (gpu)\n", what, bad, n,
               worst, cpu[worst], gpu[worst]);
        failures++;
    }
}

/* ---- gemm ---------------------------------------------------------------------------- */

static void check_gemm_case(int ta, int tb, int M, int N, int K, float alpha, float beta) {
    int pad = 3;
    int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    float *A = rand_array((size_t)a_rows * lda, -1, 1), *B = rand_array((size_t)b_rows * ldb, -1, 1);
    float *C0 = rand_array((size_t)M * ldc, -1, 1);
    if (beta == 0)
        for (size_t i = 0; i < (size_t)M * ldc; i++) C0[i] = NAN; /* beta == 0: C must not be read */
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) C0[(size_t)i * ldc + j] = 12345.0f; /* padding sentinel */
    float *Cc = copy_array(C0, (size_t)M * ldc), *Cg = copy_array(C0, (size_t)M * ldc);

    cuda_gemm_mode_set(CUDA_GEMM_OFF);
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cc, ldc);
    CudaStats s0, s1;
    cuda_stats(&s0);
    int rc = gemm_cuda(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cg, ldc);
    cuda_stats(&s1);
    char what[128];
    snprintf(what, sizeof what, "gemm_cuda ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g", ta, tb, M, N, K, alpha, beta);
    if (rc != 0 || s1.gemm_calls != s0.gemm_calls + 1) {
        printf("FAIL %s: expected rc 0 and one GPU product, got rc %d and %lu\n", what, rc,
               s1.gemm_calls - s0.gemm_calls);
        failures++;
    }
    int bad = 0;
    double worst = 0;
    int wi = 0, wj = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double scale = beta == 0 ? 0 : fabs((double)beta * C0[(size_t)i * ldc + j]);
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                scale += fabs((double)alpha * a * b);
            }
            double d = fabs((double)Cg[(size_t)i * ldc + j] - Cc[(size_t)i * ldc + j]);
            double r = d / (scale > 0 ? scale : 1);
            if (!(r <= 1e-5)) bad++;
            if (!(r <= worst)) worst = r, wi = i, wj = j;
        }
        for (int j = N; j < ldc; j++)
            if (Cg[(size_t)i * ldc + j] != 12345.0f) {
                printf("FAIL %s: padding C[%d][%d] overwritten: expected 12345, got %g\n", what, i, j,
                       Cg[(size_t)i * ldc + j]);
                failures++;
                break;
            }
    }
    if (bad) {
        printf("FAIL %s: %d values beyond 1e-5 of the error scale; worst C[%d][%d]: expected %.9g (cpu), got "
               "%.9g (gpu), relative %.3g\n",
               what, bad, wi, wj, Cc[(size_t)wi * ldc + wj], Cg[(size_t)wi * ldc + wj], worst);
        failures++;
    }
    free(A), free(B), free(C0), free(Cc), free(Cg);
}

static void check_gemm_repeatable(void) {
    int n = 200;
    float *A = rand_array((size_t)n * n, -1, 1), *B = rand_array((size_t)n * n, -1, 1);
    float *C1 = xcalloc((size_t)n * n, sizeof(float)), *C2 = xcalloc((size_t)n * n, sizeof(float));
    gemm_cuda(0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C1, n);
    gemm_cuda(0, 1, n, n, n, 1.0f, A, n, B, n, 0.0f, C2, n);
    if (memcmp(C1, C2, sizeof(float) * n * n) != 0) {
        printf("FAIL gemm_cuda repeatability: expected bit-identical results from two identical products\n");
        failures++;
    }
    free(A), free(B), free(C1), free(C2);
}

/* gemm() goes to the GPU exactly when the mode and the threshold say so. */
static void check_dispatch(void) {
    struct {
        int mode, n, want_gpu;
    } cases[] = {{CUDA_GEMM_OFF, 256, 0}, {CUDA_GEMM_AUTO, 8, 0}, {CUDA_GEMM_AUTO, 256, 1}, {CUDA_GEMM_ALL, 8, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c].n;
        float *A = rand_array((size_t)n * n, -1, 1), *B = rand_array((size_t)n * n, -1, 1);
        float *Cd = xcalloc((size_t)n * n, sizeof(float)), *Cc = xcalloc((size_t)n * n, sizeof(float));
        CudaStats s0, s1;
        cuda_gemm_mode_set(cases[c].mode);
        cuda_stats(&s0);
        gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, Cd, n);
        cuda_stats(&s1);
        cuda_gemm_mode_set(CUDA_GEMM_OFF);
        gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, Cc, n);
        unsigned long got = s1.gemm_calls - s0.gemm_calls;
        if (got != (unsigned long)cases[c].want_gpu) {
            printf("FAIL dispatch mode %d n=%d: expected %d GPU products, got %lu\n", cases[c].mode, n,
                   cases[c].want_gpu, got);
            failures++;
        }
        char what[64];
        snprintf(what, sizeof what, "gemm() dispatch mode %d n=%d", cases[c].mode, n);
        /* n <= 256, |a|,|b| <= 1: error scale <= n, so 1e-5 * n absolute */
        for (size_t i = 0; i < (size_t)n * n; i++)
            if (!(fabs(Cd[i] - Cc[i]) <= 1e-5 * n)) {
                printf("FAIL %s: element %zu: expected %.9g (cpu), got %.9g\n", what, i, Cc[i], Cd[i]);
                failures++;
                break;
            }
        free(A), free(B), free(Cd), free(Cc);
    }
    cuda_gemm_mode_set(CUDA_GEMM_AUTO);
}

/* ---- element-wise ops and RMSNorm ------------------------------------------------------ */

/* Inputs span the useful range plus saturated extremes (|x| up to 100, where the
 * sigmoid clamp of ops_fastmath.h decides the result). */
static float *op_input(size_t n) {
    float *x = rand_array(n, -8, 8);
    for (size_t i = 0; i < n; i += 97) x[i] = (i % 2 ? 1 : -1) * (20.0f + 80.0f * rng_uniform(&rng));
    return x;
}

static void check_elementwise(void) {
    size_t n = 100003; /* not a multiple of the block size */
    float *x = op_input(n), *y = op_input(n), *dy = rand_array(n, -1, 1);
    float *oc = xmalloc(sizeof(float) * n), *og = xmalloc(sizeof(float) * n);

    gelu_forward(oc, x, n);
    gelu_forward_cuda(og, x, n);
    check_close("gelu_forward", og, oc, n);

    float *d0 = rand_array(n, -1, 1);
    float *dc = copy_array(d0, n), *dg = copy_array(d0, n);
    gelu_backward(dc, x, dy, n, 1);
    gelu_backward_cuda(dg, x, dy, n);
    check_close("gelu_backward (accumulating)", dg, dc, n);

    swiglu_forward(oc, x, y, n);
    swiglu_forward_cuda(og, x, y, n);
    check_close("swiglu_forward", og, oc, n);

    float *e0 = rand_array(n, -1, 1);
    float *ec = copy_array(e0, n), *eg = copy_array(e0, n);
    memcpy(dc, d0, sizeof(float) * n), memcpy(dg, d0, sizeof(float) * n);
    swiglu_backward(dc, ec, dy, x, y, n, 1);
    swiglu_backward_cuda(dg, eg, dy, x, y, n);
    check_close("swiglu_backward dgate", dg, dc, n);
    check_close("swiglu_backward dup", eg, ec, n);
    memcpy(ec, e0, sizeof(float) * n), memcpy(eg, e0, sizeof(float) * n);
    swiglu_backward(NULL, ec, dy, x, y, n, 1);
    swiglu_backward_cuda(NULL, eg, dy, x, y, n);
    check_close("swiglu_backward dup only", eg, ec, n);

    residual_forward(oc, x, y, n);
    residual_forward_cuda(og, x, y, n);
    check_close("residual_forward", og, oc, n);

    memcpy(dc, d0, sizeof(float) * n), memcpy(dg, d0, sizeof(float) * n);
    memcpy(ec, e0, sizeof(float) * n), memcpy(eg, e0, sizeof(float) * n);
    residual_backward(dc, ec, dy, n);
    residual_backward_cuda(dg, eg, dy, n);
    check_close("residual_backward da", dg, dc, n);
    check_close("residual_backward db", eg, ec, n);
    memcpy(dc, d0, sizeof(float) * n), memcpy(dg, d0, sizeof(float) * n);
    residual_backward(dc, NULL, dy, n);
    residual_backward_cuda(dg, NULL, dy, n);
    check_close("residual_backward da only", dg, dc, n);

    free(x), free(y), free(dy), free(oc), free(og), free(d0), free(dc), free(dg), free(e0), free(ec), free(eg);
}

static void check_rmsnorm(void) {
    int N = 37, C = 300; /* C not a multiple of the 256 threads of a row */
    size_t nc = (size_t)N * C;
    float *x = rand_array(nc, -2, 2), *w = rand_array(C, 0.5f, 1.5f), *dy = rand_array(nc, -1, 1);
    float *oc = xmalloc(sizeof(float) * nc), *og = xmalloc(sizeof(float) * nc);
    float *rc = xmalloc(sizeof(float) * N), *rg = xmalloc(sizeof(float) * N);
    rmsnorm_forward(oc, rc, x, w, N, C, 1e-5f);
    rmsnorm_forward_cuda(og, rg, x, w, N, C, 1e-5f);
    check_close("rmsnorm_forward out", og, oc, nc);
    check_close("rmsnorm_forward rstd", rg, rc, N);

    float *dx0 = rand_array(nc, -1, 1), *dw0 = rand_array(C, -1, 1);
    float *dxc = copy_array(dx0, nc), *dxg = copy_array(dx0, nc);
    float *dwc = copy_array(dw0, C), *dwg = copy_array(dw0, C);
    rmsnorm_backward(dxc, dwc, dy, x, w, rc, N, C);
    rmsnorm_backward_cuda(dxg, dwg, dy, x, w, rc, N, C);
    check_close("rmsnorm_backward dinp", dxg, dxc, nc);
    check_close("rmsnorm_backward dw", dwg, dwc, C);
    memcpy(dwc, dw0, sizeof(float) * C), memcpy(dwg, dw0, sizeof(float) * C);
    rmsnorm_backward(NULL, dwc, dy, x, w, rc, N, C);
    rmsnorm_backward_cuda(NULL, dwg, dy, x, w, rc, N, C);
    check_close("rmsnorm_backward dw only", dwg, dwc, C);

    free(x), free(w), free(dy), free(oc), free(og), free(rc), free(rg);
    free(dx0), free(dw0), free(dxc), free(dxg), free(dwc), free(dwg);
}

int main(void) {
    if (!cuda_available()) {
        puts("skipped: no CUDA device");
        return 77;
    }
    rng_seed(&rng, 1234);

    int sizes[][3] = {{67, 45, 129}, {128, 256, 96}, {1, 33, 70}, {300, 70, 5}, {64, 64, 1000}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                check_gemm_case(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 0.0f);
                check_gemm_case(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 0.7f, 1.3f);
            }
    check_gemm_repeatable();
    check_dispatch();

    CudaStats s0, s1;
    cuda_stats(&s0);
    check_elementwise();
    check_rmsnorm();
    cuda_stats(&s1);
    /* gelu f/b, swiglu f/b/b, residual f/b/b, rmsnorm f + (dx, dw) + dw */
    unsigned long want_ops = 2 + 3 + 3 + 1 + 2 + 1;
    if (s1.op_calls - s0.op_calls != want_ops) {
        printf("FAIL ops on the device: expected %lu kernel launches, got %lu (the rest ran on the CPU)\n", want_ops,
               s1.op_calls - s0.op_calls);
        failures++;
    }
    if (s1.failures != 0) {
        printf("FAIL CUDA errors: expected 0, got %lu (see the warning above)\n", s1.failures);
        failures++;
    }
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("ok: gemm (%lu GPU products) and %lu GPU op kernels match the CPU\n", s1.gemm_calls, s1.op_calls);
    return 0;
}
#endif
