#!/usr/bin/env bash
# rgw-start.sh: starts a throwaway single-node Ceph cluster (one mon, one
# memstore OSD, radosgw/beast on 127.0.0.1:a free port) under RGW_DIR, creates
# an S3 user and a bucket, and writes the env lines a caller sources.
#
#   RGW_DIR=$(mktemp -d) B=build-san tests/s3/rgw-start.sh   # then:
#   . "$RGW_DIR/env"      # TARNFS_S3_ENDPOINT, AWS_ACCESS_KEY_ID,
#                         # AWS_SECRET_ACCESS_KEY, AWS_REGION,
#                         # TARNFS_S3_BUCKET, RGW_DIR
#   tests/s3/rgw-stop.sh "$RGW_DIR"
#
# Options (or env): -d DIR (RGW_DIR, default /tmp/tarnfs-rgw), -b BUCKET
# (TARNFS_S3_BUCKET, default tarnfs-test), -p PORT (RGW_PORT, default: a free
# one), -m MiB memstore cap (RGW_MEM_MB, default 1024).  The env lines are
# also printed on stdout.  Everything else goes to $RGW_DIR/start.log.
# Needs $B/tests/s3/s3tool (built by make test-programs) for the signed PUTs.
set -euo pipefail

ROOT="${TARNFS_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$ROOT/$B" ;; esac
RGW_DIR="${RGW_DIR:-/tmp/tarnfs-rgw}"
BUCKET="${TARNFS_S3_BUCKET:-tarnfs-test}"
PORT="${RGW_PORT:-}"
MEM_MB="${RGW_MEM_MB:-1024}"
while getopts "d:b:p:m:" opt; do
  case $opt in
    d) RGW_DIR=$OPTARG ;; b) BUCKET=$OPTARG ;; p) PORT=$OPTARG ;; m) MEM_MB=$OPTARG ;;
    *) echo "usage: rgw-start.sh [-d DIR] [-b BUCKET] [-p PORT] [-m MiB]" >&2; exit 2 ;;
  esac
done
S3TOOL="$B/tests/s3/s3tool"
die() { echo "rgw-start: $*" >&2; exit 1; }
[ -x "$S3TOOL" ] || die "missing $S3TOOL (run: make B=$B test-programs)"
for p in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph; do
  command -v $p >/dev/null || die "$p not installed (make deps installs ceph-mon ceph-osd radosgw ceph-common)"
done

# Refuse a second cluster in the same directory while the first one lives.
if [ -f "$RGW_DIR/pids" ]; then
  while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then
      die "a cluster is already running in $RGW_DIR ($name pid $pid); stop it with tests/s3/rgw-stop.sh $RGW_DIR"
    fi
  done < "$RGW_DIR/pids"
fi

# A port is taken when any socket of any state has it, not only a listener:
# a connection's own port (or one in TIME_WAIT) makes the daemon's bind
# fail too ("a daemon died while waiting for the monitor").  And ports are
# picked below the kernel's ephemeral range, which outgoing connections
# take from at any moment: on a host that just made thousands of
# connections (bench/compare) a pick inside it collided often.
port_busy() { [ -n "$(ss -Hatn "sport = :$1" 2>/dev/null)" ]; }
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPH_LO=32768 EPH_HI=60999
if [ $((EPH_LO - 1024)) -ge 2000 ]; then    # below it (from 20000 when there is room)
  PICK_LO=$(( EPH_LO > 22000 ? 20000 : 1024 ))
  PICK_N=$(( EPH_LO - PICK_LO - 16 ))
else                                        # else above it
  PICK_LO=$(( EPH_HI + 1 ))
  PICK_N=$(( 65535 - EPH_HI - 16 ))
fi
[ "$PICK_N" -ge 100 ] || die "no free ports outside the ephemeral range $EPH_LO-$EPH_HI"
free_port() {
  local p tries=0
  while :; do
    p=$(( PICK_LO + (RANDOM * 32768 + RANDOM) % PICK_N ))
    port_busy "$p" || { echo "$p"; return; }
    tries=$((tries + 1)); [ $tries -lt 200 ] || die "no free port found"
  done
}
# A run of n consecutive free ports, for the OSD's messenger.
free_range() {
  local n=$1 base i ok tries=0
  while :; do
    base=$(( PICK_LO + (RANDOM * 32768 + RANDOM) % PICK_N )); ok=1
    for ((i = 0; i < n; i++)); do port_busy $((base + i)) && { ok=0; break; }; done
    [ $ok = 1 ] && { echo "$base"; return; }
    tries=$((tries + 1)); [ $tries -lt 200 ] || die "no free port range found"
  done
}

USER_PORT=$PORT
# Ports are picked free but taken only when the daemons bind: a cluster
# started at the same moment can win the race, so a bind failure retries.
start_cluster() {
if [ -n "$USER_PORT" ]; then
  PORT=$USER_PORT
  port_busy "$PORT" && die "port $PORT on 127.0.0.1 is busy; pick another with -p or leave it out"
else
  PORT=$(free_port)
fi
MON_PORT=$(free_port)
OSD_PORTS=$(free_range 8)

# A retry starts from nothing: a monmap, keyring or OSD store left by the
# failed attempt would carry the old fsid ("wrong fsid", "monmap exists").
rm -rf "$RGW_DIR/mon" "$RGW_DIR/osd" "$RGW_DIR/run" "$RGW_DIR/log" \
       "$RGW_DIR/rgw" "$RGW_DIR/monmap" "$RGW_DIR/keyring" "$RGW_DIR/ceph.conf"
mkdir -p "$RGW_DIR"/{mon,osd/ceph-0,run,log,rgw}
: > "$RGW_DIR/pids"
exec 3>>"$RGW_DIR/start.log"
log() { echo "$(date +%T.%N | cut -c1-12) $*" >&3; }
FSID=$(cat /proc/sys/kernel/random/uuid)
CONF="$RGW_DIR/ceph.conf"
uuid_hex() { tr -d '-' < /proc/sys/kernel/random/uuid; }
ACCESS_KEY="TARNFSTEST$(uuid_hex | cut -c1-10 | tr a-f A-F)"
SECRET_KEY="$(uuid_hex)$(uuid_hex | cut -c1-8)"

cat > "$CONF" <<CONF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $RGW_DIR/keyring
run dir = $RGW_DIR/run
admin socket = $RGW_DIR/run/\$name.asok
log file = $RGW_DIR/log/\$name.log
pid file = $RGW_DIR/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
# a throwaway cluster: its monitor must not stop when the host filesystem
# is under 5 % free (Ceph's default; bench/compare fills the disk with
# its data sets, and the monitor died "while waiting for the monitor")
mon data avail crit = 0
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.1
ms bind port min = $OSD_PORTS
ms bind port max = $((OSD_PORTS + 7))
[mon.a]
mon data = $RGW_DIR/mon/a
[osd.0]
osd data = $RGW_DIR/osd/ceph-0
osd objectstore = memstore
memstore device bytes = $((MEM_MB * 1024 * 1024))
osd max object size = 134217728
[client.rgw.a]
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $RGW_DIR/rgw
rgw dns name = localhost
rgw multipart min part size = 65536
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw gc processor max time = 30
rgw enable usage log = false
CONF

started=()
record() { echo "$1 $2" >> "$RGW_DIR/pids"; started+=("$2"); log "started $1 pid $2"; }
fail() {   # exit 3: worth another try on fresh ports
  local code=1
  [ "$1" = -retry ] && { code=3; shift; }
  log "FAILED: $*"
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  : > "$RGW_DIR/pids"
  [ $code = 3 ] && [ "$ATTEMPT" -lt 3 ] && [ -z "$USER_PORT" ] && { log "retrying on other ports"; exit 3; }
  echo "rgw-start: $* (logs in $RGW_DIR/log, $RGW_DIR/start.log)" >&2
  exit 1
}
wait_for() {   # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out waiting for $what"
    for pid in "${started[@]}"; do kill -0 "$pid" 2>/dev/null || fail -retry "a daemon died while waiting for $what"; done
    sleep 0.2
  done
}
CEPH=(ceph -c "$CONF" --connect-timeout 10)

log "mon on $MON_PORT, osd ports $OSD_PORTS+, rgw on $PORT"
monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$RGW_DIR/monmap" >&3 2>&1
ceph-authtool --create-keyring "$RGW_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >&3 2>&1
ceph-authtool "$RGW_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' >&3 2>&1
ceph-mon -c "$CONF" --mkfs -i a --monmap "$RGW_DIR/monmap" --keyring "$RGW_DIR/keyring" >&3 2>&1 \
  || fail -retry "ceph-mon --mkfs failed"
ceph-mon -c "$CONF" -i a -f >&3 2>&1 &
record mon $!
wait_for 30 "the monitor" "${CEPH[@]}" mon stat

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$("${CEPH[@]}" osd new "$OSD_UUID" 2>&3) || fail -retry "ceph osd new failed"
[ "$OSD_ID" = 0 ] || fail -retry "unexpected osd id $OSD_ID"
ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >&3 2>&1 || fail -retry "ceph-osd --mkfs failed"
ceph-osd -c "$CONF" -i 0 -f >&3 2>&1 &
record osd $!
wait_for 60 "the OSD to come up" bash -c "'${CEPH[0]}' -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'"

radosgw -c "$CONF" -n client.rgw.a -f >&3 2>&1 &
record rgw $!
RGW_PID=$!
# Our radosgw, not some other process that took the port meanwhile.
# (Without the right to see process names, ss shows no "users:": then any
# listener will do.)
rgw_listens() {
  local out
  out=$(ss -Hltnp "sport = :$PORT" 2>/dev/null)
  [ -n "$out" ] && { [[ "$out" == *"pid=$RGW_PID,"* ]] || [[ "$out" != *users:* ]]; }
}
wait_for 60 "radosgw to listen on 127.0.0.1:$PORT" rgw_listens

radosgw-admin -c "$CONF" user create --uid=tarnfs-test --display-name="tarnfs test" \
  --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >&3 2>&1 || fail "radosgw-admin user create failed"

cat > "$RGW_DIR/env" <<ENV
TARNFS_S3_ENDPOINT=http://127.0.0.1:$PORT
AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=us-east-1
TARNFS_S3_BUCKET=$BUCKET
RGW_DIR=$RGW_DIR
RGW_PORT=$PORT
ENV
sed -i 's/^/export /' "$RGW_DIR/env"
set -a; . "$RGW_DIR/env"; set +a
unset AWS_SESSION_TOKEN AWS_PROFILE

# The bucket, then a warm-up PUT and multipart upload: RGW creates two
# more pools lazily on the first of each, which would slow the first test.
wait_for 30 "the bucket to be created" "$S3TOOL" mb "$BUCKET"
head -c 200000 /dev/urandom > "$RGW_DIR/warmup.bin"
"$S3TOOL" put --part-size 65536 "$BUCKET" .warmup "$RGW_DIR/warmup.bin" >&3 2>&1 || fail "warm-up multipart PUT failed"
"$S3TOOL" get "$BUCKET" .warmup "$RGW_DIR/warmup.out" >&3 2>&1 || fail "warm-up GET failed"
cmp -s "$RGW_DIR/warmup.bin" "$RGW_DIR/warmup.out" || fail "warm-up object read back differently"
"$S3TOOL" rm "$BUCKET" .warmup >&3 2>&1 || fail "warm-up DELETE failed"
rm -f "$RGW_DIR/warmup.bin" "$RGW_DIR/warmup.out"
log "ready"
cat "$RGW_DIR/env"
}

for ATTEMPT in 1 2 3; do
  rc=0
  ( start_cluster ) || rc=$?
  [ $rc = 3 ] || exit $rc
done
exit 1
