#!/usr/bin/env bash
# 10-kvstore: unit tests of the Kyoto Cabinet filesystem (tests/kvstore):
# every kvstore operation and its error cases, cookies on a 100,000-entry
# directory, publish/evict atomicity, crash during staging, threads.
set -u
cd "${TARNFS_ROOT:-$(dirname "$0")/../..}"
. tests/lib.sh
B="${B:-build-san}"
prog="$B/tests/kvstore/test_kvfs"
[ -x "$prog" ] || die "10-kvstore: $prog is missing (make SAN=1 B=$B test-programs)"
# Check forks one child per test; each makes and removes its own cache
# (/tmp/kvtest-XXXXXX) and kills only the child processes it forked.
"$prog"
