# lib.sh (writeback): helpers the writeback scripts share (sourced, not run):
# tests/lib.sh, a NAS directory of generated runs, starting tarnfsd on it,
# NFS URLs.  The sourcing script sets NAME (for messages) first.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun" "$B/tests/writeback/nfsop"; do
  [ -x "$p" ] || die "$NAME: missing $p (make build-all test-programs)"
done
command -v nfs-cp >/dev/null || die "$NAME: nfs-cp missing (libnfs-utils)"

work=$(mktemp -d /tmp/wb-test.XXXXXX)
cleanup() { stop_tracked; rm -rf "$work"; }
trap cleanup EXIT
# finish: the verdict line, server log tails on failure, the exit status.
finish() {
  summary "$NAME" && return
  for l in "$work"/*.log; do echo "--- $(basename "$l") (tail)"; tail -25 "$l"; done
  return 1
}

# start NAME CACHE RW DELAY [env...]: a tarnfsd on $work/nas, its clock
# movable by advance_clock; sets port_NAME and pid_NAME.  Extra config
# lines can be put in $work/NAME.extra first.
start() {
  local name=$1 cache=$2 rw=$3 delay=$4; shift 4
  {
    echo "cache = $cache"
    echo "source = $work/nas"
    echo "writeback_delay = $delay"
    [ -f "$work/$name.extra" ] && cat "$work/$name.extra"
    echo "export / 127.0.0.1($rw,no_root_squash,insecure)"
  } > "$work/$name.conf"
  rm -f "$work/$name.ports"
  env TARNFS_TEST_CLOCK=1 "$@" "$B/tarnfsd" -f --config "$work/$name.conf" --no-rpcbind --listen 127.0.0.1 \
    --nfs-port 0 --mount-port 0 --port-file "$work/$name.ports" \
    2>>"$work/$name.log" &
  local p=$!
  track "$p"
  eval "pid_$name=$p"
  wait_until 10 test -s "$work/$name.ports"
  [ -s "$work/$name.ports" ] || { echo "FAIL - tarnfsd $name did not start:"; cat "$work/$name.log"; exit 1; }
  eval "port_$name='$(cat "$work/$name.ports")'"
}
# stop NAME: SIGTERM (a clean shutdown writes back) and wait for the exit.
stop() { local p; eval "p=\$pid_$1"; kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
url() {   # url SERVER PATH
  local ports; eval "ports=\$port_$1"
  set -- "$2" $ports
  echo "nfs://127.0.0.1/$1?nfsport=$2&mountport=$3&version=3"
}
# libnfs keeps a few allocations of its own (tests/nfs/lsan.supp).
nfs_supp="$(cd "$(dirname "${BASH_SOURCE[0]}")/../nfs" && pwd)/lsan.supp"
nfsop() { LSAN_OPTIONS="suppressions=$nfs_supp:print_suppressions=0" "$B/tests/writeback/nfsop" "$@"; }
flush() { "$B/tarnfs" flush --cache "$1" --timeout 60 "$2"; }
dirty_col() { "$B/tarnfs" cache ls --cache "$1" | awk -v n="$2" '$1 == n { print $NF }'; }
cached() { "$B/tarnfs" cache ls --cache "$1" | awk '{ print $1 }' | grep -qx "$2"; }
not_cached() { ! cached "$@"; }
# make_runs N: N generated runs as tarballs in $work/nas (sources in
# $work/src); sets R1..RN.
make_runs() {
  mkdir -p "$work/src" "$work/nas"
  local i r
  for i in $(seq 1 "$1"); do
    r=241023_A01295_043${i}_BHK3NFDRX$i
    "$B/genrun" -q --name "$r" --lanes 1 --cycles 2 --tiles 1 --seed $i "$work/src" || exit 1
    tar -C "$work/src" -cf "$work/nas/$r.tar" "$r"
    eval "R$i=$r"
  done
}
# no_sanitizer_reports [LOG...]: true when no server log (default: all of
# $work/*.log) holds an ASan/LSan/UBSan report; otherwise prints each report
# (its first 40 lines) so a CI log shows what went wrong, and fails.
no_sanitizer_reports() {
  local f found=0
  [ $# -gt 0 ] || set -- "$work"/*.log
  for f in "$@"; do
    [ -f "$f" ] || continue
    if grep -q 'Sanitizer\|runtime error' "$f"; then
      found=1
      echo "--- sanitizer report in $(basename "$f"):"
      grep -m1 -A40 'Sanitizer\|runtime error' "$f" | sed 's/^/    /'
    fi
  done
  [ $found = 0 ]
}
