#!/usr/bin/env bash
# 35-s3: the S3 backend against a real Ceph RGW: starts a throwaway cluster
# (tests/s3/rgw-start.sh), runs the Check tests of fetch/ against it, checks
# the start script's guards and s3tool, and stops the cluster by its PIDs.
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
B="${B:-build-san}"
for p in "$B/tests/fetch/test_s3" "$B/tests/s3/s3tool"; do
  [ -x "$p" ] || die "35-s3: missing $p (run make test-programs)"
done
export B
trap rgw_stop EXIT
start=$(date +%s%N)
# rgw_start (tests/lib.sh): the same tries and pauses as every other suite
if ! rgw_start 35-s3; then
  echo "35-s3: could not start Ceph RGW; its log:" >&2
  tail -30 "$RGW_DIR/start.log" >&2
  exit 1
fi
echo "35-s3: RGW up in $(( ($(date +%s%N) - start) / 1000000 )) ms"
set -a; . "$RGW_DIR/env"; set +a
status=0
# Ports inside the ephemeral range collide with outgoing connections (the
# daemon's bind fails): bench/compare's start died twice that way.
read -r eph_lo eph_hi < /proc/sys/net/ipv4/ip_local_port_range
check "the cluster's ports are picked outside the ephemeral range ($eph_lo-$eph_hi)" \
  bash -c 'out() { [ "$1" -lt "$lo" ] || [ "$1" -gt "$hi" ]; }
           lo=$2 hi=$3
           read -r m o r <<< "$(sed -n "s/.*mon on \([0-9]*\), osd ports \([0-9]*\)+, rgw on \([0-9]*\).*/\1 \2 \3/p" "$1" | tail -1)"
           [ -n "$m" ] && out "$m" && out "$o" && out $((o + 7)) && out "$r"' _ "$RGW_DIR/start.log" "$eph_lo" "$eph_hi"

echo "--- test_s3"
"$B/tests/fetch/test_s3" 2> "$RGW_DIR/test_s3.log" || { status=1; tail -40 "$RGW_DIR/test_s3.log"; }

S3TOOL="$B/tests/s3/s3tool"
echo "--- rgw scripts and s3tool"
check "a second start in the same directory is refused" \
  bash -c 'tests/s3/rgw-start.sh 2>&1 | grep -q "already running"'
other=$(mktemp -d /tmp/tarnfs-35-s3-other.XXXXXX)
check "a busy port is reported" \
  bash -c "RGW_DIR=$other tests/s3/rgw-start.sh -p $RGW_PORT 2>&1 | grep -q 'port $RGW_PORT on 127.0.0.1 is busy'"
rm -rf "$other"
head -c 1500000 /dev/urandom > "$RGW_DIR/blob"
check "s3tool put (multipart) and get round-trip a blob" \
  bash -c "'$S3TOOL' put --part-size 200000 '$TARNFS_S3_BUCKET' 'tool/blob 1.tar' '$RGW_DIR/blob' >/dev/null &&
           '$S3TOOL' get '$TARNFS_S3_BUCKET' 'tool/blob 1.tar' - | cmp -s - '$RGW_DIR/blob'"
check "s3tool stat shows the SHA-256 stored with the object" \
  bash -c "'$S3TOOL' stat '$TARNFS_S3_BUCKET' 'tool/blob 1.tar' | grep -q \$(sha256sum < '$RGW_DIR/blob' | cut -c1-64)"
check "a wrong secret gives a clear message and no secret" \
  bash -c "out=\$(AWS_SECRET_ACCESS_KEY=definitely-wrong '$S3TOOL' ls '$TARNFS_S3_BUCKET' 2>&1);
           echo \"\$out\" | grep -q 'S3 rejected the secret key for access key id $AWS_ACCESS_KEY_ID (SignatureDoesNotMatch)' &&
           ! echo \"\$out\" | grep -q definitely-wrong"
check "no multipart upload is left behind" \
  bash -c "[ -z \"\$('$S3TOOL' uploads '$TARNFS_S3_BUCKET')\" ]"
pids=$(awk '{printf "%s ", $2}' "$RGW_DIR/pids")
tests/s3/rgw-stop.sh -k "$RGW_DIR" >/dev/null
check "stop ends exactly the recorded daemons" \
  bash -c "for p in $pids; do ! kill -0 \$p 2>/dev/null || exit 1; done"
rm -rf "$RGW_DIR"
trap - EXIT
# A second cluster on a filesystem 96 % full (a tmpfs of its own, in a
# mount namespace): Ceph's monitor stops itself under 5 % free by default,
# and bench/compare, which fills the disk with its data sets, lost its S3
# rows to that ("a daemon died while waiting for the monitor").
# (2 GiB with 1.92 GiB taken: 4 % free, and still 80 MB for the daemons'
# own files; a 512 MiB one left the OSD too little once.)
check "the test cluster starts on a filesystem 96 % full" \
  unshare --mount bash -c 'set -e
    d=$(mktemp -d /tmp/tarnfs-35-s3-full.XXXXXX)
    mount -t tmpfs -o size=2G tmpfs "$d"
    fallocate -l 1966M "$d/fill"
    # with rgw_start'"'"'s tries and pauses: the OSD sometimes dies at start
    # right after another cluster stopped (tests/lib.sh)
    for try in 1 2 3; do
      rc=0; RGW_DIR="$d/c" RGW_MEM_MB=256 tests/s3/rgw-start.sh >/dev/null || rc=$?
      [ $rc = 0 ] && break
      df -h "$d"; tail -n 20 "$d/c/start.log" "$d"/c/log/*.log
      tests/s3/rgw-stop.sh -k "$d/c" >/dev/null 2>&1 || true
      rm -rf "$d/c"; [ $try = 3 ] || sleep $((try * 10))
    done
    tests/s3/rgw-stop.sh -k "$d/c" >/dev/null 2>&1 || true
    umount "$d"; rmdir "$d"
    exit $rc'
summary 35-s3 || status=1
exit $status
