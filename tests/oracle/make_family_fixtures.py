#!/usr/bin/env python3
"""make_family_fixtures.py — transformers reference outputs for the model families
beyond GPT-2 and Llama (tests/test_oracle_families.c).

For each family, a tiny random model (vocab 64, hidden 16, MLP 24, 2-3 layers, 4 query
and 2 key/value heads) with every
feature that tells the family apart switched on and sized so it matters on the
fixed batch of make_fixtures.py (B=3, T=10, right padding, lengths 10/7/4):
  qwen2        Qwen2ForCausalLM: q/k/v biases, no o bias, GQA 4/2
  qwen2-rm     Qwen2ForSequenceClassification (num_labels 1, tied embeddings)
  llama3       LlamaForCausalLM, rope_type llama3 (factor 8, original context 16,
               head_dim 4: one frequency in the smoothed band, one divided by 8)
  llama-linear LlamaForCausalLM, rope_type linear (factor 2)
  mistral      MistralForCausalLM, sliding_window 4 (< T), head_dim 8 != C/heads
  mistral-rm   MistralForSequenceClassification
  qwen3        Qwen3ForCausalLM: q/k RMSNorm, head_dim 8 != C/heads
  qwen3-rm     Qwen3ForSequenceClassification
  qwen3-yarn   Qwen3ForCausalLM with rope_type yarn (factor 4, original context 8,
               head_dim 16: the ramp spans several frequencies; attention factor 1.139)
  gemma2       Gemma2ForCausalLM: (1+w) norms, sqrt(C) embeddings, GeGLU, sandwich
               norms, attention soft-cap 2, final soft-cap 5, query_pre_attn_scalar 6 (head_dim 4),
               local (window 4) / global layers alternating
  gemma2-rm    Gemma2ForSequenceClassification
  gemma3       Gemma3ForCausalLM: Gemma 2 without soft-caps plus q/k norms, 3 layers
               local, local, global (window 4), local RoPE base 10000, global base
               1e6 with linear scaling 2, head_dim 8
  gemma3-rm    Gemma3TextForSequenceClassification
  phi3         Phi3ForCausalLM: fused qkv_proj and gate_up_proj, sliding_window 5
  phi3-rm      Phi3ForSequenceClassification
  phi3-partial Phi3ForCausalLM as Phi-4-mini: partial_rotary_factor 0.75 (6 of 8 head
               dimensions rotate) with longrope
  phi3-longrope Phi3ForCausalLM with rope_type longrope, original context 8 (< T: long
               factors) and attention_factor sqrt(1 + ln 8 / ln 8)
Windowed families are recorded without attention_mask (see record()'s note); with
right padding the real positions are the same.
Outputs (tests/oracle/fixtures/model-<name>/ and model-<name>.safetensors) as
make_fixtures.py's record(): hidden states, log-probs and entropies (or values),
and the gradient of every parameter, in float64 from the float32 weights.

It also writes tests/oracle/fixtures/cherry-saved-<name>/ with cherry's bin/init-model
from each fixture's config.json, loads it with from_pretrained (asserting no missing,
unexpected or misshaped tensor) and records the same outputs, so the C test checks
that transformers computes on cherry's files what cherry computes.

Run by hand (needs torch + transformers and a built bin/init-model), never by make check:
    make bin/init-model && python3 tests/oracle/make_family_fixtures.py
(--peft remakes only the PEFT adapters lora-peft-phi3, lora-peft-gemma2 for
tests/test_oracle_lora.c; --generation remakes only gen-families.json: greedy tokens of transformers' generate()
on the LM fixtures, for tests/test_oracle_generate.c.)
"""
import json
import os
import subprocess
import sys

import torch
import transformers as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import HERE, record  # noqa: E402

BASE = dict(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, initializer_range=0.2,
            bos_token_id=1, eos_token_id=2)
PAD = dict(pad_token_id=0, num_labels=1)
GEMMA2 = dict(head_dim=4, query_pre_attn_scalar=6, sliding_window=4, attn_logit_softcapping=2.0,
              final_logit_softcapping=5.0, hidden_activation="gelu_pytorch_tanh")
GEMMA3 = dict(num_hidden_layers=3, head_dim=8, query_pre_attn_scalar=8, sliding_window=4,
              layer_types=["sliding_attention", "sliding_attention", "full_attention"],
              rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                               "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0}},
              hidden_activation="gelu_pytorch_tanh")
PHI3 = dict(sliding_window=5, original_max_position_embeddings=64, pad_token_id=0)
# Phi-4-mini's shape: partial rotary 0.75 (6 of head_dim 8 rotate) under longrope.
PHI3_PARTIAL = dict(num_attention_heads=2, num_key_value_heads=1, original_max_position_embeddings=8, pad_token_id=0,
                    rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.2, 1.5],
                                     "long_factor": [1.5, 2.5, 4.0], "original_max_position_embeddings": 8,
                                     "partial_rotary_factor": 0.75})
# LongRoPE (Phi-3-mini-128k, Phi-3.5-mini): original context 8 < T = 10, so the batch
# uses the long factors; attention_factor from max_position_embeddings / 8.
PHI3_LONG = dict(original_max_position_embeddings=8, pad_token_id=0,
                 rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.3],
                                  "long_factor": [1.5, 4.0], "original_max_position_embeddings": 8})

# name: (config class, model class, config overrides)
FAMILIES = {
    "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, dict(rope_theta=10000.0)),
    "qwen2-rm": (tf.Qwen2Config, tf.Qwen2ForSequenceClassification, dict(tie_word_embeddings=True, **PAD)),
    "llama3": (tf.LlamaConfig, tf.LlamaForCausalLM,
               dict(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 16})),
    "llama-linear": (tf.LlamaConfig, tf.LlamaForCausalLM,
                     dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})),
    "mistral": (tf.MistralConfig, tf.MistralForCausalLM, dict(sliding_window=4, head_dim=8)),
    "mistral-rm": (tf.MistralConfig, tf.MistralForSequenceClassification, dict(sliding_window=4, head_dim=4, **PAD)),
    "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM, dict(head_dim=8)),
    "qwen3-rm": (tf.Qwen3Config, tf.Qwen3ForSequenceClassification, dict(head_dim=8, **PAD)),
    "qwen3-yarn": (tf.Qwen3Config, tf.Qwen3ForCausalLM,
                   dict(head_dim=16, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                      "original_max_position_embeddings": 8})),
    "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM, GEMMA2),
    "gemma2-rm": (tf.Gemma2Config, tf.Gemma2ForSequenceClassification, dict(GEMMA2, **PAD)),
    "gemma3": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM, GEMMA3),
    "gemma3-rm": (tf.Gemma3TextConfig, tf.Gemma3TextForSequenceClassification, dict(GEMMA3, **PAD)),
    "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM, PHI3),
    "phi3-rm": (tf.Phi3Config, tf.Phi3ForSequenceClassification, dict(PHI3, num_labels=1)),
    "phi3-longrope": (tf.Phi3Config, tf.Phi3ForCausalLM, PHI3_LONG),
    "phi3-partial": (tf.Phi3Config, tf.Phi3ForCausalLM, PHI3_PARTIAL),
}


def build(name):
    cfg_cls, model_cls, over = FAMILIES[name]
    kw = dict(BASE)
    kw.update(over)
    torch.manual_seed(sum(map(ord, name)))
    model = model_cls(cfg_cls(**kw))
    # Non-trivial norms and biases, as make_fixtures.py does.
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.float().eval()


# Families whose cherry-written directory transformers must load (bin/init-model
# --config model-<name>/config.json): config.json keys and tensor names of cherry's
# writer, LM and classifier heads.
CHERRY_SAVED = ["qwen2", "llama3", "mistral", "qwen3", "gemma2", "gemma3", "gemma3-rm", "phi3", "phi3-rm", "phi3-longrope",
                "qwen3-yarn", "phi3-partial"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cherry_saved(name, seed):
    """bin/init-model writes a random model of the fixture's config; transformers must
    load every tensor, no more, no less, into the same architecture."""
    src, d = os.path.join(HERE, "model-" + name), os.path.join(HERE, "cherry-saved-" + name)
    subprocess.run([os.path.join(ROOT, "bin", "init-model"), "--config", os.path.join(src, "config.json"), "-o", d,
                    "--init-std", "0.2", "--seed", str(seed), "-q"], check=True)
    arch = tf.AutoConfig.from_pretrained(d).architectures[0]
    cls = getattr(tf, arch)
    model, info = cls.from_pretrained(d, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    assert not bad, "%s: transformers did not load cherry's file cleanly: %s" % (d, bad)
    assert type(model) is type(build(name)), (type(model), name)
    window = getattr(model.config, "sliding_window", None)
    record(model.eval(), d + ".safetensors", {"source": "cherry (bin/init-model)", "architecture": arch},
           generator="tests/oracle/make_family_fixtures.py", use_mask=not window)


# Greedy decoding with transformers' generate() on the LM fixtures, in
# make_generate_fixtures.py's format (tests/test_oracle_generate.c reads both files).
# Prompts plus 16 new tokens reach position 27, well past the sliding windows (4, 5).
GEN_PROMPTS = [[5, 17, 42, 3, 60], [7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [33, 33, 33]]
GEN_NEW = 16
GEN_MODELS = ["qwen2", "llama3", "llama-linear", "mistral", "qwen3", "qwen3-yarn", "gemma2", "gemma3", "phi3",
              "phi3-longrope", "phi3-partial"]


def generation():
    out = {"generator": "tests/oracle/make_family_fixtures.py, transformers %s, torch %s" % (
        tf.__version__, torch.__version__), "new_tokens": GEN_NEW, "models": []}
    for name in GEN_MODELS:
        d = os.path.join(HERE, "model-" + name)
        model = FAMILIES[name][1].from_pretrained(d, attn_implementation="eager").eval()
        eos = model.config.eos_token_id
        cases = []
        for prompt in GEN_PROMPTS:
            ids = torch.tensor([prompt])
            # longrope switches to the long factors for the tokens past the original
            # context while the cache keeps the keys rotated with the short ones, so a
            # full recompute is another function: take generate()'s own raw logits there
            longrope = (getattr(model.config, "rope_parameters", None) or {}).get("rope_type") == "longrope"
            with torch.no_grad():
                g = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=GEN_NEW,
                                   output_logits=True, return_dict_in_generate=True, pad_token_id=0)
                toks = g.sequences[0, len(prompt):].tolist()
                logps, gaps = [], []
                for step in range(len(toks)):
                    if longrope:
                        full = g.logits[step][0].double()
                    else:  # raw logits of a full recompute
                        full = model(torch.tensor([prompt + toks[:step]])).logits[0, -1].double()
                    logps.append(float(torch.log_softmax(full, -1)[toks[step]]))
                    top2 = torch.topk(full, 2).values
                    gaps.append(float(top2[0] - top2[1]))
                    assert int(torch.argmax(full)) == toks[step], (name, prompt, step)
            finish = "stop" if toks and toks[-1] == eos else "length"
            cases.append({"prompt": prompt, "eos": eos, "finish_reason": finish, "tokens": toks, "logprobs": logps,
                          "gaps": gaps})
        out["models"].append({"dir": "model-" + name, "family": name, "cases": cases})
        print("generation %-14s %s" % (name, [len(c["tokens"]) for c in cases]))
    with open(os.path.join(HERE, "gen-families.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


# Adapters made by PEFT itself on family fixtures (tests/test_oracle_lora.c): the fused
# Phi-3 modules and Gemma 2's attention/MLP, random B so they change the outputs.
PEFT_ADAPTERS = {"peft-phi3": ("model-phi3", ["qkv_proj", "gate_up_proj", "o_proj"]),
                 "peft-gemma2": ("model-gemma2", ["q_proj", "v_proj", "down_proj"])}


def peft_adapters():
    import shutil
    from peft import LoraConfig, get_peft_model
    from make_lora_fixtures import record as lora_record, relocate
    for name, (base_name, targets) in PEFT_ADAPTERS.items():
        torch.manual_seed(11)
        base = tf.AutoModelForCausalLM.from_pretrained(os.path.join(HERE, base_name), dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=targets, lora_dropout=0.0,
                                                task_type="CAUSAL_LM"))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
        ad = os.path.join(HERE, "lora-" + name)
        shutil.rmtree(ad, ignore_errors=True)
        model.save_pretrained(ad)
        relocate(ad, base_name)
        lora_record(name, base_name, False)


def main():
    torch.set_num_threads(2)
    if sys.argv[1:] == ["--peft"]:
        peft_adapters()
        return
    if sys.argv[1:] == ["--generation"]:
        generation()
        return
    names = sys.argv[1:] or list(FAMILIES)
    for name in names:
        model = build(name)
        d = os.path.join(HERE, "model-" + name)
        model.save_pretrained(d, safe_serialization=True)
        reloaded = type(model).from_pretrained(d, attn_implementation="eager").eval()
        window = getattr(reloaded.config, "sliding_window", None)
        record(reloaded, os.path.join(HERE, "model-" + name + ".safetensors"), {"source": "transformers"},
               generator="tests/oracle/make_family_fixtures.py", use_mask=not window)
    for i, name in enumerate(CHERRY_SAVED):
        if name in names:
            cherry_saved(name, 100 + i)
    if not sys.argv[1:]:
        generation()
        peft_adapters()


if __name__ == "__main__":
    main()
