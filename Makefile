# tarnfs: top-level build. Each directory owns a module.mk fragment that adds
# its sources, programs and test suites; this file holds only the shared rules.
#
#   make deps      install the Debian packages the project needs (idempotent)
#   make           build tarnfsd and tarnfs (release flags) into build/
#   make check     deps + sanitizer build + the whole test suite
#   make tsan      ThreadSanitizer build (build-tsan/) + the concurrent tests
#   make soak      64 libnfs clients for SOAK_SECONDS (600) against tarnfsd
#   make demo      deps + build + serve a generated demo run over NFS
#   make bench     deps + build + the benchmarks
#   make fuzz      libFuzzer targets (clang, build-fuzz/), FUZZ_SECONDS each (tests/fuzz/)
#   make install   install into $(DESTDIR)$(PREFIX)
#   make deb       Debian package build-deb/tarnfs_VERSION_amd64.deb (+ lintian)

PREFIX  ?= /usr/local
DESTDIR ?=
# systemd looks in /usr/local/lib/systemd/system too; the Debian package
# passes /lib/systemd/system (debian/rules).
UNITDIR ?= $(PREFIX)/lib/systemd/system
SAN     ?= 0

ifeq ($(SAN),1)
B       ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DTARNFS_DEBUG
OPT     := -O1
else ifeq ($(SAN),thread)
# ThreadSanitizer (make tsan): data races in our threads; Kyoto Cabinet,
# libtirpc and libnfs are not instrumented (tests/tsan/tsan.supp).
B       ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -DTARNFS_DEBUG
OPT     := -O1
else
B       ?= build
SANFLAGS :=
OPT     := -O2
endif

PKGS    := kyotocabinet libarchive libtirpc libcurl libxml-2.0 openssl zlib libisal libsystemd libmicrohttpd
CC      ?= cc
CFLAGS  ?= $(OPT) -g
WARN    := -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
           -Wmissing-prototypes -Wstrict-prototypes
CPPFLAGS_ALL = -D_GNU_SOURCE -I. -I$(B) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS_ALL   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)
NFS_LIBS     = $(shell pkg-config --libs libnfs 2>/dev/null)

# A missing library is an error naming it, not a confusing compile error
# later.  Not for the goals that install the packages first (make deps).
ifeq ($(filter deps check tsan soak check-kernel demo bench clean fuzz deb,$(MAKECMDGOALS)),)
NEED_PKGS := $(PKGS) $(if $(filter test-programs,$(MAKECMDGOALS)),check libnfs)
MISSING_PKGS := $(strip $(foreach p,$(NEED_PKGS),$(if $(shell pkg-config --exists $(p) && echo y),,$(p))))
ifneq ($(MISSING_PKGS),)
$(error missing libraries (pkg-config): $(MISSING_PKGS); `make deps` (as root) installs them)
endif
endif

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) $(CPPFLAGS) $(CPPFLAGS_ALL)
ALL_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

# Modules append to these.
PROGRAMS :=
TEST_PROGRAMS :=
GENERATED :=
INSTALL_BIN :=

.PHONY: all deps check tsan soak check-kernel demo bench install clean build-all test-programs deb
all: build-all

# Modules are included callees first, so a module can name the libraries it
# links (a program lists them callers before callees).
include util/module.mk
include kvstore/module.mk
include fetch/module.mk
include vfs/module.mk
include nfsd/module.mk
include convert/module.mk
include tool/module.mk
include bench/module.mk
include tests/module.mk

build-all: $(GENERATED) $(PROGRAMS)
test-programs: $(TEST_PROGRAMS)

$(B)/%.o: %.c | $(GENERATED)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(B) -name '*.d' 2>/dev/null)

deps:
	@./etc/deps.sh

# The whole suite runs against the ASan+UBSan build.  SUITES=... picks some.
# The release build is compiled too: -O2 finds warnings -O1 does not.
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
check: deps
	$(MAKE) -j$(JOBS) SAN=1 build-all test-programs
	$(MAKE) -j$(JOBS) SAN=0 build-all
	B=build-san ./tests/run-suites.sh $(SUITES)

# ThreadSanitizer: the concurrent tests of kvstore, vfs and nfsd (with a
# TSan tarnfsd) built into build-tsan/.  Not in `make check` (slow: see
# doc/testing.md).  PROGRAM[:Check test case], paths under build-tsan/.
# test_park is left out: it asserts latencies (< 100 ms) TSan cannot keep.
TSAN_TESTS ?= tests/kvstore/test_kvfs:threads tests/vfs/test_vfs_cache \
	tests/vfs/test_vfs_source tests/nfs/test_nfs:read tests/nfs/test_nfs:write
tsan: deps
	$(MAKE) -j$(JOBS) SAN=thread build-all test-programs
	B=build-tsan ./tests/tsan/run.sh $(TSAN_TESTS)

# The soak test: 64 libnfs clients for SOAK_SECONDS (default 600) with
# evictions and a restart, against the ASan build.  Not in `make check`.
soak: deps
	$(MAKE) -j$(JOBS) SAN=1 build-all test-programs
	B=build-san ./tests/soak/soak.sh

check-kernel: deps
	$(MAKE) -j$(JOBS) SAN=1 build-all test-programs
	B=build-san ./tests/run-suites.sh kernel

demo: deps
	$(MAKE) build-all
	./etc/demo.sh

bench: deps
	$(MAKE) build-all test-programs
	./bench/run-all.sh

install: build-all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/doc/tarnfs $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)/etc/tarnfs
	install -m 755 $(B)/tarnfsd $(DESTDIR)$(PREFIX)/sbin/tarnfsd
	install -m 755 $(B)/tarnfs $(DESTDIR)$(PREFIX)/bin/tarnfs
	install -m 644 doc/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 doc/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 doc/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|' etc/tarnfsd.service > $(DESTDIR)$(UNITDIR)/tarnfsd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/tarnfsd.service
	install -m 644 etc/tarnfs.conf $(DESTDIR)$(PREFIX)/share/doc/tarnfs/tarnfs.conf.sample
	install -m 644 etc/grafana-tarnfs.json $(DESTDIR)$(PREFIX)/share/doc/tarnfs/grafana-tarnfs.json
	test -e $(DESTDIR)/etc/tarnfs/tarnfs.conf || install -m 640 etc/tarnfs.conf $(DESTDIR)/etc/tarnfs/tarnfs.conf

# The Debian package (debian/), built by dpkg-buildpackage in a copy of the
# tree under build-deb/src/ (git's tracked and not-ignored files, so local
# changes are in it; the tree stays clean and the .deb lands in build-deb/),
# then checked with lintian: a tag of any level, pedantic and experimental
# included, that debian/tarnfs.lintian-overrides does not override (with its
# reason) fails.  Needs the packaging part of etc/deps.txt (make deps).
DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH    = $(shell dpkg --print-architecture 2>/dev/null)
DEB         = build-deb/tarnfs_$(DEB_VERSION)_$(DEB_ARCH).deb
ifneq ($(filter deb,$(MAKECMDGOALS)),)
DEB_SRCS   := $(wildcard $(shell git ls-files --cached --others --exclude-standard 2>/dev/null || find . -path './build*' -prune -o -path ./.git -prune -o -type f -print))
endif
deb: $(DEB)
$(DEB): $(DEB_SRCS)
	rm -rf build-deb/src && mkdir -p build-deb/src/tarnfs-$(DEB_VERSION)
	{ git ls-files -z --cached --others --exclude-standard 2>/dev/null || find . \( -path './build*' -o -path ./.git \) -prune -o -type f -print0; } | \
	  tar -c --null --ignore-failed-read -T - | tar -x -C build-deb/src/tarnfs-$(DEB_VERSION)
	rm -f build-deb/tarnfs_$(DEB_VERSION)_* build-deb/tarnfs-dbgsym_$(DEB_VERSION)_*
	cd build-deb/src/tarnfs-$(DEB_VERSION) && dpkg-buildpackage -us -uc -b -j$(JOBS) > ../build.log 2>&1 || \
	  { tail -40 ../build.log; echo "deb: dpkg-buildpackage failed (build-deb/src/build.log)"; exit 1; }
	mv build-deb/src/tarnfs_$(DEB_VERSION)_* build-deb/src/tarnfs-dbgsym_$(DEB_VERSION)_* build-deb/
	lintian -I -E --pedantic --fail-on error,warning,info,pedantic,experimental build-deb/tarnfs_$(DEB_VERSION)_$(DEB_ARCH).changes
	@echo "deb: $@"

clean:
	rm -rf build build-san build-tsan build-deb/src
