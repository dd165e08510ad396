/* data_batch.c — examples -> right-padded batches with positions, segments and
 * next-token targets (layout in data.h).  Packing places several examples in one
 * row with positions restarting and distinct segment ids, so attention (which
 * only lets a token see earlier tokens of its own segment) keeps them apart.
 * Not for: reading data (data.c). */
#include <stdlib.h>
#include <string.h>

#include "base/segments.h"
#include "base/util.h"
#include "data.h"

void batch_free(Batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->pos);
    free(b->seg);
    free(b->lengths);
    free(b->ex_row);
    free(b->ex_start);
    free(b->ex_len);
    memset(b, 0, sizeof *b);
}

static void batch_alloc(Batch *b, int B, int T, int n_ex, int pad_id) {
    memset(b, 0, sizeof *b);
    b->B = B;
    b->T = T;
    size_t N = (size_t)B * (size_t)T;
    b->tokens = xmalloc((N ? N : 1) * sizeof(int));
    b->targets = xmalloc((N ? N : 1) * sizeof(int));
    b->pos = xcalloc(N ? N : 1, sizeof(int));
    b->seg = xmalloc((N ? N : 1) * sizeof(int));
    b->lengths = xcalloc(B ? (size_t)B : 1, sizeof(int));
    b->ex_row = xmalloc((size_t)(n_ex ? n_ex : 1) * sizeof(int));
    b->ex_start = xmalloc((size_t)(n_ex ? n_ex : 1) * sizeof(int));
    b->ex_len = xmalloc((size_t)(n_ex ? n_ex : 1) * sizeof(int));
    for (size_t i = 0; i < N; i++) {
        b->tokens[i] = pad_id >= 0 ? pad_id : 0;
        b->targets[i] = -1;
        b->seg[i] = BATCH_PAD_SEG;
    }
}

/* Writes one sequence at row r, column c, segment s: ids (n of them) with the
 * targets given by mask (targets[t] = ids[t+1] when mask[t+1]). */
static void place(Batch *b, int r, int c, int s, const int *ids, const unsigned char *mask, int first_target, int n) {
    int *tok = b->tokens + (size_t)r * b->T + c, *tgt = b->targets + (size_t)r * b->T + c;
    int *pos = b->pos + (size_t)r * b->T + c, *seg = b->seg + (size_t)r * b->T + c;
    for (int t = 0; t < n; t++) {
        tok[t] = ids[t];
        pos[t] = t;
        seg[t] = s;
        int bears = t + 1 < n && (mask ? mask[t + 1] != 0 : t + 1 >= first_target);
        tgt[t] = bears ? ids[t + 1] : -1;
        if (bears) b->n_targets++;
    }
    int k = b->n_examples++;
    b->ex_row[k] = r;
    b->ex_start[k] = c;
    b->ex_len[k] = n;
    if (c + n > b->lengths[r]) b->lengths[r] = c + n;
}

int batch_fill(Batch *b, const Example *const *ex, int n, int B, int max_T, int packing, int pad_id, Error *e) {
    memset(b, 0, sizeof *b);
    if (n <= 0 || B <= 0) {
        batch_alloc(b, 0, max_T > 0 ? max_T : 1, 0, pad_id);
        return 0;
    }
    if (packing && max_T <= 0) {
        err_set(e, EX_SOFTWARE, "batch_fill: packing needs max_T > 0");
        return -1;
    }
    int considered = packing ? n : (n < B ? n : B);
    for (int i = 0; i < considered; i++) {
        if (max_T > 0 && ex[i]->n > max_T) {
            if (packing && i > 0) {
                considered = i;
                break;
            } /* reported when it comes first */
            err_set(e, EX_DATAERR, "line %ld: example of %d tokens is longer than the batch length %d", ex[i]->line,
                    ex[i]->n, max_T);
            return -1;
        }
    }
    if (!packing) {
        int rows = n < B ? n : B, T = max_T;
        if (T <= 0) {
            T = 1;
            for (int i = 0; i < rows; i++)
                if (ex[i]->n > T) T = ex[i]->n;
        }
        batch_alloc(b, rows, T, rows, pad_id);
        for (int i = 0; i < rows; i++) place(b, i, 0, 0, ex[i]->ids, ex[i]->mask, 0, ex[i]->n);
        return rows;
    }
    /* packing: first pass counts rows and examples, second places them */
    int rows = 0, used = 0, fill = max_T;
    for (int i = 0; i < considered; i++) {
        if (fill + ex[i]->n > max_T) {
            if (rows == B) break;
            rows++;
            fill = 0;
        }
        fill += ex[i]->n;
        used++;
    }
    batch_alloc(b, rows, max_T, used, pad_id);
    int r = -1, c = max_T, s = 0;
    for (int i = 0; i < used; i++) {
        if (c + ex[i]->n > max_T) r++, c = 0, s = 0;
        place(b, r, c, s++, ex[i]->ids, ex[i]->mask, 0, ex[i]->n);
        c += ex[i]->n;
    }
    return used;
}

int batch_fill_units(Batch *b, const Example *const *ex, const int *unit_len, int n_units, int max_T, int pad_id,
                     Error *e) {
    memset(b, 0, sizeof *b);
    if (max_T <= 0) return err_set(e, EX_SOFTWARE, "batch_fill_units: max_T must be > 0");
    int n_ex = 0;
    for (int u = 0; u < n_units; u++) {
        long len = 0;
        for (int k = 0; k < unit_len[u]; k++) len += ex[n_ex + k]->n;
        if (len > max_T)
            return err_set(e, EX_DATAERR, "line %ld: a packed row of %ld tokens is longer than the batch length %d",
                           unit_len[u] ? ex[n_ex]->line : 0L, len, max_T);
        n_ex += unit_len[u];
    }
    batch_alloc(b, n_units, max_T, n_ex, pad_id);
    int i = 0;
    for (int u = 0; u < n_units; u++) {
        int c = 0;
        for (int k = 0; k < unit_len[u]; k++, i++) {
            place(b, u, c, k, ex[i]->ids, ex[i]->mask, 0, ex[i]->n);
            c += ex[i]->n;
        }
    }
    return 0;
}

int batch_pairs(Batch *b, const PrefExample *const *p, int n, int max_T, int pad_id, Error *e) {
    memset(b, 0, sizeof *b);
    int T = 1;
    for (int i = 0; i < n; i++) {
        int lc = p[i]->n_prompt + p[i]->n_chosen, lr = p[i]->n_prompt + p[i]->n_rejected;
        int l = lc > lr ? lc : lr;
        if (max_T > 0 && l > max_T)
            return err_set(e, EX_DATAERR, "line %ld: pair of %d tokens is longer than the batch length %d", p[i]->line,
                           l, max_T);
        if (l > T) T = l;
    }
    if (max_T > 0) T = max_T;
    batch_alloc(b, 2 * n, T, 2 * n, pad_id);
    int *seq = xmalloc((size_t)T * sizeof(int));
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < n; i++) {
            const int *comp = half ? p[i]->rejected : p[i]->chosen;
            int nc = half ? p[i]->n_rejected : p[i]->n_chosen, np = p[i]->n_prompt;
            memcpy(seq, p[i]->prompt, (size_t)np * sizeof(int));
            memcpy(seq + np, comp, (size_t)nc * sizeof(int));
            /* completion tokens are ids[np..]: position t predicts t+1 for t+1 >= np */
            place(b, half * n + i, 0, 0, seq, NULL, np, np + nc);
        }
    free(seq);
    return 0;
}

/* One branch of a shared row at column c: ids[0..n) at positions pos0.., segment seg;
 * token t predicts ids[t + 1] from t >= first_target - 1 on (place's rule). */
static void place_branch(Batch *b, int r, int c, int pos0, int seg, const int *ids, int n, int first_target) {
    size_t at = (size_t)r * b->T + c;
    for (int t = 0; t < n; t++) {
        b->tokens[at + t] = ids[t];
        b->pos[at + t] = pos0 + t;
        b->seg[at + t] = seg;
        int bears = t + 1 < n && t + 1 >= first_target;
        b->targets[at + t] = bears ? ids[t + 1] : -1;
        if (bears) b->n_targets++;
    }
}

int batch_pair_shared_len(const PrefExample *p) {
    return p->n_prompt + p->n_chosen + p->n_rejected + (p->n_prompt > 0);
}

int batch_pairs_shared(Batch *b, const PrefExample *const *p, int n, int pad_id) {
    memset(b, 0, sizeof *b);
    int T = 1;
    for (int i = 0; i < n; i++) {
        int l = batch_pair_shared_len(p[i]);
        if (l > T) T = l;
    }
    batch_alloc(b, n, T, 2 * n, pad_id);
    b->shared = 1;
    int *seq = xmalloc((size_t)T * sizeof(int));
    for (int i = 0; i < n; i++) {
        int np = p[i]->n_prompt, keep = np > 0 ? np - 1 : 0; /* the prefix all but the last prompt token */
        place_branch(b, i, 0, 0, 0, p[i]->prompt, keep, keep + 1);
        int c = keep;
        for (int half = 0; half < 2; half++) {
            const int *comp = half ? p[i]->rejected : p[i]->chosen;
            int nc = half ? p[i]->n_rejected : p[i]->n_chosen, lead = np - keep;
            if (lead) seq[0] = p[i]->prompt[np - 1];
            memcpy(seq + lead, comp, (size_t)nc * sizeof(int));
            place_branch(b, i, c, keep, seg_branch(0, half), seq, lead + nc, lead);
            int k = half * n + i;
            b->ex_row[k] = i;
            b->ex_start[k] = c;
            b->ex_len[k] = lead + nc;
            c += lead + nc;
        }
        b->lengths[i] = c;
    }
    b->n_examples = 2 * n;
    free(seq);
    return 0;
}
