#!/bin/sh
# t_input_strict.sh — input that used to pass silently or with a wrong message:
#   - rank2pairs exits 65 when nothing parses (`echo 'not json' | rank2pairs`);
#   - a UTF-8 byte-order mark before the first JSONL record is accepted by every
#     reader (tokenize/logprobs/dpo... share jsonl.c), not only rank2pairs;
#   - {"prompt", "chosen"} without "rejected" is 65 "missing field rejected", not
#     a misleading "prompt-only" usage error;
#   - a directory given as the input says so (66);
#   - a key twice in one record is refused (65), in JSONL and in rank2pairs' JSON;
#   - rank2pairs and rollout --pairs never write a pair whose texts are equal and
#     count them in the summary;
#   - an Argilla 2.x export whose responses have no status gets a warning (drafts
#     would be counted as submitted).
# (A reward answer "1<NUL>2" is refused: tests/test_rewardcmd.c.)
B=${BIN:-bin}
command -v jq >/dev/null || { echo "skipped: jq not installed"; exit 77; }
T=$(mktemp -d /tmp/t_input_strict.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
M=tests/oracle/fixtures/pref-gpt2-policy
TOK="-t data/tokenizer.json"

echo 'not json' >"$T/notjson"
expect_fail "rank2pairs of 'not json'" 65 "no records read" sh -c "\"$B/rank2pairs\" <\"$T/notjson\""
: >"$T/empty.jsonl"
expect_fail "rank2pairs of an empty file" 65 "no records read" "$B/rank2pairs" "$T/empty.jsonl"

printf '\357\273\277{"text": "hello world"}\n' >"$T/bom.jsonl"
"$B/tokenize" $TOK --count "$T/bom.jsonl" >"$T/count" 2>"$T/err" || fail "tokenize with a BOM: $(cat "$T/err")"
printf '\357\273\277{"prompt": "a", "chosen": " b", "rejected": " c"}\n' >"$T/bompairs.jsonl"
"$B/logprobs" --threads 1 -m "$M" "$T/bompairs.jsonl" >/dev/null 2>"$T/err" || fail "logprobs with a BOM: $(cat "$T/err")"

printf '%s\n' '{"prompt": "x", "chosen": " y"}' >"$T/norej.jsonl"
expect_fail "dpo without rejected" 65 "norej.jsonl:1: missing field \"rejected\"" \
    "$B/dpo" -q -m "$M" -o "$T/dpo" --max-steps 1 "$T/norej.jsonl"
expect_fail "logprobs without rejected" 65 "missing field \"rejected\"" "$B/logprobs" --threads 1 -m "$M" "$T/norej.jsonl"

mkdir "$T/dir"
expect_fail "tokenize of a directory" 66 "is a directory" "$B/tokenize" $TOK --count "$T/dir"
expect_fail "rank2pairs of a directory" 66 "is a directory" "$B/rank2pairs" "$T/dir"
expect_fail "dpo of a directory" 66 "is a directory" "$B/dpo" -q -m "$M" -o "$T/dpo" --max-steps 1 "$T/dir"

printf '%s\n' '{"text": "a", "text": "b"}' >"$T/dup.jsonl"
expect_fail "duplicate key in JSONL" 65 "duplicate" "$B/tokenize" $TOK --count "$T/dup.jsonl"
printf '%s\n' '{"id": "r", "id": "s", "fields": {"prompt": "p", "a": "x", "b": "y"}, "responses": {"q": [{"value": ["a", "b"], "user_id": "u", "status": "submitted"}]}}' >"$T/dup2.jsonl"
expect_fail "duplicate key in rank2pairs" 65 "duplicate" "$B/rank2pairs" "$T/dup2.jsonl"

# equal texts: options a and b say the same thing
printf '%s\n' '{"id": "r1", "fields": {"prompt": "p", "a": "same", "b": "same", "c": "other"}, "responses": {"q": [{"value": ["a", "b", "c"], "user_id": "u1", "status": "submitted"}]}}' >"$T/same.jsonl"
"$B/rank2pairs" --pairs all "$T/same.jsonl" >"$T/same.out" 2>"$T/err" || fail "rank2pairs of equal options: $(cat "$T/err")"
[ "$(grep -c . "$T/same.out")" -eq 2 ] || fail "expected the 2 pairs with different texts, got: $(cat "$T/same.out")"
[ "$(jq -c 'select(.chosen == .rejected)' "$T/same.out" | wc -l)" -eq 0 ] || fail "a pair with chosen == rejected was written"
grep -q "2 pairs written, 1 with chosen == rejected not written" "$T/err" || fail "summary should count it: $(cat "$T/err")"

# no status: warned
printf '%s\n' '{"id": "r1", "fields": {"prompt": "p", "a": "x", "b": "y"}, "responses": {"q": [{"value": ["a", "b"], "user_id": "u1"}]}}' >"$T/nostatus.jsonl"
"$B/rank2pairs" "$T/nostatus.jsonl" >/dev/null 2>"$T/err" || fail "rank2pairs without status: $(cat "$T/err")"
grep -q 'warning: 1 responses have no "status"' "$T/err" || fail "no warning for a missing status: $(cat "$T/err")"
sed 's/"user_id": "u1"}/"user_id": "u1", "status": "submitted"}/' "$T/nostatus.jsonl" >"$T/status.jsonl"
"$B/rank2pairs" "$T/status.jsonl" >/dev/null 2>"$T/err"
grep -q "warning" "$T/err" && fail "a warning for an export with statuses: $(cat "$T/err")"

# rollout --pairs: a stop string (" ") cuts different samples to the same text ("")
"$B/init-model" -q -o "$T/pol" --family llama --layers 1 --heads 2 --width 16 --context 48 --init-std 0.5 \
    --tokenizer data/tokenizer.json --seed 3 || fail "init-model policy"
"$B/init-model" -q -o "$T/rm" --family gpt2 --layers 1 --heads 2 --width 16 --context 64 --classifier \
    --init-std 0.5 --tokenizer data/tokenizer.json --seed 5 || fail "init-model reward model"
printf '%s\n' '{"prompt": "The cat"}' '{"prompt": "A dog"}' >"$T/p.jsonl"
"$B/rollout" -m "$T/pol" --reward-model "$T/rm" --pairs all-ranked -n 12 --max-new-tokens 6 --stop " " --seed 7 "$T/p.jsonl" >"$T/rp.jsonl" 2>"$T/err" || fail "rollout --pairs: $(cat "$T/err")"
[ "$(jq -c 'select(.chosen == .rejected)' "$T/rp.jsonl" | wc -l)" -eq 0 ] || fail "rollout wrote a pair with chosen == rejected"
n=$(sed -n 's/.*, \([0-9]*\) with chosen == rejected not written.*/\1/p' "$T/err")
[ -n "$n" ] && [ "$n" -gt 0 ] || fail "rollout: expected some equal-text pairs dropped and counted: $(cat "$T/err")"
[ $fails -eq 0 ] && echo "t_input_strict: all checks passed"
[ $fails -eq 0 ]
