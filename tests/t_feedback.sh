#!/bin/sh
# t_feedback.sh — feedback on hand-written serve logs: KTO records (one per user and
# completion, the later thumbs replacing the earlier), pairs from rankings (same as
# rank2pairs on feedback's own Argilla records), picks and thumbs-up x thumbs-down
# of one prompt (never equal texts), conversational prompts kept as message lists,
# --model-version, unknown ids and torn lines skipped, and the errors.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_feedback.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
F="$B/feedback"

it() { # ID VERSION PROMPT-JSON TEXT...
  id=$1 v=$2 p=$3; shift 3
  i=0; ch=""
  for t in "$@"; do
    ch="$ch${ch:+,}{\"id\":\"$id-$i\",\"index\":$i,\"text\":\"$t\",\"finish_reason\":\"stop\",\"tokens\":3}"
    i=$((i + 1))
  done
  printf "%s\n" "{\"object\":\"interaction\",\"id\":\"$id\",\"model_version\":\"$v\",\"prompt\":$p,\"choices\":[$ch]}"
}
{
  it r1 v1 '"Repeat: red fox\nAnswer:"' " red fox. Glad to help!" " red fox." " blue"
  it r2 v1 '"Repeat: red fox\nAnswer:"' " red fox." " red fox. Glad to help!"
  it r3 v2 '[{"role":"user","content":"hi"}]' "Hello!" "Go away." "Hello!"
  it r4 v2 '"Repeat: sky\nAnswer:"' " sky."
} >"$T/i.jsonl"
cat >"$T/f.jsonl" <<'EOF2'
{"object":"feedback","id":"fb1","type":"thumbs","completion_id":"r1-0","value":"down","user":"a"}
{"object":"feedback","id":"fb2","type":"thumbs","completion_id":"r1-0","value":"up","user":"a"}
{"object":"feedback","id":"fb3","type":"thumbs","completion_id":"r1-2","value":"down","user":"a"}
{"object":"feedback","id":"fb4","type":"thumbs","completion_id":"r2-0","value":"down","user":"b"}
{"object":"feedback","id":"fb5","type":"ranking","response_id":"r1","ranking":["r1-0","r1-1","r1-2"],"user":"a"}
{"object":"feedback","id":"fb6","type":"ranking","response_id":"r1","ranking":["r1-1","r1-0","r1-2"],"user":"b"}
{"object":"feedback","id":"fb7","type":"pick","chosen":"r3-0","rejected":"r3-1"}
{"object":"feedback","id":"fb8","type":"pick","chosen":"r3-0","rejected":"r3-2"}
{"object":"feedback","id":"fb9","type":"thumbs","completion_id":"r9-0","value":"up"}
{"object":"feedback","id":"fb10","type":"thumbs","completion_id":"r3-1","value":"down"}
{"object":"feedback","id":"fb11","type":"thumbs","completion_id":"r3-0","value":"up"}
EOF2
printf '{"object":"feedback","id":"fb12","type":"thu' >>"$T/f.jsonl"

"$F" --kto "$T/kto.jsonl" --pairs "$T/pairs.jsonl" --argilla "$T/arg.jsonl" "$T/i.jsonl" "$T/f.jsonl" 2>"$T/err" ||
  fail "feedback: $(cat "$T/err")"
grep -q "1 replaced by a later one, 1 on unknown ids skipped" "$T/err" || fail "summary: $(cat "$T/err")"
grep -q "1 torn lines skipped" "$T/err" || fail "torn line not reported: $(cat "$T/err")"

# KTO: r1-0 up (replaced), r1-2 down, r2-0 down, r3-1 down, r3-0 up
[ "$(wc -l <"$T/kto.jsonl")" -eq 5 ] || fail "expected 5 KTO records, got $(wc -l <"$T/kto.jsonl")"
jq -se '.[0] == {"prompt":"Repeat: red fox\nAnswer:","completion":" red fox. Glad to help!","label":true}' "$T/kto.jsonl" >/dev/null ||
  fail "first KTO record: $(head -1 "$T/kto.jsonl")"
jq -se 'map(select(.label == false)) | length == 3' "$T/kto.jsonl" >/dev/null || fail "undesirable count"
jq -se 'map(select(.prompt | type == "array"))[0].completion == [{"role":"assistant","content":"Go away."}]' \
  "$T/kto.jsonl" >/dev/null || fail "conversational KTO record: $(cat "$T/kto.jsonl")"

# pairs: ranking r1 (mean of a and b: 0 and 1 tie -> 0>2, 1>2), picks (fb8 has equal texts:
# skipped), thumbs: r1-0 up x {r1-2, r2-0} down (r2-0 = r1-1's text, not r1-0's), r3-0 x r3-1
jq -r '.id' "$T/pairs.jsonl" >"$T/ids"
[ "$(grep -c '^r1$' "$T/ids")" -eq 2 ] || fail "ranking pairs: $(cat "$T/ids")"
grep -qx fb7 "$T/ids" || fail "pick fb7 missing"
grep -qx fb8 "$T/ids" && fail "pick fb8 with equal texts written"
[ "$(grep -c '^thumbs:' "$T/ids")" -eq 3 ] || fail "thumbs pairs: $(cat "$T/ids")"
jq -se 'all(.[]; .chosen != .rejected)' "$T/pairs.jsonl" >/dev/null || fail "a pair with equal texts"
jq -se 'map(select(.id == "fb7"))[0] | .chosen == [{"role":"assistant","content":"Hello!"}] and (.prompt | type == "array")' \
  "$T/pairs.jsonl" >/dev/null || fail "pick pair: $(grep fb7 "$T/pairs.jsonl")"
grep -q "equal texts skipped" "$T/err" || fail "equal texts not reported"

# Argilla: r1, r2, r3 (r4 has one answer); r1 ranked by a and b; through rank2pairs
[ "$(wc -l <"$T/arg.jsonl")" -eq 3 ] || fail "expected 3 Argilla records"
jq -se '.[0].status == "completed" and (.[0].responses.ranking | length) == 2 and .[1].status == "pending"
  and .[0].metadata.model_version == "v1"' "$T/arg.jsonl" >/dev/null || fail "Argilla records: $(head -2 "$T/arg.jsonl")"
"$B/rank2pairs" -q --pairs all "$T/arg.jsonl" >"$T/r2p.jsonl" || fail "rank2pairs on feedback's Argilla records"
jq -c 'select(.id == "r1")' "$T/pairs.jsonl" >"$T/fb_r1.jsonl"
cmp -s "$T/r2p.jsonl" "$T/fb_r1.jsonl" || fail "rank2pairs: $(cat "$T/r2p.jsonl") vs feedback: $(cat "$T/fb_r1.jsonl")"

# --model-version, options
"$F" -q --kto "$T/k2.jsonl" --model-version v2 "$T/i.jsonl" "$T/f.jsonl" || fail "--model-version"
[ "$(wc -l <"$T/k2.jsonl")" -eq 2 ] || fail "--model-version v2: $(cat "$T/k2.jsonl")"
"$F" -q --pairs "$T/p0.jsonl" --max-thumb-pairs 0 "$T/i.jsonl" "$T/f.jsonl" && ! grep -q thumbs: "$T/p0.jsonl" ||
  fail "--max-thumb-pairs 0"
"$F" -q --pairs "$T/p1.jsonl" --ranking-pairs best-worst --aggregate each "$T/i.jsonl" "$T/f.jsonl" &&
  [ "$(grep -c '"id":"r1"' "$T/p1.jsonl")" -eq 2 ] || fail "--ranking-pairs best-worst --aggregate each"

# errors
expect_fail "no output" 64 "nothing to write" "$F" "$T/i.jsonl"
expect_fail "no logs" 64 "no log files" "$F" --kto "$T/x"
expect_fail "missing log" 66 "$T/none" "$F" --kto "$T/x" "$T/none"
printf '{"object":"interaction","id":"z","prompt":"p","choices":[]}\n' >"$T/bad.jsonl"
expect_fail "bad record" 65 "bad.jsonl:1: field \"choices\"" "$F" --kto "$T/x" "$T/bad.jsonl"
[ -e "$T/x" ] && fail "an output was left after an error"
printf 'not json\n{"object":"feedback"}\n' >"$T/bad2.jsonl"
expect_fail "garbage line" 65 "bad2.jsonl:1" "$F" --kto "$T/x" "$T/bad2.jsonl"

[ $fails -eq 0 ]
