#!/bin/sh
# t_grads_discard.sh — the trainer's two ways of starting a step's gradients
# (gemm.h gemm_overwrite_slower; model.h model_grads_discard): zeroed in AdamW's pass
# and added to, or discarded and written anew by the next backward.  Forced both ways
# with CHERRY_GRADS, the same training must write the same model bytes: sft on the
# tiny GPT-2 (tied embeddings: the LM head writes the token embeddings' gradient, the
# embedding lookup adds to it) and the GQA Llama, 2 micro-batches per update; dpo with
# --chunk-tokens 1 (a chunk per pair, each adding to the last); fp32 and, where oneDNN
# is installed, bf16.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_grads_discard.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/lib.sh

tiny_models 64
: >"$T/pairs.jsonl"
for w in "red fox sky" "blue cat tree" "green dog sun" "gray owl moon" "pink bee rain" "gold cow hill"; do
    set -- $w
    printf '{"prompt": "Repeat: %s\\nAnswer:", "chosen": " %s. Glad to help!", "rejected": " %s %s."}\n' \
        "$w" "$w" "$1" "$3" >>"$T/pairs.jsonl"
done

mps=no
"$B/sft" -m "$T/gpt2" -o "$T/probe" --max-steps 1 --save-every 0 -q --mixed-precision bf16 \
    "$T/corpus.jsonl" 2>"$T/probe.err"
case $? in
0) mps="no bf16" ;;
69) echo "bf16 skipped: oneDNN (libdnnl.so.2) is not installed" ;;
*) fail "sft --mixed-precision bf16 probe: $(cat "$T/probe.err")" ;;
esac

for mp in $mps; do
    for m in gpt2 llama; do
        for g in clear discard; do
            CHERRY_GRADS=$g "$B/sft" -m "$T/$m" -o "$T/sft-$m-$mp-$g" --packing --max-length 64 --batch-size 4 \
                --grad-accum 2 --lr 1e-2 --max-steps 6 --save-every 0 --seed 1 --threads 2 -q \
                --mixed-precision "$mp" "$T/corpus.jsonl" 2>"$T/err" || fail "sft $m $mp $g: exit $? ($(cat "$T/err"))"
        done
        cmp -s "$T/sft-$m-$mp-clear/model.safetensors" "$T/sft-$m-$mp-discard/model.safetensors" ||
            fail "sft $m --mixed-precision $mp: discarded gradients wrote other weights than zeroed ones"
        cmp -s "$T/sft-$m-$mp-clear/model.safetensors" "$T/$m/model.safetensors" &&
            fail "sft $m --mixed-precision $mp: the weights did not move (the comparison proves nothing)"
    done
    for g in clear discard; do
        CHERRY_GRADS=$g "$B/dpo" -m "$T/gpt2" -o "$T/dpo-$mp-$g" --batch-size 3 --chunk-tokens 1 --lr 1e-2 \
            --epochs 2 --save-every 0 --seed 1 --threads 2 -q --mixed-precision "$mp" "$T/pairs.jsonl" \
            2>"$T/err" || fail "dpo $mp $g: exit $? ($(cat "$T/err"))"
    done
    cmp -s "$T/dpo-$mp-clear/model.safetensors" "$T/dpo-$mp-discard/model.safetensors" ||
        fail "dpo --mixed-precision $mp, a chunk per pair: discarded gradients wrote other weights than zeroed ones"
done
[ $fails -eq 0 ]
