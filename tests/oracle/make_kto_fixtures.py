#!/usr/bin/env python3
"""make_kto_fixtures.py — PyTorch reference numbers for cherry's KTO (dpo --loss-type kto).

Writes tests/oracle/fixtures/pref-kto.json from the tiny Llama pair of
make_pref_fixtures.py (pref-llama-policy/, pref-llama-ref/, already committed):
  - four unpaired examples (prompt ids, completion ids, label) and, as TRL's
    KTOTrainer builds them, the KL completions: the completions rotated by +1 within
    the batch (example i gets example i-1's completion, the first gets the last;
    trl/trainer/kto_trainer.py add_kl_completion_ids);
  - the sequence log-probs (sum over completion tokens) of the matched and the KL
    sequences under policy and reference, computed by transformers;
  - for several (beta, desirable_weight, undesirable_weight) cases: the KL estimate,
    the loss, TRL's metrics and d loss / d policy log-prob (autograd).
The loss is TRL's _compute_loss for loss_type "kto", written out below in torch:
    kl = (KL_logps - ref_KL_logps).mean().detach().clamp(min=0)
    chosen_losses   = 1 - sigmoid(beta * (chosen_logratios - kl))
    rejected_losses = 1 - sigmoid(beta * (kl - rejected_logratios))
    loss = cat(desirable_weight * chosen_losses, undesirable_weight * rejected_losses).nanmean()
One case swaps policy and reference so the mean KL log-ratio is negative and the
clamp is exercised.

Run once from the repository root (needs torch + transformers); the output is
committed and `make check` never runs Python:
    python3 tests/oracle/make_kto_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "oracle", "fixtures")
VOCAB = 391
# (prompt_len, completion_len, label)
SHAPES = [(4, 3, True), (2, 5, False), (5, 2, True), (3, 4, False)]
CASES = [
    {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0, "swap": False},
    {"beta": 0.5, "desirable_weight": 1.33, "undesirable_weight": 0.7, "swap": False},
    {"beta": 2.0, "desirable_weight": 1.0, "undesirable_weight": 1.0, "swap": True},
]


def seq_logp(model, prompt, completion):
    ids = torch.tensor([prompt + completion])
    logits = model(ids).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1)
    per_tok = lp.gather(1, ids[0, 1:][:, None])[:, 0]
    return per_tok[len(prompt) - 1:].sum()


def kto_loss(beta, dw, uw, pol, ref, pol_kl, ref_kl, labels):
    kl = (pol_kl - ref_kl).mean().detach().clamp(min=0)
    lab = torch.tensor(labels)
    chosen_logratios = pol[lab] - ref[lab]
    rejected_logratios = pol[~lab] - ref[~lab]
    chosen_losses = 1 - F.sigmoid(beta * (chosen_logratios - kl))
    rejected_losses = 1 - F.sigmoid(beta * (kl - rejected_logratios))
    losses = torch.cat((dw * chosen_losses, uw * rejected_losses), 0)
    m = {
        "kl": kl.item(),
        "rewards/chosen": (beta * chosen_logratios.detach()).sum().item() / max(int(lab.sum()), 1),
        "rewards/rejected": (beta * rejected_logratios.detach()).sum().item() / max(int((~lab).sum()), 1),
        "logps/chosen": pol[lab].detach().sum().item() / max(int(lab.sum()), 1),
        "logps/rejected": pol[~lab].detach().sum().item() / max(int((~lab).sum()), 1),
    }
    return losses.nanmean(), m


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1515)
    ex = []
    for (lp, lc, lab) in SHAPES:
        r = lambda n: torch.randint(1, VOCAB, (n,), generator=g).tolist()
        ex.append({"prompt": r(lp), "completion": r(lc), "label": lab})
    n = len(ex)
    kl_completion = [ex[(i - 1) % n]["completion"] for i in range(n)]
    models = {k: LlamaForCausalLM.from_pretrained(os.path.join(FIX, f"pref-llama-{k}"), torch_dtype=torch.float32).eval()
              for k in ("policy", "ref")}
    with torch.no_grad():
        lp = {k: [seq_logp(m, e["prompt"], e["completion"]).double().item() for e in ex] for k, m in models.items()}
        kllp = {k: [seq_logp(m, e["prompt"], kl_completion[i]).double().item() for i, e in enumerate(ex)]
                for k, m in models.items()}
    cases = []
    for c in CASES:
        a, b = ("ref", "policy") if c["swap"] else ("policy", "ref")
        pol = torch.tensor(lp[a], dtype=torch.float64, requires_grad=True)
        loss, m = kto_loss(c["beta"], c["desirable_weight"], c["undesirable_weight"], pol,
                           torch.tensor(lp[b], dtype=torch.float64), torch.tensor(kllp[a], dtype=torch.float64),
                           torch.tensor(kllp[b], dtype=torch.float64), [e["label"] for e in ex])
        loss.backward()
        cases.append(dict(c, loss=loss.item(), metrics=m, dlogp=pol.grad.tolist()))
    out = {"family": "llama", "policy": "pref-llama-policy", "ref": "pref-llama-ref", "examples": ex,
           "kl_completion": kl_completion, "policy_logps": lp["policy"], "ref_logps": lp["ref"],
           "policy_kl_logps": kllp["policy"], "ref_kl_logps": kllp["ref"], "cases": cases}
    with open(os.path.join(FIX, "pref-kto.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote pref-kto.json:", [(round(c["loss"], 6), round(c["metrics"]["kl"], 6)) for c in cases])


if __name__ == "__main__":
    main()
