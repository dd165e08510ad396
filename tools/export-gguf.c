/* export-gguf — write a cherry / Hugging Face model directory (GPT-2 or Llama family,
 * or a LoRA adapter directory, merged) as a llama.cpp GGUF v3 file, so an aligned
 * model runs in llama.cpp, ollama and friends.
 *
 * The work is in common/model/gguf_export.c (tensors, hyper-parameters),
 * common/model/gguf_export_vocab.c (tokenizer metadata), common/formats/quant.c
 * (F16/BF16/Q8_0/Q4_0), common/formats/quant_k.c (Q4_K) and
 * common/formats/gguf_write.c (the file); this file parses flags and reports. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "formats/gguf.h"
#include "model/gguf_export.h"

static const char *prog = "export-gguf";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options] MODEL_DIR OUT.gguf\n"
           "Write a GPT-2 or Llama-family model directory (or a LoRA adapter directory,\n"
           "merged into its base) as a GGUF v3 file for llama.cpp, written atomically:\n"
           "weights, hyper-parameters, the byte-level BPE tokenizer and the chat template.\n\n"
           "  -t, --type T       type of the 2-D weights: f32, f16 (default), bf16, q8_0, q4_0,\n"
           "                     q4_k (norms and biases stay f32; rows that do not fill\n"
           "                     whole blocks fall back to q8_0 (q4_k) or f16)\n"
           "      --name NAME    general.name (default: the directory's name)\n"
           "  -q, --quiet        no summary on stderr\n"
           "  -h, --help         this help\n"
           "      --version      print the version\n",
           prog);
}

int main(int argc, char **argv) {
    cli_init(prog);
    GgufExportOptions opt = {GGML_F16, NULL};
    int quiet = 0;
    static struct option opts[] = {{"type", 1, 0, 't'}, {"name", 1, 0, 'N'},    {"quiet", 0, 0, 'q'},
                                   {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "t:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            opt.type = gguf_export_type_parse(optarg);
            if (opt.type < 0) cli_usage_error(prog, "--type must be f32, f16, bf16, q8_0, q4_0 or q4_k");
            break;
        case 'N':
            opt.name = optarg;
            break;
        default:
            cli_common_option(prog, c, 'V', usage, &quiet);
        }
    }
    if (argc - optind != 2) cli_usage_error(prog, "expected MODEL_DIR and OUT.gguf");
    const char *in = argv[optind], *out = argv[optind + 1];
    atomic_install_signal_cleanup();
    Error e = {0};
    GgufExportStats st;
    double t0 = now_seconds();
    if (gguf_export(in, out, &opt, &st, &e)) err_die(prog, &e);
    if (!quiet)
        fprintf(stderr,
                "%s: %s -> %s: %s, %d tensors (%d in %s%s), %" PRIu64 " parameters, vocabulary %d (%d merges, "
                "pre-tokenizer %s), %.1f MB (%.1f s)\n",
                prog, in, out, st.arch, st.n_tensors, st.n_quantised, ggml_type_name(opt.type),
                st.n_fallback ? ", some rows in F16" : "", st.n_params, st.vocab_size, st.n_merges, st.pre,
                (double)st.bytes / 1e6, now_seconds() - t0);
    return 0;
}
