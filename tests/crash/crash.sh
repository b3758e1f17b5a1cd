#!/usr/bin/env bash
# crash (suite 67-crash): kill -9 at every numbered crash point (util/crashpt.h)
# of ingest, write-back and eviction, in tarnfsd and in the tarnfs tool, then
# restart and check: the cache is consistent (each run whole or absent, no
# staging or trash left in CACHE/tmp), every write nfs-cp was told was
# committed is still there (served, and in the tarball after a flush), and no
# half-written tarball is visible in the NAS directory.
# A first pass records which points the workload passes (TARNFS_CRASH_TRACE);
# every point found is then crashed at (multi-pass points at the first, a
# middle and the last pass), so a new crash point is covered without editing
# this script, and a point the workload stops passing is a failure.
set -u
NAME="crash"
. "$(dirname "$0")/../writeback/lib.sh"
make_runs 2
cp -a "$work/nas" "$work/nas.orig"
printf 'acknowledged before the crash\n%.0s' $(seq 1 200) > "$work/new.txt"

# The workload: fetch R1 (ingest), write a file into it (acknowledged),
# flush (write-back), evict it through the server (eviction).  Prints
# "acked" when nfs-cp reported success.
# Each step runs only while the server lives.
# alive PID: the process runs (a dead child not yet waited for is a zombie,
# which kill -0 still finds).
alive() { local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; st=${st##*) }; [ "${st%% *}" != Z ]; }
# while_alive PID CMD...: CMD, stopped once process PID (the server) is
# gone: a libnfs client whose server died retries forever.
while_alive() {
  local spid=$1 c; shift
  "$@" & c=$!
  while kill -0 "$c" 2>/dev/null; do
    if ! alive "$spid"; then
      sleep 1; kill "$c" 2>/dev/null; break
    fi
    sleep 0.1
  done
  wait "$c"
}
workload() {   # workload SERVER CACHE
  local pid; eval "pid=\$pid_$1"
  while_alive "$pid" nfs-cat "$(url "$1" "$R1/RunInfo.xml")" >/dev/null 2>&1
  alive "$pid" || return 0
  if while_alive "$pid" nfs-cp "$work/new.txt" "$(url "$1" "$R1/new.txt")" >/dev/null 2>&1; then
    echo acked > "$work/acked"
  fi
  alive "$pid" || return 0
  flush "$2" "$R1" >/dev/null 2>&1
  alive "$pid" || return 0
  "$B/tarnfs" cache evict --cache "$2" "$R1" >/dev/null 2>&1
}
# The tool's own paths: ingest R2 from a file, evict it with no server.
tool_workload() {   # tool_workload CACHE [env...]
  local c=$1; shift
  env "$@" "$B/tarnfs" ingest --cache "$c" "$work/nas/$R2.tar" "$R2" >/dev/null 2>&1
  env "$@" "$B/tarnfs" cache evict --cache "$c" "$R2" >/dev/null 2>&1
}

# --- pass 1: which points, how often ----------------------------------------
rm -f "$work/trace.srv" "$work/trace.tool"
start T "$work/cacheT" rw 60m TARNFS_CRASH_TRACE="$work/trace.srv"
workload T "$work/cacheT"
stop T
tool_workload "$work/cacheT" TARNFS_CRASH_TRACE="$work/trace.tool"
points() { awk '{ n[$1] = $2 } END { for (p in n) print p, n[p] }' "$1" | sort; }
points "$work/trace.srv" > "$work/points.srv"
points "$work/trace.tool" > "$work/points.tool"
echo "# tarnfsd passes: $(tr '\n' ' ' < "$work/points.srv")"
echo "# tarnfs tool passes: $(tr '\n' ' ' < "$work/points.tool")"
for p in ingest-staged ingest-member publish-synced publish-renamed put-written \
         put-fsynced put-renamed put-sidecar wb-uploaded wb-version-recorded \
         wb-dirty-cleared evict-renamed tmp-delete; do
  check "the server workload passes crash point $p" grep -q "^$p " "$work/points.srv"
done
for p in ingest-staged ingest-member publish-synced publish-renamed evict-renamed tmp-delete; do
  check "the tool workload passes crash point $p" grep -q "^$p " "$work/points.tool"
done
passes_of() {   # the pass numbers to crash at: 1, the middle, the last
  local n=$1        # (CRASH_PASSES=all: every pass)
  if [ "${CRASH_PASSES:-}" = all ]; then seq 1 "$n"; return; fi
  { echo 1; echo $(( (n + 1) / 2 )); echo "$n"; } | sort -nu
}

# --- the checks after a restart ---------------------------------------------
# tmp_clean CACHE: nothing left under CACHE/tmp (staging runs, trash).
tmp_clean() { [ -z "$(ls -A "$1/tmp" 2>/dev/null)" ]; }
# nas_clean: every visible file is a whole tarball (tar reads it to the end)
# or a sidecar naming its tarball's SHA-256; no temp file is left.
nas_clean() {
  local f ok=0
  for f in "$work/nas"/*; do
    case "$f" in
      *.sha256) (cd "$work/nas" && sha256sum -c --status "$(basename "$f")") || { echo "    bad sidecar $f"; ok=1; } ;;
      *.tar) tar -tf "$f" >/dev/null 2>&1 || { echo "    unreadable tarball $f"; ok=1; } ;;
      *) echo "    unexpected file $f"; ok=1 ;;
    esac
  done
  [ -z "$(ls -A "$work/nas" | grep '^\.tarnfs-tmp')" ] || { echo "    temp file left: $(ls -A "$work/nas" | grep '^\.tarnfs-tmp')"; ok=1; }
  return $ok
}
# run_whole SERVER RUN: the run's files read back equal to the source.
run_whole() {
  local f
  for f in RunInfo.xml RunParameters.xml; do
    [ -f "$work/src/$2/$f" ] || continue
    nfs-cat "$(url "$1" "$2/$f")" 2>/dev/null | cmp -s - "$work/src/$2/$f" || return 1
  done
}
in_tarball() { tar -xOf "$work/nas/$R1.tar" "$R1/new.txt" 2>/dev/null | cmp -s - "$work/new.txt"; }

# crash_server POINT N: the workload on a fresh cache and NAS directory, with
# tarnfsd killed at pass N of POINT; restart and check.
crash_server() {
  local p=$1 n=$2 c="$work/cache-$1-$2" rc
  rm -rf "$work/nas" "$work/acked" && cp -a "$work/nas.orig" "$work/nas"
  start S "$c" rw 60m TARNFS_CRASH="$p:$n"
  workload S "$c"
  wait "$pid_S" 2>/dev/null; rc=$?
  check "[$p:$n] tarnfsd died by SIGKILL at the crash point (status $rc)" test $rc -eq 137
  start S "$c" rw 60m
  check "[$p:$n] after the restart CACHE/tmp holds no staging run or trash" tmp_clean "$c"
  check "[$p:$n] no half-written tarball or temp file in the NAS directory" nas_clean
  check "[$p:$n] run $R1 reads back whole" run_whole S "$R1"
  if [ -f "$work/acked" ]; then
    nfs-cat "$(url S "$R1/new.txt")" > "$work/back.txt" 2>/dev/null
    check "[$p:$n] the acknowledged write is served after the restart" cmp -s "$work/back.txt" "$work/new.txt"
    flush "$c" "$R1" >/dev/null 2>&1
    check "[$p:$n] and a flush puts it in the tarball" in_tarball
    check "[$p:$n] without a conflict" bash -c "! grep -q CONFLICT '$work/S.log'"
  fi
  check "[$p:$n] the flush leaves the NAS directory clean" nas_clean
  stop S
  check "[$p:$n] a clean stop leaves CACHE/tmp empty" tmp_clean "$c"
  check "[$p:$n] no sanitizer report" no_sanitizer_reports "$work/S.log"
  mv "$work/S.log" "$work/S-$p-$n.log.old"
}
# crash_tool POINT N: tarnfs ingest / cache evict killed at pass N of POINT;
# a reading command finds R2 whole or absent; an ingest run again succeeds
# and leaves tmp/ empty.
crash_tool() {
  local p=$1 n=$2 c="$work/cachet-$1-$2"
  rm -rf "$work/nas" && cp -a "$work/nas.orig" "$work/nas"
  "$B/tarnfs" ingest --cache "$c" "$work/nas/$R1.tar" "$R1" >/dev/null 2>&1
  ( env TARNFS_CRASH="$p:$n" "$B/tarnfs" ingest --cache "$c" "$work/nas/$R2.tar" "$R2" >/dev/null 2>&1 ) 2>/dev/null
  local rc=$?
  if [ $rc -ne 137 ]; then
    ( env TARNFS_CRASH="$p:$n" "$B/tarnfs" cache evict --cache "$c" "$R2" >/dev/null 2>&1 ) 2>/dev/null
    rc=$?
  fi
  check "[tool $p:$n] tarnfs died by SIGKILL at the crash point (status $rc)" test $rc -eq 137
  # Reading commands open the cache read-only: they see R2 whole or not
  # at all, and leave what the crash left in CACHE/tmp to the next writer.
  "$B/tarnfs" cache ls --cache "$c" > "$work/ls.out" 2>&1
  if grep -q "^$R2 " "$work/ls.out"; then
    check "[tool $p:$n] $R2 is cached whole" bash -c \
      "'$B/tarnfs' cat --cache '$c' '/$R2/RunInfo.xml' 2>/dev/null | cmp -s - '$work/src/$R2/RunInfo.xml'"
  fi
  check "[tool $p:$n] the other run is untouched" bash -c \
    "'$B/tarnfs' cat --cache '$c' '/$R1/RunInfo.xml' 2>/dev/null | cmp -s - '$work/src/$R1/RunInfo.xml'"
  # The operator runs the ingest again: it succeeds and the cache is clean.
  "$B/tarnfs" ingest --cache "$c" "$work/nas/$R2.tar" "$R2" >/dev/null 2>&1
  check "[tool $p:$n] the ingest run again succeeds" test $? -eq 0
  check "[tool $p:$n] and the next writer leaves CACHE/tmp empty" tmp_clean "$c"
  check "[tool $p:$n] $R2 reads back whole" bash -c \
    "'$B/tarnfs' cat --cache '$c' '/$R2/RunInfo.xml' 2>/dev/null | cmp -s - '$work/src/$R2/RunInfo.xml'"
}

# CRASH_ONLY=REGEX crashes only at the matching points (for debugging).
while read -r p total; do
  [[ "$p" =~ ${CRASH_ONLY:-.} ]] || continue
  for n in $(passes_of "$total"); do crash_server "$p" "$n"; done
done < "$work/points.srv"
while read -r p total; do
  [[ "$p" =~ ${CRASH_ONLY:-.} ]] || continue
  for n in $(passes_of "$total"); do crash_tool "$p" "$n"; done
done < "$work/points.tool"
finish
