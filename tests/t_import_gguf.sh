#!/bin/sh
# t_import_gguf.sh — import-gguf as a program: --help/--version, --list, a full import
# of the tiny fixture (written by llama.cpp's gguf-py, see tests/oracle/make_gguf_fixture.py),
# atomic replacement of an existing output, and the exit codes and messages for
# missing, malformed, truncated and unsupported inputs and for usage errors.
# (Tensor values, tokenizer ids and log-probs are checked by tests/test_gguf_import.c.)
P="${BIN:-bin}/import-gguf"
F=tests/oracle/fixtures/gguf-tiny/tiny.gguf
T=$(mktemp -d /tmp/t_import_gguf.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

[ -x "$P" ] || { echo "FAIL: $P not built"; exit 1; }
[ -f "$F" ] || { echo "FAIL: fixture $F missing (run from the source root)"; exit 1; }

# --- help, version
"$P" --help >"$T/help" || fail "--help: exit $?"
grep -q "^Usage: import-gguf" "$T/help" || fail "--help: no usage line"
"$P" --version | grep -q "import-gguf (cherry)" || fail "--version"

# --- --list
"$P" --list "$F" >"$T/list" || fail "--list: exit $?"
grep -q "GGUF v3, 23 keys, 21 tensors, alignment 32" "$T/list" || fail "--list header: $(head -1 "$T/list")"
grep -q "^tokenizer.ggml.pre  *string  *\"smollm\"" "$T/list" || fail "--list: tokenizer.ggml.pre"
grep -q "^blk.0.attn_q.weight  *Q4_0  *\[32, 32\]" "$T/list" || fail "--list: attn_q line"
grep -q "^39712 parameters$" "$T/list" || fail "--list: parameter count"

# --- import, including a parent directory that does not exist yet
"$P" "$F" "$T/sub/dir/model" 2>"$T/err" || fail "import: exit $? ($(cat "$T/err"))"
grep -q "2 layers, vocabulary 330, 21 tensors, 39712 parameters" "$T/err" || fail "summary: $(cat "$T/err")"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json special_tokens_map.json \
         generation_config.json; do
  [ -s "$T/sub/dir/model/$f" ] || fail "import: $f missing or empty"
done
grep -q '"num_hidden_layers": 2' "$T/sub/dir/model/config.json" || fail "config.json: num_hidden_layers"
grep -q '"tie_word_embeddings": false' "$T/sub/dir/model/config.json" || fail "config.json: untied"
grep -q '"type": "Digits"' "$T/sub/dir/model/tokenizer.json" || fail "tokenizer.json: smollm pre-tokenizer"

# --- same input, same bytes; re-import replaces the directory atomically
"$P" -q "$F" "$T/again" || fail "second import"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
  cmp -s "$T/sub/dir/model/$f" "$T/again/$f" || fail "import is not deterministic: $f differs"
done
"$P" -q "$F" "$T/again" || fail "import over an existing import"
# a file cherry does not write makes it the user's directory: refused, unless --force
echo stale >"$T/again/stale.txt"
"$P" -q "$F" "$T/again" 2>/dev/null; [ $? -eq 73 ] || fail "import over a directory with a foreign file should exit 73"
[ -e "$T/again/stale.txt" ] || fail "a refused import removed the user's file"
"$P" -q --force "$F" "$T/again" || fail "import --force over an existing directory"
[ -e "$T/again/stale.txt" ] && fail "existing output was not replaced with --force"
ls "$T" | grep -q "tmp-" && fail "temporaries left behind: $(ls "$T")"

# --- errors: missing, malformed, truncated, wrong architecture; usage
expect_fail "missing input" 66 "cannot open" "$P" "$T/nope.gguf" "$T/o1"
printf 'GGUG\003\000\000\000' >"$T/magic.gguf"
expect_fail "bad magic" 65 "not a GGUF file" "$P" "$T/magic.gguf" "$T/o2"
head -c 5000 "$F" >"$T/trunc.gguf"
expect_fail "truncated header" 65 "trunc.gguf: byte" "$P" "$T/trunc.gguf" "$T/o3"
size=$(wc -c <"$F")
head -c $((size - 10)) "$F" >"$T/short.gguf"
expect_fail "truncated data" 65 "outside" "$P" "$T/short.gguf" "$T/o4"
# the architecture string "llama" patched to "lllma" (same length, still a valid file)
sed 's/llama/lllma/' "$F" >"$T/arch.gguf"
expect_fail "unsupported architecture" 65 "general.architecture \"lllma\" is not supported" "$P" "$T/arch.gguf" "$T/o5"
# the pre-tokenizer name patched to an unknown one
sed 's/smollm/smolxx/' "$F" >"$T/pre.gguf"
expect_fail "unknown pre-tokenizer" 65 "tokenizer.ggml.pre \"smolxx\" is not supported" "$P" "$T/pre.gguf" "$T/o6"
# the tokenizer model "gpt2" patched to "spm2", and a required key renamed
sed 's/gpt2/spm2/' "$F" >"$T/tokm.gguf"
expect_fail "unsupported tokenizer model" 65 "tokenizer.ggml.model \"spm2\" is not supported" "$P" "$T/tokm.gguf" "$T/o8"
sed 's/feed_forward_length/feed_forward_lengtx/' "$F" >"$T/key.gguf"
expect_fail "missing key" 65 "missing key \"llama.feed_forward_length\"" "$P" "$T/key.gguf" "$T/o9"
for o in o1 o2 o3 o4 o5 o6 o8 o9; do [ -e "$T/$o" ] && fail "failed import left $o behind"; done
expect_fail "no arguments" 64 "expected FILE.gguf and OUTDIR" "$P"
expect_fail "one argument" 64 "expected FILE.gguf and OUTDIR" "$P" "$F"
expect_fail "unknown option" 64 "Try" "$P" --bogus "$F" "$T/o7"

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
echo "import-gguf: all checks passed"
