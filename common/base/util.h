/* util.h — small things every module needs: checked allocation, atomic outputs,
 * whole-file reads, a seeded RNG, a clock.
 *
 * Atomic outputs: every file or directory a program produces is written under a
 * temporary name in the same directory and renamed into place when complete, so an
 * interrupted program never leaves a partial output where the final one belongs.
 * Temporaries are registered so a SIGINT/SIGTERM handler can unlink them
 * (atomic_cleanup_all). Not for: anything model- or format-specific. */
#ifndef CHERRY_UTIL_H
#define CHERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
/* xcalloc for a large buffer that will be used whole (weights, gradients): on 2 MiB
 * pages where Linux offers them (util.c, advise_huge); its pages are still only
 * touched when first written. */
void *xcalloc_huge(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Makes the array P (*CAP elements of ELEM bytes) hold at least NEED: when it is too
 * small, *CAP doubles from FIRST (when 0) until it does and P is reallocated.  Returns
 * P, moved or not.  For the growing buffers of parsers and caches. */
void *xgrow(void *p, size_t *cap, size_t need, size_t first, size_t elem);
/* 64-byte aligned allocation, zeroed (on 2 MiB pages from 8 MiB on); free with free(). */
void *xaligned_alloc(size_t n);

/* ---- atomic file output ---- */
typedef struct AtomicFile {
    FILE *fp;    /* write here */
    char *final; /* destination path; NULL when writing to stdout */
    char *tmp;   /* temporary path */
    int direct;  /* PATH is a device, FIFO or socket, written in place */
} AtomicFile;

/* Opens PATH for atomic writing ("-" or NULL = stdout, written directly).  A
 * symbolic link is followed: the file it points to is replaced, the link stays.  A
 * target that is not a regular file (a device such as /dev/null or /dev/full, a
 * FIFO) is opened and written directly, never replaced; its write errors are
 * reported by atomic_commit. */
int atomic_open(AtomicFile *af, const char *path, Error *e);
/* Flushes, fsyncs, closes and renames into place. */
int atomic_commit(AtomicFile *af, Error *e);
/* Closes and removes the temporary. */
void atomic_abort(AtomicFile *af);

/* Atomic directory output: creates a fresh temporary directory beside FINAL; the
 * caller writes files into it and then calls atomic_dir_commit, which replaces
 * FINAL (an existing FINAL is moved aside and removed only after the rename). */
typedef struct AtomicDir {
    char *final;
    char *tmp;
} AtomicDir;
int atomic_dir_begin(AtomicDir *ad, const char *final, Error *e);
int atomic_dir_commit(AtomicDir *ad, Error *e);
void atomic_dir_abort(AtomicDir *ad);
/* Writing into an existing directory instead of replacing it (the final model of a
 * training run, whose OUT also holds the checkpoints): _begin_into creates DIR if
 * needed and a temporary DIR/.new.tmp-PID-N; _commit_into moves every entry of the
 * temporary into DIR, each rename atomic and SIGINT/SIGTERM held back until all are
 * done, after removing the files of DIR for which STALE(name) (may be NULL) is true
 * and which the temporary does not replace.  Nothing else in DIR is touched. */
int atomic_dir_begin_into(AtomicDir *ad, const char *dir, Error *e);
int atomic_dir_commit_into(AtomicDir *ad, int (*stale)(const char *name), Error *e);

/* Unlinks/removes every registered temporary.  Async-signal-safe: signal handlers
 * call it before _exit. */
void atomic_cleanup_all(void);
/* Installs SIGINT/SIGTERM handlers that clean temporaries and exit 130/143.
 * Training installs its own handler instead (checkpoint first). */
void atomic_install_signal_cleanup(void);

/* Recursively removes a directory tree (used for replacing outputs); never follows
 * a symbolic link.  Async-signal-safe (no malloc, no opendir). */
int remove_tree(const char *path);
/* Copies a file byte for byte. */
int copy_file(const char *src, const char *dst, Error *e);
/* mkdir -p */
int mkdir_p(const char *path, Error *e);

/* fopen(PATH, "rb") for an input: NULL with e set (EX_NOINPUT) when it cannot be
 * opened or is a directory (which fopen opens and every read then fails on). */
FILE *input_fopen(const char *path, Error *e);
/* A stream that yields the N bytes PRE, then the rest of FP: reading back a peeked
 * prefix longer than ungetc's one byte (a pipe cannot be re-read).  Closing it does
 * not close FP. */
FILE *input_unread(FILE *fp, const void *pre, size_t n);
/* Reads a whole file into a NUL-terminated buffer (*len excludes the NUL). */
int read_file(const char *path, char **out, size_t *len, Error *e);

/* Joins a directory and a file name into a new string. */
char *path_join(const char *dir, const char *name);
int file_exists(const char *path);

/* ---- RNG: xoshiro256** seeded by splitmix64 (one Rng per purpose) ---- */
typedef struct Rng {
    uint64_t s[4];
} Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_next(Rng *r);
/* uniform in [0,1) with 24 random bits (exactly representable in float) */
float rng_uniform(Rng *r);
double rng_uniform_double(Rng *r);
/* standard normal (Box-Muller) */
float rng_normal(Rng *r);
/* uniform integer in [0, n) */
uint64_t rng_below(Rng *r, uint64_t n);
/* Fisher-Yates shuffle of an int array */
void rng_shuffle(Rng *r, int *a, size_t n);

/* Monotonic clock in seconds. */
double now_seconds(void);

/* Peak resident set size of this process in bytes (from getrusage). */
size_t peak_rss_bytes(void);

#endif
