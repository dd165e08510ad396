#!/bin/sh
# t_cli_common.sh — the command-line conventions every program shares (common/base/cli.c:
# cli_common_option, cli_no_operands, cli_one_file): --help is the usage on stdout and
# exit 0, --version "PROG (cherry) X", an unknown option "PROG: unknown option" plus
# "Try 'PROG --help'." and exit 64 (also after -q), and the operand checks of the
# programs that take none or at most one file.  No model is loaded: usage errors
# come first.
B="${BIN:-bin}"
T=$(mktemp -d /tmp/t_cli_common.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

n=0
for p in annotate coh-format dpo eval export-gguf feedback import-gguf init-model logprobs model-info ppo \
  rank2pairs rm-train rollout score serve sft simulate-users task-gen task-reward tokenize; do
  [ -x "$B/$p" ] || { fail "$B/$p not built"; continue; }
  n=$((n + 1))
  name=$p
  [ "$p" = eval ] && name=cherry-eval # installed under that name (eval is a shell builtin)
  "$B/$p" --help >"$T/help" 2>"$T/err" || fail "$p --help: exit $?"
  grep -q "^Usage: $name" "$T/help" || fail "$p --help: no 'Usage: $name' line on stdout"
  [ -s "$T/err" ] && fail "$p --help: wrote to stderr: $(cat "$T/err")"
  "$B/$p" --version >"$T/ver" || fail "$p --version: exit $?"
  grep -q "^$name (cherry) " "$T/ver" || fail "$p --version: got $(cat "$T/ver")"
  expect_fail "$p --bogus" 64 "Try '$name --help'." "$B/$p" --bogus
done
# the programs whose switch ends in cli_common_option: its exact message, -q or not
for p in annotate coh-format eval export-gguf feedback import-gguf init-model model-info rank2pairs rollout serve \
  simulate-users task-gen task-reward tokenize; do
  name=$p
  [ "$p" = eval ] && name=cherry-eval
  expect_fail "$p --bogus" 64 "$name: unknown option" "$B/$p" --bogus
  expect_fail "$p -q --bogus" 64 "$name: unknown option" "$B/$p" -q --bogus
done
expect_fail "init-model with an operand" 64 "init-model: unexpected argument 'extra'" "$B/init-model" extra
expect_fail "task-gen with an operand" 64 "task-gen: unexpected argument 'extra'" "$B/task-gen" extra
expect_fail "serve with an operand" 64 "serve: unexpected argument 'extra'" "$B/serve" -m x extra
expect_fail "annotate with two files" 64 "annotate: at most one input file" "$B/annotate" a b
expect_fail "task-reward with two files" 64 "task-reward: at most one input file" "$B/task-reward" a b
expect_fail "rollout with two files" 64 "rollout: at most one prompts file" "$B/rollout" -m x a b
expect_fail "simulate-users with two files" 64 "simulate-users: at most one prompts file" "$B/simulate-users" --url http://127.0.0.1:1 a b

[ $fails -eq 0 ] || { echo "$fails checks failed"; exit 1; }
echo "cli conventions: $n programs checked"
