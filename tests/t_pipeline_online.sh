#!/bin/sh
# t_pipeline_online.sh — `make pipeline-online FAST=1` end to end in a temporary RUNS
# directory: one serve on a loopback port, simulated users chatting over HTTP with
# noisy thumbs and rankings, feedback -> pairs and KTO records, reward model and
# policy updates (round 1 iterative DPO, round 2 KTO), hot reload between rounds.
# Asserts: the gold score on held-out prompts rises over the SFT model in every
# round and ends higher than it started, each round served a new model version
# (the users of round 2 talked to round 1's policy), feedback was collected and
# logged, the report and the gold plot exist, and a re-run resumes (no round redone).
B="${BIN:-bin}"
OUT="${O:-build}"
T=$(mktemp -d /tmp/t_pipeline_online.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
for p in init-model task-gen sft rollout annotate rank2pairs rm-train dpo logprobs eval serve simulate-users feedback; do
  [ -x "$B/$p" ] || { echo "skip: $B/$p is not built"; exit 77; }
done
for c in jq curl gnuplot; do command -v $c >/dev/null 2>&1 || { echo "skip: $c is not installed"; exit 77; }; done

pmake() { MAKEFLAGS= MFLAGS= MAKELEVEL= make --no-print-directory BIN="$B" O="$OUT" RUNS="$T/runs" FAST=1 SEED=1 \
  MODEL= DATA= "$@"; }
start=$(date +%s)
pmake pipeline-online ROUNDS=2 ONLINE_ALIGNS="dpo kto" >"$T/log" 2>&1 || { fail "make pipeline-online: exit $?"; tail -n 30 "$T/log"; }
echo "pipeline-online FAST=1 ROUNDS=2: $(($(date +%s) - start)) s"
R="$T/runs/online"
[ -f "$R/report.json" ] && [ -f "$R/report.md" ] || { echo "FAIL: no report"; tail -n 30 "$T/log"; exit 1; }
[ -s "$R/gold.png" ] || fail "no gold.png"
jq -r '.rounds[] | "round \(.round) \(.align): gold \(.gold)"' "$R/report.json"
g0=$(jq '.rounds[0].gold' "$R/report.json")
g1=$(jq '.rounds[1].gold' "$R/report.json")
g2=$(jq '.rounds[2].gold' "$R/report.json")
check "$g0" "$g1" 'b > a + 0.1' "round 1 (dpo) did not raise gold over SFT by 0.1"
check "$g0" "$g2" 'b > a + 0.1' "round 2 (kto) did not stay 0.1 above SFT"
[ "$(jq '.rounds | length' "$R/report.json")" -eq 3 ] || fail "expected rounds 0..2 in the report"
jq -e '.rounds[1:] | all(.thumbs_up + .thumbs_down == 256 and .rankings == 64 and .pairs > 0 and .kto_records == 256)' \
  "$R/report.json" >/dev/null || fail "feedback counts: $(jq -c '.rounds' "$R/report.json")"
# the users of each round talked to a different model version, the one reloaded before
jq -r '.model_version' "$R/interactions.jsonl" | uniq >"$T/versions"
[ "$(wc -l <"$T/versions")" -eq 2 ] || fail "expected 2 served versions, got: $(cat "$T/versions")"
[ "$(sed -n 2p "$T/versions")" = "$(jq -r .model_version "$R/round-1/reload.json")" ] ||
  fail "round 2 was not served by round 1's policy"
[ "$(wc -l <"$R/feedback.jsonl")" -eq 640 ] || fail "expected 640 feedback records, got $(wc -l <"$R/feedback.jsonl")"
# resume: nothing is redone
m=$(stat -c %Y "$R/round-2/policy/config.json")
sleep 1
pmake pipeline-online ROUNDS=2 ONLINE_ALIGNS="dpo kto" >"$T/log2" 2>&1 || fail "re-run: exit $?"
[ "$(stat -c %Y "$R/round-2/policy/config.json")" = "$m" ] || fail "the re-run redid round 2"
[ $fails -eq 0 ]
