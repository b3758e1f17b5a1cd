# tests/vfs/: Check tests of vfs/: cache mode (test_vfs_cache) and the
# tarball namespace on a NAS directory (test_vfs_source).
VFS_TEST_LIBS = $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)

$(B)/tests/vfs/test_vfs_cache: $(B)/tests/vfs/test_vfs_cache.o $(VFS_TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/vfs/test_vfs_cache

$(B)/tests/vfs/test_vfs_source: $(B)/tests/vfs/test_vfs_source.o $(VFS_TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/vfs/test_vfs_source

$(B)/tests/vfs/test_vfs_s3: $(B)/tests/vfs/test_vfs_s3.o $(VFS_TEST_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)
TEST_PROGRAMS += $(B)/tests/vfs/test_vfs_s3
