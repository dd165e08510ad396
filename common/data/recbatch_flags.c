/* recbatch_flags.c — the shared command line of logprobs and score (recbatch.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "formats/chat.h"
#include "recbatch.h"

enum {
    OPT_VERSION = 1000,
    OPT_EXTRA,
    OPT_BATCH,
    OPT_MAXLEN,
    OPT_MAXPROMPT,
    OPT_KIND,
    OPT_TEMPLATE,
    OPT_SKIP,
    OPT_THREADS,
    OPT_SEED,
    OPT_PROGRESS,
    OPT_NO_PROGRESS
};

void recbatch_flags_parse(RecFlags *f, const char *prog, int argc, char **argv, const char *extra,
                          int reject_prompt_only, void (*usage)(FILE *)) {
    const struct option opts[] = {
        {"help", no_argument, 0, 'h'},
        {"model", required_argument, 0, 'm'},
        {"out", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"version", no_argument, 0, OPT_VERSION},
        {extra, no_argument, 0, OPT_EXTRA},
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"max-length", required_argument, 0, OPT_MAXLEN},
        {"max-prompt-length", required_argument, 0, OPT_MAXPROMPT},
        {"kind", required_argument, 0, OPT_KIND},
        {"template", required_argument, 0, OPT_TEMPLATE},
        {"skip-invalid", no_argument, 0, OPT_SKIP},
        {"threads", required_argument, 0, OPT_THREADS},
        {"seed", required_argument, 0, OPT_SEED},
        {"progress", no_argument, 0, OPT_PROGRESS},
        {"no-progress", no_argument, 0, OPT_NO_PROGRESS},
        {0, 0, 0, 0},
    };
    const char *kind_name = "auto", *tpl_name = "auto";
    int skip = 0;
    memset(f, 0, sizeof *f);
    f->batch = 8;
    f->max_length = 1024;
    f->max_prompt_length = 512;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hm:o:q", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cli_help(usage);
        case OPT_VERSION:
            cli_version(prog);
        case 'm':
            f->model_dir = optarg;
            break;
        case 'o':
            f->out_path = optarg;
            break;
        case 'q':
            f->quiet = 1;
            break;
        case OPT_EXTRA:
            f->extra = 1;
            break;
        case OPT_BATCH:
            f->batch = cli_int_min(prog, "--batch-size", optarg, 1);
            break;
        case OPT_MAXLEN:
            f->max_length = cli_int_min(prog, "--max-length", optarg, 1);
            break;
        case OPT_MAXPROMPT:
            f->max_prompt_length = cli_int_min(prog, "--max-prompt-length", optarg, 0);
            break;
        case OPT_KIND:
            kind_name = optarg;
            break;
        case OPT_TEMPLATE:
            tpl_name = optarg;
            break;
        case OPT_SKIP:
            skip = 1;
            break;
        case OPT_THREADS:
            f->threads = cli_int_min(prog, "--threads", optarg, 0);
            break;
        case OPT_SEED: /* accepted for uniformity; nothing here is random */
            (void)cli_u64(prog, "--seed", optarg);
            break;
        case OPT_PROGRESS:
        case OPT_NO_PROGRESS:
            break;
        default:
            cli_usage_error(prog, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!f->model_dir) cli_usage_error(prog, "-m/--model is required");
    f->first_input = optind;
    Error e;
    memset(&e, 0, sizeof e);
    data_options_default(&f->data);
    if (data_kind_parse(kind_name, &f->data.kind, &e)) cli_usage_error(prog, "--kind: %s", e.msg);
    if (reject_prompt_only && f->data.kind == DATA_PROMPT_ONLY)
        cli_usage_error(prog, "--kind: prompt-only records have no completion to score");
    if (chat_template_parse(tpl_name, &f->data.tpl, &e)) cli_usage_error(prog, "--template: %s", e.msg);
    f->data.skip_invalid = skip;
}

DataOptions recflags_data_options(const RecFlags *f, int max_seq) {
    DataOptions o = f->data;
    o.max_length = f->max_length < max_seq ? f->max_length : max_seq;
    o.max_prompt_length = f->max_prompt_length;
    return o;
}
