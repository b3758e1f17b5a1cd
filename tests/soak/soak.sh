#!/usr/bin/env bash
# soak.sh (`make soak`): SOAK_CLIENTS (64) libnfs clients for SOAK_SECONDS
# (600) against one tarnfsd on a rw export of SOAK_RUNS (8) tarballs in a NAS
# directory: reads checked against the first read, directory listings and
# stats, files written, committed and read back, removes; meanwhile
# `tarnfs cache evict` (every 4 s, of a run clients only read) evicts runs,
# a run idle for 3 s is written back, and the server is restarted once
# halfway (clients park first; its SIGTERM writes every change back).
# Passes when no client saw an error, no sanitizer report is in the server
# log, every committed file is in its tarball after the final stop, and the
# server's RSS stayed bounded (samples every 2 s; the second half's peak is
# at most 1.5 x the first half's peak + 64 MiB).  Prints the numbers.
set -u
cd "$(dirname "$0")/../.."
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
SECS="${SOAK_SECONDS:-600}" CLIENTS="${SOAK_CLIENTS:-64}" NRUNS="${SOAK_RUNS:-8}"
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun" "$B/tests/soak/soakclient"; do
  [ -x "$p" ] || { echo "soak: missing $p (make build-all test-programs)" >&2; exit 1; }
done
W=$(mktemp -d /tmp/tarnfs-soak.XXXXXX)
spid=
cleanup() { [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
[ -n "${SOAK_KEEP:-}" ] && trap - EXIT     # debugging: keep $W (and logs)
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0"
# A bounded ASan quarantine, so RSS measures tarnfsd and not freed memory
# ASan holds back (256 MiB by default).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:quarantine_size_mb=16"
mkdir -p "$W/src" "$W/nas"
runs=()
for i in $(seq 1 "$NRUNS"); do
  r=241023_A01295_05${i}_SOAKRUN$i
  "$B/genrun" -q --name "$r" --lanes 1 --cycles 2 --tiles 1 --seed "$i" "$W/src" || exit 1
  tar -C "$W/src" -cf "$W/nas/$r.tar" "$r"
  runs+=("$r")
done
cat > "$W/conf" <<CONF
cache = $W/cache
source = $W/nas
writeback_delay = 3s
cache_limit = 32M
# Every client is 127.0.0.1: one MOUNT and one NFS connection each.
max_connections_per_host = 256
export / 127.0.0.1(rw,no_root_squash,insecure)
CONF
start() {   # start [NFSPORT MOUNTPORT]
  rm -f "$W/ports"
  "$B/tarnfsd" -f --config "$W/conf" --no-rpcbind --listen 127.0.0.1 \
    --nfs-port "${1:-0}" --mount-port "${2:-0}" --port-file "$W/ports" 2>>"$W/tarnfsd.log" &
  spid=$!
  for _ in $(seq 1 100); do [ -s "$W/ports" ] && break; sleep 0.1; done
  [ -s "$W/ports" ] || { echo "soak: tarnfsd did not start"; tail "$W/tarnfsd.log"; exit 1; }
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$spid/status" 2>/dev/null; }
start
read -r nport mport < "$W/ports"
url="nfs://127.0.0.1/?nfsport=$nport&mountport=$mport&version=3"
t0=$(date +%s)
LSAN_OPTIONS="suppressions=$PWD/tests/nfs/lsan.supp:print_suppressions=0" \
  "$B/tests/soak/soakclient" "$url" "$SECS" "$CLIENTS" "$W/pause" "$W/parked" "${runs[@]}" \
  > "$W/client.out" 2> "$W/client.err" &
cpid=$!
restarted=0 evicts=0
: > "$W/rss"
while kill -0 "$cpid" 2>/dev/null; do
  now=$(( $(date +%s) - t0 ))
  echo "$now $(rss_kb)" >> "$W/rss"
  if [ $restarted = 0 ] && [ $now -ge $((SECS / 2)) ]; then
    touch "$W/pause"
    for _ in $(seq 1 600); do [ -e "$W/parked" ] && break; sleep 0.1; done
    kill -TERM "$spid"; wait "$spid"; rc=$?
    [ $rc -eq 0 ] || echo "soak: tarnfsd exited with status $rc at the restart"
    start "$nport" "$mport"
    rm -f "$W/pause"
    restarted=1
    echo "soak: restarted tarnfsd at ${now}s"
  fi
  if [ $(( now % 4 )) -lt 2 ]; then   # a run clients only read: clean
    "$B/tarnfs" cache evict --cache "$W/cache" --timeout 5 "${runs[$(( NRUNS / 2 + RANDOM % (NRUNS - NRUNS / 2) ))]}" >/dev/null 2>&1 && evicts=$((evicts+1))
  fi
  sleep 2
done
wait "$cpid"; crc=$?
# The final stop writes every change back; each client's last file (if
# present) must then be in its run's tarball, equal to what the server serves.
kill -TERM "$spid"; wait "$spid"; src=$?; spid=
status=0
cat "$W/client.out"
[ $crc -eq 0 ] || { echo "soak: FAIL - clients saw errors:"; head -20 "$W/client.err"; status=1; }
[ $src -eq 0 ] || { echo "soak: FAIL - tarnfsd exited with status $src"; status=1; }
if grep -q 'Sanitizer\|runtime error' "$W/tarnfsd.log"; then
  echo "soak: FAIL - sanitizer report:"; grep -m1 -A30 'Sanitizer\|runtime error' "$W/tarnfsd.log"; status=1
fi
grep -q CONFLICT "$W/tarnfsd.log" && { echo "soak: FAIL - a write-back conflict"; status=1; }
missing=0
start "$nport" "$mport"
for i in $(seq 0 $((CLIENTS - 1))); do
  r=${runs[$(( i % (NRUNS / 2) ))]} f=$(printf 'soak-%02d.bin' "$i")
  if tar -tf "$W/nas/$r.tar" "$r/$f" >/dev/null 2>&1; then
    tar -xOf "$W/nas/$r.tar" "$r/$f" > "$W/t.bin"
    nfs-cat "nfs://127.0.0.1/$r/$f?nfsport=$nport&mountport=$mport&version=3" > "$W/s.bin" 2>/dev/null
    cmp -s "$W/t.bin" "$W/s.bin" || missing=$((missing+1))
  fi
done
kill -TERM "$spid"; wait "$spid"; spid=
[ $missing = 0 ] || { echo "soak: FAIL - $missing files differ between tarball and server"; status=1; }
half=$((SECS / 2))
read -r first_max second_max last < <(awk -v h="$half" '$2 != "" { if ($1 < h) { if ($2 > a) a = $2 } else { if ($2 > b) b = $2 }; l = $2 } END { print a+0, b+0, l+0 }' "$W/rss")
echo "soak: ${SECS}s, $CLIENTS clients, $NRUNS runs, one restart, $evicts tarnfs cache evict, $(grep -c 'evicted run' "$W/tarnfsd.log") evictions, $(grep -c 'wrote back run' "$W/tarnfsd.log") write-backs"
echo "soak: tarnfsd RSS peak first half $((first_max / 1024)) MiB, second half $((second_max / 1024)) MiB, last $((last / 1024)) MiB ($(wc -l < "$W/rss") samples)"
if [ "$second_max" -gt $(( first_max * 3 / 2 + 65536 )) ]; then
  echo "soak: FAIL - RSS grew"; status=1
fi
[ $status = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit $status
