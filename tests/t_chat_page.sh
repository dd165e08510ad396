#!/bin/sh
# t_chat_page.sh — the chat page of serve in a real browser: headless Chromium loads
# tests/data/chat_driver.html (served at / by `serve --page`), which drives the real
# page (/chat) in an iframe: chat with 3 answers, thumbs up, a ranking, regenerate,
# thumbs down, then 2 answers and "prefer this" (a pick).  Checks what the page reported and that exactly that feedback landed
# in the feedback log, naming completions the interaction log holds.  Bounded: the
# browser gets 60 s at most.  Skips (77) only when Chromium is missing or cannot run.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_chat_page.XXXXXX)
SERVE_PID=
trap '[ -n "$SERVE_PID" ] && kill -9 $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
. tests/lib.sh
. tests/serve_lib.sh
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
CHROMIUM=$(command -v chromium || command -v chromium-browser)
[ -n "$CHROMIUM" ] || { echo "chromium not installed (Debian package chromium)"; exit 77; }
chrome() {
  timeout "$1" "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$T/profile" \
    --virtual-time-budget=30000 --dump-dom "$2" 2>>"$T/chromium.err"
}
chrome 30 "data:text/html,<p>ok</p>" | grep -q "<p>ok</p>" ||
  { echo "chromium cannot run here: $(tail -3 "$T/chromium.err")"; exit 77; }

"$B/init-model" -q -o "$T/pol" --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --context 96 \
  --init-std 0.2 --tokenizer data/tokenizer.json --seed 3 || { echo "FAIL: init-model"; exit 1; }
serve_start s -m "$T/pol" --template plain --token sekret --interactions "$T/i.jsonl" --feedback-log "$T/f.jsonl" \
  --page tests/data/chat_driver.html || exit 1

chrome 60 "http://127.0.0.1:$PORT/" >"$T/dom" || fail "chromium exit $? ($(tail -3 "$T/chromium.err"))"
sed -n '/<pre id="result">/,/<\/pre>/p' "$T/dom" | sed 's/<[^>]*>//g' >"$T/result"
grep -q '^PASS' "$T/result" || fail "the page run did not pass: $(cat "$T/result")"
grep -q '^answers 3$' "$T/result" || fail "expected 3 answers: $(cat "$T/result")"
UP=$(sed -n 's/^thumbs-up //p' "$T/result")
DOWN=$(sed -n 's/^thumbs-down //p' "$T/result")
RANK=$(sed -n 's/^ranking //p' "$T/result")
PICK=$(sed -n 's/^pick //p' "$T/result")
grep -q '^answers2 2$' "$T/result" || fail "expected 2 answers to the second question: $(cat "$T/result")"

[ "$(wc -l <"$T/f.jsonl")" -eq 4 ] || fail "expected 4 feedback records, got: $(cat "$T/f.jsonl")"
jq -se --arg up "$UP" --arg down "$DOWN" --arg rank "$RANK" --arg pick "$PICK" '
  .[0].type == "thumbs" and .[0].value == "up" and .[0].completion_id == $up and
  .[1].type == "ranking" and (.[1].ranking | join(",")) == $rank and
  .[2].type == "thumbs" and .[2].value == "down" and .[2].completion_id == $down and
  .[3].type == "pick" and ([.[3].chosen, .[3].rejected] | join(",")) == $pick' "$T/f.jsonl" >/dev/null ||
  fail "feedback log does not match the page: $(cat "$T/f.jsonl") vs $(cat "$T/result")"
[ "$(wc -l <"$T/i.jsonl")" -eq 3 ] || fail "expected 3 interactions (answer, regenerate, second question), got $(wc -l <"$T/i.jsonl")"
jq -se --arg up "$UP" --arg down "$DOWN" '[.[].choices[].id] as $ids | ($ids | index($up)) != null and
  ($ids | index($down)) != null and all(.[0:2][]; .sampling.n == 3 and .prompt[0].content == "Repeat: red fox") and .[2].sampling.n == 2' \
  "$T/i.jsonl" >/dev/null || fail "interaction log: $(cut -c1-300 "$T/i.jsonl")"
serve_stop || fail "serve exit $?"

[ $fails -eq 0 ]
