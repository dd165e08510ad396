/* util.c — see util.h. */
#define _GNU_SOURCE
#include "util.h"

#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Large buffers (weights, gradients, optimizer state, activations:
 * hundreds of MB each) are asked to sit on 2 MiB pages, which Linux gives on request
 * when transparent huge pages are in "madvise" mode (Debian's default; "always" needs
 * no request, "never" ignores it): one page fault per 2 MiB instead of 512 when a
 * buffer is first touched, and fewer TLB misses in the passes that stream them
 * (AdamW, the products' packing).  Only there and in xcalloc_huge (buffers used whole):
 * xaligned_alloc zeroes the whole buffer, so every page is touched anyway, while a
 * buffer reserved large and filled from the start (a KV cache, xmalloc) would take a
 * whole 2 MiB page per touched corner.  Asked
 * before the first touch; only the 2 MiB-aligned inside of the buffer can be backed
 * so, and a failure changes nothing but the speed. */
#define HUGE_PAGE ((uintptr_t)2 << 20)
#define HUGE_MIN ((size_t)8 << 20)
static void advise_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    if (n < HUGE_MIN) return;
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), e = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p, (void)n;
#endif
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_internal("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_internal("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xcalloc_huge(size_t count, size_t size) {
    void *p = xcalloc(count, size);
    if (count && size <= SIZE_MAX / count) advise_huge(p, count * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_internal("out of memory reallocating %zu bytes", n);
    return q;
}

void *xgrow(void *p, size_t *cap, size_t need, size_t first, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    *cap = c;
    return xrealloc(p, c * elem);
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* Zeroes a new buffer.  The zeroing is the buffer's first touch, so for a large one
 * (the optimizer's moments, gradients' bf16 copies, activations: hundreds of MB,
 * allocated at the first training step) it is mostly page faults: one thread zeroed
 * 2 GB of 2 MiB pages in 0.23-1.3 s, the two threads of the pool in 2 MiB pieces
 * 0.11-0.13 s (a 2-core Zen 4 VM, ten runs each, alternating).  Memory the VM's host has not backed yet costs the
 * host's time either way (0.5-1 GB/s there).  Inside a parallel region it is one memset.  The team is the calling
 * thread's default (a pthread of the server that never set a count gets one per core), which changes nothing but the
 * speed. */
#define ZERO_PAR_MIN ((size_t)32 << 20)
static void zero_new(void *p, size_t n) {
    if (n < ZERO_PAR_MIN || omp_get_level() > 0) {
        memset(p, 0, n);
        return;
    }
    size_t piece = HUGE_PAGE, np = (n + piece - 1) / piece;
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < np; i++) {
        size_t o = i * piece;
        memset((char *)p + o, 0, n - o < piece ? n - o : piece);
    }
}

void *xaligned_alloc(size_t n) {
    size_t rounded = (n + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) die_internal("out of memory allocating %zu bytes", n);
    advise_huge(p, rounded);
    zero_new(p, rounded);
    return p;
}

/* ---- registry of temporaries, for signal cleanup ----
 * The cleanup runs inside signal handlers, so everything it touches is static and
 * every call it makes is async-signal-safe (POSIX 2017 2.4.3: open, openat, close,
 * unlink, unlinkat, lseek, _exit; getdents64 is the raw system call under
 * readdir): no malloc, no opendir, no stdio.  A slot's path is written before the
 * slot is marked used and unmarked before it is reused. */
#define MAX_TEMPS 64
#define TEMP_PATH_MAX 4096
static char temp_paths[MAX_TEMPS][TEMP_PATH_MAX];
static volatile sig_atomic_t temp_used[MAX_TEMPS];
static int temp_is_dir[MAX_TEMPS];

static void temp_register(const char *path, int is_dir) {
    if (strlen(path) >= TEMP_PATH_MAX) return; /* not cleaned on a signal; still removed on abort */
    for (int i = 0; i < MAX_TEMPS; i++)
        if (!temp_used[i]) {
            memcpy(temp_paths[i], path, strlen(path) + 1);
            temp_is_dir[i] = is_dir;
            temp_used[i] = 1;
            return;
        }
}

static void temp_unregister(const char *path) {
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temp_used[i] && strcmp(temp_paths[i], path) == 0) {
            temp_used[i] = 0;
            return;
        }
}

void atomic_cleanup_all(void) {
    for (int i = 0; i < MAX_TEMPS; i++)
        if (temp_used[i]) {
            if (temp_is_dir[i])
                remove_tree(temp_paths[i]);
            else
                unlink(temp_paths[i]);
        }
}

static void cleanup_signal_handler(int sig) {
    atomic_cleanup_all();
    _exit(128 + sig);
}

void atomic_install_signal_cleanup(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_signal_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Blocks SIGINT/SIGTERM around the renames that put an output in place, so no
 * handler runs between "old moved aside" and "new moved in". */
static void signals_hold(sigset_t *old) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, old);
}

static void signals_release(const sigset_t *old) {
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static char *sibling_temp_name(const char *final) {
    static unsigned counter;
    size_t n = strlen(final) + 64;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp-%ld-%u", final, (long)getpid(), counter++);
    return tmp;
}

/* The file a path names after following symbolic links, even a dangling last one
 * (writing through it creates its target, as shell redirection does).  NULL when
 * the links loop. */
static char *follow_links(const char *path) {
    char *p = xstrdup(path);
    for (int hops = 0; hops < 40; hops++) {
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISLNK(st.st_mode)) return p;
        char target[4096];
        ssize_t n = readlink(p, target, sizeof target - 1);
        if (n < 0) return p;
        target[n] = 0;
        char *next;
        char *slash = strrchr(p, '/');
        if (target[0] == '/' || !slash) {
            next = xstrdup(target);
        } else {
            slash[1] = 0;
            next = path_join(p, target);
        }
        free(p);
        p = next;
    }
    free(p);
    return NULL;
}

int atomic_open(AtomicFile *af, const char *path, Error *e) {
    memset(af, 0, sizeof *af);
    if (!path || strcmp(path, "-") == 0) {
        af->fp = stdout;
        return 0;
    }
    /* A symbolic link stays a link: the file it points to is what gets replaced. */
    char *real = follow_links(path);
    if (!real) return err_set(e, EX_CANTCREAT, "%s: too many levels of symbolic links", path);
    struct stat st;
    if (stat(real, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        /* a device, FIFO or socket cannot be replaced by a file (as root, -o /dev/full
         * used to become a regular file): write to it directly */
        int fd = open(real, O_WRONLY | O_CLOEXEC);
        free(real);
        if (fd < 0) return err_set(e, EX_CANTCREAT, "%s: cannot open: %s", path, strerror(errno));
        af->fp = fdopen(fd, "w");
        if (!af->fp) die_internal("fdopen failed");
        af->final = xstrdup(path);
        af->direct = 1;
        return 0;
    }
    af->final = real;
    af->tmp = sibling_temp_name(real);
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int code = err_set(e, EX_CANTCREAT, "%s: cannot create: %s", path, strerror(errno));
        free(af->final);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return code;
    }
    temp_register(af->tmp, 0);
    af->fp = fdopen(fd, "w");
    if (!af->fp) die_internal("fdopen failed");
    return 0;
}

int atomic_commit(AtomicFile *af, Error *e) {
    if (!af->final) { /* stdout */
        if (fflush(stdout) != 0 || ferror(stdout))
            return err_set(e, EX_IOERR, "<stdout>: write error: %s", strerror(errno));
        return 0;
    }
    if (af->direct) { /* a device or FIFO: nothing to rename, but every write error counts */
        int bad = fflush(af->fp) != 0 || ferror(af->fp);
        int err = errno;
        if (fclose(af->fp) != 0 && !bad) bad = 1, err = errno;
        int code = bad ? err_set(e, EX_IOERR, "%s: write error: %s", af->final, strerror(err)) : 0;
        free(af->final);
        memset(af, 0, sizeof *af);
        return code;
    }
    int bad = fflush(af->fp) != 0 || ferror(af->fp);
    if (!bad) bad = fsync(fileno(af->fp)) != 0 && errno != EINVAL;
    if (fclose(af->fp) != 0) bad = 1;
    af->fp = NULL;
    if (bad || rename(af->tmp, af->final) != 0) {
        int code = err_set(e, EX_IOERR, "%s: write failed: %s", af->final, strerror(errno));
        unlink(af->tmp);
        temp_unregister(af->tmp);
        free(af->tmp);
        free(af->final);
        af->tmp = af->final = NULL;
        return code;
    }
    temp_unregister(af->tmp);
    free(af->tmp);
    free(af->final);
    af->tmp = af->final = NULL;
    return 0;
}

void atomic_abort(AtomicFile *af) {
    if (!af->final) return;
    if (af->fp) fclose(af->fp);
    if (af->direct) {
        free(af->final);
        memset(af, 0, sizeof *af);
        return;
    }
    unlink(af->tmp);
    temp_unregister(af->tmp);
    free(af->tmp);
    free(af->final);
    memset(af, 0, sizeof *af);
}

/* The second half of both atomic_dir_begin*: create AD->tmp (its names are set) and
 * register it for removal on a signal; on failure free the names and clear AD. */
static int atomic_dir_make_tmp(AtomicDir *ad, Error *e) {
    if (mkdir(ad->tmp, 0755) != 0) {
        int code = err_set(e, EX_CANTCREAT, "%s: cannot create directory: %s", ad->tmp, strerror(errno));
        free(ad->tmp);
        free(ad->final);
        memset(ad, 0, sizeof *ad);
        return code;
    }
    temp_register(ad->tmp, 1);
    return 0;
}

int atomic_dir_begin(AtomicDir *ad, const char *final, Error *e) {
    memset(ad, 0, sizeof *ad);
    /* strip trailing slashes so the sibling name is a sibling */
    char *f = xstrdup(final);
    size_t n = strlen(f);
    while (n > 1 && f[n - 1] == '/') f[--n] = 0;
    ad->final = f;
    ad->tmp = sibling_temp_name(f);
    return atomic_dir_make_tmp(ad, e);
}

int atomic_dir_commit(AtomicDir *ad, Error *e) {
    char *old = NULL;
    struct stat st;
    sigset_t saved;
    if (lstat(ad->final, &st) == 0) {
        /* only a directory cherry wrote (or any directory with --force): outdir.h */
        int code = outdir_check(ad->final, e);
        if (code) {
            atomic_dir_abort(ad);
            return code;
        }
        old = sibling_temp_name(ad->final);
        signals_hold(&saved);
        if (rename(ad->final, old) != 0) {
            signals_release(&saved);
            int code = err_set(e, EX_CANTCREAT, "%s: cannot replace: %s", ad->final, strerror(errno));
            free(old);
            atomic_dir_abort(ad);
            return code;
        }
    }
    if (!old) signals_hold(&saved);
    if (rename(ad->tmp, ad->final) != 0) {
        int code = err_set(e, EX_CANTCREAT, "%s: cannot rename into place: %s", ad->final, strerror(errno));
        if (old) rename(old, ad->final);
        signals_release(&saved);
        free(old);
        atomic_dir_abort(ad);
        return code;
    }
    temp_unregister(ad->tmp); /* the temporary is the output now: a signal must not remove it */
    signals_release(&saved);
    if (old) {
        remove_tree(old);
        free(old);
    }
    free(ad->tmp);
    free(ad->final);
    memset(ad, 0, sizeof *ad);
    return 0;
}

int atomic_dir_begin_into(AtomicDir *ad, const char *dir, Error *e) {
    memset(ad, 0, sizeof *ad);
    int rc = mkdir_p(dir, e);
    if (rc) return rc;
    char *stem = path_join(dir, ".new");
    ad->final = xstrdup(dir);
    ad->tmp = sibling_temp_name(stem);
    free(stem);
    return atomic_dir_make_tmp(ad, e);
}

static int name_in(const char *name, char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

int atomic_dir_commit_into(AtomicDir *ad, int (*stale)(const char *name), Error *e) {
    char **names = NULL;
    size_t n = 0;
    DIR *d = opendir(ad->tmp);
    if (!d) {
        int code = err_set(e, EX_IOERR, "%s: cannot read: %s", ad->tmp, strerror(errno));
        atomic_dir_abort(ad);
        return code;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xstrdup(de->d_name);
        }
    closedir(d);
    int rc = 0;
    sigset_t saved;
    signals_hold(&saved); /* the renames below are the commit: no handler in between */
    DIR *o = stale ? opendir(ad->final) : NULL;
    while (o && (de = readdir(o)))
        if (stale(de->d_name) && !name_in(de->d_name, names, n)) {
            char *p = path_join(ad->final, de->d_name);
            unlink(p);
            free(p);
        }
    if (o) closedir(o);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *from = path_join(ad->tmp, names[i]), *to = path_join(ad->final, names[i]);
        if (rename(from, to) != 0) rc = err_set(e, EX_CANTCREAT, "%s: cannot move into place: %s", to, strerror(errno));
        free(from);
        free(to);
    }
    signals_release(&saved);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    if (rc) {
        atomic_dir_abort(ad);
        return rc;
    }
    rmdir(ad->tmp);
    temp_unregister(ad->tmp);
    free(ad->tmp);
    free(ad->final);
    memset(ad, 0, sizeof *ad);
    return 0;
}

void atomic_dir_abort(AtomicDir *ad) {
    if (!ad->tmp) return;
    remove_tree(ad->tmp);
    temp_unregister(ad->tmp);
    free(ad->tmp);
    free(ad->final);
    memset(ad, 0, sizeof *ad);
}

/* Empties the directory open as FD (depth levels of subdirectories at most) with
 * async-signal-safe calls only: remove_tree runs in signal handlers. */
static void empty_dir_fd(int fd, int depth) {
    char buf[4096] __attribute__((aligned(8)));
    for (int pass = 0; pass < 1000; pass++) { /* deleting while reading may skip entries: re-read */
        if (lseek(fd, 0, SEEK_SET) != 0) return;
        long removed = 0, n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct linux_dirent64_view {
                    uint64_t ino;
                    int64_t off;
                    unsigned short reclen;
                    unsigned char type;
                    char name[];
                } *d = (struct linux_dirent64_view *)(buf + off);
                off += d->reclen;
                if (!strcmp(d->name, ".") || !strcmp(d->name, "..")) continue;
                if (unlinkat(fd, d->name, 0) == 0) {
                    removed++;
                    continue;
                }
                if ((errno != EISDIR && errno != EPERM) || depth <= 0) continue;
                int sub = openat(fd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) continue;
                empty_dir_fd(sub, depth - 1);
                close(sub);
                if (unlinkat(fd, d->name, AT_REMOVEDIR) == 0) removed++;
            }
        }
        if (removed == 0) return;
    }
}

int remove_tree(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return unlink(path); /* a file or a symbolic link (never followed) */
    empty_dir_fd(fd, 16);
    close(fd);
    return rmdir(path);
}

int copy_file(const char *src, const char *dst, Error *e) {
    FILE *in = fopen(src, "rb");
    if (!in) return err_set(e, EX_NOINPUT, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return err_set(e, EX_CANTCREAT, "%s: cannot create: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) break;
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0) bad = 1;
    if (bad) return err_set(e, EX_IOERR, "%s: copy from %s failed", dst, src);
    return 0;
}

int mkdir_p(const char *path, Error *e) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = err_set(e, EX_CANTCREAT, "%s: cannot create directory: %s", path, strerror(errno));
    free(p);
    return rc;
}

FILE *input_fopen(const char *path, Error *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, EX_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) { /* fopen succeeds, every read fails */
        fclose(f);
        err_set(e, EX_NOINPUT, "%s: is a directory, not an input file", path);
        return NULL;
    }
    return f;
}

typedef struct Unread {
    FILE *rest;
    size_t n, i;
    char pre[];
} Unread;

static ssize_t unread_read(void *cookie, char *buf, size_t size) {
    Unread *u = cookie;
    if (u->i < u->n) {
        size_t k = u->n - u->i < size ? u->n - u->i : size;
        memcpy(buf, u->pre + u->i, k);
        u->i += k;
        return (ssize_t)k;
    }
    size_t got = fread(buf, 1, size, u->rest);
    return got == 0 && ferror(u->rest) ? -1 : (ssize_t)got;
}

static int unread_close(void *cookie) {
    free(cookie);
    return 0;
}

FILE *input_unread(FILE *fp, const void *pre, size_t n) {
    Unread *u = xmalloc(sizeof *u + n);
    u->rest = fp;
    u->n = n;
    u->i = 0;
    memcpy(u->pre, pre, n);
    FILE *f = fopencookie(u, "rb", (cookie_io_functions_t){unread_read, NULL, NULL, unread_close});
    if (!f) die_internal("fopencookie failed");
    return f;
}

int read_file(const char *path, char **out, size_t *len, Error *e) {
    FILE *f = input_fopen(path, e);
    if (!f) return e->code;
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(e, EX_IOERR, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- RNG ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rng_uniform(Rng *r) {
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

double rng_uniform_double(Rng *r) {
    return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

float rng_normal(Rng *r) {
    double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t rng_below(Rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* rejection to avoid modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(r);
    while (x >= limit);
    return x % n;
}

void rng_shuffle(Rng *r, int *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(r, i);
        int t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

size_t peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}
