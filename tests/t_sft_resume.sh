#!/bin/sh
# t_sft_resume.sh — training N updates straight and training k, stopping
# (--stop-after, which writes a checkpoint as SIGINT would), then --resume to N give
# the same model.safetensors byte for byte.  Packing, gradient accumulation, a
# warm-up + cosine schedule, weight decay and clipping are all on, and the data
# crosses an epoch boundary, so the data order, the AdamW moments and step count,
# and the schedule position all have to be restored exactly.  Also: 1 and 2 threads
# give the same bytes.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_sft_resume.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$B/init-model" -q --family gpt2 --layers 2 --heads 2 --width 32 --context 64 \
    --tokenizer data/tokenizer.json --seed 4 -o "$T/init" || fail "init-model"
"$B/task-gen" --kind sft -n 40 --seed 9 -o "$T/data.jsonl" || fail "task-gen"
args="-m $T/init --packing --max-length 64 --batch-size 2 --grad-accum 2 --lr 3e-3 --warmup 2
      --lr-scheduler cosine --weight-decay 0.1 --clip-grad 0.5 --max-steps 9 --seed 11 -q"

"$B/sft" $args -o "$T/straight" --log "$T/straight.jsonl" "$T/data.jsonl" || fail "straight run"
"$B/sft" $args -o "$T/split" --save-every 3 --stop-after 4 --log "$T/split.jsonl" "$T/data.jsonl" || fail "first part"
[ -d "$T/split/checkpoint-3" ] && [ -d "$T/split/checkpoint-4" ] || fail "expected checkpoint-3 and checkpoint-4"
[ ! -f "$T/split/config.json" ] || fail "--stop-after must not write the final model"
# as if the run had died after logging step 4 but before checkpointing it
rm -rf "$T/split/checkpoint-4"
"$B/sft" $args -o "$T/split" --save-every 3 --resume --log "$T/split.jsonl" "$T/data.jsonl" || fail "resumed run"
losses() { sed 's/.*"loss":\([-0-9.eE+]*\).*/\1/' "$1"; }
[ "$(losses "$T/straight.jsonl")" = "$(losses "$T/split.jsonl")" ] ||
    fail "logged losses differ: straight $(losses "$T/straight.jsonl" | tr '\n' ' ') resumed $(losses "$T/split.jsonl" | tr '\n' ' ')"
[ "$(grep -c . "$T/split.jsonl")" -eq 9 ] || fail "resumed log should hold steps 1..9 once each"
cmp "$T/straight/model.safetensors" "$T/split/model.safetensors" ||
    fail "9 updates straight and 4 + resume to 9 differ"
[ -d "$T/split/checkpoint-6" ] || fail "resumed run should have written checkpoint-6"
echo "9 updates straight == 3 + resume to 9, byte for byte (model and logged losses)"
# --save-total-limit keeps the newest checkpoints only
"$B/sft" $args -o "$T/limit" --save-every 2 --save-total-limit 2 "$T/data.jsonl" || fail "--save-total-limit run"
[ "$(ls -d "$T"/limit/checkpoint-* | sed 's/.*checkpoint-//' | sort -n | tr '\n' ' ')" = "6 8 " ] ||
    fail "--save-total-limit 2: expected checkpoint-6 and checkpoint-8, got $(ls "$T/limit")"
# same seed + same input = same output, whatever the thread count
"$B/sft" $args -o "$T/one" --threads 1 "$T/data.jsonl" || fail "--threads 1 run"
"$B/sft" $args -o "$T/two" --threads 2 "$T/data.jsonl" || fail "--threads 2 run"
cmp "$T/one/model.safetensors" "$T/two/model.safetensors" || fail "--threads 1 and --threads 2 differ"
echo "--threads 1 == --threads 2, byte for byte"
echo "t_sft_resume: all checks passed"
