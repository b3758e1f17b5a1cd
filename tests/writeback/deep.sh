#!/usr/bin/env bash
# deep (writeback): a run holding thousands of nested directories, made over
# NFS, is written back (hardening issue, finding 4: the recursive tar writer
# overflowed its stack and crashed the server at every restart).  The
# tarball holds the deepest file, the server survives, and no temp file of
# ours is left in the NAS directory, after a failed write-back or a crash.
set -u
NAME="writeback deep"
. "$(dirname "$0")/lib.sh"
[ -x "$B/tests/writeback/nfsdeep" ] || { echo "$NAME: missing $B/tests/writeback/nfsdeep" >&2; exit 1; }
DEPTH=${DEPTH:-2600}
make_runs 1
C="$work/cache"
temps() { find "$work/nas" -name '.tarnfs-tmp.*' | wc -l; }
deepest="$R1/$(printf 'd/%.0s' $(seq 1 "$DEPTH"))deepest.txt"

start A "$C" rw 60m
nfs-cat "$(url A "$R1/RunInfo.xml")" >/dev/null 2>&1
LSAN_OPTIONS="suppressions=$nfs_supp:print_suppressions=0" \
  "$B/tests/writeback/nfsdeep" "$(url A '')" "/$R1" "$DEPTH" deepest.txt
check "$DEPTH nested directories and a file at the bottom are made over NFS" test $? -eq 0
flush "$C" "$R1" >/dev/null 2>"$work/flush.err"; rc=$?
check "tarnfs flush writes the deep run back" test $rc -eq 0
check "the server is still running" kill -0 "$pid_A"
tar -tf "$work/nas/$R1.tar" > "$work/members" 2>/dev/null
check "the tarball holds the deepest file" grep -qxF "$deepest" "$work/members"
check "and every level of the chain ($((DEPTH + 1)) directories from the top)" \
  test "$(grep -c '^'"$R1"'/\(d/\)*$' "$work/members")" -ge "$((DEPTH + 1))"
check "no temp file is left in the NAS directory" test "$(temps)" -eq 0
check "the run is clean after it" test "$(dirty_col "$C" "$R1")" = -
stop A

# --- a write-back that keeps failing: logged, retried with backoff --------
# The idle delay is 10 minutes, on the server's test clock: each failure
# doubles the wait (20, then 40 minutes).
start A "$C" rw 10m TARNFS_FAULT="put:5"
nfs-cp "$work/members" "$(url A "$R1/again.txt")" >/dev/null 2>&1
fails() { grep -c "write-back of run $R1 .* failed" "$work/A.log"; }
check "no write-back is tried before the idle delay" test "$(fails)" -eq 0
advance_clock "$C" 10m
check "a failing write-back is logged once the run is idle past the delay" test "$(fails)" -eq 1
advance_clock "$C" 10m
check "and not retried after the delay alone (backoff: 20 minutes)" test "$(fails)" -eq 1
advance_clock "$C" 10m
check "but retried once the doubled delay has passed" test "$(fails)" -eq 2
advance_clock "$C" 30m
check "then not before 40 minutes" test "$(fails)" -eq 2
advance_clock "$C" 10m
check "and again after them" test "$(fails)" -eq 3
check "the server survives it" kill -0 "$pid_A"
check "the run stays dirty" bash -c "[ '$(dirty_col "$C" "$R1")' != - ]"
check "no temp file is left behind by the failed attempts" test "$(temps)" -eq 0

# --- temp files of ours left by a crash are swept at the next start ---------
kill -9 "$pid_A"; wait "$pid_A" 2>/dev/null
( : ) & dead=$!; wait $dead
host=$(hostname | cut -c1-40)
printf 'partial' > "$work/nas/.tarnfs-tmp.$R1.tar.1f2e3d.$dead@$host"    # ours, owner gone
printf 'partial' > "$work/nas/.tarnfs-tmp.$R1.tar.4a5b6c.$$@$host"       # ours, owner alive
printf 'partial' > "$work/nas/.tarnfs-tmp.$R1.tar.7d8e9f.$dead@otherhost" # another host's
start A "$C" rw 60m
flush "$C" "$R1" >/dev/null 2>&1
check "the dirty run is written back after the restart" \
  bash -c "tar -tf '$work/nas/$R1.tar' 2>/dev/null | grep -qx '$R1/again.txt'"
check "a temp file of ours whose writer is gone is swept at start" \
  test ! -e "$work/nas/.tarnfs-tmp.$R1.tar.1f2e3d.$dead@$host"
check "one whose writer still runs is left alone" test -e "$work/nas/.tarnfs-tmp.$R1.tar.4a5b6c.$$@$host"
check "so is another host's" test -e "$work/nas/.tarnfs-tmp.$R1.tar.7d8e9f.$dead@otherhost"
check "the sweep is logged" grep -q "removed 1 temp file" "$work/A.log"
stop A
check "no sanitizer or leak report in the server logs" no_sanitizer_reports
finish
