/* tokenizer_unigram.c — the Unigram language-model tokenizer (Kudo 2018,
 * "Subword Regularization", arXiv:1804.10959) as the `tokenizers` library runs it
 * (models/unigram/model.rs, encode_optimized, itself sentencepiece's
 * unigram_model.cc): the segmentation of a piece with the highest total log
 * probability, found by Viterbi over byte positions —
 *   best[0] = 0; for each character start i (in order), for every vocabulary piece
 *   w that starts there: best[i+|w|] = max(best[i+|w|], best[i] + score(w)), ties
 *   kept by the first found (shorter pieces first); if no piece covers the single
 *   character at i, an unknown node spans it with score min_score - 10 (kUnkPenalty).
 * Back-tracking from the end gives the pieces; consecutive unknowns fuse into one.
 * Each resulting string is then its vocabulary id, or with byte_fallback its bytes as
 * <0xXX> tokens when all exist, else unk_id.
 * Every vocabulary entry can match text, the <0xXX> and special pieces included, as
 * in the library (its trie holds them all). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

#define UNK_PENALTY 10.0

int unigram_parse(Tokenizer *t, const void *json_model, Error *e) {
    const json_t *model = json_model, *vocab = json_object_get(model, "vocab");
    if (!json_is_array(vocab) || !json_array_size(vocab))
        return err_set(e, EX_DATAERR, "%s: field \"model.vocab\" must be a non-empty array of [piece, score]", t->path);
    size_t n = json_array_size(vocab);
    if (n >= (1u << 24)) return err_set(e, EX_DATAERR, "%s: field \"model.vocab\": too many pieces", t->path);
    t->unigram = 1;
    t->n_ids = (int)n;
    t->piece = xcalloc(n + 1, sizeof(char *));
    t->piece_len = xcalloc(n + 1, sizeof(int));
    t->score = xcalloc(n + 1, sizeof(double));
    double min_score = 1e300;
    for (size_t i = 0; i < n; i++) {
        const json_t *ent = json_array_get(vocab, i), *p = json_array_get(ent, 0), *sc = json_array_get(ent, 1);
        if (!json_is_array(ent) || json_array_size(ent) != 2 || !json_is_string(p) || !json_is_number(sc))
            return err_set(e, EX_DATAERR, "%s: field \"model.vocab[%zu]\" must be [piece, score]", t->path, i);
        size_t len = json_string_length(p);
        if (!len || memchr(json_string_value(p), 0, len))
            return err_set(e, EX_DATAERR, "%s: field \"model.vocab[%zu]\": empty piece or NUL in it", t->path, i);
        t->piece[i] = xstrdup(json_string_value(p));
        t->piece_len[i] = (int)len;
        t->score[i] = json_number_value(sc);
        if (t->score[i] < min_score) min_score = t->score[i];
        if ((int)len > t->max_piece_len) t->max_piece_len = (int)len;
        /* duplicates: the library's token_to_ids keeps the last */
        strmap_put(&t->vocab, t->piece[i], len, (int)i);
    }
    t->unk_score = min_score - UNK_PENALTY;
    t->unk_id = -1;
    const json_t *u = json_object_get(model, "unk_id");
    if (json_is_integer(u)) {
        if (json_integer_value(u) < 0 || json_integer_value(u) >= (json_int_t)n)
            return err_set(e, EX_DATAERR, "%s: field \"model.unk_id\": %lld is not a vocabulary index", t->path,
                           (long long)json_integer_value(u));
        t->unk_id = (int)json_integer_value(u);
    }
    t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    t->fuse_unk = 1;
    for (int cp = 0; cp < 512; cp++) {
        char buf[4];
        int l = utf8_encode((uint32_t)cp, buf);
        t->cp_id[cp] = strmap_get(&t->vocab, buf, (size_t)l);
    }
    return 0;
}

static int char_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    int l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return (size_t)l > n ? (int)n : l;
}

static void push_string(Tokenizer *t, const char *s, size_t n, IntVec *out) {
    int id = strmap_get(&t->vocab, s, n);
    if (id >= 0) {
        intvec_push(out, id);
        return;
    }
    if (t->byte_fallback) {
        int ok = 1, before = out->n;
        for (size_t k = 0; k < n && ok; k++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", (unsigned char)s[k]);
            int b = strmap_get(&t->vocab, name, 6);
            if (b < 0)
                ok = 0;
            else
                intvec_push(out, b);
        }
        if (ok) return;
        out->n = before;
    }
    if (t->unk_id >= 0)
        intvec_push(out, t->unk_id);
    else
        t->n_dropped += (long)n; /* no unk_id (the library fails with MissingUnkId): tok_encode reports it */
}

void unigram_word(Tokenizer *t, const char *w, size_t n, IntVec *out) {
    if (!n) return;
    double *best = xmalloc((n + 1) * sizeof *best);
    int *from = xmalloc((n + 1) * sizeof *from); /* start of the best node ending here, -1 = none */
    int *node = xmalloc((n + 1) * sizeof *node); /* its id (unk_id or -2 for an unknown node without one) */
    for (size_t i = 0; i <= n; i++) from[i] = -1, best[i] = 0, node[i] = -1;
    for (size_t i = 0; i < n;) {
        int ml = char_len(w + i, n - i), single = 0;
        for (size_t l = 1; l <= (size_t)t->max_piece_len && i + l <= n; l++) {
            int id = strmap_get(&t->vocab, w + i, l);
            if (id < 0) continue;
            double sc = best[i] + t->score[id];
            if (from[i + l] < 0 || sc > best[i + l]) best[i + l] = sc, from[i + l] = (int)i, node[i + l] = id;
            if (l == (size_t)ml) single = 1;
        }
        if (!single) {
            double sc = best[i] + t->unk_score;
            if (from[i + ml] < 0 || sc > best[i + ml])
                best[i + ml] = sc, from[i + ml] = (int)i, node[i + ml] = t->unk_id >= 0 ? t->unk_id : -2;
        }
        i += (size_t)ml;
    }
    /* walk the best path forward, fusing consecutive unknown nodes */
    size_t npath = 0;
    size_t *ends = xmalloc((n + 1) * sizeof *ends);
    for (size_t end = n; end > 0; end = (size_t)from[end]) ends[npath++] = end;
    size_t start = 0, unk_start = (size_t)-1;
    for (size_t k = npath; k-- > 0;) {
        size_t end = ends[k];
        int is_unk = node[end] == -2 || (t->unk_id >= 0 && node[end] == t->unk_id);
        if (is_unk) {
            if (unk_start == (size_t)-1) unk_start = start;
        } else {
            if (unk_start != (size_t)-1) push_string(t, w + unk_start, start - unk_start, out), unk_start = (size_t)-1;
            push_string(t, w + start, end - start, out);
        }
        start = end;
    }
    if (unk_start != (size_t)-1) push_string(t, w + unk_start, n - unk_start, out);
    free(ends);
    free(best);
    free(from);
    free(node);
}
