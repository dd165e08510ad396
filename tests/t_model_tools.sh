#!/bin/sh
# t_model_tools.sh — init-model and model-info from the outside: help/version, the
# models they make, determinism, and the exit codes for bad directories (66 missing,
# 65 hostile or inconsistent files, 64 usage, 73 cannot create).
BIN=${BIN:-bin}
T=$(mktemp -d /tmp/cherry-t-model-tools.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

# expect CODE DESCRIPTION command...  (stderr kept in $T/err)
expect() {
  want=$1; what=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$what: expected exit $want, got $rc"; sed 's/^/    /' "$T/err"
  else
    echo "ok   $what (exit $rc)"
  fi
}
contains() { # FILE TEXT DESCRIPTION
  if grep -q -- "$2" "$1"; then echo "ok   $3"; else fail "$3: expected '$2' in:"; sed 's/^/    /' "$1"; fi
}

for p in init-model model-info; do
  expect 0 "$p --help" "$BIN/$p" --help
  contains "$T/out" "Usage: $p" "$p --help prints usage on stdout"
  expect 0 "$p --version" "$BIN/$p" --version
  contains "$T/out" "(cherry)" "$p --version"
done

# ---- models ----
expect 0 "init-model gpt2" "$BIN/init-model" -q -o "$T/g" --family gpt2 --layers 2 --heads 4 --width 32 --vocab 100 --context 16
expect 0 "model-info gpt2" "$BIN/model-info" "$T/g"
contains "$T/out" "GPT2LMHeadModel" "model-info names the architecture"
contains "$T/out" "transformer.h.1.mlp.c_fc.weight *\[32, 128\]" "GPT-2 Conv1D shape on disk is [in, out]"
contains "$T/out" "parameters: *29184 " "GPT-2 parameter count (3200 wte + 512 wpe + 2 x 12704 + 64 ln_f)"

expect 0 "init-model llama GQA classifier" "$BIN/init-model" -q -o "$T/l" --family llama --layers 1 --heads 4 \
  --kv-heads 2 --width 32 --mlp-width 48 --vocab 100 --rope-theta 500000 --classifier --pad 0 --dtype bf16
expect 0 "model-info --json llama" "$BIN/model-info" --json "$T/l"
contains "$T/out" '"architecture": "LlamaForSequenceClassification"' "JSON names the classifier architecture"
contains "$T/out" '"BF16": 12' "JSON counts the BF16 tensors on disk"
contains "$T/out" '"name": "model.layers.0.self_attn.k_proj.weight"' "JSON lists the tensors"
contains "$T/out" '"rope_theta": 500000' "rope_theta kept"
contains "$T/l/config.json" '"pad_token_id": 0' "classifier config has pad_token_id"

# same seed -> same bytes; another seed -> other bytes
"$BIN/init-model" -q -o "$T/g2" --family gpt2 --layers 2 --heads 4 --width 32 --vocab 100 --context 16
cmp -s "$T/g/model.safetensors" "$T/g2/model.safetensors" && echo "ok   same seed, same file" || fail "same seed gave different files"
"$BIN/init-model" -q -o "$T/g3" --family gpt2 --layers 2 --heads 4 --width 32 --vocab 100 --context 16 --seed 2
cmp -s "$T/g/model.safetensors" "$T/g3/model.safetensors" && fail "different seeds gave the same file" || echo "ok   other seed, other file"

# --config reproduces a configuration; an existing output is replaced
expect 0 "init-model --config" "$BIN/init-model" -q -o "$T/g2" --config "$T/g/config.json"
cmp -s "$T/g/config.json" "$T/g2/config.json" && echo "ok   --config round trip" || fail "--config changed config.json"
cmp -s "$T/g/model.safetensors" "$T/g2/model.safetensors" && echo "ok   --config + same seed, same weights" || fail "--config weights differ"

if [ -f data/tokenizer.json ]; then
  expect 0 "init-model --tokenizer" "$BIN/init-model" -q -o "$T/t" --family llama --layers 1 --heads 2 --width 16 --tokenizer data/tokenizer.json
  [ -f "$T/t/tokenizer.json" ] && echo "ok   tokenizer.json copied" || fail "tokenizer.json not copied"
  n=$(grep -c '"vocab_size": ' "$T/t/config.json")
  [ "$n" = 1 ] && ! grep -q '"vocab_size": 256' "$T/t/config.json" && echo "ok   vocab size from the tokenizer" || fail "vocab size not taken from the tokenizer"
fi

# ---- usage errors ----
expect 64 "init-model without -o" "$BIN/init-model"
expect 64 "init-model --family bert" "$BIN/init-model" -o "$T/x" --family bert
for fam in qwen2 mistral qwen3 gemma2 gemma3 phi3; do
  "$BIN/init-model" -q -o "$T/fam-$fam" --family $fam --width 32 --vocab 50 &&
    "$BIN/model-info" --no-tensors "$T/fam-$fam" | grep -q "^family: *$fam " &&
    echo "ok   init-model --family $fam loads back" || fail "init-model --family $fam"
done
expect 64 "init-model width not a multiple of heads" "$BIN/init-model" -o "$T/x" --heads 3 --width 32
expect 64 "init-model --layers abc" "$BIN/init-model" -o "$T/x" --layers abc
expect 64 "model-info without a directory" "$BIN/model-info"
[ -e "$T/x" ] && fail "a failed init-model left $T/x behind" || echo "ok   no output after a usage error"
expect 73 "init-model into a missing parent" "$BIN/init-model" -q -o "$T/no/such/dir"

# ---- bad model directories ----
expect 66 "model-info on a missing directory" "$BIN/model-info" "$T/missing"
contains "$T/err" "$T/missing" "message names the directory"
mkdir "$T/nocfg"
expect 66 "model-info without config.json" "$BIN/model-info" "$T/nocfg"
contains "$T/err" "config.json" "message names config.json"

mkdir "$T/badjson"; printf '{"model_type": "gpt2", "n_layer": 2,' >"$T/badjson/config.json"
expect 65 "malformed config.json" "$BIN/model-info" "$T/badjson"
contains "$T/err" "badjson/config.json:1: invalid JSON" "message names file and line"

mkdir "$T/bert"; printf '{"model_type": "bert"}\n' >"$T/bert/config.json"
expect 65 "unsupported model_type" "$BIN/model-info" "$T/bert"
contains "$T/err" 'field "model_type"' "message names the field"

mkdir "$T/nofield"; printf '{"model_type": "llama", "hidden_size": 32}\n' >"$T/nofield/config.json"
expect 65 "config.json missing a field" "$BIN/model-info" "$T/nofield"
contains "$T/err" 'missing field "num_hidden_layers"' "message names the missing field"

# numerics cherry does not implement are refused, not approximated
refuse() { # NAME SED-EXPR MESSAGE
  mkdir "$T/$1"; cp "$T/l/model.safetensors" "$T/$1/"
  sed "$2" "$T/l/config.json" >"$T/$1/config.json"
  expect 65 "config.json with $1" "$BIN/model-info" "$T/$1"
  contains "$T/err" "$3" "message for $1"
}
refuse rope-unknown 's/"rope_type": "default"/"rope_type": "mrope"/' 'rope type "mrope" is not supported'
refuse rope-longrope-incomplete 's/"rope_type": "default"/"rope_type": "longrope"/' 'short_factor'
refuse rope-dynamic 's/"rope_type": "default"/"rope_type": "dynamic", "factor": 2.0/' 'rope type "dynamic"'
refuse rope-llama3-incomplete 's/"rope_type": "default"/"rope_type": "llama3", "factor": 8.0/' 'original_max_position_embeddings'
refuse partial-rotary 's/"rope_type": "default"/"rope_type": "default", "partial_rotary_factor": 0.5/' 'partial_rotary_factor'
refuse gelu 's/"hidden_act": "silu"/"hidden_act": "gelu"/' 'hidden_act'
refuse two-labels 's/"0": "LABEL_0"/"0": "LABEL_0", "1": "LABEL_1"/' 'num_labels = 1'
refuse head-dim-odd 's/"head_dim": 8/"head_dim": 7/' 'head dimension 7 must be even'
refuse head-dim-weights 's/"head_dim": 8/"head_dim": 16/' 'config.json implies \[64, 32\]'
refuse qwen-window 's/"model_type": "llama"/"model_type": "qwen2", "use_sliding_window": true/' 'use_sliding_window'
refuse gqa 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' 'multiple of num_key_value_heads'
refuse eos-range 's/"pad_token_id": 0/"pad_token_id": 100/' 'outside the vocabulary'

mkdir "$T/noweights"; cp "$T/g/config.json" "$T/noweights/"
expect 66 "directory without weights" "$BIN/model-info" "$T/noweights"

# hostile model.safetensors: header length far past the end of the file
mkdir "$T/hostile"; cp "$T/g/config.json" "$T/hostile/"
printf '\377\377\377\377\000\000\000\000{}' >"$T/hostile/model.safetensors"
expect 65 "hostile model.safetensors (header length)" "$BIN/model-info" "$T/hostile"
contains "$T/err" "hostile/model.safetensors" "message names the file"
# hostile: valid length, overlapping offsets
h='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
{ printf '\154\000\000\000\000\000\000\000'; printf '%s' "$h"; printf '000000000000'; } >"$T/hostile/model.safetensors"
expect 65 "hostile model.safetensors (overlap)" "$BIN/model-info" "$T/hostile"
contains "$T/err" "overlap" "message says what is wrong"
# valid file, but not this model's tensors
h='{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}     '
{ printf '\073\000\000\000\000\000\000\000'; printf '%s' "$h"; printf '0000'; } >"$T/hostile/model.safetensors"
expect 65 "safetensors without the model's tensors" "$BIN/model-info" "$T/hostile"
contains "$T/err" 'missing tensor "transformer.wte.weight"' "message names the missing tensor"

# weights that do not match config.json
mkdir "$T/shape"; cp "$T/g/model.safetensors" "$T/shape/"
sed 's/"n_embd": 32/"n_embd": 64/' "$T/g/config.json" >"$T/shape/config.json"
expect 65 "weights misshaped for config.json" "$BIN/model-info" "$T/shape"
contains "$T/err" 'has shape \[100, 32\], config.json implies \[100, 64\]' "message names the tensor and both shapes"

# extra tensor: a classifier's weights under an LM config
mkdir "$T/extra"; cp "$T/l/model.safetensors" "$T/extra/"
sed 's/LlamaForSequenceClassification/LlamaForCausalLM/; s/"tie_word_embeddings": false/"tie_word_embeddings": true/' "$T/l/config.json" >"$T/extra/config.json"
expect 65 "unexpected tensor" "$BIN/model-info" "$T/extra"
contains "$T/err" 'unexpected tensor "score.weight"' "message names the extra tensor"

# sharded: an index pointing outside the directory, or at a missing shard
mkdir "$T/index"; cp "$T/g/config.json" "$T/index/"
printf '{"weight_map": {"transformer.wte.weight": "../g/model.safetensors"}}' >"$T/index/model.safetensors.index.json"
expect 65 "index naming a file outside the directory" "$BIN/model-info" "$T/index"
contains "$T/err" 'not a file name in the model directory' "message says why"
printf '{"weight_map": {"transformer.wte.weight": "model-00001-of-00002.safetensors"}}' >"$T/index/model.safetensors.index.json"
expect 66 "index naming a missing shard" "$BIN/model-info" "$T/index"
contains "$T/err" 'model-00001-of-00002.safetensors' "message names the shard"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all model tool tests passed"
