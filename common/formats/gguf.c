/* gguf.c — see gguf.h.  A bounds-checked cursor walks the header; nothing is read
 * or allocated before the bytes it needs are known to be in the file. */
#define _GNU_SOURCE
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

/* gguf.md: keys are at most 65535 bytes; tensor names at most 64 (GGML_MAX_NAME)
 * in ggml, but files in the wild use longer ones, so we allow up to 4096. */
#define GGUF_MAX_KEY 65535
#define GGUF_MAX_TENSOR_NAME 4096

typedef struct Cursor {
    const uint8_t *base;
    size_t len, pos;
    const char *name;
    Error *e;
} Cursor;

static int cur_fail(Cursor *c, const char *what, const char *field) {
    if (field) return err_set(c->e, EX_DATAERR, "%s: byte %zu: %s (field \"%s\")", c->name, c->pos, what, field);
    return err_set(c->e, EX_DATAERR, "%s: byte %zu: %s", c->name, c->pos, what);
}

static int cur_need(Cursor *c, uint64_t n, const char *field) {
    if (n > c->len - c->pos) {
        char what[160];
        snprintf(what, sizeof what, "truncated file: need %" PRIu64 " more bytes, %zu left", n, c->len - c->pos);
        return cur_fail(c, what, field);
    }
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int cur_u32(Cursor *c, uint32_t *out, const char *field) {
    if (cur_need(c, 4, field)) return EX_DATAERR;
    *out = (uint32_t)rd_le(c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int cur_u64(Cursor *c, uint64_t *out, const char *field) {
    if (cur_need(c, 8, field)) return EX_DATAERR;
    *out = rd_le(c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int cur_str(Cursor *c, GgufStr *s, const char *field) {
    uint64_t n;
    if (cur_u64(c, &n, field)) return EX_DATAERR;
    if (n > c->len - c->pos) {
        c->pos -= 8;
        char what[160];
        snprintf(what, sizeof what, "string length %" PRIu64 " runs past the end of the file (%zu bytes left)", n,
                 c->len - c->pos - 8);
        return cur_fail(c, what, field);
    }
    s->p = (const char *)c->base + c->pos;
    s->n = n;
    c->pos += n;
    return 0;
}

static const char *type_names[GGUF_NTYPES] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                              "bool",  "string", "array",  "uint64", "int64",  "float64"};

const char *gguf_type_name(GgufType t) {
    return (unsigned)t < GGUF_NTYPES ? type_names[t] : "invalid";
}

/* Size in bytes of a scalar metadata type; 0 for string/array/invalid. */
static int scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_UINT8:
    case GGUF_INT8:
    case GGUF_BOOL:
        return 1;
    case GGUF_UINT16:
    case GGUF_INT16:
        return 2;
    case GGUF_UINT32:
    case GGUF_INT32:
    case GGUF_FLOAT32:
        return 4;
    case GGUF_UINT64:
    case GGUF_INT64:
    case GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* ggml type traits: block size in elements and bytes per block (ggml.c
 * type_traits; the same table as gguf-py's GGML_QUANT_SIZES).  Only types whose
 * layout we are sure of are listed; anything else is refused as unknown. */
static const struct {
    int type;
    const char *name;
    uint32_t blck, bytes;
} ggml_types[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},     {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},  {14, "Q6_K", 256, 210},
    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98},
    {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},       {26, "I32", 1, 4},
    {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},  {30, "BF16", 1, 2},
    {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

const char *ggml_type_name(int type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].type == type) return ggml_types[i].name;
    return NULL;
}

int ggml_type_block(int type, uint64_t *blck, uint64_t *bytes) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].type == type) {
            *blck = ggml_types[i].blck;
            *bytes = ggml_types[i].bytes;
            return 1;
        }
    *blck = *bytes = 0;
    return 0;
}

/* Copies a key or tensor name into a NUL-terminated string, refusing embedded NULs
 * and empty or over-long names. */
static int name_copy(Cursor *c, const GgufStr *s, uint64_t max, char **out, const char *field) {
    if (s->n == 0) return cur_fail(c, "empty name", field);
    if (s->n > max) {
        char what[96];
        snprintf(what, sizeof what, "name of %" PRIu64 " bytes exceeds the limit of %" PRIu64, s->n, max);
        return cur_fail(c, what, field);
    }
    if (memchr(s->p, 0, s->n)) return cur_fail(c, "name contains a NUL byte", field);
    char *p = xmalloc(s->n + 1);
    memcpy(p, s->p, s->n);
    p[s->n] = 0;
    *out = p;
    return 0;
}

static int read_scalar(Cursor *c, uint32_t t, GgufKV *kv, const char *key) {
    int sz = scalar_size(t);
    if (cur_need(c, sz, key)) return EX_DATAERR;
    uint64_t raw = rd_le(c->base + c->pos, sz);
    switch (t) {
    case GGUF_UINT8:
    case GGUF_UINT16:
    case GGUF_UINT32:
    case GGUF_UINT64:
        kv->v.u = raw;
        break;
    case GGUF_INT8:
        kv->v.i = (int8_t)raw;
        break;
    case GGUF_INT16:
        kv->v.i = (int16_t)raw;
        break;
    case GGUF_INT32:
        kv->v.i = (int32_t)raw;
        break;
    case GGUF_INT64:
        kv->v.i = (int64_t)raw;
        break;
    case GGUF_BOOL:
        if (raw > 1) return cur_fail(c, "bool value is neither 0 nor 1", key);
        kv->v.u = raw;
        break;
    case GGUF_FLOAT32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        kv->v.f = f;
        break;
    }
    case GGUF_FLOAT64: {
        double d;
        memcpy(&d, &raw, 8);
        kv->v.f = d;
        break;
    }
    }
    c->pos += sz;
    return 0;
}

static int read_value(Cursor *c, GgufKV *kv) {
    uint32_t t;
    size_t at = c->pos;
    if (cur_u32(c, &t, kv->key)) return EX_DATAERR;
    if (t >= GGUF_NTYPES) {
        c->pos = at;
        char what[64];
        snprintf(what, sizeof what, "unknown value type %u", t);
        return cur_fail(c, what, kv->key);
    }
    kv->type = t;
    if (t == GGUF_STRING) return cur_str(c, &kv->str, kv->key);
    if (t != GGUF_ARRAY) return read_scalar(c, t, kv, kv->key);

    uint32_t et;
    at = c->pos;
    if (cur_u32(c, &et, kv->key)) return EX_DATAERR;
    if (et >= GGUF_NTYPES) {
        c->pos = at;
        char what[64];
        snprintf(what, sizeof what, "unknown array element type %u", et);
        return cur_fail(c, what, kv->key);
    }
    if (et == GGUF_ARRAY) {
        c->pos = at;
        return cur_fail(c, "nested arrays are not supported (gguf.cpp refuses them too)", kv->key);
    }
    uint64_t n;
    at = c->pos;
    if (cur_u64(c, &n, kv->key)) return EX_DATAERR;
    kv->arr_type = et;
    kv->arr_n = n;
    if (et == GGUF_STRING) {
        /* each string needs at least its 8-byte length: bound n before allocating */
        if (n > (c->len - c->pos) / 8) {
            c->pos = at;
            char what[128];
            snprintf(what, sizeof what, "array of %" PRIu64 " strings cannot fit in the %zu bytes left", n,
                     c->len - c->pos - 8);
            return cur_fail(c, what, kv->key);
        }
        kv->arr_str = xmalloc((n ? n : 1) * sizeof(GgufStr));
        for (uint64_t i = 0; i < n; i++)
            if (cur_str(c, &kv->arr_str[i], kv->key)) return EX_DATAERR;
        return 0;
    }
    int sz = scalar_size(et);
    if (n > (c->len - c->pos) / sz) {
        c->pos = at;
        char what[128];
        snprintf(what, sizeof what, "array of %" PRIu64 " %s runs past the end of the file (%zu bytes left)", n,
                 gguf_type_name(et), c->len - c->pos - 8);
        return cur_fail(c, what, kv->key);
    }
    if (et == GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (c->base[c->pos + i] > 1) return cur_fail(c, "bool array element is neither 0 nor 1", kv->key);
    kv->arr_data = c->base + c->pos;
    c->pos += n * sz;
    return 0;
}

/* Keys and tensor names must be unique (gguf.cpp checks both).  A sorted copy of
 * pointers finds duplicates in n log n. */
static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *first_duplicate(char **names, uint64_t n) {
    if (n < 2) return NULL;
    char **s = xmalloc(n * sizeof *s);
    memcpy(s, names, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str_ptr);
    const char *dup = NULL;
    for (uint64_t i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

static int read_tensor_info(Cursor *c, GgufTensor *t, uint64_t idx) {
    char field[64];
    snprintf(field, sizeof field, "tensor %" PRIu64 " name", idx);
    GgufStr s = {0};
    if (cur_str(c, &s, field)) return EX_DATAERR;
    if (name_copy(c, &s, GGUF_MAX_TENSOR_NAME, &t->name, field)) return EX_DATAERR;
    uint32_t nd;
    size_t at = c->pos;
    if (cur_u32(c, &nd, t->name)) return EX_DATAERR;
    if (nd < 1 || nd > GGUF_MAX_DIMS) {
        c->pos = at;
        char what[96];
        snprintf(what, sizeof what, "n_dims %u is outside 1..%d", nd, GGUF_MAX_DIMS);
        return cur_fail(c, what, t->name);
    }
    t->n_dims = nd;
    uint64_t numel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        at = c->pos;
        if (cur_u64(c, &v, t->name)) return EX_DATAERR;
        if (v == 0 || v > (uint64_t)INT64_MAX) {
            c->pos = at;
            char what[96];
            snprintf(what, sizeof what, "dimension %u has size %" PRIu64 " (must be 1..2^63-1)", d, v);
            return cur_fail(c, what, t->name);
        }
        if (numel > (uint64_t)INT64_MAX / v) {
            c->pos = at;
            return cur_fail(c, "element count overflows 64 bits", t->name);
        }
        numel *= v;
        t->ne[d] = (int64_t)v;
    }
    t->numel = numel;
    uint32_t ty;
    at = c->pos;
    if (cur_u32(c, &ty, t->name)) return EX_DATAERR;
    uint64_t blck, bytes;
    if (!ggml_type_block((int)ty, &blck, &bytes)) {
        c->pos = at;
        char what[64];
        snprintf(what, sizeof what, "unknown ggml tensor type %u", ty);
        return cur_fail(c, what, t->name);
    }
    t->type = (int)ty;
    if ((uint64_t)t->ne[0] % blck != 0) {
        c->pos = at;
        char what[128];
        snprintf(what, sizeof what, "row length %" PRId64 " is not a multiple of the %s block size %" PRIu64, t->ne[0],
                 ggml_type_name(t->type), blck);
        return cur_fail(c, what, t->name);
    }
    /* nbytes = numel / blck * bytes; numel/blck <= 2^63 and bytes <= 292, so check */
    uint64_t nblocks = numel / blck;
    if (nblocks > UINT64_MAX / bytes) return cur_fail(c, "tensor byte size overflows 64 bits", t->name);
    t->nbytes = nblocks * bytes;
    if (cur_u64(c, &t->offset, t->name)) return EX_DATAERR;
    return 0;
}

static int parse_header(GgufFile *g, const void *buf, size_t len, const char *name, Error *e) {
    g->path = xstrdup(name ? name : "<gguf>");
    Cursor c = {buf, len, 0, g->path, e};
    uint32_t magic;
    if (len < 4) return cur_fail(&c, "file too short for the GGUF magic", "magic");
    magic = (uint32_t)rd_le(c.base, 4);
    if (magic != 0x46554747u) /* "GGUF" read as little-endian uint32 */
        return cur_fail(&c, "not a GGUF file (magic is not \"GGUF\")", "magic");
    c.pos = 4;
    if (cur_u32(&c, &g->version, "version")) return EX_DATAERR;
    if (g->version == 1) {
        c.pos = 4;
        return cur_fail(&c, "GGUF version 1 (32-bit counts) is not supported; re-convert with a newer llama.cpp",
                        "version");
    }
    if (g->version != 2 && g->version != 3) {
        c.pos = 4;
        char what[128];
        /* gguf.md: v3 allows big-endian files; their version field reads byte-swapped */
        if ((g->version & 0xffff) == 0 && g->version != 0)
            snprintf(what, sizeof what, "big-endian GGUF (version reads 0x%08x) is not supported", g->version);
        else
            snprintf(what, sizeof what, "unsupported GGUF version %u (supported: 2, 3)", g->version);
        return cur_fail(&c, what, "version");
    }
    if (cur_u64(&c, &g->n_tensors, "tensor_count")) return EX_DATAERR;
    if (cur_u64(&c, &g->n_kv, "kv_count")) return EX_DATAERR;
    /* A KV needs at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes; a tensor
     * info at least 8 + 1 + 4 + 8 + 4 + 8.  Bound the counts before allocating. */
    if (g->n_kv > (len - c.pos) / 14) {
        c.pos -= 8;
        char what[128];
        snprintf(what, sizeof what, "%" PRIu64 " key-value pairs cannot fit in the %zu bytes left", g->n_kv,
                 len - c.pos - 8);
        return cur_fail(&c, what, "kv_count");
    }
    if (g->n_tensors > (len - c.pos) / 33) {
        c.pos -= 16;
        char what[128];
        snprintf(what, sizeof what, "%" PRIu64 " tensors cannot fit in the %zu bytes left", g->n_tensors,
                 len - c.pos - 16);
        return cur_fail(&c, what, "tensor_count");
    }
    g->kv = xcalloc(g->n_kv ? g->n_kv : 1, sizeof(GgufKV));
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char field[64];
        snprintf(field, sizeof field, "key %" PRIu64, i);
        GgufStr k = {0};
        if (cur_str(&c, &k, field)) return EX_DATAERR;
        if (name_copy(&c, &k, GGUF_MAX_KEY, &g->kv[i].key, field)) return EX_DATAERR;
        if (read_value(&c, &g->kv[i])) return EX_DATAERR;
    }
    {
        char **keys = xmalloc((g->n_kv ? g->n_kv : 1) * sizeof(char *));
        for (uint64_t i = 0; i < g->n_kv; i++) keys[i] = g->kv[i].key;
        const char *dup = first_duplicate(keys, g->n_kv);
        if (dup) {
            int rc = err_set(e, EX_DATAERR, "%s: duplicate key \"%s\"", g->path, dup);
            free(keys);
            return rc;
        }
        free(keys);
    }

    /* general.alignment: uint32, a non-zero power of two (gguf.md "Alignment") */
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_UINT32)
            return err_set(e, EX_DATAERR, "%s: key \"general.alignment\" has type %s, expected uint32", g->path,
                           gguf_type_name(al->type));
        if (al->v.u == 0 || (al->v.u & (al->v.u - 1)))
            return err_set(e, EX_DATAERR, "%s: key \"general.alignment\" is %" PRIu64 ", not a power of two", g->path,
                           al->v.u);
        g->alignment = al->v.u;
    }

    g->tensors = xcalloc(g->n_tensors ? g->n_tensors : 1, sizeof(GgufTensor));
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (read_tensor_info(&c, &g->tensors[i], i)) return EX_DATAERR;
    {
        char **names = xmalloc((g->n_tensors ? g->n_tensors : 1) * sizeof(char *));
        for (uint64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
        const char *dup = first_duplicate(names, g->n_tensors);
        if (dup) {
            int rc = err_set(e, EX_DATAERR, "%s: duplicate tensor name \"%s\"", g->path, dup);
            free(names);
            return rc;
        }
        free(names);
    }

    /* data section: starts at the end of the header rounded up to the alignment */
    uint64_t data = ((uint64_t)c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors > 0 && data > len)
        return err_set(e, EX_DATAERR, "%s: data section would start at byte %" PRIu64 ", past the end (%zu bytes)",
                       g->path, data, len);
    g->data_offset = data;
    uint64_t avail = data <= len ? len - data : 0;
    uint64_t expect = 0; /* gguf.cpp: each tensor starts where the previous one ended, aligned */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return err_set(e, EX_DATAERR,
                           "%s: tensor \"%s\": offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, g->path,
                           t->name, t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return err_set(e, EX_DATAERR,
                           "%s: tensor \"%s\": data [%" PRIu64 ", %" PRIu64 ") lies outside the %" PRIu64
                           "-byte data section",
                           g->path, t->name, t->offset, t->offset + t->nbytes, avail);
        if (t->offset != expect)
            return err_set(e, EX_DATAERR,
                           "%s: tensor \"%s\": offset %" PRIu64 ", expected %" PRIu64
                           " (tensors must be stored in order without overlap)",
                           g->path, t->name, t->offset, expect);
        t->data = (const uint8_t *)buf + data + t->offset;
        expect = (t->offset + t->nbytes + g->alignment - 1) / g->alignment * g->alignment;
    }
    return 0;
}

int gguf_parse(GgufFile *g, const void *buf, size_t len, const char *name, Error *e) {
    memset(g, 0, sizeof *g);
    int rc = parse_header(g, buf, len, name, e);
    if (rc) gguf_close(g);
    return rc;
}

int gguf_open(GgufFile *g, const char *path, Error *e) {
    memset(g, 0, sizeof *g);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, EX_NOINPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, EX_NOINPUT, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            return err_set(e, EX_IOERR, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    static const uint8_t empty[1];
    int rc = gguf_parse(g, map ? map : empty, len, path, e);
    if (rc) {
        if (map) munmap(map, len);
        return rc;
    }
    g->map = map;
    g->map_len = len;
    return 0;
}

void gguf_close(GgufFile *g) {
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].arr_str);
        }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    if (g->map) munmap(g->map, g->map_len);
    memset(g, 0, sizeof *g);
}

const GgufKV *gguf_find_kv(const GgufFile *g, const char *key) {
    if (!g->kv) return NULL;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_find_tensor(const GgufFile *g, const char *name) {
    if (!g->tensors) return NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static const GgufKV *kv_lookup(const GgufFile *g, const char *key, int *found, Error *e, int *rc) {
    const GgufKV *kv = gguf_find_kv(g, key);
    *rc = 0;
    if (found) *found = kv != NULL;
    if (!kv && !found) *rc = err_set(e, EX_DATAERR, "%s: missing key \"%s\"", g->path, key);
    return kv;
}

static int bad_type(const GgufFile *g, const GgufKV *kv, const char *want, Error *e) {
    return err_set(e, EX_DATAERR, "%s: key \"%s\" has type %s, expected %s", g->path, kv->key, gguf_type_name(kv->type),
                   want);
}

/* Which member of a KV's value a numeric type is read into (v.u, v.i or v.f). */
typedef enum { NUM_NONE, NUM_UNSIGNED, NUM_SIGNED, NUM_FLOAT } NumClass;
static NumClass number_class(uint32_t t) {
    switch (t) {
    case GGUF_UINT8:
    case GGUF_UINT16:
    case GGUF_UINT32:
    case GGUF_UINT64:
        return NUM_UNSIGNED;
    case GGUF_INT8:
    case GGUF_INT16:
    case GGUF_INT32:
    case GGUF_INT64:
        return NUM_SIGNED;
    case GGUF_FLOAT32:
    case GGUF_FLOAT64:
        return NUM_FLOAT;
    default:
        return NUM_NONE;
    }
}

int gguf_get_u64(const GgufFile *g, const char *key, uint64_t *out, int *found, Error *e) {
    int rc;
    const GgufKV *kv = kv_lookup(g, key, found, e, &rc);
    if (!kv) return rc;
    switch (number_class(kv->type)) {
    case NUM_UNSIGNED:
        *out = kv->v.u;
        return 0;
    case NUM_SIGNED:
        if (kv->v.i < 0)
            return err_set(e, EX_DATAERR, "%s: key \"%s\" is negative (%" PRId64 ")", g->path, key, kv->v.i);
        *out = (uint64_t)kv->v.i;
        return 0;
    default:
        return bad_type(g, kv, "an integer", e);
    }
}

int gguf_get_f64(const GgufFile *g, const char *key, double *out, int *found, Error *e) {
    int rc;
    const GgufKV *kv = kv_lookup(g, key, found, e, &rc);
    if (!kv) return rc;
    switch (number_class(kv->type)) {
    case NUM_FLOAT:
        *out = kv->v.f;
        return 0;
    case NUM_UNSIGNED:
        *out = (double)kv->v.u;
        return 0;
    case NUM_SIGNED:
        *out = (double)kv->v.i;
        return 0;
    default:
        return bad_type(g, kv, "a number", e);
    }
}

int gguf_get_bool(const GgufFile *g, const char *key, int *out, int *found, Error *e) {
    int rc;
    const GgufKV *kv = kv_lookup(g, key, found, e, &rc);
    if (!kv) return rc;
    if (kv->type != GGUF_BOOL) return bad_type(g, kv, "bool", e);
    *out = (int)kv->v.u;
    return 0;
}

int gguf_get_str(const GgufFile *g, const char *key, char **out, int *found, Error *e) {
    int rc;
    const GgufKV *kv = kv_lookup(g, key, found, e, &rc);
    if (!kv) return rc;
    if (kv->type != GGUF_STRING) return bad_type(g, kv, "string", e);
    if (memchr(kv->str.p, 0, kv->str.n))
        return err_set(e, EX_DATAERR, "%s: key \"%s\": string contains a NUL byte", g->path, key);
    char *s = xmalloc(kv->str.n + 1);
    memcpy(s, kv->str.p, kv->str.n);
    s[kv->str.n] = 0;
    *out = s;
    return 0;
}
