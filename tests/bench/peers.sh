#!/bin/sh
# tests/bench/peers.sh — cherry against its peers, in one invocation, alternating runs.
#
#   sh tests/bench/peers.sh [train] [train-bf16] [decode] [decode16] [dpo] [dpo-bf16] [sft] [sft-bf16]
#   (make bench runs them all)
#
# train       GPT-2-124M training step (forward, loss, backward, AdamW), fp32, at
#             B=4,T=64 and B=2,T=256: build/tests/bench_train_step against
#             tests/oracle/bench_torch_gpt2.py (PyTorch + transformers), same weights
#             (one bin/init-model directory), same loss and AdamW hyperparameters,
#             dropout off, 2 threads.  Each round also runs build/tests/bench_fma_peak,
#             and the summary gives both sides' model FLOPs/s as a fraction of the
#             cores' fp32 FMA peak (the ceiling of any fp32 implementation).
# train-bf16  the same with cherry --dtype bf16 against torch.autocast(bfloat16).
# decode      greedy decoding at batch 1 of SmolLM2-135M (models/smollm2-135m-instruct)
#             and of the GPT-2-124M shape (the train model), NEW tokens after the first
#             (default 48), prefill excluded: build/tests/bench_decode --peer with fp32,
#             bf16 and int8 (--gen-dtype bf16, int8) decode weights against llama.cpp
#             through tests/oracle/bench_llamacpp_decode.py on GGUFs of the same weights
#             at F32, F16, BF16 and Q8_0 (cherry's bf16 is paired with both 16-bit
#             GGUFs, its int8 with Q8_0).
# decode16    the same with 16 sequences decoded together (total tokens/s; llama.cpp:
#             one llama_batch of 16 sequences per step, a unified KV cache).
# dpo         DPO pairs/s and peak RSS of SmolLM2-135M: bin/dpo against TRL's DPOTrainer
#             (tests/oracle/bench_trl_dpo.py), its default reference (a frozen copy, one
#             forward per step) and precompute_ref_log_probs=True, against one cherry run
#             (the reference computed once before the first step); DPO_PAIRS pairs
#             (default 8) of 64 + 64 tokens, 4 pairs per step, fp32, no gradient
#             checkpointing; timed: the reference pass and the steps.  Cherry shares each
#             prompt between the pair's two completions (its default); DPO_CHERRY_FLAGS=
#             --no-prefix-sharing gives it TRL's layout, a row per completion.
# sft         full SFT of SmolLM2-135M, bin/sft against TRL's SFTTrainer
#             (tests/oracle/bench_trl_sft.py): 2 x DPO_PAIRS chats of the same length
#             through the model's chat template, 8 per step; timed: the steps.
# dpo-bf16, sft-bf16  the same in bf16 mixed precision on both sides: TRL's own default
#             bf16=True (torch.autocast on the CPU) against cherry --mixed-precision bf16;
#             fp32 weights and AdamW state on both, gradient checkpointing still off.
#
# Each round runs cherry once, then the peer with OMP_WAIT_POLICY=passive and unset
# (the peer's round value is the better of the two; cherry sets its own default,
# passive, see common/kernels/gemm.c), so slow drifts of the machine's load hit both
# sides alike.  A run's value is its best step after one warm-up step.  Printed per
# shape: cherry's and the peer's median tokens/s over the rounds and the ratio
# cherry/peer of each round as min and median.
#
# Environment: ROUNDS (default 3), STEPS (timed steps per run, default 3), THREADS
# (default 2), LOAD=1 keeps one core busy with a spinning process during the runs
# (the straggler case: both sides under the same load), O (build dir, default build),
# BIN (default bin), PYTHON (default python3), SMOL (default models/smollm2-135m-instruct),
# DPO_PAIRS (default 8), CHERRY_FLAGS (more flags for bench_train_step in train and
# train-bf16, e.g. "--matmul none": bf16 on oneDNN's gemm entry point instead of its
# matmul primitive), TRL_WAIT (the OMP_WAIT_POLICY values the TRL peer runs under,
# best kept; default "passive": each TRL run takes minutes).  A missing peer is skipped with a
# message; the exit status is 0 unless cherry itself fails.
set -u
# cherry asks Linux for 2 MiB pages for its large buffers (common/base/util.c,
# advise_huge); PyTorch does the same for tensors from 2 MiB when THP_MEM_ALLOC_ENABLE=1
# (c10/core/impl/alloc_cpu.cpp), so every PyTorch and TRL peer runs with it: the same
# memory setup on both sides (THP_MEM_ALLOC_ENABLE=0 in the environment turns it off).
export THP_MEM_ALLOC_ENABLE="${THP_MEM_ALLOC_ENABLE:-1}"
O=${O:-build}
BIN=${BIN:-bin}
PY=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-3}
THREADS=${THREADS:-2}
LOAD=${LOAD:-0}
SHAPES=${SHAPES:-4x64,2x256}
NEW=${NEW:-48}
DPO_PAIRS=${DPO_PAIRS:-8}
TRL_WAIT=${TRL_WAIT:-passive}
WORK=$O/bench
MODEL=$WORK/gpt2-124m
mkdir -p "$WORK" || exit 73
OUT=$WORK/peers.$$.txt
: >"$OUT"
SPIN=
cleanup() { [ -n "$SPIN" ] && kill "$SPIN" 2>/dev/null; rm -f "$OUT" "$OUT.c" "$OUT.run" "$OUT.res"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

model() {
    [ -f "$MODEL/model.safetensors" ] && return 0
    echo "peers: writing the GPT-2-124M-shaped model $MODEL (bin/init-model, seed 1)"
    "$BIN/init-model" -q -o "$MODEL" --family gpt2 --layers 12 --heads 12 --width 768 --vocab 50257 \
        --context 1024 --bos 50256 --eos 50256 --seed 1
}

have_torch() {
    $PY -c 'import torch, transformers' 2>/dev/null && return 0
    echo "peers: SKIP the PyTorch peer: python3 cannot import torch and transformers" \
        "(pip install torch transformers; see tests/bench/README.md)"
    return 1
}

# summary FILE WHAT: per shape, medians and the per-round ratios' min and median.
summary() {
    awk -v what="$2" -v threads="$THREADS" '
    function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    /^ROUND/ { round = $2; next }
    /^RESULT fma_peak/ { v = $5; sub(/gflops=/, "", v); if (v + 0 > fma) fma = v + 0; next }
    /^RESULT/ {
        for (i = 7; i <= NF; i++) if ($i ~ /^gflop_per_token=/) { g = $i; sub(/.*=/, "", g); gpt[$3 " " $4 " " $5] = g + 0 }
        side = $2; shape = $3 " " $4 " " $5; v = $6; sub(/tokens_per_s=/, "", v); v += 0
        if (!(shape in seen)) { seen[shape] = 1; order[++ns] = shape }
        key = shape SUBSEP round
        if (side == "cherry") c[key] = v
        else if (!(key in p) || v > p[key]) p[key] = v
        rounds[round] = 1
    }
    END {
        printf "%-28s %-26s %10s %10s %14s\n", what, "work", "cherry", "peer", "ratio min/med"
        for (s = 1; s <= ns; s++) {
            nc = np = nr = 0; delete cs; delete ps; delete rs
            for (r in rounds) {
                key = order[s] SUBSEP r
                if (key in c) cs[++nc] = c[key]
                if (key in p) ps[++np] = p[key]
                if ((key in c) && (key in p)) { rs[++nr] = c[key] / p[key]; mn = (nr == 1 || rs[nr] < mn) ? rs[nr] : mn }
            }
            if (nr == 0) { printf "%-28s %-26s %10s %10s %14s\n", "", order[s], nc ? median(cs, nc) : "-", np ? median(ps, np) : "-", nc ? "no peer" : "cherry has none"; continue }
            printf "%-28s %-26s %10.1f %10.1f %7.2fx %5.2fx\n", "", order[s], median(cs, nc), median(ps, np), mn, median(rs, nr)
        }
        printf "(tokens/s, medians over %d rounds; ratio = cherry/peer within a round)\n", length(rounds)
        if (fma > 0) {
            # the ceiling: model FLOPs/s of each side as a fraction of the fp32 FMA peak of the cores
            printf "fp32 FMA peak of the %d threads (bench_fma_peak, best of the rounds): %.1f GFLOP/s\n", threads, fma
            for (s = 1; s <= ns; s++) {
                if (!(order[s] in gpt)) continue
                nc = np = 0; delete cs; delete ps
                for (r in rounds) {
                    key = order[s] SUBSEP r
                    if (key in c) cs[++nc] = c[key]
                    if (key in p) ps[++np] = p[key]
                }
                if (nc == 0 || np == 0) continue
                cm = median(cs, nc); pm = median(ps, np)
                printf "  %-26s %.4f GFLOP/token: cherry %.0f%% of peak, peer %.0f%%; 1.6x the peer = %.0f%%\n", order[s], gpt[order[s]], 100 * cm * gpt[order[s]] / fma, 100 * pm * gpt[order[s]] / fma, 160 * pm * gpt[order[s]] / fma
            }
        }
    }' "$1"
}

# Runs "$@" (a cherry side), shows its RESULT lines and appends them to $OUT; fails,
# naming the command, when it fails or prints none (a pipe into tee would hide both).
cherry_results() {
    "$@" >"$OUT.run" || { echo "peers: cherry failed: $*" >&2; return 1; }
    grep '^RESULT' "$OUT.run" >"$OUT.res" || { echo "peers: no RESULT line from: $*" >&2; return 1; }
    tee -a "$OUT" <"$OUT.res"
}

train() { # dtype: fp32 or bf16
    dtype=$1
    model || return 1
    peer=1
    have_torch || peer=0
    cflags=
    [ "$dtype" = bf16 ] && cflags="--dtype bf16"
    cflags="$cflags ${CHERRY_FLAGS:-}"
    : >"$OUT"
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        echo "ROUND $r" >>"$OUT"
        if [ "$dtype" = fp32 ]; then
            if [ -x "$O/tests/bench_fma_peak" ]; then
                "$O/tests/bench_fma_peak" --threads "$THREADS" | grep '^RESULT' | tee -a "$OUT"
            else
                echo "peers: no $O/tests/bench_fma_peak: the summary has no fraction of peak (make bench builds it)"
            fi
        fi
        # shellcheck disable=SC2086
        cherry_results "$O/tests/bench_train_step" --model "$MODEL" --threads "$THREADS" --steps "$STEPS" \
            --shapes "$SHAPES" --no-peak $cflags || return 1
        if [ "$peer" = 1 ]; then
            for wp in passive unset; do
                if [ "$wp" = unset ]; then
                    env -u OMP_WAIT_POLICY $PY tests/oracle/bench_torch_gpt2.py --model "$MODEL" --threads "$THREADS" \
                        --steps "$STEPS" --shapes "$SHAPES" --dtype "$dtype" 2>/dev/null | grep '^RESULT' | tee -a "$OUT"
                else
                    OMP_WAIT_POLICY=$wp $PY tests/oracle/bench_torch_gpt2.py --model "$MODEL" --threads "$THREADS" \
                        --steps "$STEPS" --shapes "$SHAPES" --dtype "$dtype" 2>/dev/null | grep '^RESULT' | tee -a "$OUT"
                fi
            done
        fi
        r=$((r + 1))
    done
    load="no extra load"
    [ "$LOAD" = 1 ] && load="+1 spinning process"
    summary "$OUT" "train $dtype ($load)"
}

have_llamacpp() {
    $PY -c 'import llama_cpp, gguf, safetensors' 2>/dev/null && return 0
    echo "peers: SKIP the llama.cpp peer: python3 cannot import llama_cpp, gguf and safetensors" \
        "(pip install llama-cpp-python gguf safetensors; see tests/bench/README.md)"
    return 1
}

# decode_bench B: greedy decoding of B sequences (total tokens/s), for SmolLM2-135M
# (when present) and the GPT-2-124M shape, cherry fp32, bf16 and int8 decode weights
# against llama.cpp on F32, F16, BF16 and Q8_0 GGUFs of the same weights (int8 is
# keyed q8_0: the same quantization of the weights).  Cherry has one
# 16-bit format (bf16, --gen-dtype bf16): its line is paired with both of llama.cpp's
# 16-bit rows (printed under the keys /f16 and /bf16).
decode_bench() {
    batch=$1
    smol=${SMOL:-models/smollm2-135m-instruct}
    models=
    if [ -f "$smol/model.safetensors" ]; then
        models="smollm2=$smol"
    else
        echo "peers: SKIP decode of SmolLM2: $smol not present"
    fi
    model || return 1
    models="$models gpt2-124m=$MODEL"
    peer=1
    have_llamacpp || peer=0
    : >"$OUT"
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        echo "ROUND $r" >>"$OUT"
        for lm in $models; do
            label=${lm%%=*} dir=${lm#*=}
            for dt in f32 bf16 int8; do
                "$O/tests/bench_decode" --peer "$dir" "$NEW" "$THREADS" "$dt" "$batch" "$label" >"$OUT.c" || return 1
                grep '^RESULT' "$OUT.c" | tee -a "$OUT" | grep -q "/bf16 " &&
                    grep '^RESULT' "$OUT.c" | sed 's|/bf16 |/f16 |' >>"$OUT"
            done
            if [ "$peer" = 1 ]; then
                # the peer's best threading: its thread pool spins, which under load can be
                # far slower than one thread, so both are run and the better one counts
                for t in "$THREADS" 1; do
                    $PY tests/oracle/bench_llamacpp_decode.py --model "$dir" --label "$label" --out-dir "$WORK" \
                        --new "$NEW" --threads "$t" --batch "$batch" --dtypes f32,f16,bf16,q8_0 2>/dev/null |
                        grep '^RESULT' | tee -a "$OUT"
                done
            fi
        done
        r=$((r + 1))
    done
    rm -f "$OUT.c"
    load="no extra load"
    [ "$LOAD" = 1 ] && load="+1 spinning process"
    summary "$OUT" "decode B=$batch ($load)"
    echo "(16-bit rows: cherry --gen-dtype bf16 against llama.cpp's F16 GGUF (/f16) and BF16 GGUF (/bf16);"
    echo " /q8_0 rows: cherry --gen-dtype int8 against llama.cpp's Q8_0 GGUF)"
}

have_trl() {
    $PY -c 'import trl, torch, transformers, datasets' 2>/dev/null && return 0
    echo "peers: SKIP the TRL peer: python3 cannot import trl, torch, transformers and datasets" \
        "(pip install trl; see tests/bench/README.md)"
    return 1
}

# trl_summary FILE WHAT UNIT: per work, both sides' median rate and peak RSS, and the
# per-round ratios cherry/peer (rate: min and median; RSS: median).
trl_summary() {
    awk -v what="$2" -v unit="$3" '
    function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    function val(name,   i) { for (i = 6; i <= NF; i++) if (index($i, name "=") == 1) return substr($i, length(name) + 2) + 0; return -1 }
    /^ROUND/ { round = $2; next }
    /^RESULT/ {
        side = $2; work = $3 " " $4 " " $5; v = val(unit); m = val("rss_mib")
        if (!(work in seen)) { seen[work] = 1; order[++nw] = work }
        key = work SUBSEP round
        if (side == "cherry") { c[key] = v; cm[key] = m }
        else if (!(key in p) || v > p[key]) { p[key] = v; pm[key] = m }
        rounds[round] = 1
    }
    END {
        printf "%-22s %-40s %9s %9s %14s %8s %8s %9s\n", what, "work", "cherry", "peer", "ratio min/med", "RSS MiB", "peer", "RSS ratio"
        for (w = 1; w <= nw; w++) {
            nc = np = nr = 0; delete cs; delete ps; delete rs; delete cms; delete pms; delete ms
            for (r in rounds) {
                key = order[w] SUBSEP r
                if (key in c) { cs[++nc] = c[key]; cms[nc] = cm[key] }
                if (key in p) { ps[++np] = p[key]; pms[np] = pm[key] }
                if ((key in c) && (key in p)) { rs[++nr] = c[key] / p[key]; ms[nr] = cm[key] / pm[key]; mn = (nr == 1 || rs[nr] < mn) ? rs[nr] : mn }
            }
            if (nr == 0) { printf "%-22s %-40s %9s %9s %14s\n", "", order[w], nc ? median(cs, nc) : "-", np ? median(ps, np) : "-", nc ? "no peer" : "cherry has none"; continue }
            printf "%-22s %-40s %9.3f %9.3f %7.2fx %5.2fx %8.0f %8.0f %8.2fx\n", "", order[w], median(cs, nc), median(ps, np), mn, median(rs, nr), median(cms, nc), median(pms, np), median(ms, nr)
        }
        printf "(%s, medians over %d rounds; ratio = cherry/peer within a round)\n", unit, length(rounds)
    }' "$1"
}

trl_data() {
    [ -f "$WORK/trl/pairs.jsonl" ] && [ "$(wc -l <"$WORK/trl/pairs.jsonl")" -eq "$DPO_PAIRS" ] && return 0
    $PY tests/oracle/bench_trl_dpo.py --write-data "$WORK/trl" --pairs "$DPO_PAIRS"
}

trl_bench() { # dpo or sft, fp32 or bf16: cherry and TRL alternately on SmolLM2-135M
    kind=$1 dtype=$2
    smol=${SMOL:-models/smollm2-135m-instruct}
    if [ ! -f "$smol/model.safetensors" ]; then
        echo "peers: SKIP $kind: $smol not present"
        return 0
    fi
    peer=1
    have_trl || peer=0
    trl_data || return 1
    : >"$OUT"
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        echo "ROUND $r" >>"$OUT"
        if [ "$kind" = dpo ]; then
            cherry_results $PY tests/oracle/bench_trl_dpo.py --side cherry --mode both --bin "$BIN" --model "$smol" \
                --data "$WORK/trl" --threads "$THREADS" --dtype "$dtype" --cherry-flags="${DPO_CHERRY_FLAGS:-}" || return 1
        else
            cherry_results $PY tests/oracle/bench_trl_sft.py --side cherry --bin "$BIN" --model "$smol" \
                --data "$WORK/trl" --threads "$THREADS" --dtype "$dtype" || return 1
        fi
        if [ "$peer" = 1 ]; then
            for wp in $TRL_WAIT; do
                for mode in ref precompute; do
                    [ "$kind" = sft ] && [ "$mode" = precompute ] && continue
                    if [ "$kind" = dpo ]; then
                        set -- tests/oracle/bench_trl_dpo.py --side trl --mode "$mode"
                    else
                        set -- tests/oracle/bench_trl_sft.py --side trl
                    fi
                    if [ "$wp" = unset ]; then
                        env -u OMP_WAIT_POLICY $PY "$@" --model "$smol" --data "$WORK/trl" --threads "$THREADS" \
                            --dtype "$dtype" 2>/dev/null | grep '^RESULT' | tee -a "$OUT"
                    else
                        OMP_WAIT_POLICY=$wp $PY "$@" --model "$smol" --data "$WORK/trl" --threads "$THREADS" \
                            --dtype "$dtype" 2>/dev/null | grep '^RESULT' | tee -a "$OUT"
                    fi
                done
            done
        fi
        r=$((r + 1))
    done
    load="no extra load"
    [ "$LOAD" = 1 ] && load="+1 spinning process"
    if [ "$kind" = dpo ]; then
        trl_summary "$OUT" "dpo $dtype ($load)" pairs_per_s
    else
        trl_summary "$OUT" "sft $dtype ($load)" seqs_per_s
    fi
}

[ $# -eq 0 ] && set -- train
if [ "$LOAD" = 1 ]; then
    awk 'BEGIN { for (;;) ; }' &
    SPIN=$!
    echo "peers: LOAD=1, a spinning process (pid $SPIN) keeps one core busy"
fi
echo "peers: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of $STEPS steps"
# the ratios differ between machines (tests/bench/README.md, "The machine"): name this one
awk -F': ' '/^model name/ && !m { m = $2 } /^cpu family/ && !f { f = $2 } /^model\t/ && !n { n = $2 }
    /^flags/ && !x { x = 1; amx = / amx_bf16( |$)/ ? "AMX" : "no AMX"; bf = / avx512_bf16( |$)/ ? "AVX512-BF16" : "no AVX512-BF16" }
    END { if (m != "") printf "peers: CPU %s, family %s model %s, %s, %s\n", m, f, n, bf, amx }' /proc/cpuinfo
echo "peers: PyTorch and TRL peers run with THP_MEM_ALLOC_ENABLE=$THP_MEM_ALLOC_ENABLE (2 MiB pages, as cherry asks for its large buffers)"
for what in "$@"; do
    case $what in
    train) train fp32 || exit 1 ;;
    train-bf16) train bf16 || exit 1 ;;
    decode) decode_bench 1 || exit 1 ;;
    decode16) decode_bench 16 || exit 1 ;;
    dpo) trl_bench dpo fp32 || exit 1 ;;
    dpo-bf16) trl_bench dpo bf16 || exit 1 ;;
    sft) trl_bench sft fp32 || exit 1 ;;
    sft-bf16) trl_bench sft bf16 || exit 1 ;;
    *) echo "peers: unknown bench '$what' (train, train-bf16, decode, decode16, dpo, dpo-bf16, sft, sft-bf16)" >&2; exit 64 ;;
    esac
done
