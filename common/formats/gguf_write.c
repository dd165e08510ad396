/* gguf_write.c — see gguf_write.h.  The byte layout is gguf.md "File Structure";
 * everything is little-endian (the host is, as the reader assumes). */
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

typedef struct WKv {
    char *key;
    uint8_t *val; /* serialised type + value */
    size_t n;
} WKv;

typedef struct WTensor {
    char *name;
    int type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    void *data;
    size_t nbytes;
} WTensor;

struct GgufWriter {
    WKv *kv;
    size_t n_kv, cap_kv;
    WTensor *t;
    size_t n_t, cap_t;
};

/* ---- a growing byte buffer ---- */
typedef struct Bytes {
    uint8_t *p;
    size_t n, cap;
} Bytes;

static void b_put(Bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void b_le(Bytes *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    b_put(b, t, (size_t)n);
}
static void b_str(Bytes *b, const char *s, size_t n) {
    b_le(b, n, 8);
    b_put(b, s, n);
}

GgufWriter *gguf_writer_new(void) {
    return xcalloc(1, sizeof(GgufWriter));
}

void gguf_writer_free(GgufWriter *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static void add_kv(GgufWriter *w, const char *key, Bytes *val) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) die_internal("gguf writer: key \"%s\" added twice", key);
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv * 2 + 16;
        w->kv = xrealloc(w->kv, w->cap_kv * sizeof *w->kv);
    }
    w->kv[w->n_kv++] = (WKv){xstrdup(key), val->p, val->n};
}

void gguf_w_str(GgufWriter *w, const char *key, const char *val) {
    Bytes b = {0};
    b_le(&b, GGUF_STRING, 4);
    b_str(&b, val, strlen(val));
    add_kv(w, key, &b);
}

static void scalar(GgufWriter *w, const char *key, GgufType t, uint64_t raw, int size) {
    Bytes b = {0};
    b_le(&b, t, 4);
    b_le(&b, raw, size);
    add_kv(w, key, &b);
}

void gguf_w_u32(GgufWriter *w, const char *key, uint32_t val) {
    scalar(w, key, GGUF_UINT32, val, 4);
}
void gguf_w_i32(GgufWriter *w, const char *key, int32_t val) {
    scalar(w, key, GGUF_INT32, (uint32_t)val, 4);
}
void gguf_w_f32(GgufWriter *w, const char *key, float val) {
    uint32_t u;
    memcpy(&u, &val, 4);
    scalar(w, key, GGUF_FLOAT32, u, 4);
}
void gguf_w_bool(GgufWriter *w, const char *key, int val) {
    scalar(w, key, GGUF_BOOL, val ? 1 : 0, 1);
}

void gguf_w_arr_str(GgufWriter *w, const char *key, const char *const *strs, const size_t *lens, size_t n) {
    Bytes b = {0};
    b_le(&b, GGUF_ARRAY, 4);
    b_le(&b, GGUF_STRING, 4);
    b_le(&b, n, 8);
    for (size_t i = 0; i < n; i++) b_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
    add_kv(w, key, &b);
}

static void arr32(GgufWriter *w, const char *key, GgufType t, const void *vals, size_t n) {
    Bytes b = {0};
    b_le(&b, GGUF_ARRAY, 4);
    b_le(&b, t, 4);
    b_le(&b, n, 8);
    const uint8_t *p = vals;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        b_le(&b, u, 4);
    }
    add_kv(w, key, &b);
}

void gguf_w_arr_i32(GgufWriter *w, const char *key, const int32_t *vals, size_t n) {
    arr32(w, key, GGUF_INT32, vals, n);
}
void gguf_w_arr_f32(GgufWriter *w, const char *key, const float *vals, size_t n) {
    arr32(w, key, GGUF_FLOAT32, vals, n);
}

void gguf_w_tensor(GgufWriter *w, const char *name, int type, int n_dims, const int64_t *ne, void *data,
                   size_t nbytes) {
    uint64_t blck, bytes, numel = 1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ggml_type_block(type, &blck, &bytes))
        die_internal("gguf writer: tensor \"%s\": bad type %d or %d dims", name, type, n_dims);
    for (int d = 0; d < n_dims; d++) numel *= (uint64_t)ne[d];
    if ((uint64_t)ne[0] % blck || numel / blck * bytes != nbytes)
        die_internal("gguf writer: tensor \"%s\": %zu bytes for %llu %s elements", name, nbytes,
                     (unsigned long long)numel, ggml_type_name(type));
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t * 2 + 16;
        w->t = xrealloc(w->t, w->cap_t * sizeof *w->t);
    }
    WTensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->ne[d] = ne[d];
    t->data = data;
    t->nbytes = nbytes;
}

static size_t pad_to(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

int gguf_writer_write(GgufWriter *w, const char *path, Error *e) {
    /* header + metadata + tensor infos in memory (small), then the data streamed */
    Bytes h = {0};
    b_le(&h, 0x46554747u, 4); /* "GGUF" */
    b_le(&h, 3, 4);
    b_le(&h, w->n_t, 8);
    b_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        b_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        b_put(&h, w->kv[i].val, w->kv[i].n);
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const WTensor *t = &w->t[i];
        b_str(&h, t->name, strlen(t->name));
        b_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) b_le(&h, (uint64_t)t->ne[d], 8);
        b_le(&h, (uint64_t)t->type, 4);
        b_le(&h, off, 8);
        off = pad_to(off + t->nbytes, GGUF_DEFAULT_ALIGNMENT);
    }
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    b_put(&h, zeros, pad_to(h.n, GGUF_DEFAULT_ALIGNMENT) - h.n);

    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (rc) {
        free(h.p);
        return rc;
    }
    int bad = fwrite(h.p, 1, h.n, af.fp) != h.n;
    free(h.p);
    for (size_t i = 0; i < w->n_t && !bad; i++) {
        const WTensor *t = &w->t[i];
        bad |= fwrite(t->data, 1, t->nbytes, af.fp) != t->nbytes;
        /* gguf.md: each tensor's data is padded to the alignment; the last one too,
         * as gguf-py's writer does */
        size_t pad = pad_to(t->nbytes, GGUF_DEFAULT_ALIGNMENT) - t->nbytes;
        bad |= fwrite(zeros, 1, pad, af.fp) != pad;
    }
    if (bad) {
        int err = errno;
        atomic_abort(&af);
        return err_set(e, EX_IOERR, "%s: write failed: %s", path, strerror(err));
    }
    return atomic_commit(&af, e);
}
