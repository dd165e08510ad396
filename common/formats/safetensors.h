/* safetensors.h — read (mmap, validated) and write (atomic) .safetensors files.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian header
 * length N, then N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {str: str}}, then the byte buffer.  Validation follows the
 * reference implementation: header at most 100 MB, well-formed UTF-8 JSON, known
 * dtype, shape product x dtype size == end - begin, offsets in bounds, ordered,
 * non-overlapping and contiguous, buffer covering the rest of the file exactly.
 * Not for: model semantics (model.c) or sharded indexes (model.c reads those). */
#ifndef CHERRY_SAFETENSORS_H
#define CHERRY_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The dtypes the reference implementation knows (safetensors/src/tensor.rs Dtype);
 * only the float ones can be widened to f32, the others are read and listed. */
typedef enum {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_U16,
    ST_U32,
    ST_U64,
    ST_F8_E4M3,
    ST_F8_E5M2
} StDtype;

/* Largest header the reader accepts (the reference's MAX_HEADER_SIZE). */
#define ST_MAX_HEADER ((uint64_t)100000000)

typedef struct StTensor {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    const void *data; /* points into the mapping */
    size_t nbytes;
} StTensor;

typedef struct StFile {
    char *path;
    void *map;
    size_t map_len;
    int n;
    StTensor *tensors;
    int n_meta;
    char **meta_keys, **meta_vals; /* __metadata__ */
} StFile;

/* Maps and validates PATH; errors are EX_NOINPUT (cannot open) or EX_DATAERR
 * (malformed, message names the file and what is wrong). */
int st_open(StFile *f, const char *path, Error *e);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
/* Widens F32/F16/BF16 (and F64) tensor data to float32 into out[numel]. */
int st_to_f32(const StTensor *t, float *out, Error *e);
const char *st_dtype_name(StDtype d);
size_t st_dtype_size(StDtype d);
/* Parses a dtype name ("F32", "BF16", ...); returns -1 when unknown. */
int st_dtype_parse(const char *s);
/* Value of a __metadata__ key, or NULL. */
const char *st_meta_get(const StFile *f, const char *key);
/* float32 <-> bfloat16 / float16 conversions (round to nearest even on narrowing). */
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);

/* Writer: add tensors (data is borrowed until st_write), then write atomically
 * (temporary file, fsync, rename).  dtype of the output: ST_F32 or ST_BF16 (the
 * input is always float32). Tensors are written in the order added. */
typedef struct StWriter {
    int n, cap;
    struct {
        char *name;
        int ndim;
        int64_t shape[8];
        const float *data;
    } * items;
    int n_meta;
    char **meta_keys, **meta_vals;
} StWriter;

void st_writer_init(StWriter *w);
void st_writer_add(StWriter *w, const char *name, const float *data, int ndim, const int64_t *shape);
void st_writer_meta(StWriter *w, const char *key, const char *val);
int st_writer_write(StWriter *w, const char *path, StDtype dtype, Error *e);
void st_writer_free(StWriter *w);

#endif
