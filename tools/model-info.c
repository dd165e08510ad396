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
#include "model/lora.h"
#include "model/model.h"
#include "base/util.h"

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
        case 'h':
            cli_help(usage);
        case 'V':
            cli_version(prog);
        default:
            cli_usage_error(prog, "unknown option");
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
    char *cfg_path = path_join(dir, "config.json");
    ModelConfig cfg;
    if (model_config_load(&cfg, cfg_path, &e)) err_die(prog, &e);
    free(cfg_path);
    ModelWeights w;
    if (model_weights_open(&w, dir, &e)) err_die(prog, &e);
    Model m;
    model_create(&m, &cfg); /* zero pages: not touched, so no memory is used for them */
    const StTensor **src = xcalloc((size_t)m.n_tensors, sizeof *src);
    if (model_weights_bind(&m, &w, src, &e)) err_die(prog, &e);

    /* dtype histogram over the bound tensors, and which file holds each */
    int counts[16] = {0};
    size_t disk_bytes = 0;
    int *file_of = xcalloc((size_t)m.n_tensors, sizeof(int));
    for (int i = 0; i < m.n_tensors; i++) {
        counts[src[i]->dtype]++;
        disk_bytes += src[i]->nbytes;
        for (int f = 0; f < w.n_files; f++)
            if (src[i] >= w.files[f].tensors && src[i] < w.files[f].tensors + w.files[f].n) file_of[i] = f;
    }
    int total_file_tensors = 0;
    for (int f = 0; f < w.n_files; f++) total_file_tensors += w.files[f].n;
    int ignored = total_file_tensors - m.n_tensors;
    int hd = model_head_dim(&cfg);

    if (json) {
        json_t *r = json_object();
        json_object_set_new(r, "dir", json_string(dir));
        if (*adesc) json_object_set_new(r, "adapter", json_string(adesc));
        json_object_set_new(r, "family", json_string(model_family_name(cfg.family)));
        json_object_set_new(r, "architecture", json_string(arch_name(&cfg)));
        json_object_set_new(r, "config", model_config_to_json(&cfg, NULL));
        json_object_set_new(r, "head_dim", json_integer(hd));
        json_object_set_new(r, "n_params", json_integer((json_int_t)m.n_params));
        json_object_set_new(r, "bytes_on_disk", json_integer((json_int_t)disk_bytes));
        json_t *dt = json_object();
        for (int d = 0; d < 16; d++)
            if (counts[d]) json_object_set_new(dt, st_dtype_name((StDtype)d), json_integer(counts[d]));
        json_object_set_new(r, "dtypes", dt);
        json_t *files = json_array();
        for (int f = 0; f < w.n_files; f++) json_array_append_new(files, json_string(base_name(w.files[f].path)));
        json_object_set_new(r, "files", files);
        json_object_set_new(r, "ignored_tensors", json_integer(ignored));
        if (tensors) {
            json_t *ts = json_array();
            for (int i = 0; i < m.n_tensors; i++) {
                const StTensor *t = src[i];
                json_t *o = json_object(), *sh = json_array();
                for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer(t->shape[d]));
                json_object_set_new(o, "name", json_string(t->name));
                json_object_set_new(o, "shape", sh);
                json_object_set_new(o, "dtype", json_string(st_dtype_name(t->dtype)));
                json_object_set_new(o, "numel", json_integer((json_int_t)t->numel));
                json_object_set_new(o, "file", json_string(base_name(w.files[file_of[i]].path)));
                json_object_set_new(o, "weight_decay", json_boolean(m.tensors[i].decay));
                json_object_set_new(o, "conv1d", json_boolean(m.tensors[i].conv1d));
                json_array_append_new(ts, o);
            }
            json_object_set_new(r, "tensors", ts);
        }
        json_dumpf(r, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
        putchar('\n');
        json_decref(r);
    } else {
        printf("model:        %s\n", dir);
        printf("family:       %s (%s)\n", model_family_name(cfg.family), arch_name(&cfg));
        printf("layers:       %d\n", cfg.n_layer);
        printf("width:        %d (head dim %d)\n", cfg.d_model, hd);
        printf("heads:        %d query, %d key/value\n", cfg.n_head, cfg.n_kv_head);
        printf("mlp width:    %d (%s)\n", cfg.d_ff,
               cfg.family == FAMILY_GPT2                                    ? "gelu_new"
               : cfg.family == FAMILY_GEMMA2 || cfg.family == FAMILY_GEMMA3 ? "GeGLU"
                                                                            : "SwiGLU");
        printf("vocab:        %d\n", cfg.vocab_size);
        printf("context:      %d%s\n", cfg.max_seq, cfg.family == FAMILY_GPT2 ? " (learned positions)" : "");
        if (cfg.family != FAMILY_GPT2) printf("rope theta:   %g\n", cfg.rope_theta);
        printf("norm:         %s, eps %g\n", cfg.family == FAMILY_GPT2 ? "LayerNorm" : "RMSNorm", cfg.norm_eps);
        printf("head:         %s\n", cfg.is_classifier    ? "scalar (score.weight)"
                                     : cfg.tie_embeddings ? "LM, tied to the token embedding"
                                                          : "LM (lm_head.weight)");
        if (cfg.family != FAMILY_GPT2)
            printf("biases:       attention %s, mlp %s\n", cfg.attn_bias ? "yes" : "no", cfg.mlp_bias ? "yes" : "no");
        printf("special ids:  bos %d, eos %d, pad %d (-1 = none)\n", cfg.bos_id, cfg.eos_id, cfg.pad_id);
        printf("parameters:   %zu (%.2f M), %.1f MB as float32\n", m.n_params, m.n_params / 1e6,
               m.n_params * 4.0 / 1e6);
        printf("on disk:      %.1f MB in %d file%s;", disk_bytes / 1e6, w.n_files, w.n_files == 1 ? "" : "s");
        for (int d = 0; d < 16; d++)
            if (counts[d]) printf(" %s x %d", st_dtype_name((StDtype)d), counts[d]);
        printf("\n");
        if (ignored)
            printf("ignored:      %d buffer tensor%s (as transformers does)\n", ignored, ignored == 1 ? "" : "s");
        if (tensors) {
            printf("tensors:      %d\n", m.n_tensors);
            for (int i = 0; i < m.n_tensors; i++) {
                char sh[96];
                fmt_shape(sh, sizeof sh, src[i]);
                printf("  %-52s %-14s %-5s%s%s\n", src[i]->name, sh, st_dtype_name(src[i]->dtype),
                       m.tensors[i].decay ? " decay" : "", m.tensors[i].conv1d ? " conv1d" : "");
            }
        }
    }
    free(file_of);
    free(src);
    model_free(&m);
    model_weights_close(&w);
    if (fflush(stdout) != 0) {
        err_set(&e, EX_IOERR, "<stdout>: write error");
        err_die(prog, &e);
    }
    return 0;
}
