/* rollout — sample completions for prompts with a causal LM; optionally score them
 * with a reward model and turn them into preference pairs or Argilla records.
 *
 * Generation is common/generate/generate.c (KV cache, batched, one RNG per (prompt, sample));
 * rewards common/rl/reward.c; pairs common/data/rollpairs.c.  This file parses flags, reads
 * prompts in chunks, and writes one of three record kinds (man5 cherry-rollout):
 *   rollouts  {prompt, completion, group, sample, finish_reason, logprob, tokens,
 *              reward?, completion_ids?, token_logprobs?}
 *   pairs     {prompt, chosen, rejected, score_chosen, score_rejected, group}
 *   argilla   {id, prompt, response-1..N, ranking?, ranking.suggestion.agent?}
 * Output is written atomically; memory is bounded by the chunk, not the input.
 *
 * Under MPI (`make MPI=1`, `mpirun -np N rollout ... PROMPTS.jsonl`; dist.h) every
 * rank reads the prompts, and rank r generates (and scores) the r-th of N
 * contiguous slices of each chunk; rank 0 gathers the slices' records and writes
 * them in prompt order.  Each sequence's RNG is a function of (seed, prompt index,
 * sample) and decoding is batch-invariant (generate.h), so the completions are the
 * ones a single process writes. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/dist.h"
#include "base/util.h"
#include "data/data.h"
#include "data/rollpairs.h"
#include "formats/chat.h"
#include "formats/tokenizer.h"
#include "generate/gen_flags.h"
#include "generate/generate.h"
#include "kernels/gemm.h"
#include "model/lora.h"
#include "model/model.h"
#include "rl/reward.h"

static const char *prog = "rollout";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: %s -m MODEL [OPTION]... [PROMPTS.jsonl]\n"
            "Sample completions for prompt records ({\"prompt\": text} or {\"messages\": [...]}).\n"
            "\n"
            "  -m, --model DIR            policy model (Hugging Face directory with tokenizer.json)\n"
            "  -o, --out PATH             output JSONL (atomic; - = stdout, the default)\n"
            "      --template NAME        chat template for message prompts: auto (default), plain, hh,\n"
            "                             chatml, llama3\n"
            "      --max-prompt-length N  keep the last N prompt tokens (default: context - 1)\n",
            prog);
    gen_flags_usage(out, 64, "0 = greedy (default 1)");
    fprintf(out, "  -n, --num-samples N        completions per prompt (default 1; alias --num-generations)\n"
                 "      --batch-size N         sequences decoded together (default 16)\n"
                 "      --reward-model DIR     score prompt+completion with this classifier (adds \"reward\")\n"
                 "      --pairs MODE           write preference pairs: best-worst | all-ranked | rso\n"
                 "      --rso-beta B           RSO temperature beta (default 0.5)\n"
                 "      --num-select K         RSO: completions selected per prompt (default 2)\n"
                 "      --format F             rollout (default) | argilla (one record per prompt)\n"
                 "      --per-token            add completion_ids and token_logprobs\n"
                 "      --skip-invalid         skip malformed prompt records and count them\n"
                 "      --seed N               random seed (default 0)\n"
                 "      --threads N            threads (default: all cores)\n"
                 "      --progress, --no-progress  progress line on stderr (default: when a terminal)\n"
                 "  -q, --quiet                no summary on stderr\n"
                 "  -h, --help                 this help\n"
                 "      --version              version\n");
}

typedef struct Opts {
    const char *model, *out, *rm, *template_name, *format, *in, *in_name;
    GenConfig gen;
    GenFlags gf; /* --max-new-tokens, --temperature, ..., --stop */
    int max_prompt_length, per_token, skip_invalid, quiet, progress, threads, num_select;
    double rso_beta;
    PairStrategy pairs;
    int argilla;
} Opts;

enum {
    O_TEMPLATE = 256,
    O_MAXPROMPT,
    O_BATCH,
    O_RM,
    O_PAIRS,
    O_BETA,
    O_SELECT,
    O_FORMAT,
    O_PERTOK,
    O_SKIP,
    O_SEED,
    O_THREADS,
    O_PROGRESS,
    O_NOPROGRESS,
    O_VERSION
};

/* The checks that involve several flags. */
static void check_args(Opts *o) {
    if (!o->model) cli_usage_error(prog, "-m/--model DIR is required");
    o->argilla = cli_choice(prog, "--format", o->format, (const char *const[]){"rollout", "argilla", NULL});
    if (o->pairs && !o->rm) cli_usage_error(prog, "--pairs needs --reward-model");
    if (o->pairs && o->argilla) cli_usage_error(prog, "--pairs and --format argilla are exclusive");
    /* every sample of every prompt is held until its prompt's line is written */
    if (o->gen.num_samples < 1 || o->gen.num_samples > (1 << 16))
        cli_usage_error(prog, "--num-samples must be in [1, %d], got %d", 1 << 16, o->gen.num_samples);
    if ((o->pairs || o->argilla) && o->gen.num_samples < 2)
        cli_usage_error(prog, "--%s needs --num-samples >= 2", o->pairs ? "pairs" : "format argilla");
    gen_flags_finish(&o->gf, prog);
}

static void parse_args(Opts *o, int argc, char **argv) {
    static const struct option longopts[] = {{"model", required_argument, 0, 'm'},
                                             {"out", required_argument, 0, 'o'},
                                             {"template", required_argument, 0, O_TEMPLATE},
                                             {"max-prompt-length", required_argument, 0, O_MAXPROMPT},
                                             GEN_FLAG_OPTIONS,
                                             {"num-samples", required_argument, 0, 'n'},
                                             {"num-generations", required_argument, 0, 'n'},
                                             {"batch-size", required_argument, 0, O_BATCH},
                                             {"reward-model", required_argument, 0, O_RM},
                                             {"pairs", required_argument, 0, O_PAIRS},
                                             {"rso-beta", required_argument, 0, O_BETA},
                                             {"num-select", required_argument, 0, O_SELECT},
                                             {"format", required_argument, 0, O_FORMAT},
                                             {"per-token", no_argument, 0, O_PERTOK},
                                             {"skip-invalid", no_argument, 0, O_SKIP},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"threads", required_argument, 0, O_THREADS},
                                             {"progress", no_argument, 0, O_PROGRESS},
                                             {"no-progress", no_argument, 0, O_NOPROGRESS},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->out = "-";
    o->format = "rollout";
    o->gen = gen_config_default();
    o->gen.batch_size = 16;
    o->progress = -1;
    o->rso_beta = 0.5;
    o->num_select = 2;
    gen_flags_init(&o->gf, &o->gen);
    int c;
    while ((c = getopt_long(argc, argv, "m:o:n:qh", longopts, NULL)) != -1) {
        if (gen_flags_parse(&o->gf, prog, c, optarg)) continue;
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case O_TEMPLATE:
            o->template_name = optarg;
            break;
        case O_MAXPROMPT:
            o->max_prompt_length = cli_int_min(prog, "--max-prompt-length", optarg, 0);
            break;
        case 'n':
            o->gen.num_samples = cli_int(prog, "--num-samples", optarg);
            break;
        case O_BATCH:
            o->gen.batch_size = cli_int_min(prog, "--batch-size", optarg, 1);
            break;
        case O_RM:
            o->rm = optarg;
            break;
        case O_PAIRS:
            if (rollpairs_strategy_parse(optarg, &o->pairs))
                cli_usage_error(prog, "--pairs: expected best-worst, all-ranked or rso, got '%s'", optarg);
            break;
        case O_BETA:
            o->rso_beta = cli_double_in(prog, "--rso-beta", optarg, 0, 1, INFINITY, 0);
            break;
        case O_SELECT:
            o->num_select = cli_int_min(prog, "--num-select", optarg, 2);
            break;
        case O_FORMAT:
            o->format = optarg;
            break;
        case O_PERTOK:
            o->per_token = 1;
            break;
        case O_SKIP:
            o->skip_invalid = 1;
            break;
        case O_SEED:
            o->gen.seed = cli_u64(prog, "--seed", optarg);
            break;
        case O_THREADS:
            o->threads = cli_int_min(prog, "--threads", optarg, 0);
            break;
        case O_PROGRESS:
            o->progress = 1;
            break;
        case O_NOPROGRESS:
            o->progress = 0;
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, &o->quiet);
        }
    }
    o->in = cli_one_file(prog, argc, argv, "prompts file");
    check_args(o);
}

/* ---- progress ---- */

typedef struct Prog {
    int on;
    long total, done_before, tokens_before;
    double t0, last;
} Prog;

static void on_progress(void *ctx, int done, long tokens) {
    Prog *p = ctx;
    double now = now_seconds();
    if (!p->on || now - p->last < 0.2) return;
    p->last = now;
    double dt = now - p->t0;
    fprintf(stderr, "\r%s: %ld/%ld sequences, %.0f tok/s   ", prog, p->done_before + done, p->total,
            dt > 0 ? (p->tokens_before + tokens) / dt : 0.0);
}

/* ---- records ---- */

static int write_json(FILE *fp, json_t *o, Error *e) {
    int rc = 0;
    /* 9 significant digits round-trip every float */
    if (json_dumpf(o, fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0 || fputc('\n', fp) == EOF)
        rc = err_set(e, EX_IOERR, "write error");
    json_decref(o);
    return rc;
}

/* The completion as text: EOS dropped, special tokens skipped, cut before the stop
 * string that ended it. */
static json_t *completion_text(const Tokenizer *tok, const GenSeq *q, const Opts *o, Error *e) {
    int n = q->n_tokens - (q->eos ? 1 : 0);
    char *txt;
    size_t len;
    if (tok_decode(tok, q->tokens, n, 1, &txt, &len, e)) return NULL;
    utf8_replace_nul(&txt, &len); /* a sampled NUL: the next program must be able to read the line */
    if (q->stop_index >= 0) {
        char *hit = strstr(txt, o->gf.stop[q->stop_index]);
        if (hit) len = (size_t)(hit - txt);
    }
    json_t *s = json_stringn(txt, len);
    free(txt);
    if (!s) err_set(e, EX_SOFTWARE, "decoded completion is not valid UTF-8");
    return s;
}

/* TRL's conversational form: a message-list prompt gets a one-message assistant
 * completion. */
static json_t *as_answer(const json_t *prompt, json_t *text) {
    if (!json_is_array(prompt)) return text;
    return json_pack("[{s:s, s:o}]", "role", "assistant", "content", text);
}

typedef struct Totals {
    long prompts, seqs, stop, length, tokens, pairs, identical;
} Totals;

/* One Argilla record per prompt: response-1..N, and with rewards the ranking
 * suggestion. */
static int emit_argilla(FILE *fp, const Opts *o, const PromptExample *px, long group, json_t **text,
                        const float *rewards, Error *e) {
    int N = o->gen.num_samples;
    json_t *r = json_object();
    char id[32];
    snprintf(id, sizeof id, "%ld", group);
    json_object_set_new(r, "id", json_string(id));
    json_object_set(r, "prompt", px->prompt);
    for (int s = 0; s < N; s++) {
        char key[32];
        snprintf(key, sizeof key, "response-%d", s + 1);
        json_object_set(r, key, text[s]);
    }
    if (rewards) {
        /* Argilla 2.x maps a key named like the question to its suggestion: the
         * responses ordered by reward, best first. */
        int *order = xmalloc((size_t)N * sizeof(int));
        for (int s = 0; s < N; s++) order[s] = s;
        for (int a = 1; a < N; a++) /* insertion sort: stable, N is small */
            for (int b = a; b > 0 && rewards[order[b]] > rewards[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        json_t *rank = json_array();
        for (int s = 0; s < N; s++) {
            char key[32];
            snprintf(key, sizeof key, "response-%d", order[s] + 1);
            json_array_append_new(rank, json_string(key));
        }
        json_object_set_new(r, "ranking", rank);
        json_object_set_new(r, "ranking.suggestion.agent", json_string(o->rm));
        for (int s = 0; s < N; s++) {
            char key[32];
            snprintf(key, sizeof key, "reward-%d", s + 1);
            json_object_set_new(r, key, json_real(rewards[s]));
        }
        free(order);
    }
    return write_json(fp, r, e);
}

/* The preference pairs of one prompt's completions (--pairs). */
static int emit_pairs(FILE *fp, const Opts *o, const PromptExample *px, long group, json_t **text, const float *rewards,
                      Totals *tot, Error *e) {
    int N = o->gen.num_samples, rc = 0;
    int cap = N * (N - 1) / 2 + 1;
    int *ch = xmalloc((size_t)cap * sizeof(int)), *rj = xmalloc((size_t)cap * sizeof(int));
    Rng rng;
    gen_rng_seed(&rng, o->gen.seed ^ 0x52534f2d70616972ULL /* "RSO-pair" */, group, 0);
    int np = rollpairs_from_rewards(o->pairs, rewards, N, o->num_select, o->rso_beta, &rng, ch, rj);
    for (int k = 0; k < np && !rc; k++) {
        /* different tokens can make the same text (a stop string cut both): such a
         * pair teaches nothing, whatever the rewards say */
        if (json_equal(text[ch[k]], text[rj[k]])) {
            tot->identical++;
            continue;
        }
        json_t *r = json_object();
        json_object_set(r, "prompt", px->prompt);
        json_object_set_new(r, "chosen", as_answer(px->prompt, json_incref(text[ch[k]])));
        json_object_set_new(r, "rejected", as_answer(px->prompt, json_incref(text[rj[k]])));
        json_object_set_new(r, "score_chosen", json_real(rewards[ch[k]]));
        json_object_set_new(r, "score_rejected", json_real(rewards[rj[k]]));
        json_object_set_new(r, "group", json_integer(group));
        rc = write_json(fp, r, e);
        tot->pairs++;
    }
    free(ch);
    free(rj);
    return rc;
}

/* One rollout record per completion. */
static int emit_rollouts(FILE *fp, const Opts *o, const PromptExample *px, long group, const GenSeq *seqs,
                         json_t **text, const float *rewards, Error *e) {
    int N = o->gen.num_samples, rc = 0;
    for (int s = 0; s < N && !rc; s++) {
        const GenSeq *q = &seqs[s];
        json_t *r = json_object();
        json_object_set(r, "prompt", px->prompt);
        json_object_set_new(r, "completion", as_answer(px->prompt, json_incref(text[s])));
        json_object_set_new(r, "group", json_integer(group));
        json_object_set_new(r, "sample", json_integer(s));
        json_object_set_new(r, "finish_reason", json_string(q->finish == GEN_FINISH_STOP ? "stop" : "length"));
        json_object_set_new(r, "logprob", json_real(q->logprob));
        json_object_set_new(r, "tokens", json_integer(q->n_tokens));
        if (rewards) json_object_set_new(r, "reward", json_real(rewards[s]));
        if (o->per_token) {
            json_t *ids = json_array(), *lps = json_array();
            for (int t = 0; t < q->n_tokens; t++) {
                json_array_append_new(ids, json_integer(q->tokens[t]));
                json_array_append_new(lps, json_real(q->logprobs[t]));
            }
            json_object_set_new(r, "completion_ids", ids);
            json_object_set_new(r, "token_logprobs", lps);
        }
        rc = write_json(fp, r, e);
    }
    return rc;
}

static int emit_group(FILE *fp, const Opts *o, const Tokenizer *tok, const PromptExample *px, long group, GenSeq *seqs,
                      const float *rewards, Totals *tot, Error *e) {
    int N = o->gen.num_samples;
    json_t **text = xcalloc((size_t)N, sizeof(json_t *));
    int rc = 0;
    for (int s = 0; s < N; s++) {
        if (!(text[s] = completion_text(tok, &seqs[s], o, e))) {
            rc = e->code;
            goto done;
        }
        tot->seqs++;
        tot->tokens += seqs[s].n_tokens;
        if (seqs[s].finish == GEN_FINISH_STOP)
            tot->stop++;
        else
            tot->length++;
    }
    if (o->argilla)
        rc = emit_argilla(fp, o, px, group, text, rewards, e);
    else if (o->pairs)
        rc = emit_pairs(fp, o, px, group, text, rewards, tot, e);
    else
        rc = emit_rollouts(fp, o, px, group, seqs, text, rewards, e);
done:
    for (int s = 0; s < N; s++) json_decref(text[s]);
    free(text);
    return rc;
}

/* Generates, scores and writes one chunk of prompts. */
static int run_chunk(FILE *fp, const Opts *o, Model *m, Model *rm, const Tokenizer *tok, PromptExample *px, int n,
                     long first_group, Prog *pg, Totals *tot, Error *e) {
    int N = o->gen.num_samples;
    const int **ids = xmalloc((size_t)n * sizeof(int *));
    int *lens = xmalloc((size_t)n * sizeof(int));
    long *gid = xmalloc((size_t)n * sizeof(long));
    for (int i = 0; i < n; i++) ids[i] = px[i].ids, lens[i] = px[i].n, gid[i] = first_group + i;
    GenSeq *seqs = xcalloc((size_t)n * N, sizeof(GenSeq));
    float *rewards = NULL;
    int rc = generate(m, &o->gen, tok, (const int *const *)ids, lens, gid, n, seqs, on_progress, pg, e);
    if (rc) {
        /* name the record, not the chunk index */
        int p = -1;
        if (sscanf(e->msg, "prompt %d", &p) == 1 && p >= 0 && p < n) err_prefix(e, "%s:%ld", o->in_name, px[p].line);
        goto out;
    }
    pg->done_before += (long)n * N;
    if (rm) {
        rewards = xmalloc((size_t)n * N * sizeof(float));
        rc = reward_score_generated(rm, (const int *const *)ids, lens, seqs, n * N, o->gen.batch_size, rewards, e);
        if (rc) {
            err_prefix(e, "%s", o->rm);
            goto out;
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        rc = emit_group(fp, o, tok, &px[i], first_group + i, seqs + (size_t)i * N,
                        rewards ? rewards + (size_t)i * N : NULL, tot, e);
        tot->prompts++;
    }
out:
    for (int i = 0; i < n * N; i++) gen_seq_free(&seqs[i]);
    free(seqs), free(rewards), free(ids), free(lens), free(gid);
    return rc;
}

/* ---- data parallelism (dist.h) ---------------------------------------------------- */
/* EX_SOFTWARE unless every rank read N prompts into this chunk (they read the same
 * file; a difference means it changed under them).  A collective. */
static int same_count(int n, Error *e) {
    int n0 = n;
    int rc = dist_broadcast(&n0, sizeof n0, 0, e);
    if (rc == 0 && n0 != n)
        rc = err_set(e, EX_SOFTWARE, "rank %d read %d prompts into a chunk, rank 0 %d (did the file change?)",
                     dist_rank(), n, n0);
    return dist_agree(rc, e);
}

/* One rank's slice of a chunk: generates and scores it into memory, then rank 0
 * writes every rank's records in rank order, which is prompt order.  A collective. */
static int run_slice(FILE *out, const Opts *o, Model *m, Model *rm, const Tokenizer *tok, PromptExample *px, int n,
                     long first_group, Prog *pg, Totals *tot, Error *e) {
    char *buf = NULL, *all = NULL;
    size_t len = 0, all_len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) die_internal("open_memstream failed");
    int rc = n > 0 ? run_chunk(mem, o, m, rm, tok, px, n, first_group, pg, tot, e) : 0;
    if (fclose(mem) != 0 && rc == 0) rc = err_set(e, EX_SOFTWARE, "cannot buffer the records");
    rc = dist_agree(rc, e);
    if (rc == 0) rc = dist_gather_bytes(buf, len, 0, &all, &all_len, e);
    if (rc == 0 && all_len && fwrite(all, 1, all_len, out) != all_len)
        rc = err_set(e, EX_IOERR, "%s: write error", o->out ? o->out : "stdout");
    free(buf);
    free(all);
    return dist_agree(rc, e);
}

/* The summary counts every rank's records. */
static int sum_totals(Totals *t, Error *e) {
    double v[6] = {(double)t->prompts, (double)t->seqs,   (double)t->stop,
                   (double)t->length,  (double)t->tokens, (double)t->pairs};
    int rc = dist_allreduce_sum_f64(v, 6, e);
    t->prompts = (long)v[0], t->seqs = (long)v[1], t->stop = (long)v[2];
    t->length = (long)v[3], t->tokens = (long)v[4], t->pairs = (long)v[5];
    return rc;
}

/* The policy (an adapter folded in), its tokenizer and EOS ids, and the reward model
 * when --reward-model is given; exits on error. */
static void load_models(Opts *o, Model *m, Model *rm, Tokenizer **tok) {
    Error e = {0};
    if (model_load(m, o->model, &e)) err_die(prog, &e);
    lora_merge(m); /* an adapter directory: decode with the adapter folded in */
    if (m->cfg.is_classifier) {
        err_set(&e, EX_USAGE, "%s is a sequence classifier; the policy must be a causal LM", o->model);
        err_die(prog, &e);
    }
    if (model_tokenizer_load(tok, o->model, &e)) err_die(prog, &e);
    if (gen_collect_eos(&o->gen, m, *tok, o->model, &e)) err_die(prog, &e);
    if (!o->rm) return;
    if (reward_check_tokenizer(o->model, o->rm, &e)) err_die(prog, &e);
    if (model_load(rm, o->rm, &e)) err_die(prog, &e);
    lora_merge(rm);
    model_set_forward_only(rm, 1); /* scores only: the same results, less memory */
    if (!rm->cfg.is_classifier) {
        err_set(&e, EX_USAGE, "%s has no score head (a *ForSequenceClassification directory is needed)", o->rm);
        err_die(prog, &e);
    }
}

/* Reads up to CHUNK prompts into px; *n is how many, *eof set at the end. */
static int read_chunk(DataReader *dr, PromptExample *px, int chunk, int *n, int *eof, Error *e) {
    for (*n = 0; *n < chunk; (*n)++) {
        int r = data_next_prompt(dr, &px[*n], e);
        if (r == DATA_END) {
            *eof = 1;
            return 0;
        }
        if (r) return r;
    }
    return 0;
}

/* Every chunk of prompts of dr: generated, scored and written to out (rank 0), each
 * rank taking its slice under MPI.  A collective. */
static int run_all(FILE *out, const Opts *o, Model *m, Model *rm, const Tokenizer *tok, DataReader *dr, Prog *pg,
                   Totals *tot, Error *e) {
    const int rank = dist_rank(), n_ranks = dist_size();
    int chunk = 4 * o->gen.batch_size > 256 ? 4 * o->gen.batch_size : 256;
    PromptExample *px = xcalloc((size_t)chunk, sizeof(PromptExample));
    long group = 0;
    int rc = 0, eof = 0;
    while (!eof && !rc) {
        int n = 0;
        rc = read_chunk(dr, px, chunk, &n, &eof, e);
        if (n_ranks > 1) {
            /* every rank read the same chunk (or every rank failed to) */
            rc = dist_agree(rc, e);
            if (!rc) rc = same_count(n, e);
        }
        if (!rc && n > 0 && n_ranks == 1) {
            pg->total = pg->done_before + (long)n * o->gen.num_samples;
            rc = run_chunk(out, o, m, rm, tok, px, n, group, pg, tot, e);
        } else if (!rc && n > 0) {
            int lo = (int)((long)n * rank / n_ranks), hi = (int)((long)n * (rank + 1) / n_ranks);
            pg->total = pg->done_before + (long)(hi - lo) * o->gen.num_samples;
            rc = run_slice(out, o, m, rm, tok, px + lo, hi - lo, group + lo, pg, tot, e);
        }
        pg->tokens_before = tot->tokens;
        group += n;
        for (int i = 0; i < n; i++) prompt_example_free(&px[i]);
    }
    free(px);
    if (!rc && n_ranks > 1) rc = sum_totals(tot, e);
    return rc;
}

static void print_summary(const Opts *o, const Totals *tot, const Prog *pg, const DataCounts *dc) {
    double dt = now_seconds() - pg->t0;
    fprintf(stderr, "%s: %ld prompts, %ld completions (%ld stop, %ld length), %ld tokens in %.1f s (%.0f tok/s)", prog,
            tot->prompts, tot->seqs, tot->stop, tot->length, tot->tokens, dt, dt > 0 ? tot->tokens / dt : 0.0);
    if (o->pairs)
        fprintf(stderr, ", %ld pairs (%s), %ld with chosen == rejected not written", tot->pairs,
                rollpairs_strategy_name(o->pairs), tot->identical);
    if (dc->skipped || dc->dropped || dc->truncated)
        fprintf(stderr, "; %ld invalid records skipped, %ld dropped, %ld prompts truncated", dc->skipped, dc->dropped,
                dc->truncated);
    fprintf(stderr, "\n");
}

int main(int argc, char **argv) {
    cli_init(prog);
    Opts o;
    parse_args(&o, argc, argv);
    const char *in = o.in;
    if (o.threads > 0) gemm_threads_set(o.threads);
    atomic_install_signal_cleanup();
    Error e = {0};
    if (dist_init(&e)) err_die(prog, &e);
    const int rank = dist_rank(), n_ranks = dist_size();
    if (rank != 0) o.quiet = 1, o.progress = 0; /* rank 0 talks and writes */
    if (n_ranks > 1 && !strcmp(in, "-")) {
        /* mpirun forwards stdin to rank 0 only */
        fprintf(stderr, "%s: under MPI (%d ranks) the prompts must be a file, not stdin\nTry '%s --help'.\n", prog,
                n_ranks, prog);
        return EX_USAGE;
    }
    Model m, rm;
    Tokenizer *tok = NULL;
    load_models(&o, &m, &rm, &tok);
    DataOptions dopt;
    data_options_default(&dopt);
    dopt.kind = DATA_AUTO;
    dopt.skip_invalid = o.skip_invalid;
    dopt.max_prompt_length = o.max_prompt_length ? o.max_prompt_length : m.cfg.max_seq - 1;
    dopt.truncation = TRUNC_KEEP_END;
    if (o.template_name && chat_template_parse(o.template_name, &dopt.tpl, &e)) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, e.msg, prog);
        return EX_USAGE;
    }
    DataReader *dr;
    if (data_open(&dr, in, tok, &dopt, &e)) err_die(prog, &e);
    o.in_name = data_reader_name(dr); /* errors about a prompt name FILE:LINE */
    AtomicFile af = {0};
    int orc = rank == 0 ? atomic_open(&af, o.out, &e) : 0;
    if (dist_agree(orc, &e)) err_die(prog, &e);

    Prog pg = {.on = cli_progress_enabled(o.progress) && !o.quiet, .t0 = now_seconds()};
    Totals tot = {0};
    int rc = run_all(af.fp, &o, &m, o.rm ? &rm : NULL, tok, dr, &pg, &tot, &e);
    if (pg.on) fprintf(stderr, "\n");
    if (rc) {
        if (rank == 0) atomic_abort(&af);
        err_die(prog, &e);
    }
    int crc = rank == 0 ? atomic_commit(&af, &e) : 0;
    if (dist_agree(crc, &e)) err_die(prog, &e);
    if (!o.quiet) print_summary(&o, &tot, &pg, data_counts(dr));
    data_close(dr);
    tok_free(tok);
    if (o.rm) model_free(&rm);
    model_free(&m);
    return 0;
}
