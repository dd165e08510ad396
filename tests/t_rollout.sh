#!/bin/sh
# t_rollout.sh — rollout end to end on a tiny random Llama with the bundled tokenizer:
# record fields and counts, reproducibility (same seed = same bytes, whatever the
# batch size; another seed differs), greedy samples agree, --stop cuts the completion,
# --per-token arrays add up to logprob, rewards, the three pair strategies, the Argilla
# format through annotate and rank2pairs, and the error paths (exit codes, FILE:LINE,
# no partial output).
B="${BIN:-bin}"
R="$B/rollout"
T=$(mktemp -d /tmp/t_rollout.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }

expect_fail() { # WHAT CODE NEEDLE CMD...
  what=$1 code=$2 needle=$3; shift 3
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  [ "$rc" -eq "$code" ] || fail "$what: expected exit $code, got $rc ($(cat "$T/err"))"
  grep -qF -- "$needle" "$T/err" || fail "$what: expected '$needle' on stderr, got: $(cat "$T/err")"
}

"$B/init-model" -q -o "$T/pol" --family llama --layers 2 --heads 4 --kv-heads 2 --width 64 --context 96 \
  --init-std 0.2 --tokenizer data/tokenizer.json --seed 3 || { echo "FAIL: init-model policy"; exit 1; }
"$B/init-model" -q -o "$T/rm" --family gpt2 --layers 1 --heads 2 --width 32 --context 128 --classifier \
  --init-std 0.5 --tokenizer data/tokenizer.json --seed 5 || { echo "FAIL: init-model reward model"; exit 1; }
cat >"$T/p.jsonl" <<'EOF'
{"prompt": "The cat sat on"}
{"prompt": "Once upon a time"}

{"prompt": "A stone, a tree and a bell"}
{"messages": [{"role": "user", "content": "hi"}]}
EOF
run() { "$R" -q -m "$T/pol" --template plain --max-new-tokens 10 "$@"; }

# --- help, version
"$R" --help >"$T/help" 2>&1 || fail "--help exit $?"
grep -q "Usage: rollout" "$T/help" || fail "--help prints no usage"
"$R" --version | grep -q "rollout (cherry)" || fail "--version"

# --- records: 4 prompts x 3 samples, fields, groups
run -n 3 --seed 7 -o "$T/a.jsonl" "$T/p.jsonl" || fail "basic run: exit $?"
[ "$(wc -l <"$T/a.jsonl")" -eq 12 ] || fail "expected 12 records, got $(wc -l <"$T/a.jsonl")"
jq -e 'has("prompt") and has("completion") and (.group|type=="number") and (.sample|type=="number")
       and (.finish_reason=="stop" or .finish_reason=="length") and (.logprob<=0) and (.tokens>=1 and .tokens<=10)' \
  "$T/a.jsonl" >/dev/null || fail "record fields"
[ "$(jq -s 'map(.group)|unique|length' "$T/a.jsonl")" = 4 ] || fail "expected groups 0..3"
jq -e 'select(.finish_reason=="length") | .tokens==10' "$T/a.jsonl" >/dev/null || fail "length finish must have 10 tokens"
jq -e 'select(.group==3) | .completion[0].role=="assistant"' "$T/a.jsonl" >/dev/null ||
  fail "message prompts get a conversational completion"

# --- reproducibility: same seed same bytes at batch 1 and 16, reordered chunking too
run -n 3 --seed 7 --batch-size 1 "$T/p.jsonl" >"$T/b1.jsonl" || fail "batch 1 run"
run -n 3 --seed 7 --batch-size 16 "$T/p.jsonl" >"$T/b16.jsonl" || fail "batch 16 run"
cmp -s "$T/a.jsonl" "$T/b1.jsonl" || fail "batch 1 output differs from batch 16 (default) output"
cmp -s "$T/b1.jsonl" "$T/b16.jsonl" || fail "batch 1 and batch 16 outputs differ"
run -n 3 --seed 8 "$T/p.jsonl" >"$T/s8.jsonl" || fail "seed 8 run"
cmp -s "$T/a.jsonl" "$T/s8.jsonl" && fail "seeds 7 and 8 gave the same output"
# a prompt's samples do not depend on the other prompts in the file
sed -n 2p "$T/p.jsonl" >"$T/one.jsonl"
run -n 3 --seed 7 "$T/one.jsonl" | jq -c '.completion' >"$T/one.c"
jq -c 'select(.group==1) | .completion' "$T/a.jsonl" >"$T/one.ref"
# the prompt is group 0 alone, group 1 in the file: the RNG stream is per (group, sample)
cmp -s "$T/one.c" "$T/one.ref" && fail "group index must select the RNG stream (same text as group 1)"

# --- greedy: all samples of a prompt agree, and match --num-samples 1
run -n 2 --temperature 0 "$T/p.jsonl" >"$T/g.jsonl" || fail "greedy run"
[ "$(jq -s 'group_by(.group) | map(map(.completion)|unique|length) | max' "$T/g.jsonl")" = 1 ] ||
  fail "greedy samples of one prompt differ"
# --gen-dtype bf16: runs, batch-invariant too (tokens may differ from fp32's: other weights)
run -n 2 --temperature 0 --gen-dtype bf16 "$T/p.jsonl" >"$T/g16.jsonl" || fail "--gen-dtype bf16 run"
run -n 2 --temperature 0 --gen-dtype bf16 --batch-size 1 "$T/p.jsonl" >"$T/g16b1.jsonl" || fail "bf16 batch 1"
cmp -s "$T/g16.jsonl" "$T/g16b1.jsonl" || fail "--gen-dtype bf16: batch 1 output differs from the default batch"
[ "$(wc -l <"$T/g16.jsonl")" = "$(wc -l <"$T/g.jsonl")" ] || fail "--gen-dtype bf16: record count differs"
# --gen-dtype int8 (Q8_0 weights): the same
run -n 2 --temperature 0 --gen-dtype int8 "$T/p.jsonl" >"$T/g8.jsonl" || fail "--gen-dtype int8 run"
run -n 2 --temperature 0 --gen-dtype int8 --batch-size 1 "$T/p.jsonl" >"$T/g8b1.jsonl" || fail "int8 batch 1"
cmp -s "$T/g8.jsonl" "$T/g8b1.jsonl" || fail "--gen-dtype int8: batch 1 output differs from the default batch"
[ "$(wc -l <"$T/g8.jsonl")" = "$(wc -l <"$T/g.jsonl")" ] || fail "--gen-dtype int8: record count differs"

# --- --stop: cut before the first occurrence, finish_reason stop
stop=$(jq -r 'select(.group==0 and .sample==0) | .completion' "$T/g.jsonl" | grep -o '[a-z][a-z][a-z]*' | head -1)
if [ -n "$stop" ]; then
  run -n 1 --temperature 0 --stop "$stop" "$T/p.jsonl" >"$T/stop.jsonl" || fail "--stop run"
  full=$(jq -r 'select(.group==0 and .sample==0) | .completion' "$T/g.jsonl")
  cut=$(jq -r 'select(.group==0) | .completion' "$T/stop.jsonl")
  want=${full%%"$stop"*} # everything before the first occurrence
  [ "$cut" = "$want" ] || fail "--stop '$stop': expected completion '$want', got '$cut'"
  [ "$(jq -r 'select(.group==0) | .finish_reason' "$T/stop.jsonl")" = stop ] || fail "--stop: finish_reason"
else
  fail "no lowercase word in the greedy completion to use as a stop string"
fi

# --- --per-token
run -n 2 --seed 1 --per-token "$T/p.jsonl" >"$T/pt.jsonl" || fail "--per-token run"
jq -e '(.completion_ids|length)==.tokens and (.token_logprobs|length)==.tokens
       and (((.token_logprobs|add) - .logprob)|fabs) < 1e-4 and (.completion_ids|all(.>=0 and .<391))' \
  "$T/pt.jsonl" >/dev/null || fail "per-token arrays do not match tokens/logprob"

# --- rewards and pairs
run -n 4 --seed 2 --reward-model "$T/rm" "$T/p.jsonl" >"$T/r.jsonl" || fail "reward run"
jq -e '.reward|type=="number"' "$T/r.jsonl" >/dev/null || fail "reward field"
run -n 4 --seed 2 --reward-model "$T/rm" --pairs best-worst "$T/p.jsonl" >"$T/bw.jsonl" || fail "best-worst"
[ "$(wc -l <"$T/bw.jsonl")" -eq 4 ] || fail "best-worst: expected 4 pairs, got $(wc -l <"$T/bw.jsonl")"
jq -e 'has("prompt") and has("chosen") and has("rejected") and .score_chosen > .score_rejected' "$T/bw.jsonl" \
  >/dev/null || fail "best-worst pair fields / order"
# best-worst = max and min reward of each group of the scored rollouts
want=$(jq -s -c 'group_by(.group) | map([(map(.reward)|max), (map(.reward)|min)])' "$T/r.jsonl")
got=$(jq -s -c 'map([.score_chosen, .score_rejected])' "$T/bw.jsonl")
[ "$want" = "$got" ] || fail "best-worst scores: expected $want, got $got"
run -n 4 --seed 2 --reward-model "$T/rm" --pairs all-ranked "$T/p.jsonl" >"$T/ar.jsonl" || fail "all-ranked"
[ "$(wc -l <"$T/ar.jsonl")" -eq 24 ] || fail "all-ranked: expected 4 x 6 pairs, got $(wc -l <"$T/ar.jsonl")"
run -n 4 --seed 2 --reward-model "$T/rm" --pairs rso --num-select 4 --rso-beta 0.5 "$T/p.jsonl" >"$T/rso.jsonl" ||
  fail "rso"
[ "$(wc -l <"$T/rso.jsonl")" -eq 8 ] || fail "rso K=4: expected 2 pairs per prompt, got $(wc -l <"$T/rso.jsonl")"
jq -e '.score_chosen > .score_rejected' "$T/rso.jsonl" >/dev/null || fail "rso pair order"

# --- Argilla records, through the simulated annotators and rank2pairs
head -3 "$T/p.jsonl" >"$T/p3.jsonl"
run -n 3 --seed 4 --format argilla --reward-model "$T/rm" "$T/p3.jsonl" >"$T/arg.jsonl" || fail "argilla"
[ "$(wc -l <"$T/arg.jsonl")" -eq 2 ] || fail "argilla: expected one record per prompt"
jq -e 'has("prompt") and has("response-1") and has("response-3") and (has("response-4")|not)
       and (.ranking|length)==3' "$T/arg.jsonl" >/dev/null || fail "argilla record fields"
if [ -x "$B/annotate" ] && [ -x "$B/rank2pairs" ]; then
  "$B/annotate" "$T/arg.jsonl" 2>/dev/null | "$B/rank2pairs" -q >"$T/argpairs.jsonl" || fail "annotate | rank2pairs"
  [ -s "$T/argpairs.jsonl" ] || fail "rank2pairs wrote no pairs from rollout's Argilla records"
fi

# --- errors
expect_fail "missing model" 66 "nonexistent" "$R" -m "$T/nonexistent" "$T/p.jsonl"
expect_fail "pairs without reward model" 64 "--reward-model" "$R" -m "$T/pol" --pairs best-worst -n 2 "$T/p.jsonl"
expect_fail "pairs with one sample" 64 "--num-samples" "$R" -m "$T/pol" --reward-model "$T/rm" --pairs rso "$T/p.jsonl"
expect_fail "bad top-p" 64 "--top-p" "$R" -m "$T/pol" --top-p 0 "$T/p.jsonl"
expect_fail "bad gen dtype" 64 "--gen-dtype" "$R" -m "$T/pol" --gen-dtype fp16 "$T/p.jsonl"
expect_fail "unknown pairs" 64 "--pairs" "$R" -m "$T/pol" --pairs best "$T/p.jsonl"
expect_fail "reward model is a policy" 64 "score" "$R" -m "$T/pol" --reward-model "$T/pol" "$T/p.jsonl"
"$B/init-model" -q -o "$T/ctx8" --family gpt2 --layers 1 --heads 2 --width 32 --context 8 \
  --tokenizer data/tokenizer.json || fail "init-model ctx8"
printf '{"prompt": "ok"}\n{"prompt": "a prompt far longer than the eight positions of this model"}\n' >"$T/long.jsonl"
expect_fail "prompt longer than the context" 65 "long.jsonl:2" "$R" -m "$T/ctx8" --template plain \
  --max-prompt-length 100 "$T/long.jsonl"
printf '{"prompt": "ok"}\n{"prompt": 3}\n' >"$T/bad.jsonl"
expect_fail "bad record" 65 "bad.jsonl:2" "$R" -m "$T/pol" --template plain -o "$T/never.jsonl" "$T/bad.jsonl"
[ -e "$T/never.jsonl" ] && fail "a failed run left an output file"
run --skip-invalid "$T/bad.jsonl" >"$T/skip.jsonl" 2>/dev/null || fail "--skip-invalid: exit $?"
[ "$(wc -l <"$T/skip.jsonl")" -eq 1 ] || fail "--skip-invalid: expected 1 record"

[ $fails -eq 0 ] || { echo "$fails failures"; exit 1; }
echo "t_rollout: all checks passed"
