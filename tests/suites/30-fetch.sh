#!/usr/bin/env bash
# 30-fetch: fetch/ unit tests that need no server: the NAS backend, the
# fault hook, the SigV4 signer (AWS test vectors), URI/query encoding and
# ListObjectsV2 XML parsing.
set -eu
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
LINE_PREFIX="30-fetch: "
B="${B:-build-san}"
status=0
for t in test_nas test_sigv4; do
  prog="$B/tests/fetch/$t"
  if [ ! -x "$prog" ]; then
    [ "$t" = test_nas ] || { skip "$t" "not built yet"; continue; }
    die "30-fetch: missing $prog (run make test-programs)"
  fi
  echo "--- $t"
  "$prog" || status=1
done
exit $status
