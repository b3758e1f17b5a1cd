#!/usr/bin/env bash
# run-suites: runs the test suites in tests/suites/ (all, or those named) and
# prints one verdict line per suite, then the closing "N passed, N failed".
# Each suite is stopped after SUITE_TIMEOUT seconds (default 1500) and then
# fails, and no suite starts once CHECK_BUDGET seconds (default 4200: CI
# stops `make check` at 90 minutes, deps and builds included) are spent, so
# a slow machine ends with a verdict and every suite's time, printed last.
set -u
cd "$(dirname "$0")/.."
export B="${B:-build-san}"
export TARNFS_ROOT="$PWD"
# libnfs clients bounded in time (tests/bin/nfs-client)
export PATH="$PWD/tests/bin:$PATH"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
suites=()
if [ $# -eq 0 ]; then
  for s in tests/suites/*.sh; do [ -x "$s" ] && suites+=("$s"); done
else
  for n in "$@"; do
    m=$(ls tests/suites/*"$n"*.sh 2>/dev/null | head -1)
    [ -n "$m" ] || { echo "run-suites: no suite matches '$n'" >&2; exit 2; }
    suites+=("$m")
  done
fi
pass=0; fail=0; failed=(); times=(); all_start=$(date +%s)
for s in "${suites[@]}"; do
  name=$(basename "$s" .sh)
  echo "=== suite $name"
  start=$(date +%s)
  # A suite that hangs fails on its own instead of eating CI's 90 minutes:
  # timeout signals the suite's whole process group (its servers too).
  limit=${SUITE_TIMEOUT:-1500}
  left=$(( ${CHECK_BUDGET:-4200} - ($(date +%s) - all_start) ))
  if [ $left -le 0 ]; then
    fail=$((fail+1)); failed+=("$name"); times+=("$name:not-run")
    echo "=== FAIL $name (not run: the ${CHECK_BUDGET:-4200}s budget of the whole run is spent)"
    continue
  fi
  [ $left -lt "$limit" ] && limit=$left
  timeout -k 30 "$limit" "$s" &
  tpid=$!
  wait "$tpid"; rc=$?
  # timeout made the suite its own process group: whatever it left running
  # (a client of a server it killed, say) goes now, not after CI's limit.
  pkill -KILL -g "$tpid" 2>/dev/null && echo "=== $name left processes running: killed"
  times+=("$name:$(( $(date +%s) - start ))s")
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); echo "=== PASS $name ($(( $(date +%s) - start ))s)"
  else
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "=== $name ran past its ${limit}s limit: stopped"
    fail=$((fail+1)); failed+=("$name"); echo "=== FAIL $name ($(( $(date +%s) - start ))s)"
  fi
done
echo "suite times: ${times[*]}"
[ $fail -eq 0 ] || echo "failed suites: ${failed[*]}"
echo "suites: $pass passed, $fail failed in $(( $(date +%s) - all_start ))s"
[ $fail -eq 0 ]
