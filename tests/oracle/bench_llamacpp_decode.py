#!/usr/bin/env python3
"""llama.cpp peer of cherry's decode bench for `make bench` (tests/bench/peers.sh decode
and decode16 run both alternately and print the ratios).

Converts an HF directory to GGUF with gguf-py, once per weight type, into --out-dir:
a Llama one (default models/smollm2-135m-instruct; Q and K permuted as
convert_hf_to_gguf.py's LlamaModel.permute does) or a GPT-2 one (bin/init-model's
build/bench/gpt2-124m: Conv1D weights transposed, fused QKV kept, as
convert_hf_to_gguf.py's GPT2Model; it has no tokenizer, so the GGUF gets a
placeholder vocabulary of distinct strings, which decoding token ids never reads).
F32: every tensor F32; F16 and BF16: matrices 16-bit and 1-D tensors F32, as
convert_hf_to_gguf.py --outtype f16/bf16 writes them; Q8_0 (--dtypes q8_0, against
cherry's --gen-dtype int8): matrices Q8_0, as --outtype q8_0 writes them.

Then times greedy decoding through llama-cpp-python on --threads threads, the rule
of cherry's bench_decode: 8-token prompts (the token ids bench_decode uses), then
--new tokens; the clock starts when the first token of every sequence has been
produced (prefill excluded) and counts the tokens after it.
  --batch 1   one sequence, through Llama.generate (greedy: top_k=1, temp 0);
  --batch B   B sequences at once through the low-level API: one llama_batch holding
              one token of each sequence (seq_id b) per step, a unified KV cache
              with n_seq_max=B, greedy argmax of each sequence's logits.
Best of --reps runs.  Prints per weight type:
  RESULT llama.cpp <model>/<f32|f16|bf16|q8_0> B=<b> new=<N> tokens_per_s=<x>
(the total over the B sequences).
Needs llama-cpp-python, gguf, numpy, safetensors (pip install llama-cpp-python gguf)."""
import argparse, json, os, sys, time

import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType, TokenType, quants
from safetensors.numpy import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/smollm2-135m-instruct")
ap.add_argument("--out-dir", default="build/bench")
ap.add_argument("--dtypes", default="f32,f16")
ap.add_argument("--new", type=int, default=48)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=2)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--label", default=None, help="model name in RESULT lines (default: the directory's name)")
a = ap.parse_args()


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute (HF rotate-half rows -> GGML pairs)
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def add_matrix(gw, g, x, dtype):
    if dtype == "f16" and x.ndim == 2:
        gw.add_tensor(g, x.astype(np.float16), raw_dtype=GGMLQuantizationType.F16)
    elif dtype == "bf16" and x.ndim == 2:
        gw.add_tensor(g, quants.quantize(x, GGMLQuantizationType.BF16), raw_dtype=GGMLQuantizationType.BF16)
    elif dtype == "q8_0" and x.ndim == 2 and x.shape[-1] % 32 == 0:
        # gguf-py's Q8_0 is ggml's quantize_row_q8_0_ref: the quantization of cherry's
        # --gen-dtype int8 (whose scales stay fp32 where Q8_0 stores fp16)
        gw.add_tensor(g, quants.quantize(x.astype(np.float32), GGMLQuantizationType.Q8_0),
                      raw_dtype=GGMLQuantizationType.Q8_0)
    else:
        gw.add_tensor(g, x)


def file_type(dtype):
    # llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_BF16, MOSTLY_Q8_0
    return {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}[dtype]


def convert_gpt2(path, dtype, cfg):
    D, L, H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
    n_vocab = cfg["vocab_size"]
    w = load_file(os.path.join(a.model, "model.safetensors"))
    tmp = path + ".tmp"
    gw = GGUFWriter(tmp, "gpt2")
    gw.add_name(os.path.basename(os.path.normpath(a.model)))
    gw.add_context_length(cfg["n_positions"])
    gw.add_embedding_length(D)
    gw.add_block_count(L)
    gw.add_feed_forward_length(cfg.get("n_inner") or 4 * D)
    gw.add_head_count(H)
    gw.add_layer_norm_eps(cfg.get("layer_norm_epsilon", 1e-5))
    gw.add_file_type(file_type(dtype))
    gw.add_tokenizer_model("gpt2")
    gw.add_tokenizer_pre("gpt-2")
    gw.add_token_list([f"<{i}>" for i in range(n_vocab)])
    gw.add_token_types([TokenType.NORMAL] * n_vocab)
    gw.add_token_merges(["<0> <1>"])  # llama.cpp refuses a BPE vocabulary without merges
    gw.add_bos_token_id(cfg["bos_token_id"])
    gw.add_eos_token_id(cfg["eos_token_id"])
    gw.add_add_bos_token(False)
    pre = "transformer." if "transformer.wte.weight" in w else ""
    plan = [("token_embd.weight", "wte.weight", False), ("position_embd.weight", "wpe.weight", False)]
    names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
             "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    for l in range(L):
        for h, g in names.items():
            for kind in ("weight", "bias"):
                plan.append((f"blk.{l}.{g}.{kind}", f"h.{l}.{h}.{kind}", kind == "weight" and h.find(".c_") > 0))
    plan += [("output_norm.weight", "ln_f.weight", False), ("output_norm.bias", "ln_f.bias", False)]
    for g, h, conv1d in plan:
        x = w[pre + h].astype(np.float32)
        if conv1d:  # HF Conv1D stores [in, out]; GGUF wants [out, in] rows
            x = np.ascontiguousarray(x.T)
        add_matrix(gw, g, x, dtype)
    gw.write_header_to_file()
    gw.write_kv_data_to_file()
    gw.write_tensors_to_file()
    gw.close()
    os.replace(tmp, path)


def convert(path, dtype):
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    if cfg.get("model_type") == "gpt2":
        return convert_gpt2(path, dtype, cfg)
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
    gw.add_file_type(file_type(dtype))
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
        add_matrix(gw, g, x, dtype)
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
    prompt = prompt_of(0, n_vocab)
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


def prompt_of(b, n_vocab):  # bench_decode.c's decode_rate_t
    return [(b * 131 + t * 17 + 5) % n_vocab for t in range(8)]


def decode_rate_batched(path):
    """B sequences advanced together: each step is one llama_decode of a batch with
    one token per sequence (what llama.cpp's examples/batched and llama-server do)."""
    import ctypes
    import llama_cpp as lc

    lc.llama_backend_init()
    quiet = lc.llama_log_callback(lambda level, text, user: None)  # the low-level API logs every tensor
    lc.llama_log_set(quiet, None)
    mp = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(path.encode(), mp)
    B, L = a.batch, 8
    cp = lc.llama_context_default_params()
    cp.n_ctx = B * (L + a.new + 8)
    cp.n_batch = cp.n_ubatch = max(B * L, 64)
    cp.n_seq_max = B
    cp.kv_unified = True
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.no_perf = True
    ctx = lc.llama_init_from_model(model, cp)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
    batch = lc.llama_batch_init(B * L, 0, 1)

    def put(i, tok, pos, seq, want):
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = want

    def argmax(i):
        p = lc.llama_get_logits_ith(ctx, i)
        return int(np.argmax(np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)), (n_vocab,))))

    best = 0.0
    for _ in range(a.reps):
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        n = 0  # prefill: every prompt in one batch, logits of each last token
        for b in range(B):
            for t, tok in enumerate(prompt_of(b, n_vocab)):
                put(n, tok, t, b, t == L - 1)
                n += 1
        batch.n_tokens = n
        if lc.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed (prefill)")
        nxt = [argmax(b * L + L - 1) for b in range(B)]
        t0 = time.perf_counter()  # every sequence has its first token
        for step in range(a.new):
            for b in range(B):
                put(b, nxt[b], L + step, b, True)
            batch.n_tokens = B
            if lc.llama_decode(ctx, batch) != 0:
                raise SystemExit("llama_decode failed")
            nxt = [argmax(b) for b in range(B)]
        best = max(best, B * a.new / (time.perf_counter() - t0))
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    lc.llama_model_free(model)
    return best


os.makedirs(a.out_dir, exist_ok=True)
name = os.path.basename(os.path.normpath(a.model))
label = a.label or name
for dtype in a.dtypes.split(","):
    path = os.path.join(a.out_dir, f"{name}-{dtype}.gguf")
    if not os.path.exists(path):
        print(f"converting {a.model} to {path}", file=sys.stderr)
        convert(path, dtype)
    r = decode_rate(path) if a.batch == 1 else decode_rate_batched(path)
    import llama_cpp

    print(f"RESULT llama.cpp {label}/{dtype} B={a.batch} new={a.new} tokens_per_s={r:.1f} "
          f"(llama-cpp-python {llama_cpp.__version__}, {a.threads} threads, greedy)", flush=True)
