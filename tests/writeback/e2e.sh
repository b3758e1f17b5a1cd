#!/usr/bin/env bash
# e2e (writeback): changes made over NFS through the real tarnfsd on a NAS
# directory of tarballs are written back as new tarballs: flush, a second
# server reading the result, a conflict keeping both versions, an injected
# upload failure, kill -9 then restart, the idle delay, a clean shutdown,
# and ROFS on a read-only export.  Clients are libnfs's nfs-cp/nfs-cat.
set -u
NAME="writeback e2e"
. "$(dirname "$0")/lib.sh"

make_runs 5
printf 'new file written over NFS\n%.0s' $(seq 1 300) > "$work/new.txt"
head -c 300000 /dev/urandom > "$work/big.bin"

start A "$work/cacheA" rw 60m TARNFS_FAULT="put:5:1:$R3"

# --- change a cached run, flush, compare the new tarball -------------------
nfs-cat "$(url A "$R1/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R1/new.txt")" >/dev/null 2>"$work/cp.err"
check "a new file in a cached run is written over NFS" test $? -eq 0
nfs-cp "$work/big.bin" "$(url A "$R1/Data/big.bin")" >/dev/null 2>&1
d=$(dirty_col "$work/cacheA" "$R1")
check "cache ls shows the changed run dirty with its age ($d)" bash -c "[[ '$d' =~ ^[0-9]+s$ ]]"
src_col() { "$B/tarnfs" cache ls --cache "$1" | awk -v n="$2" '$1 == n { print $6 }'; }
old_src=$(src_col "$work/cacheA" "$R1")
old_sum=$(sha256sum < "$work/nas/$R1.tar")
flush "$work/cacheA" "$R1" >/dev/null 2>"$work/flush.err"
check "tarnfs flush NAME writes the run back" test $? -eq 0
check "the tarball in the backend changed" test "$(sha256sum < "$work/nas/$R1.tar")" != "$old_sum"
tar -df "$work/nas/$R1.tar" -C "$work/src" > "$work/diff.out" 2>&1
want="tar: $R1/Data/big.bin: Warning: Cannot stat: No such file or directory
tar: $R1/new.txt: Warning: Cannot stat: No such file or directory"
check "GNU tar -d: every original member is unchanged, the new ones are extra" \
  test "$(sort "$work/diff.out")" = "$want"
mkdir -p "$work/x1" && tar -C "$work/x1" -xf "$work/nas/$R1.tar"
check "the new files are in the tarball byte for byte" \
  bash -c "cmp -s '$work/x1/$R1/new.txt' '$work/new.txt' && cmp -s '$work/x1/$R1/Data/big.bin' '$work/big.bin'"
tar -tf "$work/nas/$R1.tar" | sed 's|/$||' > "$work/members"
check "the tarball has its members under NAME/, NAME/ first, in sorted order" \
  bash -c "[ \"\$(head -1 '$work/members')\" = '$R1' ] && LC_ALL=C sort -c '$work/members'"
check "the tarball is pax (ustar magic, pax headers allowed)" \
  bash -c "[ \"\$(dd if='$work/nas/$R1.tar' bs=1 skip=257 count=5 2>/dev/null)\" = ustar ]"
check "its SHA-256 is stored next to it" \
  test "$(cut -c1-64 "$work/nas/$R1.tar.sha256" 2>/dev/null)" = "$(sha256sum < "$work/nas/$R1.tar" | cut -c1-64)"
check "cache ls shows the uploaded version as the run's source version" \
  bash -c "[ -n '$old_src' ] && [ '$(src_col "$work/cacheA" "$R1")' != '$old_src' ]"
check "cache ls shows it clean after the flush" test "$(dirty_col "$work/cacheA" "$R1")" = "-"
flush "$work/cacheA" "$R1" >/dev/null 2>&1
check "flushing a clean run does nothing and succeeds" test $? -eq 0

# --- a sparse file is written back with its holes as holes (issue 12, 9) ---
nfs-cp "$work/new.txt" "$(url A "$R1/sparse.bin")" >/dev/null 2>&1
nfsop "$(url A '')" truncate "/$R1/sparse.bin" 1073741824
check "a file in a run is extended to 1 GiB by SETATTR" test $? -eq 0
flush "$work/cacheA" "$R1" >/dev/null 2>"$work/flush-sparse.err"
check "the run with the 1 GiB sparse file is written back" test $? -eq 0
sz=$(stat -c %s "$work/nas/$R1.tar")
check "the hole is not written: the tarball stays small ($sz bytes)" test "$sz" -lt 10000000
check "GNU tar lists the member at its full size" \
  bash -c "tar -tvf '$work/nas/$R1.tar' '$R1/sparse.bin' | grep -q ' 1073741824 '"
mkdir -p "$work/xs" && tar -C "$work/xs" -xf "$work/nas/$R1.tar" "$R1/sparse.bin"
check "and extracts it with the data, then zeros to 1 GiB" \
  bash -c "[ \$(stat -c %s '$work/xs/$R1/sparse.bin') = 1073741824 ] && cmp -s -n \$(stat -c %s '$work/new.txt') '$work/xs/$R1/sparse.bin' '$work/new.txt' && rm -rf '$work/xs'"
# Data, a hole, data: stretches that end inside a 512-byte block (found by
# tests/nfs/fsx).  GNU tar read them as whole blocks: later bytes of the
# file came shifted, and it took the rest of the archive for its end.
nfs-cp "$work/new.txt" "$(url A "$R1/Data/a-sparse.bin")" >/dev/null 2>&1
nfsop "$(url A '')" write "/$R1/Data/a-sparse.bin" 1048576 < "$work/new.txt"
check "a file with two stretches of data around a hole is written over NFS" test $? -eq 0
flush "$work/cacheA" "$R1" >/dev/null 2>&1
{ cat "$work/new.txt"; head -c $((1048576 - $(stat -c %s "$work/new.txt"))) /dev/zero
  cat "$work/new.txt"; } > "$work/two-stretches.bin"
mkdir -p "$work/xt" && tar -C "$work/xt" -xf "$work/nas/$R1.tar" > "$work/xt.err" 2>&1
check "GNU tar extracts the whole written-back tarball: that file byte for byte" \
  cmp -s "$work/xt/$R1/Data/a-sparse.bin" "$work/two-stretches.bin"
check "and the members after it (Data/big.bin, RunInfo.xml)" \
  bash -c "cmp -s '$work/xt/$R1/Data/big.bin' '$work/big.bin' && [ -s '$work/xt/$R1/RunInfo.xml' ] && rm -rf '$work/xt'"

# --- two flushes at once: the second waits for the write-back in progress --
# (a restarted server writes its marked runs back at once, so an operator's
# flush often meets one in progress; it failed with EAGAIN before)
head -c 48M /dev/urandom > "$work/big2.bin"
nfs-cp "$work/big2.bin" "$(url A "$R1/big2.bin")" >/dev/null 2>&1
flush "$work/cacheA" "$R1" >/dev/null 2>&1 &
f1=$!
# the write-back is in progress while its temp file is in the NAS directory
for _ in $(seq 1 1000); do
  compgen -G "$work/nas/.tarnfs-tmp.*" > /dev/null && break
  sleep 0.01
done
flush "$work/cacheA" "$R1" > "$work/flush2.out" 2>&1
s2=$?
wait $f1
s1=$?
check "a flush meeting a write-back of the run in progress waits for it and succeeds (exits $s1 $s2)" \
  test "$s1 $s2" = "0 0"
[ "$s2" = 0 ] || cat "$work/flush2.out"
check "and the tarball then holds the new file" \
  bash -c "tar -xOf '$work/nas/$R1.tar' '$R1/big2.bin' 2>/dev/null | cmp -s - '$work/big2.bin'"
check "and the run is clean" test "$(dirty_col "$work/cacheA" "$R1")" = "-"

# --- a second server on the same source reads the change -----------------
start B2 "$work/cacheB" ro 60m
nfs-cat "$(url B2 "$R1/new.txt")" > "$work/b.out" 2>/dev/null
check "a second tarnfsd fetching the new tarball serves the written file" cmp -s "$work/b.out" "$work/new.txt"
nfs-cp "$work/new.txt" "$(url B2 "$R2/x.txt")" >/dev/null 2>"$work/ro.err"
check "a write to a ro export is refused" test $? -ne 0
check "and the ro server's error is a read-only file system" grep -qi "read-only\|ROFS" "$work/ro.err"

# --- conflict: the object changed in the backend since it was fetched ------
nfs-cat "$(url A "$R2/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R2/mine.txt")" >/dev/null 2>&1
cp -a "$work/src/$R2" "$work/theirs" && echo theirs > "$work/theirs/theirs.txt"
mkdir -p "$work/op" && mv "$work/theirs" "$work/op/$R2"
tar -C "$work/op" -cf "$work/nas/.$R2.tmp" "$R2" && mv "$work/nas/.$R2.tmp" "$work/nas/$R2.tar"
theirs_sum=$(sha256sum < "$work/nas/$R2.tar")
flush "$work/cacheA" "$R2" >/dev/null 2>"$work/conflict.err"
rc=$?
check "a flush that meets a changed object reports a conflict (exit 3)" test $rc -eq 3
check "the other version is not overwritten" test "$(sha256sum < "$work/nas/$R2.tar")" = "$theirs_sum"
ck=$(ls "$work/nas" | grep "^$R2.conflict-.*\.tar$" | head -1)
check "this server's version is saved under NAME.conflict-HOST-TIME.tar" \
  bash -c "[ -n '$ck' ] && tar -xOf '$work/nas/$ck' '$R2/mine.txt' | cmp -s - '$work/new.txt'"
check "the server logs the conflict loudly" grep -q "CONFLICT on run $R2" "$work/A.log"
check "cache ls shows the run dirty and conflicted" bash -c "dirty_col() { :; }; '$B/tarnfs' cache ls --cache '$work/cacheA' | grep '^$R2 ' | grep -q '!CONFLICT'"
"$B/tarnfs" cache resolve --cache "$work/cacheA" "$R2" >/dev/null 2>&1
check "tarnfs cache resolve ends the conflict" test $? -eq 0
sleep 0.3
nfs-cat "$(url A "$R2/theirs.txt")" > "$work/theirs.out" 2>/dev/null
check "after resolve the backend's version is served" bash -c "echo theirs | cmp -s - '$work/theirs.out'"

# --- injected upload failure ------------------------------------------------
nfs-cat "$(url A "$R3/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R3/f.txt")" >/dev/null 2>&1
flush "$work/cacheA" "$R3" >/dev/null 2>&1
check "an injected failure of the upload fails the flush" test $? -ne 0
check "and the run stays dirty" bash -c "[ '$(dirty_col "$work/cacheA" "$R3")' != '-' ]"
check "and the old tarball is intact" bash -c "tar -df '$work/nas/$R3.tar' -C '$work/src' >/dev/null 2>&1"
flush "$work/cacheA" "$R3" >/dev/null 2>&1
check "a later write-back succeeds" \
  bash -c "tar -xOf '$work/nas/$R3.tar' '$R3/f.txt' 2>/dev/null | cmp -s - '$work/new.txt'"

# --- MKDIR at the root creates a new run, a new object once flushed --------
NEW=251201_A01295_0500_NEWRUN
nfsop "$(url A '')" mkdir "/$NEW" 2>"$work/mkdir.err"; rc=$?; cat "$work/mkdir.err" >&2
check "MKDIR at the export root creates a run" test $rc -eq 0
nfs-cp "$work/new.txt" "$(url A "$NEW/a.txt")" >/dev/null 2>&1
check "files can be written into the new run" test $? -eq 0
check "the new run is listed at the root before it is written back" \
  bash -c "nfs-ls '$(url A '')' 2>/dev/null | grep -q ' $NEW\$'"
check "no object exists for it before the flush" test ! -e "$work/nas/$NEW.tar"
flush "$work/cacheA" "$NEW" >/dev/null 2>&1
check "flushing it creates $NEW.tar in the backend" \
  bash -c "tar -xOf '$work/nas/$NEW.tar' '$NEW/a.txt' 2>/dev/null | cmp -s - '$work/new.txt'"
nfsop "$(url A '')" mkdir "/$R1" 2>/dev/null
check "MKDIR of an existing run's name fails" test $? -ne 0
nfsop "$(url A '')" rmdir "/$R5" 2>"$work/rmdir.err"
check "RMDIR of a whole run at the root is refused (default)" test $? -ne 0
nfsop "$(url A '')" rename "/$R5" "/renamed" 2>/dev/null
check "RENAME of a run at the root is refused (default)" test $? -ne 0
check "and the refusals are logged with the reason" grep -q "refusing rmdir" "$work/A.log"
check "the object survives" test -s "$work/nas/$R5.tar"
# A test suite's directory made at the root (cthon04 makes and removes
# one): MKDIR makes a run, and RMDIR of it once emptied removes it.
TD=tarnfs_cthon_dir
nfsop "$(url A '')" mkdir "/$TD" 2>/dev/null
nfs-cp "$work/new.txt" "$(url A "$TD/t.txt")" >/dev/null 2>&1
nfsop "$(url A '')" rmdir "/$TD" 2>"$work/rmne.err"
check "RMDIR of a run made by MKDIR that still holds a file is ENOTEMPTY" \
  bash -c "grep -qi 'empty' '$work/rmne.err' && nfs-cat '$(url A "$TD/t.txt")' 2>/dev/null | cmp -s - '$work/new.txt'"
nfsop "$(url A '')" unlink "/$TD/t.txt" 2>/dev/null
nfsop "$(url A '')" rmdir "/$TD" 2>"$work/rme.err"
check "once emptied, RMDIR removes it (default settings)" test $? -eq 0
check "it is gone from the root listing" bash -c "! nfs-ls '$(url A '')' 2>/dev/null | grep -q ' $TD\$'"
check "and left no object in the backend" test ! -e "$work/nas/$TD.tar"
nfs-cat "$(url A "$R1/new.txt")" >/dev/null 2>&1
nfsop "$(url A '')" rename "/$R1/new.txt" "/$NEW/moved.txt" 2>"$work/xdev.err"
check "RENAME between two runs fails (EXDEV, so clients copy)" \
  bash -c "grep -qi 'cross-device\|XDEV' '$work/xdev.err'"

# --- kill -9, restart: still dirty, written back after the idle delay ------
nfs-cat "$(url A "$R4/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/big.bin" "$(url A "$R4/k.bin")" >/dev/null 2>&1
kill -9 "$pid_A"; wait "$pid_A" 2>/dev/null
check "after kill -9 the run is still marked dirty" bash -c "[ '$(dirty_col "$work/cacheA" "$R4")' != '-' ]"
start A "$work/cacheA" rw 2s
for _ in $(seq 1 100); do [ "$(dirty_col "$work/cacheA" "$R4")" = "-" ] && break; sleep 0.1; done
check "after the restart a run written back earlier is not fetched again" \
  bash -c "! grep -q 'run $R1 changed in the backend' '$work/A.log'"
check "the restarted server writes it back after the idle delay" \
  bash -c "tar -xOf '$work/nas/$R4.tar' '$R4/k.bin' 2>/dev/null | cmp -s - '$work/big.bin'"

# --- clean shutdown writes back --------------------------------------------
nfs-cat "$(url A "$R5/RunInfo.xml")" >/dev/null 2>&1
nfs-cp "$work/new.txt" "$(url A "$R5/s.txt")" >/dev/null 2>&1
kill -TERM "$pid_A"; wait "$pid_A" 2>/dev/null
check "SIGTERM writes a dirty run back before exiting" \
  bash -c "tar -xOf '$work/nas/$R5.tar' '$R5/s.txt' 2>/dev/null | cmp -s - '$work/new.txt'"
# --- eviction: a dirty run is written back first, then evicted -------------
# A run takes about 250 KB in the cache: three do not fit under 600K.
printf 'cache_limit = 600K\n' > "$work/limit.conf"
start C "$work/cacheC" rw 60m
sed -i "1r $work/limit.conf" "$work/C.conf"
kill -TERM "$pid_C"; wait "$pid_C" 2>/dev/null
TARNFS_TEST_CLOCK=1 "$B/tarnfsd" -f --config "$work/C.conf" --no-rpcbind --listen 127.0.0.1 \
  --nfs-port 0 --mount-port 0 --port-file "$work/C2.ports" 2>>"$work/C.log" &
pid_C=$!; track "$pid_C"
wait_until 10 test -s "$work/C2.ports"
port_C=$(cat "$work/C2.ports")
printf 'evict me\n' > "$work/ev.txt"
nfs-cp "$work/ev.txt" "$(url C "$R5/ev.txt")" >/dev/null 2>&1
nfs-cat "$(url C "$R2/RunInfo.xml")" >/dev/null 2>&1
nfs-cat "$(url C "$R3/RunInfo.xml")" >/dev/null 2>&1
advance_clock "$work/cacheC" 1s     # one housekeeping pass, within the grace (5 s)
check "a run changed within the eviction grace is not evicted" \
  bash -c "! grep -q 'evicted run $R5' '$work/C.log' && '$B/tarnfs' cache ls --cache '$work/cacheC' | grep -q '^$R5 '"
advance_clock "$work/cacheC" 5s     # past the eviction grace
wait_until 10 grep -q "evicted run $R5" "$work/C.log"
check "a dirty run chosen for eviction is written back first" \
  bash -c "grep -q 'wrote back run $R5 .*chosen for eviction' '$work/C.log' && tar -xOf '$work/nas/$R5.tar' '$R5/ev.txt' 2>/dev/null | cmp -s - '$work/ev.txt'"
"$B/tarnfs" cache ls --cache "$work/cacheC" > "$work/C.ls"
check "and evicted only after that" \
  bash -c "grep -n 'wrote back run $R5\|evicted run $R5' '$work/C.log' | tail -2 | grep -q 'evicted' && ! grep -q '^$R5 ' '$work/C.ls'"
kill -TERM "$pid_C"; wait "$pid_C" 2>/dev/null

# --- run_delete_rename = yes: RMDIR/RENAME of whole runs act on objects ----
mkdir -p "$work/tiny/TINYRUN" && echo x > "$work/tiny/TINYRUN/only.txt"
tar -C "$work/tiny" -cf "$work/nas/TINYRUN.tar" TINYRUN
start D "$work/cacheD" rw 60m
sed -i "1i run_delete_rename = yes" "$work/D.conf"
kill -TERM "$pid_D"; wait "$pid_D" 2>/dev/null
"$B/tarnfsd" -f --config "$work/D.conf" --no-rpcbind --listen 127.0.0.1 \
  --nfs-port 0 --mount-port 0 --port-file "$work/D2.ports" 2>>"$work/D.log" &
pid_D=$!; track "$pid_D"
wait_until 10 test -s "$work/D2.ports"
port_D=$(cat "$work/D2.ports")
nfsop "$(url D '')" rmdir "/$R1" 2>"$work/rm1.err"
check "with run_delete_rename, RMDIR of a non-empty run is ENOTEMPTY" \
  bash -c "grep -qi 'empty' '$work/rm1.err' && [ -s '$work/nas/$R1.tar' ]"
nfsop "$(url D '')" unlink "/TINYRUN/only.txt" 2>/dev/null &&
nfsop "$(url D '')" rmdir "/TINYRUN" 2>"$work/rm2.err"
check "RMDIR of an emptied run deletes its object" \
  bash -c "[ ! -e '$work/nas/TINYRUN.tar' ] && ! nfs-ls '$(url D '')' 2>/dev/null | grep -q ' TINYRUN\$'"
nfsop "$(url D '')" rename "/$R2" "/RENAMEDRUN" 2>"$work/mv.err"
check "RENAME of a run writes NAME.tar under the new name and removes the old" \
  bash -c "[ ! -e '$work/nas/$R2.tar' ] && tar -tf '$work/nas/RENAMEDRUN.tar' | head -1 | grep -qx 'RENAMEDRUN/'"
nfs-cat "$(url D "RENAMEDRUN/theirs.txt")" > "$work/ren.out" 2>/dev/null
check "the renamed run serves the old run's files" bash -c "echo theirs | cmp -s - '$work/ren.out'"
nfsop "$(url D '')" rename "/$R3" "/RENAMEDRUN" 2>/dev/null
check "RENAME onto an existing run fails and changes nothing" \
  bash -c "[ -s '$work/nas/$R3.tar' ] && tar -tf '$work/nas/RENAMEDRUN.tar' | head -1 | grep -qx 'RENAMEDRUN/'"
kill -TERM "$pid_D"; wait "$pid_D" 2>/dev/null

check "no sanitizer or leak report in the server logs" \
  no_sanitizer_reports "$work/A.log" "$work/B2.log" "$work/C.log" "$work/D.log"

finish
