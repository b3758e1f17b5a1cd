#!/usr/bin/env bash
# 40-vfs: the namespace nfsd serves: cache mode (runs already ingested) and
# the tarball namespace on a real NAS directory of GNU-tar tarballs (fetch
# on first touch, single-flight, eviction, restart, faults, replacement).
set -u
cd "${TARNFS_ROOT:-.}"
B="${B:-build-san}"
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
echo "--- e2e-namespace (tarnfsd + nfs-ls/nfs-cat on a NAS directory)"
tests/vfs/e2e-namespace.sh || status=1
exit $status
