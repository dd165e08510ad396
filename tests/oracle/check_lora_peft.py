#!/usr/bin/env python3
"""check_lora_peft.py — LoRA adapter directories written by cherry load in transformers
exactly as PEFT's own do, with `AutoModelForCausalLM.from_pretrained(adapter_dir)`
(and `AutoModelForSequenceClassification` for a reward-model adapter), and compute
what cherry computes.

For a tiny Llama (LoRA on q,k,v,o,gate,up,down) and a tiny GPT-2 (c_attn, Conv1D:
fan_in_fan_out) trained briefly by `sft --lora-rank`, and a Llama reward adapter from
`rm-train --lora-rank` (task_type SEQ_CLS, modules_to_save score):
  - transformers loads the adapter directory itself (base from
    base_model_name_or_path), the model carries the PEFT adapter, and no weight is
    left at its initial value (lora_B non-zero);
  - per-token log-probs (LM) of a few prompt-completion records agree with cherry's
    `logprobs --per-token` within 1e-4; the reward adapter's last-token value agrees
    with cherry's `score`.
Needs the built programs (make), torch, transformers and peft.  Run from the source
root:  python3 tests/oracle/check_lora_peft.py   (exit 0 = all agree)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

B = os.environ.get("BIN", "bin")


def run(*args, **kw):
    subprocess.run([os.path.join(B, args[0]), *args[1:]], check=True, **kw)


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


RECS = [{"prompt": f"Say {a}:", "completion": f" {a} {b}."} for a, b in
        [("one", "two"), ("red", "blue"), ("sun", "moon"), ("cat", "dog")]]
PAIRS = [{"prompt": f"Say {a}:", "chosen": f" {a}.", "rejected": f" {b}!"} for a, b in
         [("one", "two"), ("red", "blue"), ("sun", "moon"), ("cat", "dog")]]


def cherry_logprobs(model, data, out):
    run("logprobs", "-q", "-m", model, "--per-token", "--threads", "2", "-o", out, data)
    return [json.loads(l) for l in open(out)]


def hf_logprobs(model, tok, recs):
    res = []
    for r in recs:
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        # cherry, as TRL, ends a completion with EOS
        c = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lg = model(ids).logits[0].double().log_softmax(-1)
        res.append([float(lg[len(p) + i - 1, t]) for i, t in enumerate(c)])
    return res


def check_lm(tag, T, family_args, targets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, ad = os.path.join(T, tag + "-base"), os.path.join(T, tag + "-ad")
    run("init-model", "-q", *family_args, "--tokenizer", "data/tokenizer.json", "--seed", "3", "-o", base)
    data = os.path.join(T, "recs.jsonl")
    write_jsonl(data, RECS)
    run("sft", "-q", "-m", base, "-o", ad, "--batch-size", "4", "--lr", "1e-2", "--max-steps", "8",
        "--save-every", "0", "--seed", "1", "--threads", "2", "--lora-rank", "4", "--lora-targets", targets, data)
    assert not os.path.exists(os.path.join(ad, "config.json")), "adapter directory holds config.json"
    model = AutoModelForCausalLM.from_pretrained(ad).eval()
    assert getattr(model, "peft_config", None), f"{tag}: transformers did not attach the adapter"
    sd = model.state_dict()
    nb = [k for k in sd if "lora_B" in k]
    assert nb and all(sd[k].abs().max() > 0 for k in nb), f"{tag}: lora_B missing or zero"
    tok = AutoTokenizer.from_pretrained(ad)
    want = hf_logprobs(model, tok, RECS)
    got = [r["token_logps"] for r in
           cherry_logprobs(ad, data, os.path.join(T, tag + "-lp.jsonl"))]
    worst = max(abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w))
    assert all(len(g) == len(w) for g, w in zip(got, want)), f"{tag}: token counts differ"
    print(f"{tag}: AutoModelForCausalLM.from_pretrained(adapter) loads {len(nb)} lora_B tensors; "
          f"per-token log-probs worst |diff| {worst:.2e}")
    assert worst < 1e-4, f"{tag}: log-probs differ by {worst}"


def check_rm(T):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base, ad = os.path.join(T, "llama-base"), os.path.join(T, "rm-ad")
    pairs = os.path.join(T, "pairs.jsonl")
    write_jsonl(pairs, PAIRS)
    run("rm-train", "-q", "-m", base, "-o", ad, "--batch-size", "4", "--lr", "1e-2", "--max-steps", "8",
        "--save-every", "0", "--seed", "1", "--threads", "2", "--lora-rank", "4", pairs)
    assert not os.path.exists(os.path.join(ad, "config.json")), "rm adapter directory holds config.json"
    model = AutoModelForSequenceClassification.from_pretrained(ad, num_labels=1).eval()
    assert getattr(model, "peft_config", None), "rm: transformers did not attach the adapter"
    tok = AutoTokenizer.from_pretrained(ad)
    texts = [p["prompt"] + p["chosen"] for p in PAIRS]
    scored = os.path.join(T, "scored.jsonl")
    write_jsonl(os.path.join(T, "rollouts.jsonl"), [{"prompt": p["prompt"], "completion": p["chosen"]} for p in PAIRS])
    run("score", "-q", "-m", ad, "--threads", "2", "-o", scored, os.path.join(T, "rollouts.jsonl"))
    got = [json.loads(l)["reward"] for l in open(scored)]
    want = []
    for p in PAIRS:
        ids = (tok(p["prompt"], add_special_tokens=False)["input_ids"]
               + tok(p["chosen"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        with torch.no_grad():
            want.append(float(model(torch.tensor([ids])).logits[0, 0]))
    worst = max(abs(a - b) for a, b in zip(got, want))
    print(f"rm: AutoModelForSequenceClassification.from_pretrained(adapter) loads; rewards worst |diff| {worst:.2e} "
          f"({len(texts)} texts)")
    assert worst < 1e-4, f"rm: rewards differ by {worst}"


def main():
    with tempfile.TemporaryDirectory() as T:
        check_lm("llama", T, ["--family", "llama", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--width", "32",
                              "--context", "64"], "q,k,v,o,gate,up,down")
        check_lm("gpt2", T, ["--family", "gpt2", "--layers", "2", "--heads", "4", "--width", "32", "--context", "64"],
                 "c_attn")
        check_rm(T)
    print("all LoRA adapters load in transformers and agree with cherry")


if __name__ == "__main__":
    sys.exit(main())
