#!/bin/sh
# t_sft_packing: sft --packing over several shuffled epochs of texts of varied
# lengths (1..25 words, rows of 48 tokens): every planned row must stay one batch
# row.  Before the fix, batch_fill re-packed shuffled runs of rows and sft stopped
# with "placed 8 of 8 examples in 0 of 4 rows" at step 28.
set -e
BIN=${BIN:-bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BIN/init-model" --family llama --layers 1 --heads 2 --kv-heads 1 --width 32 --mlp-width 64 --context 64 \
  --tokenizer data/tokenizer.json --seed 1 -o "$tmp/init" -q 2>/dev/null || "$BIN/init-model" --family llama \
  --layers 1 --heads 2 --kv-heads 1 --width 32 --mlp-width 64 --context 64 --tokenizer data/tokenizer.json --seed 1 \
  -o "$tmp/init"
"$BIN/sft" -m "$tmp/init" -o "$tmp/out" tests/data/sft-packing.jsonl --packing --max-length 48 --batch-size 4 \
  --epochs 3 --threads 1 -q --no-progress --save-every 0 --log "$tmp/log.jsonl"
steps=$(wc -l < "$tmp/log.jsonl")
[ "$steps" -ge 30 ] || { echo "expected >= 30 logged steps, got $steps"; exit 1; }
[ -f "$tmp/out/model.safetensors" ] || { echo "expected a final model"; exit 1; }
echo "ok: $steps packed steps"
