#!/bin/sh
# t_smollm2_chat.sh — a real chat model answers in coherent English: SmolLM2-135M-Instruct
# (imported from GGUF by `make models/smollm2-135m-instruct`), chatml template, greedy
# decoding, must name Paris as the capital of France and list colours when asked for
# three, stopping at its end-of-turn token.  Skipped when the model is absent.
B="${BIN:-bin}"
M=models/smollm2-135m-instruct
[ -f "$M/config.json" ] || { echo "$M not present (make $M): skipped"; exit 77; }
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
T=$(mktemp -d /tmp/t_smollm2_chat.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

cat >"$T/p.jsonl" <<'P'
{"messages": [{"role": "user", "content": "What is the capital of France?"}]}
{"messages": [{"role": "user", "content": "Name three colors."}]}
P
# one thread: the test must not depend on how loaded the machine is
"$B/rollout" -m "$M" --template chatml --temperature 0 --max-new-tokens 48 --threads 1 -q "$T/p.jsonl" >"$T/out.jsonl" ||
  fail "rollout exit $?"
cat "$T/out.jsonl"
a1=$(jq -r 'select(.group==0) | .completion[0].content' "$T/out.jsonl")
a2=$(jq -r 'select(.group==1) | .completion[0].content' "$T/out.jsonl")
echo "$a1" | grep -q "Paris" || fail "expected Paris in the answer, got: $a1"
n=$(echo "$a2" | grep -o -i -E 'red|blue|green|yellow|orange|purple|black|white|pink|brown' | sort -u | wc -l)
[ "$n" -ge 3 ] || fail "expected three colours, got: $a2"
# coherent English: printable text, mostly letters and spaces, real words
for a in "$a1" "$a2"; do
  bad=$(printf '%s' "$a" | tr -d '[:alnum:][:space:][:punct:]' | wc -c)
  [ "$bad" -eq 0 ] || fail "non-printable or non-ASCII bytes in: $a"
done
[ "$(jq -r 'select(.group==0) | .finish_reason' "$T/out.jsonl")" = stop ] || fail "answer 1 did not end at <|im_end|>"
[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "t_smollm2_chat: coherent greedy answers"
