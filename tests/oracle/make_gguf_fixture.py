#!/usr/bin/env python3
"""make_gguf_fixture.py — a tiny llama GGUF written by llama.cpp's own writer, and the
HF-side truth it must import to, for tests/test_gguf_import.c and tests/t_import_gguf.sh.

What it builds (tests/oracle/fixtures/gguf-tiny/):
  tiny.gguf           GGUF v3 from gguf-py's GGUFWriter: a 2-layer llama (d_model 32,
                      4 heads, 2 KV heads, head size 8, FFN 64, untied lm_head), its
                      tensors quantised with gguf-py's own quantisers to a mix of F32,
                      F16, BF16, Q8_0, Q4_0 and Q4_1, Q and K permuted exactly as
                      convert_hf_to_gguf.py's LlamaModel.permute does; the vocabulary and
                      merges of a byte-level BPE tokenizer trained here with the
                      `tokenizers` library with SmolLM2's pre-tokenizer
                      (tokenizer.ggml.pre = "smollm").
  expected.safetensors  every tensor in HF names and HF row order, as gguf-py
                      dequantises it.  Quantisation works inside rows and the rotary
                      permutation moves whole rows, so the expected HF tensor is simply
                      dequantize(quantize(W)) of the HF weight W — no inverse
                      permutation is written here, the C importer's is what is tested.
  expected.json       hyper-parameters, special tokens, and token ids the ORIGINAL
                      tokenizer (the one the GGUF vocabulary came from) gives for a
                      varied corpus; cherry's tokenizer on the rebuilt tokenizer.json
                      must give the same ids.

Run once (needs gguf, numpy, tokenizers, safetensors); outputs are committed and
`make check` never runs Python:
    python3 tests/oracle/make_gguf_fixture.py
"""
import json
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, TokenType
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gguf-tiny")

N_LAYER, D, N_HEAD, N_KV, FF, CTX = 2, 32, 4, 2, 64, 128
HD = D // N_HEAD
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TRAIN_TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Hello world! Hello there, how are you doing today?",
    "Numbers like 12345 and 2024 are split into single digits.",
    "def main():\n    return 42\n",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u4f60\u597d\u4e16\u754c \U0001F600",
    "user: what is the capital of France?\nassistant: Paris is the capital.",
]

CORPUS = [
    "Hello world!",
    "The lazy dog jumps over 1234567 quick foxes.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\n\n",
    "Caf\u00e9 \u4f60\u597d \U0001F600 r\u00e9sum\u00e9",
    "don't won't I'm you're we've they'll he'd",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "x=3.14159; y = x ** 2",
    "",
]


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    # SmolLM2's tokenizer.json pre-tokenizer: what llama.cpp calls pre type "smollm"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=1
    )
    tok.train_from_iterator(TRAIN_TEXT, trainer)
    return tok


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute, verbatim in behaviour
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = train_tokenizer()
    tj = json.loads(tok.to_str())
    vocab = tj["model"]["vocab"]
    merges = tj["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    n_vocab = len(vocab)
    tokens = [None] * n_vocab
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens)
    types = [TokenType.CONTROL if t in SPECIALS else TokenType.NORMAL for t in tokens]

    rng = np.random.default_rng(20240611)
    hf = {}  # HF name -> f32 weight (HF layout, [out, in])

    def w(name, *shape):
        hf[name] = (rng.standard_normal(shape) * 0.5).astype(np.float32)

    w("model.embed_tokens.weight", n_vocab, D)
    for l in range(N_LAYER):
        p = f"model.layers.{l}."
        hf[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        w(p + "self_attn.q_proj.weight", N_HEAD * HD, D)
        w(p + "self_attn.k_proj.weight", N_KV * HD, D)
        w(p + "self_attn.v_proj.weight", N_KV * HD, D)
        w(p + "self_attn.o_proj.weight", D, N_HEAD * HD)
        hf[p + "post_attention_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        w(p + "mlp.gate_proj.weight", FF, D)
        w(p + "mlp.up_proj.weight", FF, D)
        w(p + "mlp.down_proj.weight", D, FF)
    hf["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
    w("lm_head.weight", n_vocab, D)

    # GGUF name, HF name, quantisation; layer 1 uses a different mix than layer 0
    plan = [("token_embd.weight", "model.embed_tokens.weight", Q.Q8_0)]
    mix = [
        {"q": Q.Q4_0, "k": Q.Q4_1, "v": Q.Q8_0, "o": Q.F16, "gate": Q.BF16, "up": Q.Q4_1, "down": Q.Q4_0},
        {"q": Q.Q4_1, "k": Q.Q4_0, "v": Q.F16, "o": Q.Q8_0, "gate": Q.Q4_0, "up": Q.BF16, "down": Q.F32},
    ]
    for l in range(N_LAYER):
        m, p = mix[l], f"model.layers.{l}."
        plan += [
            (f"blk.{l}.attn_norm.weight", p + "input_layernorm.weight", Q.F32),
            (f"blk.{l}.attn_q.weight", p + "self_attn.q_proj.weight", m["q"]),
            (f"blk.{l}.attn_k.weight", p + "self_attn.k_proj.weight", m["k"]),
            (f"blk.{l}.attn_v.weight", p + "self_attn.v_proj.weight", m["v"]),
            (f"blk.{l}.attn_output.weight", p + "self_attn.o_proj.weight", m["o"]),
            (f"blk.{l}.ffn_norm.weight", p + "post_attention_layernorm.weight", Q.F32),
            (f"blk.{l}.ffn_gate.weight", p + "mlp.gate_proj.weight", m["gate"]),
            (f"blk.{l}.ffn_up.weight", p + "mlp.up_proj.weight", m["up"]),
            (f"blk.{l}.ffn_down.weight", p + "mlp.down_proj.weight", m["down"]),
        ]
    plan += [("output_norm.weight", "model.norm.weight", Q.F32), ("output.weight", "lm_head.weight", Q.F16)]

    gw = GGUFWriter(os.path.join(OUT, "tiny.gguf"), "llama")
    gw.add_name("cherry tiny fixture")
    gw.add_context_length(CTX)
    gw.add_embedding_length(D)
    gw.add_block_count(N_LAYER)
    gw.add_feed_forward_length(FF)
    gw.add_head_count(N_HEAD)
    gw.add_head_count_kv(N_KV)
    gw.add_rope_freq_base(10000.0)
    gw.add_layer_norm_rms_eps(1e-6)
    gw.add_rope_dimension_count(HD)
    gw.add_vocab_size(n_vocab)
    gw.add_tokenizer_model("gpt2")
    gw.add_tokenizer_pre("smollm")
    gw.add_token_list(tokens)
    gw.add_token_types(types)
    gw.add_token_merges(merges)
    gw.add_bos_token_id(1)
    gw.add_eos_token_id(2)
    gw.add_unk_token_id(0)
    gw.add_pad_token_id(2)
    gw.add_add_bos_token(False)
    gw.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    )

    expected = {}
    for gname, hname, qt in plan:
        x = hf[hname]
        if gname.endswith("attn_q.weight"):
            xg = permute(x, N_HEAD, N_HEAD)
        elif gname.endswith("attn_k.weight"):
            xg = permute(x, N_HEAD, N_KV)
        else:
            xg = x
        if qt == Q.F32:
            gw.add_tensor(gname, xg)
            expected[hname] = x.copy()
        else:
            data = quantize(xg, qt)
            gw.add_tensor(gname, data, raw_dtype=qt)
            # rows are quantised independently, so the HF-order truth is the
            # dequantisation of the un-permuted weight quantised the same way
            expected[hname] = dequantize(quantize(x, qt), qt).astype(np.float32).reshape(x.shape)
            # the argument above, checked: GGUF-order dequantisation == permuted truth
            got = dequantize(data, qt).astype(np.float32).reshape(x.shape)
            want = expected[hname]
            if gname.endswith("attn_q.weight"):
                want = permute(want, N_HEAD, N_HEAD)
            elif gname.endswith("attn_k.weight"):
                want = permute(want, N_HEAD, N_KV)
            assert np.array_equal(got, want), gname
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    os.chmod(os.path.join(OUT, "expected.safetensors"), 0o644)

    corpus = [{"text": t, "ids": tok.encode(t).ids} for t in CORPUS]

    # per-token log-probs of transformers' LlamaForCausalLM holding the expected
    # (HF-layout) weights: cherry's model on the imported directory must agree, which
    # checks the rotary un-permutation end to end (a wrong row order changes RoPE)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=n_vocab, hidden_size=D, intermediate_size=FF, num_hidden_layers=N_LAYER,
        num_attention_heads=N_HEAD, num_key_value_heads=N_KV, max_position_embeddings=CTX,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in expected.items()}, strict=True)
    lp_ids = corpus[6]["ids"] + corpus[1]["ids"]
    with torch.no_grad():
        logits = model(torch.tensor([lp_ids])).logits[0].double()
    lps = torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(lp_ids[1:])[:, None])[:, 0]
    meta = {
        "n_layer": N_LAYER,
        "hidden_size": D,
        "num_attention_heads": N_HEAD,
        "num_key_value_heads": N_KV,
        "intermediate_size": FF,
        "max_position_embeddings": CTX,
        "vocab_size": n_vocab,
        "n_params": int(sum(v.size for v in expected.values())),
        "n_tensors": len(expected),
        "bos_token": SPECIALS[1],
        "eos_token": SPECIALS[2],
        "corpus": corpus,
        "logprob_ids": lp_ids,
        "logprobs": [round(float(x), 7) for x in lps],
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=None, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: vocab {n_vocab}, merges {len(merges)}, params {meta['n_params']}")


if __name__ == "__main__":
    main()
