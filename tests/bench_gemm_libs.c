/* bench_gemm_libs.c — the candidates for the gemm() seam on the matrix shapes of a
 * GPT-2-124M training step: OpenBLAS (linked, Debian 0.3.21 OpenMP build), BLIS
 * (Debian libblis4-openmp 0.9.0) and oneDNN (Debian libdnnl2 2.6.3) dnnl_sgemm, and
 * oneDNN's bf16 x bf16 -> fp32 dnnl_gemm_bf16bf16f32, and a newer OpenBLAS when
 * CHERRY_BENCH_OPENBLAS names its library (`make bench` points it at PyPI's
 * scipy-openblas32, OpenBLAS 0.3.3x with scipy_-prefixed symbols, when that is
 * installed; it is measured here only, never linked).  BLIS, oneDNN and the newer
 * OpenBLAS are opened with dlopen, so a missing one is skipped with a message.  Every
 * library threads the product itself (its own OpenMP parallel region) at --threads
 * threads.
 *
 * oneDNN's matmul primitive (gemm_onednn.c: brgemm kernels, AMX for bf16 where the CPU
 * has it) is measured twice: threaded by oneDNN over the whole product (dnnl-mm,
 * dnnl-mm-bf16, inputs already in bf16), and as gemm() runs it, single-threaded tiles
 * handed to the threads (tiles-mm for fp32, tiles-amx for bf16; gemm_set_onednn_matmul),
 * beside gemm()'s other kernels on the same tiles (tiles-blas: OpenBLAS, cherry's fp32;
 * tiles-bf16: dnnl_gemm_bf16bf16f32).  gemm()'s bf16 columns read bf16 copies of
 * both inputs made once (see kernel_begin), like the dnnl-bf16 columns.
 *
 * The columns run alternately, round after round, each round's value the best of 3
 * calls after a warm-up call, and the table shows each one's median GFLOP/s and its
 * median ratio to OpenBLAS.  Run by `make bench`.  Not a test: exits 0 (64 on bad
 * flags). */
#include <cblas.h>
#include <dlfcn.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "kernels/gemm.h"

void openblas_set_num_threads(int);

typedef void (*CblasSgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                           int);
typedef int (*DnnlSgemm)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t,
                         float, float *, int64_t);
typedef int (*DnnlBf16)(char, char, int64_t, int64_t, int64_t, float, const uint16_t *, int64_t, const uint16_t *,
                        int64_t, float, float *, int64_t);

static CblasSgemm blis_sgemm, newblas_sgemm;
static DnnlSgemm dnnl_sgemm_p;
static DnnlBf16 dnnl_bf16_p;

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

#define NLIB 11
enum { L_BLAS, L_BLIS, L_DNNL, L_DNNL_BF16, L_NEWBLAS, L_MM, L_MM_BF16, L_T_BLAS, L_T_MM, L_T_BF16, L_T_AMX };
static const char *lib_name[NLIB] = {"openblas",     "blis",       "dnnl",     "dnnl-bf16",  "openblas-new", "dnnl-mm",
                                     "dnnl-mm-bf16", "tiles-blas", "tiles-mm", "tiles-bf16", "tiles-amx"};
static int have_mm;

static int lib_present(int l) {
    switch (l) {
    case L_BLIS:
        return blis_sgemm != NULL;
    case L_DNNL:
        return dnnl_sgemm_p != NULL;
    case L_DNNL_BF16:
    case L_T_BF16:
        return dnnl_bf16_p != NULL;
    case L_NEWBLAS:
        return newblas_sgemm != NULL;
    case L_MM:
    case L_MM_BF16:
    case L_T_MM:
    case L_T_AMX:
        return have_mm;
    default:
        return 1;
    }
}

static void call(int l, int ta, int tb, int M, int N, int K, const float *a, const float *b, const uint16_t *a16,
                 const uint16_t *b16, float *c) {
    int lda = ta ? M : K, ldb = tb ? K : N;
    CBLAS_TRANSPOSE cta = ta ? CblasTrans : CblasNoTrans, ctb = tb ? CblasTrans : CblasNoTrans;
    switch (l) {
    case L_BLAS:
        cblas_sgemm(CblasRowMajor, cta, ctb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        break;
    case L_BLIS:
        blis_sgemm(CblasRowMajor, cta, ctb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        break;
    case L_NEWBLAS:
        newblas_sgemm(CblasRowMajor, cta, ctb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        break;
    case L_DNNL:
        dnnl_sgemm_p(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        break;
    case L_DNNL_BF16:
        dnnl_bf16_p(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, a16, lda, b16, ldb, 0.0f, c, N);
        break;
    case L_MM:
        gemm_onednn_whole(0, ta, tb, M, N, K, a, lda, b, ldb, c, N);
        break;
    case L_MM_BF16:
        gemm_onednn_whole(1, ta, tb, M, N, K, a16, lda, b16, ldb, c, N);
        break;
    default:
        gemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
    }
}

/* gemm()'s kernel for column l, around the calls of one round.  The bf16 columns
 * declare both inputs as optimizer-updated weights (gemm_bf16_weights_updated), so
 * they are rounded to bf16 once, in the warm-up call, and the timed calls measure the
 * products alone, as the dnnl-bf16 columns do. */
static void kernel_begin(int l, const float *a, size_t na, const float *b, size_t nb) {
    int bf16 = l == L_T_BF16 || l == L_T_AMX;
    gemm_set_onednn_matmul(bf16, l == L_T_MM || l == L_T_AMX);
    if (!bf16) return;
    gemm_set_bf16(1, NULL);
    gemm_bf16_weights_updated(a, na);
    gemm_bf16_weights_updated(b, nb);
}

static void kernel_end(void) {
    gemm_set_bf16(0, NULL);             /* also drops the bf16 copies */
    gemm_set_onednn_matmul(1, have_mm); /* bf16's default; each column sets fp32's own */
    gemm_set_onednn_matmul(0, 0);
}

int main(int argc, char **argv) {
    int threads = 2, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: bench_gemm_libs [--threads N] [--rounds N]\n"
                   "OpenBLAS, BLIS, oneDNN fp32 and bf16 GEMM, oneDNN's matmul primitive, and gemm()'s tiles\n"
                   "on each kernel, on the GPT-2-124M step's shapes, alternating rounds; medians and ratios\n"
                   "to OpenBLAS.\n");
            return 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = cli_int("bench_gemm_libs", "--threads", argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = cli_int("bench_gemm_libs", "--rounds", argv[++i]);
        else
            cli_usage_error("bench_gemm_libs", "unknown argument '%s'", argv[i]);
    }
    if (threads < 1 || rounds < 1 || rounds > 50) cli_usage_error("bench_gemm_libs", "--threads >= 1, --rounds 1..50");
    void *hb = dlopen("/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    if (hb) {
        blis_sgemm = (CblasSgemm)dlsym(hb, "cblas_sgemm");
        void (*set)(long) = (void (*)(long))dlsym(hb, "bli_thread_set_num_threads");
        if (set) set(threads);
    } else
        printf("bench_gemm_libs: BLIS skipped (apt-get install libblis4-openmp): %s\n", dlerror());
    void *hd = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (hd) {
        dnnl_sgemm_p = (DnnlSgemm)dlsym(hd, "dnnl_sgemm");
        dnnl_bf16_p = (DnnlBf16)dlsym(hd, "dnnl_gemm_bf16bf16f32");
    } else
        printf("bench_gemm_libs: oneDNN skipped (apt-get install libdnnl2): %s\n", dlerror());
    have_mm = gemm_set_onednn_matmul(0, 1);
    gemm_set_onednn_matmul(0, 0);
    if (!have_mm)
        printf("bench_gemm_libs: oneDNN's matmul primitive skipped (libdnnl.so.2, and libdnnl-dev at build)\n");
    if (dnnl_bf16_p && gemm_set_bf16(1, NULL)) dnnl_bf16_p = NULL;
    gemm_set_bf16(0, NULL);
    const char *nb = getenv("CHERRY_BENCH_OPENBLAS");
    if (nb && *nb) {
        void *hn = dlopen(nb, RTLD_NOW | RTLD_LOCAL);
        if (hn) {
            /* scipy-openblas32 prefixes every symbol with scipy_; a plain build does not */
            newblas_sgemm = (CblasSgemm)dlsym(hn, "scipy_cblas_sgemm");
            void (*set)(int) = (void (*)(int))dlsym(hn, "scipy_openblas_set_num_threads");
            char *(*cfg)(void) = (char *(*)(void))dlsym(hn, "scipy_openblas_get_config");
            if (!newblas_sgemm) {
                newblas_sgemm = (CblasSgemm)dlsym(hn, "cblas_sgemm");
                set = (void (*)(int))dlsym(hn, "openblas_set_num_threads");
                cfg = (char *(*)(void))dlsym(hn, "openblas_get_config");
            }
            if (set) set(threads);
            if (newblas_sgemm && cfg) printf("bench_gemm_libs: openblas-new is %s\n", cfg());
            if (!newblas_sgemm) printf("bench_gemm_libs: %s has no cblas_sgemm; skipped\n", nb);
        } else
            printf("bench_gemm_libs: newer OpenBLAS skipped: %s\n", dlerror());
    } else
        printf("bench_gemm_libs: newer OpenBLAS skipped (pip install scipy-openblas32, or set "
               "CHERRY_BENCH_OPENBLAS=/path/libopenblas.so)\n");
    gemm_threads_set(threads); /* OpenMP and OpenBLAS; oneDNN follows OpenMP's count */
    static const struct {
        const char *what;
        int ta, tb, M, N, K;
    } S[] = {
        {"qkv fwd   512x2304x768 NT", 0, 1, 512, 2304, 768}, {"fc fwd    512x3072x768 NT", 0, 1, 512, 3072, 768},
        {"proj fwd  512x768x3072 NT", 0, 1, 512, 768, 3072}, {"fc dinp   512x768x3072 NN", 0, 0, 512, 768, 3072},
        {"fc dw     3072x768x512 TN", 1, 0, 3072, 768, 512}, {"lm fwd    512x512x768  NT", 0, 1, 512, 512, 768},
        {"lm dh     512x768x512  NN", 0, 0, 512, 768, 512},  {"lm dw     512x768x512  TN", 1, 0, 512, 768, 512},
        {"qkv fwd   256x2304x768 NT", 0, 1, 256, 2304, 768}, {"fc dinp   256x768x3072 NN", 0, 0, 256, 768, 3072},
        {"fc dw     3072x768x256 TN", 1, 0, 3072, 768, 256}, {"att S     64x256x64    NT", 0, 1, 64, 256, 64},
        {"att dV    256x64x256   TN", 1, 0, 256, 64, 256},
    };
    printf("bench_gemm_libs: %d threads, GFLOP/s medians over %d alternating rounds; (ratio to openblas)\n", threads,
           rounds);
    printf("%-28s", "shape");
    for (int l = 0; l < NLIB; l++) printf(" %15s", lib_name[l]);
    printf("\n");
    for (size_t s = 0; s < sizeof S / sizeof *S; s++) {
        int M = S[s].M, N = S[s].N, K = S[s].K;
        float *a = xaligned_alloc(sizeof(float) * M * K), *b = xaligned_alloc(sizeof(float) * K * N);
        float *c = xaligned_alloc(sizeof(float) * M * N);
        uint16_t *a16 = xaligned_alloc(2 * (size_t)M * K), *b16 = xaligned_alloc(2 * (size_t)K * N);
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)((i * 7) % 13) * 0.01f, a16[i] = bf16(a[i]);
        for (size_t i = 0; i < (size_t)K * N; i++) b[i] = (float)((i * 5) % 11) * 0.01f, b16[i] = bf16(b[i]);
        double r[NLIB][50], q[NLIB][50];
        for (int rd = 0; rd < rounds; rd++)
            for (int l = 0; l < NLIB; l++) {
                if (!lib_present(l)) continue;
                double best = 1e30;
                if (l >= L_T_BLAS) kernel_begin(l, a, (size_t)M * K, b, (size_t)K * N);
                for (int k = 0; k < 4; k++) {
                    double t0 = now_seconds();
                    call(l, S[s].ta, S[s].tb, M, N, K, a, b, a16, b16, c);
                    double dt = now_seconds() - t0;
                    if (k > 0 && dt < best) best = dt; /* call 0: warm-up */
                }
                if (l >= L_T_BLAS) kernel_end();
                r[l][rd] = 2.0 * M * N * (double)K / best / 1e9;
                q[l][rd] = r[l][rd] / r[0][rd];
            }
        printf("%-28s", S[s].what);
        for (int l = 0; l < NLIB; l++) {
            if (!lib_present(l)) {
                printf(" %15s", "-");
                continue;
            }
            qsort(r[l], rounds, sizeof(double), cmp_double);
            qsort(q[l], rounds, sizeof(double), cmp_double);
            printf(" %6.1f (%5.2fx)", r[l][rounds / 2], q[l][rounds / 2]);
        }
        printf("\n");
        free(a), free(b), free(c), free(a16), free(b16);
    }
    return 0;
}
