#!/bin/sh
# t_eval.sh — eval end to end on the small GPT-2 fixtures: report.json and report.md,
# the curves drawn by gnuplot into output directories whose names a shell would
# misread (quotes, $(...), ;, spaces: gnuplot must run without a shell and the names
# never be pasted into a gnuplot string), plots with axis labels and metric names
# kept literal (noenhanced), no temporary files left behind, and the shared
# generation flags (--top-k 1 is greedy decoding, as --temperature 0).
B="${BIN:-bin}"
E="$B/eval"
T=$(mktemp -d /tmp/t_eval.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
command -v gnuplot >/dev/null || { echo "gnuplot not installed"; exit 77; }
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
M=tests/oracle/fixtures/pref-gpt2-policy
RM=tests/oracle/fixtures/pref-gpt2-rm

printf '%s\n' '{"prompt": "Repeat: red fox\nAnswer:"}' '{"prompt": "Repeat: blue cat\nAnswer:"}' >"$T/p.jsonl"
printf '%s\n' '{"step": 1, "loss": 0.69, "rewards/margins": 0.0}' '{"step": 2, "loss": 0.61, "rewards/margins": 0.2}' \
  '{"step": 3, "loss": 0.52, "rewards/margins": 0.5}' >"$T/log.jsonl"
ARGS="-q --threads 1 --max-new-tokens 6 --num-samples 2 --seed 3"

is_png() { [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e47 ]; }

# --- hostile output directories: the old `system("gnuplot -e \"... '$png' ...\"")`
# ran $(...) and lost the plots of a directory with a quote in its name
for name in "o'x\$(touch $T/pwned)'\"q" 'a b;c' "it's"; do
  D="$T/$name"
  "$E" -m $M --sft $M --reward-model $RM --log "$T/log.jsonl" -o "$D" $ARGS "$T/p.jsonl" 2>"$T/err" ||
    fail "[$name] exit $? ($(cat "$T/err"))"
  [ -e "$T/pwned" ] && fail "[$name] the output name ran a shell command"
  for f in report.json report.md loss.png reward.png; do
    [ -f "$D/$f" ] || fail "[$name] no $f"
  done
  is_png "$D/loss.png" || fail "[$name] loss.png is not a PNG"
  is_png "$D/reward.png" || fail "[$name] reward.png is not a PNG"
  grep -q '!\[training loss\](loss.png)' "$D/report.md" || fail "[$name] report.md does not show loss.png"
  grep -q '!\[rewards/margins\](reward.png)' "$D/report.md" || fail "[$name] report.md does not show reward.png"
  left=$(ls -A "$D" | grep -c '\.tmp')
  [ "$left" -eq 0 ] || fail "[$name] temporary files left: $(ls -A "$D")"
done

# --- the plot script eval writes: titles, axis labels, literal metric names.  gnuplot
# runs it from the output directory; catch it with a gnuplot on PATH that copies it.
mkdir "$T/fake"
cat >"$T/fake/gnuplot" <<EOF2
#!/bin/sh
cat "\$1" >>"$T/scripts.gp"
exec $(command -v gnuplot) "\$@"
EOF2
chmod +x "$T/fake/gnuplot"
PATH="$T/fake:$PATH" "$E" -m $M --sft $M --log "$T/log.jsonl" -o "$T/s" $ARGS "$T/p.jsonl" ||
  fail "eval with the recording gnuplot: exit $?"
grep -q "noenhanced" "$T/scripts.gp" || fail "plots must be noenhanced (rewards/margins, mean_token_accuracy)"
grep -q "set title 'Training loss per step'" "$T/scripts.gp" || fail "loss plot title"
grep -q "set title 'Reward during training: rewards/margins per step'" "$T/scripts.gp" || fail "reward plot title"
grep -q "set xlabel 'training step'" "$T/scripts.gp" || fail "x axis label"
grep -q "set ylabel 'rewards/margins'" "$T/scripts.gp" || fail "y axis label"
grep -q "$T" "$T/scripts.gp" && fail "the script names the output directory (it must use names eval chose)"

# --- no log, no gnuplot needed; report.json fields
"$E" -m $M --sft $M -o "$T/nolog" $ARGS "$T/p.jsonl" || fail "no --log: exit $?"
[ -f "$T/nolog/loss.png" ] && fail "no --log must draw no curves"
jq -e '.prompts == 2 and .samples_per_prompt == 2 and .reward_before == null and (.win_rate | type) == "number"' \
  "$T/nolog/report.json" >/dev/null || fail "report.json fields"

# --- shared generation flags: --top-k 1 decodes greedily, as --temperature 0
"$E" -m $M --sft $M -o "$T/k1" $ARGS --top-k 1 "$T/p.jsonl" || fail "--top-k 1: exit $?"
"$E" -m $M --sft $M -o "$T/t0" $ARGS --temperature 0 "$T/p.jsonl" || fail "--temperature 0: exit $?"
[ "$(jq -c .examples "$T/k1/report.json")" = "$(jq -c .examples "$T/t0/report.json")" ] ||
  fail "--top-k 1 samples differ from greedy ones"
expect_fail "bad top-k" 64 "--top-k" "$E" -m $M --sft $M -o "$T/u" --top-k -1 "$T/p.jsonl"
expect_fail "empty stop" 64 "--stop" "$E" -m $M --sft $M -o "$T/u" --stop '' "$T/p.jsonl"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "t_eval: all checks passed"
