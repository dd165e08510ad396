/* annotate — simulated human annotators for the bundled task.
 *
 * Reads ranking records as `rollout --format argilla` writes them (a prompt and
 * response-1 ... response-N, at the top level or under "fields"), ranks the
 * responses with the gold rule of common/data/task.h as each of several annotators
 * would — with noise — and writes a real Argilla export that goes through
 * `rank2pairs` exactly as a human one would:
 *   2.x (default): nested records, responses.<question> = [{value: [options best
 *        first], user_id, status: "submitted"}], status "completed";
 *   1.x (--argilla 1): HF-datasets rows, <question> = [{user_id, value: {rank: [...],
 *        value: [...]}, status}], metadata as a JSON string (ties kept as equal ranks).
 * Noise: for each annotator and option, with probability --noise the annotator's
 * judgement of that option is replaced by a uniformly random one (0..3). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "base/util.h"
#include "data/task.h"

static const char *prog = "annotate";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options] [FILE]\n"
           "Rank rollout responses as simulated annotators and write an Argilla export (JSONL).\n\n"
           "  --annotators N     annotators per record (default 3)\n"
           "  --noise P          probability that an annotator misjudges a response (default 0.1)\n"
           "  --argilla V        export format: 2 (default, nested records) or 1 (HF-datasets rows)\n"
           "  --question NAME    ranking question name (default ranking)\n"
           "  --seed N           random seed (default 1)\n"
           "  -o, --out FILE     output (default stdout)\n"
           "  -h, --help         this help\n"
           "      --version      print the version\n",
           prog);
}

typedef struct {
    const char *name;
    double u;
} Judged;

static int by_utility_desc(const void *a, const void *b) {
    double x = ((const Judged *)a)->u, y = ((const Judged *)b)->u;
    return x < y ? 1 : x > y ? -1 : 0;
}

typedef struct Flags {
    const char *out, *question, *in;
    int n_ann, version;
    double noise;
    uint64_t seed;
} Flags;

static void parse_args(Flags *o, int argc, char **argv) {
    *o = (Flags){.out = "-", .question = "ranking", .n_ann = 3, .version = 2, .noise = 0.1, .seed = 1};
    static struct option opts[] = {{"annotators", 1, 0, 'a'}, {"noise", 1, 0, 'z'},   {"argilla", 1, 0, 'A'},
                                   {"question", 1, 0, 'Q'},   {"seed", 1, 0, 'S'},    {"out", 1, 0, 'o'},
                                   {"help", 0, 0, 'h'},       {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->n_ann = cli_int(prog, "--annotators", optarg);
            break;
        case 'z':
            o->noise = cli_double(prog, "--noise", optarg);
            break;
        case 'A':
            o->version = cli_int(prog, "--argilla", optarg);
            break;
        case 'Q':
            o->question = optarg;
            break;
        case 'S':
            o->seed = cli_u64(prog, "--seed", optarg);
            break;
        case 'o':
            o->out = optarg;
            break;
        default:
            cli_common_option(prog, c, 'V', usage, NULL);
        }
    }
    if (o->n_ann < 1 || o->n_ann > 100) cli_usage_error(prog, "--annotators must be in 1..100");
    if (o->noise < 0 || o->noise > 1) cli_usage_error(prog, "--noise must be in [0,1]");
    if (o->version != 1 && o->version != 2) cli_usage_error(prog, "--argilla must be 1 or 2");
    o->in = cli_one_file(prog, argc, argv, "input file");
}

/* The options of a record: every response-K field, in K order, into opt[] (at most
 * 64) and their names into keys[]. */
static int read_options(const json_t *fields, const JsonlReader *r, Judged *opt, char keys[][32], int *n, Error *e) {
    *n = 0;
    for (int k = 1; k <= 64; k++) {
        char key[32];
        snprintf(key, sizeof key, "response-%d", k);
        json_t *v = json_object_get(fields, key);
        if (!v) break;
        if (!json_is_string(v))
            return err_set(e, EX_DATAERR, "%s:%ld: field \"%s\" must be a string", r->name, r->line, key);
        opt[*n].name = json_string_value(v);
        (*n)++;
    }
    if (*n < 2)
        return err_set(e, EX_DATAERR, "%s:%ld: need at least two fields response-1, response-2", r->name, r->line);
    for (int k = 0; k < *n; k++) snprintf(keys[k], sizeof keys[k], "response-%d", k + 1);
    return 0;
}

/* Annotator A's response: the options ranked by the task's utility, each judgement
 * replaced by a random one with probability --noise. */
static json_t *annotate_one(const Flags *o, Rng *rng, const char *prompt, const Judged *opt, char keys[][32], int n,
                            int a) {
    Judged j[64] = {{0}};
    for (int k = 0; k < n; k++) {
        int u = task_utility(prompt, opt[k].name);
        if (u < 0) u = 0;
        if (rng_uniform_double(rng) < o->noise) u = (int)rng_below(rng, 4);
        j[k].name = keys[k];
        /* a tiny random jitter orders equal judgements randomly (2.x has no ties) */
        j[k].u = u + (o->version == 2 ? 0.5 * rng_uniform_double(rng) : 0.0);
    }
    qsort(j, (size_t)n, sizeof j[0], by_utility_desc);
    char user[32];
    snprintf(user, sizeof user, "annotator-%d", a + 1);
    json_t *resp = json_object();
    if (o->version == 2) {
        json_t *order = json_array();
        for (int k = 0; k < n; k++) json_array_append_new(order, json_string(j[k].name));
        json_object_set_new(resp, "value", order);
        json_object_set_new(resp, "user_id", json_string(user));
        json_object_set_new(resp, "status", json_string("submitted"));
    } else {
        json_t *ranks = json_array(), *vals = json_array();
        int rank = 0;
        for (int k = 0; k < n; k++) {
            if (k == 0 || j[k].u != j[k - 1].u) rank = k + 1;
            json_array_append_new(ranks, json_integer(rank));
            json_array_append_new(vals, json_string(j[k].name));
        }
        json_object_set_new(resp, "user_id", json_string(user));
        json_t *value = json_object();
        json_object_set_new(value, "rank", ranks);
        json_object_set_new(value, "value", vals);
        json_object_set_new(resp, "value", value);
        json_object_set_new(resp, "status", json_string("submitted"));
    }
    return resp;
}

/* The exported record N_REC in Argilla 2.x or 1.x form, with the annotators'
 * RESPONSES (taken). */
static json_t *export_record(const Flags *o, const json_t *rec, const char *prompt, const Judged *opt, char keys[][32],
                             int n, json_t *responses, long n_rec) {
    json_t *x = json_object();
    char id[32];
    snprintf(id, sizeof id, "rec-%ld", n_rec);
    if (o->version == 2) {
        json_t *f = json_object();
        json_object_set_new(f, "prompt", json_string(prompt));
        for (int k = 0; k < n; k++) json_object_set_new(f, keys[k], json_string(opt[k].name));
        json_object_set_new(x, "id", json_string(id));
        json_object_set_new(x, "status", json_string("completed"));
        json_object_set_new(x, "fields", f);
        json_object_set_new(x, "metadata", json_object());
        json_t *resp = json_object();
        json_object_set_new(resp, o->question, responses);
        json_object_set_new(x, "responses", resp);
        json_t *sugg = json_object_get(rec, "suggestions");
        json_object_set_new(x, "suggestions", sugg ? json_incref(sugg) : json_object());
    } else {
        json_object_set_new(x, "prompt", json_string(prompt));
        for (int k = 0; k < n; k++) json_object_set_new(x, keys[k], json_string(opt[k].name));
        json_object_set_new(x, o->question, responses);
        char sk[96];
        snprintf(sk, sizeof sk, "%s-suggestion", o->question);
        json_object_set_new(x, sk, json_null());
        json_object_set_new(x, "external_id", json_string(id));
        json_object_set_new(x, "metadata", json_string("{}"));
    }
    return x;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Flags o;
    parse_args(&o, argc, argv);
    atomic_install_signal_cleanup();
    Error e = {0};
    JsonlReader r;
    if (jsonl_open(&r, o.in, &e)) err_die(prog, &e);
    AtomicFile af;
    if (atomic_open(&af, o.out, &e)) err_die(prog, &e);
    Rng rng;
    rng_seed(&rng, o.seed);
    json_t *rec;
    long n_rec = 0;
    while (!jsonl_next(&r, &rec, &e) && rec) {
        json_t *fields = json_object_get(rec, "fields");
        if (!json_is_object(fields)) fields = rec;
        const char *prompt;
        Judged opt[64];
        char keys[64][32];
        int n = 0;
        if (json_get_string(fields, "prompt", &prompt, &r, &e) || read_options(fields, &r, opt, keys, &n, &e))
            goto fail;
        json_t *responses = json_array();
        for (int a = 0; a < o.n_ann; a++)
            json_array_append_new(responses, annotate_one(&o, &rng, prompt, opt, keys, n, a));
        json_t *x = export_record(&o, rec, prompt, opt, keys, n, responses, n_rec);
        if (jsonl_write(af.fp, x, &e)) goto fail;
        json_decref(x);
        json_decref(rec);
        n_rec++;
    }
    if (e.code) goto fail;
    jsonl_close(&r);
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    return 0;
fail:
    atomic_abort(&af);
    err_die(prog, &e);
}
