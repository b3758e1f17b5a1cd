#!/usr/bin/env bash
# run-all.sh: what `make bench` runs after building: the side-by-side
# comparison (bench/compare), the ingest and convert benchmarks when they
# exist, one 100 GiB run served through a smaller cache (bench/bigrun), the
# scaling run (bench/scale), then the SVG plots of compare and scale
# (bench/plot) into doc/perf/, beside the TSV files they come from.
# --smoke (tiny sizes, one repetition) is passed to each and skips the
# scaling run and doc/perf/: bench/compare --smoke checks its plots in its
# own work directory.
# Exits non-zero if any benchmark failed to run; targets never fail it.
set -u
cd "$(dirname "$0")/.." || exit 2
export TARNFS_ROOT="$PWD"
export B="${B:-build}"
PERF=doc/perf
args=() smoke=0
for a in "$@"; do
  case "$a" in
    --smoke) args+=(--smoke); smoke=1 ;;
    -h|--help) echo "usage: bench/run-all.sh [--smoke]"; exit 0 ;;
    *) echo "run-all: unknown option '$a'" >&2; exit 2 ;;
  esac
done
status=0
for bench in bench/compare bench/ingest/run bench/convert/run bench/bigrun bench/scale; do
  if [ ! -x "$bench" ]; then
    echo "=== $bench: not present, skipped"
    continue
  fi
  extra=()
  case $bench in
    bench/compare) [ $smoke = 1 ] || extra=(--data "$PERF") ;;
    bench/scale)
      if [ $smoke = 1 ]; then echo "=== $bench: not run with --smoke"; continue; fi
      extra=(--data "$PERF") ;;
  esac
  echo "=== $bench ${args[*]} ${extra[*]}"
  "$bench" ${args[@]+"${args[@]}"} ${extra[@]+"${extra[@]}"} || { echo "=== $bench FAILED"; status=1; }
done
if [ $smoke = 0 ]; then
  echo "=== bench/plot $PERF"
  bench/plot "$PERF" || { echo "=== bench/plot FAILED"; status=1; }
fi
exit $status
