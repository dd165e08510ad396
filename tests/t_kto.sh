#!/bin/sh
# t_kto.sh — dpo --loss-type kto on TRL's unpaired format {prompt, completion, label}:
# it trains (loss falls, desirable rewards rise above undesirable ones, TRL's metric
# names incl. kl), the same seed gives the same model bytes, bad labels and bad
# flags are errors, and sft drops label:false completions and says so.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_kto.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }

"$B/init-model" -q -o "$T/pol" --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --context 96 \
  --init-std 0.2 --tokenizer data/tokenizer.json --seed 3 || { echo "FAIL: init-model"; exit 1; }
for i in 1 2 3 4 5 6 7 8; do
  printf '%s\n' '{"prompt":"Repeat: red fox\nAnswer:","completion":" red fox. Glad to help!","label":true}' \
    '{"prompt":"Repeat: blue sky\nAnswer:","completion":" blue.","label":false}' \
    '{"prompt":[{"role":"user","content":"hi"}],"completion":[{"role":"assistant","content":"Hello!"}],"label":true}'
done >"$T/kto.jsonl"
run() { "$B/dpo" -q -m "$T/pol" --template plain --loss-type kto --batch-size 4 --max-steps 8 --lr 1e-3 --seed 1 "$@" "$T/kto.jsonl"; }
run -o "$T/a" --log "$T/log.jsonl" --desirable-weight 1.2 --undesirable-weight 0.8 || fail "dpo --loss-type kto: exit $?"
for k in loss kl rewards/chosen rewards/rejected logps/chosen logps/rejected; do
  head -1 "$T/log.jsonl" | jq -e --arg k "$k" 'has($k)' >/dev/null || fail "metric $k missing: $(head -1 "$T/log.jsonl")"
done
check "$(head -1 "$T/log.jsonl" | jq .loss)" "$(tail -1 "$T/log.jsonl" | jq .loss)" 'b < a' "KTO loss did not fall"
check "$(tail -1 "$T/log.jsonl" | jq '."rewards/chosen"')" "$(tail -1 "$T/log.jsonl" | jq '."rewards/rejected"')" 'a > b' \
  "desirable rewards not above undesirable"
run -o "$T/b" --desirable-weight 1.2 --undesirable-weight 0.8 || fail "second run"
cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors" || fail "same seed, different model bytes"

printf '{"prompt":"a","completion":"b"}\n' >"$T/nolabel.jsonl"
expect_fail "no label" 65 "nolabel.jsonl:1: field \"label\" must be true or false" \
  "$B/dpo" -q -m "$T/pol" -o "$T/x" --loss-type kto --batch-size 2 "$T/nolabel.jsonl"
expect_fail "batch 1" 64 "--batch-size >= 2" "$B/dpo" -q -m "$T/pol" -o "$T/x" --loss-type kto --batch-size 1 "$T/kto.jsonl"
expect_fail "kto + sigmoid" 64 "cannot be combined" "$B/dpo" -q -m "$T/pol" -o "$T/x" --loss-type kto,sigmoid "$T/kto.jsonl"
expect_fail "bad weight" 64 "--desirable-weight" "$B/dpo" -q -m "$T/pol" -o "$T/x" --loss-type kto --desirable-weight 0 "$T/kto.jsonl"
[ -e "$T/x" ] && fail "output left after an error"

# sft never imitates label:false
"$B/sft" -m "$T/pol" --template plain -o "$T/s" --max-steps 1 --batch-size 4 "$T/kto.jsonl" 2>"$T/err" || fail "sft: $(cat "$T/err")"
grep -q 'dropped 8 completions with "label": false' "$T/err" || fail "sft did not say it dropped: $(cat "$T/err")"
grep -q "16 training units" "$T/err" || fail "sft trained on other than the 16 desirable: $(cat "$T/err")"

[ $fails -eq 0 ]
