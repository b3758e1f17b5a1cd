#!/usr/bin/env bash
# e2e-stream: runs without an index are served while their tarball streams
# in (doc/design.md, "Serving while streaming"), through the real tarnfsd and
# libnfs's nfs-ls/nfs-cat on a NAS directory.  The backend stalls after its
# first MiB (fault "stallmid"): the members in it are listed and read back
# while the rest has not arrived, a LOOKUP of a late name answers once it
# lands, a missing name answers NOENT at the end, a file whose data is still
# coming is read in full once it is there, a .tar.gz streams too, a cached
# run keeps answering meanwhile, the tree ends exactly as a whole ingest
# (same inode numbers, hard links, symlinks, duplicates, late directory
# members), and a stream failing mid-way gives EIO to the calls waiting on
# it and leaves no run behind.
set -u
. "$(dirname "$0")/../lib.sh"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
for p in "$B/tarnfsd" "$B/tarnfs"; do
  [ -x "$p" ] || die "e2e-stream: missing $p (make build-all test-programs)"
done
command -v nfs-cat >/dev/null || die "e2e-stream: nfs-cat missing (libnfs-utils)"

work=$(mktemp -d /tmp/vfs-stream.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
T0=$(now)
mark() { [ -n "${VERBOSE:-}" ] && echo "    [$(echo "$(now) - $T0" | bc)] $*"; true; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

STALL_MS=8000
mkdir -p "$work/nas" "$work/src"
# A run in member order: a few small members (the first MiB), a 2 MiB file
# whose data crosses the stall, then late members: a directory whose own
# member comes after its child, a hard link, a symlink, and RunInfo.xml a
# second time (the last one wins).
mk_run() {   # mk_run NAME: src/NAME and its member list
  local r=$1 d="$work/src/$1"
  mkdir -p "$d/Data" "$d/Late/Sub"
  printf '<RunInfo first="1"/>\n' > "$d/RunInfo.xml"
  head -c 200000 /dev/urandom > "$d/Data/early1.bin"
  head -c 300000 /dev/urandom > "$d/Data/early2.bin"
  head -c 2097152 /dev/urandom > "$d/big.bin"
  echo "late text of $r" > "$d/Late/Sub/late.txt"
  ln "$d/Late/Sub/late.txt" "$d/Late/hard.txt"
  ln -s Sub/late.txt "$d/Late/sym"
  chmod 0751 "$d/Late"
  touch -d '2020-10-20 07:20:05' "$d/Data"   # archived times far from now
  printf '%s\n' "$r" "$r/RunInfo.xml" "$r/Data" "$r/Data/early1.bin" \
    "$r/Data/early2.bin" "$r/big.bin" "$r/Late/Sub/late.txt" "$r/Late/Sub" \
    "$r/Late/hard.txt" "$r/Late/sym" "$r/Late" > "$work/$r.list"
}
mk_tar() {   # mk_tar NAME OUT [tar flags]: members in list order, RunInfo.xml twice
  local r=$1 out=$2; shift 2
  tar -C "$work/src" --no-recursion -cf "$work/tmp.tar" -T "$work/$r.list"
  printf '<RunInfo last="1"/>\n' > "$work/src/$r/RunInfo.xml"
  tar -C "$work/src" --no-recursion -rf "$work/tmp.tar" "$r/RunInfo.xml"
  case "$out" in
    *.gz) gzip -1 -c "$work/tmp.tar" > "$out" ;;
    *) mv "$work/tmp.tar" "$out" ;;
  esac
  rm -f "$work/tmp.tar"
}
mk_run streamrun; mk_tar streamrun "$work/nas/streamrun.tar"
mk_run gzrun; mk_tar gzrun "$work/nas/gzrun.tar.gz"
mk_run badrun; mk_tar badrun "$work/bad-full.tar"
head -c 1600000 "$work/bad-full.tar" > "$work/nas/badrun.tar"   # ends inside big.bin
mk_run other; mk_tar other "$work/nas/other.tar"
# A run smaller than the others (1.3 MiB: still two NAS reads), below
# prefetch_whole_below: fetched whole before it is served.
mkdir -p "$work/src/smallrun/Data" "$work/src/smallrun/Late"
head -c 1300000 /dev/urandom > "$work/src/smallrun/Data/first.bin"
for i in 1 2 3 4 5; do echo "late $i" > "$work/src/smallrun/Late/l$i.txt"; done
tar -C "$work/src" -cf "$work/nas/smallrun.tar" smallrun/Data smallrun/Late
small_size=$(stat -c %s "$work/nas/smallrun.tar")

conf="$work/tarnfsd.conf"
{
  echo "cache = $work/cache"
  echo "source = $work/nas"
  echo "fetch_stall_timeout = 60s"
  # Only smallrun's tarball is this small: the others are served while
  # they stream in, which is what most of this test is about.
  echo "prefetch_whole_below = $small_size"
  # Debugging aid: E2E_PREFETCH=whole shows what the tests see without
  # streaming (they fail).
  [ -n "${E2E_PREFETCH:-}" ] && echo "prefetch = $E2E_PREFETCH"
  echo "export / 127.0.0.1(ro,insecure)"
} > "$conf"
# NAS reads come in MiB: each stalled run's second read waits STALL_MS.
TARNFS_FAULT="stallmid:$STALL_MS:1:streamrun,stallmid:$STALL_MS:1:gzrun,stallmid:4000:1:badrun,stallmid:3000:1:smallrun" \
"$B/tarnfsd" -f --config "$conf" --no-rpcbind --listen 127.0.0.1 --nfs-port 0 \
  --mount-port 0 --port-file "$work/ports" 2>"$work/tarnfsd.log" &
pid=$!
wait_until 10 test -s "$work/ports"
[ -s "$work/ports" ] || { echo "FAIL - tarnfsd did not start:"; cat "$work/tarnfsd.log"; exit 1; }
read -r nfsport mountport < "$work/ports"
url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
md5() { md5sum < "$1" | cut -d' ' -f1; }
ncat() { nfs-cat "$(url "$1")"; }

# A run fully cached before the others stall.
ncat other/Late/Sub/late.txt > "$work/o.out" 2>/dev/null
check "a run fetched whole before the stalls reads back" \
  cmp -s "$work/o.out" "$work/src/other/Late/Sub/late.txt"
wait_until 10 grep -q 'fetched run other' "$work/tarnfsd.log"

# ---- streamrun: stalled after its first MiB ---------------------------
t0=$(now)
ncat streamrun/Data/early1.bin > "$work/e1.out" 2>"$work/e1.err"
t1=$(now)
check "a first member reads back (md5) while the stream is stalled" \
  test "$(md5 "$work/e1.out")" = "$(md5 "$work/src/streamrun/Data/early1.bin")"
check "...and it was answered long before the stall ended" lt "$(echo "$t1 - $t0" | bc)" 4
# Late readers start now and park.
( ncat streamrun/big.bin > "$work/big.out" 2>"$work/big.err"; now > "$work/big.t" ) &
( ncat streamrun/Late/Sub/late.txt > "$work/late.out" 2>"$work/late.err"; now > "$work/late.t" ) &
( ncat streamrun/Late/nosuch.txt > /dev/null 2>"$work/nosuch.err"; echo $? > "$work/nosuch.rc"; now > "$work/nosuch.t" ) &
sleep 0.5
mark "ls_names=("
ls_names=$(nfs-ls "$(url streamrun)" 2>/dev/null | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
mark "ls_data=("
ls_data=$(nfs-ls "$(url streamrun/Data)" 2>/dev/null | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
t2=$(now)
check "the run root lists the members that arrived (RunInfo.xml Data big.bin)" \
  test "$ls_names" = "Data RunInfo.xml big.bin "
check "a directory lists its arrived members" test "$ls_data" = "early1.bin early2.bin "
# (nfsop is a libnfs program: libnfs's own leaks are suppressed as in tests/nfs)
dm=$(LSAN_OPTIONS="suppressions=$PWD/tests/nfs/lsan.supp:print_suppressions=0" \
     "$B/tests/writeback/nfsop" "$(url "")" mtime /streamrun/Data 2>"$work/dm.err")
[ -n "$dm" ] || sed "s/^/    nfsop: /" "$work/dm.err" | head -5
check "and shows its archived mtime meanwhile, not the time its members arrived ($dm)" \
  test "$dm" = "$(stat -c %Y "$work/src/streamrun/Data")"
mark "ncat streamrun/Data/early2.bin"
ncat streamrun/Data/early2.bin > "$work/e2.out" 2>/dev/null
check "another early member reads back (md5)" \
  test "$(md5 "$work/e2.out")" = "$(md5 "$work/src/streamrun/Data/early2.bin")"
mark "ncat other/Data/early1.bin"
ncat other/Data/early1.bin > "$work/o2.out" 2>/dev/null
t3=$(now)
check "a cached run keeps answering while the stream is stalled" \
  test "$(md5 "$work/o2.out")" = "$(md5 "$work/src/other/Data/early1.bin")"
check "...all of that before the stall ended" lt "$(echo "$t3 - $t0" | bc)" 6
check "the late readers are still waiting then" test ! -e "$work/late.t" -a ! -e "$work/big.t"
mark "wait for work/late.t"
for f in late big nosuch; do wait_until 30 test -e "$work/$f.t"; done
check "a LOOKUP of a late name answers once it arrives (content right)" \
  cmp -s "$work/late.out" "$work/src/streamrun/Late/Sub/late.txt"
check "...after the stall" lt "$(echo "$t0 + 5" | bc)" "$(cat "$work/late.t")"
check "a file whose data crossed the stall reads back whole (md5)" \
  test "$(md5 "$work/big.out")" = "$(md5 "$work/src/streamrun/big.bin")"
check "a name that never comes is NOENT at the end" \
  bash -c "test \"\$(cat '$work/nosuch.rc')\" != 0 && grep -qi 'NOENT\|No such' '$work/nosuch.err'"
# The finished tree: as a whole ingest makes it.
"$B/tarnfs" ingest --cache "$work/ref" "$work/nas/streamrun.tar" streamrun >/dev/null 2>&1
ncat streamrun/RunInfo.xml > "$work/ri.out" 2>/dev/null
check "the same path twice: the last one wins" grep -q 'last="1"' "$work/ri.out"
ncat streamrun/Late/hard.txt > "$work/hard.out" 2>/dev/null
ncat streamrun/Late/sym > "$work/sym.out" 2>/dev/null
check "a hard link and a symlink to a late member read back" \
  bash -c "cmp -s '$work/hard.out' '$work/src/streamrun/Late/Sub/late.txt' && cmp -s '$work/sym.out' '$work/src/streamrun/Late/Sub/late.txt'"
ls_late=$(nfs-ls "$(url streamrun)" 2>/dev/null | awk '$NF=="Late"{print $1}')
# Listed while it streamed, then again (READDIRPLUS, twice: the second from
# the directory snapshot) once it is in: every member, none left out.
ls_end=$(nfs-ls "$(url streamrun)" 2>/dev/null | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
ls_end2=$(nfs-ls "$(url streamrun/Data)" 2>/dev/null | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
ls_end3=$(nfs-ls "$(url streamrun/Data)" 2>/dev/null | awk '{print $NF}' | grep -v '^\.\.\?$' | sort | tr '\n' ' ')
check "a run listed while it streamed lists every member once in ($ls_end)" \
  test "$ls_end" = "Data Late RunInfo.xml big.bin "
check "and so does its directory, twice ($ls_end2)" \
  test "$ls_end2" = "$(ls "$work/src/streamrun/Data" | sort | tr '\n' ' ')" -a "$ls_end2" = "$ls_end3"
check "a directory member after its children keeps its own mode (0751)" \
  bash -c "echo '$ls_late' | grep -q 'drwxr-x--x'"
"$B/tarnfs" ls -l -R --cache "$work/cache" /streamrun > "$work/tree.streamed" 2>&1
"$B/tarnfs" ls -l -R --cache "$work/ref" /streamrun > "$work/tree.whole" 2>&1
check "the streamed tree equals a whole ingest's (modes, links, owners, sizes, mtimes)" \
  cmp -s "$work/tree.streamed" "$work/tree.whole"

# ---- gzrun: a compressed tarball streams too --------------------------
t0=$(now)
ncat gzrun/Data/early1.bin > "$work/g1.out" 2>/dev/null
t1=$(now)
check "a .tar.gz member reads back (md5) while its stream is stalled" \
  test "$(md5 "$work/g1.out")" = "$(md5 "$work/src/gzrun/Data/early1.bin")"
check "...before the stall ended" lt "$(echo "$t1 - $t0" | bc)" 5
ncat gzrun/Late/Sub/late.txt > "$work/g2.out" 2>/dev/null
check "a late .tar.gz member reads back after the stall" \
  cmp -s "$work/g2.out" "$work/src/gzrun/Late/Sub/late.txt"

# ---- badrun: the stream fails mid-way ---------------------------------
ncat badrun/Data/early1.bin > "$work/b1.out" 2>/dev/null
check "a member of a run that will fail reads back while it streams" \
  test "$(md5 "$work/b1.out")" = "$(md5 "$work/src/badrun/Data/early1.bin")"
ncat badrun/Late/Sub/late.txt > /dev/null 2>"$work/bad.err"; bad_rc=$?
check "a call parked on a stream that fails gets EIO" \
  bash -c "test $bad_rc != 0 && grep -q 'NFS3ERR_IO\|Input/output error' '$work/bad.err'"
check "the failed run leaves nothing in the cache" \
  wait_until 10 bash -c "! ls '$work/cache/runs' | grep -q badrun && test -z \"\$(ls -A '$work/cache/tmp')\""
grep -q 'run badrun withdrawn' "$work/tarnfsd.log"
check "the log says the run was withdrawn" test $? = 0
fetches_before=$(server_stat "$work/cache" fetches)
ncat badrun/RunInfo.xml > /dev/null 2>&1
fetches_after=$(server_stat "$work/cache" fetches)
check "the next access fetches it again" test "${fetches_after:-0}" -gt "${fetches_before:-0}"

# ---- smallrun: below prefetch_whole_below, stalled after its first MiB --
for r in streamrun gzrun badrun other; do
  check "$r's tarball is bigger than smallrun's" test "$(stat -c %s "$work/nas/$r.tar"* | head -1)" -gt "$small_size"
done
t0=$(now)
ls_small=$(nfs-ls -R "$(url smallrun)" 2>/dev/null | awk '{print $NF}' | grep -c 'l[0-9]\.txt$\|first\.bin$')
t1=$(now)
check "a small tarball's first listing has every file, even those after the stall ($ls_small of 6)" \
  test "$ls_small" = 6
check "...because it waited for the whole tarball (the stall of 3 s)" lt 2.5 "$(echo "$t1 - $t0" | bc)"
check "the log says why" grep -q "run smallrun: its tarball ($small_size bytes) is no larger than prefetch_whole_below: fetched whole before it is served" "$work/tarnfsd.log"

summary "e2e-stream" || { echo "--- tarnfsd log"; tail -40 "$work/tarnfsd.log"; exit 1; }
