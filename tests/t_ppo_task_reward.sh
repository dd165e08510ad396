#!/bin/sh
# t_ppo_task_reward.sh — task-reward: utility/3 and gold values for good, curt and
# wrong answers (string and message-list forms), one flushed answer per line while its
# input stays open (a long-running reward program), errors naming the line, and
# ppo --reward-cmd task-reward end to end on the tiny model.
R="${BIN:-bin}/task-reward"
P="${BIN:-bin}/ppo"
M=tests/oracle/fixtures/pref-gpt2-policy
T=$(mktemp -d /tmp/t_ppo_task_reward.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

cat >"$T/in.jsonl" <<'EOF2'
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red fox sky. Glad to help!"}
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red fox sky."}
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red sky. Glad to help!"}
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " blue."}
{"prompt": [{"role": "user", "content": "Repeat: cat tree\nAnswer:"}], "completion": [{"role": "assistant", "content": " cat tree. Glad to help!"}]}
EOF2
"$R" "$T/in.jsonl" >"$T/u" || fail "utility: exit $?"
printf '1\n0.66666666666666663\n0.33333333333333331\n0\n1\n' | cmp -s - "$T/u" || fail "utility: got $(tr '\n' ' ' <"$T/u")"
"$R" --gold <"$T/in.jsonl" >"$T/g" || fail "gold: exit $?"
printf '1\n0\n0\n0\n1\n' | cmp -s - "$T/g" || fail "gold: got $(tr '\n' ' ' <"$T/g")"

# answers while the input stays open: one line in, one line out, then wait
mkfifo "$T/fifo"
( head -1 "$T/in.jsonl"; sleep 3 ) >"$T/fifo" &
"$R" <"$T/fifo" >"$T/live" &
rpid=$!
sleep 1
[ "$(cat "$T/live")" = 1 ] || fail "no answer before the end of the input (not flushed per line?)"
wait $rpid

echo '{"prompt": "hello", "completion": "x"}' >"$T/bad.jsonl"
"$R" "$T/bad.jsonl" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 65 ] || fail "non-task prompt: expected exit 65, got $rc"
grep -q "bad.jsonl:1: field \"prompt\" is not a task prompt" "$T/err" || fail "non-task prompt: message $(cat "$T/err")"
[ "$("$R" --other -0.5 "$T/bad.jsonl")" = -0.5 ] || fail "--other"
printf '%s\n' '{"prompt": "Repeat: a b\nAnswer:"}' | "$R" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 65 ] && grep -q 'field "completion"' "$T/err" || fail "missing completion: exit $rc, $(cat "$T/err")"
"$R" --help | grep -q "^Usage: task-reward" || fail "--help"
"$R" --version | grep -q "task-reward (cherry)" || fail "--version"

# ppo with task-reward as its reward program
head -4 "$T/in.jsonl" | sed 's/, "completion".*/}/' >"$T/prompts.jsonl"
"$P" -m "$M" -o "$T/out" --algo grpo --reward-cmd "$R" --max-steps 2 --batch-size 2 --max-new-tokens 6 \
  --threads 1 -q --log "$T/log.jsonl" "$T/prompts.jsonl" || fail "ppo --reward-cmd task-reward: exit $?"
grep -q '"rewards/task-reward/mean":' "$T/log.jsonl" && grep -q '"rewards/task-reward/std":' "$T/log.jsonl" ||
  fail "ppo: no rewards/task-reward/mean and /std in the log"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo ok
