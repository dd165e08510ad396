/* model_family.c — THE table of model families: for each, its names in config.json
 * and in the state dict transformers saves, the tensors of a block and their shapes,
 * and the numerics that tell it apart.  Adding a family is adding a row here (plus
 * its config keys in model_config.c when it has new ones).
 *
 * Sources: transformers modeling_<family>.py / configuration_<family>.py —
 *   GPT-2 (Radford et al. 2019): LayerNorm, learned positions, fused Conv1D c_attn.
 *   Llama (Touvron et al. 2023): RMSNorm, RoPE, SwiGLU, GQA.
 *   Qwen2 (Qwen2 technical report 2024): Llama with q/k/v biases (no o bias).
 *   Mistral (Jiang et al. 2023): Llama with a sliding attention window.
 *   Qwen3 (2025): Llama with per-head RMSNorm on q and k before RoPE.
 *   Gemma 2 (Gemma Team 2024): (1 + w) RMSNorm, embeddings x sqrt(C), GeLU-tanh
 *     gating, norms before and after attention and MLP, logit soft-capping,
 *     alternating local (sliding) and global layers.
 *   Gemma 3 (Gemma Team 2025): Gemma 2 with q/k norms, 5 local : 1 global, a
 *     separate RoPE base for local layers, no soft-capping.
 *   Phi-3 (Abdin et al. 2024): Llama with fused qkv_proj and gate_up_proj.
 * Not for: the maths (model.c), config parsing (model_config.c). */
#include <stddef.h>
#include <string.h>

#include "model_internal.h"

#define LW(f) offsetof(LayerWeights, f)
#define MV(f) offsetof(ModelView, f)
#define END                                                                                                            \
    { 0, NULL, D_NONE, D_NONE, 0, 0, 0 }

static const TensorSpec GPT2_PRE[] = {
    {MV(wte), "wte.weight", D_V, D_C, INIT_NORMAL, 0, 0}, {MV(wpe), "wpe.weight", D_POS, D_C, INIT_NORMAL, 0, 0}, END};
static const TensorSpec GPT2_LAYER[] = {{LW(ln1_w), "ln_1.weight", D_C, D_NONE, INIT_NORM, 0, 0},
                                        {LW(ln1_b), "ln_1.bias", D_C, D_NONE, INIT_ZERO, 0, 0},
                                        {LW(qkv_w), "attn.c_attn.weight", D_QKV, D_C, INIT_NORMAL, 0, 1},
                                        {LW(qkv_b), "attn.c_attn.bias", D_QKV, D_NONE, INIT_ZERO, 0, 0},
                                        {LW(o_w), "attn.c_proj.weight", D_C, D_Q, INIT_NORMAL_RESID, 0, 1},
                                        {LW(o_b), "attn.c_proj.bias", D_C, D_NONE, INIT_ZERO, 0, 0},
                                        {LW(ln2_w), "ln_2.weight", D_C, D_NONE, INIT_NORM, 0, 0},
                                        {LW(ln2_b), "ln_2.bias", D_C, D_NONE, INIT_ZERO, 0, 0},
                                        {LW(up_w), "mlp.c_fc.weight", D_F, D_C, INIT_NORMAL, 0, 1},
                                        {LW(up_b), "mlp.c_fc.bias", D_F, D_NONE, INIT_ZERO, 0, 0},
                                        {LW(down_w), "mlp.c_proj.weight", D_C, D_F, INIT_NORMAL_RESID, 0, 1},
                                        {LW(down_b), "mlp.c_proj.bias", D_C, D_NONE, INIT_ZERO, 0, 0},
                                        END};
static const TensorSpec GPT2_POST[] = {{MV(lnf_w), "ln_f.weight", D_C, D_NONE, INIT_NORM, 0, 0},
                                       {MV(lnf_b), "ln_f.bias", D_C, D_NONE, INIT_ZERO, 0, 0},
                                       END};

/* Rotary families share the embedding and the final norm. */
static const TensorSpec ROT_PRE[] = {{MV(wte), "embed_tokens.weight", D_V, D_C, INIT_NORMAL, 0, 0}, END};
static const TensorSpec ROT_POST[] = {{MV(lnf_w), "norm.weight", D_C, D_NONE, INIT_NORM, 0, 0}, END};

#define NORM(f, n)                                                                                                     \
    { LW(f), n, D_C, D_NONE, INIT_NORM, 0, 0 }
#define LIN(f, n, o, i)                                                                                                \
    { LW(f), n, o, i, INIT_NORMAL, 0, 0 }
#define BIAS(f, n, o, when)                                                                                            \
    { LW(f), n, o, D_NONE, INIT_ZERO, when, 0 }
#define QKNORM                                                                                                         \
    {LW(q_norm), "self_attn.q_norm.weight", D_HD, D_NONE, INIT_NORM, 0, 0}, {                                          \
        LW(k_norm), "self_attn.k_norm.weight", D_HD, D_NONE, INIT_NORM, 0, 0                                           \
    }
#define ATTN(when)                                                                                                     \
    LIN(q_w, "self_attn.q_proj.weight", D_Q, D_C), BIAS(q_b, "self_attn.q_proj.bias", D_Q, when),                      \
        LIN(k_w, "self_attn.k_proj.weight", D_KV, D_C), BIAS(k_b, "self_attn.k_proj.bias", D_KV, when),                \
        LIN(v_w, "self_attn.v_proj.weight", D_KV, D_C), BIAS(v_b, "self_attn.v_proj.bias", D_KV, when)
#define OPROJ(when) LIN(o_w, "self_attn.o_proj.weight", D_C, D_Q), BIAS(o_b, "self_attn.o_proj.bias", D_C, when)
#define MLP(when)                                                                                                      \
    LIN(gate_w, "mlp.gate_proj.weight", D_F, D_C), BIAS(gate_b, "mlp.gate_proj.bias", D_F, when),                      \
        LIN(up_w, "mlp.up_proj.weight", D_F, D_C), BIAS(up_b, "mlp.up_proj.bias", D_F, when),                          \
        LIN(down_w, "mlp.down_proj.weight", D_C, D_F), BIAS(down_b, "mlp.down_proj.bias", D_C, when)

static const TensorSpec LLAMA_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),
                                         ATTN(WHEN_ATTN_BIAS),
                                         OPROJ(WHEN_ATTN_BIAS),
                                         MLP(WHEN_MLP_BIAS),
                                         NORM(ln2_w, "post_attention_layernorm.weight"),
                                         END};
static const TensorSpec QWEN2_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),          ATTN(WHEN_ALWAYS),
                                         LIN(o_w, "self_attn.o_proj.weight", D_C, D_Q),  MLP(WHEN_MLP_BIAS),
                                         NORM(ln2_w, "post_attention_layernorm.weight"), END};
static const TensorSpec QWEN3_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),
                                         ATTN(WHEN_ATTN_BIAS),
                                         OPROJ(WHEN_ATTN_BIAS),
                                         QKNORM,
                                         MLP(WHEN_MLP_BIAS),
                                         NORM(ln2_w, "post_attention_layernorm.weight"),
                                         END};
static const TensorSpec GEMMA2_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),
                                          ATTN(WHEN_ATTN_BIAS),
                                          OPROJ(WHEN_ATTN_BIAS),
                                          NORM(post_attn_norm, "post_attention_layernorm.weight"),
                                          NORM(ln2_w, "pre_feedforward_layernorm.weight"),
                                          MLP(WHEN_MLP_BIAS),
                                          NORM(post_ff_norm, "post_feedforward_layernorm.weight"),
                                          END};
static const TensorSpec GEMMA3_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),
                                          ATTN(WHEN_ATTN_BIAS),
                                          OPROJ(WHEN_ATTN_BIAS),
                                          QKNORM,
                                          NORM(post_attn_norm, "post_attention_layernorm.weight"),
                                          NORM(ln2_w, "pre_feedforward_layernorm.weight"),
                                          MLP(WHEN_MLP_BIAS),
                                          NORM(post_ff_norm, "post_feedforward_layernorm.weight"),
                                          END};
static const TensorSpec PHI3_LAYER[] = {NORM(ln1_w, "input_layernorm.weight"),
                                        LIN(qkv_w, "self_attn.qkv_proj.weight", D_QKV, D_C),
                                        LIN(o_w, "self_attn.o_proj.weight", D_C, D_Q),
                                        LIN(gate_up_w, "mlp.gate_up_proj.weight", D_2F, D_C),
                                        LIN(down_w, "mlp.down_proj.weight", D_C, D_F),
                                        NORM(ln2_w, "post_attention_layernorm.weight"),
                                        END};

/* The table: PEFT default LoRA targets are TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING;
 * the defaults are those of the family's configuration_<family>.py. */
#define ARCH(causal, cls) .causal_arch = causal, .cls_arch = cls
#define ROTARY .prefix = "model.", .blocks = "layers", .pre = ROT_PRE, .post = ROT_POST, .gated = 1
#define SILU .act = ACT_SILU, .act_key = "hidden_act", .act_name = "silu"
#define GEMMA                                                                                                          \
    .norm = NORM_RMS_1P, .act = ACT_GELU_TANH, .act_key = "hidden_activation", .act_name = "gelu_pytorch_tanh",        \
    .embed_scale = 1, .tie_default = 1, .bos_default = 2, .eos_default = 1, .pad_default = 0, .eps_default = 1e-6f
#define QV .lora_default = {"q_proj", "v_proj"}
/* clang-format off */
static const FamilySpec FAMILIES[FAMILY_COUNT] = {
    [FAMILY_GPT2] = {FAMILY_GPT2, "gpt2", "gpt2", ARCH("GPT2LMHeadModel", "GPT2ForSequenceClassification"),
        .prefix = "transformer.", .blocks = "h", .pre = GPT2_PRE, .layer = GPT2_LAYER, .post = GPT2_POST,
        .norm = NORM_LAYER, .act = ACT_GELU_TANH, .learned_pos = 1, .act_key = "activation_function",
        .act_name = "gelu_new", .lora_default = {"c_attn"},
        .tie_default = 1, .bos_default = 50256, .eos_default = 50256, .pad_default = -1, .max_pos_default = 1024,
        .eps_default = 1e-5f},
    [FAMILY_LLAMA] = {FAMILY_LLAMA, "llama", "llama", ARCH("LlamaForCausalLM", "LlamaForSequenceClassification"),
        ROTARY, .layer = LLAMA_LAYER, .norm = NORM_RMS, SILU, QV,
        .bos_default = 1, .eos_default = 2, .pad_default = -1, .max_pos_default = 2048, .eps_default = 1e-6f},
    [FAMILY_QWEN2] = {FAMILY_QWEN2, "qwen2", "qwen2", ARCH("Qwen2ForCausalLM", "Qwen2ForSequenceClassification"),
        ROTARY, .layer = QWEN2_LAYER, .norm = NORM_RMS, SILU, QV,
        .bos_default = -1, .eos_default = -1, .pad_default = -1, .max_pos_default = 32768, .eps_default = 1e-6f},
    [FAMILY_MISTRAL] = {FAMILY_MISTRAL, "mistral", "mistral",
        ARCH("MistralForCausalLM", "MistralForSequenceClassification"),
        ROTARY, .layer = LLAMA_LAYER, .norm = NORM_RMS, SILU, QV,
        .bos_default = 1, .eos_default = 2, .pad_default = -1, .max_pos_default = 131072, .eps_default = 1e-6f},
    [FAMILY_QWEN3] = {FAMILY_QWEN3, "qwen3", "qwen3", ARCH("Qwen3ForCausalLM", "Qwen3ForSequenceClassification"),
        ROTARY, .layer = QWEN3_LAYER, .norm = NORM_RMS, SILU, QV,
        .bos_default = -1, .eos_default = -1, .pad_default = -1, .max_pos_default = 32768, .eps_default = 1e-6f},
    [FAMILY_GEMMA2] = {FAMILY_GEMMA2, "gemma2", "gemma2",
        ARCH("Gemma2ForCausalLM", "Gemma2ForSequenceClassification"),
        ROTARY, .layer = GEMMA2_LAYER, GEMMA, QV, .max_pos_default = 8192},
    [FAMILY_GEMMA3] = {FAMILY_GEMMA3, "gemma3", "gemma3_text",
        ARCH("Gemma3ForCausalLM", "Gemma3TextForSequenceClassification"),
        ROTARY, .layer = GEMMA3_LAYER, GEMMA, QV, .max_pos_default = 131072},
    [FAMILY_PHI3] = {FAMILY_PHI3, "phi3", "phi3", ARCH("Phi3ForCausalLM", "Phi3ForSequenceClassification"),
        ROTARY, .layer = PHI3_LAYER, .norm = NORM_RMS, SILU, .lora_default = {"qkv_proj"},
        .bos_default = 1, .eos_default = 32000, .pad_default = 32000, .max_pos_default = 4096, .eps_default = 1e-5f},
};
/* clang-format on */

const FamilySpec *family_spec(Family f) {
    return f >= 0 && f < FAMILY_COUNT ? &FAMILIES[f] : &FAMILIES[FAMILY_LLAMA];
}

const FamilySpec *family_by_model_type(const char *model_type) {
    for (int i = 0; i < FAMILY_COUNT; i++)
        if (strcmp(FAMILIES[i].model_type, model_type) == 0) return &FAMILIES[i];
    return NULL;
}

const char *model_family_name(Family f) {
    return family_spec(f)->name;
}

int model_head_dim(const ModelConfig *c) {
    return c->head_dim > 0 ? c->head_dim : c->d_model / c->n_head;
}

int model_rotary_dim(const ModelConfig *c) {
    /* transformers: int(head_dim * partial_rotary_factor) */
    return c->partial_rotary > 0 ? (int)(model_head_dim(c) * (double)c->partial_rotary) : model_head_dim(c);
}

long family_dim(const ModelConfig *c, Dim d) {
    long hd = model_head_dim(c), Q = (long)c->n_head * hd, KV = (long)c->n_kv_head * hd;
    switch (d) {
    case D_C:
        return c->d_model;
    case D_Q:
        return Q;
    case D_KV:
        return KV;
    case D_QKV:
        return Q + 2 * KV;
    case D_F:
        return c->d_ff;
    case D_2F:
        return 2L * c->d_ff;
    case D_V:
        return c->vocab_size;
    case D_POS:
        return c->max_seq;
    case D_HD:
        return hd;
    case D_ONE:
        return 1;
    default:
        return 0;
    }
}

int family_has(const ModelConfig *c, const TensorSpec *t) {
    switch (t->when) {
    case WHEN_ATTN_BIAS:
        return c->attn_bias;
    case WHEN_MLP_BIAS:
        return c->mlp_bias;
    default:
        return 1;
    }
}

int family_layer_slides(const ModelConfig *c, int l) {
    if (c->sliding_window <= 0) return 0;
    return c->sliding_pattern <= 0 || (l + 1) % c->sliding_pattern != 0;
}

const char *model_arch_name(const ModelConfig *c) {
    const FamilySpec *f = family_spec(c->family);
    return c->is_classifier ? f->cls_arch : f->causal_arch;
}

int model_family_from_name(const char *name, Family *f) {
    for (int i = 0; i < FAMILY_COUNT; i++)
        if (strcmp(FAMILIES[i].name, name) == 0 || strcmp(FAMILIES[i].model_type, name) == 0) {
            *f = FAMILIES[i].id;
            return 1;
        }
    return 0;
}
