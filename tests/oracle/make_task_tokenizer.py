#!/usr/bin/env python3
"""Trains the bundled task's tokenizer (data/tokenizer.json), run by hand.

A GPT-2-style byte-level BPE (ByteLevel pre-tokenizer with the GPT-2 regex, the
ByteLevel decoder, <|endoftext|> as BOS/EOS/pad) trained with the `tokenizers`
library on text written by `bin/task-gen --kind corpus`, so every task word is one
token and sequences stay short for a tiny model.  The result is committed; nothing
at run time needs Python.
"""
import subprocess, sys, os
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
corpus = subprocess.run([os.path.join(root, "bin", "task-gen"), "--kind", "corpus", "-n", "20000", "--seed", "7"],
                        check=True, capture_output=True, text=True).stdout
import json
texts = [json.loads(l)["text"] for l in corpus.splitlines()]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator(texts, trainer)
out = os.path.join(root, "data", "tokenizer.json")
tok.save(out)
cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
       "pad_token": "<|endoftext|>", "model_max_length": 128}
with open(os.path.join(root, "data", "tokenizer_config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
print("vocab", tok.get_vocab_size(), "->", out)
print(tok.encode("Repeat: red fox sky\nAnswer: red fox sky. Glad to help!").tokens)
