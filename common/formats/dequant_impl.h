/* dequant_impl.h — the block dequantisers of dequant_k.c, private to formats/:
 * each widens nb consecutive blocks at b into y (block size elements per block).
 * dequant_row (dequant.c) checks sizes before calling them. */
#ifndef CHERRY_DEQUANT_IMPL_H
#define CHERRY_DEQUANT_IMPL_H

#include <stddef.h>
#include <stdint.h>

void dq_q2_k(const uint8_t *b, float *y, size_t nb);
void dq_q3_k(const uint8_t *b, float *y, size_t nb);
void dq_q4_k(const uint8_t *b, float *y, size_t nb);
void dq_q5_k(const uint8_t *b, float *y, size_t nb);
void dq_q6_k(const uint8_t *b, float *y, size_t nb);
void dq_q8_k(const uint8_t *b, float *y, size_t nb);
void dq_q5_0(const uint8_t *b, float *y, size_t nb);
void dq_q5_1(const uint8_t *b, float *y, size_t nb);

#endif
