# s3.sh: the S3 part of 60-convert (sourced after the in-place checks, which
# left RUN1..RUN3 with in-place tarballs): converts to a real Ceph RGW
# started by tests/s3/rgw-start.sh and stopped by its recorded PIDs.

S3TOOL="$B/tests/s3/s3tool"
rgw_missing=""
for p in ceph-mon ceph-osd radosgw radosgw-admin; do
  command -v $p >/dev/null || rgw_missing="$rgw_missing $p"
done
[ -x "$S3TOOL" ] || rgw_missing="$rgw_missing s3tool($S3TOOL)"
[ -x "$B/tests/convert/convert_fault" ] || rgw_missing="$rgw_missing convert_fault"

s3_start() {
  local try
  for try in 1 2 3; do
    RGW_DIR=$(mktemp -d /tmp/tarnfs-60-rgw.XXXXXX)
    export RGW_DIR
    RGW_MEM_MB=1024 "$ROOT/tests/s3/rgw-start.sh" > /dev/null && break
    # rgw-start.sh's own retry reuses its directory (stale monmap): a fresh
    # directory for each of our tries
    tail -20 "$RGW_DIR/start.log"
    "$ROOT/tests/s3/rgw-stop.sh" "$RGW_DIR" > /dev/null 2>&1
    rm -rf "$RGW_DIR"
    RGW_DIR=
    [ $try -eq 3 ] && return 1
  done
  set -a; . "$RGW_DIR/env"; set +a
  BUCKET=$TARNFS_S3_BUCKET
}

# No object under key and no unfinished multipart upload in the bucket.
nothing_left() {
  local key=$1
  not "$S3TOOL" stat "$BUCKET" "$key"
  [ -z "$("$S3TOOL" uploads "$BUCKET")" ]
}

t_s3_convert() {
  "$TARNFS" convert "$SRC" --to "s3://$BUCKET/conv" --verify -j 2 > "$T/s1"
  cat "$T/s1"
  grep -q "summary: 3 runs: 3 converted, 0 up to date, 0 failed" "$T/s1"
  "$S3TOOL" ls "$BUCKET/conv" | awk '{print $1}' > "$T/keys"
  cat "$T/keys"
  [ "$(LC_ALL=C sort "$T/keys" | tr '\n' ' ')" = "$(for r in "$RUN1" "$RUN2" "$RUN3"; do echo "$(basename "$r").tar"; echo "$(basename "$r").tar.tarnfs-index"; done | LC_ALL=C sort | tr '\n' ' ')" ]
  grep -q "index verified" "$T/s1"
  for r in "$RUN1" "$RUN2" "$RUN3"; do
    # the object is the very tarball in-place conversion wrote, and its
    # SHA-256 travels with it as metadata
    "$S3TOOL" get "$BUCKET/conv" "$(basename "$r").tar" "$T/got.tar"
    cmp "$T/got.tar" "$r.tar"
    "$S3TOOL" stat "$BUCKET/conv" "$(basename "$r").tar" | grep >/dev/null "$(cut -c1-64 "$r.tar.sha256")"
    # its index sidecar names it by size, SHA-256 and ETag, and each
    # file's bytes are at the offset it gives
    "$S3TOOL" get "$BUCKET/conv" "$(basename "$r").tar.tarnfs-index" "$T/got.ix"
    "$B/tests/index/tixcheck" "$T/got.ix" "$T/got.tar" > "$T/ix"
    "$B/tests/index/tixcheck" "$T/got.ix" "$T/got.tar" \
      "$("$S3TOOL" stat "$BUCKET/conv" "$(basename "$r").tar" | cut -f3)" > /dev/null
    ranges_match_sources "$T/got.tar" "$r" "$T/ix"
  done
  [ -z "$("$S3TOOL" uploads "$BUCKET")" ]
}

t_s3_round_trip() {
  "$S3TOOL" get "$BUCKET/conv" "$(basename "$RUN1").tar" "$T/s3run1.tar"
  (cd "$(dirname "$RUN1")" && tar -df "$T/s3run1.tar")
  round_trip_matches "$T/s3run1.tar" "$RUN1"
}

t_s3_resume_force() {
  "$TARNFS" convert "$SRC" --to "s3://$BUCKET/conv" > "$T/s2"
  cat "$T/s2"
  grep -q "summary: 3 runs: 0 converted, 3 up to date, 0 failed" "$T/s2"
  "$TARNFS" convert "$RUN3" --to "s3://$BUCKET/conv" --force > "$T/s3"
  grep -q "summary: 1 run: 1 converted, 0 up to date" "$T/s3"
}

t_s3_multipart_streamed() {
  local r=$T/big/RUN_MULTI etag
  mkdir -p "$T/big"
  $GEN --name RUN_MULTI --file-size 1M --cycles 6 "$T/big"      # ~25 MiB
  "$TARNFS" convert "$T/big" --to "s3://$BUCKET" --part-size 5M --verify > "$T/m1"
  cat "$T/m1"
  etag=$("$S3TOOL" stat "$BUCKET" RUN_MULTI.tar | awk '{print $3}')
  echo "ETag $etag"
  case "$etag" in *-[0-9]*) ;; *) die "not a multipart object: $etag" ;; esac
  (cd "$T/big" && tar -cf - RUN_MULTI) > /dev/null   # GNU tar agrees on the tree
  "$S3TOOL" get "$BUCKET" RUN_MULTI.tar - | (cd "$T/big" && tar -df -)
  # the index of a multipart object: offsets across part boundaries hold
  "$S3TOOL" get "$BUCKET" RUN_MULTI.tar "$T/multi.tar"
  "$S3TOOL" get "$BUCKET" RUN_MULTI.tar.tarnfs-index "$T/multi.ix"
  "$B/tests/index/tixcheck" "$T/multi.ix" "$T/multi.tar" "$etag" > "$T/mix"
  ranges_match_sources "$T/multi.tar" "$r" "$T/mix"
  ls -a "$T/big" > "$T/ls"
  not grep -q tmp "$T/ls"
}

# An object stored in parts over 5 GB cannot get x-amz-meta-sha256 (S3
# copies at most 5 GB; the fault "meta" stands for that): its index still
# names its SHA-256, so a re-run finds it up to date instead of uploading
# the whole run again.
t_s3_no_sha256_metadata_uses_the_index() {
  mkdir -p "$T/nometa"
  $GEN --name RUN_NOMETA --file-size 1M --cycles 3 "$T/nometa"
  TARNFS_FAULT="meta:5" "$TARNFS" convert "$T/nometa" --to "s3://$BUCKET/nm" --part-size 5M > "$T/nm1" 2>&1
  cat "$T/nm1"
  grep -q "without its SHA-256 metadata" "$T/nm1"
  "$S3TOOL" stat "$BUCKET/nm" RUN_NOMETA.tar > "$T/nm.stat"
  cat "$T/nm.stat"
  [ -z "$(cut -f5 "$T/nm.stat")" ]
  "$TARNFS" convert "$T/nometa" --to "s3://$BUCKET/nm" --part-size 5M > "$T/nm2"
  cat "$T/nm2"
  grep -q "summary: 1 run: 0 converted, 1 up to date, 0 failed" "$T/nm2"
}

t_s3_failure_mid_upload() {
  local rc=0
  mkdir -p "$T/fail"
  $GEN --name RUN_FAIL --file-size 1M --cycles 6 "$T/fail"
  # the tar stream breaks after 12 MB: two 5 MiB parts are already stored
  TARNFS_CONVERT_FAIL_AFTER=12000000 "$TARNFS" convert "$T/fail" --to "s3://$BUCKET" \
    --part-size 5M > "$T/f1" 2>&1 || rc=$?
  cat "$T/f1"
  [ $rc -eq 1 ]
  grep -q "FAILED .*RUN_FAIL" "$T/f1"
  nothing_left RUN_FAIL.tar
  # the S3 side breaks: every request on RUN_FAIL.tar with a body either way
  # is reset (fetch's TARNFS_FAULT), so it fails from CreateMultipartUpload on
  rc=0
  TARNFS_FAULT="reset:1000:RUN_FAIL.tar" "$TARNFS" convert "$T/fail" --to "s3://$BUCKET" \
    --part-size 5M > "$T/f2" 2>&1 || rc=$?
  cat "$T/f2"
  [ $rc -eq 1 ]
  grep -q "FAILED .*RUN_FAIL.*upload of RUN_FAIL.tar failed" "$T/f2"
  nothing_left RUN_FAIL.tar
  # the S3 side breaks in the middle: CreateMultipartUpload and parts 1-2
  # go through, then HTTP attempts 4..14 get a 500.  fetch has at most 2
  # parts in flight, each tried 6 times, so one of them runs out of tries
  # inside the window; the abort that follows goes through.
  rc=0
  "$B/tests/convert/convert_fault" RUN_FAIL.tar 4 14 convert "$T/fail" --to "s3://$BUCKET" \
    --part-size 5M --force > "$T/f3" 2>&1 || rc=$?
  cat "$T/f3"
  [ $rc -eq 1 ]
  grep -q "FAILED .*RUN_FAIL.*upload of RUN_FAIL.tar failed" "$T/f3"
  grep -q "HTTP 500 InternalError (injected) on RUN_FAIL.tar; giving up" "$T/f3"
  nothing_left RUN_FAIL.tar
  [ -d "$T/fail/RUN_FAIL" ]
}

t_s3_sigint_aborts_upload() {
  local rc=0 pid
  mkdir -p "$T/sint"
  $GEN --name RUN_SIGINT --file-size 2M --cycles 15 "$T/sint"    # ~120 MiB
  "$TARNFS" convert "$T/sint" --to "s3://$BUCKET" --part-size 5M > "$T/si" 2>&1 &
  pid=$!; track_pid "$pid"
  for _ in $(seq 100); do
    [ -n "$("$S3TOOL" uploads "$BUCKET")" ] && break
    sleep 0.1
  done
  "$S3TOOL" uploads "$BUCKET"
  kill -INT "$pid"
  wait "$pid" || rc=$?
  cat "$T/si"
  [ $rc -eq 1 ]
  grep -q "interrupted" "$T/si"
  nothing_left RUN_SIGINT.tar
  [ -d "$T/sint/RUN_SIGINT" ]
}

t_s3_naming_path_and_delete() {
  mkdir -p "$T/pathsrc/site/2024" "$T/pathsrc/site/2023"
  $GEN --name RUN_P --extras "$T/pathsrc/site/2024"
  $GEN --seed 8 --name RUN_P "$T/pathsrc/site/2023"
  cp -a "$T/pathsrc" "$T/pathsrc.ref"
  "$TARNFS" convert "$T/pathsrc" --to "s3://$BUCKET/bypath" --naming path --verify \
    --delete-source > "$T/p1"
  cat "$T/p1"
  "$S3TOOL" ls "$BUCKET/bypath" | awk '{print $1}' | tr '\n' ' ' > "$T/pk"
  [ "$(cat "$T/pk")" = "site/2023/RUN_P.tar site/2023/RUN_P.tar.tarnfs-index site/2024/RUN_P.tar site/2024/RUN_P.tar.tarnfs-index " ]
  "$S3TOOL" ls -d "$BUCKET/bypath" | grep >/dev/null "site/"
  [ ! -e "$T/pathsrc/site/2024/RUN_P" ]
  [ ! -e "$T/pathsrc/site/2023/RUN_P" ]
  "$S3TOOL" get "$BUCKET/bypath" site/2024/RUN_P.tar "$T/p.tar"
  round_trip_matches "$T/p.tar" "$T/pathsrc.ref/site/2024/RUN_P"
}

t_s3_index_backfill() {
  local n1 n3 etag
  n1=$(basename "$RUN1"); n3=$(basename "$RUN3")
  (cd "$PRISTINE/proj/2024" && tar --format=gnu -cf "$T/b1.tar" "$n1")
  (cd "$PRISTINE/other" && tar --format=pax -cf "$T/b3.tar" "$n3")
  (cd "$PRISTINE/other" && tar -czf "$T/b3.tar.gz" "$n3")
  "$S3TOOL" put "$BUCKET/gnutar" "$n1.tar" "$T/b1.tar"
  "$S3TOOL" put "$BUCKET/gnutar" "x/$n3.tar" "$T/b3.tar"
  "$S3TOOL" put "$BUCKET/gnutar" "x/$n3.tar.gz" "$T/b3.tar.gz"
  "$TARNFS" index "s3://$BUCKET/gnutar" > "$T/y1"
  cat "$T/y1"
  grep -q "^summary: 3 tarballs: 2 indexed, 0 up to date, 1 skipped, 0 failed" "$T/y1"
  for k in "$n1.tar:b1.tar:$PRISTINE/proj/2024/$n1" "x/$n3.tar:b3.tar:$PRISTINE/other/$n3"; do
    IFS=: read -r key file src <<< "$k"
    "$S3TOOL" get "$BUCKET/gnutar" "$key.tarnfs-index" "$T/y.ix"
    etag=$("$S3TOOL" stat "$BUCKET/gnutar" "$key" | cut -f3)
    "$B/tests/index/tixcheck" "$T/y.ix" "$T/$file" "$etag" > "$T/ix"
    ranges_match_sources "$T/$file" "$src" "$T/ix"
  done
  not "$S3TOOL" stat "$BUCKET/gnutar" "x/$n3.tar.gz.tarnfs-index"
  etag=$("$S3TOOL" stat "$BUCKET/gnutar" "$n1.tar.tarnfs-index" | cut -f3)
  "$TARNFS" index "s3://$BUCKET/gnutar" > "$T/y2"
  cat "$T/y2"
  grep -q "^summary: 3 tarballs: 0 indexed, 2 up to date, 1 skipped, 0 failed" "$T/y2"
  [ "$("$S3TOOL" stat "$BUCKET/gnutar" "$n1.tar.tarnfs-index" | cut -f3)" = "$etag" ]
  # the tarball is replaced by another one: the stale index is replaced (If-Match)
  "$S3TOOL" put "$BUCKET/gnutar" "$n1.tar" "$T/b3.tar"
  "$TARNFS" index "s3://$BUCKET/gnutar" "$n1.tar" > "$T/y3"
  cat "$T/y3"
  grep -q "^indexed    $n1.tar  (.*replaced a stale index" "$T/y3"
  "$S3TOOL" get "$BUCKET/gnutar" "$n1.tar.tarnfs-index" "$T/y.ix"
  "$B/tests/index/tixcheck" "$T/y.ix" "$T/b3.tar" > /dev/null
}

t_s3_bad_bucket_and_credentials() {
  local rc=0
  "$TARNFS" convert "$SRC" --to "s3://no-such-bucket-$$" > "$T/b1" 2>&1 || rc=$?
  cat "$T/b1"
  [ $rc -eq 1 ]
  grep -q "no such bucket\|does not exist" "$T/b1"
  rc=0
  AWS_SECRET_ACCESS_KEY=wrong-secret "$TARNFS" convert "$SRC" --to "s3://$BUCKET/conv" --force \
    > "$T/b2" 2>&1 || rc=$?
  cat "$T/b2"
  [ $rc -eq 1 ]
  grep -qi "secret\|credentials" "$T/b2"
  not grep -q wrong-secret "$T/b2"
  [ -d "$RUN1" ]
}

# Serve the converted bucket with tarnfsd and read everything back over NFS.
t_s3_served_by_tarnfsd() {
  local pid ports nfsport mountport name f n=0
  mkdir -p "$T/srvcache"
  "$B/tarnfsd" -f --no-rpcbind --listen 127.0.0.1 --nfs-port 0 --mount-port 0 \
    --port-file "$T/ports" --cache "$T/srvcache" --source "s3://$BUCKET/conv" \
    2> "$T/tarnfsd.log" &
  pid=$!; track_pid "$pid"
  for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.1; done
  [ -s "$T/ports" ] || { cat "$T/tarnfsd.log"; return 1; }
  read -r nfsport mountport < "$T/ports"
  url() { echo "nfs://127.0.0.1/$1?nfsport=$nfsport&mountport=$mountport&version=3"; }
  name=$(basename "$RUN1")
  nfs-ls "$(url '')" | grep >/dev/null "$name"
  while IFS= read -r -d '' f; do
    nfs-cat "$(url "$name/$f")" | cmp -s - "$RUN1/$f" || die "differs over NFS: $f"
    n=$((n + 1))
  done < <(cd "$RUN1" && find . -type f -perm -o=r -printf '%P\0' | sort -z | head -z -n 40)
  echo "$n world-readable files read back over NFS (the export squashes root)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

if [ -n "$rgw_missing" ]; then
  skip 'S3 target (real Ceph RGW)' "not available here:$rgw_missing"
elif ! s3_start > "$T/rgw.log" 2>&1; then
  cat "$T/rgw.log"
  bad "Ceph RGW did not start (see above)"
else
  echo "      (Ceph RGW on $TARNFS_S3_ENDPOINT, bucket $BUCKET)"
  check 'S3: streamed upload of every run, verified; objects equal the in-place tarballs, SHA-256 stored as metadata' t_s3_convert
  check 'S3: the object round-trips through GNU tar -d and tarnfs ingest' t_s3_round_trip
  check 'S3: a re-run finds every object up to date by SHA-256; --force uploads again' t_s3_resume_force
  check 'S3: a 25 MiB run goes up as a multipart upload with --part-size 5M, no temporary file' t_s3_multipart_streamed
  check 'S3: an object stored without its SHA-256 metadata (over 5 GB) is found up to date through its index' t_s3_no_sha256_metadata_uses_the_index
  check 'S3: an upload broken after two parts (tar side or S3 500s) or by S3 resets leaves no object and no multipart upload' t_s3_failure_mid_upload
  check 'S3: Ctrl-C during an upload aborts it: no object, no multipart upload, source kept' t_s3_sigint_aborts_upload
  check 'S3: --naming path keeps directories in the key; --verify --delete-source removes the sources' t_s3_naming_path_and_delete
  check 'S3: tarnfs index backfills a bucket of GNU tar tarballs; a second run does nothing; a stale index is replaced' t_s3_index_backfill
  check 'S3: a missing bucket and a wrong secret give clear errors and exit 1' t_s3_bad_bucket_and_credentials
  if [ -x "$B/tarnfsd" ] && command -v nfs-cat >/dev/null; then
    check 'S3: tarnfsd serves the converted bucket; files read over NFS equal the source' t_s3_served_by_tarnfsd
  else
    skip 'S3 served by tarnfsd' 'tarnfsd or nfs-cat not built/installed'
  fi
fi
