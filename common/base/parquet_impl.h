/* parquet_impl.h — private to the Parquet reader (parquet_thrift.c, parquet_read.c,
 * parquet_json.c).  Field ids, enum values and layouts are parquet.thrift's. */
#ifndef CHERRY_PARQUET_IMPL_H
#define CHERRY_PARQUET_IMPL_H

#include <stdint.h>

#include "parquet.h"

/* Limits against hostile files: beyond them a file is refused, not allocated for. */
#define PQ_MAX_DEPTH 64                   /* schema nesting and thrift struct nesting */
#define PQ_MAX_NODES 100000               /* schema elements */
#define PQ_MAX_PAGE ((size_t)1 << 30)     /* one page, compressed or not */
#define PQ_MAX_ENTRIES ((int64_t)1 << 27) /* level entries of one column chunk */

enum { PQ_BOOLEAN, PQ_INT32, PQ_INT64, PQ_INT96, PQ_FLOAT, PQ_DOUBLE, PQ_BYTE_ARRAY, PQ_FIXED };
enum { PQ_REQUIRED, PQ_OPTIONAL, PQ_REPEATED };
enum { PQ_CT_UTF8 = 0, PQ_CT_MAP = 1, PQ_CT_MAP_KEY_VALUE = 2, PQ_CT_LIST = 3, PQ_CT_DECIMAL = 5, PQ_CT_UINT_64 = 14 };
enum { PQ_LT_STRING = 1, PQ_LT_MAP = 2, PQ_LT_LIST = 3 };
enum { PQ_PAGE_DATA = 0, PQ_PAGE_INDEX = 1, PQ_PAGE_DICT = 2, PQ_PAGE_DATA_V2 = 3 };
enum {
    PQ_ENC_PLAIN = 0,
    PQ_ENC_PLAIN_DICT = 2,
    PQ_ENC_RLE = 3,
    PQ_ENC_BIT_PACKED = 4,
    PQ_ENC_DELTA_BINARY = 5,
    PQ_ENC_DELTA_LENGTH = 6,
    PQ_ENC_DELTA_BYTE_ARRAY = 7,
    PQ_ENC_RLE_DICT = 8,
    PQ_ENC_BYTE_STREAM_SPLIT = 9
};
enum { PQ_UNCOMPRESSED, PQ_SNAPPY, PQ_GZIP, PQ_LZO, PQ_BROTLI, PQ_LZ4, PQ_ZSTD, PQ_LZ4_RAW };

/* ---- thrift compact protocol (parquet_thrift.c) ---- */
typedef struct PqThrift {
    const uint8_t *p, *end;
    int depth;
    int bad; /* set on the first malformed or truncated byte; every read after returns 0 */
} PqThrift;

/* One schema element; nodes[0] is the root.  def/rep are the maximum definition and
 * repetition levels of a value at this node (Dremel: optional and repeated ancestors,
 * this node included, count). */
typedef struct PqNode {
    char *name;
    char *path; /* dotted, for messages */
    int type;   /* physical type, -1 for a group */
    int type_length;
    int repetition;
    int converted; /* ConvertedType, -1 when absent */
    int logical;   /* LogicalType union member id, 0 when absent */
    int n_children;
    int first_child; /* index into nodes; children are consecutive subtrees */
    int *child;      /* indices of the children */
    int def, rep;
    int leaf0, n_leaves; /* leaf column indices under this node */
} PqNode;

typedef struct PqChunkMeta {
    int type, codec;
    int64_t num_values;
    int64_t data_off, dict_off; /* dict_off 0 when absent */
    int64_t total_compressed;
} PqChunkMeta;

typedef struct PqRowGroup {
    int64_t num_rows;
    int n_cols;
    PqChunkMeta *cols;
} PqRowGroup;

typedef struct PqPageHeader {
    int type;
    int32_t uncompressed, compressed;
    int32_t num_values;
    int encoding;
    int def_enc, rep_enc;        /* v1 */
    int32_t num_nulls, num_rows; /* v2 */
    int32_t def_len, rep_len;    /* v2 */
    int is_compressed;           /* v2, default true */
    int have_data, have_dict, have_v2;
} PqPageHeader;

typedef struct PqMeta {
    PqNode *nodes;
    int n_nodes;
    int *leaves; /* node index of each leaf column, in schema order */
    int n_leaves;
    PqRowGroup *rgs;
    int n_rgs;
    int64_t num_rows;
} PqMeta;

uint64_t pq_varint(PqThrift *t);
int pq_meta_parse(PqMeta *m, const uint8_t *p, size_t n, const char *name, Error *e);
void pq_meta_free(PqMeta *m);
/* Reads a page header at *P (at most N bytes); advances *used by its length. */
int pq_page_header(PqPageHeader *h, const uint8_t *p, size_t n, size_t *used);

/* ---- one column chunk, decoded (parquet_read.c) ---- */
typedef struct PqColumn {
    uint8_t *def, *rep; /* one entry per level entry; levels are < PQ_MAX_DEPTH */
    int64_t n, pos;
    json_t **vals; /* the non-null values, in order */
    int64_t nv, vpos;
} PqColumn;

/* Decodes column chunk C of row group RG (leaf node LEAF) from the file buffer.  CTX
 * names file, row group and column for messages. */
int pq_column_read(PqColumn *col, const uint8_t *file, size_t file_len, const PqChunkMeta *c, const PqNode *leaf,
                   const char *ctx, Error *e);
void pq_column_free(PqColumn *col);

#endif
