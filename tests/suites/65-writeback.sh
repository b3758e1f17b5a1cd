#!/usr/bin/env bash
# 65-writeback: the writable tarball namespace end to end: changes made over
# NFS are written back as new tarballs (flush, idle delay, SIGTERM), with
# conflicts, injected failures and kill -9, on a NAS directory
# (tests/writeback/e2e.sh) and on a real Ceph RGW (tests/writeback/e2e-s3.sh);
# `tarnfs cache evict` never drops a change (tests/writeback/evict.sh); a
# deep tree, failing write-backs and leftover temp files (deep.sh).
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
B="${B:-build-san}"
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
status=0
echo "--- e2e on a NAS directory (tarnfsd + nfs-cp/nfs-cat)"
tests/writeback/e2e.sh || status=1
echo "--- tarnfs cache evict never loses a change (tests/writeback/evict.sh)"
tests/writeback/evict.sh || status=1
echo "--- a deep tree written back; failing write-backs back off (tests/writeback/deep.sh)"
tests/writeback/deep.sh || status=1
echo "--- e2e on S3 (a real Ceph RGW)"
export B
trap rgw_stop EXIT
if rgw_start 65-wb; then
  ( set -a; . "$RGW_DIR/env"; set +a; tests/writeback/e2e-s3.sh ) || status=1
else
  echo "65-writeback: could not start Ceph RGW" >&2
  status=1
fi
exit $status
