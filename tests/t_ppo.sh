#!/bin/sh
# t_ppo.sh — ppo end to end on the tiny GPT-2 of tests/oracle/fixtures
# (pref-gpt2-policy and its reward model pref-gpt2-rm):
#   - the toy task: reward = fraction of completion tokens with an id below 100
#     (tests/reward_lowid.sh, a reward program); every algorithm must raise the mean
#     reward of the last fifth of its updates over the first fifth by a margin
#     measured on seeds 1-3 (ppo/rloo ~ +0.55, grpo ~ +0.2, reinforce ~ +0.15) and a
#     run with --lr 0 must not (the control that shows the measure can fail);
#   - reward model + program with weights, KL with a reference, adaptive KL, k3,
#     missing-EOS penalty: runs, writes an HF directory without value_model/,
#     checkpoints carry value_model/ and ppo_state.safetensors;
#   - same seed = same weights; --stop-after then --resume = the uninterrupted run;
#   - a reward program that prints garbage, dies or hangs stops training with the
#     documented exit code, a message naming it and a checkpoint;
#   - usage errors exit 64.
P="${BIN:-bin}/ppo"
M=tests/oracle/fixtures/pref-gpt2-policy
RM=tests/oracle/fixtures/pref-gpt2-rm
RW="sh tests/reward_lowid.sh"
T=$(mktemp -d /tmp/t_ppo.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

# mean of FIELD over the first and the last fifth of the records of a log
fifths() {
  awk -v k="\"$1\":" '{
      i = index($0, k); if (!i) next
      s = substr($0, i + length(k)); sub(/[,}].*/, "", s); v[n++] = s + 0
    } END {
      q = int(n / 5); if (q < 1) q = 1
      for (i = 0; i < q; i++) { a += v[i]; b += v[n - 1 - i] }
      printf "%.4f %.4f\n", a / q, b / q
    }' "$2"
}

cat >"$T/prompts.jsonl" <<'EOF'
{"prompt": "Repeat: red fox sky\nAnswer:"}
{"prompt": "Repeat: blue cat tree\nAnswer:"}
{"prompt": "Repeat: green dog sun\nAnswer:"}
{"prompt": "Repeat: gray owl moon\nAnswer:"}
EOF
COMMON="--threads 1 -q --batch-size 4 --max-new-tokens 16 --lr 3e-3 --episodes 1600 --seed 1"

# --- the toy task: every algorithm learns it
for a in ppo grpo rloo reinforce; do
  key=reward; [ "$a" = ppo ] && key=objective/scores
  need=0.1; [ "$a" = ppo ] || [ "$a" = rloo ] && need=0.3
  "$P" -m "$M" -o "$T/$a" --algo "$a" --reward-cmd "$RW" --log "$T/$a.jsonl" --save-every 0 $COMMON \
    "$T/prompts.jsonl" 2>"$T/err" || fail "$a: exit $? ($(cat "$T/err"))"
  set -- $(fifths "$key" "$T/$a.jsonl")
  echo "toy task: $a mean $key first fifth $1, last fifth $2 (need +$need)"
  awk -v a="$1" -v b="$2" -v m="$need" 'BEGIN { exit !(b - a >= m) }' ||
    fail "$a: reward rose from $1 to $2, expected at least +$need"
  [ -f "$T/$a/model.safetensors" ] && [ -f "$T/$a/tokenizer.json" ] || fail "$a: no model in the output"
  [ -d "$T/$a/value_model" ] && fail "$a: the final output must hold the policy only"
done
"$P" -m "$M" -o "$T/lr0" --algo grpo --reward-cmd "$RW" --log "$T/lr0.jsonl" $COMMON --lr 0 "$T/prompts.jsonl" ||
  fail "lr 0: exit $?"
set -- $(fifths reward "$T/lr0.jsonl")
awk -v a="$1" -v b="$2" 'BEGIN { d = b - a; exit !(d < 0.05 && d > -0.05) }' ||
  fail "control (--lr 0): the reward moved from $1 to $2; the measure is noise-dominated"
grep -q '"step":1,' "$T/grpo.jsonl" || fail "log: no step 1 record"
for k in clip_ratio reward_std entropy grad_norm frac_reward_zero_std completions/min_length completions/max_length \
  completions/clipped_ratio completions/mean_terminated_length completions/max_terminated_length; do
  grep -q "\"$k\"" "$T/grpo.jsonl" || fail "grpo log: no $k"
done
for k in objective/kl objective/entropy objective/rlhf_reward policy/clipfrac_avg policy/approxkl_avg \
  loss/policy_avg loss/value_avg; do
  grep -q "\"$k\"" "$T/ppo.jsonl" || fail "ppo log: no $k"
done

# --- reward model + program, KL, adaptive controller, k3, EOS penalty; checkpoints
FULL="--threads 1 -q --batch-size 2 --max-new-tokens 8 --lr 1e-3 --max-steps 8 --reward-model $RM
  --reward-weights 1,0.5 --target-kl 0.01 --kl-estimator k3 --missing-eos-penalty 0.5 --beta 0.1"
for a in ppo grpo rloo reinforce; do
  "$P" -m "$M" -o "$T/f-$a" --algo "$a" --reward-cmd "$RW" $FULL --log "$T/f-$a.jsonl" --save-every 4 \
    "$T/prompts.jsonl" 2>"$T/err" || fail "$a with a reward model: exit $? ($(cat "$T/err"))"
  [ -f "$T/f-$a/checkpoint-4/ppo_state.safetensors" ] || fail "$a: checkpoint-4 without ppo_state.safetensors"
  for k in pref-gpt2-rm reward_lowid; do
    grep -q "\"rewards/$k/mean\":" "$T/f-$a.jsonl" && grep -q "\"rewards/$k/std\":" "$T/f-$a.jsonl" ||
      fail "$a: no rewards/$k/mean and /std metrics"
  done
  "$P" -m "$M" -o "$T/g-$a" --algo "$a" --reward-cmd "$RW" $FULL --stop-after 4 "$T/prompts.jsonl" ||
    fail "$a --stop-after: exit $?"
  "$P" -m "$M" -o "$T/g-$a" --algo "$a" --reward-cmd "$RW" $FULL --resume "$T/prompts.jsonl" 2>/dev/null ||
    fail "$a --resume: exit $?"
  cmp -s "$T/f-$a/model.safetensors" "$T/g-$a/model.safetensors" ||
    fail "$a: stop at 4 + resume differs from the straight run"
done
[ -f "$T/f-ppo/checkpoint-4/value_model/model.safetensors" ] || fail "ppo: checkpoint without value_model/"
first=$(head -1 "$T/f-ppo.jsonl" | grep -o '"objective/kl_coef":[0-9.e-]*' | cut -d: -f2)
last=$(tail -1 "$T/f-ppo.jsonl" | grep -o '"objective/kl_coef":[0-9.e-]*' | cut -d: -f2)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a == 0.05 && b != a) }' ||
  fail "ppo: kl_coef should start at 0.05 and be moved by the adaptive controller (first $first, last $last)"
"$P" -m "$M" -o "$T/f2" --algo ppo --reward-cmd "$RW" $FULL "$T/prompts.jsonl" || fail "ppo rerun: exit $?"
cmp -s "$T/f-ppo/model.safetensors" "$T/f2/model.safetensors" || fail "ppo: same seed, different weights"

# --- conversational prompts reach the reward program as message lists
printf '%s\n' '{"messages": [{"role": "user", "content": "Repeat: red fox"}]}' \
  '{"messages": [{"role": "user", "content": "Repeat: cat"}]}' >"$T/msg.jsonl"
"$P" -m "$M" -o "$T/msg" --algo grpo --template hh --max-steps 2 --batch-size 2 --max-new-tokens 4 --threads 1 -q \
  --log "$T/msg.log" --reward-cmd 'while read -r l; do case "$l" in *"\"prompt\":[{\"role\":\"user\""*) echo 1;;
    *) echo "not a message list: $l";; esac; done' "$T/msg.jsonl" 2>"$T/err" ||
  fail "message-list prompts: exit $? ($(cat "$T/err"))"
grep -q '"reward":1.0' "$T/msg.log" || fail "message-list prompts: reward program did not see the message list"

# --- the shared generation flags: --stop ends a completion at the string (the reward
# program sees finish_reason "stop" and the text up to it), \n is read as a newline
"$P" -m "$M" -o "$T/stop" --algo grpo --max-steps 1 --batch-size 2 --max-new-tokens 8 --threads 1 -q \
  --stop e --stop '\n' --reward-cmd "while read -r l; do printf '%s\n' \"\$l\" >>$T/stop.req; echo 0; done" \
  "$T/prompts.jsonl" 2>"$T/err" ||
  fail "--stop: exit $? ($(cat "$T/err"))"
if command -v jq >/dev/null; then
  n=$(jq -s 'map(select(.finish_reason == "stop" and (.completion | test("e|\n")))) | length' "$T/stop.req")
  [ "$n" -ge 1 ] || fail "--stop e: no completion of 8 tokens stopped at its stop string"
fi

# --- reward programs that fail: message, code, checkpoint of the updates done
BAD="--threads 1 -q --batch-size 4 --max-new-tokens 4 --max-steps 6 --algo grpo"
expect_fail "garbage answer" 65 "is not a finite number: 'oops'" \
  "$P" -m "$M" -o "$T/bad1" $BAD --reward-cmd 'n=0; while read l; do n=$((n+1)); [ $n -gt 16 ] && echo oops || echo 0.5; done' \
  "$T/prompts.jsonl"
ls -d "$T"/bad1/checkpoint-* >/dev/null 2>&1 || fail "garbage answer: no checkpoint written"
expect_fail "program dies" 70 "exited with status 3 before answering line 17" \
  "$P" -m "$M" -o "$T/bad2" $BAD --reward-cmd 'n=0; while read l; do n=$((n+1)); [ $n -gt 16 ] && exit 3; echo 1; done' \
  "$T/prompts.jsonl"
ls -d "$T"/bad2/checkpoint-1 >/dev/null 2>&1 || fail "program dies: no checkpoint-1"
expect_fail "program hangs" 70 "did not answer line 1 within 0.5 s" \
  "$P" -m "$M" -o "$T/bad3" $BAD --reward-timeout 0.5 --reward-cmd 'sleep 20' "$T/prompts.jsonl"
expect_fail "missing program" 70 "exited with status 127" \
  "$P" -m "$M" -o "$T/bad4" $BAD --reward-cmd '/nonexistent/reward' "$T/prompts.jsonl"

# --- usage
"$P" --help >"$T/out" || fail "--help: exit $?"
grep -q "^Usage: ppo" "$T/out" || fail "--help: no usage on stdout"
"$P" --version | grep -q "ppo (cherry)" || fail "--version"
expect_fail "no reward" 64 "a reward is needed" "$P" -m "$M" -o "$T/u" "$T/prompts.jsonl"
expect_fail "rloo with one generation" 64 "--num-generations >= 2" \
  "$P" -m "$M" -o "$T/u" --algo rloo --num-generations 1 --reward-cmd "$RW" "$T/prompts.jsonl"
expect_fail "bad algo" 64 "--algo" "$P" -m "$M" -o "$T/u" --algo dpo --reward-cmd "$RW" "$T/prompts.jsonl"
expect_fail "bad weights" 64 "--reward-weights" \
  "$P" -m "$M" -o "$T/u" --reward-cmd "$RW" --reward-weights 1,2 "$T/prompts.jsonl"
expect_fail "classifier policy" 64 "sequence classifier" "$P" -m "$RM" -o "$T/u" --reward-cmd "$RW" "$T/prompts.jsonl"
expect_fail "missing prompts" 66 "nope.jsonl" "$P" -m "$M" -o "$T/u" --reward-cmd "$RW" "$T/nope.jsonl"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo ok
