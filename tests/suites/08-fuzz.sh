#!/usr/bin/env bash
# 08-fuzz: replays every fuzz corpus (tests/fuzz/corpus/TARGET/, seeds and
# the inputs `make fuzz` kept, crashers included) once through its target,
# built with gcc + ASan/UBSan as a plain program (tests/fuzz/replay.c).
# Any crash, leak or undefined behaviour fails the suite.
set -u
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$TARNFS_ROOT/$B" ;; esac
cd "$TARNFS_ROOT"
. tests/lib.sh
LINE_PREFIX="08-fuzz: "
# Scratch caches on a tmpfs when there is one (ingest fsyncs).
shm=/tmp; [ -w /dev/shm ] && shm=/dev/shm
W=$(mktemp -d "$shm/tarnfs-08fuzz-XXXXXX")
trap 'rm -rf "$W"' EXIT
export FUZZ_TMPDIR="$W"     # the targets' scratch caches
for t in rpc ingest s3xml config tix; do
  n=$(ls "tests/fuzz/corpus/$t" | wc -l)
  if out=$("$B/tests/fuzz/replay-$t" "tests/fuzz/corpus/$t" 2>&1); then
    ok "the $t corpus ($n inputs) replays without a crash, leak or UB"
  else
    bad "the $t corpus: $(echo "$out" | grep -m1 -E 'ERROR|runtime error|abort' )"
    echo "$out" | tail -30
  fi
done
summary 08-fuzz
