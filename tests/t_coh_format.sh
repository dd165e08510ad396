#!/bin/sh
# t_coh_format.sh — coh-format end to end: the reviewed pn layout, the loss mask (train
# only on answers + end marker), np/both/random orders, templates, prefixes, skipped
# equal pairs, malformed pairs, atomic output, usage.
C="${BIN:-bin}/coh-format"
P=tests/data/pairs
T=$(mktemp -d /tmp/t_coh_format.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
expect_same() {
  if ! cmp -s "$2" "$3"; then fail "$1: output differs from $2"; diff "$2" "$3" | head -20; fi
}

# --- the reviewed layout (strings, Unicode, message lists, shared-conversation prompt, hh)
"$C" $P/coh_input.jsonl >"$T/pn" 2>"$T/err" || fail "pn: exit $?"
expect_same "--order pn" $P/coh_pn.expected.jsonl "$T/pn"
grep -qF "6 pairs read, 5 examples written, 1 skipped (equal chosen and rejected: 1)" "$T/err" ||
  fail "summary: $(cat "$T/err")"

# --- loss mask: segments 2 and 4 (the answers) train, 1 and 3 (prompt, phrases) do not
n=$(grep -c '^{"segments":\[{"text":"[^"]*","train":false},{"text":"[^"]*","train":true},{"text":"[^"]*","train":false},{"text":"[^"]*","train":true}\]}$' "$T/pn")
[ "$n" -eq 5 ] || fail "mask pattern: expected 5 examples false,true,false,true, got $n"
grep -q '"text":"[^"]*helpful answer:[^"]*","train":true' "$T/pn" && fail "a feedback phrase is trained"
grep -q '"text":"User:[^"]*","train":true' "$T/pn" && fail "a prompt is trained"

# --- orders
"$C" -q --order np $P/coh_input.jsonl >"$T/np"
head -n 1 "$T/np" | grep -qF '"text":"User: Name a planet. An unhelpful answer:","train":false},{"text":" The Sun\n","train":true},{"text":"A helpful answer:"' ||
  fail "np layout: $(head -n 1 "$T/np")"
"$C" -q --order both $P/coh_input.jsonl >"$T/both"
[ "$(wc -l <"$T/both")" -eq 10 ] || fail "both: expected 10 examples, got $(wc -l <"$T/both")"
[ "$(sed -n 1p "$T/both")" = "$(sed -n 1p "$T/pn")" ] || fail "both: first example should be pn"
[ "$(sed -n 2p "$T/both")" = "$(sed -n 1p "$T/np")" ] || fail "both: second example should be np"
"$C" -q --order random --seed 3 $P/coh_input.jsonl >"$T/r1"
"$C" -q --order random --seed 3 $P/coh_input.jsonl >"$T/r2"
expect_same "random with the same seed" "$T/r1" "$T/r2"
# 40 copies: with a fair coin both orders must appear
awk '{ for (i = 0; i < 40; i++) print }' $P/coh_input.jsonl >"$T/many.jsonl"
"$C" -q --order random --seed 1 "$T/many.jsonl" >"$T/rm"
pn=$(grep -c '"User: Name a planet. A helpful answer:"' "$T/rm")
np=$(grep -c '"User: Name a planet. An unhelpful answer:"' "$T/rm")
[ "$pn" -gt 5 ] && [ "$np" -gt 5 ] && [ $((pn + np)) -eq 40 ] || fail "random order: pn $pn, np $np of 40"

# --- templates, prefixes, eos
"$C" -q --template good-bad $P/coh_input.jsonl | head -n 1 | grep -qF 'Name a planet. A good answer:"' || fail "good-bad template"
"$C" -q --template $P/coh_templates.json --seed 5 "$T/many.jsonl" >"$T/tf"
grep -qF 'Here is a helpful reply:' "$T/tf" && grep -qF 'A good answer:' "$T/tf" || fail "template file: both phrase pairs should be drawn"
grep -qF 'helpful answer' "$T/tf" && fail "template file: the default phrases leaked in"
"$C" -q --user-prefix "Q: " --eos "</s>" $P/coh_input.jsonl | head -n 1 |
  grep -qF '{"text":"Q: Name a planet. A helpful answer:","train":false},{"text":" Mars</s>","train":true},{"text":" An unhelpful answer:","train":false}' ||
  fail "--user-prefix/--eos: $("$C" -q --user-prefix "Q: " --eos "</s>" $P/coh_input.jsonl | head -n 1)"
[ "$("$C" --inference-prefix)" = "User: {prompt} A helpful answer:" ] || fail "--inference-prefix: $("$C" --inference-prefix)"
[ "$("$C" --inference-prefix --template good-bad --user-prefix '')" = "{prompt} A good answer:" ] ||
  fail "--inference-prefix with options"

# --- bad input
expect_fail "missing rejected" 65 'coh_bad.jsonl:2: missing field "rejected"' "$C" $P/coh_bad.jsonl
"$C" --skip-invalid $P/coh_bad.jsonl >"$T/out" 2>"$T/err" || fail "--skip-invalid: exit $?"
[ "$(wc -l <"$T/out")" -eq 2 ] || fail "--skip-invalid: expected 2 examples, got $(wc -l <"$T/out")"
grep -qF "invalid: 3" "$T/err" || fail "--skip-invalid count: $(cat "$T/err")"
printf '[1,2]\n' >"$T/bad.json"
expect_fail "bad template file" 65 "item 0 must be [" "$C" --template "$T/bad.json" $P/coh_input.jsonl
expect_fail "missing template" 66 "no such template" "$C" --template "$T/nope.json" $P/coh_input.jsonl
expect_fail "bad order" 64 "coh-format: --order: expected pn, np, random or both, got 'sideways'" "$C" --order sideways $P/coh_input.jsonl
expect_fail "missing input" 66 "cannot open" "$C" "$T/nope.jsonl"

# --- atomic output
"$C" -q -o "$T/coh.jsonl" $P/coh_bad.jsonl 2>/dev/null && fail "bad input should fail"
[ -e "$T/coh.jsonl" ] && fail "failed run left its output behind"
"$C" -q -o "$T/coh.jsonl" <$P/coh_input.jsonl || fail "-o from stdin"
expect_same "-o file from stdin" $P/coh_pn.expected.jsonl "$T/coh.jsonl"

"$C" -h | grep -q "Usage: coh-format" || fail "-h"
"$C" --version | grep -q "coh-format (cherry)" || fail "--version"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "coh-format: all checks passed"
