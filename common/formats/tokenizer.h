/* tokenizer.h — tokenizers read from a Hugging Face tokenizer.json.
 *
 * Covers the files GPT-2, SmolLM2, Llama-3 and Qwen (byte-level BPE), Llama-2,
 * Mistral, TinyLlama and Gemma (sentencepiece BPE with byte fallback) and T5/ALBERT
 * style Unigram models ship:
 *   model        BPE (vocab, merges as "a b" strings or ["a","b"] pairs, ignore_merges,
 *                byte_fallback to <0xXX> tokens, unk_token with fuse_unk) and Unigram
 *                (Viterbi over piece scores, unk_id, byte_fallback; tokenizer_unigram.c)
 *   added tokens special or not, with single_word / lstrip / rstrip / normalized
 *   normalizer   null, NFC, Replace (literal), Prepend, Strip and Sequence of those
 *   pre-tokenizer ByteLevel, Split (PCRE2 regex or literal, every SplitDelimiterBehavior,
 *                invert), Digits, Metaspace (prepend_scheme always/first/never,
 *                split), WhitespaceSplit and Sequence of those
 *   decoder      ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence
 *   post-processor TemplateProcessing, ByteLevel and Sequence of those.
 * Anything else is a clear EX_DATAERR naming the file and the JSON field, never a
 * silent approximation (the sentencepiece Precompiled normalizer is one).
 * Spec: the `tokenizers` library's serialisation (the serde form of each
 * component in tokenizers/src); ids are checked against it by tests/test_tokenizer_oracle.c.
 *
 * Not thread-safe: tok_encode uses an internal word->ids cache.  Use one Tokenizer
 * per thread (tok_load twice) if several threads encode.  Not for: chat templates
 * (chat.h) or datasets (data.h). */
#ifndef CHERRY_TOKENIZER_H
#define CHERRY_TOKENIZER_H

#include <stddef.h>

#include "base/err.h"

/* A growable int array.  Zero-initialise ({0}) before first use; free with
 * intvec_free.  Functions that "append to out" never clear it first. */
typedef struct IntVec {
    int *v;
    int n, cap;
} IntVec;
void intvec_push(IntVec *a, int x);
void intvec_append(IntVec *a, const int *x, int n);
void intvec_reserve(IntVec *a, int cap);
void intvec_free(IntVec *a);

typedef struct Tokenizer Tokenizer;

/* Loads PATH (a tokenizer.json).  If a tokenizer_config.json sits in the same
 * directory it is read too, for bos_token / eos_token / pad_token / chat_template
 * (strings or {"content": ...} objects).  Errors: EX_NOINPUT (missing file),
 * EX_DATAERR ("PATH: field \"model.type\": unsupported model type \"Unigram\"").
 * On success *t is owned by the caller (tok_free). */
int tok_load(Tokenizer **t, const char *tokenizer_json_path, Error *e);
/* Loads DIR/tokenizer.json (and DIR/tokenizer_config.json when present).  For a model
 * directory, where an adapter may leave its tokenizer to its base, use
 * model_tokenizer_load (model/model.h). */
int tok_load_dir(Tokenizer **t, const char *dir, Error *e);
void tok_free(Tokenizer *t);

/* Copies n bytes replacing each maximal invalid subpart with U+FFFD (the Unicode
 * "substitution of maximal subparts" practice, which both Python's
 * decode("utf-8", "replace") and Rust's String::from_utf8_lossy follow).  Returns
 * NULL (and leaves *out_len unset) when the input is already valid. */
char *utf8_sanitize(const char *s, size_t n, size_t *out_len);
/* Replaces NUL bytes in the malloc'd text *txt of *len bytes with U+FFFD (in place or
 * by a new allocation): a sampled NUL would be written as \u0000, which JSON readers
 * (jansson by default, so every cherry program) refuse.  For generated text only. */
void utf8_replace_nul(char **txt, size_t *len);

/* Encodes LEN bytes of TEXT and APPENDS the ids to out.  No post-processor (no BOS
 * or EOS is added; see tok_encode_special).  parse_special = 0: added tokens with
 * "special": true are plain text (so "<|endoftext|>" inside data is just characters);
 * non-special added tokens are always matched, as the library does.  parse_special
 * = 1: special tokens are matched too.  Invalid UTF-8: each maximal invalid
 * sequence is replaced by U+FFFD first, as Python's bytes.decode("utf-8",
 * "replace") does before text reaches the tokenizers library (WHATWG/Unicode
 * "maximal subpart" rule), so cherry and the Python pipeline agree.  Returns 0, or
 * EX_DATAERR when some characters have no token (not in the vocabulary, and the
 * file has neither an unk token nor byte fallback; impossible for byte-level BPE):
 * the ids of the rest are still appended, but the caller must not treat the text
 * as encoded (the Rust library drops such characters silently). */
int tok_encode(Tokenizer *t, const char *text, size_t len, int parse_special, IntVec *out);

/* tok_encode for a part of a longer text tokenized piecewise (chat renderings split
 * at special tokens and at the train mask), so sentencepiece-style tokenizers treat
 * it as the library treats that part of the whole:
 *   TOK_STARTS_INPUT  the text begins the input (= tok_encode)
 *   TOK_AFTER_ADDED   it follows an added token: a new gap, normalized on its own
 *                     (Prepend applies), but Metaspace "first" does not prepend
 *   TOK_CONTINUES     it continues the text before it: no Prepend, no Metaspace prepend */
enum { TOK_STARTS_INPUT = 0, TOK_AFTER_ADDED = 1, TOK_CONTINUES = 2 };
int tok_encode_part(Tokenizer *t, const char *text, size_t len, int parse_special, int where, IntVec *out);

/* Post-processor of the file for a single sequence (TemplateProcessing "single",
 * or nothing for ByteLevel/null): appends the special ids that go BEFORE the
 * sequence (e.g. Llama-3's <|begin_of_text|>) to out.  tok_post_suffix appends the
 * ones that go after.  This is what HF's add_special_tokens=True adds. */
void tok_post_prefix(const Tokenizer *t, IntVec *out);
void tok_post_suffix(const Tokenizer *t, IntVec *out);

/* Decodes N ids into a newly malloc'd NUL-terminated string (*out, length *len;
 * caller frees).  skip_special = 1 drops added tokens marked special.  The ByteLevel
 * decoder maps pieces back to bytes; byte sequences that are not valid UTF-8 (an
 * id sequence cut inside a character) become U+FFFD, as HF decode does.  Ids out of
 * range are an EX_DATAERR naming the id. */
int tok_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, Error *e);

/* Raw bytes of one token (ByteLevel pieces mapped back to bytes; added tokens as
 * their content).  Returns the length, writes at most cap bytes; -1 for a bad id.
 * Used by streaming decoders (generation prints tokens as they come). */
int tok_id_bytes(const Tokenizer *t, int id, char *buf, int cap);

int tok_vocab_size(const Tokenizer *t);                     /* 1 + largest id (vocab and added tokens) */
const char *tok_id_to_piece(const Tokenizer *t, int id);    /* vocab string as in the file, NULL if bad */
int tok_piece_to_id(const Tokenizer *t, const char *piece); /* -1 if absent */
int tok_is_special(const Tokenizer *t, int id);             /* added token with special: true */

/* Special ids (-1 when the tokenizer has none).  From tokenizer_config.json when
 * present, else from well-known names in the vocabulary ("<|endoftext|>",
 * "<|end_of_text|>", "</s>", "<|im_end|>" for eos; "<|begin_of_text|>", "<s>" for
 * bos).  pad falls back to eos (as TRL does when pad_token is None). */
int tok_bos_id(const Tokenizer *t);
int tok_eos_id(const Tokenizer *t);
int tok_pad_id(const Tokenizer *t);

/* The chat_template string of tokenizer_config.json (NULL if absent); owned by t. */
const char *tok_chat_template(const Tokenizer *t);
/* The path the tokenizer was loaded from (for messages). */
const char *tok_path(const Tokenizer *t);

#endif
