#!/usr/bin/env bash
# 40-vfs: the namespace nfsd serves: cache mode (runs already ingested) and
# the tarball namespace on a real NAS directory of GNU-tar tarballs (fetch
# on first touch, single-flight, eviction, restart, faults, replacement),
# the same on a real Ceph RGW, and end to end through tarnfsd + nfs-cat.
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
B="${B:-build-san}"
# See the file for why: a Kyoto Cabinet leak on cross-thread close.
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
for t in test_vfs_cache test_vfs_source; do
  prog="$B/tests/vfs/$t"
  if [ ! -x "$prog" ]; then
    echo "40-vfs: missing $prog (run make test-programs)" >&2
    status=1
    continue
  fi
  echo "--- $t"
  "$prog" || status=1
done
echo "--- test_vfs_s3 (against a real Ceph RGW)"
if [ ! -x "$B/tests/vfs/test_vfs_s3" ] || [ ! -x "$B/tests/s3/s3tool" ]; then
  echo "40-vfs: missing $B/tests/vfs/test_vfs_s3 or s3tool (run make test-programs)" >&2
  status=1
else
  export B
  trap rgw_stop EXIT
  if rgw_start 40-vfs; then
    ( set -a; . "$RGW_DIR/env"; set +a; "$B/tests/vfs/test_vfs_s3" ) || status=1
  else
    echo "40-vfs: could not start Ceph RGW" >&2
    status=1
  fi
  rgw_stop
  trap - EXIT
fi
echo "--- e2e-namespace (tarnfsd + nfs-ls/nfs-cat on a NAS directory)"
tests/vfs/e2e-namespace.sh || status=1
echo "--- e2e-stream (runs served while their tarball streams in)"
tests/vfs/e2e-stream.sh || status=1
exit $status
