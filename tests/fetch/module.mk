# tests/fetch/: Check tests of fetch/ (NAS backend, SigV4 signer, S3 against
# a real Ceph RGW) and the s3tool helper other suites use to drive RGW.
$(B)/tests/fetch/test_nas: $(B)/tests/fetch/test_nas.o $(FETCH_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/fetch/test_nas

$(B)/tests/fetch/test_sigv4: $(B)/tests/fetch/test_sigv4.o $(FETCH_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/fetch/test_sigv4

$(B)/tests/fetch/test_s3: $(B)/tests/fetch/test_s3.o $(FETCH_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/fetch/test_s3
