/* data.h — the data layer: JSONL records -> token ids with loss masks -> batches.
 *
 * Record kinds (INTERFACE.md "Data", man5 cherry-data):
 *   text               {"text": s}                              loss on every token
 *   prompt-completion  {"prompt": p, "completion": c}           loss on c only
 *   conversational     {"messages": [{role, content}...]}       loss on assistant turns
 *   segments           {"segments": [{"text": s, "train": b}]}  explicit loss mask
 *   prompt-only        {"prompt": p} or {"messages": [...]}     rollout / ppo input
 *   preference         {"prompt"?, "chosen", "rejected", "margin"?, "id"?,
 *                       "ref_chosen_logps"?, "ref_rejected_logps"?}
 *   rollout            {"prompt", "completion", "reward"?, "logprob"?, "group"?}
 * p, c, chosen, rejected are strings or message lists (conversational form: the
 * prompt is rendered with the generation prompt, a completion is the assistant
 * message(s) that follow it).  Preference without "prompt" (hh-rlhf) is split at
 * the longest common prefix of chosen and rejected that ends at the last
 * "\n\nAssistant:" within that prefix.
 *
 * Tokenization rule (TRL's): prompt and completion are tokenized SEPARATELY and the
 * ids concatenated, so the boundary is exact even where joint tokenization would
 * merge a token across it.  The prompt gets the tokenizer's post-processor prefix
 * (BOS for Llama-3-style files) unless a chat template already supplies one.  EOS is
 * appended to completions (and text) that do not already end with it (add_eos).
 *
 * Truncation: the prompt is cut to max_prompt_length (keep_end keeps its last
 * tokens, keep_start its first); an example whose prompt is then still >=
 * max_length (no room for one completion token) is DROPPED and counted; the
 * completion is cut to max_length - prompt_len keeping its start.  Kinds without a
 * prompt (text, segments, conversational) are cut to max_length: keep_start keeps
 * the first tokens, keep_end the last.  An example left with no loss-bearing token
 * is dropped and counted.
 *
 * Streaming: one record in memory at a time; memory does not grow with the file.
 * Errors name FILE:LINE and the field ("data.jsonl:12: field \"chosen\" must be a
 * string or a list of messages"); with skip_invalid a bad record is counted and
 * skipped instead (JSON syntax errors, invalid UTF-8, wrong types, missing fields).
 * Not for: Argilla/ranking exports (prefdata.h) or writing records. */
#ifndef CHERRY_DATA_H
#define CHERRY_DATA_H

#include <jansson.h>

#include "base/err.h"
#include "formats/chat.h"
#include "formats/tokenizer.h"

typedef enum DataKind {
    DATA_AUTO = 0,
    DATA_TEXT,
    DATA_PROMPT_COMPLETION,
    DATA_CONVERSATIONAL,
    DATA_SEGMENTS,
    DATA_PROMPT_ONLY,
    DATA_PREFERENCE,
    DATA_ROLLOUT,
} DataKind;

/* "text" | "prompt-completion" | "conversational" | "segments" | "prompt-only" |
 * "preference" | "rollout" | "auto". */
int data_kind_parse(const char *name, DataKind *out, Error *e);
const char *data_kind_name(DataKind k);
/* Kind of one record from its fields: chosen+rejected -> preference; prompt+
 * completion -> prompt-completion (rollout when it also has reward/logprob/group);
 * segments; messages -> conversational; text; prompt alone -> prompt-only.
 * Returns DATA_AUTO when nothing matches. */
DataKind data_detect_kind(const json_t *record);

typedef enum Truncation { TRUNC_KEEP_END = 0, TRUNC_KEEP_START } Truncation;
int data_truncation_parse(const char *name, Truncation *out, Error *e); /* "keep_end" | "keep_start" */

typedef struct DataOptions {
    DataKind kind;         /* DATA_AUTO: decided by the first record, then enforced */
    ChatTemplate tpl;      /* for message lists; CHAT_AUTO: from tokenizer_config.json when the first
                            * message list is met (EX_USAGE if it cannot be recognised) */
    int max_length;        /* 0 = unlimited */
    int max_prompt_length; /* 0 = unlimited */
    Truncation truncation; /* default TRUNC_KEEP_END (TRL's DPO default for prompts) */
    int add_eos;           /* default 1 */
    int add_bos;           /* -1 (default) = the tokenizer's post-processor prefix; 0 never; 1 force BOS */
    int parse_special;     /* default 0: special-token strings in data are plain text */
    int skip_invalid;      /* default 0: first bad record is an error */
    int keep_record;       /* default 0: 1 = PromptExample/Example keep the parsed record */
} DataOptions;
void data_options_default(DataOptions *o);

/* One sequence with a per-token loss mask.  All arrays malloc'd, owned by the
 * Example; example_free releases them (and record).  mask[t] = 1 when token t bears
 * loss, i.e. is predicted from ids[0..t-1]; mask[0] is always 0. */
typedef struct Example {
    int *ids;
    unsigned char *mask;
    int n;
    int prompt_len; /* tokens before the first completion token: the prompt (with BOS/template) for kinds
                     * with a prompt, else the index of the first loss-bearing token */
    long line;      /* source line number */
    /* rollout kind only (else 0 / has_* = 0): */
    double reward;
    int has_reward;
    long group;
    int has_group;
    json_t *record; /* the parsed record when keep_record, else NULL (a reference we own) */
} Example;
void example_free(Example *ex);

/* A preference pair.  prompt ids include BOS/template; chosen/rejected are the
 * completion ids only (EOS appended when add_eos), each at least 1 token. */
typedef struct PrefExample {
    int *prompt, *chosen, *rejected;
    int n_prompt, n_chosen, n_rejected;
    double margin; /* "margin" field, 0 when absent */
    int has_margin;
    double ref_chosen_logp, ref_rejected_logp; /* "ref_chosen_logps"/"ref_rejected_logps" */
    int has_ref;
    char *id; /* "id" field as a string (numbers printed), NULL when absent; owned */
    long line;
} PrefExample;
void pref_example_free(PrefExample *p);

/* A prompt for generation (rollout, ppo).  ids = BOS/template + prompt + generation
 * prompt.  prompt is the original "prompt" (or "messages") value and record the whole
 * parsed record: both references owned by the PromptExample (json_decref in
 * prompt_example_free), always kept so output records can echo them. */
typedef struct PromptExample {
    int *ids;
    int n;
    json_t *prompt;
    json_t *record;
    long line;
} PromptExample;
void prompt_example_free(PromptExample *p);

typedef struct DataCounts {
    long records;   /* non-blank lines read */
    long examples;  /* examples returned */
    long truncated; /* returned but shortened to fit */
    long dropped;   /* prompt too long, or no loss-bearing token left */
    long skipped;   /* invalid records skipped (skip_invalid) */
} DataCounts;

typedef struct DataReader DataReader;

/* Opens PATH ("-" = stdin).  tok is borrowed (must outlive the reader).  With
 * kind == DATA_AUTO the kind is detected from the first record (an empty file is an
 * empty stream, kind stays DATA_AUTO).  Errors: EX_NOINPUT, EX_USAGE (template
 * cannot be resolved), EX_DATAERR. */
int data_open(DataReader **r, const char *path, Tokenizer *tok, const DataOptions *o, Error *e);
/* The same on a stream already open (not closed by data_close), whose first NPRE
 * bytes PRE the caller already read: a pipe cannot be opened a second time. */
int data_open_stream(DataReader **r, FILE *fp, const char *name, const void *pre, size_t npre, Tokenizer *tok,
                     const DataOptions *o, Error *e);
void data_close(DataReader *r);
DataKind data_reader_kind(const DataReader *r); /* after the first next: the detected kind */
/* Reads ahead to the first valid record (kept for the next data_next*) so that
 * *kind is known before choosing data_next / data_next_pref / data_next_prompt.
 * *kind is DATA_AUTO for an input without records.  Returns 0 or an error. */
int data_peek_kind(DataReader *r, DataKind *kind, Error *e);
const DataCounts *data_counts(const DataReader *r);
const char *data_reader_name(const DataReader *r); /* path or "<stdin>" */

#define DATA_END (-1)
/* Next example.  Returns 0 with *ex filled (caller owns it: example_free), DATA_END
 * at end of input, or a sysexits code with e set.  Dropped and skipped records are
 * consumed silently (see data_counts).
 *   data_next:        text, prompt-completion, conversational, segments, rollout
 *                     (and preference, giving prompt+chosen as an SFT example).
 *   data_next_pref:   preference only (others are EX_DATAERR naming the kind).
 *   data_next_prompt: prompt-only, and the prompt part of any kind with a prompt. */
int data_next(DataReader *r, Example *ex, Error *e);
int data_next_pref(DataReader *r, PrefExample *p, Error *e);
int data_next_prompt(DataReader *r, PromptExample *p, Error *e);

/* Convenience: reads a whole file of preference pairs into a malloc'd array (*out, *n;
 * free each with pref_example_free then free(*out)). */
int data_read_all_pref(const char *path, Tokenizer *tok, const DataOptions *o, PrefExample **out, int *n,
                       DataCounts *counts, Error *e);
/* The training-set form of the above: reads every one of the N_PATHS files (standard
 * input when N_PATHS is 0) and APPENDS their examples to *out / *n (realloc'd; *out
 * may start NULL with *n 0).  Unless QUIET, a file with truncated, dropped or skipped
 * records gets one line "PROG: PATH: N records, ..." on stderr. */
int data_read_files(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o, int quiet,
                    Example **out, int *n, Error *e);
int data_read_files_pref(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o, int quiet,
                         PrefExample **out, int *n, Error *e);
/* ... and the prompts of any kind with a prompt (data_next_prompt): ppo's and eval's. */
int data_read_files_prompts(const char *prog, char **paths, int n_paths, Tokenizer *tok, const DataOptions *o,
                            int quiet, PromptExample **out, int *n, Error *e);

/* ---- batches ------------------------------------------------------------------
 * All arrays are [B*T] row-major, malloc'd and owned by the Batch (batch_free).
 *   tokens[b*T+t]  token id; padding = pad_id
 *   targets[b*T+t] ids[t+1] of the same example when mask[t+1] == 1, else -1.  This
 *                  is what the LM head takes: position t predicts token t+1.  The
 *                  last token of each example and all padding have -1.
 *   pos[b*T+t]     position within its example (restarts at 0 for each packed
 *                  example); padding gets 0.
 *   seg[b*T+t]     example index within the row (0, 1, ... when packed, 0 otherwise);
 *                  padding gets BATCH_PAD_SEG, a segment of its own.  Attention lets
 *                  t see u iff u <= t and seg equal, so packed examples never see
 *                  each other (ops.h attention_forward).
 *   lengths[b]     real (non-pad) tokens in row b; rows are right-padded.
 * Per example placed (n_examples of them, in input order): ex_row, ex_start, ex_len
 * give its row, first column and length.  For reward models the score is read at
 * column ex_start + ex_len - 1. */
#define BATCH_PAD_SEG (-1)
typedef struct Batch {
    int B, T;
    int *tokens, *targets, *pos, *seg;
    int *lengths;
    int n_examples;
    int *ex_row, *ex_start, *ex_len;
    long n_targets; /* number of targets >= 0 (the loss normaliser for SFT) */
    int shared;     /* batch_pairs_shared: one pair per row, its prompt once (below) */
} Batch;
void batch_free(Batch *b);

/* Fills a batch from examples ex[0..n-1] in order and returns how many were used
 * (>= 1 when n >= 1), or -1 with e set.  Without packing: min(n, B) rows, one
 * example each; T = max_T when > 0 (an example longer than max_T is EX_DATAERR)
 * else the longest example.  With packing (max_T required): examples are appended
 * to the current row while they fit, then to the next row, until B rows are full or
 * the examples run out; an example longer than max_T is EX_DATAERR.  b->B is the
 * number of rows actually used.  *b must be zeroed or freed before. */
int batch_fill(Batch *b, const Example *const *ex, int n, int B, int max_T, int packing, int pad_id, Error *e);

/* Packing with the rows chosen by the caller: row r holds the next unit_len[r]
 * examples of ex, in order (positions restarting, segment ids 0, 1, ... within the
 * row); B = n_units, T = max_T (> 0).  For trainers that form rows once (next-fit
 * in data order) and then shuffle whole rows: batch_fill would re-pack a shuffled
 * run of units and could merge two units into one row.  A unit longer than max_T
 * is EX_DATAERR.  Returns 0 or an error; *b must be zeroed or freed before. */
int batch_fill_units(Batch *b, const Example *const *ex, const int *unit_len, int n_units, int max_T, int pad_id,
                     Error *e);

/* Preference batch for DPO / reward models: for p[0..n-1], row i is prompt+chosen
 * of pair i and row n+i is prompt+rejected (B = 2n), right-padded to the longest
 * (or max_T when > 0; longer is EX_DATAERR).  targets mark completion tokens only
 * (the first completion token is predicted at column n_prompt-1).  ex_* describe
 * the 2n sequences. Returns 0 or an error. */
int batch_pairs(Batch *b, const PrefExample *const *p, int n, int max_T, int pad_id, Error *e);
/* The same pairs with each prompt laid out once (prefix sharing, ops.h
 * seg_branch): row i holds pair i's prompt but its last token (segment 0), then
 * the chosen branch [last prompt token, chosen...] and the rejected branch [last
 * prompt token, rejected...] (segments seg_branch(0, 0) and (0, 1)), positions
 * continuing from the prompt in both, right-padded to the longest row (B = n).  The
 * targets are batch_pairs' (a branch's first token predicts its first completion
 * token); example i is the chosen branch of pair i and example n + i its rejected
 * branch (ex_row, ex_start, ex_len), so sequence sums over examples are batch_pairs'
 * row sums.  A row holds n_prompt + n_chosen + n_rejected + 1 tokens (with a
 * prompt) instead of 2 n_prompt + n_chosen + n_rejected in two. */
int batch_pairs_shared(Batch *b, const PrefExample *const *p, int n, int pad_id);
/* The length of pair p's row in batch_pairs_shared. */
int batch_pair_shared_len(const PrefExample *p);

#endif
