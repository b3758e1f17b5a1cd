# tests/writeback/: the writable tarball namespace end to end (suite
# 65-writeback); nfsop does the namespace operations nfs-cp cannot.
$(B)/tests/writeback/nfsop: $(B)/tests/writeback/nfsop.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS)

TEST_PROGRAMS += $(B)/tests/writeback/nfsop

# nfsdeep: thousands of nested directories by handle, for the deep-tree test.
$(B)/tests/writeback/nfsdeep: $(B)/tests/writeback/nfsdeep.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS)

TEST_PROGRAMS += $(B)/tests/writeback/nfsdeep
