#!/usr/bin/env bash
# 80-bench-smoke: the benchmark harness works end to end: nfsload answers
# its command line, and bench/compare --smoke (tiny data set, one
# repetition) starts tarnfsd and NFS-Ganesha side by side, runs every
# workload against both, prints its table (index-first rows included),
# writes it as TSV and draws it as well-formed SVG (bench/plot: one bar per
# workload row against Ganesha, both servers' latency curves), and leaves
# no process behind; bench/plot draws the scaling curve from a scale TSV.
# Not a timed test: no figure is judged.
set -u
cd "${TARNFS_ROOT:-$(dirname "$0")/../..}"
B="${B:-build-san}"
case "$B" in /*) ;; *) B="$PWD/$B" ;; esac
export B TARNFS_ROOT="$PWD"
. tests/lib.sh

check "nfsload --help describes every workload" \
  bash -c '"$B/nfsload" --help | grep -q "seqread" && "$B/nfsload" --help | grep -q "readdirplus"'
check "nfsload rejects an unknown workload with status 2" \
  bash -c '"$B/nfsload" nosuch nfs://127.0.0.1/ / 2>/dev/null; [ $? = 2 ]'
check "nfsload reports a server that is not there, status 1" \
  bash -c '"$B/nfsload" --timeout 5 stat "nfs://127.0.0.1/?nfsport=1&mountport=1" / 2>/dev/null; [ $? = 1 ]'
check "tcp-ceiling measures loopback throughput" \
  bash -c '"$B/tcp-ceiling" 0.2 | grep -Eq "^tcp_mb_per_s [0-9.]+$"'

out=$(mktemp); err=$(mktemp); plots=$(mktemp -d)
./bench/compare --smoke --data "$plots" > "$out" 2> "$err"
status=$?
cat "$out"
work=$(sed -n 's/^compare: work directory //p' "$err" | head -1)
check "bench/compare --smoke exits 0 (every measurement ran)" test "$status" = 0
[ "$status" = 0 ] || tail -20 "$err"
check "the table is printed with its header" grep -q '^| measurement | unit | tarnfs |' "$out"
# awk condition: the row's label starts with r (or is r, when r ends in $)
match_row='{ l = $2; gsub(/^ +| +$/, "", l) } (r ~ /[$]$/ ? l == substr(r, 1, length(r) - 1) : index(l, r) == 1)'
for row in "seqread" "randread" "stat: LOOKUP+GETATTR" "READDIRPLUS of a" "walk (ls -lR)" \
           "smallfile" "p99 GETATTR, 32 streams x 100/s$" \
           "walk (ls -lR) of the " "stat: LOOKUP+GETATTR of every file of the " \
           "lean client: READs" "lean client: GETATTR" "lean client: READDIRPLUS"; do
  check "row '$row' has a tarnfs and a Ganesha median" \
    awk -F'|' -v r="$row" "$match_row"' && $4 ~ /[0-9]/ && $5 ~ /Ganesha/ && $6 ~ /[0-9]/ { f = 1 } END { exit !f }' "$out"
done
if grep -q 'tarnfsd mode: namespace' "$out"; then
  for row in "p99 GETATTR, 32 streams x 100/s, during a fetch" "ingest, small-file run" \
             "ingest, big-file run" "cold first byte, NAS"; do
    check "cold row '$row' has a tarnfs figure" \
      awk -F'|' -v r="$row" "$match_row"' && $4 ~ /[0-9]/ { f = 1 } END { exit !f }' "$out"
  done
  # index-first rows (issue 11): each has its tarnfs figure; the whole-run
  # passes and the 50-runs row also their prefetch = whole figure
  for row in "indexed " "indexed .* run: ls -l deepest dir, NAS" \
             "p99 GETATTR, cached, 64 READs parked on a stalled backend"; do
    check "index-first row '$row' has a tarnfs figure" \
      awk -F'|' -v r="$row" '{ l = $2; gsub(/^ +| +$/, "", l) } l ~ ("^" r) && $4 ~ /[0-9]/ { f = 1 } END { exit !f }' "$out"
  done
  for row in "1 small file from each of" "whole-run pass, big-file run, prefetch = auto" \
             "whole-run pass, big-file run, prefetch = none" \
             "whole-run pass, small-file run, prefetch = auto" \
             "whole-run pass, small-file run, prefetch = none"; do
    check "index-first row '$row' has both figures and a ratio" \
      awk -F'|' -v r="$row" "$match_row"' && $4 ~ /[0-9]/ && $6 ~ /[0-9]/ && $7 ~ /x/ { f = 1 } END { exit !f }' "$out"
  done
else
  echo "note: tarnfsd has no working tarball namespace here; cold rows not checked"
fi
check "the million-file ingest row has tarnfs ingest and tar -xf figures and a ratio" \
  awk -F'|' -v r="ingest of the " "$match_row"' && $4 ~ /[0-9]/ && $6 ~ /[0-9]/ && $7 ~ /x/ { f = 1 } END { exit !f }' "$out"
check "the loopback ceiling is reported" grep -Eq 'loopback TCP ceiling.*[0-9]+ MB/s' "$out"

# ---- the figures as TSV and SVG (bench/plot) -------------------------------
table_rows=$(grep '^| ' "$out" | grep -vc '^| measurement |')   # not the header
ganesha_rows=$(awk -F'|' '$5 ~ /^ *Ganesha *$/ && $4 ~ /[0-9]/ && $6 ~ /[0-9]/' "$out" | wc -l)
check "compare.tsv has one line per table row ($table_rows)" \
  test "$(tail -n +2 "$plots/compare.tsv" | wc -l)" = "$table_rows"
check "latency.tsv has the GETATTR percentiles of both servers, min to max" \
  awk -F'\t' 'NR > 1 && $2 ~ /^[0-9.]+$/ && $3 ~ /^[0-9.]+$/ { p[$1] = 1 }
    END { exit !(p[0] && p[50] && p[99] && p[100]) }' "$plots/latency.tsv"
for svg in compare latency; do
  check "$svg.svg is well-formed SVG" \
    bash -c 'xmllint --noout "$1" && grep -q "<svg" "$1"' _ "$plots/$svg.svg"
done
check "compare.svg has one bar per workload row against Ganesha ($ganesha_rows)" \
  test "$(grep -Eo '>[0-9.]+x<' "$plots/compare.svg" | wc -l)" = "$ganesha_rows"
check "compare.svg names every workload row against Ganesha" \
  bash -c 'awk -F"|" "\$5 ~ /^ *Ganesha *\$/ { l = \$2; gsub(/^ +| +\$/, \"\", l); print l }" "$1" |
    while IFS= read -r l; do grep -qF ">$l<" "$2" || { echo "  missing: $l"; exit 1; }; done' \
  _ "$out" "$plots/compare.svg"
check "latency.svg has a curve for tarnfs and one for NFS-Ganesha" \
  bash -c 'grep -q ">tarnfs<" "$1" && grep -q ">NFS-Ganesha<" "$1"' _ "$plots/latency.svg"
# scaling.svg: bench/scale is too slow for a smoke run; its recorded TSV
scale=$(mktemp -d)
cp doc/perf/scale.tsv "$scale/"
check "bench/plot draws scaling.svg from a scale.tsv: well-formed, one line per core count" \
  bash -c 'bench/plot "$1" > /dev/null && xmllint --noout "$1/scaling.svg" &&
    for c in $(tail -n +2 "$1/scale.tsv" | cut -f1 | sort -u); do
      grep -q ">$c core(s)<" "$1/scaling.svg" || exit 1; done' _ "$scale"
rm -rf "$scale"
check "the work directory was removed" test -n "$work" -a ! -e "$work"

# bench/bigrun --smoke: a 1 GiB indexed run through a 512M cache, read file
# by file (md5 checked by the harness; it fails if the cache holds more file
# data than cache_limit)
big=$(mktemp)
check "bench/bigrun --smoke serves a run bigger than the cache, every step checked" \
  bash -c './bench/bigrun --smoke > "$1" 2>&1 || { tail -20 "$1"; exit 1; }' _ "$big"
check "bench/bigrun prints each step's row" \
  bash -c 'for r in "tarnfs index" "cold first byte of RunInfo.xml" "ls -lR of the whole run" \
      "whole last .cbcl" "seqread of lane 1"; do grep -q "^| $r" "$1" || exit 1; done' _ "$big"
rm -f "$big"
# bench/scale at its smallest: one core, one connection, both clients (the
# lean rpcblast checks every reply's status and exits 1 on any failure)
check "rpcblast rejects an unknown workload with status 2" \
  bash -c '"$B/rpcblast" nosuch "nfs://127.0.0.1/?nfsport=1&mountport=1" / 2>/dev/null; [ $? = 2 ]'
check "rpcblast reports a server that is not there, status 1" \
  bash -c '"$B/rpcblast" getattr "nfs://127.0.0.1/?nfsport=1&mountport=1" /x 2>/dev/null; [ $? = 1 ]'
sc=$(mktemp)
check "bench/scale runs nfsload and rpcblast against tarnfsd, every call answered" \
  bash -c './bench/scale --reps 1 --seconds 1 --conns 1 --cores 1 > "$1" 2>&1 || { tail -20 "$1"; exit 1; }' _ "$sc"
check "bench/scale prints a row of figures for each client" \
  bash -c 'for c in nfsload rpcblast; do
      awk -v c="$c" "/client: / { on = (\$NF == c) } on && /^\\| 1 \\| 1 \\| [0-9]/ { f = 1 } END { exit !f }" "$1" || exit 1
    done' _ "$sc"
rm -f "$sc"
no_leftovers() {   # no running process names the run's work directory
  local f c
  [ -n "$work" ] || return 1
  for f in /proc/[0-9]*/cmdline; do
    c=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
    case $c in *"$work"*) echo "  still running: $c"; return 1 ;; esac
  done
}
check "no process of the run is left behind" no_leftovers
rm -rf "$out" "$err" "$plots"
summary 80-bench-smoke
