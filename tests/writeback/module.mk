# tests/writeback/: the writable tarball namespace end to end (suite
# 65-writeback); nfsop does the namespace operations nfs-cp cannot.
$(B)/tests/writeback/nfsop: $(B)/tests/writeback/nfsop.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS)

TEST_PROGRAMS += $(B)/tests/writeback/nfsop
