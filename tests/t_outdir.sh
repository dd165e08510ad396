#!/bin/sh
# t_outdir.sh — -o OUT of the directory writers (sft, dpo, rm-train, ppo share
# train_flags/trainer_init; init-model and import-gguf their own main) never destroys
# what a user put there (common/base/outdir.h):
#   - a directory holding anything cherry does not write is refused with exit 73
#     naming the path and the foreign entry, and is left untouched;
#   - a regular file is refused with 73 even with --force;
#   - --force replaces a foreign directory; an output of an earlier run (a model
#     directory, a checkpoint root) is replaced without it;
#   - a second run on a locked OUT exits 75 (flock on .NAME.lock beside OUT);
#   - a run that fails leaves no empty OUT behind.
B=${BIN:-bin}
T=$(mktemp -d /tmp/t_outdir.XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

init() { "$B/init-model" -q --family gpt2 --layers 1 --heads 2 --width 16 --context 32 \
         --tokenizer data/tokenizer.json --seed 4 "$@"; }
init -o "$T/init" || fail "init-model into a fresh directory"
"$B/task-gen" --kind sft -n 8 --seed 9 -o "$T/data.jsonl" || fail "task-gen"
sft() { "$B/sft" -q -m "$T/init" --max-length 32 --batch-size 4 --max-steps 1 "$@" "$T/data.jsonl"; }

# the user's directory: sft -o "$PWD" used to wipe it
mkdir "$T/home" && echo "my notes" >"$T/home/notes.txt" && mkdir "$T/home/src" && echo x >"$T/home/src/a.c"
expect_fail "sft -o a user's directory" 73 "$T/home: exists and is not a directory cherry wrote" sft -o "$T/home"
grep -q notes "$T/home/notes.txt" && [ -f "$T/home/src/a.c" ] || fail "the user's directory was touched by sft"
[ -z "$(ls "$T/home/" | grep -v '^notes.txt$' | grep -v '^src$')" ] || fail "sft left files in the user's directory: $(ls "$T/home")"
expect_fail "init-model -o a user's directory" 73 "is not a directory cherry wrote" init -o "$T/home"
[ -f "$T/home/notes.txt" ] || fail "init-model removed the user's file"

# a regular file is never replaced, --force or not (dpo -o README.md made it a model)
echo "readme" >"$T/README.md"
expect_fail "sft -o a file" 73 "$T/README.md: exists and is not a directory" sft -o "$T/README.md"
expect_fail "sft --force -o a file" 73 "is not a directory" sft --force -o "$T/README.md"
expect_fail "init-model --force -o a file" 73 "is not a directory" init --force -o "$T/README.md"
expect_fail "import-gguf onto a file" 73 "is not a directory" \
    "$B/import-gguf" -q tests/oracle/fixtures/gguf-tiny/tiny.gguf "$T/README.md"
[ "$(cat "$T/README.md")" = readme ] || fail "README.md was replaced"
ln -s "$T/init" "$T/link"
expect_fail "init-model -o a symlink" 73 "symbolic link" init -o "$T/link"
[ -L "$T/link" ] || fail "the symbolic link was replaced"

# --force replaces a foreign directory
init --force -o "$T/home" || fail "init-model --force over a foreign directory"
[ -f "$T/home/config.json" ] && [ ! -e "$T/home/notes.txt" ] || fail "--force should have replaced the directory"

# earlier outputs are replaced without --force: a model directory, an empty
# directory, a checkpoint root
init --seed 5 -o "$T/init2" && init --seed 6 -o "$T/init2" || fail "init-model over its own output"
mkdir "$T/empty" && init -o "$T/empty" || fail "init-model into an empty directory"
sft -o "$T/sft1" || fail "sft into a fresh directory"
sft -o "$T/sft1" || fail "sft over its own output"
[ -f "$T/sft1/model.safetensors" ] || fail "sft wrote no model"
"$B/import-gguf" -q tests/oracle/fixtures/gguf-tiny/tiny.gguf "$T/g" &&
"$B/import-gguf" -q tests/oracle/fixtures/gguf-tiny/tiny.gguf "$T/g" || fail "import-gguf over its own output"

# two runs on one OUT: the second exits 75 while the first holds the lock
expect_fail "sft on a locked OUT" 75 "another run is writing it" flock -n "$T/.locked.lock" "$B/sft" -q -m "$T/init" \
    --max-length 32 --batch-size 4 --max-steps 1 -o "$T/locked" "$T/data.jsonl"
expect_fail "init-model on a locked OUT" 75 "another run is writing it" flock -n "$T/.locked.lock" \
    "$B/init-model" -q --width 16 --heads 2 --layers 1 --tokenizer data/tokenizer.json -o "$T/locked"
[ ! -e "$T/locked" ] || fail "a refused run created $T/locked"
sft -o "$T/locked" || fail "the lock is released when the first run ends"

# a run that fails after claiming OUT (here: the log cannot be created) leaves no
# empty OUT behind
sft -o "$T/fresh" --log "$T/no/such/dir/log.jsonl" 2>/dev/null && fail "--log into a missing directory should fail"
[ ! -d "$T/fresh" ] || fail "a failed run left $T/fresh behind ($(ls -A "$T/fresh"))"
[ $fails -eq 0 ] && echo "t_outdir: all checks passed"
[ $fails -eq 0 ]
