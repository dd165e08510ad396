#!/usr/bin/env python3
"""make_fixtures.py — transformers reference outputs for tests/test_oracle_model.c.

Builds tiny random models with transformers and saves them with save_pretrained
(safetensors) into tests/oracle/fixtures/model-<name>/:
  gpt2         GPT2LMHeadModel, tied embeddings
  gpt2-untied  GPT2LMHeadModel, untied lm_head
  llama-gqa    LlamaForCausalLM, 4 heads / 2 kv heads, untied, rope_theta 500000,
               attention and MLP biases on
  llama-tied   LlamaForCausalLM, tied embeddings, no biases, rope_theta 10000
  gpt2-rm      GPT2ForSequenceClassification, num_labels 1, pad_token_id 0
  llama-rm     LlamaForSequenceClassification, num_labels 1, pad_token_id 0, GQA
For each, on fixed right-padded inputs (B=3, T=10, lengths 10/7/4, attention_mask),
it records in model-<name>.safetensors, computed in float64 from the float32 weights:
  tokens [B,T], lengths [B], targets [B,T] (next token, -1 where none)
  hidden [B,T,C]      last hidden state (after the final norm)
  logp, entropy [B,T] log p(next token) and entropy of the next-token distribution
  dlogp [B,T]         fixed weights w; the LM loss is  L = sum_valid w * logp
  values [B,T], pooled [B]  classifiers: score(hidden) per token and transformers'
                      own pooled logit (last non-pad token)
  dvalues [B,T]       classifier loss  L = sum_valid u * values
  grad.<name>         dL/d<param> for EVERY parameter, in transformers' layout
                      (GPT-2 Conv1D weights [in, out]); tied weights once.
Integer arrays are stored as F32 (exact below 2^24).  Library versions are in the
file's __metadata__.

It also loads every tests/oracle/fixtures/cherry-saved-*/ directory (written by
cherry's bin/init-model, see README.md) with from_pretrained, asserts that no tensor is
missing or unexpected, and records the same outputs for them, so the C test checks that
transformers computes on cherry's files exactly what cherry computes.

Padding: cherry gives padding a segment of its own; transformers masks it with
attention_mask.  Results at real positions agree; the C test compares only those.

Run by hand (needs torch + transformers), never by make check:
    bin/init-model ... (see README.md) && python3 tests/oracle/make_fixtures.py
"""
import glob
import json
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoConfig, GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, LlamaForSequenceClassification)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
B, T = 3, 10
LENGTHS = [10, 7, 4]
PAD = 0


def gpt2_cfg(**kw):
    base = dict(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
                bos_token_id=1, eos_token_id=2, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0,
                summary_first_dropout=0.0)
    base.update(kw)
    return GPT2Config(**base)


def llama_cfg(**kw):
    base = dict(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, initializer_range=0.2,
                bos_token_id=1, eos_token_id=2)
    base.update(kw)
    return LlamaConfig(**base)


def build(name):
    torch.manual_seed(sum(map(ord, name)))
    if name == "gpt2":
        m = GPT2LMHeadModel(gpt2_cfg())
    elif name == "gpt2-untied":
        m = GPT2LMHeadModel(gpt2_cfg(tie_word_embeddings=False, n_inner=48))
    elif name == "llama-gqa":
        m = LlamaForCausalLM(llama_cfg(rope_theta=500000.0, tie_word_embeddings=False, attention_bias=True,
                                       mlp_bias=True))
    elif name == "llama-tied":
        m = LlamaForCausalLM(llama_cfg(num_key_value_heads=4, tie_word_embeddings=True, rope_theta=10000.0))
    elif name == "gpt2-rm":
        m = GPT2ForSequenceClassification(gpt2_cfg(num_labels=1, pad_token_id=PAD))
    elif name == "llama-rm":
        m = LlamaForSequenceClassification(llama_cfg(num_labels=1, pad_token_id=PAD, rope_theta=10000.0))
    else:
        raise ValueError(name)
    # Non-trivial norms and biases (transformers initialises them to 1 and 0), so a
    # missing or misplaced one changes the outputs.
    with torch.no_grad():
        for _, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m.float().eval()


def inputs(vocab):
    g = torch.Generator().manual_seed(99)
    tok = torch.randint(3, vocab, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
    tok = torch.where(mask.bool(), tok, torch.full_like(tok, PAD))
    tgt = torch.full((B, T), -1, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        tgt[b, :n - 1] = tok[b, 1:n]
    return tok, mask, tgt


def record(model, out_path, extra_meta, generator="tests/oracle/make_fixtures.py", use_mask=True):
    """use_mask=False: run transformers without attention_mask.  With right padding a
    real position never attends to the (later) padding, so real positions are the
    same; sliding-window families need it because a padded query whose window holds
    only padding gets NaN in transformers' eager attention, and 0 * NaN then reaches
    the real rows through P V."""
    model = model.double()
    cfg = model.config
    tok, mask, tgt = inputs(cfg.vocab_size)
    fmask = mask if use_mask else None
    valid_tok = mask.bool()
    classifier = bool(cfg.architectures and cfg.architectures[0].endswith("ForSequenceClassification")) \
        or hasattr(model, "score")
    base = model.transformer if hasattr(model, "transformer") else model.model
    model.zero_grad()
    hidden = base(input_ids=tok, attention_mask=fmask).last_hidden_state
    out = {"tokens": tok.float(), "lengths": torch.tensor(LENGTHS, dtype=torch.float32),
           "targets": tgt.float(), "hidden": hidden.detach().float()}
    g = torch.Generator().manual_seed(7)
    if classifier:
        values = model.score(hidden)[..., 0]
        pooled = model(input_ids=tok, attention_mask=fmask).logits[:, 0]
        last = torch.tensor([n - 1 for n in LENGTHS])
        assert torch.allclose(pooled, values[torch.arange(B), last], rtol=1e-10, atol=1e-12), "pooling mismatch"
        u = torch.randn(B, T, generator=g, dtype=torch.float64) * valid_tok
        loss = (u * values).sum()
        out.update(values=values.detach().float(), pooled=pooled.detach().float(), dvalues=u.float())
    else:
        logits = model.lm_head(hidden)
        cap = getattr(cfg, "final_logit_softcapping", None)
        if cap:  # Gemma 2: logits = cap * tanh(logits / cap)
            logits = torch.tanh(logits / cap) * cap
        full = model(input_ids=tok, attention_mask=fmask).logits
        assert torch.allclose(full, logits, rtol=1e-10, atol=1e-12), "lm_head mismatch"
        lsm = torch.log_softmax(logits, dim=-1)
        valid = tgt >= 0
        logp = torch.gather(lsm, 2, tgt.clamp(min=0)[..., None])[..., 0] * valid
        entropy = -(lsm.exp() * lsm).sum(-1) * valid
        w = torch.randn(B, T, generator=g, dtype=torch.float64) * valid
        loss = (w * logp).sum()
        out.update(logp=logp.detach().float(), entropy=entropy.detach().float(), dlogp=w.float())
    loss.backward()
    n_grads = 0
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        out["grad." + name] = p.grad.detach().float().contiguous()
        n_grads += 1
    meta = {"generator": generator, "transformers": transformers.__version__,
            "torch": torch.__version__, "loss": repr(float(loss.detach())), "n_grads": str(n_grads)}
    meta.update(extra_meta)
    save_file({k: v.contiguous() for k, v in out.items()}, out_path, metadata=meta)
    print("%-40s loss %.6f, %d parameter gradients" % (os.path.relpath(out_path, HERE), float(loss.detach()), n_grads))


def main():
    torch.set_num_threads(2)
    for name in ("gpt2", "gpt2-untied", "llama-gqa", "llama-tied", "gpt2-rm", "llama-rm"):
        model = build(name)
        d = os.path.join(HERE, "model-" + name)
        model.save_pretrained(d, safe_serialization=True)
        # Reload from disk so the recorded outputs come from exactly the saved weights.
        cls = type(model)
        reloaded = cls.from_pretrained(d, attn_implementation="eager").eval()
        record(reloaded, os.path.join(HERE, "model-" + name + ".safetensors"), {"source": "transformers"})

    # Models saved by cherry: transformers must load every tensor, no more, no less.
    for d in sorted(glob.glob(os.path.join(HERE, "cherry-saved-*/"))):
        d = d.rstrip("/")
        cfg = AutoConfig.from_pretrained(d)
        arch = cfg.architectures[0]
        cls = getattr(transformers, arch)  # any family (make_family_fixtures.py writes the newer ones)
        model, info = cls.from_pretrained(d, attn_implementation="eager", output_loading_info=True)
        bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        assert not bad, "%s: transformers did not load cherry's file cleanly: %s" % (d, bad)
        assert type(model) is cls
        record(model.eval(), d + ".safetensors", {"source": "cherry (bin/init-model)", "architecture": arch},
               use_mask=not getattr(model.config, "sliding_window", None))


if __name__ == "__main__":
    main()
