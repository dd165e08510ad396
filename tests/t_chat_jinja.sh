#!/bin/sh
# t_chat_jinja.sh — `--template jinja` / `auto` through a program (tokenize): the
# model's own chat_template, run by the Jinja interpreter.
#   1. a template the interpreter cannot run is exit 65 naming the construct; one that
#      raises is exit 65 with its message; no template with --template jinja is exit 64;
#   2. a Zephyr-style template (no built-in layout matches it) is chosen by auto and
#      gives the same ids as --template jinja;
#   3. with SmolLM2-135M-Instruct (when present): jinja, auto and the ids transformers'
#      apply_chat_template gives (recorded below) agree, and only the assistant's
#      reply and its <|im_end|> train.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_chat_jinja.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/m"
cp tests/oracle/tokenizers/smol.json "$T/m/tokenizer.json"
conf() { jq -n --arg t "$1" '{chat_template: $t, eos_token: "<|endoftext|>"}' >"$T/m/tokenizer_config.json"; }
echo '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}' >"$T/c.jsonl"

conf "{% include 'other.jinja' %}"
"$B/tokenize" -t "$T/m/tokenizer.json" --template auto "$T/c.jsonl" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 65 ] || fail "unsupported construct: exit $rc, want 65"
grep -q "include" "$T/err" || fail "message does not name the construct: $(cat "$T/err")"

conf "{{ raise_exception('Only user and assistant roles are supported!') }}"
"$B/tokenize" -t "$T/m/tokenizer.json" --template jinja "$T/c.jsonl" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 65 ] || fail "raise_exception: exit $rc, want 65"
grep -q "Only user and assistant" "$T/err" || fail "raise message missing: $(cat "$T/err")"

rm "$T/m/tokenizer_config.json"
"$B/tokenize" -t "$T/m/tokenizer.json" --template jinja "$T/c.jsonl" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 64 ] || fail "--template jinja without a chat_template: exit $rc, want 64"

conf "$(cat tests/oracle/templates/HuggingFaceH4-zephyr-7b-beta.jinja)"
a=$("$B/tokenize" -t "$T/m/tokenizer.json" --template auto --with-mask "$T/c.jsonl") || fail "zephyr auto: exit $?"
j=$("$B/tokenize" -t "$T/m/tokenizer.json" --template jinja --with-mask "$T/c.jsonl") || fail "zephyr jinja: exit $?"
[ "$a" = "$j" ] || fail "auto and jinja differ on a Zephyr template:
$a
$j"

M=models/smollm2-135m-instruct
if [ -f "$M/tokenizer.json" ]; then
  want='[1,9690,198,2683,359,253,5356,5646,11173,3365,3511,308,34519,28,7018,411,407,19712,8182,2,198,1,4093,198,26843,2,198,1,520,9531,198,19556,17,2,198]'
  for tpl in jinja auto; do
    got=$("$B/tokenize" -m "$M" --template $tpl --with-mask "$T/c.jsonl") || fail "SmolLM2 $tpl: exit $?"
    ids=$(echo "$got" | jq -c .ids)
    [ "$ids" = "$want" ] || fail "SmolLM2 --template $tpl: ids $ids, transformers gives $want"
    mask=$(echo "$got" | jq -c '.mask | map(tostring) | join("")')
    [ "$mask" = '"00000000000000000000000000000001110"' ] || fail "SmolLM2 $tpl: mask $mask"
  done
else
  echo "$M not present: real-model part skipped"
fi
[ $fails -eq 0 ] && echo "t_chat_jinja: all passed"
