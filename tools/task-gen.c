/* task-gen — writes the bundled default task's data (see common/data/task.h):
 * SFT prompt-completion records mixing good, curt and wrong answers, prompt-only
 * records for rollouts and evaluation, or plain text for training a tokenizer. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "data/task.h"
#include "base/util.h"

static const char *prog = "task-gen";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options]\n"
           "Write data for the bundled task \"Repeat, politely\" as JSONL.\n\n"
           "  --kind KIND        sft (prompt+completion, default), prompts (prompt only), corpus (text)\n"
           "  -n, --count N      number of records (default 2000)\n"
           "  --split S          train (default) or eval: disjoint word combinations\n"
           "  --max-words N      words per prompt, 2..N (default 3)\n"
           "  --mix G,C,WP,WC    SFT mixture of good, curt, wrong-polite, wrong-curt answers\n"
           "                     (default 0.4,0.35,0.1,0.15; normalised)\n"
           "  --seed N           random seed (default 1)\n"
           "  -o, --out FILE     output (default stdout)\n"
           "  -h, --help         this help\n"
           "      --version      print the version\n",
           prog);
}

int main(int argc, char **argv) {
    cli_init(prog);
    const char *kind = "sft", *out = "-";
    long count = 2000;
    int split = 0, max_words = 3;
    uint64_t seed = 1;
    double mix[4] = {0.4, 0.35, 0.1, 0.15};
    static struct option opts[] = {
        {"kind", 1, 0, 'k'}, {"count", 1, 0, 'n'}, {"split", 1, 0, 's'}, {"max-words", 1, 0, 'w'}, {"mix", 1, 0, 'x'},
        {"seed", 1, 0, 'S'}, {"out", 1, 0, 'o'},   {"help", 0, 0, 'h'},  {"version", 0, 0, 'V'},   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            kind = optarg;
            break;
        case 'n':
            count = cli_ll(prog, "--count", optarg);
            break;
        case 's':
            split = cli_choice(prog, "--split", optarg, (const char *const[]){"train", "eval", NULL});
            break;
        case 'w':
            max_words = cli_int(prog, "--max-words", optarg);
            break;
        case 'x':
            if (sscanf(optarg, "%lf,%lf,%lf,%lf", &mix[0], &mix[1], &mix[2], &mix[3]) != 4)
                cli_usage_error(prog, "--mix: expected four comma-separated numbers, got '%s'", optarg);
            break;
        case 'S':
            seed = cli_u64(prog, "--seed", optarg);
            break;
        case 'o':
            out = optarg;
            break;
        default:
            cli_common_option(prog, c, 'V', usage, NULL);
        }
    }
    cli_no_operands(prog, argc, argv);
    (void)cli_choice(prog, "--kind", kind, (const char *const[]){"sft", "prompts", "corpus", NULL});
    if (count < 0) cli_usage_error(prog, "--count must be >= 0");
    if (max_words < 2 || max_words > 8) cli_usage_error(prog, "--max-words must be in 2..8");
    double total = mix[0] + mix[1] + mix[2] + mix[3];
    for (int i = 0; i < 4; i++)
        if (mix[i] < 0 || total <= 0) cli_usage_error(prog, "--mix: fractions must be >= 0 with a positive sum");

    atomic_install_signal_cleanup();
    Error e = {0};
    AtomicFile af;
    if (atomic_open(&af, out, &e)) err_die(prog, &e);
    Rng rng;
    rng_seed(&rng, seed * 2 + (uint64_t)split);
    char prompt[512], words[256], completion[512];
    for (long i = 0; i < count; i++) {
        task_prompt(&rng, split, max_words, prompt, sizeof prompt, words, sizeof words);
        json_t *rec = json_object();
        if (!strcmp(kind, "prompts")) {
            json_object_set_new(rec, "prompt", json_string(prompt));
        } else {
            double u = rng_uniform_double(&rng) * total, acc = 0;
            TaskStyle style = TASK_WRONG_CURT;
            for (int s = 0; s < 4; s++) {
                acc += mix[s];
                if (u < acc) {
                    style = (TaskStyle)s;
                    break;
                }
            }
            task_completion(&rng, style, words, completion, sizeof completion);
            if (!strcmp(kind, "sft")) {
                json_object_set_new(rec, "prompt", json_string(prompt));
                json_object_set_new(rec, "completion", json_string(completion));
            } else {
                char text[1100];
                snprintf(text, sizeof text, "%s%s", prompt, completion);
                json_object_set_new(rec, "text", json_string(text));
            }
        }
        if (jsonl_write(af.fp, rec, &e)) {
            atomic_abort(&af);
            err_die(prog, &e);
        }
        json_decref(rec);
    }
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    return 0;
}
