/* tbevents.c — see tbevents.h.  The protobuf wire format used here (varint keys
 * field << 3 | wire type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; all
 * little-endian) is from https://protobuf.dev/programming-guides/encoding/. */
#include "tbevents.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "util.h"

/* ---- CRC-32C ------------------------------------------------------------------ */
static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t crc32c(const void *p, size_t n) {
    if (!crc_ready) crc_init();
    const unsigned char *b = p;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ b[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t crc32c_masked(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le(unsigned char *out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> (8 * i));
}

int tfrecord_write(FILE *fp, const char *path, const void *data, size_t n, Error *e) {
    unsigned char head[12], tail[4];
    put_le(head, (uint64_t)n, 8);
    put_le(head + 8, crc32c_masked(crc32c(head, 8)), 4);
    put_le(tail, crc32c_masked(crc32c(data, n)), 4);
    if (fwrite(head, 1, 12, fp) != 12 || fwrite(data, 1, n, fp) != n || fwrite(tail, 1, 4, fp) != 4)
        return err_set(e, EX_IOERR, "%s: write error: %s", path, strerror(errno));
    return 0;
}

/* ---- a little protobuf encoder ----------------------------------------------------- */
typedef struct Buf {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_varint(Buf *b, uint64_t v) {
    unsigned char t[10];
    int k = 0;
    do {
        t[k] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v) t[k] |= 0x80;
        k++;
    } while (v);
    buf_put(b, t, (size_t)k);
}
static void put_key(Buf *b, int field, int wire) {
    put_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}
static void put_double(Buf *b, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    unsigned char t[8];
    put_le(t, u, 8);
    put_key(b, field, 1);
    buf_put(b, t, 8);
}
static void put_float(Buf *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    unsigned char t[4];
    put_le(t, u, 4);
    put_key(b, field, 5);
    buf_put(b, t, 4);
}
static void put_bytes(Buf *b, int field, const void *p, size_t n) {
    put_key(b, field, 2);
    put_varint(b, (uint64_t)n);
    buf_put(b, p, n);
}

/* Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }.  event.proto is
 * proto3: fields at their default (0) are left out, as protobuf's serializer does,
 * so our bytes equal those of TensorBoard's own writer (tests/test_tbevents.c). */
static void event_head(Buf *ev, double wall_time, long step) {
    if (wall_time != 0) put_double(ev, 1, wall_time);
    if (step != 0) {
        put_key(ev, 2, 0);
        put_varint(ev, (uint64_t)(int64_t)step); /* int64: two's complement as a varint */
    }
}

/* ---- the writer ------------------------------------------------------------------ */
int tb_open(TbWriter *w, const char *dir, Error *e) {
    memset(w, 0, sizeof *w);
    int rc = mkdir_p(dir, e);
    if (rc) return rc;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* tensorboard finds event files by "tfevents" in the name; the pid and the
     * microseconds keep two runs started in the same second apart */
    char name[400];
    snprintf(name, sizeof name, "events.out.tfevents.%ld.%s.%ld.%06ld", (long)tv.tv_sec, host, (long)getpid(),
             (long)tv.tv_usec);
    char *path = path_join(dir, name);
    FILE *fp = fopen(path, "wbx");
    if (!fp) {
        rc = err_set(e, EX_CANTCREAT, "%s: cannot create: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    w->fp = fp;
    w->path = path;
    return tb_write_file_version(w, (double)tv.tv_sec + tv.tv_usec * 1e-6, e);
}

int tb_write_file_version(TbWriter *w, double wall_time, Error *e) {
    Buf ev = {0};
    event_head(&ev, wall_time, 0);
    put_bytes(&ev, 3, "brain.Event:2", 13);
    int rc = tfrecord_write(w->fp, w->path, ev.p, ev.n, e);
    free(ev.p);
    if (rc == 0 && fflush(w->fp) != 0) rc = err_set(e, EX_IOERR, "%s: write error: %s", w->path, strerror(errno));
    return rc;
}

int tb_write_scalars(TbWriter *w, long step, double wall_time, const char *const *tags, const double *vals, int n,
                     Error *e) {
    if (!w->fp) return 0;
    Buf sum = {0}, val = {0}, ev = {0};
    for (int i = 0; i < n; i++) {
        if (!(vals[i] == vals[i]) || vals[i] - vals[i] != 0) continue; /* NaN or infinite: no point */
        val.n = 0;
        put_bytes(&val, 1, tags[i], strlen(tags[i]));
        put_float(&val, 2, (float)vals[i]);
        put_bytes(&sum, 1, val.p, val.n); /* Summary.value, repeated */
    }
    event_head(&ev, wall_time, step);
    put_bytes(&ev, 5, sum.p ? sum.p : (unsigned char *)"", sum.n);
    int rc = tfrecord_write(w->fp, w->path, ev.p, ev.n, e);
    free(sum.p), free(val.p), free(ev.p);
    if (rc == 0 && fflush(w->fp) != 0) rc = err_set(e, EX_IOERR, "%s: write error: %s", w->path, strerror(errno));
    return rc;
}

int tb_close(TbWriter *w, Error *e) {
    int rc = 0;
    if (w->fp && fclose(w->fp) != 0) rc = err_set(e, EX_IOERR, "%s: write error: %s", w->path, strerror(errno));
    free(w->path);
    memset(w, 0, sizeof *w);
    return rc;
}

void tb_tag(const char *metric, char *out, size_t size) {
    if (strncmp(metric, "eval_", 5) == 0)
        snprintf(out, size, "eval/%s", metric + 5);
    else
        snprintf(out, size, "train/%s", metric);
}
