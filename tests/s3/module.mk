# tests/s3/: the throwaway Ceph RGW scripts (rgw-start.sh, rgw-stop.sh) and
# s3tool, a small S3 client over fetch/ that they and other suites use.
$(B)/tests/s3/s3tool: $(B)/tests/s3/s3tool.o $(FETCH_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)
TEST_PROGRAMS += $(B)/tests/s3/s3tool
