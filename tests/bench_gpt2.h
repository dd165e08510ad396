/* bench_gpt2.h — the GPT-2-124M shape the C benches time (openai-community/gpt2's
 * config.json: 12 layers and heads, width 768, MLP 3072, vocabulary 50257, context
 * 1024, tied embeddings, biases, layer-norm eps 1e-5, init std 0.02), one definition
 * for bench_decode, bench_dpo, bench_sft and bench_train_step.  The special token ids
 * are each bench's own: all -1 here.  Include it once, from the bench's .c file. */
#ifndef CHERRY_TESTS_BENCH_GPT2_H
#define CHERRY_TESTS_BENCH_GPT2_H

#include "model/model.h"

static inline ModelConfig bench_gpt2_124m_config(void) {
    ModelConfig c = {0};
    c.family = FAMILY_GPT2;
    c.n_layer = 12;
    c.n_head = c.n_kv_head = 12;
    c.d_model = 768;
    c.d_ff = 3072;
    c.vocab_size = 50257;
    c.max_seq = 1024;
    c.norm_eps = 1e-5f;
    c.init_std = 0.02f;
    c.tie_embeddings = 1;
    c.attn_bias = c.mlp_bias = 1;
    c.bos_id = c.eos_id = c.pad_id = -1;
    return c;
}

#endif
