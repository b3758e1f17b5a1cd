# tests/convert/: convert_fault runs `tarnfs convert` with an S3 fault hook
# (a window of HTTP 500s) for 60-convert; lib.sh and s3.sh are sourced by
# tests/suites/60-convert.sh.
$(B)/tests/convert/convert_fault: $(B)/tests/convert/convert_fault.o $(TOOL_LIB) $(CONVERT_LIB) $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

TEST_PROGRAMS += $(B)/tests/convert/convert_fault
