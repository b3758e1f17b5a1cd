#!/usr/bin/env bash
# e2e-evict (nas|s3): eviction of index-first runs through the real tarnfsd
# and libnfs clients, with a cache limit smaller than one indexed run: every
# file of that run reads back right (md5) file by file; another run's file
# data is dropped to make room while its names stay (no index GET again);
# usage and the disk stay under the limit; a file handle kept from before
# reads the same bytes and fileid after the data eviction and after a
# restart; a tarnfsd killed with SIGKILL while it fills and drops leaves a
# cache from which every file still reads right.
set -u
. "$(dirname "$0")/../lib.sh"
mode=${1:?usage: e2e-evict.sh nas|s3}
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun" "$B/tests/lazy/mkindex" "$B/tests/lazy/fhkeep" "$B/tests/s3/s3tool"; do
  [ -x "$p" ] || die "e2e-evict: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-evict: nfs-cat missing (libnfs-utils)"

work=$(mktemp -d /tmp/evict-e2e.XXXXXX)
pid= kpid=
cleanup() {
  [ -n "$kpid" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  exec 9>&- 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
WHAT_PREFIX="$mode: "

S3="$B/tests/s3/s3tool"
if [ "$mode" = s3 ]; then
  : "${TARNFS_S3_ENDPOINT:?source the env written by tests/s3/rgw-start.sh}"
  BK="$TARNFS_S3_BUCKET/evict"
  source="s3://$BK"
  put() { "$S3" put "$BK" "$1" "$2" >/dev/null || { echo "FAIL - cannot upload $1"; exit 1; }; }
else
  mkdir -p "$work/nas"
  source="$work/nas"
  put() { cp "$2" "$work/nas/$1.tmp" && mv "$work/nas/$1.tmp" "$work/nas/$1"; }
fi

# A: 16 files of 1.5 MiB (24 MiB), bigger than the 12 MiB cache; O: 6 MiB.
A=241023_A01295_0601_BHEVICTXA
O=241023_A01295_0602_BHEVICTXO
LIMIT=$((12 * 1024 * 1024))
"$B/genrun" -q --name $A --lanes 1 --cycles 8 --tiles 2 --file-size 1500k "$work/src" || exit 1
"$B/genrun" -q --name $O --lanes 1 --cycles 2 --tiles 2 --file-size 1500k --seed 9 "$work/src" || exit 1
for r in $A $O; do
  tar -C "$work/src" -cf "$work/$r.tar" "$r"
  put "$r.tar" "$work/$r.tar"
  "$B/tests/lazy/mkindex" "$source" "$r.tar" >/dev/null || { echo "FAIL - mkindex $r"; exit 1; }
done
asize=$(cd "$work/src/$A" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "  run $A: $asize bytes of files; cache limit $LIMIT"

conf="$work/tarnfsd.conf"
{
  echo "cache = $work/cache"
  echo "prefetch_whole_below = 0"   # tiny test runs: index-first all the same
  echo "source = $source"
  [ "$mode" = s3 ] && echo "s3_endpoint = $TARNFS_S3_ENDPOINT"
  echo "cache_limit = 12M"
  echo "evict_grace = 500ms"
  echo "export / 127.0.0.1(ro,insecure)"
} > "$conf"
start() {   # start [nfsport mountport]
  rm -f "$work/ports"
  TARNFS_TEST_CLOCK=1 "$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 \
    --nfs-port "${1:-0}" --mount-port "${2:-0}" --port-file "$work/ports" \
    2>>"$work/tarnfsd.log" &
  pid=$!
  wait_until 10 test -s "$work/ports"
  [ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start:"; tail "$work/tarnfsd.log"; exit 1; }
  read -r nfsport mountport < "$work/ports"
}
start
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
stat_of() { server_stat "$work/cache" "$1"; }   # the counter now
md5_of() { md5sum | cut -d' ' -f1; }
read_all() {  # read_all RUN: number of files whose bytes differ
  local bad=0 f
  while read -r f; do
    [ "$(nfs-cat "$(url "$1/$f")" 2>/dev/null | md5_of)" = "$(md5_of < "$work/src/$1/$f")" ] ||
      { bad=$((bad+1)); echo "  differs: $1/$f" >&2; }
  done < <(cd "$work/src/$1" && find . -type f | sed 's|^\./||' | sort)
  echo $bad
}

# A handle kept from the start, on a file of O.
kept=$(cd "$work/src/$O" && find . -name '*.cbcl' | sort | head -1 | sed 's|^\./||')
mkfifo "$work/cmd"
"$B/tests/lazy/fhkeep" "$(url "$O/$kept")" < "$work/cmd" > "$work/fh.out" 2>"$work/fh.err" &
kpid=$!
exec 9>"$work/cmd"
fhread() {    # fhread OUT: read the kept handle's file into OUT; prints ino=
  local n; n=$(grep -c . "$work/fh.out")
  echo "read $1" >&9
  for _ in $(seq 1 300); do [ "$(grep -c . "$work/fh.out")" -gt "$n" ] && break; sleep 0.1; done
  tail -1 "$work/fh.out"
}
ino0=$(fhread "$work/k0")
check "a kept handle reads its file ($ino0)" cmp -s "$work/k0" "$work/src/$O/$kept"

check "every file of the smaller run reads back right" test "$(read_all $O)" = 0
advance_clock "$work/cache" 1s    # past the eviction grace: O may now lose its data

# 1. A run bigger than the whole cache, read file by file, usage and the
# disk sampled all along.
( while :; do
    sed -n 's/^bytes_cached=//p' "$work/cache/stats" >> "$work/usage"
    du -s --block-size=1 "$work/cache/runs" | cut -f1 >> "$work/disk"
    sleep 0.3
  done ) &
spid=$!
check "every file of a run bigger than the cache reads back right (md5)" test "$(read_all $A)" = 0
kill "$spid"; wait "$spid" 2>/dev/null
maxu=$(sort -n "$work/usage" | tail -1)
maxd=$(sort -n "$work/disk" | tail -1)
check "usage stayed under the limit all along (at most $maxu)" test "${maxu:-0}" -le "$LIMIT"
check "and so did the disk (at most $maxd bytes in runs/)" test "${maxd:-0}" -le $((LIMIT + LIMIT / 10))
check "each byte of it was fetched once" test "$(stat_of range_bytes)" -ge "$asize"
de=$(stat_of data_evictions)
check "the other run's file data was dropped for room ($de)" test "${de:-0}" -ge 1
bd=$(stat_of bytes_dropped)
check "and the big run's own oldest data too ($bd bytes dropped)" test "${bd:-0}" -gt $((asize - LIMIT))
bc=$(stat_of bytes_cached)
check "usage stays under the limit ($bc of $LIMIT)" test "$bc" -le "$LIMIT"
disk=$(du -s --block-size=1 "$work/cache/runs" | cut -f1)
check "and so does the disk ($disk bytes in runs/)" test "$disk" -le $((LIMIT + LIMIT / 10))
present_col() { "$B/tarnfs" cache ls --cache "$work/cache" | awk -v n="$1" '$1 == n { print $(NF-1) }'; }
pc=$(present_col $A)
check "tarnfs cache ls shows the big run partly present ($pc)" bash -c "[[ '$pc' =~ ^[0-9]+/$asize\$ ]]"

# 2. The run whose data was dropped keeps its names and handles.
ixf0=$(stat_of index_fetches)
n_o=$(nfs-ls -R "$(url "$O")" 2>/dev/null | grep -c .)
check "its tree still lists ($n_o entries)" test "$n_o" -ge 4
check "without fetching its index again" test "$(stat_of index_fetches)" = "$ixf0"
ino1=$(fhread "$work/k1")
check "the handle kept from before reads the same bytes" cmp -s "$work/k1" "$work/src/$O/$kept"
check "with the same fileid" test "$ino1" = "$ino0"

# 3. After a restart (same ports: the client reconnects with its handle).
kill "$pid" && wait "$pid" 2>/dev/null
pid=
start "$nfsport" "$mountport"
ino2=$(fhread "$work/k2")
check "after a restart the kept handle still reads right" cmp -s "$work/k2" "$work/src/$O/$kept"
check "with the same fileid" test "$ino2" = "$ino0"

# 4. SIGKILL while filling and dropping: every file still reads right.
( while :; do read_all $A >/dev/null 2>&1; done ) &
rpid=$!
# Killed once this server has begun dropping data to make room.
dropping() { test "$(stat_of bytes_dropped)" -gt 0; }
wait_until 60 dropping
kill -9 "$pid"; wait "$pid" 2>/dev/null
# The reader loop and the nfs-cat it was running: a libnfs client whose
# server is gone retries forever, so stop the whole tree, not the loop only.
kill_tree() { kill -STOP "$1" 2>/dev/null; local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null; }
kill_tree "$rpid"; wait "$rpid" 2>/dev/null
pid=
start
check "after a SIGKILL mid-eviction every file of the big run reads right" test "$(read_all $A)" = 0
check "and so does every file of the other run" test "$(read_all $O)" = 0

# 5. Eight readers at once, each over every file of the big run in an order
# of its own: their fills reuse the space of dropped chunks (the
# data file never shrinks, and may stay above the fills' target), and no
# READ may be refused for room (NFS3ERR_JUKEBOX) while the run's own space
# can take it (bench/bigrun met that at 16 GiB through a 1G cache).
advance_clock "$work/cache" 1s
nr0=$(grep -c 'no room in the cache' "$work/tarnfsd.log")
par_read() {  # par_read K: files of A that read back wrong, in order K
  local bad=0 f
  while read -r f; do
    [ "$(nfs-cat "$(url "$A/$f")" 2>/dev/null | md5_of)" = "$(md5_of < "$work/src/$A/$f")" ] ||
      { bad=$((bad+1)); echo "  reader $1: differs: $A/$f" >&2; }
  done < <(cd "$work/src/$A" && find . -type f | sed 's|^\./||' |
             sort | shuf --random-source=<(yes "$1"))
  echo $bad
}
ppids=()
for k in 1 2 3 4 5 6 7 8; do par_read $k > "$work/par.$k" & ppids+=($!); done
wait "${ppids[@]}"
bad=$(cat "$work"/par.? | awk '{ s += $1 } END { print s + 0 }')
check "eight readers at once read every file of the big run right ($bad wrong)" test "$bad" = 0
nr=$(( $(grep -c 'no room in the cache' "$work/tarnfsd.log") - nr0 ))
check "and none was refused for room ($nr refusals)" test "$nr" = 0
bc=$(stat_of bytes_cached)
check "usage stays under the limit ($bc of $LIMIT)" test "$bc" -le "$LIMIT"

# 6. prefetch = auto (the default) found the big run over half of what the
# cache may hold: not fetched whole, its files read as they are asked for.
# That refusal is remembered for 10 minutes: each try was a job that logged
# it and held the run's readers for its first batch (a 100 GiB run through
# a 4 GiB cache tried every 10 s).  Then it is looked at again.
tries() { grep -c "run $A ([0-9]* bytes) is over half of what the cache may hold" "$work/tarnfsd.log"; }
t0=$(tries)
check "reading the big run found it too big to prefetch ($t0 times in all sections)" test "$t0" -ge 1
advance_clock "$work/cache" 11s    # past the quiet time after any prefetch
check "reading it twice more, 11 s after that, reads every file right" \
  test "$(( $(read_all $A) + $(read_all $A) ))" = 0
check "and tried no prefetch of it again ($(tries) refusals)" test "$(tries)" = "$t0"
advance_clock "$work/cache" 10m
check "10 minutes on, reading it twice more reads every file right" \
  test "$(( $(read_all $A) + $(read_all $A) ))" = 0
check "and it was looked at again ($(tries) refusals)" test "$(tries)" -gt "$t0"

summary "e2e-evict ($mode)" || { echo "--- tarnfsd log"; tail -40 "$work/tarnfsd.log"; exit 1; }
