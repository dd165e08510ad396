#!/usr/bin/env python3
"""make_sft_fixtures.py — reference numbers from PyTorch/transformers for cherry's
optimiser and SFT loop.  Writes tests/oracle/fixtures/sft-*.  Run from the repo root:

    python3 tests/oracle/make_sft_fixtures.py

Only this script needs Python; the C tests read the committed fixtures.

sft-adamw.json: torch.optim.AdamW (two parameter groups, weight decay on one) with
torch.nn.utils.clip_grad_norm_ and transformers' warm-up + cosine schedule, on fixed
gradients; records the parameters after every step.

sft-gpt2/, sft-llama/: tiny GPT2LMHeadModel and LlamaForCausalLM (GQA, untied) with
the bundled task tokenizer (data/tokenizer.json), as transformers saves them.
sft-gpt2.jsonl (prompt-completion) and sft-llama.jsonl (text): four examples each.
sft-gpt2-trained/, sft-llama-trained/: the models after a few AdamW steps of SFT as
TRL's SFTTrainer does it (transformers >= 4.46 loss normalisation: the summed
cross-entropy of the loss-bearing tokens divided by their number in the whole
accumulated batch; clip_grad_norm_; AdamW with HF Trainer's decay groups: no decay
for biases and LayerNorm/RMSNorm weights; linear/cosine schedule with warm-up).
Every step uses all four examples (batch 2 x accumulation 2), so the result does
not depend on the data order.  sft-oracle.json: the hyper-parameters and, per step,
loss, mean_token_accuracy and grad_norm as the HF Trainer logs them.
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


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GPT2_DATA = [
    {"prompt": "Q: what is 2 + 3?\nA:", "completion": " 5"},
    {"prompt": "Q: name a colour.\nA:", "completion": " red, like a cherry"},
    {"prompt": "Translate to French: cat", "completion": " chat"},
    {"prompt": "Count: one two", "completion": " three four five six"},
]
LLAMA_DATA = [
    {"text": "The cherry tree stands in the garden."},
    {"text": "Small programs that do one thing well."},
    {"text": "Tokens flow through the model, one after another, until the end."},
    {"text": "A B C D E F G"},
]


def encode_examples(tok, data, eos):
    """cherry's data.h rule (TRL's): prompt and completion tokenized separately, EOS
    appended to the completion (or text); the loss on completion / all tokens."""
    out = []
    for r in data:
        if "text" in r:
            ids = tok.encode(r["text"], add_special_tokens=False).ids + [eos]
            mask = [0] + [1] * (len(ids) - 1)
        else:
            p = tok.encode(r["prompt"], add_special_tokens=False).ids
            c = tok.encode(r["completion"], add_special_tokens=False).ids + [eos]
            ids = p + c
            mask = [0] * len(p) + [1] * len(c)
        out.append((ids, mask))
    return out


def sft_fixture(name, model, data, hp):
    # adam_eps 1e-6 (not torch's 1e-8): with 1e-8, parameters whose gradient is
    # ~0 (GPT-2's key bias, a few weights) take Adam steps of ~lr driven by float
    # rounding, which no two implementations share; 1e-6 keeps those steps small.
    import shutil

    from tokenizers import Tokenizer
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    d = os.path.join(FIX, name)
    model.save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "data", f), os.path.join(d, f))
    with open(os.path.join(FIX, name + ".jsonl"), "w") as f:
        for r in data:
            f.write(json.dumps(r) + "\n")
    tok = Tokenizer.from_file(os.path.join(ROOT, "data", "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    exs = encode_examples(tok, data, eos)

    model.eval()  # no dropout (the configs set every dropout to 0 as well)
    named = list(model.named_parameters())
    # transformers Trainer.get_decay_parameter_names: not biases, not norm layers
    decay = [p for n, p in named if p.ndim >= 2]
    nodecay = [p for n, p in named if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=(0.9, 0.999), eps=hp["adam_eps"], foreach=False)
    mk = get_cosine_schedule_with_warmup if hp["scheduler"] == "cosine" else get_linear_schedule_with_warmup
    sched = mk(opt, hp["warmup"], hp["steps"])
    micro = [exs[0:2], exs[2:4]]
    n_items = sum(sum(m[1:]) for _, m in exs)  # loss-bearing tokens of the whole step
    rec = dict(hp)
    rec.update({"losses": [], "accuracies": [], "grad_norms": [], "lrs": [], "num_items": n_items,
                "token_ids": [ids for ids, _ in exs]})
    for step in range(hp["steps"]):
        opt.zero_grad()
        total, correct = 0.0, 0
        for mb in micro:
            T = max(len(ids) for ids, _ in mb)
            inp = torch.zeros(len(mb), T, dtype=torch.long)
            att = torch.zeros(len(mb), T, dtype=torch.long)
            lab = torch.full((len(mb), T), -100, dtype=torch.long)
            for i, (ids, m) in enumerate(mb):
                inp[i, :len(ids)] = torch.tensor(ids)
                att[i, :len(ids)] = 1
                for t in range(1, len(ids)):
                    if m[t]:
                        lab[i, t] = ids[t]
            logits = model(input_ids=inp, attention_mask=att).logits.float()
            sl, tl = logits[:, :-1, :], lab[:, 1:]
            valid = tl != -100
            lp = torch.log_softmax(sl, dim=-1).gather(-1, tl.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            loss_sum = -(lp * valid).sum()
            (loss_sum / n_items).backward()
            total += float(loss_sum)
            correct += int(((sl.argmax(-1) == tl) & valid).sum())
        rec["losses"].append(total / n_items)
        rec["accuracies"].append(correct / n_items)
        rec["lrs"].append(opt.param_groups[0]["lr"])
        rec["grad_norms"].append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["clip"])))
        opt.step()
        sched.step()
    model.save_pretrained(os.path.join(FIX, name + "-trained"), safe_serialization=True)
    print(f"{name}: losses {rec['losses']} grad norms {rec['grad_norms']}")
    return rec


def sft_fixtures():
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    V = 391
    torch.manual_seed(1)
    g = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2,
                                   bos_token_id=0, eos_token_id=0, pad_token_id=0))
    torch.manual_seed(2)
    l = LlamaForCausalLM(LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                     rope_theta=50000.0, tie_word_embeddings=False, rms_norm_eps=1e-5, initializer_range=0.2,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=0))
    out = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
           "gpt2": sft_fixture("sft-gpt2", g, GPT2_DATA,
                               {"lr": 5e-3, "weight_decay": 0.1, "clip": 1.0, "warmup": 0, "scheduler": "linear",
                                "steps": 3, "batch_size": 2, "grad_accum": 2, "adam_eps": 1e-6}),
           "llama": sft_fixture("sft-llama", l, LLAMA_DATA,
                                {"lr": 5e-3, "weight_decay": 0.05, "clip": 0.5, "warmup": 1, "scheduler": "cosine",
                                 "steps": 4, "batch_size": 2, "grad_accum": 2, "adam_eps": 1e-6})}
    with open(os.path.join(FIX, "sft-oracle.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote sft-oracle.json")


if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    torch.manual_seed(0)
    adamw_fixture()
    sft_fixtures()
