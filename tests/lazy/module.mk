# tests/lazy/: index-first runs end to end (suite 45-lazy): mkindex, a test
# helper that writes a tarball's index sidecar with tix_scan.
$(B)/tests/lazy/mkindex: $(B)/tests/lazy/mkindex.o $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)
TEST_PROGRAMS += $(B)/tests/lazy/mkindex
# test_evict: dropping file data of index-first runs in kvstore (Check).
$(B)/tests/lazy/test_evict: $(B)/tests/lazy/test_evict.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/lazy/test_evict
# fhkeep: reads one file again and again through one kept NFS file handle.
$(B)/tests/lazy/fhkeep: $(B)/tests/lazy/fhkeep.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS)
TEST_PROGRAMS += $(B)/tests/lazy/fhkeep
# mkwide: writes a tarball of a wide run (many small files, RunInfo.xml last).
$(B)/tests/lazy/mkwide: $(B)/tests/lazy/mkwide.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)
TEST_PROGRAMS += $(B)/tests/lazy/mkwide
# ixmut: rewrites an index sidecar as a hostile one (offsets that lie, link loops).
$(B)/tests/lazy/ixmut: $(B)/tests/lazy/ixmut.o $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)
TEST_PROGRAMS += $(B)/tests/lazy/ixmut
