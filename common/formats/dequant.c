/* dequant.c — see dequant.h.  Formulas cite ggml/src/ggml-quants.c. */

/* gcc contracts a*b+c into one fused multiply-add by default (-ffp-contract=fast);
 * ggml's reference Python dequantiser rounds the product first, and we want the
 * same bits, so contraction is off for this file. */
#pragma GCC optimize("fp-contract=off")

#include "dequant.h"

#include <string.h>

#include "dequant_impl.h"
#include "gguf.h"

/* Reads little-endian integers from possibly unaligned bytes. */
static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE 754 binary16 -> binary32, exact for every input (subnormals are
 * renormalised, Inf/NaN keep their payload). */
float dequant_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13)); /* Inf/NaN */
    if (exp == 0) {
        if (man == 0) return f32_from_bits(sign); /* +-0 */
        /* subnormal: value = man * 2^-24; shift until the implicit bit appears */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        man &= 0x3ff;
        return f32_from_bits(sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13));
    }
    return f32_from_bits(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float dequant_bf16(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

int dequant_supported(int t) {
    switch (t) {
    case GGML_F32:
    case GGML_F16:
    case GGML_BF16:
    case GGML_Q8_0:
    case GGML_Q4_0:
    case GGML_Q4_1:
    case GGML_Q5_0:
    case GGML_Q5_1:
    case GGML_Q2_K:
    case GGML_Q3_K:
    case GGML_Q4_K:
    case GGML_Q5_K:
    case GGML_Q6_K:
    case GGML_Q8_K:
        return 1;
    default:
        return 0;
    }
}

/* dequantize_row_q8_0: y = qs * d */
static void dq_q8_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 34, y += 32) {
        float d = dequant_f16(rd16(b));
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
    }
}

/* dequantize_row_q4_0: low nibbles are elements 0..15, high nibbles 16..31, offset 8 */
static void dq_q4_0(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 18, y += 32) {
        float d = dequant_f16(rd16(b));
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[2 + j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
        }
    }
}

/* dequantize_row_q4_1: y = q * d + m, same nibble order as q4_0 */
static void dq_q4_1(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 20, y += 32) {
        float d = dequant_f16(rd16(b));
        float m = dequant_f16(rd16(b + 2));
        for (int j = 0; j < 16; j++) {
            float p0 = (float)(b[4 + j] & 0x0f) * d;
            float p1 = (float)(b[4 + j] >> 4) * d;
            y[j] = p0 + m;
            y[j + 16] = p1 + m;
        }
    }
}

int dequant_row(int type, const void *src, size_t src_bytes, float *dst, size_t n, Error *e) {
    uint64_t blck, bytes;
    if (!dequant_supported(type) || !ggml_type_block(type, &blck, &bytes)) {
        const char *name = ggml_type_name(type);
        return err_set(e, EX_DATAERR, "tensor type %s (%d) is not supported (supported: " DEQUANT_SUPPORTED ")",
                       name ? name : "unknown", type);
    }
    if (n % blck != 0)
        return err_set(e, EX_DATAERR, "%zu elements is not a multiple of the %s block size %llu", n,
                       ggml_type_name(type), (unsigned long long)blck);
    size_t nb = n / blck;
    if (src_bytes / bytes != nb || src_bytes % bytes != 0)
        return err_set(e, EX_DATAERR, "%s data of %zu bytes does not hold %zu elements", ggml_type_name(type),
                       src_bytes, n);
    const uint8_t *b = src;
    switch (type) {
    case GGML_F32:
        memcpy(dst, b, n * sizeof(float)); /* little-endian host */
        break;
    case GGML_F16:
        for (size_t i = 0; i < n; i++) dst[i] = dequant_f16(rd16(b + 2 * i));
        break;
    case GGML_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = dequant_bf16(rd16(b + 2 * i));
        break;
    case GGML_Q8_0:
        dq_q8_0(b, dst, nb);
        break;
    case GGML_Q4_0:
        dq_q4_0(b, dst, nb);
        break;
    case GGML_Q4_1:
        dq_q4_1(b, dst, nb);
        break;
    case GGML_Q5_0:
        dq_q5_0(b, dst, nb);
        break;
    case GGML_Q5_1:
        dq_q5_1(b, dst, nb);
        break;
    case GGML_Q2_K:
        dq_q2_k(b, dst, nb);
        break;
    case GGML_Q3_K:
        dq_q3_k(b, dst, nb);
        break;
    case GGML_Q4_K:
        dq_q4_k(b, dst, nb);
        break;
    case GGML_Q5_K:
        dq_q5_k(b, dst, nb);
        break;
    case GGML_Q6_K:
        dq_q6_k(b, dst, nb);
        break;
    case GGML_Q8_K:
        dq_q8_k(b, dst, nb);
        break;
    }
    return 0;
}
