/* test_gguf.c — the GGUF parser and the dequantisers.
 *
 * Builds a small valid GGUF v3 file byte by byte (layout from ggml docs/gguf.md),
 * checks every key, tensor and dequantised value against hand-computed numbers
 * (block formulas from ggml-quants.c), then writes malformed variants — one per way a
 * header can lie — and checks each is refused with EX_DATAERR and a message naming
 * what is wrong.  Finally every truncation of the valid file and a few thousand
 * seeded random corruptions must be refused or parsed cleanly (the ASan+UBSan build
 * of this test catches any out-of-bounds read). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/dequant.h"
#include "formats/gguf.h"
#include "base/util.h"

/* ---- a byte buffer with little-endian writers ---- */
typedef struct Buf {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_le(Buf *b, uint64_t v, int n) {
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, n);
}
static void u8(Buf *b, unsigned v) {
    put_le(b, v, 1);
}
static void u16(Buf *b, unsigned v) {
    put_le(b, v, 2);
}
static void u32(Buf *b, uint32_t v) {
    put_le(b, v, 4);
}
static void u64(Buf *b, uint64_t v) {
    put_le(b, v, 8);
}
static void str(Buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void f32(Buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u32(b, u);
}

/* ---- the valid file and its malformed variants ---- */
enum Mut {
    M_NONE,
    M_MAGIC,
    M_VERSION1,
    M_VERSION4,
    M_BIGENDIAN,
    M_KV_COUNT_HUGE,
    M_TENSOR_COUNT_HUGE,
    M_KEY_LEN_HUGE,
    M_VALUE_TYPE,
    M_ARRAY_COUNT_HUGE,
    M_NESTED_ARRAY,
    M_ARRAY_ELEM_TYPE,
    M_STR_ARRAY_COUNT_HUGE,
    M_STR_LEN_HUGE,
    M_NDIMS0,
    M_NDIMS5,
    M_DIM0,
    M_DIM_OVERFLOW,
    M_GGML_TYPE,
    M_ROW_NOT_BLOCK,
    M_OFFSET_UNALIGNED,
    M_OFFSET_PAST_END,
    M_OFFSET_OVERLAP,
    M_ALIGN0,
    M_ALIGN3,
    M_ALIGN_TYPE,
    M_DUP_KEY,
    M_DUP_TENSOR,
    M_KEY_NUL,
    M_EMPTY_KEY,
    M_BOOL2,
    M_TRUNC_DATA,
    M_COUNT
};

static const struct {
    const char *name;
    const char *expect; /* substring of the error message */
} mut_info[M_COUNT] = {
    [M_NONE] = {"valid", ""},
    [M_MAGIC] = {"bad magic", "not a GGUF file"},
    [M_VERSION1] = {"version 1", "version 1"},
    [M_VERSION4] = {"version 4", "unsupported GGUF version 4"},
    [M_BIGENDIAN] = {"big-endian", "big-endian"},
    [M_KV_COUNT_HUGE] = {"kv_count huge", "kv_count"},
    [M_TENSOR_COUNT_HUGE] = {"tensor_count huge", "tensor_count"},
    [M_KEY_LEN_HUGE] = {"key length past EOF", "string length"},
    [M_VALUE_TYPE] = {"unknown value type", "unknown value type 13"},
    [M_ARRAY_COUNT_HUGE] = {"int32 array count huge", "runs past the end"},
    [M_NESTED_ARRAY] = {"nested array", "nested arrays"},
    [M_ARRAY_ELEM_TYPE] = {"unknown array element type", "unknown array element type"},
    [M_STR_ARRAY_COUNT_HUGE] = {"string array count huge", "cannot fit"},
    [M_STR_LEN_HUGE] = {"string value length huge", "string length"},
    [M_NDIMS0] = {"n_dims 0", "n_dims 0"},
    [M_NDIMS5] = {"n_dims 5", "n_dims 5"},
    [M_DIM0] = {"dimension 0", "has size 0"},
    [M_DIM_OVERFLOW] = {"element count overflow", "overflows"},
    [M_GGML_TYPE] = {"unknown ggml type", "unknown ggml tensor type 4"},
    [M_ROW_NOT_BLOCK] = {"row not a block multiple", "not a multiple of the Q8_0 block size"},
    [M_OFFSET_UNALIGNED] = {"unaligned offset", "not a multiple of the alignment"},
    [M_OFFSET_PAST_END] = {"offset past end", "outside"},
    [M_OFFSET_OVERLAP] = {"overlapping tensors", "expected"},
    [M_ALIGN0] = {"alignment 0", "not a power of two"},
    [M_ALIGN3] = {"alignment 3", "not a power of two"},
    [M_ALIGN_TYPE] = {"alignment as uint64", "expected uint32"},
    [M_DUP_KEY] = {"duplicate key", "duplicate key"},
    [M_DUP_TENSOR] = {"duplicate tensor", "duplicate tensor name"},
    [M_KEY_NUL] = {"key with NUL", "NUL byte"},
    [M_EMPTY_KEY] = {"empty key", "empty name"},
    [M_BOOL2] = {"bool value 2", "neither 0 nor 1"},
    [M_TRUNC_DATA] = {"last tensor truncated", "outside"},
};

#define ALIGN 64 /* not the default, so the general.alignment key matters */

typedef struct TSpec {
    const char *name;
    int type;
    int nd;
    int64_t ne[4];
    uint64_t nbytes;
} TSpec;

/* Tensor data of the valid file: fixed bit patterns with hand-computed values. */
static const TSpec tspecs[] = {
    {"t.f32", GGML_F32, 1, {4}, 16},       {"t.f16", GGML_F16, 2, {4, 2}, 16}, {"t.bf16", GGML_BF16, 1, {3}, 6},
    {"t.q8_0", GGML_Q8_0, 2, {32, 2}, 68}, {"t.q4_0", GGML_Q4_0, 1, {64}, 36}, {"t.q4_1", GGML_Q4_1, 1, {32}, 20},
};
#define NT (int)(sizeof tspecs / sizeof tspecs[0])
static const uint16_t f16_bits[8] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x0400, 0x3555, 0x03ff};
static const float f16_vals[8] = {
    1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f, -0.0f, 6.103515625e-05f, 0.333251953125f, 6.097555160522461e-05f};
static const uint16_t bf16_bits[3] = {0x3f80, 0xc0a0, 0x4049};
static const float bf16_vals[3] = {1.0f, -5.0f, 3.140625f};

static void write_tensor_data(Buf *b, int i) {
    switch (tspecs[i].type) {
    case GGML_F32:
        for (int j = 0; j < 4; j++) f32(b, 0.5f * (float)j - 1.0f);
        break;
    case GGML_F16:
        for (int j = 0; j < 8; j++) u16(b, f16_bits[j]);
        break;
    case GGML_BF16:
        for (int j = 0; j < 3; j++) u16(b, bf16_bits[j]);
        break;
    case GGML_Q8_0: /* two blocks: d = 0.5 then d = -4; qs = 7j - 100 */
        for (int blk = 0; blk < 2; blk++) {
            u16(b, blk ? 0xc400 : 0x3800);
            for (int j = 0; j < 32; j++) u8(b, (unsigned char)(int8_t)(7 * j - 100));
        }
        break;
    case GGML_Q4_0: /* two blocks: d = 2 then d = 0.125; qs[j] = j | (15-j) << 4 */
        for (int blk = 0; blk < 2; blk++) {
            u16(b, blk ? 0x3000 : 0x4000);
            for (int j = 0; j < 16; j++) u8(b, (unsigned)(j | ((15 - j) << 4)));
        }
        break;
    case GGML_Q4_1: /* d = 0.25, m = -1; qs[j] = (j+3)%16 | j << 4 */
        u16(b, 0x3400);
        u16(b, 0xbc00);
        for (int j = 0; j < 16; j++) u8(b, (unsigned)(((j + 3) % 16) | (j << 4)));
        break;
    }
}

static void expected_values(int i, float *out) {
    switch (tspecs[i].type) {
    case GGML_F32:
        for (int j = 0; j < 4; j++) out[j] = 0.5f * (float)j - 1.0f;
        break;
    case GGML_F16:
        memcpy(out, f16_vals, sizeof f16_vals);
        break;
    case GGML_BF16:
        memcpy(out, bf16_vals, sizeof bf16_vals);
        break;
    case GGML_Q8_0:
        for (int blk = 0; blk < 2; blk++)
            for (int j = 0; j < 32; j++) out[32 * blk + j] = (float)(7 * j - 100) * (blk ? -4.0f : 0.5f);
        break;
    case GGML_Q4_0:
        for (int blk = 0; blk < 2; blk++) {
            float d = blk ? 0.125f : 2.0f;
            for (int j = 0; j < 16; j++) {
                out[32 * blk + j] = (float)(j - 8) * d;
                out[32 * blk + j + 16] = (float)(15 - j - 8) * d;
            }
        }
        break;
    case GGML_Q4_1:
        for (int j = 0; j < 16; j++) {
            out[j] = (float)((j + 3) % 16) * 0.25f - 1.0f;
            out[j + 16] = (float)j * 0.25f - 1.0f;
        }
        break;
    }
}

static void kv_header(Buf *b, const char *key, uint32_t type, enum Mut m) {
    if (m == M_KEY_NUL && strcmp(key, "general.name") == 0) {
        u64(b, 7);
        put(b, "gen\0ral", 7);
    } else if (m == M_EMPTY_KEY && strcmp(key, "general.name") == 0) {
        u64(b, 0);
    } else if (m == M_KEY_LEN_HUGE && strcmp(key, "general.name") == 0) {
        u64(b, (uint64_t)1 << 40);
    } else {
        str(b, key);
    }
    u32(b, type);
}

static Buf build(enum Mut m) {
    Buf b = {0};
    put(&b, m == M_MAGIC ? "GGUG" : "GGUF", 4);
    u32(&b, m == M_VERSION1 ? 1 : m == M_VERSION4 ? 4 : m == M_BIGENDIAN ? 0x03000000u : 3);
    int n_kv = 8 + (m == M_DUP_KEY);
    u64(&b, m == M_TENSOR_COUNT_HUGE ? (uint64_t)1 << 60 : (uint64_t)NT + (m == M_DUP_TENSOR));
    u64(&b, m == M_KV_COUNT_HUGE ? (uint64_t)1 << 61 : (uint64_t)n_kv);

    kv_header(&b, "general.architecture", GGUF_STRING, m);
    if (m == M_STR_LEN_HUGE) {
        u64(&b, UINT64_MAX - 3);
    } else
        str(&b, "llama");
    kv_header(&b, "general.name", m == M_VALUE_TYPE ? 13 : GGUF_STRING, m);
    str(&b, "tiny");
    if (m == M_ALIGN_TYPE) {
        kv_header(&b, "general.alignment", GGUF_UINT64, m);
        u64(&b, ALIGN);
    } else {
        kv_header(&b, "general.alignment", GGUF_UINT32, m);
        u32(&b, m == M_ALIGN0 ? 0 : m == M_ALIGN3 ? 3 : ALIGN);
    }
    kv_header(&b, "test.f32", GGUF_FLOAT32, m);
    f32(&b, 1e-5f);
    kv_header(&b, "test.flag", GGUF_BOOL, m);
    u8(&b, m == M_BOOL2 ? 2 : 1);
    kv_header(&b, "test.i32s", GGUF_ARRAY, m);
    u32(&b, m == M_NESTED_ARRAY ? GGUF_ARRAY : m == M_ARRAY_ELEM_TYPE ? 99 : GGUF_INT32);
    u64(&b, m == M_ARRAY_COUNT_HUGE ? (uint64_t)1 << 62 : 3);
    u32(&b, (uint32_t)-7);
    u32(&b, 0);
    u32(&b, 42);
    kv_header(&b, "test.strs", GGUF_ARRAY, m);
    u32(&b, GGUF_STRING);
    u64(&b, m == M_STR_ARRAY_COUNT_HUGE ? (uint64_t)1 << 59 : 3);
    str(&b, "a b");
    str(&b, "");
    str(&b, "\xc4\xa0t");
    kv_header(&b, "test.u64", GGUF_UINT64, m);
    u64(&b, 12345678901234ULL);
    if (m == M_DUP_KEY) {
        kv_header(&b, "test.flag", GGUF_BOOL, m);
        u8(&b, 0);
    }

    uint64_t off = 0;
    for (int i = 0; i < NT + (m == M_DUP_TENSOR); i++) {
        const TSpec *t = &tspecs[i < NT ? i : 0];
        str(&b, t->name);
        int nd = t->nd;
        int bad_here = i == 1;
        u32(&b, bad_here && m == M_NDIMS0 ? 0 : bad_here && m == M_NDIMS5 ? 5 : (uint32_t)nd);
        if (!(bad_here && (m == M_NDIMS0 || m == M_NDIMS5)))
            for (int d = 0; d < nd; d++) {
                uint64_t v = (uint64_t)t->ne[d];
                if (bad_here && m == M_DIM0 && d == 1) v = 0;
                if (bad_here && m == M_DIM_OVERFLOW) v = (uint64_t)1 << 40;
                u64(&b, v);
            }
        int type = t->type;
        if (bad_here && m == M_GGML_TYPE) type = 4; /* Q4_2, removed from ggml */
        if (t->type == GGML_Q8_0 && m == M_ROW_NOT_BLOCK) type = GGML_Q8_0, b.n -= 16, u64(&b, 16), u64(&b, 4);
        u32(&b, (uint32_t)type);
        uint64_t o = off;
        if (i == 2 && m == M_OFFSET_UNALIGNED) o += 8;
        if (i == 2 && m == M_OFFSET_OVERLAP) o -= ALIGN;
        if (i == NT - 1 && m == M_OFFSET_PAST_END) o += 1024 * ALIGN;
        u64(&b, o);
        off += (t->nbytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    while (b.n % ALIGN) u8(&b, 0);
    for (int i = 0; i < NT; i++) {
        size_t start = b.n;
        write_tensor_data(&b, i);
        if (i < NT - 1)
            while ((b.n - start) % ALIGN) u8(&b, 0);
    }
    if (m == M_TRUNC_DATA) b.n -= 1;
    return b;
}

static char tmpdir[] = "/tmp/test_gguf.XXXXXX";

static char *write_file(const char *name, const Buf *b) {
    char *path = path_join(tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    return path;
}

static void test_valid(void) {
    Buf b = build(M_NONE);
    char *path = write_file("valid.gguf", &b);
    GgufFile g;
    Error e = {0};
    int rc = gguf_open(&g, path, &e);
    CHECK(rc == 0, "valid file: expected success, got %d: %s", rc, e.msg);
    if (rc) return;
    CHECK(g.version == 3, "version: expected 3, got %u", g.version);
    CHECK(g.alignment == ALIGN, "alignment: expected %d, got %llu", ALIGN, (unsigned long long)g.alignment);
    CHECK(g.data_offset % ALIGN == 0, "data offset %llu not aligned", (unsigned long long)g.data_offset);
    char *s = NULL;
    CHECK(gguf_get_str(&g, "general.architecture", &s, NULL, &e) == 0 && s && strcmp(s, "llama") == 0,
          "general.architecture: expected llama, got %s", s ? s : e.msg);
    free(s);
    double f = 0;
    CHECK(gguf_get_f64(&g, "test.f32", &f, NULL, &e) == 0 && f == (double)1e-5f, "test.f32: got %g", f);
    int flag = 0, found = 1;
    CHECK(gguf_get_bool(&g, "test.flag", &flag, NULL, &e) == 0 && flag == 1, "test.flag: expected 1, got %d", flag);
    uint64_t u = 0;
    CHECK(gguf_get_u64(&g, "test.u64", &u, NULL, &e) == 0 && u == 12345678901234ULL, "test.u64: got %llu",
          (unsigned long long)u);
    CHECK(gguf_get_u64(&g, "absent.key", &u, &found, &e) == 0 && found == 0, "absent key: expected found=0");
    rc = gguf_get_u64(&g, "absent.key", &u, NULL, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "missing key \"absent.key\""), "required absent key: got %d %s", rc, e.msg);
    rc = gguf_get_u64(&g, "general.name", &u, NULL, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "expected an integer"), "string as integer: got %d %s", rc, e.msg);
    const GgufKV *kv = gguf_find_kv(&g, "test.i32s");
    CHECK(kv && kv->type == GGUF_ARRAY && kv->arr_type == GGUF_INT32 && kv->arr_n == 3, "test.i32s shape");
    if (kv && kv->arr_n == 3) {
        int32_t v[3];
        memcpy(v, kv->arr_data, sizeof v);
        CHECK(v[0] == -7 && v[1] == 0 && v[2] == 42, "test.i32s: expected -7 0 42, got %d %d %d", v[0], v[1], v[2]);
    }
    kv = gguf_find_kv(&g, "test.strs");
    CHECK(kv && kv->arr_type == GGUF_STRING && kv->arr_n == 3, "test.strs shape");
    if (kv && kv->arr_n == 3) {
        CHECK(kv->arr_str[0].n == 3 && memcmp(kv->arr_str[0].p, "a b", 3) == 0, "test.strs[0]");
        CHECK(kv->arr_str[1].n == 0, "test.strs[1]: expected empty");
        CHECK(kv->arr_str[2].n == 3 && memcmp(kv->arr_str[2].p, "\xc4\xa0t", 3) == 0, "test.strs[2]");
    }
    CHECK(g.n_tensors == NT, "tensor count: expected %d, got %llu", NT, (unsigned long long)g.n_tensors);
    for (int i = 0; i < NT && i < (int)g.n_tensors; i++) {
        const GgufTensor *t = gguf_find_tensor(&g, tspecs[i].name);
        CHECK(t != NULL, "tensor %s missing", tspecs[i].name);
        if (!t) continue;
        CHECK(t->type == tspecs[i].type && t->n_dims == tspecs[i].nd && t->nbytes == tspecs[i].nbytes,
              "tensor %s: expected type %d ndims %d nbytes %llu, got %d %d %llu", t->name, tspecs[i].type, tspecs[i].nd,
              (unsigned long long)tspecs[i].nbytes, t->type, t->n_dims, (unsigned long long)t->nbytes);
        float got[64], want[64];
        CHECK(t->numel <= 64, "numel");
        rc = dequant_row(t->type, t->data, t->nbytes, got, t->numel, &e);
        CHECK(rc == 0, "dequant %s: %s", t->name, e.msg);
        expected_values(i, want);
        for (uint64_t j = 0; j < t->numel; j++)
            CHECK(memcmp(&got[j], &want[j], 4) == 0, "%s[%llu]: expected %.9g, got %.9g", t->name,
                  (unsigned long long)j, want[j], got[j]);
    }
    /* dequant_row argument checks */
    float tmp[64];
    const GgufTensor *q8 = gguf_find_tensor(&g, "t.q8_0");
    rc = dequant_row(GGML_Q8_0, q8->data, q8->nbytes, tmp, 48, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "multiple"), "dequant 48 Q8_0 elements: got %d %s", rc, e.msg);
    rc = dequant_row(GGML_Q8_0, q8->data, q8->nbytes - 1, tmp, 64, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "does not hold"), "dequant short Q8_0: got %d %s", rc, e.msg);
    rc = dequant_row(16, q8->data, 66, tmp, 256, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "IQ2_XXS") && strstr(e.msg, "not supported"), "dequant IQ2_XXS: got %d %s",
          rc, e.msg);
    gguf_close(&g);
    free(path);
    free(b.p);
}

/* GGUF v2 has the same layout as v3 (v3 only added big-endian files): accepted. */
static void test_version2(void) {
    Buf b = build(M_NONE);
    b.p[4] = 2;
    GgufFile g;
    Error e = {0};
    int rc = gguf_parse(&g, b.p, b.n, "v2", &e);
    CHECK(rc == 0 && g.version == 2 && g.n_tensors == NT, "version 2 file: expected success, got %d %s", rc, e.msg);
    if (rc == 0) gguf_close(&g);
    free(b.p);
}

static void test_f16_exhaustive(void) {
    /* every finite binary16 value: widening and rounding back through float must
     * agree with the hardware/compiler conversion (_Float16 where available) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dequant_f16((uint16_t)h);
        uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
        double want;
        if (exp == 0x1f) {
            if ((man == 0) != (isinf(f) != 0)) bad++;
            if (man != 0 && !isnan(f)) bad++;
            continue;
        }
        want = exp == 0 ? ldexp((double)man, -24) : ldexp(1.0 + man / 1024.0, (int)exp - 15);
        if (h & 0x8000) want = -want;
        if ((double)f != want || !signbit(f) != !signbit(want)) {
            if (bad < 5) printf("f16 0x%04x: expected %.17g, got %.17g\n", h, want, (double)f);
            bad++;
        }
    }
    CHECK(bad == 0, "f16 conversion: %d of 65536 values wrong", bad);
}

static void test_malformed(void) {
    int n_files = 0;
    for (int m = 1; m < M_COUNT; m++) {
        Buf b = build((enum Mut)m);
        char name[64];
        snprintf(name, sizeof name, "bad%02d.gguf", m);
        char *path = write_file(name, &b);
        n_files++;
        GgufFile g;
        Error e = {0};
        int rc = gguf_open(&g, path, &e);
        CHECK(rc == EX_DATAERR && strstr(e.msg, mut_info[m].expect) && strstr(e.msg, path),
              "%s: expected exit %d and a message with \"%s\" naming the file, got %d \"%s\"", mut_info[m].name,
              EX_DATAERR, mut_info[m].expect, rc, e.msg);
        if (rc == 0) gguf_close(&g);
        free(path);
        free(b.p);
    }
    /* empty file, and a file with only part of the magic */
    Buf b = {0};
    char *path = write_file("empty.gguf", &b);
    GgufFile g;
    Error e = {0};
    int rc = gguf_open(&g, path, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "too short"), "empty file: expected %d, got %d %s", EX_DATAERR, rc, e.msg);
    free(path);
    put(&b, "GGU", 3);
    path = write_file("short.gguf", &b);
    rc = gguf_open(&g, path, &e);
    CHECK(rc == EX_DATAERR, "3-byte file: expected %d, got %d %s", EX_DATAERR, rc, e.msg);
    free(path);
    free(b.p);
    n_files += 2;
    rc = gguf_open(&g, "/nonexistent/x.gguf", &e);
    CHECK(rc == EX_NOINPUT, "missing file: expected %d, got %d", EX_NOINPUT, rc);
    rc = gguf_open(&g, tmpdir, &e);
    CHECK(rc == EX_NOINPUT, "directory: expected %d, got %d", EX_NOINPUT, rc);
    printf("malformed files refused: %d\n", n_files);
}

static void test_truncations_and_corruption(void) {
    Buf b = build(M_NONE);
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        /* a fresh heap copy of exactly n bytes, so ASan sees any read past it */
        unsigned char *p = xmalloc(n ? n : 1);
        memcpy(p, b.p, n);
        GgufFile g;
        Error e = {0};
        int rc = gguf_parse(&g, p, n, "trunc", &e);
        if (rc != EX_DATAERR) {
            if (bad < 5) printf("truncated to %zu of %zu bytes: expected %d, got %d\n", n, b.n, EX_DATAERR, rc);
            bad++;
            if (rc == 0) gguf_close(&g);
        }
        free(p);
    }
    CHECK(bad == 0, "%d truncations were not refused", bad);

    Rng r;
    rng_seed(&r, 8);
    int ok = 0, refused = 0, other = 0;
    for (int it = 0; it < 4000; it++) {
        unsigned char *p = xmalloc(b.n);
        memcpy(p, b.p, b.n);
        int k = 1 + (int)rng_below(&r, 4);
        for (int j = 0; j < k; j++) {
            /* corrupt mostly the header, where the lengths and counts live */
            size_t at = (size_t)rng_below(&r, rng_below(&r, 4) ? 400 : b.n);
            if (at >= b.n) at = b.n - 1;
            p[at] = rng_below(&r, 3) ? (unsigned char)rng_next(&r) : (unsigned char)(p[at] ^ 0x80);
        }
        GgufFile g;
        Error e = {0};
        int rc = gguf_parse(&g, p, b.n, "fuzz", &e);
        if (rc == 0) {
            ok++;
            /* whatever parsed must be dequantisable within its own bounds */
            for (uint64_t i = 0; i < g.n_tensors; i++) {
                const GgufTensor *t = &g.tensors[i];
                if (!dequant_supported(t->type) || t->numel > 4096) continue;
                float *out = xmalloc(t->numel * sizeof(float));
                dequant_row(t->type, t->data, t->nbytes, out, t->numel, &e);
                free(out);
            }
            gguf_close(&g);
        } else if (rc == EX_DATAERR)
            refused++;
        else
            other++;
        free(p);
    }
    CHECK(other == 0, "corruption: %d results were neither success nor EX_DATAERR", other);
    printf("random corruptions: %d parsed, %d refused\n", ok, refused);
    free(b.p);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_f16_exhaustive();
    test_valid();
    test_version2();
    test_malformed();
    test_truncations_and_corruption();
    remove_tree(tmpdir);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("all GGUF parser and dequantiser checks passed\n");
    return 0;
}
