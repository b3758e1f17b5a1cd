# lib.sh: helpers for the `tarnfs convert` suites (sourced): tests/lib.sh
# with strict checks, manifests that compare a source tree with what
# `tarnfs ls -lR` shows after an ingest, and byte comparison through
# `tarnfs cat`.

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# Every check is a shell function of many steps: each runs under set -e,
# its output shown when it fails (tests/lib.sh).
CHECK_STRICT=1

# One line per entry below RUN_DIR: path|mode|nlink|uid|gid|size|mtime|target
# (size and nlink left out for directories: they describe the storage).
source_manifest() {
  (cd "$1" && TZ=UTC find . -mindepth 1 -printf '%P|%M|%n|%U|%G|%s|%TY-%Tm-%Td %TH:%TM:%TS|%l\n') |
    awk -F'|' 'BEGIN { OFS = "|" }
      { $7 = substr($7, 1, 29); if (substr($2, 1, 1) == "d") { $3 = "-"; $6 = "-" } print }' |
    LC_ALL=C sort
}

# The same manifest from `tarnfs ls -l -R` of /NAME in cache C.
cache_manifest() {
  local cache=$1 name=$2
  "$B/tarnfs" ls -l -R --cache "$cache" "/$name" |
    awk -v top="/$name" 'BEGIN { OFS = "|" }
      /^$/ { next }
      /:$/ { dir = substr($0, 1, length($0) - 1); sub("^" top "/?", "", dir); next }
      {
        mode = $1; nlink = $2; uid = $3; gid = $4; size = $5
        t = $6 " " $7
        name = $0
        sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", name)
        target = ""
        if (substr(mode, 1, 1) == "l") { i = index(name, " -> "); target = substr(name, i + 4); name = substr(name, 1, i - 1) }
        if (substr(mode, 1, 1) == "d") { nlink = "-"; size = "-" }
        print (dir == "" ? name : dir "/" name), mode, nlink, uid, gid, size, substr(t, 1, 29), target
      }' | LC_ALL=C sort
}

# Every regular file of RUN_DIR has the same bytes as /NAME/... in cache C.
same_bytes_in_cache() {
  local cache=$1 name=$2 dir=$3 f n=0
  while IFS= read -r -d '' f; do
    "$B/tarnfs" cat --cache "$cache" "/$name/$f" | cmp -s - "$dir/$f" || die "bytes differ: $f"
    n=$((n + 1))
  done < <(cd "$dir" && find . -type f -printf '%P\0')
  echo "$n files compared byte for byte"
}

# Ingest TARBALL into a fresh cache and compare with RUN_DIR (attributes
# and bytes).
round_trip_matches() {
  local tarball=$1 dir=$2 name cache
  name=$(basename "$dir")
  cache=$(mktemp -d "$T/cache.XXXX")
  "$B/tarnfs" ingest --cache "$cache" "$tarball" "$name" >/dev/null
  diff <(source_manifest "$dir") <(cache_manifest "$cache" "$name")
  same_bytes_in_cache "$cache" "$name" "$dir"
}
