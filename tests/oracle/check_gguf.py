#!/usr/bin/env python3
"""check_gguf.py — check an import-gguf result against llama.cpp's and Hugging Face's
own Python code, and write the fixture tests/test_oracle_gguf_smollm2.c compares
cherry against.  Run by hand (needs gguf, numpy, regex, tokenizers, torch,
transformers); results are recorded in tests/oracle/README-gguf.md.

    make models/smollm2-135m-instruct
    python3 tests/oracle/check_gguf.py [--gguf models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf]
                                       [--model models/smollm2-135m-instruct]
                                       [--fixture tests/oracle/fixtures/gguf-smollm2.json]

1. Tensors: every tensor gguf-py (llama.cpp's reader) dequantises from the GGUF must
   equal, bit for bit, cherry's model.safetensors tensor of the mapped HF name after
   applying convert_hf_to_gguf.py's own `permute` to q_proj/k_proj (so this side never
   implements the inverse it is checking).
2. Tokenizer: the `tokenizers` library loads the rebuilt tokenizer.json and encodes a
   varied corpus; the ids must equal an independent byte-level BPE written here from
   the GGUF's token list and merges with llama.cpp's "smollm" pre-tokenizer regexes
   (llama-vocab.cpp: "\\p{N}" then the GPT-2 regex) and its special-token splitting.
3. Model: transformers loads the directory; its per-token log-probs of a fixed chat
   text (float32) and the corpus ids are written to the fixture, which the C test
   compares with cherry's model and tokenizer (tolerance 1e-3).  A short greedy
   generation is printed as a sanity check.
"""
import argparse
import json
import os
import sys

import numpy as np
import regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CORPUS = [
    "Hello, world! How are you today?",
    "The year 2024 had 366 days; 3.14159 is pi and 1,000,000 is a million.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "  Leading spaces,   runs of spaces,\ttabs\tand\n\n\nnewlines  ",
    "I'm sure you've heard they'll say it's what we'd do. DON'T SHOUT'S",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve r\u00e9sum\u00e9, stra\u00dfe, \u0441\u043f\u0430\u0441\u0438\u0431\u043e, \u3053\u3093\u306b\u3061\u306f, \u4f60\u597d\u4e16\u754c",
    "Emoji: \U0001F600\U0001F680\u2764\ufe0f and symbols \u00a9 \u2122 \u2192 \u221e",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "https://example.com/path?query=1&x=y#frag user@example.org",
    "JSON: {\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "Mixed\r\nline\rendings\u00a0and\u2003unicode\u2028spaces",
    "<|endoftext|>text after the end token<repo_name>cherry<file_sep>",
    "",
    " ",
    "a",
]

CHAT = [
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
    {"role": "assistant", "content": "The capital of France is Paris."},
]


def permute(w, n_head, n_head_kv):
    # convert_hf_to_gguf.py LlamaModel.permute
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_name(gname):
    table = {
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    }
    if gname in table:
        return table[gname]
    _, layer, rest = gname.split(".", 2)
    sub = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    }[rest]
    return f"model.layers.{layer}.{sub}"


def check_tensors(reader, model_dir):
    from gguf.quants import dequantize
    from safetensors import safe_open

    f = reader.fields
    n_head = int(f["llama.attention.head_count"].contents())
    n_kv = int(f["llama.attention.head_count_kv"].contents())
    bad = 0
    with safe_open(os.path.join(model_dir, "model.safetensors"), "np") as st:
        names = set(st.keys())
        for t in reader.tensors:
            ref = dequantize(t.data, t.tensor_type).astype(np.float32)
            ours = st.get_tensor(hf_name(t.name))
            names.discard(hf_name(t.name))
            if t.name.endswith("attn_q.weight"):
                ours = permute(ours, n_head, n_head)
            elif t.name.endswith("attn_k.weight"):
                ours = permute(ours, n_head, n_kv)
            ref = ref.reshape(ours.shape)
            if not np.array_equal(ref.view(np.uint32), ours.view(np.uint32)):
                bad += 1
                print(f"  MISMATCH {t.name} ({t.tensor_type.name}): max |diff| {np.abs(ref - ours).max()}")
        extra = len(names)
    print(f"tensors: {len(reader.tensors)} dequantised by gguf-py, {bad} differ, {extra} extra in model.safetensors")
    return bad == 0 and extra == 0


# ---- an independent llama.cpp-style byte-level BPE ----
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + list(
        range(ord("\u00ae"), ord("\u00ff") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


GPT2_RE = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DIGIT_RE = regex.compile(r"\p{N}")


class RefBPE:
    def __init__(self, reader):
        f = reader.fields
        self.tokens = f["tokenizer.ggml.tokens"].contents()
        types = f["tokenizer.ggml.token_type"].contents()
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(f["tokenizer.ggml.merges"].contents())}
        self.specials = sorted((t for t, ty in zip(self.tokens, types) if ty in (3, 4)), key=len, reverse=True)
        self.b2u = bytes_to_unicode()

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: self.ranks.get((parts[i], parts[i + 1]), 1 << 30))
            if (parts[best], parts[best + 1]) not in self.ranks:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        return [self.ids[p] for p in parts]

    def pretokenize(self, text):
        # llama.cpp applies "\p{N}" first (digits isolated, the rest kept), then GPT-2
        pieces, at = [], 0
        for m in DIGIT_RE.finditer(text):
            if m.start() > at:
                pieces.append(text[at : m.start()])
            pieces.append(m.group())
            at = m.end()
        if at < len(text):
            pieces.append(text[at:])
        out = []
        for p in pieces:
            out += [m.group() for m in GPT2_RE.finditer(p)]
        return out

    def encode(self, text):
        ids = []
        # special (control/user-defined) tokens first, longest first, as llama.cpp's
        # tokenizer_st_partition does with parse_special
        segs = [text]
        for sp in self.specials:
            nxt = []
            for s in segs:
                if isinstance(s, int):
                    nxt.append(s)
                    continue
                chunks = s.split(sp)
                for k, c in enumerate(chunks):
                    if k:
                        nxt.append(self.ids[sp])
                    if c:
                        nxt.append(c)
            segs = nxt
        for s in segs:
            if isinstance(s, int):
                ids.append(s)
                continue
            for w in self.pretokenize(s):
                ids += self.bpe("".join(self.b2u[b] for b in w.encode("utf-8")))
        return ids


def check_tokenizer(reader, model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ref = RefBPE(reader)
    ok = 0
    out = []
    for text in CORPUS:
        a = tok.encode(text).ids
        b = ref.encode(text)
        if a == b:
            ok += 1
        else:
            print(f"  MISMATCH {text!r}:\n    tokenizers {a}\n    reference  {b}")
        if tok.decode(a, skip_special_tokens=False) != text:
            print(f"  round trip differs for {text!r}")
        out.append({"text": text, "ids": a})
    print(f"tokenizer: tokenizers loads tokenizer.json; {ok}/{len(CORPUS)} corpus texts match the llama.cpp-style reference")
    return ok == len(CORPUS), out


def run_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template(CHAT, tokenize=False)
    ids = tok(text, add_special_tokens=False).input_ids
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
        lps = torch.log_softmax(logits, -1)[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        prompt = tok.apply_chat_template(CHAT[:1], tokenize=False, add_generation_prompt=True)
        pids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        gen = model.generate(pids, max_new_tokens=24, do_sample=False)
    reply = tok.decode(gen[0][pids.shape[1] :])
    print(f"model: transformers loads it; {len(ids)} chat tokens, mean log-prob {lps.mean():.4f}; greedy reply {reply!r}")
    return text, ids, [round(float(x), 6) for x in lps]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/smollm2-135m-instruct"))
    ap.add_argument("--fixture", default=os.path.join(HERE, "fixtures/gguf-smollm2.json"))
    args = ap.parse_args()
    from gguf import GGUFReader

    reader = GGUFReader(args.gguf)
    ok_t = check_tensors(reader, args.model)
    ok_k, corpus = check_tokenizer(reader, args.model)
    text, ids, lps = run_model(args.model)
    with open(args.fixture, "w") as f:
        json.dump({"chat_text": text, "ids": ids, "logprobs": lps, "corpus": corpus}, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.fixture}")
    sys.exit(0 if ok_t and ok_k else 1)


if __name__ == "__main__":
    main()
