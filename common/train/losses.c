/* losses.c — token-level losses.  See losses.h. */
#include "losses.h"

double sft_loss(const float *logp, const int *targets, size_t N, double scale, float *dlogp, long *n_tokens) {
    /* Cross-entropy of the next token: -log p(t_{n+1} | t_{<=n}), summed over the
     * loss-bearing positions (Radford et al. 2018, eq. 1; transformers
     * loss_utils.ForCausalLMLoss with reduction "sum" then / num_items_in_batch). */
    double sum = 0;
    long count = 0;
    const float g = (float)(-scale);
    for (size_t n = 0; n < N; n++) {
        if (targets[n] >= 0) {
            sum -= logp[n];
            count++;
            if (dlogp) dlogp[n] = g;
        } else if (dlogp) {
            dlogp[n] = 0.0f;
        }
    }
    if (n_tokens) *n_tokens = count;
    return sum;
}

void sft_dlogp(const int *targets, size_t N, double scale, float *dlogp) {
    const float g = (float)(-scale); /* as sft_loss */
    for (size_t n = 0; n < N; n++) dlogp[n] = targets[n] >= 0 ? g : 0.0f;
}

long token_correct(const int *pred, const int *targets, size_t N) {
    long c = 0;
    for (size_t n = 0; n < N; n++)
        if (targets[n] >= 0 && pred[n] == targets[n]) c++;
    return c;
}

void seq_logp_sum(const float *logp, const int *targets, const int *start, const int *len, int n_seq, double *out,
                  int *count) {
    for (int i = 0; i < n_seq; i++) {
        double s = 0;
        int c = 0;
        for (int r = start[i]; r < start[i] + len[i]; r++)
            if (targets[r] >= 0) {
                s += logp[r];
                c++;
            }
        out[i] = s;
        if (count) count[i] = c;
    }
}

void seq_logp_sum_backward(const double *dseq, const int *targets, const int *start, const int *len, int n_seq,
                           float *dlogp) {
    for (int i = 0; i < n_seq; i++)
        for (int r = start[i]; r < start[i] + len[i]; r++)
            if (targets[r] >= 0) dlogp[r] += (float)dseq[i];
}
