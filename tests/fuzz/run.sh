#!/usr/bin/env bash
# run.sh: runs libFuzzer targets (build-fuzz/fuzz-NAME, made by `make
# fuzz-build`) for FUZZ_SECONDS each, one at a time, starting from
# tests/fuzz/corpus/NAME/; inputs that add coverage are merged back into
# that directory.  A crash leaves its input in build-fuzz/artifacts/ and
# fails the run.  Prints one line per target: runs, seconds, execs/s.
set -u
cd "$(dirname "$0")/../.."
SECS=${FUZZ_SECONDS:-60}
BF=${BF:-build-fuzz}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
declare -A MAXLEN=([rpc]=4096 [ingest]=65536 [s3xml]=16384 [config]=4096 [tix]=65536)
mkdir -p "$BF/artifacts"
fail=0
for t in "$@"; do
  bin="$BF/fuzz-$t" corpus="tests/fuzz/corpus/$t"
  [ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz-build)"; exit 2; }
  mkdir -p "$corpus"
  new=$(mktemp -d "${TMPDIR:-/tmp}/tarnfs-fuzz-new-$t-XXXXXX")
  log="$BF/artifacts/$t.log"
  "$bin" -max_total_time="$SECS" -max_len="${MAXLEN[$t]:-8192}" -timeout=20 \
    -rss_limit_mb=2560 -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="$BF/artifacts/$t-" \
    "$new" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^stat::.*//; s/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  [ -n "$secs" ] || secs=$SECS
  rate=$(( ${runs:-0} / (secs > 0 ? secs : 1) ))
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "fuzz: FAIL $t (exit $rc): see $log and $BF/artifacts/$t-*"
    grep -m3 -E 'ERROR: |runtime error|SUMMARY' "$log"
    fail=1
  else
    before=$(ls "$corpus" | wc -l)
    "$bin" -merge=1 -max_len="${MAXLEN[$t]:-8192}" "$corpus" "$new" >>"$log" 2>&1
    after=$(ls "$corpus" | wc -l)
    echo "fuzz: ok   $t: ${runs:-?} runs in ${secs}s (${rate}/s), $cov, corpus $before -> $after"
  fi
  rm -rf "$new"
done
exit $fail
