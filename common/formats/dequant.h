/* dequant.h — widen ggml tensor data (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and
 * the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K) to float32.
 *
 * Block layouts are ggml's (ggml/src/ggml-common.h): blocks of 32 elements along
 * the fastest dimension, each with an fp16 scale d (and, for Q4_1, an fp16 min m):
 *   block_q8_0 { half d; int8 qs[32]; }          34 bytes, x[j] = qs[j] * d
 *   block_q4_0 { half d; uint8 qs[16]; }         18 bytes, x[j] = ((qs[j] & 15) - 8) * d,
 *                                                          x[j+16] = ((qs[j] >> 4) - 8) * d
 *   block_q4_1 { half d; half m; uint8 qs[16]; } 20 bytes, x[j] = (qs[j] & 15) * d + m,
 *                                                          x[j+16] = (qs[j] >> 4) * d + m
 * (ggml-quants.c dequantize_row_q8_0/q4_0/q4_1).  F16 is IEEE binary16, BF16 the top
 * 16 bits of a binary32.  Results are bit-identical to the gguf Python package's
 * dequantize (products and sums rounded separately, never fused).  The 5-bit and
 * K-quant layouts are described in dequant_k.c.
 * Not for: quantising. */
#ifndef CHERRY_DEQUANT_H
#define CHERRY_DEQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The types dequant_row reads, for messages. */
#define DEQUANT_SUPPORTED "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K"

float dequant_f16(uint16_t h);
float dequant_bf16(uint16_t h);

/* 1 when dequant_row supports the ggml type. */
int dequant_supported(int ggml_type);

/* Converts n elements of ggml_type from src (src_bytes long) into dst[n].
 * EX_DATAERR when the type is unsupported, n is not a multiple of the block size or
 * src_bytes does not match n exactly. */
int dequant_row(int ggml_type, const void *src, size_t src_bytes, float *dst, size_t n, Error *e);

#endif
