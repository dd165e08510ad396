/* quant.c — see quant.h.  Formulas cite ggml-quants.c and gguf-py quants.py. */

/* bit-identical rounding needs every product rounded on its own (see dequant.c) */
#pragma GCC optimize("fp-contract=off")

#include "quant.h"

#include <math.h>
#include <string.h>

#include "gguf.h"
#include "quant_impl.h"

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

/* binary32 -> binary16, round to nearest even; overflow to Inf; NaN keeps the top of
 * its payload and stays a NaN (numpy's npy_floatbits_to_halfbits). */
uint16_t quant_f16(float x) {
    uint32_t u = f32_bits(x), a = u & 0x7fffffffu;
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    if (a >= 0x7f800000u) { /* Inf or NaN */
        if (a == 0x7f800000u) return sign | 0x7c00u;
        uint16_t h = (uint16_t)(0x7c00u + ((a & 0x7fffffu) >> 13));
        return sign | (h == 0x7c00u ? 0x7c01u : h);
    }
    if (a >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: Inf */
    if (a >= 0x38800000u) {                      /* normal half (>= 2^-14) */
        uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
        return sign | (uint16_t)((r - 0x38000000u) >> 13);
    }
    /* subnormal half: value = mant * 2^(e - 150), half unit 2^-24 */
    int e = (int)(a >> 23);
    int shift = 126 - e;
    if (shift > 24) return sign; /* below half of the smallest subnormal */
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

uint16_t quant_bf16(float x) {
    uint64_t n = f32_bits(x);
    if ((n & 0x7fffffffu) > 0x7f800000u) n = (n & 0xffff0000u) | (64u << 16); /* quiet NaN */
    return (uint16_t)((n + (0x7fffu + ((n >> 16) & 1u))) >> 16);
}

int quant_supported(int t) {
    return t == GGML_F32 || t == GGML_F16 || t == GGML_BF16 || t == GGML_Q8_0 || t == GGML_Q4_0 || t == GGML_Q4_K;
}

size_t quant_row_bytes(int t, size_t n) {
    uint64_t blck, bytes;
    if (!quant_supported(t) || !ggml_type_block(t, &blck, &bytes) || n % blck) return 0;
    return n / blck * bytes;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* quantize_row_q8_0_ref */
static void q_q8_0(const float *x, size_t nb, uint8_t *b) {
    for (size_t i = 0; i < nb; i++, x += 32, b += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(b, quant_f16(d));
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

/* quantize_row_q4_0_ref */
static void q_q4_0(const float *x, size_t nb, uint8_t *b) {
    for (size_t i = 0; i < nb; i++, x += 32, b += 18) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put16(b, quant_f16(d));
        for (int j = 0; j < 16; j++) {
            float s0 = x[j] * id, s1 = x[j + 16] * id;
            int q0 = (int)truncf(s0 + 8.5f), q1 = (int)truncf(s1 + 8.5f);
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

int quant_row(int t, const float *x, size_t n, void *dst, Error *e) {
    if (!quant_row_bytes(t, n)) {
        const char *name = ggml_type_name(t);
        if (!quant_supported(t))
            return err_set(e, EX_DATAERR, "cannot write tensor type %s (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K)",
                           name ? name : "unknown");
        return err_set(e, EX_DATAERR, "%zu elements is not a multiple of the %s block size", n, name);
    }
    uint8_t *b = dst;
    switch (t) {
    case GGML_F32:
        memcpy(b, x, n * sizeof(float)); /* little-endian host */
        break;
    case GGML_F16:
        for (size_t i = 0; i < n; i++) put16(b + 2 * i, quant_f16(x[i]));
        break;
    case GGML_BF16:
        for (size_t i = 0; i < n; i++) put16(b + 2 * i, quant_bf16(x[i]));
        break;
    case GGML_Q8_0:
        q_q8_0(x, n / 32, b);
        break;
    case GGML_Q4_0:
        q_q4_0(x, n / 32, b);
        break;
    case GGML_Q4_K:
        quant_q4_k(x, n / 256, b);
        break;
    }
    return 0;
}
