#!/usr/bin/env bash
# tsan/run.sh: the concurrent tests of kvstore, vfs and nfsd under
# ThreadSanitizer (`make tsan`: build-tsan/, SAN=thread).  Every process
# (test programs and the tarnfsd they start) writes its reports to one
# directory; any report, or any failing test, fails the run.
# Usage: tests/tsan/run.sh PROGRAM[:TCASE]...  (paths under $B, B=build-tsan)
set -u
cd "$(dirname "$0")/../.."
B="${B:-build-tsan}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
W=$(mktemp -d /tmp/tarnfs-tsan.XXXXXX)
trap 'rm -rf "$W"' EXIT
export TSAN_OPTIONS="detect_deadlocks=0 halt_on_error=0 history_size=4 suppressions=$PWD/tests/tsan/tsan.supp log_path=$W/report${TSAN_OPTIONS:+ $TSAN_OPTIONS}"
export TARNFSD="$B/tarnfsd"
# TSan runs 5-15 times slower, more on a loaded machine: longer Check timeouts.
export CK_TIMEOUT_MULTIPLIER="${CK_TIMEOUT_MULTIPLIER:-10}"
# The nfs tests' fixtures (as in suite 50-nfs, smaller directory).
mkdir -p "$W/src/demo/perm" "$W/src/wide" "$W/cache" "$W/rwcache"
"$B/genrun" --symlinks --hardlinks --empty-dirs "$W/src/demo" >/dev/null || exit 1
head -c 3145728 /dev/urandom > "$W/src/demo/big.bin"
echo "only root reads this" > "$W/src/demo/perm/secret"; chmod 0600 "$W/src/demo/perm/secret"
echo "anyone reads this" > "$W/src/demo/perm/public"; chmod 0644 "$W/src/demo/perm/public"
ln -s public "$W/src/demo/perm/link"
(cd "$W/src/wide" && seq -f 'f%06g' 1 100000 | xargs touch)
tar -C "$W/src" -cf "$W/demo.tar" demo && tar -C "$W/src" -cf "$W/wide.tar" wide || exit 1
for c in cache rwcache; do
  "$B/tarnfs" ingest --cache "$W/$c" "$W/demo.tar" >/dev/null || exit 1
done
"$B/tarnfs" ingest --cache "$W/cache" "$W/wide.tar" >/dev/null || exit 1
rm -rf "$W/src/wide"
export NFS_TEST_SRC="$W/src" NFS_TEST_CACHE="$W/cache" NFS_TEST_RWCACHE="$W/rwcache" NFS_TEST_TMP="$W"
status=0
for t in "$@"; do
  prog=${t%%:*} tcase=
  [ "$prog" != "$t" ] && tcase=${t#*:}
  start=$(date +%s)
  # An empty CK_RUN_CASE would select no test case at all.
  if env ${tcase:+CK_RUN_CASE="$tcase"} "$B/$prog" > "$W/out" 2>&1; then r=ok; else r=FAIL; status=1; fi
  echo "$r   - $prog${tcase:+ ($tcase)}: $(grep -m1 '^[0-9]*%' "$W/out") ($(( $(date +%s) - start ))s)"
  [ $r = ok ] || tail -20 "$W/out"
done
n=$(cat "$W"/report.* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer')
if [ "$n" -gt 0 ]; then
  status=1
  for f in "$W"/report.*; do echo "--- $(basename "$f")"; cat "$f"; done
fi
echo "tsan: $n ThreadSanitizer report(s)"
exit $status
