#!/bin/sh
# t_tokenize.sh — bin/tokenize end to end: encode/decode round trip, JSONL kinds,
# --count, exit codes and messages for bad input, atomic output.
B="${BIN:-bin}"
T=tests/oracle/tokenizers/gpt2.json
[ -x "$B/tokenize" ] || { echo "skipped: $B/tokenize not built"; exit 77; }
[ -f "$T" ] || { echo "skipped: $T missing (run from the repository root)"; exit 77; }
D=$(mktemp -d /tmp/cherry-t-tokenize.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail=0
check() { # check NAME EXPECTED GOT
  if [ "$2" != "$3" ]; then echo "FAIL $1: expected [$2] got [$3]"; fail=1; fi
}
code() { "$@" >"$D/out" 2>"$D/err"; echo $?; }

check help 0 "$(code "$B/tokenize" --help)"
grep -q '^Usage: tokenize' "$D/out" || { echo "FAIL help text"; fail=1; }
check version 0 "$(code "$B/tokenize" --version)"
check no-tokenizer 64 "$(code "$B/tokenize" </dev/null)"
check bad-flag 64 "$(code "$B/tokenize" -t "$T" --max-length zero </dev/null)"

# text lines: decode(encode(x)) == x
printf 'Hello world\n  spaces  and\ttabs\n日本語のテキスト 😀👍🏽\n\nلعربية and עברית\n' >"$D/in.txt"
"$B/tokenize" -t "$T" "$D/in.txt" >"$D/ids" || fail=1
check lines 5 "$(wc -l <"$D/ids" | tr -d ' ')"
"$B/tokenize" -t "$T" -d "$D/ids" >"$D/back" || fail=1
cmp -s "$D/in.txt" "$D/back" || { echo "FAIL round trip"; diff "$D/in.txt" "$D/back"; fail=1; }
# special tokens are text unless --parse-special
[ "$(printf '<|endoftext|>\n' | "$B/tokenize" -t "$T")" = "[0]" ] && { echo "FAIL special token parsed by default"; fail=1; }
check special-parsed '[0]' "$(printf '<|endoftext|>\n' | "$B/tokenize" -t "$T" --parse-special)"
check decode-skip 'ab' "$(echo '[65,0,66]' | "$B/tokenize" -t "$T" -d --skip-special)"
check decode-json '"a<|endoftext|>b"' "$(echo '{"ids":[65,0,66]}' | "$B/tokenize" -t "$T" -d --json)"

# JSONL kinds
printf '{"prompt":"a","chosen":" b","rejected":" c"}\n' >"$D/pref.jsonl"
check pref '{"prompt":[65],"chosen":[284,0],"rejected":[269,0]}' "$("$B/tokenize" -t "$T" "$D/pref.jsonl")"
printf '{"prompt":"Q"}\n' | "$B/tokenize" -t "$T" >"$D/p" || fail=1
check prompt-only '[49]' "$(cat "$D/p")"
printf '{"prompt":"a","completion":" b"}\n' | "$B/tokenize" -t "$T" --with-mask >"$D/pc" || fail=1
check pc-mask '{"ids":[65,284,0],"mask":[0,1,1],"prompt_len":1}' "$(cat "$D/pc")"

# --count
printf '{"text":"a b c"}\n{"text":"x y z w"}\n{"text":"q"}\n' >"$D/t.jsonl"
check count '{"examples":3,"tokens":13,"min_tokens":2,"mean_tokens":4.333333333333333,"max_tokens":7,"max_length":4,"over_max_length":1,"dropped":0,"skipped":0}' \
  "$("$B/tokenize" -t "$T" -c --max-length 4 "$D/t.jsonl")"
# --max-length truncates
check truncate '[88,221,89,221]' "$("$B/tokenize" -t "$T" --max-length 4 --truncation keep_start "$D/t.jsonl" | sed -n 2p)"

# bad input: exit codes and FILE:LINE
printf '{"text":"ok"}\n{"text": 3}\n{"text":"ok2"}\n' >"$D/bad.jsonl"
check bad-field 65 "$(code "$B/tokenize" -t "$T" "$D/bad.jsonl")"
grep -q 'bad.jsonl:2: field "text" must be a string' "$D/err" || { echo "FAIL message: $(cat "$D/err")"; fail=1; }
check skip-invalid 0 "$(code "$B/tokenize" -t "$T" --skip-invalid "$D/bad.jsonl")"
check skip-count 2 "$(wc -l <"$D/out" | tr -d ' ')"
grep -q '1 skipped' "$D/err" || { echo "FAIL skip summary: $(cat "$D/err")"; fail=1; }
printf '{"text":"\377"}\n' >"$D/utf8.jsonl"
check bad-utf8 65 "$(code "$B/tokenize" -t "$T" "$D/utf8.jsonl")"
grep -q 'utf8.jsonl:1:' "$D/err" || { echo "FAIL utf8 message: $(cat "$D/err")"; fail=1; }
check missing-input 66 "$(code "$B/tokenize" -t "$T" "$D/nope.jsonl")"
check missing-tokenizer 66 "$(code "$B/tokenize" -t "$D/nope.json" "$D/t.jsonl")"
check bad-id 65 "$(echo '[1, 999999]' | code "$B/tokenize" -t "$T" -d)"
grep -q '<stdin>:1: element 1' "$D/err" || { echo "FAIL bad id message: $(cat "$D/err")"; fail=1; }
printf '{"messages":[{"role":"user","content":"hi"}]}\n' >"$D/m.jsonl"
check no-template 64 "$(code "$B/tokenize" -t "$T" "$D/m.jsonl")"
grep -q -- '--template' "$D/err" || { echo "FAIL template message: $(cat "$D/err")"; fail=1; }
check hh-template 0 "$(code "$B/tokenize" -t "$T" --template hh "$D/m.jsonl")"

# a tokenizer.json the library cannot use: clear error naming the field
sed 's/"type":"BPE"/"type":"WordPiece"/' "$T" >"$D/wordpiece.json"
check wordpiece 65 "$(code "$B/tokenize" -t "$D/wordpiece.json" "$D/t.jsonl")"
grep -q 'field "model.type": unsupported model type "WordPiece"' "$D/err" || { echo "FAIL wordpiece: $(cat "$D/err")"; fail=1; }
# a BPE vocabulary under model.type Unigram: the Unigram reader names the field
sed 's/"type":"BPE"/"type":"Unigram"/' "$T" >"$D/unigram.json"
check unigram 65 "$(code "$B/tokenize" -t "$D/unigram.json" "$D/t.jsonl")"
grep -q 'field "model.vocab" must be a non-empty array' "$D/err" || { echo "FAIL unigram: $(cat "$D/err")"; fail=1; }
# a real Unigram tokenizer (trained by the tokenizers library) encodes
check unigram-ok 0 "$(code "$B/tokenize" -t tests/oracle/tokenizers/unigram.json "$D/t.jsonl")"

# atomic output: a failing run leaves no file behind
check atomic-fail 65 "$(code "$B/tokenize" -t "$T" -o "$D/o.jsonl" "$D/bad.jsonl")"
[ -e "$D/o.jsonl" ] && { echo "FAIL partial output left"; fail=1; }
ls "$D" | grep -q 'o.jsonl.tmp' && { echo "FAIL temporary left"; fail=1; }
check atomic-ok 0 "$(code "$B/tokenize" -t "$T" -o "$D/o.jsonl" "$D/t.jsonl")"
check atomic-lines 3 "$(wc -l <"$D/o.jsonl" | tr -d ' ')"

# the example files of every kind (tests/data/kinds, cherry-data(5))
S=tests/oracle/tokenizers/smol.json
for k in text prompt-completion conversational segments prompt-only preference preference-hh rollout; do
  f=tests/data/kinds/$k.jsonl
  want=$(grep -c . "$f")
  check "kind-$k" "0 $want" "$(code "$B/tokenize" -t "$S" --template chatml "$f") $(grep -c . "$D/out")"
  case $k in preference*)
    check "kind-$k-keys" "$want" "$(grep -c '^{"prompt":\[.*\],"chosen":\[.*\],"rejected":\[.*\]}$' "$D/out")" ;;
  esac
done
"$B/tokenize" -t "$T" tests/data/kinds/preference-hh.jsonl | sed -n 2p | sed 's/^{"prompt":\(\[[^]]*\]\).*/\1/' >"$D/hhp"
check hh-implicit-prompt '"\n\nHuman: 2+2?\n\nAssistant: 4\n\nHuman: And 3+3?\n\nAssistant:"' \
  "$("$B/tokenize" -t "$T" -d --json "$D/hhp")"

[ $fail -eq 0 ] && echo "t_tokenize: all passed"
exit $fail
