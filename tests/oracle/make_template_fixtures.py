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
  tests/oracle/templates/token_cases.jsonl   {"template", "tok", "patch", "vars", "conv", "gen", "ids"}:
                                              token ids of apply_chat_template(tokenize=True)
                                              with the test tokenizers of
                                              tests/oracle/tokenizers/ (sentencepiece-style BPE
                                              for Llama-2/Mistral/Zephyr/Gemma, byte-level for
                                              Llama-3.1/Qwen2.5), where no message holds a
                                              special-token string (cherry keeps those as text)
  tests/oracle/templates/snippets.jsonl      {"src": template, "vars": {...}, "text" | "error"}:
                                              small templates for each construct, filter, test
                                              and method the interpreter supports, rendered by
                                              the same jinja2 environment transformers builds
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
    ("meetkai-functionary", "<|begin_of_text|>", "<|eot_id|>"),
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


# One construct each; vars are passed as template variables.
SNIPPETS = [
    ("a {{- ' b ' -}} c", {}),
    ("a  {%- if true %} b {% endif -%}  c", {}),
    ("line1\n    {% if true %}\n    x\n    {% endif %}\n  y", {}),
    ("  {{ 'v' }}  \n  {% if true %}t{% endif %}  \n", {}),
    ("{# comment #}\n{#- c2 -#}  z {#+ c3 #}\n", {}),
    ("a\n  {%+ if true %}b{% endif %}", {}),
    ("x\r\ny\rz\n", {}),
    ("{% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
     "{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", {}),
    ("{% for x in xs %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% else %}empty{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", {"xs": []}),
    ("{% for x in xs if x % 2 %}{{ x }}{{ loop.index }}{{ loop.last }} {% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}{% for k, v in d|items %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": [1, "x"]}}),
    ("{% for k in d %}{{ k }}{% endfor %}{% for ch in 'héllo' %}[{{ ch }}]{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}"
     "{% endfor %}", {}),
    ("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}"
     "{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("{% set a, b = 1, 'two' %}{{ a }}{{ b }}{% set t %}block {{ a }}{% endset %}[{{ t }}]", {}),
    ("{% macro m(a, b='d', c=none) %}<{{ a }}|{{ b }}|{{ c }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, c=3) }}"
     "{{ m('x', b=[1]) }}", {}),
    ("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", {}),
    ("{{ 1 + 2 * 3 - 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} "
     "{{ 7.5 // 2 }} {{ 1 / 3 }}", {}),
    ("{{ 2 * 3 ~ 2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 10 - 2 - 3 }} {{ 2 ** 2 * 3 }} {{ 100 / 10 / 5 }} {{ 7 - 2 * 3 }} "
     "{{ true or true and false }} {{ not 1 == 2 and 3 in [3] }} {{ 0 or '' or 'x' }} {{ 1 and 2 and 0 }}", {}),
    ("{{ 1 ~ 2 + 3 }}", {}),  # + binds looser than ~: ('12') + 3 raises
    ("{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ -2.5e-7 }} "
     "{{ 3.0 }} {{ 1.5e300 * 1e10 }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }} {{ 'x' + 'y' }}", {}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' != 'b' }} {{ 2 < 3 }} {{ 'b' > 'a' }} {{ 2 >= 2.0 }} {{ [1, 2] == [1, 2] }}"
     " {{ {'a': 1} == {'a': 1} }} {{ none == none }} {{ u == u }}", {}),
    ("{{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [3] }}", {}),
    ("{{ true and 'x' }} {{ 0 or 'y' }} {{ not none }} {{ none or [] }} {{ '' and 1 }} {{ 1 if false }}|"
     "{{ 'a' if 0 else 'b' }}", {}),
    ("{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}, ('t', 2)] }} {{ {'a': {'b': []}} }} {{ none }} {{ u }}|", {}),
    ("{{ s[0] }}{{ s[-1] }}{{ s[1:3] }}{{ s[::-1] }}{{ s[::2] }}{{ s[-2:] }}{{ s[:-2] }}|{{ xs[1:] }}{{ xs[::-1] }}"
     "{{ xs[-1] }}{{ xs[10] }}{{ xs[-2:-5:-1] }}", {"s": "héllo😀", "xs": [1, 2, 3, 4]}),
    ("{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ m.get('role') }} {{ m.get('nope', 'dflt') }} "
     "{{ m.get('nope') }} {{ m.keys()|list }} {{ m.values()|list }}", {"m": {"role": "user", "content": "hi"}}),
    ("{{ '  x y \\t\\n'|trim }}|{{ 'xxhixx'|trim('x') }}|{{ ' a '.strip() }}|{{ ' a '.lstrip() }}|"
     "{{ ' a '.rstrip() }}|{{ '\\n\\nq\\n'.strip('\\n') }}|{{ 'ab'.lstrip('ba') }}|{{ s.strip() }}",
     {"s": "\u3000\u00a0 wide \u2003"}),
    ("{{ 'a,b,,c'.split(',') }} {{ ' a  b \\n c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'x</t>y</t>z'.split('</t>')[-1] }}"
     " {{ 'a b c'.split(none, 1) }} {{ 'a,b'.rsplit(',') }}", {}),
    ("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith('lo') }} {{ 'Hello'.startswith(('x', 'H')) }} "
     "{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'Ab'.upper() }}{{ 'Ab'.lower() }} "
     "{{ 'aXbXc'.replace('X', '-') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.replace('', '.') }} "
     "{{ 'banana'.find('an') }} {{ 'banana'.count('a') }} {{ '-'.join(['a', 'b']) }} {{ '{}+{}={x}'.format(1, 2, x=3) }}",
     {}),
    ("{{ xs|length }} {{ 'héllo'|length }} {{ d|length }} {{ u|length }} {{ xs|count }} {{ 'ab'|upper }} {{ 'AB'|lower }}"
     " {{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ xs|first }} {{ xs|last }} {{ xs|join(', ') }} "
     "{{ xs|reverse|list }} {{ [1, 2, 1]|unique|list }} {{ 'abc'|list }}", {"xs": [3, 1, 2], "d": {"a": 1}}),
    ("{{ u|default('dflt') }} {{ ''|default('e') }} {{ ''|default('e', true) }} {{ none|default('n') }} "
     "{{ x|d('q') }}", {"x": 0}),
    ("{{ 'a-b-c'|replace('-', '+') }} {{ 1|string }}{{ [1]|string }} {{ -3|abs }} {{ '42'|int + 1 }} {{ '2.5'|float }}"
     " {{ 3.9|int }} {{ 'x'|int }} {{ 'ab'|safe }}", {}),
    ("{{ ms|selectattr('role', 'equalto', 'user')|list|length }} {{ ms|rejectattr('role', 'eq', 'user')|map(attribute='c')"
     "|join }} {{ ms|selectattr('tool')|list|length }} {{ ms|map(attribute='role')|list }} {{ [1, 0, 2]|select|list }}"
     " {{ [1, 2, 3]|reject('odd')|list }} {{ ['a', 'B']|map('upper')|list }}",
     {"ms": [{"role": "user", "c": "1", "f": {"n": "x"}}, {"role": "assistant", "c": "2", "tool": True},
             {"role": "user", "c": "3"}]}),
    ("{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ 'q\"\\\\ é\\n\\u0001\\t/<>&\\''|tojson }}|{{ [1.0, 2.5e-8, true, none]|tojson }}|"
     "{{ {}|tojson }}{{ []|tojson(indent=4) }}", {"d": {"name": "f", "args": {"x": [1, 2], "y": {}}, "n": None}}),
    ("{{ 'text\\nmore\\n\\nend'|indent(2) }}|{{ 'a\\nb'|indent(first=true) }}|{{ 'a\\n\\nb'|indent(3, blank=true) }}", {}),
    ("{{ x is defined }} {{ u is defined }} {{ u is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }}"
     " {{ 1.5 is float }} {{ 1 is integer }} {{ d is mapping }} {{ xs is iterable }} {{ 'a' is iterable }} "
     "{{ xs is sequence }} {{ true is boolean }} {{ true is true }} {{ 0 is false }} {{ 3 is odd }} {{ 4 is even }} "
     "{{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 'a' is eq 'a' }} {{ 1 is ne 2 }} {{ 2 is lt 3 }} "
     "{{ 'x' is in 'xyz' }} {{ 'abc' is lower }} {{ 'AbC' is upper }} {{ none is sameas none }} {{ x is not none }}",
     {"x": 1, "d": {}, "xs": [1]}),
    ("{{ \"double \\\"q\\\"\" }} {{ 'single \\'q\\'' }} {{ 'a' 'b' \"c\" }} {{ '\\x41\\u00e9\\101\\d' }}", {}),
    ("{{ {'a': 1, 'b': [1, 2,], }['b'][1] }} {{ (1, 2)[0] }} {{ ((1)) }} {{ [] }} {{ () }} {{ {} }}", {}),
    ("{% if a %}A{% elif b %}B{% elif c %}C{% else %}D{% endif %}{% if not a and not b %}N{% endif %}",
     {"a": 0, "b": "", "c": [1]}),
    ("{{ raise_exception('boom: ' ~ 42) }}", {}),
    ("{{ u.attr }}", {}),
    ("{{ u + 1 }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{% for x in none %}{% endfor %}", {}),
    ("{{ 'abc'[1:2:0] }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ range(200000)|length }}", {}),
    ("{{ xs.append(1) }}", {"xs": []}),
    ("{% set ns = namespace() %}{% set ns._x = 1 %}", {}),
    ("{{ {'a': 1e308 * 10, 'b': -1e308 * 10}|tojson }}", {}),
    ("{{ dict(a=1, b='x') }} {{ dict(a=1)|tojson }}", {}),
    ("{{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [3, 1, 2]|sort(reverse=true) }} "
     "{{ ts|sort(attribute='f.n')|map(attribute='id')|list }} {{ {'b': 1, 'A': 2}|dictsort }} "
     "{{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }}",
     {"ts": [{"id": 1, "f": {"n": "zed"}}, {"id": 2, "f": {"n": "alpha"}}, {"id": 3, "f": {"n": "Beta"}}]}),
    ("{{ [1, 2, 3]|sum }} {{ [1, 2.5]|sum }} {{ ts|sum(attribute='id') }} {{ ['b', 'A']|min }} {{ [3, 9, 2]|max }} "
     "{{ ts|max(attribute='id') }} {{ []|min }}|", {"ts": [{"id": 1}, {"id": 5}]}),
    ("{{ 2.5|round }} {{ 3.14159|round(2) }} {{ 0.5|round }} {{ 1.5|round }} {{ 2.675|round(2) }} {{ -0.5|round }} "
     "{{ 3|round }} {{ 2.7|round(0, 'floor') }} {{ 2.1|round(method='ceil') }}", {}),
    ("{{ '%s=%d (%r) %%'|format('a', 3, 'q') }} {{ '<a href=\"x\">&</a>'|e }} {{ \"it's\"|e }} {{ 'x<y'|escape }}",
     {}),
    ("{% for i in range(5) %}{{ loop.cycle('x', 'y', 'z') }}{% endfor %} {{ 'abc'.removeprefix('ab') }} "
     "{{ 'abc'.removesuffix('bc') }} {{ 'abc'.removeprefix('zz') }}", {}),
    ("{{ [1, 'a']|sort }}", {}),
    ("{%- filter trim -%}\n  padded {{ x }}  \n{%- endfilter %}|{% filter replace('a', 'b') %}banana{% endfilter %}|"
     "{% filter upper %}{% for i in range(2) %}x{{ i }}{% endfor %}{% endfilter %}", {"x": 1}),
    ("{{ '<b>'|safe + '<i>' }} {{ '<i>' + '<b>'|safe }} {{ ('a&'|e + 'b&')|e }} {{ ('x'|safe + 1|string)|length }} "
     "{{ strftime_now is defined }}", {}),
    ("{{ none|selectattr('x')|list }} {{ none|map(attribute='x')|list }} {{ (xs|select)|list }} "
     "{{ 'yes' if xs|reject else 'no' }} {{ xs|map('string')|join('-') }}", {"xs": [0, 1]}),
    ("{{ xs|select|length }}", {"xs": [1]}),
    ("{{ xs|map('string')|tojson }}", {"xs": [1]}),
    ("{{ (xs|select)[0] }}", {"xs": [1]}),
    ("{{ '%s %s'|format('only one') }}", {}),
]


META = "\u2581"
TOKENIZED = [
    # template, tokenizer file, top-level patch, bos, eos
    ("meta-llama-Llama-2-7b-chat-hf.jinja", "llama2.json", None, "<s>", "</s>"),
    ("mistralai-Mistral-7B-Instruct-v0.2-old.jinja", "llama2.json", None, "<s>", "</s>"),
    ("mistralai-Mistral-7B-Instruct-v1-system.jinja", "llama2.json",
     {"normalizer": None,
      "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}},
     "<s>", "</s>"),
    ("HuggingFaceH4-zephyr-7b-beta.jinja", "llama2.json", None, "<s>", "</s>"),
    ("google-gemma-3-it.jinja", "llama2.json",
     {"normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": META}}, "<s>", "</s>"),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3.json", None, "<|begin_of_text|>", "<|eot_id|>"),
    ("Qwen-Qwen2.5-7B-Instruct.jinja", "smol.json", "NO_USER_TOKEN", None, "<|im_end|>"),
    ("Qwen-Qwen3-0.6B.jinja", "smol.json", "NO_USER_TOKEN", None, "<|im_end|>"),
]


def token_cases():
    tok_dir = os.path.join(HERE, "tokenizers")
    out = []
    for tname, tokfile, patch, bos, eos in TOKENIZED:
        with open(os.path.join(TPL_DIR, tname), encoding="utf-8") as f:
            src = f.read()
        with open(os.path.join(tok_dir, tokfile), encoding="utf-8") as f:
            d = json.load(f)
        if patch == "NO_USER_TOKEN":  # smol.json's test-only added token "<|im_start|>user"
            patch = {"added_tokens": [t for t in d["added_tokens"] if t["content"] != "<|im_start|>user"]}
        if patch:
            d.update(patch)
        kw = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(d)), **kw)
        specials = {t["content"] for t in d["added_tokens"] if t["special"]}
        for i, conv in enumerate(CONVERSATIONS):
            if any(sp in m.get("content", "") for m in conv["messages"] for sp in specials):
                continue
            for gen in (False, True):
                try:
                    enc = tok.apply_chat_template(conv["messages"], tools=conv.get("tools"), chat_template=src,
                                                  add_generation_prompt=gen, tokenize=True,
                                                  date_string="26 Jul 2024")
                except Exception:
                    continue  # the template raises: covered by cases.jsonl
                ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
                out.append({"template": tname, "tok": tokfile, "patch": patch, "vars": kw, "conv": i, "gen": gen,
                            "ids": list(ids)})
    return out


def snippets():
    from transformers.utils.chat_template_utils import _compile_jinja_template
    out = []
    for src, vars_ in SNIPPETS:
        rec = {"src": src, "vars": vars_}
        try:
            rec["text"] = _compile_jinja_template(src).render(**vars_)
        except Exception as ex:
            rec["error"] = f"{type(ex).__name__}: {ex}"
        out.append(rec)
    return out


def main():
    with open(os.path.join(TPL_DIR, "token_cases.jsonl"), "w", encoding="utf-8") as f:
        for rec in token_cases():
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    with open(os.path.join(TPL_DIR, "snippets.jsonl"), "w", encoding="utf-8") as f:
        for rec in snippets():
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":"), allow_nan=True) + "\n")
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
