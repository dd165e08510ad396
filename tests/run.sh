#!/bin/sh
# run.sh — runs every test given on the command line and prints one closing line,
# "N passed, N failed, N skipped".  A test passes with exit 0, is skipped with exit
# 77 (it prints why), fails otherwise.  C tests are executables; *.sh are run by sh.
# Each test's output is kept in build/test-logs/NAME.log and shown when it fails.
mkdir -p "${O:-build}/test-logs"
pass=0; fail=0; skip=0; failed=""
for t in "$@"; do
  name=$(echo "$t" | sed 's|^build/||; s|/|_|g')
  log="${O:-build}/test-logs/$name.log"
  start=$(date +%s)
  case "$t" in
    *.sh) sh "$t" >"$log" 2>&1 ;;
    *)    "$t" >"$log" 2>&1 ;;
  esac
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "PASS $t (${secs}s)"
  elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "SKIP $t: $(tail -n 1 "$log")"
  else fail=$((fail+1)); failed="$failed $t"; echo "FAIL $t (exit $rc, ${secs}s)"; tail -n 30 "$log" | sed 's/^/    /'
  fi
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
