/* dist.h — data parallelism over MPI: N processes (ranks), each holding a full copy
 * of the model, split every optimiser step's micro-batches and sum their gradients.
 *
 * Built with `make MPI=1` (-DCHERRY_MPI, compiled by mpicc) these functions call MPI;
 * built without it they are the single-process case (rank 0 of 1; reductions,
 * broadcasts and barriers are no-ops), so callers never need #ifdefs.
 *
 * MPI is started only when the program was launched by an MPI launcher (mpirun,
 * mpiexec, srun with PMI/PMIx): it sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * PMIX_RANK.  A program started directly runs as one process without touching MPI
 * (no singleton start-up).  CHERRY_MPI=0 in the environment disables MPI even under
 * a launcher; CHERRY_MPI=1 forces MPI_Init (singleton) without one.
 *
 * DETERMINISM.  dist_allreduce_sum is MPI_Allreduce(MPI_SUM) on the flat buffer.
 * MPI 4.0 §6.9.1 advises implementations to give the same result whenever a
 * reduction is applied to the same arguments in the same order; Open MPI's and
 * MPICH's algorithm choice depends only on the communicator size, the message size
 * and the (fixed) tuning parameters, so for a given implementation, rank count and
 * buffer size the order of the float additions — and the result — is the same on
 * every run.  It is NOT the order a single process adds the same terms in, so N
 * ranks match one process up to float reduction order (about 1e-7 relative per
 * step), not bit for bit.  train.c checks at every checkpoint and at the end that
 * all ranks still hold bit-identical weights (dist_check_same).
 *
 * FAILURE.  A rank that exits with a non-zero status that the ranks did not agree on
 * (dist_agree) aborts the whole job (MPI_Abort with that status), so one failing
 * rank never leaves the others waiting in a collective; a zero status or an agreed
 * failure finalises MPI normally.
 * Not for: model parallelism, or splitting anything but whole units of work. */
#ifndef CHERRY_DIST_H
#define CHERRY_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Starts MPI when launched under an MPI launcher (see above); idempotent.  Installs
 * the exit hook that finalises or aborts.  Returns 0 or EX_SOFTWARE with e set. */
int dist_init(Error *e);
/* MPI_Finalize if MPI was started and not yet finalised (also run at exit). */
void dist_finalize(void);
/* This process's rank (0-based) and the number of ranks; 0 and 1 without MPI. */
int dist_rank(void);
int dist_size(void);
/* 1 on rank 0: the rank that writes logs, checkpoints and outputs. */
int dist_is_root(void);

/* In-place element-wise sums over all ranks (every rank gets the result). */
int dist_allreduce_sum(float *buf, size_t n, Error *e);
int dist_allreduce_sum_f64(double *buf, size_t n, Error *e);
/* Copies BYTES bytes of buf on rank ROOT into buf on every other rank. */
int dist_broadcast(void *buf, size_t bytes, int root, Error *e);
/* recv (dist_size() * bytes) receives every rank's send block in rank order. */
int dist_allgather(const void *send, size_t bytes, void *recv, Error *e);
int dist_barrier(Error *e);
/* Rank ROOT receives every rank's N bytes (N may differ between ranks and be 0),
 * concatenated in rank order, in a malloc'd *out of *out_len bytes; the other ranks
 * get *out = NULL, *out_len = 0.  At most 2 GiB in all (MPI counts are int). */
int dist_gather_bytes(const void *send, size_t n, int root, char **out, size_t *out_len, Error *e);

/* Agreement on a status after work that may fail on some ranks only: returns 0 when
 * rc is 0 on every rank; otherwise the largest code any rank reported (MPI_MAXLOC:
 * the lowest such rank is named).  A rank whose own
 * rc was non-zero keeps its own message and code; the others get "rank R failed
 * (exit code C); its message is above".  Every rank must call it at the same point.
 * A non-zero result marks the coming exit as agreed (no MPI_Abort). */
int dist_agree(int rc, Error *e);

/* 64-bit hash of n floats (bit patterns, FNV-1a over 64-bit words). */
uint64_t dist_hash_floats(const float *x, size_t n);
/* EX_SOFTWARE with e set ("WHAT differs between ranks") unless every rank holds
 * the same n floats (compares hashes); a collective. */
int dist_check_same(const float *x, size_t n, const char *what, Error *e);

#endif
