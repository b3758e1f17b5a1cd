#!/usr/bin/env bash
# 20-ingest: kv_ingest unit tests (Check: every format, compression, placement
# and hostile-archive case), kv_ingest_index and absent data (test_lazy) and the end-to-end ingest test through the tarnfs
# tool (tests/ingest/e2e.sh: bytes and attributes against the source tree,
# CLI error cases).
set -u
cd "${TARNFS_ROOT:-.}" || exit 1
. tests/lib.sh
B="${B:-build-san}"
status=0
prog="$B/tests/ingest/test_ingest"
[ -x "$prog" ] || die "20-ingest: missing $prog (run make test-programs)"
echo "--- test_ingest"
"$prog" || status=1
echo "--- test_lazy"
"$B/tests/ingest/test_lazy" || status=1
echo "--- e2e.sh"
./tests/ingest/e2e.sh || status=1
exit $status
