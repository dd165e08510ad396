/* quant_impl.h — private to formats/: the K-quant quantiser of quant_k.c. */
#ifndef CHERRY_QUANT_IMPL_H
#define CHERRY_QUANT_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* nb super-blocks of 256 floats at x -> nb block_q4_K (144 bytes each) at y. */
void quant_q4_k(const float *x, size_t nb, uint8_t *y);

#endif
