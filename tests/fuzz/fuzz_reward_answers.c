/* fuzz_reward_answers.c — a reward program's answers (rewardcmd.c: line assembly
 * across reads, the number format, NUL bytes, extra or missing lines, overlong
 * lines).  The input is what the program prints: `exec cat FILE` plays the program
 * for a batch of three requests. */
#include "fuzz.h"
#include "rl/rewardcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_write("answers", data, size);
    char cmd[900];
    snprintf(cmd, sizeof cmd, "exec cat '%s'", p);
    RewardCmd rc;
    Error e;
    if (rewardcmd_start(&rc, cmd, 5.0, &e)) return 0;
    const char *lines[3] = {"{\"completion\":\"a\"}", "{\"completion\":\"b\"}", "{\"completion\":\"c\"}"};
    double out[3];
    if (rewardcmd_score(&rc, lines, 3, out, &e) == 0) rewardcmd_score(&rc, lines, 1, out, &e);
    rewardcmd_close(&rc);
    return 0;
}
