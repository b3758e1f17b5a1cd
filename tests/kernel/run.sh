#!/usr/bin/env bash
# run.sh: boots Debian's stock kernel under qemu (TCG), mounts the NFS server under test with
# the kernel NFS client, runs the guest checks and prints one verdict line per check.
#
# usage: tests/kernel/run.sh [--server KIND] [--keep] [--timeout SEC] [--break KIND]
#   --server KIND   auto (default), tarnfsd-source, tarnfsd-cache, ganesha or custom
#                   (env KERNEL_SERVER).  auto = tarnfsd-source (tarnfsd-cache only for
#                   a tarnfsd without --source).  custom runs $KERNEL_SERVER_CMD.
#   --keep          keep the run directory even when everything passed (KERNEL_KEEP=1)
#   --timeout SEC   give up on the guest after SEC seconds (KERNEL_TIMEOUT, default 420)
#   --break KIND    serve deliberately wrong data to prove the harness notices:
#                   size (one file one byte longer), mtime (one file's mtime moved)
# More knobs (doc/testing.md): KERNEL_SERVER_ARGS, KERNEL_SERVER_CONF, KERNEL_SERVER_CMD,
# KERNEL_EVICT_CMD, KERNEL_EXPORT, KERNEL_MOUNT_OPTS, KERNEL_RW, KERNEL_BIG_MB, KERNEL_BIG_DIR,
# KERNEL_STREAM_STALL_MS, KERNEL_KVER, KERNEL_ACCEL, KERNEL_ONLY (a development aid: only these
# checks, space-separated, the rest SKIP).
#
# Everything runs inside `unshare --net --mount`: the server listens on 127.0.0.1 of a
# private network namespace and qemu's guestfwd reaches it there; nothing leaves the host.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${TARNFS_ROOT:-$(cd "$HERE/../.." && pwd)}
B=${B:-build-san}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
export B ROOT

SERVER_KIND=${KERNEL_SERVER:-auto}
KEEP=${KERNEL_KEEP:-0}
TIMEOUT=${KERNEL_TIMEOUT:-420}
BREAK=${KERNEL_BREAK:-}
while [ $# -gt 0 ]; do
	case $1 in
	--server) SERVER_KIND=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--break) BREAK=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d'; exit 0 ;;
	*) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
done

die() { echo "kernel-vm: $*" >&2; [ -n "${RUN:-}" ] && echo "kept: $RUN" >&2; exit 1; }

# Re-enter in a private network and mount namespace; everything below runs there.
if [ "${KERNEL_IN_NETNS:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || die "needs root (unshare --net, mknod /dev/console)"
	exec unshare --net --mount --propagation private \
		env KERNEL_IN_NETNS=1 KERNEL_SERVER="$SERVER_KIND" KERNEL_KEEP="$KEEP" \
		KERNEL_TIMEOUT="$TIMEOUT" KERNEL_BREAK="$BREAK" "$0"
fi
ip link set lo up || die "cannot bring up lo in the private netns"
# rpcbind (only the ganesha stand-in needs it) keeps its socket and state in /run.
mount -t tmpfs -o mode=755 tarnfs-kvm-run /run || die "cannot mount a private /run"

for tool in qemu-system-x86_64 busybox socat cpio xz modprobe unshare; do
	command -v "$tool" >/dev/null || die "missing $tool: run 'make deps'"
done

# Leaks inside Kyoto Cabinet are the library's (lsan.supp); the server's own are failures.
export LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

NFS_PORT=${KERNEL_NFS_PORT:-2049}      # a fresh netns: these ports are always free
MOUNT_PORT=${KERNEL_MOUNT_PORT:-20048}
BIG_MB=${KERNEL_BIG_MB:-50}
BIG_DIR_ENTRIES=${KERNEL_BIG_DIR:-5000}
RUN_A=241023_A01295_0432_BHK3NFDRX5   # small run: every file md5-checked, links, odd names
RUN_B=241024_A01295_0433_AHK3NFDRX6   # large file and the large directory
RUN_C=241025_A01295_0434_BHK3NFDRX7   # small gzip-compressed run
RUN_S=241026_A01295_0435_BHK3NFDRX8   # small run, no index, its stream stalled after 1 MiB
STREAM_LATE=zz-late.bin               # RUN_S's last member: 2 MiB, its data crosses the stall
STREAM_STALL_MS=${KERNEL_STREAM_STALL_MS:-6000}
BIG_FILE=$RUN_B/Data/Intensities/BaseCalls/Undetermined_S0_L001_R1_001.fastq.gz
BIG_DIR=$RUN_B/Thumbnail_Images/L001/C1.1
MID_FILE=$RUN_A/Data/Intensities/BaseCalls/Undetermined_S0_L002_R1_001.fastq.gz

RUN=$(mktemp -d "${TMPDIR:-/tmp}/tarnfs-kvm.XXXXXX") || die "mktemp failed"
mkdir -p "$RUN/ctl" "$RUN/src" "$RUN/nas" "$RUN/tree" "$RUN/cache" "$RUN/initrd"
CONSOLE=$RUN/console.log
SERVER_LOG=$RUN/server.log
HOST_RESULTS=$RUN/host-results    # "PASS|FAIL|SKIP name: why" lines decided on the host
: > "$HOST_RESULTS"; : > "$SERVER_LOG"; : > "$RUN/pids"
log() { echo "kernel-vm: +$SECONDS s: $*" >> "$RUN/harness.log"; }
host_result() { echo "$*" >> "$HOST_RESULTS"; }

# ---------------------------------------------------------------- teardown
SERVER_PID=""; QEMU_PID=""; AUX_PIDS=""
kill_pid() { # PID: TERM, then KILL after 5 s; only PIDs this harness recorded
	local pid=$1 i
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
}
kill_stragglers() { # socat/ctl.sh children of qemu were re-parented; find them by $RUN
	local p cmd
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" = $$ ] && continue
		cmd=$(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline") || continue
		case $cmd in
		socat*"$RUN"*|*ctl.sh\ "$RUN"*) kill_pid "$p" ;;
		esac
	done
}
teardown() {
	kill_pid "$QEMU_PID"
	[ -n "$SERVER_PID" ] && kill_pid "$SERVER_PID"
	local p; for p in $AUX_PIDS; do kill_pid "$p"; done
	kill_stragglers
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- guest kernel
pick_kver() {
	local v
	[ -n "${KERNEL_KVER:-}" ] && { echo "$KERNEL_KVER"; return; }
	for v in $(ls /boot/vmlinuz-* 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V -r); do
		[ -e "/lib/modules/$v/kernel/fs/nfs" ] && { echo "$v"; return; }
	done
}
KVER=$(pick_kver)
[ -n "$KVER" ] || die "no /boot/vmlinuz-* with NFS client modules: install linux-image-amd64"

extract_vmlinux() { # BZIMAGE OUT: the uncompressed kernel, as scripts/extract-vmlinux does
	local img=$1 out=$2 magic tool off
	for magic in 'xz:\xfd7zXZ\x00' 'gzip:\x1f\x8b\x08' 'zstd:\x28\xb5\x2f\xfd'; do
		tool=${magic%%:*}
		for off in $(LC_ALL=C grep -obUaP "${magic#*:}" "$img" | cut -d: -f1 | head -5); do
			tail -c +$((off + 1)) "$img" | "$tool" -dc > "$out.tmp" 2>/dev/null
			if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
				mv "$out.tmp" "$out"; return 0
			fi
		done
	done
	rm -f "$out.tmp"; return 1
}
KCACHE=$B/tests/kernel
mkdir -p "$KCACHE" || die "cannot create $KCACHE"
VMLINUX=$KCACHE/vmlinux-$KVER
if [ ! -s "$VMLINUX" ] || [ "/boot/vmlinuz-$KVER" -nt "$VMLINUX" ]; then
	extract_vmlinux "/boot/vmlinuz-$KVER" "$VMLINUX" || die "cannot extract vmlinux from /boot/vmlinuz-$KVER"
fi

# ---------------------------------------------------------------- test data
set_mtimes() { # DIR: deterministic, old, distinct mtimes, so a server answering "now" fails
	# perl (Debian's essential perl-base) does it in one process: there are thousands of names.
	find "$1" -depth -print0 | LC_ALL=C sort -z -r | perl -0 -ne '
		chomp; my $t = 1600000000 + $. * 613;
		if (-l $_) { system("touch", "-h", "-d", "\@$t", $_) == 0 or die "touch -h $_" }
		else { utime($t, $t, $_) or die "utime $_: $!" }'
}
add_kernel_extras_a() { # the odd corners the kernel client must see right
	local r=$1/$RUN_A
	mkdir -p "$r/hl" "$r/Logs/empty dir" "$r/deep" "$(dirname "$r/${MID_FILE#$RUN_A/}")"
	head -c 3145728 /dev/urandom > "$r/${MID_FILE#$RUN_A/}"
	ln "$r/InterOp/TileMetricsOut.bin" "$r/hl/tile-a"
	ln "$r/InterOp/TileMetricsOut.bin" "$r/hl/tile-b"
	ln "$r/SampleSheet.csv" "$r/hl/SampleSheet.csv"
	ln -s ../SampleSheet.csv "$r/Logs/latest-sheet.csv"
	ln -s Intensities/BaseCalls "$r/Data/current"
	ln -s ../InterOp/QMetricsOut.bin "$r/hl/q-link"
	ln -s /nonexistent/absolute/target "$r/abs-link"
	ln -s no/such/file "$r/dangling"
	echo "space and parens" > "$r/Sample Sheet (copy) v2.csv"
	echo "utf-8 name" > "$r/résumé-ñ.txt"
	echo "long name" > "$r/$(printf 'n%.0s' $(seq 200)).txt"
	local deep=$r/deep/$(printf 'level_%02d/' $(seq 12))
	mkdir -p "$deep" && echo "deep file" > "$deep/file with a long path.txt"
	printf '#!/bin/sh\necho run\n' > "$r/run.sh"; chmod 755 "$r/run.sh"
	chmod 444 "$r/RunInfo.xml"
	chmod 2775 "$r/Logs"
	echo "owned by 1000" > "$r/Logs/user-file.txt"; chown 1000:1000 "$r/Logs/user-file.txt"
}
add_kernel_extras_b() {
	local r=$1/$RUN_B i
	mkdir -p "$r/$(dirname "${BIG_FILE#$RUN_B/}")" "$r/${BIG_DIR#$RUN_B/}"
	head -c $((BIG_MB * 1048576)) /dev/urandom > "$r/${BIG_FILE#$RUN_B/}"
	for i in $(seq 1 "$BIG_DIR_ENTRIES"); do
		printf 'thumbnail %d\n' "$i" > "$r/${BIG_DIR#$RUN_B/}/s_1_$((1100 + i))_green.jpg"
	done
}
make_run() { # NAME LANES CYCLES TILES [genrun options]: a run folder from $B/genrun (mkrun.sh if absent)
	local name=$1 lanes=$2 cycles=$3 tiles=$4; shift 4
	if [ -x "$B/genrun" ] && [ -z "${KERNEL_NO_GENRUN:-}" ]; then
		"$B/genrun" -q --name "$name" --lanes "$lanes" --cycles "$cycles" --tiles "$tiles" \
			--file-size 8k "$@" "$RUN/src" >> "$RUN/harness.log" 2>&1 && return 0
		log "genrun failed for $name; using mkrun.sh"
	fi
	"$HERE/mkrun.sh" "$RUN/src" "$name" "$lanes" "$cycles" "$tiles"
}
make_data() {
	make_run "$RUN_A" 2 4 3 --extras && make_run "$RUN_B" 1 2 2 && make_run "$RUN_C" 1 2 1 &&
	make_run "$RUN_S" 1 2 1 || return 1
	add_kernel_extras_a "$RUN/src" && add_kernel_extras_b "$RUN/src" || return 1
	head -c 2097152 /dev/urandom > "$RUN/src/$RUN_S/$STREAM_LATE"
	set_mtimes "$RUN/src"
	tar -C "$RUN/src" -cf "$RUN/nas/$RUN_A.tar" "$RUN_A" &&
	tar -C "$RUN/src" -cf "$RUN/nas/$RUN_B.tar" "$RUN_B" &&
	tar -C "$RUN/src" -czf "$RUN/nas/$RUN_C.tar.gz" "$RUN_C" || return 1
	# RUN_S in name order: its small files fill the first MiB (what arrives before the
	# stall), STREAM_LATE comes last and its data crosses the stall.
	LC_ALL=C tar -C "$RUN/src" --sort=name -cf "$RUN/nas/$RUN_S.tar" "$RUN_S" || return 1
	[ "$(stat -c %s "$RUN/nas/$RUN_S.tar")" -lt $((3 * 1048576)) ] ||
		{ log "$RUN_S.tar: its small files do not fit in the first MiB"; return 1; }
	rm -rf "$RUN/src"
	# The expected tree is what `tar -x` makes of the tarballs: exactly what the tar holds.
	local t; for t in "$RUN"/nas/*; do tar -C "$RUN/tree" -xf "$t" || return 1; done
}

# ---------------------------------------------------------------- manifests
M=$RUN/initrd/etc/ktest
bb() { LC_ALL=C LANG=C TZ=UTC busybox "$@"; }
make_manifests() {
	mkdir -p "$M"
	(cd "$RUN/tree" && bb ls -lnR --full-time . | bb awk -f "$HERE/canon-ls.awk" | bb sort) > "$M/ls.expected"
	(cd "$RUN/tree" && bb find . | bb sort) > "$M/find.expected"
	(cd "$RUN/tree" && find "./$RUN_A" -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) > "$M/md5.run"
	(cd "$RUN/tree" && md5sum "./$BIG_FILE") > "$M/md5.big"
	(cd "$RUN/tree" && md5sum "./$MID_FILE") > "$M/md5.mid"
	# The indexed run's file the guest reads first: its first regular file of 4 KiB-1 MiB.
	(cd "$RUN/tree" && find "./$RUN_B" -type f -size +4k -size -1024k | LC_ALL=C sort | head -1 |
		xargs -r md5sum) > "$M/md5.indexed"
	[ -s "$M/md5.indexed" ] || return 1
	INDEXED_FILE=$(sed 's|^[0-9a-f]*  \./||' "$M/md5.indexed")
	# The streamed run's regular files in tar order: the guest reads them as they arrive.
	tar -tvf "$RUN/nas/$RUN_S.tar" | awk '$1 ~ /^-/ { print $6 }' |
		(cd "$RUN/tree" && while IFS= read -r p; do md5sum "./$p"; done) > "$M/md5.stream"
	[ "$(tail -1 "$M/md5.stream" | sed 's|.*/||')" = "$STREAM_LATE" ] || return 1
	(cd "$RUN/tree/$BIG_DIR" && bb ls -1A | bb sort) > "$M/bigdir.expected"
	(cd "$RUN/tree" && find . -type l -printf '%p\t%l\n' | LC_ALL=C sort) > "$M/symlinks"
	# Symlinks to a regular file inside the tree: reading through them must give its bytes.
	(cd "$RUN/tree" && find . -type l -xtype f -print0 | xargs -0 -r md5sum | LC_ALL=C sort) > "$M/md5.via-symlink"
	(cd "$RUN/tree" && find . -type f -links +1 -printf '%i\t%n\t%p\n' | LC_ALL=C sort) > "$M/hardlinks"
}
break_served_data() { # after the manifests: make the served copy differ from them
	local victim=$RUN_A/SampleSheet.csv
	case $BREAK in
	size) printf x >> "$RUN/tree/$victim" ;;
	mtime) touch -d @1234567890 "$RUN/tree/$RUN_A/RunParameters.xml" ;;
	*) die "unknown --break '$BREAK' (size, mtime)" ;;
	esac
	tar -C "$RUN/tree" -cf "$RUN/nas/$RUN_A.tar" "$RUN_A" || die "re-tar for --break failed"
	log "served data deliberately broken: $BREAK"
}

# ---------------------------------------------------------------- servers
# Each kind defines: srv_KIND_prepare (once), srv_KIND_cmd MODE (fills SRV_CMD, MODE = ro|rw),
# SRV_EXPORT (path the guest mounts), and sets SRV_CAN_EVICT / SRV_CAN_RW or leaves a reason.
SRV_EVICT_SKIP=""; SRV_RW_SKIP=""
# The index-first and streaming checks need the tarball namespace and its fetch counters.
SRV_INDEX_SKIP="only tarnfsd --source loads a run from its index"
SRV_STREAM_SKIP="only tarnfsd --source serves a run while its tarball streams in"
SRV_NAMESPACE=0   # 1: a tarball namespace, where runs not yet fetched show synthesised root attributes
tarnfsd_knows() { "$B/tarnfsd" --help 2>&1 | grep -q -- "$1"; }
srv_tarnfsd_common() { # WHEN_RW_SKIPPED: the reason to skip the rw checks, or ""
	[ -x "$B/tarnfsd" ] && [ -x "$B/tarnfs" ] || die "no $B/tarnfsd or $B/tarnfs: build first (make SAN=1 B=... build-all)"
	SRV_EXPORT=/
	case ${KERNEL_RW:-auto} in
	1) ;;
	0) SRV_RW_SKIP="KERNEL_RW=0" ;;
	*) SRV_RW_SKIP=$1 ;;
	esac
}
# NLM (issue 15): the guest's lockd finds tarnfsd's NLM through rpcbind on 10.0.2.100:111,
# forwarded to this one; tarnfsd registers NFS, MOUNT and NLM with it (ports 2049/20048 here
# and in the guest alike).  The guest runs its own rpcbind and rpc.statd (initramfs).
srv_nlm_rpcbind() {
	SRV_NLM_SKIP=""
	command -v rpcbind >/dev/null && command -v rpc.statd >/dev/null && command -v cc >/dev/null ||
		{ SRV_NLM_SKIP="rpcbind, rpc.statd or cc missing (make deps)"; return 0; }
	[ "$NFS_PORT" = 2049 ] || { SRV_NLM_SKIP="NLM needs the NFS port at 2049 (rpcbind's answer is the guest's port)"; return 0; }
	mkdir -p /run/rpcbind
	rpcbind -f -w >> "$RUN/rpcbind.log" 2>&1 &
	AUX_PIDS="$AUX_PIDS $!"; echo "rpcbind $!" >> "$RUN/pids"
	local i; for i in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
	[ -S /run/rpcbind.sock ] || SRV_NLM_SKIP="rpcbind did not start (log: $RUN/rpcbind.log)"
}
srv_tarnfsd_cache_prepare() {
	srv_tarnfsd_common ""   # a rw export writes straight into the KV cache (issue 3)
	srv_nlm_rpcbind
	local t
	for t in "$RUN"/nas/*; do
		"$B/tarnfs" ingest --cache "$RUN/cache" "$t" >> "$SERVER_LOG" 2>&1 || die "tarnfs ingest $t failed (see $SERVER_LOG)"
	done
	SRV_EVICT_SKIP="cache mode has no tarball source to fetch an evicted run again (needs --source)"
}
srv_tarnfsd_cache_cmd() {
	# Our own config: no_root_squash, because the guest reads (and writes) as root; and no
	# chance of picking up the host's /etc/tarnfs/tarnfs.conf.
	SRV_NAMESPACE=0
	echo "export / *($1,insecure,no_root_squash)" > "$RUN/tarnfs.conf"
	# The test runs are small: without this, prefetch = auto fetches them whole,
	# and the index-first reads below are what is under test.
	echo "prefetch_whole_below = 0" >> "$RUN/tarnfs.conf"
	# KERNEL_SERVER_CONF: more tarnfs.conf lines (say "prefetch = whole").
	[ -n "${KERNEL_SERVER_CONF:-}" ] && printf '%s\n' "$KERNEL_SERVER_CONF" >> "$RUN/tarnfs.conf"
	local rpcb=--no-rpcbind
	if [ -z "${SRV_NLM_SKIP-x}" ]; then
		# No statd on this side (the guest's reboot is not tested), and no grace period
		# (the guest locks right after each (re)start) but for the one restart that tests
		# reclaim (request restart-grace).
		printf 'statd = no\nnlm_grace = %s\n' "${NLM_GRACE_NEXT:-0}" >> "$RUN/tarnfs.conf"
		rpcb=
	fi
	SRV_CMD=("$B/tarnfsd" -f --config "$RUN/tarnfs.conf" --cache "$RUN/cache" $rpcb
		--nfs-port "$NFS_PORT" --mount-port "$MOUNT_PORT" --listen 127.0.0.1)
	# shellcheck disable=SC2206
	SRV_CMD+=(${KERNEL_SERVER_ARGS:-})
}
srv_tarnfsd_source_prepare() {
	# Writes into tarball runs need the writable namespace (issue 8); `tarnfs flush`, its
	# operator command, marks that it has landed.
	local rw_skip=""
	"$B/tarnfs" --help 2>&1 | grep -qw flush ||
		rw_skip="writable tarball namespace not there yet (issue 8: no tarnfs flush)"
	srv_tarnfsd_common "$rw_skip"
	srv_nlm_rpcbind
	"$B/tarnfs" cache --help 2>&1 | grep -qw evict ||
		SRV_EVICT_SKIP="tarnfs has no 'cache evict' yet"
	# RUN_B (the big file, the big directory) is served index-first (issue 11): its index
	# is built here as `tarnfs index` builds one for a collection, so the guest's reads of
	# it are byte-range fetches.  RUN_A (no index) and RUN_C (.tar.gz) take the
	# whole-tarball path.
	if "$B/tarnfs" index --help >/dev/null 2>&1; then
		"$B/tarnfs" index -q "$RUN/nas" "$RUN_B" >> "$SERVER_LOG" 2>&1 ||
			die "tarnfs index $RUN_B failed (see $SERVER_LOG)"
		SRV_INDEXED=$RUN_B
		SRV_INDEX_SKIP=""
	else
		SRV_INDEX_SKIP="tarnfs has no 'index' command"
	fi
	SRV_STREAM_SKIP=""
}
srv_tarnfsd_source_cmd() {
	srv_tarnfsd_cache_cmd "$1"
	SRV_NAMESPACE=1
	# RUN_S (no index) streams its first MiB, then the backend stalls (fault "stallmid",
	# doc/design.md): what the guest reads meanwhile is served while the run streams.
	SRV_CMD=(env "TARNFS_FAULT=stallmid:$STREAM_STALL_MS:1:$RUN_S.tar" "${SRV_CMD[@]}" --source "$RUN/nas")
}
srv_tarnfsd_source_evict() { "$B/tarnfs" cache evict --cache "$RUN/cache" "$1"; }
srv_tarnfsd_source_cached() { # NAME: is the run in the cache now?
	"$B/tarnfs" cache ls --cache "$RUN/cache" 2>/dev/null | awk -v n="$1" 'NR > 1 && $1 == n { f = 1 } END { exit !f }'
}
srv_ganesha_prepare() { # development stand-in: NFS-Ganesha's VFS FSAL over the extracted tree
	command -v ganesha.nfsd >/dev/null || die "ganesha.nfsd not installed"
	SRV_EXPORT=$RUN/tree
	SRV_EVICT_SKIP="ganesha has no run eviction"
	mkdir -p /run/rpcbind "$RUN/ganesha"
	rpcbind -f -w >> "$RUN/rpcbind.log" 2>&1 &
	AUX_PIDS="$AUX_PIDS $!"; echo "rpcbind $!" >> "$RUN/pids"
	local i; for i in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done
}
srv_ganesha_cmd() {
	local access=RO; [ "$1" = rw ] && access=RW
	cat > "$RUN/ganesha/ganesha.conf" <<-EOF
	NFS_CORE_PARAM { Protocols = 3; NFS_Port = $NFS_PORT; MNT_Port = $MOUNT_PORT;
	  Enable_NLM = false; Enable_RQUOTA = false; }
	NFSV4 { Graceless = true; RecoveryBackend = fs; }
	NFS_KRB5 { Active_krb5 = false; }
	EXPORT { Export_Id = 1; Path = $RUN/tree; Pseudo = /tree; Protocols = 3;
	  Transports = TCP; Access_Type = $access; Squash = No_Root_Squash;
	  SecType = sys; FSAL { Name = VFS; } }
	EOF
	SRV_CMD=(ganesha.nfsd -F -L /dev/stderr -f "$RUN/ganesha/ganesha.conf" -p "$RUN/ganesha/pid" -N NIV_EVENT)
}
srv_custom_prepare() {
	[ -n "${KERNEL_SERVER_CMD:-}" ] || die "--server custom needs KERNEL_SERVER_CMD"
	SRV_EXPORT=${KERNEL_EXPORT:-/}
	[ -n "${KERNEL_EVICT_CMD:-}" ] || SRV_EVICT_SKIP="no KERNEL_EVICT_CMD given"
	[ "${KERNEL_RW:-0}" = 1 ] || SRV_RW_SKIP="KERNEL_RW=1 not given for the custom server"
}
srv_custom_cmd() {
	SRV_NAMESPACE=${KERNEL_NAMESPACE:-0}
	SRV_CMD=(env MODE="$1" sh -c "$KERNEL_SERVER_CMD")
}
srv_custom_evict() { env RUN_NAME="$1" sh -c "$KERNEL_EVICT_CMD"; }
# The custom command and the hooks see these (doc/testing.md).
export NFS_PORT MOUNT_PORT RUN
export NAS=$RUN/nas CACHE=$RUN/cache TREE=$RUN/tree

AUTO_NOTE=""
if [ "$SERVER_KIND" = auto ]; then
	# The tarball namespace; the ingested cache only for a tarnfsd without --source.
	SERVER_KIND=tarnfsd-source
	if ! { [ -x "$B/tarnfsd" ] && tarnfsd_knows -- --source; }; then
		SERVER_KIND=tarnfsd-cache; AUTO_NOTE="tarnfsd has no --source"
	fi
fi
SRV=${SERVER_KIND//-/_}
declare -F "srv_${SRV}_cmd" >/dev/null || die "unknown server kind '$SERVER_KIND'"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
SERVER_MODE=ro; SERVER_STOP_FAILS=""
server_start() { # MODE: start the server and wait until both ports answer
	SERVER_MODE=$1
	"srv_${SRV}_cmd" "$1"
	echo "=== $(date -u +%T) start ($1): ${SRV_CMD[*]}" >> "$SERVER_LOG"
	"${SRV_CMD[@]}" >> "$SERVER_LOG" 2>&1 &
	SERVER_PID=$!; echo "server $SERVER_PID" >> "$RUN/pids"
	local i
	for i in $(seq 300); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		port_open "$NFS_PORT" && port_open "$MOUNT_PORT" && return 0
		sleep 0.1
	done
	log "server did not open ports $NFS_PORT/$MOUNT_PORT (see $SERVER_LOG)"
	kill_pid "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
	return 1
}
server_stop() { # SIGTERM, wait, keep the exit status: a clean shutdown is part of the test
	local pid=$SERVER_PID i status
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"; SERVER_STOP_FAILS="$SERVER_STOP_FAILS did-not-exit-in-30s"
	fi
	wait "$pid"; status=$?
	echo "=== $(date -u +%T) stopped, exit status $status" >> "$SERVER_LOG"
	# Each tarnfsd counts from zero and writes CACHE/stats as it exits: keep its counters.
	grep -qx "pid=$pid" "$RUN/cache/stats" 2>/dev/null && cat "$RUN/cache/stats" >> "$RUN/stats.all"
	[ "$status" = 0 ] || SERVER_STOP_FAILS="$SERVER_STOP_FAILS exit-status-$status"
	SERVER_PID=""
}

# ---------------------------------------------------------------- control requests
handle_request() { # REQUEST: runs on the host while the guest waits; prints the answer
	local words; read -r -a words <<< "$1"
	case ${words[0]:-} in
	restart)
		server_stop; server_start "$SERVER_MODE" && echo OK || echo "ERR server did not come back" ;;
	restart-grace) # SECONDS: restart with an NLM grace period, as after a crash
		NLM_GRACE_NEXT=${words[1]}; server_stop
		server_start "$SERVER_MODE" && echo OK || echo "ERR server did not come back"
		NLM_GRACE_NEXT="" ;;
	evict)
		if [ -n "$SRV_EVICT_SKIP" ]; then echo "ERR $SRV_EVICT_SKIP"
		elif ! "srv_${SRV}_evict" "${words[1]}" >> "$SERVER_LOG" 2>&1; then
			echo "ERR evict ${words[1]} failed (see server log)"
		elif declare -F "srv_${SRV}_cached" >/dev/null && "srv_${SRV}_cached" "${words[1]}"; then
			echo "ERR ${words[1]} is still listed in the cache after the evict"
		else echo OK; fi ;;
	cached) # NAME: yes, no, or unknown when the server kind cannot tell
		if ! declare -F "srv_${SRV}_cached" >/dev/null; then echo unknown
		elif "srv_${SRV}_cached" "${words[1]}"; then echo yes
		else echo no; fi ;;
	rw)
		server_stop; server_start rw && echo OK || echo "ERR server did not come back rw" ;;
	verify-rw)
		verify_rw "${words[1]}" "${words[2]}" ;;
	indexed-fetches)
		indexed_fetches "${words[1]}" "${words[2]}" ;;
	stream-state)
		stream_state "${words[1]}" ;;
	*) echo "ERR unknown request '$1'" ;;
	esac
}
verify_rw() { # DIR MD5: what the guest wrote (see guest check rw-operations), seen by the host
	local dir=$1 md5=$2 names f1 h1 nlink link written_back=""
	if [ "$SRV" = ganesha ]; then
		names=$(cd "$RUN/tree/$dir" && ls -A | LC_ALL=C sort | tr '\n' ' ')
		f1=$(md5sum < "$RUN/tree/$dir/f1" | cut -d' ' -f1)
		h1=$(md5sum < "$RUN/tree/$dir/h1" | cut -d' ' -f1)
		nlink=$(stat -c %h "$RUN/tree/$dir/f1")
		link=$(readlink "$RUN/tree/$dir/s1")
	else
		# Stop the server: the operator tool reads what tarnfsd committed to the cache.
		server_stop
		names=$("$B/tarnfs" ls --cache "$RUN/cache" "/$dir" 2>&1 | LC_ALL=C sort | tr '\n' ' ')
		f1=$("$B/tarnfs" cat --cache "$RUN/cache" "/$dir/f1" | md5sum | cut -d' ' -f1)
		h1=$("$B/tarnfs" cat --cache "$RUN/cache" "/$dir/h1" | md5sum | cut -d' ' -f1)
		nlink=$("$B/tarnfs" ls -l --cache "$RUN/cache" "/$dir" 2>&1 | awk '$NF == "f1" && $(NF - 1) != "->" { print $2 }')
		link=$("$B/tarnfs" ls -l --cache "$RUN/cache" "/$dir" 2>&1 | sed -n 's/.* s1 -> //p')
		if [ "$SRV_NAMESPACE" = 1 ] && [ "$names" = "f1 h1 keep s1 " ]; then
			# A clean shutdown writes a dirty run back (issue 8): the tarball must hold it.
			local run=${dir%%/*} tarball
			tarball=$(ls "$RUN/nas/$run".tar* 2>/dev/null | head -1)
			[ "$(tar -xOf "$tarball" "$dir/f1" 2>/dev/null | md5sum | cut -d' ' -f1)" = "$md5" ] ||
				written_back="${tarball:-the NAS tarball} does not hold $dir/f1 after the server stopped"
		fi
		server_start "$SERVER_MODE" || { echo "ERR server did not come back after verifying"; return; }
	fi
	if [ "$names" != "f1 h1 keep s1 " ]; then echo "ERR host sees names '$names', expected 'f1 h1 keep s1'"
	elif [ "$f1" != "$md5" ] || [ "$h1" != "$md5" ]; then echo "ERR host reads f1 $f1, h1 $h1, guest wrote $md5"
	elif [ "$nlink" != 2 ]; then echo "ERR host sees f1 with nlink '$nlink', expected 2"
	elif [ "$link" != f1 ]; then echo "ERR host sees s1 -> '$link', expected f1"
	elif [ -n "$written_back" ]; then echo "ERR $written_back"
	else echo OK; fi
}
stat_of() { sed -n "s/^$1=//p" "$RUN/cache/stats" 2>/dev/null; }
indexed_fetches() { # RUN FILE: the guest has read FILE, its first touch of the indexed RUN
	# tarnfsd rewrites CACHE/stats about once a second: wait for one written after the read.
	local run=$1 file=$2 t0 i ixf rgf rgb bf isz tsz fsz chunks
	t0=$(date +%s)
	for i in $(seq 50); do [ "$(stat_of updated)" -gt "$t0" ] 2>/dev/null && break; sleep 0.1; done
	[ "$(stat_of updated)" -gt "$t0" ] 2>/dev/null || { echo "ERR no fresh $RUN/cache/stats within 5 s"; return; }
	ixf=$(stat_of index_fetches); rgf=$(stat_of range_fetches); rgb=$(stat_of range_bytes)
	bf=$(stat_of bytes_fetched)
	isz=$(stat -c %s "$RUN/nas/$run.tar.tarnfs-index"); tsz=$(stat -c %s "$RUN/nas/$run.tar")
	fsz=$(stat -c %s "$RUN/tree/$file")
	chunks=$(( (fsz + 1048575) / 1048576 * 1048576 ))   # the file's own 1 MiB chunks
	local got="index_fetches=$ixf range_fetches=$rgf range_bytes=$rgb bytes_fetched=$bf"
	if [ "$ixf" != 1 ]; then echo "ERR $got: expected exactly 1 index GET"
	elif [ "$rgf" -lt 1 ] || [ "$rgb" -lt "$fsz" ] || [ "$rgb" -gt "$chunks" ]; then
		echo "ERR $got: expected the file's $fsz bytes by range (at most $chunks)"
	elif [ "$bf" != $((isz + rgb)) ]; then
		echo "ERR $got: expected the $isz-byte index plus the ranges, nothing else"
	elif [ $((bf * 10)) -ge "$tsz" ]; then echo "ERR $got: not well below the $tsz-byte tarball"
	else echo "OK $isz-byte index + $rgf range GET of $rgb bytes = $bf of the $tsz-byte tarball"; fi
}
stream_state() { # RUN: streaming (load begun, not ended), ended, or unclear, as the host sees it
	# A streamed run is published (listed by tarnfs cache ls) and logged ("fetched run
	# R ...") only once its stream has ended.
	local run=$1 line cached=no
	srv_tarnfsd_source_cached "$run" && cached=yes
	line=$(grep -a "vfs: fetched run $run " "$SERVER_LOG" | tail -1)
	if [ -z "$line" ] && [ $cached = no ]; then
		echo "streaming: not in tarnfs cache ls, no 'fetched run' in the server log"
	elif [ -n "$line" ] && [ $cached = yes ]; then echo "ended: ${line##*): }"
	else echo "unclear: cached=$cached, log: ${line:-no fetched line}"; fi
}
serve_requests() { # in the main shell, never in $(...): server_start must update SERVER_PID here
	local req id
	for req in "$RUN"/ctl/*.req; do
		[ -e "$req" ] || return 0
		id=${req%.req}
		handle_request "$(cat "$req")" > "$id.answer" 2>> "$RUN/harness.log"
		log "request '$(cat "$req")' -> $(tail -1 "$id.answer")"
		rm -f "$req"
		tail -1 "$id.answer" > "$id.tmp" && mv "$id.tmp" "$id.done"
	done
}

# ---------------------------------------------------------------- initramfs
shell_assign() { printf "%s='%s'\n" "$1" "$(printf %s "$2" | sed "s/'/'\\\\''/g")"; }
guest_value() { # VAR MOUNT_OPTS: what /etc/ktest/config tells the guest
	case $1 in
	EXPORT) echo "${KERNEL_EXPORT:-$SRV_EXPORT}" ;;
	MOUNT_OPTS) echo "$2" ;;
	EVICT_SKIP) echo "$SRV_EVICT_SKIP" ;;
	RW_SKIP) echo "$SRV_RW_SKIP" ;;
	INDEX_SKIP) echo "$SRV_INDEX_SKIP" ;;
	STREAM_SKIP) echo "$SRV_STREAM_SKIP" ;;
	NAMESPACE) echo "$SRV_NAMESPACE" ;;
	NLM_SKIP) echo "${SRV_NLM_SKIP-the server under test does not serve NLM}" ;;
	NLM_GRACE_S) echo 15 ;;
	ONLY) echo "${KERNEL_ONLY:-}" ;;
	*) eval "echo \"\$$1\"" ;;
	esac
}
# The guest's locking needs its own rpcbind and rpc.statd (the kernel's lockd monitors the
# server through statd before its first lock): Debian's binaries, their libraries, and the
# few files they read; nlmlock takes the locks.
guest_nlm_tools() { # INITRD_DIR
	local d=$1 f lib
	cc -static -O2 -std=c11 -D_GNU_SOURCE -o "$d/usr/bin/nlmlock" "$HERE/nlmlock.c" 2>> "$RUN/harness.log" || return 1
	# The tlocklfs-style battery; without it only nlm-record-locks-tlocklfs-style fails.
	cc -static -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$d/usr/bin/lockcheck" "$HERE/lockcheck.c" \
		2>> "$RUN/harness.log" || log "lockcheck.c did not build: nlm-record-locks-tlocklfs-style will fail"
	mkdir -p "$d/lib64" "$d/lib/x86_64-linux-gnu" "$d/run/rpcbind" "$d/var/lib/nfs/sm" \
		"$d/var/lib/nfs/sm.bak" "$d/etc"
	ln -sfn /run "$d/var/run"       # the kernel finds rpcbind at /var/run/rpcbind.sock
	for f in "$(command -v rpcbind)" "$(command -v rpc.statd)" "$(command -v rpcinfo)"; do
		cp "$f" "$d/usr/sbin/" || return 1
		for lib in $(ldd "$f" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
			cp -L "$lib" "$d$lib" 2>/dev/null || { mkdir -p "$d$(dirname "$lib")" && cp -L "$lib" "$d$lib"; } || return 1
		done
	done
	cp /etc/netconfig /etc/services /etc/protocols "$d/etc/" || return 1
	printf 'root:x:0:0::/:/bin/sh\n_rpc:x:102:65534::/run/rpcbind:/bin/false\nstatd:x:103:65534::/var/lib/nfs:/bin/false\n' > "$d/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$d/etc/group"
	printf '127.0.0.1 localhost\n10.0.2.15 ktest\n' > "$d/etc/hosts"
	printf 'hosts: files\npasswd: files\ngroup: files\n' > "$d/etc/nsswitch.conf"
}
make_initramfs() {
	local d=$RUN/initrd m src
	mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,mnt,lib/modules,etc/ktest}
	cp /bin/busybox "$d/bin/busybox"
	mknod -m 600 "$d/dev/console" c 5 1 && mknod -m 666 "$d/dev/null" c 1 3 || return 1
	cp "$HERE/guest-init.sh" "$d/init" && chmod 755 "$d/init"
	cp "$HERE/canon-ls.awk" "$HERE/checks.list" "$d/etc/ktest/"
	: > "$d/etc/ktest/modules"
	for src in $(modprobe -S "$KVER" -a --show-depends nfsv3 virtio_net virtio_pci |
	             awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++'); do
		m=$(basename "$src"); m=${m%.xz}; m=${m%.zst}
		case $src in
		*.xz) xz -dc "$src" > "$d/lib/modules/$m" ;;
		*.zst) zstd -qdc "$src" > "$d/lib/modules/$m" ;;
		*) cp "$src" "$d/lib/modules/$m" ;;
		esac || return 1
		echo "$m" >> "$d/etc/ktest/modules"
	done
	if [ -z "${SRV_NLM_SKIP-x}" ]; then
		guest_nlm_tools "$d" || SRV_NLM_SKIP="could not put rpcbind, rpc.statd and nlmlock into the initramfs"
	fi
	# The POSIX battery, static like nlmlock: the initramfs has no libc.
	cc -static -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$d/usr/bin/posixcheck" "$HERE/posixcheck.c" \
		2>> "$RUN/harness.log" || log "posixcheck.c did not build: posix-semantics-on-rw-export will fail"
	local opts="vers=3,proto=tcp,port=2049,mountport=20048,mountproto=tcp,nolock"
	[ -n "${KERNEL_MOUNT_OPTS:-}" ] && opts="$opts,$KERNEL_MOUNT_OPTS"
	local var
	for var in EXPORT MOUNT_OPTS RUN_A RUN_B RUN_C RUN_S BIG_FILE BIG_DIR MID_FILE INDEXED_FILE \
	           EVICT_SKIP RW_SKIP INDEX_SKIP STREAM_SKIP NAMESPACE NLM_SKIP NLM_GRACE_S ONLY; do
		shell_assign "$var" "$(guest_value "$var" "$opts")"
	done > "$d/etc/ktest/config"
	(cd "$d" && find . | cpio -o -H newc --quiet) > "$RUN/initramfs.cpio"
}

# ---------------------------------------------------------------- the run
T_START=$(date +%s)
make_data || die "test data generation failed"
log "test data ready"
make_manifests || die "manifest generation failed"
log "manifests ready"
[ -n "$BREAK" ] && break_served_data
"srv_${SRV}_prepare"
server_start ro || die "the server did not start (log: $SERVER_LOG)"
[ -n "$AUTO_NOTE" ] && SRV_EVICT_SKIP="needs the tarball namespace ($AUTO_NOTE)"
make_initramfs || die "initramfs build failed"
log "data+initramfs ready after $(( $(date +%s) - T_START ))s; server $SERVER_KIND"

socat_fwd() { echo "cmd:socat -lf $RUN/socat.log - TCP:127.0.0.1:$1"; }
start_qemu() { # ACCEL
	: > "$CONSOLE"
	qemu-system-x86_64 -accel "$1" -m 1024 -smp 1 -nodefaults -display none -no-reboot \
		-kernel "$VMLINUX" -initrd "$RUN/initramfs.cpio" \
		-append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init" \
		-chardev "file,id=con,path=$CONSOLE" -serial chardev:con \
		-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:111-$(socat_fwd 111),guestfwd=tcp:10.0.2.100:2049-$(socat_fwd "$NFS_PORT"),guestfwd=tcp:10.0.2.100:20048-$(socat_fwd "$MOUNT_PORT"),guestfwd=tcp:10.0.2.100:7000-cmd:$HERE/ctl.sh $RUN" \
		-device virtio-net-pci,netdev=n0 >> "$RUN/qemu.log" 2>&1 &
	QEMU_PID=$!; echo "qemu $QEMU_PID ($1)" >> "$RUN/pids"
}
# TCG always works; KVM only where the CPU really offers VMX/SVM (on PVM hosts a stock
# kernel hangs under KVM), and only if the guest then boots within 30 s.
accel=${KERNEL_ACCEL:-auto}
if [ "$accel" = auto ]; then
	accel=tcg
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
		start_qemu kvm
		for i in $(seq 150); do grep -q 'KTEST: BOOTED' "$CONSOLE" && break; sleep 0.2; done
		if grep -q 'KTEST: BOOTED' "$CONSOLE"; then accel=kvm
		else log "kvm guest did not boot in 30 s; using tcg"; kill_pid "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; kill_stragglers; fi
	fi
fi
[ "$accel" = kvm ] && [ -n "$QEMU_PID" ] || start_qemu "$accel"
log "qemu running with $accel"

deadline=$(( $(date +%s) + TIMEOUT ))
outcome=timeout
SERVER_DIED=""
while :; do
	serve_requests
	if grep -q 'KTEST: DONE' "$CONSOLE" 2>/dev/null; then outcome=done; break; fi
	kill -0 "$QEMU_PID" 2>/dev/null || { outcome=qemu-exited; break; }
	if [ -z "$SERVER_DIED" ] && [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
		wait "$SERVER_PID"; SERVER_DIED="exited by itself with status $? at $(date -u +%T)"
		echo "=== $(date -u +%T) server $SERVER_DIED" >> "$SERVER_LOG"
		SERVER_PID=""
		# A hard mount waits forever for a dead server: give the guest a little while to
		# report what it saw, not the whole timeout.
		deadline=$(( $(date +%s) + 20 ))
	fi
	[ "$(date +%s)" -ge "$deadline" ] && break
	sleep 0.2
done
for i in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done  # poweroff
kill_pid "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null; QEMU_PID=""
log "guest $outcome"
server_stop
kill_stragglers
log "torn down"

# ---------------------------------------------------------------- verdict
case $outcome in
done) host_result "PASS guest-reported-verdict" ;;
timeout) if [ -n "$SERVER_DIED" ]; then host_result "FAIL guest-reported-verdict: the guest did not finish after the server died"
	else host_result "FAIL guest-reported-verdict: no 'KTEST: DONE' within ${TIMEOUT}s"; fi ;;
*) host_result "FAIL guest-reported-verdict: qemu exited before the guest finished" ;;
esac
if [ -n "$SERVER_DIED" ]; then
	host_result "FAIL server-stays-up: it $SERVER_DIED"
else
	host_result "PASS server-stays-up"
fi
if [ -n "$SERVER_STOP_FAILS" ]; then
	host_result "FAIL server-stops-cleanly: SIGTERM gave$SERVER_STOP_FAILS"
else
	host_result "PASS server-stops-cleanly"
fi
if [ -n "${SRV_INDEXED:-}" ] && [ -n "${KERNEL_ONLY:-}" ]; then
	host_result "SKIP indexed-run-served-by-range: KERNEL_ONLY given"
elif [ -n "${SRV_INDEXED:-}" ]; then
	# The guest read every file of the indexed run against its md5 manifest; here: it was
	# served by ranges (the stats each tarnfsd wrote at exit, summed), not by fetching its tarball.
	sum_of() { awk -F= -v k="$1" '$1 == k { n += $2 } END { print n + 0 }' "$RUN/stats.all" 2>/dev/null; }
	ixf=$(sum_of index_fetches); rgf=$(sum_of range_fetches); rgb=$(sum_of range_bytes)
	if [ "${ixf:-0}" -ge 1 ] && [ "${rgf:-0}" -ge 1 ]; then
		host_result "PASS indexed-run-served-by-range: $SRV_INDEXED: $ixf index GETs, $rgf range GETs, $rgb bytes"
	else
		host_result "FAIL indexed-run-served-by-range: $SRV_INDEXED: index_fetches=${ixf:-?} range_fetches=${rgf:-?}"
	fi
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$SERVER_LOG"; then
	host_result "FAIL server-sanitizers-quiet: sanitizer report in the server log"
else
	host_result "PASS server-sanitizers-quiet"
fi

tr -d '\r' < "$CONSOLE" 2>/dev/null > "$RUN/console.txt"
pass=0; fail=0; skip=0
verdict() { # STATUS LINE
	echo "$2"
	case $1 in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; SKIP) skip=$((skip + 1)) ;; esac
}
running=""
while IFS= read -r name; do
	case $name in ''|'#'*) continue ;; esac
	name=${name%%[[:space:]]*}
	line=$(grep -aE "^KTEST: (PASS|FAIL|SKIP) $name( |:|$)" "$RUN/console.txt" | tail -1)
	if [ -n "$line" ]; then
		verdict "$(echo "$line" | cut -d' ' -f2)" "${line#KTEST: }"
		if [ "$(echo "$line" | cut -d' ' -f2)" = FAIL ]; then
			grep -a "^KTEST: DETAIL $name:" "$RUN/console.txt" | sed 's/^KTEST: DETAIL [^:]*:/    /' | head -20
		fi
	elif grep -aq "^KTEST: BEGIN $name\$" "$RUN/console.txt"; then
		verdict FAIL "FAIL $name: started but never finished (hung or guest died; see console)"
	else
		verdict FAIL "FAIL $name: never reported"
	fi
done < "$HERE/checks.list"
while IFS= read -r line; do verdict "${line%% *}" "$line"; done < "$HOST_RESULTS"
sed -n 's/^KTEST: BOOTED \(.*\)/guest kernel \1 (guest uptime)/p; s/^KTEST: DONE at \(.*\)/guest finished at \1/p' "$RUN/console.txt"
echo "kernel VM against $SERVER_KIND${AUTO_NOTE:+ ($AUTO_NOTE)}, kernel $KVER, $(( $(date +%s) - T_START ))s"
echo "$pass passed, $fail failed, $skip skipped"
if [ "$fail" -gt 0 ] || [ "$KEEP" = 1 ]; then
	echo "kept: $RUN"
	echo "  console log: $CONSOLE"
	echo "  server log:  $SERVER_LOG"
	echo "  harness log: $RUN/harness.log"
else
	rm -rf "$RUN"
fi
[ "$fail" -eq 0 ]
