# tests/kvstore/: Check unit tests of the Kyoto Cabinet filesystem.
$(B)/tests/kvstore/test_kvfs: $(B)/tests/kvstore/test_kvfs.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/kvstore/test_kvfs
