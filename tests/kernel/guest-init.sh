#!/bin/busybox sh
# guest-init.sh: /init of the test VM: loads the kernel NFS client, mounts the export and runs
# the checks of checks.list, printing "KTEST: PASS|FAIL|SKIP name..." lines on the console.
# The host wrote /etc/ktest (manifests of the expected tree, config); 10.0.2.100:2049 and
# :20048 reach the server under test, 10.0.2.100:7000 reaches the harness (ctl.sh).
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
K=/etc/ktest
. $K/config
TAB=$(printf '\t')

say() { echo "KTEST: $*"; }
detail() { echo "KTEST: DETAIL $CHECK: $*"; }
details() { head -n "${1:-20}" | while IFS= read -r l; do detail "$l"; done; }
why() { echo "$*" > /tmp/why; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ctl() { echo "$*" | timeout -s KILL 330 nc 10.0.2.100 7000; }
do_mount() { # DIR [EXTRA_OPTS]
	mkdir -p "$1"
	timeout -s KILL 90 mount -t nfs -o "$MOUNT_OPTS${2:+,$2}" "10.0.2.100:$EXPORT" "$1" 2> /tmp/mount.err
}
expect_md5() { # MANIFEST DIR: md5sum -c of MANIFEST under DIR, failures into the reason
	(cd "$2" && md5sum -c "$1") 2>&1 | grep -v 'WARNING: .* did NOT match' > /tmp/md5.out
	bad=$(grep -vc ': OK$' /tmp/md5.out)
	total=$(wc -l < "$1")
	[ "$bad" = 0 ] && return 0
	grep -v ': OK$' /tmp/md5.out | details 10
	why "$bad of $total files differ or are unreadable under $2"
	return 1
}
holders() { # MOUNTPOINT: who keeps it busy, as DETAIL lines
	for p in /proc/[0-9]*; do
		for f in "$p/cwd" "$p/root" "$p"/fd/*; do
			case $(readlink "$f" 2>/dev/null) in "$1"/*|"$1") detail "busy: $f -> $(readlink "$f") ($(cat "$p/comm"))" ;; esac
		done
	done
}
umount_settled() { # MOUNTPOINT: umount; a just-closed NFS file can keep it busy for a moment
	tries=0
	until umount "$1" 2> /tmp/umount.err; do
		tries=$((tries + 1))
		[ $tries -ge 10 ] && { holders "$1"; return 1; }
		sleep 1
	done
	[ $tries = 0 ] || say "INFO umount $1 needed $tries retries"
}
is_enoent() { case $1 in *"No such file or directory"*) return 0 ;; esac; return 1; }

check_mount_export() {
	do_mount /mnt || { why "mount failed: $(cat /tmp/mount.err)"; return 1; }
	grep -q ' /mnt nfs ' /proc/mounts || { why "no nfs entry for /mnt in /proc/mounts"; return 1; }
	why "$(grep ' /mnt nfs ' /proc/mounts | cut -d' ' -f4 | cut -c1-120)"
}

check_indexed_run_one_file_md5() {
	# The first touch of the indexed run (nothing before this check looks into it): one
	# file, md5 right; the host's fetch counters say how it came.
	[ -n "$INDEX_SKIP" ] && { why "$INDEX_SKIP"; return 77; }
	expect_md5 $K/md5.indexed /mnt || return 1
	answer=$(ctl "indexed-fetches $RUN_B $INDEXED_FILE")
	case $answer in
	OK*) why "${INDEXED_FILE##*/}: md5 right; fetched: ${answer#OK }" ;;
	*) why "md5 right, but the host counted: ${answer#ERR }"; return 1 ;;
	esac
}

check_streaming_run_md5_while_streaming() {
	# RUN_S's backend stalls after its first MiB: every file but the last is in it, the
	# last one's data crosses the stall.  Read them in tar order, md5 each; the host says
	# whether the run was still streaming after all but the last were read, and that it
	# had ended once the last (parked until its bytes arrived) was read.
	[ -n "$STREAM_SKIP" ] && { why "$STREAM_SKIP"; return 77; }
	n=$(wc -l < $K/md5.stream)
	head -n $((n - 1)) $K/md5.stream > /tmp/md5.early
	tail -n 1 $K/md5.stream > /tmp/md5.late
	expect_md5 /tmp/md5.early /mnt || return 1
	during=$(ctl "stream-state $RUN_S")
	expect_md5 /tmp/md5.late /mnt || return 1
	after=$(ctl "stream-state $RUN_S")
	case $during in streaming*) ;; *)
		why "$((n - 1)) files right, but the run was not streaming any more when they had been read: $during"
		return 1 ;;
	esac
	case $after in ended*"served while streaming"*) ;; *)
		why "all $n files right, but after the last: $after"; return 1 ;;
	esac
	why "$((n - 1)) of $n files read (md5 right) while the run streamed, the last once it arrived; server: ${after#ended: }"
}

# The run roots are the lines "./NAME ..." (run names have no spaces or slashes).
RUN_ROOT_LINE='^\./[^/ ]* '
loose_run_roots() { # canonical ls lines: run roots keep only their name and file type
	awk -v re="$RUN_ROOT_LINE" '$0 ~ re { $2 = substr($2, 1, 1) "?"; $6 = "?" } { print }'
}
check_ls_lR_matches_manifest() {
	# The first listing touches every run; a run without an index is served while it
	# streams in, and lists only the members that have arrived (streaming-run-md5-while-
	# streaming shows that).  This check is about the whole tree: wait until the host has
	# every run in its cache, then list again with cold client caches.
	(cd /mnt && ls -lnR . > /dev/null 2>&1)
	for r in $(grep "$RUN_ROOT_LINE" $K/ls.expected | awk '{ print substr($1, 3) }'); do
		i=0
		while [ $i -lt 120 ]; do
			case $(ctl "cached $r") in no) ;; *) break ;; esac
			sleep 0.5; i=$((i + 1))
		done
	done
	drop_caches
	(cd /mnt && ls -lnR --full-time . 2> /tmp/ls.err) | awk -f $K/canon-ls.awk | sort > /tmp/ls.got
	details 5 < /tmp/ls.err
	cp $K/ls.expected /tmp/ls.exp
	note=""
	if [ "$NAMESPACE" = 1 ]; then
		# A run not fetched yet shows synthesised root attributes in a listing of its
		# parent (doc/design.md (vfs)), so `ls -l /` never fetches every run; the next
		# check shows the real ones once fetched.
		loose_run_roots < $K/ls.expected > /tmp/ls.exp
		loose_run_roots < /tmp/ls.got > /tmp/ls.got2 && mv /tmp/ls.got2 /tmp/ls.got
		note=" (run roots: name and type only, next check has their attributes)"
	fi
	diff /tmp/ls.exp /tmp/ls.got > /tmp/ls.diff && { why "$(wc -l < /tmp/ls.got) entries$note"; return 0; }
	grep '^[-+][^-+]' /tmp/ls.diff | details 20
	why "$(grep -c '^[-+][^-+]' /tmp/ls.diff) lines differ (- expected, + got)$note"
	return 1
}

check_run_roots_real_once_fetched() {
	# Every run was read by the check before; drop the client's caches so the attributes
	# come from the server again.
	drop_caches
	(cd /mnt && ls -ln --full-time . 2> /tmp/rr.err) | awk -f $K/canon-ls.awk | sort > /tmp/rr.got
	grep "$RUN_ROOT_LINE" $K/ls.expected > /tmp/rr.exp
	details 5 < /tmp/rr.err
	diff /tmp/rr.exp /tmp/rr.got > /tmp/rr.diff && { why "$(wc -l < /tmp/rr.got) run roots"; return 0; }
	grep '^[-+][^-+]' /tmp/rr.diff | details 10
	why "$(grep -c '^[-+][^-+]' /tmp/rr.diff) lines differ (- expected, + got)"
	return 1
}

check_find_lists_every_name() {
	(cd /mnt && find . 2> /tmp/find.err) | sort > /tmp/find.got
	details 5 < /tmp/find.err
	exp=$(wc -l < $K/find.expected); got=$(wc -l < /tmp/find.got)
	if diff $K/find.expected /tmp/find.got > /tmp/find.diff; then why "find | wc -l = $got"; return 0; fi
	grep '^[-+][^-+]' /tmp/find.diff | details 10
	why "find | wc -l = $got, expected $exp"
	return 1
}

check_large_dir_lists_completely() {
	drop_caches
	ls -1A "/mnt/$BIG_DIR" 2> /tmp/bd.err | sort > /tmp/bd.got
	exp=$(wc -l < $K/bigdir.expected); got=$(wc -l < /tmp/bd.got)
	details 5 < /tmp/bd.err
	diff $K/bigdir.expected /tmp/bd.got > /tmp/bd.diff && { why "$got entries"; return 0; }
	grep '^[-+][^-+]' /tmp/bd.diff | details 10
	why "listed $got entries, expected $exp"
	return 1
}

check_symlinks_read_back() {
	drop_caches
	n=0; bad=0
	while IFS="$TAB" read -r path target; do
		n=$((n + 1))
		got=$(readlink "/mnt/$path" 2>&1)
		[ "$got" = "$target" ] || { bad=$((bad + 1)); detail "$path -> '$got', expected '$target'"; }
	done < $K/symlinks
	[ "$bad" = 0 ] || { why "$bad of $n symlinks read back wrong"; return 1; }
	expect_md5 $K/md5.via-symlink /mnt || return 1
	why "$n symlinks, $(wc -l < $K/md5.via-symlink) read through"
}

check_hard_links_share_inode() {
	drop_caches
	prev_ino=""; prev_got=""; seen=" "; bad=0; n=0
	while IFS="$TAB" read -r ino nlink path; do
		n=$((n + 1))
		set -- $(stat -c '%i %h' "/mnt/$path" 2>/dev/null)
		[ "${2:-}" = "$nlink" ] || { bad=$((bad + 1)); detail "$path: nlink ${2:-?}, expected $nlink"; }
		if [ "$ino" = "$prev_ino" ]; then
			[ "${1:-}" = "$prev_got" ] || { bad=$((bad + 1)); detail "$path: inode ${1:-?}, its link has $prev_got"; }
		else
			case $seen in *" ${1:-x} "*) bad=$((bad + 1)); detail "$path: inode $1 reused by another group" ;; esac
			seen="$seen${1:-x} "
		fi
		prev_ino=$ino; prev_got=${1:-}
	done < $K/hardlinks
	[ "$n" -gt 0 ] || { why "the manifest has no hard links"; return 1; }
	[ "$bad" = 0 ] || { why "$bad hard-link mismatches"; return 1; }
	why "$n names in $(cut -f1 $K/hardlinks | uniq | wc -l) link groups"
}

check_md5_every_file_in_run() {
	drop_caches
	expect_md5 $K/md5.run /mnt && why "$(wc -l < $K/md5.run) files of $RUN_A"
}

check_md5_large_file() {
	drop_caches
	t0=$(date +%s)
	expect_md5 $K/md5.big /mnt || return 1
	size=$(stat -c %s "/mnt/$BIG_FILE")
	dt=$(( $(date +%s) - t0 )); [ "$dt" -gt 0 ] || dt=1
	why "$((size / 1048576)) MiB at $((size / 1048576 / dt)) MiB/s"
}

check_missing_name_gives_enoent() {
	out=$(ls -d /mnt/NO_SUCH_RUN_kvm 2>&1) && { why "ls of a missing run succeeded: $out"; return 1; }
	is_enoent "$out" || { why "missing run: '$out', expected ENOENT"; return 1; }
	out=$(cat "/mnt/$RUN_A/no-such-member" 2>&1) && { why "cat of a missing member succeeded"; return 1; }
	is_enoent "$out" || { why "missing member: '$out', expected ENOENT"; return 1; }
	out=$(stat "/mnt/NO_SUCH_RUN_kvm/x" 2>&1)
	is_enoent "$out" || { why "path under a missing run: '$out', expected ENOENT"; return 1; }
}

check_ro_write_gives_erofs() {
	out=$(touch "/mnt/$RUN_A/kvm-new-file" 2>&1) && { why "create on the ro export succeeded"; return 1; }
	case $out in *"Read-only file system"*) ;; *) why "create: '$out', expected EROFS"; return 1 ;; esac
	out=$(mkdir "/mnt/$RUN_A/kvm-new-dir" 2>&1) && { why "mkdir on the ro export succeeded"; return 1; }
	case $out in *"Read-only file system"*) ;; *) why "mkdir: '$out', expected EROFS"; return 1 ;; esac
	before=$(md5sum < "/mnt/$RUN_A/RTAComplete.txt")
	out=$(sh -c "echo x >> /mnt/$RUN_A/RTAComplete.txt" 2>&1) && { why "append on the ro export succeeded"; return 1; }
	drop_caches
	[ "$(md5sum < "/mnt/$RUN_A/RTAComplete.txt")" = "$before" ] || { why "append changed the file"; return 1; }
	why "create and mkdir: EROFS; append to a file: ${out##*: }"
}

check_restart_keeps_open_file_and_cwd() {
	exec 3< "/mnt/$BIG_FILE" || { why "cannot open $BIG_FILE"; return 1; }
	cd "/mnt/$RUN_A/InterOp" || { exec 3<&-; why "cannot cd into the run"; return 1; }
	ls -1A > /tmp/cwd.before
	dd bs=1M count=10 <&3 > /tmp/part1 2>/dev/null
	# A reader in flight across the restart: its requests must be retried, not failed.
	drop_caches
	(md5sum < "/mnt/$BIG_FILE" > /tmp/bg.md5 2> /tmp/bg.err) &
	bg=$!
	answer=$(ctl restart)
	if [ "$answer" != OK ]; then wait $bg; exec 3<&-; cd /; why "host could not restart the server: $answer"; return 1; fi
	wait $bg
	drop_caches
	rc=0
	[ "$(cut -d' ' -f1 /tmp/bg.md5)" = "$(cut -d' ' -f1 $K/md5.big)" ] ||
		{ rc=1; why "a read in flight across the restart got different bytes: $(cat /tmp/bg.err)"; }
	ls -1A > /tmp/cwd.after 2> /tmp/cwd.err || { rc=1; why "ls of the cwd after restart: $(cat /tmp/cwd.err)"; }
	cmp -s /tmp/cwd.before /tmp/cwd.after || { rc=1; why "cwd lists differently after restart"; }
	sum=$( (cat /tmp/part1; cat <&3) 2> /tmp/rd.err | md5sum | cut -d' ' -f1)
	[ -s /tmp/rd.err ] && { rc=1; why "read of the open file after restart: $(cat /tmp/rd.err)"; }
	[ "$sum" = "$(cut -d' ' -f1 $K/md5.big)" ] || { rc=1; why "open file read after restart: md5 differs"; }
	exp=$(grep "/InterOp/TileMetricsOut.bin\$" $K/md5.run | cut -d' ' -f1)
	[ "$(md5sum < TileMetricsOut.bin 2>/dev/null | cut -d' ' -f1)" = "$exp" ] || { rc=1; why "file by cwd-relative name differs after restart"; }
	exec 3<&-
	cd /
	[ $rc = 0 ] && why "read 10 MiB, restarted with a 50 MiB read in flight, read the rest; cwd still lists $(wc -l < /tmp/cwd.after) names"
	return $rc
}

check_evict_while_mounted_refetches() {
	[ -n "$EVICT_SKIP" ] && { why "$EVICT_SKIP"; return 77; }
	exec 4< "/mnt/$MID_FILE" || { why "cannot open $MID_FILE"; return 1; }
	cd "/mnt/$RUN_A/Logs" || { exec 4<&-; why "cannot cd into the run"; return 1; }
	ls -1A > /tmp/ev.before
	dd bs=1M count=1 <&4 > /tmp/mpart1 2>/dev/null
	answer=$(ctl "evict $RUN_A")
	if [ "$answer" != OK ]; then exec 4<&-; cd /; why "host could not evict: $answer"; return 1; fi
	drop_caches
	rc=0
	sum=$( (cat /tmp/mpart1; cat <&4) 2> /tmp/ev.err | md5sum | cut -d' ' -f1)
	[ -s /tmp/ev.err ] && { rc=1; why "read through the old handle after evict: $(cat /tmp/ev.err)"; }
	[ "$sum" = "$(cut -d' ' -f1 $K/md5.mid)" ] || { rc=1; why "open file read after evict: md5 differs"; }
	ls -1A > /tmp/ev.after 2>&1 && cmp -s /tmp/ev.before /tmp/ev.after || { rc=1; why "cwd lists differently after evict"; }
	exec 4<&-
	cd /
	cached=$(ctl "cached $RUN_A")
	[ "$cached" = no ] && { rc=1; why "the reads succeeded but $RUN_A is not back in the cache"; }
	[ $rc = 0 ] && why "read 1 MiB, evicted $RUN_A, read the rest: identical (back in the cache: $cached)"
	return $rc
}

check_remount_still_readable() {
	umount_settled /mnt || { why "umount: $(cat /tmp/umount.err)"; return 1; }
	do_mount /mnt || { why "second mount failed: $(cat /tmp/mount.err)"; return 1; }
	expect_md5 $K/md5.run /mnt || return 1
	expect_md5 $K/md5.mid /mnt || return 1
	why "$(wc -l < $K/md5.run) files read back after the remount"
}

check_nconnect_two_mounts_parallel() {
	# The kernel shares one client (and its transports) per server: with /mnt still mounted
	# without nconnect, the new mounts would reuse its single connection.
	umount_settled /mnt || { why "umount /mnt: $(cat /tmp/umount.err)"; return 1; }
	MOUNTED=0
	do_mount /m1 nconnect=4,nosharecache || { why "mount /m1: $(cat /tmp/mount.err)"; return 1; }
	do_mount /m2 nconnect=4,nosharecache || { umount /m1; why "mount /m2: $(cat /tmp/mount.err)"; return 1; }
	drop_caches
	(cd /m1 && md5sum -c $K/md5.big > /tmp/nc1 2>&1) &
	(cd /m2 && md5sum -c $K/md5.big > /tmp/nc2 2>&1) &
	(cd /m1 && md5sum -c $K/md5.run > /tmp/nc3 2>&1) &
	(cd /m2 && md5sum -c $K/md5.run > /tmp/nc4 2>&1) &
	wait
	xprts=$(awk '/^device / { on = ($5 == "/m1") } on && /xprt:/ { n++ } END { print n + 0 }' /proc/self/mountstats)
	umount /m1; umount /m2
	do_mount /mnt && MOUNTED=1
	cat /tmp/nc1 /tmp/nc2 /tmp/nc3 /tmp/nc4 | grep -v 'WARNING: .* did NOT match' > /tmp/nc.all
	bad=$(grep -vc ': OK$' /tmp/nc.all)
	total=$(wc -l < /tmp/nc.all)
	expected=$(( 2 * $(wc -l < $K/md5.big) + 2 * $(wc -l < $K/md5.run) ))
	[ "$bad" = 0 ] && [ "$total" = "$expected" ] || {
		grep -v ': OK$' /tmp/nc.all | details 10
		why "$bad of $total parallel reads differ (expected $expected results)"; return 1; }
	[ "$xprts" = 4 ] || { why "/m1 has $xprts transports, expected 4 (nconnect=4)"; return 1; }
	[ "$MOUNTED" = 1 ] || { why "remounting /mnt afterwards failed: $(cat /tmp/mount.err)"; return 1; }
	why "$total files read in parallel through 2 mounts with 4 transports each"
}

RW_DIR=$RUN_A/kvm-rw
check_rw_operations() {
	[ -n "$RW_SKIP" ] && { why "$RW_SKIP"; return 77; }
	answer=$(ctl rw)
	[ "$answer" = OK ] || { why "host could not restart the server rw: $answer"; return 1; }
	umount_settled /mnt; do_mount /mnt || { why "rw mount failed: $(cat /tmp/mount.err)"; return 1; }
	d=/mnt/$RW_DIR
	step() { # WHAT CMD...: one operation; stop at the first failure
		what=$1; shift
		"$@" 2> /tmp/rw.err || { why "$what failed: $(cat /tmp/rw.err)"; return 1; }
	}
	dd if=/dev/urandom of=/tmp/w bs=64k count=16 2>/dev/null
	step mkdir mkdir "$d" &&
	step "write+fsync" dd if=/tmp/w of="$d/f1" bs=64k conv=fsync &&
	step create touch "$d/f2" &&
	step rename mv "$d/f2" "$d/f3" &&
	step remove rm "$d/f3" &&
	step mkdir mkdir "$d/d2" &&
	step rmdir rmdir "$d/d2" &&
	step mkdir mkdir "$d/keep" &&
	step symlink ln -s f1 "$d/s1" &&
	step link ln "$d/f1" "$d/h1" || return 1
	drop_caches
	cmp -s /tmp/w "$d/f1" || { why "f1 reads back different"; return 1; }
	[ "$(stat -c %h "$d/f1")" = 2 ] || { why "f1 nlink $(stat -c %h "$d/f1"), expected 2"; return 1; }
	[ "$(readlink "$d/s1")" = f1 ] || { why "s1 reads back '$(readlink "$d/s1")'"; return 1; }
	[ ! -e "$d/f3" ] && [ ! -e "$d/d2" ] || { why "removed names still visible"; return 1; }
	RW_DONE=1
}

check_rw_host_verifies() {
	[ -n "$RW_SKIP" ] && { why "$RW_SKIP"; return 77; }
	[ "${RW_DONE:-}" = 1 ] || { why "rw-operations failed, nothing to verify"; return 1; }
	answer=$(ctl "verify-rw $RW_DIR $(md5sum < /tmp/w | cut -d' ' -f1)")
	[ "$answer" = OK ] || { why "host: $answer"; return 1; }
}

# The cthon04-style battery (posixcheck.c) in a fresh directory of the rw export: one line
# per sub-check, every FAIL line a DETAIL and, with its reason, in the verdict.
check_posix_semantics_on_rw_export() {
	[ -n "$RW_SKIP" ] && { why "$RW_SKIP"; return 77; }
	[ -x /usr/bin/posixcheck ] || { why "posixcheck was not built into the initramfs (see the harness log)"; return 1; }
	# A second mount with its own caches: close-to-open between two clients.
	do_mount /px2 nosharecache || { why "second mount failed: $(cat /tmp/mount.err)"; return 1; }
	POSIXCHECK_OTHER=/px2/$RUN_A/kvm-posix timeout -s KILL 300 posixcheck "/mnt/$RUN_A/kvm-posix" > /tmp/px.out 2>&1; rc=$?
	umount_settled /px2 || detail "umount /px2: $(cat /tmp/umount.err)"
	# Again through a mount without READDIRPLUS and with 4 KiB transfers: READDIR cookies,
	# and reads and writes split into many small calls.
	if do_mount /px3 nosharecache,nordirplus,rsize=4096,wsize=4096; then
		timeout -s KILL 300 posixcheck "/px3/$RUN_A/kvm-posix-small" readdir-200-files \
			readdir-while-unlinking readdir-while-creating telldir-seekdir readdir-dot-entries-and-types \
			write-read-1mib holey-files large-file-past-4gib o-direct-unaligned parallel-writers-one-file \
			> /tmp/px3.out 2>&1 || rc=1
		sed -e 's/^PASS /PASS small-io:/' -e 's/^FAIL /FAIL small-io:/' /tmp/px3.out >> /tmp/px.out
		umount_settled /px3 || detail "umount /px3: $(cat /tmp/umount.err)"
	else
		echo "FAIL small-io: mount with nordirplus,rsize=4096,wsize=4096: $(cat /tmp/mount.err)" >> /tmp/px.out; rc=1
	fi
	grep -v '^PASS ' /tmp/px.out | details 40
	grep '^PASS ' /tmp/px.out | sed 's/^/KTEST: INFO posixcheck /'   # timings, console only
	npass=$(grep -c '^PASS ' /tmp/px.out); nfail=$(grep -c '^FAIL ' /tmp/px.out)
	if [ $rc != 0 ] || [ "$nfail" != 0 ]; then
		why "$nfail failed, $npass passed (status $rc): $(grep '^FAIL ' /tmp/px.out | sed 's/^FAIL //' | tr '\n' ';' | cut -c1-1500)"
		return 1
	fi
	why "$npass sub-checks passed in $(grep -c . /tmp/px.out) lines: $(grep '^PASS ' /tmp/px.out | cut -d' ' -f2 | tr '\n' ' ' | cut -c1-400)"
}

# NLM (issue 15): two more mounts without nolock (and not sharing a superblock, so each has
# its own locks), locking RW_DIR/f1 from rw-operations through the guest's lockd.
lock_mount() { # DIR
	mkdir -p "$1"
	timeout -s KILL 90 mount -t nfs -o "$(echo "$MOUNT_OPTS" | sed 's/,nolock//'),nosharecache" \
		"10.0.2.100:$EXPORT" "$1" 2> /tmp/mount.err
}
STATD_PORT=32765   # fixed, so that nlm-lock-reclaimed-after-server-restart can notify it
start_lock_daemons() { # the guest's rpcbind and rpc.statd, which its lockd needs
	hostname ktest
	chown -R _rpc /run/rpcbind; chown -R statd /var/lib/nfs
	rpcbind -f -w > /tmp/rpcbind.log 2>&1 &
	for i in 1 2 3 4 5 6 7 8 9 10; do [ -S /run/rpcbind.sock ] && break; sleep 0.2; done
	[ -S /run/rpcbind.sock ] || { why "rpcbind did not start: $(cat /tmp/rpcbind.log)"; return 1; }
	rpc.statd --no-notify -F -d -p $STATD_PORT > /tmp/statd.log 2>&1 &
	sleep 1
	grep -q "Starting" /tmp/statd.log 2>/dev/null || true
}
check_nlm_locks_exclude_across_mounts() {
	[ -n "$NLM_SKIP" ] && { why "$NLM_SKIP"; return 77; }
	[ "${RW_DONE:-}" = 1 ] || { why "rw-operations failed: no file to lock"; return 1; }
	start_lock_daemons || return 1
	lock_mount /l1 || { why "mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	lock_mount /l2 || { umount /l1; why "second mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	grep ' /l1 nfs ' /proc/mounts | grep -q nolock && { why "/l1 is mounted nolock"; return 1; }
	nlmlock hold "/l1/$RW_DIR/f1" 8 > /tmp/hold.out 2>&1 &
	HOLDER=$!
	for i in $(seq 100); do grep -q LOCKED /tmp/hold.out && break; sleep 0.2; done
	grep -q LOCKED /tmp/hold.out || { kill $HOLDER; HOLDER=; details 30 < /tmp/statd.log
		rpcinfo -p 2>&1 | details 20; rpcinfo -p 10.0.2.100 2>&1 | details 20
		why "the first lock was not granted: $(cat /tmp/hold.out)"; return 1; }
	out=$(nlmlock try "/l2/$RW_DIR/f1"); rc=$?
	[ $rc = 1 ] || { why "a conflicting lock through the other mount: '$out' (status $rc), want DENIED"; return 1; }
	LOCK_HELD_AT=$(date +%s)
	why "the holder's write lock on /l1 denies one through /l2 ($out)"
}
check_nlm_blocking_lock_waits_for_release() {
	[ -n "$NLM_SKIP" ] && { why "$NLM_SKIP"; return 77; }
	[ -n "${HOLDER:-}" ] || { why "nlm-locks-exclude-across-mounts held no lock"; return 1; }
	# F_SETLKW through /l2 blocks until the holder closes its file (8 s after it locked);
	# the server's GRANTED callback cannot reach the guest through user-mode networking,
	# so the guest's lockd polls again (every 30 s) and gets it then.
	out=$(timeout -s KILL 75 nlmlock wait "/l2/$RW_DIR/f1"); rc=$?
	waited=$(( $(date +%s) - LOCK_HELD_AT ))
	wait $HOLDER
	grep -q RELEASED /tmp/hold.out || { why "the holder did not finish: $(cat /tmp/hold.out)"; return 1; }
	[ $rc = 0 ] || { why "F_SETLKW through /l2: '$out' (status $rc)"; return 1; }
	[ $waited -ge 4 ] || { why "F_SETLKW returned after ${waited}s, before the holder let go"; return 1; }
	after=$(nlmlock try "/l1/$RW_DIR/f1"); rc=$?
	umount /l1; umount /l2
	[ $rc = 0 ] || { why "after everyone let go, a lock through /l1: '$after'"; return 1; }
	why "the blocked lock was granted after the holder let go ($out)"
}
check_nlm_lock_reclaimed_after_server_restart() {
	[ -n "$NLM_SKIP" ] && { why "$NLM_SKIP"; return 77; }
	[ "${RW_DONE:-}" = 1 ] || { why "rw-operations failed: no file to lock"; return 1; }
	[ -S /run/rpcbind.sock ] || start_lock_daemons || return 1
	lock_mount /l1 || { why "mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	lock_mount /l2 || { umount /l1; why "second mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	nlmlock hold "/l1/$RW_DIR/f1" 120 > /tmp/hold.out 2>&1 &
	holder=$!
	for i in $(seq 100); do grep -q LOCKED /tmp/hold.out && break; sleep 0.2; done
	grep -q LOCKED /tmp/hold.out || { kill $holder; umount /l1 /l2; why "the lock was not granted: $(cat /tmp/hold.out)"; return 1; }
	# The server forgets every lock as it restarts; its grace period (NLM_GRACE_S) keeps new
	# locks out while the holder's lockd, told by SM_NOTIFY, takes the lock back.
	answer=$(ctl restart-grace $NLM_GRACE_S)
	[ "$answer" = OK ] || { kill $holder; umount /l1 /l2; why "host could not restart the server: $answer"; return 1; }
	t0=$(date +%s)
	out=$(nlmlock notify 10.0.2.100 3 $STATD_PORT) ||
		{ kill $holder; umount /l1 /l2; details 20 < /tmp/statd.log; why "notify: $out"; return 1; }
	# A new lock waits out the grace period (the client retries every 5 s), then is denied:
	# the holder has its lock back.
	out=$(timeout -s KILL 90 nlmlock try "/l2/$RW_DIR/f1"); rc=$?
	waited=$(( $(date +%s) - t0 ))
	kill $holder; wait $holder 2>/dev/null
	after=$(timeout -s KILL 60 nlmlock try "/l2/$RW_DIR/f1"); arc=$?
	umount /l1; umount /l2
	if [ $rc = 0 ]; then
		details 20 < /tmp/statd.log; dmesg | grep -i lockd | tail -10 | details 10
		why "after the restart another mount took the lock the holder still had ($out after ${waited}s): not reclaimed"; return 1
	fi
	[ $rc = 1 ] || { why "a conflicting lock after the restart: '$out' (status $rc), want DENIED"; return 1; }
	[ $arc = 0 ] || { why "after the holder let go, the lock was still refused: '$after'"; return 1; }
	why "the holder's lock was reclaimed: the other mount was refused after ${waited}s ($out), and got it once the holder let go"
}

# tlocklfs-style record locks (lockcheck.c) in a fresh directory of the rw export, through a
# mount without nolock; then again with the child owner on a second such mount (nosharecache:
# its own inodes and lock lists), so that every conflict is the server's answer.
check_nlm_record_locks_tlocklfs_style() {
	[ -n "$NLM_SKIP" ] && { why "$NLM_SKIP"; return 77; }
	[ -n "$RW_SKIP" ] && { why "$RW_SKIP"; return 77; }
	[ "${RW_DONE:-}" = 1 ] || { why "rw-operations failed or did not run: the export is not rw"; return 1; }
	[ -x /usr/bin/lockcheck ] || { why "lockcheck was not built into the initramfs (see the harness log)"; return 1; }
	[ -S /run/rpcbind.sock ] || start_lock_daemons || return 1
	lock_mount /k1 || { why "mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	lock_mount /k2 || { umount /k1; why "second mount without nolock failed: $(cat /tmp/mount.err)"; return 1; }
	timeout -s KILL 300 lockcheck "/k1/$RUN_A/kvm-locks" --other "/k2/$RUN_A/kvm-locks" --member RTAComplete.txt > /tmp/lk.out 2>&1; rc=$?
	umount_settled /k1 || detail "umount /k1: $(cat /tmp/umount.err)"
	umount_settled /k2 || detail "umount /k2: $(cat /tmp/umount.err)"
	grep -v '^PASS ' /tmp/lk.out | details 40
	grep '^PASS ' /tmp/lk.out | sed 's/^/KTEST: INFO lockcheck /'   # timings, console only
	npass=$(grep -c '^PASS ' /tmp/lk.out); nfail=$(grep -c '^FAIL ' /tmp/lk.out)
	if [ $rc != 0 ] || [ "$nfail" != 0 ] || [ "$npass" = 0 ]; then
		why "$nfail failed, $npass passed (status $rc): $(grep '^FAIL ' /tmp/lk.out | sed 's/^FAIL //' | tr '\n' ';' | cut -c1-1500)"
		return 1
	fi
	why "$npass sub-checks passed: $(grep '^PASS ' /tmp/lk.out | cut -d' ' -f2 | tr '\n' ' ' | cut -c1-400)"
}

run_check() { # NAME
	CHECK=$1
	fn=check_$(echo "$CHECK" | tr - _)
	rm -f /tmp/why
	if [ -n "$ONLY" ] && [ "$CHECK" != mount-export ]; then
		case " $ONLY " in *" $CHECK "*) ;; *) say "SKIP $CHECK: not in KERNEL_ONLY"; return ;; esac
	fi
	if [ "$MOUNTED" != 1 ] && [ "$CHECK" != mount-export ]; then
		say "FAIL $CHECK: not run, the export is not mounted"; return
	fi
	say "BEGIN $CHECK"
	t0=$(date +%s)
	$fn; rc=$?
	dt=$(( $(date +%s) - t0 ))
	reason=$(cat /tmp/why 2>/dev/null)
	case $rc in
	0) say "PASS $CHECK (${dt}s)${reason:+: $reason}"
	   [ "$CHECK" = mount-export ] && MOUNTED=1 ;;
	77) say "SKIP $CHECK: $reason" ;;
	*) say "FAIL $CHECK (${dt}s): ${reason:-exit status $rc}" ;;
	esac
}

say "BOOTED $(uname -r) at $(cut -d' ' -f1 /proc/uptime)s"
for m in $(cat $K/modules); do
	insmod "/lib/modules/$m" 2> /tmp/insmod.err || say "INFO insmod $m: $(cat /tmp/insmod.err)"
done
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || say "INFO network setup failed"
MOUNTED=0
grep -v '^#' $K/checks.list | while read -r name rest; do
	[ -n "$name" ] && echo "$name"
done > /tmp/plan
for name in $(cat /tmp/plan); do run_check "$name"; done
dmesg | grep -iE 'nfs|rpc|stale|lockd' | tail -20 | sed 's/^/KTEST: KLOG /'
say "DONE at $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
