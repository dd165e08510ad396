#!/bin/sh
# t_atomic_out.sh — file outputs (-o of rank2pairs, logprobs, score, rollout, ...: all
# util.h atomic_open) keep what the path is:
#   - a FIFO is written into, not replaced by a regular file;
#   - a device (a char device like /dev/full) is written into; its write error is
#     exit 74 with a message, and the device stays a device;
#   - a symbolic link stays a link and the file it points to gets the output (a
#     dangling link creates its target);
#   - a regular file is still replaced atomically.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_atomic_out.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
IN=tests/data/argilla/a2_nested.jsonl
r2p() { "$B/rank2pairs" -q "$IN" "$@"; }
r2p -o "$T/want.jsonl" || fail "rank2pairs into a regular file"
[ -s "$T/want.jsonl" ] || fail "no pairs written"

# FIFO
mkfifo "$T/fifo"
timeout 20 cat "$T/fifo" >"$T/got-fifo" &
reader=$!
timeout 20 "$B/rank2pairs" -q "$IN" -o "$T/fifo" || fail "rank2pairs -o FIFO: exit $?"
if [ -p "$T/fifo" ]; then
    wait "$reader"          # the reader finishes once the writer closed the FIFO
else
    fail "the FIFO was replaced by a regular file"
    kill "$reader" 2>/dev/null  # it would wait for a writer forever
    wait "$reader" 2>/dev/null
fi
cmp -s "$T/want.jsonl" "$T/got-fifo" || fail "the reader of the FIFO did not get the output"

# a device: a private copy of /dev/full when root (replacing the real one would
# damage the machine on the old code), /dev/full otherwise
DEV=/dev/full
if [ "$(id -u)" = 0 ]; then
    if mknod "$T/full" c 1 7 2>/dev/null; then DEV="$T/full"; else DEV=""; fi
fi
if [ -n "$DEV" ] && [ -c "$DEV" ]; then
    expect_fail "rank2pairs -o $DEV" 74 "write error" r2p -o "$DEV"
    [ -c "$DEV" ] || fail "$DEV is no longer a character device"
else
    echo "note: no full device to test with (mknod refused)"
fi

# symbolic links
echo old >"$T/real.jsonl"
ln -s real.jsonl "$T/link.jsonl"
r2p -o "$T/link.jsonl" || fail "rank2pairs -o a symlink: exit $?"
[ -L "$T/link.jsonl" ] || fail "the symbolic link was replaced by a file"
cmp -s "$T/want.jsonl" "$T/real.jsonl" || fail "the link's target did not get the output"
mkdir "$T/sub" && ln -s ../made.jsonl "$T/sub/dangling.jsonl"
r2p -o "$T/sub/dangling.jsonl" || fail "rank2pairs -o a dangling symlink: exit $?"
[ -L "$T/sub/dangling.jsonl" ] && cmp -s "$T/want.jsonl" "$T/made.jsonl" || fail "a dangling link should create its target"
ls -A "$T" "$T/sub" | grep -q '\.tmp-' && fail "temporaries left behind: $(ls -A "$T" "$T/sub")"
[ $fails -eq 0 ] && echo "t_atomic_out: all checks passed"
[ $fails -eq 0 ]
