#!/usr/bin/env python3
"""make_generate_fixtures.py — greedy-decoding fixtures for tests/test_oracle_generate.c.

Builds two tiny random models with transformers (a GPT-2 and a Llama with grouped-query
attention and untied embeddings), saves them as Hugging Face directories
(tests/oracle/fixtures/gen-gpt2, gen-llama) and runs transformers' own
model.generate(do_sample=False) on a few prompts of different lengths.  For every step
it records the chosen token (generation stops at the model's EOS, which is kept as
the last token, finish_reason "stop"; else "length"), its log-probability (log_softmax of the raw scores) and
the gap between the best and second-best logit, so the C test can tell a real
mismatch from a near-tie that float rounding may legitimately flip.

Run once (needs torch + transformers); the outputs are committed and `make check`
never runs Python:
    python3 tests/oracle/make_generate_fixtures.py
"""
import json
import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PROMPTS = [[5, 17, 42, 3, 99], [7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [64, 64, 64]]
NEW_TOKENS = 16


def build(kind):
    torch.manual_seed(1234 if kind == "gpt2" else 4321)
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=101, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                         initializer_range=0.3, bos_token_id=100, eos_token_id=100)
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(vocab_size=103, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                          initializer_range=0.3, bos_token_id=1, eos_token_id=2)
        model = LlamaForCausalLM(cfg)
    # Random non-trivial norms and biases, so a missing bias or norm weight shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.float().eval()


def main():
    out = {"generator": "transformers %s, torch %s" % (__import__("transformers").__version__, torch.__version__),
           "new_tokens": NEW_TOKENS, "models": []}
    for kind in ("gpt2", "llama"):
        model = build(kind)
        d = os.path.join(HERE, "gen-" + kind)
        model.save_pretrained(d, safe_serialization=True)
        cases = []
        for prompt in PROMPTS:
            ids = torch.tensor([prompt])
            with torch.no_grad():
                g = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=NEW_TOKENS,
                                   output_scores=True, return_dict_in_generate=True, pad_token_id=0)
            toks = g.sequences[0, len(prompt):].tolist()
            eos = model.config.eos_token_id
            finish = "stop" if toks and toks[-1] == eos else "length"
            logps, gaps = [], []
            for step, sc in enumerate(g.scores):
                s = sc[0].double()
                # log-probs from a full recompute of the raw logits (scores are processed).
                full = model(torch.tensor([prompt + toks[:step]])).logits[0, -1].detach().double()
                lp = torch.log_softmax(full, -1)
                logps.append(float(lp[toks[step]]))
                top2 = torch.topk(full, 2).values
                gaps.append(float(top2[0] - top2[1]))
                assert int(torch.argmax(s)) == toks[step] == int(torch.argmax(full)), (kind, prompt, step)
            cases.append({"prompt": prompt, "eos": eos, "finish_reason": finish, "tokens": toks, "logprobs": logps, "gaps": gaps})
        out["models"].append({"dir": "gen-" + kind, "family": kind, "cases": cases})
    with open(os.path.join(HERE, "gen-greedy.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
