#!/bin/sh
# t_tensorboard.sh — --report-to tensorboard (common/base/tbevents.h) from a trainer:
# sft writes one events.out.tfevents.* file into OUT-logs (OUT itself is replaced by
# the final model), or into --logging-dir, whose records are well framed (the C test
# test_tbevents checks the bytes against TensorBoard's own writer) and carry the
# run's metrics under transformers' tags; --report-to none writes none; an unknown
# integration is a usage error (64).
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_tensorboard.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
for p in init-model task-gen sft; do
  [ -x "$B/$p" ] || { echo "skip: $B/$p is not built"; exit 77; }
done
"$B/init-model" -q --family llama --layers 1 --heads 2 --kv-heads 1 --width 32 --context 64 \
  --tokenizer data/tokenizer.json --seed 3 -o "$T/init" || { echo "FAIL: init-model"; exit 1; }
"$B/task-gen" --kind sft -n 40 --seed 5 -o "$T/sft.jsonl" || { echo "FAIL: task-gen"; exit 1; }
S="--max-steps 4 --batch-size 4 --lr 1e-3 --save-every 0 --threads 1 -q"
"$B/sft" -m "$T/init" -o "$T/m1" $S --report-to tensorboard --eval "$T/sft.jsonl" --log "$T/log.jsonl" \
  "$T/sft.jsonl" || fail "sft --report-to tensorboard: exit $?"
n=$(ls "$T/m1-logs" 2>/dev/null | grep -c '^events\.out\.tfevents\.')
[ "$n" = 1 ] || fail "expected one event file in OUT-logs, found $n: $(ls "$T/m1-logs" 2>&1)"
[ -f "$T/m1/config.json" ] || fail "no final model"
ls "$T/m1" | grep -q tfevents && fail "event file inside OUT"
f=$(ls "$T"/m1-logs/events.out.tfevents.* 2>/dev/null | head -n 1)
for tag in brain.Event:2 train/loss train/learning_rate train/grad_norm train/mean_token_accuracy \
  train/entropy train/epoch eval/loss; do
  grep -qa "$tag" "$f" || fail "event file lacks $tag"
done
# the version record, 4 updates and an evaluation before and after: 7 records,
# counted by walking the framing (length, CRC, data, CRC) to the end of the file
recs=$(od -An -v -tu1 "$f" | tr -s ' ' '\n' | grep -v '^$' | awk '
  { b[n++] = $1 } END { at = 0; k = 0
    while (at + 12 <= n) { len = 0; for (i = 7; i >= 0; i--) len = len * 256 + b[at + i]; at += 16 + len; k++ }
    print (at == n) ? k : -1 }')
[ "$recs" = 7 ] || fail "expected 7 well-framed records (the version, 4 updates, 2 evaluations), got $recs"
"$B/sft" -m "$T/init" -o "$T/out2" $S --report-to tensorboard --logging-dir "$T/tb" "$T/sft.jsonl" ||
  fail "--logging-dir: exit $?"
ls "$T/tb" | grep -q '^events\.out\.tfevents\.' || fail "--logging-dir: no event file in $T/tb"
[ -e "$T/out2-logs" ] && fail "--logging-dir: OUT-logs was made too"
"$B/sft" -m "$T/init" -o "$T/out3" $S --report-to none "$T/sft.jsonl" || fail "--report-to none: exit $?"
[ -e "$T/out3-logs" ] && fail "--report-to none: OUT-logs was made"
expect_fail "--report-to wandb" 64 "--report-to: unknown 'wandb'" \
  "$B/sft" -m "$T/init" -o "$T/out4" $S --report-to wandb "$T/sft.jsonl"
[ $fails -eq 0 ] && echo "tensorboard: event files written"
[ $fails -eq 0 ]
