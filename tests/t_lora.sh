#!/bin/sh
# t_lora.sh — LoRA end to end (--lora-rank, lora.h): sft with an adapter lowers the
# loss and writes a PEFT adapter directory (no base weights, the base untouched);
# --merge writes a full model with the same log-probs as base + adapter; the adapter
# directory loads everywhere a model does (logprobs, rollout, model-info, sft -m to
# continue); dpo without precomputed reference log-probs uses the adapter-off weights
# as reference and loads no second model; rm-train trains an adapter plus the score
# head; ppo trains an adapter with the adapter-off reference; flag errors exit 64.
#
# Measured (2 threads, tiny Llama 2x32 pre-trained 40 steps, r=4 on all linears, lr
# 1e-2, 30 updates of 6 prompt-completion pairs): loss 5.92 -> 3.93 (full fine-tuning
# reaches 1.71 in the same steps; from the random init LoRA only reaches 5.68, the
# frozen random embeddings leaving it little to adapt); threshold: falls by more than 1.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_lora.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; exit 1; }
expect_fail() {
    what=$1 code=$2 needle=$3
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$code" ] || fail "$what: expected exit $code, got $rc ($(cat "$T/err"))"
    grep -qF -- "$needle" "$T/err" || fail "$what: expected '$needle' on stderr, got: $(cat "$T/err")"
}
num() { sed -n "$2p" "$3" | grep -o "\"$1\": *[-+0-9.eE]*" | head -1 | sed 's/^.*: *//'; }
check() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" "BEGIN { exit !($3) }" || fail "$4 (a=$1 b=$2)"; }

"$B/init-model" -q --family llama --layers 2 --heads 4 --kv-heads 2 --width 32 --context 64 \
    --tokenizer data/tokenizer.json --seed 3 -o "$T/init" || die "init-model"
"$B/task-gen" --kind corpus -n 100 --seed 5 -o "$T/corpus.jsonl" || die "task-gen corpus"
# a briefly pre-trained base (a random one has nothing for low-rank updates to build on)
"$B/sft" -m "$T/init" -o "$T/lm" --packing --max-length 64 --batch-size 4 --lr 1e-2 --lr-scheduler cosine \
    --max-steps 40 --save-every 0 --seed 1 --threads 2 -q "$T/corpus.jsonl" || die "sft pre-training"
sum0=$(cksum <"$T/lm/model.safetensors")
for w in "one two" "red blue" "sun moon" "cat dog" "up down" "left right"; do
    printf '{"prompt": "Say %s:", "completion": " %s."}\n' "$w" "$w" >>"$T/few.jsonl"
done

# ---- sft with an adapter ------------------------------------------------------------
S="--batch-size 6 --lr 1e-2 --max-steps 30 --save-every 0 --seed 1 --threads 2"
"$B/sft" -m "$T/lm" -o "$T/ad" $S --lora-rank 4 --lora-targets q,k,v,o,gate,up,down --log "$T/ad.log" \
    "$T/few.jsonl" 2>"$T/err" || die "sft --lora-rank: exit $? ($(cat "$T/err"))"
grep -q "LoRA r=4 alpha=8 on 14 modules" "$T/err" || fail "sft: no LoRA summary on stderr: $(cat "$T/err")"
first=$(num loss 1 "$T/ad.log")
last=$(num loss 30 "$T/ad.log")
echo "sft --lora-rank 4: loss $first -> $last"
check "$last" "$first" "a < b - 1" "sft with LoRA: the loss should fall by more than 1"
for f in adapter_config.json adapter_model.safetensors tokenizer.json; do
    [ -f "$T/ad/$f" ] || fail "adapter directory lacks $f"
done
[ -f "$T/ad/model.safetensors" ] && fail "adapter directory holds base weights"
# no config.json: transformers would take the directory for a full model (PEFT writes none)
[ -f "$T/ad/config.json" ] && fail "adapter directory holds a config.json"
[ "$(cksum <"$T/lm/model.safetensors")" = "$sum0" ] || fail "the base model file changed"
C="$T/ad/adapter_config.json"
grep -q '"peft_type": "LORA"' "$C" || fail "adapter_config: peft_type"
grep -q '"r": 4' "$C" || fail "adapter_config: r"
grep -q '"lora_alpha": 8' "$C" || fail "adapter_config: lora_alpha"
grep -q '"task_type": "CAUSAL_LM"' "$C" || fail "adapter_config: task_type"
grep -q "\"base_model_name_or_path\": \"$(cd "$T/lm" && pwd -P)\"" "$C" || fail "adapter_config: base path"
grep -q '"gate_proj"' "$C" || fail "adapter_config: target_modules"
grep -q 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight' "$T/ad/adapter_model.safetensors" ||
    fail "adapter tensors do not have PEFT names"
"$B/model-info" "$T/ad" >/dev/null 2>&1 || fail "model-info cannot read the adapter directory"

# ---- --merge: the same function as base + adapter -------------------------------------
"$B/sft" -m "$T/lm" -o "$T/merged" $S --lora-rank 4 --lora-targets q,k,v,o,gate,up,down --merge -q \
    "$T/few.jsonl" || fail "sft --merge: exit $?"
[ -f "$T/merged/model.safetensors" ] && [ ! -f "$T/merged/adapter_config.json" ] ||
    fail "--merge should write a plain model directory"
"$B/logprobs" -q --threads 2 -m "$T/ad" -o "$T/lp_ad.jsonl" "$T/few.jsonl" || fail "logprobs on the adapter: exit $?"
"$B/logprobs" -q --threads 2 -m "$T/merged" -o "$T/lp_m.jsonl" "$T/few.jsonl" || fail "logprobs on merged: exit $?"
"$B/logprobs" -q --threads 2 -m "$T/lm" -o "$T/lp_0.jsonl" "$T/few.jsonl" || fail "logprobs on the base: exit $?"
paste -d '\n' "$T/lp_ad.jsonl" "$T/lp_m.jsonl" | grep -o '"logp": *[-0-9.eE+]*' | sed 's/.*: *//' >"$T/pairs.txt"
n=$(wc -l <"$T/pairs.txt")
[ "$n" -ge 12 ] || fail "logprobs: expected 2 x 6 values, got $n"
awk 'NR % 2 { a = $1; next } { d = a - $1; if (d < 0) d = -d; if (d > 1e-4 * (1 + (a < 0 ? -a : a))) bad++ }
     END { exit bad > 0 }' "$T/pairs.txt" || fail "merged model log-probs differ from base + adapter"
cmp -s "$T/lp_ad.jsonl" "$T/lp_0.jsonl" && fail "the adapter does not change the log-probs"

# ---- the adapter directory as -m: continue training it; rollout decodes with it ------
"$B/sft" -m "$T/ad" -o "$T/ad2" $S --max-steps 2 --lora-rank 4 -q "$T/few.jsonl" || fail "continue adapter: exit $?"
[ -f "$T/ad2/adapter_config.json" ] || fail "continued training should write an adapter"
grep -q "\"base_model_name_or_path\": \"$(cd "$T/lm" && pwd -P)\"" "$T/ad2/adapter_config.json" ||
    fail "continued adapter lost its base path"
printf '{"prompt": "The"}\n{"prompt": "A"}\n' >"$T/prompts.jsonl"
"$B/rollout" -q --threads 2 -m "$T/ad" --max-new-tokens 4 --temperature 0 -o "$T/ro_ad.jsonl" "$T/prompts.jsonl" ||
    fail "rollout on the adapter: exit $?"
"$B/rollout" -q --threads 2 -m "$T/merged" --max-new-tokens 4 --temperature 0 -o "$T/ro_m.jsonl" "$T/prompts.jsonl" ||
    fail "rollout on merged: exit $?"
cmp -s "$T/ro_ad.jsonl" "$T/ro_m.jsonl" || fail "greedy rollouts of adapter and merged model differ"

# ---- resume: adapter checkpoints (adapter + AdamW state of the adapter) continue exactly,
# dropout masks included (they are a function of seed, step and micro-step)
R="--batch-size 3 --lr 1e-2 --max-steps 6 --seed 1 --threads 2 --lora-rank 4 --lora-dropout 0.1 -q"
"$B/sft" -m "$T/lm" -o "$T/straight" $R "$T/few.jsonl" || fail "straight run: exit $?"
"$B/sft" -m "$T/lm" -o "$T/resumed" $R --stop-after 3 "$T/few.jsonl" || fail "run to 3: exit $?"
[ -f "$T/resumed/checkpoint-3/adapter_model.safetensors" ] || fail "checkpoint-3 should hold the adapter"
"$B/sft" -m "$T/lm" -o "$T/resumed" $R --resume "$T/few.jsonl" || fail "resume: exit $?"
cmp -s "$T/straight/adapter_model.safetensors" "$T/resumed/adapter_model.safetensors" ||
    fail "a resumed LoRA run differs from the straight one"
grep -q '"lora_dropout": 0.1,' "$T/straight/adapter_config.json" || fail "adapter_config: lora_dropout 0.1"
"$B/sft" -m "$T/lm" -o "$T/nodrop" $(echo "$R" | sed 's/--lora-dropout 0.1/--lora-dropout 0/') "$T/few.jsonl" ||
    fail "no-dropout run: exit $?"
cmp -s "$T/straight/adapter_model.safetensors" "$T/nodrop/adapter_model.safetensors" &&
    fail "--lora-dropout 0.1 trained the same adapter as no dropout"
"$B/sft" -m "$T/lm" -o "$T/resumed2" $R --stop-after 3 "$T/few.jsonl" || fail "run to 3 (2): exit $?"
expect_fail "resume a LoRA run without --lora-rank" 64 "resume with the run's --lora-rank" "$B/sft" -m "$T/lm" \
    -o "$T/resumed2" --batch-size 3 --max-steps 6 --seed 1 --resume "$T/few.jsonl"

# ---- dpo: the reference is the adapter-off model, no second copy ---------------------
M=tests/oracle/fixtures/pref-gpt2-policy
cp tests/data/pairs/repeat_words.jsonl "$T/pairs.jsonl" # "Repeat: red fox sky" -> " red fox sky. Glad to help!" over " red sky."
D="--threads 1 --seed 3 --max-steps 8 --batch-size 3 --lr 0.05 --save-every 0"
/usr/bin/time -f "%M" -o "$T/rss_lora" "$B/dpo" $D -m $M -o "$T/dpo_ad" --lora-rank 8 --log "$T/dpo.log" \
    "$T/pairs.jsonl" 2>"$T/err" || fail "dpo --lora-rank: exit $? ($(cat "$T/err"))"
grep -q "reference = the -m weights with the LoRA adapter off (no second model in memory)" "$T/err" ||
    fail "dpo with LoRA should use the adapter-off model as reference: $(cat "$T/err")"
/usr/bin/time -f "%M" -o "$T/rss_full" "$B/dpo" $D -m $M -o "$T/dpo_full" -q "$T/pairs.jsonl" ||
    fail "dpo full: exit $?"
check "$(num loss 8 "$T/dpo.log")" "$(num loss 1 "$T/dpo.log")" "a < b - 0.01" "dpo with LoRA: the loss should fall"
check "$(num rewards/margins 1 "$T/dpo.log")" "0" "a == b" "dpo with LoRA: first margin must be 0 (reference = start)"
grep -q '"c_attn"' "$T/dpo_ad/adapter_config.json" || fail "dpo: GPT-2 default target is c_attn"
grep -q '"fan_in_fan_out": true' "$T/dpo_ad/adapter_config.json" || fail "dpo: GPT-2 adapters are fan_in_fan_out"
echo "dpo peak RSS: LoRA $(cat "$T/rss_lora") KiB, full $(cat "$T/rss_full") KiB"

# ---- an adapter written by PEFT (no tokenizer files: the base's are used) -----------
"$B/logprobs" -q --threads 1 -m tests/oracle/fixtures/lora-peft-llama -o "$T/lp_peft.jsonl" "$T/pairs.jsonl" ||
    fail "logprobs on a PEFT adapter directory: exit $?"
grep -q '"ref_chosen_logps"' "$T/lp_peft.jsonl" || fail "logprobs on a PEFT adapter: no log-probs written"
"$B/model-info" tests/oracle/fixtures/lora-peft-llama >"$T/info" 2>&1 || fail "model-info on a PEFT adapter: exit $?"
grep -q "^adapter: *LoRA r=2 alpha=6 on 6 modules" "$T/info" || fail "model-info: adapter line: $(head -3 "$T/info")"

# ---- rm-train: adapter + score head (SEQ_CLS), loads back as a classifier -------------
"$B/rm-train" $D -m $M -o "$T/rm_ad" --lora-rank 4 -q "$T/pairs.jsonl" || fail "rm-train --lora-rank: exit $?"
grep -q '"task_type": "SEQ_CLS"' "$T/rm_ad/adapter_config.json" || fail "rm adapter: task_type SEQ_CLS"
grep -q 'base_model.model.score.weight' "$T/rm_ad/adapter_model.safetensors" || fail "rm adapter lacks the score head"
"$B/score" -q --threads 1 -m "$T/rm_ad" -o "$T/scores.jsonl" "$T/pairs.jsonl" || fail "score with the rm adapter: exit $?"

# ---- ppo: LoRA policy, adapter-off reference ------------------------------------------
printf '{"prompt": "Repeat: red fox\\nAnswer:"}\n{"prompt": "Repeat: blue cat\\nAnswer:"}\n' >"$T/ppo_prompts.jsonl"
"$B/ppo" --threads 1 --algo grpo --beta 0.1 --num-generations 2 --batch-size 2 --max-new-tokens 4 --max-steps 2 \
    --reward-model "$T/rm_ad" -m $M -o "$T/ppo_ad" --lora-rank 4 --save-every 0 "$T/ppo_prompts.jsonl" 2>"$T/err" ||
    fail "ppo --lora-rank: exit $? ($(cat "$T/err"))"
grep -q "reference = the policy with its LoRA adapter off" "$T/err" || fail "ppo: adapter-off reference: $(cat "$T/err")"
[ -f "$T/ppo_ad/adapter_model.safetensors" ] || fail "ppo with LoRA should write an adapter"

# ---- errors -------------------------------------------------------------------------
expect_fail "--lora-alpha without rank" 64 "need --lora-rank" "$B/sft" -m "$T/init" -o "$T/x" --lora-alpha 4 \
    "$T/corpus.jsonl"
expect_fail "dropout 1" 64 "--lora-dropout: must be in [0, 1)" "$B/sft" -m "$T/init" -o "$T/x" --lora-rank 2 \
    --lora-dropout 1 "$T/corpus.jsonl"
expect_fail "dropout without rank" 64 "need --lora-rank" "$B/sft" -m "$T/init" -o "$T/x" --lora-dropout 0.1 \
    "$T/corpus.jsonl"
expect_fail "negative rank" 64 "--lora-rank" "$B/sft" -m "$T/init" -o "$T/x" --lora-rank -1 "$T/corpus.jsonl"
expect_fail "llama target on gpt2" 64 "matches no linear layer" "$B/dpo" -m $M -o "$T/x" --lora-rank 2 \
    --lora-targets q_proj "$T/pairs.jsonl"
expect_fail "rank of a loaded adapter" 64 "holds an adapter of rank 4" "$B/sft" -m "$T/ad" -o "$T/x" --lora-rank 8 \
    "$T/corpus.jsonl"

[ $fails -eq 0 ] && echo "lora: all checks passed"
[ $fails -eq 0 ]
