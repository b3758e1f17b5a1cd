# tests/util/: Check tests of util/ (suite 01-util).  test_phash also links
# the two consumers of the persisted hash (kvstore inode numbers, vfs names).
$(B)/tests/util/test_phash: $(B)/tests/util/test_phash.o $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

TEST_PROGRAMS += $(B)/tests/util/test_phash

$(B)/tests/util/test_tarsuffix: $(B)/tests/util/test_tarsuffix.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

TEST_PROGRAMS += $(B)/tests/util/test_tarsuffix
# tests/util/: Check unit tests of util/ (safe_write_file).
$(B)/tests/util/test_safefile: $(B)/tests/util/test_safefile.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_safefile
# The log rate limit (util/log.h).
$(B)/tests/util/test_loglimit: $(B)/tests/util/test_loglimit.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_loglimit
# BUG_ON (util/bug.h).
$(B)/tests/util/test_bug: $(B)/tests/util/test_bug.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_bug
# Sizes and durations (util/units.h).
$(B)/tests/util/test_units: $(B)/tests/util/test_units.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_units
# Hex encoding and decoding (util/hex.h).
$(B)/tests/util/test_hex: $(B)/tests/util/test_hex.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_hex
# The settings tables (util/settings.h), with tarnfsd's own (nfsd/config.c,
# vfs/settings.c) checked against tarnfs.conf(5).
$(B)/tests/util/test_settings: $(B)/tests/util/test_settings.o $(NFSD_LIB) $(VFS_LIB) \
		$(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_settings
# The decision clock (util/clock.h).
$(B)/tests/util/test_clock: $(B)/tests/util/test_clock.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_clock
