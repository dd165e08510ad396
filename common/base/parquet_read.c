/* parquet_read.c — one column chunk of a Parquet file to level entries and JSON
 * values: the page loop, decompression, the RLE/bit-packed hybrid, and the value
 * encodings (Encodings.md of parquet-format).  Every length is checked against the
 * bytes it describes before they are read. */
#include <brotli/decode.h>
#include <lz4.h>
#include <math.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "parquet_impl.h"
#include "util.h"

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static const char *codec_name(int c) {
    static const char *n[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
    return c >= 0 && c < 8 ? n[c] : "unknown";
}

/* ---- decompression: exactly DN bytes out of SN bytes, or an error ---- */
static int lz4_hadoop(const uint8_t *src, size_t sn, uint8_t *dst, size_t dn) {
    /* Hadoop's framing (parquet-format's deprecated LZ4): blocks of [u32 BE raw
     * size][u32 BE compressed size][LZ4 block]. */
    size_t si = 0, di = 0;
    while (si < sn) {
        if (sn - si < 8) return -1;
        uint32_t raw = (uint32_t)src[si] << 24 | (uint32_t)src[si + 1] << 16 | (uint32_t)src[si + 2] << 8 | src[si + 3];
        uint32_t cn =
            (uint32_t)src[si + 4] << 24 | (uint32_t)src[si + 5] << 16 | (uint32_t)src[si + 6] << 8 | src[si + 7];
        si += 8;
        if (cn > sn - si || raw > dn - di || cn > INT32_MAX || raw > INT32_MAX) return -1;
        int got = LZ4_decompress_safe((const char *)src + si, (char *)dst + di, (int)cn, (int)raw);
        if (got < 0 || (uint32_t)got != raw) return -1;
        si += cn;
        di += raw;
    }
    return di == dn ? 0 : -1;
}

static int decompress(int codec, const uint8_t *src, size_t sn, uint8_t *dst, size_t dn) {
    switch (codec) {
    case PQ_SNAPPY: {
        size_t len;
        if (snappy_uncompressed_length((const char *)src, sn, &len) != SNAPPY_OK || len != dn) return -1;
        return snappy_uncompress((const char *)src, sn, (char *)dst, &len) == SNAPPY_OK && len == dn ? 0 : -1;
    }
    case PQ_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, 15 + 32) != Z_OK) return -1; /* 15+32: gzip or zlib header */
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)sn;
        z.next_out = dst;
        z.avail_out = (uInt)dn;
        int r = inflate(&z, Z_FINISH);
        size_t out = dn - z.avail_out;
        inflateEnd(&z);
        return (r == Z_STREAM_END || (r == Z_BUF_ERROR && z.avail_out == 0)) && out == dn ? 0 : -1;
    }
    case PQ_BROTLI: {
        size_t out = dn;
        if (BrotliDecoderDecompress(sn, src, &out, dst) != BROTLI_DECODER_RESULT_SUCCESS) return -1;
        return out == dn ? 0 : -1;
    }
    case PQ_LZ4:
        if (lz4_hadoop(src, sn, dst, dn) == 0) return 0;
        /* some writers put a bare block under the old codec id */
        __attribute__((fallthrough));
    case PQ_LZ4_RAW: {
        if (sn > INT32_MAX || dn > INT32_MAX) return -1;
        int got = LZ4_decompress_safe((const char *)src, (char *)dst, (int)sn, (int)dn);
        return got >= 0 && (size_t)got == dn ? 0 : -1;
    }
    case PQ_ZSTD: {
        size_t got = ZSTD_decompress(dst, dn, src, sn);
        return !ZSTD_isError(got) && got == dn ? 0 : -1;
    }
    default:
        return -2;
    }
}

/* ---- the RLE/bit-packed hybrid (Encodings.md "RLE"), bit width W <= 32 ---- */
static int hybrid_decode(const uint8_t *p, size_t n, int w, uint32_t *out, int64_t count) {
    if (w < 0 || w > 32) return -1;
    PqThrift t = {p, p + n, 0, 0};
    int64_t i = 0;
    while (i < count) {
        uint64_t h = pq_varint(&t);
        if (t.bad) return -1;
        size_t left = (size_t)(t.end - t.p);
        if (h & 1) { /* bit-packed: (h>>1) groups of 8 values, LSB first */
            uint64_t groups = h >> 1;
            if (groups > left) return -1; /* each group takes w >= 1 bytes, or 0 when w == 0 */
            uint64_t bytes = groups * (uint64_t)w;
            if (bytes > left) return -1;
            uint64_t nv = groups * 8;
            const uint8_t *run = t.p;
            uint64_t take = nv < (uint64_t)(count - i) ? nv : (uint64_t)(count - i);
            uint64_t mask = w == 32 ? 0xffffffffu : ((uint64_t)1 << w) - 1;
            for (uint64_t k = 0; k < take; k++) {
                uint64_t bit = k * (uint64_t)w, v = 0;
                size_t b0 = (size_t)(bit >> 3);
                int sh = (int)(bit & 7), nb = (sh + w + 7) >> 3;
                for (int b = 0; b < nb; b++) v |= (uint64_t)run[b0 + b] << (8 * b);
                out[i++] = (uint32_t)((v >> sh) & mask);
            }
            t.p += bytes;
        } else { /* a run of one value, stored in ceil(w/8) bytes */
            uint64_t run = h >> 1;
            size_t vb = (size_t)(w + 7) / 8;
            if (vb > left) return -1;
            uint64_t v = 0;
            for (size_t b = 0; b < vb; b++) v |= (uint64_t)t.p[b] << (8 * b);
            t.p += vb;
            if (w < 32 && v >> w) return -1;
            uint64_t take = run < (uint64_t)(count - i) ? run : (uint64_t)(count - i);
            for (uint64_t k = 0; k < take; k++) out[i++] = (uint32_t)v;
        }
    }
    return 0;
}

static int bit_width(int max) {
    int w = 0;
    while (max >> w) w++;
    return w;
}

/* ---- values ---- */
typedef struct Ctx {
    const char *where; /* "FILE: parquet: row group G, column \"x\"" */
    const PqNode *leaf;
    Error *e;
} Ctx;

static int bad(Ctx *c, const char *what) {
    return err_set(c->e, EX_DATAERR, "%s: %s", c->where, what);
}

static int bytes_value(Ctx *c, const uint8_t *s, size_t n, json_t **out) {
    *out = json_stringn((const char *)s, n);
    if (!*out) return bad(c, "a byte-array value is not UTF-8 text (binary columns are not supported)");
    return 0;
}

static json_t *int_value(const PqNode *leaf, int64_t v, int is32) {
    /* unsigned annotations (UINT_8..UINT_64, ConvertedType 11-14) */
    if (is32 && leaf->converted >= 11 && leaf->converted <= 13) return json_integer((json_int_t)(uint32_t)v);
    if (!is32 && leaf->converted == PQ_CT_UINT_64 && v < 0) return json_real((double)(uint64_t)v);
    return json_integer((json_int_t)v);
}

static json_t *real_value(double d) {
    return isfinite(d) ? json_real(d) : json_null(); /* JSON has no NaN or infinity */
}

/* NV values of the leaf's type in PLAIN encoding, from P[0..N). */
static int plain_decode(Ctx *c, const uint8_t *p, size_t n, int64_t nv, json_t **out) {
    const PqNode *L = c->leaf;
    size_t off = 0;
    int rc = 0;
    for (int64_t i = 0; i < nv; i++) {
        switch (L->type) {
        case PQ_BOOLEAN:
            if ((uint64_t)i / 8 >= n) return bad(c, "PLAIN booleans: page too short");
            out[i] = json_boolean((p[i / 8] >> (i % 8)) & 1);
            break;
        case PQ_INT32:
            if (n - off < 4 || off > n) return bad(c, "PLAIN INT32: page too short");
            out[i] = int_value(L, (int32_t)le32(p + off), 1);
            off += 4;
            break;
        case PQ_INT64:
            if (n - off < 8 || off > n) return bad(c, "PLAIN INT64: page too short");
            out[i] = int_value(L, (int64_t)le64(p + off), 0);
            off += 8;
            break;
        case PQ_INT96:
            return bad(c, "INT96 (legacy timestamp) columns are not supported");
        case PQ_FLOAT: {
            if (n - off < 4 || off > n) return bad(c, "PLAIN FLOAT: page too short");
            uint32_t u = le32(p + off);
            float f;
            memcpy(&f, &u, 4);
            out[i] = real_value(f);
            off += 4;
            break;
        }
        case PQ_DOUBLE: {
            if (n - off < 8 || off > n) return bad(c, "PLAIN DOUBLE: page too short");
            uint64_t u = le64(p + off);
            double d;
            memcpy(&d, &u, 8);
            out[i] = real_value(d);
            off += 8;
            break;
        }
        case PQ_BYTE_ARRAY: {
            if (n - off < 4 || off > n) return bad(c, "PLAIN BYTE_ARRAY: page too short");
            uint32_t len = le32(p + off);
            off += 4;
            if (len > n - off) return bad(c, "PLAIN BYTE_ARRAY: a length runs past the page");
            if ((rc = bytes_value(c, p + off, len, &out[i]))) return rc;
            off += len;
            break;
        }
        case PQ_FIXED: {
            size_t len = (size_t)L->type_length;
            if (len > n - off || off > n) return bad(c, "PLAIN FIXED_LEN_BYTE_ARRAY: page too short");
            if ((rc = bytes_value(c, p + off, len, &out[i]))) return rc;
            off += len;
            break;
        }
        }
    }
    return 0;
}

/* DELTA_BINARY_PACKED: up to MAXN values into OUT (*got set), *used = bytes read. */
static int delta_binary(const uint8_t *p, size_t n, int64_t maxn, int64_t *out, int64_t *got, size_t *used) {
    PqThrift t = {p, p + n, 0, 0};
    uint64_t block = pq_varint(&t), minis = pq_varint(&t), total = pq_varint(&t);
    uint64_t first = pq_varint(&t);
    if (t.bad || block == 0 || block % 128 || minis == 0 || block % minis || (block / minis) % 32 ||
        total > (uint64_t)maxn)
        return -1;
    uint64_t per = block / minis;
    uint64_t prev = (uint64_t)((int64_t)(first >> 1) ^ -(int64_t)(first & 1));
    int64_t i = 0;
    if (total > 0) out[i++] = (int64_t)prev;
    while ((uint64_t)i < total) {
        uint64_t zz = pq_varint(&t);
        uint64_t min_delta = (uint64_t)((int64_t)(zz >> 1) ^ -(int64_t)(zz & 1));
        if (t.bad || minis > (uint64_t)(t.end - t.p)) return -1;
        const uint8_t *widths = t.p;
        t.p += minis;
        for (uint64_t m = 0; m < minis && (uint64_t)i < total; m++) {
            int w = widths[m];
            if (w > 64) return -1;
            uint64_t bytes = per * (uint64_t)w / 8;
            if (bytes > (uint64_t)(t.end - t.p)) return -1;
            for (uint64_t k = 0; k < per && (uint64_t)i < total; k++) {
                uint64_t bit = k * (uint64_t)w, v = 0;
                if (w) {
                    size_t b0 = (size_t)(bit >> 3);
                    int sh = (int)(bit & 7), nb = (sh + w + 7) >> 3;
                    unsigned __int128 acc = 0;
                    for (int b = 0; b < nb; b++) acc |= (unsigned __int128)t.p[b0 + b] << (8 * b);
                    v = (uint64_t)(acc >> sh);
                    if (w < 64) v &= ((uint64_t)1 << w) - 1;
                }
                prev += min_delta + v; /* wrapping, as the spec's two's-complement arithmetic */
                out[i++] = (int64_t)prev;
            }
            t.p += bytes;
        }
    }
    *got = i;
    *used = (size_t)(t.p - p);
    return 0;
}

static int delta_ints(Ctx *c, const uint8_t *p, size_t n, int64_t nv, json_t **out) {
    int64_t *v = xmalloc((size_t)(nv ? nv : 1) * sizeof *v), got = 0;
    size_t used;
    if (delta_binary(p, n, nv, v, &got, &used) || got != nv) {
        free(v);
        return bad(c, "DELTA_BINARY_PACKED: damaged or too few values");
    }
    for (int64_t i = 0; i < nv; i++)
        out[i] = c->leaf->type == PQ_INT32 ? int_value(c->leaf, (int32_t)v[i], 1) : int_value(c->leaf, v[i], 0);
    free(v);
    return 0;
}

/* DELTA_LENGTH_BYTE_ARRAY (PREFIX NULL) or DELTA_BYTE_ARRAY (prefix lengths first). */
static int delta_bytes(Ctx *c, const uint8_t *p, size_t n, int64_t nv, int with_prefix, json_t **out) {
    int64_t *pre = NULL, *len = xmalloc((size_t)(nv ? nv : 1) * sizeof *len), got = 0;
    size_t used = 0, off = 0;
    int rc = 0;
    char *prev = NULL, *cur = NULL;
    size_t prev_n = 0;
    if (with_prefix) {
        pre = xmalloc((size_t)(nv ? nv : 1) * sizeof *pre);
        if (delta_binary(p, n, nv, pre, &got, &used) || got != nv) {
            rc = bad(c, "DELTA_BYTE_ARRAY: damaged prefix lengths");
            goto done;
        }
        off = used;
    }
    if (delta_binary(p + off, n - off, nv, len, &got, &used) || got != nv) {
        rc = bad(c, "DELTA_LENGTH_BYTE_ARRAY: damaged lengths");
        goto done;
    }
    off += used;
    for (int64_t i = 0; i < nv; i++) {
        int64_t pl = pre ? pre[i] : 0, sl = len[i];
        if (pl < 0 || sl < 0 || (uint64_t)pl > prev_n || (uint64_t)sl > n - off) {
            rc = bad(c, "DELTA_BYTE_ARRAY: a prefix or suffix length is out of range");
            goto done;
        }
        cur = xmalloc((size_t)(pl + sl) + 1);
        if (pl) memcpy(cur, prev, (size_t)pl);
        memcpy(cur + pl, p + off, (size_t)sl);
        off += (size_t)sl;
        if (c->leaf->type == PQ_FIXED && pl + sl != c->leaf->type_length) {
            free(cur);
            rc = bad(c, "DELTA_BYTE_ARRAY: value length differs from the fixed length");
            goto done;
        }
        if ((rc = bytes_value(c, (uint8_t *)cur, (size_t)(pl + sl), &out[i]))) {
            free(cur);
            goto done;
        }
        free(prev);
        prev = cur;
        prev_n = (size_t)(pl + sl);
    }
done:
    free(prev);
    free(pre);
    free(len);
    return rc;
}

static int byte_stream_split(Ctx *c, const uint8_t *p, size_t n, int64_t nv, json_t **out) {
    int t = c->leaf->type;
    size_t k = t == PQ_FLOAT || t == PQ_INT32    ? 4
               : t == PQ_DOUBLE || t == PQ_INT64 ? 8
               : t == PQ_FIXED                   ? (size_t)c->leaf->type_length
                                                 : 0;
    if (!k || k > 64) return bad(c, "BYTE_STREAM_SPLIT for this type is not supported");
    if ((uint64_t)nv * k > n) return bad(c, "BYTE_STREAM_SPLIT: page too short");
    uint8_t b[64];
    for (int64_t i = 0; i < nv; i++) {
        for (size_t j = 0; j < k; j++) b[j] = p[j * (size_t)nv + (size_t)i];
        int rc = plain_decode(c, b, k, 1, &out[i]);
        if (rc) return rc;
    }
    return 0;
}

/* ---- the page loop ---- */
static void col_grow(PqColumn *col, int64_t add_levels, int64_t add_vals, int64_t *cap_l, int64_t *cap_v) {
    if (col->n + add_levels > *cap_l || !col->def) {
        *cap_l = (col->n + add_levels) * 3 / 2 + 16;
        col->def = xrealloc(col->def, (size_t)*cap_l);
        col->rep = xrealloc(col->rep, (size_t)*cap_l);
    }
    if (col->nv + add_vals > *cap_v || !col->vals) {
        *cap_v = (col->nv + add_vals) * 3 / 2 + 16;
        col->vals = xrealloc(col->vals, (size_t)*cap_v * sizeof *col->vals);
    }
}

void pq_column_free(PqColumn *col) {
    for (int64_t i = col->vpos; i < col->nv; i++) json_decref(col->vals[i]);
    free(col->vals);
    free(col->def);
    free(col->rep);
    memset(col, 0, sizeof *col);
}

/* Levels of one page: NV entries at width W into DST. */
static int levels(Ctx *c, const uint8_t *p, size_t n, int max, int64_t nv, uint8_t *dst, uint32_t *tmp,
                  const char *which) {
    if (nv == 0) return 0;
    if (max == 0) {
        memset(dst, 0, (size_t)nv);
        return 0;
    }
    if (hybrid_decode(p, n, bit_width(max), tmp, nv))
        return err_set(c->e, EX_DATAERR, "%s: damaged %s levels", c->where, which);
    for (int64_t i = 0; i < nv; i++) {
        if (tmp[i] > (uint32_t)max)
            return err_set(c->e, EX_DATAERR, "%s: %s level %u above the maximum %d", c->where, which, tmp[i], max);
        dst[i] = (uint8_t)tmp[i];
    }
    return 0;
}

/* Values of one data page: NN non-null values in encoding ENC from P[0..N). */
static int page_values(Ctx *c, int enc, const uint8_t *p, size_t n, int64_t nn, json_t **dict, int64_t ndict,
                       json_t **out) {
    switch (enc) {
    case PQ_ENC_PLAIN:
        return plain_decode(c, p, n, nn, out);
    case PQ_ENC_PLAIN_DICT:
    case PQ_ENC_RLE_DICT: {
        if (!dict) return bad(c, "a dictionary-encoded page without a dictionary page");
        if (nn == 0) return 0;
        if (n < 1 || p[0] > 32) return bad(c, "dictionary indices: bad bit width");
        uint32_t *idx = xmalloc((size_t)nn * sizeof *idx);
        if (hybrid_decode(p + 1, n - 1, p[0], idx, nn)) {
            free(idx);
            return bad(c, "dictionary indices are damaged");
        }
        for (int64_t i = 0; i < nn; i++) {
            if ((int64_t)idx[i] >= ndict) {
                free(idx);
                for (int64_t j = 0; j < i; j++) json_decref(out[j]), out[j] = NULL;
                return bad(c, "a dictionary index is out of range");
            }
            out[i] = json_incref(dict[idx[i]]);
        }
        free(idx);
        return 0;
    }
    case PQ_ENC_RLE: {
        if (c->leaf->type != PQ_BOOLEAN) return bad(c, "RLE values for a non-boolean column");
        if (n < 4 || le32(p) > n - 4) return bad(c, "RLE booleans: bad length");
        uint32_t *b = xmalloc((size_t)(nn ? nn : 1) * sizeof *b);
        if (hybrid_decode(p + 4, le32(p), 1, b, nn)) {
            free(b);
            return bad(c, "RLE booleans are damaged");
        }
        for (int64_t i = 0; i < nn; i++) out[i] = json_boolean(b[i]);
        free(b);
        return 0;
    }
    case PQ_ENC_DELTA_BINARY:
        if (c->leaf->type != PQ_INT32 && c->leaf->type != PQ_INT64)
            return bad(c, "DELTA_BINARY_PACKED for a non-integer column");
        return delta_ints(c, p, n, nn, out);
    case PQ_ENC_DELTA_LENGTH:
    case PQ_ENC_DELTA_BYTE_ARRAY:
        if (c->leaf->type != PQ_BYTE_ARRAY && c->leaf->type != PQ_FIXED)
            return bad(c, "DELTA byte-array encoding for a non-byte-array column");
        return delta_bytes(c, p, n, nn, enc == PQ_ENC_DELTA_BYTE_ARRAY, out);
    case PQ_ENC_BYTE_STREAM_SPLIT:
        return byte_stream_split(c, p, n, nn, out);
    default:
        return err_set(c->e, EX_DATAERR, "%s: value encoding %d is not supported", c->where, enc);
    }
}

/* Frees values OUT[0..N) that were set (a failed decode leaves a tail of NULLs). */
static void free_vals(json_t **v, int64_t n) {
    for (int64_t i = 0; i < n; i++) json_decref(v[i]);
}

int pq_column_read(PqColumn *col, const uint8_t *file, size_t file_len, const PqChunkMeta *cm, const PqNode *leaf,
                   const char *where, Error *e) {
    memset(col, 0, sizeof *col);
    Ctx c = {where, leaf, e};
    int64_t start = cm->data_off;
    if (cm->dict_off > 0 && (cm->dict_off < start || start <= 0)) start = cm->dict_off;
    if (start < 4 || cm->total_compressed < 0 || (uint64_t)start > file_len - 8 ||
        (uint64_t)cm->total_compressed > file_len - 8 - (uint64_t)start)
        return bad(&c, "the column chunk's offset or size is outside the file");
    if (cm->num_values < 0 || cm->num_values > PQ_MAX_ENTRIES) return bad(&c, "bad value count in the column metadata");
    if (cm->codec < 0 || cm->codec > PQ_LZ4_RAW || cm->codec == PQ_LZO)
        return err_set(e, EX_DATAERR, "%s: codec %s (%d) is not supported", where, codec_name(cm->codec), cm->codec);
    size_t pos = (size_t)start, end = (size_t)(start + cm->total_compressed);
    json_t **dict = NULL;
    int64_t ndict = 0, cap_l = 0, cap_v = 0;
    uint8_t *ubuf = NULL;
    uint32_t *tmp = NULL;
    int rc = 0;
    char msg[96];
    while (col->n < cm->num_values) {
        if (pos >= end) {
            rc = bad(&c, "the column chunk ends before all its values");
            break;
        }
        PqPageHeader h;
        size_t used;
        if (pq_page_header(&h, file + pos, end - pos, &used)) {
            snprintf(msg, sizeof msg, "damaged page header at byte %zu", pos);
            rc = bad(&c, msg);
            break;
        }
        size_t page_at = pos;
        pos += used;
        if (h.compressed < 0 || h.uncompressed < 0 || (size_t)h.compressed > end - pos ||
            (size_t)h.uncompressed > PQ_MAX_PAGE) {
            snprintf(msg, sizeof msg, "page at byte %zu: size out of range", page_at);
            rc = bad(&c, msg);
            break;
        }
        const uint8_t *page = file + pos;
        pos += (size_t)h.compressed;
        if (h.type == PQ_PAGE_INDEX) continue;
        if (h.type != PQ_PAGE_DICT && h.type != PQ_PAGE_DATA && h.type != PQ_PAGE_DATA_V2) continue; /* unknown: skip */
        int64_t nv = h.num_values;
        if (nv < 0 || nv > PQ_MAX_ENTRIES || (h.type != PQ_PAGE_DICT && nv > cm->num_values - col->n)) {
            snprintf(msg, sizeof msg, "page at byte %zu: bad value count %lld", page_at, (long long)nv);
            rc = bad(&c, msg);
            break;
        }
        /* the part to decompress: all of a v1 or dictionary page; v2 keeps its levels plain */
        size_t lv = 0;
        if (h.type == PQ_PAGE_DATA_V2) {
            if (!h.have_v2 || h.rep_len < 0 || h.def_len < 0 || (int64_t)h.rep_len + h.def_len > h.compressed ||
                (int64_t)h.rep_len + h.def_len > h.uncompressed) {
                snprintf(msg, sizeof msg, "page at byte %zu: bad v2 level lengths", page_at);
                rc = bad(&c, msg);
                break;
            }
            lv = (size_t)h.rep_len + (size_t)h.def_len;
        } else if ((h.type == PQ_PAGE_DATA && !h.have_data) || (h.type == PQ_PAGE_DICT && !h.have_dict)) {
            snprintf(msg, sizeof msg, "page at byte %zu: header lacks its page type's fields", page_at);
            rc = bad(&c, msg);
            break;
        }
        const uint8_t *body = page + lv;
        size_t bn = (size_t)h.compressed - lv, un = (size_t)h.uncompressed - lv;
        free(ubuf);
        ubuf = NULL;
        if (cm->codec != PQ_UNCOMPRESSED && !(h.type == PQ_PAGE_DATA_V2 && !h.is_compressed)) {
            ubuf = xmalloc(un ? un : 1);
            int d = decompress(cm->codec, body, bn, ubuf, un);
            if (d) {
                snprintf(msg, sizeof msg, "page at byte %zu: %s data does not decompress to its stated size", page_at,
                         codec_name(cm->codec));
                rc = bad(&c, msg);
                break;
            }
            body = ubuf;
            bn = un;
        }
        if (h.type == PQ_PAGE_DICT) {
            if (dict) {
                rc = bad(&c, "a second dictionary page");
                break;
            }
            if (h.encoding != PQ_ENC_PLAIN && h.encoding != PQ_ENC_PLAIN_DICT) {
                rc = bad(&c, "a dictionary page not in PLAIN encoding");
                break;
            }
            if (leaf->type == PQ_BOOLEAN ? (uint64_t)nv > (uint64_t)bn * 8 : (uint64_t)nv > bn) {
                rc = bad(&c, "the dictionary page is shorter than its value count");
                break;
            }
            dict = xcalloc((size_t)(nv ? nv : 1), sizeof *dict);
            ndict = nv;
            if ((rc = plain_decode(&c, body, bn, nv, dict))) break;
            continue;
        }
        /* levels */
        col_grow(col, nv, 0, &cap_l, &cap_v);
        tmp = xrealloc(tmp, (size_t)(nv ? nv : 1) * sizeof *tmp);
        const uint8_t *rp, *dp, *vp;
        size_t rn, dn, vn;
        if (h.type == PQ_PAGE_DATA_V2) {
            rp = page, rn = (size_t)h.rep_len;
            dp = page + rn, dn = (size_t)h.def_len;
            vp = body, vn = bn;
        } else {
            size_t off = 0;
            rp = dp = body, rn = dn = 0;
            if (leaf->rep > 0) {
                if (h.rep_enc != PQ_ENC_RLE || bn < 4 || le32(body) > bn - 4) {
                    rc = bad(&c, "repetition levels: unsupported encoding or bad length");
                    break;
                }
                rp = body + 4, rn = le32(body), off = 4 + rn;
            }
            if (leaf->def > 0) {
                if (h.def_enc != PQ_ENC_RLE || bn - off < 4 || le32(body + off) > bn - off - 4) {
                    rc = bad(&c, "definition levels: unsupported encoding or bad length");
                    break;
                }
                dp = body + off + 4, dn = le32(body + off), off += 4 + dn;
            }
            vp = body + off, vn = bn - off;
        }
        if ((rc = levels(&c, rp, rn, leaf->rep, nv, col->rep + col->n, tmp, "repetition"))) break;
        if ((rc = levels(&c, dp, dn, leaf->def, nv, col->def + col->n, tmp, "definition"))) break;
        if (col->n == 0 && nv > 0 && col->rep[0] != 0) {
            rc = bad(&c, "the first entry of a column chunk does not start a row");
            break;
        }
        int64_t nn = 0;
        for (int64_t i = 0; i < nv; i++) nn += col->def[col->n + i] == leaf->def;
        col_grow(col, 0, nn, &cap_l, &cap_v);
        if (nn) memset(col->vals + col->nv, 0, (size_t)nn * sizeof *col->vals);
        if ((rc = page_values(&c, h.encoding, vp, vn, nn, dict, ndict, col->vals + col->nv))) {
            free_vals(col->vals + col->nv, nn);
            break;
        }
        for (int64_t i = 0; i < nn; i++)
            if (!col->vals[col->nv + i]) col->vals[col->nv + i] = json_null(); /* jansson refused a value */
        col->n += nv;
        col->nv += nn;
    }
    free(ubuf);
    free(tmp);
    if (dict) free_vals(dict, ndict);
    free(dict);
    if (rc) pq_column_free(col);
    return rc;
}
