/* gen_flags.c — the generation flags of rollout, eval and ppo (gen_flags.h). */
#include "gen_flags.h"

#include <string.h>

#include "base/cli.h"

void gen_flags_init(GenFlags *f, GenConfig *g) {
    memset(f, 0, sizeof *f);
    f->gen = g;
}

char *gen_unescape(char *s) {
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 't' ? '\t' : '\\';
        } else {
            *w++ = *r;
        }
    }
    *w = 0;
    return s;
}

int gen_flags_parse(GenFlags *f, const char *prog, int opt, char *arg) {
    SamplerConfig *s = &f->gen->sampler;
    switch (opt) {
    case GEN_OPT_MAX_NEW:
        f->gen->max_new_tokens = cli_int(prog, "--max-new-tokens", arg);
        return 1;
    case GEN_OPT_TEMPERATURE:
        s->temperature = (float)cli_double(prog, "--temperature", arg);
        f->has_temperature = 1;
        return 1;
    case GEN_OPT_TOP_K:
        s->top_k = cli_int(prog, "--top-k", arg);
        return 1;
    case GEN_OPT_TOP_P:
        s->top_p = (float)cli_double(prog, "--top-p", arg);
        return 1;
    case GEN_OPT_MIN_P:
        s->min_p = (float)cli_double(prog, "--min-p", arg);
        return 1;
    case GEN_OPT_REPETITION_PENALTY:
        s->repetition_penalty = (float)cli_double(prog, "--repetition-penalty", arg);
        return 1;
    case GEN_OPT_STOP:
        if (f->n_stop == GEN_MAX_STOP) cli_usage_error(prog, "--stop: at most %d stop strings", GEN_MAX_STOP);
        if (!*arg) cli_usage_error(prog, "--stop: empty stop string");
        f->stop[f->n_stop++] = gen_unescape(arg);
        return 1;
    case GEN_OPT_GEN_DTYPE:
        if (decode_dtype_parse(arg, &f->gen->dtype))
            cli_usage_error(prog, "--gen-dtype: expected fp32, bf16 or int8, got '%s'", arg);
        return 1;
    }
    return 0;
}

void gen_flags_finish(GenFlags *f, const char *prog) {
    /* upper bound: a sequence cannot outgrow any context cherry loads */
    if (f->gen->max_new_tokens < 1 || f->gen->max_new_tokens > (1 << 24))
        cli_usage_error(prog, "--max-new-tokens must be in [1, %d], got %d", 1 << 24, f->gen->max_new_tokens);
    Error e;
    if (sampler_config_check(&f->gen->sampler, &e)) cli_usage_error(prog, "%s", e.msg);
    f->gen->stop = f->stop;
    f->gen->n_stop = f->n_stop;
}

void gen_flags_usage(FILE *out, int max_new_default, const char *temperature_help) {
    fprintf(out,
            "      --max-new-tokens N     tokens to generate at most (default %d)\n"
            "      --temperature T        %s\n"
            "      --top-k K              keep the K most likely tokens (default 0 = off)\n"
            "      --top-p P              nucleus sampling mass (default 1 = off)\n"
            "      --min-p P              drop tokens below P x the top probability (default 0 = off)\n"
            "      --repetition-penalty R CTRL penalty on tokens already present (default 1 = off)\n"
            "      --stop STRING          end a completion when it contains STRING (repeatable); \\n, \\t\n"
            "                             and \\\\ are read as newline, tab and backslash\n"
            "      --gen-dtype fp32|bf16|int8\n"
            "                             decode weights: bf16 (inputs rounded too), or int8\n"
            "                             with one scale per 32 inputs (GGML's Q8_0, inputs\n"
            "                             too); fp32 sums, prefill stays fp32 (default fp32)\n",
            max_new_default, temperature_help);
}
