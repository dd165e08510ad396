/* cli.h — what every program's command line shares: version, number parsing with
 * clear usage errors, the common-flag values.  Programs use getopt_long themselves;
 * this only removes the repeated parts.  Not for: program-specific flags. */
#ifndef CHERRY_CLI_H
#define CHERRY_CLI_H

#include <stdint.h>
#include <stdio.h>

#define CHERRY_VERSION "0.1.0"

/* The first call of every program's main: at exit, stdout is flushed and closed,
 * and a write error there (a full disk, /dev/full) becomes exit 74 with
 * "PROG: <stdout>: write error: ..." instead of a silent exit 0. */
void cli_init(const char *prog);

/* The usage convention of every program: a static void usage(FILE *out) that prints
 * "Usage: PROG ..." and the options, fitting one screen; -h/--help calls
 * cli_help(usage): the text on stdout, exit 0.  Usage errors go through
 * cli_usage_error (a one-line message and "Try 'PROG --help'.", exit 64). */
void cli_help(void (*usage)(FILE *out)) __attribute__((noreturn));

/* Prints "PROG (cherry) VERSION" on stdout and exits 0. */
void cli_version(const char *prog) __attribute__((noreturn));

/* The options every program's getopt switch ends with, for its default: case:
 * 'q' sets *QUIET (when QUIET is not NULL) and returns; 'h' is cli_help(USAGE);
 * VERSION_CODE (the program's --version value) is cli_version(PROG); anything else
 * is the usage error "PROG: unknown option" (exit 64). */
void cli_common_option(const char *prog, int c, int version_code, void (*usage)(FILE *out), int *quiet);

/* The operands after the options (argv[optind..]) of a program that takes none:
 * any is the usage error "PROG: unexpected argument 'x'". */
void cli_no_operands(const char *prog, int argc, char **argv);

/* Of a program that reads at most one file: that file, or "-" (stdin) when none is
 * given; two or more is the usage error "PROG: at most one WHAT". */
const char *cli_one_file(const char *prog, int argc, char **argv, const char *what);

/* Parse a flag value or print "PROG: --flag: expected ..., got 'x'" and exit 64. */
int cli_int(const char *prog, const char *flag, const char *s);
long long cli_ll(const char *prog, const char *flag, const char *s);
uint64_t cli_u64(const char *prog, const char *flag, const char *s);
double cli_double(const char *prog, const char *flag, const char *s);

/* The same with a range, for the many flags that have one: a number in LO..HI, each
 * end closed ([) or open (() as its *_OPEN says; HI = INFINITY for none.  Else a usage
 * error "PROG: FLAG: must be >= 0 (> 0, in [0, 1), ...), got 'x'" (exit 64). */
double cli_double_in(const char *prog, const char *flag, const char *s, double lo, int lo_open, double hi, int hi_open);
/* An integer >= MIN, else "PROG: FLAG: must be >= MIN, got 'x'" (exit 64). */
int cli_int_min(const char *prog, const char *flag, const char *s, int min);
long long cli_ll_min(const char *prog, const char *flag, const char *s, long long min);

/* Prints "PROG: message\nTry 'PROG --help'." and exits 64. */
void cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* The index of ARG in NAMES (NULL-terminated), or a usage error
 * "PROG: FLAG: expected a, b or c, got 'x'" (exit 64). */
int cli_choice(const char *prog, const char *flag, const char *arg, const char *const *names);

/* Progress display: on when --progress, off when --no-progress, else when stderr is
 * a terminal. value: 1 = on, 0 = off, -1 = auto. */
int cli_progress_enabled(int flag_value);

#endif
