/* import-gguf — turn a llama.cpp GGUF (llama architecture, byte-level BPE vocabulary)
 * into a Hugging Face model directory that cherry and transformers load.
 *
 * All the work is in common/formats/gguf.c (parser), common/formats/dequant.c (ggml blocks) and
 * common/formats/gguf_import.c (names, shapes, rotary permutation, config, tokenizer); this
 * file parses flags, prints --list, and reports. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/outdir.h"
#include "formats/gguf.h"
#include "base/util.h"

static const char *prog = "import-gguf";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options] FILE.gguf OUTDIR\n"
           "       %s --list FILE.gguf\n"
           "Import a llama-architecture GGUF (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and\n"
           "K-quant Q2_K..Q6_K, Q8_K tensors) as a\n"
           "Hugging Face LlamaForCausalLM directory (config.json, model.safetensors in F32,\n"
           "tokenizer.json, tokenizer_config.json, special_tokens_map.json,\n"
           "generation_config.json), written atomically.\n\n"
           "  -l, --list         print the file's metadata and tensors instead of importing\n"
           "      --keep-rotary  keep llama.cpp's interleaved Q/K row order (debugging only;\n"
           "                     the result is NOT a correct HF model)\n"
           "      --force        replace an existing OUTDIR whatever it holds (without it, only a\n"
           "                     directory cherry wrote is replaced)\n"
           "  -q, --quiet        no summary on stderr\n"
           "  -h, --help         this help\n"
           "      --version      print the version\n",
           prog, prog);
}

/* --list: one line per key (arrays abbreviated) and per tensor, like gguf-dump. */
static void print_value(const GgufKV *kv) {
    const GgufStr *s = NULL;
    switch (kv->type) {
    case GGUF_STRING:
        s = &kv->str;
        break;
    case GGUF_ARRAY:
        printf("[%s x %" PRIu64 "]", gguf_type_name(kv->arr_type), kv->arr_n);
        if (kv->arr_type == GGUF_STRING && kv->arr_n > 0) {
            printf(" first: ");
            s = &kv->arr_str[0];
        } else
            return;
        break;
    case GGUF_FLOAT32:
    case GGUF_FLOAT64:
        printf("%.9g", kv->v.f);
        return;
    case GGUF_INT8:
    case GGUF_INT16:
    case GGUF_INT32:
    case GGUF_INT64:
        printf("%" PRId64, kv->v.i);
        return;
    case GGUF_BOOL:
        printf("%s", kv->v.u ? "true" : "false");
        return;
    default:
        printf("%" PRIu64, kv->v.u);
        return;
    }
    /* strings: quoted, control characters escaped, long ones cut */
    putchar('"');
    for (uint64_t i = 0; i < s->n && i < 120; i++) {
        unsigned char ch = (unsigned char)s->p[i];
        if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
    printf(s->n > 120 ? "\"... (%" PRIu64 " bytes)" : "\"", s->n);
}

static int list_file(const char *path) {
    GgufFile g;
    Error e = {0};
    if (gguf_open(&g, path, &e)) err_die(prog, &e);
    printf("%s: GGUF v%u, %" PRIu64 " keys, %" PRIu64 " tensors, alignment %" PRIu64 ", data at byte %" PRIu64 "\n",
           path, g.version, g.n_kv, g.n_tensors, g.alignment, g.data_offset);
    for (uint64_t i = 0; i < g.n_kv; i++) {
        printf("%-44s %-8s ", g.kv[i].key, gguf_type_name(g.kv[i].type));
        print_value(&g.kv[i]);
        putchar('\n');
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        char shape[96] = "";
        for (int d = 0; d < t->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%" PRId64, d ? ", " : "", t->ne[d]);
        printf("%-44s %-8s [%s] %" PRIu64 " bytes\n", t->name, ggml_type_name(t->type), shape, t->nbytes);
        total += t->numel;
    }
    printf("%" PRIu64 " parameters\n", total);
    gguf_close(&g);
    if (fflush(stdout) != 0) return EX_IOERR;
    return 0;
}

int main(int argc, char **argv) {
    cli_init(prog);
    GgufImportOptions opt = {0};
    int list = 0;
    static struct option opts[] = {{"list", 0, 0, 'l'}, {"keep-rotary", 0, 0, 'K'}, {"quiet", 0, 0, 'q'},
                                   {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'},     {"force", 0, 0, 'F'},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "lqh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            list = 1;
            break;
        case 'K':
            opt.keep_rotary = 1;
            break;
        case 'F':
            outdir_set_force(1);
            break;
        default:
            cli_common_option(prog, c, 'V', usage, &opt.quiet);
        }
    }
    int nargs = argc - optind;
    if (list) {
        if (nargs != 1) cli_usage_error(prog, "--list takes exactly one FILE.gguf");
        return list_file(argv[optind]);
    }
    if (nargs != 2) cli_usage_error(prog, "expected FILE.gguf and OUTDIR");
    const char *in = argv[optind], *out = argv[optind + 1];

    atomic_install_signal_cleanup();
    Error e = {0};
    GgufImportStats st;
    /* like mkdir -p for the parent, so `import-gguf x.gguf models/name` just works */
    char *parent = xstrdup(out);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == 0) { /* trailing slashes */
        *slash = 0;
        slash = strrchr(parent, '/');
    }
    if (slash && slash > parent) {
        *slash = 0;
        if (mkdir_p(parent, &e)) err_die(prog, &e);
    }
    free(parent);
    if (outdir_claim(out, &e)) err_die(prog, &e);
    double t0 = now_seconds();
    if (gguf_import_llama(in, out, &opt, &st, &e)) err_die(prog, &e);
    if (!opt.quiet)
        fprintf(stderr, "%s: %s -> %s: %d layers, vocabulary %d, %d tensors, %" PRIu64 " parameters%s (%.1f s)\n", prog,
                in, out, st.n_layers, st.vocab_size, st.n_tensors, st.n_params, st.tied ? ", tied embeddings" : "",
                now_seconds() - t0);
    return 0;
}
