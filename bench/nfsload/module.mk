# bench/nfsload/: the NFSv3 load generator (nfsload, libnfs async API) and
# tcp-ceiling (loopback TCP bound).  Owned by the benchmark harness; it uses
# only libnfs, never tarnfs's server modules, so it measures any NFS server
# (util/units, a pure parser, reads its sizes as the other programs do).
NFSLOAD_SRCS := bench/nfsload/nfsload.c bench/nfsload/conn.c \
                bench/nfsload/stats.c bench/nfsload/tree.c \
                bench/nfsload/workloads.c
NFSLOAD_OBJS := $(NFSLOAD_SRCS:%.c=$(B)/%.o)

$(B)/nfsload: $(NFSLOAD_OBJS) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(NFS_LIBS)

$(B)/tcp-ceiling: $(B)/bench/nfsload/tcp_ceiling.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpthread

PROGRAMS += $(B)/nfsload $(B)/tcp-ceiling

# rpcblast: pipelined GETATTR/READ/READDIRPLUS over raw TCP with libtirpc,
# replies skimmed, for bench/scale's lean-client table.
$(B)/rpcblast: $(B)/bench/nfsload/rpcblast.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell pkg-config --libs libtirpc)

PROGRAMS += $(B)/rpcblast
