#!/bin/sh
# t_fuzz.sh — the libFuzzer harnesses (tests/fuzz/, fuzz.mk): for each harness,
#   1. replay every minimised crash in tests/fuzz/regress/NAME/ (each must now pass);
#   2. fuzz for FUZZ_SECONDS (make check: FUZZ_CHECK_SECONDS, default 2) starting
#      from the committed seed corpus tests/fuzz/corpus/NAME/.
# Any crash, leak, sanitizer report, timeout (10 s per input) or out-of-memory
# (2 GB) fails the test; the input is left as FUZZ_KEEP/crashes/NAME-* (make fuzz)
# or printed (make check).  Prints the executions per harness.
# Usage: sh tests/t_fuzz.sh [HARNESS...]   (default: $O/fuzz/fuzz_*)
O=${O:-build}
SECS=${FUZZ_SECONDS:-${FUZZ_CHECK_SECONDS:-2}}
[ $# -gt 0 ] || set -- "$O"/fuzz/fuzz_*
[ -x "$1" ] || { echo "skipped: no fuzz harnesses built (make $O/fuzz/fuzz_safetensors ...)"; exit 77; }
T=$(mktemp -d /tmp/t_fuzz.XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0 total=0
for h in "$@"; do
    name=$(basename "$h" | sed 's/^fuzz_//')
    seeds=tests/fuzz/corpus/$name
    [ -d "$seeds" ] || { echo "FAIL: $name: no seed corpus $seeds"; fails=$((fails + 1)); continue; }
    if [ -n "$FUZZ_KEEP" ]; then
        work=$FUZZ_KEEP/corpus/$name crashes=$FUZZ_KEEP/crashes
    else
        work=$T/corpus/$name crashes=$T/crashes
    fi
    mkdir -p "$work" "$crashes" "$T/tmp"
    # 1. regressions: each file is run once
    if [ -d tests/fuzz/regress/$name ] && [ -n "$(ls tests/fuzz/regress/$name)" ]; then
        if ! TMPDIR=$T/tmp "$h" tests/fuzz/regress/$name/* >"$T/log" 2>&1; then
            echo "FAIL: $name: a regression input crashes again:"; tail -n 30 "$T/log"
            fails=$((fails + 1))
            continue
        fi
        echo "$name: $(ls tests/fuzz/regress/$name | wc -l) regression input(s) pass"
    fi
    # 2. fuzzing from the seeds
    if ! TMPDIR=$T/tmp "$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
            -print_final_stats=1 -artifact_prefix="$crashes/$name-" "$work" "$seeds" >"$T/log" 2>&1; then
        echo "FAIL: $name: crash after fuzzing (input in $crashes/$name-*):"
        grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written|^#0|^    #[0-9]" "$T/log" | head -n 30
        if [ -z "$FUZZ_KEEP" ]; then
            for c in "$crashes"/$name-*; do [ -f "$c" ] && { echo "input (base64):"; base64 "$c" | head -c 2000; echo; }; done
        fi
        fails=$((fails + 1))
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$T/log")
    total=$((total + ${runs:-0}))
    echo "$name: ${runs:-?} executions in ${SECS}s, corpus $(ls "$work" | wc -l) new + $(ls "$seeds" | wc -l) seeds"
    rm -rf "$T/tmp"/*
done
echo "fuzz: $total executions in total"
[ $fails -eq 0 ]
