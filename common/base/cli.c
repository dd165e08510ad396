/* cli.c — see cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* ---- stdout at exit (every program: cli_init) ---- */
static const char *stdout_prog = "cherry";

/* Data goes to stdout, and a full disk or a closed pipe there must not end in exit
 * 0: flush and close it at exit and turn a failure into EX_IOERR with a message
 * (what gnulib's close_stdout does for coreutils).  EPIPE stays silent as SIGPIPE
 * would have been. */
static void close_stdout_at_exit(void) {
    int bad = ferror(stdout) != 0;
    errno = 0;
    if (fflush(stdout) != 0) bad = 1;
    int err = errno;
    if (fclose(stdout) != 0 && !bad) bad = 1, err = errno;
    if (!bad) return;
    if (err != EPIPE)
        fprintf(stderr, "%s: <stdout>: write error%s%s\n", stdout_prog, err ? ": " : "", err ? strerror(err) : "");
    _exit(EX_IOERR);
}

void cli_init(const char *prog) {
    stdout_prog = prog;
    atexit(close_stdout_at_exit);
}

void cli_help(void (*usage)(FILE *out)) {
    usage(stdout);
    exit(0);
}

void cli_version(const char *prog) {
    printf("%s (cherry) %s\n", prog, CHERRY_VERSION);
    exit(0);
}

void cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    exit(EX_USAGE);
}

void cli_common_option(const char *prog, int c, int version_code, void (*usage)(FILE *out), int *quiet) {
    if (c == 'q' && quiet) {
        *quiet = 1;
        return;
    }
    if (c == 'h') cli_help(usage);
    if (c == version_code) cli_version(prog);
    cli_usage_error(prog, "unknown option");
}

void cli_no_operands(const char *prog, int argc, char **argv) {
    if (optind < argc) cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
}

const char *cli_one_file(const char *prog, int argc, char **argv, const char *what) {
    if (argc - optind > 1) cli_usage_error(prog, "at most one %s", what);
    return optind < argc ? argv[optind] : "-";
}

int cli_choice(const char *prog, const char *flag, const char *arg, const char *const *names) {
    int n = 0;
    for (; names[n]; n++)
        if (strcmp(arg, names[n]) == 0) return n;
    /* "a, b or c": the list is built here so every flag words it the same way */
    char list[512];
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    cli_usage_error(prog, "%s: expected %s, got '%s'", flag, list, arg);
}

long long cli_ll(const char *prog, const char *flag, const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) cli_usage_error(prog, "%s: expected an integer, got '%s'", flag, s);
    return v;
}

int cli_int(const char *prog, const char *flag, const char *s) {
    long long v = cli_ll(prog, flag, s);
    if (v < -2147483647LL || v > 2147483647LL) cli_usage_error(prog, "%s: value out of range: '%s'", flag, s);
    return (int)v;
}

uint64_t cli_u64(const char *prog, const char *flag, const char *s) {
    char *end;
    errno = 0;
    if (*s == '-') cli_usage_error(prog, "%s: expected a non-negative integer, got '%s'", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) cli_usage_error(prog, "%s: expected a non-negative integer, got '%s'", flag, s);
    return (uint64_t)v;
}

double cli_double(const char *prog, const char *flag, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) cli_usage_error(prog, "%s: expected a number, got '%s'", flag, s);
    return v;
}

double cli_double_in(const char *prog, const char *flag, const char *s, double lo, int lo_open, double hi,
                     int hi_open) {
    double v = cli_double(prog, flag, s);
    if ((lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi)) return v;
    if (isinf(hi)) cli_usage_error(prog, "%s: must be %s %g, got '%s'", flag, lo_open ? ">" : ">=", lo, s);
    cli_usage_error(prog, "%s: must be in %c%g, %g%c, got '%s'", flag, lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']',
                    s);
}

int cli_int_min(const char *prog, const char *flag, const char *s, int min) {
    int v = cli_int(prog, flag, s);
    if (v < min) cli_usage_error(prog, "%s: must be >= %d, got '%s'", flag, min, s);
    return v;
}

long long cli_ll_min(const char *prog, const char *flag, const char *s, long long min) {
    long long v = cli_ll(prog, flag, s);
    if (v < min) cli_usage_error(prog, "%s: must be >= %lld, got '%s'", flag, min, s);
    return v;
}

int cli_progress_enabled(int flag_value) {
    if (flag_value >= 0) return flag_value;
    return isatty(2);
}
