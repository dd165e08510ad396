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
#include "base/outdir.h"
#include "base/util.h"
#include "formats/tokenizer.h"
#include "model/model.h"

static const char *prog = "init-model";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options] -o DIR\n"
           "Create a randomly initialised GPT-2 or Llama model directory (Hugging Face layout).\n\n"
           "  -o, --out DIR        output model directory (required; replaced atomically, but only\n"
           "                       when it is a directory cherry wrote)\n"
           "      --force          replace an existing DIR whatever it holds\n"
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
    O_VERSION,
    O_FORCE
};

typedef struct Flags {
    const char *out, *config, *family, *tok_path, *dtype;
    int layers, heads, kv, width, mlp, vocab, context, tie, cls;
    int bos, eos, pad, quiet; /* -2: not given */
    double theta, std, eps;   /* -1: not given */
    uint64_t seed;
} Flags;

/* The flags of the shape and the special ids; returns 1 when C is one of them. */
static int shape_flag(Flags *o, int c, const char *arg) {
    switch (c) {
    case O_LAYERS:
        o->layers = cli_int(prog, "--layers", arg);
        return 1;
    case O_HEADS:
        o->heads = cli_int(prog, "--heads", arg);
        return 1;
    case O_KV:
        o->kv = cli_int(prog, "--kv-heads", arg);
        return 1;
    case O_WIDTH:
        o->width = cli_int(prog, "--width", arg);
        return 1;
    case O_MLP:
        o->mlp = cli_int(prog, "--mlp-width", arg);
        return 1;
    case O_VOCAB:
        o->vocab = cli_int(prog, "--vocab", arg);
        return 1;
    case O_CONTEXT:
        o->context = cli_int(prog, "--context", arg);
        return 1;
    case O_THETA:
        o->theta = cli_double(prog, "--rope-theta", arg);
        return 1;
    case O_TIE:
        o->tie = 1;
        return 1;
    case O_NOTIE:
        o->tie = 0;
        return 1;
    case O_CLS:
        o->cls = 1;
        return 1;
    case O_STD:
        o->std = cli_double(prog, "--init-std", arg);
        return 1;
    case O_EPS:
        o->eps = cli_double(prog, "--norm-eps", arg);
        return 1;
    case O_BOS:
        o->bos = cli_int(prog, "--bos", arg);
        return 1;
    case O_EOS:
        o->eos = cli_int(prog, "--eos", arg);
        return 1;
    case O_PAD:
        o->pad = cli_int(prog, "--pad", arg);
        return 1;
    }
    return 0;
}

static void parse_args(Flags *o, int argc, char **argv) {
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
                                   {"force", 0, 0, O_FORCE},
                                   {0, 0, 0, 0}};
    *o = (Flags){.dtype = "f32",
                 .layers = -1,
                 .heads = -1,
                 .kv = -1,
                 .width = -1,
                 .mlp = -1,
                 .vocab = -1,
                 .context = -1,
                 .tie = -1,
                 .bos = -2,
                 .eos = -2,
                 .pad = -2,
                 .theta = -1,
                 .std = -1,
                 .eps = -1,
                 .seed = 1};
    int c;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        if (shape_flag(o, c, optarg)) continue;
        switch (c) {
        case 'o':
            o->out = optarg;
            break;
        case O_CONFIG:
            o->config = optarg;
            break;
        case O_FAMILY:
            o->family = optarg;
            break;
        case O_TOK:
            o->tok_path = optarg;
            break;
        case O_DTYPE:
            o->dtype = optarg;
            break;
        case O_SEED:
            o->seed = cli_u64(prog, "--seed", optarg);
            break;
        case O_FORCE:
            outdir_set_force(1);
            break;
        default:
            cli_common_option(prog, c, O_VERSION, usage, &o->quiet);
        }
    }
    cli_no_operands(prog, argc, argv);
    if (!o->out) cli_usage_error(prog, "-o DIR is required");
    if (strcmp(o->dtype, "f32") && strcmp(o->dtype, "bf16")) cli_usage_error(prog, "--dtype must be f32 or bf16");
    Family fam;
    if (o->family && !model_family_from_name(o->family, &fam))
        cli_usage_error(prog, "--family must be gpt2, llama, qwen2, mistral, qwen3, gemma2, gemma3 or phi3, got '%s'",
                        o->family);
}

/* --config's configuration, or transformers' defaults scaled down to a small model,
 * with the flags' overrides. */
static void base_config(const Flags *o, ModelConfig *cfg) {
    Error e = {0};
    if (o->config) {
        if (model_config_load(cfg, o->config, &e)) err_die(prog, &e);
        Family fam;
        if (o->family && model_family_from_name(o->family, &fam) && fam != cfg->family)
            cli_usage_error(prog, "--family %s contradicts %s (%s)", o->family, o->config,
                            model_family_name(cfg->family));
    } else {
        /* transformers' config defaults, scaled down to a small model */
        memset(cfg, 0, sizeof *cfg);
        cfg->family = FAMILY_GPT2;
        if (o->family) model_family_from_name(o->family, &cfg->family);
        cfg->n_layer = 2;
        cfg->n_head = 4;
        cfg->d_model = 64;
        cfg->vocab_size = 256;
        cfg->max_seq = 256;
        cfg->rope_theta = 10000.0f;
        cfg->init_std = 0.02f;
        cfg->norm_eps = cfg->family == FAMILY_GPT2 ? 1e-5f : 1e-6f;
        cfg->tie_embeddings = cfg->family == FAMILY_GPT2;
        cfg->attn_bias = cfg->mlp_bias = cfg->family == FAMILY_GPT2;
        cfg->bos_id = cfg->eos_id = cfg->pad_id = -1;
        cfg->d_ff = 0; /* derived below */
    }
    if (o->layers >= 0) cfg->n_layer = o->layers;
    if (o->heads >= 0) cfg->n_head = o->heads;
    if (o->width >= 0) cfg->d_model = o->width;
    if (o->kv >= 0) {
        if (cfg->family == FAMILY_GPT2 && o->kv != cfg->n_head) cli_usage_error(prog, "--kv-heads: GPT-2 has no GQA");
        cfg->n_kv_head = o->kv;
    } else if (!o->config || o->heads >= 0) {
        cfg->n_kv_head = cfg->n_head;
    }
    if (o->mlp >= 0)
        cfg->d_ff = o->mlp;
    else if (!o->config || o->width >= 0)
        cfg->d_ff = cfg->family == FAMILY_GPT2 ? 4 * cfg->d_model : (8 * cfg->d_model / 3 + 7) / 8 * 8;
    if (o->context >= 0) cfg->max_seq = o->context;
    if (o->theta >= 0) {
        if (cfg->family == FAMILY_GPT2) cli_usage_error(prog, "--rope-theta: GPT-2 has learned positions");
        cfg->rope_theta = (float)o->theta;
    }
    if (o->tie >= 0) cfg->tie_embeddings = o->tie;
    if (o->cls) cfg->is_classifier = 1;
    if (o->std >= 0) cfg->init_std = (float)o->std;
    if (o->eps >= 0) cfg->norm_eps = (float)o->eps;
}

/* The tokenizer gives the vocabulary size and special ids unless flags say (into
 * *vocab, *bos, *eos, *pad); tokenizer.json (and tokenizer_config.json beside it) are
 * staged in a temporary directory for model_save, returned (NULL without --tokenizer). */
static char *stage_tokenizer(const Flags *o, const ModelConfig *cfg, int *vocab, int *bos, int *eos, int *pad) {
    Error e = {0};
    if (!o->tok_path) return NULL;
    Tokenizer *tok;
    if (tok_load(&tok, o->tok_path, &e)) err_die(prog, &e);
    if (*vocab < 0) *vocab = tok_vocab_size(tok);
    if (*vocab < tok_vocab_size(tok))
        cli_usage_error(prog, "--vocab %d is smaller than the tokenizer's %d ids", *vocab, tok_vocab_size(tok));
    if (*bos == -2) *bos = tok_bos_id(tok);
    if (*eos == -2) *eos = tok_eos_id(tok);
    if (*pad == -2 && cfg->is_classifier) *pad = tok_pad_id(tok);
    tok_free(tok);
    /* stage tokenizer.json (+ tokenizer_config.json beside it) for model_save */
    char tmpl[] = "/tmp/init-model-XXXXXX";
    if (!mkdtemp(tmpl)) die_internal("mkdtemp failed");
    char *stage = xstrdup(tmpl);
    char *dst = path_join(stage, "tokenizer.json");
    if (copy_file(o->tok_path, dst, &e)) err_die(prog, &e);
    free(dst);
    char *copy = xstrdup(o->tok_path), *srcdir = dirname(copy);
    char *tc = path_join(srcdir, "tokenizer_config.json");
    if (file_exists(tc)) {
        dst = path_join(stage, "tokenizer_config.json");
        if (copy_file(tc, dst, &e)) err_die(prog, &e);
        free(dst);
    }
    free(tc);
    free(copy);
    return stage;
}

int main(int argc, char **argv) {
    cli_init(prog);
    Flags o;
    parse_args(&o, argc, argv);
    atomic_install_signal_cleanup();
    Error e = {0};
    if (outdir_claim(o.out, &e)) err_die(prog, &e);
    ModelConfig cfg;
    base_config(&o, &cfg);
    int vocab = o.vocab, bos = o.bos, eos = o.eos, pad = o.pad;
    char *stage = stage_tokenizer(&o, &cfg, &vocab, &bos, &eos, &pad);
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
    model_init_random(&m, o.seed);
    int rc = model_save_dtype(&m, o.out, stage, strcmp(o.dtype, "bf16") == 0 ? ST_BF16 : ST_F32, &e);
    if (stage) {
        remove_tree(stage);
        free(stage);
    }
    if (rc) err_die(prog, &e);
    if (!o.quiet)
        fprintf(stderr, "%s: %s: %s%s, %d layers, width %d, heads %d/%d, vocab %d, %zu parameters (seed %llu)\n", prog,
                o.out, model_family_name(cfg.family), cfg.is_classifier ? " classifier" : "", cfg.n_layer, cfg.d_model,
                cfg.n_head, cfg.n_kv_head, cfg.vocab_size, m.n_params, (unsigned long long)o.seed);
    model_free(&m);
    return 0;
}
