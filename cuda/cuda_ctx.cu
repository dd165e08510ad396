/* cuda_ctx.cu — device discovery, the device lock, workspaces and failure handling
 * shared by gemm_cuda.cu and ops_cuda.cu (see cuda_internal.h).
 *
 * Why one lock: gemm() may be called from several host threads (attention runs gemm
 * inside OpenMP regions; gemm.c only dispatches outside them, but gemm_cuda is public),
 * and the workspace and cuBLAS handle are single objects.  Serialising on one device
 * is also what the GPU would do anyway on one stream.
 * Not for: multi-GPU (device 0 of CUDA_VISIBLE_DEVICES is used). */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <pthread.h>

#include "cuda_internal.h"
#include "gemm_cuda.h"

static pthread_once_t dev_once = PTHREAD_ONCE_INIT;
static int dev_present;  /* written once under dev_once */
static int dev_disabled; /* set (atomically) by cuda_fail */
static pthread_mutex_t dev_mu = PTHREAD_MUTEX_INITIALIZER;

static void *ws_ptr; /* device workspace */
static size_t ws_bytes;
static void *stage_ptr; /* host staging buffer */
static size_t stage_bytes;
static cublasHandle_t blas_handle;
static int blas_ready;

static unsigned long n_gemm, n_op, n_fail; /* updated under dev_mu or atomically */

/* cudaGetDeviceCount returns an error (cudaErrorNoDevice, cudaErrorInsufficientDriver,
 * ...) rather than aborting when there is no GPU or no driver: CUDA Runtime API,
 * "Device Management".  The error state it leaves is cleared with cudaGetLastError so
 * it cannot surface later as a sticky-looking error of an unrelated call. */
static void dev_probe(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        (void)cudaGetLastError();
        dev_present = 0;
        return;
    }
    e = cudaSetDevice(0);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        dev_present = 0;
        return;
    }
    /* Create the context now (cudaFree(0) is the documented idiom) so its cost is paid
     * once here and not inside the first timed product. */
    e = cudaFree(0);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        dev_present = 0;
        return;
    }
    dev_present = 1;
}

extern "C" int cuda_available(void) {
    pthread_once(&dev_once, dev_probe);
    return dev_present;
}

int cuda_usable(void) {
    return cuda_available() && !__atomic_load_n(&dev_disabled, __ATOMIC_ACQUIRE);
}

void cuda_lock(void) {
    pthread_mutex_lock(&dev_mu);
}
void cuda_unlock(void) {
    pthread_mutex_unlock(&dev_mu);
}

int cuda_fail(const char *what, const char *detail) {
    __atomic_add_fetch(&n_fail, 1, __ATOMIC_RELAXED);
    if (!__atomic_exchange_n(&dev_disabled, 1, __ATOMIC_ACQ_REL))
        fprintf(stderr, "cherry: CUDA: %s failed (%s); using the CPU from now on\n", what, detail ? detail : "?");
    (void)cudaGetLastError(); /* clear a non-sticky error so later probes start clean */
    return -1;
}

void *cuda_ws(size_t bytes) {
    if (bytes <= ws_bytes) return ws_ptr;
    size_t want = ws_bytes ? ws_bytes : (size_t)1 << 20;
    while (want < bytes) want *= 2;
    if (ws_ptr) cudaFree(ws_ptr);
    ws_ptr = NULL;
    ws_bytes = 0;
    cudaError_t e = cudaMalloc(&ws_ptr, want);
    if (e != cudaSuccess) {
        ws_ptr = NULL;
        cuda_fail("cudaMalloc (workspace)", cudaGetErrorString(e));
        return NULL;
    }
    ws_bytes = want;
    return ws_ptr;
}

void *cuda_stage(size_t bytes) {
    if (bytes <= stage_bytes) return stage_ptr;
    void *p = realloc(stage_ptr, bytes);
    if (!p) {
        cuda_fail("host staging allocation", strerror(ENOMEM));
        return NULL;
    }
    stage_ptr = p;
    stage_bytes = bytes;
    return stage_ptr;
}

cublasHandle_t cuda_blas(void) {
    if (blas_ready) return blas_handle;
    cublasStatus_t s = cublasCreate(&blas_handle);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cuda_fail("cublasCreate", cublasGetStatusString(s));
        return NULL;
    }
    /* CUBLAS_DEFAULT_MATH keeps cublasSgemm in IEEE FP32; TF32 tensor-core math
     * (CUBLAS_TF32_TENSOR_OP_MATH) would cut the mantissa to 10 bits and break parity
     * with the CPU path (cuBLAS docs, cublasSetMathMode). */
    s = cublasSetMathMode(blas_handle, CUBLAS_DEFAULT_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(blas_handle);
        cuda_fail("cublasSetMathMode", cublasGetStatusString(s));
        return NULL;
    }
    blas_ready = 1;
    return blas_handle;
}

void cuda_count_gemm(void) {
    __atomic_add_fetch(&n_gemm, 1, __ATOMIC_RELAXED);
}
void cuda_count_op(void) {
    __atomic_add_fetch(&n_op, 1, __ATOMIC_RELAXED);
}

extern "C" void cuda_stats(CudaStats *out) {
    out->gemm_calls = __atomic_load_n(&n_gemm, __ATOMIC_RELAXED);
    out->op_calls = __atomic_load_n(&n_op, __ATOMIC_RELAXED);
    out->failures = __atomic_load_n(&n_fail, __ATOMIC_RELAXED);
}
