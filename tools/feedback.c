/* feedback — serve's interaction and feedback logs to training data: KTO records,
 * preference pairs, and Argilla 2.x records for people to review (man 1 feedback).
 * The joins and rules are common/serve/fbdata.c; this file parses flags, writes the
 * chosen outputs atomically and prints a summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "serve/fbdata.h"

static const char *prog = "feedback";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [OPTION]... LOG...\n"
           "Turn serve's interaction and feedback logs into KTO records, preference pairs and\n"
           "Argilla 2.x records (at least one of --kto, --pairs, --argilla).\n"
           "\n"
           "      --kto FILE            {prompt, completion, label} per thumbs (up = true)\n"
           "      --pairs FILE          {prompt, chosen, rejected, id} from rankings, picks and\n"
           "                            thumbs-up x thumbs-down answers to the same prompt\n"
           "      --argilla FILE        one Argilla 2.x record per response with 2+ answers\n"
           "      --ranking-pairs MODE  pairs from a ranking: all (default) | best-worst | best-rest | adjacent\n"
           "      --aggregate HOW       several users' rankings: mean (default) | borda | majority | each\n"
           "      --max-thumb-pairs N   thumbs pairs per prompt at most (default 8; 0 = none)\n"
           "      --model-version V     only interactions of model version V (repeatable)\n"
           "      --question NAME       Argilla ranking question (default ranking)\n"
           "  -q, --quiet               no summary on stderr\n"
           "  -h, --help                this help\n"
           "      --version             version\n",
           prog);
}

static const char *const PAIR_MODES[] = {"all", "best-worst", "best-rest", "adjacent", NULL};
static const char *const AGGREGATES[] = {"mean", "borda", "majority", "each", NULL};

static int write_out(const char *path, FbLogs *L, int what, const PdPairOptions *po, int max_thumb,
                     const char *question, Error *e) {
    AtomicFile af;
    if (atomic_open(&af, path, e)) return e->code;
    int rc = what == 0   ? fb_write_kto(L, af.fp, e)
             : what == 1 ? fb_write_pairs(L, af.fp, po, max_thumb, e)
                         : fb_write_argilla(L, af.fp, question, e);
    if (rc) {
        atomic_abort(&af);
        return rc;
    }
    return atomic_commit(&af, e);
}

int main(int argc, char **argv) {
    cli_init(prog);
    enum { O_KTO = 256, O_PAIRS, O_ARG, O_MODE, O_AGG, O_MAXTH, O_VER_FILTER, O_QUESTION, O_VERSION };
    static const struct option longopts[] = {{"kto", required_argument, 0, O_KTO},
                                             {"pairs", required_argument, 0, O_PAIRS},
                                             {"argilla", required_argument, 0, O_ARG},
                                             {"ranking-pairs", required_argument, 0, O_MODE},
                                             {"aggregate", required_argument, 0, O_AGG},
                                             {"max-thumb-pairs", required_argument, 0, O_MAXTH},
                                             {"model-version", required_argument, 0, O_VER_FILTER},
                                             {"question", required_argument, 0, O_QUESTION},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    const char *kto = NULL, *pairs = NULL, *argilla = NULL, *question = "ranking";
    PdPairOptions po = {PD_PAIRS_ALL, PD_AGG_MEAN, 1, 0};
    int max_thumb = 8, quiet = 0, n_ver = 0;
    const char **versions = xcalloc((size_t)argc + 1, sizeof(char *));
    int c;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case O_KTO:
            kto = optarg;
            break;
        case O_PAIRS:
            pairs = optarg;
            break;
        case O_ARG:
            argilla = optarg;
            break;
        case O_MODE:
            po.mode = (PdPairMode)cli_choice(prog, "--ranking-pairs", optarg, PAIR_MODES);
            break;
        case O_AGG:
            po.aggregate = (PdAggregate)cli_choice(prog, "--aggregate", optarg, AGGREGATES);
            break;
        case O_MAXTH:
            max_thumb = cli_int(prog, "--max-thumb-pairs", optarg);
            break;
        case O_VER_FILTER:
            versions[n_ver++] = optarg;
            break;
        case O_QUESTION:
            question = optarg;
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, &quiet);
        }
    }
    if (!kto && !pairs && !argilla) cli_usage_error(prog, "nothing to write: give --kto, --pairs or --argilla");
    if (optind >= argc) cli_usage_error(prog, "no log files (serve's --interactions and --feedback-log)");
    if (max_thumb < 0) cli_usage_error(prog, "--max-thumb-pairs must be >= 0");
    atomic_install_signal_cleanup();
    Error e = {0};
    FbLogs L;
    if (fb_load(&L, argv + optind, argc - optind, n_ver ? versions : NULL, n_ver, &e)) err_die(prog, &e);
    if ((kto && write_out(kto, &L, 0, &po, max_thumb, question, &e)) ||
        (pairs && write_out(pairs, &L, 1, &po, max_thumb, question, &e)) ||
        (argilla && write_out(argilla, &L, 2, &po, max_thumb, question, &e)))
        err_die(prog, &e);
    const FbCounts *k = &L.c;
    if (!quiet) {
        fprintf(stderr,
                "%s: %ld interactions (%d kept), %ld feedback: %ld thumbs, %ld rankings, %ld picks (%ld replaced by a "
                "later one, %ld on unknown ids skipped)",
                prog, k->interactions, L.n_it, k->feedback, k->thumbs, k->rankings, k->picks, k->replaced,
                k->unknown_ids);
        if (k->other_version) fprintf(stderr, ", %ld on other model versions skipped", k->other_version);
        if (k->torn) fprintf(stderr, ", %ld torn lines skipped", k->torn);
        fprintf(stderr, "\n");
        if (kto)
            fprintf(stderr, "%s: %s: %ld KTO records (%ld desirable, %ld undesirable)\n", prog, kto,
                    k->kto_true + k->kto_false, k->kto_true, k->kto_false);
        if (pairs)
            fprintf(stderr,
                    "%s: %s: %ld pairs (%ld from rankings, %ld picks, %ld thumbs); %ld with equal texts skipped\n",
                    prog, pairs, k->pairs_ranking + k->pairs_pick + k->pairs_thumbs, k->pairs_ranking, k->pairs_pick,
                    k->pairs_thumbs, k->equal_texts);
        if (argilla)
            fprintf(stderr, "%s: %s: %ld Argilla records (%ld ranked, %ld pending)\n", prog, argilla, k->argilla,
                    k->argilla_ranked, k->argilla - k->argilla_ranked);
    }
    fb_free(&L);
    free(versions);
    return 0;
}
