#!/bin/sh
# bench_serve.sh — the load test of serve (make bench): on loopback, 32 concurrent
# clients (simulate-users --feedback none) send 320 completion requests (n=1, up to 24
# new tokens) to the bundled task's tiny Llama; prints requests/s and p50/p99
# latency.  Then the crash test: the same load against a fresh server that is
# SIGKILLed once 100 answers have arrived; every answer a client received must be in
# the interaction log (append + fdatasync before the response), and the log must hold
# no broken line except at most a torn last one.  Bounded: every step has a timeout.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/bench_serve.XXXXXX)
SERVE_PID=
trap '[ -n "$SERVE_PID" ] && kill -9 $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
. tests/lib.sh
. tests/serve_lib.sh
command -v jq >/dev/null || { echo "bench_serve: jq not installed, skipped"; exit 0; }
CLIENTS=${CLIENTS:-32} REPEAT=${REPEAT:-5}

"$B/init-model" -q -o "$T/pol" --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --mlp-width 192 \
  --context 128 --tokenizer data/tokenizer.json --seed 1 || exit 1
"$B/task-gen" --kind prompts -n 64 --max-words 2 --seed 7 -o "$T/prompts.jsonl" || exit 1
load() { # NAME EXTRA-ARGS...
  n=$1; shift
  timeout 120 "$B/simulate-users" --url "http://127.0.0.1:$PORT" -n 1 --max-tokens 24 --feedback none \
    --clients "$CLIENTS" --repeat "$REPEAT" --seed 3 --report "$T/$n.json" "$@" "$T/prompts.jsonl"
}

# 1. throughput and latency
serve_start a -m "$T/pol" --template plain --batch-size 16 --interactions "$T/a-i.jsonl" --feedback-log "$T/a-f.jsonl" || exit 1
load a -q || fail "load run: $(cat "$T/a.err")"
serve_stop
jq -r '"serve load: \(.ok)/\(.requests) requests, \(.clients) clients, \(.requests_per_s * 10 | round / 10) requests/s, p50 \(.latency_p50_ms * 10 | round / 10) ms, p99 \(.latency_p99_ms * 10 | round / 10) ms"' "$T/a.json"
[ "$(jq .ok "$T/a.json")" -eq "$(wc -l <"$T/a-i.jsonl")" ] || fail "logged $(wc -l <"$T/a-i.jsonl") of $(jq .ok "$T/a.json") answers"

# 2. SIGKILL in the middle: no answered request missing from the log
serve_start b -m "$T/pol" --template plain --batch-size 16 --interactions "$T/b-i.jsonl" --feedback-log "$T/b-f.jsonl" || exit 1
load b -q --ids "$T/ids" 2>/dev/null &
LOAD_PID=$!
answers() { if [ -f "$T/ids" ]; then wc -l <"$T/ids"; else echo 0; fi; }
i=0
while [ "$(answers)" -lt 100 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $SERVE_PID; wait $SERVE_PID 2>/dev/null; SERVE_PID=
wait $LOAD_PID
answered=$(wc -l <"$T/ids")
logged=$(jq -R 'fromjson? | select(.object == "interaction") | .id' "$T/b-i.jsonl" 2>/dev/null | wc -l)
bad=$(jq -R 'fromjson? // "bad"' "$T/b-i.jsonl" 2>/dev/null | grep -c '^"bad"$')
lost=0
jq -rR 'fromjson? | .id // empty' "$T/b-i.jsonl" | sort >"$T/logged-ids"
sort "$T/ids" | comm -23 - "$T/logged-ids" >"$T/lost"
lost=$(wc -l <"$T/lost")
echo "serve crash: SIGKILL after $answered answers; $logged records in the log; $lost answered requests missing; $bad unparsable lines"
[ "$lost" -eq 0 ] || fail "$lost answered requests are not in the log: $(head -3 "$T/lost")"
[ "$answered" -ge 100 ] || fail "only $answered answers before the kill"
[ "$bad" -le 1 ] || fail "$bad broken lines in the log"
if [ "$bad" -eq 1 ]; then tail -c 1 "$T/b-i.jsonl" | od -c | grep -q '\\n' && fail "the broken line is not the torn last one"; fi
[ $fails -eq 0 ]
