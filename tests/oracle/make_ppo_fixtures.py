#!/usr/bin/env python3
"""make_ppo_fixtures.py — PyTorch oracle for one update of ppo's four algorithms.

For each family (tiny GPT-2 with tied embeddings; tiny Llama with GQA and an untied
head), on a FIXED batch of 2 prompts x 2 completions of different lengths with fixed
scores, fixed "old" (sampling) log-probs and old values (the model's own values
shifted by fixed offsets, so ratios fall inside and outside the clip ranges), this
script computes with torch, written from TRL's trainers (not from cherry's C):
  - the policy's per-token log-probs of softmax(logits / T), T = 0.7
    (TRL: logits /= temperature + 1e-7; we divide by T exactly, as cherry does),
  - the reference log-probs and, for PPO, the value model's per-token values
    (backbone + score head at the position that predicts each completion token,
    TRL's full_value[:, context_length - 1 : -1]),
  - per case: the advantages, the loss of one optimiser step, TRL's metrics, and the
    gradient of every parameter of the policy (and of the value model for PPO).
Formulas (TRL trainer/ppo_trainer.py, grpo_trainer.py, rloo_trainer.py <= 0.19):
  ppo   rewards_t = -kl_coef * kl_t (+ score on the last completion token; TRL puts
        it one past the EOS — cherry's documented choice is the last token), GAE,
        masked_whiten(advantages), pg = max(-A r, -A clip(r)), vf = 0.5 max(...),
        loss = masked_mean(pg) + vf_coef * masked_mean(vf) over completion tokens;
  grpo  A = (r - mean_g) / (std_g + 1e-4) (or batch std, or none), per-token
        -min(r A, clip(r, 1-eps, 1+eps_high) A) + beta * k3, normalised by loss type;
  rloo  rlhf = score - kl_coef * sum_t kl_t, A = rlhf - leave-one-out mean,
        sequence ratio exp(sum new - sum old), pg = max(-A r, -A clip(r));
  reinforce  as rloo with baseline = batch mean (the first batch).
Writes tests/oracle/fixtures/ppo-<family>-{policy,ref,value}/ (copies of the models),
ppo-oracle.json and ppo-grads-<family>.safetensors.  Run from the repository root:
    python3 tests/oracle/make_ppo_fixtures.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(ROOT, "fixtures")
TEMP = 0.7
TOK_FILES = ["tokenizer.json", "tokenizer_config.json"]

CASES = [
    {"name": "ppo-k1", "algo": "ppo", "kl_coef": 0.1, "kl_est": "k1", "gamma": 1.0, "lam": 0.95,
     "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 0.1},
    {"name": "ppo-k3", "algo": "ppo", "kl_coef": 0.05, "kl_est": "k3", "gamma": 0.9, "lam": 0.8,
     "cliprange": 0.1, "cliprange_value": 0.05, "vf_coef": 0.5},
    {"name": "grpo-dapo", "algo": "grpo", "beta": 0.04, "eps": 0.2, "eps_high": 0.28, "scale": "group",
     "loss_type": "dapo"},
    {"name": "grpo-grpo", "algo": "grpo", "beta": 0.0, "eps": 0.2, "eps_high": 0.2, "scale": "batch",
     "loss_type": "grpo"},
    {"name": "grpo-dr", "algo": "grpo", "beta": 0.1, "eps": 0.1, "eps_high": 0.1, "scale": "none",
     "loss_type": "dr_grpo", "max_completion_length": 6},
    {"name": "rloo", "algo": "rloo", "kl_coef": 0.05, "kl_est": "k1", "cliprange": 0.2},
    {"name": "reinforce", "algo": "reinforce", "kl_coef": 0.1, "kl_est": "k3", "cliprange": 0.2,
     "decay": 0.9},
]


def copy_model(src, name, cls):
    m = cls.from_pretrained(os.path.join(FIX, src)).float().eval()
    d = os.path.join(FIX, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    m.save_pretrained(d, safe_serialization=True)
    for f in TOK_FILES:
        if os.path.exists(os.path.join(FIX, src, f)):
            shutil.copy(os.path.join(FIX, src, f), os.path.join(d, f))
    return m


def make_batch(vocab):
    g = torch.Generator().manual_seed(1234)
    prompts = [torch.randint(1, vocab, (5,), generator=g).tolist(),
               torch.randint(1, vocab, (3,), generator=g).tolist()]
    lens = [3, 5, 2, 6]  # sequences 0,1 answer prompt 0; 2,3 prompt 1
    comps = [torch.randint(1, vocab, (n,), generator=g).tolist() for n in lens]
    seqs = [prompts[i // 2] + comps[i] for i in range(4)]
    return prompts, comps, seqs


def rows(seqs):
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


def token_logps(model, ids, mask, plen, clen):
    """Flat per-completion-token log-probs of softmax(logits / T), and entropies."""
    logits = model(input_ids=ids, attention_mask=mask).logits / TEMP
    lp_all = torch.log_softmax(logits.float(), -1)
    out, ent = [], []
    for i in range(ids.shape[0]):
        for t in range(clen[i]):
            pos = plen[i] - 1 + t
            out.append(lp_all[i, pos, ids[i, pos + 1]])
            p = lp_all[i, pos].exp()
            ent.append(-(p * lp_all[i, pos]).sum())
    return torch.stack(out), torch.stack(ent)


def token_values(vm, ids, mask, plen, clen):
    backbone = vm.transformer if hasattr(vm, "transformer") else vm.model
    h = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    v = vm.score(h).squeeze(-1)
    out = []
    for i in range(ids.shape[0]):
        for t in range(clen[i]):
            out.append(v[i, plen[i] - 1 + t])
    return torch.stack(out)


def kl_est(est, logp, ref):
    logr = ref - logp
    return -logr if est == "k1" else (logr.exp() - 1) - logr


def seq_sums(x, clen):
    out, o = [], 0
    for n in clen:
        out.append(x[o:o + n].sum())
        o += n
    return torch.stack(out)


def masked_whiten(x):
    mean = x.mean()
    var = ((x - mean) ** 2).mean() * x.numel() / (x.numel() - 1)  # TRL masked_var(unbiased)
    return (x - mean) * torch.rsqrt(var + 1e-8)


def run_case(c, logp, old, ref, values, old_values, scores, clen, G):
    """Returns (loss, metrics dict, rollout stats dict)."""
    n = len(clen)
    off = [sum(clen[:i]) for i in range(n)]
    ntok = sum(clen)
    stats = {}
    seq_kl = seq_sums(kl_est(c.get("kl_est", "k1"), old, ref), clen) if ref is not None else torch.zeros(n)
    stats["scores"] = scores.mean().item()
    stats["kl"] = seq_kl.mean().item()
    stats["entropy"] = (-seq_sums(old, clen)).mean().item()
    stats["reward_std"] = scores.view(-1, G).std(dim=1).mean().item()
    m = {}
    if c["algo"] == "ppo":
        kl = kl_est(c["kl_est"], old, ref)
        rewards = -c["kl_coef"] * kl
        rewards = rewards.clone()
        for i in range(n):
            rewards[off[i] + clen[i] - 1] += scores[i]
        adv = torch.zeros(ntok, dtype=torch.float64)
        for i in range(n):
            last = 0.0
            for t in reversed(range(clen[i])):
                r = off[i] + t
                nextv = old_values[r + 1].double() if t + 1 < clen[i] else 0.0
                delta = rewards[r].double() + c["gamma"] * nextv - old_values[r].double()
                last = delta + c["gamma"] * c["lam"] * last
                adv[r] = last
        returns = (adv + old_values.double()).float()
        adv = masked_whiten(adv.float())
        stats["rlhf_reward"] = stats["scores"] - c["kl_coef"] * stats["kl"]
        diff = logp - old
        ratio = diff.exp()
        pg1 = -adv * ratio
        pg2 = -adv * torch.clamp(ratio, 1 - c["cliprange"], 1 + c["cliprange"])
        pg = torch.max(pg1, pg2)
        vclip = old_values + torch.clamp(values - old_values, -c["cliprange_value"], c["cliprange_value"])
        vf1 = (values - returns) ** 2
        vf2 = (vclip - returns) ** 2
        vf = 0.5 * torch.max(vf1, vf2)
        loss = pg.mean() + c["vf_coef"] * vf.mean()
        m["policy/clipfrac_avg"] = (pg2 > pg1).float().mean().item()
        m["policy/approxkl_avg"] = (0.5 * diff ** 2).mean().item()
        m["loss/policy_avg"] = pg.mean().item()
        m["loss/value_avg"] = vf.mean().item()
        m["val/clipfrac_avg"] = (vf2 > vf1).float().mean().item()
        m["val/ratio"] = ratio.mean().item()
        return loss, m, stats, adv.tolist()
    if c["algo"] == "grpo":
        grouped = scores.view(-1, G)
        mean_g = grouped.mean(dim=1).repeat_interleave(G)
        a = scores - mean_g
        if c["scale"] == "group":
            a = a / (grouped.std(dim=1).repeat_interleave(G) + 1e-4)
        elif c["scale"] == "batch":
            a = a / (scores.std() + 1e-4)
        A = torch.cat([a[i].expand(clen[i]) for i in range(n)])
        ratio = (logp - old).exp()
        r2 = torch.clamp(ratio, 1 - c["eps"], 1 + c["eps_high"])
        per_tok = -torch.min(ratio * A, r2 * A)
        if c["beta"] != 0:
            k3 = kl_est("k3", logp, ref)
            per_tok = per_tok + c["beta"] * k3
            m["kl"] = k3.mean().item()
        if c["loss_type"] == "grpo":
            loss = torch.stack([per_tok[off[i]:off[i] + clen[i]].mean() for i in range(n)]).mean()
        elif c["loss_type"] == "dr_grpo":
            loss = per_tok.sum() / (n * c["max_completion_length"])
        else:  # bnpo / dapo over one generation batch
            loss = per_tok.sum() / ntok
        clipped = ((ratio < 1 - c["eps"]) & (A < 0)) | ((ratio > 1 + c["eps_high"]) & (A > 0))
        m["clip_ratio"] = clipped.float().mean().item()
        return loss, m, stats, a.tolist()
    # rloo / reinforce: sequence level
    rlhf = scores - c["kl_coef"] * seq_kl
    stats["rlhf_reward"] = rlhf.mean().item()
    if c["algo"] == "rloo":
        grouped = rlhf.view(-1, G)
        baseline = ((grouped.sum(dim=1, keepdim=True) - grouped) / (G - 1)).view(-1)
        a = rlhf - baseline
    else:
        a = rlhf - rlhf.mean()  # the first batch: the moving average starts at the batch mean
    new_s, old_s = seq_sums(logp, clen), seq_sums(old, clen)
    ratio = (new_s - old_s).exp()
    pg1 = -a * ratio
    pg2 = -a * torch.clamp(ratio, 1 - c["cliprange"], 1 + c["cliprange"])
    loss = torch.max(pg1, pg2).mean()
    m["clip_ratio"] = (pg2 > pg1).float().mean().item()
    m["policy/approxkl_avg"] = (0.5 * (new_s - old_s) ** 2).mean().item()
    return loss, m, stats, a.tolist()


def family(kind, out, grads):
    policy = copy_model("pref-%s-policy" % kind, "ppo-%s-policy" % kind, AutoModelForCausalLM)
    ref = copy_model("pref-%s-ref" % kind, "ppo-%s-ref" % kind, AutoModelForCausalLM)
    vm = copy_model("pref-%s-rm" % kind, "ppo-%s-value" % kind, AutoModelForSequenceClassification)
    vocab = policy.config.vocab_size
    prompts, comps, seqs = make_batch(vocab)
    ids, mask = rows(seqs)
    plen = [len(prompts[i // 2]) for i in range(4)]
    clen = [len(c) for c in comps]
    G = 2
    ntok = sum(clen)
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        lp0, _ = token_logps(policy, ids, mask, plen, clen)
        ref_lp, _ = token_logps(ref, ids, mask, plen, clen)
        v0 = token_values(vm, ids, mask, plen, clen)
    # fixed offsets put ratios on both sides of every clip range used
    old = (lp0 + (torch.rand(ntok, generator=g) - 0.5) * 0.6).float()
    old_values = (v0 + (torch.rand(ntok, generator=g) - 0.5) * 0.4).float()
    scores = torch.tensor([1.0, -0.5, 0.25, 2.0])
    fam = {"prompts": prompts, "completions": comps, "temperature": TEMP, "G": G,
           "old_logp": old.tolist(), "old_values": old_values.tolist(), "scores": scores.tolist(),
           "logp": lp0.tolist(), "ref_logp": ref_lp.tolist(), "values": v0.tolist(), "cases": []}
    for c in CASES:
        policy.zero_grad()
        vm.zero_grad()
        logp, ent = token_logps(policy, ids, mask, plen, clen)
        values = token_values(vm, ids, mask, plen, clen) if c["algo"] == "ppo" else None
        needs_ref = c.get("beta", 0) != 0 or c.get("kl_coef", 0) != 0
        loss, m, stats, adv = run_case(c, logp, old, ref_lp if needs_ref else None, values, old_values, scores,
                                       clen, G)
        loss.backward()
        for name, p in policy.named_parameters():
            grads["%s/policy/%s" % (c["name"], name)] = p.grad.detach().clone().contiguous()
        if c["algo"] == "ppo":
            for name, p in vm.named_parameters():
                grads["%s/value/%s" % (c["name"], name)] = p.grad.detach().clone().contiguous()
        rec = dict(c)
        rec.update({"loss": loss.item(), "metrics": m, "stats": stats, "adv": adv,
                    "entropy_avg": ent.mean().item()})
        fam["cases"].append(rec)
    out[kind] = fam


def main():
    torch.manual_seed(0)
    out = {}
    for kind in ["gpt2", "llama"]:
        grads = {}
        family(kind, out, grads)
        save_file(grads, os.path.join(FIX, "ppo-grads-%s.safetensors" % kind))
    with open(os.path.join(FIX, "ppo-oracle.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote ppo fixtures:", ", ".join("%s %d cases" % (k, len(v["cases"])) for k, v in out.items()))


if __name__ == "__main__":
    main()
