#!/usr/bin/env bash
# 15-index: the run index (tests/index): codec round trips, a 1M-member
# index's size and parse time, rejection of every single-byte flip and every
# truncation, newer versions, hostile counts and deflate bombs.
set -u
cd "${TARNFS_ROOT:-$(dirname "$0")/../..}"
. tests/lib.sh
B="${B:-build-san}"
prog="$B/tests/index/test_tix"
[ -x "$prog" ] || die "15-index: $prog is missing (make SAN=1 B=$B test-programs)"
"$prog"
