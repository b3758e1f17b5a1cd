#!/usr/bin/env bash
# e2e-prefetch (nas|s3): `prefetch = auto` through the real tarnfsd and
# libnfs's nfs-ls/nfs-cat, on a NAS directory or a real Ceph RGW bucket (env
# from tests/s3/rgw-start.sh).  An indexed run is served index-first; reading
# less than the threshold fetches only what was read; past it, the rest of
# the run arrives in the background without further READs, every chunk
# fetched once (the bytes fetched stay within one pass over the tarball),
# and every file then reads back with the source's md5 without fetching;
# a run of many small files read by racing readers while its stream stores
# in batches: every reader answered, every chunk fetched once, and readers
# of files the stream is about to bring wait for it rather than fetch them.
set -u
. "$(dirname "$0")/../lib.sh"
mode=${1:?usage: e2e-prefetch.sh nas|s3}
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun" "$B/tests/lazy/mkindex" "$B/tests/s3/s3tool"; do
  [ -x "$p" ] || die "e2e-prefetch: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-prefetch: nfs-cat missing (libnfs-utils)"

work=$(mktemp -d /tmp/prefetch-e2e.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
WHAT_PREFIX="$mode: "

if [ "$mode" = s3 ]; then
  : "${TARNFS_S3_ENDPOINT:?source the env written by tests/s3/rgw-start.sh}"
  BK="$TARNFS_S3_BUCKET/prefetch"
  source="s3://$BK"
  put() { "$B/tests/s3/s3tool" put "$BK" "$1" "$2" >/dev/null || { echo "FAIL - cannot upload $1"; exit 1; }; }
else
  mkdir -p "$work/nas"
  source="$work/nas"
  put() { cp "$2" "$work/nas/$1.tmp" && mv "$work/nas/$1.tmp" "$work/nas/$1"; }
fi

A=241023_A01295_0601_BHAUTORXA    # read past the threshold: prefetched
Q=241023_A01295_0602_BHAUTORXQ    # one small file read: not prefetched
"$B/genrun" -q --name $A --lanes 1 --cycles 4 --tiles 2 --file-size 1200k "$work/src" || exit 1
"$B/genrun" -q --name $Q --lanes 1 --cycles 2 --tiles 1 --seed 2 "$work/src" || exit 1
S=241023_A01295_0603_BHAUTORXS    # many small files, read by racing readers
"$B/genrun" -q --name $S --bcl --lanes 1 --cycles 12 --tiles 60 --file-size 2k --seed 3 "$work/src" || exit 1
T=241023_A01295_0604_BHAUTORXT    # a tarball below prefetch_whole_below
mkdir -p "$work/src/$T"
printf '<RunInfo Version="6"/>\n' > "$work/src/$T/RunInfo.xml"
for r in $A $Q $S $T; do
  tar -C "$work/src" -cf "$work/$r.tar" "$r"
  put "$r.tar" "$work/$r.tar"
  "$B/tests/lazy/mkindex" "$source" "$r.tar" >/dev/null || { echo "FAIL - mkindex $r"; exit 1; }
done

conf="$work/tarnfsd.conf"
{
  echo "cache = $work/cache"
  echo "source = $source"
  [ "$mode" = s3 ] && echo "s3_endpoint = $TARNFS_S3_ENDPOINT"
  echo "prefetch = auto"
  echo "prefetch_after = 1k"
  # Only $T's tarball is this small: the others are index-first.
  echo "prefetch_whole_below = $(stat -c %s "$work/$T.tar")"
  echo "export / 127.0.0.1(ro,insecure)"
} > "$conf"
# Every GET of the many-small-files run ($S: its key has "0603_") waits
# 300 ms before its first byte, as a distant backend would: readers that
# fetched what its stream is about to bring would make many of them (3b).
TARNFS_FAULT="stall:300:1000000:0603_" \
"$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
  --mount-port 0 --port-file "$work/ports" 2>"$work/tarnfsd.log" &
pid=$!
wait_until 10 test -s "$work/ports"
[ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start:"; cat "$work/tarnfsd.log"; exit 1; }
read -r nfsport mountport < "$work/ports"
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
stat_of() { server_stat "$work/cache" "$1"; }   # the counter now
present_col() { "$B/tarnfs" cache ls --cache "$work/cache" | awk -v n="$1" '$1 == n { print $(NF-1) }'; }
size_of() { stat -c %s "$work/src/$1"; }

# 1. Below the threshold (1 KiB, or 64 member ranges): index-first, only
# what is read.
nfs-ls -R "$(url "$A")" > /dev/null 2>&1
check "listing the run fetched no file data" test "$(stat_of range_bytes)" = 0
nfs-cat "$(url "$Q/RunInfo.xml")" > "$work/q.out" 2>/dev/null
check "one small file of another run reads back" cmp -s "$work/q.out" "$work/src/$Q/RunInfo.xml"
check "and fetched only its bytes" test "$(stat_of range_bytes)" = "$(size_of "$Q/RunInfo.xml")"
check "that run was not prefetched" bash -c "! grep -q 'run $Q: .*fetching the rest' '$work/tarnfsd.log'"

# 2. Past the threshold (one member of 1.2 MB): the rest arrives without
# further READs.
rb0=$(stat_of range_bytes)
mapfile -t cbcl < <(cd "$work/src/$A" && find . -name '*.cbcl' | sort | sed 's|^\./||')
for f in "${cbcl[0]}" "${cbcl[1]}"; do
  nfs-cat "$(url "$A/$f")" > "$work/c.out" 2>/dev/null
  check "member $f reads back" cmp -s "$work/c.out" "$work/src/$A/$f"
done
wait_until 30 grep -q "run $A prefetched" "$work/tarnfsd.log"
check "the threshold started a background fetch of the rest" \
  grep -q "run $A: .*fetching the rest" "$work/tarnfsd.log"
check "which finished without further READs" grep -q "run $A prefetched" "$work/tarnfsd.log"
check "tarnfs cache ls shows the run all present" test "$(present_col $A)" = all
files=$(cd "$work/src/$A" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
tarsize=$(stat -c %s "$work/$A.tar")
fetched=$(( $(stat_of range_bytes) - rb0 ))
check "bytes fetched for the run cover its files ($fetched >= $files)" test "$fetched" -ge "$files"
check "and stay within one pass over its tarball ($fetched <= $tarsize): nothing twice" \
  test "$fetched" -le "$tarsize"

# 3. Every file now reads back from the cache: md5 equal, nothing fetched.
rb1=$(stat_of range_bytes)
bad=0
while read -r f; do
  a=$(nfs-cat "$(url "$A/$f")" 2>/dev/null | md5sum | cut -d' ' -f1)
  [ "$a" = "$(md5sum < "$work/src/$A/$f" | cut -d' ' -f1)" ] || { bad=$((bad+1)); echo "  differs: $f"; }
done < <(cd "$work/src/$A" && find . -type f | sed 's|^\./||')
check "every file's md5 equals the source's" test $bad = 0
check "reading them all fetched nothing more" test "$(stat_of range_bytes)" = "$rb1"
check "and no tarball was fetched whole" test "$(stat_of fetches)" = 0

# 3b. A run of many small files read by 16 readers at once: the first fill
# (2 KiB) starts the stream and they race it, parking on files it has
# claimed, and waiting for it when it is about to bring theirs; its stores
# go in batches (up to 512 chunks), so readers wait for a batch.  Every
# reader is answered, every file reads back.
rb2=$(stat_of range_bytes)
rf2=$(stat_of range_fetches)
nsmall=$(cd "$work/src/$S" && find . -type f | wc -l)
# (the client's own leaks are not under test here)
ASAN_OPTIONS=detect_leaks=0 timeout 120 "$B/nfsload" --timeout 60 smallfile --depth 16 \
  "nfs://127.0.0.1/?nfsport=$nfsport&mountport=$mountport&version=3" "/$S" \
  > "$work/sf.out" 2> "$work/sf.err"
check "16 readers racing the stream through $nsmall small files all finish" test $? = 0
wait_until 30 grep -q "run $S prefetched" "$work/tarnfsd.log"
check "their fills started the stream, which finished" grep -q "run $S prefetched" "$work/tarnfsd.log"
check "tarnfs cache ls shows that run all present" test "$(present_col $S)" = all
sfiles=$(cd "$work/src/$S" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
star=$(stat -c %s "$work/$S.tar")
sfetched=$(( $(stat_of range_bytes) - rb2 ))
# (the stream reads through present data in short gaps: readers' fills
# may be read again, once, but no more)
check "its bytes fetched cover its files, at most one pass plus the readers' fills ($sfiles <= $sfetched <= $star + $sfiles)" \
  test "$sfetched" -ge "$sfiles" -a "$sfetched" -le $((star + sfiles))
# The range GETs: the first fills (the 16 in flight when the first one
# started the stream) and the stream's own; not one per file.
sgets=$(( $(stat_of range_fetches) - rf2 ))
check "readers waited for the stream: $sgets range GETs for $nsmall files (<= 24)" \
  test "$sgets" -le 24
bad=0
while read -r f; do
  a=$(nfs-cat "$(url "$S/$f")" 2>/dev/null | md5sum | cut -d' ' -f1)
  [ "$a" = "$(md5sum < "$work/src/$S/$f" | cut -d' ' -f1)" ] || { bad=$((bad+1)); echo "  differs: $f"; }
done < <(cd "$work/src/$S" && find . -type f | sed 's|^\./||' | awk 'NR % 7 == 1')
check "every seventh of its files reads back with the source's md5" test $bad = 0

# 3c. A tarball no larger than prefetch_whole_below is fetched whole on
# first use, not from its index.
for r in $A $Q $S; do
  check "$r's tarball is bigger than $T's" test "$(stat -c %s "$work/$r.tar")" -gt "$(stat -c %s "$work/$T.tar")"
done
rb3=$(stat_of range_bytes)
f3=$(stat_of fetches)
nfs-cat "$(url "$T/RunInfo.xml")" > "$work/t.out" 2>/dev/null
check "a file of the small tarball reads back" cmp -s "$work/t.out" "$work/src/$T/RunInfo.xml"
check "its tarball was fetched whole, once" test "$(stat_of fetches)" = $((f3 + 1))
check "and nothing by range" test "$(stat_of range_bytes)" = "$rb3"
check "the log says why" grep -q "run $T: its tarball ([0-9]* bytes) is no larger than prefetch_whole_below" "$work/tarnfsd.log"
check "and not from its index" bash -c "! grep -q 'run $T loaded from the index' '$work/tarnfsd.log'"

# 4. SIGTERM while nothing is in flight: a clean exit.
kill "$pid"
wait "$pid" 2>/dev/null
rc=$?
pid=
check "tarnfsd exits cleanly after a prefetch ($rc)" test "$rc" = 0

summary "e2e-prefetch ($mode)" || { echo "--- tarnfsd log"; tail -40 "$work/tarnfsd.log"; exit 1; }
