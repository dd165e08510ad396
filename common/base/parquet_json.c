/* parquet_json.c — Parquet rows as JSON objects: opening the file, one row group's
 * columns at a time, and record assembly from definition and repetition levels
 * (Melnik et al., "Dremel", VLDB 2010, section 4.3; parquet-format's LogicalTypes.md
 * for LIST and MAP).  A group is an object, a LIST a JSON array, a MAP an object
 * (an array of {"key","value"} when a key is not a string), a missing optional
 * value null, integers and floats numbers, strings strings. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "parquet_impl.h"
#include "util.h"

struct ParquetFile {
    char *name;
    uint8_t *buf;
    size_t len;
    int own, mapped;
    PqMeta m;
    int rg; /* the row group being read (-1 before the first) */
    int64_t rg_row, rg_rows;
    PqColumn *cols; /* one per leaf, of row group rg */
    long long row;  /* rows returned so far */
    Error *e;
};

int parquet_magic(const void *p, size_t n) {
    return n >= 4 && memcmp(p, "PAR1", 4) == 0;
}

long long parquet_num_rows(const ParquetFile *p) {
    return (long long)p->m.num_rows;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void free_cols(ParquetFile *p) {
    if (!p->cols) return;
    for (int i = 0; i < p->m.n_leaves; i++) pq_column_free(&p->cols[i]);
    free(p->cols);
    p->cols = NULL;
}

void parquet_close(ParquetFile *p) {
    if (!p) return;
    free_cols(p);
    pq_meta_free(&p->m);
    if (p->mapped)
        munmap(p->buf, p->len);
    else if (p->own)
        free(p->buf);
    free(p->name);
    free(p);
}

int parquet_open_mem(ParquetFile **out, void *buf, size_t len, int own, const char *name, Error *e) {
    *out = NULL;
    ParquetFile *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name ? name : "<parquet>");
    p->buf = buf;
    p->len = len;
    p->own = own;
    p->rg = -1;
    int rc = 0;
    const uint8_t *b = buf;
    if (len < 12 || !parquet_magic(b, len)) {
        rc = err_set(e, EX_DATAERR, "%s: parquet: too short or no PAR1 magic at the start", p->name);
    } else if (!memcmp(b + len - 4, "PARE", 4)) {
        rc = err_set(e, EX_DATAERR, "%s: parquet: encrypted files are not supported", p->name);
    } else if (memcmp(b + len - 4, "PAR1", 4)) {
        rc = err_set(e, EX_DATAERR, "%s: parquet: no PAR1 magic at the end (truncated file?)", p->name);
    } else {
        uint32_t flen = le32(b + len - 8);
        if (flen > len - 12)
            rc = err_set(e, EX_DATAERR, "%s: parquet: footer length %u is larger than the file", p->name, flen);
        else
            rc = pq_meta_parse(&p->m, b + len - 8 - flen, flen, p->name, e);
    }
    if (rc) {
        p->own = own; /* the caller's buffer is ours to free now, as promised */
        parquet_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

int parquet_open_stream(ParquetFile **out, FILE *fp, const void *pre, size_t npre, const char *name, Error *e) {
    struct stat st;
    int fd = fileno(fp);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && ftello(fp) == (off_t)npre) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            if (npre && memcmp(m, pre, npre)) { /* the file changed under us: read it instead */
                munmap(m, (size_t)st.st_size);
            } else {
                int rc = parquet_open_mem(out, m, (size_t)st.st_size, 0, name, e);
                if (rc) {
                    munmap(m, (size_t)st.st_size);
                    return rc;
                }
                (*out)->mapped = 1;
                return 0;
            }
        }
    }
    /* a pipe, a FIFO, or a terminal: read to the end (the footer is there) */
    size_t cap = 1 << 16, n = npre;
    if (cap < npre) cap = npre;
    uint8_t *buf = xmalloc(cap);
    memcpy(buf, pre, npre);
    for (;;) {
        if (n == cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) {
        free(buf);
        return err_set(e, EX_IOERR, "%s: read error", name);
    }
    return parquet_open_mem(out, buf, n, 1, name, e);
}

/* ---- record assembly ---- */
static int asm_err(ParquetFile *p, const PqNode *n, const char *what) {
    return err_set(p->e, EX_DATAERR, "%s: parquet: row group %d, row %lld, column \"%s\": %s", p->name, p->rg,
                   (long long)p->rg_row + 1, n->path, what);
}

/* The definition level of the next entry of NODE's first leaf. */
static int peek_def(ParquetFile *p, const PqNode *n, int *d) {
    PqColumn *c = &p->cols[n->leaf0];
    if (c->pos >= c->n) return asm_err(p, &p->m.nodes[p->m.leaves[n->leaf0]], "fewer entries than rows");
    *d = c->def[c->pos];
    return 0;
}

/* NODE is null or an empty list here: each leaf under it has one entry for that. */
static int skip_subtree(ParquetFile *p, const PqNode *n) {
    for (int l = n->leaf0; l < n->leaf0 + n->n_leaves; l++) {
        PqColumn *c = &p->cols[l];
        const PqNode *leaf = &p->m.nodes[p->m.leaves[l]];
        if (c->pos >= c->n) return asm_err(p, leaf, "fewer entries than rows");
        if (c->def[c->pos] >= n->def) return asm_err(p, leaf, "columns disagree on a missing value");
        c->pos++;
    }
    return 0;
}

static int build_node(ParquetFile *p, const PqNode *n, json_t **out);

static const PqNode *child(const ParquetFile *p, const PqNode *n, int i) {
    return &p->m.nodes[n->child[i]];
}

static int is_list(const ParquetFile *p, const PqNode *n) {
    return n->type < 0 && (n->converted == PQ_CT_LIST || n->logical == PQ_LT_LIST) && n->n_children == 1 &&
           child(p, n, 0)->repetition == PQ_REPEATED;
}

static int is_map(const ParquetFile *p, const PqNode *n) {
    if (n->type >= 0 || n->n_children != 1) return 0;
    if (n->converted != PQ_CT_MAP && n->converted != PQ_CT_MAP_KEY_VALUE && n->logical != PQ_LT_MAP) return 0;
    const PqNode *kv = child(p, n, 0);
    return kv->repetition == PQ_REPEATED && kv->type < 0 && kv->n_children == 2;
}

/* The element of a LIST's repeated node R: its only child (three-level lists), or R
 * itself (two-level legacy lists: a repeated primitive, a repeated group of several
 * fields, or one named "array" or "<list>_tuple"; LogicalTypes.md backward rules). */
static const PqNode *list_element(const ParquetFile *p, const PqNode *list, const PqNode *r) {
    if (r->type >= 0 || r->n_children != 1) return r;
    if (r->name && !strcmp(r->name, "array")) return r;
    if (r->name && list->name) {
        size_t a = strlen(list->name);
        if (!strncmp(r->name, list->name, a) && !strcmp(r->name + a, "_tuple")) return r;
    }
    return child(p, r, 0);
}

static int build_instance(ParquetFile *p, const PqNode *n, json_t **out);

/* The elements of repeated node R as an array; ELEM is R or R's only child. */
static int build_list(ParquetFile *p, const PqNode *r, const PqNode *elem, json_t **out) {
    *out = json_array();
    int d = 0, rc;
    if ((rc = peek_def(p, r, &d))) return rc;
    if (d < r->def) return skip_subtree(p, r); /* empty (or the list itself missing) */
    PqColumn *c = &p->cols[r->leaf0];
    for (;;) {
        json_t *v = NULL;
        rc = elem == r ? build_instance(p, r, &v) : build_node(p, elem, &v);
        if (v) json_array_append_new(*out, v);
        if (rc) return rc;
        if (c->pos >= c->n || c->rep[c->pos] != r->rep) return 0;
        if (c->def[c->pos] < r->def) return asm_err(p, r, "a repeated entry without a value level");
    }
}

/* A MAP's key_value pairs as an object when every key is a distinct string. */
static json_t *map_object(json_t *pairs) {
    json_t *o = json_object();
    size_t i;
    json_t *kv;
    json_array_foreach(pairs, i, kv) {
        json_t *k = json_object_get(kv, "key");
        if (!json_is_string(k) || json_object_get(o, json_string_value(k))) {
            json_decref(o);
            return json_incref(pairs);
        }
        json_t *v = json_object_get(kv, "value");
        json_object_set(o, json_string_value(k), v ? v : json_null());
    }
    return o;
}

static int build_instance(ParquetFile *p, const PqNode *n, json_t **out) {
    *out = NULL;
    if (n->type >= 0) { /* a leaf whose ancestors are all present */
        PqColumn *c = &p->cols[n->leaf0];
        if (c->pos >= c->n) return asm_err(p, n, "fewer entries than rows");
        if (c->def[c->pos] != n->def) return asm_err(p, n, "a definition level does not fit the schema");
        if (c->vpos >= c->nv) return asm_err(p, n, "fewer values than levels");
        c->pos++;
        *out = c->vals[c->vpos++]; /* the reference moves to the row */
        return 0;
    }
    if (is_list(p, n)) {
        const PqNode *r = child(p, n, 0);
        return build_list(p, r, list_element(p, n, r), out);
    }
    if (is_map(p, n)) {
        const PqNode *r = child(p, n, 0);
        json_t *pairs;
        int rc = build_list(p, r, r, &pairs);
        if (!rc) *out = map_object(pairs);
        json_decref(pairs);
        return rc;
    }
    *out = json_object();
    for (int i = 0; i < n->n_children; i++) {
        const PqNode *ch = child(p, n, i);
        json_t *v = NULL;
        int rc = build_node(p, ch, &v);
        if (v) json_object_set_new(*out, ch->name ? ch->name : "", v);
        if (rc) return rc;
    }
    return 0;
}

static int build_node(ParquetFile *p, const PqNode *n, json_t **out) {
    *out = NULL;
    if (n->repetition == PQ_REPEATED) return build_list(p, n, n, out);
    if (n->repetition == PQ_OPTIONAL) {
        int d = 0, rc;
        if ((rc = peek_def(p, n, &d))) return rc;
        if (d < n->def) {
            *out = json_null();
            return skip_subtree(p, n);
        }
    }
    return build_instance(p, n, out);
}

static int load_row_group(ParquetFile *p, Error *e) {
    free_cols(p);
    const PqRowGroup *g = &p->m.rgs[p->rg];
    p->cols = xcalloc((size_t)(p->m.n_leaves ? p->m.n_leaves : 1), sizeof *p->cols);
    for (int l = 0; l < p->m.n_leaves; l++) {
        const PqNode *leaf = &p->m.nodes[p->m.leaves[l]];
        char where[512];
        snprintf(where, sizeof where, "%s: parquet: row group %d, column \"%s\"", p->name, p->rg, leaf->path);
        int rc = pq_column_read(&p->cols[l], p->buf, p->len, &g->cols[l], leaf, where, e);
        if (rc) return rc;
        int64_t rows = 0;
        for (int64_t i = 0; i < p->cols[l].n; i++) rows += p->cols[l].rep[i] == 0;
        if (rows != g->num_rows)
            return err_set(e, EX_DATAERR, "%s: holds %lld rows, the row group %lld", where, (long long)rows,
                           (long long)g->num_rows);
    }
    p->rg_row = 0;
    p->rg_rows = g->num_rows;
    return 0;
}

int parquet_next(ParquetFile *p, json_t **row, Error *e) {
    *row = NULL;
    p->e = e;
    while (p->rg < 0 || p->rg_row >= p->rg_rows) {
        if (p->rg + 1 >= p->m.n_rgs) {
            free_cols(p);
            p->rg = p->m.n_rgs;
            return 0;
        }
        p->rg++;
        if (p->m.rgs[p->rg].num_rows == 0) continue; /* pyarrow writes one for an empty table */
        int rc = load_row_group(p, e);
        if (rc) {
            p->rg = p->m.n_rgs; /* no more rows after a damaged row group */
            p->rg_rows = p->rg_row = 0;
            return rc;
        }
    }
    json_t *obj;
    int rc = build_instance(p, &p->m.nodes[0], &obj);
    if (!rc)
        for (int l = 0; l < p->m.n_leaves && !rc; l++) {
            PqColumn *c = &p->cols[l];
            if (c->pos < c->n && c->rep[c->pos] != 0)
                rc = asm_err(p, &p->m.nodes[p->m.leaves[l]], "repetition levels do not fit the schema");
        }
    if (rc) {
        json_decref(obj);
        p->rg_row = p->rg_rows = 0;
        p->rg = p->m.n_rgs;
        free_cols(p);
        return rc;
    }
    p->rg_row++;
    p->row++;
    *row = obj;
    return 0;
}
