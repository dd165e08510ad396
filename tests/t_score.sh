#!/bin/sh
# t_score.sh — score end to end on the tiny reward-model fixtures (pref-gpt2-rm,
# pref-llama-rm): pairs get chosen_reward/rejected_reward, prompt-completion and rollout
# records get reward, other fields are kept, the batch size changes nothing beyond
# float rounding, stdin = file, --accuracy prints one JSON line and agrees with the
# rewards, and errors exit 64/65/66.
S="${BIN:-bin}/score"
F=tests/oracle/fixtures
T=$(mktemp -d /tmp/t_score.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

cat >"$T/pairs.jsonl" <<'EOF'
{"prompt": "Repeat: red fox sky\nAnswer:", "chosen": " red fox sky. Glad to help!", "rejected": " red sky."}
{"prompt": "Repeat: blue cat\nAnswer:", "chosen": " blue cat. Glad to help!", "rejected": " blue cat."}
{"prompt": "Repeat: green dog sun moon\nAnswer:", "chosen": " green dog sun moon.", "rejected": " dog."}
{"prompt": "Repeat: gray owl\nAnswer:", "chosen": " gray owl. Glad to help!", "rejected": " owl gray."}
EOF
cat >"$T/roll.jsonl" <<'EOF'
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red fox sky. Glad to help!", "group": 0, "logprob": -3.5}
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red sky.", "group": 0, "logprob": -2.0}
{"prompt": "Repeat: blue cat\nAnswer:", "completion": " blue cat.", "group": 1, "logprob": -1.5}
EOF
printf '{"prompt": "Repeat: a b\\nAnswer:"}\n' >"$T/prompts.jsonl"

"$S" --threads 1 --help | grep -q "^Usage: score" || fail "--help"
"$S" --threads 1 --version | grep -q "^score (cherry)" || fail "--version"
expect_fail "missing -m" 64 "-m/--model" "$S" --threads 1 "$T/pairs.jsonl"
expect_fail "a causal LM" 64 "not a reward model" "$S" --threads 1 -m $F/pref-gpt2-policy "$T/pairs.jsonl"
expect_fail "missing input" 66 "$T/nope.jsonl" "$S" --threads 1 -m $F/pref-gpt2-rm "$T/nope.jsonl"
expect_fail "prompt-only" 65 "no completion" "$S" --threads 1 -m $F/pref-gpt2-rm "$T/prompts.jsonl"
expect_fail "--accuracy on rollouts" 65 "--accuracy needs preference pairs" "$S" --threads 1 -m $F/pref-gpt2-rm --accuracy \
  "$T/roll.jsonl"

for fam in gpt2 llama; do
  RM=$F/pref-$fam-rm
  "$S" --threads 1 -q -m $RM "$T/pairs.jsonl" >"$T/p.out" || fail "$fam pairs: exit $?"
  [ "$(wc -l <"$T/p.out")" -eq 4 ] || fail "$fam pairs: expected 4 records"
  right=0
  for i in 1 2 3 4; do
    c=$(num chosen_reward $i "$T/p.out"); r=$(num rejected_reward $i "$T/p.out")
    [ -n "$c" ] && [ -n "$r" ] || fail "$fam record $i lacks chosen_reward/rejected_reward"
    awk -v a="$c" -v b="$r" 'BEGIN { exit !(a > b) }' && right=$((right + 1))
  done
  "$S" --threads 1 -q -m $RM --accuracy "$T/pairs.jsonl" >"$T/acc" || fail "$fam --accuracy: exit $?"
  [ "$(wc -l <"$T/acc")" -eq 1 ] || fail "$fam --accuracy: expected one line on stdout"
  grep -q '^{"accuracy": [0-9.]*, "pairs": 4, "mean_margin": [-0-9.]*}$' "$T/acc" || fail "$fam --accuracy format"
  check "$(num accuracy 1 "$T/acc")" "$right" "a * 4 - b < 1e-9 && b - a * 4 < 1e-9" "$fam accuracy = right/4"
  "$S" --threads 1 -q -m $RM --accuracy -o "$T/acc.jsonl" "$T/pairs.jsonl" >/dev/null || fail "$fam --accuracy -o"
  cmp -s "$T/acc.jsonl" "$T/p.out" || fail "$fam --accuracy -o writes the same records"

  # batch size and stdin
  "$S" --threads 1 -q -m $RM --batch-size 1 "$T/pairs.jsonl" >"$T/b1.out" || fail "$fam batch 1"
  for i in 1 2 3 4; do
    check "$(num chosen_reward $i "$T/b1.out")" "$(num chosen_reward $i "$T/p.out")" \
      "a - b < 1e-4 && b - a < 1e-4" "$fam record $i: --batch-size 1 vs 8"
  done
  "$S" --threads 1 -q -m $RM <"$T/pairs.jsonl" >"$T/stdin.out" || fail "$fam stdin"
  cmp -s "$T/p.out" "$T/stdin.out" || fail "$fam stdin and file differ"

  # rollouts: the reward of a completion is the chosen_reward of the same text
  "$S" --threads 1 -q -m $RM -o "$T/r.out" "$T/roll.jsonl" || fail "$fam rollouts: exit $?"
  [ "$(wc -l <"$T/r.out")" -eq 3 ] || fail "$fam rollouts: expected 3 records"
  sed -n 1p "$T/r.out" | grep -q '"group": *0' || fail "$fam rollouts: group kept"
  check "$(num reward 1 "$T/r.out")" "$(num chosen_reward 1 "$T/p.out")" "a - b < 1e-4 && b - a < 1e-4" \
    "$fam reward of a completion = chosen_reward of the same pair text"
done

[ $fails -eq 0 ] && echo "score: all checks passed"
[ $fails -eq 0 ]
