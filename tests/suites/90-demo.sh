#!/usr/bin/env bash
# 90-demo: the README's run command works: etc/demo.sh generates run tarballs,
# serves them with tarnfsd through the namespace, and a run is fetched on
# first touch.  Runs the demo for a second on free ports in a temp dir.
set -u
cd "$(dirname "$0")/../.."
T=$(mktemp -d /tmp/tarnfs-demo-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
B="$B" DEMO_DIR="$T/demo" DEMO_NFS_PORT=0 DEMO_MOUNT_PORT=0 DEMO_SECONDS=1 \
  timeout 300 ./etc/demo.sh > "$T/out" 2>&1
rc=$?
check "the demo exits cleanly after DEMO_SECONDS (rc=$rc)" eval '[ $rc -eq 0 ]'
check "the root lists one directory per generated tarball" \
  eval '[ "$(grep -c "^dr.* 24102[345]_A01295_" "$T/out")" -ge 3 ]'
check "a run's files are listed after its first touch" eval 'grep -q " RunInfo.xml$" "$T/out"'
check "the touched run is now in the cache" \
  eval 'grep -q "^241023_A01295_0432_BHK3NFDRX5 " "$T/out"'
check "it prints the libnfs URL and the Linux mount line" \
  eval 'grep -q "libnfs URL: *nfs://127.0.0.1/?nfsport=" "$T/out" && grep -q "mount -t nfs -o vers=3" "$T/out"'
check "the server was stopped" eval 'grep -q "== tarnfsd stopped" "$T/out"'
summary demo ||
  { echo "--- demo output"; cat "$T/out"; echo "--- server log"; cat "$T/demo/tarnfsd.log" 2>/dev/null | tail -20; exit 1; }
