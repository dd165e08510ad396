/* model_io.c — a model directory on disk: finding the safetensors files (single or
 * sharded), binding their tensors to the model's parameters, loading and saving.
 *
 * Directory layout (transformers save_pretrained, see man5 cherry-model):
 *   config.json, model.safetensors or model.safetensors.index.json
 *   ({"metadata": {...}, "weight_map": {tensor name: shard file}}) + the shards,
 *   tokenizer.json and friends.
 * Names: transformers' state-dict names.  GPT-2 checkpoints saved from GPT2Model (the
 * original openai-community/gpt2 files) have no "transformer." prefix: both load.
 * GPT-2's Conv1D stores weights [in, out]; cherry holds [out, in] and transposes on
 * load and save.  Non-persistent buffers some old checkpoints carry (GPT-2
 * attn.bias / attn.masked_bias causal masks, Llama rotary_emb.inv_freq) are ignored,
 * as transformers ignores them; any other extra tensor is an error, as is a missing
 * or misshaped one.
 * Not for: config.json parsing (model_config.c) or the maths (model.c). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/outdir.h"
#include "base/util.h"
#include "kernels/gemm.h"
#include "lora.h"
#include "model.h"

void model_weights_close(ModelWeights *w) {
    for (int i = 0; i < w->n_files; i++) st_close(&w->files[i]);
    free(w->files);
    memset(w, 0, sizeof *w);
}

/* Opens the shards listed in an index and checks its weight_map against them. */
static int open_sharded(ModelWeights *w, const char *dir, const char *index_path, Error *e) {
    char *text;
    size_t len;
    int rc = read_file(index_path, &text, &len, e);
    if (rc) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) return err_set(e, EX_DATAERR, "%s:%d: invalid JSON: %s", index_path, jerr.line, jerr.text);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        json_decref(root);
        return err_set(e, EX_DATAERR, "%s: missing object field \"weight_map\"", index_path);
    }
    const char *name;
    json_t *v;
    /* distinct shard files, in first-seen order */
    size_t cap = json_object_size(map) ? json_object_size(map) : 1;
    char **shards = xcalloc(cap, sizeof(char *));
    int n = 0;
    json_object_foreach(map, name, v) {
        const char *f = json_string_value(v);
        if (!f || !*f || strchr(f, '/') || strcmp(f, ".") == 0 || strcmp(f, "..") == 0) {
            rc = err_set(e, EX_DATAERR, "%s: weight_map[\"%s\"] is not a file name in the model directory", index_path,
                         name);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = strcmp(shards[i], f) == 0;
        if (!seen) shards[n++] = xstrdup(f);
    }
    if (!rc) {
        w->files = xcalloc((size_t)(n ? n : 1), sizeof(StFile));
        for (int i = 0; i < n && !rc; i++) {
            char *p = path_join(dir, shards[i]);
            rc = st_open(&w->files[i], p, e);
            free(p);
            if (!rc) w->n_files++;
        }
    }
    if (!rc) {
        json_object_foreach(map, name, v) {
            const char *f = json_string_value(v);
            int i = 0;
            while (i < n && strcmp(shards[i], f) != 0) i++;
            if (!st_find(&w->files[i], name)) {
                rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" is mapped to %s, which does not hold it", index_path,
                             name, f);
                break;
            }
        }
    }
    for (int i = 0; i < n; i++) free(shards[i]);
    free(shards);
    json_decref(root);
    if (rc) model_weights_close(w);
    return rc;
}

int model_weights_open(ModelWeights *w, const char *dir, Error *e) {
    memset(w, 0, sizeof *w);
    char *single = path_join(dir, "model.safetensors"), *index = path_join(dir, "model.safetensors.index.json");
    int rc;
    if (file_exists(single)) {
        w->files = xcalloc(1, sizeof(StFile));
        rc = st_open(&w->files[0], single, e);
        if (rc)
            model_weights_close(w);
        else
            w->n_files = 1;
    } else if (file_exists(index)) {
        rc = open_sharded(w, dir, index, e);
    } else {
        rc = err_set(e, EX_NOINPUT, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    free(single);
    free(index);
    return rc;
}

/* Finds NAME in any file; *fi is the file index.  Duplicates across shards are an error. */
static const StTensor *weights_find(const ModelWeights *w, const char *name, int *fi, int *dup) {
    const StTensor *found = NULL;
    *dup = 0;
    for (int i = 0; i < w->n_files; i++) {
        const StTensor *t = st_find(&w->files[i], name);
        if (t) {
            if (found)
                *dup = 1;
            else {
                found = t;
                *fi = i;
            }
        }
    }
    return found;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Tensors transformers ignores when loading (non-persistent buffers, tied copies). */
static int ignorable(const Model *m, const char *name) {
    if (m->cfg.family == FAMILY_GPT2 && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")))
        return 1;
    if (ends_with(name, ".rotary_emb.inv_freq")) return 1;
    if (strcmp(name, "lm_head.weight") == 0 && m->cfg.tie_embeddings && !m->cfg.is_classifier) return 1;
    return 0;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int model_weights_bind(const Model *m, const ModelWeights *w, const StTensor **src, Error *e) {
    int total = 0;
    for (int f = 0; f < w->n_files; f++) total += w->files[f].n;
    /* used[f][i]: flattened */
    int *base = xcalloc((size_t)w->n_files + 1, sizeof(int));
    for (int f = 0; f < w->n_files; f++) base[f + 1] = base[f] + w->files[f].n;
    char *used = xcalloc((size_t)(total ? total : 1), 1);
    int rc = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const ParamTensor *pt = &m->tensors[i];
        int fi = 0, dup = 0;
        const StTensor *t = weights_find(w, pt->name, &fi, &dup);
        if (!t && strncmp(pt->name, "transformer.", 12) == 0) t = weights_find(w, pt->name + 12, &fi, &dup);
        const char *file = w->n_files ? w->files[0].path : "(no file)";
        if (!t) {
            rc = err_set(e, EX_DATAERR, "%s: missing tensor \"%s\"", file, pt->name);
            break;
        }
        file = w->files[fi].path;
        if (dup) {
            rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" appears in more than one shard", file, t->name);
            break;
        }
        int64_t want[2] = {pt->shape[0], pt->shape[1]};
        if (pt->conv1d) want[0] = pt->shape[1], want[1] = pt->shape[0];
        int ok = t->ndim == pt->ndim;
        for (int d = 0; ok && d < pt->ndim; d++) ok = t->shape[d] == want[d];
        if (!ok) {
            char got[160], exp[64];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(exp, sizeof exp, pt->ndim, want);
            rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" has shape %s, config.json implies %s%s", file, t->name, got,
                         exp, pt->conv1d ? " (Conv1D [in, out])" : "");
            break;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
            rc = err_set(e, EX_DATAERR, "%s: tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16", file,
                         t->name, st_dtype_name(t->dtype));
            break;
        }
        used[base[fi] + (int)(t - w->files[fi].tensors)] = 1;
        src[i] = t;
    }
    for (int f = 0; f < w->n_files && !rc; f++)
        for (int i = 0; i < w->files[f].n && !rc; i++)
            if (!used[base[f] + i] && !ignorable(m, w->files[f].tensors[i].name))
                rc = err_set(e, EX_DATAERR, "%s: unexpected tensor \"%s\" (not part of a %s%s model)", w->files[f].path,
                             w->files[f].tensors[i].name, model_family_name(m->cfg.family),
                             m->cfg.is_classifier ? " classifier" : "");
    free(used);
    free(base);
    return rc;
}

static int model_load_weights(Model *m, const char *dir, Error *e) {
    memset(m, 0, sizeof *m);
    struct stat sb;
    if (stat(dir, &sb) != 0) return err_set(e, EX_NOINPUT, "%s: cannot open model directory: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return err_set(e, EX_NOINPUT, "%s: not a directory", dir);
    char *cfg_path = path_join(dir, "config.json");
    ModelConfig cfg;
    int rc = model_config_load(&cfg, cfg_path, e);
    free(cfg_path);
    if (rc) return rc;
    ModelWeights w;
    if ((rc = model_weights_open(&w, dir, e))) return rc;
    model_create(m, &cfg);
    const StTensor **src = xcalloc((size_t)m->n_tensors, sizeof *src);
    rc = model_weights_bind(m, &w, src, e);
    float *tmp = NULL;
    size_t tmp_cap = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const ParamTensor *pt = &m->tensors[i];
        float *dst = m->params + pt->offset;
        if (!pt->conv1d) {
            rc = st_to_f32(src[i], dst, e);
            continue;
        }
        if (pt->numel > tmp_cap) {
            free(tmp);
            tmp = xmalloc(pt->numel * sizeof(float));
            tmp_cap = pt->numel;
        }
        rc = st_to_f32(src[i], tmp, e);
        /* disk [in, out] -> memory [out, in] */
        size_t out = (size_t)pt->shape[0], in = (size_t)pt->shape[1];
        for (size_t r = 0; r < in; r++)
            for (size_t c = 0; c < out; c++) dst[c * in + r] = tmp[r * out + c];
    }
    free(tmp);
    free(src);
    model_weights_close(&w);
    if (rc) model_free(m);
    return rc;
}

/* A directory with adapter_config.json is a LoRA adapter (lora.h): the base comes
 * from the same directory when it holds weights, else from base_model_name_or_path;
 * then the adapter is attached. */
int model_load(Model *m, const char *dir, Error *e) {
    if (!lora_dir_has_adapter(dir)) return model_load_weights(m, dir, e);
    char *base = NULL;
    int rc = lora_base_dir(dir, &base, e);
    if (rc) {
        memset(m, 0, sizeof *m);
        return rc;
    }
    if (strcmp(base, dir) != 0 && lora_dir_has_adapter(base))
        rc = err_set(e, EX_DATAERR, "%s: base model %s is itself an adapter directory without weights", dir, base);
    if (!rc) rc = model_load_weights(m, base, e);
    /* A reward-model adapter (task_type SEQ_CLS) trained from a causal LM: the base
     * trunk becomes a classifier and the adapter brings the score head (PEFT loads
     * such adapters with AutoPeftModelForSequenceClassification).  Adapters written
     * before cherry stopped saving config.json beside them said so with a
     * classifier config.json; those still load. */
    char *acfg_path = path_join(dir, "config.json");
    ModelConfig acfg;
    Error ignore;
    int old_cls = file_exists(acfg_path) && model_config_load(&acfg, acfg_path, &ignore) == 0 && acfg.is_classifier;
    if (!rc && !m->cfg.is_classifier && (old_cls || lora_dir_is_seq_cls(dir))) {
        Model cls;
        model_classifier_from_lm(&cls, m, 0);
        if (old_cls) cls.cfg.pad_id = acfg.pad_id;
        model_free(m);
        *m = cls;
    }
    free(acfg_path);
    if (!rc && (rc = lora_load(m, dir, e))) model_free(m);
    if (!rc) { /* saved again elsewhere, the adapter must still find its base */
        char *abs = realpath(base, NULL);
        free(m->lora->base_dir);
        m->lora->base_dir = abs ? abs : xstrdup(base);
    }
    free(base);
    return rc;
}

int model_load_params(Model *m, const char *dir, Error *e) {
    /* weights written behind the products' bf16 copies (gemm.h) */
    gemm_bf16_weights_touched(m->params, m->n_params);
    if (m->lora) {
        gemm_bf16_weights_touched(m->lora->params, m->lora->n_params);
        return lora_load(m, dir, e);
    }
    Model tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = model_load(&tmp, dir, e);
    if (rc) return rc;
    if (tmp.n_params != m->n_params)
        rc = err_set(e, EX_DATAERR, "%s: checkpoint has %zu parameters, the model %zu", dir, tmp.n_params, m->n_params);
    else
        memcpy(m->params, tmp.params, tmp.n_params * sizeof(float));
    model_free(&tmp);
    return rc;
}

int model_copy_side_files(const char *src_dir, const char *dst_dir, Error *e) {
    int rc = 0;
    char *from = model_tokenizer_dir(src_dir);
    for (size_t i = 0; !rc && outdir_side_files[i]; i++) { /* copied when present */
        char *s = path_join(from, outdir_side_files[i]), *d = path_join(dst_dir, outdir_side_files[i]);
        if (file_exists(s)) rc = copy_file(s, d, e);
        free(s);
        free(d);
    }
    free(from);
    return rc;
}

int model_tokenizer_load(Tokenizer **t, const char *model_dir, Error *e) {
    char *d = model_tokenizer_dir(model_dir); /* an adapter directory may leave it to its base */
    int rc = tok_load_dir(t, d, e);
    free(d);
    return rc;
}

char *model_tokenizer_dir(const char *dir) {
    char *tj = path_join(dir, "tokenizer.json"), *base = NULL;
    int here = file_exists(tj);
    free(tj);
    Error ignore;
    if (!here && lora_dir_has_adapter(dir) && lora_base_dir(dir, &base, &ignore) == 0) return base;
    return xstrdup(dir);
}

int model_save_dtype(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e) {
    if (m->lora) return lora_save(m, dir, tokenizer_src_dir, dtype, e);
    return model_save_dtype_base(m, dir, tokenizer_src_dir, dtype, e);
}

int model_save_dtype_base(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e) {
    if (dtype != ST_F32 && dtype != ST_BF16)
        return err_set(e, EX_SOFTWARE, "model_save: dtype %s not supported", st_dtype_name(dtype));
    AtomicDir ad;
    int rc = atomic_dir_begin(&ad, dir, e);
    if (rc) return rc;
    char *cfg_path = path_join(ad.tmp, "config.json");
    rc = model_config_save_dtype(&m->cfg, cfg_path, dtype == ST_BF16 ? "bfloat16" : "float32", e);
    free(cfg_path);

    StWriter wr;
    st_writer_init(&wr);
    st_writer_meta(&wr, "format", "pt"); /* transformers checks metadata["format"] */
    float **transposed = xcalloc((size_t)m->n_tensors, sizeof(float *));
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const ParamTensor *pt = &m->tensors[i];
        const float *data = m->params + pt->offset;
        int64_t shape[2] = {pt->shape[0], pt->shape[1]};
        if (pt->conv1d) {
            size_t out = (size_t)pt->shape[0], in = (size_t)pt->shape[1];
            float *t = transposed[i] = xmalloc(pt->numel * sizeof(float));
            for (size_t c = 0; c < out; c++)
                for (size_t r = 0; r < in; r++) t[r * out + c] = data[c * in + r];
            data = t;
            shape[0] = (int64_t)in, shape[1] = (int64_t)out;
        }
        st_writer_add(&wr, pt->name, data, pt->ndim, shape);
    }
    if (!rc) {
        char *st_path = path_join(ad.tmp, "model.safetensors");
        rc = st_writer_write(&wr, st_path, dtype, e);
        free(st_path);
    }
    st_writer_free(&wr);
    for (int i = 0; i < m->n_tensors; i++) free(transposed[i]);
    free(transposed);

    if (!rc && tokenizer_src_dir) rc = model_copy_side_files(tokenizer_src_dir, ad.tmp, e);
    if (rc) {
        atomic_dir_abort(&ad);
        return rc;
    }
    return atomic_dir_commit(&ad, e);
}

int model_save(const Model *m, const char *dir, const char *tokenizer_src_dir, Error *e) {
    return model_save_dtype(m, dir, tokenizer_src_dir, ST_F32, e);
}

void model_classifier_from_lm(Model *rm, const Model *lm, uint64_t seed) {
    ModelConfig c = lm->cfg;
    c.is_classifier = 1;
    model_create(rm, &c);
    for (int i = 0; i < rm->n_tensors; i++) {
        const ParamTensor *t = &rm->tensors[i];
        float *dst = rm->params + t->offset;
        const ParamTensor *src = model_find_tensor(lm, t->name);
        if (src && src->numel == t->numel) {
            memcpy(dst, lm->params + src->offset, t->numel * sizeof(float));
        } else if (strcmp(t->name, "score.weight") == 0) {
            /* transformers PreTrainedModel._init_weights for nn.Linear:
             * weight.normal_(mean=0.0, std=config.initializer_range) */
            Rng r;
            rng_seed(&r, seed);
            for (size_t j = 0; j < t->numel; j++) dst[j] = rng_normal(&r) * c.init_std;
        } else {
            die_internal("model_classifier_from_lm: tensor %s missing from the language model", t->name);
        }
    }
}
