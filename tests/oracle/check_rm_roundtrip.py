#!/usr/bin/env python3
"""check_rm_roundtrip.py — a reward model written by cherry's rm-train loads in
transformers as *ForSequenceClassification and gives the same rewards as cherry's score.

For each tiny fixture LM (tests/oracle/fixtures/pref-{gpt2,llama}-ref):
  1. bin/rm-train trains a reward model from the causal LM (score head added) for a few
     steps on pairs of the bundled task;
  2. bin/score writes chosen_reward / rejected_reward for those pairs;
  3. transformers' AutoModelForSequenceClassification loads the output directory and
     scores the same token sequences (prompt and completion tokenized separately with
     the `tokenizers` library, EOS appended, right-padded with pad_token_id in ONE
     batch) — the rewards must agree within 1e-4.
Not part of `make check` (it needs Python); run by hand after changing the model
format or the reward head:
    python3 tests/oracle/check_rm_roundtrip.py [BIN_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin")
WORDS = ["red fox sky", "blue cat tree", "green dog sun", "gray owl moon", "pink bee rain", "gold cow hill"]


def main():
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        pairs = os.path.join(tmp, "pairs.jsonl")
        with open(pairs, "w") as f:
            for w in WORDS:
                f.write(json.dumps({"prompt": "Repeat: %s\nAnswer:" % w, "chosen": " %s. Glad to help!" % w,
                                    "rejected": " %s." % w.split()[0]}) + "\n")
        for fam in ("gpt2", "llama"):
            lm = os.path.join(ROOT, "tests", "oracle", "fixtures", "pref-%s-ref" % fam)
            rm = os.path.join(tmp, "rm-" + fam)
            subprocess.run([os.path.join(BIN, "rm-train"), "-q", "--threads", "1", "-m", lm, "-o", rm,
                            "--max-steps", "4", "--batch-size", "3", "--lr", "0.01", "--save-every", "0", pairs],
                           check=True)
            out = subprocess.run([os.path.join(BIN, "score"), "-q", "--threads", "1", "-m", rm, pairs],
                                 check=True, capture_output=True, text=True).stdout
            recs = [json.loads(l) for l in out.splitlines()]
            model = AutoModelForSequenceClassification.from_pretrained(rm).float().eval()
            assert type(model).__name__ == ("GPT2" if fam == "gpt2" else "Llama") + "ForSequenceClassification"
            tok = Tokenizer.from_file(os.path.join(rm, "tokenizer.json"))
            eos = model.config.eos_token_id
            pad = model.config.pad_token_id
            seqs, want = [], []
            for r in recs:
                p = tok.encode(r["prompt"], add_special_tokens=False).ids
                for side in ("chosen", "rejected"):
                    seqs.append(p + tok.encode(r[side], add_special_tokens=False).ids + [eos])
                    want.append(r[side + "_reward"])
            T = max(len(s) for s in seqs)
            ids = torch.tensor([s + [pad] * (T - len(s)) for s in seqs])
            att = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
            with torch.no_grad():
                got = model(input_ids=ids, attention_mask=att).logits[:, 0].tolist()
            diff = max(abs(a - b) for a, b in zip(got, want))
            worst = max(worst, diff)
            print("%s: %d rewards, transformers vs cherry score: worst difference %.2e" % (fam, len(got), diff))
    if worst > 1e-4:
        print("FAIL: rewards differ by %.3g" % worst)
        sys.exit(1)
    print("OK: cherry's reward models load in transformers with the same rewards")


if __name__ == "__main__":
    main()
