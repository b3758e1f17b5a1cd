#!/usr/bin/env bash
# evict (writeback): `tarnfs cache evict` never loses an acknowledged write
# (hardening issue, finding 5).  A dirty or conflicted run is refused with a
# message naming the command that makes it evictable, whether a tarnfsd
# serves the cache or not; a clean run in use by a running tarnfsd is
# evicted by that server (so it never holds a handle to a vanished run) and
# fetched again on the next access; with no server the tool evicts it.
# `tarnfs ingest` does not replace a run with unwritten changes either, and
# a tool reading a run (`tarnfs cat`) never makes it read-only for tarnfsd.
set -u
NAME="writeback evict"
. "$(dirname "$0")/lib.sh"
make_runs 3
printf 'acknowledged write\n' > "$work/new.txt"
C="$work/cache"
evict() { "$B/tarnfs" cache evict --cache "$C" "$@"; }

start A "$C" rw 60m
# --- the issue's reproduction: write, evict, clean stop ---------------------
nfs-cat "$(url A "$R1/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R1/new.txt")" >/dev/null 2>&1
check "a file is written into a run over NFS" test $? -eq 0
evict "$R1" >"$work/ev1.out" 2>"$work/ev1.err"; rc=$?
check "evicting a dirty run while tarnfsd serves it is refused" test $rc -ne 0
check "the refusal names tarnfs flush" grep -q "tarnfs flush" "$work/ev1.err"
check "the run is still in the cache" cached "$C" "$R1"
stop A
check "after a clean stop the written file is in the tarball" \
  bash -c "tar -xOf '$work/nas/$R1.tar' '$R1/new.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

# --- no server: a dirty run left by kill -9 is refused too ------------------
start A "$C" rw 60m
nfs-cat "$(url A "$R2/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R2/new.txt")" >/dev/null 2>&1
kill -9 "$pid_A"; wait "$pid_A" 2>/dev/null
evict "$R2" >/dev/null 2>"$work/ev2.err"; rc=$?
check "with no server running, evicting a dirty run is refused" test $rc -ne 0
check "and that refusal names tarnfs flush too" grep -q "tarnfs flush" "$work/ev2.err"
d=$(dirty_col "$C" "$R2")
check "the dirty run is still cached and still dirty ($d)" test -n "$d" -a "$d" != -
start A "$C" rw 60m
flush "$C" "$R2" >/dev/null 2>&1
check "once restarted, tarnfs flush writes it back" \
  bash -c "tar -xOf '$work/nas/$R2.tar' '$R2/new.txt' 2>/dev/null | cmp -s - '$work/new.txt'"
evict "$R2" >"$work/ev3.out" 2>"$work/ev3.err"; rc=$?
check "a clean run in use by the server is evicted" test $rc -eq 0
check "by the server itself (its log says so)" \
  bash -c "for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q 'evicted run $R2 (.*tarnfs cache evict' '$work/A.log' && exit 0; sleep 0.2; done; exit 1"
check "it is gone from the cache" not_cached "$C" "$R2"
nfs-cat "$(url A "$R2/new.txt")" > "$work/back.out" 2>/dev/null
check "the next access fetches it again, with the written file" cmp -s "$work/back.out" "$work/new.txt"

# --- a conflicted run is refused, naming tarnfs cache resolve ---------------
nfs-cat "$(url A "$R3/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R3/mine.txt")" >/dev/null 2>&1
mkdir -p "$work/op" && cp -a "$work/src/$R3" "$work/op/" && echo theirs > "$work/op/$R3/theirs.txt"
tar -C "$work/op" -cf "$work/nas/.$R3.tmp" "$R3" && mv "$work/nas/.$R3.tmp" "$work/nas/$R3.tar"
flush "$C" "$R3" >/dev/null 2>&1
evict "$R3" >/dev/null 2>"$work/ev4.err"; rc=$?
check "evicting a run in conflict is refused" test $rc -ne 0
check "the refusal names tarnfs cache resolve" grep -q "tarnfs cache resolve" "$work/ev4.err"
stop A
# The same loss by another door: ingesting a tarball over a changed run.
"$B/tarnfs" ingest --cache "$C" "$work/nas/$R3.tar" "$R3" >/dev/null 2>"$work/in.err"; rc=$?
check "tarnfs ingest over a run with unwritten changes is refused" test $rc -ne 0
check "and the run keeps its changes" \
  bash -c "'$B/tarnfs' cat --cache '$C' '/$R3/mine.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

# --- a tool reading the cache never makes a served run read-only -----------
# `tarnfs cat` holds R1 open (blocked writing into a pipe nobody reads yet)
# while tarnfsd opens R1 for a write: the server must get it writable.
head -c 1M /dev/urandom > "$work/big.bin"
start A "$C" rw 60m
nfs-cp "$work/big.bin" "$(url A "$R1/big.bin")" >/dev/null 2>&1
flush "$C" "$R1" >/dev/null 2>&1
stop A
mkfifo "$work/fifo"
exec 7<>"$work/fifo"
"$B/tarnfs" cat --cache "$C" "/$R1/big.bin" >"$work/fifo" 2>"$work/cat.err" &
cat_pid=$!
for _ in $(seq 1 200); do
  ls -l "/proc/$cat_pid/fd" 2>/dev/null | grep -q '\.kct$' && break; sleep 0.05
done
check "tarnfs cat holds the run open" bash -c "ls -l /proc/$cat_pid/fd | grep -q '\.kct\$'"
start A "$C" rw 60m
nfs-cp "$work/new.txt" "$(url A "$R1/while-read.txt")" >/dev/null 2>"$work/wr.err"
check "a write into that run over NFS succeeds meanwhile" test $? -eq 0
check "the server did not open it read-only" bash -c "! grep -q 'opened read-only' '$work/A.log'"
head -c 1048576 <&7 > "$work/big.out"
wait "$cat_pid"; rc=$?
exec 7<&-
check "and the tool's copy is whole" bash -c "[ $rc -eq 0 ] && cmp -s '$work/big.out' '$work/big.bin'"
stop A
check "the write is in the tarball after a clean stop" \
  bash -c "tar -xOf '$work/nas/$R1.tar' '$R1/while-read.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

# --- tarnfs ingest while a tarnfsd serves the run -----------------------------
# The ingest reads its tarball from a pipe that is fed only after a client
# has tried to write into the same run.  No write the client was told is
# safe may be lost when the ingested run replaces the served one: the
# server refuses changes to the run while the ingest holds it (the client
# retries), or the ingest is refused because the run changed.  (The run
# ingested from stdin has no source version, so its changes are a conflict
# at the write-back: kept, never lost.)
start A "$C" rw 60m
nfs-cat "$(url A "$R2/RunInfo.xml")" >/dev/null 2>&1
mkfifo "$work/tarpipe"
exec 8<>"$work/tarpipe"
"$B/tarnfs" ingest --cache "$C" - "$R2" <"$work/tarpipe" >"$work/ing.out" 2>"$work/ing.err" 8>&- &
ing_pid=$!
wait_until 10 grep -q "held for tarnfs ingest" "$work/A.log"
timeout 60 nfs-cp "$work/new.txt" "$(url A "$R2/during-ingest.txt")" >/dev/null 2>"$work/di.err" 8>&- &
cp_pid=$!
sleep 3
cat "$work/nas/$R2.tar" >&8
exec 8>&-
wait "$ing_pid"; ing_rc=$?
wait "$cp_pid"; cp_rc=$?
echo "# ingest status $ing_rc, nfs-cp status $cp_rc"
if [ $cp_rc -eq 0 ] && [ $ing_rc -eq 0 ]; then
  nfs-cat "$(url A "$R2/during-ingest.txt")" > "$work/di.out" 2>/dev/null
  check "a write acknowledged while tarnfs ingest ran is not lost when the run is replaced" \
    cmp -s "$work/di.out" "$work/new.txt"
else
  check "a write during tarnfs ingest is either refused (retried by the client) or refuses the ingest" \
    test $cp_rc -ne 0 -o $ing_rc -ne 0
fi
check "the ingest itself succeeded (the run was clean when it began)" test $ing_rc -eq 0
nfs-cp "$work/new.txt" "$(url A "$R2/after-ingest.txt")" >/dev/null 2>&1
check "after the ingest, writes into the run are accepted again" test $? -eq 0
nfs-cat "$(url A "$R2/after-ingest.txt")" > "$work/ai.out" 2>/dev/null
check "and read back" cmp -s "$work/ai.out" "$work/new.txt"
# R2 has changes now: the server itself refuses to let an ingest replace it.
"$B/tarnfs" ingest --cache "$C" "$work/nas/$R2.tar" "$R2" >/dev/null 2>"$work/in2.err"; rc=$?
check "tarnfs ingest over a run the server has changed is refused" test $rc -ne 0
check "and the refusal names tarnfs flush" grep -q "tarnfs flush" "$work/in2.err"
nfs-cat "$(url A "$R2/after-ingest.txt")" > "$work/ai2.out" 2>/dev/null
check "and the server still serves the change" cmp -s "$work/ai2.out" "$work/new.txt"
# An ingest interrupted (^C, kill -9) while it holds the run never lets go
# by itself: the server sees its process gone at the next change.  (R1:
# R2 now has changes, and an ingest over it is refused.)
mkfifo "$work/tarpipe2"
exec 8<>"$work/tarpipe2"
"$B/tarnfs" ingest --cache "$C" - "$R1" <"$work/tarpipe2" >/dev/null 2>"$work/ing2.err" 8>&- &
ing_pid=$!
for _ in $(seq 1 100); do [ "$(grep -c "held for tarnfs ingest" "$work/A.log")" -ge 2 ] && break; sleep 0.1; done
kill -9 "$ing_pid"; wait "$ing_pid" 2>/dev/null
exec 8>&-
nfs-cp "$work/new.txt" "$(url A "$R1/after-kill.txt")" >/dev/null 2>&1
check "after an ingest holding the run is killed, writes into it are accepted" test $? -eq 0
check "and the server says it let go" grep -q "ended without letting it go" "$work/A.log"
# --- bad input to the tool's request commands --------------------------------
for cmd in "flush --all" "cache evict $R1" "test-clock 1s"; do
  "$B/tarnfs" $cmd --cache "$C" --timeout soon > /dev/null 2> "$work/badto.err"; rc=$?
  check "tarnfs $cmd --timeout soon is refused as bad usage, saying why ($rc)" \
    bash -c "[ $rc -eq 2 ] && grep -q -- '--timeout' '$work/badto.err'"
done
# --- the control socket -----------------------------------------------------
socks() { ls -A "$C/vfs/ctl" 2>/dev/null | grep -c '\.sock$'; }
check "the server listens on one socket in a directory only its user can enter" \
  bash -c "[ $(socks) -eq 1 ] && [ \"\$(stat -c %a '$C/vfs/ctl')\" = 700 ]"
# a user other than the server's (and not root) gets nothing done
"$B/tarnfs" flush --cache "$C" --all > /dev/null 2>&1
wmode=$(stat -c %a "$work"); cmode=$(stat -c %a "$C")
chmod 755 "$work" "$C"
setpriv --reuid=65534 --regid=65534 --clear-groups "$B/tarnfs" flush --cache "$C" --timeout 5 "$R1" \
  > /dev/null 2> "$work/fl-nobody.err"; rc=$?
chmod "$wmode" "$work"; chmod "$cmode" "$C"
check "another user's tarnfs flush is refused, saying why ($rc)" \
  bash -c "[ $rc -ne 0 ] && grep -q 'Permission denied' '$work/fl-nobody.err'"
# a local client that connects and says nothing holds up no other request
python3 -c "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); open(sys.argv[2], 'w').close(); time.sleep(8)" \
  "$C/vfs/ctl/$(ls -A "$C/vfs/ctl" | grep '\.sock$' | head -1)" "$work/silent.up" &
silent=$!; track "$silent"
wait_until 10 test -e "$work/silent.up"
"$B/tarnfs" flush --cache "$C" --all --timeout 2 > "$work/fl-beside.out" 2>&1
check "a request is answered while another client holds a control connection silent" \
  grep -q "written back" "$work/fl-beside.out" || sed 's/^/      /' "$work/fl-beside.out"
kill "$silent" 2>/dev/null; wait "$silent" 2>/dev/null
stop A
check "a server that stops removes its socket" test "$(socks)" -eq 0
# a socket left by a server that died is swept by the next one
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$C/vfs/ctl/999999.sock"
start A "$C" rw 60m
check "a dead server's socket is removed when the next one starts" \
  bash -c "[ ! -e '$C/vfs/ctl/999999.sock' ] && [ $(socks) -eq 1 ]"
stop A

# --- no server, clean run: the tool evicts it itself ------------------------
evict "$R1" >/dev/null 2>"$work/ev5.err"; rc=$?
check "with no server running, a clean run is evicted" test $rc -eq 0
check "and it is gone from the cache" not_cached "$C" "$R1"
evict "$R1" >/dev/null 2>"$work/ev6.err"
check "evicting a run not in the cache says so" grep -q "no run" "$work/ev6.err"
evict "../x" >/dev/null 2>"$work/ev7.err"
check "a bad run name is refused" grep -q "not a valid run name" "$work/ev7.err"
# No server: tarnfs flush says so at once (the server lock is free), not
# after its --timeout.
timeout 20 "$B/tarnfs" flush --cache "$C" --timeout 120 "$R2" >/dev/null 2>"$work/fl.err"; rc=$?
check "tarnfs flush with no server running exits 4 without waiting out its timeout ($rc)" test $rc -eq 4
check "and says no tarnfsd answered" grep -q "no tarnfsd answered" "$work/fl.err"
# A server that holds the cache but listens on no control socket (its
# control thread failed to start; its log says why): said within seconds,
# not after the whole --timeout.
python3 -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_SH); time.sleep(60)' "$C/vfs.lock" & holder=$!
track $holder
wait_until 5 bash -c "! flock -n -x '$C/vfs.lock' true"
t0=$(date +%s)
timeout 60 "$B/tarnfs" flush --cache "$C" --timeout 50 "$R2" >/dev/null 2>"$work/fl3.err"; rc=$?
t1=$(date +%s)
kill $holder 2>/dev/null; wait $holder 2>/dev/null
check "tarnfs flush to a server without a control socket gives up within 10 s, not after --timeout 50 ($((t1 - t0)) s, rc $rc)" \
  bash -c "[ $rc -ne 0 ] && [ $((t1 - t0)) -le 10 ]"
check "and says that server has no control socket" grep -q "no control socket" "$work/fl3.err"
# A mistyped --cache: a clear error, and nothing written into that directory.
mkdir -p "$work/notacache"
"$B/tarnfs" flush --cache "$work/notacache" --timeout 5 "$R2" >/dev/null 2>"$work/fl2.err"; rc=$?
check "tarnfs flush --cache on a directory that is no cache fails, saying so ($rc)" \
  bash -c "[ $rc -ne 0 ] && grep -q 'is not a cache' '$work/fl2.err'"
check "and leaves that directory empty" test -z "$(ls -A "$work/notacache")"
check "no sanitizer or leak report in the server logs" no_sanitizer_reports
finish
