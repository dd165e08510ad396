#!/bin/sh
# reward_lowid.sh — a reward program for ppo(1)'s toy task (tests/t_ppo.sh): reads
# rollout JSONL lines on stdin and answers, one line each, the fraction of the
# completion's token ids below LIMIT (default 100: the single-byte tokens of the test
# tokenizer).  Flushes every answer, as the protocol requires; mawk needs
# -W interactive to read its input line by line.
LIMIT=${1:-100}
if awk -W version 2>/dev/null | grep -q mawk; then AWK="awk -W interactive"; else AWK=awk; fi
exec $AWK -v limit="$LIMIT" '{
  s = $0
  if (!sub(/.*"completion_ids":\[/, "", s)) { print "no completion_ids"; fflush(); next }
  sub(/\].*/, "", s)
  n = split(s, a, ","); c = 0
  for (i = 1; i <= n; i++) if (a[i] + 0 < limit + 0) c++
  print (n ? c / n : 0); fflush()
}'
