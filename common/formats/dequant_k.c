/* dequant_k.c — ggml's "K-quants" (super-blocks of QK_K = 256 elements) and the
 * 5-bit legacy blocks, widened to float32.  Layouts are ggml-common.h's block_q2_K ..
 * block_q8_K and block_q5_0/q5_1; the element order and arithmetic follow gguf-py's
 * quants.py dequantize_blocks (which mirror ggml-quants.c dequantize_row_*), so the
 * results are bit-identical to it: every product is rounded to float32 before the
 * next operation (never fused), and the per-group scale d*sc is formed first.
 *
 * Byte layouts (all little-endian; "half" is IEEE binary16):
 *   q2_K {uint8 scales[16]; uint8 qs[64]; half d; half dmin;}            84 bytes
 *        16 groups of 16; scales[g] = sc (low 4 bits) | m (high 4 bits);
 *        x = (d*sc) * q - (dmin*m), q = 2 bits.
 *   q3_K {uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d;}      110 bytes
 *        16 groups of 16; 6-bit signed scales (minus 32) packed low/high;
 *        q = 2 low bits - 4 * (1 - high bit).
 *   q4_K {half d; half dmin; uint8 scales[12]; uint8 qs[128];}           144 bytes
 *        8 groups of 32; 6-bit scales and mins packed (get_scale_min_k4);
 *        x = (d*sc) * q - (dmin*m), q = 4 bits.
 *   q5_K {half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128];} 176 bytes
 *        as q4_K with a fifth bit from qh.
 *   q6_K {uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d;}         210 bytes
 *        16 groups of 16; q = (4 low | 2 high bits) - 32; x = (d*sc) * q.
 *   q8_K {float d; int8 qs[256]; int16 bsums[16];}                       292 bytes
 *        x = d * q (bsums are a dot-product cache, not needed here; gguf-py has no
 *        Q8_K dequantiser, so this one follows ggml-quants.c dequantize_row_q8_K).
 *   q5_0 {half d; uint32 qh; uint8 qs[16];}                               22 bytes
 *        q = (nibble | bit j of qh << 4) - 16; x = d * q.
 *   q5_1 {half d; half m; uint32 qh; uint8 qs[16];}                       24 bytes
 *        q as q5_0 without the offset; x = d * q + m.
 * Not for: quantising (quant.c). */

/* see dequant.c: contraction would fuse d*q - m and change the last bit */
#pragma GCC optimize("fp-contract=off")

#include <string.h>

#include "dequant.h"
#include "dequant_impl.h"

static float h2f(const uint8_t *p) {
    return dequant_f16((uint16_t)(p[0] | (p[1] << 8)));
}

/* Q2_K: qs byte h*32+l holds elements h*128 + s*32 + l at bits 2s (s = 0..3). */
void dq_q2_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 84, y += 256) {
        const uint8_t *sc = b, *qs = b + 16;
        float d = h2f(b + 80), dmin = h2f(b + 82);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int l = 0; l < 32; l++) {
                    int k = h * 128 + s * 32 + l, g = k / 16;
                    float dl = d * (float)(sc[g] & 0x0f), ml = dmin * (float)(sc[g] >> 4);
                    float q = (float)((qs[h * 32 + l] >> (2 * s)) & 3);
                    float p = dl * q;
                    y[k] = p - ml;
                }
    }
}

/* Q3_K scales: 16 six-bit values, the low 4 bits from bytes 0..7 (low nibble for
 * groups 0..7, high nibble for 8..15), the high 2 bits from bytes 8..11 (group
 * s*4+j at bits 2s of byte 8+j); stored with an offset of 32. */
static void q3_k_scales(const uint8_t *s, float *out) {
    for (int g = 0; g < 16; g++) {
        int lo = g < 8 ? s[g] & 0x0f : s[g - 8] >> 4;
        int hi = (s[8 + (g & 3)] >> (2 * (g >> 2))) & 3;
        out[g] = (float)((int8_t)(uint8_t)(lo | (hi << 4)) - 32);
    }
}

void dq_q3_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 110, y += 256) {
        const uint8_t *hmask = b, *qs = b + 32;
        float d = h2f(b + 108), sc[16];
        q3_k_scales(b + 96, sc);
        for (int h = 0; h < 2; h++)
            for (int s = 0; s < 4; s++)
                for (int l = 0; l < 32; l++) {
                    int k = h * 128 + s * 32 + l;
                    int ql = (qs[h * 32 + l] >> (2 * s)) & 3;
                    int hb = (hmask[l] >> (k / 32)) & 1; /* bit k/32 of hmask[l] */
                    float dl = d * sc[k / 16];
                    y[k] = dl * (float)(ql - ((hb ^ 1) << 2));
                }
    }
}

/* get_scale_min_k4: 8 six-bit scales and mins from 12 bytes. */
static void k4_scale_min(const uint8_t *s, int *sc, int *mn) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 0x3f;
        mn[j] = s[4 + j] & 0x3f;
        sc[4 + j] = (s[8 + j] & 0x0f) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
}

/* Q4_K / Q5_K: qs byte c*32+l holds elements (2c)*32+l (low nibble) and (2c+1)*32+l
 * (high nibble); Q5_K's fifth bit of group g is bit g of qh[l]. */
static void dq_k45(const uint8_t *b, float *y, size_t nb, int five) {
    size_t bytes = five ? 176 : 144;
    for (size_t i = 0; i < nb; i++, b += bytes, y += 256) {
        float d = h2f(b), dmin = h2f(b + 2);
        int sc[8], mn[8];
        k4_scale_min(b + 4, sc, mn);
        const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
        for (int g = 0; g < 8; g++) {
            float dg = d * (float)sc[g], mg = dmin * (float)mn[g];
            for (int l = 0; l < 32; l++) {
                int q = (qs[(g / 2) * 32 + l] >> (4 * (g & 1))) & 0x0f;
                if (five) q |= ((qh[l] >> g) & 1) << 4;
                float p = dg * (float)q;
                y[g * 32 + l] = p - mg;
            }
        }
    }
}

void dq_q4_k(const uint8_t *b, float *y, size_t nb) {
    dq_k45(b, y, nb, 0);
}

void dq_q5_k(const uint8_t *b, float *y, size_t nb) {
    dq_k45(b, y, nb, 1);
}

/* Q6_K: ql byte h*64+k holds elements h*128 + s*64 + k at nibble s; qh byte h*32+l
 * holds the high 2 bits of elements h*128 + s*32 + l at bits 2s. */
void dq_q6_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 210, y += 256) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = h2f(b + 208);
        int q[256];
        for (int h = 0; h < 2; h++) {
            for (int s = 0; s < 2; s++)
                for (int k = 0; k < 64; k++) q[h * 128 + s * 64 + k] = (ql[h * 64 + k] >> (4 * s)) & 0x0f;
            for (int s = 0; s < 4; s++)
                for (int l = 0; l < 32; l++) q[h * 128 + s * 32 + l] |= ((qh[h * 32 + l] >> (2 * s)) & 3) << 4;
        }
        for (int k = 0; k < 256; k++) {
            float dl = d * (float)sc[k / 16];
            y[k] = dl * (float)(q[k] - 32);
        }
    }
}

void dq_q8_k(const uint8_t *b, float *y, size_t nb) {
    for (size_t i = 0; i < nb; i++, b += 292, y += 256) {
        float d;
        memcpy(&d, b, 4); /* little-endian host */
        for (int k = 0; k < 256; k++) y[k] = d * (float)(int8_t)b[4 + k];
    }
}

/* Q5_0 / Q5_1: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble
 * of qs[j-16]; its fifth bit is bit j of the little-endian uint32 qh. */
static void dq_q5(const uint8_t *b, float *y, size_t nb, int with_min) {
    size_t bytes = with_min ? 24 : 22;
    for (size_t i = 0; i < nb; i++, b += bytes, y += 32) {
        float d = h2f(b), m = with_min ? h2f(b + 2) : 0.0f;
        const uint8_t *p = b + (with_min ? 4 : 2);
        uint32_t qh = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        const uint8_t *qs = p + 4;
        for (int j = 0; j < 32; j++) {
            int q = (j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4) | (int)(((qh >> j) & 1) << 4);
            if (with_min) {
                float pr = d * (float)q;
                y[j] = pr + m;
            } else
                y[j] = d * (float)(q - 16);
        }
    }
}

void dq_q5_0(const uint8_t *b, float *y, size_t nb) {
    dq_q5(b, y, nb, 0);
}

void dq_q5_1(const uint8_t *b, float *y, size_t nb) {
    dq_q5(b, y, nb, 1);
}
