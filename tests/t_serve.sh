#!/bin/sh
# t_serve.sh — serve over real HTTP on loopback: /health, /v1/models, completions
# equal to rollout's for the same seed, n, stop strings, streaming (SSE deltas add up
# to the logged text, [DONE] last), the interaction log (one record per answer,
# model version, sampling, ids), feedback (thumbs, ranking, pick; token required;
# unknown ids, malformed and oversized bodies are 4xx and log nothing), hot reload
# by POST /admin/reload and SIGHUP while requests are in flight (none fails, each
# record names the version that produced it), a torn log line after SIGKILL,
# --gen-dtype int8 and bf16 (rollout's bytes with the same flag), and the usage
# errors.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_serve.XXXXXX)
SERVE_PID=
trap '[ -n "$SERVE_PID" ] && kill -9 $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
. tests/lib.sh
. tests/serve_lib.sh
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
command -v curl >/dev/null || { echo "curl not installed"; exit 77; }

mk() { "$B/init-model" -q -o "$T/$1" --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --context 96 \
  --init-std 0.2 --tokenizer data/tokenizer.json --seed "$2" || { echo "FAIL: init-model $1"; exit 1; }; }
mk pol 3
mk pol2 4
mk pol3 5

# --- usage errors
expect_fail "no model" 64 "-m/--model DIR is required" "$B/serve"
expect_fail "bad port" 64 "--port must be in" "$B/serve" -m "$T/pol" --port 70000
case "$B" in /*) SB="$B/serve" ;; *) SB="$PWD/$B/serve" ;; esac
(cd "$T" && "$SB" -m "$T/none" --port 0 >out 2>err; echo $? >rc)
[ "$(cat "$T/rc")" = 66 ] && grep -q "$T/none" "$T/err" || fail "missing model: exit $(cat "$T/rc"): $(cat "$T/err")"
[ -e "$T/interactions.jsonl" ] && fail "a server that could not start created its log"
"$B/serve" --help | grep -q "Usage: serve" || fail "--help"

L="--interactions $T/i.jsonl --feedback-log $T/f.jsonl"
serve_start s1 -m "$T/pol" $L --template plain --token sekret --seed 1 || exit 1
AUTH="Authorization: Bearer sekret"

# --- health, models
curl -s "http://127.0.0.1:$PORT/health" >"$T/h"
[ "$(jq -r .status "$T/h")" = ok ] || fail "/health: $(cat "$T/h")"
V1=$(jq -r .model_version "$T/h")
case "$V1" in pol-????????????) ;; *) fail "model version '$V1'" ;; esac
curl -s "http://127.0.0.1:$PORT/v1/models" | jq -e '.data[0].id == "pol"' >/dev/null || fail "/v1/models"

# --- completions: same bytes as rollout with the same seed
[ "$(post /v1/completions '{"prompt":"The cat sat on","max_tokens":8,"n":2,"seed":7}')" = 200 ] || fail "completions"
jq -r '.choices[].text' "$T/resp" >"$T/serve.txt"
RID=$(jq -r .id "$T/resp")
case "$RID" in cmpl-*) ;; *) fail "response id '$RID'" ;; esac
echo '{"prompt":"The cat sat on"}' | "$B/rollout" -q -m "$T/pol" --template plain --max-new-tokens 8 -n 2 --seed 7 |
  jq -r .completion >"$T/rollout.txt"
cmp -s "$T/serve.txt" "$T/rollout.txt" || fail "serve and rollout differ for seed 7: $(cat "$T/serve.txt") vs $(cat "$T/rollout.txt")"
[ "$(jq -r '.usage.completion_tokens' "$T/resp")" = 16 ] || fail "usage: $(jq -c .usage "$T/resp")"

# --- the interaction log holds it, with version and sampling
[ "$(wc -l <"$T/i.jsonl")" -eq 1 ] || fail "expected 1 interaction record, got $(wc -l <"$T/i.jsonl")"
jq -e --arg v "$V1" --arg id "$RID" '.id == $id and .model_version == $v and .sampling.seed == 7 and
  .sampling.n == 2 and (.choices | length) == 2 and .choices[1].id == ($id + "-1") and .prompt == "The cat sat on"' \
  "$T/i.jsonl" >/dev/null || fail "interaction record: $(cat "$T/i.jsonl")"

# --- greedy + stop string: the text is cut before it, finish_reason stop
post /v1/completions '{"prompt":"Once upon a time","max_tokens":12,"temperature":0}' >/dev/null
FULL=$(jq -r '.choices[0].text' "$T/resp")
STOP=$(jq -r '[.choices[0].text | scan("[a-z]")] | .[1]' "$T/resp")
[ -n "$STOP" ] && [ "$STOP" != null ] || fail "no letter in the greedy text '$FULL'"
post /v1/completions "$(jq -nc --arg s "$STOP" '{prompt:"Once upon a time",max_tokens:12,temperature:0,stop:[$s]}')" >/dev/null
CUT=$(jq -r '.choices[0].text' "$T/resp")
[ "$(jq -r '.choices[0].finish_reason' "$T/resp")" = stop ] || fail "stop: finish_reason $(jq -c . "$T/resp")"
case "$CUT" in *"$STOP"*) fail "stop string '$STOP' left in '$CUT'" ;; esac
case "$FULL" in "$CUT$STOP"*) ;; *) fail "stop: '$CUT' + '$STOP' is not a prefix of '$FULL'" ;; esac

# --- streaming chat: deltas add up to the logged texts, [DONE] last
curl -s -m 30 "http://127.0.0.1:$PORT/v1/chat/completions" -d \
  '{"messages":[{"role":"user","content":"hi"}],"max_tokens":10,"n":2,"stream":true,"seed":3}' >"$T/sse"
[ "$(grep -v '^$' "$T/sse" | tail -1)" = "data: [DONE]" ] || fail "stream does not end with [DONE]"
SID=$(sed -n 's/^data: {"id":"\([^"]*\)".*/\1/p' "$T/sse" | head -1)
for i in 0 1; do
  sed -n 's/^data: \({.*}\)$/\1/p' "$T/sse" | jq -j --argjson i $i '.choices[0] | select(.index == $i) | .delta.content // ""' >"$T/st$i"
  jq -j --arg id "$SID" --argjson i $i 'select(.id == $id) | .choices[$i].text' "$T/i.jsonl" >"$T/lg$i"
  cmp -s "$T/st$i" "$T/lg$i" || fail "stream choice $i: '$(cat "$T/st$i")' vs logged '$(cat "$T/lg$i")'"
done
sed -n 's/^data: \({.*}\)$/\1/p' "$T/sse" | jq -se 'map(select(.choices[0].finish_reason != null)) | length == 2' >/dev/null ||
  fail "stream: no finish_reason"

# --- streaming completions: the text pieces add up to the non-streamed answer (same seed)
curl -s -m 30 "http://127.0.0.1:$PORT/v1/completions" -d '{"prompt":"Once upon","max_tokens":9,"seed":5,"stream":true}' |
  sed -n 's/^data: \({.*}\)$/\1/p' | jq -j '.choices[0].text' >"$T/cst"
post /v1/completions '{"prompt":"Once upon","max_tokens":9,"seed":5}' >/dev/null
jq -j '.choices[0].text' "$T/resp" >"$T/cfull"
cmp -s "$T/cst" "$T/cfull" || fail "streamed completion '$(cat "$T/cst")' differs from '$(cat "$T/cfull")'"

# --- request errors: 4xx JSON, nothing logged
n0=$(wc -l <"$T/i.jsonl")
[ "$(post /v1/chat/completions '{"messages":[]}')" = 400 ] || fail "empty messages not 400"
[ "$(post /v1/completions '{"prompt":"x","n":99}')" = 400 ] || fail "n=99 not 400"
[ "$(post /v1/completions '{"prompt":"x","model":"other"}')" = 404 ] || fail "wrong model not 404"
[ "$(post /v1/completions '{"prompt":')" = 400 ] || fail "broken JSON not 400"
jq -e '.error.message' "$T/resp" >/dev/null || fail "error body: $(cat "$T/resp")"
[ "$(wc -l <"$T/i.jsonl")" -eq "$n0" ] || fail "a failed request was logged"

# --- feedback
CID0="$RID-0" CID1="$RID-1"
[ "$(post /v1/feedback "{\"type\":\"thumbs\",\"completion_id\":\"$CID0\",\"value\":\"up\"}")" = 401 ] || fail "no token not 401"
[ "$(post /v1/feedback "{\"type\":\"thumbs\",\"completion_id\":\"$CID0\",\"value\":\"up\"}" -H "Authorization: Bearer wrong")" = 401 ] ||
  fail "wrong token not 401"
[ "$(post /v1/feedback "{\"type\":\"thumbs\",\"completion_id\":\"$CID0\",\"value\":\"up\",\"user\":\"u1\"}" -H "$AUTH")" = 200 ] ||
  fail "thumbs: $(cat "$T/resp")"
[ "$(post /v1/feedback "{\"type\":\"ranking\",\"response_id\":\"$RID\",\"ranking\":[\"$CID1\",\"$CID0\"],\"comment\":\"2nd better\"}" -H "$AUTH")" = 200 ] ||
  fail "ranking: $(cat "$T/resp")"
[ "$(post /v1/feedback "{\"type\":\"pick\",\"chosen\":\"$CID1\",\"rejected\":\"$CID0\"}" -H "$AUTH")" = 200 ] || fail "pick: $(cat "$T/resp")"
nf=$(wc -l <"$T/f.jsonl")
[ "$nf" -eq 3 ] || fail "expected 3 feedback records, got $nf"
[ "$(post /v1/feedback '{"type":"thumbs","completion_id":"cmpl-nope-0","value":"up"}' -H "$AUTH")" = 404 ] || fail "unknown id not 404"
[ "$(post /v1/feedback "{\"type\":\"thumbs\",\"completion_id\":\"$CID0\",\"value\":\"meh\"}" -H "$AUTH")" = 400 ] || fail "bad value not 400"
[ "$(post /v1/feedback "{\"type\":\"ranking\",\"response_id\":\"$RID\",\"ranking\":[\"$CID1\"]}" -H "$AUTH")" = 400 ] || fail "partial ranking not 400"
[ "$(post /v1/feedback "{\"type\":\"ranking\",\"response_id\":\"$RID\",\"ranking\":[\"$CID1\",\"$CID1\"]}" -H "$AUTH")" = 400 ] || fail "repeated ranking not 400"
[ "$(post /v1/feedback "{\"type\":\"pick\",\"chosen\":\"$CID1\",\"rejected\":\"$SID-0\"}" -H "$AUTH")" = 400 ] || fail "pick across prompts not 400"
[ "$(post /v1/feedback '[1,2' -H "$AUTH")" = 400 ] || fail "malformed feedback not 400"
head -c 1100000 /dev/zero | tr '\0' a >"$T/big"
[ "$(post /v1/feedback "@$T/big" -H "$AUTH")" = 413 ] || fail "oversized body not 413"
[ "$(wc -l <"$T/f.jsonl")" -eq "$nf" ] || fail "a rejected feedback was logged"
jq -se 'map(select(.type == "ranking"))[0] | .comment == "2nd better" and .response_id != null' "$T/f.jsonl" >/dev/null ||
  fail "ranking record: $(cat "$T/f.jsonl")"

# --- hot reload with requests in flight: none fails, each names its version
bg=
for k in 1 2 3 4 5 6; do
  OUT="$T/bg$k" post /v1/completions "{\"prompt\":\"req $k\",\"max_tokens\":60,\"n\":4,\"seed\":$k}" >"$T/bgcode$k" &
  bg="$bg $!"
done
[ "$(post /admin/reload "{\"model\":\"$T/pol2\"}" -H "$AUTH")" = 200 ] || fail "reload: $(cat "$T/resp")"
V2=$(jq -r .model_version "$T/resp")
for p in $bg; do wait $p; done
for k in 1 2 3 4 5 6; do [ "$(cat "$T/bgcode$k")" = 200 ] || fail "request $k during reload: $(cat "$T/bgcode$k")"; done
[ "$V2" != "$V1" ] || fail "reload kept version $V1"
post /v1/completions '{"prompt":"after","max_tokens":4}' >/dev/null
[ "$(jq -r .system_fingerprint "$T/resp")" = "$V2" ] || fail "after reload: $(jq -r .system_fingerprint "$T/resp") not $V2"
jq -r '.model_version' "$T/i.jsonl" | sort -u >"$T/versions"
grep -qvx -e "$V1" -e "$V2" "$T/versions" && fail "unknown versions logged: $(cat "$T/versions")"
[ "$(post /admin/reload '{}')" = 401 ] || fail "reload without token not 401"
[ "$(post /admin/reload "{\"model\":\"$T/none\"}" -H "$AUTH")" = 404 ] || fail "reload of a missing dir not 404"
curl -s "http://127.0.0.1:$PORT/health" | jq -e --arg v "$V2" '.model_version == $v' >/dev/null ||
  fail "a failed reload changed the model"

# --- SIGHUP re-reads the directory served now (pol2, overwritten with pol3's weights)
cp "$T/pol3/model.safetensors" "$T/pol2/model.safetensors.tmp" && mv "$T/pol2/model.safetensors.tmp" "$T/pol2/model.safetensors"
kill -HUP $SERVE_PID
i=0; V3=$V2
while [ "$V3" = "$V2" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); V3=$(curl -s "http://127.0.0.1:$PORT/health" | jq -r .model_version); done
[ "$V3" != "$V2" ] || fail "SIGHUP did not reload"

# --- SIGKILL, a torn line, restart: ids stay known, the new record starts a line of its own
kill -9 $SERVE_PID; wait $SERVE_PID 2>/dev/null; SERVE_PID=
printf '{"object":"interaction","id":"torn' >>"$T/i.jsonl"
CHERRY_TOKEN=sekret serve_start s2 -m "$T/pol" $L --template plain || exit 1
grep -q "feedback needs the token" "$T/s2.err" || fail "CHERRY_TOKEN not used: $(cat "$T/s2.err")"
grep -q "1 torn line" "$T/s2.err" || fail "restart did not report the torn line: $(cat "$T/s2.err")"
[ "$(post /v1/feedback "{\"type\":\"thumbs\",\"completion_id\":\"$CID1\",\"value\":\"down\"}" -H "$AUTH")" = 200 ] ||
  fail "an id from before the restart is unknown: $(cat "$T/resp")"
post /v1/completions '{"prompt":"x","max_tokens":3}' >/dev/null
tail -1 "$T/i.jsonl" | jq -e '.object == "interaction"' >/dev/null || fail "record after the torn line is not whole"
serve_stop || fail "SIGTERM: exit $?"

# --- --gen-dtype: int8 and bf16 decode weights give rollout's bytes with the same flag
expect_fail "bad gen dtype" 64 "--gen-dtype: expected fp32, bf16 or int8" "$B/serve" -m "$T/pol" --gen-dtype q4
for dt in int8 bf16; do
  serve_start "s$dt" -m "$T/pol" --interactions "$T/i$dt.jsonl" --feedback-log "$T/f$dt.jsonl" --template plain \
    --gen-dtype $dt || exit 1
  [ "$(post /v1/completions '{"prompt":"The cat sat on","max_tokens":8,"n":2,"seed":7}')" = 200 ] ||
    fail "completions with --gen-dtype $dt: $(cat "$T/resp")"
  jq -r '.choices[].text' "$T/resp" >"$T/serve$dt.txt"
  echo '{"prompt":"The cat sat on"}' | "$B/rollout" -q -m "$T/pol" --template plain --max-new-tokens 8 -n 2 --seed 7 \
    --gen-dtype $dt | jq -r .completion >"$T/rollout$dt.txt"
  cmp -s "$T/serve$dt.txt" "$T/rollout$dt.txt" ||
    fail "--gen-dtype $dt: serve and rollout differ: $(cat "$T/serve$dt.txt") vs $(cat "$T/rollout$dt.txt")"
  serve_stop || fail "SIGTERM ($dt): exit $?"
done
cmp -s "$T/serveint8.txt" "$T/serve.txt" && cmp -s "$T/servebf16.txt" "$T/serve.txt" &&
  fail "--gen-dtype changed nothing: int8, bf16 and fp32 completions are the same bytes"

[ $fails -eq 0 ]
