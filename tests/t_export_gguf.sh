#!/bin/sh
# t_export_gguf.sh — export-gguf as a program: --help/--version, usage errors, an export
# of a tiny Llama in each type that import-gguf reads back (F32: the same bytes of
# model.safetensors), a LoRA adapter directory exported merged, determinism, atomic
# replacement, and the exit codes for missing and unsupported inputs.
# (Tensor values, names, keys and the quantisers are checked by tests/test_gguf_export.c;
# llama.cpp itself by tests/t_export_llamacpp.sh.)
P="${BIN:-bin}/export-gguf"
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_export_gguf.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

[ -x "$P" ] || { echo "FAIL: $P not built"; exit 1; }

"$P" --help >"$T/help" || fail "--help: exit $?"
grep -q "^Usage: export-gguf" "$T/help" || fail "--help: no usage line"
"$P" --version | grep -q "export-gguf (cherry)" || fail "--version"

"$B/init-model" -q --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --context 64 \
    --tokenizer data/tokenizer.json --seed 3 -o "$T/m" || { echo "FAIL: init-model"; exit 1; }

for t in f32 f16 bf16 q8_0 q4_0; do
  "$P" -t $t "$T/m" "$T/m-$t.gguf" 2>"$T/err" || fail "export -t $t: exit $? ($(cat "$T/err"))"
  grep -q "llama, 21 tensors" "$T/err" || fail "export -t $t summary: $(cat "$T/err")"
  "$B/import-gguf" -q "$T/m-$t.gguf" "$T/back-$t" 2>"$T/err" || fail "import of the $t export: $(cat "$T/err")"
done
upper() { echo "$1" | tr a-z A-Z; }
"$B/import-gguf" --list "$T/m-q4_0.gguf" | grep -q "^blk.0.attn_q.weight  *Q4_0  *\[64, 64\]" || fail "q4_0: attn_q type"
"$B/import-gguf" --list "$T/m-q4_0.gguf" | grep -q "^blk.0.attn_norm.weight  *F32" || fail "q4_0: norms stay F32"
"$B/import-gguf" --list "$T/m-f16.gguf" | grep -q "^general.file_type  *uint32  *1$" || fail "f16: file_type 1"
printf '{"prompt": "Say %s:", "completion": " %s."}\n' one one two two >"$T/few.jsonl"
"$B/logprobs" -q -m "$T/m" --threads 1 --per-token "$T/few.jsonl" >"$T/lp-m" &&
  "$B/logprobs" -q -m "$T/back-f32" --threads 1 --per-token "$T/few.jsonl" >"$T/lp-back" || fail "logprobs"
cmp -s "$T/lp-m" "$T/lp-back" || fail "f32 export -> import-gguf: per-token log-probs are not identical"

# Llama 3.x RoPE scaling travels as rope_freqs.weight and comes back as rope_scaling:
# a tiny model (head_dim 16, original context 32: a band of smoothed pairs) and Meta's
# Llama 3.2 values (head_dim 64, theta 500000, factor 32, original 8192)
l3() { # NAME WIDTH THETA FACTOR ORIGINAL
  sed 's/"max_position_embeddings": 64/"max_position_embeddings": 64, "rope_scaling": {"rope_type": "llama3", "factor": '"$4"', "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": '"$5"'}/; s/"hidden_size": 64/"hidden_size": '"$2"'/; s/"rope_theta": 10000.0/"rope_theta": '"$3"'/; /"head_dim"/d' \
      "$T/m/config.json" >"$T/$1.json"
  "$B/init-model" -q --config "$T/$1.json" --tokenizer data/tokenizer.json --seed 4 -o "$T/$1" || fail "init-model $1"
  "$P" -q -t f32 "$T/$1" "$T/$1.gguf" || fail "export $1"
  "$B/import-gguf" --list "$T/$1.gguf" | grep -q "^rope_freqs.weight  *F32  *\[$(($2 / 8))\]" || fail "$1: rope_freqs.weight"
  "$B/import-gguf" -q "$T/$1.gguf" "$T/$1-back" || fail "import $1"
  jq -e --argjson f "$4" --argjson o "$5" '.rope_scaling | .rope_type == "llama3" and .factor == $f and
      .low_freq_factor == 1 and .high_freq_factor == 4 and .original_max_position_embeddings == $o' \
      "$T/$1-back/config.json" >/dev/null || fail "$1: rope_scaling back: $(jq -c .rope_scaling "$T/$1-back/config.json")"
  "$B/logprobs" -q -m "$T/$1" --threads 1 --per-token "$T/few.jsonl" >"$T/lp-$1" &&
    "$B/logprobs" -q -m "$T/$1-back" --threads 1 --per-token "$T/few.jsonl" >"$T/lp-$1-back" || fail "logprobs $1"
  cmp -s "$T/lp-$1" "$T/lp-$1-back" || fail "$1: export -> import: per-token log-probs are not identical"
}
l3 l3tiny 64 10000.0 8.0 32
l3 l3meta 256 500000.0 32.0 8192

# q4_k: a width-256 model gets Q4_K matrices (rows of 256), the 64-wide one falls back to Q8_0
"$B/init-model" -q --family llama --layers 1 --heads 4 --kv-heads 2 --width 256 --mlp-width 256 --context 32 \
    --tokenizer data/tokenizer.json --seed 3 -o "$T/w256" || fail "init-model width 256"
"$P" -q -t q4_k "$T/w256" "$T/w256.gguf" || fail "export -t q4_k"
"$B/import-gguf" --list "$T/w256.gguf" | grep -q "^blk.0.ffn_gate.weight  *Q4_K  *\[256, 256\]" || fail "q4_k: ffn_gate"
"$P" -q -t q4_k "$T/m" "$T/m-q4_k.gguf" || fail "export -t q4_k (fallback)"
"$B/import-gguf" --list "$T/m-q4_k.gguf" | grep -q "^blk.0.attn_q.weight  *Q8_0" || fail "q4_k fallback to Q8_0"
"$B/import-gguf" -q "$T/w256.gguf" "$T/w256-back" || fail "import of the q4_k export"

# same input, same bytes; an existing output is replaced whole
"$P" -q -t q8_0 "$T/m" "$T/again.gguf" && "$P" -q -t q8_0 "$T/m" "$T/m-q8_0.gguf.2" || fail "re-export"
cmp -s "$T/again.gguf" "$T/m-q8_0.gguf" || fail "export is not deterministic"
echo stale >"$T/stale.gguf"
"$P" -q "$T/m" "$T/stale.gguf" || fail "export over an existing file"
head -c 4 "$T/stale.gguf" | grep -q GGUF || fail "existing output was not replaced"

# a LoRA adapter directory is exported merged (its base + B A)
"$B/sft" -q -m "$T/m" -o "$T/ad" --batch-size 2 --lr 1e-2 --max-steps 3 --save-every 0 --lora-rank 4 \
    --lora-targets q,v "$T/few.jsonl" || fail "sft --lora-rank"
"$B/sft" -q -m "$T/m" -o "$T/merged" --batch-size 2 --lr 1e-2 --max-steps 3 --save-every 0 --lora-rank 4 \
    --lora-targets q,v --merge "$T/few.jsonl" || fail "sft --lora-rank --merge"
"$P" -q -t f32 "$T/ad" "$T/ad.gguf" || fail "export of an adapter directory"
"$P" -q -t f32 "$T/merged" "$T/merged.gguf" || fail "export of the merged model"
"$B/import-gguf" -q "$T/ad.gguf" "$T/ad-back" && "$B/import-gguf" -q "$T/merged.gguf" "$T/merged-back" ||
  fail "import of the adapter exports"
"$B/logprobs" -q -m "$T/ad-back" --threads 1 "$T/few.jsonl" >"$T/lp1" &&
  "$B/logprobs" -q -m "$T/merged-back" --threads 1 "$T/few.jsonl" >"$T/lp2" || fail "logprobs of the imports"
a=$(num logp 1 "$T/lp1") b=$(num logp 1 "$T/lp2")
check "$a" "$b" "a - b < 1e-4 && b - a < 1e-4" "adapter export = merged export (log-probs)"

# errors
expect_fail "missing model" 66 "cannot open" "$P" "$T/nope" "$T/o1.gguf"
expect_fail "bad type" 64 "--type must be" "$P" -t q6_k "$T/m" "$T/o2.gguf"
expect_fail "no arguments" 64 "expected MODEL_DIR and OUT.gguf" "$P"
expect_fail "unknown option" 64 "Try" "$P" --bogus "$T/m" "$T/o3.gguf"
expect_fail "uncreatable output" 73 "o4.gguf" "$P" "$T/m" "$T/no/such/dir/o4.gguf"
printf '{"prompt": "Say %s:", "chosen": " %s.", "rejected": " no."}\n' one one two two >"$T/pairs.jsonl"
"$B/rm-train" -q -m "$T/m" -o "$T/rm" --max-steps 1 --batch-size 2 --save-every 0 "$T/pairs.jsonl" || fail "rm-train"
expect_fail "classifier" 65 "classifier" "$P" "$T/rm" "$T/o5.gguf"
"$B/init-model" -q --family gemma2 --layers 1 --heads 2 --width 32 --context 32 --tokenizer data/tokenizer.json \
    -o "$T/gemma" || fail "init-model gemma2"
expect_fail "family without a llama.cpp writer" 65 "gemma2 cannot be exported" "$P" "$T/gemma" "$T/o6.gguf"
sed -e 's/"max_position_embeddings": 64/"max_position_embeddings": 64, "sliding_window": 16/' -e 's/"llama"/"mistral"/; s/LlamaForCausalLM/MistralForCausalLM/' "$T/m/config.json" \
    >"$T/swa.json"
"$B/init-model" -q --config "$T/swa.json" --tokenizer data/tokenizer.json -o "$T/swa" ||
  fail "init-model mistral"
expect_fail "sliding window shorter than the context" 65 "sliding_window 16" "$P" "$T/swa" "$T/o7.gguf"
sed 's/"max_position_embeddings": 64/"max_position_embeddings": 64, "rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32}/' \
    "$T/m/config.json" >"$T/yarn.json"
"$B/init-model" -q --family llama --config "$T/yarn.json" --tokenizer data/tokenizer.json -o "$T/yarn" ||
  fail "init-model yarn"
expect_fail "yarn rope scaling" 65 "rope_scaling" "$P" "$T/yarn" "$T/o8.gguf"
for o in o1 o2 o3 o5 o6 o7 o8; do [ -e "$T/$o.gguf" ] && fail "failed export left $o.gguf behind"; done
ls "$T" | grep -q "tmp" && fail "temporaries left behind: $(ls "$T")"

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
echo "export-gguf: all checks passed"
