#!/bin/sh
# t_mpi.sh — data-parallel training over MPI (common/base/dist.h, train.h DATA
# PARALLELISM), when the programs were built with `make MPI=1` and mpirun exists:
#   - the collectives themselves (test_dist under mpirun -np 2 and -np 3);
#   - sft with mpirun -np 2 gives the weights of one process within 1e-5 relative
#     (only the order of float additions differs), with gradient accumulation, a
#     step size that 2 ranks do not divide, clipping, weight decay and --eval;
#   - the logged losses match one process's and the log has one record per step
#     (only rank 0 writes it);
#   - the same -np gives the same bytes twice; -np 3 (uneven shares) also matches;
#   - --save-every/--stop-after then --resume under -np 2 gives the bytes of the
#     straight -np 2 run;
#   - dpo, rm-train, ppo (with its value model), grpo and sft of a LoRA adapter,
#     with -np 2, match one process too;
#   - rollout under -np 3 writes the bytes one process writes (slices of two chunks
#     gathered in prompt order), and refuses stdin (mpirun feeds rank 0 only).
# Otherwise it is skipped (exit 77).
B=${BIN:-bin}
O=${O:-build}
if ! ldd "$B/sft" 2>/dev/null | grep -q libmpi; then
    echo "skipped: built without MPI=1"
    exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
    echo "skipped: mpirun not found"
    exit 77
fi
T=$(mktemp -d /tmp/t_mpi.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
# one OpenMP thread per rank: 2 ranks x all cores would oversubscribe the machine
run() { np=$1; shift; mpirun -np "$np" --oversubscribe $ROOT "$@"; }
CMP="$O/tests/test_dist"
[ -x "$CMP" ] || { echo "FAIL: $CMP not built"; exit 1; }

# --- the collectives
run 2 "$CMP" >"$T/c2" 2>&1 || fail "test_dist under -np 2: $(cat "$T/c2")"
run 3 "$CMP" >"$T/c3" 2>&1 || fail "test_dist under -np 3: $(cat "$T/c3")"
[ "$(grep -c 'all checks passed' "$T/c3")" -eq 3 ] || fail "test_dist -np 3: expected 3 ranks to pass, got: $(cat "$T/c3")"

"$B/init-model" -q --family gpt2 --layers 2 --heads 2 --width 32 --context 64 \
    --tokenizer data/tokenizer.json --seed 4 -o "$T/init" || { echo "FAIL: init-model"; exit 1; }
"$B/task-gen" --kind sft -n 30 --seed 9 -o "$T/data.jsonl" || { echo "FAIL: task-gen"; exit 1; }
"$B/task-gen" --kind sft -n 7 --split eval --seed 3 -o "$T/eval.jsonl" || { echo "FAIL: task-gen eval"; exit 1; }
# --adam-eps 1e-6: the gradient of GPT-2's key bias (part of c_attn.bias) is zero in
# exact arithmetic (softmax is shift-invariant: q.(k+b) adds q.b to every score of a
# row), so what is computed there is rounding noise of ~1e-9; AdamW divides it by
# sqrt(v) ~ 1e-9 and moves those weights by ~lr in a direction set by the noise,
# i.e. by the order of the additions.  With the default eps 1e-8 the key biases of
# one process and of 2 ranks differ by ~6e-5 relative while everything else agrees
# to ~1e-7; eps 1e-6 keeps the noise from being amplified (measured: 5.8e-7).
# batch 3 x accumulation 2 = 6 units a step (3 per rank; 2,2,2 for 3 ranks), the
# last step of the epoch is short (30 = 5 x 6 ... then epoch 2 starts)
args="-m $T/init --max-length 64 --batch-size 3 --grad-accum 2 --lr 3e-3 --warmup 2 --lr-scheduler cosine
      --weight-decay 0.1 --clip-grad 0.5 --max-steps 7 --seed 11 --threads 1 -q --adam-eps 1e-6 --eval $T/eval.jsonl --eval-every 3"

"$B/sft" $args -o "$T/one" --log "$T/one.jsonl" "$T/data.jsonl" || fail "sft, one process"
run 2 "$B/sft" $args -o "$T/two" --log "$T/two.jsonl" "$T/data.jsonl" || fail "sft under mpirun -np 2"
"$CMP" compare "$T/one/model.safetensors" "$T/two/model.safetensors" 1e-5 || fail "-np 2 vs one process: weights differ"
[ "$(grep -c '"loss"' "$T/two.jsonl")" -eq 7 ] || fail "-np 2 log: expected 7 step records, got $(grep -c '"loss"' "$T/two.jsonl")"
[ "$(grep -c '"eval_loss"' "$T/two.jsonl")" -eq 4 ] ||
    fail "-np 2 log: expected 4 eval records (before, 3, 6, end), got $(grep -c '"eval_loss"' "$T/two.jsonl")"
# losses and eval losses of every record within 1e-5 relative
field() { grep -o "\"$1\":[-0-9.eE+]*" "$2" | sed 's/.*://'; }
for k in loss eval_loss num_tokens; do
    field "$k" "$T/one.jsonl" >"$T/a"
    field "$k" "$T/two.jsonl" >"$T/b"
    [ -s "$T/a" ] || fail "no $k in the one-process log"
    paste "$T/a" "$T/b" | awk -v k="$k" '{ d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1;
        if ($2 == "" || d > 1e-5 * m + 1e-12) { print "FAIL: " k " record " NR ": one process " $1 ", -np 2 " $2; bad = 1 } }
        END { exit bad }' || fails=$((fails + 1))
done
[ -f "$T/two/tokenizer.json" ] && [ -f "$T/two/config.json" ] || fail "-np 2: final model incomplete: $(ls "$T/two")"

# --- the same -np gives the same bytes; -np 3 shares 6 units as 2,2,2
run 2 "$B/sft" $args -o "$T/two-again" "$T/data.jsonl" || fail "second sft -np 2"
cmp "$T/two/model.safetensors" "$T/two-again/model.safetensors" || fail "two -np 2 runs differ"
run 3 "$B/sft" $args -o "$T/three" "$T/data.jsonl" || fail "sft under mpirun -np 3"
"$CMP" compare "$T/one/model.safetensors" "$T/three/model.safetensors" 1e-5 || fail "-np 3 vs one process: weights differ"

# --- checkpoint and resume under -np 2
run 2 "$B/sft" $args -o "$T/split" --save-every 2 --stop-after 3 "$T/data.jsonl" || fail "sft -np 2 --stop-after 3"
[ -d "$T/split/checkpoint-2" ] && [ -d "$T/split/checkpoint-3" ] || fail "expected checkpoint-2 and -3, got $(ls "$T/split")"
[ ! -f "$T/split/config.json" ] || fail "--stop-after must not write the final model"
run 2 "$B/sft" $args -o "$T/split" --save-every 2 --resume "$T/data.jsonl" || fail "sft -np 2 --resume"
cmp "$T/two/model.safetensors" "$T/split/model.safetensors" || fail "-np 2: 3 + resume to 7 differs from 7 straight"

# --- dpo: preference pairs, the reference computed in the first pass.  The first
# update starts at policy == reference, where AdamW's first step is nearly sign(g)
# and small gradients are decided by rounding: eps 1e-4 (measured 4.3e-7; 1e-6
# gives 5.5e-6, too close to the tolerance to be robust across BLAS builds).
: >"$T/pairs.jsonl"
for w in "red fox sky" "blue cat tree" "green dog sun" "gray owl moon" "pink bee rain"; do
    set -- $w
    printf '{"prompt": "Repeat: %s\\nAnswer:", "chosen": " %s. Glad to help!", "rejected": " %s %s."}\n' \
        "$w" "$w" "$1" "$3" >>"$T/pairs.jsonl"
done
dargs="-m $T/init --batch-size 2 --grad-accum 2 --lr 1e-3 --max-steps 3 --seed 5 --threads 1 -q --adam-eps 1e-4"
"$B/dpo" $dargs -o "$T/dpo1" "$T/pairs.jsonl" || fail "dpo, one process"
run 2 "$B/dpo" $dargs -o "$T/dpo2" "$T/pairs.jsonl" || fail "dpo under mpirun -np 2"
"$CMP" compare "$T/dpo1/model.safetensors" "$T/dpo2/model.safetensors" 1e-5 || fail "dpo -np 2 vs one process"

# --- rm-train (a reward model from the same pairs) and ppo/grpo (every rank
# generates the same batch; the update's sequences are shared; ppo also sums its
# value model's gradients)
rargs="-m tests/oracle/fixtures/pref-gpt2-ref --batch-size 2 --grad-accum 2 --lr 1e-3 --max-steps 3 --seed 5
       --threads 1 -q --adam-eps 1e-4"
"$B/rm-train" $rargs -o "$T/rm1" "$T/pairs.jsonl" || fail "rm-train, one process"
run 2 "$B/rm-train" $rargs -o "$T/rm2" "$T/pairs.jsonl" || fail "rm-train under mpirun -np 2"
"$CMP" compare "$T/rm1/model.safetensors" "$T/rm2/model.safetensors" 1e-5 || fail "rm-train -np 2 vs one process"
sed 's/, "chosen".*/}/' "$T/pairs.jsonl" >"$T/rl-prompts.jsonl"
for a in ppo grpo; do
    pargs="-m tests/oracle/fixtures/pref-gpt2-policy --algo $a
           --num-generations 2 --batch-size 4 --max-new-tokens 8 --lr 3e-3 --max-steps 4 --seed 1 --threads 1 -q
           --adam-eps 1e-4"
    "$B/ppo" --reward-cmd "sh tests/reward_lowid.sh" $pargs -o "$T/$a-1" "$T/rl-prompts.jsonl" || fail "$a, one process"
    run 2 "$B/ppo" --reward-cmd "sh tests/reward_lowid.sh" $pargs -o "$T/$a-2" "$T/rl-prompts.jsonl" ||
        fail "$a under mpirun -np 2"
    "$CMP" compare "$T/$a-1/model.safetensors" "$T/$a-2/model.safetensors" 1e-5 || fail "$a -np 2 vs one process"
done

# --- LoRA: only the adapter is trained, summed and saved
run 2 "$B/sft" $args --lora-rank 4 -o "$T/lora2" "$T/data.jsonl" || fail "sft --lora-rank 4 under -np 2"
"$B/sft" $args --lora-rank 4 -o "$T/lora1" "$T/data.jsonl" || fail "sft --lora-rank 4, one process"
"$CMP" compare "$T/lora1/adapter_model.safetensors" "$T/lora2/adapter_model.safetensors" 1e-5 ||
    fail "LoRA -np 2 vs one process"

# --- rollout: 300 prompts = 2 chunks of at most 256
"$B/task-gen" --kind prompts -n 300 --seed 2 -o "$T/prompts.jsonl" || fail "task-gen prompts"
rargs="-m $T/one --max-new-tokens 4 -n 2 --batch-size 8 --seed 7 --threads 1 --per-token -q"
"$B/rollout" $rargs -o "$T/r1.jsonl" "$T/prompts.jsonl" || fail "rollout, one process"
run 3 "$B/rollout" $rargs -o "$T/r3.jsonl" "$T/prompts.jsonl" || fail "rollout under -np 3"
[ "$(grep -c . "$T/r1.jsonl")" -eq 600 ] || fail "rollout: expected 600 records, got $(grep -c . "$T/r1.jsonl")"
cmp "$T/r1.jsonl" "$T/r3.jsonl" || fail "rollout -np 3 differs from one process"
run 2 "$B/rollout" $rargs -o "$T/r-stdin.jsonl" <"$T/prompts.jsonl" >"$T/out" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "must be a file" "$T/out" || fail "rollout -np 2 from stdin: expected a usage error, got $rc: $(cat "$T/out")"
[ ! -e "$T/r-stdin.jsonl" ] || fail "rollout -np 2 from stdin must not write output"

[ $fails -eq 0 ] || { echo "t_mpi: $fails failure(s)"; exit 1; }
echo "t_mpi: all checks passed"
