#!/usr/bin/env python3
"""check_export_llamacpp.py — a model exported by cherry's export-gguf runs in llama.cpp
(through llama-cpp-python) and generates the same greedy tokens as cherry's rollout.

For each model (a tiny Llama and a tiny GPT-2 built and briefly trained here with
cherry's own programs, tiny Qwen2 and Qwen3 models and a tiny Llama with Llama 3.x
RoPE scaling (F32 only), and models/smollm2-135m-instruct when it exists) and each
export type (f32, f16, q8_0, and q4_0 for the real model):
  1. bin/export-gguf writes the GGUF;
  2. llama.cpp loads it; its metadata has the chat template of tokenizer_config.json;
  3. llama.cpp's tokenizer (llm.tokenize, no BOS, special tokens parsed) gives the ids
     cherry's tokenizer (bin/tokenize) gives for every prompt;
  4. from cherry's prompt ids, llama.cpp's greedy continuation (argmax of its logits,
     N tokens or EOS) is compared with `rollout --temperature 0 --per-token`
     completion_ids: F32 exports must match token for token; quantised ones report
     how many leading tokens agree (a different rounding of the weights may flip a
     near-tie; cherry runs the float32 weights).
With --write FILE the results are also written as JSON (tests/oracle/fixtures/
gguf-export-llamacpp.json is the committed record, read by tests/t_export_gguf.sh).
Exit 0 when every F32 export matches; 77 when llama_cpp cannot be imported.

    python3 tests/oracle/check_export_llamacpp.py [--quick] [--write FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

B = os.environ.get("BIN", "bin")

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):\n",
    "Repeat: snow wind\nAnswer:",
    "1, 2, 3, 4, 5,",
]
CHAT_Q = "What is the capital of France? Answer in one sentence."
CHAT = "<|im_start|>user\n" + CHAT_Q + "<|im_end|>\n<|im_start|>assistant\n"


def run(*args, **kw):
    return subprocess.run([os.path.join(B, args[0]), *args[1:]], check=True, capture_output=True, text=True, **kw)


def cherry_ids(model, rec, template):
    out = run("tokenize", "-m", model, "--kind", "prompt-only", "--template", template, input=json.dumps(rec) + "\n")
    return json.loads(out.stdout.strip())


def cherry_greedy(model, rec, template, n_new, T):
    path = os.path.join(T, "prompt.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(rec) + "\n")
    out = run("rollout", "-q", "-m", model, "--temperature", "0", "--max-new-tokens", str(n_new), "--per-token",
              "--threads", "2", "--template", template, path).stdout
    return json.loads(out.splitlines()[0])["completion_ids"]


def llama_greedy(llm, ids, n_new, eos):
    import numpy as np

    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n_new):
        logits = np.asarray(llm.scores[llm.n_tokens - 1])
        t = int(np.argmax(logits))
        out.append(t)
        if t == eos:
            break
        llm.eval([t])
    return out


def check_model(name, model, types, n_new, T, results):
    import llama_cpp

    cfg = json.load(open(os.path.join(model, "config.json")))
    tc_path = os.path.join(model, "tokenizer_config.json")
    tmpl = json.load(open(tc_path)).get("chat_template") if os.path.exists(tc_path) else None
    # (record, template, the text llama.cpp tokenizes, whether it holds special tokens)
    cases = [({"prompt": p}, "plain", p, False) for p in PROMPTS]
    if tmpl:
        cases.append(({"messages": [{"role": "user", "content": CHAT_Q}]}, "chatml", CHAT, True))
    want = [cherry_greedy(model, rec, t, n_new, T) for rec, t, _, _ in cases]
    pids = [cherry_ids(model, rec, t) for rec, t, _, _ in cases]
    eos = cfg.get("eos_token_id")
    for ty in types:
        path = os.path.join(T, f"{name}-{ty}.gguf")
        run("export-gguf", "-q", "-t", ty, model, path)
        llm = llama_cpp.Llama(model_path=path, n_ctx=256, logits_all=True, verbose=False, n_threads=2, seed=0)
        md = llm.metadata
        if tmpl is not None:
            assert md.get("tokenizer.chat_template") == tmpl, f"{name} {ty}: chat template lost"
        tok_ok = 0
        rows = []
        for (_, _, text, special), w, ids in zip(cases, want, pids):
            lids = llm.tokenize(text.encode(), add_bos=False, special=special)
            tok_ok += ids == lids
            got = llama_greedy(llm, ids, len(w) if w and w[-1] == eos else n_new, eos)
            agree = next((i for i, (a, b) in enumerate(zip(got, w)) if a != b), min(len(got), len(w)))
            rows.append({"prompt": text, "cherry": w, "llama_cpp": got, "agree": agree, "same": got == w})
        same = sum(r["same"] for r in rows)
        print(f"{name} {ty}: tokenizer {tok_ok}/{len(cases)} prompts identical; greedy {same}/{len(cases)} "
              f"identical, leading tokens agreeing {[r['agree'] for r in rows]} of {[len(r['cherry']) for r in rows]}")
        results.append({"model": name, "type": ty, "tokenizer_identical": tok_ok, "prompts": len(cases),
                        "greedy_identical": same, "rows": rows})
        del llm


# Llama 3.x RoPE scaling on a tiny model: with head_dim 16 and an original context of
# 32, the rotations slower than 32 positions are divided by 8 (llama.cpp needs the
# rope_freqs.weight tensor export-gguf writes for it, or every position differs)
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 32}


def tiny(T, family, name=None, rope_scaling=None):
    name = name or family
    base, out = os.path.join(T, f"{name}-init"), os.path.join(T, f"tiny-{name}")
    args = ["--family", family, "--layers", "2", "--heads", "4", "--width", "64", "--context", "128"]
    if family in ("llama", "qwen2", "qwen3"):
        args += ["--kv-heads", "2", "--mlp-width", "192"]
    if rope_scaling:
        cfg = os.path.join(T, f"{name}-config.json")
        run("init-model", "-q", *args, "--tokenizer", "data/tokenizer.json", "--seed", "3", "-o", base + "-0")
        c = json.load(open(os.path.join(base + "-0", "config.json")))
        c["rope_scaling"] = rope_scaling
        json.dump(c, open(cfg, "w"))
        args += ["--config", cfg]
    run("init-model", "-q", *args, "--tokenizer", "data/tokenizer.json", "--seed", "3", "-o", base)
    corpus = os.path.join(T, "corpus.jsonl")
    run("task-gen", "--kind", "corpus", "-n", "200", "--seed", "5", "-o", corpus)
    run("sft", "-q", "-m", base, "-o", out, "--packing", "--max-length", "64", "--batch-size", "8", "--lr", "1e-2",
        "--max-steps", "60", "--save-every", "0", "--seed", "1", "--threads", "2", corpus)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write")
    ap.add_argument("--n-new", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="tiny models only, f32 and q8_0 (tests/t_export_llamacpp.sh)")
    a = ap.parse_args()
    try:
        import llama_cpp
    except ImportError as ex:
        print(f"skip: llama_cpp is not importable ({ex}); pip install llama-cpp-python")
        return 77
    results = []
    with tempfile.TemporaryDirectory() as T:
        types = ["f32", "q8_0"] if a.quick else ["f32", "f16", "q8_0"]
        check_model("tiny-llama", tiny(T, "llama"), types, a.n_new, T, results)
        check_model("tiny-gpt2", tiny(T, "gpt2"), types, a.n_new, T, results)
        check_model("tiny-qwen2", tiny(T, "qwen2"), types[:1], a.n_new, T, results)
        check_model("tiny-qwen3", tiny(T, "qwen3"), types[:1], a.n_new, T, results)
        check_model("tiny-llama3-rope", tiny(T, "llama", "llama3-rope", LLAMA3_SCALING), types[:1], a.n_new, T,
                    results)
        smol = "models/smollm2-135m-instruct"
        if not a.quick and os.path.exists(os.path.join(smol, "config.json")):
            check_model("smollm2-135m-instruct", smol, ["f32", "f16", "q8_0", "q4_0", "q4_k"], a.n_new, T, results)
    meta = {"llama_cpp_python": llama_cpp.__version__, "n_new": a.n_new, "results": results}
    if a.write:
        with open(a.write, "w") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
            f.write("\n")
    bad = [r for r in results if r["type"] == "f32" and r["greedy_identical"] != r["prompts"]]
    for r in bad:
        print(f"FAIL: {r['model']} f32: greedy differs on {r['prompts'] - r['greedy_identical']} prompts")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
