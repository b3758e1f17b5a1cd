#!/usr/bin/env bash
# 45-lazy: index-first runs end to end through the real tarnfsd and libnfs
# clients (tests/lazy/e2e-lazy.sh): the tree from the index alone, member
# range reads verified against the index CRCs, stale and corrupt indexes
# falling back to a full fetch, on a NAS directory and on a real Ceph RGW;
# and `prefetch = auto` (tests/lazy/e2e-prefetch.sh): past its threshold the
# rest of a run arrives in one background pass, nothing fetched twice; and
# eviction of their file data (tests/lazy/test_evict, e2e-evict.sh): a run
# bigger than the cache read file by file, handles kept across data
# eviction and restart, SIGKILL in the middle; and hostile tarballs and
# index sidecars (tests/lazy/e2e-hostile.sh): refused and logged, never
# cached, lying offsets give EIO, a member-count bomb stops at cache_limit.
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
B="${B:-build-san}"
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
echo "--- test_evict (dropping data of index-first runs in kvstore)"
"$B/tests/lazy/test_evict" || status=1
echo "--- e2e-lazy on a NAS directory"
tests/lazy/e2e-lazy.sh nas || status=1
echo "--- e2e-prefetch (prefetch = auto) on a NAS directory"
tests/lazy/e2e-prefetch.sh nas || status=1
echo "--- e2e-evict on a NAS directory"
tests/lazy/e2e-evict.sh nas || status=1
echo "--- e2e-diskfull (a cache on a 40 MiB tmpfs, no cache_limit)"
tests/lazy/e2e-diskfull.sh || status=1
echo "--- e2e-hostile (hostile tarballs and index sidecars on a NAS directory)"
tests/lazy/e2e-hostile.sh || status=1
echo "--- e2e-lazy on S3 (a real Ceph RGW)"
export B
trap rgw_stop EXIT
if rgw_start 45-lazy; then
  ( set -a; . "$RGW_DIR/env"; set +a; tests/lazy/e2e-lazy.sh s3 ) || status=1
  echo "--- e2e-prefetch (prefetch = auto) on S3 (a real Ceph RGW)"
  ( set -a; . "$RGW_DIR/env"; set +a; tests/lazy/e2e-prefetch.sh s3 ) || status=1
  echo "--- e2e-evict on S3 (a real Ceph RGW)"
  ( set -a; . "$RGW_DIR/env"; set +a; tests/lazy/e2e-evict.sh s3 ) || status=1
else
  echo "45-lazy: could not start Ceph RGW" >&2
  status=1
fi
exit $status
