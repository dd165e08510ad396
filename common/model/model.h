/* model.h — one transformer, several families (GPT-2, Llama, Qwen2, Mistral, Qwen3,
 * Gemma 2/3, Phi-3: model_family.c's table), chosen by config.json.
 *
 * Parameters live in ONE contiguous float block (m->params), carved into named
 * tensors (m->tensors[i], HF names); gradients (m->grads) mirror the same layout,
 * so AdamW is a flat loop and a checkpoint is one write (llm.c's layout).
 * Linear weights are held [out, in]; GPT-2's Conv1D [in, out] is transposed on load
 * and save.  Weights on disk in F32/F16/BF16 are widened to f32.
 *
 * Heads on top of the hidden states (after the final norm):
 *   - LM head: per-token log-probs of target tokens (ops.h logprobs_forward), never
 *     the full logits tensor;
 *   - scalar head (score.weight [1, C], *ForSequenceClassification): one value per
 *     token; a reward is the value at the last non-pad token.
 * Head backwards accumulate into m->dhidden (zeroed by every model_forward);
 * model_backward then propagates m->dhidden through the trunk.
 * Not for: losses (losses.c), optimisation (optim.c), sampling (generate.c). */
#ifndef CHERRY_MODEL_H
#define CHERRY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/safetensors.h"
#include "formats/tokenizer.h"

/* The families cherry loads; each is one row of the table in model_family.c (names,
 * tensor layout, numerics).  The first two values are kept for old configs. */
typedef enum {
    FAMILY_GPT2 = 0,
    FAMILY_LLAMA = 1,
    FAMILY_QWEN2,
    FAMILY_MISTRAL,
    FAMILY_QWEN3,
    FAMILY_GEMMA2,
    FAMILY_GEMMA3,
    FAMILY_PHI3,
    FAMILY_COUNT
} Family;

/* RoPE frequency scaling (transformers modeling_rope_utils.py). */
typedef enum { ROPE_DEFAULT = 0, ROPE_LINEAR, ROPE_LLAMA3, ROPE_LONGROPE, ROPE_YARN } RopeType;
#define ROPE_MAX_FACTORS 128 /* longrope factors: one per frequency, head_dim / 2 */

typedef struct ModelConfig {
    Family family;
    int n_layer;
    int n_head;
    int n_kv_head; /* = n_head for GPT-2 */
    int d_model;   /* hidden size C */
    int d_ff;      /* MLP width (GPT-2 n_inner, default 4C) */
    int vocab_size;
    int max_seq;                /* n_positions / max_position_embeddings */
    float norm_eps;             /* layer_norm_epsilon / rms_norm_eps */
    float rope_theta;           /* rotary families */
    float init_std;             /* initializer_range */
    int tie_embeddings;         /* tie_word_embeddings */
    int attn_bias;              /* llama attention_bias: q, k, v and o (GPT-2: always 1) */
    int mlp_bias;               /* llama mlp_bias (GPT-2: always 1) */
    int bos_id, eos_id, pad_id; /* -1 when absent */
    int is_classifier;          /* *ForSequenceClassification with num_labels = 1 */
    /* ---- settings of the newer families; 0 = off / the default ---- */
    int head_dim;         /* 0: d_model / n_head (Qwen3, Gemma set it explicitly) */
    float partial_rotary; /* partial_rotary_factor (Phi-4-mini 0.75); 0: 1, the whole head rotates */
    struct {
        RopeType type;
        float factor;               /* linear, llama3, yarn; longrope: the context ratio */
        float low_freq, high_freq;  /* llama3 low_freq_factor, high_freq_factor */
        int original_max;           /* llama3, longrope, yarn original_max_position_embeddings */
        float attn_factor;          /* longrope, yarn: cos and sin scaled by it */
        float beta_fast, beta_slow; /* yarn: the rotation counts bounding the ramp */
        int no_truncate;            /* yarn truncate false: the ramp bounds are not rounded */
        int n_factors;              /* longrope: entries of short_factor / long_factor */
        float short_factor[ROPE_MAX_FACTORS], long_factor[ROPE_MAX_FACTORS]; /* longrope */
    } rope_scaling;
    float rope_local_theta; /* Gemma 3: rope_local_base_freq of the sliding layers (0: rope_theta) */
    int sliding_window;     /* 0: none; else keys with q - k >= window are masked */
    int sliding_pattern;    /* 0: every layer slides; k: layer l slides iff (l + 1) % k != 0 */
    float attn_softcap;     /* Gemma 2 attn_logit_softcapping (0: none) */
    float final_softcap;    /* Gemma 2 final_logit_softcapping (0: none) */
    float query_scale;      /* Gemma query_pre_attn_scalar (0: head_dim) */
} ModelConfig;

/* Head dimension of a config, and the rotated part of it. */
int model_head_dim(const ModelConfig *c);
int model_rotary_dim(const ModelConfig *c);

/* Weight pointers of one block, filled once by model_create (model_family.c's table
 * says which exist for a family; absent ones are NULL).  Linear weights [out, in].
 * Names are roles, not Hugging Face names: GPT-2's c_fc is up, mlp.c_proj is down;
 * Gemma's post_attention_layernorm is post_attn_norm, its pre_feedforward_layernorm
 * ln2. */
typedef struct LayerWeights {
    float *ln1_w, *ln1_b; /* norm before attention */
    float *qkv_w, *qkv_b; /* fused q, k, v (GPT-2 c_attn, Phi-3 qkv_proj) */
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;
    float *q_norm, *k_norm; /* per-head RMSNorm of q and k (Qwen3, Gemma 3) */
    float *o_w, *o_b;       /* attention output projection */
    float *post_attn_norm;  /* Gemma: norm of the attention output */
    float *ln2_w, *ln2_b;   /* norm before the MLP */
    float *gate_up_w;       /* fused gate, up (Phi-3 gate_up_proj) */
    float *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;
    float *post_ff_norm; /* Gemma: norm of the MLP output */
} LayerWeights;
#define LW_SLOTS ((int)(sizeof(LayerWeights) / sizeof(float *)))

/* Per-layer settings derived from the config once (rotary tables, window). */
typedef struct LayerInfo {
    const float *inv_freq; /* [rotary_dim / 2] RoPE inverse frequencies; NULL: no RoPE */
    int rope_plain;        /* inv_freq is the default theta^(-2i/hd) (rope_forward applies) */
    float rope_theta;
    int window; /* sliding window of this layer (0: full causal) */
    /* longrope: inv_freq_long replaces inv_freq for a sequence longer than long_from
     * positions, and the rotation is scaled by rope_scale */
    const float *inv_freq_long;
    int long_from;
    float rope_scale;
} LayerInfo;

/* The whole weights view: globals and one LayerWeights per block. */
typedef struct ModelView {
    float *wte, *wpe, *lnf_w, *lnf_b;
    float *lm_head; /* lm_head.weight, or wte when tied; NULL for classifiers without */
    float *score;   /* classifier head [1, C] */
    LayerWeights *layer;
    LayerInfo *info;
} ModelView;

typedef struct ParamTensor {
    char name[128]; /* HF name as saved by transformers */
    int ndim;
    int64_t shape[4]; /* in-memory shape ([out, in] for linears) */
    size_t offset;    /* into m->params / m->grads, in floats */
    size_t numel;
    int decay;  /* AdamW weight decay applies (matrices yes; biases, norms no) */
    int conv1d; /* stored transposed on disk (GPT-2 Conv1D) */
} ParamTensor;

typedef struct ModelImpl ModelImpl; /* views and activations, private to model.c */
typedef struct Lora Lora;           /* LoRA adapter (lora.h), NULL when none */

typedef struct Model {
    ModelConfig cfg;
    int n_tensors;
    ParamTensor *tensors;
    size_t n_params;
    float *params;  /* one block */
    float *grads;   /* one block, same layout; NULL until model_enable_grads */
    float *hidden;  /* [B*T, C] output of the last model_forward */
    float *dhidden; /* [B*T, C] gradient w.r.t. hidden, zeroed by model_forward */
    int B, T;       /* shape of the last forward */
    ModelImpl *impl;
    Lora *lora;  /* adapter beside the weights (lora.h); NULL = none */
    ModelView w; /* pointers into params, filled by model_create */
} Model;

int model_config_load(ModelConfig *c, const char *config_json_path, Error *e);

/* Allocates a model with zeroed parameters for cfg. */
void model_create(Model *m, const ModelConfig *cfg);
/* Initialises as transformers does: N(0, init_std) for matrices and embeddings,
 * zeros for biases, ones for norm weights; GPT-2's c_proj scaled by 1/sqrt(2 L). */
void model_init_random(Model *m, uint64_t seed);
/* Loads an HF directory (config.json + model.safetensors or a sharded index). */
int model_load(Model *m, const char *dir, Error *e);
/* Loads a checkpoint DIR's weights into M, which already has the same shape (resuming
 * a run): the adapter only when M has a LoRA adapter (the base is unchanged), else
 * every parameter.  Errors: those of model_load / lora_load, EX_DATAERR when the
 * parameter counts differ. */
int model_load_params(Model *m, const char *dir, Error *e);
/* Writes an HF directory atomically (config.json, model.safetensors); tokenizer
 * files (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * generation_config.json) are copied from tokenizer_src_dir when not NULL. */
int model_save(const Model *m, const char *dir, const char *tokenizer_src_dir, Error *e);
void model_free(Model *m);

const ParamTensor *model_find_tensor(const Model *m, const char *name);

void model_enable_grads(Model *m);
void model_zero_grad(Model *m);
/* Gradients whose values are not needed again (after an update): the next backward
 * writes each weight's gradient instead of adding to it, as if zeroed (without the
 * pass that zeroes them).  Call model_grads_settle before reading m->grads: it zeroes
 * the gradients no backward reached since.  LoRA's adapter gradients are zeroed. */
void model_grads_discard(Model *m);
void model_grads_settle(Model *m);

/* Trunk forward for tokens [B,T] with per-token positions and segment ids (see
 * attention_forward in ops.h; NULL pos = 0..T-1 per row, NULL seg = one segment
 * per row).  Fills m->hidden, zeroes m->dhidden, keeps activations for backward. */
void model_forward(Model *m, const int *tokens, const int *pos, const int *seg, int B, int T);
/* Backward of the last forward from m->dhidden; accumulates into m->grads. */
void model_backward(Model *m);
/* Gradient checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
 * Cost"; transformers' gradient_checkpointing), for every model of the process from
 * the next model_forward on: the forward keeps only each block's input (L N C floats)
 * and one block's activations, and model_backward recomputes each block's forward
 * just before its backward.  Costs about one more forward; losses, gradients and
 * weights are bit-identical with and without it (the recomputation runs the same
 * kernels on the same inputs).  Set by the training programs' --gradient-checkpointing. */
void model_set_checkpointing(int on);
int model_checkpointing(void);
/* For a model that only runs forwards (a reference, a reward model that scores,
 * logprobs): its forwards keep checkpointing's activations (each block's input and one
 * block's set, about a tenth of the full set per token) whatever
 * model_set_checkpointing says.  The same results; a backward still works (it
 * recomputes, as under checkpointing). */
void model_set_forward_only(Model *m, int on);
/* Floats allocated for the activations of m's forwards (grown as needed, shrunk only by
 * model_release_activations). */
size_t model_activation_floats(const Model *m);
/* Frees the activation and backward buffers (the next forward allocates what it needs):
 * after a pass over larger batches than what follows, e.g. dpo's reference pass. */
void model_release_activations(Model *m);
/* Attention kernel of the next model_forward: the fused one (ops.h
 * attention_flash_*, FlashAttention: per thread one block of scores, no [B, nh, T, T]
 * probabilities kept) when MODE is 1, the one that keeps the probabilities when 0,
 * and with -1 (the default) the fused one from T = 128 on, in every layer (model.c
 * FLASH_MIN_T: memory against time).  Every layer's options go to either
 * kernel; the fused one computes only the key blocks inside a window.  The two agree
 * to float rounding. */
void model_set_flash_attention(int mode);

/* LM head on the last forward: logp[n] = log p(targets[n] | prefix) for every row
 * with targets[n] >= 0 (else 0).  entropy may be NULL. */
void model_logprobs(Model *m, const int *targets, float *logp, float *entropy);
/* The same, and argmax[n] = the first token of largest logit for every row with
 * targets[n] >= 0 (else -1), found in the same pass over the vocabulary (TRL's
 * mean_token_accuracy compares it with the target). */
void model_logprobs_argmax(Model *m, const int *targets, float *logp, float *entropy, int *argmax);
/* Accumulates d loss/d logp into m->dhidden (and into the LM head's gradient). */
void model_logprobs_backward(Model *m, const int *targets, const float *dlogp);
/* model_logprobs_argmax and model_logprobs_backward in one pass, for a loss whose
 * d loss/d logp is known before the log-probs (SFT's cross-entropy): the LM head's
 * logits are kept per block of rows instead of recomputed (ops.h
 * logprobs_forward_backward).  entropy and argmax may be NULL. */
void model_logprobs_fused(Model *m, const int *targets, const float *dlogp, float *logp, float *entropy, int *argmax);
/* ops.h's callback type (C11 allows the identical typedef in both headers) */
typedef void (*LogpGroupFn)(void *ctx, int g0, int g1, const float *logp, float *dlogp);
/* The same for a loss whose d loss/d logp of a row needs the log-probs of its group
 * (group_len consecutive rows; DPO's pair) and no others: fn fills dlogp for groups
 * [g0, g1) once their log-probs are known (ops.h logprobs_forward_backward_grouped). */
void model_logprobs_fused_grouped(Model *m, const int *targets, int group_len, LogpGroupFn fn, void *ctx, float *dlogp,
                                  float *logp, float *entropy, int *argmax);

/* Pieces of the forward that generation (generate.c) shares, per family:
 * the norm of a LayerWeights / ModelView weight (LayerNorm with bias b, RMSNorm, or
 * Gemma's RMSNorm x (1 + w); mean may be NULL for RMS norms); RoPE of layer l in
 * place (inverse: the transpose, for backward; a no-op without RoPE; longrope picks
 * its long factors for a group of rows, consecutive rows with the same group id, or
 * all rows when group is NULL, whose largest position reaches the original context,
 * as transformers does per forward); the attention
 * score scale; the embedding scale (Gemma sqrt(C), else 1); the MLP activation
 * (gated: act(gate) * up; GPT-2: gelu(gate), up unused). */
void model_norm_forward(const Model *m, float *out, float *mean, float *rstd, const float *x, const float *w,
                        const float *b, int N, int C);
void model_rope(const Model *m, int l, float *x, const int *pos, const int *group, int N, int nh, int inverse);
float model_attn_scale(const ModelConfig *c);
float model_embed_scale(const Model *m);
void model_mlp_act(const Model *m, float *out, const float *gate, const float *up, size_t n);

/* Scalar head (classifier models): values[n] = hidden[n,:] . score for all rows. */
void model_values(Model *m, float *values);
void model_values_backward(Model *m, const float *dvalues);

/* ---- additions (engineer "model") ----
 *
 * Weight decay (ParamTensor.decay) follows the HF Trainer rule
 * (Trainer.get_decay_parameter_names): every weight with two or more dimensions decays
 * (linear/Conv1D matrices, token and position embeddings, lm_head, score); biases and
 * LayerNorm/RMSNorm weights (one dimension) do not.
 *
 * Tensor names are the ones transformers saves: GPT-2 with the "transformer." prefix
 * (GPT2LMHeadModel / GPT2ForSequenceClassification; files without the prefix, as
 * GPT2Model saves them, load too), Llama with "model." (LlamaForCausalLM /
 * LlamaForSequenceClassification).  lm_head.weight exists only when untied and the
 * model is not a classifier; classifiers have score.weight [1, C] instead.
 *
 * Preconditions the caller checks (violations are programming errors: die_internal,
 * exit 70): tokens and targets below vocab_size; GPT-2 positions below max_seq (its
 * learned table); model_backward only after model_enable_grads and a forward;
 * model_logprobs_backward only after model_logprobs on the same forward; the LM head
 * only on LM models, model_values only on classifiers.
 * Memory: activations of the last forward are kept for backward, about
 * L * (12 C + 2 F + nh T) floats per token (the norms' outputs and the MLP's activation
 * output are recomputed in backward into buffers all layers share: model.c,
 * ln_recompute; nh instead of nh T with the fused attention, from T = 128 on; with
 * model_set_checkpointing about L C plus one layer's set); they are reallocated only
 * when a larger batch arrives. */

const char *model_family_name(Family f);
/* The family called NAME (cherry's name or config.json's model_type); 0 when none. */
int model_family_from_name(const char *name, Family *f);
/* architectures[0] of a config: e.g. "Qwen2ForCausalLM", "GPT2ForSequenceClassification". */
const char *model_arch_name(const ModelConfig *c);
/* Range/consistency checks of a config (path names the file in messages). */
int model_config_validate(const ModelConfig *c, const char *path, Error *e);
/* config.json as transformers reads it; dtype_name "float32", "bfloat16" or NULL (no key).
 * Returns a new jansson object (json_decref it). */
struct json_t *model_config_to_json(const ModelConfig *c, const char *dtype_name);
int model_config_save_dtype(const ModelConfig *c, const char *path, const char *dtype_name, Error *e);

/* The safetensors files of a model directory: model.safetensors, or every shard named
 * in model.safetensors.index.json (its weight_map is checked against the shards). */
typedef struct ModelWeights {
    int n_files;
    StFile *files;
} ModelWeights;
int model_weights_open(ModelWeights *w, const char *dir, Error *e);
void model_weights_close(ModelWeights *w);
/* Finds, for every tensor of m, its source in w (src[m->n_tensors]), checking names
 * and shapes (Conv1D transposed) and that no unexpected tensor is left over;
 * EX_DATAERR names the tensor.  Nothing is converted. */
int model_weights_bind(const Model *m, const ModelWeights *w, const StTensor **src, Error *e);
/* Like model_save, with the on-disk dtype ST_F32 or ST_BF16. */
int model_save_dtype(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e);

/* ---- additions (engineer "lora") ----
 * With an adapter attached (m->lora, lora.h): model_forward adds the adapters of the
 * enabled modules; model_enable_grads allocates gradients for the adapter only
 * (m->grads stays NULL: the base is frozen), model_zero_grad clears them and
 * model_backward accumulates into them.  model_load of an adapter directory
 * (adapter_config.json) loads the base named by lora_base_dir and the adapter;
 * model_save of a model with an adapter writes an adapter directory (lora_save).
 * model_save_dtype_base writes the base weights only. */
int model_save_dtype_base(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e);
/* The block training updates: the adapter's parameters and gradients when an
 * adapter is attached, else m->params / m->grads.  *n gets its length in floats. */
float *model_train_params(Model *m, float **grads, size_t *n);
/* The directory holding a model's tokenizer files: DIR, or for an adapter directory
 * without tokenizer.json (as PEFT saves them) its base (malloc'd). */
char *model_tokenizer_dir(const char *dir);
/* tok_load_dir of model_tokenizer_dir(MODEL_DIR): the tokenizer a model directory uses. */
int model_tokenizer_load(Tokenizer **t, const char *model_dir, Error *e);

/* A reward model from a causal LM: the same trunk (copied by tensor name) with
 * is_classifier set and score.weight [1, C] drawn from normal(0, init_std) with
 * seed, as transformers' _init_weights does for the new head (no bias).  The LM
 * head (lm_head.weight) is dropped, as AutoModelForSequenceClassification does. */
void model_classifier_from_lm(Model *rm, const Model *lm, uint64_t seed);
/* Copies the tokenizer/generation side files that exist in model_tokenizer_dir(src_dir)
 * into dst_dir. */
int model_copy_side_files(const char *src_dir, const char *dst_dir, Error *e);

#endif
