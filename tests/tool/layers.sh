#!/usr/bin/env bash
# layers (tool): the tarnfs tool's layer rule (doc/design.md, "The tarnfs
# tool"): tool/ uses vfs/vfs.h, fetch/fetch.h, convert/convert.h, util/ and
# its own headers, and never kvstore: reading goes through vfs's read-only
# view (vfs_view_*), and every change of the cache (ingest, evict, resolve,
# flush) through a vfs call that enforces the rules (dirty, conflicted, in
# use, a running tarnfsd).  No file is exempt.
# Usage: layers.sh [TREE]  (default: the repository); exit 1 on a violation.
set -u
tree="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
allowed_include() {   # allowed_include HEADER
  case "$1" in
    tool/*|util/*|vfs/vfs.h|fetch/fetch.h|convert/convert.h) return 0 ;;
  esac
  return 1
}
bad=0
cd "$tree" || exit 2
for f in tool/*.c tool/*.h; do
  while IFS= read -r h; do
    allowed_include "$h" || { echo "layers: $f includes \"$h\", which tool/ may not use"; bad=1; }
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  # no kvstore call (a header could bring its declarations in)
  if grep -qE '\bkv_[a-z_]+\(' "$f"; then
    echo "layers: $f calls kvstore ($(grep -oE '\bkv_[a-z_]+\(' "$f" | sort -u | tr '\n' ' ')); use a vfs entry point"; bad=1
  fi
done
# nor through a header the makefile force-includes (-include) or a -I path
if grep -nE -- '-include|-I[[:space:]]*kvstore' tool/module.mk; then
  echo "layers: tool/module.mk adds includes behind the layer rule's back"; bad=1
fi
[ $bad -eq 0 ] && echo "layers: tool/ keeps its layer rule (no file uses kvstore)"
exit $bad
