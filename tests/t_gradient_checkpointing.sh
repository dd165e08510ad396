#!/bin/sh
# t_gradient_checkpointing.sh — --gradient-checkpointing (model.h model_set_checkpointing:
# the forward keeps only each block's input, backward recomputes the block) changes
# nothing but memory: sft and dpo with and without it write the same log (every
# loss, grad_norm and metric; tokens_per_s dropped) and the same model.safetensors
# bytes.  Models: tiny GPT-2 (fused c_attn, LayerNorm), Llama with GQA, Gemma 3
# (q/k norms, post-norms, sliding window) and Phi-3 (fused qkv and gate_up) from
# init-model; sft also with a LoRA adapter and adapter dropout (masks redrawn in
# the recomputation must be the same); dpo on the tiny GPT-2 policy of the oracle
# fixtures (policy and reference, the reference forward-only), rm-train on a
# classifier.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_gradient_checkpointing.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/lib.sh

"$B/sft" --help | grep -q -- "--gradient-checkpointing" || fail "sft --help: --gradient-checkpointing not described"

init() { # NAME FAMILY FLAGS...
    n=$1 fam=$2
    shift 2
    "$B/init-model" -q --family "$fam" --layers 3 --heads 4 --width 32 --context 64 \
        --tokenizer data/tokenizer.json --seed 3 -o "$T/$n" "$@" || fail "init-model $n"
}
init gpt2 gpt2
init llama llama --kv-heads 2
init gemma3 gemma3 --kv-heads 2
init phi3 phi3
init rm llama --kv-heads 2 --classifier
"$B/task-gen" --kind corpus -n 40 --seed 5 -o "$T/corpus.jsonl" || fail "task-gen"

# same LOG and model.safetensors? (tokens_per_s is a measured time, the only difference)
same() { # TAG-A TAG-B WHAT
    sed 's/"tokens_per_s":[-0-9.eE+]*,*//' "$T/$1.jsonl" >"$T/a.log"
    sed 's/"tokens_per_s":[-0-9.eE+]*,*//' "$T/$2.jsonl" >"$T/b.log"
    [ -s "$T/a.log" ] || fail "$3: empty log"
    cmp -s "$T/a.log" "$T/b.log" || fail "$3: logs differ: $(diff "$T/a.log" "$T/b.log" | head -4)"
    f=model.safetensors
    [ -f "$T/out-$1/$f" ] || f=adapter_model.safetensors
    [ -f "$T/out-$1/$f" ] || fail "$3: no weights in $T/out-$1"
    cmp -s "$T/out-$1/$f" "$T/out-$2/$f" || fail "$3: $f differs with --gradient-checkpointing"
}

sft() { # MODEL TAG FLAGS...
    m=$1 tag=$2
    shift 2
    "$B/sft" -m "$T/$m" -o "$T/out-$tag" --packing --max-length 64 --batch-size 2 --grad-accum 2 --lr 1e-2 \
        --max-steps 4 --save-every 0 --seed 1 --threads 2 -q --log "$T/$tag.jsonl" "$@" "$T/corpus.jsonl" ||
        fail "sft $tag: exit $?"
}
for m in gpt2 llama gemma3 phi3; do
    sft $m $m-plain
    sft $m $m-ckpt --gradient-checkpointing
    same $m-plain $m-ckpt "sft $m"
done
sft llama lora-plain --lora-rank 4 --lora-targets all-linear --lora-dropout 0.1
sft llama lora-ckpt --lora-rank 4 --lora-targets all-linear --lora-dropout 0.1 --gradient-checkpointing
same lora-plain lora-ckpt "sft llama LoRA with dropout"

cp tests/data/pairs/repeat_words.jsonl "$T/pairs.jsonl" # "Repeat: red fox sky" -> " red fox sky. Glad to help!" over " red sky."
dpo() { # MODEL TAG FLAGS...
    m=$1 tag=$2
    shift 2
    "$B/$P" -m "$m" -o "$T/out-$tag" --batch-size 2 --lr 1e-3 --max-steps 3 --save-every 0 --seed 1 --threads 2 -q \
        --log "$T/$tag.jsonl" "$@" "$T/pairs.jsonl" || fail "$P $tag: exit $?"
}
P=dpo
dpo tests/oracle/fixtures/pref-gpt2-policy dpo-plain
dpo tests/oracle/fixtures/pref-gpt2-policy dpo-ckpt --gradient-checkpointing
same dpo-plain dpo-ckpt "dpo gpt2"
P=rm-train
dpo "$T/rm" rm-plain
dpo "$T/rm" rm-ckpt --gradient-checkpointing
same rm-plain rm-ckpt "rm-train llama"
[ $fails -eq 0 ]
