/* segments.h — segment ids of a batch row and which segments a token may attend to.
 *
 * Segment ids >= 0 are plain segments (an example, or several packed into one row,
 * one id each), -1 is padding (data.h BATCH_PAD_SEG), and an id <= -2 is branch k of
 * the prefix segment p: seg_branch(p, k), k < SEG_BRANCHES.  That last kind is prefix
 * sharing (Wang et al. 2024, "Accelerating Direct Preference Optimization with Prefix
 * Sharing", arXiv:2410.20305): a DPO pair's prompt is laid out once, followed by its
 * chosen and its rejected completion, each a branch that sees the prefix and its own
 * earlier tokens but not the other branch.  Positions of a branch continue from its
 * prefix, so every token sees exactly what it would see in a row of its own: the
 * same outputs, to float rounding.  The attention kernels (ops.h) let query i see key
 * j iff j <= i and seg_visible(seg[j], seg[i]).  A sliding window counts row columns,
 * not positions: rows with branches must be no longer than the window (prefbatch.h
 * prefbatch_can_share).  Attention itself is computed over the whole shared row (the
 * other branch masked), so the saving is in the per-token work.  In base because the batch builders (data) and the
 * kernels both read it. */
#ifndef CHERRY_SEGMENTS_H
#define CHERRY_SEGMENTS_H

#define SEG_BRANCHES 16

static inline int seg_branch(int prefix, int k) {
    return -2 - (prefix * SEG_BRANCHES + k);
}
/* The prefix segment a query of segment si also sees: its parent for a branch, else si
 * itself (so the test is one comparison more, which vectorises). */
static inline int seg_parent(int si) {
    return si <= -2 ? (-2 - si) / SEG_BRANCHES : si;
}
static inline int seg_visible(int sj, int si) {
    return sj == si || sj == seg_parent(si);
}

#endif
