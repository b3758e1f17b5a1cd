# tests/soak/: `make soak` (tests/soak/soak.sh): soakclient runs many libnfs
# clients, one thread and context each, against a tarnfsd.
$(B)/tests/soak/soakclient: $(B)/tests/soak/soakclient.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS) -lpthread

TEST_PROGRAMS += $(B)/tests/soak/soakclient
