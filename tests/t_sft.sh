#!/bin/sh
# t_sft.sh — bin/sft end to end: pre-training a tiny model from init-model on the
# bundled task's generated corpus (packed), the loss falling below a threshold set
# from a measured run, the output directory, the metrics log, every data kind, the
# CLI contract (help, version, exit codes), and SIGTERM -> checkpoint -> resume.
#
# Measured (2 threads, this tiny Llama, 60 updates of 4 packed rows of 64 tokens,
# lr 1e-2 cosine, ~5 epochs of 200 records): first loss 5.99 (~ log 391), last 1.64,
# eval_loss 5.99 -> ~1.7.  Threshold: last loss < 2.0, eval_loss falls by > 2.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_sft.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$B/init-model" -q --family llama --layers 2 --heads 4 --kv-heads 2 --width 32 --context 64 \
    --tokenizer data/tokenizer.json --seed 3 -o "$T/init" || fail "init-model"
"$B/task-gen" --kind corpus -n 200 --seed 5 -o "$T/corpus.jsonl" || fail "task-gen corpus"
"$B/task-gen" --kind corpus -n 40 --split eval --seed 6 -o "$T/eval.jsonl" || fail "task-gen eval"

# ---- pre-training with packing --------------------------------------------------
"$B/sft" -m "$T/init" -o "$T/lm" --packing --max-length 64 --batch-size 4 --lr 1e-2 \
    --lr-scheduler cosine --warmup 2 --max-steps 60 --eval "$T/eval.jsonl" --eval-every 30 \
    --log "$T/log.jsonl" --seed 1 -q "$T/corpus.jsonl"
rc=$?
[ $rc -eq 0 ] || fail "sft pre-training: expected exit 0, got $rc"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    [ -f "$T/lm/$f" ] || fail "output lacks $f"
done
"$B/model-info" "$T/lm" >/dev/null || fail "model-info cannot read the sft output"
nsteps=$(grep -c '"grad_norm"' "$T/log.jsonl")
[ "$nsteps" -eq 60 ] || fail "log: expected 60 step records, got $nsteps"
nevals=$(grep -c '"eval_loss"' "$T/log.jsonl")
[ "$nevals" -eq 3 ] || fail "log: expected 3 eval records (0, 30, 60), got $nevals"
for k in step epoch loss learning_rate grad_norm tokens_per_s num_tokens mean_token_accuracy entropy; do
    head -n 2 "$T/log.jsonl" | tail -n 1 | grep -q "\"$k\":" || fail "log: first step record lacks \"$k\""
done
first=$(grep '"grad_norm"' "$T/log.jsonl" | head -n 1 | sed 's/.*"loss":\([-0-9.eE+]*\).*/\1/')
last=$(grep '"grad_norm"' "$T/log.jsonl" | tail -n 1 | sed 's/.*"loss":\([-0-9.eE+]*\).*/\1/')
e0=$(grep '"eval_loss"' "$T/log.jsonl" | head -n 1 | sed 's/.*"eval_loss":\([-0-9.eE+]*\).*/\1/')
e1=$(grep '"eval_loss"' "$T/log.jsonl" | tail -n 1 | sed 's/.*"eval_loss":\([-0-9.eE+]*\).*/\1/')
echo "pre-training: loss $first -> $last, eval_loss $e0 -> $e1"
awk -v a="$first" 'BEGIN { exit !(a > 5.5 && a < 6.5) }' || fail "first loss expected ~log(391)=5.97, got $first"
awk -v a="$last" 'BEGIN { exit !(a < 2.0) }' || fail "last loss expected < 2.0, got $last"
awk -v a="$e0" -v b="$e1" 'BEGIN { exit !(b < a - 2) }' || fail "eval_loss should fall by > 2: $e0 -> $e1"

# ---- packing changes speed, not the loss: eval_loss of the pre-trained model packed
# and not packed (positions restart and attention stays inside each example).  With
# attention crossing examples it measured 1.774 instead of 1.652; the random initial
# model would hardly notice, so the trained one is used.
for p in nopack pack; do
    flag=""
    [ $p = pack ] && flag="--packing"
    "$B/sft" -m "$T/lm" -o "$T/$p" $flag --max-length 64 --max-steps 1 --lr 0 --eval "$T/eval.jsonl" \
        --log "$T/$p.jsonl" -q "$T/eval.jsonl" || fail "sft $flag --lr 0: exit $?"
done
a=$(grep '"eval_loss"' "$T/nopack.jsonl" | head -n 1 | sed 's/.*"eval_loss":\([-0-9.eE+]*\).*/\1/')
b=$(grep '"eval_loss"' "$T/pack.jsonl" | head -n 1 | sed 's/.*"eval_loss":\([-0-9.eE+]*\).*/\1/')
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-5 * a) }' ||
    fail "eval_loss packed $b differs from unpacked $a"
echo "packing: eval_loss $a unpacked, $b packed"

# ---- --chunk-tokens = the micro-batch at once, to float rounding, in training and
# evaluation: every number of every log record.  A row per chunk, packed and not; 3
# rows then 1 (192 tokens of 64-token rows); with LoRA dropout, whose masks a chunk
# must draw as the whole micro-batch does.
while read -r c flag; do
    for cc in 0 $c; do
        "$B/sft" -m "$T/init" -o "$T/ck$cc" $flag --max-length 64 --batch-size 4 --lr 1e-2 --max-steps 4 \
            --chunk-tokens $cc --eval "$T/eval.jsonl" --eval-every 2 --log "$T/ck$cc.jsonl" --seed 1 -q \
            "$T/corpus.jsonl" || fail "sft --chunk-tokens $cc $flag: exit $?"
    done
    grep -q '"eval_loss"' "$T/ck$c.jsonl" || fail "--chunk-tokens: no evaluation logged"
    paste -d '\n' "$T/ck0.jsonl" "$T/ck$c.jsonl" | awk -v what="--chunk-tokens $c vs 0 $flag" '
        { gsub(/[{}]/, ""); n = split($0, kv, ",") }
        NR % 2 == 1 { delete want; keys = n; for (i = 1; i <= n; i++) { split(kv[i], p, ":"); want[p[1]] = p[2] } next }
        {
            if (n != keys) { print "FAIL: " what ": record " NR / 2 " has " n " fields, not " keys; bad = 1 }
            for (i = 1; i <= n; i++) {
                split(kv[i], p, ":")
                if (p[1] ~ /tokens_per_s|time/) continue
                a = want[p[1]] + 0; b = p[2] + 0; d = a - b; if (d < 0) d = -d
                if (!(p[1] in want) || d > 1e-4 * (1 + (a < 0 ? -a : a))) {
                    print "FAIL: " what ": record " NR / 2 " " p[1] " " b " vs " want[p[1]]; bad = 1
                }
            }
        }
        END { exit bad }' || exit 1
    rm -rf "$T/ck0" "$T/ck$c"
done <<EOF
1
1 --packing
192 --packing
1 --packing --lora-rank 4 --lora-dropout 0.3
EOF
echo "--chunk-tokens: chunks log what the whole micro-batch logs"

# ---- every data kind trains (2 updates each) ---------------------------------------
printf '%s\n' '{"prompt":"Repeat: a b\nAnswer:","completion":" a b."}' \
    '{"prompt":"Repeat: c\nAnswer:","completion":" c. Glad to help!"}' >"$T/pc.jsonl"
printf '%s\n' '{"messages":[{"role":"user","content":"Repeat: a b"},{"role":"assistant","content":"a b."}]}' \
    '{"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}' >"$T/conv.jsonl"
printf '%s\n' '{"segments":[{"text":"Repeat: a b\nA helpful answer:","train":false},{"text":" a b. Glad to help!","train":true}]}' \
    '{"segments":[{"text":"x","train":false},{"text":" y z","train":true}]}' >"$T/seg.jsonl"
for kind in pc conv seg; do
    extra=""
    [ $kind = conv ] && extra="--template hh"
    "$B/sft" -m "$T/init" -o "$T/k-$kind" --max-steps 2 --batch-size 2 --lr 1e-3 -q $extra "$T/$kind.jsonl" ||
        fail "sft on $kind data: exit $?"
    [ -f "$T/k-$kind/model.safetensors" ] || fail "sft on $kind data wrote no model"
done
# the detected kind can be forced; a kind sft cannot train is a usage error
"$B/sft" -m "$T/init" -o "$T/k-x" --kind prompt-only -q "$T/pc.jsonl" 2>/dev/null
[ $? -eq 64 ] || fail "--kind prompt-only: expected exit 64"

# ---- --dtype bf16: the final model is half the size and loads
"$B/sft" -m "$T/init" -o "$T/bf16" --max-steps 1 --dtype bf16 -q "$T/pc.jsonl" || fail "--dtype bf16: exit $?"
"$B/model-info" "$T/bf16" | grep -qi bf16 || fail "--dtype bf16: model-info does not report BF16 weights"

# ---- CLI contract ---------------------------------------------------------------------
"$B/sft" --help | grep -q "^Usage: sft" || fail "--help: no usage on stdout"
"$B/sft" --version | grep -q "^sft (cherry)" || fail "--version"
"$B/sft" -o "$T/x" "$T/pc.jsonl" 2>/dev/null
[ $? -eq 64 ] || fail "missing -m: expected exit 64"
"$B/sft" -m "$T/init" -o "$T/x" --lr-scheduler wavy "$T/pc.jsonl" 2>/dev/null
[ $? -eq 64 ] || fail "bad --lr-scheduler: expected exit 64"
"$B/sft" -m "$T/init" -o "$T/x" -q "$T/missing.jsonl" 2>/dev/null
[ $? -eq 66 ] || fail "missing data file: expected exit 66"
"$B/sft" -m "$T/nomodel" -o "$T/x" -q "$T/pc.jsonl" 2>/dev/null
[ $? -eq 66 ] || fail "missing model: expected exit 66"
"$B/init-model" -q --classifier --width 32 --tokenizer data/tokenizer.json -o "$T/cls" || fail "init-model --classifier"
"$B/sft" -m "$T/cls" -o "$T/x" -q "$T/pc.jsonl" 2>/dev/null
[ $? -eq 65 ] || fail "a reward model as -m: expected exit 65"
printf '%s\n' '{"prompt":"a","completion":"b"}' '{"prompt": 3, "completion":"b"}' >"$T/bad.jsonl"
"$B/sft" -m "$T/init" -o "$T/x" -q "$T/bad.jsonl" 2>"$T/err"
rc=$?
[ $rc -eq 65 ] || fail "bad record: expected exit 65, got $rc"
grep -q "bad.jsonl:2" "$T/err" || fail "bad record: message should name bad.jsonl:2, got: $(cat "$T/err")"
[ ! -e "$T/x" ] || fail "a failed run left an output directory"
"$B/sft" -m "$T/init" -o "$T/x" -q --skip-invalid --max-steps 1 "$T/bad.jsonl" ||
    fail "--skip-invalid: expected success"

# ---- SIGTERM: checkpoint, exit 143, resume ------------------------------------------------
"$B/sft" -m "$T/init" -o "$T/sig" --packing --max-length 64 --batch-size 4 --lr 1e-3 --max-steps 5000 \
    --save-every 0 --log "$T/sig.jsonl" -q "$T/corpus.jsonl" &
pid=$!
i=0
while [ $i -lt 1200 ] && ! grep -q '"step":3,' "$T/sig.jsonl" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
grep -q '"step":3,' "$T/sig.jsonl" || { kill -KILL $pid; fail "SIGTERM test: step 3 not reached in 120 s"; }
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 143 ] || fail "SIGTERM: expected exit 143, got $rc"
ck=$(ls -d "$T"/sig/checkpoint-* 2>/dev/null | head -n 1)
[ -n "$ck" ] && [ -f "$ck/trainer_state.json" ] && [ -f "$ck/optimizer.safetensors" ] ||
    fail "SIGTERM: no complete checkpoint in $T/sig"
{ ls -A "$T"; ls -A "$T/sig"; } | grep -q '\.tmp-' && fail "SIGTERM left temporaries: $(ls -A "$T" "$T/sig")"
n=${ck##*checkpoint-}
"$B/sft" -m "$T/init" -o "$T/sig" --packing --max-length 64 --batch-size 4 --lr 1e-3 --max-steps $((n + 2)) \
    --save-every 0 -q "$T/corpus.jsonl" 2>/dev/null
[ $? -eq 73 ] || fail "re-running into a directory with checkpoints without --resume: expected 73"
"$B/sft" -m "$T/init" -o "$T/sig" --packing --max-length 64 --batch-size 4 --lr 1e-3 --max-steps 5000 \
    --save-every 0 --resume --stop-after $((n + 1)) -q "$T/corpus.jsonl" || fail "resume after SIGTERM: exit $?"
[ -f "$T/sig/checkpoint-$((n + 1))/trainer_state.json" ] || fail "resume after SIGTERM: no checkpoint-$((n + 1))"
echo "SIGTERM at step $n: checkpoint written, exit 143, resumed to $((n + 1))"
echo "t_sft: all checks passed"
