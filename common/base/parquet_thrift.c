/* parquet_thrift.c — the thrift compact protocol (thrift's
 * doc/specs/thrift-compact-protocol.md) as far as Parquet's footer (FileMetaData) and
 * page headers need it, and the schema tree built from the footer.  Unknown fields
 * are skipped, as thrift requires; every read is bounded by the buffer. */
#include <stdlib.h>
#include <string.h>

#include "parquet_impl.h"
#include "util.h"

enum { T_STOP, T_TRUE, T_FALSE, T_BYTE, T_I16, T_I32, T_I64, T_DOUBLE, T_BINARY, T_LIST, T_SET, T_MAP, T_STRUCT };

uint64_t pq_varint(PqThrift *t) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->bad || t->p >= t->end) {
            t->bad = 1;
            return 0;
        }
        uint8_t b = *t->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    t->bad = 1;
    return 0;
}

static int64_t zigzag(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int64_t thr_int(PqThrift *t) {
    return zigzag(pq_varint(t));
}

static int32_t thr_i32(PqThrift *t) {
    int64_t v = thr_int(t);
    if (v < INT32_MIN || v > INT32_MAX) t->bad = 1;
    return t->bad ? 0 : (int32_t)v;
}

/* A binary/string: points into the buffer. */
static const uint8_t *thr_binary(PqThrift *t, size_t *len) {
    uint64_t n = pq_varint(t);
    if (t->bad || n > (uint64_t)(t->end - t->p)) {
        t->bad = 1;
        *len = 0;
        return NULL;
    }
    const uint8_t *s = t->p;
    t->p += n;
    *len = (size_t)n;
    return s;
}

static char *thr_string(PqThrift *t) {
    size_t n;
    const uint8_t *s = thr_binary(t, &n);
    if (!s) return NULL;
    char *r = xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* A list header: element type and count.  The count is bounded by the bytes left
 * (every element takes at least one byte), so a huge count cannot make a huge loop. */
static uint32_t thr_list(PqThrift *t, int *etype) {
    if (t->bad || t->p >= t->end) {
        t->bad = 1;
        return 0;
    }
    uint8_t b = *t->p++;
    *etype = b & 0x0f;
    uint64_t n = b >> 4;
    if (n == 15) n = pq_varint(t);
    if (t->bad || n > (uint64_t)(t->end - t->p)) {
        t->bad = 1;
        return 0;
    }
    return (uint32_t)n;
}

/* The next field header: returns its type (T_STOP at the end of the struct). */
static int thr_field(PqThrift *t, int *id) {
    if (t->bad || t->p >= t->end) {
        t->bad = 1;
        return T_STOP;
    }
    uint8_t b = *t->p++;
    int type = b & 0x0f;
    if (type == T_STOP) return T_STOP;
    int delta = b >> 4;
    if (delta)
        *id += delta;
    else
        *id = (int)thr_int(t);
    return type;
}

/* One level deeper into nested structs, lists or maps: 0 (and the reader marked bad)
 * past PQ_MAX_DEPTH, so hostile nesting cannot exhaust the stack.  The caller leaves
 * the level with t->depth--. */
static int thr_enter(PqThrift *t) {
    if (++t->depth <= PQ_MAX_DEPTH) return 1;
    t->bad = 1;
    return 0;
}

static void thr_skip(PqThrift *t, int type);

static void thr_skip_struct(PqThrift *t) {
    if (!thr_enter(t)) return;
    int id = 0, type;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) thr_skip(t, type);
    t->depth--;
}

static void thr_skip(PqThrift *t, int type) {
    size_t n;
    switch (type) {
    case T_TRUE:
    case T_FALSE:
        break; /* in a field header the value is the type; in a list, one byte (below) */
    case T_BYTE:
        if (t->p >= t->end)
            t->bad = 1;
        else
            t->p++;
        break;
    case T_I16:
    case T_I32:
    case T_I64:
        pq_varint(t);
        break;
    case T_DOUBLE:
        if (t->end - t->p < 8)
            t->bad = 1;
        else
            t->p += 8;
        break;
    case T_BINARY:
        thr_binary(t, &n);
        break;
    case T_LIST:
    case T_SET: {
        int et;
        uint32_t k = thr_list(t, &et);
        if (!thr_enter(t)) return;
        for (uint32_t i = 0; i < k && !t->bad; i++) thr_skip(t, et == T_TRUE || et == T_FALSE ? T_BYTE : et);
        t->depth--;
        break;
    }
    case T_MAP: {
        uint64_t k = pq_varint(t);
        if (t->bad || k > (uint64_t)(t->end - t->p)) {
            t->bad = 1;
            return;
        }
        if (!k) break;
        if (t->p >= t->end) {
            t->bad = 1;
            return;
        }
        uint8_t kv = *t->p++;
        int kt = kv >> 4, vt = kv & 0x0f;
        if (!thr_enter(t)) return;
        for (uint64_t i = 0; i < k && !t->bad; i++) {
            thr_skip(t, kt == T_TRUE || kt == T_FALSE ? T_BYTE : kt);
            thr_skip(t, vt == T_TRUE || vt == T_FALSE ? T_BYTE : vt);
        }
        t->depth--;
        break;
    }
    case T_STRUCT:
        thr_skip_struct(t);
        break;
    default:
        t->bad = 1;
    }
}

/* A field holding an i32/i64 must have that wire type; anything else is skipped. */
#define WANT(tt)                                                                                                       \
    if (type != (tt)) {                                                                                                \
        thr_skip(t, type);                                                                                             \
        break;                                                                                                         \
    }

/* ---- schema ---- */
static int parse_logical(PqThrift *t) {
    int id = 0, type, which = 0;
    if (!thr_enter(t)) return 0;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        if (type == T_STRUCT && !which) which = id;
        thr_skip(t, type);
    }
    t->depth--;
    return which;
}

static void parse_schema_element(PqThrift *t, PqNode *s) {
    memset(s, 0, sizeof *s);
    s->type = -1;
    s->converted = -1;
    int id = 0, type;
    if (!thr_enter(t)) return;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        switch (id) {
        case 1:
            WANT(T_I32) s->type = thr_i32(t);
            break;
        case 2:
            WANT(T_I32) s->type_length = thr_i32(t);
            break;
        case 3:
            WANT(T_I32) s->repetition = thr_i32(t);
            break;
        case 4:
            WANT(T_BINARY)
            free(s->name);
            s->name = thr_string(t);
            break;
        case 5:
            WANT(T_I32) s->n_children = thr_i32(t);
            break;
        case 6:
            WANT(T_I32) s->converted = thr_i32(t);
            break;
        case 10:
            WANT(T_STRUCT) s->logical = parse_logical(t);
            break;
        default:
            thr_skip(t, type);
        }
    }
    t->depth--;
}

static void parse_chunk_meta(PqThrift *t, PqChunkMeta *c) {
    int id = 0, type;
    if (!thr_enter(t)) return;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        switch (id) {
        case 1:
            WANT(T_I32) c->type = thr_i32(t);
            break;
        case 4:
            WANT(T_I32) c->codec = thr_i32(t);
            break;
        case 5:
            WANT(T_I64) c->num_values = thr_int(t);
            break;
        case 7:
            WANT(T_I64) c->total_compressed = thr_int(t);
            break;
        case 9:
            WANT(T_I64) c->data_off = thr_int(t);
            break;
        case 11:
            WANT(T_I64) c->dict_off = thr_int(t);
            break;
        default:
            thr_skip(t, type);
        }
    }
    t->depth--;
}

/* ColumnChunk: returns 1 when it has meta_data and no external file_path. */
static int parse_chunk(PqThrift *t, PqChunkMeta *c, int *external, int *encrypted) {
    int id = 0, type, have = 0;
    if (!thr_enter(t)) return 0;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        if (id == 1 && type == T_BINARY) {
            *external = 1;
            thr_skip(t, type);
        } else if (id == 3 && type == T_STRUCT) {
            parse_chunk_meta(t, c);
            have = 1;
        } else {
            if (id == 8 || id == 9) *encrypted = 1; /* crypto_metadata, encrypted_column_metadata */
            thr_skip(t, type);
        }
    }
    t->depth--;
    return have;
}

static int parse_row_group(PqThrift *t, PqRowGroup *g, int rgi, const char *name, Error *e) {
    int id = 0, type;
    if (!thr_enter(t)) return 0;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        if (id == 1 && type == T_LIST) {
            int et;
            uint32_t k = thr_list(t, &et);
            if (et != T_STRUCT || g->cols) {
                t->bad = 1;
                break;
            }
            g->cols = xcalloc(k ? k : 1, sizeof *g->cols);
            g->n_cols = (int)k;
            for (uint32_t i = 0; i < k && !t->bad; i++) {
                int external = 0, encrypted = 0;
                if (!parse_chunk(t, &g->cols[i], &external, &encrypted) && !t->bad)
                    return err_set(e, EX_DATAERR, "%s: parquet: row group %d, column %u has no metadata%s", name, rgi,
                                   i, encrypted ? " (encrypted files are not supported)" : "");
                if (external)
                    return err_set(e, EX_DATAERR,
                                   "%s: parquet: row group %d, column %u is in another file (file_path); not supported",
                                   name, rgi, i);
            }
        } else if (id == 3 && type == T_I64) {
            g->num_rows = thr_int(t);
        } else {
            thr_skip(t, type);
        }
    }
    t->depth--;
    return 0;
}

void pq_meta_free(PqMeta *m) {
    for (int i = 0; i < m->n_nodes; i++) {
        free(m->nodes[i].name);
        free(m->nodes[i].path);
        free(m->nodes[i].child);
    }
    free(m->nodes);
    free(m->leaves);
    for (int i = 0; i < m->n_rgs; i++) free(m->rgs[i].cols);
    free(m->rgs);
    memset(m, 0, sizeof *m);
}

/* Builds the tree from the depth-first element list: children of node I follow it.
 * Returns the index after I's subtree, or -1 when the counts do not fit. */
static int build_tree(PqMeta *m, int i, int depth, int def, int rep, const char *ppath) {
    if (i >= m->n_nodes || depth > PQ_MAX_DEPTH) return -1;
    PqNode *s = &m->nodes[i];
    if (i > 0) {
        if (s->repetition < PQ_REQUIRED || s->repetition > PQ_REPEATED) return -1;
        if (s->repetition != PQ_REQUIRED) def++;
        if (s->repetition == PQ_REPEATED) rep++;
        const char *nm = s->name ? s->name : "?";
        size_t a = strlen(ppath), b = strlen(nm);
        s->path = xmalloc(a + b + 2);
        snprintf(s->path, a + b + 2, "%s%s%s", ppath, a ? "." : "", nm);
    } else {
        s->path = xstrdup("");
    }
    s->def = def;
    s->rep = rep;
    s->leaf0 = m->n_leaves;
    if (s->n_children < 0 || s->n_children > m->n_nodes) return -1;
    if (s->n_children == 0) {
        if (i == 0 || s->type < PQ_BOOLEAN || s->type > PQ_FIXED) return -1;
        if (s->type == PQ_FIXED && s->type_length <= 0) return -1;
        m->leaves[m->n_leaves++] = i;
        s->n_leaves = 1;
        s->type_length = s->type == PQ_FIXED ? s->type_length : 0;
        return i + 1;
    }
    s->type = -1;
    s->child = xcalloc((size_t)s->n_children, sizeof *s->child);
    int j = i + 1;
    for (int c = 0; c < s->n_children; c++) {
        s->child[c] = j;
        j = build_tree(m, j, depth + 1, def, rep, s->path);
        if (j < 0) return -1;
    }
    s->n_leaves = m->n_leaves - s->leaf0;
    return j;
}

int pq_meta_parse(PqMeta *m, const uint8_t *p, size_t n, const char *name, Error *e) {
    memset(m, 0, sizeof *m);
    PqThrift t = {p, p + n, 0, 0};
    int id = 0, type, have_schema = 0, have_rows = 0, rc = 0;
    while (!t.bad && (type = thr_field(&t, &id)) != T_STOP) {
        if (id == 2 && type == T_LIST && !have_schema) {
            int et;
            uint32_t k = thr_list(&t, &et);
            if (et != T_STRUCT || k == 0 || k > PQ_MAX_NODES) {
                t.bad = 1;
                break;
            }
            m->nodes = xcalloc(k, sizeof *m->nodes);
            for (uint32_t i = 0; i < k && !t.bad; i++) {
                parse_schema_element(&t, &m->nodes[i]);
                m->n_nodes = (int)i + 1;
            }
            have_schema = 1;
        } else if (id == 3 && type == T_I64) {
            m->num_rows = thr_int(&t);
            have_rows = 1;
        } else if (id == 4 && type == T_LIST && !m->rgs) {
            int et;
            uint32_t k = thr_list(&t, &et);
            if (et != T_STRUCT) {
                t.bad = 1;
                break;
            }
            m->rgs = xcalloc(k ? k : 1, sizeof *m->rgs);
            for (uint32_t i = 0; i < k && !t.bad; i++) {
                m->n_rgs = (int)i + 1;
                if ((rc = parse_row_group(&t, &m->rgs[i], (int)i, name, e))) return rc;
            }
        } else {
            thr_skip(&t, type);
        }
    }
    if (t.bad || !have_schema || !have_rows)
        return err_set(e, EX_DATAERR, "%s: parquet: the footer metadata (FileMetaData) is damaged or truncated", name);
    m->leaves = xcalloc((size_t)m->n_nodes, sizeof *m->leaves);
    if (build_tree(m, 0, 0, 0, 0, "") != m->n_nodes)
        return err_set(e, EX_DATAERR,
                       "%s: parquet: the schema is inconsistent (child counts, types or nesting deeper than %d)", name,
                       PQ_MAX_DEPTH);
    if (m->num_rows < 0) return err_set(e, EX_DATAERR, "%s: parquet: negative row count", name);
    int64_t total = 0;
    for (int g = 0; g < m->n_rgs; g++) {
        PqRowGroup *rg = &m->rgs[g];
        if (rg->n_cols != m->n_leaves)
            return err_set(e, EX_DATAERR, "%s: parquet: row group %d has %d columns, the schema %d", name, g,
                           rg->n_cols, m->n_leaves);
        if (rg->num_rows < 0 || rg->num_rows > PQ_MAX_ENTRIES)
            return err_set(e, EX_DATAERR, "%s: parquet: row group %d: bad row count %lld", name, g,
                           (long long)rg->num_rows);
        for (int c = 0; c < rg->n_cols; c++)
            if (rg->cols[c].type != m->nodes[m->leaves[c]].type)
                return err_set(e, EX_DATAERR, "%s: parquet: row group %d, column \"%s\": type differs from the schema",
                               name, g, m->nodes[m->leaves[c]].path);
        total += rg->num_rows;
    }
    if (total != m->num_rows)
        return err_set(e, EX_DATAERR, "%s: parquet: the row groups hold %lld rows, the footer says %lld", name,
                       (long long)total, (long long)m->num_rows);
    return 0;
}

/* ---- page headers ---- */
static void parse_data_header(PqThrift *t, PqPageHeader *h) {
    int id = 0, type;
    if (!thr_enter(t)) return;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        switch (id) {
        case 1:
            WANT(T_I32) h->num_values = thr_i32(t);
            break;
        case 2:
            WANT(T_I32) h->encoding = thr_i32(t);
            break;
        case 3:
            WANT(T_I32) h->def_enc = thr_i32(t);
            break;
        case 4:
            WANT(T_I32) h->rep_enc = thr_i32(t);
            break;
        default:
            thr_skip(t, type);
        }
    }
    t->depth--;
}

static void parse_v2_header(PqThrift *t, PqPageHeader *h) {
    int id = 0, type;
    if (!thr_enter(t)) return;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        switch (id) {
        case 1:
            WANT(T_I32) h->num_values = thr_i32(t);
            break;
        case 2:
            WANT(T_I32) h->num_nulls = thr_i32(t);
            break;
        case 3:
            WANT(T_I32) h->num_rows = thr_i32(t);
            break;
        case 4:
            WANT(T_I32) h->encoding = thr_i32(t);
            break;
        case 5:
            WANT(T_I32) h->def_len = thr_i32(t);
            break;
        case 6:
            WANT(T_I32) h->rep_len = thr_i32(t);
            break;
        case 7:
            if (type == T_TRUE || type == T_FALSE)
                h->is_compressed = type == T_TRUE;
            else
                thr_skip(t, type);
            break;
        default:
            thr_skip(t, type);
        }
    }
    t->depth--;
}

int pq_page_header(PqPageHeader *h, const uint8_t *p, size_t n, size_t *used) {
    memset(h, 0, sizeof *h);
    h->type = -1;
    h->is_compressed = 1;
    PqThrift t0 = {p, p + n, 0, 0}, *t = &t0;
    int id = 0, type;
    while (!t->bad && (type = thr_field(t, &id)) != T_STOP) {
        switch (id) {
        case 1:
            WANT(T_I32) h->type = thr_i32(t);
            break;
        case 2:
            WANT(T_I32) h->uncompressed = thr_i32(t);
            break;
        case 3:
            WANT(T_I32) h->compressed = thr_i32(t);
            break;
        case 5:
            WANT(T_STRUCT) parse_data_header(t, h);
            h->have_data = 1;
            break;
        case 7:
            WANT(T_STRUCT) parse_data_header(t, h); /* DictionaryPageHeader: 1 num_values, 2 encoding */
            h->have_dict = 1;
            break;
        case 8:
            WANT(T_STRUCT) parse_v2_header(t, h);
            h->have_v2 = 1;
            break;
        default:
            thr_skip(t, type);
        }
    }
    if (t->bad) return -1;
    *used = (size_t)(t->p - p);
    return 0;
}
