#!/bin/sh
# t_serve_smollm2.sh — serve with a real chat model (SmolLM2-135M-Instruct, imported by
# `make models/smollm2-135m-instruct`): the chat template comes from its
# tokenizer_config.json (chatml, with its default system message), and a greedy chat
# answer over HTTP, streamed or not, is the one `rollout --template auto` gives.
B="${BIN:-bin}"
M=models/smollm2-135m-instruct
[ -f "$M/config.json" ] || { echo "$M not present (make $M): skipped"; exit 77; }
T=$(mktemp -d /tmp/t_serve_smollm2.XXXXXX)
SERVE_PID=
trap '[ -n "$SERVE_PID" ] && kill -9 $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
. tests/lib.sh
. tests/serve_lib.sh
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
command -v curl >/dev/null || { echo "curl not installed"; exit 77; }

MSG='[{"role":"user","content":"What is the capital of France?"}]'
printf '{"messages":%s}\n' "$MSG" | "$B/rollout" -q -m "$M" --template auto --temperature 0 --max-new-tokens 30 |
  jq -r '.completion[0].content' >"$T/want" || fail "rollout"
serve_start s -m "$M" --interactions "$T/i.jsonl" --feedback-log "$T/f.jsonl" --threads 2 || exit 1
[ "$(post /v1/chat/completions "{\"messages\":$MSG,\"max_tokens\":30,\"temperature\":0}")" = 200 ] || fail "chat: $(cat "$T/resp")"
jq -r '.choices[0].message.content' "$T/resp" >"$T/got"
cmp -s "$T/got" "$T/want" || fail "serve '$(cat "$T/got")' vs rollout '$(cat "$T/want")'"
grep -q Paris "$T/got" || fail "no Paris in '$(cat "$T/got")'"
curl -s -m 60 "http://127.0.0.1:$PORT/v1/chat/completions" \
  -d "{\"messages\":$MSG,\"max_tokens\":30,\"temperature\":0,\"stream\":true}" |
  sed -n 's/^data: \({.*}\)$/\1/p' | jq -j '.choices[0].delta.content // ""' >"$T/st"
echo >>"$T/st"
cmp -s "$T/st" "$T/want" || fail "stream '$(cat "$T/st")' vs '$(cat "$T/want")'"
serve_stop || fail "serve exit $?"
[ $fails -eq 0 ]
