#!/bin/sh
# t_rank2pairs.sh — rank2pairs end to end: every input shape against reviewed expected
# pairs, the same data as JSONL / JSON array / CSV / stdin giving the same pairs, the
# summary counts, malformed input (exit 65 with FILE:LINE, or skipped and counted under
# --skip-invalid), atomic output, usage errors, and flat memory on a large JSONL.
R="${BIN:-bin}/rank2pairs"
D=tests/data/argilla
P=tests/data/pairs
T=$(mktemp -d /tmp/t_rank2pairs.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

# expect_same WHAT EXPECTED_FILE GOT_FILE
expect_same() {
  if ! cmp -s "$2" "$3"; then fail "$1: output differs from $2"; diff "$2" "$3" | head -20; fi
}


# --- every shape against reviewed expectations
"$R" -q --margin $D/a1_records.jsonl $D/a1_hf.jsonl $D/a2_nested.jsonl $D/oasst_trees.jsonl $D/shp.jsonl \
  $D/ultrafeedback.jsonl $D/summarize.jsonl $D/hh.jsonl >"$T/all" || fail "all shapes: exit $?"
expect_same "all shapes" $P/rank2pairs_all.expected.jsonl "$T/all"
"$R" -q --pairs all --aggregate each $D/a1_records.jsonl $D/a2_nested.jsonl >"$T/each" || fail "each: exit $?"
expect_same "--aggregate each --pairs all" $P/rank2pairs_each_all.expected.jsonl "$T/each"
"$R" -q --pairs adjacent --aggregate majority --margin $D/a1_hf.jsonl $D/a2_nested.jsonl >"$T/maj" || fail "majority"
expect_same "--aggregate majority --pairs adjacent" $P/rank2pairs_majority_adjacent.expected.jsonl "$T/maj"
"$R" -q --pairs best-worst --aggregate borda --margin $D/a1_records.jsonl $D/a2_nested.jsonl >"$T/borda" || fail "borda"
expect_same "--aggregate borda --pairs best-worst" $P/rank2pairs_borda_bw.expected.jsonl "$T/borda"

# --- one dataset, four containers: same pairs
"$R" -q $D/a2_nested.jsonl >"$T/nested" || fail "nested"
for f in $D/a2_flat.jsonl $D/a2_flat.csv $D/a2_to_json.json; do
  "$R" -q "$f" >"$T/other" || fail "$f: exit $?"
  expect_same "$f vs a2_nested.jsonl" "$T/nested" "$T/other"
done
"$R" -q $D/a1_api_items.json >"$T/other" || fail "1.x API response: exit $?"
"$R" -q $D/a1_records.jsonl >"$T/a1"
expect_same "1.x API {items: [...]} vs JSONL" "$T/a1" "$T/other"
"$R" -q <$D/a2_flat.csv >"$T/other" || fail "CSV on stdin"
expect_same "CSV on stdin" "$T/nested" "$T/other"
"$R" -q - <$D/a2_to_json.json >"$T/other" || fail "array on stdin"
expect_same "JSON array on stdin" "$T/nested" "$T/other"

# --- the summary
"$R" $D/a1_records.jsonl >/dev/null 2>"$T/err" || fail "summary run"
grep -qF "6 records read, 2 used, 4 skipped (no submitted response: 1, only draft or discarded: 1, one option: 1, all tied: 1), 4 pairs written, 0 with chosen == rejected not written" "$T/err" ||
  fail "summary counts: got $(cat "$T/err")"
grep -qF "mean pairwise agreement 0.6667 over 1 records" "$T/err" || fail "agreement in summary: $(cat "$T/err")"
"$R" $D/a1_hf.jsonl >/dev/null 2>"$T/err"
grep -qF 'using "instruction"' "$T/err" || fail "prompt fallback not reported: $(cat "$T/err")"
"$R" -q $D/a1_records.jsonl >/dev/null 2>"$T/err"
[ -s "$T/err" ] && fail "-q should keep stderr quiet, got: $(cat "$T/err")"
"$R" --min-annotators 2 $D/a1_records.jsonl 2>"$T/err" | grep -q '"r6"' && fail "--min-annotators 2 kept r6"
grep -qF "too few annotators: 2" "$T/err" || fail "--min-annotators count: $(cat "$T/err")"
"$R" --min-agreement 0.7 $D/a1_records.jsonl 2>"$T/err" | grep -q '"r1"' && fail "--min-agreement 0.7 kept r1"
grep -qF "low agreement: 1" "$T/err" || fail "--min-agreement count: $(cat "$T/err")"
"$R" -q --prompt-field instruction $D/a1_hf.jsonl | grep -q "Japanese" || fail "--prompt-field"
"$R" -q --question nope $D/a2_nested.jsonl >"$T/out" 2>&1
[ -s "$T/out" ] && fail "--question nope should give no pairs"

# --- malformed input: exit 65 naming FILE:LINE (or [index]); --skip-invalid counts
expect_fail "truncated JSON" 65 "truncated.jsonl:2: invalid JSON" "$R" $D/bad/truncated.jsonl
expect_fail "wrong type" 65 "wrong_type.jsonl:2: responses.preference[0]" "$R" $D/bad/wrong_type.jsonl
expect_fail "unknown option" 65 'unknown_option.jsonl:2: question "preference": unknown option "answer_z"' \
  "$R" $D/bad/unknown_option.jsonl
expect_fail "rank out of range" 65 "rank_out_of_range.jsonl:3: responses[0]: question \"preference\": rank 7 out of range (1..3)" \
  "$R" $D/bad/rank_out_of_range.jsonl
expect_fail "flat parallel lists" 65 "parallel_lengths.jsonl:2: parallel lists of different lengths" \
  "$R" $D/bad/parallel_lengths.jsonl
expect_fail "HF parallel lists" 65 "hf_parallel_lengths.jsonl:1: ranking[0]: question \"ranking\": parallel lists" \
  "$R" $D/bad/hf_parallel_lengths.jsonl
expect_fail "Python repr in CSV" 65 "python_repr.csv:2: column \"ranking\" holds a Python repr" \
  "$R" $D/bad/python_repr.csv
expect_fail "several questions" 65 "several ranking questions (preference, other)" "$R" $D/bad/two_questions.jsonl
expect_fail "unterminated CSV" 65 "unterminated.csv:2: unterminated quoted cell" "$R" $D/bad/unterminated.csv
printf '[{"id":"a","fields":{"prompt":"p"},"responses":{}}, 5]\n' >"$T/arr.json"
expect_fail "array item" 65 "arr.json:[1]: expected a JSON object" "$R" "$T/arr.json"
printf '[{"id":"a",' >"$T/cut.json"
expect_fail "truncated array" 65 "cut.json:1: invalid JSON" "$R" --skip-invalid "$T/cut.json"
expect_fail "missing input" 66 "cannot open" "$R" "$T/does-not-exist.jsonl"

"$R" --skip-invalid $D/bad/truncated.jsonl >"$T/out" 2>"$T/err" || fail "--skip-invalid: exit $?"
[ "$(wc -l <"$T/out")" -eq 3 ] || fail "--skip-invalid: expected 3 pairs, got $(wc -l <"$T/out")"
grep -qF "invalid: 1" "$T/err" || fail "--skip-invalid count: $(cat "$T/err")"
grep -qF "skipped: " "$T/err" || fail "--skip-invalid should say what it skipped"

# --- atomic output: an error leaves no file, success writes it whole
"$R" -q -o "$T/pairs.jsonl" $D/bad/truncated.jsonl 2>/dev/null && fail "bad input should fail"
[ -e "$T/pairs.jsonl" ] && fail "failed run left $T/pairs.jsonl behind"
ls "$T" | grep -q '\.tmp' && fail "failed run left a temporary in $T"
"$R" -q -o "$T/pairs.jsonl" $D/a2_nested.jsonl || fail "-o: exit $?"
expect_same "-o file" "$T/nested" "$T/pairs.jsonl"

# --- usage
"$R" -h | grep -q "Usage: rank2pairs" || fail "-h"
"$R" --version | grep -q "rank2pairs (cherry)" || fail "--version"
expect_fail "bad --pairs" 64 "--pairs" "$R" --pairs some $D/a2_nested.jsonl
expect_fail "bad --aggregate" 64 "--aggregate" "$R" --aggregate vote $D/a2_nested.jsonl
expect_fail "bad --format" 64 "--format" "$R" --format argilla9 $D/a2_nested.jsonl
expect_fail "bad --min-agreement" 64 "--min-agreement" "$R" --min-agreement 2 $D/a2_nested.jsonl

# --- determinism
"$R" -q --seed 1 --pairs all $D/a1_records.jsonl >"$T/s1"
"$R" -q --seed 2 --pairs all $D/a1_records.jsonl >"$T/s2"
expect_same "same input, same output" "$T/s1" "$T/s2"

# --- streaming: peak memory for 40000 records is close to that for 400
head -n 1 $D/a2_nested.jsonl | awk '{ for (i = 0; i < 400; i++) print }' >"$T/small.jsonl"
head -n 1 $D/a2_nested.jsonl | awk '{ for (i = 0; i < 40000; i++) print }' >"$T/big.jsonl"
if [ -x /usr/bin/time ]; then
  small=$(/usr/bin/time -f %M "$R" -q "$T/small.jsonl" 2>&1 >/dev/null | tail -n 1)
  big=$(/usr/bin/time -f %M "$R" -q "$T/big.jsonl" 2>&1 >/dev/null | tail -n 1)
  echo "peak RSS: 400 records ${small} KiB, 40000 records ${big} KiB ($(wc -c <"$T/big.jsonl") bytes)"
  [ "$big" -lt $((small + 2048)) ] || fail "memory grows with the file: ${small} KiB -> ${big} KiB"
  # CSV streams too
  "$R" -q $D/a2_flat.csv >/dev/null
  head -n 1 $D/a2_flat.csv >"$T/big.csv"
  sed -n '2,4p' $D/a2_flat.csv | awk '{ l[NR] = $0 } END { for (i = 0; i < 5000; i++) for (j = 1; j <= NR; j++) print l[j] }' >>"$T/big.csv"
  bigcsv=$(/usr/bin/time -f %M "$R" -q "$T/big.csv" 2>&1 >/dev/null | tail -n 1)
  echo "peak RSS: CSV with 5000 records ${bigcsv} KiB"
  [ "$bigcsv" -lt $((small + 2048)) ] || fail "CSV memory grows with the file: ${small} KiB -> ${bigcsv} KiB"
fi
n=$("$R" -q "$T/big.jsonl" | wc -l)
[ "$n" -eq 80000 ] || fail "big file: expected 80000 pairs, got $n"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "rank2pairs: all checks passed"
