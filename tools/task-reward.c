/* task-reward — the bundled task's gold rule as a reward program (ppo --reward-cmd).
 *
 * Reads rollout JSONL records ({"prompt", "completion", ...}; ppo(1) writes them) and
 * answers each with one number on its own line, flushed at once so it can serve as a
 * long-running reward program:
 *   default   task_utility / 3: 2/3 for the right words, +1/3 for the polite closing
 *   --gold    task_gold: 1 for exactly the good answer, else 0
 * (common/data/task.h; the same rule `annotate` and `eval` use).  A message-list prompt is
 * read as its last user message, a message-list completion as its first assistant
 * message.  A record whose prompt is not a task prompt is an error naming its line,
 * unless --other X gives it the reward X. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "data/task.h"
#include "base/util.h"

static const char *prog = "task-reward";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [--gold] [--other X] [FILE]\n"
           "Reward program for the bundled task \"Repeat, politely\": reads rollout JSONL\n"
           "({\"prompt\", \"completion\"}) from FILE or stdin and prints one reward per line,\n"
           "flushed at once (for ppo --reward-cmd).\n"
           "\n"
           "      --gold       1 for exactly the good answer, else 0 (default: utility / 3 in [0, 1])\n"
           "      --other X    reward for records whose prompt is not a task prompt\n"
           "                   (default: such a record is an error)\n"
           "  -h, --help       this help\n"
           "      --version    version\n",
           prog);
}

/* The text of a prompt or completion given as a string or a message list: the last
 * message with ROLE (prompts: "user"), or the first (completions: "assistant"). */
static const char *text_of(const json_t *v, const char *role, int last) {
    if (json_is_string(v)) return json_string_value(v);
    if (!json_is_array(v)) return NULL;
    const char *found = NULL;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *m = json_array_get(v, i);
        const char *r = json_string_value(json_object_get(m, "role"));
        const char *c = json_string_value(json_object_get(m, "content"));
        if (r && c && !strcmp(r, role)) {
            found = c;
            if (!last) break;
        }
    }
    return found;
}

int main(int argc, char **argv) {
    cli_init(prog);
    int gold = 0, has_other = 0;
    double other = 0;
    enum { O_GOLD = 256, O_OTHER, O_VERSION };
    static const struct option opts[] = {{"gold", no_argument, 0, O_GOLD},
                                         {"other", required_argument, 0, O_OTHER},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, O_VERSION},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_GOLD:
            gold = 1;
            break;
        case O_OTHER:
            other = cli_double(prog, "--other", optarg);
            has_other = 1;
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, NULL);
        }
    }
    const char *in = cli_one_file(prog, argc, argv, "input file");
    JsonlReader r;
    Error e = {0};
    if (jsonl_open(&r, in, &e)) err_die(prog, &e);
    for (;;) {
        json_t *o = NULL;
        if (jsonl_next(&r, &o, &e)) err_die(prog, &e);
        if (!o) break;
        const char *p = text_of(json_object_get(o, "prompt"), "user", 1);
        const char *q = text_of(json_object_get(o, "completion"), "assistant", 0);
        if (!p || !q) {
            err_set(&e, EX_DATAERR, "%s:%ld: field \"%s\" must be a string or a message list", r.name, r.line,
                    !p ? "prompt" : "completion");
            err_die(prog, &e);
        }
        double v;
        int u = task_utility(p, q);
        if (u < 0) {
            if (!has_other) {
                err_set(&e, EX_DATAERR, "%s:%ld: field \"prompt\" is not a task prompt (\"Repeat: ...\\nAnswer:\")",
                        r.name, r.line);
                err_die(prog, &e);
            }
            v = other;
        } else {
            v = gold ? task_gold(p, q) : u / 3.0;
        }
        printf("%.17g\n", v);
        if (fflush(stdout) != 0) {
            err_set(&e, EX_IOERR, "write error on standard output");
            err_die(prog, &e);
        }
        json_decref(o);
    }
    jsonl_close(&r);
    return 0;
}
