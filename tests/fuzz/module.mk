# tests/fuzz/: libFuzzer targets over the real code (fuzz_*.c), their seed
# corpora (corpus/TARGET/), a plain-main replay driver for `make check`
# (tests/suites/08-fuzz.sh) and `make fuzz`.  doc/testing.md, "Fuzzing".
FUZZ_TARGETS := rpc ingest s3xml config tix
FUZZ_LIBS    := $(NFSD_LIB) $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang-14
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined

# Replay drivers (any compiler; `make check` builds them with gcc + ASan).
$(B)/tests/fuzz/replay-%: $(B)/tests/fuzz/replay.o $(B)/tests/fuzz/fuzz_%.o \
                          $(B)/tests/fuzz/fuzz_util.o $(FUZZ_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) -ldl

# The fuzz-only helper that writes the seed corpora (tests/fuzz/mkseeds.c).
$(B)/tests/fuzz/mkseeds: $(B)/tests/fuzz/mkseeds.o $(B)/tests/fuzz/fuzz_util.o $(FUZZ_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

TEST_PROGRAMS += $(FUZZ_TARGETS:%=$(B)/tests/fuzz/replay-%) $(B)/tests/fuzz/mkseeds

# libFuzzer binaries: only in the build-fuzz/ tree that `make fuzz` makes
# with clang (SANFLAGS there carry -fsanitize=fuzzer-no-link).
$(B)/fuzz-%: $(B)/tests/fuzz/fuzz_%.o $(B)/tests/fuzz/fuzz_util.o $(FUZZ_LIBS)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_ALL) -ldl

.PHONY: fuzz fuzz-build fuzz-targets
fuzz-targets: $(FUZZ_TARGETS:%=$(B)/fuzz-%)

# clang warns about GCC-only warning names in #pragmas; everything else
# stays -Werror.
fuzz-build:
	$(MAKE) SAN=1 B=build-fuzz CC=$(FUZZ_CC) \
	  WARN='$(WARN) -Wno-unknown-warning-option' SANFLAGS='$(FUZZ_SAN)' fuzz-targets

# Each target for FUZZ_SECONDS, one process each (the machine is shared);
# new inputs that add coverage are merged into tests/fuzz/corpus/TARGET/.
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/fuzz/run.sh $(or $(FUZZ),$(FUZZ_TARGETS))
