#!/usr/bin/env bash
# demo.sh: the interim `make demo`: generate a small synthetic run folder,
# tar it, ingest it into a cache with `tarnfs ingest`, and list it with
# `tarnfs ls -l -R`.  Builds nothing (make demo already built build/).
# Env: B (build dir, default build), DEMO_DIR (default /var/tmp/tarnfs-demo).
set -eu
cd "$(dirname "$0")/.."
B="${B:-build}"
D="${DEMO_DIR:-/var/tmp/tarnfs-demo}"
RUN=241023_A01295_0432_BHK3NFDRX5
GENRUN="$B/genrun"
if [ ! -x "$GENRUN" ]; then
  make -s B="$B" "$B/genrun"      # genrun is a test program, not in build-all
fi

rm -rf "$D"
mkdir -p "$D"
echo "== generating a small run folder in $D/src"
"$GENRUN" --lanes 2 --cycles 4 --tiles 2 --file-size 8k --symlinks --hardlinks --empty-dirs "$D/src"
echo "== tar -cf $D/$RUN.tar"
tar -C "$D/src" -cf "$D/$RUN.tar" "$RUN"
echo "== tarnfs ingest --cache $D/cache $D/$RUN.tar"
"$B/tarnfs" ingest --cache "$D/cache" "$D/$RUN.tar"
echo "== tarnfs cache ls --cache $D/cache"
"$B/tarnfs" cache ls --cache "$D/cache"
echo "== tarnfs ls -l -R --cache $D/cache /$RUN"
"$B/tarnfs" ls -l -R --cache "$D/cache" "/$RUN"
echo "== tarnfs cat --cache $D/cache /$RUN/RunInfo.xml | head -5"
"$B/tarnfs" cat --cache "$D/cache" "/$RUN/RunInfo.xml" | head -5
echo "== done; the cache is in $D/cache (remove $D when finished)"
