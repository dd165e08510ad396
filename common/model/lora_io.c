/* lora_io.c — LoRA adapter directories in PEFT's format (peft/utils/save_and_load.py,
 * peft/tuners/lora/config.py): adapter_config.json + adapter_model.safetensors.
 * See lora.h and man 5 cherry-model. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "lora.h"
#include "base/util.h"

#define PEFT_PREFIX "base_model.model."

int lora_dir_has_adapter(const char *dir) {
    char *p = path_join(dir, "adapter_config.json");
    int r = file_exists(p);
    free(p);
    return r;
}

static int dir_has_weights(const char *dir) {
    char *a = path_join(dir, "model.safetensors"), *b = path_join(dir, "model.safetensors.index.json");
    int r = file_exists(a) || file_exists(b);
    free(a);
    free(b);
    return r;
}

static int read_adapter_config(const char *dir, json_t **out, char **path_out, Error *e) {
    char *path = path_join(dir, "adapter_config.json");
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len, e);
    if (rc) {
        free(path);
        return rc;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) {
        rc = err_set(e, EX_DATAERR, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
        free(path);
        return rc;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        rc = err_set(e, EX_DATAERR, "%s:1: expected a JSON object", path);
        free(path);
        return rc;
    }
    *out = root;
    *path_out = path;
    return 0;
}

int lora_dir_is_seq_cls(const char *dir) {
    json_t *root = NULL;
    char *path = NULL;
    Error ignore;
    if (read_adapter_config(dir, &root, &path, &ignore)) return 0;
    const char *t = json_string_value(json_object_get(root, "task_type"));
    int r = t && strcmp(t, "SEQ_CLS") == 0;
    json_decref(root);
    free(path);
    return r;
}

int lora_base_dir(const char *dir, char **base, Error *e) {
    if (dir_has_weights(dir)) {
        *base = xstrdup(dir);
        return 0;
    }
    json_t *root = NULL;
    char *path = NULL;
    int rc = read_adapter_config(dir, &root, &path, e);
    if (rc) return rc;
    json_t *b = json_object_get(root, "base_model_name_or_path");
    if (!json_is_string(b) || !*json_string_value(b)) {
        rc = err_set(e, EX_DATAERR,
                     "%s: no model weights beside the adapter and no base model (field \"base_model_name_or_path\")",
                     path);
    } else {
        const char *s = json_string_value(b);
        *base = s[0] == '/' ? xstrdup(s) : path_join(dir, s);
        if (!dir_has_weights(*base)) {
            rc = err_set(e, EX_NOINPUT,
                         "%s: base model '%s' (field \"base_model_name_or_path\") is not a model directory here; "
                         "a Hub name must be downloaded first",
                         path, s);
            free(*base);
            *base = NULL;
        }
    }
    json_decref(root);
    free(path);
    return rc;
}

/* Parses adapter_config.json into cfg; rejects what cherry cannot apply exactly. */
static int parse_adapter_config(json_t *root, const char *path, LoraConfig *cfg, char **base, Error *e) {
    lora_config_default(cfg, 0);
    json_t *v = json_object_get(root, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0)
        return err_set(e, EX_DATAERR, "%s: only LoRA adapters are supported (field \"peft_type\" must be \"LORA\")",
                       path);
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536)
        return err_set(e, EX_DATAERR, "%s: expected a rank between 1 and 65536 (field \"r\")", path);
    cfg->rank = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    if (!json_is_number(v)) return err_set(e, EX_DATAERR, "%s: expected a number (field \"lora_alpha\")", path);
    cfg->alpha = (float)json_number_value(v);
    v = json_object_get(root, "lora_dropout");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) >= 1)
            return err_set(e, EX_DATAERR, "%s: expected a number in [0, 1) (field \"lora_dropout\")", path);
        cfg->dropout = (float)json_number_value(v);
    }
    v = json_object_get(root, "use_rslora");
    cfg->rslora = json_is_true(v);
    v = json_object_get(root, "use_dora");
    if (json_is_true(v))
        return err_set(e, EX_DATAERR, "%s: DoRA adapters are not supported (field \"use_dora\")", path);
    v = json_object_get(root, "bias");
    if (v && !json_is_null(v) && !(json_is_string(v) && !strcmp(json_string_value(v), "none")))
        return err_set(e, EX_DATAERR, "%s: only bias \"none\" is supported (field \"bias\")", path);
    /* settings that change which weights are adapted or how: refused rather than
     * silently ignored (null, false, {} and [] mean "not used") */
    const char *unsupported[] = {
        "layers_to_transform", "rank_pattern", "alpha_pattern",           "exclude_modules", "layer_replication",
        "target_parameters",   "lora_bias",    "trainable_token_indices", "use_qalora",      "alora_invocation_tokens"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        v = json_object_get(root, unsupported[i]);
        if (v && !json_is_null(v) && !json_is_false(v) && !(json_is_object(v) && json_object_size(v) == 0) &&
            !(json_is_array(v) && json_array_size(v) == 0))
            return err_set(e, EX_DATAERR, "%s: this LoRA variant is not supported (field \"%s\")", path,
                           unsupported[i]);
    }
    v = json_object_get(root, "target_modules");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(e, EX_DATAERR,
                       "%s: expected a list of module names (field \"target_modules\"; regular expressions are not "
                       "supported)",
                       path);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it))
            return err_set(e, EX_DATAERR, "%s: expected strings (field \"target_modules\"[%zu])", path, i);
        int rc = lora_config_add_target(cfg, json_string_value(it), e);
        if (rc) return err_prefix(e, "%s", path);
    }
    v = json_object_get(root, "base_model_name_or_path");
    *base = json_is_string(v) ? xstrdup(json_string_value(v)) : xstrdup("");
    return 0;
}

static char *peft_name(const char *path, const char *what) {
    size_t n = strlen(PEFT_PREFIX) + strlen(path) + strlen(what) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, PEFT_PREFIX "%s.%s", path, what);
    return s;
}

static int read_tensor(const StFile *f, const char *name, int64_t d0, int64_t d1, float *dst, int *used, Error *e) {
    const StTensor *t = st_find(f, name);
    if (!t) return err_set(e, EX_DATAERR, "%s: missing tensor \"%s\"", f->path, name);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return err_set(e, EX_DATAERR, "%s: tensor \"%s\" has the wrong shape (expected [%lld, %lld])", f->path, name,
                       (long long)d0, (long long)d1);
    (*used)++;
    return st_to_f32(t, dst, e);
}

int lora_load(Model *m, const char *dir, Error *e) {
    json_t *root = NULL;
    char *cpath = NULL;
    int rc = read_adapter_config(dir, &root, &cpath, e);
    if (rc) return rc;
    LoraConfig cfg;
    char *base = NULL;
    rc = parse_adapter_config(root, cpath, &cfg, &base, e);
    json_decref(root);
    if (rc) {
        free(cpath);
        free(base);
        return rc;
    }
    int fresh = m->lora == NULL;
    if (fresh) {
        rc = lora_build(m, &cfg, e);
        if (rc) err_prefix(e, "%s", cpath);
        if (!rc) m->lora->base_dir = xstrdup(base);
    } else {
        /* resume: the adapter must have the same shape as the one being trained */
        Lora *L = m->lora;
        int same = L->cfg.rank == cfg.rank && L->cfg.n_targets == cfg.n_targets;
        for (int k = 0; same && k < cfg.n_targets; k++) same = !strcmp(L->cfg.targets[k], cfg.targets[k]);
        if (!same)
            rc = err_set(e, EX_DATAERR, "%s: adapter (r=%d) differs from the one being trained (r=%d, targets)", cpath,
                         cfg.rank, L->cfg.rank);
    }
    free(base);
    free(cpath);
    if (rc) return rc;
    Lora *L = m->lora;
    char *wpath = path_join(dir, "adapter_model.safetensors");
    StFile f;
    rc = st_open(&f, wpath, e);
    free(wpath);
    if (rc) {
        if (fresh) lora_free(m);
        return rc;
    }
    int used = 0;
    for (int j = 0; j < L->n_mods && !rc; j++) {
        const LoraModule *md = &L->mods[j];
        char *na = peft_name(md->path, "lora_A.weight"), *nb = peft_name(md->path, "lora_B.weight");
        rc = read_tensor(&f, na, L->cfg.rank, md->in, L->params + md->a_off, &used, e);
        if (!rc) rc = read_tensor(&f, nb, md->out, L->cfg.rank, L->params + md->b_off, &used, e);
        free(na);
        free(nb);
    }
    if (!rc && L->score) {
        const StTensor *t = st_find(&f, PEFT_PREFIX "score.weight");
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        if (t) {
            rc = read_tensor(&f, PEFT_PREFIX "score.weight", s->shape[0], s->shape[1], L->params + L->score_off, &used,
                             e);
        } else {
            memcpy(L->params + L->score_off, m->params + s->offset, s->numel * sizeof(float));
        }
    }
    if (!rc && used != f.n) {
        for (int i = 0; i < f.n; i++) {
            const char *nm = f.tensors[i].name;
            int known = 0;
            for (int j = 0; j < L->n_mods && !known; j++) {
                char *na = peft_name(L->mods[j].path, "lora_A.weight"),
                     *nb = peft_name(L->mods[j].path, "lora_B.weight");
                known = !strcmp(nm, na) || !strcmp(nm, nb);
                free(na);
                free(nb);
            }
            if (L->score && !strcmp(nm, PEFT_PREFIX "score.weight")) known = 1;
            if (!known) {
                rc = err_set(e, EX_DATAERR, "%s: unexpected tensor \"%s\" (not a LoRA weight of the targets)", f.path,
                             nm);
                break;
            }
        }
    }
    st_close(&f);
    if (rc && fresh) lora_free(m);
    if (!rc && fresh) {
        free(m->grads);
        m->grads = NULL;
    }
    return rc;
}

int lora_check_checkpoint(const Model *m, const char *dir, Error *e) {
    int has = lora_dir_has_adapter(dir);
    if (has && !m->lora)
        return err_set(e, EX_USAGE, "%s: the checkpoint holds a LoRA adapter; resume with the run's --lora-rank", dir);
    if (!has && m->lora)
        return err_set(e, EX_USAGE, "%s: the checkpoint holds full weights; resume without --lora-rank", dir);
    return 0;
}

int lora_save(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e) {
    const Lora *L = m->lora;
    if (!L) return err_set(e, EX_SOFTWARE, "lora_save: the model has no adapter");
    if (dtype != ST_F32 && dtype != ST_BF16)
        return err_set(e, EX_SOFTWARE, "lora_save: dtype %s not supported", st_dtype_name(dtype));
    AtomicDir ad;
    int rc = atomic_dir_begin(&ad, dir, e);
    if (rc) return rc;
    char *p;
    /* No config.json here: transformers' AutoModel*.from_pretrained(dir) takes a
     * directory holding config.json for a full model with an embedded adapter and
     * then finds no weights (auto_factory.py); PEFT writes none either.  A reward
     * adapter is recognised by task_type SEQ_CLS instead (model_load). */

    /* adapter_config.json: PEFT LoraConfig fields (peft/tuners/lora/config.py) */
    json_t *c = json_object();
    json_t *targets = json_array();
    for (int k = 0; k < L->cfg.n_targets; k++) json_array_append_new(targets, json_string(L->cfg.targets[k]));
    json_object_set_new(c, "alpha_pattern", json_object());
    json_object_set_new(c, "base_model_name_or_path", json_string(L->base_dir ? L->base_dir : ""));
    json_object_set_new(c, "bias", json_string("none"));
    json_object_set_new(c, "fan_in_fan_out", json_boolean(m->cfg.family == FAMILY_GPT2));
    json_object_set_new(c, "inference_mode", json_true());
    json_object_set_new(c, "init_lora_weights", json_true());
    json_object_set_new(c, "layers_pattern", json_null());
    json_object_set_new(c, "layers_to_transform", json_null());
    json_object_set_new(c, "lora_alpha",
                        L->cfg.alpha == floorf(L->cfg.alpha) && fabsf(L->cfg.alpha) < 1e9f
                            ? json_integer((json_int_t)L->cfg.alpha)
                            : json_real(L->cfg.alpha));
    char pbuf[32]; /* the float as typed (0.05, not 0.05000000074505806) */
    snprintf(pbuf, sizeof pbuf, "%.7g", (double)L->cfg.dropout);
    json_object_set_new(c, "lora_dropout", json_real(strtod(pbuf, NULL)));
    if (L->score) {
        json_t *ms = json_array();
        json_array_append_new(ms, json_string("score"));
        json_object_set_new(c, "modules_to_save", ms);
    } else {
        json_object_set_new(c, "modules_to_save", json_null());
    }
    json_object_set_new(c, "peft_type", json_string("LORA"));
    json_object_set_new(c, "r", json_integer(L->cfg.rank));
    json_object_set_new(c, "rank_pattern", json_object());
    json_object_set_new(c, "revision", json_null());
    json_object_set_new(c, "target_modules", targets);
    json_object_set_new(c, "task_type", json_string(m->cfg.is_classifier ? "SEQ_CLS" : "CAUSAL_LM"));
    json_object_set_new(c, "use_dora", json_false());
    json_object_set_new(c, "use_rslora", json_boolean(L->cfg.rslora));
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(c);
    if (!rc) {
        p = path_join(ad.tmp, "adapter_config.json");
        FILE *fp = fopen(p, "w");
        if (!fp || fputs(text, fp) < 0 || fputc('\n', fp) < 0 || fclose(fp) != 0)
            rc = err_set(e, EX_IOERR, "%s: cannot write: %s", p, strerror(errno));
        free(p);
    }
    free(text);

    StWriter wr;
    st_writer_init(&wr);
    st_writer_meta(&wr, "format", "pt");
    char **names = xcalloc((size_t)2 * L->n_mods + 1, sizeof(char *));
    for (int j = 0; j < L->n_mods; j++) {
        const LoraModule *md = &L->mods[j];
        int64_t sa[2] = {L->cfg.rank, md->in}, sb[2] = {md->out, L->cfg.rank};
        names[2 * j] = peft_name(md->path, "lora_A.weight");
        names[2 * j + 1] = peft_name(md->path, "lora_B.weight");
        st_writer_add(&wr, names[2 * j], L->params + md->a_off, 2, sa);
        st_writer_add(&wr, names[2 * j + 1], L->params + md->b_off, 2, sb);
    }
    if (L->score) {
        const ParamTensor *s = model_find_tensor(m, "score.weight");
        int64_t ss[2] = {s->shape[0], s->shape[1]};
        st_writer_add(&wr, PEFT_PREFIX "score.weight", L->params + L->score_off, 2, ss);
    }
    if (!rc) {
        p = path_join(ad.tmp, "adapter_model.safetensors");
        rc = st_writer_write(&wr, p, dtype, e);
        free(p);
    }
    st_writer_free(&wr);
    for (int j = 0; j < 2 * L->n_mods; j++) free(names[j]);
    free(names);
    if (!rc && tokenizer_src_dir) rc = model_copy_side_files(tokenizer_src_dir, ad.tmp, e);
    if (rc) {
        atomic_dir_abort(&ad);
        return rc;
    }
    return atomic_dir_commit(&ad, e);
}
