#!/usr/bin/env bash
# sd-notify.sh: tarnfsd -f tells systemd (Type=notify) it is ready only once
# it serves: started with NOTIFY_SOCKET on a datagram socket this test reads
# (socat), READY=1 arrives after the ports are open, STOPPING=1 on SIGTERM.
# Without NOTIFY_SOCKET nothing changes.  Run by tests/suites/50-nfs.sh with
# TARNFSD (the binary) and CACHE (a cache holding runs); exits 1 on failure.
set -u
. "$(dirname "$0")/../lib.sh"
LINE_PREFIX="  "
T=$(mktemp -d /tmp/tarnfs-notify-XXXXXX)
cleanup() { stop_tracked; rm -rf "$T"; }
trap cleanup EXIT
: > "$T/empty.conf"
# The datagrams (one per sd_notify call) end up one after the other in
# notes; the checks look for the assignments in them.
socat -u UNIX-RECV:"$T/notify.sock" STDOUT > "$T/notes" 2>"$T/socat.err" &
track $!
wait_until 5 test -S "$T/notify.sock"
[ -S "$T/notify.sock" ] || { bad "socat made no socket"; cat "$T/socat.err"; exit 1; }
NOTIFY_SOCKET="$T/notify.sock" "$TARNFSD" -f --cache "$CACHE" --config "$T/empty.conf" \
  --no-rpcbind --nfs-port 0 --mount-port 0 --port-file "$T/ports" 2>"$T/tarnfsd.log" &
spid=$!; track "$spid"
wait_until 30 grep -q "READY=1" "$T/notes" 2>/dev/null
if grep -q "READY=1" "$T/notes"; then
  # The moment READY=1 is seen, the server must already answer.
  if [ -s "$T/ports" ] && read -r nport mport < "$T/ports" &&
     (exec 3<>"/dev/tcp/127.0.0.1/$nport") 2>/dev/null &&
     (exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null; then
    ok "READY=1 arrives once both ports accept connections"
  else
    bad "READY=1 arrived before the ports were open"
  fi
  grep -q "^STATUS=serving on NFS port $nport, MOUNT port $mport" "$T/notes" &&
    ok "STATUS= names the ports" || bad "STATUS= names the ports"
else
  bad "no READY=1 within 30 s"; cat "$T/tarnfsd.log"
fi
[ "$(grep -c 'READY=1' "$T/notes")" -eq 1 ] && ok "READY=1 is sent once" || bad "READY=1 is sent once"
kill "$spid"; wait "$spid"; rc=$?
wait_until 5 grep -q "STOPPING=1" "$T/notes"
[ $rc -eq 0 ] && grep -q "STOPPING=1" "$T/notes" && ok "SIGTERM: STOPPING=1, then a clean exit" ||
  { bad "SIGTERM: STOPPING=1, then a clean exit (status $rc)"; cat "$T/notes"; }
# Without NOTIFY_SOCKET: serves as before.
rm -f "$T/ports"
env -u NOTIFY_SOCKET "$TARNFSD" -f --cache "$CACHE" --config "$T/empty.conf" --no-rpcbind \
  --nfs-port 0 --mount-port 0 --port-file "$T/ports" 2>>"$T/tarnfsd.log" &
spid=$!; track "$spid"
wait_until 30 test -s "$T/ports"
kill "$spid"; wait "$spid"; rc=$?
[ -s "$T/ports" ] && [ $rc -eq 0 ] && ok "without NOTIFY_SOCKET it serves and stops as before" ||
  bad "without NOTIFY_SOCKET it serves and stops as before (status $rc)"
summary "  sd-notify"
