#!/usr/bin/env bash
# check-config.sh: `tarnfsd --check-config` on a good config and on bad ones:
# exit status, one "FILE:LINE: why" line per problem, nothing created on
# disk, a secret key never printed.  Run by tests/suites/50-nfs.sh (TARNFSD
# is the binary under test); prints "ok"/"FAIL" lines, exits 1 on a failure.
set -u
. "$(dirname "$0")/../lib.sh"
LINE_PREFIX="  "
T=$(mktemp -d /tmp/tarnfs-checkconf-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/cache" "$T/nas" "$T/home"
# No AWS credentials from the caller's environment or ~/.aws.
run() {   # run CONF [args...]: check CONF; output in $T/out, status in $rc
  local conf=$1; shift
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
      -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CONFIG_FILE HOME="$T/home" \
      "$TARNFSD" --check-config "$conf" "$@" >"$T/out" 2>&1
  rc=$?
}
expect() {   # expect STATUS PATTERN WHAT: last run's status and an output line
  if [ "$rc" -eq "$1" ] && grep -Eq -- "$2" "$T/out"; then ok "$3"
  else bad "$3 (status $rc, want $1; output:)"; sed 's/^/      /' "$T/out"; fi
}
# Directories, and whatever is inside the cache: the config files the test
# writes itself are left out.
snapshot() { (cd "$T" && { find . -type d; find cache; } | sort); }

cat > "$T/good.conf" <<CONF
# a good production config
cache = $T/cache
source = $T/nas
cache_limit = 10G
build_cache = 512M
high_watermark = 90
low_watermark = 75
max_connections = 2048
idle_timeout = 15m
export / 127.0.0.1(ro,no_root_squash) 10.0.0.0/8(rw) *(ro,all_squash)
export /run1 192.168.0.0/16(ro,anonuid=1000,anongid=1000)
CONF
before=$(snapshot)
run "$T/good.conf"
expect 0 "^tarnfsd: $T/good.conf: configuration OK\$" "a good config passes with 'configuration OK'"
[ "$(wc -l < "$T/out")" -eq 1 ] && ok "a good config prints only that line" ||
  bad "a good config prints only that line"

# The same file through --config, and flags applied on top as a start would.
env -u AWS_ACCESS_KEY_ID "$TARNFSD" --config "$T/good.conf" --check-config >"$T/out" 2>&1; rc=$?
expect 0 "configuration OK" "--config FILE --check-config checks FILE"

# A cache that does not exist yet but can be made (there is a source).
sed "s|^cache = .*|cache = $T/newcache|" "$T/good.conf" > "$T/newcache.conf"
run "$T/newcache.conf"
expect 0 "configuration OK" "a cache directory that a start would create passes"
[ ! -e "$T/newcache" ] && ok "... and is not created" || bad "... and is not created"

# Bad configs: each names the problem and its line.
printf 'cache = %s\nsource = %s\nfrobnicate = 3\n' "$T/cache" "$T/nas" > "$T/unknown.conf"
run "$T/unknown.conf"
expect 1 "^tarnfsd: $T/unknown.conf:3: unknown setting 'frobnicate'\$" "unknown key: exit 1, FILE:3"

printf 'cache = %s\nmax_connections = 0\nthreads = 5000\n' "$T/cache" > "$T/range.conf"
run "$T/range.conf"
expect 1 "^tarnfsd: $T/range.conf:2: bad value '0' for max_connections" \
  "out-of-range max_connections: exit 1, FILE:2"
grep -q "range.conf:3: bad value '5000' for threads" "$T/out" &&
  ok "... and the second problem (threads, line 3) on a line of its own" ||
  bad "... and the second problem (threads, line 3) on a line of its own"

printf 'cache = %s\nbuild_cache = 4k\n' "$T/cache" > "$T/build.conf"
run "$T/build.conf"
expect 1 "^tarnfsd: $T/build.conf:2: bad value '4k' for build_cache" \
  "build_cache below 1M: exit 1, FILE:2"

printf 'cache = %s\nhigh_watermark = 60\nlow_watermark = 80\n' "$T/cache" > "$T/wm.conf"
run "$T/wm.conf"
expect 1 "^tarnfsd: $T/wm.conf:3: low_watermark \(80\) must be below high_watermark \(60\)" \
  "low_watermark above high_watermark: exit 1, FILE:3"

printf '# cache in a directory that is not there\nsource = %s\ncache = %s\n' \
  "$T/nas" "$T/nowhere/cache" > "$T/noparent.conf"
run "$T/noparent.conf"
expect 1 "^tarnfsd: $T/noparent.conf:3: cache directory $T/nowhere/cache cannot be created: $T/nowhere: No such file or directory" \
  "missing cache parent: exit 1, FILE:3"

printf 'cache = %s\n' "$T/absent" > "$T/nosource.conf"
run "$T/nosource.conf"
expect 1 "^tarnfsd: $T/nosource.conf:1: cache directory $T/absent does not exist" \
  "missing cache without a source (a start would not create it): exit 1, FILE:1"

touch "$T/plainfile"
printf 'cache = %s\n' "$T/plainfile" > "$T/notdir.conf"
run "$T/notdir.conf"
expect 1 "^tarnfsd: $T/notdir.conf:1: cache $T/plainfile is not a directory" \
  "a cache that is a file: exit 1, FILE:1"

printf 'cache = %s\n\nsource = %s\n' "$T/cache" "$T/nas-gone" > "$T/nonas.conf"
run "$T/nonas.conf"
expect 1 "^tarnfsd: $T/nonas.conf:3: source: NAS directory $T/nas-gone: No such file or directory" \
  "missing NAS source: exit 1, FILE:3"

printf 'cache = %s\nsource = relative/dir\n' "$T/cache" > "$T/relsource.conf"
run "$T/relsource.conf"
expect 1 "^tarnfsd: $T/relsource.conf:2: source: .*neither an absolute directory path nor s3://" \
  "a source that is neither a path nor s3://: exit 1, FILE:2"

printf 'source = s3://Bad_Bucket!\ncache = %s\n' "$T/cache" > "$T/badurl.conf"
run "$T/badurl.conf"
expect 1 "^tarnfsd: $T/badurl.conf:1: source: .*not a valid bucket name" \
  "an s3:// URL that does not parse: exit 1, FILE:1"

printf 'cache = %s\nexport / *(ro,fast)\nexport /a 10.0.0.0/99(ro)\nexport relative *(ro)\nexport /b 10.1.2.3(ro\nsource = %s\n' \
  "$T/cache" "$T/nas" > "$T/export.conf"
run "$T/export.conf"
expect 1 "^tarnfsd: $T/export.conf:2: unknown export option 'fast'" "bad export option word: FILE:2"
expect 1 "^tarnfsd: $T/export.conf:3: prefix /99 too long for 10.0.0.0" "bad client CIDR: FILE:3"
expect 1 "^tarnfsd: $T/export.conf:4: export needs an absolute path" "relative export path: FILE:4"
expect 1 "^tarnfsd: $T/export.conf:5: missing '\)'" "unclosed option list: FILE:5"
[ "$(grep -c '^tarnfsd: ' "$T/out")" -eq 4 ] && ok "one line per problem (4 problems, 4 lines)" ||
  bad "one line per problem (4 problems, 4 lines)"

printf 'cache = %s\nsource = s3://runs/prefix\ns3_endpoint = http://127.0.0.1:9\n' "$T/cache" \
  > "$T/nocreds.conf"
run "$T/nocreds.conf"
expect 1 "^tarnfsd: $T/nocreds.conf:2: source: no S3 credentials" \
  "s3 source without credentials (config, environment, ~/.aws): exit 1, FILE:2"

printf 'cache = %s\nsource = s3://runs\ns3_access_key_id = AKIDONLY\n' "$T/cache" > "$T/halfcreds.conf"
run "$T/halfcreds.conf"
expect 1 "^tarnfsd: $T/halfcreds.conf:3: s3_access_key_id is set but s3_secret_access_key is not" \
  "an access key without its secret: exit 1, FILE:3"

SECRET=wJalrXUtnFEMI-K7MDENG-bPxRfiCYzz-SECRET
printf 'cache = %s\nsource = s3://runs\ns3_endpoint = http://127.0.0.1:9\ns3_access_key_id = AKIDEXAMPLE\ns3_secret_access_key = %s\n' \
  "$T/cache" "$SECRET" > "$T/creds.conf"
run "$T/creds.conf"
expect 0 "configuration OK" "s3 source with credentials in the config passes (no network needed)"
! grep -q "$SECRET" "$T/out" && ok "... and the secret is not printed" || bad "... and the secret is not printed"
# The secret on a bad line, and as a bad value: still never printed.
printf 'cache = %s\nsource = s3://runs\ns3_access_key_id = AKIDEXAMPLE\ns3_secret_access_key = %s\ns3_secret_access_key %s\nsource = s3://%s\n' \
  "$T/cache" "$SECRET" "$SECRET" "$SECRET" > "$T/leak.conf"
run "$T/leak.conf"
[ "$rc" -eq 1 ] && ! grep -q "$SECRET" "$T/out" && grep -q "leak.conf:5:" "$T/out" &&
  ok "problems on lines holding the secret are reported without it" ||
  { bad "problems on lines holding the secret are reported without it"; sed 's/^/      /' "$T/out"; }
# Credentials from the environment (the AWS conventions) count too.
AWS_ACCESS_KEY_ID=AKIDENV AWS_SECRET_ACCESS_KEY="$SECRET" HOME="$T/home" \
  "$TARNFSD" --check-config "$T/nocreds.conf" >"$T/out" 2>&1; rc=$?
expect 0 "configuration OK" "s3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pass"
! grep -q "$SECRET" "$T/out" && ok "... and the secret is not printed" || bad "... and the secret is not printed"
mkdir -p "$T/home/.aws"
printf '[seq]\naws_access_key_id = AKIDFILE\naws_secret_access_key = %s\n' "$SECRET" > "$T/home/.aws/credentials"
printf 's3_profile = seq\n' >> "$T/nocreds.conf"
run "$T/nocreds.conf"
expect 0 "configuration OK" "s3 credentials from a ~/.aws/credentials profile pass"
rm -rf "$T/home/.aws"

# metrics_listen: address literals with a port, and not an NFS port.
printf 'cache = %s\nsource = %s\nmetrics_listen = 127.0.0.1:9100\nmetrics_listen = [::1]:9100\n' \
  "$T/cache" "$T/nas" > "$T/metrics-good.conf"
run "$T/metrics-good.conf"
expect 0 "configuration OK" "metrics_listen 127.0.0.1:9100 and [::1]:9100 pass"
printf 'cache = %s\nmetrics_listen = localhost:9100\nmetrics_listen = 127.0.0.1\nmetrics_listen = ::1:9100\nmetrics_listen = 127.0.0.1:70000\nmetrics_listen = [::1]\n' \
  "$T/cache" > "$T/metrics-bad.conf"
run "$T/metrics-bad.conf"
expect 1 "^tarnfsd: $T/metrics-bad.conf:2: bad value 'localhost:9100' for metrics_listen: want IPV4:PORT or \[IPV6\]:PORT" \
  "metrics_listen with a host name: exit 1, FILE:2"
[ "$(grep -c "metrics-bad.conf:[2-6]: bad value '.*' for metrics_listen" "$T/out")" -eq 5 ] &&
  ok "... no port, IPv6 without brackets, port 70000, [::1] without a port: one line each" ||
  { bad "... no port, IPv6 without brackets, port 70000, [::1] without a port: one line each";
    sed 's/^/      /' "$T/out"; }
printf 'cache = %s\nnfs_port = 2049\nmetrics_listen = 127.0.0.1:2049\n' "$T/cache" > "$T/metrics-nfs.conf"
run "$T/metrics-nfs.conf"
expect 1 "^tarnfsd: $T/metrics-nfs.conf:3: metrics_listen port 2049 is also the NFS port" \
  "metrics_listen on the NFS port: exit 1, FILE:3"

# No source: the cache must be one already (nothing else would make it one),
# so an empty directory, as a package creates, is refused with what to do.
printf 'cache = %s\nexport / *(ro)\n' "$T/cache" > "$T/nosource.conf"
run "$T/nosource.conf"
expect 1 "^tarnfsd: $T/nosource.conf:1: cache directory $T/cache is not a tarnfs cache and no source is set: set 'source'.*tarnfs ingest --cache $T/cache TARBALL" \
  "no source and an empty cache directory: exit 1, FILE:1 says to set a source or ingest"

run "$T/does-not-exist.conf"
expect 1 "^tarnfsd: $T/does-not-exist.conf: No such file or directory" "a missing config file: exit 1"

"$TARNFSD" --check-config "$T/good.conf" "$T/good.conf" >"$T/out" 2>&1; rc=$?
expect 2 "unexpected argument" "two files: a usage error, exit 2"

after=$(snapshot)
[ "$before" = "$after" ] && ok "--check-config created nothing (the tree is as before)" ||
  { bad "--check-config created nothing"; diff <(echo "$before") <(echo "$after"); }
[ -z "$(ls -A "$T/cache")" ] && ok "... not even handle.key in an existing cache" ||
  bad "... not even handle.key in an existing cache"
summary "  check-config"
