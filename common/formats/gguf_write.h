/* gguf_write.h — write GGUF v3 files (the layout gguf.h reads; ggml docs/gguf.md):
 * header, key-value metadata in the order added, tensor infos, padding to the
 * alignment (32), tensor data each padded to the alignment.  The tensors' bytes are
 * already in their ggml type (quant.h converts); the writer only lays them out.
 * Output goes to a temporary file beside the destination, renamed when complete.
 * Not for: reading (gguf.h) or model semantics (model/gguf_export.c). */
#ifndef CHERRY_GGUF_WRITE_H
#define CHERRY_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "gguf.h"

typedef struct GgufWriter GgufWriter;

GgufWriter *gguf_writer_new(void);
void gguf_writer_free(GgufWriter *w);

/* Metadata; keys are copied.  Adding a key twice is a programming error (exit 70). */
void gguf_w_str(GgufWriter *w, const char *key, const char *val);
void gguf_w_u32(GgufWriter *w, const char *key, uint32_t val);
void gguf_w_i32(GgufWriter *w, const char *key, int32_t val);
void gguf_w_f32(GgufWriter *w, const char *key, float val);
void gguf_w_bool(GgufWriter *w, const char *key, int val);
/* Array of n strings: strs[i] of lens[i] bytes (lens NULL = NUL-terminated). */
void gguf_w_arr_str(GgufWriter *w, const char *key, const char *const *strs, const size_t *lens, size_t n);
void gguf_w_arr_i32(GgufWriter *w, const char *key, const int32_t *vals, size_t n);
void gguf_w_arr_f32(GgufWriter *w, const char *key, const float *vals, size_t n);

/* A tensor of ggml type with n_dims sizes ne[] (ne[0] fastest, as GGUF lists them);
 * data of exactly the type's size for that shape is taken over (freed by the
 * writer). */
void gguf_w_tensor(GgufWriter *w, const char *name, int type, int n_dims, const int64_t *ne, void *data, size_t nbytes);

/* Writes everything to PATH atomically.  EX_CANTCREAT / EX_IOERR on failure. */
int gguf_writer_write(GgufWriter *w, const char *path, Error *e);

#endif
