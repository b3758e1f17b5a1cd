#!/usr/bin/env bash
# 65-writeback: the writable tarball namespace end to end: changes made over
# NFS are written back as new tarballs (flush, idle delay, SIGTERM), with
# conflicts, injected failures and kill -9 (tests/writeback/e2e.sh).
set -u
cd "${TARNFS_ROOT:-.}"
B="${B:-build-san}"
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
echo "--- e2e on a NAS directory (tarnfsd + nfs-cp/nfs-cat)"
tests/writeback/e2e.sh
