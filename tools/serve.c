/* serve — an OpenAI-compatible HTTP server for a policy directory, with an
 * interaction log, a feedback endpoint, a chat page and hot reload (man 1 serve).
 *
 * The work is in common/serve/: http.c (routes, libmicrohttpd), engine.c
 * (continuous batching over the generate.h cache and step), api.c (request and
 * response bodies, log records), ilog.c (append + fsync logs).  This file parses
 * flags and turns signals into actions: SIGHUP reloads the model directory,
 * SIGINT/SIGTERM stop after the requests in flight have been answered. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/util.h"
#include "kernels/gemm.h"
#include "serve/http.h"

static const char *prog = "serve";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: %s -m MODEL [OPTION]...\n"
            "Serve a causal LM over HTTP (OpenAI-compatible) and log every interaction and feedback.\n"
            "\n"
            "  -m, --model DIR             model directory (Hugging Face, with tokenizer.json)\n"
            "      --host ADDR             IPv4 address to bind (default 127.0.0.1)\n"
            "      --port N                TCP port (default 8000; 0 = any free port)\n"
            "      --port-file FILE        write the port there once listening (atomic)\n"
            "      --token TOKEN           bearer token for /v1/feedback and /admin/reload\n"
            "                              (default: $CHERRY_TOKEN; none = open)\n"
            "      --interactions FILE     interaction log (default interactions.jsonl)\n"
            "      --feedback-log FILE     feedback log (default feedback.jsonl)\n"
            "      --template NAME         chat template: auto (default), plain, hh, chatml, llama3\n"
            "      --batch-size N          sequences decoded together (default 8)\n"
            "      --context N             KV cache positions per sequence (default: the model's, <= 1024)\n"
            "      --gen-dtype fp32|bf16|int8  decode weights: bf16 (inputs rounded too), or int8\n"
            "                              with one scale per 32 inputs (GGML's Q8_0, inputs too);\n"
            "                              fp32 sums, prefill fp32 (default fp32; see rollout(1))\n"
            "      --max-tokens N          largest max_tokens a request may ask (default 512)\n"
            "      --default-max-tokens N  max_tokens when a request gives none (default 128)\n"
            "      --max-n N               largest n a request may ask (default 16)\n"
            "      --max-body BYTES        largest request body (default 1048576)\n"
            "      --page FILE             serve this file at / instead of the chat page\n"
            "      --seed N                seeds the seeds of requests that give none (default: random)\n"
            "      --threads N             threads (default: all cores)\n"
            "  -q, --quiet                 no start-up line\n"
            "  -h, --help                  this help\n"
            "      --version               version\n",
            prog);
}

enum {
    O_HOST = 256,
    O_PORT,
    O_PORTFILE,
    O_TOKEN,
    O_ILOG,
    O_FLOG,
    O_TEMPLATE,
    O_BATCH,
    O_CONTEXT,
    O_GEN_DTYPE,
    O_MAXTOK,
    O_DEFTOK,
    O_MAXN,
    O_MAXBODY,
    O_PAGE,
    O_SEED,
    O_THREADS,
    O_VERSION
};

typedef struct Opts {
    const char *model, *port_file;
    ServeConfig cfg;
    int threads, quiet, has_seed;
} Opts;

static void parse_args(Opts *o, int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"host", required_argument, 0, O_HOST},
                                             {"port", required_argument, 0, O_PORT},
                                             {"port-file", required_argument, 0, O_PORTFILE},
                                             {"token", required_argument, 0, O_TOKEN},
                                             {"interactions", required_argument, 0, O_ILOG},
                                             {"feedback-log", required_argument, 0, O_FLOG},
                                             {"template", required_argument, 0, O_TEMPLATE},
                                             {"batch-size", required_argument, 0, O_BATCH},
                                             {"context", required_argument, 0, O_CONTEXT},
                                             {"gen-dtype", required_argument, 0, O_GEN_DTYPE},
                                             {"max-tokens", required_argument, 0, O_MAXTOK},
                                             {"default-max-tokens", required_argument, 0, O_DEFTOK},
                                             {"max-n", required_argument, 0, O_MAXN},
                                             {"max-body", required_argument, 0, O_MAXBODY},
                                             {"page", required_argument, 0, O_PAGE},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    serve_config_default(&o->cfg);
    o->cfg.token = getenv("CHERRY_TOKEN");
    int c;
    Error e;
    while ((c = getopt_long(argc, argv, "m:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case O_HOST:
            o->cfg.host = optarg;
            break;
        case O_PORT:
            o->cfg.port = cli_int(prog, "--port", optarg);
            break;
        case O_PORTFILE:
            o->port_file = optarg;
            break;
        case O_TOKEN:
            o->cfg.token = optarg;
            break;
        case O_ILOG:
            o->cfg.interactions = optarg;
            break;
        case O_FLOG:
            o->cfg.feedback = optarg;
            break;
        case O_TEMPLATE:
            if (chat_template_parse(optarg, &o->cfg.tpl, &e)) cli_usage_error(prog, "--template: %s", e.msg);
            break;
        case O_BATCH:
            o->cfg.engine.slots = cli_int(prog, "--batch-size", optarg);
            break;
        case O_CONTEXT:
            o->cfg.engine.context = cli_int(prog, "--context", optarg);
            break;
        case O_GEN_DTYPE:
            if (decode_dtype_parse(optarg, &o->cfg.engine.dtype))
                cli_usage_error(prog, "--gen-dtype: expected fp32, bf16 or int8, got '%s'", optarg);
            break;
        case O_MAXTOK:
            o->cfg.lim.max_tokens = cli_int(prog, "--max-tokens", optarg);
            break;
        case O_DEFTOK:
            o->cfg.lim.default_tokens = cli_int(prog, "--default-max-tokens", optarg);
            break;
        case O_MAXN:
            o->cfg.lim.max_n = cli_int(prog, "--max-n", optarg);
            break;
        case O_MAXBODY:
            o->cfg.max_body = (size_t)cli_ll(prog, "--max-body", optarg);
            break;
        case O_PAGE:
            o->cfg.page = optarg;
            break;
        case O_SEED:
            o->cfg.seed = cli_u64(prog, "--seed", optarg), o->has_seed = 1;
            break;
        case O_THREADS:
            o->threads = cli_int(prog, "--threads", optarg);
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, &o->quiet);
        }
    }
    if (!o->model) cli_usage_error(prog, "-m/--model DIR is required");
    cli_no_operands(prog, argc, argv);
    if (o->cfg.port < 0 || o->cfg.port > 65535) cli_usage_error(prog, "--port must be in 0..65535");
    if (o->cfg.engine.slots < 1 || o->cfg.engine.slots > 256) cli_usage_error(prog, "--batch-size must be in 1..256");
    if (o->cfg.engine.context < 0) cli_usage_error(prog, "--context must be >= 0");
    if (o->cfg.lim.max_tokens < 1) cli_usage_error(prog, "--max-tokens must be >= 1");
    if (o->cfg.lim.default_tokens < 1 || o->cfg.lim.default_tokens > o->cfg.lim.max_tokens)
        cli_usage_error(prog, "--default-max-tokens must be in 1..--max-tokens");
    if (o->cfg.lim.max_n < 1 || o->cfg.lim.max_n > 64) cli_usage_error(prog, "--max-n must be in 1..64");
    if (o->cfg.max_body < 1024) cli_usage_error(prog, "--max-body must be >= 1024");
    if (o->threads < 0) cli_usage_error(prog, "--threads must be >= 0");
    if (o->cfg.token && !*o->cfg.token) o->cfg.token = NULL;
    if (!o->has_seed) {
        /* request seeds are logged, so any interaction can be replayed anyway */
        Rng r;
        rng_seed(&r, (uint64_t)now_seconds() * 1000003u ^ (uint64_t)getpid());
        o->cfg.seed = rng_next(&r);
    }
}

static int write_port_file(const char *path, int port, Error *e) {
    AtomicFile af;
    if (atomic_open(&af, path, e)) return e->code;
    fprintf(af.fp, "%d\n", port);
    return atomic_commit(&af, e);
}

int main(int argc, char **argv) {
    cli_init(prog);
    Opts o;
    parse_args(&o, argc, argv);
    if (o.threads > 0) gemm_threads_set(o.threads);
    /* signals go to this thread only (sigwait below); every thread started from
     * here on inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    Error e = {0};
    Server *s;
    if (server_start(&s, o.model, &o.cfg, &e)) err_die(prog, &e);
    if (o.port_file && write_port_file(o.port_file, server_port(s), &e)) {
        server_stop(s);
        err_die(prog, &e);
    }
    if (!o.quiet)
        fprintf(stderr, "%s: %s on http://%s:%d/ (logs: %s, %s%s)\n", prog, o.model, o.cfg.host, server_port(s),
                o.cfg.interactions, o.cfg.feedback, o.cfg.token ? "; feedback needs the token" : "");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig)) continue;
        if (sig == SIGHUP) {
            if (server_reload(s, NULL, &e))
                fprintf(stderr, "%s: reload failed, still serving the old model: %s\n", prog, e.msg);
            else if (!o.quiet)
                fprintf(stderr, "%s: reloaded\n", prog);
            continue;
        }
        if (!o.quiet) fprintf(stderr, "%s: stopping after the requests in flight\n", prog);
        server_stop(s);
        return 0;
    }
}
