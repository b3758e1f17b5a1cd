# tests/index/: Check unit tests of the run index (kvstore/tarindex.c,
# kvstore/tarscan.c), run by suite 15-index.
$(B)/tests/index/test_tix: $(B)/tests/index/test_tix.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/index/test_tix

$(B)/tests/index/tixcheck: $(B)/tests/index/tixcheck.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)
TEST_PROGRAMS += $(B)/tests/index/tixcheck
