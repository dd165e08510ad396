/* test_safetensors.c — safetensors reader/writer: round trips (F32, BF16, metadata,
 * empty tensors), F16/BF16 widening, and hostile files built here, each of which
 * must give a clean EX_DATAERR naming the file (this test also runs under ASan, so
 * an out-of-bounds read fails it).  Also every truncation of a valid file and a few
 * thousand random byte flips must be rejected or accepted without crashing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "formats/safetensors.h"
#include "base/util.h"

static char dir[256];

static void write_raw(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) die_internal("cannot write %s", path);
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

/* A file with header length field hlen_field, header text hdr, then buf_len bytes. */
static void write_st(const char *path, uint64_t hlen_field, const char *hdr, size_t hdr_len, size_t buf_len) {
    size_t n = 8 + hdr_len + buf_len;
    unsigned char *b = xcalloc(n, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, hdr, hdr_len);
    for (size_t i = 0; i < buf_len; i++) b[8 + hdr_len + i] = (unsigned char)(i * 37);
    write_raw(path, b, n);
    free(b);
}

/* Expects st_open(path) to fail with EX_DATAERR, a message naming the file and
 * containing `want` (a fragment of what is wrong). */
static void expect_bad(const char *label, const char *path, const char *want) {
    StFile f;
    Error e = {0};
    int rc = st_open(&f, path, &e);
    CHECK(rc == EX_DATAERR, "%s: expected EX_DATAERR (65), got %d (%s)", label, rc, e.msg);
    if (rc == 0) {
        st_close(&f);
        return;
    }
    CHECK(strstr(e.msg, path) != NULL, "%s: message does not name the file: %s", label, e.msg);
    CHECK(!want || strstr(e.msg, want) != NULL, "%s: expected message containing \"%s\", got: %s", label, want, e.msg);
    printf("ok   %-26s %s\n", label, e.msg);
}

static void bad_header(const char *label, const char *hdr, size_t buf_len, const char *want) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, label);
    write_st(path, strlen(hdr), hdr, strlen(hdr), buf_len);
    expect_bad(label, path, want);
}

static void test_hostile(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    write_raw(path, "", 0);
    expect_bad("empty file", path, "too small");

    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    write_raw(path, "\x10\x00\x00", 3);
    expect_bad("truncated length", path, "too small");

    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    snprintf(path, sizeof path, "%s/absurd.safetensors", dir);
    write_st(path, (uint64_t)1 << 62, ok, strlen(ok), 8);
    expect_bad("absurd header length", path, "100 MB");

    snprintf(path, sizeof path, "%s/toolarge.safetensors", dir);
    write_st(path, ST_MAX_HEADER + 1, ok, strlen(ok), 8);
    expect_bad("header just over 100 MB", path, "100 MB");

    snprintf(path, sizeof path, "%s/truncated.safetensors", dir);
    write_st(path, strlen(ok) + 100, ok, strlen(ok), 8);
    expect_bad("truncated header", path, "past the end");

    bad_header("not json", "{\"a\": {\"dtype\": ", 0, "not valid JSON");
    bad_header("non-object header", "[1, 2, 3]", 0, "start with '{'");
    bad_header("entry not object", "{\"a\": 5}", 0, "not an object");
    bad_header("unknown dtype", "{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    bad_header("duplicate names",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "duplicate");
    bad_header("invalid utf-8 name", "{\"a\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "not valid JSON");
    bad_header("lone surrogate name", "{\"\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "not valid JSON");
    bad_header("NUL in name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "not valid JSON");
    bad_header("overlapping offsets",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "overlap");
    bad_header("reversed offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "< begin");
    bad_header("out of bounds", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
               "beyond the buffer");
    bad_header("shape overflow",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8,
               "overflows");
    bad_header("byte size overflow",
               "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", 8, "overflows");
    bad_header("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative");
    bad_header("real dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "non-negative");
    bad_header("gap between tensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, "gap");
    bad_header("not starting at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
    bad_header("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    bad_header("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape");
    bad_header("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    bad_header("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12");
    bad_header("trailing bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "trailing");
    bad_header("metadata not strings", "{\"__metadata__\":{\"format\":1}}", 0, "not a string");
    bad_header("metadata not object", "{\"__metadata__\":[]}", 0, "not an object");
    bad_header("nine dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
               "at most 8");
    bad_header("offsets too many", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
               "data_offsets");
    bad_header("trailing garbage", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4,
               "not valid JSON");

    /* Very deep nesting must be refused by the parser, not overflow the stack. */
    size_t depth = 100000;
    char *deep = xmalloc(2 * depth + 16);
    size_t k = 0;
    k += (size_t)sprintf(deep, "{\"a\":");
    for (size_t i = 0; i < depth; i++) deep[k++] = '[';
    for (size_t i = 0; i < depth; i++) deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = 0;
    bad_header("deep nesting", deep, 0, "not valid JSON");
    free(deep);

    /* Missing file: EX_NOINPUT, not a crash. */
    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", dir);
    StFile f;
    Error e = {0};
    int rc = st_open(&f, path, &e);
    CHECK(rc == EX_NOINPUT, "missing file: expected EX_NOINPUT (66), got %d (%s)", rc, e.msg);
}

static void test_accepts_padding_and_order(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/padded.safetensors", dir);
    /* offsets listed out of order in the JSON, header padded with spaces: valid */
    const char *hdr = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[6,6]},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}     ";
    write_st(path, strlen(hdr), hdr, strlen(hdr), 6);
    StFile f;
    Error e = {0};
    int rc = st_open(&f, path, &e);
    CHECK(rc == 0, "padded/out-of-order header: expected success, got %d (%s)", rc, e.msg);
    if (rc) return;
    CHECK(f.n == 3, "expected 3 tensors, got %d", f.n);
    const StTensor *b = st_find(&f, "b"), *z = st_find(&f, "z");
    CHECK(b && b->nbytes == 2 && ((const unsigned char *)b->data)[0] == (unsigned char)(4 * 37),
          "tensor b data not at buffer offset 4");
    CHECK(z && z->numel == 0 && z->ndim == 2, "empty tensor z: numel %zu", z ? z->numel : 99);
    float out;
    CHECK(st_to_f32(b, &out, &e) == EX_DATAERR, "U8 tensor must not widen to f32");
    st_close(&f);
}

static void test_round_trip(StDtype dtype) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt-%s.safetensors", dir, st_dtype_name(dtype));
    Rng r;
    rng_seed(&r, 7);
    float a[6 * 5], b[7], c[1] = {0};
    for (int i = 0; i < 30; i++) a[i] = rng_normal(&r) * 3.0f;
    for (int i = 0; i < 7; i++) b[i] = (float)i - 3.5f;
    a[0] = INFINITY;
    a[1] = -0.0f;
    StWriter w;
    st_writer_init(&w);
    st_writer_meta(&w, "format", "pt");
    st_writer_meta(&w, "note", "h\xc3\xa9llo");
    int64_t sa[2] = {6, 5}, sb[1] = {7}, sc[2] = {0, 4};
    st_writer_add(&w, "layer.0.weight", a, 2, sa);
    st_writer_add(&w, "b", b, 1, sb);
    st_writer_add(&w, "empty", c, 2, sc);
    st_writer_add(&w, "scalar", c, 0, NULL);
    Error e = {0};
    int rc = st_writer_write(&w, path, dtype, &e);
    st_writer_free(&w);
    CHECK(rc == 0, "write %s: %s", path, e.msg);
    StFile f;
    rc = st_open(&f, path, &e);
    CHECK(rc == 0, "reopen %s: %s", path, e.msg);
    if (rc) return;
    CHECK(f.n == 4, "round trip: expected 4 tensors, got %d", f.n);
    CHECK(st_meta_get(&f, "format") && strcmp(st_meta_get(&f, "format"), "pt") == 0, "metadata format lost");
    CHECK(st_meta_get(&f, "note") && strcmp(st_meta_get(&f, "note"), "h\xc3\xa9llo") == 0, "metadata note lost");
    /* the buffer starts 8-byte aligned, as the reference writer pads it */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | ((unsigned char *)f.map)[i];
    CHECK(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
    const StTensor *ta = st_find(&f, "layer.0.weight");
    CHECK(ta && ta->dtype == dtype && ta->ndim == 2 && ta->shape[0] == 6 && ta->shape[1] == 5, "shape/dtype of a");
    if (ta) {
        float got[30];
        st_to_f32(ta, got, &e);
        double worst = 0;
        for (int i = 0; i < 30; i++) {
            double err = isinf(a[i]) ? (got[i] == a[i] ? 0 : 1) : fabs(got[i] - a[i]) / fmax(fabs(a[i]), 1e-6);
            if (err > worst) worst = err;
        }
        double tol = dtype == ST_F32 ? 0 : 1.0 / 256; /* bf16 keeps 8 significant bits */
        CHECK(worst <= tol, "%s round trip: worst relative error %g > %g", st_dtype_name(dtype), worst, tol);
        CHECK(signbit(got[1]), "-0.0 lost its sign");
        printf("ok   round trip %-6s worst relative error %.3g\n", st_dtype_name(dtype), worst);
    }
    const StTensor *tb = st_find(&f, "b");
    if (tb) {
        float got[7];
        st_to_f32(tb, got, &e);
        for (int i = 0; i < 7; i++) CHECK(got[i] == b[i], "b[%d]: expected %g got %g", i, b[i], got[i]);
    }
    const StTensor *ts = st_find(&f, "scalar");
    CHECK(ts && ts->ndim == 0 && ts->numel == 1, "scalar tensor: ndim/numel wrong");
    CHECK(st_find(&f, "nope") == NULL, "st_find found a missing name");
    st_close(&f);
    /* no temporary left beside the output */
    char tmpglob[600];
    snprintf(tmpglob, sizeof tmpglob, "ls %s | grep -c tmp- >/dev/null", dir);
    CHECK(system(tmpglob) != 0, "a temporary file was left in %s", dir);
}

static void test_conversions(void) {
    /* binary16 reference values (IEEE 754-2008 Table 3.5 parameters) */
    struct {
        uint16_t h;
        float f;
    } f16[] = {{0x3c00, 1.0f},
               {0xc000, -2.0f},
               {0x7bff, 65504.0f},
               {0x0001, 5.9604644775390625e-8f},
               {0x0400, 6.103515625e-5f},
               {0x3555, 0.333251953125f},
               {0x0000, 0.0f}};
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        CHECK(st_f16_to_f32(f16[i].h) == f16[i].f, "f16 0x%04x: expected %g got %g", f16[i].h, f16[i].f,
              st_f16_to_f32(f16[i].h));
    CHECK(isinf(st_f16_to_f32(0x7c00)) && isnan(st_f16_to_f32(0x7e00)), "f16 inf/nan");
    CHECK(st_f32_to_bf16(1.0f) == 0x3f80, "bf16(1.0) = 0x%04x", st_f32_to_bf16(1.0f));
    /* 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0 */
    CHECK(st_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even: 0x%04x", st_f32_to_bf16(1.00390625f));
    CHECK(st_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even (odd): 0x%04x", st_f32_to_bf16(1.01171875f));
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))), "bf16 NaN stays NaN");

    /* an F16 file read through st_to_f32 */
    char path[512];
    snprintf(path, sizeof path, "%s/f16.safetensors", dir);
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
    size_t hl = strlen(hdr);
    unsigned char *b = xcalloc(8 + hl + 4, 1);
    b[0] = (unsigned char)hl;
    memcpy(b + 8, hdr, hl);
    b[8 + hl] = 0x00, b[9 + hl] = 0x3c, b[10 + hl] = 0x00, b[11 + hl] = 0xc0; /* 1.0, -2.0 */
    write_raw(path, b, 8 + hl + 4);
    free(b);
    StFile f;
    Error e = {0};
    if (st_open(&f, path, &e) == 0) {
        float out[2];
        st_to_f32(&f.tensors[0], out, &e);
        CHECK(out[0] == 1.0f && out[1] == -2.0f, "F16 file: expected [1, -2], got [%g, %g]", out[0], out[1]);
        st_close(&f);
    } else {
        CHECK(0, "F16 file: %s", e.msg);
    }
}

/* Every truncation of a valid file, and random byte flips in its header, must be
 * handled without a crash; truncations must all be EX_DATAERR. */
static void test_fuzz(void) {
    char src[512], path[512];
    snprintf(src, sizeof src, "%s/rt-F32.safetensors", dir);
    snprintf(path, sizeof path, "%s/fuzz.safetensors", dir);
    char *orig;
    size_t n;
    Error e = {0};
    if (read_file(src, &orig, &n, &e) != 0) {
        CHECK(0, "fuzz: %s", e.msg);
        return;
    }
    int bad_trunc = 0;
    for (size_t len = 0; len < n; len++) {
        write_raw(path, orig, len);
        StFile f;
        int rc = st_open(&f, path, &e);
        if (rc != EX_DATAERR) bad_trunc++;
        if (rc == 0) st_close(&f);
    }
    CHECK(bad_trunc == 0, "%d truncations were not rejected with EX_DATAERR", bad_trunc);
    Rng r;
    rng_seed(&r, 1234);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)orig[i];
    int accepted = 0, rejected = 0;
    char *mut = xmalloc(n);
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, orig, n);
        int flips = 1 + (int)rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)rng_below(&r, 8 + hl);
            mut[pos] = (char)rng_below(&r, 256);
        }
        write_raw(path, mut, n);
        StFile f;
        int rc = st_open(&f, path, &e);
        if (rc == 0) {
            accepted++;
            /* whatever was accepted must be readable in bounds */
            for (int i = 0; i < f.n; i++) {
                const StTensor *t = &f.tensors[i];
                CHECK((const char *)t->data + t->nbytes <= (const char *)f.map + f.map_len, "tensor out of map");
                if (t->dtype == ST_F32 || t->dtype == ST_BF16 || t->dtype == ST_F16 || t->dtype == ST_F64) {
                    float *out = xmalloc(t->numel * sizeof(float) + 1);
                    st_to_f32(t, out, &e);
                    free(out);
                }
            }
            st_close(&f);
        } else {
            CHECK(rc == EX_DATAERR, "fuzz: unexpected code %d (%s)", rc, e.msg);
            rejected++;
        }
    }
    free(mut);
    free(orig);
    printf("ok   fuzz: %zu truncations rejected; 3000 mutations: %d accepted, %d rejected\n", n, accepted, rejected);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/cherry-test-st-%ld", (long)getpid());
    Error e = {0};
    if (mkdir_p(dir, &e) != 0) {
        printf("cannot create %s: %s\n", dir, e.msg);
        return 1;
    }
    test_conversions();
    test_round_trip(ST_F32);
    test_round_trip(ST_BF16);
    test_accepts_padding_and_order();
    test_hostile();
    test_fuzz();
    remove_tree(dir);
    return check_summary("test_safetensors");
}
