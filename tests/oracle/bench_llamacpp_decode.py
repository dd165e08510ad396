#!/usr/bin/env python3
"""llama.cpp peer of cherry's decode bench for `make bench` (tests/bench/peers.sh decode
runs both alternately and prints the ratios).

Converts an HF Llama directory (default models/smollm2-135m-instruct) to GGUF with
gguf-py, once per weight type, into --out-dir (F32: every tensor F32; F16: matrices
F16 and 1-D tensors F32, as convert_hf_to_gguf.py --outtype f16 writes them; Q and K
permuted as its LlamaModel.permute does), then times greedy decoding at batch 1
through llama-cpp-python on --threads threads: an 8-token prompt (the token ids
cherry's bench_decode uses), then --new tokens; the clock starts when the first
token has been produced (prefill excluded) and counts the tokens after it — the rule
of bench_decode's clock.  Best of --reps runs.  Prints per weight type:
  RESULT llama.cpp <f32|f16> B=1 new=<N> tokens_per_s=<x>
Needs llama-cpp-python, gguf, numpy, safetensors (pip install llama-cpp-python gguf)."""
import argparse, json, os, sys, time

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType, TokenType
from safetensors.numpy import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/smollm2-135m-instruct")
ap.add_argument("--out-dir", default="build/bench")
ap.add_argument("--dtypes", default="f32,f16")
ap.add_argument("--new", type=int, default=48)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=2)
a = ap.parse_args()


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute (HF rotate-half rows -> GGML pairs)
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def convert(path, dtype):
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    tj = json.load(open(os.path.join(a.model, "tokenizer.json")))
    vocab, merges = tj["model"]["vocab"], tj["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    n_vocab = cfg["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [TokenType.UNUSED] * n_vocab
    for t, i in vocab.items():
        tokens[i], types[i] = t, TokenType.NORMAL
    for at in tj.get("added_tokens", []):
        tokens[at["id"]] = at["content"]
        types[at["id"]] = TokenType.CONTROL if at.get("special") else TokenType.USER_DEFINED
    D, L, H, KV = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", D // H)
    w = load_file(os.path.join(a.model, "model.safetensors"))
    tmp = path + ".tmp"
    gw = GGUFWriter(tmp, "llama")
    gw.add_name(os.path.basename(os.path.normpath(a.model)))
    gw.add_context_length(cfg["max_position_embeddings"])
    gw.add_embedding_length(D)
    gw.add_block_count(L)
    gw.add_feed_forward_length(cfg["intermediate_size"])
    gw.add_head_count(H)
    gw.add_head_count_kv(KV)
    gw.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    gw.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    gw.add_rope_dimension_count(hd)
    gw.add_vocab_size(n_vocab)
    gw.add_file_type(0 if dtype == "f32" else 1)
    gw.add_tokenizer_model("gpt2")
    gw.add_tokenizer_pre("smollm")
    gw.add_token_list(tokens)
    gw.add_token_types(types)
    gw.add_token_merges(merges)
    gw.add_bos_token_id(cfg["bos_token_id"])
    gw.add_eos_token_id(cfg["eos_token_id"])
    gw.add_add_bos_token(False)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    plan = [("token_embd.weight", "model.embed_tokens.weight")]
    for l in range(L):
        plan += [(f"blk.{l}.{g}.weight", f"model.layers.{l}.{h}.weight") for h, g in names.items()]
    plan.append(("output_norm.weight", "model.norm.weight"))
    if "lm_head.weight" in w and not cfg.get("tie_word_embeddings"):
        plan.append(("output.weight", "lm_head.weight"))
    for g, h in plan:
        x = w[h].astype(np.float32)
        if g.endswith("attn_q.weight"):
            x = permute(x, H, H)
        elif g.endswith("attn_k.weight"):
            x = permute(x, H, KV)
        if dtype == "f16" and x.ndim == 2:
            gw.add_tensor(g, x.astype(np.float16), raw_dtype=GGMLQuantizationType.F16)
        else:
            gw.add_tensor(g, x)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    os.replace(tmp, path)


def decode_rate(path):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_threads=a.threads, n_threads_batch=a.threads, n_ctx=256, n_batch=64,
                verbose=False)
    n_vocab = llm.n_vocab()
    prompt = [(0 * 131 + t * 17 + 5) % n_vocab for t in range(8)]
    best = 0.0
    for _ in range(a.reps):
        llm.reset()
        n, t_first = 0, None
        for tok in llm.generate(prompt, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            now = time.perf_counter()
            if t_first is None:
                t_first = now
            n += 1
            if n == a.new + 1:
                break
        best = max(best, (n - 1) / (now - t_first))
    return best


os.makedirs(a.out_dir, exist_ok=True)
name = os.path.basename(os.path.normpath(a.model))
for dtype in a.dtypes.split(","):
    path = os.path.join(a.out_dir, f"{name}-{dtype}.gguf")
    if not os.path.exists(path):
        print(f"converting {a.model} to {path}", file=sys.stderr)
        convert(path, dtype)
    r = decode_rate(path)
    import llama_cpp

    print(f"RESULT llama.cpp {dtype} B=1 new={a.new} tokens_per_s={r:.1f} "
          f"(llama-cpp-python {llama_cpp.__version__}, {a.threads} threads, greedy)", flush=True)
