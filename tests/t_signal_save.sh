#!/bin/sh
# t_signal_save.sh — a second SIGINT during the final save never costs a checkpoint.
# The final model used to be written by moving OUT/checkpoint-*/ into a temporary
# directory that replaced OUT; a second signal then ran the cleanup, which removed
# the temporary and the checkpoints in it.  Now the final model goes into OUT file
# by file with the signals held (checkpoint.c save_final_root).  An LD_PRELOAD shim
# (tests/preload_rename_signal.c) sends SIGINT twice at the two dangerous moments:
#   1. right after a checkpoint directory is renamed into a temporary (the old
#      scheme; never happens now),
#   2. right after the first file of the final model is renamed into OUT (the new
#      scheme: the signals are held until every file is in place, and the two
#      pending SIGINTs arrive as one, after the commit).
# Either way: every checkpoint still in OUT, no temporaries left behind, and in
# case 2 a complete final model that loads.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_signal_save.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || { echo "skipped: no C compiler for the LD_PRELOAD shim"; exit 77; }
$CC -shared -fPIC -o "$T/shim.so" tests/preload_rename_signal.c -ldl || { echo "FAIL: cannot build the shim"; exit 1; }

"$B/init-model" -q --family gpt2 --layers 1 --heads 2 --width 16 --context 32 \
    --tokenizer data/tokenizer.json --seed 4 -o "$T/init" || fail "init-model"
"$B/task-gen" --kind sft -n 8 --seed 9 -o "$T/data.jsonl" || fail "task-gen"

run() { # NAME SHIM-VARIABLE=VALUE
    LD_PRELOAD="$T/shim.so" env "$2" "$B/sft" -q -m "$T/init" --max-length 32 --batch-size 4 --max-steps 4 \
        --save-every 2 -o "$T/$1" "$T/data.jsonl" 2>"$T/$1.err"
}
run old SHIM_TO_BASE=checkpoint-; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 130 ] || fail "case 1: exit $rc: $(cat "$T/old.err")"
[ -f "$T/old/checkpoint-2/trainer_state.json" ] || fail "case 1: checkpoint-2 lost (OUT holds: $(ls -A "$T/old" 2>&1))"
ls -A "$T" | grep -q '\.tmp-' && fail "case 1: temporaries left: $(ls -A "$T")"

run new SHIM_FROM_DIR=.new.tmp-; rc=$?
grep -q "shim: SIGINT twice" "$T/new.err" || fail "case 2: the shim never fired ($(cat "$T/new.err"))"
[ $rc -eq 0 ] || [ $rc -eq 130 ] || fail "case 2: expected exit 0 or 130, got $rc: $(cat "$T/new.err")"
[ -f "$T/new/checkpoint-2/trainer_state.json" ] || fail "case 2: checkpoint-2 lost (OUT holds: $(ls -A "$T/new" 2>&1))"
"$B/model-info" "$T/new" >/dev/null 2>"$T/info.err" || fail "case 2: the final model is incomplete: $(cat "$T/info.err")"
ls -A "$T/new" | grep -q '\.tmp-' && fail "case 2: temporaries left in OUT: $(ls -A "$T/new")"
[ $fails -eq 0 ] && echo "t_signal_save: all checks passed"
[ $fails -eq 0 ]
