/* prefdata.h — human preference data: rankings in, preference pairs out.
 *
 * Three stages, each its own file:
 *   prefdata_input.c    containers: JSONL (streamed), one JSON array or one
 *                       pretty-printed JSON object / {"items": [...]} (loaded whole),
 *                       CSV with a header row (streamed; nested cells hold JSON) ->
 *                       one JSON object per row, with a "FILE:LINE" / "FILE:[i]" label.
 *   prefdata_argilla.c  Argilla 1.x and 2.x export shapes -> PdRecord
 *   prefdata_sources.c  OASST trees, SHP, UltraFeedback, summarize_from_feedback,
 *                       hh-rlhf, plain pairs -> PdRecord
 *   prefdata.c          shape detection, aggregation of annotators, agreement, pair
 *                       strategies, writing pairs JSONL (man5 cherry-pairs).
 * A PdRecord is one prompt with N options and the rankings annotators gave them; every
 * source is normalised to it, so the pair rules are written once.
 * Not for: reading pairs back for training (data.h data_next_pref) or tokenization. */
#ifndef CHERRY_PREFDATA_H
#define CHERRY_PREFDATA_H

#include <jansson.h>
#include <stdio.h>

#include "base/csvread.h"
#include "base/err.h"
#include "base/jsonl.h"

/* ---- record shapes ---------------------------------------------------------- */
typedef enum PdShape {
    PD_SHAPE_AUTO = 0,
    PD_SHAPE_ARGILLA1,      /* 1.x SDK/API records: fields, responses[].values.<q>.value */
    PD_SHAPE_ARGILLA1_HF,   /* 1.x HF-datasets rows: <q> = [{user_id, value, status}] */
    PD_SHAPE_ARGILLA2,      /* 2.x nested: responses.<q> = [{value, user_id, status?}] */
    PD_SHAPE_ARGILLA2_FLAT, /* 2.x flat: <q>.responses, <q>.responses.users, .status */
    PD_SHAPE_OASST,         /* OpenAssistant message trees */
    PD_SHAPE_SHP,           /* Stanford Human Preferences */
    PD_SHAPE_ULTRAFEEDBACK, /* chosen/rejected message lists with scores */
    PD_SHAPE_SUMMARIZE,     /* openai/summarize_from_feedback comparisons */
    PD_SHAPE_HH,            /* Anthropic hh-rlhf: chosen/rejected with implicit prompt */
    PD_SHAPE_PAIRS,         /* already prompt/chosen/rejected */
    PD_SHAPE_COUNT
} PdShape;

const char *pd_shape_name(PdShape s);
/* Parses a --format name ("argilla1", "argilla1-hf", "argilla2", "argilla2-flat",
 * "oasst", "shp", "ultrafeedback", "summarize", "hh", "pairs", "auto"). */
int pd_shape_parse(const char *name, PdShape *out);
/* Guesses the shape from one row; returns PD_SHAPE_AUTO when nothing matches. */
PdShape pd_shape_detect(const json_t *row);

/* ---- normalised records ------------------------------------------------------ */
typedef enum PdStatus { PD_SUBMITTED, PD_DRAFT, PD_DISCARDED } PdStatus;

typedef struct PdAnnotation {
    char *user; /* NULL when the export has none */
    PdStatus status;
    double *rank; /* [n_options]: lower is better, equal = tie, 0 = not ranked */
} PdAnnotation;

typedef struct PdRecord {
    char *id;       /* NULL when the source has none */
    json_t *prompt; /* string, or a message list [{role, content}] (owned ref) */
    int n_options;
    char **option_name; /* as the annotators named them */
    char **option_text; /* the text the option stands for */
    int n_ann;
    PdAnnotation *ann;
    int had_responses;  /* the question had any response (submitted or not) */
    double margin;      /* NAN, or the margin of the record's one pair as the source
                           states it (UltraFeedback: score_chosen - score_rejected) */
    int status_missing; /* 2.x responses without a status, taken as submitted */
} PdRecord;

void pd_record_init(PdRecord *r); /* zeroes, margin = NAN */
void pd_record_free(PdRecord *r);
/* Returns the index of NAME among the options, adding it when absent. */
int pd_record_option(PdRecord *r, const char *name);
/* Appends an annotation with all ranks 0 and returns it. */
PdAnnotation *pd_record_add_annotation(PdRecord *r, const char *user, PdStatus status);

typedef struct PdRecordList {
    PdRecord *r;
    int n, cap;
} PdRecordList;
PdRecord *pd_list_push(PdRecordList *l);
void pd_list_clear(PdRecordList *l);

/* ---- input containers ---------------------------------------------------------- */
typedef enum PdContainer { PD_CONT_JSONL, PD_CONT_ARRAY, PD_CONT_CSV } PdContainer;

typedef struct PdInput {
    PdContainer kind;
    const char *name;
    FILE *fp;
    FILE *raw; /* when fp reads back peeked bytes (input_unread): the file under it */
    int is_stdin;
    JsonlReader jl; /* PD_CONT_JSONL */
    json_t *array;  /* PD_CONT_ARRAY */
    size_t index;
    CsvReader csv; /* PD_CONT_CSV */
    char **header;
    size_t n_header;
    char where[512]; /* "FILE:LINE" or "FILE:[i]" of the row last returned */
    int broken;      /* an error that ends this input (I/O, CSV syntax) */
} PdInput;

/* Opens PATH ("-" or NULL = stdin) and decides the container from the extension
 * (.csv) or the first bytes ("PAR1" = Parquet, '[' = JSON array, '{' = JSONL, else
 * CSV). */
int pd_input_open(PdInput *in, const char *path, Error *e);
/* Next row as a JSON object (caller decrefs); *row == NULL at the end.  A bad row
 * returns EX_DATAERR and the input stays usable (for --skip-invalid), except for
 * errors that lose the position (a JSON array that does not parse). */
int pd_input_next(PdInput *in, json_t **row, Error *e);
void pd_input_close(PdInput *in);
/* Turns one CSV cell into JSON: cells starting with '[' or '{' must be JSON (a
 * Python repr is an error that says to export JSON); anything else is a string. */
int pd_csv_cell(const char *cell, size_t len, json_t **out, const char *where, const char *column, Error *e);

/* ---- parsing rows into records -------------------------------------------------- */
typedef struct PdParser {
    PdShape forced;           /* --format, or PD_SHAPE_AUTO */
    const char *question;     /* --question, or NULL = the only ranking question */
    const char *prompt_field; /* --prompt-field, or NULL = prompt|instruction|input */
    /* per file */
    PdShape shape;
    char *question_found;
    const char *prompt_used; /* field the prompt came from (for the summary) */
    int prompt_fallback;     /* the prompt came from a fallback field */
} PdParser;

void pd_parser_init(PdParser *p, PdShape forced, const char *question, const char *prompt_field);
/* Forgets what was detected for the previous file (shape, question). */
void pd_parser_new_file(PdParser *p);
void pd_parser_free(PdParser *p);
/* Parses one row into zero or more records appended to OUT (OASST trees give one
 * record per ranked set of siblings).  WHERE labels error messages. */
int pd_parse_row(PdParser *p, const json_t *row, const char *where, PdRecordList *out, Error *e);

/* Shape readers (prefdata_argilla.c, prefdata_sources.c). */
int pd_parse_argilla(PdParser *p, PdShape shape, const json_t *row, const char *where, PdRecordList *out, Error *e);
int pd_parse_source(PdParser *p, PdShape shape, const json_t *row, const char *where, PdRecordList *out, Error *e);
/* The prompt of an Argilla-like row from FIELDS (--prompt-field, else prompt,
 * instruction, input).  Returns a new reference. */
int pd_prompt_from_fields(PdParser *p, const json_t *fields, const char *where, json_t **out, Error *e);

/* hh-rlhf implicit prompt: the length of the longest common prefix of A and B cut
 * back to end just after the last "\n\nAssistant:" in it; 0 when there is none. */
size_t pd_hh_prompt_length(const char *a, const char *b);

/* ---- from rankings to pairs ------------------------------------------------------- */
typedef enum PdPairMode { PD_PAIRS_ALL, PD_PAIRS_BEST_WORST, PD_PAIRS_BEST_REST, PD_PAIRS_ADJACENT } PdPairMode;
typedef enum PdAggregate { PD_AGG_MEAN, PD_AGG_BORDA, PD_AGG_MAJORITY, PD_AGG_EACH } PdAggregate;

typedef enum PdSkip {
    PD_USED = -1,
    PD_SKIP_NO_RESPONSE = 0, /* the question has no response at all */
    PD_SKIP_NOT_SUBMITTED,   /* only draft or discarded responses */
    PD_SKIP_ONE_OPTION,      /* fewer than two options ranked */
    PD_SKIP_ALL_TIED,        /* every ranked option tied: no pair */
    PD_SKIP_FEW_ANNOTATORS,  /* fewer submitted annotators than --min-annotators */
    PD_SKIP_LOW_AGREEMENT,   /* agreement below --min-agreement */
    PD_SKIP_INVALID,         /* malformed, skipped under --skip-invalid */
    PD_SKIP_COUNT
} PdSkip;
const char *pd_skip_name(PdSkip s);

typedef struct PdPairOptions {
    PdPairMode mode;
    PdAggregate aggregate;
    int min_annotators;   /* default 1 */
    double min_agreement; /* default 0 (off) */
} PdPairOptions;

typedef struct PdPair {
    int chosen, rejected; /* option indices */
    double margin;        /* rank (mean-rank, Borda, Copeland) difference, > 0 */
    int annotator;        /* --aggregate each: whose ranking; else -1 */
} PdPair;

typedef struct PdPairList {
    PdPair *p;
    int n, cap;
} PdPairList;

/* Pairwise order agreement of the submitted annotators of R: for every two
 * annotators, the fraction of option pairs both ranked that they order the same way
 * (a before b, b before a, or tied), averaged over annotator pairs.  Returns NAN
 * when fewer than two annotators share an option pair.  Without ties it equals
 * (1 + Kendall's tau) / 2. */
double pd_agreement(const PdRecord *r);

/* Forms the pairs of one record into OUT (cleared first).  Returns PD_USED or why
 * the record gives none.  *agreement receives pd_agreement (NAN if undefined). */
PdSkip pd_record_pairs(const PdRecord *r, const PdPairOptions *o, PdPairList *out, double *agreement);

/* Writes {"prompt", "chosen", "rejected", "id"?, "margin"?} as one line.  When the
 * prompt is a message list, chosen and rejected are written as one-message
 * assistant lists (TRL's conversational preference format). */
int pd_pair_write(FILE *fp, const PdRecord *r, const PdPair *p, int with_margin, Error *e);

/* ---- writing Argilla 2.x records (for simulated annotators, rollout --format argilla) */
/* Builds a 2.x nested record: {"id", "status", "fields": {"prompt", OPTION_NAMES...},
 * "responses": {QUESTION: [{"value": [options best first], "user_id", "status":
 * "submitted"}]}} from options ranked by ORDER (indices best first). */
json_t *pd_argilla2_record(const char *id, const char *prompt, int n_options, char *const *option_names,
                           char *const *option_texts, const char *question, const char *user_id, const int *order);

#endif
