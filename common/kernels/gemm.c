/* gemm.c — the only file that calls BLAS.  See gemm.h. */
#include "gemm.h"

#include <cblas.h>
#include <dlfcn.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "base/util.h"
#include "gemm_internal.h"
#ifdef CHERRY_CUDA
#include "gemm_cuda.h" /* cuda/, on the include path only with make CUDA=1 */
#endif

/* OpenBLAS's OpenMP build exports this; it sets the BLAS-internal thread count. */
void openblas_set_num_threads(int);

static int n_threads = 0;
static int tiling = 1; /* gemm_set_tiling */

/* The threading model.  BLAS and our own loops share one OpenMP pool (we link
 * OpenBLAS's OpenMP build, so there is no second pool to fight).  What remains is
 * how idle pool threads wait: libgomp's default spins for a while before sleeping,
 * and a spinning thread steals the core from whatever else runs, so on a busy
 * 2-core machine a tiny training run took 24.6 s with OMP_WAIT_POLICY=active
 * against 0.96 s passive (60 SFT steps of the bundled task, load average ~7).
 * Passive waiting is therefore the default.  libgomp reads the policy only once,
 * in its own constructor, before any code of ours runs, so the only way to set a
 * default is to set the variable and re-execute the program (once: the variable is
 * then present).  A user's own OMP_WAIT_POLICY is always respected; the
 * re-execution is skipped if /proc/self/exe cannot be executed.  glibc passes
 * (argc, argv, envp) to constructors. */
/* OpenBLAS's kernel choice.  Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know
 * every newer x86 model: on one of our machines (Intel Xeon, family 6 model 207,
 * AVX-512 and AVX512-BF16) it fell back to its SSE3 "Prescott" kernels, 7-15
 * GFLOP/s per core against 100-125 with the SkylakeX kernels on the same core
 * (tests/bench_gemm), so every product ran ~8x slower; another machine of the same
 * model got Cooperlake.  OpenBLAS reads OPENBLAS_CORETYPE in its own constructor,
 * before ours, so when it chose a generic core on a CPU that the compiler's runtime
 * check (which includes the OS's XSAVE support) says has AVX-512 or AVX2, we set the
 * variable to the matching kernel family and re-execute, as for the wait policy.
 * A user's OPENBLAS_CORETYPE is always respected.  Returns 1 if it set it. */

static int blas_core_fix(void) {
    if (getenv("OPENBLAS_CORETYPE")) return 0;
    const char *core = openblas_get_corename();
    if (!core) return 0;
    const char *want = gemm_blas_core_for(core,
                                          __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                              __builtin_cpu_supports("avx512vl"),
                                          __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    if (!want) return 0;
    return setenv("OPENBLAS_CORETYPE", want, 1) == 0;
}

const char *gemm_blas_core_for(const char *core, int has_avx512, int has_avx2) {
    /* the kernel families older than Haswell that DYNAMIC_ARCH falls back to */
    static const char *const generic[] = {"Prescott", "Core2",   "Penryn",     "Dunnington", "Nehalem",
                                          "Atom",     "Katmai",  "Coppermine", "Northwood",  "Sandybridge",
                                          "Banias",   "Unknown", NULL};
    int is_generic = 0;
    for (int i = 0; generic[i]; i++)
        if (strcasecmp(core, generic[i]) == 0) is_generic = 1;
    if (!is_generic) return NULL;
    if (has_avx512) return "SkylakeX";
    if (has_avx2) return "Haswell";
    return NULL;
}

__attribute__((constructor)) static void threads_default_passive_wait(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (!argv || !argv[0]) return;
    int again = blas_core_fix();
    if (!getenv("OMP_WAIT_POLICY")) again |= setenv("OMP_WAIT_POLICY", "passive", 1) == 0;
    if (again) execv("/proc/self/exe", argv);
    /* exec failed: carry on with libgomp's default policy and OpenBLAS's own kernels */
}

/* ---- bf16 mixed precision (gemm_set_bf16) ---------------------------------------
 * As torch.autocast(device_type="cpu", dtype=torch.bfloat16) does for matmul: both
 * inputs rounded to bfloat16 (round to nearest even, torch's .to(torch.bfloat16)),
 * products summed in fp32, C in fp32.  The bf16 x bf16 -> fp32 kernels are oneDNN's,
 * opened at run time, only when bf16 is asked for, so fp32 users need nothing new:
 *  - its matmul primitive (gemm_onednn.c: brgemm kernels, "brg:avx512_core_amx_bf16"
 *    on a CPU with AMX, the path torch's autocast takes), when cherry was built with
 *    oneDNN's headers;
 *  - else dnnl_gemm_bf16bf16f32, which Debian's libdnnl2 2.6.3 exports (the same
 *    signature as the declared dnnl_sgemm, row-major, with bfloat16 A and B) without
 *    declaring it in dnnl.h; also for a shape the primitive does not take.
 * Both run on AMX where the CPU has it: 2.6.3's gemm driver picks its own AMX kernels
 * for bf16 (gemm_info.cpp: avx512_core_bf16_amx_bf16, 32x32x32 blocks), so bf16 was
 * never limited to AVX512-BF16 vdpbf16ps here.  The primitive is the faster of the two:
 * single-threaded tiles 0.8-2.1x the gemm entry's on the GPT-2-124M step's shapes
 * (mostly 1.1-1.3x; its column-stripe NN tiles pay for dense copies), and the bf16 step
 * takes 0.87x (B=4,T=64) and 0.80x (B=2,T=256) of the CPU time, 2 threads, load
 * average 6.5-8.4, 2026-12-06 (tests/bench/README.md, "AMX").
 * Determinism: the same tiles as fp32 at the top level, one call over the whole product
 * inside a parallel region, each one single-threaded oneDNN call, so C is
 * bit-identical at any thread count (test_ops_grad). */
typedef int (*DnnlGemmBf16)(char, char, int64_t, int64_t, int64_t, float, const uint16_t *, int64_t, const uint16_t *,
                            int64_t, float, float *, int64_t);
static DnnlGemmBf16 dnnl_bf16;
static int use_bf16;
static int use_matmul = 1;      /* gemm_set_onednn_matmul(1, on): bf16 products */
static int use_matmul_f32 = -1; /* gemm_set_onednn_matmul(0, on): fp32 products; -1: f32_matmul_decide */

static void bf16_holds_clear(void);
static pthread_once_t f32_once = PTHREAD_ONCE_INIT;
static void f32_matmul_decide(void);

int gemm_set_bf16(int on, Error *e) {
    /* oneDNN 2.6 has bf16 kernels only from avx512_core (AVX-512 F, BW, VL, DQ) on;
     * below it both entry points fail (the gemm one returns dnnl_unimplemented and
     * leaves C as it was), so say so here rather than compute nothing */
    if (on && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
        return err_set(e, EX_UNAVAILABLE,
                       "bf16 matrix products need a CPU with AVX-512 (F, BW, VL, DQ): oneDNN has no bf16 kernels "
                       "below that; use fp32");
    if (on && !dnnl_bf16) {
        void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
        void *f = h ? dlsym(h, "dnnl_gemm_bf16bf16f32") : NULL;
        if (!f)
            return err_set(e, EX_UNAVAILABLE,
                           "bf16 matrix products need oneDNN's libdnnl.so.2 (apt-get install libdnnl2): %s", dlerror());
        dnnl_bf16 = (DnnlGemmBf16)f;
    }
    if (!on) { /* no updates are seen while off */
        gemm_bf16_weights_forget_all();
        bf16_holds_clear();
    }
    use_bf16 = on;
    return 0;
}

int gemm_set_onednn_matmul(int bf16, int on) {
    if (on && gemm_onednn_open(NULL, 0)) on = 0;
    if (bf16)
        use_matmul = on;
    else
        __atomic_store_n(&use_matmul_f32, on, __ATOMIC_RELEASE);
    return on;
}

int gemm_onednn_matmul_on(int bf16) {
    if (!bf16) pthread_once(&f32_once, f32_matmul_decide);
    return bf16 ? use_matmul : __atomic_load_n(&use_matmul_f32, __ATOMIC_ACQUIRE);
}

int gemm_bf16_enabled(void) {
    return use_bf16;
}

/* Measured on the Xeon with AMX (tests/bench/README.md, "Lazy gradient clearing"):
 * oneDNN 2.6's AMX brgemm took 4.0-4.2 ms for a 3072 x 768 x 256 weight-gradient
 * product writing C fresh (beta 0) against 2.9-3.0 ms adding into a zeroed C, and a
 * GPT-2 backward 0.51-0.56 s against 0.40-0.45 s.  OpenBLAS applies beta 0 as a pass
 * of its own over C, so nothing is saved there (a GPT-2 fp32 step 1.149 against
 * 1.122 s, best of 6 alternating runs).  Only the bf16 brgemm without AMX
 * (brg:avx512_core_bf16, the Zen 4) was measured to write a fresh C faster, so that
 * is asked of the implementation oneDNN picks for such a product; any other (a
 * gemm:jit fallback, another ISA) keeps the measured default.  CHERRY_GRADS=discard
 * or clear overrides the choice (tests run both ways). */
/* The kernels oneDNN plans for a bf16 weight-gradient product: "brg:avx512_core_bf16"
 * (AVX512-BF16), an "amx" one, another family, or NULL without the primitive.  Asked by
 * the defaults that depend on the CPU's bf16 kernels (gemm_overwrite_slower,
 * f32_matmul_decide); the name is valid until many other shapes have been used. */
static const char *bf16_kernels(void) {
    return gemm_onednn_impl(1, 1, 0, 768, 768, 256);
}

int gemm_overwrite_slower(void) {
    static int known = -1;
    const char *force = getenv("CHERRY_GRADS");
    if (force && !strcmp(force, "discard")) return 0;
    if (force && !strcmp(force, "clear")) return 1;
    if (!use_bf16 || !use_matmul) return 1;
    if (known < 0) {
        const char *impl = bf16_kernels();
        known = !(impl && strstr(impl, "brg") && !strstr(impl, "amx"));
    }
    return known;
}

static inline uint16_t bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays a (quiet) NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* dst[rows, cols] (packed) = bf16(src[rows, cols] with leading dimension ld). */
static void bf16_rows(uint16_t *dst, const float *src, int r0, int r1, int cols, int ld) {
    for (int r = r0; r < r1; r++) {
        const float *x = src + (size_t)r * ld;
        uint16_t *y = dst + (size_t)r * cols;
        int c = 0;
#ifdef __AVX512BF16__
        for (; c + 16 <= cols; c += 16) {
            __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + c)); /* round to nearest even, like bf16_round */
            _mm256_storeu_si256((__m256i *)(y + c), (__m256i)v);
        }
#endif
        for (; c < cols; c++) y[c] = bf16_round(x[c]);
    }
}

static void bf16_matrix(uint16_t *dst, const float *src, int rows, int cols, int ld, int par) {
    if (!par) {
        bf16_rows(dst, src, 0, rows, cols, ld);
        return;
    }
#pragma omp parallel for schedule(guided)
    for (int r = 0; r < rows; r++) bf16_rows(dst, src, r, r + 1, cols, ld);
}

/* slot 0, 1: a whole operand converted by the calling thread; slot 2: each thread's
 * slice of a split operand (gemm_bf16_split) */
static _Thread_local uint16_t *bf16_buf[3];
static _Thread_local size_t bf16_cap[3];

static uint16_t *bf16_scratch(int slot, size_t n) {
    if (n > bf16_cap[slot]) {
        free(bf16_buf[slot]);
        bf16_cap[slot] = n + n / 4;
        bf16_buf[slot] = xaligned_alloc(bf16_cap[slot] * sizeof(uint16_t));
    }
    return bf16_buf[slot];
}

/* bf16 shadows of the trained weights (issue 18).  Converting both inputs on every
 * product made the bf16 step no faster than fp32: a weight matrix is read by its
 * forward and its input-gradient product, and the LM head's vocabulary matrix by
 * every slice.  adamw_step registers its parameter block here after each update
 * (gemm_bf16_weights_updated); the first top-level product that reads the block
 * afterwards converts the whole block once into a bf16 copy with the same layout,
 * and every product whose A or B lies inside the block reads the copy (same
 * offset, same leading dimension).  Same rounding as bf16_rows, so C is unchanged
 * bit for bit.  Only blocks the optimizer owns are shadowed, from before its first
 * update on when declared (gemm_bf16_weights_declare: trainer_init, dpo's reference
 * pass), and a shadow is dropped when an optimizer is freed
 * (gemm_bf16_weights_forget_all); weights written by anything else meanwhile (a
 * checkpoint loaded, a LoRA merge) mark it stale (gemm_bf16_weights_touched), so they
 * are never read stale. */
#define BF16_SHADOWS 4
typedef struct {
    const float *base;
    size_t n, cap; /* cap: held copies only (their buffers are kept between holds) */
    uint16_t *bf;
    int fresh; /* bf == bf16(base) */
    int whole; /* converted whole at least once (gemm_bf16_weights_begin) */
} Bf16Copy;
static Bf16Copy shadow[BF16_SHADOWS];

/* Registers [p, p+n) in a free slot unless a shadow has it already; stale marks that
 * one for reconversion.  Its copy is converted whole by the next top-level product. */
static void shadow_register(const float *p, size_t n, int stale) {
    if (!use_bf16 || !p || !n) return;
    int free_slot = -1;
    for (int i = 0; i < BF16_SHADOWS; i++) {
        if (shadow[i].base == p && shadow[i].n == n) {
            if (stale) shadow[i].fresh = 0;
            return;
        }
        if (!shadow[i].base && free_slot < 0) free_slot = i;
    }
    if (free_slot < 0) return; /* more blocks than slots: those convert per product */
    shadow[free_slot].base = p;
    shadow[free_slot].n = n;
    shadow[free_slot].bf = xaligned_alloc(n * sizeof(uint16_t));
    shadow[free_slot].fresh = 0;
    shadow[free_slot].whole = 0;
}

void gemm_bf16_weights_updated(const float *p, size_t n) {
    shadow_register(p, n, 1);
}

void gemm_bf16_weights_declare(const float *p, size_t n) {
    shadow_register(p, n, 0);
}

void gemm_bf16_weights_touched(const float *p, size_t n) {
    for (int i = 0; i < BF16_SHADOWS; i++)
        if (shadow[i].base && p < shadow[i].base + shadow[i].n && shadow[i].base < p + n) shadow[i].fresh = 0;
}

void gemm_bf16_weights_forget_all(void) {
    for (int i = 0; i < BF16_SHADOWS; i++) {
        free(shadow[i].bf);
        shadow[i].base = NULL, shadow[i].bf = NULL, shadow[i].n = 0, shadow[i].fresh = 0, shadow[i].whole = 0;
    }
}

uint16_t *gemm_bf16_weights_begin(const float *p, size_t n) {
    if (!use_bf16 || !p || !n) return NULL;
    for (int i = 0; i < BF16_SHADOWS; i++)
        if (shadow[i].base == p && shadow[i].n == n && shadow[i].whole) return shadow[i].bf;
    return NULL;
}

void gemm_bf16_weights_written(const float *p, size_t n) {
    for (int i = 0; i < BF16_SHADOWS; i++)
        if (shadow[i].base == p && shadow[i].n == n) shadow[i].fresh = 1;
}

void gemm_bf16_convert(uint16_t *dst, const float *src, size_t n) {
    for (size_t c0 = 0; c0 < n; c0 += 1 << 20) {
        size_t cn = n - c0 < (1 << 20) ? n - c0 : (1 << 20);
        bf16_rows(dst + c0, src + c0, 0, 1, (int)cn, (int)cn);
    }
}

/* Activations held by gemm_bf16_hold: the same lookup as the shadows, their buffers
 * kept for the next hold. */
#define BF16_HOLDS 4
static Bf16Copy held[BF16_HOLDS];

void gemm_bf16_hold(const float *p, size_t n) {
    if (!use_bf16 || !p || !n || omp_get_level() > 0) return;
    for (int i = 0; i < BF16_HOLDS; i++)
        if (!held[i].base) {
            if (n > held[i].cap) {
                free(held[i].bf);
                held[i].bf = xaligned_alloc(n * sizeof(uint16_t));
                held[i].cap = n;
            }
            held[i].base = p, held[i].n = n, held[i].fresh = 0;
            return;
        }
}

static void bf16_holds_clear(void) {
    for (int i = 0; i < BF16_HOLDS; i++) {
        free(held[i].bf);
        held[i].base = NULL, held[i].bf = NULL, held[i].n = held[i].cap = 0, held[i].fresh = 0;
    }
}

void gemm_bf16_release(const float *p) {
    if (omp_get_level() > 0) return;
    for (int i = 0; i < BF16_HOLDS; i++)
        if (held[i].base == p) {
            held[i].base = NULL, held[i].n = 0, held[i].fresh = 0;
            return;
        }
}

/* Converts [b, b+n) into bf with the threads of a new region. */
static void bf16_block(uint16_t *bf, const float *b, size_t n) {
    size_t chunk = 1 << 16, nc = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t c = 0; c < nc; c++) {
        size_t c0 = c * chunk, cn = n - c0 < chunk ? n - c0 : chunk;
        bf16_rows(bf + c0, b + c0, 0, 1, (int)cn, (int)cn);
    }
}

/* Where X (rows x cols, leading dimension ld) lies in the block [b, b+n): 1 with its
 * offset when wholly inside, 0 when it starts outside, -1 when it runs past the end. */
static int block_offset(const float *b, size_t n, const float *X, int rows, int cols, int ld, size_t *off) {
    if (!b || X < b || X >= b + n) return 0;
    *off = (size_t)(X - b);
    return *off + (size_t)(rows - 1) * ld + cols <= n ? 1 : -1;
}

/* The copy of X (rows x cols, leading dimension ld) in one of the n blocks of set, or
 * NULL; *found when X starts inside one of them.  A stale copy is refreshed only at
 * the top level (outside parallel regions, where no other thread can read it); inside
 * a region a stale block is converted per product as before. */
static const uint16_t *copy_lookup(Bf16Copy *set, int n, const float *X, int rows, int cols, int ld, int top,
                                   int *found) {
    *found = 0;
    for (int i = 0; i < n; i++) {
        size_t off;
        int in = block_offset(set[i].base, set[i].n, X, rows, cols, ld, &off);
        if (in == 0) continue;
        *found = 1;
        if (in < 0) return NULL;
        if (!set[i].fresh) {
            if (!top) return NULL;
            bf16_block(set[i].bf, set[i].base, set[i].n);
            set[i].fresh = 1;
            set[i].whole = 1;
        }
        return set[i].bf + off;
    }
    return NULL;
}

/* The bf16 copy of X: a weight shadow's, else a held activation's, else NULL. */
static const uint16_t *bf16_shadow(const float *X, int rows, int cols, int ld, int top) {
    int found;
    const uint16_t *c = copy_lookup(shadow, BF16_SHADOWS, X, rows, cols, ld, top, &found);
    return found ? c : copy_lookup(held, BF16_HOLDS, X, rows, cols, ld, top, &found);
}

/* How a product is cut (gemm_tiles): nt stripes of C across N (split_n) or across M,
 * tile t spanning [d0, d0 + dn) of that dimension (tile_span). */
typedef struct {
    int nt, split_n;
    int D;           /* N or M: the dimension cut */
    int unit;        /* widths are whole units of this many columns or rows */
    int base, extra; /* every tile `base` units wide, the first `extra` one unit wider */
} Tiles;

static void gemm_tiles(int M, int N, int K, int transA, Tiles *tl);

static void tile_span(const Tiles *tl, int t, int *d0, int *dn) {
    int u0 = t * tl->base + (t < tl->extra ? t : tl->extra), w = tl->base + (t < tl->extra);
    int end = (u0 + w) * tl->unit;
    *d0 = u0 * tl->unit;
    *dn = (end < tl->D ? end : tl->D) - *d0;
}

/* One single-threaded product of the tiled paths: C[M,N] from op(A), op(B) whose
 * elements are `esz` bytes (float or bf16), as gemm_tiled hands them out. */
typedef void (*TileFn)(int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                       int ldb, float beta, float *C, int ldc);

/* C = alpha op(A) op(B) + beta C cut (gemm_tiles, or gemm()'s two stripes for
 * OpenBLAS) into stripes of C that the threads
 * take one at a time (dynamic), each one `tile` call.  The stripes depend on (M, N, K)
 * only, so C is bit-identical at any thread count.  Runs inside a region of its own
 * even for one stripe, so no kernel threads (or splits K) by itself. */
static void gemm_cut(const Tiles *cut, TileFn tile, size_t esz, int transA, int transB, int M, int N, int K,
                     float alpha, const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    Tiles tl = *cut;
    int split_n = tl.split_n;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < tl.nt; t++) {
        int d0, dn;
        tile_span(&tl, t, &d0, &dn);
        if (split_n) /* columns d0.. of C: rows d0.. of B^T, or columns d0.. of B */
            tile(transA, transB, M, dn, K, alpha, A, lda,
                 (const char *)B + esz * (transB ? (size_t)d0 * ldb : (size_t)d0), ldb, beta, C + d0, ldc);
        else /* rows d0.. of C: columns d0.. of A^T, or rows d0.. of A */
            tile(transA, transB, dn, N, K, alpha, (const char *)A + esz * (transA ? (size_t)d0 : (size_t)d0 * lda), lda,
                 B, ldb, beta, C + (size_t)d0 * ldc, ldc);
    }
}

static void gemm_tiled(TileFn tile, size_t esz, int transA, int transB, int M, int N, int K, float alpha, const void *A,
                       int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    Tiles tl;
    gemm_tiles(M, N, K, transA, &tl);
    gemm_cut(&tl, tile, esz, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* One single-threaded bf16 tile: the matmul primitive, or the gemm entry point. */
static void bf16_tile(int transA, int transB, int M, int N, int K, float alpha, const void *a, int lda, const void *b,
                      int ldb, float beta, float *C, int ldc) {
    if (use_matmul && gemm_onednn_matmul(1, 1, transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, C, ldc) == 0)
        return;
    char ta = transA ? 'T' : 'N', tb = transB ? 'T' : 'N';
    int st = dnnl_bf16(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, C, ldc);
    if (st != 0) die_internal("oneDNN's bf16 gemm failed (status %d) on %c%c M=%d N=%d K=%d", st, ta, tb, M, N, K);
}

/* An operand read whole (the one gemm_bf16_split does not cut, or both inside a parallel
 * region): its bf16 copy, else converted whole into this thread's scratch slot (then
 * dense: *ld_out = cols), by the threads of a new region when top. */
static const uint16_t *whole_operand(const float *X, int rows, int cols, int ld, int slot, int top, int *ld_out) {
    const uint16_t *c = bf16_shadow(X, rows, cols, ld, top);
    *ld_out = ld;
    if (c) return c;
    uint16_t *s = bf16_scratch(slot, (size_t)rows * cols);
    bf16_matrix(s, X, rows, cols, ld, top);
    *ld_out = cols;
    return s;
}

/* One stripe (rows x cols at offset off) of the operand gemm_bf16_split cuts: from its
 * bf16 copy when it has one, else converted into this thread's stripe buffer. */
static const uint16_t *stripe_operand(const uint16_t *copy, const float *X, size_t off, int rows, int cols, int ld,
                                      int *ld_out) {
    *ld_out = ld;
    if (copy) return copy + off;
    uint16_t *s = bf16_scratch(2, (size_t)rows * cols);
    bf16_rows(s, X + off, 0, rows, cols, ld);
    *ld_out = cols;
    return s;
}

/* The top-level bf16 product cut into gemm_tiles' stripes, as gemm_tiled does, with the
 * operand that is cut (op(A) for row stripes, op(B) for column stripes) converted by
 * each thread for its own stripe, straight into a dense buffer: one pass from fp32
 * instead of a conversion of the whole operand and then a copy of each stripe (the
 * brgemm kernels take dense operands only, gemm_onednn.c), which were ~7% of a bf16
 * DPO step (issue 18).  The operand that is not cut is converted once, whole (or is a
 * shadow).  A stripe of a shadowed operand is read from the shadow.  The tiles are
 * gemm_tiles', so C is bit-identical at any thread count, and to gemm_tiled's. */
static void gemm_bf16_split(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc) {
    Tiles tl;
    gemm_tiles(M, N, K, transA, &tl);
    int split_n = tl.split_n;
    int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
    const uint16_t *a, *b;
    int a_ld, b_ld;
    if (split_n) { /* A whole, B in column stripes */
        a = whole_operand(A, ar, ac, lda, 0, 1, &a_ld);
        b = bf16_shadow(B, br, bc, ldb, 1);
    } else { /* B whole, A in row stripes */
        b = whole_operand(B, br, bc, ldb, 1, 1, &b_ld);
        a = bf16_shadow(A, ar, ac, lda, 1);
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < tl.nt; t++) {
        int d0, dn, s_ld;
        tile_span(&tl, t, &d0, &dn);
        if (split_n) { /* columns d0.. of C: rows d0.. of B^T ([dn, K]) or columns d0.. of B ([K, dn]) */
            const uint16_t *bs = stripe_operand(b, B, transB ? (size_t)d0 * ldb : (size_t)d0, transB ? dn : K,
                                                transB ? K : dn, ldb, &s_ld);
            bf16_tile(transA, transB, M, dn, K, alpha, a, a_ld, bs, s_ld, beta, C + d0, ldc);
        } else { /* rows d0.. of C: columns d0.. of A^T ([K, dn]) or rows d0.. of A ([dn, K]) */
            const uint16_t *as = stripe_operand(a, A, transA ? (size_t)d0 : (size_t)d0 * lda, transA ? K : dn,
                                                transA ? dn : K, lda, &s_ld);
            bf16_tile(transA, transB, dn, N, K, alpha, as, s_ld, b, b_ld, beta, C + (size_t)d0 * ldc, ldc);
        }
    }
}

static void gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    /* even one tile runs inside a region: the primitive is planned for one thread
     * anyway, and the gemm entry point would otherwise split K by itself */
    if (omp_get_level() == 0) {
        gemm_bf16_split(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Inside a caller's parallel region (attention's per-head products, the LM head's
     * lanes; omp_get_level, so also in a one-thread team) the product is one task
     * already: one call over the whole of it, which needs no dense copies when its
     * operands are dense (gemm_onednn.c).  Decided by the call site, not the thread
     * count, so the bits are the same at any thread count. */
    int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N, a_ld, b_ld;
    const uint16_t *a = whole_operand(A, ar, ac, lda, 0, 0, &a_ld), *b = whole_operand(B, br, bc, ldb, 1, 0, &b_ld);
    bf16_tile(transA, transB, M, N, K, alpha, a, a_ld, b, b_ld, beta, C, ldc);
}

/* One product through OpenBLAS, threaded by OpenBLAS itself when called outside an
 * active parallel region by a thread whose OpenMP thread count is above one
 * (num_cpu_avail in OpenBLAS 0.3.21's common_thread.h: omp_get_max_threads and
 * omp_in_parallel).  gemm() calls it that way only with tiling off or for products
 * OpenBLAS runs on one thread anyway.  For those: OpenBLAS's single- and
 * multi-threaded level-3 drivers (driver/level3/level3.c vs level3_thread.c) split
 * the last K range in (GEMM_Q, 2 GEMM_Q) differently unless it is a multiple of 32,
 * so the sums were ordered differently at 1 and 2 threads for K > GEMM_Q (320 on a
 * Zen 4).  Splitting K into a multiple of 32 and a tail < 32 makes both drivers block
 * K identically (measured there with the kernels OpenBLAS chose: every K up to 1700
 * bit-identical).  That is not enough with every kernel family (gemm() below), so
 * gemm() no longer relies on it.  The tail is a rank-<32 update of C. */
static void gemm_blas(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    int k_tail = K > 32 ? K % 32 : 0, k_head = K - k_tail;
    CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, k_head, alpha, A, lda, B, ldb, beta, C, ldc);
    if (k_tail) {
        const float *A2 = transA ? A + (size_t)k_head * lda : A + k_head;
        const float *B2 = transB ? B + k_head : B + (size_t)k_head * ldb;
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, k_tail, alpha, A2, lda, B2, ldb, 1.0f, C, ldc);
    }
}

static void blas_tile(int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda, const void *B,
                      int ldb, float beta, float *C, int ldc) {
    gemm_blas(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Straggler-proof threading.  OpenBLAS splits a product into one equal part per
 * thread; when another process shares one of the cores, the thread on that core
 * gets half of it and the other thread waits at the end of every product, so the
 * step runs at the speed of the slowest core (issue 18: cherry fell from 1.5x
 * PyTorch on a quiet machine to 0.7x while other jobs loaded it).  Instead, a large product is cut
 * into GEMM_TILES_MAX (8) or fewer tiles of C that the threads take one at a time, so
 * a thread on a busy core simply takes fewer tiles.  The cut goes across the larger
 * of M and N: every tile then repacks only the smaller operand (op(A) when the
 * tiles are column stripes, op(B) when they are row stripes).
 * The tiles depend only on (M, N, K), never on the thread count, and each runs
 * single-threaded, so C is bit-identical at any thread count (test_ops_grad). */
#define GEMM_TILES_MAX 8
#define GEMM_TILE_FLOPS 8e6 /* below ~8 MFLOP a tile costs more in overhead than it balances */
#define GEMM_TILE_ALIGN 16  /* column widths in whole 64-byte lines of floats */
/* OpenBLAS 0.3.21 runs a product of M N K <= 65536 x GEMM_MULTITHREAD_THRESHOLD (4 by
 * default) on one thread (interface/gemm.c); this is safe for any threshold >= 1 */
#define GEMM_BLAS_SERIAL_MNK 65536.0
/* The widths differ by at most one unit (but for the last tile, cut at D), the wider
 * tiles first: an uneven cut makes
 * the thread that draws the wide tiles the last to finish.  The cut was
 * ceil(D / n) rounded up to the unit, the rest left to the last tile: SmolLM2's 576
 * columns went 7 x 80 + 16, so of two threads one took 320 columns and the other 256
 * (the makespan 1.11x an even cut), and a 772-row product 6 x 112 + 100 (436 against
 * 336 rows; tests/bench/README.md, "Eleventh session").  Now 576 is 4 x 80 + 4 x 64
 * and 772 rows 4 x 97 + 4 x 96.  Rows are cut at any row unless op(A) is A^T (then
 * they are A's columns: whole lines of floats too). */
/* n tiles of tl->D in whole units of tl->unit (one tile: all of D). */
static void tiles_split(Tiles *tl, int n) {
    int units = (tl->D + tl->unit - 1) / tl->unit;
    tl->nt = n, tl->base = units / n, tl->extra = units % n;
}

static void gemm_tiles(int M, int N, int K, int transA, Tiles *tl) {
    double flops = 2.0 * M * N * (double)K;
    /* a square C is cut into rows: their C is dense, where column stripes go through
     * a copy of C in the bf16 kernels (gemm_onednn.c); a square weight gradient
     * (dout^T x, 576 x 576 x 386 and 768 x 768 x 256) took 0.87-0.88x the time */
    int D = N > M ? N : M;
    tl->split_n = N > M;
    tl->D = D;
    tl->unit = tl->split_n || transA ? GEMM_TILE_ALIGN : 1;
    int n = (int)(flops / GEMM_TILE_FLOPS);
    if (n > GEMM_TILES_MAX) n = GEMM_TILES_MAX;
    if (n > D / GEMM_TILE_ALIGN) n = D / GEMM_TILE_ALIGN;
    tiles_split(tl, n < 2 ? 1 : n);
}

/* fp32 through oneDNN's matmul primitive (gemm_set_onednn_matmul(0, 1)): as gemm_bf16,
 * tiles at the top level and one call inside a parallel region, each one
 * single-threaded primitive (or, for a shape the primitive does not take, one
 * single-threaded OpenBLAS call).
 * The default (f32_matmul_decide, at the first fp32 product unless set before): on
 * where oneDNN plans its AVX-512 brgemm kernels for fp32 ("brg:avx512_core") and the
 * CPU has no AMX.  On the Zen 4 (no AMX) a GPT-2-124M fp32 step ran 1.05x (B=4,T=64)
 * and 1.06x (B=2,T=256) faster than on OpenBLAS's tiles (medians of 5 alternating
 * runs, every one of the five faster at B=2,T=256), 1.01-1.08x with another process
 * spinning on one core, a SmolLM2-135M one 1.04-1.09x (tests/bench/README.md,
 * "Eleventh session").  On the Xeon with AMX the same step took 1.03-1.05x the CPU
 * time (dense copies, the small products inside parallel regions; 2026-12-06, load
 * average ~7, "AMX"), so OpenBLAS stays there, as on CPUs without AVX-512, where
 * oneDNN 2.6 has no brgemm kernels.  CHERRY_F32_GEMM=openblas or onednn overrides. */
static void f32_matmul_decide(void) {
    if (__atomic_load_n(&use_matmul_f32, __ATOMIC_ACQUIRE) >= 0) return; /* set by gemm_set_onednn_matmul */
    const char *force = getenv("CHERRY_F32_GEMM");
    int on;
    if (force && !strcmp(force, "openblas"))
        on = 0;
    else if (force && !strcmp(force, "onednn"))
        on = 1;
    else {
#ifdef __SANITIZE_ADDRESS__
        /* AddressSanitizer builds (make check's build/asan) keep OpenBLAS unless asked:
         * LeakSanitizer's scan at exit can crash on libdnnl's thread-local storage once
         * it is loaded (the tests that load it on purpose run with leak checking off) */
        on = 0;
#else
        const char *f = gemm_onednn_impl(0, 0, 1, 256, 768, 768);
        int brg = f && !strncmp(f, "brg:avx512_core", 15);
        const char *b = brg ? bf16_kernels() : NULL;
        on = brg && !(b && strstr(b, "amx"));
#endif
    }
    if (on && gemm_onednn_open(NULL, 0)) on = 0;
    /* an explicit gemm_set_onednn_matmul(0, x) made meanwhile on another thread wins */
    int undecided = -1;
    __atomic_compare_exchange_n(&use_matmul_f32, &undecided, on, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* One single-threaded fp32 tile: the primitive, or OpenBLAS for a shape it does not take. */
static void f32_onednn_tile(int transA, int transB, int M, int N, int K, float alpha, const void *A, int lda,
                            const void *B, int ldb, float beta, float *C, int ldc) {
    if (gemm_onednn_matmul(0, 1, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        gemm_blas(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void gemm_f32_onednn(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                            const float *B, int ldb, float beta, float *C, int ldc) {
    if (omp_get_level() > 0) { /* one task already, as in gemm_bf16 */
        f32_onednn_tile(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_tiled(f32_onednn_tile, sizeof(float), transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS would scale C by beta; keep that behaviour explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
#ifdef CHERRY_CUDA
    /* GPU backend (make CUDA=1, cuda/gemm_cuda.cu): large products go to cuBLAS when a
     * device is present (threshold and CHERRY_CUDA=0|auto|all in gemm_cuda.h).  Not from
     * inside OpenMP regions (attention's per-head products): those are small and would
     * only queue on the device lock.  gemm_cuda leaves C untouched when it fails, so the
     * CPU path below is the fallback. */
    if (!omp_in_parallel() && gemm_cuda_wanted(M, N, K) &&
        gemm_cuda(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
#endif
    if (use_bf16) {
        gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* the fp32 default, decided at the first product (after it, one atomic load); with
     * tiling off every fp32 product goes to OpenBLAS's own threads (gemm_set_tiling) */
    pthread_once(&f32_once, f32_matmul_decide);
    if (tiling && __atomic_load_n(&use_matmul_f32, __ATOMIC_RELAXED)) {
        gemm_f32_onednn(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Tiles only at the top level: products made inside a parallel region (attention's
     * per-head products, the LM head's lanes) are already one task each.  The level,
     * not omp_in_parallel(), so a one-thread team decides as a two-thread team does,
     * and at one thread the same tiles run one after the other. */
    if (tiling && omp_get_level() == 0) {
        Tiles tl;
        gemm_tiles(M, N, K, transA, &tl);
        /* Each tile a single-threaded product: OpenBLAS's OpenMP build does not
         * thread a call made inside an active parallel region, nor one from a thread
         * whose OpenMP thread count is one (then the team has one thread too).  A
         * product gemm_tiles leaves whole is cut into two stripes below, or, too
         * narrow for that, runs as one in a region of its own (active: do not shrink
         * its team to the one tile) unless this thread's count is one; either way
         * unless it is too small for OpenBLAS to thread.  OpenBLAS's threaded driver
         * does not always give the single-threaded driver's bits.  With its Haswell
         * kernels (what it runs on AVX2 CPUs, or under OPENBLAS_CORETYPE=Haswell) a
         * 64 x 72 x K product differed at 1 and 2 threads for every K >= 64 (a 2-core
         * Zen 5), apparently from how the threads' parts of C meet its kernels' edge
         * cases.  The thread's own count, as OpenBLAS reads it, not gemm_threads_set's
         * (a server's engine pthread may not have set one). */
        int threadable = (double)M * N * K > GEMM_BLAS_SERIAL_MNK;
        /* two stripes, as OpenBLAS's own threads would have split it, but cut by the
         * shape alone, also at one thread (the bundled task's tiny model, fp32 on
         * OpenBLAS: 150 SFT steps took 1.46-1.74 s as one tile against 1.17-1.38 s on
         * OpenBLAS's threads) */
        if (tl.nt == 1 && threadable && tl.D >= 2 * tl.unit) tiles_split(&tl, 2);
        if (tl.nt > 1 || (threadable && omp_get_max_threads() > 1)) {
            gemm_cut(&tl, blas_tile, sizeof(float), transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
    }
    gemm_blas(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_set_tiling(int on) {
    tiling = on;
}

void gemm_threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int threads_get(void) {
    return n_threads > 0 ? n_threads : omp_get_max_threads();
}

double gemm_measure_peak(int n) {
    float *a = xaligned_alloc(sizeof(float) * n * n);
    float *b = xaligned_alloc(sizeof(float) * n * n);
    float *c = xaligned_alloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
    }
    gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_seconds();
        gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_seconds() - t0;
        double flops = 2.0 * n * n * (double)n / dt;
        if (flops > best) best = flops;
    }
    free(a);
    free(b);
    free(c);
    return best;
}
