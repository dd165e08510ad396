/* rewardcmd.c — the reward program child process (see rewardcmd.h for the
 * protocol).  POSIX pipes, fork/exec of /bin/sh -c, poll with a timeout. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include "rewardcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

#define RC_MAX_LINE 4096

int rewardcmd_start(RewardCmd *rc, const char *cmd, double timeout_seconds, Error *e) {
    memset(rc, 0, sizeof *rc);
    rc->to_child = rc->from_child = -1;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return err_set(e, EX_OSERR, "reward program: pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return err_set(e, EX_OSERR, "reward program: pipe: %s", strerror(errno));
    }
    /* A program that dies while we write must become an error message, not a
     * SIGPIPE that kills the trainer before it can checkpoint. */
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        return err_set(e, EX_OSERR, "reward program: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    rc->cmd = xstrdup(cmd);
    rc->pid = pid;
    rc->to_child = in[1];
    rc->from_child = out[0];
    rc->timeout = timeout_seconds;
    fcntl(rc->to_child, F_SETFL, fcntl(rc->to_child, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Describes how the child ended (reaping it when it has). */
static void child_status(RewardCmd *rc, char *buf, size_t n) {
    snprintf(buf, n, "closed its output");
    if (rc->pid <= 0) return;
    int st;
    pid_t r = 0;
    for (int i = 0; i < 50 && (r = waitpid(rc->pid, &st, WNOHANG)) == 0; i++) usleep(10000);
    if (r == rc->pid) {
        rc->pid = 0;
        if (WIFEXITED(st))
            snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    }
}

static int fail(RewardCmd *rc, Error *e, int code, const char *fmt, const char *detail) {
    rc->failed = 1;
    err_set(e, code, fmt, rc->cmd, rc->answered + 1, detail);
    return code;
}

/* Parses one answer line: a finite number with optional surrounding blanks.  The
 * trainers compute in float32, so a number beyond FLT_MAX (1e308) would be
 * infinite there: refused here, where the message can name the program. */
static int parse_answer(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(x) || fabs(x) > FLT_MAX) return -1;
    while (*end == ' ' || *end == '\t' || *end == '\r') end++;
    if (*end) return -1;
    *v = x;
    return 0;
}

/* Stops the child (stdin closed, a second to exit, then SIGKILL); keeps cmd for
 * messages. */
static void stop_child(RewardCmd *rc) {
    if (rc->to_child >= 0) close(rc->to_child);
    rc->to_child = -1;
    if (rc->pid > 0) {
        int st;
        pid_t r = 0;
        for (int i = 0; i < 100 && (r = waitpid(rc->pid, &st, WNOHANG)) == 0; i++) usleep(10000);
        if (r == 0) {
            kill(-rc->pid, SIGKILL); /* its process group: sh and what it started */
            kill(rc->pid, SIGKILL);
            waitpid(rc->pid, &st, 0);
        }
        rc->pid = 0;
    }
    if (rc->from_child >= 0) close(rc->from_child);
    rc->from_child = -1;
}

/* Output waiting before anything was sent means the program answered some earlier
 * line more than once: every later answer would be misaligned.  A program that has
 * exited is reported too.  Returns 0 when the pipe is quiet. */
static int check_quiet(RewardCmd *rc, Error *e) {
    struct pollfd pre = {.fd = rc->from_child, .events = POLLIN};
    if (rc->len == 0 && poll(&pre, 1, 0) <= 0) return 0;
    char early[256];
    ssize_t k = rc->len > 0 ? 0 : read(rc->from_child, early, sizeof early - 1);
    if (rc->len > 0 || k > 0) {
        if (k > 0) {
            early[k] = 0;
            early[strcspn(early, "\n")] = 0;
        } else {
            snprintf(early, sizeof early, "%.*s", (int)(rc->len < 200 ? rc->len : 200), rc->buf);
        }
        rc->failed = 1;
        err_set(e, EX_DATAERR,
                "reward program '%s': unexpected extra output after line %ld: '%s' (one number per input line)",
                rc->cmd, rc->answered, early);
        stop_child(rc);
        return EX_DATAERR;
    }
    if (k == 0) {
        char detail[128];
        child_status(rc, detail, sizeof detail);
        rc->failed = 1;
        err_set(e, EX_SOFTWARE, "reward program '%s' %s before answering line %ld", rc->cmd, detail, rc->answered + 1);
        stop_child(rc);
        return EX_SOFTWARE;
    }
    return 0;
}

/* The batch's request lines, each ended by a newline, in one buffer of *total bytes. */
static char *join_lines(const char *const *lines, int n, size_t *total) {
    *total = 0;
    for (int i = 0; i < n; i++) *total += strlen(lines[i]) + 1;
    char *wbuf = xmalloc(*total + 1);
    size_t w = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(wbuf + w, lines[i], l);
        w += l;
        wbuf[w++] = '\n';
    }
    return wbuf;
}

/* Takes the K bytes the program wrote: completes answer lines into out[*got..n),
 * restarting the per-answer deadline after each.  Returns an error code. */
static int take_answers(RewardCmd *rc, const char *chunk, ssize_t k, double *out, int *got, int n, double *deadline,
                        Error *e) {
    char detail[RC_MAX_LINE + 128];
    for (ssize_t i = 0; i < k; i++) {
        char c = chunk[i];
        if (c != '\n') {
            if (rc->len + 2 > rc->cap) {
                rc->cap = rc->cap ? rc->cap * 2 : 256;
                rc->buf = xrealloc(rc->buf, rc->cap);
            }
            rc->buf[rc->len++] = c;
            if (rc->len > RC_MAX_LINE) {
                snprintf(detail, sizeof detail, "%d", RC_MAX_LINE);
                return fail(rc, e, EX_DATAERR, "reward program '%s': answer to line %ld is longer than %s bytes",
                            detail);
            }
            continue;
        }
        rc->buf = rc->len + 1 > rc->cap ? xrealloc(rc->buf, rc->cap = rc->len + 1) : rc->buf;
        rc->buf[rc->len] = '\0';
        if (memchr(rc->buf, '\0', rc->len)) { /* "1<NUL>2" is not the number 1 */
            snprintf(detail, sizeof detail, "%s", rc->buf);
            return fail(rc, e, EX_DATAERR, "reward program '%s': answer to line %ld holds a NUL byte (after '%s')",
                        detail);
        }
        if (*got >= n) {
            rc->failed = 1;
            return err_set(e, EX_DATAERR,
                           "reward program '%s': unexpected extra output after line %ld: '%.200s' (one "
                           "number per input line)",
                           rc->cmd, rc->answered, rc->buf);
        }
        double v;
        if (parse_answer(rc->buf, &v) != 0) {
            snprintf(detail, sizeof detail, "%s", rc->buf);
            return fail(rc, e, EX_DATAERR, "reward program '%s': answer to line %ld is not a finite number: '%s'",
                        detail);
        }
        out[(*got)++] = v;
        rc->answered++;
        rc->len = 0;
        if (*deadline > 0) *deadline = now_seconds() + rc->timeout;
    }
    return 0;
}

int rewardcmd_score(RewardCmd *rc, const char *const *lines, int n, double *out, Error *e) {
    if (rc->failed || rc->from_child < 0)
        return err_set(e, EX_SOFTWARE, "reward program '%s' has already failed", rc->cmd ? rc->cmd : "?");
    int rcode = check_quiet(rc, e);
    if (rcode) return rcode;
    /* one output buffer for the whole batch, written as the pipe accepts it */
    size_t total, sent = 0;
    char *wbuf = join_lines(lines, n, &total);
    int got = 0;
    double deadline = rc->timeout > 0 ? now_seconds() + rc->timeout : 0;
    char detail[RC_MAX_LINE + 128];
    while (got < n) {
        struct pollfd p[2];
        int np = 0;
        p[np++] = (struct pollfd){.fd = rc->from_child, .events = POLLIN};
        if (sent < total) p[np++] = (struct pollfd){.fd = rc->to_child, .events = POLLOUT};
        int wait_ms = -1;
        if (deadline > 0) {
            double left = deadline - now_seconds();
            if (left <= 0) {
                snprintf(detail, sizeof detail, "%g", rc->timeout);
                rcode = fail(rc, e, EX_SOFTWARE,
                             "reward program '%s' did not answer line %ld within %s s (--reward-timeout)", detail);
                break;
            }
            wait_ms = (int)(left * 1000) + 1;
        }
        int pr = poll(p, (nfds_t)np, wait_ms);
        if (pr < 0) {
            if (errno == EINTR) continue; /* a signal for the trainer: keep waiting */
            snprintf(detail, sizeof detail, "%s", strerror(errno));
            rcode = fail(rc, e, EX_OSERR, "reward program '%s': line %ld: poll: %s", detail);
            break;
        }
        if (pr == 0) continue; /* the deadline check above reports it */
        if (np > 1 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t k = write(rc->to_child, wbuf + sent, total - sent);
            if (k > 0) {
                sent += (size_t)k;
            } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                child_status(rc, detail, sizeof detail);
                rcode =
                    fail(rc, e, EX_SOFTWARE, "reward program '%s' stopped reading its input at line %ld: %s", detail);
                break;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[4096];
            ssize_t k = read(rc->from_child, chunk, sizeof chunk);
            if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (k <= 0) {
                child_status(rc, detail, sizeof detail);
                rc->failed = 1;
                rcode = err_set(e, EX_SOFTWARE, "reward program '%s' %s before answering line %ld", rc->cmd, detail,
                                rc->answered + 1);
                break;
            }
            if ((rcode = take_answers(rc, chunk, k, out, &got, n, &deadline, e))) break;
        }
    }
    free(wbuf);
    if (rcode) stop_child(rc);
    return rcode;
}

void rewardcmd_close(RewardCmd *rc) {
    stop_child(rc);
    free(rc->buf);
    rc->buf = NULL;
    rc->len = rc->cap = 0;
    free(rc->cmd);
    rc->cmd = NULL;
}
