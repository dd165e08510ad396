#!/usr/bin/env python3
"""make_lora_fixtures.py — LoRA adapters checked against PEFT (tests/test_oracle_lora.c).

Run by hand from the repository root after `make` (needs torch, transformers, peft;
`make check` only reads what this writes):

    pip install peft && python3 tests/oracle/make_lora_fixtures.py

1. Adapters written by cherry (bin/dpo, bin/rm-train with --lora-rank, a few updates at a
   large learning rate so that B is far from zero) on the tiny fixture models
   pref-gpt2-policy (GPT-2 Conv1D c_attn, fan_in_fan_out), pref-llama-policy (all seven
   Llama linears, GQA) and pref-gpt2-rm (SEQ_CLS: c_attn + c_fc + the score head as a
   module to save).  Their base_model_name_or_path is rewritten to the relative path
   "../<base>" so the fixtures do not depend on where the repository lives.
2. An adapter written by PEFT itself (get_peft_model + save_pretrained) on
   pref-llama-policy with k_proj, o_proj, down_proj, rsLoRA and random B, so cherry's
   reader is checked on PEFT's own files.

For each, PEFT loads the adapter onto the transformers base model (PeftModel.from_pretrained)
and records, in float64, for a fixed batch of tokens (B=2, T=8, no padding): the
per-token next-token log-probs (causal LMs) or the per-token values of the score head
(classifiers), with the adapter on and off (disable_adapter).  Output:
fixtures/lora-<name>/ (the adapter) and fixtures/lora-<name>.safetensors
(tokens as F32, logp_on/logp_off or values_on/values_off as F64).
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "oracle", "fixtures")
BIN = os.environ.get("BIN", os.path.join(ROOT, "bin"))
B, T = 2, 8

PAIRS = [("red fox sky"), ("blue cat tree"), ("green dog sun"), ("gray owl moon"), ("pink bee rain"), ("gold cow hill")]


def write_pairs(path):
    with open(path, "w") as f:
        for w in PAIRS:
            a = w.split()
            f.write(json.dumps({"prompt": f"Repeat: {w}\nAnswer:", "chosen": f" {w}. Glad to help!",
                                "rejected": f" {a[0]} {a[2]}."}) + "\n")


def run(args):
    print("+", " ".join(args))
    subprocess.run(args, check=True)


def relocate(adapter_dir, base_name):
    """Point base_model_name_or_path at ../<base> (cherry resolves it against the adapter dir)."""
    p = os.path.join(adapter_dir, "adapter_config.json")
    c = json.load(open(p))
    c["base_model_name_or_path"] = "../" + base_name
    json.dump(c, open(p, "w"), indent=2, sort_keys=True)
    # only the adapter and config matter to the tests; PEFT's model card is boilerplate
    for extra in ("README.md", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if os.path.exists(os.path.join(adapter_dir, extra)):
            os.remove(os.path.join(adapter_dir, extra))


def tokens_for(vocab):
    g = torch.Generator().manual_seed(1234)
    return torch.randint(1, vocab, (B, T), generator=g)


@torch.no_grad()
def record(name, base_name, classifier):
    base_dir = os.path.join(FIX, base_name)
    ad = os.path.join(FIX, "lora-" + name)
    cls = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    base = cls.from_pretrained(base_dir, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, ad).double().eval()
    tok = tokens_for(base.config.vocab_size)
    out = {"tokens": tok.to(torch.float32)}

    def measure():
        o = model(input_ids=tok, output_hidden_states=True)
        if classifier:
            # per-token values: the (adapter's) score head on the final hidden states
            h = o.hidden_states[-1]
            return model.base_model.model.score(h)[..., 0].reshape(-1)
        lp = torch.log_softmax(o.logits, dim=-1)
        tgt = torch.cat([tok[:, 1:], torch.zeros(B, 1, dtype=tok.dtype)], dim=1)
        g = lp.gather(-1, tgt.unsqueeze(-1))[..., 0]
        g[:, -1] = 0  # no next token at the last position
        return g.reshape(-1)

    key = "values" if classifier else "logp"
    out[key + "_on"] = measure().to(torch.float64).contiguous()
    with model.disable_adapter():
        out[key + "_off"] = measure().to(torch.float64).contiguous()
    diff = (out[key + "_on"] - out[key + "_off"]).abs().max().item()
    print(f"{name}: max |on - off| = {diff:.4g}")
    assert diff > 1e-3, "the adapter should change the outputs"
    save_file(out, os.path.join(FIX, f"lora-{name}.safetensors"),
              metadata={"peft": __import__("peft").__version__, "torch": torch.__version__})


def cherry_adapters(tmp):
    pairs = os.path.join(tmp, "pairs.jsonl")
    write_pairs(pairs)
    common = ["--threads", "1", "--seed", "3", "--max-steps", "6", "--batch-size", "3", "--save-every", "0", "-q"]
    jobs = [
        ("gpt2", "pref-gpt2-policy", "dpo", ["--lora-rank", "4", "--lr", "0.2"]),
        ("llama", "pref-llama-policy", "dpo",
         ["--lora-rank", "3", "--lora-alpha", "5", "--lora-targets", "q,k,v,o,gate,up,down", "--lr", "0.2"]),
        ("gpt2-rm", "pref-gpt2-rm", "rm-train", ["--lora-rank", "2", "--lora-targets", "c_attn,c_fc", "--lr", "0.2"]),
    ]
    for name, base, prog, extra in jobs:
        ad = os.path.join(FIX, "lora-" + name)
        shutil.rmtree(ad, ignore_errors=True)
        run([os.path.join(BIN, prog), "-m", os.path.join(FIX, base), "-o", ad] + common + extra + [pairs])
        relocate(ad, base)
        record(name, base, prog == "rm-train")


def peft_adapter():
    base_name = "pref-llama-policy"
    torch.manual_seed(7)
    base = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, base_name), torch_dtype=torch.float32)
    cfg = LoraConfig(r=2, lora_alpha=6, target_modules=["k_proj", "o_proj", "down_proj"], use_rslora=True,
                     lora_dropout=0.0, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ad = os.path.join(FIX, "lora-peft-llama")
    shutil.rmtree(ad, ignore_errors=True)
    model.save_pretrained(ad)
    relocate(ad, base_name)
    record("peft-llama", base_name, False)


def main():
    tmp = os.path.join(ROOT, "build", "lora-fixtures-tmp")
    os.makedirs(tmp, exist_ok=True)
    cherry_adapters(tmp)
    peft_adapter()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
