/* rank2pairs — ranking exports (Argilla 1.x/2.x, OASST, SHP, UltraFeedback,
 * summarize_from_feedback, hh-rlhf) to preference pairs JSONL.
 * The rules live in common/prefdata*.c; this file parses flags, loops over inputs and
 * prints the summary.  Semantics: man/man1/rank2pairs.1; output: cherry-pairs(5). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "data/prefdata.h"
#include "base/util.h"

static const char *prog = "rank2pairs";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [OPTION]... [FILE]...\n"
           "Turn ranking exports into preference pairs JSONL {prompt, chosen, rejected, id?, margin?}.\n"
           "FILEs are JSONL, one JSON array, or CSV with a header; none or - reads stdin.\n"
           "\n"
           "  -o, --out PATH          output (atomic; - = stdout, the default)\n"
           "      --format NAME       auto (default), argilla1, argilla1-hf, argilla2, argilla2-flat,\n"
           "                          oasst, shp, ultrafeedback, summarize, hh, pairs\n"
           "      --question NAME     ranking question (default: the only one present)\n"
           "      --prompt-field F    prompt field (default: prompt, else instruction, else input)\n"
           "      --pairs MODE        all | best-worst | best-rest (default) | adjacent\n"
           "      --aggregate HOW     mean (default) | borda | majority | each\n"
           "      --min-annotators N  skip records with fewer submitted annotators (default 1)\n"
           "      --min-agreement X   skip records whose pairwise order agreement is below X\n"
           "      --margin            write \"margin\" (rank, mean-rank or score difference)\n"
           "      --skip-invalid      skip malformed records and count them\n"
           "      --seed N            accepted for uniformity (the output is deterministic)\n"
           "  -q, --quiet             no summary on stderr\n"
           "  -h, --help              this help\n"
           "      --version           version\n",
           prog);
}

typedef struct Stats {
    long read, used, skipped[PD_SKIP_COUNT], pairs, identical, status_missing, agree_n;
    double agree_sum;
} Stats;

static void print_summary(const Stats *s, const char *question) {
    long skipped = 0;
    for (int i = 0; i < PD_SKIP_COUNT; i++) skipped += s->skipped[i];
    fprintf(stderr, "%s: %ld records read, %ld used, %ld skipped (", prog, s->read, s->used, skipped);
    int first = 1;
    for (int i = 0; i < PD_SKIP_COUNT; i++) {
        if (i > PD_SKIP_ALL_TIED && s->skipped[i] == 0) continue; /* the four basic reasons always show */
        fprintf(stderr, "%s%s: %ld", first ? "" : ", ", pd_skip_name((PdSkip)i), s->skipped[i]);
        first = 0;
    }
    fprintf(stderr, "), %ld pairs written", s->pairs);
    /* options with the same text teach nothing and only add label noise */
    fprintf(stderr, ", %ld with chosen == rejected not written\n", s->identical);
    if (question && s->read > 0 && s->skipped[PD_SKIP_NO_RESPONSE] == s->read)
        fprintf(stderr, "%s: no record has a response to question \"%s\"; check --question\n", prog, question);
    if (s->status_missing)
        fprintf(stderr,
                "%s: warning: %ld responses have no \"status\" and were counted as submitted; drafts among them "
                "cannot be told apart (export with the response status)\n",
                prog, s->status_missing);
    if (s->agree_n)
        fprintf(stderr, "%s: mean pairwise agreement %.4f over %ld records with 2+ annotators\n", prog,
                s->agree_sum / s->agree_n, s->agree_n);
    else
        fprintf(stderr, "%s: mean pairwise agreement: n/a (no record has 2+ annotators)\n", prog);
}

/* Flag values, in the order of the enums they name (prefdata.h). */
static const char *const PAIR_MODES[] = {"all", "best-worst", "best-rest", "adjacent", NULL};
static const char *const AGGREGATES[] = {"mean", "borda", "majority", "each", NULL};

typedef struct Flags {
    const char *out_path, *question, *prompt_field;
    PdShape shape;
    PdPairOptions po;
    int with_margin, skip_invalid, quiet;
} Flags;

static void parse_args(Flags *o, int argc, char **argv) {
    enum { O_FORMAT = 256, O_QUESTION, O_PROMPT, O_PAIRS, O_AGG, O_MINANN, O_MINAGR, O_MARGIN, O_SKIP, O_SEED, O_VER };
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"format", required_argument, 0, O_FORMAT},
                                             {"question", required_argument, 0, O_QUESTION},
                                             {"prompt-field", required_argument, 0, O_PROMPT},
                                             {"pairs", required_argument, 0, O_PAIRS},
                                             {"aggregate", required_argument, 0, O_AGG},
                                             {"min-annotators", required_argument, 0, O_MINANN},
                                             {"min-agreement", required_argument, 0, O_MINAGR},
                                             {"margin", no_argument, 0, O_MARGIN},
                                             {"skip-invalid", no_argument, 0, O_SKIP},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VER},
                                             {0, 0, 0, 0}};
    *o = (Flags){.out_path = "-", .shape = PD_SHAPE_AUTO, .po = {PD_PAIRS_BEST_REST, PD_AGG_MEAN, 1, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->out_path = optarg;
            break;
        case O_FORMAT:
            if (pd_shape_parse(optarg, &o->shape) != 0) cli_usage_error(prog, "--format: unknown format '%s'", optarg);
            break;
        case O_QUESTION:
            o->question = optarg;
            break;
        case O_PROMPT:
            o->prompt_field = optarg;
            break;
        case O_PAIRS:
            o->po.mode = (PdPairMode)cli_choice(prog, "--pairs", optarg, PAIR_MODES);
            break;
        case O_AGG:
            o->po.aggregate = (PdAggregate)cli_choice(prog, "--aggregate", optarg, AGGREGATES);
            break;
        case O_MINANN:
            o->po.min_annotators = cli_int(prog, "--min-annotators", optarg);
            if (o->po.min_annotators < 1) cli_usage_error(prog, "--min-annotators: must be at least 1");
            break;
        case O_MINAGR:
            o->po.min_agreement = cli_double(prog, "--min-agreement", optarg);
            if (o->po.min_agreement < 0 || o->po.min_agreement > 1)
                cli_usage_error(prog, "--min-agreement: must be between 0 and 1, got '%s'", optarg);
            break;
        case O_MARGIN:
            o->with_margin = 1;
            break;
        case O_SKIP:
            o->skip_invalid = 1;
            break;
        case O_SEED:
            (void)cli_u64(prog, "--seed", optarg);
            break;
        default:
            cli_common_option(prog, c, O_VER, usage, &o->quiet);
        }
    }
}

/* The pairs of the records parsed from one row (recs), written to fp; recs is cleared. */
static int write_pairs(const Flags *o, PdRecordList *recs, PdPairList *pairs, Stats *st, FILE *fp, Error *e) {
    int rc = 0;
    for (int k = 0; k < recs->n && !rc; k++) {
        double agree;
        PdSkip why = pd_record_pairs(&recs->r[k], &o->po, pairs, &agree);
        st->read++;
        st->status_missing += recs->r[k].status_missing;
        if (!isnan(agree)) {
            st->agree_sum += agree;
            st->agree_n++;
        }
        if (why != PD_USED) {
            st->skipped[why]++;
            continue;
        }
        st->used++;
        for (int j = 0; j < pairs->n && !rc; j++) {
            const PdRecord *rec = &recs->r[k];
            const char *ct = rec->option_text[pairs->p[j].chosen], *rt = rec->option_text[pairs->p[j].rejected];
            if (ct && rt && !strcmp(ct, rt)) {
                st->identical++;
                continue;
            }
            rc = pd_pair_write(fp, rec, &pairs->p[j], o->with_margin, e);
            st->pairs++;
        }
    }
    pd_list_clear(recs);
    return rc;
}

/* Every row of input PATH: parsed into records, the records into pairs on fp. */
static int read_input(const Flags *o, PdParser *parser, const char *path, PdRecordList *recs, PdPairList *pairs,
                      Stats *st, FILE *fp, Error *e) {
    PdInput in;
    int rc = pd_input_open(&in, path, e);
    if (rc) {
        pd_input_close(&in);
        return rc;
    }
    pd_parser_new_file(parser);
    int noted = 0;
    for (;;) {
        json_t *row = NULL;
        int r = pd_input_next(&in, &row, e);
        if (!r && !row) break;
        if (!r) {
            r = pd_parse_row(parser, row, in.where, recs, e);
            json_decref(row);
        }
        if (r) {
            if (r == EX_DATAERR && o->skip_invalid && !in.broken) {
                st->read++;
                st->skipped[PD_SKIP_INVALID]++;
                if (!o->quiet) fprintf(stderr, "%s: skipped: %s\n", prog, e->msg);
                continue;
            }
            rc = r;
            break;
        }
        if (parser->prompt_fallback && !noted && !o->quiet) {
            fprintf(stderr, "%s: %s: no \"prompt\" field; using \"%s\"\n", prog, in.name, parser->prompt_used);
            noted = 1;
        }
        if ((rc = write_pairs(o, recs, pairs, st, fp, e))) break;
    }
    if (!o->quiet && !rc && parser->shape != PD_SHAPE_AUTO) {
        const char *q = o->question ? o->question : parser->question_found;
        fprintf(stderr, "%s: %s: read as %s", prog, in.name, pd_shape_name(parser->shape));
        if (q) fprintf(stderr, ", question \"%s\"", q);
        if (parser->prompt_used) fprintf(stderr, ", prompt field \"%s\"", parser->prompt_used);
        fputc('\n', stderr);
    }
    pd_input_close(&in);
    return rc;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Flags o;
    parse_args(&o, argc, argv);
    atomic_install_signal_cleanup();
    Error e = {0};
    AtomicFile af;
    if (atomic_open(&af, o.out_path, &e)) err_die(prog, &e);

    PdParser parser;
    pd_parser_init(&parser, o.shape, o.question, o.prompt_field);
    PdRecordList recs = {0};
    PdPairList pairs = {0};
    Stats st = {0};
    int n_inputs = optind < argc ? argc - optind : 1;
    int rc = 0;
    for (int f = 0; f < n_inputs && !rc; f++)
        rc = read_input(&o, &parser, optind < argc ? argv[optind + f] : "-", &recs, &pairs, &st, af.fp, &e);
    pd_list_clear(&recs);
    free(recs.r);
    free(pairs.p);
    pd_parser_free(&parser);
    if (rc) {
        atomic_abort(&af);
        err_die(prog, &e);
    }
    if (st.read == 0) { /* `echo 'not json' | rank2pairs` read as a CSV header and nothing else */
        atomic_abort(&af);
        fprintf(stderr,
                "%s: no records read: expected JSONL, a JSON array, or CSV with a header row and records "
                "(--format names the shape)\n",
                prog);
        return EX_DATAERR;
    }
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    if (!o.quiet) print_summary(&st, o.question);
    return 0;
}
