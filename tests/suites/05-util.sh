#!/usr/bin/env bash
# 05-util: unit tests of util/: symlink-safe atomic file writes.
set -eu
cd "${TARNFS_ROOT:-.}"
B="${B:-build-san}"
prog="$B/tests/util/test_safefile"
[ -x "$prog" ] || { echo "05-util: missing $prog (run make test-programs)" >&2; exit 1; }
"$prog"
