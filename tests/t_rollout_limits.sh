#!/bin/sh
# t_rollout_limits.sh — rollout's size flags are range-checked (exit 64 with the
# range), and a huge --max-new-tokens within the range is bounded by the model's
# context (generate.c: no int overflow, per-sequence buffers of at most the context).
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_rollout_limits.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
"$B/init-model" -q -o "$T/pol" --family llama --layers 1 --heads 2 --width 16 --context 24 \
    --tokenizer data/tokenizer.json --seed 3 || { echo "FAIL: init-model"; exit 1; }
printf '%s\n' '{"prompt": "The cat sat on"}' >"$T/p.jsonl"
expect_fail "--max-new-tokens 2147483647" 64 "--max-new-tokens must be in [1, 16777216]" \
    "$B/rollout" -m "$T/pol" --max-new-tokens 2147483647 "$T/p.jsonl"
expect_fail "--max-new-tokens 0" 64 "--max-new-tokens must be in" "$B/rollout" -m "$T/pol" --max-new-tokens 0 "$T/p.jsonl"
expect_fail "-n 2147483647" 64 "--num-samples must be in [1, 65536]" "$B/rollout" -m "$T/pol" -n 2147483647 "$T/p.jsonl"
expect_fail "-n 0" 64 "--num-samples must be in" "$B/rollout" -m "$T/pol" -n 0 "$T/p.jsonl"
# the largest --max-new-tokens: generation stops at the context (24 tokens)
"$B/rollout" -q -m "$T/pol" --max-new-tokens 16777216 --seed 1 -o "$T/out.jsonl" "$T/p.jsonl" ||
    fail "--max-new-tokens 16777216: exit $?"
grep -q '"completion"' "$T/out.jsonl" || fail "--max-new-tokens 16777216 wrote no completion"
[ $fails -eq 0 ] && echo "t_rollout_limits: all checks passed"
[ $fails -eq 0 ]
