#!/usr/bin/env bash
# e2e.sh: end-to-end ingest test: generate a run folder, tar it with GNU tar
# (pax, GNU+gzip, zstd through stdin), ingest each with `tarnfs ingest`, then
# compare every file's bytes (tarnfs cat) and attributes (tarnfs ls -l -R:
# mode, nlink, uid, gid, size, mtime) with the source tree; then the CLI's
# error cases (bad flag, missing cache, wrong path: clear message, non-zero
# exit).  Env: B (build dir), TARNFS_ROOT (repo).
set -u
cd "${TARNFS_ROOT:-.}" || exit 1
B="${B:-build-san}"
TARNFS="$B/tarnfs"
GENRUN="$B/genrun"
. tests/lib.sh
for p in "$TARNFS" "$GENRUN"; do
  [ -x "$p" ] || die "e2e: missing $p (make build-all test-programs)"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/tarnfs-e2e.XXXXXX")
trap 'rm -rf "$W"' EXIT
C="$W/cache"
RUN=241023_A01295_0432_BHK3NFDRX5
export TZ=UTC LC_ALL=C


# --- the source tree and its tarballs ------------------------------------
"$GENRUN" -q --lanes 2 --cycles 6 --tiles 4 --file-size 48k --extras "$W/src"
tar -C "$W/src" --format=posix -cf "$W/$RUN.tar" "$RUN"
tar -C "$W/src" --format=gnu -czf "$W/gnu-gz.tar.gz" "$RUN"
tar -C "$W/src" --format=posix --zstd -cf "$W/z.tar.zst" "$RUN"

# expected_listing DIR PREFIX SECS_ONLY: one line per entry under DIR
# (DIR itself as PREFIX): path mode nlink uid gid size(-for dirs) mtime link
expected_listing() {
  (cd "$1" && find . -printf '%P\t%M\t%n\t%U\t%G\t%s\t%TY-%Tm-%Td %TH:%TM:%TS\t%l\n') |
  awk -F'\t' -v pre="$2" -v secs="$3" 'BEGIN { OFS = "\t" } {
    path = ($1 == "") ? pre : pre "/" $1
    size = (substr($2, 1, 1) == "d") ? "-" : $6
    split($7, t, ".")
    frac = secs ? "000000000" : substr(t[2] "000000000", 1, 9)
    print path, $2, $3, $4, $5, size, t[1] "." frac, $8 }' | sort
}

# actual_listing RUNPATH SECS_ONLY: the same, from tarnfs ls -l -R (and the
# run root's own line from ls -l of its parent).
actual_listing() {
  local runpath=$1 secs=$2 parent base
  parent=$(dirname "$runpath"); base=$(basename "$runpath")
  {
    "$TARNFS" ls -l --cache "$C" "$parent" | awk -v want="$base" -v dir="$parent" '
      { name = $9; for (i = 10; i <= NF; i++) name = name " " $i }
      name == want { print "@" dir; print }' | head -2
    "$TARNFS" ls -l -R --cache "$C" "$runpath"
  } | awk -v secs="$2" -v root="$runpath" 'BEGIN { OFS = "\t"; dir = "" }
    /^\/.*:$/ { dir = substr($0, 1, length($0) - 1); next }
    /^@/      { dir = substr($0, 2); next }
    NF == 0   { next }
    {
      name = $9; for (i = 10; i <= NF; i++) name = name " " $i
      link = ""
      if (substr($1, 1, 1) == "l") { n = index(name, " -> "); link = substr(name, n + 4); name = substr(name, 1, n - 1) }
      path = (dir == "/" ? "" : dir) "/" name
      size = (substr($1, 1, 1) == "d") ? "-" : $5
      split($7, t, ".")
      frac = secs ? "000000000" : t[2]
      print path, $1, $2, $3, $4, size, $6 " " t[1] "." frac, link }' | sort
}

# compare_run SRCDIR RUNPATH SECS_ONLY LABEL
compare_run() {
  local src=$1 runpath=$2 secs=$3 label=$4
  expected_listing "$src" "$runpath" "$secs" > "$W/want"
  actual_listing "$runpath" "$secs" > "$W/got"
  local n; n=$(wc -l < "$W/want")
  if [ "$n" -gt 100 ] && diff -u "$W/want" "$W/got" > "$W/diff"; then
    ok "$label: attributes of all $n entries match (mode nlink uid gid size mtime links)"
  else
    bad "$label: attributes differ from the source tree"; head -40 "$W/diff"
  fi
  local bad=0 files=0 f
  while IFS= read -r -d '' f; do
    files=$((files+1))
    if ! "$TARNFS" cat --cache "$C" "$runpath/${f#./}" | cmp -s - "$src/$f"; then
      bad=$((bad+1)); echo "  bytes differ: $f"
    fi
  done < <(cd "$src" && find . -type f -print0)
  if [ "$bad" -eq 0 ] && [ "$files" -gt 50 ]; then
    ok "$label: bytes of all $files files match"
  else
    bad "$label: $bad of $files files differ"
  fi
}

# --- ingest and compare -----------------------------------------------------
if out=$("$TARNFS" ingest --cache "$C" "$W/$RUN.tar" 2>&1) &&
   echo "$out" | grep -q "top directory became the run root"; then
  ok "pax tarball of NAME/ ingests as /NAME (top directory is the run root)"
else
  bad "pax ingest: $out"
fi
compare_run "$W/src/$RUN" "/$RUN" 0 "pax, nanosecond mtimes"

if "$TARNFS" ingest --cache "$C" "$W/gnu-gz.tar.gz" >/dev/null 2>"$W/err"; then
  ok "GNU-format gzip tarball named differently ingests as /gnu-gz"
else
  bad "gnu gzip ingest: $(cat "$W/err")"
fi
compare_run "$W/src/$RUN" "/gnu-gz/$RUN" 1 "GNU+gzip, members kept under /gnu-gz/NAME"

if "$TARNFS" ingest -q - "$RUN" --cache "$C" < "$W/z.tar.zst" 2>"$W/err"; then
  ok "zstd tarball from stdin replaces /NAME (options after positionals)"
else
  bad "stdin ingest: $(cat "$W/err")"
fi
compare_run "$W/src/$RUN" "/$RUN" 0 "zstd via stdin"

if "$TARNFS" cache ls --cache "$C" | grep -q "^$RUN "; then
  ok "cache ls lists the run"
else
  bad "cache ls does not list $RUN"
fi

nruns=$("$TARNFS" cache ls --cache "$C" | tail -n +2 | wc -l)
if "$TARNFS" cache stats --cache "$C" > "$W/cstats" &&
   grep -q "^runs  *$nruns\$" "$W/cstats" && grep -q '^inodes_used  *[1-9]' "$W/cstats" &&
   grep -q '^server  *none' "$W/cstats"; then
  ok "cache stats counts the runs cache ls lists and says no server has used the cache"
else
  bad "cache stats: $(cat "$W/cstats")"
fi

# --- GNU tar sparse members stay sparse ----------------------------------------
mkdir -p "$W/sparse/sp"
truncate -s 10M "$W/sparse/sp/holes.bin"
printf 'middle' | dd of="$W/sparse/sp/holes.bin" bs=1 seek=5000000 conv=notrunc 2>/dev/null
for fmt in gnu posix; do
  tar -C "$W/sparse" -S --format=$fmt -cf "$W/sp.tar" sp
  if "$TARNFS" ingest -q --cache "$W/spc-$fmt" "$W/sp.tar" &&
     "$TARNFS" cat --cache "$W/spc-$fmt" /sp/holes.bin | cmp -s - "$W/sparse/sp/holes.bin" &&
     used=$("$TARNFS" cache ls --cache "$W/spc-$fmt" | awk '$1 == "sp" { print $2 }') &&
     [ "$used" -lt 1048576 ]; then
    ok "tar -S --format=$fmt: a 10 MiB sparse file reads back right and takes $used bytes"
  else
    bad "tar -S --format=$fmt sparse member (stored: ${used:-?} bytes)"
  fi
done

# --- CLI errors: clear message, non-zero exit --------------------------------
# expect_fail LABEL PATTERN CMD...: CMD must exit non-zero with PATTERN on stderr.
expect_fail() {
  local label=$1 pattern=$2; shift 2
  "$@" >/dev/null 2>"$W/err"; local rc=$?
  if [ $rc -ne 0 ] && grep -q -- "$pattern" "$W/err"; then
    ok "$label (exit $rc: $(head -1 "$W/err"))"
  else
    bad "$label: exit $rc, stderr: $(cat "$W/err")"
  fi
}
expect_fail "a bad flag is refused" "unknown option '--frobnicate'" "$TARNFS" ls --frobnicate --cache "$C" /
expect_fail "an unknown command is refused" "unknown command" "$TARNFS" frobnicate
expect_fail "a missing cache directory is named" "does not exist" "$TARNFS" ls --cache "$W/no-such-cache" /
expect_fail "no --cache at all is explained" "no cache directory" env -u TARNFS_CACHE TARNFS_CONFIG="$W/no-such.conf" "$TARNFS" cat "/$RUN/RunInfo.xml"
printf '# as tarnfsd reads it\nexport / 127.0.0.1(ro)\ncache = %s\n' "$C" > "$W/tool.conf"
if env -u TARNFS_CACHE TARNFS_CONFIG="$W/tool.conf" "$TARNFS" cat "/$RUN/RunInfo.xml" 2>"$W/err" | cmp -s - "$W/src/$RUN/RunInfo.xml"; then
  ok "with no --cache, the tool takes the cache from tarnfs.conf (TARNFS_CONFIG)"
else
  bad "the config file's cache setting was not used: $(cat "$W/err")"
fi
printf 'source = /x\n' > "$W/nocache.conf"
expect_fail "a config file without a cache setting is named" "has no cache setting" env -u TARNFS_CACHE TARNFS_CONFIG="$W/nocache.conf" "$TARNFS" ls /
printf 'cache = %s\nopen_runs = 0\n' "$C" > "$W/badvalue.conf"
expect_fail "a bad value in the config is named as tarnfsd names it" "^tarnfs ls: .*badvalue.conf:2: bad value '0' for open_runs: must be between 1 and 65536" env -u TARNFS_CACHE TARNFS_CONFIG="$W/badvalue.conf" "$TARNFS" ls /
expect_fail "a wrong path is named" "No such file or directory" "$TARNFS" ls --cache "$C" "/$RUN/No/Such/Dir"
expect_fail "a missing run is named" "No such file or directory" "$TARNFS" cat --cache "$C" /no-such-run/x
expect_fail "a relative path is refused" "not an absolute tarnfs path" "$TARNFS" ls --cache "$C" "$RUN"
expect_fail "cat of a directory is refused" "Is a directory" "$TARNFS" cat --cache "$C" "/$RUN/Data"
expect_fail "a missing tarball is named" "cannot open" "$TARNFS" ingest --cache "$C" "$W/no-such.tar"
head -c 300000 "$W/$RUN.tar" > "$W/cut.tar"
expect_fail "a truncated tarball fails naming the member" "member '$RUN/" "$TARNFS" ingest --cache "$C" "$W/cut.tar"
if "$TARNFS" ls --cache "$C" / | grep -qx cut; then
  bad "a failed ingest left /cut behind"
else
  ok "a failed ingest leaves nothing behind"
fi
expect_fail "evicting a missing run is refused" "no run" "$TARNFS" cache evict --cache "$C" no-such-run

for cmd in "" ingest ls cat cache; do
  if "$TARNFS" $cmd --help | grep -q "^usage: tarnfs"; then
    ok "tarnfs ${cmd:+$cmd }--help prints usage"
  else
    bad "tarnfs ${cmd:+$cmd }--help"
  fi
done

if "$TARNFS" cache evict --cache "$C" "$RUN" >/dev/null &&
   ! "$TARNFS" ls --cache "$C" "/$RUN" >/dev/null 2>&1; then
  ok "cache evict removes the run"
else
  bad "cache evict"
fi

summary e2e
