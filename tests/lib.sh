# tests/lib.sh: helpers every shell test sources: checks and counts, polling, cleanup, RGW.
#
# A verdict line is "ok   - WHAT", "FAIL - WHAT" or "skip - WHAT: WHY",
# after $LINE_PREFIX (e.g. "50-nfs: ") and with $WHAT_PREFIX before WHAT
# (e.g. "nas: "); the sourcing script may set both, before or after.
# CHECK_STRICT=1 makes check run its command in a subshell under
# `set -e -o pipefail`, its output captured and shown only on failure (or
# always with CHECK_VERBOSE=1), and time it: for checks that are shell
# functions of many steps (tests/suites/60-convert.sh).

TESTS_PASSED=0 TESTS_FAILED=0 TESTS_SKIPPED=0
TRACKED_PIDS=()

# ok WHAT: records a passed check and prints its line.
ok() {
  TESTS_PASSED=$((TESTS_PASSED + 1))
  echo "${LINE_PREFIX:-}ok   - ${WHAT_PREFIX:-}$*"
}

# bad WHAT: records a failed check, prints its line and returns 1.
bad() {
  TESTS_FAILED=$((TESTS_FAILED + 1))
  echo "${LINE_PREFIX:-}FAIL - ${WHAT_PREFIX:-}$*"
  return 1
}

# skip WHAT WHY: records a check not run, and why.
skip() {
  TESTS_SKIPPED=$((TESTS_SKIPPED + 1))
  echo "${LINE_PREFIX:-}skip - ${WHAT_PREFIX:-}$1: $2"
}

# skip_all WHY: says the whole script cannot run here and exits 0.
skip_all() {
  echo "${LINE_PREFIX:-}SKIP: $*"
  exit 0
}

# check 'what it shows' CMD...: runs CMD; ok when it succeeds, bad when not
# (see CHECK_STRICT above); returns CMD's status.
check() {
  local what=$1; shift
  if [ -z "${CHECK_STRICT:-}" ]; then
    if "$@"; then ok "$what"; else bad "$what"; fi
    return
  fi
  # (prefixed locals: the command sees the script's own rc, log, ...)
  local check_log check_rc check_t0=$SECONDS
  check_log=$(mktemp "${TMPDIR:-/tmp}/tarnfs-check.XXXXXX")
  # Not inside an if: bash ignores set -e in a condition, even in a subshell.
  ( set -e -o pipefail; "$@" ) >"$check_log" 2>&1
  check_rc=$?
  if [ $check_rc -eq 0 ]; then
    ok "$what ($((SECONDS - check_t0))s)"
    [ -z "${CHECK_VERBOSE:-}" ] || sed 's/^/      | /' "$check_log"
  else
    bad "$what ($((SECONDS - check_t0))s)"
    sed 's/^/      | /' "$check_log" | tail -12
  fi
  rm -f "$check_log"
  return $check_rc
}

# not CMD...: succeeds when CMD fails.  (set -e ignores "! CMD" and every
# command of an && list but the last, so strict checks use this, one
# assertion per line.)
not() { if "$@"; then echo "unexpectedly true: $*" >&2; return 1; fi; return 0; }

# die MSG...: prints MSG on stderr and exits 1 (in a strict check: ends it).
die() { echo "$*" >&2; exit 1; }

# summary NAME: prints "NAME: N passed, M failed" (", K skipped" if any);
# returns 1 when a check failed.
summary() {
  local skipped=""
  [ "$TESTS_SKIPPED" -eq 0 ] || skipped=", $TESTS_SKIPPED skipped"
  echo "$1: $TESTS_PASSED passed, $TESTS_FAILED failed$skipped"
  [ "$TESTS_FAILED" -eq 0 ]
}

# wait_until SECONDS CMD...: runs CMD every 0.1 s until it succeeds (0) or
# has failed SECONDS*10 times (1).  SECONDS is a whole number.
wait_until() {
  local tries=$(($1 * 10)); shift
  while [ "$tries" -gt 0 ]; do
    "$@" && return 0
    tries=$((tries - 1))
    sleep 0.1
  done
  return 1
}

# advance_clock CACHE DURATION: moves the clock that the tarnfsd serving
# CACHE decides grace periods, delays and timeouts by forward by DURATION
# ("6s", "10m"), and returns once its housekeeping has run with the new
# time (`tarnfs test-clock`; the server must run with TARNFS_TEST_CLOCK=1).
# Tests use it instead of sleeping through a grace period.
advance_clock() {
  "$B/tarnfs" test-clock --cache "$1" "$2" >/dev/null ||
    { echo "advance_clock: cannot advance the clock of the tarnfsd on $1" >&2; return 1; }
}

# server_stat CACHE KEY: counter KEY of the tarnfsd serving CACHE, as it is
# now (`tarnfs stats` asks the server).
server_stat() {
  "$B/tarnfs" stats --cache "$1" | awk -v k="$2" '$1 == k { print $2 }'
}

# track PID...: remembers processes this script started, for stop_tracked.
track() { TRACKED_PIDS+=("$@"); }

# stop_tracked: SIGTERM to every tracked process, then waits for each (for
# a script's EXIT trap; those already gone are skipped).
stop_tracked() {
  local p
  for p in "${TRACKED_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${TRACKED_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  TRACKED_PIDS=()
}

# rgw_start NAME: a throwaway Ceph RGW (tests/s3/rgw-start.sh, from the
# repository root) in a new RGW_DIR (/tmp/tarnfs-NAME.*), tried twice (a
# port taken by a parallel cluster); returns 1 when it did not start.
rgw_start() {
  RGW_DIR=$(mktemp -d "/tmp/tarnfs-$1.XXXXXX")
  export RGW_DIR
  local attempt
  # A third try after a pause: a clean-clone CI once saw every attempt
  # within 6 s die with the OSD's "wrong fsid" (cause not found yet), and
  # a start a minute later worked.
  for attempt in 1 2 3; do
    if tests/s3/rgw-start.sh >/dev/null 2>"$RGW_DIR.err"; then rm -f "$RGW_DIR.err"; return 0; fi
    cat "$RGW_DIR.err" >&2
    rgw_stop
    mkdir -p "$RGW_DIR"
    [ "$attempt" = 3 ] || sleep $((attempt * 10))
  done
  rm -f "$RGW_DIR.err"
  return 1
}

# rgw_stop: stops rgw_start's cluster by its recorded PIDs, removes RGW_DIR.
rgw_stop() {
  [ -n "${RGW_DIR:-}" ] || return 0
  tests/s3/rgw-stop.sh "$RGW_DIR" >/dev/null 2>&1 || rm -rf "$RGW_DIR"
}
