/* ops_internal.h — what the ops_*.c files share and nobody else needs.
 * Not for: callers of ops.h. */
#ifndef CHERRY_OPS_INTERNAL_H
#define CHERRY_OPS_INTERNAL_H

#include <stddef.h>

/* Scratch buffers of the ops, one per slot, kept per calling thread and only ever
 * grown: a training step calls attention_backward 12 times and the LM head twice,
 * and fresh multi-megabyte allocations each time cost page faults (mmap'd by malloc,
 * zero-filled by the kernel) that showed up in the profile.  Contents are
 * unspecified (not zeroed).  The memory lives until the thread exits. */
enum { SCR_ATT_DS, SCR_ATT_PARTIAL, SCR_LP_H, SCR_LP_LOGITS, SCR_LP_DH, SCR_COUNT };
float *ops_scratch(int slot, size_t nfloats);

/* With grouped-query heads the attention backwards write each query head's share of
 * dK and dV to PK ([B, nh, 2, T, hd]: dK then dV of head h); this adds the shares of
 * the heads of each kv group into DK and DV in head order, so the sums do not depend
 * on the thread count.  DK or DV may be NULL. */
void attention_sum_group_partials(float *dk, float *dv, const float *pk, int B, int T, int nh, int nkv, int hd,
                                  int ldk);

/* The largest of m0 and x[0..n), in 16 independent lanes (vectorisable; max is exact,
 * so the lane split does not change the result; NaN is never taken).  The LM head's
 * row maxima and the fused attention's visible-score maxima. */
static inline float ops_lanes_max(const float *x, int n, float m0) {
    float mx[16];
    for (int k = 0; k < 16; k++) mx[k] = m0;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) mx[k] = x[j + k] > mx[k] ? x[j + k] : mx[k];
    for (; j < n; j++) mx[0] = x[j] > mx[0] ? x[j] : mx[0];
    float r = mx[0];
    for (int k = 1; k < 16; k++) r = mx[k] > r ? mx[k] : r;
    return r;
}

#endif
