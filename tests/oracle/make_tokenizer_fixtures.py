#!/usr/bin/env python3
"""make_tokenizer_fixtures.py — oracle fixtures for cherry's tokenizer (common/formats/tokenizer.c).

Trains small byte-level BPE tokenizers with the Hugging Face `tokenizers` library on
text generated here (deterministic, seed 1234), saves their tokenizer.json into
tests/oracle/tokenizers/, and records what the library does on a test corpus:

  tests/oracle/tokenizers/gpt2.json    GPT-2 style: ByteLevel(use_regex) pre-tokenizer,
                                        <|endoftext|>, merges rewritten to the old
                                        "a b" string form
  tests/oracle/tokenizers/llama3.json  Llama-3 style: Split(Llama-3 regex, Isolated) +
                                        ByteLevel(use_regex=false), ignore_merges,
                                        TemplateProcessing with <|begin_of_text|>
  tests/oracle/tokenizers/smol.json    SmolLM2 style: Digits(individual) +
                                        ByteLevel(use_regex); ChatML specials; added
                                        tokens with lstrip / rstrip / single_word
  tests/oracle/tokenizers/llama2.json  Llama-2 / Mistral style (sentencepiece BPE): BPE with
                                        byte_fallback and fuse_unk, <0x00>..<0xFF> in the
                                        vocabulary, normalizer Prepend("▁") + Replace(" ", "▁"),
                                        no pre-tokenizer, decoder Replace + ByteFallback + Fuse
                                        + Strip, TemplateProcessing with <s>; patches give the
                                        newer Metaspace(prepend_scheme first) conversion, Gemma's
                                        Replace-only normalizer, Metaspace always/split/never
  tests/oracle/tokenizers/unigram.json Unigram (T5 / ALBERT style sentencepiece): trained with
                                        UnigramTrainer, Metaspace pre-tokenizer and decoder,
                                        <unk>, <0xXX> pieces; a patch: WhitespaceSplit
  tests/oracle/tokenizers/unigram_bf.json  the same with byte_fallback
  tests/oracle/tokenizers/chat_cases.jsonl  chat templates (chatml, llama3) rendered by
                                        jinja2 from the models' Jinja sources, with the
                                        library's ids for the rendered text
  tests/oracle/tokenizers/cases.jsonl  one case per line:
      {"tok": file, "patch": {...}|null, "input": text | "input_hex": bytes,
       "parse_special": bool, "post": bool, "ids": [...], "decoded": text}
    input_hex (hex of the raw bytes) is used instead of input when the bytes are not
    valid UTF-8 (JSON strings cannot hold them).
    patch: top-level keys of the tokenizer.json replaced before loading (used to try
    other pre-tokenizer configurations — Split behaviours, invert, add_prefix_space —
    without committing more vocabularies).
    post: ids include the post-processor (add_special_tokens=True).
    parse_special false = tokenizer.encode_special_tokens = True (special-token
    strings are encoded as ordinary text; non-special added tokens still match).

Invalid UTF-8: a Python str cannot hold invalid UTF-8, so the input bytes are
decoded with bytes.decode("utf-8", "replace") (each maximal invalid subsequence ->
U+FFFD) and that text is given to the library; cherry must produce the same ids from
the raw bytes.  decoded is tokenizer.decode(ids) (skip_special_tokens=False)
(a UTF-8 string).

Run:  python3 tests/oracle/make_tokenizer_fixtures.py   (needs `pip install tokenizers`)
The outputs are committed; `make check` never runs Python.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizers")

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

rng = random.Random(1234)

# ---------------------------------------------------------------- training text
SYLL = ["ka", "lo", "ri", "the", "an", "ing", "er", "sto", "pre", "ment", "tion", "qu", "ab", "el", "is", "on",
        "re", "de", "con", "ex", "ly", "ous", "ble", "str", "ph", "ch", "sh", "wh", "ai", "ou"]
WORDS = ["the", "a", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as",
         "with", "his", "they", "I", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but",
         "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each", "which",
         "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then", "them", "these",
         "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look", "two", "more", "write",
         "go", "see", "number", "no", "way", "could", "people", "my", "than", "first", "water", "been", "call",
         "who", "oil", "its", "now", "find", "long", "down", "day", "did", "get", "come", "made", "may", "part",
         "Human", "Assistant", "model", "reward", "policy", "token", "gradient", "train", "data", "learning"]
FOREIGN = ["日本語のテキストです。", "中文文本，测试一下。", "한국어 문장입니다.", "Привет, как дела?",
           "Ελληνικά γράμματα", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "café naïve résumé",
           "😀🎉👍🏽 emoji", "ñandú pingüino", "Größe straße"]


def gen_word():
    if rng.random() < 0.75:
        w = rng.choice(WORDS)
    else:
        w = "".join(rng.choice(SYLL) for _ in range(rng.randint(1, 4)))
    r = rng.random()
    if r < 0.1:
        w = w.capitalize()
    elif r < 0.13:
        w = w.upper()
    return w


def gen_sentence():
    parts = []
    for _ in range(rng.randint(4, 18)):
        w = gen_word()
        r = rng.random()
        if r < 0.05:
            w += rng.choice(["'s", "'t", "'ll", "'re", "'ve", "'d", "'m"])
        elif r < 0.1:
            w = str(rng.randint(0, 100000))
        elif r < 0.12:
            w = rng.choice(FOREIGN)
        parts.append(w)
    s = " ".join(parts)
    return s + rng.choice([".", "!", "?", ",", ":", ";", "...", ""])


def gen_text(n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            out.append("def f(x):\n    return x * %d  # comment\n" % rng.randint(0, 99))
        elif r < 0.12:
            out.append("\n\nHuman: " + gen_sentence() + "\n\nAssistant: " + gen_sentence())
        else:
            out.append(gen_sentence() + rng.choice([" ", "\n", "\n\n", "  "]))
    return out


TRAIN_TEXT = gen_text(6000)


def train(pre, specials, vocab_size, ignore_merges=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    return tok


def n_merges(tok):
    return len(json.loads(tok.to_str())["model"]["merges"])


def build():
    os.makedirs(OUT, exist_ok=True)
    toks = {}

    # GPT-2 style
    gpt2 = train(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), ["<|endoftext|>"], 2400)
    gpt2.post_processor = processors.ByteLevel(trim_offsets=False)
    gpt2.add_tokens([AddedToken("cherrytok", special=False, normalized=False)])
    d = json.loads(gpt2.to_str())
    # the older serialisation of merges: "a b" strings
    d["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in d["model"]["merges"]]
    toks["gpt2.json"] = d

    # Llama-3 style
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    llama = train(pre, specials, 2500, ignore_merges=True)
    llama.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", llama.token_to_id("<|begin_of_text|>"))]),
    ])
    toks["llama3.json"] = json.loads(llama.to_str())

    # SmolLM2 style
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    smol = train(pre, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 2450)
    smol.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)])
    smol.add_tokens([
        AddedToken("[[sep]]", rstrip=True, special=False, normalized=False),
        AddedToken("hello", single_word=True, special=False, normalized=True),
        AddedToken("<|im_start|>user", special=False, normalized=False),  # longer than a special: leftmost-longest
    ])
    toks["smol.json"] = json.loads(smol.to_str())

    toks.update(build_sentencepiece_style())

    for name, d in toks.items():
        nm = len(d["model"].get("merges", d["model"]["vocab"]))
        assert nm >= 1000, (name, nm)
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            json.dump(d, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{name}: {len(d['model']['vocab'])} vocab, {nm} merges", file=sys.stderr)
    return toks


BYTE_PIECES = ["<0x%02X>" % b for b in range(256)]
META = "\u2581"


def build_sentencepiece_style():
    """Llama-2-style BPE with byte fallback, and a Unigram model (no randomness used)."""
    out = {}
    # Llama-2 / Mistral: the sentencepiece BPE conversion transformers writes (legacy)
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(META), normalizers.Replace(" ", META)])
    trainer = trainers.BpeTrainer(vocab_size=1600, special_tokens=["<unk>", "<s>", "</s>"], min_frequency=2,
                                  limit_alphabet=90, show_progress=False)
    tok.train_from_iterator(TRAIN_TEXT, trainer=trainer)
    d = json.loads(tok.to_str())
    vocab = d["model"]["vocab"]
    for p in BYTE_PIECES:  # sentencepiece's byte pieces, at the end of the vocabulary
        if p not in vocab:
            vocab[p] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(d))
    tok.decoder = decoders.Sequence([decoders.Replace(META, " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    tok.add_tokens([AddedToken("[mid]", normalized=True, special=False),
                    AddedToken("<|tool|>", normalized=False, special=False),
                    AddedToken("<mask>", normalized=False, special=True, lstrip=True)])
    out["llama2.json"] = json.loads(tok.to_str())

    # Unigram (sentencepiece unigram as converted for T5 / ALBERT, without the charsmap)
    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True)
    uni.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    trainer = trainers.UnigramTrainer(vocab_size=1500, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                      max_piece_length=12, shrinking_factor=0.75, show_progress=False)
    uni.train_from_iterator(TRAIN_TEXT[:3000], trainer=trainer)
    d = json.loads(uni.to_str())
    have = {p for p, _ in d["model"]["vocab"]}
    low = min(sc for _, sc in d["model"]["vocab"])
    d["model"]["vocab"] += [[p, low] for p in BYTE_PIECES if p not in have]
    uni = Tokenizer.from_str(json.dumps(d))
    uni.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", uni.token_to_id("</s>"))])
    uni.add_tokens([AddedToken("<extra_id_0>", special=True, normalized=False)])
    out["unigram.json"] = json.loads(uni.to_str())
    bf = json.loads(uni.to_str())
    bf["model"]["byte_fallback"] = True
    out["unigram_bf.json"] = bf
    return out


# ---------------------------------------------------------------- test corpus
def corpus():
    c = [
        "", " ", "  ", "\n", "\n\n\n", "\t", " \t\n ", "a", "Hello world", "Hello  world", "Hello   world   ",
        "hello world!", "  leading spaces", "trailing spaces   ", "tabs\tand\ttabs", "mixed \t \n\n  \n end",
        "line1\nline2\r\nline3\rline4", "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.",
        "I'm sure you're right, they've said we'll go, he'd know, it's Tom's. I'M SURE YOU'RE. O'Neil's",
        "don't DON'T Don'T", "'s 's 'S", "12345678901234567890", "3.14159 and 2,718 and 1e-10", "x=1+2*3-4/5",
        "Phone: +1 (555) 123-4567", "١٢٣ Arabic-Indic digits ٤٥٦", "½ ⅔ ² ³ Ⅻ roman", "１２３ fullwidth",
        "日本語のテキストです。東京は大きい。", "中文文本，测试一下。我们去吃饭吧！", "한국어 문장입니다.",
        "Привет, как дела? Всё хорошо.", "مرحبا بالعالم! كيف حالك؟", "שלום עולם, מה שלומך?",
        "mixed עברית and English and العربية text", "नमस्ते दुनिया", "ภาษาไทย ไม่มีช่องว่าง",
        "😀🎉👍🏽 emoji 👨‍👩‍👧‍👦 family 🇫🇷🇯🇵 flags ❤️ heart", "🙂🙂🙂", "a😀b", "e\u0301 combining é vs e\u0301",
        "n\u0303o Zalgo: Z\u0351\u0355a\u0323l\u0329g\u0320o\u0358", "\u0915\u094d\u0937", "café naïve résumé",
        "nbsp\u00a0here", "ideographic\u3000space", "line\u2028separator", "nel\u0085char", "mongolian\u180evs",
        "en\u2002space em\u2003space thin\u2009space", "zero\u200bwidth\u200cjoiner\u200d", "bom\ufeffmark",
        "ctrl\x01\x02\x07\x1b[0m", "nul\x00byte", "del\x7f", "private\ue000use", "astral 𝔾𝕠𝕠𝕕 𝕞𝕠𝕣𝕟𝕚𝕟𝕘",
        "<|endoftext|>", "text<|endoftext|>more", "a <|endoftext|> b", "<|endoftext|><|endoftext|>",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "<|im_start|>system", "<|im_start|>users", "x <mask> y", "x    <mask>y", "<mask>", "a[[sep]]   b",
        "[[sep]]\n\nnext", "hello world", "say hello", "hellothere", "ohello", "hello_x", "hello-x", "(hello)",
        "cherrytok is an added token: cherrytokcherrytok", "<|endoftext", "endoftext|>", "<||>",
        "def f(x):\n    return x * 42  # comment\n", "    indented\n        more\n",
        "A" * 300, "ab" * 200, " " * 50 + "x", "\n" * 20 + "y", "!!!???...,,,;;;", "$$$ %%% ^^^ &&& ***",
        "http://example.com/path?q=1&r=2#frag", "user@example.com", "snake_case_name CamelCaseName",
        "ALLCAPS WORDS HERE", "MiXeD cAsE", "ſ long s and K kelvin", "İstanbul ı dotless", "ǅ titlecase",
    ]
    # invalid UTF-8 byte strings (kept as bytes)
    bad = [b"\xff", b"abc\xffdef", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98", b"\xf0\x9f\x98 x",
           b"\xed\xa0\x80 surrogate", b"\xc0\xaf overlong", b"\xf4\x90\x80\x80 too big", b"\x80\x80\x80 conts",
           b"ok \xfe\xfe end", b"\xe6\x97\xa5\xe6\x9c", b"mix \xf0\x9f\x98\x80 \xf0\x9f"]
    out = [s.encode("utf-8") for s in c] + bad
    # random strings over several scripts
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n\r  ",
        ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
        "日本語中文한국어テキスト",
        "αβγδεЖЗИЙКشلومעולם",
        "\u0301\u0308\u0323\u200d\ufe0f",
        "😀🎉👍🏽🇫\u00a0\u3000\u2028\u0085",
        "٠١٢٣४५६½²",
    ]
    for i in range(160):
        n = rng.randint(1, 60)
        s = []
        for _ in range(n):
            p = pools[rng.randrange(len(pools))] if rng.random() < 0.4 else pools[rng.choice([0, 0, 0, 2, 3])]
            s.append(rng.choice(p))
        b = "".join(s).encode("utf-8")
        if i % 25 == 0:
            pos = rng.randrange(len(b) + 1)
            b = b[:pos] + bytes([rng.randrange(128, 256)]) + b[pos:]
        out.append(b)
    # some training-like text (long enough to exercise long merge chains)
    for s in gen_text(40):
        out.append(s.encode("utf-8"))
    return out


def nfc_corpus():
    """Texts for the NFC normalizer: every character with a canonical decomposition,
    in NFD and as itself, in runs; Hangul; marks in non-canonical order."""
    import unicodedata
    chars = [chr(c) for c in range(0x110000)
             if not 0xD800 <= c <= 0xDFFF and unicodedata.decomposition(chr(c))
             and not unicodedata.decomposition(chr(c)).startswith("<")]
    out = []
    for i in range(0, len(chars), 40):
        run = "".join(chars[i:i + 40])
        out.append(run.encode("utf-8"))
        out.append(unicodedata.normalize("NFD", run).encode("utf-8"))
    marks = ["\u0301", "\u0323", "\u0307", "\u0308", "\u031b", "\u0345", "\u0328", "\u05b0", "\u0e38"]
    bases = ["a", "e", "o", "u", "A", "s", "q", "\u03b1", "\u1100\u1161", "\uac00", "\u0b47"]
    for _ in range(200):
        t = "".join(rng.choice(bases) + "".join(rng.choice(marks) for _ in range(rng.randint(0, 3)))
                    for _ in range(rng.randint(1, 6)))
        out.append(t.encode("utf-8"))
    out += ["\u212b angstrom \u2126 ohm".encode(), "\u1100\u1161\u11a8 jamo \u110b\u1175".encode(),
            unicodedata.normalize("NFD", "Tiếng Việt có dấu").encode(), "\u1e9b\u0323".encode(),
            "\u0b47\u0b3e oriya".encode()]
    return out


PATCHES = {
    "gpt2.json": [
        None,
        {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Contiguous", "invert": False},
            {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}},
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "o"}, "behavior": "Removed", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}},
    ],
    "llama3.json": [None, {"normalizer": {"type": "NFC"}}],
    "smol.json": [None],
    "llama2.json": [
        None,
        # the newer conversion (legacy=False): Metaspace pre-tokenizer, prepend only at the start
        {"normalizer": None,
         "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}},
        # Gemma: spaces replaced, nothing prepended, no Strip in the decoder
        {"normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": META},
         "decoder": {"type": "Sequence", "decoders": [
             {"type": "Replace", "pattern": {"String": META}, "content": " "},
             {"type": "ByteFallback"}, {"type": "Fuse"}]}},
        {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Strip", "strip_left": True,
                                                                                  "strip_right": False}]},
         "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True},
         "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}},
        {"normalizer": None,
         "pre_tokenizer": {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True},
         "decoder": {"type": "Metaspace", "replacement": META, "prepend_scheme": "never", "split": True}},
    ],
    "unigram.json": [
        None,
        {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": False}]}},
    ],
    "unigram_bf.json": [None],
}


def load_patched(d, patch):
    d = dict(d)
    if patch:
        d.update(patch)
    return Tokenizer.from_str(json.dumps(d))


# Chat templates as the models ship them (Jinja), rendered with jinja2 the way
# transformers' apply_chat_template does; cherry's chat.c must give the same text and,
# tokenized span by span, the same ids as the library on the whole text.
CHATML_JINJA = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                "{% endif %}")
LLAMA3_JINJA = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
                "{{ content }}{% endfor %}{% if add_generation_prompt %}"
                "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi there!"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "  Tell me a joke.\n"},
     {"role": "assistant", "content": "\nNo.  "}],
    [{"role": "user", "content": "日本語で答えて 😀"}, {"role": "assistant", "content": "はい、123 です。"}],
    [{"role": "user", "content": "injection <|im_start|>assistant <|eot_id|> text"},
     {"role": "assistant", "content": "ok<|im_end|>"}],
]


def chat_cases(toks):
    import jinja2
    env = jinja2.Environment()
    out = []
    for tpl_name, src, tok_name, bos in [("chatml", CHATML_JINJA, "smol.json", ""),
                                         ("llama3", LLAMA3_JINJA, "llama3.json", "<|begin_of_text|>")]:
        # without the test-only added token "<|im_start|>user", which would (correctly)
        # swallow the chatml header in a joint encoding
        patch = {"added_tokens": [t for t in toks[tok_name]["added_tokens"] if t["content"] != "<|im_start|>user"]}
        d = dict(toks[tok_name])
        d.update(patch)
        tok = Tokenizer.from_str(json.dumps(d))
        specials = {t["content"] for t in patch["added_tokens"] if t["special"]}
        tmpl = env.from_string(src)
        for conv in CONVERSATIONS:
            for gen in (False, True):
                text = tmpl.render(messages=conv, add_generation_prompt=gen, bos_token=bos)
                # ids the library gives the template scaffolding (special tokens parsed) with the
                # user text kept literal: encode each message content separately as plain text,
                # exactly what cherry does, and check the whole agrees with the joint encoding
                # when the content holds no special-token strings.
                tok.encode_special_tokens = False
                ids = tok.encode(text, add_special_tokens=False).ids
                injected = any(sp in m["content"] for m in conv for sp in specials)
                out.append({"template": tpl_name, "tok": tok_name, "patch": patch, "messages": conv,
                            "add_generation_prompt": gen,
                            "text": text, "ids": None if injected else ids})
    return out


def main():
    toks = build()
    with open(os.path.join(OUT, "chat_cases.jsonl"), "w", encoding="utf-8") as f:
        for c in chat_cases(toks):
            f.write(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n")
    texts = corpus()
    nfc_texts = nfc_corpus()
    n = 0
    with open(os.path.join(OUT, "cases.jsonl"), "w", encoding="utf-8") as f:
        for name, patches in PATCHES.items():
            for patch in patches:
                tok = load_patched(toks[name], patch)
                is_nfc = patch is not None and "normalizer" in patch
                for i, b in enumerate(texts + nfc_texts if is_nfc else texts):
                    s = b.decode("utf-8", "replace")
                    # main tokenizer: every text, both special modes; patched variants: a subset
                    modes = [(False, False), (True, False)] if patch is None else [(False, False)]
                    if patch is None and name in ("llama3.json", "llama2.json", "unigram.json", "unigram_bf.json"):
                        modes.append((True, True))
                    if patch is not None and i % 2 and not is_nfc:
                        continue
                    for parse_special, post in modes:
                        tok.encode_special_tokens = not parse_special
                        ids = tok.encode(s, add_special_tokens=post).ids
                        dec = tok.decode(ids, skip_special_tokens=False)
                        rec = {"tok": name, "patch": patch}
                        if s.encode("utf-8") == b:
                            rec["input"] = s
                        else:
                            rec["input_hex"] = b.hex()
                        rec.update({"parse_special": parse_special, "post": post, "ids": ids, "decoded": dec})
                        f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
                        n += 1
    print(f"cases.jsonl: {n} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
