#!/bin/sh
# t_stdout_errors.sh — a write error on stdout is never exit 0: every program checks
# the flush and close of stdout at exit (cli.h cli_init) and reports
# "PROG: <stdout>: write error: ..." with exit 74 — for --help, --version and data
# alike (score, rank2pairs, import-gguf --list, tokenize), all into /dev/full.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_stdout_errors.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
[ -c /dev/full ] || { echo "skipped: no /dev/full"; exit 77; }
F=tests/oracle/fixtures
full() { # WHAT CMD... : CMD >/dev/full must exit 74 with a message
    what=$1; shift
    "$@" >/dev/full 2>"$T/err"; rc=$?
    [ $rc -eq 74 ] || fail "$what >/dev/full: expected exit 74, got $rc ($(cat "$T/err"))"
    grep -q "write error" "$T/err" || fail "$what >/dev/full: no message: $(cat "$T/err")"
}
for p in annotate coh-format dpo eval import-gguf init-model logprobs model-info ppo rank2pairs rm-train \
         rollout score sft task-gen task-reward tokenize; do
    full "$p --help" "$B/$p" --help
    full "$p --version" "$B/$p" --version
done
printf '%s\n' '{"prompt": "a", "chosen": " b", "rejected": " c"}' >"$T/pairs.jsonl"
full "score" "$B/score" --threads 1 -m $F/pref-gpt2-rm "$T/pairs.jsonl"
full "rank2pairs" "$B/rank2pairs" -q tests/data/argilla/a2_nested.jsonl
full "import-gguf --list" "$B/import-gguf" --list $F/gguf-tiny/tiny.gguf
echo "hello world" | full "tokenize" "$B/tokenize" -t data/tokenizer.json
# a closed pipe is not reported as an error message (as SIGPIPE would have been)
"$B/task-gen" --kind sft -n 20000 2>"$T/err" | head -1 >/dev/null
[ -s "$T/err" ] && fail "task-gen | head: unexpected message: $(cat "$T/err")"
[ $fails -eq 0 ] && echo "t_stdout_errors: all checks passed"
[ $fails -eq 0 ]
