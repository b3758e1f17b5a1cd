#!/usr/bin/env bash
# rgw-stop.sh: stops the cluster rgw-start.sh started in DIR (argument, or
# RGW_DIR, default /tmp/tarnfs-rgw), killing only the PIDs it recorded, then
# removes the directory (keep it with -k).
set -u
keep=0
[ "${1:-}" = -k ] && { keep=1; shift; }
RGW_DIR="${1:-${RGW_DIR:-/tmp/tarnfs-rgw}}"
[ -f "$RGW_DIR/pids" ] || { echo "rgw-stop: no cluster recorded in $RGW_DIR" >&2; exit 1; }
pids=()
# radosgw first, then the OSD, then the monitor: the reverse of start.
while read -r name pid; do pids=("$pid" "${pids[@]}"); done < "$RGW_DIR/pids"
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
for _ in $(seq 50); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
rm -f "$RGW_DIR/pids"
if [ $keep = 0 ]; then
  rm -rf "$RGW_DIR"
fi
exit 0
