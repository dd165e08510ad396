#!/usr/bin/env python3
"""make_sft_fixtures.py — reference numbers from PyTorch/transformers for cherry's
optimiser and SFT loop.  Writes tests/oracle/fixtures/sft-*.  Run from the repo root:

    python3 tests/oracle/make_sft_fixtures.py

Only this script needs Python; the C tests read the committed fixtures.

sft-adamw.json: torch.optim.AdamW (two parameter groups, weight decay on one) with
torch.nn.utils.clip_grad_norm_ and transformers' warm-up + cosine schedule, on fixed
gradients; records the parameters after every step.
"""
import json
import math
import os
import sys

import torch

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def adamw_fixture():
    from transformers import get_cosine_schedule_with_warmup

    g = torch.Generator().manual_seed(1234)
    n_dec, n_nodec, steps = 37, 11, 6
    p_dec = torch.nn.Parameter(torch.randn(n_dec, generator=g))
    p_nodec = torch.nn.Parameter(torch.randn(n_nodec, generator=g))
    lr, wd, clip, warmup = 3e-2, 0.1, 1.5, 2
    opt = torch.optim.AdamW(
        [{"params": [p_dec], "weight_decay": wd}, {"params": [p_nodec], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    sched = get_cosine_schedule_with_warmup(opt, warmup, steps)
    rec = {"lr": lr, "weight_decay": wd, "clip": clip, "warmup": warmup, "total": steps,
           "n_decay": n_dec, "n_nodecay": n_nodec,
           "init": p_dec.detach().tolist() + p_nodec.detach().tolist(),
           "grads": [], "norms": [], "lrs": [], "params": []}
    for s in range(steps):
        # gradients of varying size so that some steps clip and others do not
        scale = 0.2 if s % 2 == 0 else 3.0
        gd = torch.randn(n_dec, generator=g) * scale
        gn = torch.randn(n_nodec, generator=g) * scale
        if s == 3:
            gd[:5] = 0.0  # a zero gradient still moves m, v and decays p
        p_dec.grad = gd.clone()
        p_nodec.grad = gn.clone()
        rec["grads"].append(gd.tolist() + gn.tolist())
        rec["lrs"].append(opt.param_groups[0]["lr"])
        norm = torch.nn.utils.clip_grad_norm_([p_dec, p_nodec], clip)
        rec["norms"].append(float(norm))
        opt.step()
        sched.step()
        rec["params"].append(p_dec.detach().tolist() + p_nodec.detach().tolist())
    with open(os.path.join(FIX, "sft-adamw.json"), "w") as f:
        json.dump(rec, f)
    print("wrote sft-adamw.json")


if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    torch.manual_seed(0)
    adamw_fixture()
