#!/bin/sh
# t_parquet.sh — programs that read records read Parquet (cherry-parquet(5)): rank2pairs,
# tokenize, dpo and sft give the same output bytes (or model files) on a .parquet and
# on the JSONL of the same rows (tests/oracle/make_parquet_fixtures.py); a Parquet file
# through a pipe; a damaged one exits 65 naming the file.
B="${BIN:-bin}"
P=tests/oracle/fixtures/parquet
M=tests/oracle/fixtures/pref-gpt2-policy
TK=tests/oracle/tokenizers/gpt2.json
[ -d "$P" ] || { echo "skipped: $P missing (run from the repository root)"; exit 77; }
T=$(mktemp -d /tmp/t_parquet.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

same() { # same WHAT A B
  cmp -s "$2" "$3" || fail "$1: $2 and $3 differ"
}

"$B/rank2pairs" -q "$P/argilla-hf.parquet" >"$T/r1" || fail "rank2pairs parquet: exit $?"
"$B/rank2pairs" -q "$P/argilla-hf.jsonl" >"$T/r2" || fail "rank2pairs jsonl: exit $?"
[ -s "$T/r1" ] || fail "rank2pairs: no pairs"
same rank2pairs "$T/r1" "$T/r2"

for f in pref conversational; do
  "$B/tokenize" -t "$TK" --template plain "$P/$f.parquet" >"$T/t1" || fail "tokenize $f.parquet: exit $?"
  "$B/tokenize" -t "$TK" --template plain "$P/$f.jsonl" >"$T/t2" || fail "tokenize $f.jsonl: exit $?"
  same "tokenize $f" "$T/t1" "$T/t2"
done
# a pipe (the magic is read back, the file is buffered), --count
"$B/tokenize" -t "$TK" --count <"$P/pref.parquet" >"$T/c1" || fail "tokenize parquet on stdin: exit $?"
cat "$P/pref.jsonl" | "$B/tokenize" -t "$TK" --count >"$T/c2" || fail "tokenize jsonl pipe: exit $?"
same "tokenize --count stdin" "$T/c1" "$T/c2"
grep -q '"examples":24' "$T/c1" || fail "tokenize --count: $(cat "$T/c1")"

"$B/dpo" --threads 1 -q -m $M --max-steps 2 --batch-size 4 --lr 1e-3 -o "$T/d1" "$P/pref.parquet" || fail "dpo parquet: exit $?"
"$B/dpo" --threads 1 -q -m $M --max-steps 2 --batch-size 4 --lr 1e-3 -o "$T/d2" "$P/pref.jsonl" || fail "dpo jsonl: exit $?"
same dpo "$T/d1/model.safetensors" "$T/d2/model.safetensors"

"$B/sft" --threads 1 -q -m $M --max-steps 2 --batch-size 2 --lr 1e-3 --template plain -o "$T/s1" "$P/conversational.parquet" ||
  fail "sft parquet: exit $?"
"$B/sft" --threads 1 -q -m $M --max-steps 2 --batch-size 2 --lr 1e-3 --template plain -o "$T/s2" "$P/conversational.jsonl" ||
  fail "sft jsonl: exit $?"
same sft "$T/s1/model.safetensors" "$T/s2/model.safetensors"

# damaged: truncated -> 65 and the file's name
head -c 2000 "$P/pref.parquet" >"$T/cut.parquet"
"$B/tokenize" -t "$TK" "$T/cut.parquet" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 65 ] || fail "truncated parquet: exit $rc, expected 65"
grep -q "cut.parquet: parquet: no PAR1 magic at the end" "$T/err" || fail "truncated parquet: message $(cat "$T/err")"
[ $fails -eq 0 ] && echo "parquet: all checks passed"
[ $fails -eq 0 ]
