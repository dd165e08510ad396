/* bench_dpo.c — DPO pairs/s and peak memory on the GPT-2-124M shape (12 layers, 12
 * heads, width 768, vocab 50257), prompt 64 + completion 64 tokens, through the real
 * programs (bin/logprobs, bin/dpo, bin/sft run as child processes; BIN= picks the
 * directory), so the numbers include data loading, the first reference pass and the
 * final save exactly as a user sees them.
 *
 * Runs, each one epoch over the same 8 pairs with 4 pairs per micro-batch (8 rows x
 * 128 tokens):
 *   logprobs   the reference stage alone (forward only)
 *   dpo-pre    DPO reading ref_chosen_logps/ref_rejected_logps from the records
 *              (no reference model in memory)
 *   dpo-ref    DPO computing the reference in its first pass (the policy's start)
 *   sft        SFT on the same 16 sequences (prompt + chosen, prompt + rejected),
 *              8 per micro-batch, i.e. the same rows per forward/backward
 * and prints wall time, pairs/s (per training step from the log's tokens_per_s, and
 * end to end) and peak resident memory (wait4 ru_maxrss).  The contract: peak memory
 * of dpo-pre is at most 110 % of sft's; the bench exits 1 when it is not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "bench_gpt2.h"
#include "formats/tokenizer.h"
#include "model/model.h"

#define PAIRS 8
#define BATCH 4
#define PROMPT 64
#define COMPLETION 64 /* 63 words + the EOS the data layer appends */

static const char *bin_dir(void) {
    const char *b = getenv("BIN");
    return b && *b ? b : "bin";
}

/* Runs argv (argv[0] is a program in $BIN), returns wall seconds and peak RSS (KiB). */
static double run(char *const argv[], long *rss_kib) {
    char prog[512];
    snprintf(prog, sizeof prog, "%s/%s", bin_dir(), argv[0]);
    double t0 = now_seconds();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        execv(prog, argv);
        fprintf(stderr, "bench_dpo: cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) {
        perror("wait4");
        exit(1);
    }
    double dt = now_seconds() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_dpo: %s failed (status %d)\n", prog, st);
        exit(1);
    }
    *rss_kib = ru.ru_maxrss;
    return dt;
}

/* Mean tokens_per_s of the records of a metrics log (the per-step training rate). */
static double mean_tokens_per_s(const char *log) {
    FILE *f = fopen(log, "r");
    if (!f) return 0;
    char line[8192];
    double s = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "\"tokens_per_s\":");
        if (!p) continue;
        s += strtod(p + strlen("\"tokens_per_s\":"), NULL);
        n++;
    }
    fclose(f);
    return n ? s / n : 0;
}

/* Words that are one token each with a leading space in the bundled tokenizer. */
static const char *const WORDS[] = {"red",  "blue", "green", "gold", "fox",  "cat",  "dog",   "bird", "tree",
                                    "moon", "sun",  "sky",   "rain", "snow", "hill", "river", "road", "stone",
                                    "milk", "plum", "star",  "book", "bell", "rock", "cup",   "sea",  "ship"};
#define NW (int)(sizeof WORDS / sizeof WORDS[0])

static void words(Rng *r, int n, char *out, size_t cap) {
    size_t k = 0;
    for (int i = 0; i < n; i++) k += snprintf(out + k, cap - k, " %s", WORDS[rng_below(r, NW)]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as each run finishes */
    char dir[] = "/tmp/bench_dpo.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char model[600], pairs[600], ref[600], sftd[600], out[600], log[600];
    snprintf(model, sizeof model, "%s/gpt2-124m", dir);
    snprintf(pairs, sizeof pairs, "%s/pairs.jsonl", dir);
    snprintf(ref, sizeof ref, "%s/pairs-ref.jsonl", dir);
    snprintf(sftd, sizeof sftd, "%s/sft.jsonl", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(log, sizeof log, "%s/log.jsonl", dir);

    /* the model: GPT-2-124M shape, random weights, the bundled tokenizer */
    ModelConfig c = bench_gpt2_124m_config();
    c.bos_id = c.eos_id = 0;
    Model m;
    model_create(&m, &c);
    model_init_random(&m, 1);
    Error e;
    memset(&e, 0, sizeof e);
    if (model_save(&m, model, "data", &e)) {
        fprintf(stderr, "bench_dpo: %s\n", e.msg);
        return 1;
    }
    model_free(&m);

    /* the data: prompts of 64 tokens, completions of 63 words + EOS; check the counts */
    Tokenizer *tok;
    if (model_tokenizer_load(&tok, "data", &e)) {
        fprintf(stderr, "bench_dpo: %s\n", e.msg);
        return 1;
    }
    Rng r;
    rng_seed(&r, 3);
    FILE *fp = fopen(pairs, "w"), *fs = fopen(sftd, "w");
    if (!fp || !fs) {
        perror("bench_dpo: data");
        return 1;
    }
    static char p[4096], ch[4096], rj[4096];
    for (int i = 0; i < PAIRS; i++) {
        words(&r, PROMPT, p, sizeof p);
        words(&r, COMPLETION - 1, ch, sizeof ch);
        words(&r, COMPLETION - 1, rj, sizeof rj);
        IntVec v = {0};
        tok_encode(tok, p, strlen(p), 0, &v);
        int np = v.n;
        v.n = 0;
        tok_encode(tok, ch, strlen(ch), 0, &v);
        if (np != PROMPT || v.n != COMPLETION - 1) {
            fprintf(stderr, "bench_dpo: prompt %d tokens, completion %d (expected %d, %d)\n", np, v.n, PROMPT,
                    COMPLETION - 1);
            return 1;
        }
        intvec_free(&v);
        fprintf(fp, "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\"}\n", p, ch, rj);
        fprintf(fs, "{\"prompt\": \"%s\", \"completion\": \"%s\"}\n{\"prompt\": \"%s\", \"completion\": \"%s\"}\n", p,
                ch, p, rj);
    }
    fclose(fp);
    fclose(fs);
    tok_free(tok);

    const double tok_per_pair = 2.0 * (PROMPT + COMPLETION);
    long rss_lp, rss_pre, rss_ref, rss_sft;
    char bs[16], bs2[16];
    snprintf(bs, sizeof bs, "%d", BATCH);
    snprintf(bs2, sizeof bs2, "%d", 2 * BATCH);

    char *lp[] = {"logprobs", "-q", "-m", model, "--batch-size", bs, "-o", ref, pairs, NULL};
    double t_lp = run(lp, &rss_lp);
    printf("logprobs  GPT-2-124M  %d pairs: %6.1f s, %6.2f pairs/s end to end, peak RSS %ld KiB\n", PAIRS, t_lp,
           PAIRS / t_lp, rss_lp);

    char *dpre[] = {
        "dpo",          "-q", "--no-progress", "-m",   model,   "-o", out, "--epochs", "1", "--batch-size", bs,
        "--save-every", "0",  "--lr",          "1e-6", "--log", log,  ref, NULL};
    double t_pre = run(dpre, &rss_pre);
    double step_pre = mean_tokens_per_s(log) / tok_per_pair;
    remove_tree(out);
    unlink(log);
    printf("dpo (precomputed reference): %6.1f s, %6.2f pairs/s per step, %6.2f pairs/s end to end, peak RSS %ld "
           "KiB\n",
           t_pre, step_pre, PAIRS / t_pre, rss_pre);

    char *dref[] = {
        "dpo",          "-q", "--no-progress", "-m",   model,   "-o", out,   "--epochs", "1", "--batch-size", bs,
        "--save-every", "0",  "--lr",          "1e-6", "--log", log,  pairs, NULL};
    double t_ref = run(dref, &rss_ref);
    double step_ref = mean_tokens_per_s(log) / tok_per_pair;
    remove_tree(out);
    unlink(log);
    printf("dpo (reference in a first pass): %6.1f s, %6.2f pairs/s per step, %6.2f pairs/s end to end, peak RSS "
           "%ld KiB\n",
           t_ref, step_ref, PAIRS / t_ref, rss_ref);

    char *sft[] = {
        "sft",          "-q", "--no-progress", "-m",   model,   "-o", out,  "--epochs", "1", "--batch-size", bs2,
        "--save-every", "0",  "--lr",          "1e-6", "--log", log,  sftd, NULL};
    double t_sft = run(sft, &rss_sft);
    remove_tree(out);
    unlink(log);
    printf("sft on the same %d sequences: %6.1f s, peak RSS %ld KiB\n", 2 * PAIRS, t_sft, rss_sft);

    remove_tree(dir);
    double ratio = (double)rss_pre / rss_sft;
    printf("peak RSS dpo (precomputed) / sft = %.3f (contract: <= 1.10) %s\n", ratio, ratio <= 1.10 ? "OK" : "FAIL");
    return ratio <= 1.10 ? 0 : 1;
}
