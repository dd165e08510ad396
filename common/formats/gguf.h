/* gguf.h — read GGUF files (llama.cpp's model format), validated; import a llama
 * GGUF as a Hugging Face model directory.
 *
 * Format (ggml docs/gguf.md, "File Structure"; reference reader ggml/src/gguf.cpp),
 * all integers little-endian:
 *   uint32 magic "GGUF" · uint32 version (2 or 3; v1 used 32-bit counts and is
 *   refused) · uint64 tensor_count · uint64 kv_count ·
 *   kv_count × { string key · uint32 value_type · value } ·
 *   tensor_count × { string name · uint32 n_dims · uint64 ne[n_dims] · uint32 ggml_type ·
 *                    uint64 offset } ·
 *   padding to general.alignment (default 32) · tensor data.
 *   string = uint64 length + that many bytes (no NUL); array = uint32 element type +
 *   uint64 count + elements.  ne[0] is the fastest-varying dimension, so the
 *   row-major (PyTorch) shape is ne reversed.  Tensor offsets are relative to the
 *   start of the data section, multiples of the alignment, and (as gguf.cpp
 *   requires) laid out in order, each starting at the previous end rounded up.
 *
 * Validation follows gguf.cpp and goes further where a hostile file could make a
 * reader overrun: every length and count is checked against the bytes left before
 * anything is allocated or read, keys and tensor names are unique, dims are 1..4
 * with positive sizes whose product does not overflow, the row length is a multiple
 * of the type's block size, and tensor data lies inside the file.  Every error names
 * the file, the byte offset and the field.
 * Not for: writing GGUF (gguf_write.h), or running quantised weights (we dequantise
 * to f32). */
#ifndef CHERRY_GGUF_H
#define CHERRY_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Metadata value types (gguf.md "gguf_metadata_value_type"). */
typedef enum {
    GGUF_UINT8 = 0,
    GGUF_INT8 = 1,
    GGUF_UINT16 = 2,
    GGUF_INT16 = 3,
    GGUF_UINT32 = 4,
    GGUF_INT32 = 5,
    GGUF_FLOAT32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_UINT64 = 10,
    GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
    GGUF_NTYPES
} GgufType;

/* ggml tensor types we know the block layout of (ggml.h enum ggml_type). */
enum {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q4_1 = 3,
    GGML_Q5_0 = 6,
    GGML_Q5_1 = 7,
    GGML_Q8_0 = 8,
    GGML_Q2_K = 10,
    GGML_Q3_K = 11,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_Q8_K = 15,
    GGML_BF16 = 30,
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapping: NOT NUL-terminated, may contain any bytes. */
typedef struct GgufStr {
    const char *p;
    uint64_t n;
} GgufStr;

typedef struct GgufKV {
    char *key; /* NUL-terminated copy (keys containing NUL bytes are rejected) */
    GgufType type;
    /* scalars */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v;
    GgufStr str; /* type == GGUF_STRING */
    /* type == GGUF_ARRAY */
    GgufType arr_type;
    uint64_t arr_n;
    const void *arr_data; /* element bytes in the mapping (scalar arrays) */
    GgufStr *arr_str;     /* arr_n entries when arr_type == GGUF_STRING */
} GgufKV;

typedef struct GgufTensor {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] fastest */
    int type;                  /* ggml_type */
    uint64_t offset;           /* relative to the data section */
    uint64_t numel;
    uint64_t nbytes;
    const void *data; /* in the mapping */
} GgufTensor;

typedef struct GgufFile {
    char *path;
    void *map;
    size_t map_len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* absolute offset of the data section */
    uint64_t n_kv;
    GgufKV *kv;
    uint64_t n_tensors;
    GgufTensor *tensors;
} GgufFile;

/* Maps and validates PATH.  EX_NOINPUT when it cannot be opened, EX_DATAERR when it
 * is malformed ("PATH: byte N: what (field "x")"). */
int gguf_open(GgufFile *g, const char *path, Error *e);
/* Validates an in-memory image (borrowed; must outlive g).  name is used in messages.
 * On failure g is released (gguf_close is not needed). */
int gguf_parse(GgufFile *g, const void *buf, size_t len, const char *name, Error *e);
void gguf_close(GgufFile *g);

const GgufKV *gguf_find_kv(const GgufFile *g, const char *key);
const GgufTensor *gguf_find_tensor(const GgufFile *g, const char *name);

/* Typed getters: 0 on success; EX_DATAERR when present with an incompatible type or
 * value out of range; when absent, returns 0 with *found = 0 (found may be NULL only
 * for required keys, in which case absence is an EX_DATAERR naming the key). */
int gguf_get_u64(const GgufFile *g, const char *key, uint64_t *out, int *found, Error *e);
int gguf_get_f64(const GgufFile *g, const char *key, double *out, int *found, Error *e);
int gguf_get_bool(const GgufFile *g, const char *key, int *out, int *found, Error *e);
/* Returns a NUL-terminated copy (xmalloc); EX_DATAERR if it contains a NUL byte. */
int gguf_get_str(const GgufFile *g, const char *key, char **out, int *found, Error *e);

const char *gguf_type_name(GgufType t);
/* Name of a ggml tensor type ("Q4_1"), or NULL when unknown. */
const char *ggml_type_name(int type);
/* Block size (elements) and block bytes of a ggml type; 0 when unknown. */
int ggml_type_block(int type, uint64_t *blck, uint64_t *bytes);

/* ---- import (gguf_import.c) ---- */
typedef struct GgufImportOptions {
    int quiet;       /* no summary on stderr */
    int keep_rotary; /* 1 = do not undo llama.cpp's Q/K permutation (debugging only) */
} GgufImportOptions;

typedef struct GgufImportStats {
    uint64_t n_params; /* elements written to model.safetensors */
    int n_tensors;
    int n_layers;
    int vocab_size;
    int tied;
} GgufImportStats;

/* Reads a llama-architecture GGUF and writes an HF LlamaForCausalLM directory at
 * outdir atomically: config.json, model.safetensors (F32, HF names, Q/K rows in HF
 * order), tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * generation_config.json. */
int gguf_import_llama(const char *gguf_path, const char *outdir, const GgufImportOptions *opt, GgufImportStats *stats,
                      Error *e);

/* Undoes convert_hf_to_gguf.py's `permute` on a [rows, cols] row-major matrix (or a
 * bias when cols = 1) whose rows are n_head heads of rows/n_head each: llama.cpp
 * stores each head's rows as (head_dim/2, 2) interleaved pairs for its rotary
 * kernel; HF keeps them as (2, head_dim/2) halves.  out must not alias in. */
int gguf_unpermute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head, Error *e);
/* The permutation itself (HF order -> llama.cpp order), for export. */
int gguf_permute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head, Error *e);

#endif
