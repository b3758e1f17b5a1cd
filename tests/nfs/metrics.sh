#!/usr/bin/env bash
# metrics.sh: metrics_listen serves Prometheus metrics at GET /metrics: the
# counters move with real NFS traffic (nfs-cat, nfs-ls), other paths get
# 404 and other methods 405, it listens on the address given and nowhere
# else (IPv4 and IPv6), a busy metrics port stops the start, fetches,
# writes and a write-back from a NAS source are counted, and without
# metrics_listen nothing but the NFS and MOUNT ports listens.  Run by
# tests/suites/50-nfs.sh with TARNFSD (the binary) and CACHE (a cache
# holding the run "demo" with perm/public and big.bin); exits 1 on failure.
set -u
. "$(dirname "$0")/../lib.sh"
LINE_PREFIX="  "
T=$(mktemp -d /tmp/tarnfs-metrics-XXXXXX)
cleanup() { stop_tracked; rm -rf "$T"; }
trap cleanup EXIT

start() {   # start CONF [CACHE] -> SPID NPORT MPORT MET (metrics port, "" if none)
  rm -f "$T/ports"
  : > "$T/log"
  "$TARNFSD" -f --cache "${2:-$CACHE}" --config "$1" --no-rpcbind --nfs-port 0 --mount-port 0 \
    --port-file "$T/ports" 2>"$T/log" &
  SPID=$!; track "$SPID"
  wait_until 30 test -s "$T/ports"
  read -r NPORT MPORT < "$T/ports" || { cat "$T/log"; return 1; }
  MET=$(sed -n 's/.*metrics: serving \/metrics on .*, port \([0-9]*\)$/\1/p' "$T/log")
}
# SIGTERM: a clean exit (0; also no sanitizer report) with the endpoint up.
stop() { kill "$SPID"; wait "$SPID"; local rc=$?; [ $rc -eq 0 ] || bad "tarnfsd exits 0 on SIGTERM (status $rc)"; }
url() { echo "nfs://127.0.0.1$1?nfsport=$NPORT&mountport=$MPORT&version=3"; }
# value FILE 'series{labels}': the sample's value (0 when absent)
value() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }
grew() {   # grew SERIES MIN: the series rose by at least MIN between scrapes a and b
  local a b; a=$(value "$T/a" "$1"); b=$(value "$T/b" "$1")
  awk -v a="$a" -v b="$b" -v m="$2" 'BEGIN { exit !(b - a >= m) }' ||
    { echo "      $1: $a -> $b (want +$2)"; return 1; }
}

# ---- IPv4: values move with traffic ----
printf 'metrics_listen = 127.0.0.1:0\n' > "$T/v4.conf"
start "$T/v4.conf" || { bad "tarnfsd with metrics_listen starts"; exit 1; }
if [ -n "$MET" ]; then ok "the log names the metrics port ($MET)"
else bad "the log names the metrics port"; cat "$T/log"; exit 1; fi
base="http://127.0.0.1:$MET"
curl -sS -D "$T/hdr" -o "$T/a" "$base/metrics" && grep -qi '^content-type: text/plain; version=0.0.4' "$T/hdr" &&
  grep -q '^# TYPE tarnfs_nfs_calls_total counter' "$T/a" &&
  grep -q '^# HELP tarnfs_nfs_call_duration_seconds ' "$T/a" &&
  grep -q '^# TYPE tarnfs_nfs_call_duration_seconds histogram' "$T/a" &&
  ok "GET /metrics: the text exposition format (0.0.4) with HELP and TYPE lines" ||
  { bad "GET /metrics: the text exposition format"; cat "$T/hdr"; head -20 "$T/a"; }
every_family_typed() {   # every sample's family has a TYPE line
  local missing
  missing=$(awk '/^# TYPE/ { t[$3] = 1; next } /^#/ { next }
    { n = $1; sub(/\{.*/, "", n); b = n; sub(/_(bucket|sum|count)$/, "", b)
      if (!(n in t) && !(b in t)) print n }' "$T/a" | sort -u)
  [ -z "$missing" ] || { echo "      no TYPE for: $missing"; return 1; }
}
every_family_typed && ok "every sample belongs to a family with a TYPE line" ||
  bad "every sample belongs to a family with a TYPE line"

nfs-cat "$(url /demo/big.bin)" > "$T/big" 2>/dev/null
nfs-ls "$(url /demo)" > /dev/null 2>&1
nfs-cat "$(url /demo/no-such-file)" > /dev/null 2>&1
curl -sS -o "$T/b" "$base/metrics"
big=$(stat -c %s "$T/big")
[ "$big" -eq 3145728 ] || bad "nfs-cat read big.bin (got $big bytes)"
grew 'tarnfs_nfs_calls_total{proc="READ"}' 1 &&
  grew 'tarnfs_nfs_read_bytes_total' 3145728 &&
  ok "READ calls and bytes read count nfs-cat's 3 MiB" || bad "READ calls and bytes read count nfs-cat's 3 MiB"
grew 'tarnfs_mount_calls_total{proc="MNT"}' 3 &&
  grew 'tarnfs_nfs_calls_total{proc="LOOKUP"}' 1 &&
  { grew 'tarnfs_nfs_calls_total{proc="READDIRPLUS"}' 1 || grew 'tarnfs_nfs_calls_total{proc="READDIR"}' 1; } &&
  ok "MOUNT and NFS calls by procedure move with nfs-cat and nfs-ls" ||
  bad "MOUNT and NFS calls by procedure move with nfs-cat and nfs-ls"
grew 'tarnfs_nfs_errors_total{proc="LOOKUP",status="NFS3ERR_NOENT"}' 1 &&
  ok "a missing file counts as LOOKUP NFS3ERR_NOENT" || bad "a missing file counts as LOOKUP NFS3ERR_NOENT"
reads=$(value "$T/b" 'tarnfs_nfs_calls_total{proc="READ"}')
[ "$(value "$T/b" 'tarnfs_nfs_call_duration_seconds_count{proc="READ"}')" = "$reads" ] &&
  [ "$(value "$T/b" 'tarnfs_nfs_call_duration_seconds_bucket{proc="READ",le="+Inf"}')" = "$reads" ] &&
  awk '$1 == "tarnfs_nfs_call_duration_seconds_sum{proc=\"READ\"}" { exit !($2 > 0) }' "$T/b" &&
  ok "the READ latency histogram counts every READ (count, +Inf bucket, sum > 0)" ||
  bad "the READ latency histogram counts every READ"
grew 'tarnfs_connections_accepted_total' 3 && grew 'tarnfs_cache_hits_total' 1 &&
  grep -q '^tarnfs_cache_runs [1-9]' "$T/b" && grep -q '^tarnfs_cache_bytes [1-9]' "$T/b" &&
  grep -q '^tarnfs_connections{state="idle"} ' "$T/b" &&
  grep -q '^tarnfs_parked_requests 0$' "$T/b" &&
  grep -q '^tarnfs_writeback_dirty_runs 0$' "$T/b" &&
  grep -q '^tarnfs_cache_fetched_bytes_total{backend="none"} 0$' "$T/b" &&
  ok "connections, cache, parked and write-back figures are exported" ||
  { bad "connections, cache, parked and write-back figures are exported";
    grep -E '^tarnfs_(conn|cache|parked|writeback)' "$T/b" | sed 's/^/      /'; }

# A directory inside a run listed twice: the second listing is the cached one.
cp "$T/b" "$T/a"
nfs-ls "$(url /demo/perm)" > "$T/ls1" 2>&1
nfs-ls "$(url /demo/perm)" > "$T/ls2" 2>&1
curl -sS -o "$T/b" "$base/metrics"
grew 'tarnfs_listing_cache_hits_total' 1 && grew 'tarnfs_listing_cache_misses_total' 1 &&
  grep -q '^tarnfs_listing_cache_bytes [1-9]' "$T/b" && grep -q public "$T/ls2" &&
  cmp -s "$T/ls1" "$T/ls2" &&
  ok "a directory listed again is answered from the listing cache, the same listing" ||
  { bad "a directory listed again is answered from the listing cache, the same listing";
    grep '^tarnfs_listing' "$T/b" | sed 's/^/      /'; }

# The example dashboard (etc/grafana-tarnfs.json) queries only what is exported.
dash="$(dirname "$0")/../../etc/grafana-tarnfs.json"
dashboard_metrics_exist() {
  local m missing=""
  for m in $(grep -o 'tarnfs_[a-z_]*' "$dash" | sed 's/_bucket$//' | sort -u); do
    grep -q "^# TYPE $m " "$T/b" || missing="$missing $m"
  done
  [ -z "$missing" ] || { echo "      not exported:$missing"; return 1; }
}
dashboard_metrics_exist &&
  ok "every metric the Grafana dashboard queries is exported" ||
  bad "every metric the Grafana dashboard queries is exported"

# ---- bad requests ----
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/")
code2=$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics/x")
[ "$code" = 404 ] && [ "$code2" = 404 ] && ok "other paths get 404" || bad "other paths get 404 (got $code, $code2)"
code=$(curl -s -D "$T/hdr" -o /dev/null -w '%{http_code}' -X POST --data 'x=1' "$base/metrics")
[ "$code" = 405 ] && grep -qi '^allow: GET, HEAD' "$T/hdr" && ok "POST /metrics gets 405 with Allow: GET, HEAD" ||
  bad "POST /metrics gets 405 (got $code)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$base/metrics")
[ "$code" = 405 ] && ok "DELETE /metrics gets 405" || bad "DELETE /metrics gets 405 (got $code)"

# ---- only on the address given ----
# 127.0.0.2 reaches lo too: a socket bound to any address would answer there.
! (exec 3<>"/dev/tcp/127.0.0.2/$MET") 2>/dev/null &&
  [ "$(ss -ltnH "sport = :$MET" | awk '{print $4}')" = "127.0.0.1:$MET" ] &&
  ok "it listens on 127.0.0.1:$MET only (127.0.0.2 is refused; one socket)" ||
  { bad "it listens on 127.0.0.1:$MET only"; ss -ltn "sport = :$MET"; }

# ---- a busy metrics port stops the start ----
printf 'metrics_listen = 127.0.0.1:%s\n' "$MET" > "$T/busy.conf"
"$TARNFSD" -f --cache "$CACHE" --config "$T/busy.conf" --no-rpcbind --nfs-port 0 \
  --mount-port 0 2>"$T/busy.log"; rc=$?
[ $rc -eq 1 ] && grep -q "metrics: cannot listen on 127.0.0.1:$MET: Address already in use" "$T/busy.log" &&
  ok "a busy metrics port is reported and tarnfsd exits 1" ||
  { bad "a busy metrics port is reported and tarnfsd exits 1 (status $rc)"; cat "$T/busy.log"; }
stop

# ---- IPv6 ----
if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/'; then
  printf 'metrics_listen = [::1]:0\n' > "$T/v6.conf"
  start "$T/v6.conf"
  code=$(curl -s -g -o "$T/c" -w '%{http_code}' "http://[::1]:$MET/metrics")
  [ -n "$MET" ] && [ "$code" = 200 ] && grep -q '^tarnfs_nfs_calls_total' "$T/c" &&
    ! (exec 3<>"/dev/tcp/127.0.0.1/$MET") 2>/dev/null &&
    [ "$(ss -ltnH "sport = :$MET" | awk '{print $4}')" = "[::1]:$MET" ] &&
    ok "[::1]:PORT serves on ::1 only (not on 127.0.0.1)" ||
    { bad "[::1]:PORT serves on ::1 only (code $code)"; cat "$T/log"; }
  stop
else
  ok "[::1]:PORT # skip: no ::1 on lo"
fi

# ---- a NAS source: fetches, writes and write-back move ----
mkdir -p "$T/src/wrun" "$T/nas"
printf 'hello\n' > "$T/src/wrun/hello.txt"
tar -C "$T/src" -cf "$T/nas/wrun.tar" wrun
head -c 10000 /dev/urandom > "$T/nas/broken.tar"       # not a tarball
head -c 200000 /dev/urandom > "$T/new.bin"
printf 'source = %s\nmetrics_listen = 127.0.0.1:0\nwriteback_delay = 60m\nexport / *(rw,no_root_squash)\n' \
  "$T/nas" > "$T/nas.conf"
start "$T/nas.conf" "$T/wcache"
base="http://127.0.0.1:$MET"
curl -sS -o "$T/a" "$base/metrics"
nfs-cat "$(url /wrun/hello.txt)" > "$T/hello" 2>/dev/null
nfs-ls "$(url /broken)" > /dev/null 2>&1
nfs-cp "$T/new.bin" "$(url /wrun/new.bin)" > /dev/null 2>&1
curl -sS -o "$T/b" "$base/metrics"
grew 'tarnfs_cache_fetches_total{kind="run",outcome="ok"}' 1 &&
  grew 'tarnfs_cache_fetches_total{kind="run",outcome="failed"}' 1 &&
  grew 'tarnfs_cache_fetched_bytes_total{backend="nas"}' 10240 &&
  grew 'tarnfs_cache_misses_total' 1 &&
  ok "a first touch counts a miss, a run fetch ok (and a failed one for a broken tarball), bytes fetched from nas" ||
  bad "a first touch counts a miss, a run fetch ok (and a failed one), bytes fetched from nas"
grew 'tarnfs_nfs_written_bytes_total' 200000 && grew 'tarnfs_nfs_calls_total{proc="WRITE"}' 1 &&
  grep -q '^tarnfs_writeback_dirty_runs 1$' "$T/b" &&
  ok "nfs-cp's 200000 bytes count as WRITE bytes; the run counts as dirty" ||
  { bad "nfs-cp's bytes count as WRITE bytes; the run counts as dirty";
    grep -E '^tarnfs_(writeback|nfs_written)' "$T/b" | sed 's/^/      /'; }
awk '$1 == "tarnfs_writeback_oldest_dirty_age_seconds" { exit !($2 > 0) }' "$T/b" &&
  ok "the oldest dirty change has an age" || bad "the oldest dirty change has an age"
"${TARNFS:-$(dirname "$TARNFSD")/tarnfs}" flush --cache "$T/wcache" wrun > /dev/null 2>&1
curl -sS -o "$T/c" "$base/metrics"
grep -q '^tarnfs_writeback_uploads_total{outcome="ok"} 1$' "$T/c" &&
  grep -q '^tarnfs_writeback_dirty_runs 0$' "$T/c" &&
  grep -q '^tarnfs_writeback_oldest_dirty_age_seconds 0.000$' "$T/c" &&
  ok "tarnfs flush counts an upload ok and the run is clean again" ||
  { bad "tarnfs flush counts an upload ok and the run is clean again";
    grep -E '^tarnfs_writeback' "$T/c" | sed 's/^/      /'; }
stop

# ---- off by default ----
: > "$T/off.conf"
start "$T/off.conf"
ports=$(ss -ltnpH | grep "pid=$SPID," | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ')
want=$(printf '%s\n' "$NPORT" "$MPORT" | sort -un | tr '\n' ' ')
[ -z "$MET" ] && [ "$ports" = "$want" ] && ! grep -q 'metrics' "$T/log" &&
  ok "without metrics_listen only the NFS and MOUNT ports listen" ||
  bad "without metrics_listen only the NFS and MOUNT ports listen (listening: $ports; want $want)"
stop
summary "  metrics"
