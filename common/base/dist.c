/* dist.c — MPI data parallelism, or its single-process stand-in.  See dist.h.
 *
 * Only the main thread calls MPI (OpenMP/OpenBLAS threads never do), so
 * MPI_THREAD_FUNNELED is all we ask for.  MPI counts are int: buffers are sent in
 * chunks of at most 2^30 elements. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* on_exit */
#endif
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifdef CHERRY_MPI
#include <mpi.h>
#endif

static int dist_started; /* MPI_Init done by us */
static int dist_done;    /* MPI_Finalize done */
static int dist_rank_v;  /* 0 without MPI */
static int dist_size_v = 1;
static int dist_agreed; /* the ranks agreed on a failure: exit together */
static int dist_hooked;

int dist_rank(void) {
    return dist_rank_v;
}

int dist_size(void) {
    return dist_size_v;
}

int dist_is_root(void) {
    return dist_rank_v == 0;
}

uint64_t dist_hash_floats(const float *x, size_t n) {
    /* FNV-1a (Fowler/Noll/Vo) with the 64-bit offset basis and prime, one 32-bit
     * float pattern per round: a checksum, not a cryptographic hash. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &x[i], sizeof w);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    return h;
}

#ifdef CHERRY_MPI
#define DIST_CHUNK ((size_t)1 << 30)

static int mpi_fail(Error *e, int mrc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error %d", mrc);
    return err_set(e, EX_SOFTWARE, "%s (rank %d of %d): %s", what, dist_rank_v, dist_size_v, msg);
}

/* Exit hook: a clean or agreed exit finalises; any other failure takes the whole
 * job down, since the other ranks may be waiting for this one in a collective. */
static void dist_on_exit(int status, void *arg) {
    (void)arg;
    if (!dist_started || dist_done) return;
    if (status != 0 && !dist_agreed && dist_size_v > 1) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    dist_finalize();
}

static int launched_by_mpi(void) {
    const char *force = getenv("CHERRY_MPI");
    if (force && *force) return strcmp(force, "0") != 0;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int dist_init(Error *e) {
    if (dist_started || dist_done || !launched_by_mpi()) return 0;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        int mrc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (mrc != MPI_SUCCESS) return err_set(e, EX_SOFTWARE, "MPI_Init_thread failed (code %d)", mrc);
    }
    dist_started = 1;
    /* errors come back as codes with messages instead of killing the job silently */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank_v);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size_v);
    if (!dist_hooked) {
        on_exit(dist_on_exit, NULL);
        dist_hooked = 1;
    }
    return 0;
}

void dist_finalize(void) {
    if (!dist_started || dist_done) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
    dist_done = 1;
}

static int allreduce_typed(void *buf, size_t n, MPI_Datatype type, size_t elem, Error *e) {
    if (dist_size_v <= 1) return 0;
    char *p = buf;
    for (size_t off = 0; off < n; off += DIST_CHUNK) {
        size_t k = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
        int mrc = MPI_Allreduce(MPI_IN_PLACE, p + off * elem, (int)k, type, MPI_SUM, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) return mpi_fail(e, mrc, "MPI_Allreduce");
    }
    return 0;
}

int dist_allreduce_sum(float *buf, size_t n, Error *e) {
    return allreduce_typed(buf, n, MPI_FLOAT, sizeof(float), e);
}

int dist_allreduce_sum_f64(double *buf, size_t n, Error *e) {
    return allreduce_typed(buf, n, MPI_DOUBLE, sizeof(double), e);
}

int dist_broadcast(void *buf, size_t bytes, int root, Error *e) {
    if (dist_size_v <= 1) return 0;
    char *p = buf;
    for (size_t off = 0; off < bytes; off += DIST_CHUNK) {
        size_t k = bytes - off < DIST_CHUNK ? bytes - off : DIST_CHUNK;
        int mrc = MPI_Bcast(p + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) return mpi_fail(e, mrc, "MPI_Bcast");
    }
    return 0;
}

int dist_allgather(const void *send, size_t bytes, void *recv, Error *e) {
    if (dist_size_v <= 1) {
        memmove(recv, send, bytes);
        return 0;
    }
    if (bytes > DIST_CHUNK) return err_set(e, EX_SOFTWARE, "dist_allgather: %zu bytes per rank is too many", bytes);
    int mrc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
    return mrc == MPI_SUCCESS ? 0 : mpi_fail(e, mrc, "MPI_Allgather");
}

int dist_barrier(Error *e) {
    if (dist_size_v <= 1) return 0;
    int mrc = MPI_Barrier(MPI_COMM_WORLD);
    return mrc == MPI_SUCCESS ? 0 : mpi_fail(e, mrc, "MPI_Barrier");
}

int dist_gather_bytes(const void *send, size_t n, int root, char **out, size_t *out_len, Error *e) {
    *out = NULL;
    *out_len = 0;
    if (dist_size_v <= 1) {
        *out = xmalloc(n ? n : 1);
        if (n) memcpy(*out, send, n);
        *out_len = n;
        return 0;
    }
    long long mine = (long long)n, *all = xmalloc((size_t)dist_size_v * sizeof *all);
    int rc = dist_allgather(&mine, sizeof mine, all, e);
    long long total = 0;
    for (int r = 0; rc == 0 && r < dist_size_v; r++) total += all[r];
    if (rc == 0 && total > 0x7fffffffLL)
        rc = err_set(e, EX_SOFTWARE, "dist_gather_bytes: %lld bytes in all is more than MPI can count", total);
    int *counts = NULL, *displs = NULL;
    if (rc == 0 && dist_rank_v == root) {
        counts = xmalloc((size_t)dist_size_v * sizeof(int));
        displs = xmalloc((size_t)dist_size_v * sizeof(int));
        for (int r = 0, off = 0; r < dist_size_v; r++) {
            counts[r] = (int)all[r];
            displs[r] = off;
            off += (int)all[r];
        }
        *out = xmalloc(total ? (size_t)total : 1);
        *out_len = (size_t)total;
    }
    if (rc == 0) {
        int mrc = MPI_Gatherv(send, (int)n, MPI_BYTE, *out, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD);
        if (mrc != MPI_SUCCESS) rc = mpi_fail(e, mrc, "MPI_Gatherv");
    }
    free(all);
    free(counts);
    free(displs);
    return rc;
}

int dist_agree(int rc, Error *e) {
    if (dist_size_v <= 1) return rc;
    struct {
        int code, rank;
    } in = {rc, dist_rank_v}, out = {0, 0};
    int mrc = MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD);
    if (mrc != MPI_SUCCESS) return mpi_fail(e, mrc, "MPI_Allreduce (status)");
    if (out.code == 0) return 0;
    dist_agreed = 1;
    if (rc) return rc;
    return err_set(e, out.code, "rank %d failed (exit code %d); its message is above", out.rank, out.code);
}

int dist_check_same(const float *x, size_t n, const char *what, Error *e) {
    if (dist_size_v <= 1) return 0;
    uint64_t h = dist_hash_floats(x, n), *all = xmalloc((size_t)dist_size_v * sizeof *all);
    int rc = dist_allgather(&h, sizeof h, all, e);
    for (int r = 1; rc == 0 && r < dist_size_v; r++)
        if (all[r] != all[0])
            rc = err_set(e, EX_SOFTWARE, "%s differ between ranks (hash on rank %d %016llx, on rank 0 %016llx)", what,
                         r, (unsigned long long)all[r], (unsigned long long)all[0]);
    free(all);
    return rc;
}

#else /* single process: rank 0 of 1 */

int dist_init(Error *e) {
    (void)e;
    return 0;
}

void dist_finalize(void) {
    (void)dist_started, (void)dist_done, (void)dist_agreed, (void)dist_hooked;
}

int dist_allreduce_sum(float *buf, size_t n, Error *e) {
    (void)buf, (void)n, (void)e;
    return 0;
}

int dist_allreduce_sum_f64(double *buf, size_t n, Error *e) {
    (void)buf, (void)n, (void)e;
    return 0;
}

int dist_broadcast(void *buf, size_t bytes, int root, Error *e) {
    (void)buf, (void)bytes, (void)root, (void)e;
    return 0;
}

int dist_allgather(const void *send, size_t bytes, void *recv, Error *e) {
    (void)e;
    memmove(recv, send, bytes);
    return 0;
}

int dist_barrier(Error *e) {
    (void)e;
    return 0;
}

int dist_gather_bytes(const void *send, size_t n, int root, char **out, size_t *out_len, Error *e) {
    (void)root, (void)e;
    *out = xmalloc(n ? n : 1);
    if (n) memcpy(*out, send, n);
    *out_len = n;
    return 0;
}

int dist_agree(int rc, Error *e) {
    (void)e;
    return rc;
}

int dist_check_same(const float *x, size_t n, const char *what, Error *e) {
    (void)x, (void)n, (void)what, (void)e;
    return 0;
}

#endif
