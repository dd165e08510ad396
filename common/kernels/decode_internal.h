/* decode_internal.h — what decode.c and decode_int8.c share; not for callers
 * (they use decode.h). */
#ifndef CHERRY_DECODE_INTERNAL_H
#define CHERRY_DECODE_INTERNAL_H

#include "decode.h"

/* decode_bf16_force_portable's setting: 1 when the portable kernels are forced. */
int decode_portable_forced(void);

/* decode_int8.c: the int8 panels (decode_pack_dtype with DECODE_INT8) and their
 * product (decode_linear on such panels). */
void decode_int8_pack(DecodePacked *pk, const float *w, int C, int OC);
void decode_int8_linear(float *out, const float *in, const DecodePacked *pk, const float *bias, int N, int nt);

#endif
