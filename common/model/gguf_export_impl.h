/* gguf_export_impl.h — private to model/: the vocabulary half of gguf_export. */
#ifndef CHERRY_GGUF_EXPORT_IMPL_H
#define CHERRY_GGUF_EXPORT_IMPL_H

#include "formats/gguf_write.h"
#include "model.h"

/* Adds the tokenizer.* keys for the tokenizer files in DIR (a model directory or an
 * adapter's base) to w; *pre gets llama.cpp's pre-tokenizer name (static). */
int gguf_export_vocab(GgufWriter *w, const char *dir, const ModelConfig *cfg, const char **pre, int *n_merges,
                      Error *e);

#endif
