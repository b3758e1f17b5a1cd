#!/usr/bin/env bash
# e2e-lazy (nas|s3): index-first runs through the real tarnfsd and libnfs's
# nfs-ls/nfs-cat, on a NAS directory or a real Ceph RGW bucket (env from
# tests/s3/rgw-start.sh).  An indexed run answers `nfs-ls -R` having fetched
# only its index; one member read fetches about that member's bytes; every
# file's md5 equals the source's, each chunk fetched once; the sidecar never
# shows; a stale and a corrupt index are logged and the run is served by a
# full fetch; (NAS) bytes corrupted inside a member give EIO and a log line,
# never wrong data.
set -u
. "$(dirname "$0")/../lib.sh"
mode=${1:?usage: e2e-lazy.sh nas|s3}
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/genrun" "$B/tests/lazy/mkindex" "$B/tests/s3/s3tool"; do
  [ -x "$p" ] || die "e2e-lazy: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-lazy: nfs-cat missing (libnfs-utils)"

work=$(mktemp -d /tmp/lazy-e2e.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
WHAT_PREFIX="$mode: "

S3="$B/tests/s3/s3tool"
if [ "$mode" = s3 ]; then
  : "${TARNFS_S3_ENDPOINT:?source the env written by tests/s3/rgw-start.sh}"
  BK="$TARNFS_S3_BUCKET/lazy"
  source="s3://$BK"
  put() { "$S3" put "$BK" "$1" "$2" >/dev/null || { echo "FAIL - cannot upload $1"; exit 1; }; }
else
  mkdir -p "$work/nas"
  source="$work/nas"
  put() { cp "$2" "$work/nas/$1.tmp" && mv "$work/nas/$1.tmp" "$work/nas/$1"; }
fi
mkindex() { "$B/tests/lazy/mkindex" "$source" "$1"; }

mkdir -p "$work/src" "$work/src2"
A=241023_A01295_0501_BHLAZYRXA    # indexed
S=241023_A01295_0502_BHLAZYRXS    # index made, then the tarball replaced
C=241023_A01295_0503_BHLAZYRXC    # corrupt index
E=241023_A01295_0505_BHLAZYRXE    # no index: one is made by tarnfsd
F=241023_A01295_0506_BHLAZYRXF    # made by tarnfs convert, with its index
"$B/genrun" -q --name $A --lanes 1 --cycles 3 --tiles 2 --file-size 1500k --symlinks --empty-dirs "$work/src" || exit 1
"$B/genrun" -q --name $S --lanes 1 --cycles 2 --tiles 1 --seed 2 "$work/src" || exit 1
"$B/genrun" -q --name $S --lanes 1 --cycles 2 --tiles 1 --seed 3 "$work/src2" || exit 1
"$B/genrun" -q --name $C --lanes 1 --cycles 2 --tiles 1 --seed 4 "$work/src" || exit 1
"$B/genrun" -q --name $E --lanes 1 --cycles 2 --tiles 1 --seed 6 "$work/src" || exit 1
for r in $A $S $C $E; do tar -C "$work/src" -cf "$work/$r.tar" "$r"; put "$r.tar" "$work/$r.tar"; done
ixsize=$(mkindex "$A.tar") || { echo "FAIL - mkindex $A"; exit 1; }
mkindex "$S.tar" >/dev/null || exit 1
tar -C "$work/src2" -cf "$work/$S.new.tar" "$S"
sleep 0.01
put "$S.tar" "$work/$S.new.tar"          # replaced after its index was made
mkindex "$C.tar" >/dev/null || exit 1
if [ "$mode" = s3 ]; then
  "$S3" get "$BK" "$C.tar.tarnfs-index" "$work/c.ix" >/dev/null
else
  cp "$work/nas/$C.tar.tarnfs-index" "$work/c.ix"
fi
printf '\x5a' | dd of="$work/c.ix" bs=1 seek=40 conv=notrunc 2>/dev/null
put "$C.tar.tarnfs-index" "$work/c.ix"

if [ "$mode" = nas ]; then   # a member whose bytes in the tarball are damaged
  D=241023_A01295_0504_BHLAZYRXD
  "$B/genrun" -q --name $D --lanes 1 --cycles 2 --tiles 1 --file-size 3M --seed 5 "$work/src" || exit 1
  tar -C "$work/src" -cf "$work/nas/$D.tar" "$D"
  mkindex "$D.tar" >/dev/null || exit 1
  victim=$(cd "$work/src" && find "$D" -name '*.cbcl' | sort | head -1)
  blk=$(tar -tvRf "$work/nas/$D.tar" | awk -v f="$victim" '$NF==f {sub(/:$/,"",$2); print $2}')
  off=$(( (blk + 1) * 512 + 1536 * 1024 ))     # inside its second chunk
  t=$(stat -c %.9Y "$work/nas/$D.tar")
  printf '\xff\x00\xff' | dd of="$work/nas/$D.tar" bs=1 seek=$off conv=notrunc 2>/dev/null
  touch -m -d "@$t" "$work/nas/$D.tar"      # same version: the index still matches
  # A wide run: 100 directories of 1,000 files, RunInfo.xml its last member.
  W=241023_A01295_0507_BHLAZYWIDE
  "$B/tests/lazy/mkwide" $W 100 1000 > "$work/nas/$W.tar" || { echo "FAIL - mkwide"; exit 1; }
  mkindex "$W.tar" >/dev/null || exit 1
  # Thirty never-seen copies of a small indexed run (hard links, each with the
  # index: it names the tarball by mtime, size and inode, which they share).
  K=241023_A01295_0508_BHLAZYKAA
  "$B/genrun" -q --name $K --lanes 2 --cycles 4 --file-size 64k --seed 9 "$work/src" || exit 1
  tar -C "$work/src" -cf "$work/nas/$K.tar" "$K"
  mkindex "$K.tar" >/dev/null || exit 1
  for i in $(seq 1 30); do
    ln "$work/nas/$K.tar" "$work/nas/${K}_$i.tar"
    cp "$work/nas/$K.tar.tarnfs-index" "$work/nas/${K}_$i.tar.tarnfs-index"
  done
fi

"$B/genrun" -q --name $F --lanes 1 --cycles 2 --tiles 1 --seed 8 "$work/conv" || exit 1
if [ "$mode" = s3 ]; then
  "$B/tarnfs" convert "$work/conv" --to "s3://$BK" --s3-endpoint "$TARNFS_S3_ENDPOINT" >/dev/null
else
  "$B/tarnfs" convert "$work/conv" --to "$work/nas" >/dev/null
fi || { echo "FAIL - tarnfs convert"; exit 1; }

conf="$work/tarnfsd.conf"
{
  echo "cache = $work/cache"
  echo "prefetch_whole_below = 0"   # tiny test runs: index-first all the same
  echo "source = $source"
  [ "$mode" = s3 ] && echo "s3_endpoint = $TARNFS_S3_ENDPOINT"
  echo "export / 127.0.0.1(ro,insecure)"
} > "$conf"
"$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
  --mount-port 0 --port-file "$work/ports" 2>"$work/tarnfsd.log" &
pid=$!
wait_until 10 test -s "$work/ports"
[ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start:"; cat "$work/tarnfsd.log"; exit 1; }
read -r nfsport mountport < "$work/ports"
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
stat_of() { server_stat "$work/cache" "$1"; }   # the counter now

root_names=$(nfs-ls "$(url '')" 2>&1 | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
echo "  root: $root_names"
want_root="$A $S $C $E $F "
[ "$mode" = nas ] &&
  want_root=$(printf '%s\n' $A $S $C $D $E $F $W $K $(seq -f "${K}_%g" 1 30) | sort | tr '\n' ' ')
check "the root lists the runs and no sidecar" test "$root_names" = "$want_root"

# 1. The whole tree from the index alone.
nfs-ls -R "$(url "$A")" > "$work/ls.out" 2>&1
want_n=$(cd "$work/src/$A" && find . -mindepth 1 | wc -l)
got_n=$(grep -c . "$work/ls.out")
check "nfs-ls -R lists every entry of the indexed run ($want_n)" test "$got_n" -ge "$want_n"
fetched=$(stat_of bytes_fetched)
check "listing it fetched only its index ($fetched bytes, index $ixsize)" test "$fetched" = "$ixsize"
check "and no tarball" test "$(stat_of fetches)" = 0

# 2. One member: its range only.
nfs-cat "$(url "$A/RunInfo.xml")" > "$work/runinfo.out" 2>/dev/null
check "one member reads back byte for byte" cmp -s "$work/runinfo.out" "$work/src/$A/RunInfo.xml"
rb=$(stat_of range_bytes)
check "reading it fetched its bytes only ($rb)" test "$rb" = "$(stat -c %s "$work/src/$A/RunInfo.xml")"

present_col() { "$B/tarnfs" cache ls --cache "$work/cache" | awk -v n="$1" '$1 == n { print $(NF-1) }'; }
pc=$(present_col $A)
check "tarnfs cache ls shows the run partly present ($pc)" bash -c "[[ '$pc' =~ ^[0-9]+/[0-9]+\$ ]]"

# 3. Single flight: 8 clients reading one absent file fetch it once.
big=$(cd "$work/src/$A" && find . -name '*.cbcl' | sort | tail -1 | sed 's|^\./||')
rb0=$(stat_of range_bytes)
for i in $(seq 1 8); do nfs-cat "$(url "$A/$big")" > "$work/p$i.out" 2>/dev/null & done
for j in $(jobs -p); do [ "$j" = "$pid" ] && continue; wait "$j"; done
same=0
for i in $(seq 1 8); do cmp -s "$work/p$i.out" "$work/src/$A/$big" || same=1; done
check "8 clients reading one absent file all get its bytes" test $same = 0
check "and it was fetched once" test $(( $(stat_of range_bytes) - rb0 )) = "$(stat -c %s "$work/src/$A/$big")"

# 4. Every file, md5 against the source; every byte fetched once.
bad=0
while read -r f; do
  nfs-cat "$(url "$A/$f")" 2>/dev/null | md5sum | cut -d' ' -f1 > "$work/m"
  [ "$(cat "$work/m")" = "$(md5sum < "$work/src/$A/$f" | cut -d' ' -f1)" ] || { bad=$((bad+1)); echo "  differs: $f"; }
done < <(cd "$work/src/$A" && find . -type f | sed 's|^\./||')
check "every file's md5 equals the source's" test $bad = 0
total=$(cd "$work/src/$A" && find . -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
check "each byte was fetched once ($total bytes of files)" test "$(stat_of range_bytes)" = "$total"
nfs-cat "$(url "$A/RunInfo.xml")" >/dev/null 2>&1
check "a second read fetches nothing" test "$(stat_of range_bytes)" = "$total"
check "still no whole-tarball fetch" test "$(stat_of fetches)" = 0
check "tarnfs cache ls shows it all present" test "$(present_col $A)" = all

# 5. A stale index: detected, logged, full fetch, the new bytes.
nfs-cat "$(url "$S/RunInfo.xml")" > "$work/s.out" 2>/dev/null
check "a replaced tarball's run reads its new bytes" cmp -s "$work/s.out" "$work/src2/$S/RunInfo.xml"
check "its stale index was logged and ignored" grep -q "index of $S.tar does not match its tarball: ignored" "$work/tarnfsd.log"
check "and the tarball fetched whole" test "$(stat_of fetches)" = 1

# 6. A corrupt index: the same.
nfs-cat "$(url "$C/RunInfo.xml")" > "$work/c.out" 2>/dev/null
check "a run with a corrupt index reads back" cmp -s "$work/c.out" "$work/src/$C/RunInfo.xml"
check "its corrupt index was logged and ignored" grep -q "index of $C.tar is corrupt" "$work/tarnfsd.log"
check "and the tarball fetched whole" test "$(stat_of fetches)" = 2

# 7. (NAS) Bytes corrupted inside a member: EIO and a log line, never wrong data.
if [ "$mode" = nas ]; then
  nfs-cat "$(url "$victim")" > "$work/d.out" 2>"$work/d.err"
  rc=$?
  check "reading the corrupted member fails" test $rc -ne 0
  check "never wrong data: what came is a prefix of the true bytes" \
    bash -c "cmp -s '$work/d.out' <(head -c \$(stat -c %s '$work/d.out') '$work/src/$victim')"
  check "the log names the run, the member and the chunk" \
    grep -q "run $D member '$victim' chunk 1: checksum mismatch" "$work/tarnfsd.log"
  other=$(cd "$work/src" && find "$D" -name '*.cbcl' | sort | tail -1)
  nfs-cat "$(url "$other")" > "$work/o.out" 2>/dev/null
  check "another member of that run still reads back" cmp -s "$work/o.out" "$work/src/$other"
fi

# 7b. (NAS) An index-first run is served while it is built, shallow first:
# the last member of 100,103, at the top of the run, reads back long before
# the build ends, and a directory listed meanwhile lists whole.
if [ "$mode" = nas ]; then
  nfs-ls "$(url "$W/Data/d099")" > "$work/w.ls" 2>&1 &
  lspid=$!
  sleep 0.2       # its READDIR, or its LOOKUPs, wait in the server
  nfs-cat "$(url "$W/RunInfo.xml")" > "$work/w.out" 2>"$work/w.err"
  rc=$?
  built=$(grep -c "run $W loaded from the index" "$work/tarnfsd.log")
  check "RunInfo.xml, last in the tarball of $W, reads back" \
    test $rc = 0 -a "$(cat "$work/w.out")" = "<RunInfo>wide</RunInfo>"
  check "before the build of its 100,103 members ended (shallow first)" test "$built" = 0
  nfs-cat "$(url "$W/NoSuchFile")" > /dev/null 2>&1
  rc=$?
  built=$(grep -c "run $W loaded from the index" "$work/tarnfsd.log")
  check "a name missing from its top is NOENT at once, not at the end of the build" \
    test $rc != 0 -a "$built" = 0
  wait $lspid
  check "a directory listed during the build lists all its 1000 files" \
    test "$(grep -c ' f0[0-9]*$' "$work/w.ls")" = 1000
  # A first touch by a deep path (nfs-cat mounts the file's directory: a
  # walk of LOOKUPs racing the build): a name looked up just before its
  # level was placed, or just before the build ended, must never be taken
  # for missing.
  deep="Data/Intensities/BaseCalls/L001/C1.1/L001_1.cbcl"
  okc=0
  for i in $(seq 1 30); do
    nfs-cat "$(url "${K}_$i/$K/$deep")" 2>/dev/null | cmp -s - "$work/src/$K/$deep" && okc=$((okc + 1))
  done
  check "thirty first touches of a deep file of never-seen indexed runs all read it ($okc)" test $okc = 30
  check "the run was served while built" \
    grep -q "run $W loaded from the index of $W.tar .* 100001 files in .*served while built" "$work/tarnfsd.log"
fi

# 8. prefetch = whole: the tarball is fetched whole even with an index.
kill "$pid" && wait "$pid" 2>/dev/null
pid=
sed -i "s|^cache = .*|cache = $work/cache2|" "$conf"
echo "prefetch = whole" >> "$conf"
rm -f "$work/ports"
"$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
  --mount-port 0 --port-file "$work/ports" 2>"$work/tarnfsd2.log" &
pid=$!
wait_until 10 test -s "$work/ports"
read -r nfsport mountport < "$work/ports"
nfs-cat "$(url "$A/RunInfo.xml")" > "$work/w.out" 2>/dev/null
check "prefetch = whole reads the run" cmp -s "$work/w.out" "$work/src/$A/RunInfo.xml"
stat_of() { server_stat "$work/cache2" "$1"; }
check "by fetching its tarball whole, index unread" \
  test "$(stat_of fetches)/$(stat_of index_fetches)" = 1/0

# 9. index_upload = yes: a full fetch stores the index it made on the way;
# a fresh server then loads that run from it.
kill "$pid" && wait "$pid" 2>/dev/null
pid=
restart() {   # restart CACHE [extra setting]
  sed -i -e "s|^cache = .*|cache = $1|" -e '/^prefetch =\|^index_upload/d' "$conf"
  [ -n "${2:-}" ] && echo "$2" >> "$conf"
  rm -f "$work/ports"
  "$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
    --mount-port 0 --port-file "$work/ports" 2>>"$work/tarnfsd3.log" &
  pid=$!
  wait_until 10 test -s "$work/ports"
  read -r nfsport mountport < "$work/ports"
}
stat_in() { server_stat "$1" "$2"; }
restart "$work/cache3" "index_upload = yes"
nfs-cat "$(url "$E/RunInfo.xml")" > "$work/e.out" 2>/dev/null
check "a run without an index is fetched whole" test "$(stat_in "$work/cache3" fetches)" = 1
check "the index made on the way is stored beside its tarball" \
  wait_until 10 grep -q "stored the index $E.tar.tarnfs-index" "$work/tarnfsd3.log"
kill "$pid" && wait "$pid" 2>/dev/null
pid=
restart "$work/cache4"
nfs-cat "$(url "$E/RunInfo.xml")" > "$work/e.out" 2>/dev/null
check "a fresh server loads that run from the stored index" \
  test "$(stat_in "$work/cache4" fetches)/$(stat_in "$work/cache4" index_fetches)" = 0/1
check "and reads it right" cmp -s "$work/e.out" "$work/src/$E/RunInfo.xml"
nfs-cat "$(url "$F/RunInfo.xml")" > "$work/f.out" 2>/dev/null
check "a tarball made by tarnfs convert is served from its index" \
  test "$(stat_in "$work/cache4" fetches)/$(stat_in "$work/cache4" index_fetches)" = 0/2
check "and reads right" cmp -s "$work/f.out" "$work/conv/$F/RunInfo.xml"

summary "e2e-lazy ($mode)" || { echo "--- tarnfsd log"; tail -40 "$work/tarnfsd.log"; exit 1; }
