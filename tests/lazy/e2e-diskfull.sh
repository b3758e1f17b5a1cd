#!/usr/bin/env bash
# e2e-diskfull: a cache on a small filesystem (a 40 MiB tmpfs in a private
# mount namespace) and no cache_limit, served through the real tarnfsd and
# libnfs clients from a NAS directory: the filesystem itself bounds the
# cache.  Every file of an indexed run of 96 MiB reads back right (md5), the
# filesystem never fills, a small run read after it lists and reads; a run
# without an index that is bigger than the filesystem fails with a line
# saying so, and tarnfsd lives on through all of it (before: reads failed
# with EIO once the disk was full, then tarnfsd died of SIGBUS in Kyoto
# Cabinet's mapped writes).
set -u
. "$(dirname "$0")/../lib.sh"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun" "$B/tests/lazy/mkindex"; do
  [ -x "$p" ] || die "e2e-diskfull: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-diskfull: nfs-cat missing (libnfs-utils)"
[ "$(id -u)" = 0 ] || skip_all "needs root (a tmpfs in a private mount namespace)"

# A private mount namespace: the tmpfs goes when the script ends, whatever happens.
if [ "${DISKFULL_IN_NS:-}" != 1 ]; then
  exec unshare --mount --propagation private env DISKFULL_IN_NS=1 B="$B" "$0" "$@"
fi

work=$(mktemp -d /tmp/diskfull-e2e.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  umount "$work/cache" "$work/cache2" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

FS_MB=40
mkdir -p "$work/cache" "$work/nas" "$work/src"
mount -t tmpfs -o size=${FS_MB}m tarnfs-diskfull "$work/cache" || die "e2e-diskfull: cannot mount a tmpfs"

A=241023_A01295_0701_BHDISKFXA    # indexed, 64 files of 1.5 MiB: 96 MiB
O=241023_A01295_0702_BHDISKFXO    # indexed, small
W=241023_A01295_0703_BHDISKFXW    # no index, 60 MiB: fetched whole, bigger than the filesystem
X=241023_A01295_0704_BHDISKFXX    # no index, 18 MiB: fetched whole, fits once others make room
"$B/genrun" -q --name $A --lanes 2 --cycles 16 --tiles 2 --file-size 1500k "$work/src" || exit 1
"$B/genrun" -q --name $O --lanes 1 --cycles 2 --tiles 2 --file-size 200k --seed 9 "$work/src" || exit 1
"$B/genrun" -q --name $W --lanes 1 --cycles 20 --tiles 2 --file-size 1500k --seed 5 "$work/src" || exit 1
"$B/genrun" -q --name $X --lanes 1 --cycles 6 --tiles 2 --file-size 1500k --seed 7 "$work/src" || exit 1
for r in $A $O $W $X; do tar -C "$work/src" -cf "$work/nas/$r.tar" "$r"; done
for r in $A $O; do
  "$B/tests/lazy/mkindex" "$work/nas" "$r.tar" >/dev/null || { echo "FAIL - mkindex $r"; exit 1; }
done
asize=$(cd "$work/src/$A" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "  run $A: $asize bytes of files; cache on a ${FS_MB} MiB tmpfs, no cache_limit"

conf="$work/tarnfsd.conf"
{
  echo "cache = $work/cache"
  echo "source = $work/nas"
  echo "prefetch_whole_below = 0"
  echo "evict_grace = 200ms"
  echo "export / 127.0.0.1(ro,insecure)"
} > "$conf"
"$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 --mount-port 0 \
  --port-file "$work/ports" 2>>"$work/tarnfsd.log" &
pid=$!
wait_until 10 test -s "$work/ports"
[ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start:"; tail "$work/tarnfsd.log"; exit 1; }
read -r nfsport mountport < "$work/ports"
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
md5_of() { md5sum | cut -d' ' -f1; }
read_all() {  # read_all RUN: number of files whose bytes differ
  local bad=0 f
  while read -r f; do
    [ "$(NFS_CLIENT_TIMEOUT=120 nfs-cat "$(url "$1/$f")" 2>/dev/null | md5_of)" = "$(md5_of < "$work/src/$1/$f")" ] ||
      { bad=$((bad+1)); echo "  differs: $1/$f" >&2; }
  done < <(cd "$work/src/$1" && find . -type f | sed 's|^\./||' | sort)
  echo $bad
}
alive() { kill -0 "$pid" 2>/dev/null; }
avail_kb() { df --output=avail -k "$work/cache" | tail -1 | tr -d ' '; }

( while :; do avail_kb >> "$work/avail"; sleep 0.2; done ) &
spid=$!
check "every file of a run 2.4x the cache filesystem reads back right (md5)" test "$(read_all $A)" = 0
kill "$spid"; wait "$spid" 2>/dev/null
check "tarnfsd is alive after it" alive
mina=$(sort -n "$work/avail" | head -1)
check "the filesystem never filled (least free: ${mina} KiB)" test "${mina:-0}" -ge 512
check "a small run read after it lists" test "$(nfs-ls -R "$(url "$O")" 2>/dev/null | grep -c .)" -ge 4
check "and every file of it reads back right" test "$(read_all $O)" = 0

# A run fetched whole that fits only once other runs' data goes.
check "a run fetched whole into the full cache reads back right" \
  test "$(read_all $X)" = 0

# A run fetched whole that the filesystem cannot hold: refused, said, survived.
wf=$(cd "$work/src/$W" && find . -name '*.cbcl' | sort | head -1 | sed 's|^\./||')
NFS_CLIENT_TIMEOUT=120 nfs-cat "$(url "$W/$wf")" > "$work/w.out" 2>/dev/null
wrc=$?
check "a run bigger than the cache filesystem is refused (nfs-cat status $wrc)" test "$wrc" != 0
check "with a log line saying the cache has no room for it" \
  grep -q "run $W.*\(cache_limit\|cache filesystem\|No space\)" "$work/tarnfsd.log"
check "tarnfsd is alive after that too" alive
check "the runs read before still read right afterwards" test "$(read_all $O)$(read_all $X)" = 00
check "tarnfsd never crashed (no sanitizer report, no fatal signal)" \
  not grep -q "ERROR: AddressSanitizer\|runtime error\|SIGBUS\|SIGSEGV" "$work/tarnfsd.log"
grep -E 'error|warn' "$work/tarnfsd.log" | head -5 | sed 's/^/    log: /'
kill "$pid"; wait "$pid" 2>/dev/null; pid=

# A writable export on a full disk: writes fail with NOSPC, the server
# answers on and stops promptly (before: a commit that failed left a Kyoto
# Cabinet transaction open, and the next change of that run, the
# write-back at shutdown included, waited for it forever).
mkdir -p "$work/cache2" "$work/nas2"
mount -t tmpfs -o size=20m tarnfs-diskfull2 "$work/cache2" || die "e2e-diskfull: cannot mount a tmpfs"
tar -C "$work/src" -cf "$work/nas2/$O.tar" "$O"
{
  echo "cache = $work/cache2"
  echo "source = $work/nas2"
  echo "export / 127.0.0.1(rw,insecure,no_root_squash)"
} > "$work/rw.conf"
"$B/tarnfsd" -f --rw --config "$work/rw.conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
  --mount-port 0 --port-file "$work/ports2" 2>>"$work/tarnfsd-rw.log" &
pid=$!
wait_until 10 test -s "$work/ports2"
read -r nfsport mountport < "$work/ports2"
head -c 30000000 /dev/urandom > "$work/big.bin"
NFS_CLIENT_TIMEOUT=120 nfs-cp "$work/big.bin" "$(url "$O/big.bin")" >/dev/null 2>&1
check "a write bigger than the cache filesystem fails (nfs-cp status $?)" test $? != 0
head -c 100000 /dev/urandom > "$work/small.bin"
NFS_CLIENT_TIMEOUT=60 nfs-cp "$work/small.bin" "$(url "$O/small.bin")" > "$work/small.out" 2>&1
check "a write to the full disk then fails too (nfs-cp status $?)" test $? != 0
check "the run still lists" test "$(NFS_CLIENT_TIMEOUT=30 nfs-ls "$(url "$O")" 2>/dev/null | grep -c .)" -ge 4
kill "$pid"
stopped() { ! kill -0 "$pid" 2>/dev/null; }
check "SIGTERM stops it within 30 s" wait_until 30 stopped
stopped || kill -9 "$pid"
wait "$pid" 2>/dev/null; pid=
check "and it never crashed" \
  not grep -q "ERROR: AddressSanitizer\|runtime error\|SIGBUS\|SIGSEGV" "$work/tarnfsd-rw.log"
umount "$work/cache2"
summary e2e-diskfull
