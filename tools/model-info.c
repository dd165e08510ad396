/* model-info — describe a model directory: family, configuration, parameter count,
 * dtypes on disk and the tensor list, after checking that config.json and the
 * safetensors files agree (names, shapes) exactly as model_load would.  Weights are
 * only mapped, never converted, so this is fast on large models.  --json prints one
 * JSON object for machines. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cli.h"
#include "base/util.h"
#include "model/lora.h"
#include "model/model.h"

static const char *prog = "model-info";

static void usage(FILE *out) {
    fprintf(out, "Usage: %s [options] DIR\n"
           "Describe a Hugging Face model directory (config.json + safetensors) and validate it.\n\n"
           "      --json       one JSON object on stdout instead of text\n"
           "      --no-tensors omit the tensor list\n"
           "  -h, --help       this help\n"
           "      --version    print the version\n",
           prog);
}

static const char *arch_name(const ModelConfig *c) {
    return model_arch_name(c);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void fmt_shape(char *buf, size_t n, const StTensor *t) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* What main gathered about a model directory, for the two printers. */
typedef struct Info {
    const char *dir;
    const char *adesc; /* the adapter's description, "" for none */
    ModelConfig cfg;
    ModelWeights w;
    Model m;              /* created, never filled: its layout and parameter count */
    const StTensor **src; /* [m.n_tensors] the file tensor bound to each parameter */
    int *file_of;         /* [m.n_tensors] which file holds it */
    int counts[16];       /* tensors per dtype */
    size_t disk_bytes;
    int ignored, hd; /* buffer tensors transformers ignores; head dim */
} Info;

static void print_json(const Info *I, int tensors) {
    json_t *r = json_object();
    json_object_set_new(r, "dir", json_string(I->dir));
    if (*I->adesc) json_object_set_new(r, "adapter", json_string(I->adesc));
    json_object_set_new(r, "family", json_string(model_family_name(I->cfg.family)));
    json_object_set_new(r, "architecture", json_string(arch_name(&I->cfg)));
    json_object_set_new(r, "config", model_config_to_json(&I->cfg, NULL));
    json_object_set_new(r, "head_dim", json_integer(I->hd));
    json_object_set_new(r, "n_params", json_integer((json_int_t)I->m.n_params));
    json_object_set_new(r, "bytes_on_disk", json_integer((json_int_t)I->disk_bytes));
    json_t *dt = json_object();
    for (int d = 0; d < 16; d++)
        if (I->counts[d]) json_object_set_new(dt, st_dtype_name((StDtype)d), json_integer(I->counts[d]));
    json_object_set_new(r, "dtypes", dt);
    json_t *files = json_array();
    for (int f = 0; f < I->w.n_files; f++) json_array_append_new(files, json_string(base_name(I->w.files[f].path)));
    json_object_set_new(r, "files", files);
    json_object_set_new(r, "ignored_tensors", json_integer(I->ignored));
    if (tensors) {
        json_t *ts = json_array();
        for (int i = 0; i < I->m.n_tensors; i++) {
            const StTensor *t = I->src[i];
            json_t *o = json_object(), *sh = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
            json_object_set_new(o, "name", json_string(t->name));
            json_object_set_new(o, "shape", sh);
            json_object_set_new(o, "dtype", json_string(st_dtype_name(t->dtype)));
            json_object_set_new(o, "numel", json_integer((json_int_t)t->numel));
            json_object_set_new(o, "file", json_string(base_name(I->w.files[I->file_of[i]].path)));
            json_object_set_new(o, "weight_decay", json_boolean(I->m.tensors[i].decay));
            json_object_set_new(o, "conv1d", json_boolean(I->m.tensors[i].conv1d));
            json_array_append_new(ts, o);
        }
        json_object_set_new(r, "tensors", ts);
    }
    json_dumpf(r, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    putchar('\n');
    json_decref(r);
}

static void print_text(const Info *I, int tensors) {
    printf("model:        %s\n", I->dir);
    printf("family:       %s (%s)\n", model_family_name(I->cfg.family), arch_name(&I->cfg));
    printf("layers:       %d\n", I->cfg.n_layer);
    printf("width:        %d (head dim %d)\n", I->cfg.d_model, I->hd);
    printf("heads:        %d query, %d key/value\n", I->cfg.n_head, I->cfg.n_kv_head);
    printf("mlp width:    %d (%s)\n", I->cfg.d_ff, 
           I->cfg.family == FAMILY_GPT2                                      ? "gelu_new"
           : I->cfg.family == FAMILY_GEMMA2 || I->cfg.family == FAMILY_GEMMA3 ? "GeGLU"
                                                                              : "SwiGLU");
    printf("vocab:        %d\n", I->cfg.vocab_size);
    printf("context:      %d%s\n", I->cfg.max_seq, I->cfg.family == FAMILY_GPT2 ? " (learned positions)" : "");
    if (I->cfg.family != FAMILY_GPT2) printf("rope theta:   %g\n", I->cfg.rope_theta);
    printf("norm:         %s, eps %g\n", I->cfg.family == FAMILY_GPT2 ? "LayerNorm" : "RMSNorm", I->cfg.norm_eps);
    printf("head:         %s\n", I->cfg.is_classifier    ? "scalar (score.weight)"
                                 : I->cfg.tie_embeddings ? "LM, tied to the token embedding"
                                                         : "LM (lm_head.weight)");
    if (I->cfg.family != FAMILY_GPT2)
        printf("biases:       attention %s, mlp %s\n", I->cfg.attn_bias ? "yes" : "no", I->cfg.mlp_bias ? "yes" : "no");
    printf("special ids:  bos %d, eos %d, pad %d (-1 = none)\n", I->cfg.bos_id, I->cfg.eos_id, I->cfg.pad_id);
    printf("parameters:   %zu (%.2f M), %.1f MB as float32\n", I->m.n_params, I->m.n_params / 1e6,
           I->m.n_params * 4.0 / 1e6);
    printf("on disk:      %.1f MB in %d file%s;", I->disk_bytes / 1e6, I->w.n_files, I->w.n_files == 1 ? "" : "s");
    for (int d = 0; d < 16; d++)
        if (I->counts[d]) printf(" %s x %d", st_dtype_name((StDtype)d), I->counts[d]);
    printf("\n");
    if (I->ignored)
        printf("ignored:      %d buffer tensor%s (as transformers does)\n", I->ignored, I->ignored == 1 ? "" : "s");
    if (tensors) {
        printf("tensors:      %d\n", I->m.n_tensors);
        for (int i = 0; i < I->m.n_tensors; i++) {
            char sh[96];
            fmt_shape(sh, sizeof sh, I->src[i]);
            printf("  %-52s %-14s %-5s%s%s\n", I->src[i]->name, sh, st_dtype_name(I->src[i]->dtype),
                   I->m.tensors[i].decay ? " decay" : "", I->m.tensors[i].conv1d ? " conv1d" : "");
        }
    }
}

int main(int argc, char **argv) {
    cli_init(prog);
    static struct option opts[] = {
        {"json", 0, 0, 'j'}, {"no-tensors", 0, 0, 'n'}, {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};
    int json = 0, tensors = 1, c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'n':
            tensors = 0;
            break;
        default:
            cli_common_option(prog, c, 'V', usage, NULL);
        }
    }
    if (argc - optind != 1) cli_usage_error(prog, "expected one model directory");
    const char *dir = argv[optind];

    Error e = {0};
    if (!file_exists(dir)) {
        err_set(&e, EX_NOINPUT, "%s: no such model directory", dir);
        err_die(prog, &e);
    }
    /* A LoRA adapter directory (lora.h): load base + adapter once to validate them,
     * then describe the base. */
    char adesc[512] = "", *base_dir = NULL;
    if (lora_dir_has_adapter(dir)) {
        Model am;
        if (model_load(&am, dir, &e)) err_die(prog, &e);
        lora_describe(&am, adesc, sizeof adesc);
        model_free(&am);
        if (lora_base_dir(dir, &base_dir, &e)) err_die(prog, &e);
        if (!json) printf("adapter:      %s (base %s)\n", adesc, base_dir);
        dir = base_dir;
    }
    Info info = {.dir = dir, .adesc = adesc}, *I = &info;
    char *cfg_path = path_join(dir, "config.json");
    if (model_config_load(&I->cfg, cfg_path, &e)) err_die(prog, &e);
    free(cfg_path);
    if (model_weights_open(&I->w, dir, &e)) err_die(prog, &e);
    model_create(&I->m, &I->cfg); /* zero pages: not touched, so no memory is used for them */
    I->src = xcalloc((size_t)I->m.n_tensors, sizeof *I->src);
    if (model_weights_bind(&I->m, &I->w, I->src, &e)) err_die(prog, &e);

    /* dtype histogram over the bound tensors, and which file holds each */
    I->file_of = xcalloc((size_t)I->m.n_tensors, sizeof(int));
    for (int i = 0; i < I->m.n_tensors; i++) {
        I->counts[I->src[i]->dtype]++;
        I->disk_bytes += I->src[i]->nbytes;
        for (int f = 0; f < I->w.n_files; f++)
            if (I->src[i] >= I->w.files[f].tensors && I->src[i] < I->w.files[f].tensors + I->w.files[f].n)
                I->file_of[i] = f;
    }
    int total_file_tensors = 0;
    for (int f = 0; f < I->w.n_files; f++) total_file_tensors += I->w.files[f].n;
    I->ignored = total_file_tensors - I->m.n_tensors;
    I->hd = model_head_dim(&I->cfg);
    if (json)
        print_json(I, tensors);
    else
        print_text(I, tensors);
    free(I->file_of);
    free(I->src);
    model_free(&I->m);
    model_weights_close(&I->w);
    if (fflush(stdout) != 0) {
        err_set(&e, EX_IOERR, "<stdout>: write error");
        err_die(prog, &e);
    }
    return 0;
}
