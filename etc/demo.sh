#!/usr/bin/env bash
# demo.sh: `make demo`: generate a few small synthetic run folders, tar each
# into a NAS-style directory of tarballs, and serve that directory as one NFS
# tree with tarnfsd in the foreground: each run is fetched into the cache on
# first touch.  Prints how to reach it (libnfs URL, Linux mount line).
# Ctrl-C stops the server.  Builds nothing (make demo already built build/).
# Env: B (build dir, default build), DEMO_DIR (default /var/tmp/tarnfs-demo),
#      DEMO_NFS_PORT / DEMO_MOUNT_PORT (default 2049 / 20048; busy ports fall
#      back to free ones), DEMO_SECONDS (stop after N seconds; default: never).
set -eu
cd "$(dirname "$0")/.."
B="${B:-build}"
D="${DEMO_DIR:-/var/tmp/tarnfs-demo}"
RUN=241023_A01295_0432_BHK3NFDRX5
RUNS="$RUN 241024_A01295_0433_AHK3NFDRX5 241025_A01295_0434_BHK7TTDRX5"
GENRUN="$B/genrun"
if [ ! -x "$GENRUN" ]; then
  make -s B="$B" "$B/genrun"      # genrun is a test program, not in build-all
fi
rm -rf "$D"
mkdir -p "$D/src" "$D/nas"
seed=1
for r in $RUNS; do
  echo "== generating run folder $D/src/$r and tarring it to $D/nas/$r.tar"
  "$GENRUN" -q --name "$r" --seed $seed --lanes 2 --cycles 4 --tiles 2 --file-size 8k \
    --symlinks --hardlinks --empty-dirs "$D/src"
  tar -C "$D/src" -cf "$D/nas/$r.tar" "$r"
  seed=$((seed+1))
done
ls -l "$D/nas"

# Serve the NAS directory.  No config file: one export "/", read-only, for
# every client; the cache is created on start.
# --no-rpcbind keeps the demo from touching this machine's rpcbind entries
# (a kernel NFS server may be registered there); clients give the ports.
: > "$D/tarnfs.conf"
start_tarnfsd() {
  rm -f "$D/ports"
  "$B/tarnfsd" -f --source "$D/nas" --cache "$D/cache" --config "$D/tarnfs.conf" --no-rpcbind \
    --nfs-port "$1" --mount-port "$2" --port-file "$D/ports" 2>>"$D/tarnfsd.log" &
  SERVER=$!
  for _ in $(seq 100); do
    [ -s "$D/ports" ] && return 0
    kill -0 "$SERVER" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
echo "== tarnfsd -f --source $D/nas --cache $D/cache (log: $D/tarnfsd.log)"
if ! start_tarnfsd "${DEMO_NFS_PORT:-2049}" "${DEMO_MOUNT_PORT:-20048}"; then
  echo "   (ports ${DEMO_NFS_PORT:-2049}/${DEMO_MOUNT_PORT:-20048} busy; using free ones)"
  start_tarnfsd 0 0 || { echo "tarnfsd did not start:"; tail -5 "$D/tarnfsd.log"; exit 1; }
fi
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; echo "== tarnfsd stopped"' EXIT
trap 'exit 0' INT TERM
read -r NFS_PORT MOUNT_PORT < "$D/ports"
HOST=$(hostname -I 2>/dev/null | awk '{print $1}')
HOST=${HOST:-127.0.0.1}
URL="nfs://127.0.0.1/?nfsport=$NFS_PORT&mountport=$MOUNT_PORT&version=3"
echo "== nfs-ls \"nfs://127.0.0.1/?nfsport=$NFS_PORT&mountport=$MOUNT_PORT&version=3\" (the root: one directory per tarball)"
nfs-ls "nfs://127.0.0.1/?nfsport=$NFS_PORT&mountport=$MOUNT_PORT&version=3"
echo "== nfs-cat \"nfs://127.0.0.1/$RUN/RunInfo.xml?...\" (first touch: streams $RUN.tar into the cache; the file is served as soon as it has arrived)"
nfs-cat "nfs://127.0.0.1/$RUN/RunInfo.xml?nfsport=$NFS_PORT&mountport=$MOUNT_PORT&version=3" | head -3
# While a tarball without an index streams in, a listing shows the members
# that have arrived; wait for the whole run so the listing below is complete.
for _ in $(seq 1 100); do
  "$B/tarnfs" cache ls --cache "$D/cache" 2>/dev/null | grep -q "^$RUN " && break
  sleep 0.1
done
echo "== nfs-ls \"nfs://127.0.0.1/$RUN?...\" (the whole run, now in the cache)"
nfs-ls "nfs://127.0.0.1/$RUN?nfsport=$NFS_PORT&mountport=$MOUNT_PORT&version=3"
echo "== tarnfs cache ls --cache $D/cache"
"$B/tarnfs" cache ls --cache "$D/cache"
cat <<MSG

tarnfsd is serving the tarballs in $D/nas (pid $SERVER); each run is
fetched into $D/cache on first touch.

  libnfs URL:    $URL
                 e.g.  nfs-ls -R "$URL"
  Linux client:  mount -t nfs -o vers=3,proto=tcp,port=$NFS_PORT,mountport=$MOUNT_PORT,mountproto=tcp,nolock $HOST:/ /mnt

Press Ctrl-C to stop.
MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  wait "$SERVER"
fi
