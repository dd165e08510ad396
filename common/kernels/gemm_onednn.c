/* gemm_onednn.c — matrix products through oneDNN's matmul primitive, for gemm.c.
 *
 * Why the primitive as well as dnnl_gemm_bf16bf16f32: both run bf16 on the AMX tile
 * unit of a CPU that has one (amx_bf16, amx_tile; oneDNN asks Linux for the tile
 * state itself, arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)), the gemm entry
 * point with its gemm driver's AMX kernels, the primitive with the brgemm kernels
 * ("brg:avx512_core_amx_bf16", the path torch.autocast(bfloat16) takes on the CPU),
 * and the brgemm ones are faster on most of the step's shapes and on the whole
 * training step (tests/bench/README.md).  For fp32 the primitive runs the brgemm
 * AVX-512 kernels ("brg:avx512_core"), an alternative to OpenBLAS.
 *
 * What this file is not: a general oneDNN binding.  It builds 2-D matmuls with dense
 * row-major layouts (either operand transposed through its strides), alpha as the
 * output scale and beta as a sum post-op (dst = alpha A B + beta dst;
 * dnnl_primitive_attr_set_output_scales and dnnl_post_ops_append_sum of the 2.x C API).
 *
 * Like the bf16 gemm entry point before it, the library is opened at run time
 * (dlopen("libdnnl.so.2")), so programs that never ask for it need nothing; the oneDNN
 * 2.x headers (libdnnl-dev) are needed at build time only, for the descriptor types
 * (dnnl_memory_desc_t is a large struct whose layout we should not copy by hand).
 * Built without them, gemm_onednn_open says so and gemm.c keeps its older kernels.
 *
 * Determinism: a primitive is planned for a thread count when it is created (oneDNN
 * reads omp_get_max_threads(); the brgemm blocking and any split of K across threads
 * follow from it) and runs with at most that many.  gemm.c asks for nthr = 1, so every
 * primitive is planned for one thread, whatever the process's thread count, and runs
 * single-threaded; the sums are then the same at any thread count.  The scratchpad is
 * ours (dnnl_scratchpad_mode_user, one buffer per thread), which is what makes it safe
 * for two threads to run the same primitive at once (oneDNN 2.6 documentation,
 * "Primitive Attributes: Scratchpad"); each thread also has its own stream. */
#include "gemm_internal.h"

#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/util.h"
#include "gemm.h"

/* (cppcheck cannot evaluate __has_include; it checks the stand-ins below) */
#if defined(__has_include) && !defined(__CPPCHECK__)
#if __has_include(<oneapi/dnnl/dnnl.h>)
#include <oneapi/dnnl/dnnl_version.h>
#if DNNL_VERSION_MAJOR == 2 /* the matmul_desc C API; 3.x replaced it (and is libdnnl.so.3) */
#include <oneapi/dnnl/dnnl.h>
#define HAVE_ONEDNN 1
#endif
#endif
#endif

#ifndef HAVE_ONEDNN

int gemm_onednn_open(char *why, size_t n) {
    if (why) snprintf(why, n, "cherry was built without the oneDNN 2.x headers (apt-get install libdnnl-dev)");
    return -1;
}

int gemm_onednn_matmul(int bf16, int nthr, int transA, int transB, int M, int N, int K, float alpha, const void *A,
                       int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    (void)bf16, (void)nthr, (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
    return -1;
}

const char *gemm_onednn_impl(int bf16, int transA, int transB, int M, int N, int K) {
    (void)bf16, (void)transA, (void)transB, (void)M, (void)N, (void)K;
    return NULL;
}

int gemm_onednn_whole(int bf16, int transA, int transB, int M, int N, int K, const void *A, int lda, const void *B,
                      int ldb, float *C, int ldc) {
    (void)bf16, (void)transA, (void)transB, (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb;
    (void)C, (void)ldc;
    return -1;
}

#else

/* The entry points, typed by the headers' own declarations. */
#define ONEDNN_FUNCS(X)                                                                                                \
    X(dnnl_engine_create)                                                                                              \
    X(dnnl_stream_create)                                                                                              \
    X(dnnl_stream_destroy)                                                                                             \
    X(dnnl_memory_desc_init_by_strides)                                                                                \
    X(dnnl_memory_desc_get_size)                                                                                       \
    X(dnnl_matmul_desc_init)                                                                                           \
    X(dnnl_primitive_attr_create)                                                                                      \
    X(dnnl_primitive_attr_destroy)                                                                                     \
    X(dnnl_primitive_attr_set_scratchpad_mode)                                                                         \
    X(dnnl_primitive_attr_set_output_scales)                                                                           \
    X(dnnl_primitive_attr_set_post_ops)                                                                                \
    X(dnnl_post_ops_create)                                                                                            \
    X(dnnl_post_ops_append_sum)                                                                                        \
    X(dnnl_post_ops_destroy)                                                                                           \
    X(dnnl_primitive_desc_create)                                                                                      \
    X(dnnl_primitive_desc_query)                                                                                       \
    X(dnnl_primitive_desc_query_md)                                                                                    \
    X(dnnl_primitive_desc_destroy)                                                                                     \
    X(dnnl_primitive_create)                                                                                           \
    X(dnnl_primitive_destroy)                                                                                          \
    X(dnnl_primitive_execute)                                                                                          \
    X(dnnl_memory_create)                                                                                              \
    X(dnnl_memory_set_data_handle)                                                                                     \
    X(dnnl_memory_destroy)                                                                                             \
    X(dnnl_set_primitive_cache_capacity)

#define X_FIELD(f) __typeof__(f) *f;
static struct { ONEDNN_FUNCS(X_FIELD) } dn;
#undef X_FIELD

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int opened;           /* 1 ok, -1 failed */
static char open_why[256];   /* the reason when it failed */
static dnnl_engine_t engine; /* the CPU engine, created once */

int gemm_onednn_open(char *why, size_t n) {
    pthread_mutex_lock(&lock);
    if (!opened) {
        void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
        opened = h ? 1 : -1;
        if (!h) snprintf(open_why, sizeof open_why, "%s", dlerror());
#define X_LOAD(f)                                                                                                      \
    if (opened == 1 && !(dn.f = (__typeof__(f) *)dlsym(h, #f))) {                                                      \
        snprintf(open_why, sizeof open_why, "libdnnl.so.2 has no %s", #f);                                             \
        opened = -1;                                                                                                   \
    }
        ONEDNN_FUNCS(X_LOAD)
#undef X_LOAD
        if (opened == 1 && dn.dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
            snprintf(open_why, sizeof open_why, "oneDNN could not create its CPU engine");
            opened = -1;
        }
        /* oneDNN's own primitive cache is keyed on the thread count current when the
         * primitive is created, not on the count its descriptor was planned for, so it
         * could hand a one-thread tile a primitive planned for two (or the reverse) once
         * anything else in the process had made the same shape: cherry keeps its own
         * cache (below), so oneDNN's is turned off */
        if (opened == 1) dn.dnnl_set_primitive_cache_capacity(0);
    }
    int ok = opened == 1;
    pthread_mutex_unlock(&lock);
    if (!ok && why) snprintf(why, n, "%s", open_why);
    return ok ? 0 : -1;
}

/* ---- the primitive cache ---------------------------------------------------------
 * Creating a primitive (choosing the blocking, generating the brgemm kernels) costs
 * far more than running it, and a training step repeats the same few shapes (gemm.c's
 * tiles: at most three widths per product), so primitives are kept per shape.  The
 * cache is bounded: when it is full the least recently used entry that no thread is
 * running is destroyed.  A shape whose primitive cannot be created is remembered as
 * such (prim NULL), so the caller's fallback is chosen once. */
typedef struct {
    int bf16, nthr, ta, tb, M, N, K;
    float alpha, beta;
} Key; /* nine 4-byte fields, no padding: compared with memcmp */

typedef struct {
    Key key;
    unsigned hash;      /* key_hash(&key): compared before the key */
    unsigned gen;       /* changes whenever the slot gets a new primitive (MemSlot) */
    int used;           /* slot holds a key */
    int busy;           /* threads running prim now (under lock) */
    unsigned long last; /* lookup clock, for least-recently-used eviction */
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim; /* NULL: no primitive for this shape */
    dnnl_memory_desc_t a_md, b_md, c_md, s_md;
    size_t scratch; /* scratchpad bytes */
} Entry;

#define CACHE_MAX 128
static Entry cache[CACHE_MAX];
static unsigned long clock_now;
static unsigned gen_now;

/* FNV-1a over the key's bytes */
static unsigned key_hash(const Key *k) {
    const unsigned char *b = (const unsigned char *)k;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* The slots this thread found its last keys in: a training step alternates between a
 * few shapes (the attention blocks' products), so a lookup mostly ends here instead of
 * comparing keys along the whole cache (it was 6% of a small product's cost). */
#define HINTS 4
static _Thread_local int hint[HINTS];
static _Thread_local int hint_next;

/* logical op(A) [M,K], op(B) [K,N], C [M,N], all dense (see run_dense); a transpose is a
 * swap of strides */
static int key_mds(const Key *k, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b, dnnl_memory_desc_t *c) {
    dnnl_data_type_t dt = k->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t ad = {k->M, k->K}, bd = {k->K, k->N}, cd = {k->M, k->N};
    dnnl_dims_t as = {k->ta ? 1 : k->K, k->ta ? k->M : 1};
    dnnl_dims_t bs = {k->tb ? 1 : k->N, k->tb ? k->K : 1};
    dnnl_dims_t cs = {k->N, 1};
    return dn.dnnl_memory_desc_init_by_strides(a, 2, ad, dt, as) == dnnl_success &&
           dn.dnnl_memory_desc_init_by_strides(b, 2, bd, dt, bs) == dnnl_success &&
           dn.dnnl_memory_desc_init_by_strides(c, 2, cd, dnnl_f32, cs) == dnnl_success;
}

/* The primitive descriptor for k's product with its alpha and beta, or NULL. */
static dnnl_primitive_desc_t key_pd(const Key *k, const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                                    const dnnl_memory_desc_t *c) {
    dnnl_matmul_desc_t md;
    if (dn.dnnl_matmul_desc_init(&md, a, b, NULL, c) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dn.dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dn.dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && k->alpha != 1.0f) ok = dn.dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
    if (ok && k->beta != 0.0f)
        ok = dn.dnnl_post_ops_create(&po) == dnnl_success && dn.dnnl_post_ops_append_sum(po, k->beta) == dnnl_success &&
             dn.dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok) {
        /* the plan's thread count is oneDNN's omp_get_max_threads() (see the top); the
         * setting belongs to this thread's task and is restored at once */
        int saved = omp_get_max_threads();
        omp_set_num_threads(k->nthr);
        if (dn.dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) != dnnl_success) pd = NULL;
        omp_set_num_threads(saved);
    }
    if (po) dn.dnnl_post_ops_destroy(po);
    if (attr) dn.dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* Fills e's primitive for e->key (prim stays NULL when oneDNN has none). */
static void entry_create(Entry *e) {
    if (!key_mds(&e->key, &e->a_md, &e->b_md, &e->c_md)) return;
    e->pd = key_pd(&e->key, &e->a_md, &e->b_md, &e->c_md);
    if (!e->pd) return;
    const dnnl_memory_desc_t *s = dn.dnnl_primitive_desc_query_md(e->pd, dnnl_query_scratchpad_md, 0);
    /* created under the same thread count as its descriptor was planned for */
    int saved = omp_get_max_threads(), made;
    omp_set_num_threads(e->key.nthr);
    made = s && dn.dnnl_primitive_create(&e->prim, e->pd) == dnnl_success;
    omp_set_num_threads(saved);
    if (!made) {
        dn.dnnl_primitive_desc_destroy(e->pd);
        e->pd = NULL, e->prim = NULL;
        return;
    }
    e->s_md = *s;
    e->scratch = dn.dnnl_memory_desc_get_size(s);
}

static void entry_destroy(Entry *e) {
    if (e->prim) dn.dnnl_primitive_destroy(e->prim);
    if (e->pd) dn.dnnl_primitive_desc_destroy(e->pd);
    memset(e, 0, sizeof *e);
}

/* The entry for k, created if need be, marked busy; NULL only if every slot is busy. */
static int entry_is(const Entry *c, const Key *k, unsigned h) {
    return c->used && c->hash == h && !memcmp(&c->key, k, sizeof *k);
}

static Entry *entry_get(const Key *k) {
    unsigned h = key_hash(k);
    pthread_mutex_lock(&lock);
    Entry *e = NULL, *victim = NULL;
    for (int j = 0; j < HINTS && !e; j++)
        if (entry_is(&cache[hint[j]], k, h)) e = &cache[hint[j]];
    for (int i = 0; i < CACHE_MAX && !e; i++) {
        if (entry_is(&cache[i], k, h))
            e = &cache[i];
        else if (!cache[i].busy && (!victim || !cache[i].used || (victim->used && cache[i].last < victim->last)))
            victim = &cache[i];
    }
    if (!e && victim) {
        if (victim->used) entry_destroy(victim);
        victim->key = *k;
        victim->hash = h;
        if (++gen_now == 0) gen_now = 1; /* 0 marks a MemSlot without objects */
        victim->gen = gen_now;
        victim->used = 1;
        entry_create(victim); /* under the lock: a shape is created once, by one thread */
        e = victim;
    }
    if (e) { /* a slot not among the hints replaces the oldest one */
        int seen = 0;
        for (int j = 0; j < HINTS; j++) seen |= &cache[hint[j]] == e;
        if (!seen) hint[hint_next] = (int)(e - cache), hint_next = (hint_next + 1) % HINTS;
    }
    if (e) e->busy++, e->last = ++clock_now;
    pthread_mutex_unlock(&lock);
    return e;
}

static void entry_put(Entry *e) {
    pthread_mutex_lock(&lock);
    e->busy--;
    pthread_mutex_unlock(&lock);
}

/* ---- per-thread execution state ----------------------------------------------------
 * A stream, four buffers (scratchpad, dense copies of A, B, C) and, per cache slot, the
 * four memory objects of its arguments per thread, freed by a pthread key's destructor
 * when the thread ends (OpenMP drops pool threads when the thread count goes down).
 * The memory objects are made once per slot and primitive (MemSlot.gen) and pointed at
 * each call's buffers with dnnl_memory_set_data_handle: creating and destroying them
 * per call was a third of a small product's cost (malloc and free inside oneDNN;
 * the attention kernels' block products are ~45,000 calls per DPO step). */
typedef struct {
    unsigned gen; /* Entry.gen the objects were made for; 0: none */
    dnnl_memory_t m[4];
} MemSlot;

typedef struct {
    dnnl_stream_t stream;
    void *buf[4];
    size_t cap[4];
    MemSlot mem[CACHE_MAX];
} ThreadState;

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void mem_slot_clear(MemSlot *ms) {
    for (int i = 0; i < 4; i++)
        if (ms->m[i]) dn.dnnl_memory_destroy(ms->m[i]);
    memset(ms, 0, sizeof *ms);
}

static void state_free(void *p) {
    ThreadState *t = p;
    for (int i = 0; i < CACHE_MAX; i++) mem_slot_clear(&t->mem[i]);
    if (t->stream) dn.dnnl_stream_destroy(t->stream);
    for (int i = 0; i < 4; i++) free(t->buf[i]);
    free(t);
}

static void state_key_make(void) {
    pthread_key_create(&state_key, state_free);
}

static ThreadState *thread_state(void) {
    pthread_once(&state_once, state_key_make);
    ThreadState *t = pthread_getspecific(state_key);
    if (!t) {
        t = xcalloc(1, sizeof *t);
        pthread_setspecific(state_key, t);
    }
    return t;
}

static void *thread_buf(int i, size_t need) {
    ThreadState *t = thread_state();
    if (need > t->cap[i]) {
        free(t->buf[i]);
        t->cap[i] = need + need / 4;
        t->buf[i] = xaligned_alloc(t->cap[i]);
    }
    return t->buf[i];
}

/* Runs e's primitive (e is busy: it cannot be evicted meanwhile, so e->gen is stable). */
static int run(Entry *e, const void *A, const void *B, float *C) {
    ThreadState *t = thread_state();
    if (!t->stream && dn.dnnl_stream_create(&t->stream, engine, dnnl_stream_default_flags) != dnnl_success) return -1;
    const dnnl_memory_desc_t *md[4] = {&e->a_md, &e->b_md, &e->c_md, &e->s_md};
    void *ptr[4] = {(void *)A, (void *)B, C, e->scratch ? thread_buf(0, e->scratch) : NULL};
    int nargs = e->scratch ? 4 : 3, ok = 1;
    MemSlot *ms = &t->mem[e - cache];
    if (ms->gen != e->gen) { /* first use here of this slot's primitive */
        mem_slot_clear(ms);
        for (int i = 0; i < nargs && ok; i++)
            ok = dn.dnnl_memory_create(&ms->m[i], md[i], engine, ptr[i]) == dnnl_success;
        if (!ok) {
            mem_slot_clear(ms);
            return -1;
        }
        ms->gen = e->gen;
    } else {
        for (int i = 0; i < nargs && ok; i++) ok = dn.dnnl_memory_set_data_handle(ms->m[i], ptr[i]) == dnnl_success;
        if (!ok) return -1;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms->m[0]},
                               {DNNL_ARG_WEIGHTS, ms->m[1]},
                               {DNNL_ARG_DST, ms->m[2]},
                               {DNNL_ARG_SCRATCHPAD, ms->m[3]}};
    /* a failure here may have written part of C, so no fallback can follow */
    if (dn.dnnl_primitive_execute(e->prim, t->stream, nargs, args) != dnnl_success)
        die_internal("oneDNN matmul %dx%dx%d failed to execute", e->key.M, e->key.N, e->key.K);
    return 0;
}

/* dst[rows, cols] (leading dimension dld) = src[rows, cols] (sld); esz-byte elements. */
static void copy_rows(void *dst, size_t dld, const void *src, size_t sld, int rows, int cols, size_t esz) {
    for (int r = 0; r < rows; r++)
        memcpy((char *)dst + r * dld * esz, (const char *)src + r * sld * esz, (size_t)cols * esz);
}

/* oneDNN 2.6's brgemm matmul takes dense matrices only (plain "ab"/"ba" layouts; a
 * leading dimension wider than the matrix sends it to the AVX-512 gemm kernels
 * instead, "gemm:jit"), while gemm.c's tiles are often column stripes (C + d0 with
 * ldc = N) and weights are often parts of wider blocks.  So an operand that is not
 * dense is copied into a dense per-thread buffer first (C back afterwards): a copy of
 * M x N or K x N elements against 2 M N K FLOP of product.  The result does not depend
 * on whether a copy was made. */
static int run_dense(Entry *e, int ta, int tb, int M, int N, int K, size_t esz, const void *A, int lda, const void *B,
                     int ldb, float beta, float *C, int ldc) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    if (lda != ac) {
        void *a = thread_buf(1, (size_t)ar * ac * esz);
        copy_rows(a, ac, A, lda, ar, ac, esz);
        A = a;
    }
    if (ldb != bc) {
        void *b = thread_buf(2, (size_t)br * bc * esz);
        copy_rows(b, bc, B, ldb, br, bc, esz);
        B = b;
    }
    if (ldc == N) return run(e, A, B, C);
    float *c = thread_buf(3, (size_t)M * N * sizeof(float));
    if (beta != 0.0f) copy_rows(c, N, C, ldc, M, N, sizeof(float));
    int rc = run(e, A, B, c);
    if (rc == 0) copy_rows(C, ldc, c, N, M, N, sizeof(float));
    return rc;
}

int gemm_onednn_matmul(int bf16, int nthr, int transA, int transB, int M, int N, int K, float alpha, const void *A,
                       int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    if (gemm_onednn_open(NULL, 0)) return -1;
    Key k = {bf16, nthr, transA, transB, M, N, K, alpha, beta};
    Entry *e = entry_get(&k);
    if (!e) return -1;
    int rc = e->prim ? run_dense(e, transA, transB, M, N, K, bf16 ? 2 : 4, A, lda, B, ldb, beta, C, ldc) : -1;
    entry_put(e);
    return rc;
}

/* The name points into the cached primitive descriptor: valid until the entry is
 * evicted, which takes CACHE_MAX other shapes. */
const char *gemm_onednn_impl(int bf16, int transA, int transB, int M, int N, int K) {
    if (gemm_onednn_open(NULL, 0)) return NULL;
    Key k = {bf16, 1, transA, transB, M, N, K, 1.0f, 0.0f};
    Entry *e = entry_get(&k);
    const char *name = NULL;
    if (e && e->pd && dn.dnnl_primitive_desc_query(e->pd, dnnl_query_impl_info_str, 0, &name) != dnnl_success)
        name = NULL;
    if (e) entry_put(e);
    return name;
}

/* For benches: oneDNN plans and threads the whole product itself, at the current
 * OpenMP thread count (how a program that calls oneDNN directly would use it). */
int gemm_onednn_whole(int bf16, int transA, int transB, int M, int N, int K, const void *A, int lda, const void *B,
                      int ldb, float *C, int ldc) {
    return gemm_onednn_matmul(bf16, omp_get_max_threads(), transA, transB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

#endif
