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
 * and reward curves drawn by gnuplot from the training metrics JSONL (--log).
 * gnuplot runs without a shell, in DIR, on a script that names only files eval chose,
 * so no output path is ever pasted into a command line or a gnuplot string. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cli.h"
#include "base/jsonl.h"
#include "base/util.h"
#include "data/data.h"
#include "data/task.h"
#include "formats/tokenizer.h"
#include "generate/gen_flags.h"
#include "generate/generate.h"
#include "kernels/gemm.h"
#include "model/lora.h"
#include "model/model.h"
#include "rl/reward.h"

static const char *prog = "cherry-eval";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: %s -m MODEL --sft SFT_MODEL -o DIR [options] PROMPTS.jsonl\n"
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
            "      --num-samples N      samples per prompt (default 2)\n",
            prog);
    gen_flags_usage(out, 32, "0 = greedy (default 1)");
    fprintf(out, "      --template NAME      chat template for message prompts (default plain)\n"
                 "      --batch-size N       sequences decoded together (default 16)\n"
                 "      --seed N             (default 1)\n"
                 "      --threads N          (default: all cores)\n"
                 "  -q, --quiet              no summary on stderr\n"
                 "  -h, --help, --version\n");
}

typedef struct Opts {
    const char *model_dir, *sft_dir, *out_dir, *rm_dir, *log_path, *name, *prefix, *tpl_name, *prompts_path;
    int ns, quiet, threads;
    GenConfig gc;
    GenFlags gf;
} Opts;

static void parse_args(Opts *o, int argc, char **argv) {
    enum { O_SFT = 1000, O_RM, O_LOG, O_NAME, O_PREFIX, O_NS, O_TPL, O_BS, O_SEED, O_THR, O_VER };
    static struct option opts[] = {{"model", 1, 0, 'm'},
                                   {"sft", 1, 0, O_SFT},
                                   {"out", 1, 0, 'o'},
                                   {"reward-model", 1, 0, O_RM},
                                   {"log", 1, 0, O_LOG},
                                   {"name", 1, 0, O_NAME},
                                   {"prompt-format", 1, 0, O_PREFIX},
                                   {"num-samples", 1, 0, O_NS},
                                   GEN_FLAG_OPTIONS,
                                   {"template", 1, 0, O_TPL},
                                   {"batch-size", 1, 0, O_BS},
                                   {"seed", 1, 0, O_SEED},
                                   {"threads", 1, 0, O_THR},
                                   {"quiet", 0, 0, 'q'},
                                   {"help", 0, 0, 'h'},
                                   {"version", 0, 0, O_VER},
                                   {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->tpl_name = "plain";
    o->ns = 2;
    o->gc = gen_config_default();
    o->gc.max_new_tokens = 32;
    o->gc.batch_size = 16;
    o->gc.seed = 1;
    gen_flags_init(&o->gf, &o->gc);
    int c;
    while ((c = getopt_long(argc, argv, "m:o:qh", opts, NULL)) != -1) {
        if (gen_flags_parse(&o->gf, prog, c, optarg)) continue;
        switch (c) {
        case 'm':
            o->model_dir = optarg;
            break;
        case O_SFT:
            o->sft_dir = optarg;
            break;
        case 'o':
            o->out_dir = optarg;
            break;
        case O_RM:
            o->rm_dir = optarg;
            break;
        case O_LOG:
            o->log_path = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_PREFIX:
            o->prefix = optarg;
            break;
        case O_NS:
            o->ns = cli_int(prog, "--num-samples", optarg);
            break;
        case O_TPL:
            o->tpl_name = optarg;
            break;
        case O_BS:
            o->gc.batch_size = cli_int_min(prog, "--batch-size", optarg, 1);
            break;
        case O_SEED:
            o->gc.seed = cli_u64(prog, "--seed", optarg);
            break;
        case O_THR:
            o->threads = cli_int(prog, "--threads", optarg);
            break;
        default:
            cli_common_option(prog, c, O_VER, usage, &o->quiet);
        }
    }
    if (!o->model_dir || !o->sft_dir || !o->out_dir) cli_usage_error(prog, "-m, --sft and -o are required");
    if (argc - optind != 1) cli_usage_error(prog, "expected one prompts file");
    if (o->ns < 1 || o->ns > 64) cli_usage_error(prog, "--num-samples must be in 1..64");
    gen_flags_finish(&o->gf, prog);
    o->prompts_path = argv[optind];
    if (!o->name) {
        const char *s = strrchr(o->out_dir, '/');
        o->name = s && s[1] ? s + 1 : o->out_dir;
    }
    o->gc.num_samples = o->ns;
}

/* ---- prompts ----------------------------------------------------------------------- */

typedef struct Prompts {
    int n;
    PromptExample *px;
    char **text;   /* the prompt as text ("" for a message list) */
    int **ids_pol; /* as the aligned model sees it (--prompt-format) */
    int *len_pol;
    int **ids_sft; /* as the SFT model sees it (px[i].ids) */
    int *len_sft;
    int own_pol; /* ids_pol[i] are allocated here */
} Prompts;

/* FMT with {prompt} replaced by TEXT, tokenized as a prompt. */
static void format_prompt(Tokenizer *tok, const char *fmt, const char *text, int **ids, int *len) {
    const char *at = strstr(fmt, "{prompt}");
    size_t n = strlen(fmt) + strlen(text) + 1;
    char *s = xmalloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(at - fmt), fmt, text, at + 8);
    IntVec v = {0};
    tok_post_prefix(tok, &v);
    tok_encode(tok, s, strlen(s), 0, &v);
    free(s);
    *ids = v.v;
    *len = v.n;
}

static void read_prompts(const Opts *o, Tokenizer *tok, Prompts *P) {
    Error e = {0};
    DataOptions dopt;
    data_options_default(&dopt);
    dopt.kind = DATA_PROMPT_ONLY;
    if (chat_template_parse(o->tpl_name, &dopt.tpl, &e)) err_die(prog, &e);
    char *paths[1] = {(char *)o->prompts_path};
    memset(P, 0, sizeof *P);
    if (data_read_files_prompts(prog, paths, 1, tok, &dopt, o->quiet, &P->px, &P->n, &e)) err_die(prog, &e);
    if (P->n == 0) {
        err_set(&e, EX_DATAERR, "%s: no prompts", o->prompts_path);
        err_die(prog, &e);
    }
    int np = P->n;
    P->text = xmalloc(sizeof(char *) * np);
    P->ids_sft = xmalloc(sizeof(int *) * np), P->ids_pol = xmalloc(sizeof(int *) * np);
    P->len_sft = xmalloc(sizeof(int) * np), P->len_pol = xmalloc(sizeof(int) * np);
    P->own_pol = o->prefix && *o->prefix;
    for (int i = 0; i < np; i++) {
        json_t *p = P->px[i].prompt;
        P->text[i] = xstrdup(json_is_string(p) ? json_string_value(p) : "");
        P->ids_sft[i] = P->ids_pol[i] = P->px[i].ids;
        P->len_sft[i] = P->len_pol[i] = P->px[i].n;
        if (!P->own_pol) continue;
        /* the aligned model may see the prompt inside a format (CoH's feedback prefix) */
        if (!strstr(o->prefix, "{prompt}") || !json_is_string(p)) {
            err_set(&e, EX_USAGE, "--prompt-format needs {prompt} and string prompts");
            err_die(prog, &e);
        }
        format_prompt(tok, o->prefix, P->text[i], &P->ids_pol[i], &P->len_pol[i]);
    }
}

/* ---- sampling and scoring --------------------------------------------------------- */

typedef struct Side {
    Model m;
    GenSeq *seqs; /* [n_prompts * ns] */
    char **texts; /* decoded completions */
    double *gold, *util, *reward;
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

/* Samples ns completions per prompt from side sd (prompts ids/lens), decodes them,
 * scores them with the task and, when rm is given, the reward model (which reads
 * the prompt as the SFT model sees it). */
static void sample_side(const Opts *o, Side *sd, const Tokenizer *tok, const Prompts *P, int **ids, int *lens,
                        Model *rm) {
    Error e = {0};
    int N = P->n * o->ns;
    sd->seqs = xcalloc((size_t)N, sizeof(GenSeq));
    if (generate(&sd->m, &o->gc, tok, (const int *const *)ids, lens, NULL, P->n, sd->seqs, NULL, NULL, &e))
        err_die(prog, &e);
    sd->texts = xmalloc(sizeof(char *) * N);
    sd->gold = xcalloc((size_t)N, sizeof(double));
    sd->util = xcalloc((size_t)N, sizeof(double));
    sd->reward = xcalloc((size_t)N, sizeof(double));
    for (int k = 0; k < N; k++) {
        GenSeq *g = &sd->seqs[k];
        size_t tl;
        if (tok_decode(tok, g->tokens, g->n_tokens, 1, &sd->texts[k], &tl, &e)) err_die(prog, &e);
        sd->gold[k] = task_gold(P->text[g->prompt], sd->texts[k]);
        sd->util[k] = task_utility(P->text[g->prompt], sd->texts[k]);
    }
    if (!rm) return;
    float *r = xmalloc(sizeof(float) * N);
    if (reward_score_generated(rm, (const int *const *)P->ids_sft, P->len_sft, sd->seqs, N, o->gc.batch_size, r, &e))
        err_die(prog, &e);
    for (int k = 0; k < N; k++) sd->reward[k] = r[k];
    free(r);
}

/* ---- the report ---------------------------------------------------------------------- */

typedef struct Summary {
    int np, ns, N, have_rm, task_prompts;
    double gold_b, gold_a, reward_b, reward_a, win, kl, len_b, len_a;
} Summary;

static double mean(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return n ? s / n : 0;
}

/* side[0] = SFT, side[1] = aligned. */
static void summarise(const Opts *o, Side *side, const Prompts *P, int have_rm, Summary *S) {
    int N = P->n * o->ns;
    memset(S, 0, sizeof *S);
    S->np = P->n, S->ns = o->ns, S->N = N, S->have_rm = have_rm;
    Side *al = &side[1];
    for (int k = 0; k < N; k++) {
        /* KL(aligned || sft) on the aligned model's samples, both on raw logits */
        GenSeq *g = &al->seqs[k];
        int p = g->prompt;
        if (g->n_tokens > 0)
            S->kl += completion_logprob(&al->m, P->ids_pol[p], P->len_pol[p], g->tokens, g->n_tokens) -
                     completion_logprob(&side[0].m, P->ids_sft[p], P->len_sft[p], g->tokens, g->n_tokens);
        double a = al->reward[k], b = side[0].reward[k];
        if (al->util[k] >= 0) {
            a = al->util[k];
            b = side[0].util[k];
            S->task_prompts++;
        }
        S->win += a > b ? 1.0 : a == b ? 0.5 : 0.0;
        S->len_b += side[0].seqs[k].n_tokens;
        S->len_a += al->seqs[k].n_tokens;
    }
    S->win /= N, S->kl /= N, S->len_b /= N, S->len_a /= N;
    S->task_prompts /= o->ns;
    S->gold_b = mean(side[0].gold, N), S->gold_a = mean(al->gold, N);
    S->reward_b = mean(side[0].reward, N), S->reward_a = mean(al->reward, N);
}

static void write_json_report(const Opts *o, const Summary *S, const Side *side, const Prompts *P) {
    Error e = {0};
    json_t *rep = json_object();
    json_object_set_new(rep, "name", json_string(o->name));
    json_object_set_new(rep, "model", json_string(o->model_dir));
    json_object_set_new(rep, "sft_model", json_string(o->sft_dir));
    json_object_set_new(rep, "prompts", json_integer(S->np));
    json_object_set_new(rep, "samples_per_prompt", json_integer(S->ns));
    json_object_set_new(rep, "temperature", json_real(o->gc.sampler.temperature));
    json_object_set_new(rep, "task_prompts", json_integer(S->task_prompts));
    json_object_set_new(rep, "gold_before", json_real(S->gold_b));
    json_object_set_new(rep, "gold_after", json_real(S->gold_a));
    json_object_set_new(rep, "gold_delta", json_real(S->gold_a - S->gold_b));
    json_object_set_new(rep, "reward_before", S->have_rm ? json_real(S->reward_b) : json_null());
    json_object_set_new(rep, "reward_after", S->have_rm ? json_real(S->reward_a) : json_null());
    json_object_set_new(rep, "win_rate", json_real(S->win));
    json_object_set_new(rep, "kl_to_sft", json_real(S->kl));
    json_object_set_new(rep, "mean_length_before", json_real(S->len_b));
    json_object_set_new(rep, "mean_length_after", json_real(S->len_a));
    json_t *ex = json_array();
    for (int k = 0; k < S->N && k < 8 * S->ns; k += S->ns) {
        json_t *x = json_object();
        json_object_set_new(x, "prompt", json_string(P->text[k / S->ns]));
        json_object_set_new(x, "sft", json_string(side[0].texts[k]));
        json_object_set_new(x, "aligned", json_string(side[1].texts[k]));
        json_array_append_new(ex, x);
    }
    json_object_set_new(rep, "examples", ex);
    char *jpath = path_join(o->out_dir, "report.json");
    AtomicFile af;
    if (atomic_open(&af, jpath, &e)) err_die(prog, &e);
    json_dumpf(rep, af.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', af.fp);
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    json_decref(rep);
    free(jpath);
}

/* S as a gnuplot single-quoted string (a quote is doubled; nothing else is special). */
static void gp_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* Runs gnuplot on SCRIPT in directory DIR, without a shell; 1 when it exits 0. */
static int run_gnuplot(const char *dir, const char *script) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1), dup2(null, 2);
        if (chdir(dir) != 0) _exit(127);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Draws KEY of the metrics log against the step into DIR/PNG_NAME (written as a
 * temporary and renamed); returns 1 when the PNG was made. */
static int plot_curve(const char *log_path, const char *key, const char *dir, const char *png_name, const char *title) {
    JsonlReader r;
    Error e = {0};
    if (jsonl_open(&r, log_path, &e)) return 0;
    char *dat = path_join(dir, "curve.dat.tmp"), *gp = path_join(dir, "curve.gp.tmp");
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
    int ok = f && fclose(f) == 0 && n >= 1;
    char tmp_png[256];
    snprintf(tmp_png, sizeof tmp_png, "%s.tmp", png_name);
    FILE *g = ok ? fopen(gp, "w") : NULL;
    if (g) { /* file names relative to DIR, where gnuplot runs; noenhanced: '_' and '/' stay themselves */
        fputs("set terminal png noenhanced size 640,400\nset output ", g);
        gp_quoted(g, tmp_png);
        fputs("\nset title ", g);
        gp_quoted(g, title);
        fputs("\nset xlabel 'training step'\nset ylabel ", g);
        gp_quoted(g, key);
        fputs("\nset grid\nplot 'curve.dat.tmp' using 1:2 with linespoints title ", g);
        gp_quoted(g, key);
        fputc('\n', g);
        ok = fclose(g) == 0 && run_gnuplot(dir, "curve.gp.tmp");
    } else {
        ok = 0;
    }
    char *png = path_join(dir, png_name), *tpng = path_join(dir, tmp_png);
    ok = ok && file_exists(tpng) && rename(tpng, png) == 0;
    remove(tpng), remove(dat), remove(gp);
    free(png), free(tpng), free(dat), free(gp);
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

/* The curves of --log: the loss, and the first reward-like metric the log has.
 * *rew_key is that metric's name (NULL when none). */
static void plot_curves(const Opts *o, int *have_loss, int *have_rew, const char **rew_key) {
    static const char *const keys[] = {"rewards/margins",    "objective/scores", "reward",
                                       "rewards/accuracies", "accuracy",         "mean_token_accuracy"};
    *have_loss = *have_rew = 0;
    *rew_key = NULL;
    if (!o->log_path) return;
    *have_loss = plot_curve(o->log_path, "loss", o->out_dir, "loss.png", "Training loss per step");
    for (int i = 0; i < 6 && !*have_rew; i++) {
        char title[96];
        snprintf(title, sizeof title, "Reward during training: %s per step", keys[i]);
        if ((*have_rew = plot_curve(o->log_path, keys[i], o->out_dir, "reward.png", title))) *rew_key = keys[i];
    }
}

static void write_md_report(const Opts *o, const Summary *S, const Side *side, const Prompts *P) {
    Error e = {0};
    int have_loss, have_rew;
    const char *rew_key;
    plot_curves(o, &have_loss, &have_rew, &rew_key);
    char *mpath = path_join(o->out_dir, "report.md");
    AtomicFile af;
    if (atomic_open(&af, mpath, &e)) err_die(prog, &e);
    FILE *f = af.fp;
    fprintf(f, "# cherry report: %s\n\n", o->name);
    fprintf(f,
            "Aligned model `%s` against its SFT model `%s` on %d held-out prompts, %d samples each "
            "(temperature %.2f, at most %d new tokens).\n\n",
            o->model_dir, o->sft_dir, S->np, S->ns, o->gc.sampler.temperature, o->gc.max_new_tokens);
    fprintf(f, "| metric | SFT | aligned |\n|---|---|---|\n");
    fprintf(f, "| gold score (fraction fully good) | %.3f | %.3f |\n", S->gold_b, S->gold_a);
    if (S->have_rm) fprintf(f, "| reward-model score | %.3f | %.3f |\n", S->reward_b, S->reward_a);
    fprintf(f, "| mean length (tokens) | %.1f | %.1f |\n", S->len_b, S->len_a);
    fprintf(f,
            "\nWin rate of the aligned model against SFT: **%.3f** (ties count 1/2). "
            "KL(aligned || SFT), sequence-level k1 estimate: **%.3f** nats.\n\n",
            S->win, S->kl);
    const char *prefix = o->prefix;
    if (prefix && *prefix) { /* Chain of Hindsight: the two models do not see the same input */
        fprintf(f, "The aligned model saw each prompt in the format `");
        for (const char *c = prefix; *c; c++) /* one line in the Markdown: newlines as \n */
            if (*c == '\n')
                fputs("\\n", f);
            else
                fputc(*c, f);
        fprintf(f, "`, the SFT model the plain prompt, and "
                   "each sample's log-probability is taken that way on either side, so the KL figure measures how "
                   "differently the two models answer as each is used: it includes what the format itself "
                   "changes (for Chain of Hindsight, the feedback prefix), and is not the KL of two models on the "
                   "same input.\n\n");
    }
    fprintf(f, "Gold score change: **%+.3f**.\n\n", S->gold_a - S->gold_b);
    if (have_loss) fprintf(f, "![training loss](loss.png)\n\n");
    if (have_rew) fprintf(f, "![%s](reward.png)\n\n", rew_key);
    if (o->log_path && !have_loss)
        fprintf(f, "(no curves: gnuplot missing or %s has no loss records)\n\n", o->log_path);
    fprintf(f, "## Samples\n\n| prompt | SFT | aligned |\n|---|---|---|\n");
    for (int k = 0; k < S->N && k < 8 * S->ns; k += S->ns) {
        fputs("| ", f);
        md_escape_line(f, P->text[k / S->ns]);
        fputs(" | ", f);
        md_escape_line(f, side[0].texts[k]);
        fputs(" | ", f);
        md_escape_line(f, side[1].texts[k]);
        fputs(" |\n", f);
    }
    if (atomic_commit(&af, &e)) err_die(prog, &e);
    free(mpath);
}

/* ---- main ------------------------------------------------------------------------------ */

static void load_model(Model *m, const char *dir, int classifier) {
    Error e = {0};
    if (model_load(m, dir, &e)) err_die(prog, &e);
    lora_merge(m);                /* adapter directories decode with the adapter folded in */
    model_set_forward_only(m, 1); /* the same results, a tenth of the activations */
    if (classifier && !m->cfg.is_classifier) {
        err_set(&e, EX_DATAERR, "%s: not a reward model (no score head)", dir);
        err_die(prog, &e);
    }
}

int main(int argc, char **argv) {
    cli_init(prog);
    Opts o;
    parse_args(&o, argc, argv);
    gemm_threads_set(o.threads);
    atomic_install_signal_cleanup();
    Error e = {0};
    Tokenizer *tok = NULL;
    if (model_tokenizer_load(&tok, o.sft_dir, &e)) err_die(prog, &e);
    if (tok_eos_id(tok) >= 0) o.gc.eos_ids[o.gc.n_eos++] = tok_eos_id(tok);
    Prompts P;
    read_prompts(&o, tok, &P);
    Side side[2]; /* SFT, aligned */
    memset(side, 0, sizeof side);
    load_model(&side[0].m, o.sft_dir, 0);
    load_model(&side[1].m, o.model_dir, 0);
    Model rm;
    if (o.rm_dir) load_model(&rm, o.rm_dir, 1);
    sample_side(&o, &side[0], tok, &P, P.ids_sft, P.len_sft, o.rm_dir ? &rm : NULL);
    sample_side(&o, &side[1], tok, &P, P.ids_pol, P.len_pol, o.rm_dir ? &rm : NULL);
    Summary S;
    summarise(&o, side, &P, o.rm_dir != NULL, &S);
    if (mkdir_p(o.out_dir, &e)) err_die(prog, &e);
    write_json_report(&o, &S, side, &P);
    write_md_report(&o, &S, side, &P);
    if (!o.quiet)
        fprintf(stderr, "%s: %s: gold %.3f -> %.3f (%+.3f), win rate %.3f, KL %.3f, length %.1f -> %.1f\n", prog,
                o.name, S.gold_b, S.gold_a, S.gold_a - S.gold_b, S.win, S.kl, S.len_b, S.len_a);
    return 0;
}
