/* gen_flags.h — the sampling flags every program that generates shares (rollout,
 * eval, ppo): one spelling, one parser, one set of range checks and one help text,
 * so a flag means the same thing everywhere (STYLE.md: "flags that mean the same
 * thing in every program").
 *
 *   --max-new-tokens N        --temperature T       --top-k K      --top-p P
 *   --min-p P                 --repetition-penalty R
 *   --gen-dtype fp32|bf16|int8 the decode weights (kernels/decode.h)
 *   --stop STRING             repeatable; \n, \t and \\ read as newline, tab and
 *                             backslash (a newline is awkward to pass through make
 *                             and sh, and Chain of Hindsight's answers end in one)
 *
 * A program lists GEN_FLAG_OPTIONS in its getopt_long table and hands every option
 * to gen_flags_parse first.  Option values are GEN_OPT_BASE and up, away from the
 * programs' own values (< 256 letters, 256.. and 1000.. rollout/eval, 2000..
 * TRAIN_OPT_USER).
 * Not for: EOS ids (generate.h gen_collect_eos), batch size, seeds, num_samples. */
#ifndef CHERRY_GEN_FLAGS_H
#define CHERRY_GEN_FLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "generate.h"

#define GEN_OPT_BASE 3000
#define GEN_MAX_STOP 16

enum {
    GEN_OPT_MAX_NEW = GEN_OPT_BASE,
    GEN_OPT_TEMPERATURE,
    GEN_OPT_TOP_K,
    GEN_OPT_TOP_P,
    GEN_OPT_MIN_P,
    GEN_OPT_REPETITION_PENALTY,
    GEN_OPT_STOP,
    GEN_OPT_GEN_DTYPE,
};

/* The struct option rows, for a program's getopt_long table. */
#define GEN_FLAG_OPTIONS                                                                                               \
    {"max-new-tokens", required_argument, 0, GEN_OPT_MAX_NEW},                                                         \
        {"temperature", required_argument, 0, GEN_OPT_TEMPERATURE}, {"top-k", required_argument, 0, GEN_OPT_TOP_K},    \
        {"top-p", required_argument, 0, GEN_OPT_TOP_P}, {"min-p", required_argument, 0, GEN_OPT_MIN_P},                \
        {"repetition-penalty", required_argument, 0, GEN_OPT_REPETITION_PENALTY},                                      \
        {"stop", required_argument, 0, GEN_OPT_STOP}, {                                                                \
        "gen-dtype", required_argument, 0, GEN_OPT_GEN_DTYPE                                                           \
    }

typedef struct GenFlags {
    GenConfig *gen;                 /* where the values go (the program's own GenConfig) */
    const char *stop[GEN_MAX_STOP]; /* --stop strings, unescaped in place in argv */
    int n_stop;
    int has_temperature; /* --temperature was given (ppo's default depends on --algo) */
} GenFlags;

/* Binds f to G (whose defaults the program has set; G must outlive f's use). */
void gen_flags_init(GenFlags *f, GenConfig *g);

/* Takes option OPT with argument ARG when it is one of GEN_FLAG_OPTIONS: returns 1,
 * else 0.  A malformed value exits with a usage error (cli.h), naming the flag.
 * --stop unescapes ARG in place. */
int gen_flags_parse(GenFlags *f, const char *prog, int opt, char *arg);

/* After parsing: checks the ranges (max_new_tokens >= 1, sampler_config_check) and
 * points f->gen's stop strings at f's.  Exits with a usage error. */
void gen_flags_finish(GenFlags *f, const char *prog);

/* The help lines of the flags, with the program's default length and its text for
 * --temperature (ppo's default depends on --algo, and 0 is not allowed there). */
void gen_flags_usage(FILE *out, int max_new_default, const char *temperature_help);

/* \n, \t and \\ in S read as newline, tab and backslash, in place (the result is
 * never longer); other backslashes stay.  Returns S. */
char *gen_unescape(char *s);

#endif
