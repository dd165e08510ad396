/* gguf_export.h — a cherry / Hugging Face model directory as a llama.cpp GGUF v3 file:
 * the inverse of gguf_import (formats/gguf.h) and what llama.cpp's
 * convert_hf_to_gguf.py writes for GPT2LMHeadModel and LlamaForCausalLM.
 *
 * Tensors get llama.cpp's names (gguf-py tensor_mapping.py), GGUF's ne order, the
 * rotary permutation of Llama's Q and K rows (convert_hf_to_gguf.py
 * LlamaModel.permute), and the requested type: 2-D weights in F32, F16, BF16, Q8_0,
 * Q4_0 or Q4_K (when a row does not fill whole blocks: Q8_0 for Q4_K, else F16),
 * 1-D norms and biases always F32.  Metadata: general.*, the architecture's
 * hyper-parameters (gpt2.* / llama.*), and the tokenizer as llama.cpp reads it
 * (tokenizer.ggml.model "gpt2" — byte-level BPE — with tokens, token types, merges,
 * special token ids, add_bos/add_eos, the pre-tokenizer name llama.cpp hard-codes,
 * and tokenizer.chat_template).  A LoRA adapter directory is merged first.
 * Not for: classifier (reward) models, SentencePiece/Unigram vocabularies, or
 * K-quants other than Q4_K — refused with a message naming what is missing. */
#ifndef CHERRY_GGUF_EXPORT_H
#define CHERRY_GGUF_EXPORT_H

#include <stdint.h>

#include "base/err.h"

typedef struct GgufExportOptions {
    int type;         /* ggml type of the 2-D weights: GGML_F32, F16, BF16, Q8_0, Q4_0, Q4_K */
    const char *name; /* general.name; NULL = the directory's base name */
} GgufExportOptions;

typedef struct GgufExportStats {
    int n_tensors, n_quantised, n_fallback; /* n_quantised: 2-D weights; fallback: to F16 */
    int vocab_size, n_merges;
    uint64_t n_params, bytes;
    const char *arch, *pre; /* static strings */
} GgufExportStats;

/* Writes model directory DIR as GGUF at OUT (atomically).  EX_DATAERR names what
 * cannot be represented; EX_NOINPUT / EX_CANTCREAT / EX_IOERR as usual. */
int gguf_export(const char *dir, const char *out, const GgufExportOptions *opt, GgufExportStats *st, Error *e);

/* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k" -> ggml type; -1 when unknown. */
int gguf_export_type_parse(const char *s);

#endif
