#!/usr/bin/env bash
# 67-crash: kill -9 at every numbered crash point of ingest, write-back and
# eviction (TARNFS_CRASH, util/crashpt.h), in tarnfsd and in the tarnfs tool;
# after a restart the cache is consistent, no acknowledged write is lost and
# no half-written tarball is visible (tests/crash/crash.sh).
set -u
cd "${TARNFS_ROOT:-.}"
B="${B:-build-san}"
export LSAN_OPTIONS="suppressions=$PWD/tests/vfs/lsan-kyotocabinet.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
tests/crash/crash.sh
