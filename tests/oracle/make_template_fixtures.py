#!/usr/bin/env python3
"""make_template_fixtures.py — oracle fixtures for cherry's Jinja chat-template
interpreter (common/formats/jinja*.c, checked by tests/test_chat_template_oracle.c).

Renders every template in tests/oracle/templates/*.jinja (real chat templates; their
origin is in tests/oracle/templates/README.md) over the conversations below with
transformers' own `apply_chat_template(tokenize=False)`, each with
add_generation_prompt false and true, and records the text byte for byte — or, when
the template raises (Gemma's "System role not supported", role alternation, ...), that
it raised.  Variables: the family's bos_token/eos_token (a tokenizer carrying just those
special tokens), tools=None unless the conversation has tools, and date_string
"26 Jul 2024" (what Llama 3.x templates print without strftime_now, which cherry
leaves undefined so renderings stay reproducible).

Outputs (committed; `make check` never runs Python):
  tests/oracle/templates/conversations.json  [{"messages": [...], "tools": [...]|null}, ...]
  tests/oracle/templates/cases.jsonl         {"template": file, "conv": i, "gen": bool,
                                              "vars": {...}, "text": str | "error": str}
Run:  python3 tests/oracle/make_template_fixtures.py   (needs transformers, tokenizers, jinja2)
"""
import glob
import json
import os
import sys

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
TPL_DIR = os.path.join(HERE, "templates")

# bos/eos of each family (as their tokenizer_config.json sets them); None = unset
FAMILY = [
    ("meta-llama-Llama-3", "<|begin_of_text|>", "<|eot_id|>"),
    ("NousResearch-Hermes-3", "<|begin_of_text|>", "<|im_end|>"),
    ("meta-llama-Llama-2", "<s>", "</s>"),
    ("vigogne", "<s>", "</s>"),
    ("mistralai", "<s>", "</s>"),
    ("HuggingFaceH4-zephyr", "<s>", "</s>"),
    ("microsoft-Phi-3", "<s>", "<|endoftext|>"),
    ("Qwen", None, "<|im_end|>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("google-gemma", "<bos>", "<eos>"),
    ("HuggingFaceTB-SmolLM2", "<|im_start|>", "<|im_end|>"),
    ("chatml", "<s>", "<|im_end|>"),
]

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
            },
            "required": ["city"],
        },
    },
}]

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hello"}]},
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]},
    {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there!"},
                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "  Tell me a joke.\n"}]},
    {"messages": [{"role": "user", "content": "日本語で答えて 😀"},
                  {"role": "assistant", "content": "  はい、123 です。 \n"}, {"role": "user", "content": "Thanks\n\n"}]},
    {"messages": [{"role": "system", "content": "Sys\nline two"}, {"role": "user", "content": "a"},
                  {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
                  {"role": "assistant", "content": "d"}]},
    {"messages": [{"role": "user", "content": "quote ' and \" and \\ and {{ braces }} {% tag %} <|im_end|> </s>"}]},
    {"tools": TOOLS,
     "messages": [{"role": "system", "content": "You can call tools."},
                  {"role": "user", "content": "What's the weather in Paris?"},
                  {"role": "assistant", "content": "",
                   "tool_calls": [{"id": "call12345", "type": "function",
                                   "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
                  {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temp\": 21}"},
                  {"role": "assistant", "content": "It is 21 degrees in Paris."}]},
    {"tools": TOOLS, "messages": [{"role": "user", "content": "Weather in Oslo?"}]},
    {"messages": [{"role": "user", "content": "Think first."},
                  {"role": "assistant", "content": "<think>\nLet me see.\n</think>\n\nDone."},
                  {"role": "user", "content": "Again?"}]},
]


def family(name):
    for prefix, bos, eos in FAMILY:
        if name.startswith(prefix):
            return bos, eos
    raise SystemExit(f"no family for {name}")


def tokenizer(bos, eos):
    kw = {}
    if bos is not None:
        kw["bos_token"] = bos
    if eos is not None:
        kw["eos_token"] = eos
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")), **kw)


def main():
    files = sorted(glob.glob(os.path.join(TPL_DIR, "*.jinja")))
    with open(os.path.join(TPL_DIR, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump([{"messages": c["messages"], "tools": c.get("tools")} for c in CONVERSATIONS], f,
                  ensure_ascii=False, indent=1)
    n_ok = n_err = 0
    with open(os.path.join(TPL_DIR, "cases.jsonl"), "w", encoding="utf-8") as out:
        for path in files:
            name = os.path.basename(path)
            with open(path, encoding="utf-8") as f:
                src = f.read()
            bos, eos = family(name)
            tok = tokenizer(bos, eos)
            vars_ = {"date_string": "26 Jul 2024"}
            if bos is not None:
                vars_["bos_token"] = bos
            if eos is not None:
                vars_["eos_token"] = eos
            for i, conv in enumerate(CONVERSATIONS):
                for gen in (False, True):
                    rec = {"template": name, "conv": i, "gen": gen, "vars": vars_}
                    try:
                        rec["text"] = tok.apply_chat_template(conv["messages"], tools=conv.get("tools"),
                                                              chat_template=src, add_generation_prompt=gen,
                                                              tokenize=False, date_string="26 Jul 2024")
                        n_ok += 1
                    except Exception as ex:  # the template raised (or jinja2 failed on it)
                        rec["error"] = f"{type(ex).__name__}: {ex}"
                        n_err += 1
                    out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{len(files)} templates x {len(CONVERSATIONS)} conversations x 2: {n_ok} renderings, {n_err} errors",
          file=sys.stderr)


if __name__ == "__main__":
    main()
