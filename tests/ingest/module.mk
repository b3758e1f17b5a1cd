# tests/ingest/: Check unit tests of kv_ingest (every format, placement and
# hostile-archive case) and the end-to-end script e2e.sh.
$(B)/tests/ingest/test_ingest: $(B)/tests/ingest/test_ingest.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/ingest/test_ingest
$(B)/tests/ingest/test_lazy: $(B)/tests/ingest/test_lazy.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/ingest/test_lazy
