#!/usr/bin/env python3
"""make_pref_fixtures.py — PyTorch reference numbers for cherry's preference learners.

Writes tests/oracle/fixtures/pref-*:
  pref-{gpt2,llama}-ref/      tiny reference LM (HF directory + the bundled tokenizer)
  pref-{gpt2,llama}-policy/   the same weights plus seeded noise: a policy that differs
                              from its reference, so every log-ratio is non-zero
  pref-{gpt2,llama}-rm/       *ForSequenceClassification built on the reference trunk
                              (score head initialised as transformers does)
  pref-dpo.json               fixed pairs (token ids), per-sequence log-probs of policy and
                              reference, and for every DPO loss type: loss, TRL's metrics
                              and d loss / d sequence-log-prob
  pref-jac-{gpt2,llama}.safetensors
                              d(sequence log-prob)/d(parameter) for every sequence of the
                              batch and every policy parameter ("<row>/<name>", HF layout)
  pref-dpo-extra.json         the loss types added later (exo_pair, aot, aot_unpaired,
                              discopop, sigmoid_norm) and TRL 1.x's token metrics (entropy,
                              logits/chosen, logits/rejected, mean_token_accuracy) of the
                              policy; the losses are checked the same way on the same
                              models and log-probs (EXTRA_CASES; `--extra` writes only this
                              file, from pref-dpo.json's log-probs and the committed policy,
                              leaving the models as they are)
  pref-rm.json                reward-model scores read at the last non-pad token (as
                              transformers does), Bradley-Terry loss with margin and
                              centring, and its metrics
  pref-rmgrad-{gpt2,llama}.safetensors
                              every parameter gradient of that loss

The loss formulas are TRL's (trl/trainer/dpo_trainer.py DPOTrainer.dpo_loss and
_compute_loss; trl/trainer/reward_trainer.py compute_loss), written out below in torch.
Every parameter gradient of a DPO step is sum_i dL/dlogp_i * dlogp_i/dtheta (chain
rule over the 2n sequence log-probs); the script checks that identity against a direct
autograd gradient for each loss type before writing anything, so the C test
(tests/test_oracle_dpo.c) can rebuild each full gradient from the Jacobian file.

Run once from the repository root (needs torch + transformers); outputs are committed
and `make check` never runs Python:
    python3 tests/oracle/make_pref_fixtures.py
    python3 tests/oracle/make_pref_fixtures.py --extra    # pref-dpo-extra.json only
"""
import json
import math
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import (GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, LlamaForSequenceClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "oracle", "fixtures")
TOK_FILES = ["tokenizer.json", "tokenizer_config.json"]
VOCAB = 391  # the bundled task tokenizer (data/tokenizer.json); id 0 = <|endoftext|>

# (prompt_len, chosen_len, rejected_len) of the fixed pairs
SHAPES = [(4, 3, 5), (2, 6, 2), (6, 2, 4)]

# The loss types added after pref-dpo.json was made (TRL 1.x names); written to
# pref-dpo-extra.json.  exo_pair needs label_smoothing > 0 (TRL refuses 0).
EXTRA_CASES = [
    {"loss_type": ["exo_pair"], "label_smoothing": 1e-3},
    {"loss_type": ["aot"]},
    {"loss_type": ["aot"], "label_smoothing": 0.1, "beta": 0.5},
    {"loss_type": ["aot_unpaired"]},
    {"loss_type": ["aot_unpaired"], "label_smoothing": 0.1, "beta": 0.5},
    {"loss_type": ["discopop"]},
    {"loss_type": ["discopop"], "beta": 0.5, "discopop_tau": 0.3},
    {"loss_type": ["sigmoid_norm"]},
    {"loss_type": ["exo_pair", "sigmoid_norm", "aot_unpaired", "discopop"], "loss_weights": [1.0, 0.5, 0.25, 2.0],
     "beta": 0.3, "label_smoothing": 0.01, "rpo_alpha": 0.5},
]

# The loss configurations checked (TRL names).  beta defaults to 0.1.
CASES = [
    {"loss_type": ["sigmoid"]},
    {"loss_type": ["hinge"]},
    {"loss_type": ["ipo"]},
    {"loss_type": ["robust"], "label_smoothing": 0.1},
    {"loss_type": ["cdpo"], "label_smoothing": 0.1},
    {"loss_type": ["bco_pair"]},
    {"loss_type": ["sppo_hard"]},
    {"loss_type": ["nca_pair"]},
    {"loss_type": ["apo_zero"]},
    {"loss_type": ["apo_down"]},
    {"loss_type": ["sft"]},
    {"loss_type": ["sigmoid", "ipo"], "loss_weights": [1.0, 0.5], "beta": 0.5, "rpo_alpha": 0.25},
]


def build(kind, seed):
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=16, n_layer=2, n_head=2,
                         initializer_range=0.2, bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                          initializer_range=0.2, bos_token_id=0, eos_token_id=0, pad_token_id=0)
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # non-trivial norms and biases, so a missing one shows
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.float().eval()


def save_dir(model, name):
    d = os.path.join(FIX, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    for f in TOK_FILES:
        shutil.copy(os.path.join(ROOT, "data", f), os.path.join(d, f))
    return d


def make_pairs():
    g = torch.Generator().manual_seed(77)
    pairs = []
    for (lp, lc, lr) in SHAPES:
        r = lambda n: torch.randint(1, VOCAB, (n,), generator=g).tolist()
        pairs.append({"prompt": r(lp), "chosen": r(lc), "rejected": r(lr)})
    return pairs


def seq_logp(model, prompt, completion):
    """Sum of log p(completion token | prefix), TRL's sequence log-prob."""
    ids = torch.tensor([prompt + completion])
    logits = model(ids).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1)
    tgt = ids[0, 1:]
    per_tok = lp.gather(1, tgt[:, None])[:, 0]
    return per_tok[len(prompt) - 1:].sum()


def all_logps(model, pairs):
    """Rows 0..n-1 chosen, n..2n-1 rejected (TRL's concatenated batch)."""
    ch = [seq_logp(model, p["prompt"], p["chosen"]) for p in pairs]
    rj = [seq_logp(model, p["prompt"], p["rejected"]) for p in pairs]
    return torch.stack(ch + rj)


def logsig(x):
    return F.logsigmoid(x)


def dpo_loss(case, pc, pr, rc, rr, len_c, len_r):
    """TRL's dpo_loss for every type, summed with loss_weights, plus rpo_alpha * NLL."""
    beta = case.get("beta", 0.1)
    ls = case.get("label_smoothing", 0.0)
    weights = case.get("loss_weights", [1.0] * len(case["loss_type"]))
    cl, rl = pc - rc, pr - rr
    logits = cl - rl
    n = pc.shape[0]
    # NLL of the chosen completions: F.cross_entropy over all chosen completion tokens
    nll = -pc.sum() / len_c.sum()
    total = 0.0
    for t, w in zip(case["loss_type"], weights):
        if t in ("sigmoid", "cdpo"):
            losses = -logsig(beta * logits) * (1 - ls) - logsig(-beta * logits) * ls
        elif t == "robust":
            losses = (-logsig(beta * logits) * (1 - ls) + logsig(-beta * logits) * ls) / (1 - 2 * ls)
        elif t == "hinge":
            losses = torch.relu(1 - beta * logits)
        elif t == "ipo":
            d = cl / len_c.clamp(min=1) - rl / len_r.clamp(min=1)
            losses = (d - 1 / (2 * beta)) ** 2
        elif t == "bco_pair":
            # RunningMoments from its initial state (mean 0, count 1e-24), one update
            rewards = torch.cat((beta * cl, beta * rl), 0).mean().detach()
            count = 1e-24
            delta = 0.0 + (rewards - 0.0) * 1 / (count + 1)
            losses = -logsig(beta * cl - delta) - logsig(-(beta * rl - delta))
        elif t == "sppo_hard":
            losses = (cl - 0.5 / beta) ** 2 + (rl + 0.5 / beta) ** 2
        elif t == "nca_pair":
            c, r = beta * cl, beta * rl
            losses = -logsig(c) - 0.5 * logsig(-c) - 0.5 * logsig(-r)
        elif t == "apo_zero":
            losses = 1 - torch.sigmoid(beta * cl) + torch.sigmoid(beta * rl)
        elif t == "apo_down":
            losses = torch.sigmoid(beta * cl) + 1 - torch.sigmoid(beta * logits)
        elif t == "exo_pair":
            # EXO-pref (Ji et al. 2024, eq. 16), as TRL 1.x writes it
            eps = torch.tensor(ls, dtype=logits.dtype)
            qw, log_qw = torch.sigmoid(beta * logits), logsig(beta * logits)
            ql, log_ql = torch.sigmoid(-beta * logits), logsig(-beta * logits)
            losses = qw * (log_qw - torch.log1p(-eps)) + ql * (log_ql - torch.log(eps))
        elif t == "aot":
            lr_sorted, _ = torch.sort(pc - pr, dim=0)
            ref_sorted, _ = torch.sort(rc - rr, dim=0)
            delta = lr_sorted - ref_sorted
            losses = -logsig(beta * delta) * (1 - ls) - logsig(-beta * delta) * ls
        elif t == "aot_unpaired":
            c_sorted, _ = torch.sort(cl, dim=0)
            r_sorted, _ = torch.sort(rl, dim=0)
            delta = c_sorted - r_sorted
            losses = -logsig(beta * delta) * (1 - ls) - logsig(-beta * delta) * ls
        elif t == "discopop":
            z = beta * logits
            m = torch.sigmoid(z / case.get("discopop_tau", 0.05))
            losses = -logsig(z) * (1 - m) + torch.exp(-z) * m
        elif t == "sigmoid_norm":
            d = cl / len_c.clamp(min=1) - rl / len_r.clamp(min=1)
            losses = -logsig(beta * d)
        elif t == "sft":
            losses = nll.expand(n)
        else:
            raise ValueError(t)
        total = total + w * losses.mean()
    if case.get("rpo_alpha") is not None:
        total = total + case["rpo_alpha"] * nll
    cr, rj = beta * cl.detach(), beta * rl.detach()
    metrics = {
        "rewards/chosen": cr.mean().item(),
        "rewards/rejected": rj.mean().item(),
        "rewards/accuracies": (cr > rj).double().mean().item(),
        "rewards/margins": (cr - rj).mean().item(),
        "logps/chosen": pc.detach().mean().item(),
        "logps/rejected": pr.detach().mean().item(),
    }
    return total, metrics


def dpo_fixture(kind, seed, pairs):
    ref = build(kind, seed)
    policy = build(kind, seed)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in policy.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_dir(ref, "pref-%s-ref" % kind)
    save_dir(policy, "pref-%s-policy" % kind)
    for p in ref.parameters():
        p.requires_grad_(False)

    n = len(pairs)
    len_c = torch.tensor([float(len(p["chosen"])) for p in pairs], dtype=torch.float64)
    len_r = torch.tensor([float(len(p["rejected"])) for p in pairs], dtype=torch.float64)
    with torch.no_grad():
        ref_lp = all_logps(ref, pairs).double()
    params = [(k, p) for k, p in policy.named_parameters()]

    # Jacobian: one backward per sequence.
    jac = {}
    pol_lp = []
    for row in range(2 * n):
        policy.zero_grad()
        pr_ = pairs[row % n]
        lp = seq_logp(policy, pr_["prompt"], pr_["chosen"] if row < n else pr_["rejected"])
        lp.backward()
        pol_lp.append(lp.item())
        for k, p in params:
            jac["%d/%s" % (row, k)] = p.grad.detach().clone().contiguous()
    pol_lp_t = torch.tensor(pol_lp, dtype=torch.float64)

    cases = []
    for case in CASES:
        x = pol_lp_t.clone().requires_grad_(True)
        loss, metrics = dpo_loss(case, x[:n], x[n:], ref_lp[:n], ref_lp[n:], len_c, len_r)
        (dlp,) = torch.autograd.grad(loss, x)
        # Self-check: direct autograd of the whole model equals the chain-rule sum.
        policy.zero_grad()
        lps = all_logps(policy, pairs).double()
        loss2, _ = dpo_loss(case, lps[:n], lps[n:], ref_lp[:n], ref_lp[n:], len_c, len_r)
        loss2.backward()
        worst = 0.0  # relative to the largest gradient entry (float32 model)
        scale = max(p.grad.abs().max().item() for _, p in params)
        for k, p in params:
            want = sum(dlp[r].item() * jac["%d/%s" % (r, k)] for r in range(2 * n))
            worst = max(worst, (p.grad - want).abs().max().item() / scale)
        assert worst < 1e-5, (kind, case, worst)
        assert abs(loss.item() - loss2.item()) < 1e-6
        c = dict(case)
        c.update({"loss": loss.item(), "metrics": metrics, "dlogp": dlp.tolist()})
        cases.append(c)
        print("%s %-20s loss %.6f  chain-rule check %.2e" % (kind, ",".join(case["loss_type"]), loss.item(), worst))
    save_file(jac, os.path.join(FIX, "pref-jac-%s.safetensors" % kind))
    return {"family": kind, "ref": "pref-%s-ref" % kind, "policy": "pref-%s-policy" % kind,
            "policy_logps": pol_lp, "ref_logps": ref_lp.tolist(), "cases": cases}


def rm_fixture(kind, seed, pairs):
    """A reward model on the reference trunk; scores of a right-padded batch."""
    torch.manual_seed(seed + 2)
    lm = build(kind, seed)
    cfg = lm.config
    cfg.num_labels = 1
    cfg.pad_token_id = 0
    if kind == "gpt2":
        cfg.architectures = ["GPT2ForSequenceClassification"]
        rm = GPT2ForSequenceClassification(cfg)
    else:
        cfg.architectures = ["LlamaForSequenceClassification"]
        rm = LlamaForSequenceClassification(cfg)
    # the trunk of the LM, the score head as transformers initialises it (normal(0, init))
    missing = rm.load_state_dict(lm.state_dict(), strict=False)
    assert missing.missing_keys == ["score.weight"], missing
    rm = rm.float().eval()
    save_dir(rm, "pref-%s-rm" % kind)

    n = len(pairs)
    # rows: prompt+chosen+EOS(0) and prompt+rejected+EOS, right-padded with pad 0
    seqs = [p["prompt"] + p["chosen"] + [0] for p in pairs] + [p["prompt"] + p["rejected"] + [0] for p in pairs]
    T = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (T - len(s)) for s in seqs])
    att = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
    rm.zero_grad()
    scores = rm(input_ids=ids, attention_mask=att).logits[:, 0]
    rc, rr = scores[:n], scores[n:]
    margin = torch.tensor([0.5, 0.0, -0.25])
    center = 0.01
    # TRL RewardTrainer.compute_loss
    loss = -F.logsigmoid(rc - rr - margin).mean() + center * torch.mean((rc + rr) ** 2)
    loss.backward()
    grads = {k: p.grad.detach().clone().contiguous() for k, p in rm.named_parameters()}
    save_file(grads, os.path.join(FIX, "pref-rmgrad-%s.safetensors" % kind))
    print("%s rm loss %.6f" % (kind, loss.item()))
    return {"family": kind, "dir": "pref-%s-rm" % kind, "sequences": seqs, "scores": scores.tolist(),
            "margin": margin.tolist(), "center_rewards_coefficient": center, "loss": loss.item(),
            "accuracy": (rc > rr).double().mean().item(), "rewards/chosen": rc.mean().item(),
            "rewards/rejected": rr.mean().item(), "margin_mean": (rc - rr).mean().item()}


def token_metrics(model, pairs):
    """TRL 1.x DPOTrainer's token metrics of one batch (dpo_trainer.py _compute_loss):
    entropy over the completion tokens of chosen and rejected, logits/chosen and
    logits/rejected (the logits averaged over the vocabulary, then over the completion
    tokens), mean_token_accuracy (chosen completion tokens whose top-1 is the target)."""
    ent_sum, ent_n = 0.0, 0
    lsum = {"chosen": 0.0, "rejected": 0.0}
    ln = {"chosen": 0, "rejected": 0}
    correct = 0
    with torch.no_grad():
        for side in ("chosen", "rejected"):
            for p in pairs:
                ids = torch.tensor([p["prompt"] + p[side]])
                logits = model(ids).logits[0, :-1].double()[len(p["prompt"]) - 1:]
                tgt = ids[0, 1:][len(p["prompt"]) - 1:]
                lp = torch.log_softmax(logits, -1)
                ent_sum += (-(lp.exp() * lp).sum(-1)).sum().item()
                ent_n += len(tgt)
                lsum[side] += logits.mean(-1).sum().item()
                ln[side] += len(tgt)
                if side == "chosen":
                    correct += (logits.argmax(-1) == tgt).sum().item()
    return {"entropy": ent_sum / ent_n, "logits/chosen": lsum["chosen"] / ln["chosen"],
            "logits/rejected": lsum["rejected"] / ln["rejected"], "mean_token_accuracy": correct / ln["chosen"]}


def extra_fixture():
    """EXTRA_CASES on pref-dpo.json's pairs and log-probs (the models stay as committed)."""
    with open(os.path.join(FIX, "pref-dpo.json")) as f:
        base = json.load(f)
    pairs = base["pairs"]
    n = len(pairs)
    len_c = torch.tensor([float(len(p["chosen"])) for p in pairs], dtype=torch.float64)
    len_r = torch.tensor([float(len(p["rejected"])) for p in pairs], dtype=torch.float64)
    out = {"generator": "torch %s; the models and log-probs of pref-dpo.json" % torch.__version__, "models": []}
    for fm in base["models"]:
        ref_lp = torch.tensor(fm["ref_logps"], dtype=torch.float64)
        cases = []
        for case in EXTRA_CASES:
            x = torch.tensor(fm["policy_logps"], dtype=torch.float64, requires_grad=True)
            loss, metrics = dpo_loss(case, x[:n], x[n:], ref_lp[:n], ref_lp[n:], len_c, len_r)
            (dlp,) = torch.autograd.grad(loss, x)
            c = dict(case)
            c.update({"loss": loss.item(), "metrics": metrics, "dlogp": dlp.tolist()})
            cases.append(c)
            print("%s %-40s loss %.6f" % (fm["family"], ",".join(case["loss_type"]), loss.item()))
        from transformers import AutoModelForCausalLM
        policy = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, fm["policy"])).float().eval()
        # pairs for the token metrics: the fixed pairs, with the policy's own greedy
        # continuation as the start of two chosen answers, so that the accuracy is not 0
        tpairs = [dict(p) for p in pairs]
        for i, (n_greedy, n_rand) in ((0, (4, 0)), (2, (2, 1))):
            ids = list(tpairs[i]["prompt"])
            with torch.no_grad():
                for _ in range(n_greedy):
                    ids.append(int(policy(torch.tensor([ids])).logits[0, -1].argmax()))
            tpairs[i]["chosen"] = ids[len(tpairs[i]["prompt"]):] + tpairs[i]["chosen"][:n_rand]
        tm = token_metrics(policy, tpairs)
        print("%s token metrics %s" % (fm["family"], tm))
        out["models"].append({"family": fm["family"], "cases": cases, "token_pairs": tpairs, "token_metrics": tm})
    with open(os.path.join(FIX, "pref-dpo-extra.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    if sys.argv[1:] == ["--extra"]:
        extra_fixture()
        return
    os.makedirs(FIX, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    pairs = make_pairs()
    import transformers
    gen = "transformers %s, torch %s" % (transformers.__version__, torch.__version__)
    dpo = {"generator": gen, "pairs": pairs, "models": []}
    rm = {"generator": gen, "models": []}
    for kind, seed in (("gpt2", 11), ("llama", 22)):
        dpo["models"].append(dpo_fixture(kind, seed, pairs))
        rm["models"].append(rm_fixture(kind, seed, pairs))
    with open(os.path.join(FIX, "pref-dpo.json"), "w") as f:
        json.dump(dpo, f, indent=1)
        f.write("\n")
    with open(os.path.join(FIX, "pref-rm.json"), "w") as f:
        json.dump(rm, f, indent=1)
        f.write("\n")
    extra_fixture()


if __name__ == "__main__":
    main()
