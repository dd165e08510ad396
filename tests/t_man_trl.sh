#!/bin/sh
# t_man_trl.sh — the option tables of the manual are complete: every long option a
# trainer (sft, dpo, rm-train, ppo) prints in --help has a row in cherry-trl(7)
# (its TRL name), every shared training option is described in cherry-training(7),
# and each trainer's page refers to cherry-training(7).  Both pages format with
# man/groff without errors when groff is there.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_man_trl.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
TRL=man/man7/cherry-trl.7
TRAIN=man/man7/cherry-training.7
for p in sft dpo rm-train ppo; do
  [ -x "$B/$p" ] || { echo "skip: $B/$p is not built"; exit 77; }
done
for p in sft dpo rm-train ppo; do
  "$B/$p" --help >"$T/$p.help" || fail "$p --help: exit $?"
  n=0
  for o in $(grep -o -- '--[a-z][a-z0-9-]*' "$T/$p.help" | sort -u); do
    n=$((n + 1))
    m=$(echo "$o" | sed 's/-/\\\\-/g') # --lr-scheduler -> \-\-lr\-scheduler as groff source writes it
    grep -q -- "$m" "$TRL" || fail "$p: option $o has no row in $TRL"
  done
  [ $n -ge 10 ] || fail "$p: only $n options found in --help"
  grep -q 'cherry\\-training (7)' "man/man1/$p.1" || fail "man/man1/$p.1 does not refer to cherry-training(7)"
done
# the shared block of --help (after "Training options") is cherry-training(7)'s
sed -n '/^Training options/,$p' "$T/sft.help" | grep -o -- '--[a-z][a-z0-9-]*' | sort -u >"$T/shared"
[ "$(wc -l <"$T/shared")" -ge 25 ] || fail "sft --help: expected >= 25 shared options, got $(wc -l <"$T/shared")"
for o in $(cat "$T/shared"); do
  m=$(echo "$o" | sed 's/-/\\\\-/g')
  grep -q -- "$m" "$TRAIN" || fail "shared option $o is not described in $TRAIN"
done
if command -v groff >/dev/null 2>&1; then
  for f in "$TRL" "$TRAIN"; do
    groff -t -man -Tutf8 -ww -z "$f" 2>"$T/groff" || fail "$f: groff exit $?"
    grep -q 'error' "$T/groff" && fail "$f: groff: $(cat "$T/groff")"
  done
fi
[ $fails -eq 0 ] && echo "TRL names and shared options: complete"
[ $fails -eq 0 ]
