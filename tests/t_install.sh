#!/bin/sh
# t_install.sh — make install puts every program and man page in place under the
# names that work from a shell: tools/cherry-eval.c is installed as cherry-eval (a program
# called eval would be hidden by the shell's built-in eval), with its man page
# cherry-eval(1); no bin/eval is installed; the man7 pages come along.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_install.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
[ -x "$B/cherry-eval" ] || { echo "skip: $B/cherry-eval is not built"; exit 77; }
MAKEFLAGS= MFLAGS= MAKELEVEL= make --no-print-directory -s install BIN="$B" O="${O:-build}" DESTDIR="$T" \
  PREFIX=/usr >"$T/log" 2>&1 || { fail "make install: exit $?"; cat "$T/log"; }
I="$T/usr"
for p in sft dpo rm-train ppo rollout rank2pairs cherry-eval; do
  [ -x "$I/bin/$p" ] || fail "bin/$p not installed"
done
[ -e "$I/bin/eval" ] && fail "bin/eval installed (the shell's eval would hide it)"
"$I/bin/cherry-eval" --help | grep -q '^Usage: cherry-eval' || fail "cherry-eval --help: $("$I/bin/cherry-eval" --help 2>&1 | head -1)"
for m in man1/cherry-eval.1 man1/dpo.1 man7/cherry-training.7 man7/cherry-trl.7; do
  [ -f "$I/share/man/$m" ] || fail "$m not installed"
done
[ -e "$I/share/man/man1/eval.1" ] && fail "man1/eval.1 installed"
n=$(ls tools/*.c | wc -l)
[ "$(ls "$I/bin" | wc -l)" -eq "$n" ] || fail "expected $n programs installed, got $(ls "$I/bin" | wc -l)"
[ $fails -eq 0 ] && echo "install: $(ls "$I/bin" | wc -l) programs, cherry-eval for eval"
[ $fails -eq 0 ]
