/* init-model — make a randomly initialised model directory.
 *
 * The shape comes from flags, or from a config.json (--config) that flags then
 * override; the weights are drawn as transformers initialises them (model.h
 * model_init_random: N(0, initializer_range) for matrices and embeddings, GPT-2's
 * c_proj scaled by 1/sqrt(2 n_layer), zeros for biases, ones for norms), from --seed.
 * The output is a Hugging Face directory transformers loads (config.json,
 * model.safetensors, tokenizer.json when --tokenizer is given), written atomically. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cli.h"
#include "model/model.h"
#include "formats/tokenizer.h"
#include "base/util.h"

static const char *prog = "init-model";

static void usage(void) {
    printf("usage: %s [options] -o DIR\n"
           "Create a randomly initialised GPT-2 or Llama model directory (Hugging Face layout).\n\n"
           "  -o, --out DIR        output model directory (required; replaced atomically)\n"
           "      --config FILE    start from this config.json (flags below override it)\n"
           "      --family F       gpt2 (default), llama, qwen2, mistral, qwen3, gemma2, gemma3, phi3\n"
           "                       (windows, soft-caps, head_dim: from --config)\n"
           "      --layers N       transformer blocks (default 2)\n"
           "      --heads N        attention heads (default 4)\n"
           "      --kv-heads N     key/value heads, llama GQA (default = heads)\n"
           "      --width N        hidden size (default 64)\n"
           "      --mlp-width N    MLP width (default gpt2 4*width, llama 8/3*width rounded up to 8)\n"
           "      --vocab N        vocabulary size (default: the tokenizer's, else 256)\n"
           "      --context N      maximum sequence length (default 256)\n"
           "      --rope-theta X   RoPE base of the rotary families (default 10000)\n"
           "      --tie, --no-tie  tie the LM head to the token embedding (default gpt2 tied, llama untied)\n"
           "      --classifier     scalar head (score.weight, *ForSequenceClassification, num_labels 1)\n"
           "      --init-std X     initializer_range (default 0.02)\n"
           "      --norm-eps X     layer/RMS norm epsilon (default gpt2 1e-5, llama 1e-6)\n"
           "      --bos ID, --eos ID, --pad ID   special token ids (default: from the tokenizer)\n"
           "      --tokenizer FILE tokenizer.json to copy in (tokenizer_config.json beside it too)\n"
           "      --dtype T        f32 (default) or bf16 weights on disk\n"
           "      --seed N         random seed (default 1)\n"
           "  -q, --quiet          no summary on stderr\n"
           "  -h, --help           this help\n"
           "      --version        print the version\n",
           prog);
}

enum {
    O_CONFIG = 256,
    O_FAMILY,
    O_LAYERS,
    O_HEADS,
    O_KV,
    O_WIDTH,
    O_MLP,
    O_VOCAB,
    O_CONTEXT,
    O_THETA,
    O_TIE,
    O_NOTIE,
    O_CLS,
    O_STD,
    O_EPS,
    O_BOS,
    O_EOS,
    O_PAD,
    O_TOK,
    O_DTYPE,
    O_SEED,
    O_VERSION
};

int main(int argc, char **argv) {
    static struct option opts[] = {{"out", 1, 0, 'o'},
                                   {"config", 1, 0, O_CONFIG},
                                   {"family", 1, 0, O_FAMILY},
                                   {"layers", 1, 0, O_LAYERS},
                                   {"heads", 1, 0, O_HEADS},
                                   {"kv-heads", 1, 0, O_KV},
                                   {"width", 1, 0, O_WIDTH},
                                   {"mlp-width", 1, 0, O_MLP},
                                   {"vocab", 1, 0, O_VOCAB},
                                   {"context", 1, 0, O_CONTEXT},
                                   {"rope-theta", 1, 0, O_THETA},
                                   {"tie", 0, 0, O_TIE},
                                   {"no-tie", 0, 0, O_NOTIE},
                                   {"classifier", 0, 0, O_CLS},
                                   {"init-std", 1, 0, O_STD},
                                   {"norm-eps", 1, 0, O_EPS},
                                   {"bos", 1, 0, O_BOS},
                                   {"eos", 1, 0, O_EOS},
                                   {"pad", 1, 0, O_PAD},
                                   {"tokenizer", 1, 0, O_TOK},
                                   {"dtype", 1, 0, O_DTYPE},
                                   {"seed", 1, 0, O_SEED},
                                   {"quiet", 0, 0, 'q'},
                                   {"help", 0, 0, 'h'},
                                   {"version", 0, 0, O_VERSION},
                                   {0, 0, 0, 0}};
    const char *out = NULL, *config = NULL, *family = NULL, *tok_path = NULL, *dtype = "f32";
    int layers = -1, heads = -1, kv = -1, width = -1, mlp = -1, vocab = -1, context = -1, tie = -1, cls = 0;
    int bos = -2, eos = -2, pad = -2, quiet = 0;
    double theta = -1, std = -1, eps = -1;
    uint64_t seed = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_FAMILY:
            family = optarg;
            break;
        case O_LAYERS:
            layers = cli_int(prog, "--layers", optarg);
            break;
        case O_HEADS:
            heads = cli_int(prog, "--heads", optarg);
            break;
        case O_KV:
            kv = cli_int(prog, "--kv-heads", optarg);
            break;
        case O_WIDTH:
            width = cli_int(prog, "--width", optarg);
            break;
        case O_MLP:
            mlp = cli_int(prog, "--mlp-width", optarg);
            break;
        case O_VOCAB:
            vocab = cli_int(prog, "--vocab", optarg);
            break;
        case O_CONTEXT:
            context = cli_int(prog, "--context", optarg);
            break;
        case O_THETA:
            theta = cli_double(prog, "--rope-theta", optarg);
            break;
        case O_TIE:
            tie = 1;
            break;
        case O_NOTIE:
            tie = 0;
            break;
        case O_CLS:
            cls = 1;
            break;
        case O_STD:
            std = cli_double(prog, "--init-std", optarg);
            break;
        case O_EPS:
            eps = cli_double(prog, "--norm-eps", optarg);
            break;
        case O_BOS:
            bos = cli_int(prog, "--bos", optarg);
            break;
        case O_EOS:
            eos = cli_int(prog, "--eos", optarg);
            break;
        case O_PAD:
            pad = cli_int(prog, "--pad", optarg);
            break;
        case O_TOK:
            tok_path = optarg;
            break;
        case O_DTYPE:
            dtype = optarg;
            break;
        case O_SEED:
            seed = cli_u64(prog, "--seed", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage();
            return 0;
        case O_VERSION:
            cli_version(prog);
        default:
            cli_usage_error(prog, "unknown option");
        }
    }
    if (optind < argc) cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (!out) cli_usage_error(prog, "-o DIR is required");
    if (strcmp(dtype, "f32") && strcmp(dtype, "bf16")) cli_usage_error(prog, "--dtype must be f32 or bf16");
    Family fam = FAMILY_GPT2;
    if (family && !model_family_from_name(family, &fam))
        cli_usage_error(prog, "--family must be gpt2, llama, qwen2, mistral, qwen3, gemma2, gemma3 or phi3, got '%s'",
                        family);

    atomic_install_signal_cleanup();
    Error e = {0};
    ModelConfig cfg;
    if (config) {
        if (model_config_load(&cfg, config, &e)) err_die(prog, &e);
        if (family && fam != cfg.family)
            cli_usage_error(prog, "--family %s contradicts %s (%s)", family, config, model_family_name(cfg.family));
    } else {
        /* transformers' config defaults, scaled down to a small model */
        memset(&cfg, 0, sizeof cfg);
        cfg.family = fam;
        cfg.n_layer = 2;
        cfg.n_head = 4;
        cfg.d_model = 64;
        cfg.vocab_size = 256;
        cfg.max_seq = 256;
        cfg.rope_theta = 10000.0f;
        cfg.init_std = 0.02f;
        cfg.norm_eps = cfg.family == FAMILY_GPT2 ? 1e-5f : 1e-6f;
        cfg.tie_embeddings = cfg.family == FAMILY_GPT2;
        cfg.attn_bias = cfg.mlp_bias = cfg.family == FAMILY_GPT2;
        cfg.bos_id = cfg.eos_id = cfg.pad_id = -1;
        cfg.d_ff = 0; /* derived below */
    }
    if (layers >= 0) cfg.n_layer = layers;
    if (heads >= 0) cfg.n_head = heads;
    if (width >= 0) cfg.d_model = width;
    if (kv >= 0) {
        if (cfg.family == FAMILY_GPT2 && kv != cfg.n_head) cli_usage_error(prog, "--kv-heads: GPT-2 has no GQA");
        cfg.n_kv_head = kv;
    } else if (!config || heads >= 0) {
        cfg.n_kv_head = cfg.n_head;
    }
    if (mlp >= 0)
        cfg.d_ff = mlp;
    else if (!config || width >= 0)
        cfg.d_ff = cfg.family == FAMILY_GPT2 ? 4 * cfg.d_model : (8 * cfg.d_model / 3 + 7) / 8 * 8;
    if (context >= 0) cfg.max_seq = context;
    if (theta >= 0) {
        if (cfg.family == FAMILY_GPT2) cli_usage_error(prog, "--rope-theta: GPT-2 has learned positions");
        cfg.rope_theta = (float)theta;
    }
    if (tie >= 0) cfg.tie_embeddings = tie;
    if (cls) cfg.is_classifier = 1;
    if (std >= 0) cfg.init_std = (float)std;
    if (eps >= 0) cfg.norm_eps = (float)eps;

    /* The tokenizer gives the vocabulary size and special ids unless flags say. */
    char *stage = NULL;
    if (tok_path) {
        Tokenizer *tok;
        if (tok_load(&tok, tok_path, &e)) err_die(prog, &e);
        if (vocab < 0) vocab = tok_vocab_size(tok);
        if (vocab < tok_vocab_size(tok))
            cli_usage_error(prog, "--vocab %d is smaller than the tokenizer's %d ids", vocab, tok_vocab_size(tok));
        if (bos == -2) bos = tok_bos_id(tok);
        if (eos == -2) eos = tok_eos_id(tok);
        if (pad == -2 && cfg.is_classifier) pad = tok_pad_id(tok);
        tok_free(tok);
        /* stage tokenizer.json (+ tokenizer_config.json beside it) for model_save */
        char tmpl[] = "/tmp/init-model-XXXXXX";
        if (!mkdtemp(tmpl)) die_internal("mkdtemp failed");
        stage = xstrdup(tmpl);
        char *dst = path_join(stage, "tokenizer.json");
        if (copy_file(tok_path, dst, &e)) err_die(prog, &e);
        free(dst);
        char *copy = xstrdup(tok_path), *srcdir = dirname(copy);
        char *tc = path_join(srcdir, "tokenizer_config.json");
        if (file_exists(tc)) {
            dst = path_join(stage, "tokenizer_config.json");
            if (copy_file(tc, dst, &e)) err_die(prog, &e);
            free(dst);
        }
        free(tc);
        free(copy);
    }
    if (vocab >= 0) cfg.vocab_size = vocab;
    if (bos != -2) cfg.bos_id = bos;
    if (eos != -2) cfg.eos_id = eos;
    if (pad != -2) cfg.pad_id = pad;
    /* transformers' *ForSequenceClassification needs pad_token_id to find the last
     * real token of a padded batch. */
    if (cfg.is_classifier && cfg.pad_id < 0) cfg.pad_id = cfg.eos_id;
    if (model_config_validate(&cfg, "init-model flags", &e)) {
        if (stage) remove_tree(stage);
        fprintf(stderr, "%s: %s\n", prog, e.msg);
        return EX_USAGE;
    }

    Model m;
    model_create(&m, &cfg);
    model_init_random(&m, seed);
    int rc = model_save_dtype(&m, out, stage, strcmp(dtype, "bf16") == 0 ? ST_BF16 : ST_F32, &e);
    if (stage) {
        remove_tree(stage);
        free(stage);
    }
    if (rc) err_die(prog, &e);
    if (!quiet)
        fprintf(stderr, "%s: %s: %s%s, %d layers, width %d, heads %d/%d, vocab %d, %zu parameters (seed %llu)\n", prog,
                out, model_family_name(cfg.family), cfg.is_classifier ? " classifier" : "", cfg.n_layer, cfg.d_model,
                cfg.n_head, cfg.n_kv_head, cfg.vocab_size, m.n_params, (unsigned long long)seed);
    model_free(&m);
    return 0;
}
