#!/usr/bin/env bash
# 01-util: the Check tests of util/ (tests/util/test_*): the persisted hash
# pinned to recorded values, with its kvstore and vfs consumers; the one
# table of tarball suffixes; symlink-safe atomic file writes; hex; the
# settings tables (tarnfsd's checked against tarnfs.conf(5)).
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
B="${B:-build-san}"
status=0 n=0
for t in "$B"/tests/util/test_*; do
  [ -x "$t" ] || continue
  n=$((n+1))
  "$t" || status=1
done
[ $n -gt 0 ] || die "01-util: no test programs in $B/tests/util (make test-programs)"
exit $status
