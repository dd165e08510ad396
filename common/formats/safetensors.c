/* safetensors.c — see safetensors.h.
 *
 * Reader: the file is mmap'd read-only and the header is validated with the rules of
 * the reference implementation (huggingface/safetensors, safetensors/src/tensor.rs,
 * SafeTensors::read_metadata and Metadata::validate):
 *   - the file holds at least the 8-byte length prefix (HeaderTooSmall);
 *   - N <= 100,000,000 (HeaderTooLarge) and 8 + N <= file size (InvalidHeaderLength);
 *   - the header is UTF-8 JSON starting with '{' (InvalidHeaderStart), may be padded
 *     with trailing spaces, and is one object (InvalidHeaderDeserialization);
 *   - every entry but "__metadata__" has a known dtype, a shape of non-negative
 *     integers and data_offsets [begin, end];
 *   - sorted by offset, the entries tile the buffer from 0 with no gap or overlap
 *     (InvalidOffset), each shape's product times the dtype size equals end - begin
 *     without overflow (ValidationOverflow / TensorInvalidInfo), and the buffer covers
 *     the rest of the file exactly (MetadataIncompleteBuffer).
 * We are stricter than the reference in two places, on purpose: duplicate names
 * (serde would keep the last one silently) and more than 8 dimensions are errors.
 * Invalid UTF-8 (also in names) and NUL bytes are rejected by jansson itself.
 *
 * Writer: the header is padded with spaces to a multiple of 8 bytes so the buffer is
 * aligned as the reference writer does, and the file goes through an AtomicFile.
 * Not for: model semantics (model.c). */
#define _GNU_SOURCE
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

static const struct {
    const char *name;
    StDtype d;
    size_t size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2},         {"BF16", ST_BF16, 2},       {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4},         {"I16", ST_I16, 2},         {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},   {"BOOL", ST_BOOL, 1},       {"U16", ST_U16, 2},         {"U32", ST_U32, 4},
    {"U64", ST_U64, 8}, {"F8_E4M3", ST_F8_E4M3, 1}, {"F8_E5M2", ST_F8_E5M2, 1},
};
#define N_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

const char *st_dtype_name(StDtype d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (st_dtypes[i].d == d) return st_dtypes[i].name;
    return "?";
}

size_t st_dtype_size(StDtype d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (st_dtypes[i].d == d) return st_dtypes[i].size;
    return 0;
}

int st_dtype_parse(const char *s) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return (int)st_dtypes[i].d;
    return -1;
}

/* ---- float conversions ---- */
float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                          /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

/* IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int st_to_f32(const StTensor *t, float *out, Error *e) {
    const unsigned char *p = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(out, p, n * 4); /* the mapping may be unaligned: copy, never cast */
        return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return err_set(e, EX_DATAERR, "tensor \"%s\": dtype %s cannot be read as float32", t->name,
                       st_dtype_name(t->dtype));
    }
}

/* ---- reader ---- */
void st_close(StFile *f) {
    if (f->map && f->map_len) munmap(f->map, f->map_len);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta_get(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

/* Reads a JSON integer in [0, INT64_MAX]; jansson already rejected values that do
 * not fit a long long, and reals ("1.0") are not integers in the reference (usize). */
static int json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0) return -1;
    *out = (uint64_t)x;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} StRange;

static int range_cmp(const void *a, const void *b) {
    const StRange *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

/* Parses one tensor entry of the header into t (name already set). */
static int parse_entry(StFile *f, StTensor *t, const json_t *info, uint64_t *begin, uint64_t *end, Error *e) {
    const char *p = f->path, *nm = t->name;
    if (!json_is_object(info)) return err_set(e, EX_DATAERR, "%s: tensor \"%s\": entry is not an object", p, nm);
    const json_t *jd = json_object_get(info, "dtype");
    if (!json_is_string(jd)) return err_set(e, EX_DATAERR, "%s: tensor \"%s\": missing string field \"dtype\"", p, nm);
    int d = st_dtype_parse(json_string_value(jd));
    if (d < 0)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": unknown dtype \"%s\" (field \"dtype\")", p, nm,
                       json_string_value(jd));
    t->dtype = (StDtype)d;

    const json_t *js = json_object_get(info, "shape");
    if (!json_is_array(js)) return err_set(e, EX_DATAERR, "%s: tensor \"%s\": missing array field \"shape\"", p, nm);
    size_t nd = json_array_size(js);
    if (nd > 8)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": %zu dimensions, at most 8 supported (field \"shape\")", p, nm,
                       nd);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t dim;
        if (json_u64(json_array_get(js, i), &dim) != 0)
            return err_set(e, EX_DATAERR,
                           "%s: tensor \"%s\": shape[%zu] is not a non-negative integer (field \"shape\")", p, nm, i);
        t->shape[i] = (int64_t)dim;
        if (__builtin_mul_overflow(numel, (size_t)dim, &numel))
            return err_set(e, EX_DATAERR, "%s: tensor \"%s\": shape product overflows (field \"shape\")", p, nm);
    }
    t->numel = numel;
    if (__builtin_mul_overflow(numel, st_dtype_size(t->dtype), &t->nbytes))
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": byte size overflows (field \"shape\")", p, nm);

    const json_t *jo = json_object_get(info, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": missing field \"data_offsets\" [begin, end]", p, nm);
    if (json_u64(json_array_get(jo, 0), begin) != 0 || json_u64(json_array_get(jo, 1), end) != 0)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": data_offsets are not non-negative integers", p, nm);
    if (*end < *begin)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\": data_offsets end %llu < begin %llu", p, nm,
                       (unsigned long long)*end, (unsigned long long)*begin);
    if (*end - *begin != t->nbytes)
        return err_set(
            e, EX_DATAERR,
            "%s: tensor \"%s\": data_offsets span %llu bytes but shape x %s needs %zu (field \"data_offsets\")", p, nm,
            (unsigned long long)(*end - *begin), st_dtype_name(t->dtype), t->nbytes);
    return 0;
}

static int parse_metadata(StFile *f, const json_t *meta, Error *e) {
    if (!json_is_object(meta)) return err_set(e, EX_DATAERR, "%s: \"__metadata__\" is not an object", f->path);
    size_t n = json_object_size(meta);
    f->meta_keys = xcalloc(n ? n : 1, sizeof(char *));
    f->meta_vals = xcalloc(n ? n : 1, sizeof(char *));
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v) {
        if (!json_is_string(v))
            return err_set(e, EX_DATAERR, "%s: \"__metadata__\" value of \"%s\" is not a string", f->path, k);
        f->meta_keys[f->n_meta] = xstrdup(k);
        f->meta_vals[f->n_meta] = xstrdup(json_string_value(v));
        f->n_meta++;
    }
    return 0;
}

/* Validates the header bytes hdr[0..hlen) against a buffer of buf_len bytes. */
static int parse_header(StFile *f, const char *hdr, size_t hlen, const unsigned char *buf, uint64_t buf_len, Error *e) {
    if (hlen == 0 || hdr[0] != '{') return err_set(e, EX_DATAERR, "%s: header does not start with '{'", f->path);
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(e, EX_DATAERR, "%s: header is not valid JSON: %s (header byte %d)", f->path, jerr.text,
                       jerr.position);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = err_set(e, EX_DATAERR, "%s: header is not a JSON object", f->path);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->tensors = xcalloc(cap ? cap : 1, sizeof(StTensor));
    StRange *ranges = xcalloc(cap ? cap : 1, sizeof(StRange));
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, val, e))) break;
            continue;
        }
        StTensor *t = &f->tensors[f->n];
        t->name = xstrdup(key);
        f->n++;
        uint64_t b = 0, en = 0;
        if ((rc = parse_entry(f, t, val, &b, &en, e))) break;
        ranges[f->n - 1] = (StRange){b, en, f->n - 1};
    }
    if (!rc) {
        qsort(ranges, f->n, sizeof *ranges, range_cmp);
        uint64_t at = 0;
        for (int i = 0; i < f->n && !rc; i++) {
            const StTensor *t = &f->tensors[ranges[i].idx];
            if (ranges[i].begin != at) {
                rc = err_set(e, EX_DATAERR,
                             "%s: tensor \"%s\": data_offsets begin at %llu, expected %llu (%s between tensors)",
                             f->path, t->name, (unsigned long long)ranges[i].begin, (unsigned long long)at,
                             ranges[i].begin > at ? "gap" : "overlap");
                break;
            }
            if (ranges[i].end > buf_len) {
                rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\": data_offsets end %llu beyond the buffer (%llu bytes)",
                             f->path, t->name, (unsigned long long)ranges[i].end, (unsigned long long)buf_len);
                break;
            }
            at = ranges[i].end;
        }
        if (!rc && at != buf_len)
            rc = err_set(e, EX_DATAERR, "%s: tensors cover %llu bytes of a %llu-byte buffer (trailing bytes)", f->path,
                         (unsigned long long)at, (unsigned long long)buf_len);
        for (int i = 0; i < f->n && !rc; i++) f->tensors[ranges[i].idx].data = buf + ranges[i].begin;
    }
    free(ranges);
out:
    json_decref(root);
    return rc;
}

int st_open(StFile *f, const char *path, Error *e) {
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int code = err_set(e, EX_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
        st_close(f);
        return code;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int code = err_set(e, EX_NOINPUT, "%s: not a regular file", path);
        close(fd);
        st_close(f);
        return code;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        int code = err_set(e, EX_DATAERR, "%s: %zu bytes, too small for the 8-byte header length", path, size);
        st_close(f);
        return code;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        int code = err_set(e, EX_IOERR, "%s: mmap failed: %s", path, strerror(errno));
        st_close(f);
        return code;
    }
    f->map = map;
    f->map_len = size;
    const unsigned char *p = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | p[i]; /* little-endian u64 */
    int rc = 0;
    if (n > ST_MAX_HEADER)
        rc = err_set(e, EX_DATAERR, "%s: header length %llu exceeds the 100 MB limit", path, (unsigned long long)n);
    else if (n > size - 8)
        rc = err_set(e, EX_DATAERR, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                     (unsigned long long)n, size);
    else
        rc = parse_header(f, (const char *)p + 8, (size_t)n, p + 8 + n, size - 8 - n, e);
    if (rc) st_close(f);
    return rc;
}

/* ---- writer ---- */
void st_writer_init(StWriter *w) {
    memset(w, 0, sizeof *w);
}

void st_writer_add(StWriter *w, const char *name, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > 8) die_internal("st_writer_add: %s: ndim %d", name, ndim);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->items = xrealloc(w->items, (size_t)w->cap * sizeof *w->items);
    }
    w->items[w->n].name = xstrdup(name);
    w->items[w->n].ndim = ndim;
    for (int i = 0; i < ndim; i++) w->items[w->n].shape[i] = shape[i];
    w->items[w->n].data = data;
    w->n++;
}

void st_writer_meta(StWriter *w, const char *key, const char *val) {
    w->meta_keys = xrealloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_vals = xrealloc(w->meta_vals, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_keys[w->n_meta] = xstrdup(key);
    w->meta_vals[w->n_meta] = xstrdup(val);
    w->n_meta++;
}

void st_writer_free(StWriter *w) {
    for (int i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    memset(w, 0, sizeof *w);
}

static size_t item_numel(const StWriter *w, int i) {
    size_t n = 1;
    for (int d = 0; d < w->items[i].ndim; d++) n *= (size_t)w->items[i].shape[d];
    return n;
}

int st_writer_write(StWriter *w, const char *path, StDtype dtype, Error *e) {
    if (dtype != ST_F32 && dtype != ST_BF16)
        return err_set(e, EX_SOFTWARE, "%s: can only write F32 or BF16, not %s", path, st_dtype_name(dtype));
    size_t esz = st_dtype_size(dtype);
    json_t *root = json_object();
    if (w->n_meta) {
        json_t *m = json_object();
        for (int i = 0; i < w->n_meta; i++) json_object_set_new(m, w->meta_keys[i], json_string(w->meta_vals[i]));
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t at = 0;
    for (int i = 0; i < w->n; i++) {
        json_t *info = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < w->items[i].ndim; d++) json_array_append_new(shape, json_integer(w->items[i].shape[d]));
        uint64_t nb = (uint64_t)item_numel(w, i) * esz;
        json_array_append_new(offs, json_integer((json_int_t)at));
        json_array_append_new(offs, json_integer((json_int_t)(at + nb)));
        at += nb;
        json_object_set_new(info, "dtype", json_string(st_dtype_name(dtype)));
        json_object_set_new(info, "shape", shape);
        json_object_set_new(info, "data_offsets", offs);
        if (json_object_set_new(root, w->items[i].name, info) != 0) {
            json_decref(root);
            return err_set(e, EX_SOFTWARE, "%s: tensor name \"%s\" is not valid UTF-8", path, w->items[i].name);
        }
    }
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) die_internal("json_dumps failed");
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8; /* 8-byte aligned buffer, padded with spaces */

    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (rc) {
        free(hdr);
        return rc;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, af.fp);
    fwrite(hdr, 1, hlen, af.fp);
    for (size_t i = hlen; i < padded; i++) fputc(' ', af.fp);
    free(hdr);
    enum { CHUNK = 1 << 14 };
    uint16_t *tmp = dtype == ST_BF16 ? xmalloc(CHUNK * sizeof(uint16_t)) : NULL;
    for (int i = 0; i < w->n; i++) {
        size_t n = item_numel(w, i);
        const float *src = w->items[i].data;
        if (dtype == ST_F32) {
            /* little-endian host assumed (x86-64, aarch64), as the format is little-endian */
            if (n) fwrite(src, 4, n, af.fp);
        } else {
            for (size_t s = 0; s < n; s += CHUNK) {
                size_t m = n - s < CHUNK ? n - s : CHUNK;
                for (size_t j = 0; j < m; j++) tmp[j] = st_f32_to_bf16(src[s + j]);
                fwrite(tmp, 2, m, af.fp);
            }
        }
    }
    free(tmp);
    if (ferror(af.fp)) {
        atomic_abort(&af);
        return err_set(e, EX_IOERR, "%s: write error", path);
    }
    return atomic_commit(&af, e);
}
