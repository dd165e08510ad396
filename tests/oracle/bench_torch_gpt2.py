#!/usr/bin/env python3
"""PyTorch peer of tests/bench_train_step.c for `make bench` (tests/bench/peers.sh runs
both alternately and prints the ratios).

Does exactly the work of cherry's step on the same weights:
  - the model directory cherry's bench times (bin/init-model, GPT-2-124M shape), loaded
    with transformers' GPT2LMHeadModel and every dropout set to 0 (GPT2Config's
    defaults are 0.1, which adds work and randomness cherry does not do); train mode;
  - forward, fp32 logits of every position, mean cross-entropy against random targets
    (cherry: fused LM-head log-probs with dlogp = -1/N, the same loss);
  - backward; AdamW with cherry's bench hyperparameters: lr 1e-4, betas (0.9, 0.999),
    eps 1e-8, weight decay 0.1 on tensors with ndim >= 2 and 0 on biases and norm
    weights (the HF Trainer rule cherry's adamw_init_model follows);
  - zero_grad (set_to_none, torch's default and its fastest).
--dtype bf16 runs forward and loss under torch.autocast("cpu", torch.bfloat16) with
fp32 weights and optimizer state (the reference for cherry's --dtype bf16).
Timing: best of --steps after one warm-up step, wall clock, per shape.  Prints one
line per shape:
  RESULT torch <dtype> B=<B> T=<T> tokens_per_s=<x> step_s=<s>
Needs torch and transformers (pip install torch transformers)."""
import argparse, os, sys, time

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="HF GPT-2 directory (bin/init-model output)")
ap.add_argument("--shapes", default="4x64,2x256")
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = GPT2LMHeadModel.from_pretrained(a.model, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    summary_first_dropout=0.0, torch_dtype=torch.float32)
m.train()
assert all(not isinstance(x, torch.nn.Dropout) or x.p == 0 for x in m.modules()), "dropout left on"
decay = [p for p in m.parameters() if p.ndim >= 2]
no_decay = [p for p in m.parameters() if p.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
V = m.config.vocab_size


def step(x, y):
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
        logits = m(input_ids=x).logits
    loss = F.cross_entropy(logits.float().view(-1, V), y.view(-1))
    loss.backward()
    opt.step()


for shape in a.shapes.split(","):
    B, T = (int(v) for v in shape.split("x"))
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    step(x, y)  # warm-up
    best = float("inf")
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step(x, y)
        best = min(best, time.perf_counter() - t0)
    print(f"RESULT torch {a.dtype} B={B} T={T} tokens_per_s={B * T / best:.1f} step_s={best:.4f} "
          f"(torch {torch.__version__}, {a.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})",
          flush=True)
