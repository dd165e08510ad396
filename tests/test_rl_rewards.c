/* test_rl_rewards.c — the request line a reward program receives (fields, EOS
 * dropped from the text, NUL and invalid UTF-8 as U+FFFD, ids beyond the tokenizer
 * skipped, message-list prompts echoed) and the weighted combination of a reward
 * model with two programs (against reward_score and the programs' own answers). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kernels/gemm.h"
#include "rl/reward.h"
#include "rl/rl_rewards.h"
#include "base/util.h"
#include "model/model.h"

#define FIX "tests/oracle/fixtures/"


static void expect(int ok, const char *what, const char *got) {
    if (!ok) {
        printf("FAIL %s: got %s\n", what, got);
        failures++;
    }
}

int main(void) {
    gemm_threads_set(1);
    Error e = {0};
    Tokenizer *tok;
    if (model_tokenizer_load(&tok, FIX "pref-gpt2-policy", &e)) {
        printf("FAIL %s\n", e.msg);
        return 1;
    }
    IntVec hello = {0};
    tok_encode(tok, " hi there", 9, 0, &hello);
    int nul = tok_piece_to_id(tok, "\xc4\x80"); /* byte-level BPE: byte 0x00 is U+0100 */
    int eos = tok_eos_id(tok);
    if (nul < 0 || eos < 0) {
        printf("FAIL test tokenizer: no piece for byte 0 (%d) or no EOS (%d)\n", nul, eos);
        return 1;
    }
    int ids[16], n = 0;
    for (int i = 0; i < hello.n; i++) ids[n++] = hello.v[i];
    ids[n++] = nul;
    ids[n++] = 100000; /* beyond the tokenizer: no text */
    ids[n++] = eos;
    json_t *prompt = json_pack("[{s:s, s:s}]", "role", "user", "content", "say hi");
    int pids[2] = {5, 6};
    RlCompletion c = {.prompt = pids,
                      .plen = 2,
                      .tokens = ids,
                      .n = n,
                      .prompt_json = prompt,
                      .group = 7,
                      .sample = 1,
                      .eos = 1,
                      .stopped = 1};
    char *line = rl_rewards_line(tok, &c, &e);
    if (!line) {
        printf("FAIL rl_rewards_line: %s\n", e.msg);
        return 1;
    }
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    expect(o != NULL, "request is valid JSON without JSON_ALLOW_NUL", line);
    expect(!strchr(line, '\n'), "request is one line", line);
    if (o) {
        const char *comp = json_string_value(json_object_get(o, "completion"));
        expect(comp && !strcmp(comp, " hi there\xEF\xBF\xBD"), "completion text: EOS dropped, NUL as U+FFFD", line);
        expect(json_array_size(json_object_get(o, "completion_ids")) == (size_t)n, "completion_ids keep every id",
               line);
        expect(json_equal(json_object_get(o, "prompt"), prompt), "prompt echoed as a message list", line);
        expect(json_integer_value(json_object_get(o, "group")) == 7 &&
                   json_integer_value(json_object_get(o, "sample")) == 1,
               "group and sample", line);
        const char *fr = json_string_value(json_object_get(o, "finish_reason"));
        expect(fr && !strcmp(fr, "stop"), "finish_reason", line);
        json_decref(o);
    }
    free(line);

    /* a reward model and two programs, weighted */
    Model rm;
    if (model_load(&rm, FIX "pref-gpt2-rm", &e)) {
        printf("FAIL %s\n", e.msg);
        return 1;
    }
    RewardCmd cmds[2];
    if (rewardcmd_start(&cmds[0], "while read -r l; do echo 1; done", 5, &e) ||
        rewardcmd_start(&cmds[1], "n=0; while read -r l; do n=$((n+1)); echo $n; done", 5, &e)) {
        printf("FAIL %s\n", e.msg);
        return 1;
    }
    RlRewards rw = {.rm = &rm, .rm_name = "rm", .rm_batch = 2, .cmds = cmds, .n_cmds = 2, .tok = tok};
    rw.weights[0] = 0.5, rw.weights[1] = 2.0, rw.weights[2] = -1.0;
    RlCompletion cs[3];
    int lens[3] = {2, 4, 3};
    for (int i = 0; i < 3; i++) {
        cs[i] = c;
        cs[i].n = lens[i];
        cs[i].eos = 0;
        cs[i].prompt_json = json_string("p");
    }
    double score[3], mean[3], sd[3];
    if (rl_rewards_score_stats(&rw, cs, 3, score, mean, sd, &e)) {
        printf("FAIL rl_rewards_score: %s\n", e.msg);
        failures++;
    } else {
        int *full[3], flen[3];
        float want_rm[3];
        for (int i = 0; i < 3; i++) {
            flen[i] = 2 + lens[i];
            full[i] = xmalloc((size_t)flen[i] * sizeof(int));
            memcpy(full[i], pids, 2 * sizeof(int));
            memcpy(full[i] + 2, ids, (size_t)lens[i] * sizeof(int));
        }
        reward_score(&rm, (const int *const *)full, flen, 3, 3, want_rm, &e);
        double m = 0;
        for (int i = 0; i < 3; i++) {
            double want = 0.5 * want_rm[i] + 2.0 * 1 - 1.0 * (i + 1);
            m += want_rm[i];
            if (!(fabs(score[i] - want) < 1e-5)) {
                printf("FAIL weighted score %d: expected %.6f, got %.6f\n", i, want, score[i]);
                failures++;
            }
            free(full[i]);
        }
        if (!(fabs(mean[0] - m / 3) < 1e-5) || mean[1] != 1 || mean[2] != 2) {
            printf("FAIL component means: expected %.6f 1 2, got %.6f %g %g\n", m / 3, mean[0], mean[1], mean[2]);
            failures++;
        }
        /* TRL's nanstd is Bessel-corrected: the program answering 1, 2, 3 has std 1 */
        double v = 0;
        for (int i = 0; i < 3; i++) v += (want_rm[i] - m / 3) * (want_rm[i] - m / 3);
        if (!(fabs(sd[0] - sqrt(v / 2)) < 1e-5) || sd[1] != 0 || !(fabs(sd[2] - 1) < 1e-12)) {
            printf("FAIL component std: expected %.6f 0 1, got %.6f %g %g\n", sqrt(v / 2), sd[0], sd[1], sd[2]);
            failures++;
        }
    }
    /* metric names as TRL's reward_func_names: the model directory's name, the
     * program's (not its interpreter's), a repeated name made unique */
    {
        RewardCmd named[3] = {{.cmd = "sh tests/reward_lowid.sh --x"}, {.cmd = " /usr/bin/task-reward"},
                              {.cmd = "python3 /a/task-reward.py"}};
        RlRewards rn = {.rm = &rm, .rm_name = "runs/base/rm/", .cmds = named, .n_cmds = 3};
        const char *want[4] = {"rm", "reward_lowid", "task-reward", "task-reward_4"};
        for (int k = 0; k < 4; k++) {
            char got[64];
            rl_reward_name(&rn, k, got, sizeof got);
            if (strcmp(got, want[k]) != 0) {
                printf("FAIL rl_reward_name %d: expected %s, got %s\n", k, want[k], got);
                failures++;
            }
        }
        /* long names are cut (a metric name has a length limit), and names equal once
         * cut are still told apart */
        RewardCmd longc[2] = {{.cmd = "/x/a-very-long-reward-program-name-one"},
                              {.cmd = "/x/a-very-long-reward-program-name-two"}};
        RlRewards rl = {.cmds = longc, .n_cmds = 2};
        char g0[16], g1[16];
        rl_reward_name(&rl, 0, g0, sizeof g0);
        rl_reward_name(&rl, 1, g1, sizeof g1);
        if (strcmp(g0, "a-very-long-") != 0 || strcmp(g1, "a-very-long-_2") != 0) {
            printf("FAIL rl_reward_name cut to 16: expected a-very-long-, a-very-long-_2; got %s, %s\n", g0, g1);
            failures++;
        }
    }
    for (int i = 0; i < 3; i++) json_decref((json_t *)cs[i].prompt_json);
    rewardcmd_close(&cmds[0]);
    rewardcmd_close(&cmds[1]);
    model_free(&rm);
    json_decref(prompt);
    intvec_free(&hello);
    tok_free(tok);
    return check_summary("test_rl_rewards");
}
