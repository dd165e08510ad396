/* test_gen_flags.c — common/generate/gen_flags.h: every flag lands in the GenConfig,
 * --stop is unescaped (\n \t \\; other backslashes kept), the stop strings reach the
 * GenConfig after gen_flags_finish, other options are left to the program, and the
 * option table names each flag once.  (Malformed values exit through cli.h, which
 * the shell tests check: t_eval.sh, t_rollout.sh; --gen-dtype's too.) */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "generate/gen_flags.h"

static void check_unescape(const char *in, const char *want) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", in);
    gen_unescape(buf);
    CHECK(strcmp(buf, want) == 0, "gen_unescape(\"%s\"): expected \"%s\", got \"%s\"", in, want, buf);
}

int main(void) {
    check_unescape("a\\nb", "a\nb");
    check_unescape("\\t\\\\x", "\t\\x");
    check_unescape("\\q\\", "\\q\\");
    check_unescape("\\\\n", "\\n"); /* an escaped backslash, then a plain n */
    check_unescape("", "");

    GenConfig g = gen_config_default();
    GenFlags f;
    gen_flags_init(&f, &g);
    char a_new[] = "7", a_t[] = "0.5", a_k[] = "3", a_p[] = "0.9", a_m[] = "0.05", a_r[] = "1.2";
    char s1[] = "\\n", s2[] = "END";
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_MAX_NEW, a_new) == 1, "--max-new-tokens not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_TEMPERATURE, a_t) == 1, "--temperature not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_TOP_K, a_k) == 1, "--top-k not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_TOP_P, a_p) == 1, "--top-p not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_MIN_P, a_m) == 1, "--min-p not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_REPETITION_PENALTY, a_r) == 1, "--repetition-penalty not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_STOP, s1) == 1, "--stop not taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_STOP, s2) == 1, "--stop not taken");
    CHECK(g.dtype == DECODE_FP32, "the default decode dtype is %d, not fp32", (int)g.dtype);
    char d_bf16[] = "bf16", d_fp32[] = "fp32", d_int8[] = "int8";
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_GEN_DTYPE, d_int8) == 1, "--gen-dtype not taken");
    CHECK(g.dtype == DECODE_INT8, "--gen-dtype int8 gave dtype %d", (int)g.dtype);
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_GEN_DTYPE, d_bf16) == 1, "--gen-dtype not taken");
    CHECK(g.dtype == DECODE_BF16, "--gen-dtype bf16 gave dtype %d", (int)g.dtype);
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_GEN_DTYPE, d_fp32) == 1, "--gen-dtype not taken");
    CHECK(g.dtype == DECODE_FP32, "--gen-dtype fp32 gave dtype %d", (int)g.dtype);
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_GEN_DTYPE, d_bf16) == 1, "--gen-dtype not taken");
    CHECK(gen_flags_parse(&f, "t", 'm', a_new) == 0, "an option of the program was taken");
    CHECK(gen_flags_parse(&f, "t", GEN_OPT_BASE + 100, a_new) == 0, "an unknown option was taken");
    CHECK(f.has_temperature, "--temperature given but has_temperature 0");
    gen_flags_finish(&f, "t");
    CHECK(g.max_new_tokens == 7, "max_new_tokens %d", g.max_new_tokens);
    CHECK(g.sampler.temperature == 0.5f, "temperature %g", g.sampler.temperature);
    CHECK(g.sampler.top_k == 3, "top_k %d", g.sampler.top_k);
    CHECK(g.sampler.top_p == 0.9f, "top_p %g", g.sampler.top_p);
    CHECK(g.sampler.min_p == 0.05f, "min_p %g", g.sampler.min_p);
    CHECK(g.sampler.repetition_penalty == 1.2f, "repetition_penalty %g", g.sampler.repetition_penalty);
    CHECK(g.n_stop == 2 && strcmp(g.stop[0], "\n") == 0 && strcmp(g.stop[1], "END") == 0,
          "stop strings: n %d, first \"%s\"", g.n_stop, g.n_stop ? g.stop[0] : "");
    CHECK(g.dtype == DECODE_BF16, "dtype %d after gen_flags_finish", (int)g.dtype);

    /* the option table: each long name once, each value distinct */
    const struct option opts[] = {GEN_FLAG_OPTIONS, {0, 0, 0, 0}};
    int n = 0;
    for (; opts[n].name; n++)
        for (int j = 0; j < n; j++) {
            CHECK(strcmp(opts[j].name, opts[n].name) != 0, "option %s listed twice", opts[n].name);
            CHECK(opts[j].val != opts[n].val, "options %s and %s share a value", opts[j].name, opts[n].name);
        }
    CHECK(n == 8, "expected 8 generation flags, got %d", n);

    return check_summary("test_gen_flags");
}
