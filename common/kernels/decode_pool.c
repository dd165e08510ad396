/* decode_pool.c — see decode.h (decode_parallel).  The threads of a decode step.
 *
 * Why not OpenMP: a decode step is ~250 small parallel loops (every linear of every
 * layer, attention), and an OpenMP loop ends in a barrier that every thread of the
 * team must reach.  Under passive waiting (gemm.c's default) each loop then waits
 * for the other thread to be woken and scheduled; when another process holds that
 * core, the step stalls until the scheduler gives it back, even if the calling
 * thread could have done all the work in the meantime.  Measured with the machine
 * shared (load average ~7): 2 OpenMP threads decoded no faster than 1.
 *
 * Here the calling thread and the workers claim items from one counter, and a loop
 * ends when every item is *done*, not when every thread has arrived: a worker that
 * has not woken up yet claims nothing and is waited for by no one.  Workers spin
 * briefly after a loop (the next one of the step follows within microseconds), then
 * sleep on a futex.  Which thread runs an item never changes its result, so outputs
 * stay bit-identical at any thread count.
 * Not for: long loops over big work (OpenMP or gemm()'s tiles serve those). */
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define POOL_MAX 64      /* workers (threads besides the caller) */
#define SPIN_NS 100000.0 /* how long a worker spins for the next loop before sleeping */

typedef struct Pool {
    pthread_mutex_t submit; /* one loop at a time; a second caller runs its loop alone */
    int nworker;            /* started so far */
    /* The loop, written while `next` names no claimable item (see decode_parallel),
     * with release stores; a worker reads them with acquire loads before it claims,
     * so a claim that succeeds was made with this loop's fields. */
    _Atomic(DecodeTask) fn;
    _Atomic(void *) arg;
    _Atomic int n, nhelp;  /* items; workers 1..nhelp take part */
    _Atomic uint64_t next; /* (gen << 32) | next item: a claim names its loop */
    _Atomic int done;      /* items finished */
    _Atomic uint32_t gen;  /* loop number, the futex word */
    _Atomic int sleepers;
} Pool;

static Pool pool = {.submit = PTHREAD_MUTEX_INITIALIZER};

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* An item of loop g, or -1 when the loop has none left (or is no longer g). */
static int claim(uint32_t g, int n) {
    uint64_t v = atomic_load_explicit(&pool.next, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != g || (uint32_t)v >= (uint32_t)n) return -1;
        if (atomic_compare_exchange_weak_explicit(&pool.next, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            return (int)(uint32_t)v;
    }
}

static void run_items(uint32_t g, int n, DecodeTask fn, void *arg, int tid) {
    int i;
    while ((i = claim(g, n)) >= 0) {
        fn(arg, i, tid);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
}

static void *worker(void *p) {
    int tid = (int)(intptr_t)p;
    uint32_t seen = atomic_load(&pool.gen);
    /* whether this worker took part in the last loop: only then is the next one worth
     * spinning for; a worker left out (the thread count went down since it started)
     * goes straight to sleep instead of taking a core from the threads that work */
    int part = 1;
    for (;;) {
        uint32_t g = atomic_load_explicit(&pool.gen, memory_order_acquire);
        if (g == seen) {
            double t0 = now_ns(), spin = part ? SPIN_NS : 0;
            for (int k = 0; (g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen; k++) {
                cpu_relax();
                if (((k & 255) == 255 || !part) && now_ns() - t0 >= spin) {
                    atomic_fetch_add(&pool.sleepers, 1);
                    syscall(SYS_futex, &pool.gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    t0 = now_ns();
                }
            }
        }
        seen = g;
        /* the loop's fields were written before gen was published (release/acquire);
         * if a newer loop has replaced them since, claim() sees another gen and
         * returns -1 before any item runs */
        DecodeTask fn = atomic_load_explicit(&pool.fn, memory_order_acquire);
        void *arg = atomic_load_explicit(&pool.arg, memory_order_acquire);
        int n = atomic_load_explicit(&pool.n, memory_order_acquire);
        part = tid <= atomic_load_explicit(&pool.nhelp, memory_order_acquire);
        if (part) run_items(g, n, fn, arg, tid);
    }
    return NULL;
}

/* Starts workers up to `want`; returns how many there are. */
static int ensure_workers(int want) {
    if (want > POOL_MAX) want = POOL_MAX;
    while (pool.nworker < want) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, worker, (void *)(intptr_t)(pool.nworker + 1));
        pthread_attr_destroy(&a);
        if (rc != 0) break; /* fewer helpers: the caller does the rest */
        pool.nworker++;
    }
    return pool.nworker;
}

void decode_parallel(int nt, int n, DecodeTask fn, void *arg) {
    if (n <= 0) return;
    if (nt <= 1 || n == 1 || pthread_mutex_trylock(&pool.submit) != 0) {
        for (int i = 0; i < n; i++) fn(arg, i, 0); /* alone: same items, same results */
        return;
    }
    int nhelp = ensure_workers(nt - 1);
    if (nhelp > nt - 1) nhelp = nt - 1;
    uint32_t g = atomic_load_explicit(&pool.gen, memory_order_relaxed) + 1;
    /* 1. no item of any loop is claimable (a worker still holding the previous loop's
     * gen fails its claim from here on); 2. the fields; 3. items 0.. of loop g */
    atomic_store(&pool.next, ((uint64_t)g << 32) | 0xffffffffu);
    atomic_store_explicit(&pool.fn, fn, memory_order_release);
    atomic_store_explicit(&pool.arg, arg, memory_order_release);
    atomic_store_explicit(&pool.n, n, memory_order_release);
    atomic_store_explicit(&pool.nhelp, nhelp, memory_order_release);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.next, (uint64_t)g << 32, memory_order_release);
    atomic_store(&pool.gen, g); /* seq_cst: ordered before the load of sleepers */
    if (atomic_load(&pool.sleepers) > 0) syscall(SYS_futex, &pool.gen, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
    run_items(g, n, fn, arg, 0);
    /* items still running were claimed by a worker that is running them (or was
     * preempted mid-item): wait for those alone, yielding the core if it takes long */
    for (int k = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < n; k++) {
        if (k < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&pool.submit);
}
