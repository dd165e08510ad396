/* ilog.c — see ilog.h. */
#define _GNU_SOURCE
#include "ilog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ilog_open(Ilog *l, const char *path, Error *e) {
    memset(l, 0, sizeof *l);
    l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) return err_set(e, EX_CANTCREAT, "%s: %s", path, strerror(errno));
    l->path = xstrdup(path);
    l->sync = 1;
    pthread_mutex_init(&l->mu, NULL);
    /* a torn last line (crash mid-write) gets its newline, so it stays one bad line */
    struct stat st;
    if (fstat(l->fd, &st) == 0 && st.st_size > 0) {
        int rfd = open(path, O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (rfd >= 0) {
            if (pread(rfd, &last, 1, st.st_size - 1) != 1) last = '\n';
            close(rfd);
        }
        if (last != '\n' && (write_all(l->fd, "\n", 1) || fdatasync(l->fd))) {
            int rc = err_set(e, EX_IOERR, "%s: %s", path, strerror(errno));
            ilog_close(l);
            return rc;
        }
    }
    return 0;
}

void ilog_close(Ilog *l) {
    if (l->fd > 0) close(l->fd);
    if (l->path) pthread_mutex_destroy(&l->mu);
    free(l->path);
    memset(l, 0, sizeof *l);
}

int ilog_append(Ilog *l, const json_t *rec, Error *e) {
    char *s = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    if (!s) return err_set(e, EX_SOFTWARE, "cannot serialise a log record");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    if (write_all(l->fd, s, n) || (l->sync && fdatasync(l->fd)))
        rc = err_set(e, EX_IOERR, "%s: %s", l->path, strerror(errno));
    else
        l->records++;
    pthread_mutex_unlock(&l->mu);
    free(s);
    return rc;
}

int ilog_read(const char *path, int (*fn)(void *ctx, json_t *rec, long line, Error *e), void *ctx, long *torn,
              Error *e) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(e, errno == ENOENT ? EX_NOINPUT : EX_IOERR, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    long line = 0;
    int rc = 0;
    if (torn) *torn = 0;
    while (!rc && (n = getline(&buf, &cap, fp)) >= 0) {
        line++;
        int terminated = n > 0 && buf[n - 1] == '\n';
        size_t len = (size_t)n - terminated;
        size_t k = 0;
        while (k < len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r')) k++;
        if (k == len) continue;
        json_error_t je;
        json_t *rec = json_loadb(buf, len, JSON_ALLOW_NUL, &je); /* a model may emit byte 0 */
        if (!json_is_object(rec)) {
            json_decref(rec);
            /* a fragment a crash left: no newline of its own (last line), or a line that
             * ilog_open terminated, recognisable because it is not a whole object */
            if (!terminated || (rec == NULL && je.position >= (int)len)) {
                if (torn) (*torn)++;
                continue;
            }
            rc = err_set(e, EX_DATAERR, "%s:%ld: not a JSON object (%s)", path, line, je.text);
            break;
        }
        rc = fn(ctx, rec, line, e);
        json_decref(rec);
    }
    if (!rc && ferror(fp)) rc = err_set(e, EX_IOERR, "%s: read error", path);
    free(buf);
    fclose(fp);
    return rc;
}

void ilog_time(char *buf, size_t n) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%03ldZ", b, (long)(tv.tv_usec / 1000));
}

void ilog_new_id(const char *prefix, char *buf, size_t n) {
    unsigned char r[12];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: time and a counter still make ids unique in one process */
        static unsigned long ctr;
        unsigned long long t = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        unsigned long c = __atomic_add_fetch(&ctr, 1, __ATOMIC_RELAXED);
        memcpy(r, &t, 8);
        memcpy(r + 8, &c, 4);
    }
    int k = snprintf(buf, n, "%s-", prefix);
    for (int i = 0; i < 12 && k + 2 < (int)n; i++) k += snprintf(buf + k, n - k, "%02x", r[i]);
}
