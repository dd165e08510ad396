/* tokenizer_nfc.c — Unicode Normalization Form C for the "NFC" normalizer of
 * tokenizer.json (Qwen2 and others).  UAX #15: full canonical decomposition,
 * canonical ordering of combining marks (stable sort by combining class), then
 * canonical composition of each mark with the last starter unless blocked; Hangul
 * syllables by the algorithm of Unicode section 3.12.  Tables in
 * tokenizer_nfc_data.h (generated from the UCD by tests/oracle/make_unicode_tables.py).
 * Not for: NFKC/NFD/NFKD (not used by byte-level BPE files we support). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_impl.h"
#include "base/util.h"

#include "tokenizer_nfc_data.h"

/* Hangul (Unicode 3.12) */
enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, LCOUNT = 19, VCOUNT = 21, TCOUNT = 28 };
enum { NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = (int)(sizeof nfc_ccc / sizeof *nfc_ccc) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < nfc_ccc[mid][0])
            hi = mid - 1;
        else if (cp > nfc_ccc[mid][1])
            lo = mid + 1;
        else
            return (int)nfc_ccc[mid][2];
    }
    return 0;
}

static const uint32_t *decomp_of(uint32_t cp) {
    if (cp < 0xC0) return NULL;
    int lo = 0, hi = (int)(sizeof nfc_decomp / sizeof *nfc_decomp) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < nfc_decomp[mid][0])
            hi = mid - 1;
        else if (cp > nfc_decomp[mid][0])
            lo = mid + 1;
        else
            return nfc_decomp[mid];
    }
    return NULL;
}

/* Primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = (int)(sizeof nfc_comp / sizeof *nfc_comp) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (a < nfc_comp[mid][0] || (a == nfc_comp[mid][0] && b < nfc_comp[mid][1]))
            hi = mid - 1;
        else if (a > nfc_comp[mid][0] || b > nfc_comp[mid][1])
            lo = mid + 1;
        else
            return nfc_comp[mid][2];
    }
    return 0;
}

/* Every code point below U+0300 is unchanged by NFC and never composes with what
 * follows it unless a combining mark (>= U+0300) follows: such text needs nothing. */
static int nfc_quick_yes(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0xCC) return 0;
    return 1;
}

char *nfc_normalize(const char *in, size_t n, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)in;
    if (nfc_quick_yes(s, n)) return NULL;
    /* decompose (at most 4 code points per input code point) */
    uint32_t *cp = xmalloc((n * 4 + 1) * sizeof *cp);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        i += (size_t)utf8_decode(s + i, n - i, &c);
        if (c >= SBASE && c < SBASE + SCOUNT) {
            uint32_t si = c - SBASE;
            cp[m++] = LBASE + si / NCOUNT;
            cp[m++] = VBASE + (si % NCOUNT) / TCOUNT;
            if (si % TCOUNT) cp[m++] = TBASE + si % TCOUNT;
            continue;
        }
        const uint32_t *d = decomp_of(c);
        if (d)
            for (uint32_t k = 0; k < d[1]; k++) cp[m++] = d[2 + k];
        else
            cp[m++] = c;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters */
    for (size_t i = 1; i < m; i++) {
        int ci = ccc_of(cp[i]);
        if (!ci) continue;
        size_t j = i;
        uint32_t x = cp[i];
        while (j > 0) {
            int cj = ccc_of(cp[j - 1]);
            if (cj <= ci) break;
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = x;
    }
    /* canonical composition */
    size_t o = 0;
    long starter = -1;
    int last_cc = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t c = cp[i];
        int cc = ccc_of(c);
        if (starter >= 0 && ((long)o - 1 == starter || (last_cc != 0 && last_cc < cc))) {
            uint32_t k = compose(cp[starter], c);
            if (k) {
                cp[starter] = k;
                continue;
            }
        }
        if (cc == 0) starter = (long)o;
        cp[o++] = c;
        last_cc = cc;
    }
    char *out = xmalloc(o * 4 + 1);
    size_t b = 0;
    for (size_t i = 0; i < o; i++) b += (size_t)utf8_encode(cp[i], out + b);
    out[b] = 0;
    free(cp);
    if (b == n && memcmp(out, in, n) == 0) {
        free(out);
        return NULL;
    }
    *out_len = b;
    return out;
}
