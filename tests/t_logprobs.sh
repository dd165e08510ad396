#!/bin/sh
# t_logprobs.sh — logprobs end to end on the tiny GPT-2 fixture: preference records get
# ref_chosen_logps/ref_rejected_logps, prompt-completion records get logp, the per-token
# arrays sum to the sequence values, other fields are kept, the batch size changes
# nothing beyond float rounding, stdin = file, bad input exits 65 without leaving a
# partial output, and usage errors exit 64/66.
L="${BIN:-bin}/logprobs"
M=tests/oracle/fixtures/pref-gpt2-policy
T=$(mktemp -d /tmp/t_logprobs.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
# arrsum FIELD LINE FILE : sum of the numbers of the array "FIELD": [...]
arrsum() {
  sed -n "$2p" "$3" | grep -o "\"$1\": *\[[^]]*\]" | sed 's/^[^[]*\[//; s/\]$//' | tr ',' '\n' |
    awk '{ s += $1; n++ } END { printf "%.9g %d\n", s, n }'
}

cat >"$T/pairs.jsonl" <<'EOF'
{"id": 7, "prompt": "Repeat: red fox sky\nAnswer:", "chosen": " red fox sky. Glad to help!", "rejected": " red sky."}
{"id": 8, "prompt": "Repeat: blue cat\nAnswer:", "chosen": " blue cat. Glad to help!", "rejected": " blue cat."}
{"id": 9, "prompt": "Repeat: green dog sun moon\nAnswer:", "chosen": " green dog sun moon.", "rejected": " dog."}
EOF
cat >"$T/pc.jsonl" <<'EOF'
{"prompt": "Repeat: red fox sky\nAnswer:", "completion": " red fox sky. Glad to help!", "note": "x"}
{"prompt": "Repeat: blue cat\nAnswer:", "completion": " blue."}
EOF

"$L" --threads 1 --help | grep -q "^Usage: logprobs" || fail "--help"
"$L" --threads 1 --version | grep -q "^logprobs (cherry)" || fail "--version"
expect_fail "missing -m" 64 "-m/--model" "$L" --threads 1 "$T/pairs.jsonl"
expect_fail "bad batch size" 64 "--batch-size" "$L" --threads 1 -m $M --batch-size 0 "$T/pairs.jsonl"
expect_fail "missing model" 66 "$T/none" "$L" --threads 1 -m "$T/none" "$T/pairs.jsonl"
expect_fail "missing input" 66 "$T/nope.jsonl" "$L" --threads 1 -m $M "$T/nope.jsonl"
expect_fail "reward model" 64 "sequence classifier" "$L" --threads 1 -m tests/oracle/fixtures/pref-gpt2-rm "$T/pairs.jsonl"

# --- preference records
"$L" --threads 1 -q -m $M --per-token "$T/pairs.jsonl" >"$T/p.out" || fail "pairs: exit $?"
[ "$(wc -l <"$T/p.out")" -eq 3 ] || fail "pairs: expected 3 records"
for i in 1 2 3; do
  c=$(num ref_chosen_logps $i "$T/p.out"); r=$(num ref_rejected_logps $i "$T/p.out")
  [ -n "$c" ] && [ -n "$r" ] || fail "record $i lacks ref_chosen_logps/ref_rejected_logps"
  check "$c" 0 "a < 0" "record $i: a log-prob is negative"
  set -- $(arrsum ref_chosen_token_logps $i "$T/p.out")
  check "$1" "$c" "a - b < 1e-4 && b - a < 1e-4" "record $i: per-token chosen log-probs sum to the sequence value"
  set -- $(arrsum ref_rejected_token_logps $i "$T/p.out")
  check "$1" "$r" "a - b < 1e-4 && b - a < 1e-4" "record $i: per-token rejected log-probs sum to the sequence value"
done
sed -n 1p "$T/p.out" | grep -q '"id": *7' || fail "the id field is not kept"
# the chosen completion of record 1 has more tokens than its rejected one
set -- $(arrsum ref_chosen_token_logps 1 "$T/p.out"); nc=$2
set -- $(arrsum ref_rejected_token_logps 1 "$T/p.out"); nr=$2
[ "$nc" -gt "$nr" ] || fail "token counts: chosen $nc, rejected $nr"

# batch size: the same numbers up to float rounding; stdin = file exactly
"$L" --threads 1 -q -m $M --batch-size 1 "$T/pairs.jsonl" >"$T/b1.out" || fail "batch 1"
for i in 1 2 3; do
  check "$(num ref_chosen_logps $i "$T/b1.out")" "$(num ref_chosen_logps $i "$T/p.out")" \
    "a - b < 1e-4 && b - a < 1e-4" "record $i: --batch-size 1 vs 8"
done
"$L" --threads 1 -q -m $M --per-token <"$T/pairs.jsonl" >"$T/stdin.out" || fail "stdin: exit $?"
cmp -s "$T/p.out" "$T/stdin.out" || fail "stdin and file give different output"

# --- prompt-completion records
"$L" --threads 1 -q -m $M --per-token -o "$T/pc.out" "$T/pc.jsonl" || fail "prompt-completion: exit $?"
lp=$(num logp 1 "$T/pc.out")
[ -n "$lp" ] || fail "prompt-completion: no logp"
set -- $(arrsum token_logps 1 "$T/pc.out")
check "$1" "$lp" "a - b < 1e-4 && b - a < 1e-4" "token_logps sum to logp"
sed -n 1p "$T/pc.out" | grep -q '"note": *"x"' || fail "other fields are not kept"

# --- bad data: exit 65 naming FILE:LINE, and no partial output
cp "$T/pairs.jsonl" "$T/bad.jsonl"
echo '{"prompt": "x", "chosen": 5, "rejected": "y"}' >>"$T/bad.jsonl"
expect_fail "bad record" 65 "bad.jsonl:4" "$L" --threads 1 -q -m $M -o "$T/bad.out" "$T/bad.jsonl"
[ -e "$T/bad.out" ] && fail "a failed run left its output file"
"$L" --threads 1 -q -m $M --skip-invalid -o "$T/skip.out" "$T/bad.jsonl" || fail "--skip-invalid: exit $?"
[ "$(wc -l <"$T/skip.out")" -eq 3 ] || fail "--skip-invalid: expected the 3 good records"

[ $fails -eq 0 ] && echo "logprobs: all checks passed"
[ $fails -eq 0 ]
