/* tokenizer_impl.h — internals shared by tokenizer.c (loading, added tokens, encode
 * and decode driver), tokenizer_pretok.c (pre-tokenizers) and tokenizer_bpe.c (the
 * BPE model).  Not a public API: programs and other modules use tokenizer.h. */
#ifndef CHERRY_TOKENIZER_IMPL_H
#define CHERRY_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- string -> int hash map (open addressing, keys copied into an arena) ---- */
typedef struct StrMapEnt {
    uint64_t hash;
    uint32_t off, len; /* key bytes in arena */
    int32_t val;
    int32_t used;
} StrMapEnt;
typedef struct StrMap {
    StrMapEnt *ents;
    size_t cap, n; /* cap is a power of two */
    char *arena;
    size_t arena_len, arena_cap;
} StrMap;
uint64_t tok_hash_bytes(const char *s, size_t n);
int strmap_get(const StrMap *m, const char *key, size_t len);     /* -1 when absent */
void strmap_put(StrMap *m, const char *key, size_t len, int val); /* inserts or overwrites */
void strmap_clear(StrMap *m);
void strmap_free(StrMap *m);

/* ---- UTF-8 helpers ---- */
/* Decodes one code point of valid UTF-8 at s (n bytes left); returns its length. */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
int utf8_encode(uint32_t cp, char *out); /* 1..4 bytes */
/* Length of the valid UTF-8 sequence at s, or 0 when s starts an invalid one; in
 * that case *bad is set to the length of its maximal subpart (>= 1). */
int utf8_valid_len(const unsigned char *s, size_t n, int *bad);
int uni_is_whitespace(uint32_t cp); /* Unicode White_Space property (Rust's \s, char::is_whitespace) */
/* NFC of n bytes of valid UTF-8 (tokenizer_nfc.c): a new NUL-terminated string, or
 * NULL when the text is already in NFC. */
char *nfc_normalize(const char *s, size_t n, size_t *out_len);

/* ---- pieces: the list of strings a pre-tokenizer step works on ---- */
typedef struct Pieces {
    char *buf;
    size_t len, cap;
    size_t *off, *plen;
    int n, ncap;
    /* streaming (pretok_encode): when stream is set the pieces may be sent on to
     * pre-tokenizer step next_step (and BPE) before the whole input is split;
     * map_into: ByteLevel's regex words, mapped into that list when sent on;
     * at_start: the next piece sent on starts the input (Metaspace "first");
     * first_cut: -1, or whether the step's first piece from a split began at offset
     * 0 of the step's input */
    int stream, next_step;
    struct Pieces *map_into;
    int at_start, first_cut;
} Pieces;
void pieces_reset(Pieces *p);
void pieces_add(Pieces *p, const char *s, size_t n); /* empty pieces are dropped, as tokenizers does */
void pieces_free(Pieces *p);

/* ---- pre-tokenizer steps (Sequence is flattened into a list) ---- */
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
typedef enum PreKind {
    PRE_BYTELEVEL,
    PRE_SPLIT_REGEX,
    PRE_SPLIT_STRING,
    PRE_DIGITS,
    PRE_METASPACE,
    PRE_WHITESPACE_SPLIT
} PreKind;
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER }; /* Metaspace prepend_scheme */
typedef struct PreStep {
    PreKind kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    int behavior, invert;            /* Split */
    char *literal;                   /* Split with {"String": ...} */
    size_t literal_len;
    pcre2_code *re;        /* Split regex, or ByteLevel's GPT-2 regex */
    int individual_digits; /* Digits */
    char replacement[5];   /* Metaspace: the replacement character (UTF-8) */
    int prepend_scheme, split;
} PreStep;

/* ---- normalizer steps (tokenizer_norm.c), applied in order ---- */
typedef enum NormKind { NORM_NFC, NORM_REPLACE, NORM_PREPEND, NORM_LOWERCASE, NORM_STRIP } NormKind;
typedef struct NormStep {
    NormKind kind;
    char *pat, *content; /* Replace: literal pattern -> content; Prepend: content */
    size_t pat_len, content_len;
    int left, right; /* Strip */
} NormStep;

/* ---- decoder steps (tokenizer_decode.c) ---- */
typedef enum DecKind { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } DecKind;
typedef struct DecStep {
    DecKind kind;
    char *pat, *content; /* Replace */
    size_t pat_len, content_len;
    char ch[5];          /* Strip content / Metaspace replacement (UTF-8) */
    int start, stop;     /* Strip */
    int prepend_scheme;  /* Metaspace */
} DecStep;

/* Compiles an Oniguruma-style pattern from tokenizer.json with PCRE2 (UTF, UCP, JIT). */
pcre2_code *tok_regex_compile(const char *pattern, char *errbuf, size_t errcap);

/* ---- added tokens ---- */
typedef struct AddedTok {
    int id;
    char *content;
    size_t len;
    unsigned char single_word, lstrip, rstrip, normalized, special;
} AddedTok;

/* Matching set for one pass (non-normalized or normalized tokens): tokens bucketed by
 * first byte, each bucket longest first, for leftmost-longest matching. */
typedef struct AddedSet {
    int *bucket_start; /* [257] offsets into idx */
    int *idx;          /* indices into Tokenizer.added */
    int n;
} AddedSet;

typedef struct MergeEnt {
    uint64_t key; /* (left id << 32) | right id, +1 so 0 means empty */
    int rank, new_id;
} MergeEnt;

struct Tokenizer {
    char *path;
    /* model vocabulary */
    int n_ids;               /* 1 + largest id */
    char **piece;            /* [n_ids] string as in the file (vocab or added content), NULL for gaps */
    int *piece_len;          /* [n_ids] */
    unsigned char *id_flags; /* [n_ids] bit 0: added token, bit 1: special */
    StrMap vocab;            /* model vocab piece -> id */
    MergeEnt *merges;        /* hash set of merges */
    size_t merge_cap;
    int n_merges;
    int ignore_merges, byte_fallback, fuse_unk, unk_id;
    long n_dropped; /* bytes of the current tok_encode no token could represent */
    int cp_id[512]; /* code point < 512 -> vocab id of that single char (-1) */
    /* added tokens */
    AddedTok *added;
    int n_added;
    AddedSet set_raw, set_norm;
    int normalizer_nfc; /* normalizer has an NFC step */
    NormStep *norm;     /* normalizer steps (none = identity) */
    int n_norm;
    /* pre-tokenizer */
    PreStep *steps;
    int n_steps;
    pcre2_match_data *md;
    pcre2_code *re_word;    /* Rust regex \w, for single_word */
    pcre2_code *re_numeric; /* char::is_numeric, for Digits */
    /* post-processor */
    IntVec post_prefix, post_suffix;
    /* decoder: 0 = none (tokens joined by " "), 1 = ByteLevel */
    int decoder_bytelevel;
    DecStep *dec; /* decoder steps; when any is not ByteLevel, tokenizer_decode.c decodes */
    int n_dec, dec_generic;
    /* Unigram model (tokenizer_unigram.c); BPE when 0 */
    int unigram;
    double *score;     /* [n_ids] piece scores */
    double unk_score;  /* min score - 10 (sentencepiece kUnkPenalty) */
    int max_piece_len; /* bytes */
    int piece_at_start; /* the text being pre-tokenized starts the input (Metaspace "first") */
    int continue_gap;   /* tok_encode_part TOK_CONTINUES: the first gap gets no Prepend */
    int byte_of_cp[512];    /* ByteLevel alphabet: code point -> byte (-1) */
    char byte_char[256][3]; /* byte -> its ByteLevel char as UTF-8, NUL-terminated */
    /* specials */
    int bos_id, eos_id, pad_id;
    char *chat_template;
    struct JinjaTemplate *jinja; /* chat_template parsed on first use (chat_jinja.c) */
    /* scratch and cache */
    Pieces pa, pb, pc;
    StrMap cache; /* word -> offset into cache_ids (count followed by ids) */
    int *cache_ids;
    size_t cache_len, cache_cap;
    int *sym_id, *sym_prev, *sym_next;
    int sym_cap;
    struct HeapEnt *heap;
    int heap_cap;
    char *tmp;
    size_t tmp_cap;
    void *spans; /* pre-tokenizer scratch (Span array in tokenizer_pretok.c) */
    int spans_cap;
    struct PreLevel *lvl; /* pretok_encode: per-step pieces and spans (n_steps) */
    IntVec *enc_out;      /* pretok_encode: where the words' ids go */
    int span_batch;       /* spans a split holds before sending pieces on (0 = 4096; tests vary it) */
};

/* tokenizer_pretok.c */
int pretok_parse(Tokenizer *t, const void *json_pre, const char *where, Error *e);
void pretok_free(Tokenizer *t);
/* Runs the pre-tokenizer steps on s[0..n) and encodes every resulting word with the
 * model (BPE or Unigram; ByteLevel mapped when a ByteLevel step ran), appending the
 * ids to out.  Streams: a piece goes on to the next step and to the model as soon
 * as the split that made it is final (a batch at a time), so memory does not grow
 * with the length of the text.  t->piece_at_start: s starts the input. */
void pretok_encode(Tokenizer *t, const char *s, size_t n, IntVec *out);
/* Regex split with tokenizers' SplitDelimiterBehavior and invert, appended to out. */
void pretok_split_regex(Tokenizer *t, pcre2_code *re, const char *s, size_t n, int behavior, int invert, Pieces *out);
int uni_is_numeric(Tokenizer *t, uint32_t cp);
int uni_is_word(Tokenizer *t, uint32_t cp);

/* tokenizer_norm.c */
int norm_parse(Tokenizer *t, const void *json_norm, const char *where, Error *e);
/* The normalized form of n bytes: a new string, or NULL when unchanged.  skip_prepend:
 * leave out Prepend steps (text that continues a gap, see tok_encode_part). */
char *norm_apply(const Tokenizer *t, const char *s, size_t n, int skip_prepend, size_t *out_len);
void norm_free(Tokenizer *t);

/* tokenizer_decode.c */
int dec_parse(Tokenizer *t, const void *json_dec, const char *where, Error *e);
int dec_decode(const Tokenizer *t, const int *ids, int n, int skip_special, char **out, size_t *len, Error *e);
int dec_id_bytes(const Tokenizer *t, int id, char *out, int cap);
void dec_free(Tokenizer *t);

/* tokenizer_unigram.c */
int unigram_parse(Tokenizer *t, const void *json_model, Error *e);
/* Appends the ids of one pre-tokenized piece (Viterbi over the vocabulary scores). */
void unigram_word(Tokenizer *t, const char *w, size_t n, IntVec *out);

/* tokenizer_bpe.c */
void bpe_merge_put(Tokenizer *t, int left, int right, int rank, int new_id);
/* Appends the ids of one pre-tokenized word (already in the model's alphabet). */
void bpe_word(Tokenizer *t, const char *w, size_t n, IntVec *out);
void bpe_free(Tokenizer *t);

#endif
