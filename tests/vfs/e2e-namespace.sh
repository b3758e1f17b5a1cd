#!/usr/bin/env bash
# e2e-namespace: the tarball namespace through the real tarnfsd and libnfs's
# nfs-ls/nfs-cat: a NAS directory of GNU-tar run tarballs (one nested under
# 2024/) is listed, files deep in runs read back byte for byte, 8 clients
# first-touching one run cause one fetch, a missing run is NOENT, and
# `tarnfs stats` shows the counters while the server runs.
set -u
. "$(dirname "$0")/../lib.sh"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs" "$B/genrun"; do
  [ -x "$p" ] || die "e2e-namespace: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-namespace: nfs-cat missing (libnfs-utils)"

work=$(mktemp -d /tmp/vfs-e2e.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/src" "$work/nas/2024"
runs="241023_A01295_0432_BHK3NFDRX5 241024_A01295_0433_AHK3NFDRX6"
for r in $runs; do
  "$B/genrun" -q --name "$r" --lanes 1 --cycles 3 --tiles 2 --symlinks --empty-dirs "$work/src" || exit 1
  tar -C "$work/src" -cf "$work/nas/$r.tar" "$r"
done
nested=241101_A01295_0440_BHK3NFDRX7
"$B/genrun" -q --name "$nested" --lanes 1 --cycles 2 --tiles 1 --seed 7 "$work/src" || exit 1
tar -C "$work/src" -czf "$work/nas/2024/$nested.tar.gz" "$nested"

if [ -n "${E2E_PREINIT_CACHE:-}" ]; then    # debugging aid: a cache made by tarnfs
  tar -C "$work/src" -cf "$work/seed.tar" "$nested"
  "$B/tarnfs" ingest --cache "$work/cache" "$work/seed.tar" seed >/dev/null &&
  "$B/tarnfs" cache evict --cache "$work/cache" seed >/dev/null
fi
"$B/tarnfsd" -f --no-rpcbind --listen 127.0.0.1 --nfs-port 0 --mount-port 0 \
  --port-file "$work/ports" --cache "$work/cache" --source "$work/nas" \
  2>"$work/tarnfsd.log" &
pid=$!
wait_until 10 test -s "$work/ports"
[ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start on a fresh cache directory:"; cat "$work/tarnfsd.log"; exit 1; }
read -r nfsport mountport < "$work/ports"
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }

root_names=$(nfs-ls "$(url '')" 2>&1 | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
check "the root lists one directory per tarball and the 2024/ prefix" \
  test "$root_names" = "2024 $(echo $runs | tr ' ' '\n' | sort | tr '\n' ' ')"
nested_names=$(nfs-ls "$(url 2024)" 2>&1 | awk '{print $NF}' | grep -v '^\.\.\?$' | tr '\n' ' ')
check "a nested prefix lists its tarball" test "$nested_names" = "$nested "

first=${runs%% *}
deep=$(cd "$work/src/$first" && find . -type f -name '*.cbcl' | sort | tail -1 | sed 's|^\./||')
nfs-cat "$(url "$first/$deep")" > "$work/deep.out" 2>"$work/cat.err"
check "a file deep in a run reads back byte for byte" cmp -s "$work/deep.out" "$work/src/$first/$deep"
nfs-cat "$(url "2024/$nested/RunInfo.xml")" > "$work/nested.out" 2>/dev/null
check "a file in a nested, gzipped run reads back" cmp -s "$work/nested.out" "$work/src/$nested/RunInfo.xml"

second=${runs##* }
for i in $(seq 1 8); do
  nfs-cat "$(url "$second/RunInfo.xml")" > "$work/c$i.out" 2>/dev/null &
done
wait_ok=0
for j in $(jobs -p); do [ "$j" = "$pid" ] && continue; wait "$j" || wait_ok=1; done
same=0
for i in $(seq 1 8); do cmp -s "$work/c$i.out" "$work/src/$second/RunInfo.xml" || same=1; done
check "8 clients first-touching one run all read it" test $wait_ok -eq 0 -a $same -eq 0

check "a name with no tarball behind it is not found" \
  bash -c "! nfs-cat '$(url nosuchrun/RunInfo.xml)' >/dev/null 2>&1"

stat_of() { sed -n "s/^$1=//p" "$work/cache/stats"; }
check "the server counts one fetch per run touched (3), asked at once" \
  test "$(server_stat "$work/cache" fetches)" = 3
# The file is rewritten about once a second.
file_fetches_are() { test "$(stat_of fetches)" = "$1"; }
check "the stats file counts one fetch per run touched (3)" wait_until 10 file_fetches_are 3
check "the stats file counts no failed fetch" test "$(stat_of fetch_failures)" = 0
check "the stats file names the running server" test "$(stat_of pid)" = "$pid"
if "$B/tarnfs" stats --help >/dev/null 2>&1; then
  "$B/tarnfs" stats --cache "$work/cache" > "$work/stats.out" 2>&1
  sed 's/^/    /' "$work/stats.out"
  check "tarnfs stats prints the fetch count" \
    test "$(awk '$1=="fetches"{print $2}' "$work/stats.out")" = 3
  check "tarnfs stats says the server is running" grep -q '^server *running' "$work/stats.out"
else
  skip "tarnfs stats" "the subcommand is not in tarnfs's table yet"
fi

"$B/tarnfs" test-clock --cache "$work/cache" 10s > /dev/null 2> "$work/clock.err"
check "a tarnfsd started without TARNFS_TEST_CLOCK=1 refuses to have its clock advanced" \
  test $? = 1
check "and says why" grep -q "not started with TARNFS_TEST_CLOCK=1" "$work/clock.err"

summary "e2e-namespace" || { echo "--- tarnfsd log"; tail -30 "$work/tarnfsd.log"; exit 1; }
