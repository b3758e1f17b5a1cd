# tests/util/: Check unit tests of util/ (safe_write_file).
$(B)/tests/util/test_safefile: $(B)/tests/util/test_safefile.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/util/test_safefile
