#!/bin/sh
# t_readme.sh — README.md runs as written.  tests/readme_blocks.awk extracts every
# shell command block of README.md; they run in order, in one bash (-e, pipefail:
# any failing command fails the test, and variables carry from block to block), in a
# scratch directory that looks like a checkout: Makefile, pipelines/, data/, the
# built bin/ and, when make check has fetched it, models/.  Nothing is written into
# the checkout.
#
# Sizes: the pipelines run with FAST=1 and the smaller sizes below (exported, so the
# Makefile's `?=` defaults give way; RUNS=runs so the paths the README names,
# runs/base/sft ..., are the ones made).  The commands themselves are run exactly as
# the README prints them.  A block preceded by `<!-- readme-test: skip (why) -->` is
# not run (the reason is printed); one preceded by `<!-- readme-test: needs PATH -->`
# runs only when PATH exists in the checkout.
#
# After the blocks: the hand-run DPO example must raise the gold score (the README
# says it does), and the files the README names must be there.
B=${BIN:-bin}
root=$(pwd)
T=$(mktemp -d /tmp/t_readme.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

command -v bash >/dev/null 2>&1 || { echo "skip: bash is not installed (the blocks run with pipefail)"; exit 77; }
command -v gnuplot >/dev/null 2>&1 || { echo "skip: gnuplot is not installed (pipeline reports)"; exit 77; }
for p in init-model task-gen sft rollout annotate rank2pairs logprobs rm-train dpo ppo coh-format cherry-eval score \
    task-reward model-info; do
  [ -x "$B/$p" ] || { echo "skip: $B/$p is not built"; exit 77; }
done

awk -f tests/readme_blocks.awk README.md >"$T/blocks.sh" || { echo "FAIL: readme_blocks.awk: exit $?"; exit 1; }
nblocks=$(grep -c '^if readme_block ' "$T/blocks.sh")
[ "$nblocks" -ge 8 ] || fail "expected at least 8 command blocks in README.md, found $nblocks"

W="$T/work"
mkdir -p "$W"
ln -s "$root/Makefile" "$root/pipelines" "$root/data" "$root/tests" "$W/"  # tests/: the README's sample files
for mk in "$root"/*.mk; do [ -e "$mk" ] && ln -s "$mk" "$W/"; done  # included by the Makefile
ln -s "$(cd "$B" && pwd)" "$W/bin"
[ -d "$root/models" ] && ln -s "$(cd "$root/models" && pwd)" "$W/models"

cat >"$T/prelude.sh" <<'EOF'
cur="(none yet)"
readme_block() {
  cur="$1 (README.md line $2)"
  case $3 in
    skip) echo "== block $cur: not run: $4"; return 1 ;;
    needs)
      if [ ! -e "$README_ROOT/$4" ]; then echo "== block $cur: not run: needs $4, absent"; return 1; fi ;;
  esac
  echo "== block $cur"
  started=$(date +%s)
  set -x
}
readme_block_end() { { set +x; } 2>/dev/null; echo "== block $cur: ok ($(($(date +%s) - started)) s)"; }
trap 'rc=$?; { set +x; } 2>/dev/null; [ $rc -eq 0 ] || echo "FAIL: README.md block $cur: a command exited $rc"' EXIT
EOF

start=$(date +%s)
# the FAST sizes, smaller still (the numbers the pipelines reach are t_pipeline_fast.sh's job);
# 96 held-out prompts, so the hand-run DPO check below is not at the mercy of a few samples
(cd "$W" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u O -u MODEL -u DATA -u ALIGN \
  README_ROOT="$root" BIN=bin FAST=1 RUNS=runs SEED=1 THREADS=2 \
  SFT_N=1000 SFT_STEPS=300 ROLL_PROMPTS=48 EVAL_PROMPTS=96 ALIGN_STEPS=30 COH_STEPS=60 NUM_CAND=4 \
  EVAL_SAMPLES=2 bash -e -o pipefail -c ". '$T/prelude.sh'; . '$T/blocks.sh'") >"$T/log" 2>&1
rc=$?
grep '^== block\|^FAIL' "$T/log"
if [ $rc -ne 0 ]; then
  fail "README.md blocks: exit $rc"
  echo "--- the end of the output:"
  tail -n 40 "$T/log"
fi
echo "README blocks: $(($(date +%s) - start)) s"

if [ $rc -eq 0 ]; then
  # what the README says the blocks make
  for f in runs/dpo/report.md runs/ppo/report.md runs/rso/report.md scored.jsonl pairs.jsonl my-dpo/config.json \
      my-report/report.json rm/config.json ppo-policy/config.json grpo-policy/config.json argilla-pairs.jsonl; do
    [ -s "$W/$f" ] || fail "README: $f was not made"
  done
  # the hand-run DPO example visibly improves the SFT model
  r="$W/my-report/report.json"
  before=$(sed -n 's/^ *"gold_before": *\([-0-9.eE+]*\),*$/\1/p' "$r")
  after=$(sed -n 's/^ *"gold_after": *\([-0-9.eE+]*\),*$/\1/p' "$r")
  echo "hand-run DPO: gold $before -> $after"
  check "$after" "$before" "a >= b + 0.1" "hand-run DPO example: gold should rise by >= 0.1"
fi
[ $fails -eq 0 ]
