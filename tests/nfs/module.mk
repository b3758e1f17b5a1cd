# tests/nfs/: tarnfsd against real clients (libnfs) and raw RPC bytes; run by
# tests/suites/50-nfs.sh, which builds the caches they read.
$(B)/tests/nfs/test_nfs: $(B)/tests/nfs/test_nfs.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS) $(CHECK_LIBS) -lpthread

$(B)/tests/nfs/test_rpc_wire: $(B)/tests/nfs/test_rpc_wire.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) -lpthread

$(B)/tests/nfs/test_transport: $(B)/tests/nfs/test_transport.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) -lpthread

$(B)/tests/nfs/test_park: $(B)/tests/nfs/test_park.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) -lpthread

TEST_PROGRAMS += $(B)/tests/nfs/test_nfs $(B)/tests/nfs/test_rpc_wire $(B)/tests/nfs/test_transport
TEST_PROGRAMS += $(B)/tests/nfs/test_park

# RFC 1813 edge cases, procedure by procedure, with libnfs's raw client.
$(B)/tests/nfs/test_nfs_proto: $(B)/tests/nfs/test_nfs_proto.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS) $(CHECK_LIBS) -lpthread

TEST_PROGRAMS += $(B)/tests/nfs/test_nfs_proto

# Config parsing, file handles and the metrics counters, no network (metrics.o
# pulls in the dispatcher's tables and so vfs).
$(B)/tests/nfs/test_nfsd_units: $(B)/tests/nfs/test_nfsd_units.o $(NFSD_LIB) $(VFS_LIB) \
		$(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

TEST_PROGRAMS += $(B)/tests/nfs/test_nfsd_units

# The NLM lock table, no network.
$(B)/tests/nfs/test_nlm_lock: $(B)/tests/nfs/test_nlm_lock.o $(NFSD_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

TEST_PROGRAMS += $(B)/tests/nfs/test_nlm_lock

# The NLM callback sender against a hostile rpcbind (run in a private
# network namespace: it takes UDP port 111).
$(B)/tests/nfs/test_nlm_cb: $(B)/tests/nfs/test_nlm_cb.o $(NFSD_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

TEST_PROGRAMS += $(B)/tests/nfs/test_nlm_cb

# NLM v4 with libnfs's raw client (plus nlm_wire.c: libtirpc for what libnfs lacks).
$(B)/tests/nfs/test_nlm: $(B)/tests/nfs/test_nlm.o $(B)/tests/nfs/nlm_wire.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS) $(CHECK_LIBS) $(LDLIBS_ALL)

TEST_PROGRAMS += $(B)/tests/nfs/test_nlm

# fsx: seeded random WRITE/READ/SETATTR/COMMIT against shadow copies, with a
# second client and restarts (its own NAS source: tarballs made with libarchive).
$(B)/tests/nfs/fsx: $(B)/tests/nfs/fsx.o $(B)/tests/nfs/server.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS) $(LDLIBS_ALL)

TEST_PROGRAMS += $(B)/tests/nfs/fsx
