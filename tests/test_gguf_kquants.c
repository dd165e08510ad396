/* test_gguf_kquants.c — the K-quant (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K) and 5-bit
 * (Q5_0, Q5_1) dequantisers against gguf-py.
 *
 * tests/oracle/make_gguf_kquant_fixture.py wrote a GGUF with one tensor per type
 * (hand-built blocks: random quants and scales, fp16 scales including 0, negative,
 * subnormal and 65504) and gguf-py's dequantisation of each; every element here must
 * have the same bits.  Then the hostile cases: sizes that do not match the block
 * size are refused, and a few hundred blocks of pure random bytes (NaN/Inf halves,
 * any scale bits) are dequantised inside their bounds (the ASan+UBSan build of this
 * test catches any overrun). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "check.h"
#include "formats/dequant.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

#define DIR "tests/oracle/fixtures/gguf-kquants/"

static const struct {
    const char *name;
    int type;
} cases[] = {{"t_q2_k", GGML_Q2_K}, {"t_q3_k", GGML_Q3_K}, {"t_q4_k", GGML_Q4_K}, {"t_q5_k", GGML_Q5_K},
             {"t_q6_k", GGML_Q6_K}, {"t_q8_k", GGML_Q8_K}, {"t_q5_0", GGML_Q5_0}, {"t_q5_1", GGML_Q5_1}};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static void test_against_gguf_py(void) {
    GgufFile g;
    StFile want;
    Error e = {0};
    int rc = gguf_open(&g, DIR "kquants.gguf", &e);
    CHECK(rc == 0, "open kquants.gguf: %s", e.msg);
    if (rc) return;
    rc = st_open(&want, DIR "expected.safetensors", &e);
    CHECK(rc == 0, "open expected.safetensors: %s", e.msg);
    if (rc) {
        gguf_close(&g);
        return;
    }
    CHECK(g.n_tensors == (uint64_t)N_CASES, "%llu tensors, expected %d", (unsigned long long)g.n_tensors, N_CASES);
    for (int c = 0; c < N_CASES; c++) {
        const GgufTensor *t = gguf_find_tensor(&g, cases[c].name);
        const StTensor *w = st_find(&want, cases[c].name);
        CHECK(t && w, "%s missing from the fixture", cases[c].name);
        if (!t || !w) continue;
        CHECK(t->type == cases[c].type, "%s: type %d, expected %d", t->name, t->type, cases[c].type);
        CHECK(dequant_supported(t->type), "%s: %s not supported", t->name, ggml_type_name(t->type));
        CHECK(w->numel == t->numel && w->dtype == ST_F32, "%s: %zu expected elements for %llu", t->name, w->numel,
              (unsigned long long)t->numel);
        if (w->numel != t->numel || w->dtype != ST_F32) continue;
        float *got = xmalloc(t->numel * sizeof(float));
        rc = dequant_row(t->type, t->data, t->nbytes, got, t->numel, &e);
        CHECK(rc == 0, "dequant %s: %s", t->name, e.msg);
        if (rc == 0) {
            const uint32_t *a = (const uint32_t *)(const void *)got;
            int bad = 0;
            for (size_t i = 0; i < t->numel; i++) {
                uint32_t b;
                memcpy(&b, (const char *)w->data + 4 * i, 4);
                if (a[i] != b && bad++ < 3) {
                    float bf;
                    memcpy(&bf, &b, 4);
                    CHECK(0, "%s[%zu]: got %.9g (0x%08x), gguf-py %.9g (0x%08x)", t->name, i, got[i], a[i], bf, b);
                }
            }
            CHECK(bad == 0, "%s: %d of %llu elements differ from gguf-py", t->name, bad, (unsigned long long)t->numel);
        }
        free(got);
    }
    st_close(&want);
    gguf_close(&g);
}

/* splitmix64: a seeded byte source for the random blocks */
static uint64_t rng_state = 0x6b71756e74733031ULL;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void test_hostile(void) {
    Error e = {0};
    for (int c = 0; c < N_CASES; c++) {
        uint64_t blck, bytes;
        CHECK(ggml_type_block(cases[c].type, &blck, &bytes), "%s: no block size", cases[c].name);
        /* exactly sized buffers, so an overrun is a heap overflow the sanitizer sees */
        size_t nb = 37;
        uint8_t *src = xmalloc(nb * bytes);
        float *dst = xmalloc(nb * blck * sizeof(float));
        for (int round = 0; round < 8; round++) {
            for (size_t i = 0; i < nb * bytes; i++) src[i] = (uint8_t)rnd();
            int rc = dequant_row(cases[c].type, src, nb * bytes, dst, nb * blck, &e);
            CHECK(rc == 0, "%s random blocks: %s", cases[c].name, e.msg);
        }
        int rc = dequant_row(cases[c].type, src, nb * bytes - 1, dst, nb * blck, &e);
        CHECK(rc == EX_DATAERR && strstr(e.msg, "does not hold"), "%s one byte short: %d %s", cases[c].name, rc, e.msg);
        rc = dequant_row(cases[c].type, src, nb * bytes, dst, nb * blck - 1, &e);
        CHECK(rc == EX_DATAERR && strstr(e.msg, "multiple"), "%s element count off by one: %d %s", cases[c].name, rc,
              e.msg);
        rc = dequant_row(cases[c].type, src, (nb - 1) * bytes, dst, nb * blck, &e);
        CHECK(rc == EX_DATAERR, "%s one block short: %d", cases[c].name, rc);
        free(src);
        free(dst);
    }
    /* a type we still refuse names itself and the supported list */
    uint8_t blk[66] = {0};
    float out[256];
    int rc = dequant_row(16, blk, sizeof blk, out, 256, &e);
    CHECK(rc == EX_DATAERR && strstr(e.msg, "IQ2_XXS") && strstr(e.msg, "Q4_K"), "IQ2_XXS: %d %s", rc, e.msg);
}

/* One hand-computed Q4_K block (ggml-quants.c dequantize_row_q4_K): d = 0.5,
 * dmin = 0.25, group 0 scale 3 / min 2, group 5 scale 17 (6 bits split across bytes
 * 1 and 9) / min 33; x = d*sc*q - dmin*m. */
static void test_q4_k_by_hand(void) {
    uint8_t b[144] = {0};
    b[0] = 0x00, b[1] = 0x38; /* half 0.5 */
    b[2] = 0x00, b[3] = 0x34; /* half 0.25 */
    uint8_t *s = b + 4;
    s[0] = 3;                /* sc[0] */
    s[4] = 2;                /* mn[0] */
    s[9] = 0x1 | (0x1 << 4); /* sc[5] low 4 = 1, mn[5] low 4 = 1 */
    s[1] |= 0x40;            /* sc[5] bits 4..5 = 1 -> 16 + 1 = 17 */
    s[5] |= 0x80;            /* mn[5] bits 4..5 = 2 -> 32 + 1 = 33 */
    b[16 + 0] = 0x07;        /* element 0 (group 0): q = 7 */
    b[16 + 64 + 3] = 0xa0;   /* element 5*32+3 (group 5, high nibble of byte 2*32+3): q = 10 */
    float y[256];
    Error e = {0};
    CHECK(dequant_row(GGML_Q4_K, b, sizeof b, y, 256, &e) == 0, "q4_K: %s", e.msg);
    CHECK(y[0] == 0.5f * 3 * 7 - 0.25f * 2, "q4_K y[0] = %g, expected %g", y[0], 0.5 * 3 * 7 - 0.25 * 2);
    CHECK(y[1] == -0.5f, "q4_K y[1] = %g, expected -0.5", y[1]);
    CHECK(y[163] == 0.5f * 17 * 10 - 0.25f * 33, "q4_K y[163] = %g, expected %g", y[163], 0.5 * 17 * 10 - 0.25 * 33);
    CHECK(y[160] == -0.25f * 33, "q4_K y[160] = %g, expected %g", y[160], -0.25 * 33);
}

int main(void) {
    test_against_gguf_py();
    test_hostile();
    test_q4_k_by_hand();
    if (failures) return 1;
    printf("K-quant and Q5 dequantisers match gguf-py bit for bit\n");
    return 0;
}
