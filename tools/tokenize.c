/* tokenize — text or JSONL in, token ids out; --decode for the way back; --count for
 * dataset statistics.  The tokenizer is common/formats/tokenizer.c, the record kinds and
 * templates common/data/data.c and chat.c; this file parses flags and formats output.
 * Semantics: man/man1/tokenize.1; record kinds: cherry-data(5). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "base/util.h"
#include "data/data.h"
#include "model/model.h"

static const char *prog = "tokenize";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: %s (-t FILE | -m DIR) [OPTION]... [FILE]...\n"
            "Encode text or JSONL records into token ids (one JSON array per line), decode ids back\n"
            "to text, or count tokens.  FILEs default to stdin (-).\n"
            "\n"
            "  -t, --tokenizer FILE    tokenizer.json (tokenizer_config.json beside it is read too)\n"
            "  -m, --model DIR         model directory holding tokenizer.json\n"
            "  -f, --format FMT        auto (default: JSONL if the input starts with '{'), text, jsonl\n"
            "      --kind KIND         JSONL record kind: auto (default), text, prompt-completion,\n"
            "                          conversational, segments, prompt-only, preference, rollout\n"
            "      --template NAME     chat template for message lists: auto (default), plain, hh,\n"
            "                          chatml, llama3\n"
            "      --parse-special     special-token strings in the input become their ids\n"
            "      --add-special       text input: add the tokenizer's BOS/EOS template\n"
            "      --max-length N      truncate examples to N tokens (--count: report how many exceed N)\n"
            "      --max-prompt-length N  truncate prompts to N tokens\n"
            "      --truncation MODE   keep_end (default) or keep_start\n"
            "      --no-eos            do not append EOS to completions\n"
            "      --with-mask         JSONL: write {\"ids\", \"mask\", \"prompt_len\"} objects\n"
            "  -d, --decode            input lines are JSON arrays of ids (or {\"ids\": [...]}); write text\n"
            "      --skip-special      --decode: leave out special tokens\n"
            "      --json              --decode: write each text as a JSON string\n"
            "  -c, --count             write one JSON object of statistics instead of ids\n"
            "  -o, --out PATH          output (atomic; - = stdout, the default)\n"
            "      --skip-invalid      skip invalid records and count them\n"
            "      --seed N, --threads N, --progress, --no-progress  accepted for uniformity (no effect:\n"
            "                          the output is deterministic and single-threaded)\n"
            "  -q, --quiet             no summary on stderr\n"
            "  -h, --help              this help\n"
            "      --version           version\n",
            prog);
}

typedef struct Opts {
    Tokenizer *tok;
    DataOptions d;
    int format; /* 0 auto, 1 text, 2 jsonl */
    int add_special, with_mask, decode, skip_special, json_out, count, quiet, max_length;
    const char *tok_path, *model_dir, *out_path;
} Opts;

typedef struct Stats {
    long examples, tokens, min, max, over, lines;
    DataCounts dc;
} Stats;

static void stats_add(Stats *s, long len, int max_length) {
    if (!s->examples || len < s->min) s->min = len;
    if (len > s->max) s->max = len;
    s->examples++;
    s->tokens += len;
    if (max_length > 0 && len > max_length) s->over++;
}

static int write_ids(FILE *out, const int *v, int n) {
    fputc('[', out);
    for (int i = 0; i < n; i++) fprintf(out, i ? ",%d" : "%d", v[i]);
    return fputs("]", out) == EOF;
}

static int write_mask(FILE *out, const unsigned char *m, int n) {
    fputc('[', out);
    for (int i = 0; i < n; i++) fprintf(out, i ? ",%d" : "%d", m[i]);
    return fputs("]", out) == EOF;
}

/* ---- text lines ---- */
static int run_text(Opts *o, FILE *in, const char *name, FILE *out, Stats *st, Error *e) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    IntVec ids = {0};
    while ((n = getline(&line, &cap, in)) >= 0) {
        st->lines++;
        if ((size_t)n > JSONL_MAX_LINE) {
            free(line);
            intvec_free(&ids);
            return err_set(e, EX_DATAERR, "%s:%ld: line longer than %zu bytes", name, st->lines, JSONL_MAX_LINE);
        }
        if (n && line[n - 1] == '\n') n--;
        ids.n = 0;
        if (o->add_special) tok_post_prefix(o->tok, &ids);
        tok_encode(o->tok, line, (size_t)n, o->d.parse_special, &ids);
        if (o->add_special) tok_post_suffix(o->tok, &ids);
        stats_add(st, ids.n, o->max_length);
        if (!o->count) {
            write_ids(out, ids.v, ids.n);
            fputc('\n', out);
        }
    }
    free(line);
    intvec_free(&ids);
    if (ferror(in)) return err_set(e, EX_IOERR, "%s: read error", name);
    return 0;
}

/* ---- JSONL records through the data layer ---- */
static int run_jsonl(Opts *o, FILE *in, const char *name, const unsigned char *pre, size_t npre, FILE *out, Stats *st,
                     Error *e) {
    DataOptions d = o->d;
    if (o->count) d.max_length = 0; /* measure full lengths; report how many exceed */
    DataReader *r;
    int rc = data_open_stream(&r, in, name, pre, npre, o->tok, &d, e);
    if (rc) return rc;
    DataKind kind;
    if ((rc = data_peek_kind(r, &kind, e))) {
        data_close(r);
        return rc;
    }
    while (!rc) {
        if (kind == DATA_PREFERENCE) {
            PrefExample p;
            if ((rc = data_next_pref(r, &p, e))) break;
            long len = p.n_prompt + (p.n_chosen > p.n_rejected ? p.n_chosen : p.n_rejected);
            stats_add(st, len, o->max_length);
            if (!o->count) {
                fputs("{\"prompt\":", out);
                write_ids(out, p.prompt, p.n_prompt);
                fputs(",\"chosen\":", out);
                write_ids(out, p.chosen, p.n_chosen);
                fputs(",\"rejected\":", out);
                write_ids(out, p.rejected, p.n_rejected);
                fputs("}\n", out);
            }
            pref_example_free(&p);
        } else if (kind == DATA_PROMPT_ONLY) {
            PromptExample p;
            if ((rc = data_next_prompt(r, &p, e))) break;
            stats_add(st, p.n, o->max_length);
            if (!o->count) {
                write_ids(out, p.ids, p.n);
                fputc('\n', out);
            }
            prompt_example_free(&p);
        } else {
            Example x;
            if ((rc = data_next(r, &x, e))) break;
            stats_add(st, x.n, o->max_length);
            if (!o->count && o->with_mask) {
                fputs("{\"ids\":", out);
                write_ids(out, x.ids, x.n);
                fputs(",\"mask\":", out);
                write_mask(out, x.mask, x.n);
                fprintf(out, ",\"prompt_len\":%d}\n", x.prompt_len);
            } else if (!o->count) {
                write_ids(out, x.ids, x.n);
                fputc('\n', out);
            }
            example_free(&x);
        }
    }
    const DataCounts *c = data_counts(r);
    st->dc.records += c->records;
    st->dc.truncated += c->truncated;
    st->dc.dropped += c->dropped;
    st->dc.skipped += c->skipped;
    data_close(r);
    return rc == DATA_END ? 0 : rc;
}

/* ---- decoding ---- */
static int run_decode(Opts *o, FILE *in, const char *name, FILE *out, Stats *st, Error *e) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    IntVec ids = {0};
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        json_error_t je;
        json_t *v = json_loadb(line, (size_t)n, 0, &je);
        json_t *arr = json_is_object(v) ? json_object_get(v, "ids") : v;
        if (!json_is_array(arr)) {
            rc = err_set(e, EX_DATAERR, "%s:%ld: expected a JSON array of ids or {\"ids\": [...]}%s%s", name, lineno,
                         v ? "" : ": ", v ? "" : je.text);
        }
        ids.n = 0;
        for (size_t i = 0; !rc && i < json_array_size(arr); i++) {
            const json_t *x = json_array_get(arr, i);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= tok_vocab_size(o->tok))
                rc = err_set(e, EX_DATAERR, "%s:%ld: element %zu is not a token id in [0, %d)", name, lineno, i,
                             tok_vocab_size(o->tok));
            else
                intvec_push(&ids, (int)json_integer_value(x));
        }
        if (v) json_decref(v);
        if (rc) {
            if (rc == EX_DATAERR && o->d.skip_invalid) {
                st->dc.skipped++;
                rc = 0;
            }
            continue;
        }
        char *text;
        size_t len;
        if ((rc = tok_decode(o->tok, ids.v, ids.n, o->skip_special, &text, &len, e))) break;
        stats_add(st, ids.n, o->max_length);
        if (o->json_out) {
            json_t *s = json_stringn(text, len);
            json_dumpf(s, out, JSON_ENCODE_ANY);
            json_decref(s);
        } else {
            fwrite(text, 1, len, out);
        }
        fputc('\n', out);
        free(text);
    }
    free(line);
    intvec_free(&ids);
    if (!rc && ferror(in)) rc = err_set(e, EX_IOERR, "%s: read error", name);
    return rc;
}

/* Decides text vs records for one input: by --format, by extension, else by its first
 * bytes ('{' = JSONL, "PAR1" = Parquet).  The bytes looked at are read back, never
 * re-opened, so a pipe or FIFO loses nothing. */
static int is_records(const Opts *o, const char *path, FILE *in, unsigned char *pre, size_t *npre) {
    *npre = 0;
    if (o->format) return o->format == 2;
    size_t l = strlen(path);
    if ((l > 6 && !strcmp(path + l - 6, ".jsonl")) || (l > 5 && !strcmp(path + l - 5, ".json")) ||
        (l > 8 && !strcmp(path + l - 8, ".parquet")))
        return 1;
    int c;
    while (*npre < 4 && (c = getc(in)) != EOF) {
        pre[(*npre)++] = (unsigned char)c;
        if (*npre == 1 && c != 'P') break;
    }
    return (*npre >= 1 && pre[0] == '{') || (*npre == 4 && !memcmp(pre, "PAR1", 4));
}

static int run_one(Opts *o, const char *path, FILE *out, Stats *st, Error *e) {
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "<stdin>" : path;
    FILE *in = is_stdin ? stdin : input_fopen(path, e);
    if (!in) return e->code;
    int rc;
    unsigned char pre[4];
    size_t npre = 0;
    if (o->decode) {
        rc = run_decode(o, in, name, out, st, e);
    } else if (is_records(o, path, in, pre, &npre)) {
        rc = run_jsonl(o, in, name, pre, npre, out, st, e);
    } else {
        FILE *t = npre ? input_unread(in, pre, npre) : in;
        rc = run_text(o, t, name, out, st, e);
        if (t != in) fclose(t);
    }
    if (!is_stdin) fclose(in);
    return rc;
}

enum {
    O_KIND = 256,
    O_TPL,
    O_PSPEC,
    O_ADDSPEC,
    O_MAXLEN,
    O_MAXPL,
    O_TRUNC,
    O_NOEOS,
    O_MASK,
    O_SKIPSP,
    O_JSON,
    O_SKIP,
    O_VER,
    O_SEED,
    O_THREADS,
    O_PROGRESS,
    O_NOPROGRESS
};

/* The flags of the records (data.h DataOptions); returns 1 when C is one of them. */
static int data_flag(Opts *o, int c, const char *arg) {
    Error e = {0};
    switch (c) {
    case O_KIND:
        if (data_kind_parse(arg, &o->d.kind, &e)) cli_usage_error(prog, "--kind: %s", e.msg);
        return 1;
    case O_TPL:
        if (chat_template_parse(arg, &o->d.tpl, &e)) cli_usage_error(prog, "--template: %s", e.msg);
        return 1;
    case O_PSPEC:
        o->d.parse_special = 1;
        return 1;
    case O_MAXLEN:
        o->max_length = o->d.max_length = cli_int(prog, "--max-length", arg);
        if (o->max_length < 1) cli_usage_error(prog, "--max-length: must be at least 1");
        return 1;
    case O_MAXPL:
        o->d.max_prompt_length = cli_int(prog, "--max-prompt-length", arg);
        if (o->d.max_prompt_length < 1) cli_usage_error(prog, "--max-prompt-length: must be at least 1");
        return 1;
    case O_TRUNC:
        if (data_truncation_parse(arg, &o->d.truncation, &e)) cli_usage_error(prog, "--truncation: %s", e.msg);
        return 1;
    case O_NOEOS:
        o->d.add_eos = 0;
        return 1;
    case O_SKIP:
        o->d.skip_invalid = 1;
        return 1;
    }
    return 0;
}

static void parse_args(Opts *o, int argc, char **argv) {
    static const struct option longopts[] = {{"tokenizer", required_argument, 0, 't'},
                                             {"model", required_argument, 0, 'm'},
                                             {"format", required_argument, 0, 'f'},
                                             {"kind", required_argument, 0, O_KIND},
                                             {"template", required_argument, 0, O_TPL},
                                             {"parse-special", no_argument, 0, O_PSPEC},
                                             {"add-special", no_argument, 0, O_ADDSPEC},
                                             {"max-length", required_argument, 0, O_MAXLEN},
                                             {"max-prompt-length", required_argument, 0, O_MAXPL},
                                             {"truncation", required_argument, 0, O_TRUNC},
                                             {"no-eos", no_argument, 0, O_NOEOS},
                                             {"with-mask", no_argument, 0, O_MASK},
                                             {"decode", no_argument, 0, 'd'},
                                             {"skip-special", no_argument, 0, O_SKIPSP},
                                             {"json", no_argument, 0, O_JSON},
                                             {"count", no_argument, 0, 'c'},
                                             {"out", required_argument, 0, 'o'},
                                             {"skip-invalid", no_argument, 0, O_SKIP},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VER},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"progress", no_argument, 0, O_PROGRESS},
                                             {"no-progress", no_argument, 0, O_NOPROGRESS},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    data_options_default(&o->d);
    o->out_path = "-";
    int c;
    while ((c = getopt_long(argc, argv, "t:m:f:dco:qh", longopts, NULL)) != -1) {
        if (data_flag(o, c, optarg)) continue;
        switch (c) {
        case 't':
            o->tok_path = optarg;
            break;
        case 'm':
            o->model_dir = optarg;
            break;
        case 'f':
            o->format = cli_choice(prog, "--format", optarg, (const char *const[]){"auto", "text", "jsonl", NULL});
            break;
        case O_ADDSPEC:
            o->add_special = 1;
            break;
        case O_MASK:
            o->with_mask = 1;
            break;
        case 'd':
            o->decode = 1;
            break;
        case O_SKIPSP:
            o->skip_special = 1;
            break;
        case O_JSON:
            o->json_out = 1;
            break;
        case 'c':
            o->count = 1;
            break;
        case 'o':
            o->out_path = optarg;
            break;
        case O_SEED:
            (void)cli_u64(prog, "--seed", optarg);
            break;
        case O_THREADS:
            (void)cli_int(prog, "--threads", optarg);
            break;
        case O_PROGRESS:
        case O_NOPROGRESS:
            break;
        default:
            cli_common_option(prog, c, O_VER, usage, &o->quiet);
        }
    }
    if (!o->tok_path == !o->model_dir)
        cli_usage_error(prog, "give exactly one of -t/--tokenizer FILE and -m/--model DIR");
    if (o->decode && o->count) cli_usage_error(prog, "--decode and --count do not go together");
}

/* The --count summary: one JSON line. */
static int write_count(const Opts *o, const Stats *st, FILE *fp, Error *e) {
    json_t *j =
        json_pack("{s:I, s:I, s:I, s:f, s:I}", "examples", (json_int_t)st->examples, "tokens", (json_int_t)st->tokens,
                  "min_tokens", (json_int_t)st->min, "mean_tokens",
                  st->examples ? (double)st->tokens / (double)st->examples : 0.0, "max_tokens", (json_int_t)st->max);
    if (o->max_length > 0) {
        json_object_set_new(j, "max_length", json_integer(o->max_length));
        json_object_set_new(j, "over_max_length", json_integer(st->over));
    }
    json_object_set_new(j, "dropped", json_integer(st->dc.dropped));
    json_object_set_new(j, "skipped", json_integer(st->dc.skipped));
    int rc = jsonl_write(fp, j, e);
    json_decref(j);
    return rc;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Opts o;
    parse_args(&o, argc, argv);
    Error e = {0};
    int rc = o.tok_path ? tok_load(&o.tok, o.tok_path, &e) : model_tokenizer_load(&o.tok, o.model_dir, &e);
    if (rc) err_die(prog, &e);
    atomic_install_signal_cleanup();
    AtomicFile af;
    if ((rc = atomic_open(&af, o.out_path, &e))) err_die(prog, &e);
    Stats st;
    memset(&st, 0, sizeof st);
    const char *stdin_only[] = {"-"};
    const char **inputs = optind < argc ? (const char **)argv + optind : stdin_only;
    int n_inputs = optind < argc ? argc - optind : 1;
    for (int i = 0; i < n_inputs && !rc; i++) rc = run_one(&o, inputs[i], af.fp, &st, &e);
    if (!rc && o.count) rc = write_count(&o, &st, af.fp, &e);
    if (rc) {
        atomic_abort(&af);
        tok_free(o.tok);
        err_die(prog, &e);
    }
    if ((rc = atomic_commit(&af, &e))) {
        tok_free(o.tok);
        err_die(prog, &e);
    }
    if (!o.quiet && !o.count && (st.dc.skipped || st.dc.dropped || st.dc.truncated))
        fprintf(stderr,
                "%s: %ld examples, %ld truncated, %ld dropped (prompt too long or nothing to train on), %ld "
                "skipped (invalid)\n",
                prog, st.examples, st.dc.truncated, st.dc.dropped, st.dc.skipped);
    tok_free(o.tok);
    return 0;
}
