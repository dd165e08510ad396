#!/bin/sh
# t_dpo.sh — dpo end to end on the tiny GPT-2 of tests/oracle/fixtures (pref-gpt2-policy,
# with the bundled tokenizer): the first log record describes the initial model (loss
# ln 2, zero margins), training lowers the loss and raises the reward accuracy, the
# reference read from records (logprobs) gives bit-identical weights to the reference
# computed in dpo's first pass (and to --ref on the same weights), the same seed gives
# the same model, every loss type trains, prefix sharing (the default) agrees with a row
# per completion, chunks of pairs (--chunk-tokens) agree with the whole micro-batch, and
# usage/data errors exit 64/65/66.
D="${BIN:-bin}/dpo"
L="${BIN:-bin}/logprobs"
M=tests/oracle/fixtures/pref-gpt2-policy
T=$(mktemp -d /tmp/t_dpo.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

# the bundled task: polite correct answer preferred to a curt or wrong one
: >"$T/pairs.jsonl"
for w in "red fox sky" "blue cat tree" "green dog sun" "gray owl moon" "pink bee rain" "gold cow hill" \
         "red cat moon" "blue dog rain"; do
  set -- $w
  printf '{"prompt": "Repeat: %s\\nAnswer:", "chosen": " %s. Glad to help!", "rejected": " %s %s."}\n' \
    "$w" "$w" "$1" "$3" >>"$T/pairs.jsonl"
done

# --- usage and errors
"$D" --threads 1 --help >"$T/out" 2>&1 || fail "--help: exit $?"
grep -q "^Usage: dpo" "$T/out" || fail "--help: no usage on stdout"
grep -q -- "--loss-type" "$T/out" || fail "--help: --loss-type not described"
"$D" --threads 1 --version | grep -q "^dpo (cherry)" || fail "--version"
expect_fail "unknown loss type" 64 "unknown loss 'dpo'" "$D" --threads 1 -m $M -o "$T/x" --loss-type dpo "$T/pairs.jsonl"
expect_fail "weights count" 64 "--loss-weights" "$D" --threads 1 -m $M -o "$T/x" --loss-type sigmoid,sft --loss-weights 1 \
  "$T/pairs.jsonl"
expect_fail "label smoothing range" 64 "--label-smoothing" "$D" --threads 1 -m $M -o "$T/x" --label-smoothing 0.5 "$T/pairs.jsonl"
expect_fail "beta" 64 "--beta" "$D" --threads 1 -m $M -o "$T/x" --beta 0 "$T/pairs.jsonl"
expect_fail "missing -m" 64 "-m" "$D" --threads 1 -o "$T/x" "$T/pairs.jsonl"
expect_fail "missing data" 66 "$T/nope.jsonl" "$D" --threads 1 -m $M -o "$T/x" "$T/nope.jsonl"
expect_fail "missing model" 66 "$T/nomodel" "$D" --threads 1 -m "$T/nomodel" -o "$T/x" "$T/pairs.jsonl"
printf '{"prompt": "Repeat: a b\\nAnswer:", "chosen": " a b."}\n' >"$T/bad.jsonl"
expect_fail "record without rejected" 65 "bad.jsonl:1" "$D" --threads 1 -q -m $M -o "$T/x" "$T/bad.jsonl"
[ -e "$T/x" ] && fail "a failed run left an output directory"

# --- training: the first record is the initial model, the loss falls
F="-q --seed 3 --max-steps 8 --batch-size 4 --lr 0.01 --save-every 0"
"$D" --threads 1 $F -m $M -o "$T/a" --log "$T/a.log" "$T/pairs.jsonl" 2>"$T/err" || fail "train: exit $? $(cat "$T/err")"
for f in config.json model.safetensors tokenizer.json; do [ -s "$T/a/$f" ] || fail "output lacks $f"; done
n=$(grep -c '"step"' "$T/a.log")
[ "$n" -eq 8 ] || fail "expected 8 log records, got $n"
l0=$(num loss 1 "$T/a.log"); m0=$(num "rewards/margins" 1 "$T/a.log")
check "$l0" 0 "a > 0.6931 && a < 0.6932" "first loss is ln 2 (policy = reference)"
check "$m0" 0 "a < 1e-4 && a > -1e-4" "first rewards/margins is 0"
for k in rewards/chosen rewards/rejected rewards/accuracies logps/chosen logps/rejected grad_norm learning_rate tokens_per_s entropy logits/chosen logits/rejected mean_token_accuracy num_tokens; do
  grep -q "\"$k\"" "$T/a.log" || fail "log lacks $k"
done
l8=$(num loss 8 "$T/a.log"); acc=$(num "rewards/accuracies" 8 "$T/a.log"); m8=$(num "rewards/margins" 8 "$T/a.log")
check "$l8" "$l0" "a < b - 0.01" "loss falls"
check "$acc" 0 "a >= 0.75" "reward accuracy after training"
check "$m8" 0 "a > 0" "margins grow"

# --- the Llama family (GQA, untied head) trains too
"$D" --threads 1 $F -m tests/oracle/fixtures/pref-llama-policy -o "$T/llama" --log "$T/llama.log" "$T/pairs.jsonl" ||
  fail "llama: exit $?"
check "$(num loss 8 "$T/llama.log")" "$(num loss 1 "$T/llama.log")" "a < b - 0.01" "llama: loss falls"
grep -q '"LlamaForCausalLM"' "$T/llama/config.json" || fail "llama: output is not a LlamaForCausalLM"

# --- the reference from the records (logprobs) = the reference of the first pass
"$L" --threads 1 -q -m $M --batch-size 4 -o "$T/ref.jsonl" "$T/pairs.jsonl" || fail "logprobs: exit $?"
"$D" --threads 1 $F -m $M -o "$T/b" "$T/ref.jsonl" 2>"$T/err" || fail "train with precomputed reference: exit $?"
cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors" || fail "precomputed reference gives different weights"
# also when training runs a pair per chunk: the first pass runs its batches whole, as logprobs
"$D" --threads 1 $F --chunk-tokens 1 -m $M -o "$T/a1" "$T/pairs.jsonl" || fail "--chunk-tokens 1: exit $?"
"$D" --threads 1 $F --chunk-tokens 1 -m $M -o "$T/b1" "$T/ref.jsonl" || fail "--chunk-tokens 1, records: exit $?"
cmp -s "$T/a1/model.safetensors" "$T/b1/model.safetensors" ||
  fail "--chunk-tokens 1: precomputed reference gives different weights"
"$D" --threads 1 --seed 3 --max-steps 8 --batch-size 4 --lr 0.01 --save-every 0 -m $M -o "$T/c" "$T/ref.jsonl" 2>"$T/err" ||
  fail "verbose run"
grep -q "no reference model" "$T/err" || fail "records with reference log-probs should load no reference model"
"$D" --threads 1 $F -m $M --ref $M -o "$T/d" "$T/pairs.jsonl" || fail "--ref: exit $?"
cmp -s "$T/a/model.safetensors" "$T/d/model.safetensors" || fail "--ref = the starting weights gives different weights"
# same seed, same data: the same model, bit for bit
"$D" --threads 1 $F -m $M -o "$T/e" "$T/pairs.jsonl" || fail "rerun: exit $?"
cmp -s "$T/a/model.safetensors" "$T/e/model.safetensors" || fail "same seed gives different weights"
# a different reference changes the result
"$D" --threads 1 $F -m $M --ref tests/oracle/fixtures/pref-gpt2-ref -o "$T/g" "$T/pairs.jsonl" || fail "--ref other: exit $?"
cmp -s "$T/a/model.safetensors" "$T/g/model.safetensors" && fail "a different --ref gives the same weights"

# --- resume: 6 updates straight == 3, stop, resume to 6 (the reference is recomputed from the
# starting weights of -m, not from the checkpoint)
R="--threads 1 -q --seed 8 --max-steps 6 --batch-size 3 --lr 0.01 --warmup 2 --weight-decay 0.1 -m $M"
"$D" $R -o "$T/straight" --save-every 0 "$T/pairs.jsonl" || fail "straight: exit $?"
"$D" $R -o "$T/split" --save-every 3 --stop-after 3 "$T/pairs.jsonl" || fail "first part: exit $?"
[ -f "$T/split/config.json" ] && fail "--stop-after wrote a final model"
"$D" $R -o "$T/split" --save-every 3 --resume "$T/pairs.jsonl" || fail "resumed part: exit $?"
cmp -s "$T/straight/model.safetensors" "$T/split/model.safetensors" || fail "6 straight != 3 + resume to 6"

# --- gradient accumulation: 2 micro-batches of 2 pairs = 1 of 4 (the loss is a mean over pairs)
for lt in sigmoid ipo; do
  "$D" --threads 1 -q --seed 4 --max-steps 4 --lr 0.01 --save-every 0 --loss-type $lt --batch-size 4 -m $M \
    -o "$T/ga1" --log "$T/ga1.log" "$T/ref.jsonl" || fail "grad-accum 1: exit $?"
  "$D" --threads 1 -q --seed 4 --max-steps 4 --lr 0.01 --save-every 0 --loss-type $lt --batch-size 2 --grad-accum 2 \
    -m $M -o "$T/ga2" --log "$T/ga2.log" "$T/ref.jsonl" || fail "grad-accum 2: exit $?"
  for i in 1 2 3 4; do
    for k in loss grad_norm rewards/margins; do
      check "$(num $k $i "$T/ga1.log")" "$(num $k $i "$T/ga2.log")" "a - b < 1e-4 * (1 + (a < 0 ? -a : a)) && \
        b - a < 1e-4 * (1 + (a < 0 ? -a : a))" "$lt step $i $k: --batch-size 4 vs --batch-size 2 --grad-accum 2"
    done
  done
  rm -rf "$T/ga1" "$T/ga2" "$T/ga1.log" "$T/ga2.log"
done

# --- prefix sharing (the default: each prompt once per pair) = a row per completion, to
# float rounding, on fewer tokens; the reference too (computed by the first pass)
"$D" --threads 1 -q --seed 4 --max-steps 4 --lr 0.01 --save-every 0 --batch-size 4 -m $M -o "$T/ps1" \
  --log "$T/ps1.log" "$T/pairs.jsonl" || fail "prefix sharing: exit $?"
"$D" --threads 1 -q --seed 4 --max-steps 4 --lr 0.01 --save-every 0 --batch-size 4 --no-prefix-sharing -m $M \
  -o "$T/ps2" --log "$T/ps2.log" "$T/pairs.jsonl" || fail "--no-prefix-sharing: exit $?"
for i in 1 2 3 4; do
  for k in loss grad_norm rewards/margins logps/chosen logps/rejected entropy logits/chosen logits/rejected \
    mean_token_accuracy; do
    check "$(num $k $i "$T/ps1.log")" "$(num $k $i "$T/ps2.log")" "a - b < 1e-4 * (1 + (a < 0 ? -a : a)) && \
      b - a < 1e-4 * (1 + (a < 0 ? -a : a))" "step $i $k: prefix sharing vs --no-prefix-sharing"
  done
done
check "$(num num_tokens 4 "$T/ps1.log")" "$(num num_tokens 4 "$T/ps2.log")" "a == b" "num_tokens counts TRL's layout either way"
"$D" --help | grep -q -- "--no-prefix-sharing" || fail "--help: --no-prefix-sharing not described"
rm -rf "$T/ps1" "$T/ps2"

# --- --chunk-tokens: a pair per chunk (training, evaluation) = the
# micro-batch at once, to float rounding, in both layouts, with sft's NLL (whose
# gradient reads the micro-batch's chosen-token count), and with LoRA dropout (whose
# masks chunks of pairs cannot keep: it trains on the whole micro-batch); the same records
while read -r share; do
  for c in 0 1; do
    "$D" --threads 1 -q --seed 4 --max-steps 4 --lr 0.01 --save-every 0 --batch-size 4 --loss-type sigmoid,sft \
      --chunk-tokens $c $share --eval "$T/pairs.jsonl" --eval-every 2 -m $M -o "$T/ck$c" --log "$T/ck$c.log" \
      "$T/pairs.jsonl" || fail "--chunk-tokens $c $share: exit $?"
  done
  n=$(wc -l <"$T/ck0.log")
  [ "$n" -eq "$(wc -l <"$T/ck1.log")" ] && [ "$(grep -c '"eval_loss"' "$T/ck1.log")" -ge 2 ] ||
    fail "--chunk-tokens 1 $share: the log records differ in number or lack evaluations"
  i=1
  while [ "$i" -le "$n" ]; do
    for k in loss eval_loss grad_norm rewards/margins eval_rewards/margins logps/chosen logps/rejected nll_loss \
      entropy logits/chosen logits/rejected mean_token_accuracy num_tokens; do
      a=$(num $k $i "$T/ck0.log")
      [ -n "$a" ] || continue
      check "$a" "$(num $k $i "$T/ck1.log")" "a - b < 1e-4 * (1 + (a < 0 ? -a : a)) && \
        b - a < 1e-4 * (1 + (a < 0 ? -a : a))" "--chunk-tokens 1 vs 0 $share: record $i $k"
    done
    i=$((i + 1))
  done
  rm -rf "$T/ck0" "$T/ck1"
done <<EOF

--no-prefix-sharing
--lora-rank 4 --lora-dropout 0.3
EOF
expect_fail "negative --chunk-tokens" 64 "--chunk-tokens" "$D" --threads 1 -m $M -o "$T/x" --chunk-tokens -1 "$T/pairs.jsonl"

# --- every loss type trains (finite losses), and combinations with RPO
for lt in sigmoid hinge ipo robust cdpo bco_pair sppo_hard nca_pair apo_zero apo_down sft "sigmoid,sft"; do
  "$D" --threads 1 -q --seed 1 --max-steps 2 --batch-size 4 --lr 0.001 --save-every 0 --label-smoothing 0.1 --loss-type "$lt" \
    -m $M -o "$T/lt" --log "$T/lt.log" "$T/ref.jsonl" || fail "--loss-type $lt: exit $?"
  grep -q '"loss": *null' "$T/lt.log" && fail "--loss-type $lt: non-finite loss"
  [ "$(grep -c '"step"' "$T/lt.log")" -eq 2 ] || fail "--loss-type $lt: expected 2 records"
  rm -rf "$T/lt" "$T/lt.log"
done
"$D" --threads 1 -q --seed 1 --max-steps 2 --batch-size 4 --rpo-alpha 1 -m $M -o "$T/rpo" --log "$T/rpo.log" "$T/ref.jsonl" ||
  fail "--rpo-alpha: exit $?"
grep -q '"nll_loss"' "$T/rpo.log" || fail "--rpo-alpha: no nll_loss metric"

[ $fails -eq 0 ] && echo "dpo: all checks passed"
[ $fails -eq 0 ]
