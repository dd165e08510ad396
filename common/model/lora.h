/* lora.h — LoRA adapters on the linear layers of a Model (Hu et al. 2021, "LoRA:
 * Low-Rank Adaptation of Large Language Models", eq. 3):
 *
 *     h = W x + (alpha / r) * B A x,      A [r, in], B [out, r]
 *
 * with A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)) and B = 0, so a
 * fresh adapter leaves the model's outputs unchanged (PEFT LoraLayer.reset_lora_parameters,
 * init_lora_weights=True).  With use_rslora (read from PEFT files only) the scale is
 * alpha / sqrt(r) (Kalajdzievski 2023).
 *
 * The adapter lives beside the weights it adapts (m->lora): its parameters, gradients
 * and saved activations are their own blocks, the base block m->params is never
 * written while an adapter is attached and gets no gradient block at all (base frozen).
 * lora_set_enabled(m, 0) turns the adapters off for the following forwards: that is
 * the "reference model" of DPO/PPO, so they keep one copy of the weights.
 *
 * Classifiers (reward models) also train a copy of score.weight, as PEFT does for
 * task_type SEQ_CLS (modules_to_save = ["score"]): adapters off = the original head.
 *
 * Files (PEFT's format, peft/utils/save_and_load.py; man 5 cherry-model):
 *   adapter_config.json        peft_type "LORA", r, lora_alpha, target_modules,
 *                              base_model_name_or_path, task_type, fan_in_fan_out...
 *   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in]
 *                              base_model.model.<module>.lora_B.weight [out, r]
 *                              (+ base_model.model.score.weight for SEQ_CLS)
 * GPT-2's Conv1D modules keep A and B in nn.Linear layout; only the merge is
 * transposed on disk (fan_in_fan_out true), which our [out, in] memory layout makes
 * the same sum.
 *
 * Target modules follow PEFT's matching rule (peft/tuners/tuners_utils.py
 * check_target_module_exists): a linear layer of a block matches a name when its
 * module path equals it or ends with "." + name.  Defaults are PEFT's
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING: gpt2 ["c_attn"], llama
 * ["q_proj", "v_proj"].
 *
 * Dropout (PEFT lora_dropout): during training forwards only (lora_set_dropout, which
 * the training loop turns on around its micro-steps), the adapter sees dropout(x):
 * each element kept with probability 1 - p and scaled by 1/(1 - p), zero otherwise
 * (torch.nn.Dropout), independently per adapted module as PEFT has one nn.Dropout per
 * module.  The masks are not stored: element (n, i) of module j is kept when the
 * i-th uniform of an Rng seeded from (seed, j, n) is >= p (n: the row's number in its
 * micro-batch, lora_set_dropout_row0), so backward regenerates
 * them, and the seed of each micro-step is a function of (--seed, step, micro-step):
 * a resumed run draws the same masks.  Evaluation, reference and generation
 * forwards see no dropout.
 * Not for: the training loop (train.c), the model itself (model.c). */
#ifndef CHERRY_LORA_H
#define CHERRY_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/safetensors.h"
#include "model.h"

#define LORA_MAX_TARGETS 16

typedef struct LoraConfig {
    int rank;      /* r >= 1 */
    float alpha;   /* lora_alpha */
    int rslora;    /* use_rslora: scale alpha / sqrt(r) instead of alpha / r */
    float dropout; /* lora_dropout p in [0, 1) */
    int n_targets; /* 0 = the family's default */
    char targets[LORA_MAX_TARGETS][48];
} LoraConfig;

typedef struct LoraModule {
    int base;            /* index of the adapted weight in m->tensors */
    int in, out;         /* the linear's sizes */
    size_t a_off, b_off; /* into Lora.params: A [r, in], B [out, r] */
    char path[128];      /* module path, e.g. "model.layers.0.self_attn.q_proj" */
} LoraModule;

struct Lora {
    LoraConfig cfg;
    float scale; /* alpha / r (or alpha / sqrt(r)) */
    int n_mods;
    LoraModule *mods;
    int *mod_of; /* [m->n_tensors]: module adapting tensor i, or -1 */
    int score;   /* 1: a trainable copy of score.weight at score_off */
    size_t score_off;
    size_t n_params;
    float *params, *grads; /* grads NULL until model_enable_grads */
    int enabled;           /* adapters take part in the next forwards */
    int fwd_on;            /* enabled state of the last model_forward */
    int drop_on;           /* dropout in the next forwards (training) */
    uint64_t drop_seed;    /* mask seed of the next forwards */
    int fwd_drop;          /* drop_on of the last forward */
    uint64_t fwd_seed;     /* drop_seed of the last forward */
    long drop_row0;        /* first row's number in its micro-batch (lora_set_dropout_row0) */
    long fwd_row0;         /* drop_row0 of the last forward */
    int max_in;            /* widest module input */
    float *xd;             /* [N, max_in] scratch: dropped input / masked gradient */
    size_t xd_cap;
    int N;     /* rows of the last forward */
    float *xa; /* [n_mods][N, r]: A x of the last forward, for backward */
    size_t xa_cap;
    float *dxa; /* [N, r] backward scratch */
    size_t dxa_cap;
    char *base_dir; /* base_model_name_or_path written into adapter_config.json */
};

/* cfg->rank = rank, alpha = 2 * rank (TRL's ModelConfig pairs lora_r 16 with
 * lora_alpha 32), no targets (= family default). */
void lora_config_default(LoraConfig *cfg, int rank);
/* Parses a comma-separated list of module names into cfg->targets.  Accepted: PEFT
 * module names (q_proj, c_attn, ...), short forms q, k, v, o, gate, up, down
 * (= q_proj ... down_proj) and "all-linear" (every linear layer of the blocks). */
int lora_targets_parse(LoraConfig *cfg, const char *list, Error *e);

/* Adds one module name to cfg->targets (no duplicates); EX_USAGE when too many/long. */
int lora_config_add_target(LoraConfig *cfg, const char *name, Error *e);
/* Internal (lora.c, lora_io.c): builds m->lora's modules for cfg (targets must be
 * set) with zeroed parameters; EX_USAGE when a target matches no linear layer. */
int lora_build(Model *m, const LoraConfig *cfg, Error *e);

/* Attaches a fresh adapter to m (A random from seed, B zero, score copied).  base_dir
 * is recorded as base_model_name_or_path.  Frees a base gradient block if there was
 * one.  EX_USAGE when a target matches no linear layer of this model. */
int lora_attach(Model *m, const LoraConfig *cfg, const char *base_dir, uint64_t seed, Error *e);
/* Called by model_free. */
void lora_free(Model *m);

void lora_set_enabled(Model *m, int on);
/* Dropout on (training forwards, masks from seed) or off; a no-op without an adapter
 * or with lora_dropout 0. */
void lora_set_dropout(Model *m, int on, uint64_t seed);
/* The number, within its micro-batch, of the first row of the next forwards (0 after
 * lora_set_dropout): a micro-batch run a chunk of rows at a time (sft --chunk-tokens)
 * gives row n of a chunk starting at row0 the mask of row row0 + n, as one forward of
 * the whole micro-batch would. */
void lora_set_dropout_row0(Model *m, long row0);
/* Human-readable summary ("r=4 alpha=8 on 4 modules (q_proj, v_proj): N trainable
 * parameters of M (x%)"). */
void lora_describe(const Model *m, char *buf, size_t n);

/* ---- hooks used by model.c ---- */
/* Start of a forward over N rows: sizes the saved activations. */
void lora_forward_begin(Model *m, int N);
/* out[N, out] += scale * (inp @ A^T) @ B^T when tensor is adapted and adapters are on. */
void lora_linear_forward(Model *m, int tensor, float *out, const float *inp, int N);
/* Backward of the above for the last forward: dA, dB accumulate into m->lora->grads,
 * dinp += scale * (dout @ B) @ A  (dinp may be NULL). */
void lora_linear_backward(Model *m, int tensor, float *dinp, const float *dout, const float *inp, int N);
/* The score head the last forward / next forward uses (NULL: the base one). */
float *lora_score_weight(const Model *m);
float *lora_score_grad(const Model *m);

/* Folds the adapter into the base weights (W += scale B A; score copied) and
 * detaches it: m becomes an ordinary model. */
void lora_merge(Model *m);
/* Temporary merge for code that reads m->params directly (generation): returns the
 * original values of the adapted tensors; lora_unmerge restores them bit for bit. */
float *lora_merge_temporary(Model *m);
void lora_unmerge(Model *m, float *saved);

/* ---- files ---- */
/* 1 when DIR holds adapter_config.json. */
int lora_dir_has_adapter(const char *dir);
/* 1 when DIR's adapter_config.json has task_type "SEQ_CLS" (a reward-model adapter:
 * the base becomes a classifier and the adapter brings the score head). */
int lora_dir_is_seq_cls(const char *dir);
/* The base model directory of adapter directory DIR: DIR itself when it holds
 * model weights, else base_model_name_or_path (relative to DIR when relative).
 * Returns a malloc'd path. */
int lora_base_dir(const char *dir, char **base, Error *e);
/* Reads DIR's adapter into m: attaches it (m has none) or, when m already has an
 * adapter of the same rank and modules, overwrites its parameters (resume). */
int lora_load(Model *m, const char *dir, Error *e);
/* Resuming: EX_USAGE unless checkpoint DIR and m agree on having an adapter (a LoRA
 * run resumes with its --lora-rank, a full run without). */
int lora_check_checkpoint(const Model *m, const char *dir, Error *e);
/* Writes an adapter directory atomically as PEFT does: adapter_config.json and
 * adapter_model.safetensors in dtype (ST_F32 or ST_BF16), plus the tokenizer files
 * copied from tokenizer_src_dir (may be NULL); no config.json, so transformers'
 * AutoModelForCausalLM.from_pretrained(dir) loads base + adapter. */
int lora_save(const Model *m, const char *dir, const char *tokenizer_src_dir, StDtype dtype, Error *e);

#endif
