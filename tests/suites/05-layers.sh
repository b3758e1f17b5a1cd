#!/usr/bin/env bash
# 05-layers: the layer rules that a grep can check (tests/tool/layers.sh for
# the tarnfs tool), and that the checker itself catches a violation; and
# that no shell test carries its own copy of tests/lib.sh's check().
set -u
cd "${TARNFS_ROOT:-.}"
. tests/lib.sh
check "tool/ includes only vfs.h, fetch.h, convert.h, util/ and calls no kvstore function" \
  tests/tool/layers.sh
t=$(mktemp -d /tmp/tarnfs-layers.XXXXXX)
trap 'rm -rf "$t"' EXIT
cp -r tool "$t/"
printf '#include "kvstore/kvfs.h"\n' >> "$t/tool/cmd_flush.c"
check "the checker refuses kvfs.h in any tool file" \
  bash -c "! tests/tool/layers.sh '$t' >/dev/null"
rm -rf "$t/tool" && cp -r tool "$t/"
printf 'static void x(kv_cache *c) { kv_cache_evict(c, "r"); }\n' >> "$t/tool/cmd_ingest.c"
check "the checker refuses an eviction through kvstore (ingest goes through vfs_cache_ingest)" \
  bash -c "! tests/tool/layers.sh '$t' >/dev/null"
rm -rf "$t/tool" && cp -r tool "$t/"
printf '#include "nfsd/config.h"\n' >> "$t/tool/cmd_ls.c"
check "the checker refuses a header of another module" \
  bash -c "! tests/tool/layers.sh '$t' >/dev/null"
rm -rf "$t/tool" && cp -r tool "$t/"
printf 'static void x(void) { kv_cache_list(0, 0, 0); }\n' >> "$t/tool/cmd_ls.c"
check "the checker refuses a kvstore call in a reading command (ls goes through vfs_view)" \
  bash -c "! tests/tool/layers.sh '$t' >/dev/null"
rm -rf "$t/tool" && cp -r tool "$t/"
printf '$(B)/tool/cmd_cat.o: CPPFLAGS_ALL += -include kvstore/kvfs.h\n' >> "$t/tool/module.mk"
check "the checker refuses kvfs.h force-included by the makefile" \
  bash -c "! tests/tool/layers.sh '$t' >/dev/null"

# The shell scripts under DIR/tests that define check() (tests/lib.sh aside).
own_checks() {
  (cd "$1" && grep -rlE --include='*.sh' '^[[:space:]]*(function[[:space:]]+)?check[[:space:]]*\(\)' tests |
    grep -vx tests/lib.sh)
}
no_own_checks() {
  local copies; copies=$(own_checks "$1")
  [ -z "$copies" ] || { echo "  these define their own check(): $copies"; return 1; }
}
check "no shell script under tests/ defines its own check() (they source tests/lib.sh)" \
  no_own_checks .
mkdir -p "$t/tests/x" && printf 'check() { :; }\n' > "$t/tests/x/copy.sh"
check "that guard finds a copy of check()" test "$(own_checks "$t")" = tests/x/copy.sh
summary 05-layers
