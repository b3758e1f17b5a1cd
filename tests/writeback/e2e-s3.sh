#!/usr/bin/env bash
# e2e-s3 (writeback): the write-back path on a real Ceph RGW bucket (env from
# tests/s3/rgw-start.sh): a changed run is flushed as a new object (If-Match,
# GNU tar -d against the original), a second tarnfsd reads the change, a new
# run becomes a new object (If-None-Match), a conflict keeps both versions,
# an injected upload failure keeps the run dirty and leaves no unfinished
# multipart upload, and the next write-back succeeds.
set -u
. "$(dirname "$0")/../lib.sh"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
: "${TARNFS_S3_ENDPOINT:?source the env written by tests/s3/rgw-start.sh}"
: "${TARNFS_S3_BUCKET:?}"
S3="$B/tests/s3/s3tool"
BK="$TARNFS_S3_BUCKET/wb"
work=$(mktemp -d /tmp/wb-s3.XXXXXX)
cleanup() { stop_tracked; rm -rf "$work"; }
trap cleanup EXIT
start() {   # start NAME CACHE ro|rw [env...]
  local name=$1 cache=$2 rw=$3; shift 3
  cat > "$work/$name.conf" <<CONF
cache = $cache
source = s3://$BK
s3_endpoint = $TARNFS_S3_ENDPOINT
writeback_delay = 60m
export / 127.0.0.1($rw,no_root_squash,insecure)
CONF
  rm -f "$work/$name.ports"
  env "$@" "$B/tarnfsd" -f --config "$work/$name.conf" --no-rpcbind --listen 127.0.0.1 \
    --nfs-port 0 --mount-port 0 --port-file "$work/$name.ports" 2>>"$work/$name.log" &
  local p=$!
  track "$p"
  eval "pid_$name=$p"
  wait_until 10 test -s "$work/$name.ports"
  [ -s "$work/$name.ports" ] || { echo "FAIL - tarnfsd $name did not start:"; cat "$work/$name.log"; exit 1; }
  eval "port_$name='$(cat "$work/$name.ports")'"
}
url() { local ports; eval "ports=\$port_$1"; set -- "$2" $ports
        echo "nfs://127.0.0.1/$1?nfsport=$2&mountport=$3&version=3"; }
nfs_supp="$(cd "$(dirname "$0")/../nfs" && pwd)/lsan.supp"
nfsop() { LSAN_OPTIONS="suppressions=$nfs_supp:print_suppressions=0" "$B/tests/writeback/nfsop" "$@"; }
flush() { "$B/tarnfs" flush --cache "$1" --timeout 120 "$2"; }
get() { "$S3" get "$BK" "$1" "$2" >/dev/null 2>&1; }

mkdir -p "$work/src"
R1=241023_A01295_0441_BHK3S3RX1 R2=241023_A01295_0442_BHK3S3RX2 R3=241023_A01295_0443_BHK3S3RX3
i=0
for r in $R1 $R2 $R3; do
  i=$((i+1))
  "$B/genrun" -q --name "$r" --lanes 1 --cycles 2 --tiles 1 --seed $i "$work/src" || exit 1
  tar -C "$work/src" -cf "$work/$r.tar" "$r"
  "$S3" put "$BK" "$r.tar" "$work/$r.tar" >/dev/null || { echo "FAIL - cannot upload $r.tar"; exit 1; }
done
printf 'written over NFS into S3\n%.0s' $(seq 1 200) > "$work/new.txt"

start A "$work/cacheA" rw TARNFS_FAULT="put:5:1:$R3"

nfs-cat "$(url A "$R1/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R1/new.txt")" >/dev/null 2>&1
check "a file is written into a run fetched from S3" test $? -eq 0
etag() { "$S3" stat "$BK" "$1" 2>/dev/null | cut -f3; }
etag0=$(etag "$R1.tar")
flush "$work/cacheA" "$R1" >/dev/null 2>"$work/flush.err"
check "tarnfs flush writes the run back to S3" test $? -eq 0
check "the object has a new ETag" test -n "$etag0" -a "$(etag "$R1.tar")" != "$etag0"
get "$R1.tar" "$work/r1.new.tar"
tar -df "$work/r1.new.tar" -C "$work/src" > "$work/diff.out" 2>&1
check "GNU tar -d: the original members unchanged, new.txt extra" \
  test "$(cat "$work/diff.out")" = "tar: $R1/new.txt: Warning: Cannot stat: No such file or directory"
check "new.txt is in the object byte for byte" \
  bash -c "tar -xOf '$work/r1.new.tar' '$R1/new.txt' | cmp -s - '$work/new.txt'"
check "the object carries its SHA-256" \
  bash -c "'$S3' stat '$BK' '$R1.tar' | grep -qi \"\$(sha256sum < '$work/r1.new.tar' | cut -c1-64)\""

start B2 "$work/cacheB" ro
nfs-cat "$(url B2 "$R1/new.txt")" > "$work/b.out" 2>"$work/b.err"
check "a second tarnfsd on the bucket serves the change" cmp -s "$work/b.out" "$work/new.txt"
if ! cmp -s "$work/b.out" "$work/new.txt"; then   # seen once in ten runs: say why
  echo "    nfs-cat: $(head -c 300 "$work/b.err"); got $(wc -c < "$work/b.out") bytes"
  echo "    --- server B2 log"; sed 's/^/    /' "$work/B2.log"
fi

NEW=251201_A01295_0501_NEWS3RUN
nfsop "$(url A '')" mkdir "/$NEW" 2>/dev/null
nfs-cp "$work/new.txt" "$(url A "$NEW/a.txt")" >/dev/null 2>&1
flush "$work/cacheA" "$NEW" >/dev/null 2>&1
get "$NEW.tar" "$work/new.tar"
check "a run made with MKDIR becomes a new object" \
  bash -c "tar -xOf '$work/new.tar' '$NEW/a.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

nfs-cat "$(url A "$R2/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R2/mine.txt")" >/dev/null 2>&1
cp "$work/$R1.tar" "$work/theirs.tar"
"$S3" put "$BK" "$R2.tar" "$work/theirs.tar" >/dev/null
flush "$work/cacheA" "$R2" >/dev/null 2>&1
check "a flush meeting a replaced object reports a conflict" test $? -eq 3
get "$R2.tar" "$work/r2.now.tar"
check "the other version is not overwritten" cmp -s "$work/r2.now.tar" "$work/theirs.tar"
ck=$("$S3" ls "$BK" 2>/dev/null | grep -o "$R2\.conflict-[^ ]*\.tar" | head -1)
check "this server's version is kept as $R2.conflict-...tar" \
  bash -c "[ -n '$ck' ] && '$S3' get '$BK' '$ck' - 2>/dev/null | tar -xOf - '$R2/mine.txt' | cmp -s - '$work/new.txt'"

nfs-cat "$(url A "$R3/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R3/f.txt")" >/dev/null 2>&1
flush "$work/cacheA" "$R3" >/dev/null 2>&1
check "an injected S3 failure fails the write-back" test $? -ne 0
check "the run stays dirty" bash -c "'$B/tarnfs' cache ls --cache '$work/cacheA' | awk '\$1 == \"$R3\" { print \$NF }' | grep -qv '^-\$'"
check "no unfinished multipart upload is left behind" test -z "$("$S3" uploads "$BK" 2>/dev/null)"
flush "$work/cacheA" "$R3" >/dev/null 2>&1
get "$R3.tar" "$work/r3.tar"
check "a later write-back succeeds" \
  bash -c "tar -xOf '$work/r3.tar' '$R3/f.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

# --- kill -9 in the middle of an upload ------------------------------------
head -c 24M /dev/urandom > "$work/big.bin"
nfs-cp "$work/big.bin" "$(url A "$R1/big.bin")" >/dev/null 2>&1
etag_before=$(etag "$R1.tar")
flush "$work/cacheA" "$R1" >/dev/null 2>&1 &
fpid=$!
caught=0
for _ in $(seq 1 500); do
  if [ -n "$("$S3" uploads "$BK" 2>/dev/null)" ]; then kill -9 "$pid_A"; caught=1; break; fi
  sleep 0.02
done
wait "$fpid" 2>/dev/null
wait "$pid_A" 2>/dev/null
if [ $caught = 1 ] && [ -n "$("$S3" uploads "$BK" 2>/dev/null)" ]; then
  check "kill -9 during an upload leaves the old object intact" test "$(etag "$R1.tar")" = "$etag_before"
  start A "$work/cacheA" rw
  check "the restarted server aborts the upload left behind" test -z "$("$S3" uploads "$BK" 2>/dev/null)"
  check "and the run is still dirty" \
    bash -c "'$B/tarnfs' cache ls --cache '$work/cacheA' | awk '\$1 == \"$R1\" { print \$NF }' | grep -qv '^-\$'"
  flush_out() { flush "$@" > "$work/flush.out" 2>&1 || { echo "exit $?"; cat "$work/flush.out"; return 1; }; }
  check "the restarted server writes the run back (tarnfs flush)" flush_out "$work/cacheA" "$R1"
  get "$R1.tar" "$work/r1.big.tar"
  check "the next write-back uploads every committed byte" \
    bash -c "tar -xOf '$work/r1.big.tar' '$R1/big.bin' | cmp -s - '$work/big.bin'"
else
  skip "kill -9 during an upload" "the upload finished before it could be interrupted"
fi

summary "writeback e2e-s3" || { echo "--- server A log (tail)"; tail -30 "$work/A.log"; exit 1; }
