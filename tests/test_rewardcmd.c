/* test_rewardcmd.c — the reward-program child process: answers in order across
 * batches from one long-running process, a large batch that would deadlock a
 * write-then-read client, and every failure (garbage, death, hang, extra output,
 * missing program) as an error with the documented code and message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "rl/rewardcmd.h"
#include "base/util.h"


static void expect_err(const char *cmd, double timeout, int want_code, const char *want_sub, const char *what) {
    RewardCmd rc;
    Error e = {0};
    if (rewardcmd_start(&rc, cmd, timeout, &e)) {
        printf("FAIL %s: start: %s\n", what, e.msg);
        failures++;
        return;
    }
    const char *lines[3] = {"{\"completion\":\"a\"}", "{\"completion\":\"bb\"}", "{\"completion\":\"ccc\"}"};
    double out[3];
    double t0 = now_seconds();
    int r = rewardcmd_score(&rc, lines, 3, out, &e);
    double dt = now_seconds() - t0;
    if (r != want_code || !strstr(e.msg, want_sub)) {
        printf("FAIL %s: expected code %d and a message with '%s', got code %d: %s\n", what, want_code, want_sub, r,
               r ? e.msg : "(none)");
        failures++;
    }
    if (timeout > 0 && dt > timeout + 2.0) {
        printf("FAIL %s: took %.2fs with a %.2fs timeout\n", what, dt, timeout);
        failures++;
    }
    /* a failed handle refuses further work */
    if (r && rewardcmd_score(&rc, lines, 1, out, &e) == 0) {
        printf("FAIL %s: a failed reward program accepted another batch\n", what);
        failures++;
    }
    rewardcmd_close(&rc);
}

int main(void) {
    Error e = {0};
    RewardCmd rc;
    /* answers = line length, and a running line counter that proves one process
     * serves every batch.  (Shell loops, not awk: mawk block-buffers its input and
     * needs -W interactive to answer line by line; see ppo(1).) */
    if (rewardcmd_start(&rc, "n=0; while IFS= read -r l; do n=$((n+1)); echo $((${#l} + 1000*n)); done", 5.0, &e)) {
        printf("FAIL start: %s\n", e.msg);
        return 1;
    }
    const char *lines[2] = {"{\"x\":1}", "{\"x\":\"long\"}"};
    double out[2];
    for (int batch = 0; batch < 3; batch++) {
        if (rewardcmd_score(&rc, lines, 2, out, &e)) {
            printf("FAIL batch %d: %s\n", batch, e.msg);
            failures++;
            break;
        }
        double want0 = 7 + 1000.0 * (2 * batch + 1), want1 = 12 + 1000.0 * (2 * batch + 2);
        if (out[0] != want0 || out[1] != want1) {
            printf("FAIL batch %d: expected %g %g, got %g %g\n", batch, want0, want1, out[0], out[1]);
            failures++;
        }
    }
    rewardcmd_close(&rc);

    /* 3000 lines of 200 bytes = 600 KB, far beyond a pipe's 64 KiB buffer: the
     * client must read answers while it writes */
    if (rewardcmd_start(&rc, "n=0; while read -r l; do n=$((n+1)); echo $((n % 7)); done", 10.0, &e)) {
        printf("FAIL start: %s\n", e.msg);
        return 1;
    }
    int n = 3000;
    char *big = xmalloc(201);
    memset(big, 'x', 200);
    big[0] = '"', big[199] = '"', big[200] = 0;
    const char **many = xmalloc((size_t)n * sizeof *many);
    double *res = xmalloc((size_t)n * sizeof *res);
    for (int i = 0; i < n; i++) many[i] = big;
    if (rewardcmd_score(&rc, many, n, res, &e)) {
        printf("FAIL large batch: %s\n", e.msg);
        failures++;
    } else {
        for (int i = 0; i < n; i++)
            if (res[i] != (i + 1) % 7) {
                printf("FAIL large batch: answer %d expected %d got %g\n", i, (i + 1) % 7, res[i]);
                failures++;
                break;
            }
    }
    rewardcmd_close(&rc);
    free(big), free(many), free(res);

    /* blanks around numbers and exponents are fine */
    if (rewardcmd_start(&rc, "while read l; do echo '  -2.5e-1 '; done", 5.0, &e) == 0) {
        double v[1];
        const char *one[1] = {"{}"};
        if (rewardcmd_score(&rc, one, 1, v, &e) || v[0] != -0.25) {
            printf("FAIL blanks: expected -0.25, got %g (%s)\n", v[0], e.msg);
            failures++;
        }
        rewardcmd_close(&rc);
    }

    expect_err("while read l; do echo hello; done", 5.0, EX_DATAERR, "not a finite number: 'hello'", "garbage");
    expect_err("while read l; do echo nan; done", 5.0, EX_DATAERR, "not a finite number: 'nan'", "nan");
    expect_err("while read l; do echo 1x; done", 5.0, EX_DATAERR, "'1x'", "trailing junk");
    expect_err("read l; echo 1; exit 3", 5.0, EX_SOFTWARE, "exited with status 3 before answering line 2", "dies");
    expect_err("sleep 30", 0.3, EX_SOFTWARE, "did not answer line 1 within 0.3 s", "hangs");
    expect_err("exec /nonexistent/reward-program", 5.0, EX_SOFTWARE, "exited with status 127", "missing program");
    expect_err("kill -9 $$", 5.0, EX_SOFTWARE, "killed by signal 9", "killed");
    expect_err("while read l; do echo 1 2; done", 5.0, EX_DATAERR, "'1 2'", "two numbers on a line");
    /* 1e308 is a finite double but infinite as the trainers' float32 */
    expect_err("while read l; do echo 1e308; done", 5.0, EX_DATAERR, "not a finite number: '1e308'", "beyond float32");
    expect_err("while read l; do printf '1\\0002\\n'; done", 5.0, EX_DATAERR, "holds a NUL byte", "NUL in an answer");

    /* a program that answers twice per line: the surplus is found before the next
     * batch is sent (it would otherwise shift every later answer) */
    if (rewardcmd_start(&rc, "while read l; do echo 1; echo 2; done", 5.0, &e) == 0) {
        const char *one[1] = {"{}"};
        double v[1];
        int r1 = rewardcmd_score(&rc, one, 1, v, &e), r2 = -1;
        if (r1 == 0) { /* the surplus came after the answer: the next call finds it */
            usleep(300000);
            r2 = rewardcmd_score(&rc, one, 1, v, &e);
        }
        if ((r1 != EX_DATAERR && r2 != EX_DATAERR) || !strstr(e.msg, "unexpected extra output after line 1")) {
            printf("FAIL two answers per line: expected %d with 'unexpected extra output after line 1', got %d then "
                   "%d: %s\n",
                   EX_DATAERR, r1, r2, e.msg);
            failures++;
        }
        rewardcmd_close(&rc);
    }

    return check_summary("test_rewardcmd");
}
