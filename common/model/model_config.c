/* model_config.c — config.json of a Hugging Face model directory, read and written.
 *
 * Reads the keys of transformers' GPT2Config, LlamaConfig and the configs of the other
 * families of model_family.c (configuration_<family>.py) with their transformers
 * defaults, and refuses configs whose numerics cherry does not implement (another
 * activation, dynamic RoPE scaling, partial rotary outside Phi-3, Qwen's
 * max_window_layers, a multi-label classifier) instead of silently computing
 * something else.
 * Writing produces a config.json that transformers loads into the same architecture
 * (architectures + model_type + the family's own key names).
 * Not for: tensors (model_io.c). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model.h"
#include "model_internal.h"

/* Field readers: absent (or null) -> default; wrong type -> EX_DATAERR naming the
 * file and the field. */
static int cfg_int(const json_t *root, const char *key, int def, int *out, const char *path, Error *e) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 2e9) {
        *out = (int)json_real_value(v);
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < -2147483647LL || json_integer_value(v) > 2147483647LL)
        return err_set(e, EX_DATAERR, "%s: field \"%s\" is not an integer", path, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int cfg_float(const json_t *root, const char *key, float def, float *out, const char *path, Error *e) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return err_set(e, EX_DATAERR, "%s: field \"%s\" is not a number", path, key);
    *out = (float)json_number_value(v);
    return 0;
}

static int cfg_bool(const json_t *root, const char *key, int def, int *out, const char *path, Error *e) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return err_set(e, EX_DATAERR, "%s: field \"%s\" is not true/false", path, key);
    *out = json_is_true(v);
    return 0;
}

/* Token ids may be absent (the family's default), null (none: -1), an integer, or
 * (Llama 3 eos) a list: the first is used. */
static int cfg_token(const json_t *root, const char *key, int def, int *out, const char *path, Error *e) {
    const json_t *v = json_object_get(root, key);
    if (json_is_null(v)) {
        *out = -1;
        return 0;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) == 0) {
            *out = -1;
            return 0;
        }
        v = json_array_get(v, 0);
        if (!json_is_integer(v)) return err_set(e, EX_DATAERR, "%s: field \"%s\" is not a token id list", path, key);
        *out = (int)json_integer_value(v);
        return 0;
    }
    return cfg_int(root, key, def, out, path, e);
}

static int cfg_required(const json_t *root, const char *key, int *out, const char *path, Error *e) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return err_set(e, EX_DATAERR, "%s: missing field \"%s\"", path, key);
    return cfg_int(root, key, 0, out, path, e);
}

int model_config_validate(const ModelConfig *c, const char *path, Error *e) {
    /* Bounds keep every size computation far from overflow and catch typos. */
#define RANGE(x, lo, hi, key)                                                                                          \
    if ((x) < (lo) || (x) > (hi))                                                                                      \
        return err_set(e, EX_DATAERR, "%s: field \"%s\" = %d out of range [%d, %d]", path, key, (int)(x), (int)(lo),   \
                       (int)(hi));
    int fam = c->family == FAMILY_GPT2;
    RANGE(c->n_layer, 1, 4096, fam ? "n_layer" : "num_hidden_layers");
    RANGE(c->n_head, 1, 4096, fam ? "n_head" : "num_attention_heads");
    RANGE(c->d_model, 1, 1 << 17, fam ? "n_embd" : "hidden_size");
    RANGE(c->d_ff, 1, 1 << 20, fam ? "n_inner" : "intermediate_size");
    RANGE(c->vocab_size, 1, 1 << 24, "vocab_size");
    RANGE(c->max_seq, 1, 1 << 24, fam ? "n_positions" : "max_position_embeddings");
    RANGE(c->n_kv_head, 1, c->n_head, "num_key_value_heads");
#undef RANGE
    if (c->head_dim < 0 || c->head_dim > 4096)
        return err_set(e, EX_DATAERR, "%s: field \"head_dim\" = %d out of range", path, c->head_dim);
    if (!c->head_dim && c->d_model % c->n_head)
        return err_set(e, EX_DATAERR, "%s: hidden size %d is not a multiple of the head count %d", path, c->d_model,
                       c->n_head);
    if (c->n_head % c->n_kv_head)
        return err_set(e, EX_DATAERR, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                       c->n_head, c->n_kv_head);
    if (c->family != FAMILY_GPT2 && model_head_dim(c) % 2)
        return err_set(e, EX_DATAERR, "%s: head dimension %d must be even for rotary embeddings", path,
                       model_head_dim(c));
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return err_set(e, EX_DATAERR, "%s: norm epsilon must be positive", path);
    if (c->family != FAMILY_GPT2 && (!(c->rope_theta > 0) || !isfinite(c->rope_theta)))
        return err_set(e, EX_DATAERR, "%s: field \"rope_theta\" must be positive", path);
    if (!(c->init_std >= 0) || !isfinite(c->init_std))
        return err_set(e, EX_DATAERR, "%s: field \"initializer_range\" must be non-negative", path);
    /* Token ids that point outside the vocabulary would index out of the embedding. */
    const int *ids[3] = {&c->bos_id, &c->eos_id, &c->pad_id};
    const char *names[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    for (int i = 0; i < 3; i++)
        if (*ids[i] < -1 || *ids[i] >= c->vocab_size)
            return err_set(e, EX_DATAERR, "%s: field \"%s\" = %d outside the vocabulary (%d)", path, names[i], *ids[i],
                           c->vocab_size);
    return 0;
}

/* architectures[0] ends in ForSequenceClassification -> classifier; the label count is
 * len(id2label) when present (transformers derives num_labels from it), else
 * num_labels, else PretrainedConfig's default 2. */
static int parse_arch(ModelConfig *c, const json_t *root, const char *path, Error *e) {
    const json_t *arch = json_object_get(root, "architectures");
    c->is_classifier = 0;
    if (!arch || json_is_null(arch)) return 0;
    if (!json_is_array(arch)) return err_set(e, EX_DATAERR, "%s: field \"architectures\" is not a list", path);
    const char *a = json_string_value(json_array_get(arch, 0));
    if (!a) return 0;
    if (!strstr(a, "ForSequenceClassification")) return 0;
    const json_t *id2label = json_object_get(root, "id2label");
    int n = 2;
    if (json_is_object(id2label))
        n = (int)json_object_size(id2label);
    else if (cfg_int(root, "num_labels", 2, &n, path, e))
        return e->code;
    if (n != 1)
        return err_set(e, EX_DATAERR, "%s: %s with %d labels; cherry's scalar head needs num_labels = 1", path, a, n);
    c->is_classifier = 1;
    return 0;
}

static int parse_gpt2(ModelConfig *c, const json_t *r, const char *p, Error *e) {
    c->family = FAMILY_GPT2;
    if (cfg_required(r, "n_layer", &c->n_layer, p, e) || cfg_required(r, "n_head", &c->n_head, p, e) ||
        cfg_required(r, "n_embd", &c->d_model, p, e) || cfg_required(r, "vocab_size", &c->vocab_size, p, e))
        return e->code;
    int n_ctx;
    if (cfg_int(r, "n_ctx", 1024, &n_ctx, p, e) || cfg_int(r, "n_positions", n_ctx, &c->max_seq, p, e) ||
        cfg_int(r, "n_inner", 4 * c->d_model, &c->d_ff, p, e) ||
        cfg_float(r, "layer_norm_epsilon", 1e-5f, &c->norm_eps, p, e) ||
        cfg_float(r, "initializer_range", 0.02f, &c->init_std, p, e) ||
        cfg_bool(r, "tie_word_embeddings", 1, &c->tie_embeddings, p, e) ||
        cfg_token(r, "bos_token_id", 50256, &c->bos_id, p, e) ||
        cfg_token(r, "eos_token_id", 50256, &c->eos_id, p, e) || cfg_token(r, "pad_token_id", -1, &c->pad_id, p, e))
        return e->code;
    c->n_kv_head = c->n_head;
    c->attn_bias = c->mlp_bias = 1;
    c->rope_theta = 10000.0f;
    const json_t *act = json_object_get(r, "activation_function");
    if (act && !json_is_null(act)) {
        const char *s = json_string_value(act);
        if (!s || (strcmp(s, "gelu_new") && strcmp(s, "gelu_pytorch_tanh")))
            return err_set(e, EX_DATAERR, "%s: field \"activation_function\" = %s; cherry implements gelu_new", p,
                           s ? s : "(not a string)");
    }
    int inv_layer = 0, scale = 1;
    if (cfg_bool(r, "scale_attn_by_inverse_layer_idx", 0, &inv_layer, p, e) ||
        cfg_bool(r, "scale_attn_weights", 1, &scale, p, e))
        return e->code;
    if (inv_layer || !scale)
        return err_set(e, EX_DATAERR, "%s: attention scaling other than 1/sqrt(head_dim) is not supported", p);
    return 0;
}

/* A list of numbers into out (at most ROPE_MAX_FACTORS); returns the count or -1. */
static int float_list(const json_t *a, float *out) {
    if (!json_is_array(a) || json_array_size(a) > ROPE_MAX_FACTORS) return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !(json_number_value(v) > 0)) return -1;
        out[i] = (float)json_number_value(v);
    }
    return (int)json_array_size(a);
}

/* LongRoPE (Ding et al. 2024; Phi-3-mini-128k, Phi-3.5-mini): per-frequency factors,
 * short_factor within the original context and long_factor beyond it, and cos/sin
 * scaled by attention_factor [sqrt(1 + ln(factor) / ln(original context)), factor =
 * max_position_embeddings / original_max_position_embeddings] — transformers
 * _compute_longrope_parameters.  The counts are checked against head_dim later. */
static int parse_longrope(ModelConfig *c, const json_t *o, const char *p, Error *e) {
    c->rope_scaling.type = ROPE_LONGROPE;
    int ns = float_list(json_object_get(o, "short_factor"), c->rope_scaling.short_factor);
    int nl = float_list(json_object_get(o, "long_factor"), c->rope_scaling.long_factor);
    if (ns < 1 || ns != nl)
        return err_set(e, EX_DATAERR,
                       "%s: longrope needs \"short_factor\" and \"long_factor\": lists of the same length (at most "
                       "%d) of positive numbers",
                       p, ROPE_MAX_FACTORS);
    c->rope_scaling.n_factors = ns;
    if (cfg_int(o, "original_max_position_embeddings", 0, &c->rope_scaling.original_max, p, e) ||
        cfg_float(o, "factor", 0.0f, &c->rope_scaling.factor, p, e) ||
        cfg_float(o, "attention_factor", 0.0f, &c->rope_scaling.attn_factor, p, e))
        return e->code;
    return 0;
}

/* YaRN (Peng et al. 2023; Qwen2.5/Qwen3 long-context settings): frequencies blended
 * between interpolated (/ factor) and original along a ramp between the dimensions
 * that turn beta_fast [32] and beta_slow [1] times over the original context; cos and
 * sin scaled by attention_factor [0.1 ln(factor) + 1, eq. 21, or the mscale ratio] —
 * transformers _compute_yarn_parameters.  Static: no dependence on the length. */
static int parse_yarn(ModelConfig *c, const json_t *o, const char *p, Error *e) {
    c->rope_scaling.type = ROPE_YARN;
    float mscale, mscale_all;
    int truncate = 1;
    if (cfg_float(o, "factor", 0.0f, &c->rope_scaling.factor, p, e) ||
        cfg_int(o, "original_max_position_embeddings", 0, &c->rope_scaling.original_max, p, e) ||
        cfg_float(o, "attention_factor", 0.0f, &c->rope_scaling.attn_factor, p, e) ||
        cfg_float(o, "beta_fast", 32.0f, &c->rope_scaling.beta_fast, p, e) ||
        cfg_float(o, "beta_slow", 1.0f, &c->rope_scaling.beta_slow, p, e) ||
        cfg_float(o, "mscale", 0.0f, &mscale, p, e) || cfg_float(o, "mscale_all_dim", 0.0f, &mscale_all, p, e) ||
        cfg_bool(o, "truncate", 1, &truncate, p, e))
        return e->code;
    c->rope_scaling.no_truncate = !truncate;
    if (c->rope_scaling.beta_fast == 0) c->rope_scaling.beta_fast = 32.0f; /* transformers: `or 32` */
    if (c->rope_scaling.beta_slow == 0) c->rope_scaling.beta_slow = 1.0f;
    if (!(c->rope_scaling.attn_factor > 0) && mscale > 0 && mscale_all > 0) {
        double f = c->rope_scaling.factor, a = f <= 1 ? 1.0 : 0.1 * mscale * log(f) + 1.0;
        double b = f <= 1 ? 1.0 : 0.1 * mscale_all * log(f) + 1.0;
        c->rope_scaling.attn_factor = (float)(a / b);
    }
    return 0;
}

/* One rope_parameters / rope_scaling object into c (theta_out NULL: no rope_theta
 * key expected there).  Types: default, linear (factor) and llama3 (factor,
 * low_freq_factor, high_freq_factor, original_max_position_embeddings), as
 * transformers' ROPE_INIT_FUNCTIONS compute them; others are refused by name. */
static int parse_rope_obj(ModelConfig *c, const json_t *o, float *theta_out, int local, const char *p, Error *e) {
    if (theta_out && cfg_float(o, "rope_theta", *theta_out, theta_out, p, e)) return e->code;
    float prf = 1.0f;
    if (cfg_float(o, "partial_rotary_factor", 1.0f, &prf, p, e)) return e->code;
    if (prf != 1.0f) c->partial_rotary = prf;
    const char *t = json_string_value(json_object_get(o, "rope_type"));
    if (!t) t = json_string_value(json_object_get(o, "type"));
    if (!t || strcmp(t, "default") == 0) return 0;
    if (local)
        return err_set(e, EX_DATAERR, "%s: rope type \"%s\" on sliding layers is not supported (only default)", p, t);
    if (strcmp(t, "linear") == 0) {
        c->rope_scaling.type = ROPE_LINEAR;
    } else if (strcmp(t, "longrope") == 0) {
        return parse_longrope(c, o, p, e);
    } else if (strcmp(t, "yarn") == 0) {
        return parse_yarn(c, o, p, e);
    } else if (strcmp(t, "llama3") == 0) {
        c->rope_scaling.type = ROPE_LLAMA3;
        if (cfg_float(o, "low_freq_factor", 1.0f, &c->rope_scaling.low_freq, p, e) ||
            cfg_float(o, "high_freq_factor", 4.0f, &c->rope_scaling.high_freq, p, e) ||
            cfg_required(o, "original_max_position_embeddings", &c->rope_scaling.original_max, p, e))
            return e->code;
        if (!(c->rope_scaling.high_freq > c->rope_scaling.low_freq) || c->rope_scaling.original_max < 1)
            return err_set(e, EX_DATAERR, "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", p);
    } else {
        return err_set(
            e, EX_DATAERR,
            "%s: rope type \"%s\" is not supported (default, linear, llama3, longrope and yarn are; dynamic NTK would "
            "make a token's log-prob depend on the batch length)",
            p, t);
    }
    if (cfg_float(o, "factor", 1.0f, &c->rope_scaling.factor, p, e)) return e->code;
    if (!(c->rope_scaling.factor >= 1.0f) || !isfinite(c->rope_scaling.factor))
        return err_set(e, EX_DATAERR, "%s: rope scaling \"factor\" must be >= 1", p);
    return 0;
}

/* RoPE settings: rope_theta at top level (transformers 4.x) or in rope_parameters
 * (5.x), rope_scaling (4.x); Gemma 3's rope_parameters per layer type and
 * rope_local_base_freq. */
static int parse_rope(ModelConfig *c, const json_t *r, const char *p, Error *e) {
    float theta = 10000.0f;
    if (cfg_float(r, "rope_theta", 10000.0f, &theta, p, e)) return e->code;
    if (cfg_float(r, "rope_local_base_freq", 0.0f, &c->rope_local_theta, p, e)) return e->code;
    const json_t *rp = json_object_get(r, "rope_parameters"), *sc = json_object_get(r, "rope_scaling");
    if (sc && !json_is_null(sc) && !json_is_object(sc))
        return err_set(e, EX_DATAERR, "%s: field \"rope_scaling\" is not an object", p);
    if (rp && !json_is_null(rp) && !json_is_object(rp))
        return err_set(e, EX_DATAERR, "%s: field \"rope_parameters\" is not an object", p);
    const json_t *full = json_object_get(rp, "full_attention"), *slide = json_object_get(rp, "sliding_attention");
    if (json_is_object(full) || json_is_object(slide)) { /* per layer type (Gemma 3, transformers 5) */
        if (json_is_object(full) && parse_rope_obj(c, full, &theta, 0, p, e)) return e->code;
        if (json_is_object(slide)) {
            float lt = c->rope_local_theta > 0 ? c->rope_local_theta : theta;
            if (parse_rope_obj(c, slide, &lt, 1, p, e)) return e->code;
            c->rope_local_theta = lt;
        }
    } else if (json_is_object(rp)) {
        if (parse_rope_obj(c, rp, &theta, 0, p, e)) return e->code;
    }
    if (json_is_object(sc) && parse_rope_obj(c, sc, NULL, 0, p, e)) return e->code;
    c->rope_theta = theta;
    if (c->rope_local_theta == theta) c->rope_local_theta = 0;
    if (c->rope_local_theta > 0 && c->family != FAMILY_GEMMA3)
        return err_set(e, EX_DATAERR, "%s: a separate RoPE base for sliding layers is a Gemma 3 setting", p);
    return 0;
}

/* Sliding window and which layers use it: Mistral and Phi-3 on every layer when
 * sliding_window is set; Gemma per layer_types (or the family's alternation);
 * Qwen2/3 only with use_sliding_window, which cherry refuses. */
static int parse_window(ModelConfig *c, const json_t *r, const char *p, Error *e) {
    int use = 1;
    if (cfg_bool(r, "use_sliding_window", 0, &use, p, e)) return e->code;
    if ((c->family == FAMILY_QWEN2 || c->family == FAMILY_QWEN3)) {
        if (use) return err_set(e, EX_DATAERR, "%s: use_sliding_window (Qwen's max_window_layers) is not supported", p);
        return 0;
    }
    if (cfg_int(r, "sliding_window", 0, &c->sliding_window, p, e)) return e->code;
    if (c->sliding_window < 0) return err_set(e, EX_DATAERR, "%s: field \"sliding_window\" is negative", p);
    int gemma = c->family == FAMILY_GEMMA2 || c->family == FAMILY_GEMMA3;
    c->sliding_pattern = 0;
    if (gemma && cfg_int(r, "sliding_window_pattern", c->family == FAMILY_GEMMA2 ? 2 : 6, &c->sliding_pattern, p, e))
        return e->code;
    if (gemma && json_object_get(r, "_sliding_window_pattern") &&
        cfg_int(r, "_sliding_window_pattern", c->sliding_pattern, &c->sliding_pattern, p, e))
        return e->code;
    const json_t *lt = json_object_get(r, "layer_types");
    if (!json_is_array(lt)) return 0;
    if ((int)json_array_size(lt) != c->n_layer)
        return err_set(e, EX_DATAERR, "%s: field \"layer_types\" has %zu entries for %d layers", p, json_array_size(lt),
                       c->n_layer);
    /* layer_types must be a pattern cherry represents: none, all, or (l + 1) % k != 0 */
    int n_slide = 0;
    for (int l = 0; l < c->n_layer; l++) {
        const char *t = json_string_value(json_array_get(lt, (size_t)l));
        if (!t || (strcmp(t, "sliding_attention") && strcmp(t, "full_attention")))
            return err_set(e, EX_DATAERR, "%s: layer_types[%d] is not \"sliding_attention\" or \"full_attention\"", p,
                           l);
        n_slide += strcmp(t, "sliding_attention") == 0;
    }
    if (n_slide == 0) c->sliding_window = 0;
    if (n_slide == 0 || c->sliding_window == 0) return 0;
    for (int k = n_slide == c->n_layer ? 0 : 2; k <= c->n_layer + 1; k++) {
        c->sliding_pattern = k;
        int ok = 1;
        for (int l = 0; l < c->n_layer && ok; l++)
            ok = family_layer_slides(c, l) ==
                 (strcmp(json_string_value(json_array_get(lt, (size_t)l)), "sliding_attention") == 0);
        if (ok) return 0;
        if (k == 0) break;
    }
    return err_set(e, EX_DATAERR,
                   "%s: field \"layer_types\" is not a pattern cherry supports (all, or every k-th full)", p);
}

/* The longrope settings that need the rest of the config: the original context (in
 * the rope object or at top level, as Phi-3 keeps it), factor and attention factor. */
static int finish_longrope(ModelConfig *c, const json_t *r, const char *p, Error *e) {
    if (c->rope_scaling.original_max <= 0 &&
        cfg_required(r, "original_max_position_embeddings", &c->rope_scaling.original_max, p, e))
        return e->code;
    if (c->rope_scaling.original_max <= 0)
        return err_set(e, EX_DATAERR, "%s: \"original_max_position_embeddings\" must be positive", p);
    if (c->rope_scaling.n_factors != model_rotary_dim(c) / 2)
        return err_set(e, EX_DATAERR, "%s: longrope has %d factors; %d rotated dimensions need %d", p,
                       c->rope_scaling.n_factors, model_rotary_dim(c), model_rotary_dim(c) / 2);
    float f = c->rope_scaling.factor > 0 ? c->rope_scaling.factor : (float)c->max_seq / c->rope_scaling.original_max;
    c->rope_scaling.factor = f;
    if (!(c->rope_scaling.attn_factor > 0))
        c->rope_scaling.attn_factor =
            f <= 1.0f ? 1.0f : (float)sqrt(1.0 + log((double)f) / log((double)c->rope_scaling.original_max));
    return 0;
}

/* YaRN settings that need the rest of the config: the original context (rope object,
 * else top level, else max_position_embeddings as transformers' standardisation does),
 * factor [max / original] and the attention factor [eq. 21]. */
static int finish_yarn(ModelConfig *c, const json_t *r, const char *p, Error *e) {
    if (c->rope_scaling.original_max <= 0 &&
        cfg_int(r, "original_max_position_embeddings", c->max_seq, &c->rope_scaling.original_max, p, e))
        return e->code;
    if (c->rope_scaling.original_max <= 0)
        return err_set(e, EX_DATAERR, "%s: \"original_max_position_embeddings\" must be positive", p);
    if (!(c->rope_scaling.factor > 0)) c->rope_scaling.factor = (float)c->max_seq / c->rope_scaling.original_max;
    float f = c->rope_scaling.factor;
    if (!(c->rope_scaling.attn_factor > 0)) c->rope_scaling.attn_factor = f <= 1 ? 1.0f : (float)(0.1 * log(f) + 1.0);
    return 0;
}

/* Llama-like families (every one but GPT-2): LlamaConfig's keys, plus what the family's
 * config adds (head_dim, soft-capping, query_pre_attn_scalar, window). */
static int parse_rotary(ModelConfig *c, const json_t *r, const FamilySpec *f, const char *p, Error *e) {
    c->family = f->id;
    if (cfg_required(r, "num_hidden_layers", &c->n_layer, p, e) ||
        cfg_required(r, "num_attention_heads", &c->n_head, p, e) || cfg_required(r, "hidden_size", &c->d_model, p, e) ||
        cfg_required(r, "intermediate_size", &c->d_ff, p, e) || cfg_required(r, "vocab_size", &c->vocab_size, p, e))
        return e->code;
    if (cfg_int(r, "num_key_value_heads", c->n_head, &c->n_kv_head, p, e) ||
        cfg_int(r, "max_position_embeddings", f->max_pos_default, &c->max_seq, p, e) ||
        cfg_float(r, "rms_norm_eps", f->eps_default, &c->norm_eps, p, e) ||
        cfg_float(r, "initializer_range", 0.02f, &c->init_std, p, e) ||
        cfg_bool(r, "tie_word_embeddings", f->tie_default, &c->tie_embeddings, p, e) ||
        cfg_bool(r, "attention_bias", 0, &c->attn_bias, p, e) || cfg_bool(r, "mlp_bias", 0, &c->mlp_bias, p, e) ||
        cfg_token(r, "bos_token_id", f->bos_default, &c->bos_id, p, e) ||
        cfg_token(r, "eos_token_id", f->eos_default, &c->eos_id, p, e) ||
        cfg_token(r, "pad_token_id", f->pad_default, &c->pad_id, p, e))
        return e->code;
    if (c->family == FAMILY_QWEN2 || c->family == FAMILY_MISTRAL || c->family == FAMILY_PHI3)
        c->attn_bias = 0; /* not a key of these configs: their table fixes the biases */
    if (c->family != FAMILY_LLAMA) c->mlp_bias = 0;
    if (parse_rope(c, r, p, e) || parse_window(c, r, p, e)) return e->code;
    const json_t *act = json_object_get(r, f->act_key);
    if (!act || json_is_null(act)) act = json_object_get(r, "hidden_act");
    if (act && !json_is_null(act) && (!json_is_string(act) || strcmp(json_string_value(act), f->act_name)))
        return err_set(e, EX_DATAERR, "%s: field \"%s\" must be \"%s\"", p, f->act_key, f->act_name);
    int hd = 0;
    if (c->n_head > 0 && cfg_int(r, "head_dim", c->d_model / c->n_head, &hd, p, e)) return e->code;
    c->head_dim = c->n_head > 0 && hd * c->n_head == c->d_model && c->d_model % c->n_head == 0 ? 0 : hd;
    if (!(c->partial_rotary > 0)) { /* transformers 4.x keeps it at top level */
        float prf = 1.0f;
        if (cfg_float(r, "partial_rotary_factor", 1.0f, &prf, p, e)) return e->code;
        if (prf != 1.0f) c->partial_rotary = prf;
    }
    if (c->partial_rotary > 0) {
        int rd = model_rotary_dim(c);
        if (c->family != FAMILY_PHI3)
            return err_set(e, EX_DATAERR, "%s: field \"partial_rotary_factor\": partial rotary is a Phi-3 setting", p);
        if (!(c->partial_rotary < 1) || rd < 2 || rd % 2)
            return err_set(e, EX_DATAERR,
                           "%s: field \"partial_rotary_factor\" = %g gives %d rotated dimensions (even, 2 .. head_dim)",
                           p, (double)c->partial_rotary, rd);
    }
    if (c->rope_scaling.type == ROPE_LONGROPE && finish_longrope(c, r, p, e)) return e->code;
    if (c->rope_scaling.type == ROPE_YARN && finish_yarn(c, r, p, e)) return e->code;
    if (cfg_float(r, "query_pre_attn_scalar", 0.0f, &c->query_scale, p, e) ||
        cfg_float(r, "attn_logit_softcapping", 0.0f, &c->attn_softcap, p, e) ||
        cfg_float(r, "final_logit_softcapping", 0.0f, &c->final_softcap, p, e))
        return e->code;
    if (c->query_scale < 0 || c->attn_softcap < 0 || c->final_softcap < 0)
        return err_set(e, EX_DATAERR, "%s: query_pre_attn_scalar and soft-capping values must be positive", p);
    return 0;
}

int model_config_load(ModelConfig *c, const char *path, Error *e) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    int rc = read_file(path, &text, &len, e);
    if (rc) return rc;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root) return err_set(e, EX_DATAERR, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, EX_DATAERR, "%s: not a JSON object", path);
    }
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    const FamilySpec *fam = mt ? family_by_model_type(mt) : NULL;
    if (!mt)
        rc = err_set(e, EX_DATAERR, "%s: missing string field \"model_type\"", path);
    else if (!fam)
        rc = err_set(e, EX_DATAERR,
                     "%s: field \"model_type\" = \"%s\": cherry supports gpt2, llama, qwen2, mistral, qwen3, gemma2, "
                     "gemma3_text and phi3",
                     path, mt);
    else if (fam->id == FAMILY_GPT2)
        rc = parse_gpt2(c, root, path, e);
    else
        rc = parse_rotary(c, root, fam, path, e);
    if (!rc) rc = parse_arch(c, root, path, e);
    json_decref(root);
    if (!rc) rc = model_config_validate(c, path, e);
    return rc;
}

/* A float as the shortest decimal that reads back to the same float, so 1e-5f is
 * written "1e-05", not "9.99999975e-06" (printed with 15 digits below). */
static json_t *float_json(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *token_json(int id) {
    return id >= 0 ? json_integer(id) : json_null();
}

/* One rope object as transformers 5 writes rope_parameters. */
static json_t *rope_json(const ModelConfig *c, float theta, int scaled) {
    json_t *rp = json_object();
    const char *names[] = {"default", "linear", "llama3", "longrope", "yarn"};
    RopeType t = scaled ? c->rope_scaling.type : ROPE_DEFAULT;
    json_object_set_new(rp, "rope_type", json_string(names[t]));
    json_object_set_new(rp, "rope_theta", float_json(theta));
    if (t != ROPE_DEFAULT) json_object_set_new(rp, "factor", float_json(c->rope_scaling.factor));
    if (t == ROPE_YARN) {
        json_object_set_new(rp, "original_max_position_embeddings", json_integer(c->rope_scaling.original_max));
        json_object_set_new(rp, "attention_factor", float_json(c->rope_scaling.attn_factor));
        json_object_set_new(rp, "beta_fast", float_json(c->rope_scaling.beta_fast));
        json_object_set_new(rp, "beta_slow", float_json(c->rope_scaling.beta_slow));
        if (c->rope_scaling.no_truncate) json_object_set_new(rp, "truncate", json_false());
    }
    if (t == ROPE_LONGROPE) {
        json_t *sf = json_array(), *lf = json_array();
        for (int i = 0; i < c->rope_scaling.n_factors; i++) {
            json_array_append_new(sf, float_json(c->rope_scaling.short_factor[i]));
            json_array_append_new(lf, float_json(c->rope_scaling.long_factor[i]));
        }
        json_object_set_new(rp, "short_factor", sf);
        json_object_set_new(rp, "long_factor", lf);
        json_object_set_new(rp, "attention_factor", float_json(c->rope_scaling.attn_factor));
        json_object_set_new(rp, "original_max_position_embeddings", json_integer(c->rope_scaling.original_max));
    }
    if (t == ROPE_LLAMA3) {
        json_object_set_new(rp, "low_freq_factor", float_json(c->rope_scaling.low_freq));
        json_object_set_new(rp, "high_freq_factor", float_json(c->rope_scaling.high_freq));
        json_object_set_new(rp, "original_max_position_embeddings", json_integer(c->rope_scaling.original_max));
    }
    if (c->family == FAMILY_PHI3)
        json_object_set_new(rp, "partial_rotary_factor",
                            c->partial_rotary > 0 ? float_json(c->partial_rotary) : json_real(1.0));
    return rp;
}

static json_t *opt_float(float f) {
    return f > 0 ? float_json(f) : json_null();
}

/* The keys of the rotary families beyond Llama's. */
static void family_keys_json(json_t *r, const ModelConfig *c, const FamilySpec *f) {
    int gemma = c->family == FAMILY_GEMMA2 || c->family == FAMILY_GEMMA3;
    if (c->family == FAMILY_GEMMA3) { /* per layer type, as Gemma3TextConfig saves it */
        json_t *rp = json_object();
        json_t *loc = rope_json(c, c->rope_local_theta > 0 ? c->rope_local_theta : c->rope_theta, 0);
        json_object_set_new(rp, "sliding_attention", loc);
        json_object_set_new(rp, "full_attention", rope_json(c, c->rope_theta, 1));
        json_object_set_new(r, "rope_parameters", rp);
    }
    if (c->family == FAMILY_QWEN2 || c->family == FAMILY_QWEN3)
        json_object_set_new(r, "use_sliding_window", json_false());
    /* Gemma in transformers always builds a sliding mask: no window = the whole context
     * (and layer_types says every layer is full anyway) */
    int win = c->sliding_window > 0 ? c->sliding_window : gemma ? c->max_seq : 0;
    if (c->family != FAMILY_QWEN2 && c->family != FAMILY_QWEN3)
        json_object_set_new(r, "sliding_window", win > 0 ? json_integer(win) : json_null());
    if (gemma) { /* always: transformers' Gemma default alternates sliding layers */
        json_t *lt = json_array();
        for (int l = 0; l < c->n_layer; l++)
            json_array_append_new(lt, json_string(family_layer_slides(c, l) ? "sliding_attention" : "full_attention"));
        json_object_set_new(r, "layer_types", lt);
    }
    if (gemma) {
        /* an int in Gemma2Config / Gemma3TextConfig (strictly checked by transformers 5) */
        float qs = c->query_scale > 0 ? c->query_scale : (float)model_head_dim(c);
        json_object_set_new(r, "query_pre_attn_scalar",
                            qs == floorf(qs) ? json_integer((json_int_t)qs) : float_json(qs));
        json_object_set_new(r, "attn_logit_softcapping", opt_float(c->attn_softcap));
        json_object_set_new(r, "final_logit_softcapping", opt_float(c->final_softcap));
    }
    if (c->family == FAMILY_PHI3) {
        json_object_set_new(
            r, "original_max_position_embeddings",
            json_integer(c->rope_scaling.type == ROPE_LONGROPE ? c->rope_scaling.original_max : c->max_seq));
        json_object_set_new(r, "resid_pdrop", json_real(0.0));
        json_object_set_new(r, "embd_pdrop", json_real(0.0));
    }
    json_object_set_new(r, f->act_key, json_string(f->act_name));
}

json_t *model_config_to_json(const ModelConfig *c, const char *dtype_name) {
    json_t *r = json_object();
    const FamilySpec *f = family_spec(c->family);
    int gpt2 = c->family == FAMILY_GPT2;
    json_t *a = json_array();
    json_array_append_new(a, json_string(c->is_classifier ? f->cls_arch : f->causal_arch));
    json_object_set_new(r, "architectures", a);
    json_object_set_new(r, "model_type", json_string(f->model_type));
    if (gpt2) {
        json_object_set_new(r, "n_layer", json_integer(c->n_layer));
        json_object_set_new(r, "n_head", json_integer(c->n_head));
        json_object_set_new(r, "n_embd", json_integer(c->d_model));
        json_object_set_new(r, "n_inner", json_integer(c->d_ff));
        json_object_set_new(r, "n_positions", json_integer(c->max_seq));
        json_object_set_new(r, "n_ctx", json_integer(c->max_seq));
        json_object_set_new(r, "layer_norm_epsilon", float_json(c->norm_eps));
        json_object_set_new(r, "activation_function", json_string("gelu_new"));
        /* cherry trains without dropout; say so, so transformers' train mode matches */
        json_object_set_new(r, "attn_pdrop", json_real(0.0));
        json_object_set_new(r, "embd_pdrop", json_real(0.0));
        json_object_set_new(r, "resid_pdrop", json_real(0.0));
        json_object_set_new(r, "summary_first_dropout", json_real(0.0));
        json_object_set_new(r, "scale_attn_weights", json_true());
    } else {
        json_object_set_new(r, "num_hidden_layers", json_integer(c->n_layer));
        json_object_set_new(r, "num_attention_heads", json_integer(c->n_head));
        json_object_set_new(r, "num_key_value_heads", json_integer(c->n_kv_head));
        json_object_set_new(r, "hidden_size", json_integer(c->d_model));
        json_object_set_new(r, "head_dim", json_integer(model_head_dim(c)));
        json_object_set_new(r, "intermediate_size", json_integer(c->d_ff));
        json_object_set_new(r, "max_position_embeddings", json_integer(c->max_seq));
        json_object_set_new(r, "rms_norm_eps", float_json(c->norm_eps));
        json_object_set_new(r, "rope_theta", float_json(c->rope_theta));
        json_object_set_new(r, "rope_parameters", rope_json(c, c->rope_theta, 1));
        json_object_set_new(r, "attention_bias", json_boolean(c->attn_bias));
        json_object_set_new(r, "mlp_bias", json_boolean(c->mlp_bias));
        json_object_set_new(r, "attention_dropout", json_real(0.0));
        if (c->family == FAMILY_LLAMA)
            json_object_set_new(r, "hidden_act", json_string("silu"));
        else
            family_keys_json(r, c, f);
    }
    json_object_set_new(r, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(r, "initializer_range", float_json(c->init_std));
    json_object_set_new(r, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(r, "bos_token_id", token_json(c->bos_id));
    json_object_set_new(r, "eos_token_id", token_json(c->eos_id));
    json_object_set_new(r, "pad_token_id", token_json(c->pad_id));
    if (c->is_classifier) {
        json_t *i2l = json_object(), *l2i = json_object();
        json_object_set_new(i2l, "0", json_string("LABEL_0"));
        json_object_set_new(l2i, "LABEL_0", json_integer(0));
        json_object_set_new(r, "id2label", i2l);
        json_object_set_new(r, "label2id", l2i);
    }
    if (dtype_name) json_object_set_new(r, "dtype", json_string(dtype_name));
    json_object_set_new(r, "use_cache", json_true());
    return r;
}

int model_config_save_dtype(const ModelConfig *c, const char *path, const char *dtype_name, Error *e) {
    json_t *r = model_config_to_json(c, dtype_name);
    AtomicFile af;
    int rc = atomic_open(&af, path, e);
    if (!rc) {
        if (json_dumpf(r, af.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) != 0 ||
            fputc('\n', af.fp) == EOF) {
            atomic_abort(&af);
            rc = err_set(e, EX_IOERR, "%s: write error", path);
        } else {
            rc = atomic_commit(&af, e);
        }
    }
    json_decref(r);
    return rc;
}
