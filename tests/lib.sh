# lib.sh — helpers shared by the shell tests (tests/t_*.sh source it after setting T,
# their temporary directory).  A test calls fail for every broken expectation and
# ends with `[ $fails -eq 0 ]`, so one run reports every failure, not just the first.
fails=0
# fail MESSAGE : count a failure and say what was expected and what came.
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_fail WHAT CODE NEEDLE CMD... : the command must exit CODE and say NEEDLE on stderr.
expect_fail() {
  what=$1 code=$2 needle=$3; shift 3
  "$@" >"$T/out" 2>"$T/err"; rc=$?
  [ "$rc" -eq "$code" ] || fail "$what: expected exit $code, got $rc ($(cat "$T/err"))"
  grep -qF -- "$needle" "$T/err" || fail "$what: expected '$needle' on stderr, got: $(cat "$T/err")"
}
# num FIELD LINE FILE : the number in "FIELD": x on line LINE of FILE
num() { sed -n "$2p" "$3" | grep -o "\"$1\": *[-+0-9.eE]*" | head -1 | sed 's/^.*: *//'; }
# check A B AWK-CONDITION WHAT : fails unless the condition on a, b holds
check() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" "BEGIN { exit !($3) }" || fail "$4 (a=$1 b=$2)"; }
# tiny_models N : $T/llama (GQA) and $T/gpt2 from init-model, the oracle models' two
# families at toy size (2 layers, width 32, context 64), and $T/corpus.jsonl of N
# task-gen records; exits the test on failure.  Uses $B (the programs' directory).
tiny_models() {
  "$B/init-model" -q --family llama --layers 2 --heads 4 --kv-heads 2 --width 32 --context 64 \
      --tokenizer data/tokenizer.json --seed 3 -o "$T/llama" || { echo "FAIL: init-model llama"; exit 1; }
  "$B/init-model" -q --family gpt2 --layers 2 --heads 4 --width 32 --context 64 \
      --tokenizer data/tokenizer.json --seed 4 -o "$T/gpt2" || { echo "FAIL: init-model gpt2"; exit 1; }
  "$B/task-gen" --kind corpus -n "$1" --seed 5 -o "$T/corpus.jsonl" || { echo "FAIL: task-gen"; exit 1; }
}
