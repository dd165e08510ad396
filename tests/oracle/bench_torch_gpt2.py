#!/usr/bin/env python3
"""PyTorch reference for `make bench` (run by hand): a GPT-2-124M training step
(forward, backward, AdamW) with transformers on 2 threads, at the shapes that
tests/bench_train_step.c times.  Measured 2026-11-23: B=4,T=64 111 tok/s, B=2,T=256
149 tok/s (cherry: 170 and 174)."""
import time, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.set_num_threads(2); torch.manual_seed(0)
cfg = GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024)
m = GPT2LMHeadModel(cfg); m.train()
for p in m.parameters(): pass
opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
for B, T in [(4, 64), (2, 256)]:
    x = torch.randint(0, 50257, (B, T))
    ts = []
    for i in range(4):
        t0 = time.time()
        out = m(input_ids=x, labels=x)
        out.loss.backward(); opt.step(); opt.zero_grad()
        ts.append(time.time() - t0)
    best = min(ts[1:])
    print(f"torch {torch.__version__} B={B} T={T}: {best:.3f} s/step, {B*T/best:.0f} tokens/s (2 threads)")
