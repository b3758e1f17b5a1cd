#!/usr/bin/env bash
# 85-deb: the Debian package.  `make deb` builds it (lintian-clean); it is
# installed with apt into a clean Debian 12 root (mmdebstrap, minbase plus
# systemd-sysv, from this machine's bookworm mirrors) and:
#   - chroot: the files land where they should with the right modes, the
#     programs run, the shipped config passes --check-config once it names
#     a source (without one it says to set one), the unit
#     passes systemd-analyze verify, tarnfsd serves from the packaged cache
#     in the foreground (127.0.0.1, ports the kernel picks, no rpcbind) and
#     /metrics is scraped with curl from the host; then `apt-get purge`
#     leaves the root as it was before the install (file list, owners,
#     modes, symlink targets and file contents), apt/dpkg bookkeeping aside;
#   - systemd-nspawn: installed again, the root is booted (its own network
#     namespace: the shipped config binds 2049, 20048 and rpcbind's 111 there,
#     not on the host); the unit is installed disabled and not started,
#     `systemctl start tarnfsd` with the shipped config plus metrics_listen
#     works (rpcbind and rpc.statd up, NFS and MOUNT registered), /metrics
#     is scraped from the host's curl inside that namespace, reload and stop.
# The package's dependencies are installed before the "before" snapshot, so
# the comparison sees what the package itself does (apt would keep them
# after a purge anyway; nfs-common's postinst also adds a 'statd' user that
# no purge removes).
# SKIP (exit 0) only when this machine's Debian mirror cannot be reached
# or the suite does not run as root.  The bootstrapped root is cached in
# build-deb/bookworm-root.tar (about 190 MB, rebuilt after 7 days).
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
. tests/lib.sh
LINE_PREFIX="85-deb: "
say() { echo "85-deb: $*"; }

[ "$(id -u)" -eq 0 ] || skip_all "needs root (chroot, mounts, systemd-nspawn)"
for t in mmdebstrap systemd-nspawn dpkg-buildpackage lintian curl nsenter rpcinfo; do
  command -v "$t" > /dev/null || { say "FAIL - $t is installed (make deps)"; exit 1; }
done

# ---- the mirrors: this machine's apt sources for bookworm, main ----
mapfile -t SOURCES < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
  'Identifier: Packages' 2>/dev/null |
  awk '$3 == "main" && ($2 == "bookworm" || $2 == "bookworm-updates" || $2 == "bookworm-security") {
         print "deb " $1 " " $2 " main" }' | sort -u)
[ ${#SOURCES[@]} -gt 0 ] || SOURCES=("deb http://deb.debian.org/debian bookworm main")
MIRROR=$(printf '%s\n' "${SOURCES[@]}" | awk '$3 == "bookworm" { print $2; exit }')
curl -sf --max-time 20 -o /dev/null "${MIRROR%/}/dists/bookworm/InRelease" ||
  skip_all "the Debian mirror $MIRROR cannot be reached (apt in the test root needs it)"

# ---- what this suite creates, and its cleanup ----
W=$(mktemp -d /var/tmp/tarnfs-85deb-XXXXXX)
R="$W/root"
SPID=""      # tarnfsd in the chroot
NSPID=""     # systemd-nspawn
LEADER=""    # the container's PID 1 (systemd), nspawn's child
MOUNTS=()
cleanup() {
  [ -n "$SPID" ] && { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
  if [ -n "$NSPID" ]; then
    kill "$NSPID" 2>/dev/null   # SIGTERM: nspawn powers the container off
    for _ in $(seq 30); do kill -0 "$NSPID" 2>/dev/null || break; sleep 1; done
    kill -KILL "$NSPID" 2>/dev/null; wait "$NSPID" 2>/dev/null
  fi
  # A killed nspawn leaves its container running: SIGKILL to the
  # container's PID 1 ends every process of its PID namespace.
  [ -n "$LEADER" ] && kill -KILL "$LEADER" 2>/dev/null
  local m
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
  # --one-file-system: never into a mount left behind
  rm -rf --one-file-system "$W"
}
trap cleanup EXIT
mount_proc() { mount -t proc proc "$R/proc" && MOUNTS=("$R/proc"); }
umount_proc() { umount "$R/proc" && MOUNTS=(); }
in_root() { DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 chroot "$R" "$@"; }

# ---- the package ----
make -s deb > "$W/make-deb.log" 2>&1
rc=$?
VERSION=$(dpkg-parsechangelog -l debian/changelog -S Version)
DEB="build-deb/tarnfs_${VERSION}_$(dpkg --print-architecture).deb"
check "make deb builds $DEB with dpkg-buildpackage and lintian reports nothing" \
  test "$rc" -eq 0 -a -f "$DEB"
[ $rc -eq 0 ] || { tail -40 "$W/make-deb.log"; exit 1; }

# ---- a clean Debian 12 root ----
TARBALL=build-deb/bookworm-root.tar
if [ -f "$TARBALL" ] && [ -z "$(find "$TARBALL" -mtime +7)" ]; then
  say "root: cached $TARBALL"
else
  say "root: mmdebstrap bookworm minbase + systemd-sysv from: ${SOURCES[*]}"
  mmdebstrap --variant=minbase --include=systemd-sysv bookworm "$W/root.tar" "${SOURCES[@]}" \
    > "$W/mmdebstrap.log" 2>&1 && mv "$W/root.tar" "$TARBALL" ||
    { tail -20 "$W/mmdebstrap.log"; say "FAIL - mmdebstrap makes a bookworm root"; exit 1; }
fi
mkdir "$R" && tar -C "$R" -xpf "$TARBALL" || { say "FAIL - the root tarball unpacks"; exit 1; }
# Harness, not part of the comparison: this host's resolver, no daemon
# started by a maintainer script in the chroot (policy-rc.d), the .deb.
cp /etc/resolv.conf "$R/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d" && chmod 755 "$R/usr/sbin/policy-rc.d"
cp "$DEB" "$R/tmp/tarnfs.deb"
mount_proc || { say "FAIL - mount /proc in the root"; exit 1; }
deps=$(for f in Depends Recommends; do dpkg-deb -f "$DEB" "$f"; done |
  tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | sort -u)
{ in_root apt-get update -q && in_root apt-get dist-upgrade -y -q &&
  in_root apt-get install -y -q $deps; } > "$W/apt-deps.log" 2>&1
check "apt installs the package's Depends and Recommends into the root ($(echo $deps))" test $? -eq 0 ||
  { tail -20 "$W/apt-deps.log"; exit 1; }

# The root as it is: path, mode, owner, symlink target; then every regular
# file's SHA-256.  /proc, /sys, /dev, /run and /tmp are left out (mounts and
# run-time state; /tmp holds this harness's files).
snapshot() {
  (cd "$R" && {
    find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run -o -path ./tmp \) -prune \
      -o -printf '%p %M %U:%G %l\n'
    find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run -o -path ./tmp \) -prune \
      -o -type f -print0 | xargs -0 sha256sum | sed 's/^\([0-9a-f]*\)  \(.*\)$/\2 sha256:\1/'
  } | LC_ALL=C sort) > "$1"
}
snapshot "$W/before"

# ---- install in the chroot ----
in_root apt-get install -y -q /tmp/tarnfs.deb > "$W/apt-install.log" 2>&1
rc=$?
check "apt-get install ./tarnfs_${VERSION}_*.deb installs it, needing no other package" \
  eval '[ $rc -eq 0 ] && [ "$(grep -c "^Setting up " "$W/apt-install.log")" -eq 1 ]' ||
  cat "$W/apt-install.log"
mode() { stat -c '%a %U:%G' "$R$1" 2>/dev/null; }
check "tarnfsd is /usr/sbin/tarnfsd and runs (--help)" eval 'in_root /usr/sbin/tarnfsd --help > /dev/null'
check "tarnfs is /usr/bin/tarnfs and runs (--help)" eval 'in_root /usr/bin/tarnfs --help > /dev/null'
check "the man pages tarnfsd(8), tarnfs(1), tarnfs-convert(1), tarnfs.conf(5) are installed" \
  test -f "$R/usr/share/man/man8/tarnfsd.8.gz" -a -f "$R/usr/share/man/man1/tarnfs.1.gz" \
    -a -f "$R/usr/share/man/man1/tarnfs-convert.1.gz" -a -f "$R/usr/share/man/man5/tarnfs.conf.5.gz"
check "the unit is /lib/systemd/system/tarnfsd.service and runs /usr/sbin/tarnfsd" \
  grep -q '^ExecStart=/usr/sbin/tarnfsd -f --config /etc/tarnfs/tarnfs.conf$' "$R/lib/systemd/system/tarnfsd.service"
check "the unit is installed disabled (no WantedBy link)" \
  test ! -e "$R/etc/systemd/system/multi-user.target.wants/tarnfsd.service"
check "/etc/tarnfs/tarnfs.conf is a conffile, mode 0640 root:root" \
  eval '[ "$(mode /etc/tarnfs/tarnfs.conf)" = "640 root:root" ] &&
        in_root dpkg-query -W -f "\${Conffiles}" tarnfs | grep -q "^ /etc/tarnfs/tarnfs.conf "'
check "the cache directory /var/cache/tarnfs exists, mode 0700 root:root" \
  eval '[ "$(mode /var/cache/tarnfs)" = "700 root:root" ]'
check "the sample config, changelog and copyright are in /usr/share/doc/tarnfs" \
  test -f "$R/usr/share/doc/tarnfs/tarnfs.conf.sample" -a -f "$R/usr/share/doc/tarnfs/changelog.gz" \
    -a -f "$R/usr/share/doc/tarnfs/copyright"
# The shipped config names no source (the admin picks one), and the packaged
# cache is still empty: --check-config says so, and what to do, before the
# unit's start would fail; with a source it passes.
check "the shipped config fails tarnfsd --check-config until a source is set, saying so" \
  eval '! in_root /usr/sbin/tarnfsd --check-config /etc/tarnfs/tarnfs.conf > "$W/check-config.out" 2>&1 &&
        grep -q "/var/cache/tarnfs is not a tarnfs cache and no source is set: set .source." "$W/check-config.out"' ||
  cat "$W/check-config.out"
cp "$R/etc/tarnfs/tarnfs.conf" "$R/tmp/with-source.conf"
echo "source = /tmp" >> "$R/tmp/with-source.conf"
check "the shipped config with a source added passes tarnfsd --check-config" \
  eval 'in_root /usr/sbin/tarnfsd --check-config /tmp/with-source.conf > "$W/check-config.out" 2>&1' ||
  cat "$W/check-config.out"
rm -f "$R/tmp/with-source.conf"
# --man=no: no man in a minbase root; the Documentation= pages are checked above.
check "systemd-analyze verify passes the installed unit" \
  eval 'in_root systemd-analyze verify --man=no /lib/systemd/system/tarnfsd.service > "$W/verify.out" 2>&1 &&
        ! grep -v "kernel does not support IPv6" "$W/verify.out" | grep -q .' ||
  cat "$W/verify.out"

# ---- tarnfsd in the chroot, in the foreground, on the packaged cache ----
# A NAS source with one run tarball (under /tmp: harness).  Without a
# source tarnfsd serves only a cache 'tarnfs ingest' made, and the packaged
# cache directory is empty (see README: the unit is installed disabled).
mkrun() {   # mkrun DIR: DIR/run1.tar holding run1/hello.txt
  mkdir -p "$W/src/run1" "$1" && echo "hello from the packaged tarnfsd" > "$W/src/run1/hello.txt" &&
    tar -C "$W/src" -cf "$1/run1.tar" run1
}
mkrun "$R/tmp/nas"
cat > "$R/tmp/test.conf" <<'EOF'
cache = /var/cache/tarnfs
source = /tmp/nas
listen = 127.0.0.1
nfs_port = 0
mount_port = 0
rpcbind = no
statd = no
metrics_listen = 127.0.0.1:0
export / 127.0.0.1(ro)
EOF
chroot "$R" /usr/sbin/tarnfsd -f --config /tmp/test.conf --port-file /tmp/ports > "$W/tarnfsd.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do [ -s "$R/tmp/ports" ] && break; kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
read -r NPORT MPORT < "$R/tmp/ports" 2>/dev/null
MET=$(sed -n 's/.*metrics: serving \/metrics on .*, port \([0-9]*\)$/\1/p' "$W/tarnfsd.log")
check "tarnfsd from the package serves in the chroot (NFS ${NPORT:-?}, MOUNT ${MPORT:-?}, metrics ${MET:-?})" \
  test -n "${NPORT:-}" -a -n "$MET" || cat "$W/tarnfsd.log"
check "an NFS client reads run1/hello.txt (fetched from the source into the cache)" \
  eval 'nfs-cat "nfs://127.0.0.1/run1/hello.txt?nfsport=$NPORT&mountport=$MPORT&version=3" > "$W/cat.out" 2>&1 &&
        cmp -s "$W/cat.out" "$W/src/run1/hello.txt"' || cat "$W/cat.out"
check "curl on the host scrapes /metrics: Prometheus text, the MOUNT call and the bytes read counted" \
  eval 'curl -sf --max-time 10 -o "$W/metrics" "http://127.0.0.1:$MET/metrics" &&
        grep -q "^# TYPE tarnfs_nfs_calls_total counter" "$W/metrics" &&
        grep -q "^tarnfs_mount_calls_total{proc=\"MNT\"} [1-9]" "$W/metrics" &&
        grep -q "^tarnfs_nfs_read_bytes_total [1-9]" "$W/metrics"' || grep -E "^tarnfs_(mount_calls|nfs_read_bytes)" "$W/metrics"
kill "$SPID"; wait "$SPID"; rc=$?; SPID=""
check "tarnfsd stops on SIGTERM with status 0" test "$rc" -eq 0 || tail -20 "$W/tarnfsd.log"
check "it filled the packaged cache (handle.key, the run's databases)" \
  test -f "$R/var/cache/tarnfs/handle.key" -a -d "$R/var/cache/tarnfs/runs/run1"
rm -f "$R/tmp/ports"

# ---- purge: the root as it was ----
in_root apt-get purge -y -q tarnfs > "$W/apt-purge.log" 2>&1
check "apt-get purge tarnfs succeeds" test $? -eq 0 || cat "$W/apt-purge.log"
check "purge removes /etc/tarnfs and the filled cache /var/cache/tarnfs" \
  test ! -e "$R/etc/tarnfs" -a ! -e "$R/var/cache/tarnfs"
snapshot "$W/after"
# Allowed to differ, apt's and dpkg's own records of what they did (the
# package database itself, var/lib/dpkg/status, must be as before):
#   var/lib/dpkg/status-old                 dpkg's backup of the database
#   var/cache/apt/pkgcache.bin, srcpkgcache.bin   apt's binary caches, rebuilt
#   var/log/apt/history.log, term.log, eipp.log.xz  apt's logs of the two runs
#   var/log/dpkg.log                        dpkg's log of them
ALLOWED='^\./var/lib/dpkg/status-old( |$)|^\./var/cache/apt/(pkgcache|srcpkgcache)\.bin( |$)|^\./var/log/apt/(history\.log|term\.log|eipp\.log\.xz)( |$)|^\./var/log/dpkg\.log( |$)'
diff <(grep -Ev "$ALLOWED" "$W/before") <(grep -Ev "$ALLOWED" "$W/after") > "$W/diff"
check "after install + purge the root is as before (paths, modes, owners, links, contents; bookkeeping aside)" \
  test ! -s "$W/diff" || head -40 "$W/diff"
say "  bookkeeping that changed: $(diff "$W/before" "$W/after" | sed -n 's/^[<>] \.\/\([^ ]*\) .*/\1/p' | sort -u | xargs)"
umount_proc

# ---- systemd-nspawn: boot the root, systemctl start tarnfsd ----
in_root apt-get install -y -q /tmp/tarnfs.deb > "$W/apt-install2.log" 2>&1 ||
  { cat "$W/apt-install2.log"; say "FAIL - apt-get installs the package again after the purge"; exit 1; }
# What an admin does before enabling it: a source, and here metrics.
mkrun "$R/srv/runs"
printf 'source = /srv/runs\nmetrics_listen = 127.0.0.1:9108\n' >> "$R/etc/tarnfs/tarnfs.conf"
# --register=no --keep-unit: no machined or host D-Bus needed (this host's
# PID 1 is not systemd); --private-network: the container's own network
# namespace with only a loopback.
systemd-nspawn -q -D "$R" -b --register=no --keep-unit --private-network \
  --console=read-only > "$W/nspawn.log" 2>&1 &
NSPID=$!
# The container's PID 1 is the child of nspawn that runs systemd (nspawn's
# short-lived setup child, also its child, does not: it is not exec'd).
for _ in $(seq 150); do
  for p in $(ps -o pid= --ppid "$NSPID" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && { LEADER=$p; break; }
  done
  [ -n "$LEADER" ] && break; kill -0 "$NSPID" 2>/dev/null || break; sleep 0.2
done
inside() { nsenter -t "$LEADER" -m -u -i -n -p -- "$@"; }
# is-system-running --wait waits for the boot to finish, but prints nothing
# (no bus yet) when systemd has only just been exec'd: ask again then.
state=""
deadline=$((SECONDS + 90))
while [ -n "$LEADER" ] && [ -z "$state" ] && [ $SECONDS -lt $deadline ] && kill -0 "$LEADER" 2>/dev/null; do
  state=$(timeout 90 nsenter -t "$LEADER" -m -u -i -n -p -- systemctl is-system-running --wait 2>/dev/null)
  [ -n "$state" ] || sleep 0.5
done
check "systemd-nspawn boots the root (system state: ${state:-none})" \
  eval '[ "$state" = running ] || [ "$state" = degraded ]' ||
  { say "  nspawn pid $NSPID ($(kill -0 "$NSPID" 2>/dev/null && echo running || echo exited)), leader ${LEADER:-not found}; its log:"
    tail -30 "$W/nspawn.log"; exit 1; }
# rpc_pipefs (nfs-common, for NFSv4 clients) cannot be mounted in a container.
[ "$state" = running ] ||
  say "  failed units: $(inside systemctl --failed --plain --no-legend | awk '{ print $1 }' | xargs)"
check "the booted system has tarnfsd disabled and not running (the package starts nothing)" \
  eval '[ "$(inside systemctl is-enabled tarnfsd.service)" = disabled ] &&
        ! inside systemctl -q is-active tarnfsd.service'
inside systemctl start tarnfsd.service > "$W/start.out" 2>&1
check "systemctl start tarnfsd: active with the shipped config + source + metrics_listen" \
  eval 'inside systemctl -q is-active tarnfsd.service' ||
  { cat "$W/start.out"; inside journalctl -u tarnfsd.service --no-pager | tail -20; }
check "rpcbind (Recommends) started with it and lists NFS 100003, MOUNT 100005, NLM 100021" \
  eval 'inside rpcinfo -p > "$W/rpcinfo" 2>&1 && grep -Eq " 100003 +3 +tcp +2049( |\$)" "$W/rpcinfo" &&
        grep -Eq " 100005 +3 +tcp +20048( |\$)" "$W/rpcinfo" &&
        grep -Eq " 100021 +4 +tcp +2049( |\$)" "$W/rpcinfo"' || cat "$W/rpcinfo"
check "rpc.statd (nfs-common, Recommends) runs beside it" inside systemctl -q is-active rpc-statd.service
# The host's NFS client and curl in the container's network namespace.
check "an NFS client reads run1/hello.txt through rpcbind (ports 2049, 20048)" \
  eval 'nsenter -t "$LEADER" -n -- nfs-cat "nfs://127.0.0.1/run1/hello.txt?version=3" > "$W/cat2.out" 2>&1 &&
        cmp -s "$W/cat2.out" "$W/src/run1/hello.txt"' || cat "$W/cat2.out"
check "curl scrapes http://127.0.0.1:9108/metrics of the systemd-run tarnfsd" \
  eval 'nsenter -t "$LEADER" -n -- curl -sf --max-time 10 -o "$W/metrics2" http://127.0.0.1:9108/metrics &&
        grep -q "^# TYPE tarnfs_nfs_calls_total counter" "$W/metrics2"'
check "systemctl reload tarnfsd works (ExecReload: /bin/kill, procps)" \
  eval 'inside systemctl reload tarnfsd.service && inside systemctl -q is-active tarnfsd.service'
inside systemctl stop tarnfsd.service
check "systemctl stop tarnfsd: inactive, result success" \
  eval '! inside systemctl -q is-active tarnfsd.service &&
        [ "$(inside systemctl show -P Result tarnfsd.service)" = success ]' ||
  inside journalctl -u tarnfsd.service --no-pager | tail -20
inside systemctl poweroff > /dev/null 2>&1
for _ in $(seq 60); do kill -0 "$NSPID" 2>/dev/null || break; sleep 0.5; done
wait "$NSPID"; rc=$?; NSPID=""; LEADER=""
check "the container powers off cleanly (systemd-nspawn status $rc)" test "$rc" -eq 0

summary 85-deb
