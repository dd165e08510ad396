# serve_lib.sh — starting and stopping `serve` in shell tests (sourced after lib.sh;
# needs T and B).  Servers listen on 127.0.0.1 on a port the kernel picks.
# serve_start NAME ARGS... : starts bin/serve in the background, waits (at most 10 s)
# for its port file, sets PORT and SERVE_PID.
serve_start() {
  name=$1; shift
  rm -f "$T/$name.port"
  "$B/serve" --port 0 --port-file "$T/$name.port" "$@" 2>"$T/$name.err" &
  SERVE_PID=$!
  i=0
  while [ ! -s "$T/$name.port" ] && [ $i -lt 100 ]; do
    kill -0 $SERVE_PID 2>/dev/null || break
    sleep 0.1; i=$((i + 1))
  done
  PORT=$(cat "$T/$name.port" 2>/dev/null)
  [ -n "$PORT" ] || { echo "FAIL: serve $name did not start: $(cat "$T/$name.err")"; return 1; }
}
# serve_stop : SIGTERM, then wait (the server answers requests in flight first).
serve_stop() {
  [ -n "$SERVE_PID" ] || return 0
  kill -TERM $SERVE_PID 2>/dev/null; wait $SERVE_PID; rc=$?; SERVE_PID=
  return $rc
}
# post PATH JSON [CURL ARGS...] : body to $OUT (default $T/resp), HTTP status on stdout.
post() {
  p=$1 d=$2; shift 2
  curl -s -m 30 -o "${OUT:-$T/resp}" -w '%{http_code}' -H 'Content-Type: application/json' "$@" \
    "http://127.0.0.1:$PORT$p" --data-binary "$d"
}
