/* tokenizer_util.c — the small data structures under the tokenizer: a string hash
 * map, UTF-8 decoding/validation with U+FFFD substitution, and piece lists.
 * See tokenizer_impl.h.  Not for use outside tokenizer*.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "tokenizer_impl.h"

/* ---- IntVec (declared in tokenizer.h) ---- */
void intvec_reserve(IntVec *a, int cap) {
    if (cap <= a->cap) return;
    int c = a->cap ? a->cap : 16;
    while (c < cap) c *= 2;
    a->v = xrealloc(a->v, (size_t)c * sizeof(int));
    a->cap = c;
}
void intvec_push(IntVec *a, int x) {
    if (a->n == a->cap) intvec_reserve(a, a->n + 1);
    a->v[a->n++] = x;
}
void intvec_append(IntVec *a, const int *x, int n) {
    if (n <= 0) return;
    intvec_reserve(a, a->n + n);
    memcpy(a->v + a->n, x, (size_t)n * sizeof(int));
    a->n += n;
}
void intvec_free(IntVec *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---- hash map ---- */
/* Eight bytes at a time, each word mixed with a multiply and an xor-shift (the
 * splitmix64 finaliser constants): several times faster than byte-wise FNV on the
 * short keys here, and well spread for a power-of-two table with linear probing. */
uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

int strmap_get(const StrMap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    uint64_t h = tok_hash_bytes(key, len);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const StrMapEnt *e = &m->ents[i];
        if (!e->used) return -1;
        if (e->hash == h && e->len == len && memcmp(m->arena + e->off, key, len) == 0) return e->val;
    }
}

static void strmap_grow(StrMap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    StrMapEnt *ne = xcalloc(ncap, sizeof *ne);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->ents[i].used) continue;
        size_t j = (size_t)m->ents[i].hash & (ncap - 1);
        while (ne[j].used) j = (j + 1) & (ncap - 1);
        ne[j] = m->ents[i];
    }
    free(m->ents);
    m->ents = ne;
    m->cap = ncap;
}

void strmap_put(StrMap *m, const char *key, size_t len, int val) {
    if ((m->n + 1) * 4 >= m->cap * 3) strmap_grow(m);
    uint64_t h = tok_hash_bytes(key, len);
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        StrMapEnt *e = &m->ents[i];
        if (!e->used) break;
        if (e->hash == h && e->len == len && memcmp(m->arena + e->off, key, len) == 0) {
            e->val = val;
            return;
        }
    }
    m->arena = xgrow(m->arena, &m->arena_cap, m->arena_len + len + 1, 4096, 1);
    memcpy(m->arena + m->arena_len, key, len);
    m->ents[i] = (StrMapEnt){.hash = h, .off = (uint32_t)m->arena_len, .len = (uint32_t)len, .val = val, .used = 1};
    m->arena_len += len;
    m->n++;
}

void strmap_clear(StrMap *m) {
    if (m->ents) memset(m->ents, 0, m->cap * sizeof *m->ents);
    m->n = 0;
    m->arena_len = 0;
}

void strmap_free(StrMap *m) {
    free(m->ents);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ---- */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    int need = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (need > (int)n || (c >= 0x80 && c < 0xC0)) { /* only on invalid input: one byte */
        *cp = c;
        return 1;
    }
    switch (need) {
    case 1:
        *cp = c;
        break;
    case 2:
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        break;
    case 3:
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        break;
    default:
        *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    }
    return need;
}

int utf8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Well-formed UTF-8 byte sequences, Unicode Standard Table 3-7: the lead byte fixes
 * the length and the allowed range of the SECOND byte; later bytes are 80..BF. */
int utf8_valid_len(const unsigned char *s, size_t n, int *bad) {
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c == 0xE0)
        need = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC)
        need = 3;
    else if (c == 0xED)
        need = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF)
        need = 3;
    else if (c == 0xF0)
        need = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 4;
    else if (c == 0xF4)
        need = 4, hi = 0x8F;
    else {
        *bad = 1; /* C0, C1, F5..FF, or a stray continuation byte */
        return 0;
    }
    for (int k = 1; k < need; k++) {
        unsigned b = k < (int)n ? s[k] : 0x100;
        unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = k; /* the maximal subpart: lead plus the k-1 good continuations */
            return 0;
        }
    }
    return need;
}

char *utf8_sanitize(const char *in, size_t n, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    int bad = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int l = utf8_valid_len(s + i, n - i, &bad);
        if (!l) break;
        i += (size_t)l;
    }
    if (i == n) return NULL;
    /* worst case: every byte becomes EF BF BD */
    char *out = xmalloc(n * 3 + 1);
    memcpy(out, in, i);
    size_t o = i;
    while (i < n) {
        int l = s[i] < 0x80 ? 1 : utf8_valid_len(s + i, n - i, &bad);
        if (l) {
            memcpy(out + o, s + i, (size_t)l);
            o += (size_t)l;
            i += (size_t)l;
        } else {
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i += (size_t)bad;
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* Unicode PropList.txt White_Space (Unicode 15). */
int uni_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- pieces ---- */
void pieces_reset(Pieces *p) {
    p->len = 0;
    p->n = 0;
}

void pieces_add(Pieces *p, const char *s, size_t n) {
    if (!n) return;
    /* s may point into p->buf itself (a piece re-added): keep it valid across realloc */
    ptrdiff_t inside = p->buf && s >= p->buf && s < p->buf + p->len ? s - p->buf : -1;
    p->buf = xgrow(p->buf, &p->cap, p->len + n, 1024, 1);
    if (p->n == p->ncap) {
        p->ncap = p->ncap ? p->ncap * 2 : 64;
        p->off = xrealloc(p->off, (size_t)p->ncap * sizeof *p->off);
        p->plen = xrealloc(p->plen, (size_t)p->ncap * sizeof *p->plen);
    }
    if (inside >= 0) s = p->buf + inside;
    memmove(p->buf + p->len, s, n);
    p->off[p->n] = p->len;
    p->plen[p->n] = n;
    p->n++;
    p->len += n;
}

void pieces_free(Pieces *p) {
    free(p->buf);
    free(p->off);
    free(p->plen);
    memset(p, 0, sizeof *p);
}

/* Replaces NUL bytes with U+FFFD: a sampled NUL would reach the program as \u0000,
 * which many JSON readers (jansson by default, hence task-reward) refuse. */
void utf8_replace_nul(char **txt, size_t *len) {
    if (!memchr(*txt, 0, *len)) return;
    size_t nul = 0;
    for (size_t i = 0; i < *len; i++) nul += (*txt)[i] == 0;
    char *r = xmalloc(*len + 2 * nul + 1), *w = r;
    for (size_t i = 0; i < *len; i++) {
        if ((*txt)[i]) {
            *w++ = (*txt)[i];
        } else {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
        }
    }
    *w = 0;
    free(*txt);
    *txt = r;
    *len = (size_t)(w - r);
}
