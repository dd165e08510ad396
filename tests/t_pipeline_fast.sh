#!/bin/sh
# t_pipeline_fast.sh — the fast variant (FAST=1) of every alignment pipeline of
# pipelines/*.mk, end to end on the bundled task, into a temporary RUNS directory:
#   - each pipeline writes report.json (gold_before, gold_after), report.md and the
#     loss and reward curves as PNG;
#   - each raises the gold score on held-out prompts over the SFT model by at least
#     its threshold below (measured values in the comments; the margin is for the
#     numerical noise between machines, the run itself is seeded);
#   - ALIGN=... make pipeline swaps only the alignment stage: runs/base/ is built
#     once and reused (base/sft/config.json keeps its mtime, and make has nothing to
#     do for a finished pipeline);
#   - ARGILLA=1 makes the simulated annotators write an Argilla 1.x export, which
#     goes through rank2pairs into pairs that prefer the better answer, as the 2.x
#     export's do;
#   - MODEL= and DATA= replace the bundled model and data (dry run).
B="${BIN:-bin}"
OUT="${O:-build}"
T=$(mktemp -d /tmp/t_pipeline_fast.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

for p in init-model task-gen sft rollout annotate rank2pairs logprobs rm-train dpo ppo coh-format eval task-reward; do
  [ -x "$B/$p" ] || { echo "skip: $B/$p is not built"; exit 77; }
done
command -v gnuplot >/dev/null 2>&1 || { echo "skip: gnuplot is not installed (report curves)"; exit 77; }

# a make of our own: no jobserver or variables from a calling make
pmake() { MAKEFLAGS= MFLAGS= MAKELEVEL= make --no-print-directory BIN="$B" O="$OUT" RUNS="$T/runs" FAST=1 SEED=1 \
  MODEL= DATA= ARGILLA=2 "$@"; }

# a number from report.json ("  \"key\": 0.5," — eval writes one key per line)
jnum() { sed -n "s/^ *\"$2\": *\([-0-9.eE+]*\),*$/\1/p" "$1" | head -n 1; }

# 1. the first pipeline builds runs/base/
start=$(date +%s)
pmake ALIGN=dpo pipeline >"$T/dpo.log" 2>&1 || { fail "make ALIGN=dpo pipeline: exit $?"; tail -n 20 "$T/dpo.log"; }
sft="$T/runs/base/sft/config.json"
[ -f "$sft" ] || { echo "FAIL: $sft missing after the first pipeline"; exit 1; }
stamp=$(stat -c %Y "$sft")
sleep 1 # so a rebuilt SFT model would get a different mtime

# 2. the other alignment stages swap in after it (ALIGN from the environment, as documented)
for a in ppo grpo rloo coh rso; do
  ALIGN=$a pmake pipeline >"$T/$a.log" 2>&1 || { fail "ALIGN=$a make pipeline: exit $?"; tail -n 20 "$T/$a.log"; }
done
[ "$(stat -c %Y "$sft")" = "$stamp" ] || fail "runs/base/sft was rebuilt by a later pipeline (mtime changed)"
for a in ppo grpo rloo coh rso; do
  grep -q "/sft -m .* -o $T/runs/base/sft " "$T/$a.log" && fail "ALIGN=$a retrained the SFT model"
  grep -q "/annotate " "$T/$a.log" && fail "ALIGN=$a re-ran the annotators"
done
# a finished pipeline has nothing left to do
pmake -q "$T/runs/dpo/report.json" "$T/runs/rso/report.json" || fail "make -q: finished reports are out of date"
echo "six fast pipelines: $(($(date +%s) - start)) s"

# 3. reports, curves, and the gold score going up.  Measured gold gains (FAST=1,
#    64 held-out prompts x 4 samples; SEED=1, the one tested, then SEED=2):
#    dpo +0.531/+0.477, ppo +0.383/+0.301, grpo +0.477/+0.395, rloo +0.340/+0.355,
#    coh +0.359/+0.395, rso +0.312/+0.270 (the full variants: +0.35..+0.57).
for pair in dpo:0.3 ppo:0.2 grpo:0.25 rloo:0.2 coh:0.15 rso:0.15; do
  a=${pair%%:*} min=${pair#*:}
  r="$T/runs/$a/report.json"
  [ -s "$r" ] || { fail "$a: no report.json"; continue; }
  for f in report.md loss.png reward.png; do
    [ -s "$T/runs/$a/$f" ] || fail "$a: no $f"
  done
  grep -q "loss.png" "$T/runs/$a/report.md" || fail "$a: report.md does not show loss.png"
  [ "$a" = coh ] && { grep -q "is not the KL of two models on the same input" "$T/runs/coh/report.md" ||
    fail "coh: report.md does not explain its KL figure (the prefix only the aligned model sees)"; }
  before=$(jnum "$r" gold_before) after=$(jnum "$r" gold_after)
  if [ -z "$before" ] || [ -z "$after" ]; then
    fail "$a: report.json lacks gold_before/gold_after"
    continue
  fi
  echo "$a: gold $before -> $after (needed: +$min)"
  awk -v b="$before" -v a="$after" -v m="$min" 'BEGIN { exit !(b >= 0 && b <= 1 && a >= 0 && a <= 1 && a - b >= m) }' ||
    fail "$a: expected gold_after - gold_before >= $min, got $before -> $after"
done

# 4. ARGILLA=1: the same candidates annotated into an Argilla 1.x export go through
#    rank2pairs as a human 1.x export would.  The pairs need not equal the 2.x ones
#    (a 1.x ranking can hold ties, a 2.x ranking is a strict order), but with 10 %
#    noise nearly all of them must prefer the better answer by the task's rule
#    (scored by task-reward: 2/3 for the right words, 1/3 for the polite closing).
mkdir -p "$T/v1/base"
cp -pr "$T/runs/base/sft" "$T/runs/base/init" "$T/runs/base/sft.jsonl" "$T/runs/base/prompts.jsonl" \
  "$T/runs/base/candidates.jsonl" "$T/v1/base/"
pmake RUNS="$T/v1" ARGILLA=1 "$T/v1/base/pairs.jsonl" >"$T/v1.log" 2>&1 || { fail "ARGILLA=1: exit $?"; tail -n 20 "$T/v1.log"; }
grep -q "/rollout \|/sft " "$T/v1.log" && fail "ARGILLA=1: re-ran stages before the annotators"
grep -q "read as argilla1" "$T/v1.log" || fail "ARGILLA=1: rank2pairs did not read an Argilla 1.x export: $(grep rank2pairs "$T/v1.log")"
e1="$T/v1/base/argilla-export.jsonl" e2="$T/runs/base/argilla-export.jsonl"
head -n 1 "$e1" | grep -q '^{"prompt":.*"ranking":\[{"user_id":"annotator-1","value":{"rank":\[' ||
  fail "ARGILLA=1: not an Argilla 1.x record: $(head -c 300 "$e1")"
head -n 1 "$e2" | grep -q '"responses":{"ranking":\[' || fail "default export: not Argilla 2.x: $(head -c 300 "$e2")"
S='"\(\([^"\\]\|\\.\)*\)"'
for v in v1/base runs/base; do
  pairs="$T/$v/pairs.jsonl"
  n=$(wc -l <"$pairs")
  sed "s/\"chosen\":$S,\"rejected\":$S/\"completion\":\"\1\"/" "$pairs" | "$B/task-reward" >"$T/rc" || fail "$v: task-reward on chosen"
  sed "s/\"chosen\":$S,\"rejected\":$S/\"completion\":\"\3\"/" "$pairs" | "$B/task-reward" >"$T/rr" || fail "$v: task-reward on rejected"
  right=$(paste "$T/rc" "$T/rr" | awk '$1 > $2 { k++ } END { print k + 0 }')
  echo "$v: $right of $n pairs prefer the better answer"
  [ "$n" -ge 50 ] && [ $((right * 100)) -ge $((n * 80)) ] || fail "$v: expected >= 80 % of >= 50 pairs right, got $right of $n"
done
# 5. MODEL= and DATA= put the user's model and prompts in place of the bundled ones
#    (a dry run: the stages themselves were run above)
mkdir -p "$T/data"
cp "$T/runs/base/sft.jsonl" "$T/runs/base/prompts.jsonl" "$T/runs/base/eval-prompts.jsonl" "$T/data/"
pmake -n RUNS="$T/own" MODEL="$T/runs/base/init" DATA="$T/data" pipeline-dpo >"$T/own.log" 2>&1 || fail "MODEL/DATA dry run: exit $?"
grep -q "init-model\|task-gen" "$T/own.log" && fail "MODEL/DATA: still builds the bundled model or data"
grep -q "/sft -m $T/runs/base/init -o $T/own/base/sft $T/own/base/sft.jsonl" "$T/own.log" ||
  fail "MODEL/DATA: sft does not start from MODEL on DATA's sft.jsonl: $(grep /sft "$T/own.log")"
for f in sft prompts eval-prompts; do
  grep -q "cp $T/data/$f.jsonl $T/own/base/$f.jsonl" "$T/own.log" || fail "MODEL/DATA: $f.jsonl not taken from DATA"
done

[ $fails -eq 0 ] && echo "all pipeline checks passed"
[ $fails -eq 0 ]
