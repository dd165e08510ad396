#!/bin/sh
# t_rm.sh — rm-train end to end on the tiny GPT-2 fixture: from a causal LM it writes a
# GPT2ForSequenceClassification directory (num_labels 1, score.weight, pad_token_id),
# the log has TRL's metrics with the first record before any update, training lowers
# the loss and separates the pairs (score --accuracy agrees with the log), --eval adds
# eval_ records, margins and centring are accepted, a reward model can be trained
# further, the same seed gives the same model, and errors exit 64/65/66.
R="${BIN:-bin}/rm-train"
S="${BIN:-bin}/score"
M=tests/oracle/fixtures/pref-gpt2-ref
T=$(mktemp -d /tmp/t_rm.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

: >"$T/pairs.jsonl"
for w in "red fox sky" "blue cat tree" "green dog sun" "gray owl moon" "pink bee rain" "gold cow hill" \
         "red cat moon" "blue dog rain"; do
  printf '{"prompt": "Repeat: %s\\nAnswer:", "chosen": " %s. Glad to help!", "rejected": " %s.", "margin": 0.5}\n' \
    "$w" "$w" "$w" >>"$T/pairs.jsonl"
done

"$R" --threads 1 --help | grep -q "^Usage: rm-train" || fail "--help"
"$R" --threads 1 --version | grep -q "^rm-train (cherry)" || fail "--version"
expect_fail "negative centring" 64 "--center-rewards-coefficient" "$R" --threads 1 -m $M -o "$T/x" \
  --center-rewards-coefficient -1 "$T/pairs.jsonl"
expect_fail "missing -o" 64 "-o" "$R" --threads 1 -m $M "$T/pairs.jsonl"
expect_fail "missing data" 66 "$T/nope.jsonl" "$R" --threads 1 -m $M -o "$T/x" "$T/nope.jsonl"
printf '{"prompt": "a", "chosen": "b", "rejected": "c", "margin": "big"}\n' >"$T/bad.jsonl"
expect_fail "margin not a number" 65 "bad.jsonl:1" "$R" --threads 1 -q -m $M -o "$T/x" "$T/bad.jsonl"

F="-q --seed 5 --max-steps 12 --batch-size 4 --lr 0.01 --save-every 0"
"$R" --threads 1 $F -m $M -o "$T/rm" --log "$T/rm.log" --eval "$T/pairs.jsonl" --center-rewards-coefficient 0.01 \
  "$T/pairs.jsonl" || fail "train: exit $?"
grep -q '"GPT2ForSequenceClassification"' "$T/rm/config.json" || fail "config: architecture"
grep -q '"pad_token_id": *0' "$T/rm/config.json" || fail "config: pad_token_id"
grep -q '"LABEL_0"' "$T/rm/config.json" || fail "config: one label"
grep -q 'score.weight' "$T/rm/model.safetensors" || fail "no score.weight tensor"
grep -q 'lm_head' "$T/rm/model.safetensors" && fail "an LM head in a reward model"
[ -s "$T/rm/tokenizer.json" ] || fail "no tokenizer in the output"
grep '"loss"' "$T/rm.log" >"$T/train.log"
grep '"eval_' "$T/rm.log" >"$T/eval.log"
[ "$(wc -l <"$T/train.log")" -eq 12 ] || fail "expected 12 training records"
[ "$(wc -l <"$T/eval.log")" -ge 2 ] || fail "expected eval records before and after training"
grep -q '"eval_accuracy"' "$T/eval.log" || fail "no eval_accuracy"
for k in accuracy rewards/chosen rewards/rejected margin min_reward mean_reward max_reward grad_norm learning_rate num_tokens; do
  grep -q "\"$k\"" "$T/train.log" || fail "log lacks $k"
done
l0=$(num loss 1 "$T/train.log"); l12=$(num loss 12 "$T/train.log")
check "$l12" "$l0" "a < b - 0.05" "loss falls"
acc=$(num eval_accuracy "$(wc -l <"$T/eval.log")" "$T/eval.log")
check "$acc" 0 "a >= 0.99" "final eval accuracy"
"$S" --threads 1 -q -m "$T/rm" --accuracy "$T/pairs.jsonl" >"$T/acc" || fail "score --accuracy: exit $?"
sa=$(num accuracy 1 "$T/acc")
check "$sa" "$acc" "a - b < 1e-6 && b - a < 1e-6" "score --accuracy agrees with the final eval accuracy"

# the same seed: the same model; another seed: another score head
"$R" --threads 1 $F -m $M -o "$T/rm2" --center-rewards-coefficient 0.01 "$T/pairs.jsonl" || fail "rerun"
"$R" --threads 1 $F -m $M -o "$T/rm3" --center-rewards-coefficient 0.01 "$T/pairs.jsonl" || fail "rerun 2"
cmp -s "$T/rm2/model.safetensors" "$T/rm3/model.safetensors" || fail "same seed gives different weights"
"$R" --threads 1 -q --seed 6 --max-steps 12 --batch-size 4 --lr 0.01 --save-every 0 -m $M -o "$T/rm4" \
  --center-rewards-coefficient 0.01 "$T/pairs.jsonl" || fail "seed 6"
cmp -s "$T/rm2/model.safetensors" "$T/rm4/model.safetensors" && fail "another seed gives the same weights"
# a reward model trains further as is
"$R" --threads 1 -q --seed 5 --max-steps 2 --batch-size 4 --save-every 0 -m "$T/rm" -o "$T/rm5" "$T/pairs.jsonl" ||
  fail "from a reward model: exit $?"

[ $fails -eq 0 ] && echo "rm-train: all checks passed"
[ $fails -eq 0 ]
