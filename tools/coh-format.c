/* coh-format — preference pairs to Chain-of-Hindsight training data (segments JSONL).
 * Liu et al. 2023 (arXiv:2302.02676): each example shows the prompt and both answers,
 * each after a feedback phrase; the loss is on the answers and their end marker only.
 * The layout is coh_segments (common/data/coh.c); this file parses flags and loops. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "data/coh.h"
#include "base/util.h"

static const char *prog = "coh-format";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [OPTION]... [FILE]...\n"
           "Turn preference pairs JSONL into Chain-of-Hindsight segments JSONL for sft.\n"
           "\n"
           "  -o, --out PATH            output (atomic; - = stdout, the default)\n"
           "      --order ORDER         pn (default: preferred answer first) | np | random | both\n"
           "      --template T          helpful (default) | good-bad | FILE (JSON list of\n"
           "                            [positive, negative] phrase pairs, one drawn per example)\n"
           "      --user-prefix S       before the prompt and each user turn (default \"User: \")\n"
           "      --assistant-prefix S  before earlier assistant turns (default \"Assistant: \")\n"
           "      --eos S               end marker after each answer, trained (default \"\\n\")\n"
           "      --seed N              for --order random and several template phrases (default 0)\n"
           "      --inference-prefix    print the text to sample from ({prompt} = the prompt) and exit\n"
           "      --skip-invalid        skip malformed pairs and count them\n"
           "  -q, --quiet               no summary on stderr\n"
           "  -h, --help                this help\n"
           "      --version             version\n",
           prog);
}

enum { ORDER_PN, ORDER_NP, ORDER_RANDOM, ORDER_BOTH };
static const char *const ORDERS[] = {"pn", "np", "random", "both", NULL}; /* --order values, in enum order */

typedef struct Flags {
    const char *out_path, *template_name, *eos;
    PairRender render;
    uint64_t seed;
    int order, inference, skip_invalid, quiet;
} Flags;

typedef struct Counts {
    long read, written, equal, invalid;
} Counts;

static void parse_args(Flags *o, int argc, char **argv) {
    enum { O_ORDER = 256, O_TEMPLATE, O_USER, O_ASSIST, O_EOS, O_SEED, O_INFER, O_SKIP, O_VER };
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"order", required_argument, 0, O_ORDER},
                                             {"template", required_argument, 0, O_TEMPLATE},
                                             {"user-prefix", required_argument, 0, O_USER},
                                             {"assistant-prefix", required_argument, 0, O_ASSIST},
                                             {"eos", required_argument, 0, O_EOS},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"inference-prefix", no_argument, 0, O_INFER},
                                             {"skip-invalid", no_argument, 0, O_SKIP},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VER},
                                             {0, 0, 0, 0}};
    *o = (Flags){.out_path = "-",
                 .template_name = "helpful",
                 .eos = "\n",
                 .render = {"User: ", "Assistant: "},
                 .order = ORDER_PN};
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o->out_path = optarg;
            break;
        case O_ORDER:
            o->order = cli_choice(prog, "--order", optarg, ORDERS);
            break;
        case O_TEMPLATE:
            o->template_name = optarg;
            break;
        case O_USER:
            o->render.user_prefix = optarg;
            break;
        case O_ASSIST:
            o->render.assistant_prefix = optarg;
            break;
        case O_EOS:
            o->eos = optarg;
            break;
        case O_SEED:
            o->seed = cli_u64(prog, "--seed", optarg);
            break;
        case O_INFER:
            o->inference = 1;
            break;
        case O_SKIP:
            o->skip_invalid = 1;
            break;
        default:
            cli_common_option(prog, c, O_VER, usage, &o->quiet);
        }
    }
}

/* The examples of one pair: one per order pass, the feedback phrases drawn from the
 * template (a pair whose answers are equal teaches nothing and is counted). */
static int write_pair(const Flags *o, const CohTemplate *tpl, Rng *rng, const PairText *pt, FILE *fp, Counts *n,
                      Error *e) {
    n->read++;
    if (strcmp(pt->chosen, pt->rejected) == 0) {
        n->equal++;
        return 0;
    }
    int k = tpl->n > 1 ? (int)rng_below(rng, (uint64_t)tpl->n) : 0, rc = 0;
    int first = o->order == ORDER_NP ? 1 : o->order == ORDER_RANDOM ? (int)rng_below(rng, 2) : 0;
    for (int pass = 0; pass < (o->order == ORDER_BOTH ? 2 : 1) && !rc; pass++) {
        json_t *ex = coh_segments(pt, tpl->positive[k], tpl->negative[k], first ^ pass, o->eos);
        rc = jsonl_write(fp, ex, e);
        json_decref(ex);
        n->written++;
    }
    return rc;
}

/* Every pair of input PATH. */
static int read_input(const Flags *o, const CohTemplate *tpl, Rng *rng, const char *path, FILE *fp, Counts *n,
                      Error *e) {
    JsonlReader rd;
    int rc = jsonl_open(&rd, path, e);
    if (rc) return rc;
    for (;;) {
        json_t *rec = NULL;
        int r = jsonl_next(&rd, &rec, e);
        if (!r && !rec) break;
        PairText pt = {0};
        if (!r) {
            char where[600];
            snprintf(where, sizeof where, "%s:%ld", rd.name, rd.line);
            r = coh_pair_texts(rec, &o->render, &pt, where, e);
            json_decref(rec);
        }
        if (r) {
            if (r == EX_DATAERR && o->skip_invalid) {
                n->invalid++;
                if (!o->quiet) fprintf(stderr, "%s: skipped: %s\n", prog, e->msg);
                continue;
            }
            rc = r;
            break;
        }
        rc = write_pair(o, tpl, rng, &pt, fp, n, e);
        coh_pair_text_free(&pt);
        if (rc) break;
    }
    jsonl_close(&rd);
    return rc;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Flags o;
    parse_args(&o, argc, argv);
    Error e = {0};
    CohTemplate tpl;
    if (coh_template_load(&tpl, o.template_name, &e)) err_die(prog, &e);
    if (o.inference) {
        char *s = coh_inference_prefix(o.render.user_prefix, tpl.positive[0]);
        printf("%s\n", s);
        free(s);
        coh_template_free(&tpl);
        return 0;
    }
    atomic_install_signal_cleanup();
    AtomicFile af;
    if (atomic_open(&af, o.out_path, &e)) err_die(prog, &e);
    Rng rng;
    rng_seed(&rng, o.seed);
    Counts n = {0};
    int n_inputs = optind < argc ? argc - optind : 1, rc = 0;
    for (int f = 0; f < n_inputs && !rc; f++)
        rc = read_input(&o, &tpl, &rng, optind < argc ? argv[optind + f] : "-", af.fp, &n, &e);
    coh_template_free(&tpl);
    if (rc) {
        atomic_abort(&af);
        err_die(prog, &e);
    }
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    if (!o.quiet) {
        fprintf(stderr, "%s: %ld pairs read, %ld examples written, %ld skipped (equal chosen and rejected: %ld", prog,
                n.read + n.invalid, n.written, n.equal + n.invalid, n.equal);
        if (o.skip_invalid) fprintf(stderr, ", invalid: %ld", n.invalid);
        fprintf(stderr, ")\n");
    }
    return 0;
}
