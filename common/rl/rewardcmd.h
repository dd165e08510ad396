/* rewardcmd.h — a reward program as a long-running child process.
 *
 * `ppo --reward-cmd 'PROGRAM ARGS'` starts PROGRAM ARGS once (through /bin/sh -c,
 * so quoting and pipes work as in a shell) and keeps it for the whole run.  The
 * protocol is line-based and language-neutral:
 *   - cherry writes one JSON object per line on the program's stdin (a rollout
 *     record: "prompt", "completion", "completion_ids", "group", "sample", ...);
 *   - the program answers each line, in order, with one line holding one number
 *     (the reward; anything strtod accepts, surrounding blanks ignored) and must
 *     flush its output after every line (awk: fflush(); Python: flush=True).
 * Several lines may be in flight at once: a batch is written while answers are read
 * (poll on both pipes), so a program that answers line by line never deadlocks
 * against a large batch.  The program's stderr is ours, so its messages show.
 * It runs in its own process group, so a Ctrl-C meant for the trainer (which then
 * checkpoints) does not kill the reward program first.
 *
 * Failures are errors with a clear message, never a silent zero: the program
 * exiting or closing its output (EX_SOFTWARE, with its exit status), no answer
 * within the timeout (EX_SOFTWARE, "did not answer within"), an answer that is not
 * a finite number or a line longer than 4096 bytes (EX_DATAERR, quoting it).
 * After any failure the program is stopped and the handle is unusable.
 * Not for: reward models (reward.h). */
#ifndef CHERRY_REWARDCMD_H
#define CHERRY_REWARDCMD_H

#include <sys/types.h>

#include "base/err.h"

typedef struct RewardCmd {
    char *cmd;      /* the command line, for messages */
    pid_t pid;      /* child, 0 once reaped */
    int to_child;   /* write end of its stdin (-1 when closed) */
    int from_child; /* read end of its stdout (-1 when closed) */
    double timeout; /* seconds to wait for the next answer (<= 0: wait forever) */
    long answered;  /* answers read so far (for messages) */
    char *buf;      /* partial answer line */
    size_t len, cap;
    int failed;
} RewardCmd;

/* Starts CMD.  Errors: EX_OSERR when the pipes or the fork fail.  (A command that
 * does not exist fails at the first rewardcmd_score: sh exits 127.) */
int rewardcmd_start(RewardCmd *rc, const char *cmd, double timeout_seconds, Error *e);

/* Writes lines[0..n) (JSON objects without their newline; a newline is added) and
 * reads n answers into out[0..n).  Errors as described above. */
int rewardcmd_score(RewardCmd *rc, const char *const *lines, int n, double *out, Error *e);

/* Closes its stdin, waits up to a second for it to exit, then kills it. */
void rewardcmd_close(RewardCmd *rc);

#endif
