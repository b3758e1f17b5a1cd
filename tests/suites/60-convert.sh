#!/usr/bin/env bash
# 60-convert: `tarnfs convert` end to end on generated run trees: discovery,
# in-place and NAS-directory targets, GNU tar and ingest round trips,
# determinism, resume, verify/--delete-source, collisions, failures (changing
# file, socket, unreadable file, full disk, Ctrl-C) and, against a real Ceph
# RGW, the S3 target (streamed multipart upload, verify, resume, an upload
# broken in its middle leaving nothing behind, bad bucket and credentials).
set -u
cd "${TARNFS_ROOT:-.}"
ROOT=$PWD
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
export B
. "$ROOT/tests/convert/lib.sh"
for p in tarnfs genrun tests/index/tixcheck; do
  [ -x "$B/$p" ] || die "60-convert: missing $B/$p (make test-programs)"
done
T=$(mktemp -d /tmp/tarnfs-convert.XXXXXX)
export T
# Checks run in subshells: background PIDs and mounts are recorded in files
# so that cleanup ends exactly what the checks started.
track_pid() { echo "$1" >> "$T/pids"; }
track_mount() { echo "$1" >> "$T/mounts"; }
cleanup() {
  [ -f "$T/pids" ] && while read -r p; do kill "$p" 2>/dev/null; done < "$T/pids"
  [ -f "$T/mounts" ] && while read -r m; do umount "$m" 2>/dev/null; done < "$T/mounts"
  [ -n "${RGW_DIR:-}" ] && "$ROOT/tests/s3/rgw-stop.sh" "$RGW_DIR" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

GEN="$B/genrun -q"
TARNFS="$B/tarnfs"

# ---- a source tree: flat, nested, with every kind of entry -------------------
SRC=$T/nas
mkdir -p "$SRC/proj/2024" "$SRC/proj/2023" "$SRC/incoming" "$SRC/other"
$GEN --extras --name 241023_A01295_0432_BHK3NFDRX5 "$SRC/proj/2024"
$GEN --extras --seed 2 --name 230101_A00001_0001_AHXXXXXXXX "$SRC/proj/2023"
$GEN --seed 3 --name 240501_M00001_0007_000000000-ABCDE "$SRC/other"
# A run still being written: RunInfo.xml but no completion marker.
$GEN --seed 4 --name 241101_A01295_0440_AHKKKKKKKK "$SRC/incoming"
rm -f "$SRC/incoming/241101_A01295_0440_AHKKKKKKKK/"{CopyComplete.txt,RTAComplete.txt,RTAComplete.xml}
# A run finished by RTA but not yet copied: RTAComplete.txt, no CopyComplete.
rm -f "$SRC/other/240501_M00001_0007_000000000-ABCDE/CopyComplete.txt"
# A run folder inside a run (e.g. a re-analysis copy) belongs to its run.
RUN1=$SRC/proj/2024/241023_A01295_0432_BHK3NFDRX5
mkdir -p "$RUN1/Analysis/rerun"
cp "$RUN1/RunInfo.xml" "$RUN1/Analysis/rerun/RunInfo.xml"
touch -d '2024-10-25 10:00:00' "$RUN1/Analysis/rerun/CopyComplete.txt" "$RUN1/Analysis/rerun/RunInfo.xml" "$RUN1/Analysis/rerun" "$RUN1/Analysis"
RUN2=$SRC/proj/2023/230101_A00001_0001_AHXXXXXXXX
RUN3=$SRC/other/240501_M00001_0007_000000000-ABCDE
PRISTINE=$T/pristine
cp -a "$SRC" "$PRISTINE"

t_list_says_what_and_why() {
  "$TARNFS" convert "$SRC" --list > "$T/list"
  cat "$T/list"
  grep -q "^run   $RUN1  (RunInfo.xml + CopyComplete.txt)" "$T/list"
  grep -q "^run   $RUN2  (RunInfo.xml + CopyComplete.txt)" "$T/list"
  grep -q "^run   $RUN3  (RunInfo.xml + RTAComplete.txt (no CopyComplete.txt))" "$T/list"
  grep -q "^skip  $SRC/incoming/241101_A01295_0440_AHKKKKKKKK  (RunInfo.xml but no" "$T/list"
  not grep -q "rerun" "$T/list"
  grep -q "^3 runs found" "$T/list"
}
check 'discovery: --list names each run and why, skips incomplete runs, ignores runs nested in runs' t_list_says_what_and_why

t_marker_exclude_min_age() {
  "$TARNFS" convert "$SRC" --list --marker RTAComplete.txt --marker RunInfo.xml > "$T/l1"
  grep -q "^run   $RUN3  (has RTAComplete.txt + RunInfo.xml)" "$T/l1"
  "$TARNFS" convert "$SRC" --list --exclude 'proj/2023*' --exclude '*M00001*' > "$T/l2"
  grep -q "^skip  $SRC/proj/2023  (excluded by --exclude 'proj/2023\*')" "$T/l2"
  grep -q "^skip  $RUN3  (excluded by --exclude '\*M00001\*')" "$T/l2"
  grep -q "^1 run found" "$T/l2"
  # genrun's files are from 2024, but cp -a just gave them a fresh ctime.
  "$TARNFS" convert "$PRISTINE" --list --min-age 1h > "$T/l3"
  grep -q "^0 runs found" "$T/l3"
  grep -q "younger than --min-age 3600s" "$T/l3"
  "$TARNFS" convert "$PRISTINE" --list --min-age 0 | grep >/dev/null "^3 runs found"
}
check 'discovery: --marker replaces the test, --exclude skips paths, --min-age skips fresh runs' t_marker_exclude_min_age

t_bad_usage() {
  local rc=0
  "$TARNFS" convert "$RUN1/RunInfo.xml" --in-place 2> "$T/e1" || rc=$?
  [ $rc -eq 2 ]
  grep -q "not a directory" "$T/e1"
  rc=0; "$TARNFS" convert "$SRC" 2> "$T/e2" || rc=$?
  [ $rc -eq 2 ]
  grep -q "say where the tarballs go" "$T/e2"
  rc=0; "$TARNFS" convert "$SRC" --in-place --delete-source 2> "$T/e3" || rc=$?
  [ $rc -eq 2 ]
  grep -q "refused without --verify" "$T/e3"
  rc=0; "$TARNFS" convert "$SRC" --in-place --bogus 2> "$T/e4" || rc=$?
  [ $rc -eq 2 ]
  # sizes and durations: no sign, no overflow, no junk (-1 was taken as
  # 2^64 - 1 bytes)
  for bad in "--part-size -1" "--part-size 99999999999T" "--part-size 8Mx" \
             "--min-age -5m" "--min-age 2w"; do
    rc=0; "$TARNFS" convert "$SRC" --to "$T" --list $bad 2> "$T/e5" || rc=$?
    [ $rc -eq 2 ] || { echo "accepted: $bad"; return 1; }
  done
  "$TARNFS" convert "$SRC" --list --min-age 1.5h --part-size 16MiB > /dev/null
  "$TARNFS" convert --help | grep >/dev/null "usage: tarnfs convert"
}
check 'bad usage: source not a directory, no target, --delete-source without --verify, a signed or overflowing size or duration exit 2' t_bad_usage

t_in_place() {
  "$TARNFS" convert "$SRC" --in-place --verify -j 2 > "$T/out"
  cat "$T/out"
  for r in "$RUN1" "$RUN2" "$RUN3"; do
    [ -f "$r.tar" ]
    [ -f "$r.tar.sha256" ]
    (cd "$(dirname "$r")" && sha256sum -c "$(basename "$r").tar.sha256")
    # members carry the run's own name as their top directory
    tar -tf "$r.tar" > "$T/members"
    not grep -v "^$(basename "$r")\(/\|$\)" "$T/members"
  done
  grep -q "summary: 3 runs: 3 converted, 0 up to date, 0 failed" "$T/out"
  not ls -a "$SRC"/*/*/.*.tmp.* "$SRC"/*/.*.tmp.*
  [ ! -e "$SRC/incoming/241101_A01295_0440_AHKKKKKKKK.tar" ]
}
check 'in place: RUN.tar + RUN.tar.sha256 beside each run, verified, no temporary left' t_in_place

t_gnu_tar_d() {
  for r in "$RUN1" "$RUN2" "$RUN3"; do
    (cd "$(dirname "$r")" && tar -df "$(basename "$r").tar")
  done
  # and extracting recreates the run exactly
  mkdir "$T/x"
  tar -C "$T/x" -xpf "$RUN1.tar" --numeric-owner
  diff <(source_manifest "$RUN1") <(source_manifest "$T/x/$(basename "$RUN1")")
}
check 'GNU tar -d sees no difference; tar -xf recreates the run' t_gnu_tar_d

# The data of every regular member listed by tixcheck equals its source file.
ranges_match_sources() {    # ranges_match_sources TARBALL RUN_DIR LISTING [TOP]
  local tarball=$1 run=$2 top=${4:-$(basename "$2")} type off size nsums path n=0
  while read -r type off size nsums path; do
    [ "$type" = 1 ] || continue
    cmp <(tail -c +$((off + 1)) "$tarball" | head -c "$size") "$run/${path#"$top"/}"
    n=$((n + 1))
  done < "$3"
  echo "$tarball: $n files' ranges equal their sources"
  [ $n -gt 0 ]
}

t_index_beside_tarball() {
  local r v
  for r in "$RUN1" "$RUN2" "$RUN3"; do
    [ -f "$r.tar.tarnfs-index" ]
    # it names the tarball by size + SHA-256, and by the version fetch
    # reports for the NAS file ("mtime-ns:size:inode")
    "$B/tests/index/tixcheck" "$r.tar.tarnfs-index" "$r.tar" > "$T/ix"
    v="$(stat -c %.9Y "$r.tar" | tr -d .):$(stat -c %s:%i "$r.tar")"
    "$B/tests/index/tixcheck" "$r.tar.tarnfs-index" "$r.tar" "$v" > /dev/null
    not "$B/tests/index/tixcheck" "$r.tar.tarnfs-index" "$r.tar" "1:2:3"
    # one entry per member, in tar order, and each file's bytes are at its offset
    diff <(awk '{print $5}' "$T/ix") <(tar -tf "$r.tar" | sed 's|/$||')
    ranges_match_sources "$r.tar" "$r" "$T/ix"
    # the output is still blocked as GNU tar does it
    [ $(( $(stat -c %s "$r.tar") % 10240 )) -eq 0 ]
  done
}
check 'index: RUN.tar.tarnfs-index beside each tarball names it (size, SHA-256, NAS version); every member range holds the file' t_index_beside_tarball

t_index_compressed_none() {
  mkdir -p "$T/cz"
  "$TARNFS" convert "$PRISTINE/other" --to "$T/cz" --compress zstd > /dev/null
  [ -f "$T/cz/$(basename "$RUN3").tar.zst" ]
  not ls "$T/cz/$(basename "$RUN3").tar.zst.tarnfs-index"
}
check 'index: a compressed tarball gets none (no random access)' t_index_compressed_none

t_index_backfilled_on_resume() {
  rm "$RUN2.tar.tarnfs-index"
  printf 'garbage' > "$RUN3.tar.tarnfs-index"
  "$TARNFS" convert "$SRC" --in-place > "$T/ib"
  cat "$T/ib"
  grep -q "summary: 3 runs: 0 converted, 3 up to date" "$T/ib"
  grep -q "^up-to-date $RUN2 .*index written" "$T/ib"
  grep -q "^up-to-date $RUN3 .*index written" "$T/ib"
  not grep -q "^up-to-date $RUN1 .*index written" "$T/ib"
  "$B/tests/index/tixcheck" "$RUN2.tar.tarnfs-index" "$RUN2.tar" > /dev/null
  "$B/tests/index/tixcheck" "$RUN3.tar.tarnfs-index" "$RUN3.tar" > /dev/null
}
check 'index: a re-run writes the index an up-to-date tarball lacks (or has corrupt)' t_index_backfilled_on_resume

# ---- tarnfs index: backfill a collection made by GNU tar ----------------------
t_index_backfill_nas() {
  local D=$T/ixnas n1 n2 n3 v before rc=0
  n1=$(basename "$RUN1"); n2=$(basename "$RUN2"); n3=$(basename "$RUN3")
  mkdir -p "$D/2023"
  (cd "$PRISTINE/proj/2024" && tar --format=gnu -cf "$D/$n1.tar" "$n1")
  (cd "$PRISTINE/other" && tar --format=pax -cf "$D/2023/$n3.tar" "$n3")
  (cd "$PRISTINE/proj/2023" && tar -czf "$D/2023/$n2.tar.gz" "$n2")
  "$TARNFS" index "$D" > "$T/x1"
  cat "$T/x1"
  grep -q "^indexed    $n1.tar  ([0-9]* members, " "$T/x1"
  grep -q "^indexed    2023/$n3.tar " "$T/x1"
  grep -q "^skip       2023/$n2.tar.gz  (compressed: no random access" "$T/x1"
  grep -q "^summary: 3 tarballs: 2 indexed, 0 up to date, 1 skipped, 0 failed" "$T/x1"
  not ls "$D/2023/$n2.tar.gz.tarnfs-index"
  for t in "$D/$n1.tar:$PRISTINE/proj/2024/$n1" "$D/2023/$n3.tar:$PRISTINE/other/$n3"; do
    v="$(stat -c %.9Y "${t%%:*}" | tr -d .):$(stat -c %s:%i "${t%%:*}")"
    "$B/tests/index/tixcheck" "${t%%:*}.tarnfs-index" "${t%%:*}" "$v" > "$T/ix"
    ranges_match_sources "${t%%:*}" "${t#*:}" "$T/ix"
  done
  # a second run reads no tarball and writes nothing
  before=$(stat -c %i.%Y "$D/$n1.tar.tarnfs-index")
  "$TARNFS" index "$D" > "$T/x2"
  cat "$T/x2"
  grep -q "^summary: 3 tarballs: 0 indexed, 2 up to date, 1 skipped, 0 failed" "$T/x2"
  [ "$(stat -c %i.%Y "$D/$n1.tar.tarnfs-index")" = "$before" ]
  # the tarball is replaced: its index is stale and gets replaced (NAME = run name)
  cp -a "$PRISTINE/proj/2024/$n1" "$T/ixnew"
  echo "added later" > "$T/ixnew/late.txt"
  (cd "$T" && tar --format=gnu --transform "s|^ixnew|$n1|" -cf "$D/$n1.tar.new" ixnew)
  mv "$D/$n1.tar.new" "$D/$n1.tar"
  not "$B/tests/index/tixcheck" "$D/$n1.tar.tarnfs-index" "$D/$n1.tar"
  "$TARNFS" index "$D" "$n1" > "$T/x3"
  cat "$T/x3"
  grep -q "^indexed    $n1.tar  (.*replaced a stale index" "$T/x3"
  grep -q "^summary: 1 tarball: 1 indexed" "$T/x3"
  "$B/tests/index/tixcheck" "$D/$n1.tar.tarnfs-index" "$D/$n1.tar" > "$T/ix"
  grep -q " $n1/late.txt$" "$T/ix"
  ranges_match_sources "$D/$n1.tar" "$T/ixnew" "$T/ix" "$n1"
  # --progress: bytes and rate of the tarball being read, on stderr
  "$TARNFS" index "$D" "$n1" --force --progress > "$T/x5" 2> "$T/x5.err"
  grep -q "^indexed    $n1.tar  (.*rebuilt (--force))" "$T/x5"
  tr '\r' '\n' < "$T/x5.err" | grep "\[1/1\] $n1.tar  [0-9.]* MiB / [0-9.]* MiB  [0-9.]* MiB/s"
  # failures: not a tarball, an unknown NAME (exit 1); no or a bad SOURCE (exit 2)
  head -c 5000 /dev/urandom > "$D/junk.tar"
  "$TARNFS" index "$D" junk.tar nosuch > "$T/x4" 2>&1 || rc=$?
  cat "$T/x4"
  [ $rc -eq 1 ]
  grep -q "^FAILED     junk.tar: not a tar archive" "$T/x4"
  grep -q "^FAILED     nosuch: no such tarball" "$T/x4"
  not ls "$D/junk.tar.tarnfs-index"
  rc=0; "$TARNFS" index 2> /dev/null || rc=$?
  [ $rc -eq 2 ]
  rc=0; "$TARNFS" index "$T/no/such/dir" 2> /dev/null || rc=$?
  [ $rc -eq 2 ]
  ls -a "$D" "$D/2023" > "$T/ls"
  not grep -q '\.tmp\.' "$T/ls"
}
check 'tarnfs index: backfills a NAS directory of GNU tar tarballs (gnu, pax; .tar.gz skipped); a second run does nothing; a stale index is replaced; progress; bad input exits 1/2' t_index_backfill_nas

t_round_trip_ingest() {
  for r in "$RUN1" "$RUN2" "$RUN3"; do round_trip_matches "$r.tar" "$r"; done
}
check 'round trip through tarnfs ingest + ls -lR/cat matches the source (symlinks, hard links, empty dirs, modes, owners, ns mtimes)' t_round_trip_ingest

t_deterministic() {
  mkdir "$T/out1" "$T/out2"
  "$TARNFS" convert "$PRISTINE/proj/2024" --to "$T/out1" > /dev/null
  cp -a "$PRISTINE" "$T/copy"   # other inodes, other ctimes, same tree
  "$TARNFS" convert "$T/copy/proj/2024" --to "$T/out2" > /dev/null
  cmp "$T/out1/$(basename "$RUN1").tar" "$T/out2/$(basename "$RUN1").tar"
  cmp "$T/out1/$(basename "$RUN1").tar" "$RUN1.tar"
  for c in gzip zstd; do
    "$TARNFS" convert "$PRISTINE/proj/2024" --to "$T/out1" --compress $c > /dev/null
    "$TARNFS" convert "$T/copy/proj/2024" --to "$T/out2" --compress $c --verify > /dev/null
  done
  cmp "$T/out1/$(basename "$RUN1").tar.gz" "$T/out2/$(basename "$RUN1").tar.gz"
  cmp "$T/out1/$(basename "$RUN1").tar.zst" "$T/out2/$(basename "$RUN1").tar.zst"
  (cd "$PRISTINE/proj/2024" && tar -dzf "$T/out1/$(basename "$RUN1").tar.gz" &&
     tar --zstd -df "$T/out1/$(basename "$RUN1").tar.zst")
  round_trip_matches "$T/out1/$(basename "$RUN1").tar.zst" "$PRISTINE/proj/2024/$(basename "$RUN1")"
}
check 'determinism: the same tree gives the same bytes (plain, gzip, zstd), to --to DIR too' t_deterministic

t_progress_and_log_lines() {
  mkdir -p "$T/prog" "$T/progout"
  $GEN --name RUN_PROG --file-size 1M --cycles 30 "$T/prog"     # ~120 MiB
  "$TARNFS" convert "$T/prog" --to "$T/progout" --progress > "$T/p.out" 2> "$T/p.err"
  # the live line (redrawn every 250 ms): runs done/total, bytes, files,
  # rate, ETA, and the share done of the current run
  tr '\r' '\n' < "$T/p.err" > "$T/p.lines"
  cat "$T/p.lines"
  grep '^.\[K\[0/1 runs\] .* / ~.*, [0-9]* files, .*/s, ETA ' "$T/p.lines"
  grep ' RUN_PROG [0-9]*%' "$T/p.lines"
  # one line per run: outcome, target, size, files, time, rate
  grep -E "^converted  $T/prog/RUN_PROG -> $T/progout/RUN_PROG.tar  \([0-9.]+ MiB, [0-9]+ files, [0-9.]+ s, [0-9.]+ [KMG]?i?B/s" "$T/p.out"
  grep "^summary: 1 run: 1 converted" "$T/p.out"
  # not a terminal and no --progress: no live line
  "$TARNFS" convert "$T/prog" --to "$T/progout" --force > /dev/null 2> "$T/p2.err"
  not grep -q 'runs\]' "$T/p2.err"
}
check 'progress: a live line (runs, bytes, files, rate, ETA) on a terminal, one log line per run otherwise' t_progress_and_log_lines

t_resume() {
  local before
  before=$(stat -c %Y.%i "$RUN2.tar")
  "$TARNFS" convert "$SRC" --in-place > "$T/r1"
  cat "$T/r1"
  grep -q "summary: 3 runs: 0 converted, 3 up to date, 0 failed" "$T/r1"
  [ "$(stat -c %Y.%i "$RUN2.tar")" = "$before" ]
  # a changed run is converted again, the others stay
  echo "late addition" > "$RUN2/Logs/late.log"
  "$TARNFS" convert "$SRC" --in-place > "$T/r2"
  cat "$T/r2"
  grep -q "^converted  $RUN2 ->" "$T/r2"
  grep -q "summary: 3 runs: 1 converted, 2 up to date" "$T/r2"
  tar -tf "$RUN2.tar" | grep >/dev/null "Logs/late.log"
  "$TARNFS" convert "$SRC" --in-place --force > "$T/r3"
  grep -q "summary: 3 runs: 3 converted, 0 up to date" "$T/r3"
}
check 'resume: a re-run skips runs whose tarball has the same SHA-256, redoes changed ones; --force redoes all' t_resume

t_collision_flat() {
  local rc=0
  mkdir -p "$T/dup/a" "$T/dup/b" "$T/dupout"
  $GEN --name SAME_RUN "$T/dup/a"
  $GEN --seed 9 --name SAME_RUN "$T/dup/b"
  "$TARNFS" convert "$T/dup" --to "$T/dupout" > "$T/c1" 2>&1 || rc=$?
  cat "$T/c1"
  [ $rc -eq 2 ]
  grep -q "name collision: $T/dup/a/SAME_RUN and $T/dup/b/SAME_RUN" "$T/c1"
  [ -z "$(ls -A "$T/dupout")" ]
  "$TARNFS" convert "$T/dup" --to "$T/dupout" --naming path --verify > "$T/c2"
  [ -f "$T/dupout/a/SAME_RUN.tar" ]
  [ -f "$T/dupout/b/SAME_RUN.tar" ]
  not cmp -s "$T/dupout/a/SAME_RUN.tar" "$T/dupout/b/SAME_RUN.tar"
}
check '--naming flat: two runs with one name are an error naming both, before anything is written; --naming path keeps them apart' t_collision_flat

t_delete_source() {
  local r=$T/del/proj/RUN_DEL
  mkdir -p "$T/del/proj"
  $GEN --extras --name RUN_DEL "$T/del/proj"
  cp -a "$r" "$T/del-copy"
  "$TARNFS" convert "$T/del" --in-place --verify --delete-source > "$T/d1"
  cat "$T/d1"
  grep -q "verified, source deleted" "$T/d1"
  [ ! -e "$r" ]
  [ -f "$r.tar" ]
  mv "$T/del-copy" "$T/RUN_DEL"
  (cd "$T" && tar -df "$r.tar")
}
check '--verify --delete-source: the run directory goes only after its tarball is verified' t_delete_source

t_changing_file_fails_run() {
  local r=$T/chg/RUN_CHG rc=0 wpid
  mkdir -p "$T/chg"
  $GEN --name RUN_CHG --file-size 256k "$T/chg"
  ( while :; do echo "still writing" >> "$r/Logs/growing.log"; done ) &
  wpid=$!; track_pid "$wpid"
  for _ in $(seq 100); do [ -s "$r/Logs/growing.log" ] && break; sleep 0.05; done
  "$TARNFS" convert "$T/chg" --in-place > "$T/g1" 2>&1 || rc=$?
  kill "$wpid"; wait "$wpid" 2>/dev/null || true
  cat "$T/g1"
  [ $rc -eq 1 ]
  grep -q "FAILED .*growing.log changed" "$T/g1"
  [ ! -e "$r.tar" ]
  ls -a "$T/chg" > "$T/ls"
  not grep -q tmp "$T/ls"
}
check 'a file that changes while it is read fails its run: no tarball, no temporary' t_changing_file_fails_run

t_socket_fails_run() {
  local r=$T/sock/RUN_SOCK rc=0 spid
  mkdir -p "$T/sock"
  $GEN --name RUN_SOCK "$T/sock"
  socat UNIX-LISTEN:"$r/Logs/agent.sock" /dev/null &
  spid=$!; track_pid "$spid"
  for _ in $(seq 50); do [ -S "$r/Logs/agent.sock" ] && break; sleep 0.1; done
  "$TARNFS" convert "$T/sock" --in-place > "$T/s1" 2>&1 || rc=$?
  cat "$T/s1"
  [ $rc -eq 1 ]
  grep -q "FAILED .*agent.sock is a socket" "$T/s1"
  [ ! -e "$r.tar" ]
  kill "$spid"; wait "$spid" 2>/dev/null || true
}
if command -v socat >/dev/null; then
  check 'a socket in a run is reported and the run failed, not half-archived' t_socket_fails_run
else
  skip 'socket in a run' 'socat not installed'
fi

t_unreadable_file() {
  local rc=0
  mkdir -p "$T/unr/runs" "$T/unr/out"
  $GEN --name RUN_OK "$T/unr/runs"
  $GEN --seed 5 --name RUN_LOCKED "$T/unr/runs"
  chown -R nobody:nogroup "$T/unr"
  chmod 755 "$T"
  chown root:root "$T/unr/runs/RUN_LOCKED/SampleSheet.csv"
  chmod 600 "$T/unr/runs/RUN_LOCKED/SampleSheet.csv"
  setpriv --reuid nobody --regid nogroup --clear-groups \
    env ASAN_OPTIONS="${ASAN_OPTIONS:-}" "$TARNFS" convert "$T/unr/runs" --to "$T/unr/out" \
    --verify --delete-source > "$T/u1" 2>&1 || rc=$?
  cat "$T/u1"
  [ $rc -eq 1 ]
  grep -q "FAILED .*RUN_LOCKED.*cannot read .*SampleSheet.csv: Permission denied" "$T/u1"
  grep -q "summary: 2 runs: 1 converted, 0 up to date, 1 failed" "$T/u1"
  [ -d "$T/unr/runs/RUN_LOCKED" ]
  [ -f "$T/unr/runs/RUN_LOCKED/SampleSheet.csv" ]
  [ ! -e "$T/unr/out/RUN_LOCKED.tar" ]
  [ -f "$T/unr/out/RUN_OK.tar" ]
}
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  check 'an unreadable file skips its run with a clear error; other runs go on; nothing of it is deleted' t_unreadable_file
else
  skip 'unreadable file' 'needs root and setpriv to drop to nobody'
fi

t_full_disk() {
  local small=$T/small rc=0
  mkdir -p "$small"
  mount -t tmpfs -o size=6m tmpfs "$small"
  track_mount "$small"
  $GEN --name RUN_BIG --file-size 100k --cycles 12 "$small"   # ~4.7 MiB
  cp -a "$small/RUN_BIG" "$T/RUN_BIG.ref"
  "$TARNFS" convert "$small" --in-place --verify --delete-source > "$T/f1" 2>&1 || rc=$?
  cat "$T/f1"
  [ $rc -eq 1 ]
  grep -q "FAILED .*No space left on device writing .*RUN_BIG.tar.tmp" "$T/f1"
  [ ! -e "$small/RUN_BIG.tar" ]
  [ "$(ls -A "$small")" = RUN_BIG ]
  diff <(source_manifest "$T/RUN_BIG.ref") <(source_manifest "$small/RUN_BIG")
  umount "$small"
}
mkdir -p "$T/probe"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1m tmpfs "$T/probe" 2>/dev/null; then
  umount "$T/probe"
  check 'full disk during in-place conversion: clear error, temporary removed, run untouched' t_full_disk
else
  skip 'full disk' 'cannot mount a small tmpfs here (needs root)'
fi

t_sigint_cleans_up() {
  local rc=0 pid
  mkdir -p "$T/int"
  $GEN --name RUN_INT --file-size 2M --cycles 40 "$T/int"   # ~160 MiB
  "$TARNFS" convert "$T/int" --in-place > "$T/i1" 2>&1 &
  pid=$!; track_pid "$pid"
  for _ in $(seq 300); do ls -a "$T/int" | grep >/dev/null '^\.RUN_INT\.tar\.tmp\.' && break; sleep 0.02; done
  ls -a "$T/int"
  kill -INT "$pid"
  wait "$pid" || rc=$?
  cat "$T/i1"
  [ $rc -eq 1 ]
  grep -q "interrupted" "$T/i1"
  [ ! -e "$T/int/RUN_INT.tar" ]
  ls -a "$T/int" > "$T/ls"
  not grep -q 'RUN_INT.tar.tmp' "$T/ls"
  [ -d "$T/int/RUN_INT" ]
}
check 'Ctrl-C (SIGINT) stops cleanly: temporary removed, no tarball, source kept' t_sigint_cleans_up

. "$ROOT/tests/convert/s3.sh"

summary 60-convert
