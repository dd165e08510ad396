/* tokenizer_bpe.c — the BPE model: one pre-tokenized word -> ids.
 *
 * Algorithm (Sennrich et al. 2016, as implemented by tokenizers' `Word::merge_all`):
 * the word starts as one symbol per character; a min-heap holds candidate merges of
 * adjacent symbols keyed by (merge rank, left position).  The best is popped; if its
 * two symbols are still adjacent and still form that pair it is applied and the new
 * pairs with the neighbours are pushed.  O(n log n) per word, never a rescan.
 * Equivalent to "repeatedly apply the lowest-rank merge, leftmost first".
 * Unknown characters: byte_fallback <0xXX> tokens if all exist, else unk_token
 * (fused when fuse_unk), else dropped — the library's order.  ignore_merges: a word
 * that is itself in the vocabulary is returned whole (Llama-3).
 * A bounded word -> ids cache makes repeated words cost one hash lookup.
 * Not for: pre-tokenization (tokenizer_pretok.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

#define CACHE_MAX_WORD 128 /* longer words are not cached */
/* The cache is cleared when it holds this many words or ids: a few MB at most, so
 * memory does not grow with the amount of text encoded. */
#define CACHE_MAX_WORDS ((size_t)3 << 14) /* 3/4 of a 2^16-slot table: it never regrows */
#define CACHE_MAX_IDS ((size_t)1 << 20)

struct HeapEnt {
    int rank, pos, new_id;
};

static size_t merge_slot(const Tokenizer *t, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 17) & (t->merge_cap - 1);
}

void bpe_merge_put(Tokenizer *t, int left, int right, int rank, int new_id) {
    if ((size_t)(t->n_merges + 1) * 2 >= t->merge_cap) {
        size_t ncap = t->merge_cap ? t->merge_cap * 2 : 1024;
        MergeEnt *old = t->merges;
        size_t ocap = t->merge_cap;
        t->merges = xcalloc(ncap, sizeof(MergeEnt));
        t->merge_cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
            if (!old[i].key) continue;
            size_t j = merge_slot(t, old[i].key);
            while (t->merges[j].key) j = (j + 1) & (ncap - 1);
            t->merges[j] = old[i];
        }
        free(old);
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t j = merge_slot(t, key);
    while (t->merges[j].key && t->merges[j].key != key) j = (j + 1) & (t->merge_cap - 1);
    if (t->merges[j].key == key) return; /* a duplicate merge keeps its first (best) rank */
    t->merges[j] = (MergeEnt){key, rank, new_id};
    t->n_merges++;
}

static const MergeEnt *merge_get(const Tokenizer *t, int left, int right) {
    if (!t->merge_cap) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    for (size_t j = merge_slot(t, key);; j = (j + 1) & (t->merge_cap - 1)) {
        if (!t->merges[j].key) return NULL;
        if (t->merges[j].key == key) return &t->merges[j];
    }
}

static int heap_less(const struct HeapEnt *a, const struct HeapEnt *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(Tokenizer *t, int *hn, struct HeapEnt x) {
    if (*hn == t->heap_cap) {
        t->heap_cap = t->heap_cap ? t->heap_cap * 2 : 256;
        t->heap = xrealloc(t->heap, (size_t)t->heap_cap * sizeof *t->heap);
    }
    int i = (*hn)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!heap_less(&x, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = x;
}

static struct HeapEnt heap_pop(Tokenizer *t, int *hn) {
    struct HeapEnt top = t->heap[0], x = t->heap[--(*hn)];
    int i = 0, n = *hn;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_less(&t->heap[c], &x)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = x;
    return top;
}

static void sym_reserve(Tokenizer *t, int n) {
    if (n <= t->sym_cap) return;
    int c = t->sym_cap ? t->sym_cap : 256;
    while (c < n) c *= 2;
    t->sym_id = xrealloc(t->sym_id, (size_t)c * sizeof(int));
    t->sym_prev = xrealloc(t->sym_prev, (size_t)c * sizeof(int));
    t->sym_next = xrealloc(t->sym_next, (size_t)c * sizeof(int));
    t->sym_cap = c;
}

static int char_id(const Tokenizer *t, const char *s, int len, uint32_t cp) {
    if (cp < 512) return t->cp_id[cp];
    return strmap_get(&t->vocab, s, (size_t)len);
}

/* Builds the initial symbols of w; returns their count. */
static int bpe_symbols(Tokenizer *t, const char *w, size_t n) {
    int ns = 0;
    int unk_pending = 0; /* an unk symbol not yet emitted (fuse_unk) */
    sym_reserve(t, (int)n * 4 + 4);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = utf8_decode((const unsigned char *)w + i, n - i, &cp);
        int id = char_id(t, w + i, l, cp);
        if (id >= 0) {
            if (unk_pending) t->sym_id[ns++] = t->unk_id, unk_pending = 0;
            t->sym_id[ns++] = id;
        } else {
            int done = 0;
            if (t->byte_fallback) {
                int ids[4], ok = 1;
                for (int k = 0; k < l; k++) {
                    char name[8];
                    snprintf(name, sizeof name, "<0x%02X>", (unsigned char)w[i + k]);
                    ids[k] = strmap_get(&t->vocab, name, 6);
                    if (ids[k] < 0) ok = 0;
                }
                if (ok) {
                    if (unk_pending) t->sym_id[ns++] = t->unk_id, unk_pending = 0;
                    for (int k = 0; k < l; k++) t->sym_id[ns++] = ids[k];
                    done = 1;
                }
            }
            if (!done && t->unk_id >= 0) {
                if (unk_pending && !t->fuse_unk) t->sym_id[ns++] = t->unk_id;
                unk_pending = 1;
            } else if (!done) {
                t->n_dropped += l; /* no unk token, no byte fallback: tok_encode reports it */
            }
        }
        i += (size_t)l;
    }
    if (unk_pending) t->sym_id[ns++] = t->unk_id;
    return ns;
}

static void cache_put(Tokenizer *t, const char *w, size_t n, const int *ids, int k) {
    if (t->cache_len + (size_t)k + 1 > CACHE_MAX_IDS || t->cache.n >= CACHE_MAX_WORDS) {
        strmap_clear(&t->cache);
        t->cache_len = 0;
    }
    t->cache_ids = xgrow(t->cache_ids, &t->cache_cap, t->cache_len + (size_t)k + 1, 4096, sizeof(int));
    strmap_put(&t->cache, w, n, (int)t->cache_len);
    t->cache_ids[t->cache_len++] = k;
    if (k > 0) memcpy(t->cache_ids + t->cache_len, ids, (size_t)k * sizeof(int)); /* ids may be NULL when k = 0 */
    t->cache_len += (size_t)k;
}

void bpe_word(Tokenizer *t, const char *w, size_t n, IntVec *out) {
    if (!n) return;
    if (n <= CACHE_MAX_WORD) {
        int at = strmap_get(&t->cache, w, n);
        if (at >= 0) {
            intvec_append(out, t->cache_ids + at + 1, t->cache_ids[at]);
            return;
        }
    }
    int start = out->n;
    long dropped = t->n_dropped;
    if (t->ignore_merges) {
        int id = strmap_get(&t->vocab, w, n);
        if (id >= 0) {
            intvec_push(out, id);
            goto done;
        }
    }
    int ns = bpe_symbols(t, w, n);
    for (int i = 0; i < ns; i++) {
        t->sym_prev[i] = i - 1;
        t->sym_next[i] = i + 1 < ns ? i + 1 : -1;
    }
    int hn = 0;
    for (int i = 0; i + 1 < ns; i++) {
        const MergeEnt *m = merge_get(t, t->sym_id[i], t->sym_id[i + 1]);
        if (m) heap_push(t, &hn, (struct HeapEnt){m->rank, i, m->new_id});
    }
    while (hn) {
        struct HeapEnt top = heap_pop(t, &hn);
        int p = top.pos;
        if (t->sym_id[p] < 0) continue; /* merged away */
        int q = t->sym_next[p];
        if (q < 0) continue;
        const MergeEnt *m = merge_get(t, t->sym_id[p], t->sym_id[q]);
        if (!m || m->new_id != top.new_id) continue; /* stale: the pair changed */
        t->sym_id[p] = top.new_id;
        t->sym_id[q] = -1;
        int r = t->sym_next[q];
        t->sym_next[p] = r;
        if (r >= 0) t->sym_prev[r] = p;
        int l = t->sym_prev[p];
        if (l >= 0) {
            const MergeEnt *ml = merge_get(t, t->sym_id[l], t->sym_id[p]);
            if (ml) heap_push(t, &hn, (struct HeapEnt){ml->rank, l, ml->new_id});
        }
        if (r >= 0) {
            const MergeEnt *mr = merge_get(t, t->sym_id[p], t->sym_id[r]);
            if (mr) heap_push(t, &hn, (struct HeapEnt){mr->rank, p, mr->new_id});
        }
    }
    for (int i = ns ? 0 : -1; i >= 0; i = t->sym_next[i]) intvec_push(out, t->sym_id[i]);
done:
    /* a word may encode to nothing (only unencodable characters): then out->v may
     * still be NULL, and NULL + 0 is undefined */
    if (n <= CACHE_MAX_WORD && t->n_dropped == dropped) /* a word that dropped bytes must drop them again */
        cache_put(t, w, n, out->n > start ? out->v + start : NULL, out->n - start);
}

void bpe_free(Tokenizer *t) {
    free(t->merges);
    free(t->sym_id);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->heap);
    free(t->cache_ids);
    strmap_free(&t->cache);
}
