/* rl_rewards.c — weighted rewards from a reward model and reward programs
 * (rl_rewards.h). */
#include "rl_rewards.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "formats/tokenizer.h"
#include "reward.h"


RlCompletion rl_rewards_completion(const GenSeq *s, const PromptExample *px, long group) {
    return (RlCompletion){.prompt = px->ids,
                          .plen = px->n,
                          .tokens = s->tokens,
                          .n = s->n_tokens,
                          .prompt_json = px->prompt,
                          .group = group,
                          .sample = s->sample,
                          .eos = s->eos,
                          .stopped = s->finish == GEN_FINISH_STOP};
}

char *rl_rewards_line(const Tokenizer *tok, const RlCompletion *c, Error *e) {
    int n = c->n - (c->eos ? 1 : 0), kept = 0;
    /* a model's vocabulary may be padded beyond the tokenizer's: such ids have no
     * text (they stay in completion_ids) */
    int *ids = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int)), V = tok_vocab_size(tok);
    for (int t = 0; t < n; t++)
        if (c->tokens[t] < V && tok_id_to_piece(tok, c->tokens[t])) ids[kept++] = c->tokens[t];
    char *txt = NULL;
    size_t len = 0;
    int rc = tok_decode(tok, ids, kept, 1, &txt, &len, e);
    free(ids);
    if (rc) return NULL;
    size_t clean_len;
    char *clean = utf8_sanitize(txt, len, &clean_len);
    if (clean) {
        free(txt);
        txt = clean;
        len = clean_len;
    }
    utf8_replace_nul(&txt, &len);
    json_t *o = json_object();
    json_object_set(o, "prompt", (json_t *)c->prompt_json);
    json_object_set_new(o, "completion", json_stringn(txt, len));
    json_t *a = json_array();
    for (int t = 0; t < c->n; t++) json_array_append_new(a, json_integer(c->tokens[t]));
    json_object_set_new(o, "completion_ids", a);
    json_object_set_new(o, "group", json_integer(c->group));
    json_object_set_new(o, "sample", json_integer(c->sample));
    json_object_set_new(o, "finish_reason", json_string(c->stopped ? "stop" : "length"));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    free(txt);
    if (!s) err_set(e, EX_SOFTWARE, "cannot encode the reward request as JSON");
    return s;
}

/* score[i] += w * part[i]; *mean (may be NULL) = the batch mean of part. */
/* mean and Bessel-corrected standard deviation of x[0..n) */
static void mean_std(const double *x, int n, double *mean, double *std) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m = n ? m / n : 0;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    if (mean) *mean = m;
    if (std) *std = n > 1 ? sqrt(v / (n - 1)) : 0;
}

/* the last path component of the first len bytes of s, trailing slashes dropped */
static void base_name(const char *s, size_t len, char *out, size_t size) {
    while (len > 1 && s[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && s[b - 1] != '/') b--;
    snprintf(out, size, "%.*s", (int)(len - b), s + b);
}

static void raw_name(const RlRewards *rw, int k, char *out, size_t size) {
    if (rw->rm && k == 0) {
        const char *d = rw->rm_name ? rw->rm_name : "reward_model";
        base_name(d, strlen(d), out, size);
        return;
    }
    int p = k - (rw->rm ? 1 : 0);
    const char *cmd = p >= 0 && p < rw->n_cmds && rw->cmds[p].cmd ? rw->cmds[p].cmd : "";
    /* the program, not its interpreter: "sh reward.sh" and "python3 judge.py" are
     * named reward and judge */
    static const char *const interp[] = {"sh", "bash", "dash", "env", "python", "python3", "perl", "ruby", "node"};
    for (;;) {
        cmd += strspn(cmd, " \t");
        base_name(cmd, strcspn(cmd, " \t"), out, size);
        int skip = 0;
        for (size_t i = 0; i < sizeof interp / sizeof *interp; i++) skip |= strcmp(out, interp[i]) == 0;
        const char *next = cmd + strcspn(cmd, " \t");
        if (!skip || !*(next + strspn(next, " \t"))) break;
        cmd = next;
    }
    char *dot = strrchr(out, '.');
    if (dot && dot != out && (!strcmp(dot, ".sh") || !strcmp(dot, ".py") || !strcmp(dot, ".pl"))) *dot = 0;
    if (!*out) snprintf(out, size, "cmd%d", p + 1);
}

void rl_reward_name(const RlRewards *rw, int k, char *out, size_t size) {
    if (size == 0) return;
    /* every name cut to the same length, leaving room for "_K" (K <= RL_MAX_REWARDS),
     * so that names that are equal once cut are told apart too */
    size_t keep = size > 4 ? size - 3 : 1;
    char mine[256], other[256];
    raw_name(rw, k, mine, keep < sizeof mine ? keep : sizeof mine);
    int dup = 0;
    for (int j = 0; j < k && !dup; j++) {
        raw_name(rw, j, other, keep < sizeof other ? keep : sizeof other);
        dup = strcmp(other, mine) == 0;
    }
    if (dup)
        snprintf(out, size, "%s_%d", mine, k + 1);
    else
        snprintf(out, size, "%s", mine);
}

/* score += w * part; the reward's batch mean and (Bessel) standard deviation */
static void add_reward(double *score, const double *part, int n, double w, double *mean, double *std) {
    for (int i = 0; i < n; i++) score[i] += w * part[i];
    mean_std(part, n, mean, std);
}

static int model_rewards(const RlRewards *rw, const RlCompletion *c, int n, double *part, Error *e) {
    size_t rows = (size_t)(n ? n : 1);
    const int **pr = xmalloc(rows * sizeof(int *)), **co = xmalloc(rows * sizeof(int *));
    int *pl = xmalloc(rows * sizeof(int)), *cl = xmalloc(rows * sizeof(int));
    float *r = xmalloc(rows * sizeof(float));
    for (int i = 0; i < n; i++) pr[i] = c[i].prompt, pl[i] = c[i].plen, co[i] = c[i].tokens, cl[i] = c[i].n;
    int rc = reward_score_completions(rw->rm, pr, pl, co, cl, n, rw->rm_batch > 0 ? rw->rm_batch : 1, r, e);
    if (rc) err_prefix(e, "reward model %s", rw->rm_name ? rw->rm_name : "");
    for (int i = 0; i < n && !rc; i++) part[i] = r[i];
    free(pr), free(pl), free(co), free(cl), free(r);
    return rc;
}

int rl_rewards_score(const RlRewards *rw, const RlCompletion *c, int n, double *score, double *comp_mean, Error *e) {
    return rl_rewards_score_stats(rw, c, n, score, comp_mean, NULL, e);
}

int rl_rewards_score_stats(const RlRewards *rw, const RlCompletion *c, int n, double *score, double *comp_mean,
                           double *comp_std, Error *e) {
    int k = 0, rc = 0;
    for (int i = 0; i < n; i++) score[i] = 0;
    double *part = xmalloc((size_t)(n ? n : 1) * sizeof(double));
    if (rw->rm && (rc = model_rewards(rw, c, n, part, e)) == 0) {
        add_reward(score, part, n, rw->weights[k], comp_mean ? &comp_mean[k] : NULL, comp_std ? &comp_std[k] : NULL);
        k++;
    }
    if (!rc && rw->n_cmds) {
        char **lines = xcalloc((size_t)(n ? n : 1), sizeof(char *));
        for (int i = 0; i < n && !rc; i++)
            if (!(lines[i] = rl_rewards_line(rw->tok, &c[i], e))) rc = e->code;
        for (int p = 0; p < rw->n_cmds && !rc; p++) {
            rc = rewardcmd_score(&rw->cmds[p], (const char *const *)lines, n, part, e);
            if (!rc) add_reward(score, part, n, rw->weights[k], comp_mean ? &comp_mean[k] : NULL, comp_std ? &comp_std[k] : NULL);
            k++;
        }
        for (int i = 0; i < n; i++) free(lines[i]);
        free(lines);
    }
    free(part);
    return rc;
}
