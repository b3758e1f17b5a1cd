#!/usr/bin/env bash
# run-all.sh: what `make bench` runs after building: the side-by-side
# comparison (bench/compare), then the ingest and convert benchmarks when
# they exist.  --smoke (tiny sizes, one repetition) is passed to each.
# Exits non-zero if any benchmark failed to run; targets never fail it.
set -u
cd "$(dirname "$0")/.."
export TARNFS_ROOT="$PWD"
export B="${B:-build}"
args=()
for a in "$@"; do
  case "$a" in
    --smoke) args+=(--smoke) ;;
    -h|--help) echo "usage: bench/run-all.sh [--smoke]"; exit 0 ;;
    *) echo "run-all: unknown option '$a'" >&2; exit 2 ;;
  esac
done
status=0
for bench in bench/compare bench/ingest/run bench/convert/run; do
  if [ ! -x "$bench" ]; then
    echo "=== $bench: not present, skipped"
    continue
  fi
  echo "=== $bench ${args[*]}"
  "$bench" "${args[@]}" || { echo "=== $bench FAILED"; status=1; }
done
exit $status
