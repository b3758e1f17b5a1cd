#!/usr/bin/env bash
# 30-fetch: fetch/ unit tests that need no server: the NAS backend, the
# fault hook, the SigV4 signer (AWS test vectors), URI/query encoding and
# ListObjectsV2 XML parsing.
set -eu
cd "${TARNFS_ROOT:-.}"
B="${B:-build-san}"
status=0
for t in test_nas test_sigv4; do
  prog="$B/tests/fetch/$t"
  if [ ! -x "$prog" ]; then
    [ "$t" = test_nas ] || { echo "30-fetch: $t not built yet, skipped"; continue; }
    echo "30-fetch: missing $prog (run make test-programs)" >&2; exit 1
  fi
  echo "--- $t"
  "$prog" || status=1
done
exit $status
