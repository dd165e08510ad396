#!/bin/sh
# t_nonfinite.sh — non-finite values never cost the run its work or leave an empty OUT:
#   - ref_chosen_logps/ref_rejected_logps that are positive (not a log-probability)
#     or beyond float32 (1e308) are refused as data (65, FILE:LINE, the field), and
#     no OUT is created;
#   - a reward program answering 1e308 (infinite as float32) stops ppo with 65 and
#     OUT is not left empty;
#   - a loss that becomes non-finite during training (here: --lr 1e30 blows the
#     weights up) stops before the update with the weights before that step written
#     as a checkpoint (exit 70), which --resume can continue from.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_nonfinite.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
M=tests/oracle/fixtures/pref-gpt2-policy

# --- reference log-probs
printf '%s\n' '{"prompt": "a", "chosen": " b", "rejected": " c", "ref_chosen_logps": -3.5, "ref_rejected_logps": -4}' \
    '{"prompt": "d", "chosen": " e", "rejected": " f", "ref_chosen_logps": -2, "ref_rejected_logps": 1e308}' >"$T/huge.jsonl"
expect_fail "ref_rejected_logps 1e308" 65 "huge.jsonl:2: field \"ref_rejected_logps\" must be a log-probability" \
    "$B/dpo" -q -m "$M" -o "$T/dpo1" --max-steps 1 --batch-size 2 "$T/huge.jsonl"
[ ! -e "$T/dpo1" ] || fail "a refused dpo run left $T/dpo1 ($(ls -A "$T/dpo1"))"
printf '%s\n' '{"prompt": "a", "chosen": " b", "rejected": " c", "ref_chosen_logps": 0.5, "ref_rejected_logps": -4}' >"$T/pos.jsonl"
expect_fail "positive ref_chosen_logps" 65 "pos.jsonl:1: field \"ref_chosen_logps\" must be a log-probability" \
    "$B/dpo" -q -m "$M" -o "$T/dpo2" --max-steps 1 "$T/pos.jsonl"
printf '%s\n' '{"prompt": "a", "chosen": " b", "rejected": " c", "margin": -1e308}' >"$T/margin.jsonl"
expect_fail "margin -1e308" 65 "margin.jsonl:1: field \"margin\" must be finite as float32" \
    "$B/rm-train" -q -m "$M" -o "$T/rm" --max-steps 1 "$T/margin.jsonl"

# --- a reward program answering 1e308
printf '%s\n' '{"prompt": "Repeat: red fox\nAnswer:"}' '{"prompt": "Repeat: cat\nAnswer:"}' >"$T/prompts.jsonl"
expect_fail "reward 1e308" 65 "not a finite number: '1e308'" \
    "$B/ppo" -m "$M" -o "$T/ppo" --algo grpo --max-steps 2 --batch-size 2 --max-new-tokens 4 --threads 1 -q \
    --reward-cmd 'while read -r l; do echo 1e308; done' "$T/prompts.jsonl"
if [ -e "$T/ppo" ]; then
    [ -n "$(ls -A "$T/ppo")" ] || fail "reward 1e308: an empty $T/ppo was left behind"
fi

# --- a loss that becomes non-finite while training
"$B/init-model" -q --family gpt2 --layers 1 --heads 2 --width 16 --context 32 \
    --tokenizer data/tokenizer.json --seed 4 -o "$T/init" || fail "init-model"
"$B/task-gen" --kind sft -n 8 --seed 9 -o "$T/data.jsonl" || fail "task-gen"
expect_fail "sft --lr 1e30" 70 "stopped before the update (checkpoint-" \
    "$B/sft" -q -m "$T/init" --max-length 32 --batch-size 4 --max-steps 6 --lr 1e30 --clip-grad 0 \
    -o "$T/sft" "$T/data.jsonl"
ck=$(ls -d "$T"/sft/checkpoint-* 2>/dev/null | head -1)
[ -n "$ck" ] && [ -f "$ck/trainer_state.json" ] || fail "sft --lr 1e30: no checkpoint of the last good weights ($(ls -A "$T/sft" 2>&1))"
step=${ck##*checkpoint-}
grep -q "step $((step + 1)): loss is" "$T/err" || fail "the message should name step $((step + 1)): $(cat "$T/err")"
# the checkpoint is usable: resume with a sane learning rate finishes the run
"$B/sft" -q -m "$T/init" --max-length 32 --batch-size 4 --max-steps 6 --lr 1e30 --clip-grad 0 --resume \
    -o "$T/sft" "$T/data.jsonl" 2>/dev/null
[ $? -eq 70 ] || fail "resuming into the same blow-up should stop again with 70"
[ $fails -eq 0 ] && echo "t_nonfinite: all checks passed"
[ $fails -eq 0 ]
