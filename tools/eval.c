/* eval — did alignment work?  Samples from the aligned model and from the SFT
 * model on held-out prompts and reports, for the bundled task and any reward model:
 *   gold score (common/data/task.h task_gold; mean over samples, a fraction in [0,1]),
 *   reward-model score (mean), win rate of the aligned model against the SFT model
 *   (per prompt and sample index: task_utility when the prompt is a task prompt,
 *   else the reward; a tie counts 1/2), KL to the SFT model (mean over the aligned
 *   model's samples of log pi(y|x) - log pi_sft(y|x), the sequence-level k1
 *   estimate TRL logs as objective/kl; both at temperature 1 on the raw logits) and
 *   mean completion length in tokens.
 * Writes DIR/report.json (gold_before, gold_after, ...) and DIR/report.md, with loss
 * and reward curves drawn by gnuplot from the training metrics JSONL (--log). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "data/data.h"
#include "kernels/gemm.h"
#include "generate/generate.h"
#include "base/jsonl.h"
#include "model/lora.h"
#include "model/model.h"
#include "rl/reward.h"
#include "data/task.h"
#include "formats/tokenizer.h"
#include "base/util.h"

static const char *prog = "cherry-eval";

static void usage(void) {
    printf("usage: %s -m MODEL --sft SFT_MODEL -o DIR [options] PROMPTS.jsonl\n"
           "Compare an aligned model with its SFT model on held-out prompts; write DIR/report.json and\n"
           "DIR/report.md (with loss and reward curves from --log).\n\n"
           "  -m, --model DIR          the aligned model\n"
           "      --sft DIR            the SFT model it started from (the baseline)\n"
           "  -o, --out DIR            where report.json, report.md and the PNG curves go\n"
           "      --reward-model DIR   also score samples with this reward model\n"
           "      --log FILE           training metrics JSONL of the alignment stage (for the curves)\n"
           "      --name NAME          pipeline name shown in the report (default: DIR's name)\n"
           "      --prompt-format FMT  how the aligned model sees a prompt: FMT with {prompt} replaced by\n"
           "                           the prompt text (Chain of Hindsight: coh-format --inference-prefix)\n"
           "      --num-samples N      samples per prompt (default 2)\n"
           "      --max-new-tokens N   (default 32)\n"
           "      --temperature T      sampling temperature (default 1.0; 0 = greedy)\n"
           "      --top-p P            (default 1.0)\n"
           "      --stop STRING        end a sample when it contains STRING (repeatable; both models;\n"
           "                           Chain of Hindsight's answer end marker); \\n, \\t and \\\\ are\n"
           "                           read as newline, tab and backslash\n"
           "      --template NAME      chat template for message prompts (default plain)\n"
           "      --batch-size N       sequences decoded together (default 16)\n"
           "      --seed N             (default 1)\n"
           "      --threads N          (default: all cores)\n"
           "  -q, --quiet              no summary on stderr\n"
           "  -h, --help, --version\n",
           prog);
}

typedef struct Side {
    const char *name;
    Model m;
    GenSeq *seqs; /* [n_prompts * ns] */
    char **texts; /* decoded completions */
    double *gold, *util, *reward, *logp_self, *logp_sft;
} Side;

/* Sum of log p(completion | prompt) under m, one sequence at a time (B = 1). */
static double completion_logprob(Model *m, const int *prompt, int np, const int *comp, int nc) {
    int T = np + nc;
    int *tok = xmalloc(sizeof(int) * T), *tgt = xmalloc(sizeof(int) * T);
    float *lp = xmalloc(sizeof(float) * T);
    memcpy(tok, prompt, sizeof(int) * np);
    memcpy(tok + np, comp, sizeof(int) * nc);
    for (int t = 0; t < T; t++) tgt[t] = (t >= np - 1 && t + 1 < T) ? tok[t + 1] : -1;
    model_forward(m, tok, NULL, NULL, 1, T);
    model_logprobs(m, tgt, lp, NULL);
    double s = 0;
    for (int t = 0; t < T; t++)
        if (tgt[t] >= 0) s += lp[t];
    free(tok);
    free(tgt);
    free(lp);
    return s;
}

/* --stop "\n": a newline is awkward to pass through make and sh, so the three
 * escapes a stop string needs are read here (in place: the result is never longer). */
static char *unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return s;
}

static double mean(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0;
}

/* Writes curve data and a gnuplot script, runs gnuplot; returns 1 when PNG made. */
static int plot_curve(const char *log_path, const char *key, const char *dir, const char *png_name, const char *title) {
    JsonlReader r;
    Error e = {0};
    if (jsonl_open(&r, log_path, &e)) return 0;
    char *dat = path_join(dir, "curve.dat.tmp");
    FILE *f = fopen(dat, "w");
    int n = 0;
    json_t *rec;
    while (f && !jsonl_next(&r, &rec, &e) && rec) {
        json_t *s = json_object_get(rec, "step"), *v = json_object_get(rec, key);
        if (json_is_number(s) && json_is_number(v)) {
            fprintf(f, "%g %.9g\n", json_number_value(s), json_number_value(v));
            n++;
        }
        json_decref(rec);
    }
    jsonl_close(&r);
    if (f) fclose(f);
    int ok = 0;
    if (n >= 1) {
        char *png = path_join(dir, png_name);
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "gnuplot -e \"set terminal png size 640,400; set output '%s'; set title '%s'; set xlabel 'step'; "
                 "set grid; plot '%s' using 1:2 with linespoints title '%s'\" 2>/dev/null",
                 png, title, dat, key);
        ok = system(cmd) == 0 && file_exists(png);
        free(png);
    }
    remove(dat);
    free(dat);
    return ok;
}

static void md_escape_line(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\n')
            fputs("\\n", f);
        else if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s, f);
    }
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *sft_dir = NULL, *out_dir = NULL, *rm_dir = NULL, *log_path = NULL, *name = NULL,
               *prefix = NULL, *tpl_name = "plain";
    int ns = 2, quiet = 0, threads = 0;
    GenConfig gc = gen_config_default();
    gc.max_new_tokens = 32;
    gc.batch_size = 16;
    gc.seed = 1;
    enum {
        O_SFT = 1000,
        O_RM,
        O_LOG,
        O_NAME,
        O_PREFIX,
        O_NS,
        O_MAXNEW,
        O_TEMP,
        O_TOPP,
        O_TPL,
        O_BS,
        O_SEED,
        O_THR,
        O_VER,
        O_STOP
    };
    const char *stops[16];
    int n_stops = 0;
    static struct option opts[] = {{"model", 1, 0, 'm'},
                                   {"sft", 1, 0, O_SFT},
                                   {"out", 1, 0, 'o'},
                                   {"reward-model", 1, 0, O_RM},
                                   {"log", 1, 0, O_LOG},
                                   {"name", 1, 0, O_NAME},
                                   {"prompt-format", 1, 0, O_PREFIX},
                                   {"num-samples", 1, 0, O_NS},
                                   {"max-new-tokens", 1, 0, O_MAXNEW},
                                   {"temperature", 1, 0, O_TEMP},
                                   {"top-p", 1, 0, O_TOPP},
                                   {"template", 1, 0, O_TPL},
                                   {"batch-size", 1, 0, O_BS},
                                   {"seed", 1, 0, O_SEED},
                                   {"threads", 1, 0, O_THR},
                                   {"stop", 1, 0, O_STOP},
                                   {"quiet", 0, 0, 'q'},
                                   {"help", 0, 0, 'h'},
                                   {"version", 0, 0, O_VER},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_dir = optarg;
            break;
        case O_SFT:
            sft_dir = optarg;
            break;
        case 'o':
            out_dir = optarg;
            break;
        case O_RM:
            rm_dir = optarg;
            break;
        case O_LOG:
            log_path = optarg;
            break;
        case O_NAME:
            name = optarg;
            break;
        case O_PREFIX:
            prefix = optarg;
            break;
        case O_NS:
            ns = cli_int(prog, "--num-samples", optarg);
            break;
        case O_MAXNEW:
            gc.max_new_tokens = cli_int(prog, "--max-new-tokens", optarg);
            break;
        case O_TEMP:
            gc.sampler.temperature = (float)cli_double(prog, "--temperature", optarg);
            break;
        case O_TOPP:
            gc.sampler.top_p = (float)cli_double(prog, "--top-p", optarg);
            break;
        case O_TPL:
            tpl_name = optarg;
            break;
        case O_BS:
            gc.batch_size = cli_int(prog, "--batch-size", optarg);
            break;
        case O_SEED:
            gc.seed = cli_u64(prog, "--seed", optarg);
            break;
        case O_THR:
            threads = cli_int(prog, "--threads", optarg);
            break;
        case O_STOP:
            if (n_stops == 16) cli_usage_error(prog, "--stop: at most 16 stop strings");
            if (!*optarg) cli_usage_error(prog, "--stop: empty stop string");
            stops[n_stops++] = unescape(optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage();
            return 0;
        case O_VER:
            cli_version(prog);
        default:
            cli_usage_error(prog, "unknown option");
        }
    }
    if (!model_dir || !sft_dir || !out_dir) cli_usage_error(prog, "-m, --sft and -o are required");
    if (argc - optind != 1) cli_usage_error(prog, "expected one prompts file");
    if (ns < 1 || ns > 64) cli_usage_error(prog, "--num-samples must be in 1..64");
    if (gc.max_new_tokens < 1) cli_usage_error(prog, "--max-new-tokens must be >= 1");
    const char *prompts_path = argv[optind];
    threads_set(threads);
    atomic_install_signal_cleanup();
    if (!name) {
        const char *s = strrchr(out_dir, '/');
        name = s && s[1] ? s + 1 : out_dir;
    }
    gc.num_samples = ns;
    gc.stop = stops;
    gc.n_stop = n_stops;

    Error e = {0};
    Tokenizer *tok = NULL;
    if (model_tokenizer_load(&tok, sft_dir, &e)) err_die(prog, &e);
    if (tok_eos_id(tok) >= 0) gc.eos_ids[gc.n_eos++] = tok_eos_id(tok);

    /* prompts */
    DataOptions dopt;
    data_options_default(&dopt);
    dopt.kind = DATA_PROMPT_ONLY;
    if (chat_template_parse(tpl_name, &dopt.tpl, &e)) err_die(prog, &e);
    DataReader *dr;
    if (data_open(&dr, prompts_path, tok, &dopt, &e)) err_die(prog, &e);
    int cap = 64, np = 0;
    PromptExample *pe = xmalloc(sizeof *pe * cap);
    for (;;) {
        if (np == cap) pe = xrealloc(pe, sizeof *pe * (cap *= 2));
        int rc = data_next_prompt(dr, &pe[np], &e);
        if (rc == DATA_END) break;
        if (rc) err_die(prog, &e);
        np++;
    }
    data_close(dr);
    if (np == 0) {
        err_set(&e, EX_DATAERR, "%s: no prompts", prompts_path);
        err_die(prog, &e);
    }
    char **prompt_text = xmalloc(sizeof(char *) * np);
    for (int i = 0; i < np; i++) {
        json_t *p = pe[i].prompt;
        prompt_text[i] = xstrdup(json_is_string(p) ? json_string_value(p) : "");
    }

    /* the aligned model may see the prompt inside a format (CoH's feedback prefix) */
    int **ids_sft = xmalloc(sizeof(int *) * np), **ids_pol = xmalloc(sizeof(int *) * np);
    int *len_sft = xmalloc(sizeof(int) * np), *len_pol = xmalloc(sizeof(int) * np);
    for (int i = 0; i < np; i++) {
        ids_sft[i] = pe[i].ids;
        len_sft[i] = pe[i].n;
        if (prefix && *prefix) {
            const char *at = strstr(prefix, "{prompt}");
            if (!at || !json_is_string(pe[i].prompt)) {
                err_set(&e, EX_USAGE, "--prompt-format needs {prompt} and string prompts");
                err_die(prog, &e);
            }
            size_t n = strlen(prefix) + strlen(prompt_text[i]) + 1;
            char *text = xmalloc(n);
            snprintf(text, n, "%.*s%s%s", (int)(at - prefix), prefix, prompt_text[i], at + 8);
            IntVec v = {0};
            tok_post_prefix(tok, &v);
            tok_encode(tok, text, strlen(text), 0, &v);
            free(text);
            ids_pol[i] = v.v;
            len_pol[i] = v.n;
        } else {
            ids_pol[i] = pe[i].ids;
            len_pol[i] = pe[i].n;
        }
    }

    Side side[2] = {{.name = "sft"}, {.name = "aligned"}};
    if (model_load(&side[0].m, sft_dir, &e)) err_die(prog, &e);
    if (model_load(&side[1].m, model_dir, &e)) err_die(prog, &e);
    lora_merge(&side[0].m); /* adapter directories decode with the adapter folded in */
    lora_merge(&side[1].m);
    Model rm;
    int have_rm = 0;
    if (rm_dir) {
        if (model_load(&rm, rm_dir, &e)) err_die(prog, &e);
        if (!rm.cfg.is_classifier) {
            err_set(&e, EX_DATAERR, "%s: not a reward model (no score head)", rm_dir);
            err_die(prog, &e);
        }
        have_rm = 1;
    }
    int N = np * ns;
    for (int s = 0; s < 2; s++) {
        Side *sd = &side[s];
        sd->seqs = xcalloc((size_t)N, sizeof(GenSeq));
        int **ids = s ? ids_pol : ids_sft;
        int *lens = s ? len_pol : len_sft;
        if (generate(&sd->m, &gc, tok, (const int *const *)ids, lens, NULL, np, sd->seqs, NULL, NULL, &e))
            err_die(prog, &e);
        sd->texts = xmalloc(sizeof(char *) * N);
        sd->gold = xcalloc((size_t)N, sizeof(double));
        sd->util = xcalloc((size_t)N, sizeof(double));
        sd->reward = xcalloc((size_t)N, sizeof(double));
        sd->logp_self = xcalloc((size_t)N, sizeof(double));
        sd->logp_sft = xcalloc((size_t)N, sizeof(double));
        for (int k = 0; k < N; k++) {
            GenSeq *g = &sd->seqs[k];
            int p = k / ns;
            size_t tl;
            if (tok_decode(tok, g->tokens, g->n_tokens, 1, &sd->texts[k], &tl, &e)) err_die(prog, &e);
            sd->gold[k] = task_gold(prompt_text[p], sd->texts[k]);
            sd->util[k] = task_utility(prompt_text[p], sd->texts[k]);
        }
        if (have_rm) { /* prompt + completion, scored in batches by the shared reward_score */
            int **full = xmalloc(sizeof(int *) * N), *flen = xmalloc(sizeof(int) * N);
            float *r = xmalloc(sizeof(float) * N);
            for (int k = 0; k < N; k++) {
                int p = k / ns;
                flen[k] = len_sft[p] + sd->seqs[k].n_tokens;
                full[k] = xmalloc(sizeof(int) * (flen[k] ? flen[k] : 1));
                memcpy(full[k], ids_sft[p], sizeof(int) * len_sft[p]);
                memcpy(full[k] + len_sft[p], sd->seqs[k].tokens, sizeof(int) * sd->seqs[k].n_tokens);
            }
            if (reward_score(&rm, (const int *const *)full, flen, N, gc.batch_size, r, &e)) err_die(prog, &e);
            for (int k = 0; k < N; k++) {
                sd->reward[k] = r[k];
                free(full[k]);
            }
            free(full);
            free(flen);
            free(r);
        }
    }
    /* KL(aligned || sft) on the aligned model's samples, both on raw logits */
    Side *al = &side[1];
    for (int k = 0; k < N; k++) {
        GenSeq *g = &al->seqs[k];
        int p = k / ns;
        if (g->n_tokens == 0) continue;
        al->logp_self[k] = completion_logprob(&al->m, ids_pol[p], len_pol[p], g->tokens, g->n_tokens);
        al->logp_sft[k] = completion_logprob(&side[0].m, ids_sft[p], len_sft[p], g->tokens, g->n_tokens);
    }
    double win = 0;
    int task_prompts = 0;
    for (int k = 0; k < N; k++) {
        double a, b;
        if (side[1].util[k] >= 0) {
            a = side[1].util[k];
            b = side[0].util[k];
            task_prompts++;
        } else {
            a = side[1].reward[k];
            b = side[0].reward[k];
        }
        win += a > b ? 1.0 : a == b ? 0.5 : 0.0;
    }
    double kl = 0, len_b = 0, len_a = 0;
    for (int k = 0; k < N; k++) {
        kl += al->logp_self[k] - al->logp_sft[k];
        len_b += side[0].seqs[k].n_tokens;
        len_a += side[1].seqs[k].n_tokens;
    }
    kl /= N;
    len_b /= N;
    len_a /= N;
    double gold_b = mean(side[0].gold, N), gold_a = mean(side[1].gold, N);

    /* report.json */
    if (mkdir_p(out_dir, &e)) err_die(prog, &e);
    json_t *rep = json_object();
    json_object_set_new(rep, "name", json_string(name));
    json_object_set_new(rep, "model", json_string(model_dir));
    json_object_set_new(rep, "sft_model", json_string(sft_dir));
    json_object_set_new(rep, "prompts", json_integer(np));
    json_object_set_new(rep, "samples_per_prompt", json_integer(ns));
    json_object_set_new(rep, "temperature", json_real(gc.sampler.temperature));
    json_object_set_new(rep, "task_prompts", json_integer(task_prompts / (ns ? ns : 1)));
    json_object_set_new(rep, "gold_before", json_real(gold_b));
    json_object_set_new(rep, "gold_after", json_real(gold_a));
    json_object_set_new(rep, "gold_delta", json_real(gold_a - gold_b));
    if (have_rm) {
        json_object_set_new(rep, "reward_before", json_real(mean(side[0].reward, N)));
        json_object_set_new(rep, "reward_after", json_real(mean(side[1].reward, N)));
    } else {
        json_object_set_new(rep, "reward_before", json_null());
        json_object_set_new(rep, "reward_after", json_null());
    }
    json_object_set_new(rep, "win_rate", json_real(win / N));
    json_object_set_new(rep, "kl_to_sft", json_real(kl));
    json_object_set_new(rep, "mean_length_before", json_real(len_b));
    json_object_set_new(rep, "mean_length_after", json_real(len_a));
    json_t *ex = json_array();
    for (int k = 0; k < N && k < 8 * ns; k += ns) {
        json_t *o = json_object();
        json_object_set_new(o, "prompt", json_string(prompt_text[k / ns]));
        json_object_set_new(o, "sft", json_string(side[0].texts[k]));
        json_object_set_new(o, "aligned", json_string(side[1].texts[k]));
        json_array_append_new(ex, o);
    }
    json_object_set_new(rep, "examples", ex);
    char *jpath = path_join(out_dir, "report.json");
    AtomicFile af;
    if (atomic_open(&af, jpath, &e)) err_die(prog, &e);
    json_dumpf(rep, af.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', af.fp);
    if (atomic_commit(&af, &e)) err_die(prog, &e);

    /* report.md with the curves */
    int have_loss = 0, have_rew = 0;
    const char *rew_key = NULL;
    if (log_path) {
        have_loss = plot_curve(log_path, "loss", out_dir, "loss.png", "training loss");
        static const char *const keys[] = {"rewards/margins",    "objective/scores", "reward",
                                           "rewards/accuracies", "accuracy",         "mean_token_accuracy"};
        for (int i = 0; i < 6 && !have_rew; i++)
            if ((have_rew = plot_curve(log_path, keys[i], out_dir, "reward.png", "reward during training")))
                rew_key = keys[i];
    }
    char *mpath = path_join(out_dir, "report.md");
    if (atomic_open(&af, mpath, &e)) err_die(prog, &e);
    FILE *f = af.fp;
    fprintf(f, "# cherry report: %s\n\n", name);
    fprintf(f,
            "Aligned model `%s` against its SFT model `%s` on %d held-out prompts, %d samples each "
            "(temperature %.2f, at most %d new tokens).\n\n",
            model_dir, sft_dir, np, ns, gc.sampler.temperature, gc.max_new_tokens);
    fprintf(f, "| metric | SFT | aligned |\n|---|---|---|\n");
    fprintf(f, "| gold score (fraction fully good) | %.3f | %.3f |\n", gold_b, gold_a);
    if (have_rm) fprintf(f, "| reward-model score | %.3f | %.3f |\n", mean(side[0].reward, N), mean(side[1].reward, N));
    fprintf(f, "| mean length (tokens) | %.1f | %.1f |\n", len_b, len_a);
    fprintf(f,
            "\nWin rate of the aligned model against SFT: **%.3f** (ties count 1/2). "
            "KL(aligned || SFT), sequence-level k1 estimate: **%.3f** nats.\n\n",
            win / N, kl);
    if (prefix && *prefix) { /* Chain of Hindsight: the two models do not see the same input */
        fprintf(f, "The aligned model saw each prompt in the format `");
        for (const char *c = prefix; *c; c++) /* one line in the Markdown: newlines as \n */
            if (*c == '\n') fputs("\\n", f);
            else fputc(*c, f);
        fprintf(f,
                "`, the SFT model the plain prompt, and "
                "each sample's log-probability is taken that way on either side, so the KL figure measures how "
                "differently the two models answer as each is used: it includes what the format itself "
                "changes (for Chain of Hindsight, the feedback prefix), and is not the KL of two models on the "
                "same input.\n\n");
    }
    fprintf(f, "Gold score change: **%+.3f**.\n\n", gold_a - gold_b);
    if (have_loss) fprintf(f, "![training loss](loss.png)\n\n");
    if (have_rew) fprintf(f, "![%s](reward.png)\n\n", rew_key);
    if (log_path && !have_loss) fprintf(f, "(no curves: gnuplot missing or %s has no loss records)\n\n", log_path);
    fprintf(f, "## Samples\n\n| prompt | SFT | aligned |\n|---|---|---|\n");
    for (int k = 0; k < N && k < 8 * ns; k += ns) {
        fputs("| ", f);
        md_escape_line(f, prompt_text[k / ns]);
        fputs(" | ", f);
        md_escape_line(f, side[0].texts[k]);
        fputs(" | ", f);
        md_escape_line(f, side[1].texts[k]);
        fputs(" |\n", f);
    }
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    if (!quiet)
        fprintf(stderr, "%s: %s: gold %.3f -> %.3f (%+.3f), win rate %.3f, KL %.3f, length %.1f -> %.1f\n", prog, name,
                gold_b, gold_a, gold_a - gold_b, win / N, kl, len_b, len_a);
    return 0;
}
