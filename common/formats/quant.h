/* quant.h — narrow float32 rows to ggml tensor types (F32, F16, BF16, Q8_0, Q4_0, Q4_K),
 * the inverse direction of dequant.h, for writing GGUF files.
 *
 * Results are byte-identical to gguf-py's quantize() (gguf/quants.py), which in turn
 * reproduces ggml-quants.c's reference quantisers:
 *   F16   IEEE binary16, round to nearest even (numpy astype(float16));
 *   BF16  top half of the binary32, round to nearest even, NaN forced quiet
 *         (ggml_compute_fp32_to_bf16);
 *   Q8_0  per 32 values: d = max|x| / 127, q = round-half-away(x / d)
 *         (quantize_row_q8_0_ref, with x * (1/d) as the reference computes it);
 *   Q4_0  per 32 values: m = the value of largest magnitude (first one on ties),
 *         d = m / -8, q = min(15, trunc(x * (1/d) + 8.5)), low nibbles hold values
 *         0..15 and high nibbles 16..31 (quantize_row_q4_0_ref).
 * The scale d is computed in float32 and stored as binary16; the quants use the
 * float32 d, as the reference does.
 *   Q4_K  llama.cpp's quantize_row_q4_K_ref (quant_k.c), byte-identical to
 *         llama.cpp's own quantiser without an importance matrix (gguf-py has none).
 * Not for: the other K-quants or importance-matrix quantisation (llama.cpp's
 * llama-quantize makes those from an F16 export). */
#ifndef CHERRY_QUANT_H
#define CHERRY_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

uint16_t quant_f16(float x);
uint16_t quant_bf16(float x);

/* 1 when quant_row writes the ggml type. */
int quant_supported(int ggml_type);
/* Bytes quant_row writes for n elements of type (0 when n is not a multiple of the
 * block size or the type is unsupported). */
size_t quant_row_bytes(int ggml_type, size_t n);
/* Converts x[n] into dst (quant_row_bytes(type, n) bytes).  EX_DATAERR when the type
 * is unsupported or n is not a multiple of its block size. */
int quant_row(int ggml_type, const float *x, size_t n, void *dst, Error *e);

#endif
