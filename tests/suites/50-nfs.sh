#!/usr/bin/env bash
# 50-nfs: tarnfsd with real clients.  Builds a demo run (generated Illumina
# folder + permission fixtures + a 3 MiB file) and a 100,000-entry directory,
# ingests them with `tarnfs ingest`, then runs the libnfs and raw-RPC Check
# tests, the fsx random data-integrity exerciser (tests/nfs/fsx), the
# nfs-ls/nfs-cat/nfs-cp checks, and a mount through real rpcbind.
set -u
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$TARNFS_ROOT/$B" ;; esac
export TARNFSD="$B/tarnfsd"
# libnfs and libtirpc's pmap_set leak a few bytes on their own; ours are checked.
export LSAN_OPTIONS="suppressions=$TARNFS_ROOT/tests/nfs/lsan.supp:print_suppressions=0"
. "$TARNFS_ROOT/tests/lib.sh"
LINE_PREFIX="50-nfs: "
W=$(mktemp -d /tmp/tarnfs-50nfs-XXXXXX)
cleanup() { stop_tracked; rm -rf "$W"; }
trap cleanup EXIT
say() { echo "50-nfs: $*"; }

check "config parsing and file handles (test_nfsd_units)" "$B/tests/nfs/test_nfsd_units"
check "NLM lock table: ranges split, merge and upgrade; blocked requests, CANCEL, FREE_ALL, limits (test_nlm_lock)" \
  "$B/tests/nfs/test_nlm_lock"
# The callback sender against a hostile rpcbind on port 111 of a private
# network namespace.
check "NLM callbacks: a hostile client rpcbind holds the sender no longer than its deadline, a forged answer is not believed (test_nlm_cb)" \
  unshare --net bash -c 'ip link set lo up && exec "$1"' nlm_cb "$B/tests/nfs/test_nlm_cb"
check "tarnfsd --check-config: good and bad configs, FILE:LINE per problem, nothing created, no secret printed" \
  "$TARNFS_ROOT/tests/nfs/check-config.sh"

# ---- fixtures ----
mkdir -p "$W/src/demo/perm" "$W/src/wide" "$W/cache" "$W/rwcache"
"$B/genrun" --symlinks --hardlinks --empty-dirs "$W/src/demo" >/dev/null || exit 1
head -c 3145728 /dev/urandom > "$W/src/demo/big.bin"
echo "only root reads this" > "$W/src/demo/perm/secret"; chmod 0600 "$W/src/demo/perm/secret"
echo "anyone reads this" > "$W/src/demo/perm/public"; chmod 0644 "$W/src/demo/perm/public"
ln -s public "$W/src/demo/perm/link"
(cd "$W/src/wide" && seq -f 'f%06g' 1 100000 | xargs touch)
tar -C "$W/src" -cf "$W/demo.tar" demo || exit 1
tar -C "$W/src" -cf "$W/wide.tar" wide || exit 1
"$B/tarnfs" ingest --cache "$W/cache" "$W/demo.tar" >/dev/null || exit 1
"$B/tarnfs" ingest --cache "$W/cache" "$W/wide.tar" >/dev/null || exit 1
"$B/tarnfs" ingest --cache "$W/rwcache" "$W/demo.tar" >/dev/null || exit 1
# Two writable runs, for moves and links between runs.
mkdir -p "$W/rw2cache" && cp "$W/demo.tar" "$W/other.tar"
"$B/tarnfs" ingest --cache "$W/rw2cache" "$W/demo.tar" >/dev/null &&
  "$B/tarnfs" ingest --cache "$W/rw2cache" "$W/other.tar" >/dev/null || exit 1
rm -rf "$W/src/wide"    # compared by count in the C test, not needed on disk
say "fixtures: demo run, 100000-entry /wide, in $W"

# ---- Check tests with libnfs and raw RPC ----
export NFS_TEST_SRC="$W/src" NFS_TEST_CACHE="$W/cache" NFS_TEST_RWCACHE="$W/rwcache"
export NFS_TEST_RW2CACHE="$W/rw2cache"
# A NAS source (test_nfs_proto's eviction test fetches demo from it).
mkdir -p "$W/nas" && cp "$W/demo.tar" "$W/nas/"
export NFS_TEST_NAS="$W/nas" TARNFS="$B/tarnfs"
export NFS_TEST_TMP="$W"
check "libnfs exercises every NFSv3 procedure (test_nfs)" "$B/tests/nfs/test_nfs"
check "RFC 1813 edge cases: guards, counts, cookies, dot names, types, runs, bad handles (test_nfs_proto)" \
  "$B/tests/nfs/test_nfs_proto"
# One fixed seed in make check, so a run fails only for a change (a failure
# prints the op log and the replay command); FSX_SEED=N runs another,
# FSX_SEED=random a new one each time (printed), FSX_OPS=N soaks.
fsx_args=(--ops "${FSX_OPS:-2000}")
case "${FSX_SEED:-412524431}" in
  random) ;;
  *) fsx_args+=(--seed "${FSX_SEED:-412524431}") ;;
esac
check "random writes, reads, truncates and commits keep 4 files byte for byte equal to their shadows, through two clients, restarts and write-backs (fsx)" \
  "$B/tests/nfs/fsx" "${fsx_args[@]}"
check "raw RPC bytes: errors, garbage, oversize fragments (test_rpc_wire)" \
  "$B/tests/nfs/test_rpc_wire"
check "transport limits: unread replies, memory, connections, idle, EMFILE, UDP (test_transport)" \
  "$B/tests/nfs/test_transport"
check "parked requests: a stalled backend holds no worker; JUKEBOX, stall timeout, SIGTERM (test_park)" \
  "$B/tests/nfs/test_park"
# A NAS source for the NLM eviction test (the run comes back after it).
mkdir -p "$W/nas" && cp "$W/demo.tar" "$W/nas/"
export NLM_TEST_NAS="$W/nas" TARNFS="$B/tarnfs"
# NLM callbacks go to the caller's lock manager through rpcbind: a private
# network namespace with its own rpcbind, where the test registers one.
nlm_with_rpcbind() {
  unshare --net --mount bash -c '
    ip link set lo up
    mount -t tmpfs tmpfs /run
    rpcbind -w -f & RB=$!
    for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
    CK_RUN_CASE=nlm "$1"; rc=$?
    kill $RB; wait $RB
    exit $rc
  ' nlm "$B/tests/nfs/test_nlm"
}
# The real rpc.statd (nfs-common) with its own state directory, in its own
# namespace: tarnfsd asks it to monitor lock holders, and its reboot notice
# releases their locks.
nlm_with_statd() {
  command -v rpc.statd >/dev/null || { echo "rpc.statd missing (nfs-common)"; return 1; }
  mkdir -p "$W/statd/sm" "$W/statd/sm.bak"
  unshare --net --mount bash -c '
    ip link set lo up
    mount -t tmpfs tmpfs /run
    rpcbind -w -f & RB=$!
    for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
    rpc.statd -F -d -L -P "$2" 2>>"$2/statd.log" & SD=$!
    for _ in $(seq 50); do rpcinfo -p 127.0.0.1 2>/dev/null | grep -q " 100024 " && break; sleep 0.1; done
    NLM_TEST_STATD_DIR="$2" CK_RUN_CASE=statd "$1"; rc=$?
    kill $SD; wait $SD
    kill $RB; wait $RB
    exit $rc
  ' nlm "$B/tests/nfs/test_nlm" "$W/statd"
}
check "NLM v4 with libnfs from two caller names: conflicts, splits, GRANTED_MSG callback, CANCEL, FREE_ALL, LOCK_MSG, SHARE, eviction, grace period, bad input (test_nlm)" \
  nlm_with_rpcbind
check "NLM with the real rpc.statd: a lock holder is SM_MONed, its reboot notice releases its locks, SM_UNMON when it holds none" \
  nlm_with_statd
check "sd_notify: READY=1 once the ports are open, STOPPING=1 on SIGTERM (Type=notify)" \
  env CACHE="$W/cache" "$TARNFS_ROOT/tests/nfs/sd-notify.sh"
check "metrics_listen: /metrics moves with NFS traffic, 404/405, only on the address given, off by default" \
  env CACHE="$W/cache" "$TARNFS_ROOT/tests/nfs/metrics.sh"

# ---- shell clients: nfs-ls, nfs-cat, nfs-cp ----
start_server() {   # start_server CACHE CONF -> sets SPID NPORT MPORT
  rm -f "$W/ports"
  "$TARNFSD" -f --cache "$1" --config "$2" --no-rpcbind --nfs-port 0 --mount-port 0 \
    --port-file "$W/ports" 2>>"$W/tarnfsd.log" &
  SPID=$!; track "$SPID"
  wait_until 30 test -s "$W/ports"
  read -r NPORT MPORT < "$W/ports"
}
stop_server() { kill "$SPID"; wait "$SPID"; }
url() { echo "nfs://127.0.0.1$1?nfsport=$NPORT&mountport=$MPORT&version=3"; }

: > "$W/empty.conf"
echo 'export / *(ro,no_root_squash)' > "$W/ro.conf"
start_server "$W/cache" "$W/ro.conf"
listing_matches() {
  # nfs-ls -R prints "mode nlink uid gid size path"; compare types, sizes, names.
  nfs-ls -R "$(url /demo)" | awk '{print substr($1,1,1), $5, $6}' | sort > "$W/nfs.txt"
  (cd "$W/src/demo" && find . -mindepth 1 -printf '%y %s %P\n') |
    awk '{t=$1; if (t=="f") t="-"; if (t=="d") {t="d"; $2=4096}; print t, $2, $3}' |
    sort > "$W/src.txt"
  diff <(awk '$1!="d"' "$W/nfs.txt") <(awk '$1!="d"' "$W/src.txt") >/dev/null &&
    diff <(awk '$1=="d"{print $3}' "$W/nfs.txt") <(awk '$1=="d"{print $3}' "$W/src.txt") >/dev/null
}
check "nfs-ls -R lists the run exactly as the source tree" listing_matches
cat_matches() {
  local n=0
  while read -r f; do
    nfs-cat "$(url "/demo/$f")" | cmp -s - "$W/src/demo/$f" || { echo "differs: $f"; return 1; }
    n=$((n+1))
  done < <(cd "$W/src/demo" && find . -type f -printf '%P\n' | head -60)
  [ "$n" -gt 50 ]
}
check "nfs-cat of 60 files matches the source byte for byte" cat_matches
check "nfs-cp refuses to write into a read-only export" \
  bash -c "! nfs-cp '$W/src/demo/perm/public' '$(url /demo/copied)' 2>/dev/null"
stop_server

echo 'export / *(rw,no_root_squash)' > "$W/rw.conf"
start_server "$W/rwcache" "$W/rw.conf"
cp_roundtrip() {
  nfs-cp "$W/src/demo/big.bin" "$(url /demo/copy.bin)" >/dev/null &&
    nfs-cat "$(url /demo/copy.bin)" | cmp -s - "$W/src/demo/big.bin"
}
check "nfs-cp writes a 3 MiB file that nfs-cat reads back identical" cp_roundtrip
stop_server

# ---- daemon behaviour ----
sighup_reloads_exports() {
  echo 'export / *(ro)' > "$W/hup.conf"
  start_server "$W/cache" "$W/hup.conf"
  nfs-ls "$(url /demo)" >/dev/null 2>&1 || return 1
  echo 'export / 192.0.2.1(ro)' > "$W/hup.conf"
  kill -HUP "$SPID"; sleep 0.5
  ! nfs-ls "$(url /demo)" >/dev/null 2>&1 || return 1
  echo 'export / 127.0.0.1(ro)' > "$W/hup.conf"
  kill -HUP "$SPID"; sleep 0.5
  nfs-ls "$(url /demo)" >/dev/null 2>&1 || return 1
  stop_server
}
check "SIGHUP reloads the exports (refused, then allowed again)" sighup_reloads_exports
sighup_without_exports_keeps_the_running_ones() {
  echo 'export / 192.0.2.1(ro)' > "$W/hup2.conf"
  start_server "$W/cache" "$W/hup2.conf"
  ! nfs-ls "$(url /demo)" >/dev/null 2>&1 || { stop_server; return 1; }
  echo 'list_ttl = 5s' > "$W/hup2.conf"     # every export line removed
  kill -HUP "$SPID"; sleep 0.5
  ! nfs-ls "$(url /demo)" >/dev/null 2>&1 || { stop_server; return 1; }
  stop_server
  grep -q "SIGHUP: keeping the old exports: .*hup2.conf has no export lines" "$W/tarnfsd.log"
}
check "SIGHUP with no export lines keeps the running exports (no fallback to '/ *')" \
  sighup_without_exports_keeps_the_running_ones
make_install_keeps_the_config_private() {
  local san=0; case "$B" in *build-san) san=1 ;; esac
  # B as the build made it (relative), so the .d files match and make
  # rebuilds nothing here but what is really out of date.
  make -s -C "$TARNFS_ROOT" install SAN=$san B="${B#"$TARNFS_ROOT"/}" DESTDIR="$W/inst" PREFIX=/usr \
    >"$W/install.log" 2>&1 || { cat "$W/install.log"; return 1; }
  [ "$(stat -c %a "$W/inst/etc/tarnfs/tarnfs.conf")" = 640 ]
}
check "make install writes /etc/tarnfs/tarnfs.conf 0640 (it may hold a secret key)" \
  make_install_keeps_the_config_private
bad_flag_is_explained() {
  "$TARNFSD" --no-such-flag 2>"$W/err.txt"; [ $? -eq 2 ] && grep -q "unknown option" "$W/err.txt" &&
  "$TARNFSD" -f --cache "$W/cache" --nfs-port 99999 2>"$W/err.txt"; [ $? -eq 2 ] &&
    grep -q "nfs-port" "$W/err.txt"
}
check "a bad flag gives a clear message and exit status 2" bad_flag_is_explained
bad_config_line_is_located() {
  printf 'cache = %s\nexport / *(ro,fast)\n' "$W/cache" > "$W/bad.conf"
  "$TARNFSD" -f --config "$W/bad.conf" 2>"$W/err.txt"; [ $? -eq 2 ] &&
    grep -q "bad.conf:2: unknown export option 'fast'" "$W/err.txt"
}
check "a bad config line is reported as FILE:LINE: why" bad_config_line_is_located
busy_port_is_reported() {
  start_server "$W/cache" "$W/empty.conf"
  "$TARNFSD" -f --cache "$W/cache" --config "$W/empty.conf" --no-rpcbind \
    --nfs-port "$NPORT" --mount-port 0 2>"$W/err.txt"; local rc=$?
  stop_server
  [ $rc -eq 1 ] && grep -q "Address already in use" "$W/err.txt"
}
check "a busy port is reported and tarnfsd exits 1" busy_port_is_reported
daemon_writes_pidfile_and_stops_on_sigterm() {
  rm -f "$W/ports"
  "$TARNFSD" --cache "$W/cache" --config "$W/empty.conf" --no-rpcbind --nfs-port 0 \
    --mount-port 0 --port-file "$W/ports" --pidfile "$W/tarnfsd.pid" || return 1
  [ -s "$W/tarnfsd.pid" ] || return 1
  local pid; pid=$(cat "$W/tarnfsd.pid"); track "$pid"
  read -r NPORT MPORT < "$W/ports"
  nfs-cat "$(url /demo/perm/public)" | cmp -s - "$W/src/demo/perm/public" || return 1
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  ! kill -0 "$pid" 2>/dev/null && [ ! -e "$W/tarnfsd.pid" ]
}
check "without -f it daemonizes, writes its pidfile, and SIGTERM stops it" \
  daemon_writes_pidfile_and_stops_on_sigterm

# ---- real rpcbind, in a private network and mount namespace ----
rpcbind_mount() {
  command -v rpcbind >/dev/null || { echo "rpcbind missing"; return 1; }
  unshare --net --mount bash -c '
    set -e
    ip link set lo up
    mount -t tmpfs tmpfs /run
    rpcbind -w -f & RB=$!
    for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
    "$TARNFSD" -f --cache "$1/cache" --config "$1/empty.conf" --nfs-port 0 --mount-port 0 \
      --port-file "$1/rb.ports" 2>>"$1/tarnfsd.log" & SP=$!
    for _ in $(seq 300); do [ -s "$1/rb.ports" ] && break; sleep 0.1; done
    rpcinfo -p 127.0.0.1 > "$1/rpcinfo.txt"
    # No ports in the URL: libnfs asks rpcbind for MOUNT and NFS.
    nfs-cat "nfs://127.0.0.1/demo/perm/public?version=3" > "$1/viarpcbind.txt"
    kill $SP; wait $SP
    rpcinfo -p 127.0.0.1 > "$1/rpcinfo-after.txt"
    kill $RB; wait $RB || true
  ' rb "$W" &&
  grep -q "100003    3   tcp" "$W/rpcinfo.txt" &&
  grep -q "100005    3   udp" "$W/rpcinfo.txt" &&
  grep -q "100021    4   tcp" "$W/rpcinfo.txt" &&
  grep -q "100021    4   udp" "$W/rpcinfo.txt" &&
  ! grep -q "100003" "$W/rpcinfo-after.txt" &&
  ! grep -q "100021" "$W/rpcinfo-after.txt" &&
  cmp -s "$W/viarpcbind.txt" "$W/src/demo/perm/public"
}
check "tarnfsd registers NFS, MOUNT and NLM v4 with real rpcbind, a client mounts through it, SIGTERM unregisters" \
  rpcbind_mount

rpcbind_tcp_only_without_udp() {
  unshare --net --mount bash -c '
    set -e
    ip link set lo up
    mount -t tmpfs tmpfs /run
    rpcbind -w -f & RB=$!
    for _ in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
    "$TARNFSD" -f --cache "$1/cache" --config "$1/empty.conf" --no-udp --nfs-port 0 \
      --mount-port 0 --port-file "$1/nu.ports" 2>>"$1/tarnfsd.log" & SP=$!
    for _ in $(seq 300); do [ -s "$1/nu.ports" ] && break; sleep 0.1; done
    rpcinfo -p 127.0.0.1 > "$1/rpcinfo-noudp.txt"
    kill $SP; wait $SP
    kill $RB; wait $RB || true
  ' rb "$W" &&
  grep -q "100003    3   tcp" "$W/rpcinfo-noudp.txt" &&
  grep -q "100005    3   tcp" "$W/rpcinfo-noudp.txt" &&
  grep -q "100021    4   tcp" "$W/rpcinfo-noudp.txt" &&
  ! grep -Eq "(10000[35] +3|100021 +4) +udp" "$W/rpcinfo-noudp.txt"
}
check "with --no-udp only the TCP services are registered with rpcbind" \
  rpcbind_tcp_only_without_udp

summary 50-nfs || { echo "50-nfs: server log:"; tail -40 "$W/tarnfsd.log"; exit 1; }
