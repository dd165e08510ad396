/* model_internal.h — the family table (model_family.c) as model.c, model_config.c
 * and model_io.c read it.  Private to common/model/.
 * Not for: callers of model.h (they see Family, ModelConfig and ModelView). */
#ifndef CHERRY_MODEL_INTERNAL_H
#define CHERRY_MODEL_INTERNAL_H

#include <stddef.h>

#include "model.h"

/* Symbolic tensor dimensions, resolved against a config by family_dim. */
typedef enum { D_NONE, D_C, D_Q, D_KV, D_QKV, D_F, D_2F, D_V, D_POS, D_HD, D_ONE } Dim;
/* Initialisation (transformers _init_weights): normal(0, initializer_range); GPT-2's
 * residual projections normal(0, std / sqrt(2 L)); zeros; the norm's identity (1, or
 * 0 for Gemma's (1 + w) norms). */
enum { INIT_NORMAL, INIT_NORMAL_RESID, INIT_ZERO, INIT_NORM };
/* When a tensor exists: always, or under a config flag. */
enum { WHEN_ALWAYS, WHEN_ATTN_BIAS, WHEN_MLP_BIAS };
/* Normalisation layers: LayerNorm with bias; RMSNorm x w; RMSNorm x (1 + w) (Gemma). */
typedef enum { NORM_LAYER, NORM_RMS, NORM_RMS_1P } NormKind;
/* MLP activations: gelu tanh approximation (gelu_new = gelu_pytorch_tanh), SiLU. */
typedef enum { ACT_GELU_TANH, ACT_SILU } ActKind;

/* One tensor of a family: where its pointer goes (byte offset into LayerWeights for
 * block tensors, into ModelView for the others), its name, shape and init. */
typedef struct TensorSpec {
    size_t slot;
    const char *name; /* block tensors: the part after "<blocks>.<l>." */
    Dim d0, d1;       /* d1 == D_NONE: a vector */
    int init, when, conv1d;
} TensorSpec;

typedef struct FamilySpec {
    Family id;
    const char *name;                     /* cherry's name (model_family_name) */
    const char *model_type;               /* config.json model_type */
    const char *causal_arch, *cls_arch;   /* architectures[0] written on save */
    const char *prefix;                   /* "transformer." / "model." before every trunk tensor */
    const char *blocks;                   /* "h" / "layers" */
    const TensorSpec *pre, *layer, *post; /* NULL-name terminated */
    NormKind norm;
    ActKind act;
    int gated;                      /* MLP = down(act(gate) * up); else down(act(up)) */
    int learned_pos;                /* GPT-2 wpe instead of RoPE */
    int embed_scale;                /* Gemma: embeddings times sqrt(hidden_size) */
    const char *act_key, *act_name; /* config key and value of the activation */
    const char *lora_default[2];    /* PEFT's default target modules */
    /* config.json defaults */
    int tie_default, bos_default, eos_default, pad_default, max_pos_default;
    float eps_default;
} FamilySpec;

const FamilySpec *family_spec(Family f);
const FamilySpec *family_by_model_type(const char *model_type);
/* Size of a symbolic dimension for c. */
long family_dim(const ModelConfig *c, Dim d);
/* Whether tensor spec t exists for c. */
int family_has(const ModelConfig *c, const TensorSpec *t);
/* Whether layer l of c uses the sliding window. */
int family_layer_slides(const ModelConfig *c, int l);

#endif
