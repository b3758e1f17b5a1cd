#!/usr/bin/env bash
# layers (tool): the tarnfs tool's layer rule (doc/design.md, "The tarnfs
# tool"): tool/ uses vfs/vfs.h, fetch/fetch.h, convert/convert.h, util/ and
# its own headers.  kvstore/kvfs.h is allowed only in the files listed in
# KV_ALLOWED below, each for a stated reason, and operations that change the
# cache's state (evict, resolve, run metadata) never call kvstore from tool/:
# they go through vfs, which enforces the rules (dirty, conflicted, in use).
# Usage: layers.sh [TREE]  (default: the repository); exit 1 on a violation.
set -u
tree="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
# file -> why it may use kvstore directly (the reading commands go through
# vfs's read-only view, vfs_view_*)
declare -A KV_ALLOWED=(
  [tool/cmd_ingest.c]="kv_ingest of a tarball into the cache"
  [tool/cli_ingest.h]="TRANSITIONAL: kvfs.h and cli_open_cache for cmd_ingest.c only (force-included by tool/module.mk)"
)
allowed_include() {   # allowed_include FILE HEADER
  case "$2" in
    tool/*|util/*|vfs/vfs.h|fetch/fetch.h|convert/convert.h) return 0 ;;
    kvstore/kvfs.h) [ -n "${KV_ALLOWED[$1]+x}" ] && return 0 ;;
  esac
  return 1
}
bad=0
cd "$tree" || exit 2
for f in tool/*.c tool/*.h; do
  while IFS= read -r h; do
    allowed_include "$f" "$h" || { echo "layers: $f includes \"$h\", which tool/ may not use"; bad=1; }
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  # kvstore symbols only where kvstore is allowed (a header can bring them in)
  if [ -z "${KV_ALLOWED[$f]+x}" ] && grep -qE '\bkv_[a-z_]+\(' "$f"; then
    echo "layers: $f calls kvstore ($(grep -oE '\bkv_[a-z_]+\(' "$f" | sort -u | tr '\n' ' ')) but is not in the allowed list"; bad=1
  fi
  # state changes of the cache go through vfs, never kvstore
  if grep -nE '\bkv_(cache_evict|run_setmeta|run_delmeta|run_publish|run_stage)\(' "$f"; then
    echo "layers: $f changes cache state through kvstore; use a vfs entry point (vfs_cache_evict...)"; bad=1
  fi
done
# headers force-included by the makefile (-include) obey the same rule
while IFS= read -r h; do
  allowed_include tool/module.mk "$h" || { echo "layers: tool/module.mk force-includes \"$h\", which tool/ may not use"; bad=1; }
done < <(grep -oE -- '-include[[:space:]]+[^[:space:]]+' tool/module.mk | awk '{ print $2 }')
[ $bad -eq 0 ] && echo "layers: tool/ keeps its layer rule (${#KV_ALLOWED[@]} files allowed kvstore, for ingest)"
exit $bad
