# nfsd/: the tarnfsd program: RPC transport, NFSv3 and MOUNT v3 dispatch,
# exports, file handles.  It calls vfs/ (vfs/vfs.h) and util/ only, never
# kvstore/ or fetch/.  RFC 1813 .x files are turned into XDR code by rpcgen
# at build time, into $(B)/nfsd/.  Design: doc/design/nfsd.md.
NFSD_X      := nfsd/nfs3_prot.x nfsd/mount3_prot.x nfsd/nlm4_prot.x
NFSD_XGEN_H := $(NFSD_X:%.x=$(B)/%.h)
NFSD_XGEN_C := $(NFSD_X:%.x=$(B)/%_xdr.c)
GENERATED   += $(NFSD_XGEN_H)

NFSD_SRCS := $(filter-out nfsd/tarnfsd.c,$(wildcard nfsd/*.c))
NFSD_OBJS := $(NFSD_SRCS:%.c=$(B)/%.o) $(NFSD_XGEN_C:%.c=%.o)
NFSD_LIB  := $(B)/libnfsd.a

$(B)/nfsd/%.h: nfsd/%.x
	@mkdir -p $(dir $@)
	rm -f $@ && rpcgen -h -o $@ $<

$(B)/nfsd/%_xdr.c: nfsd/%.x $(B)/nfsd/%.h
	@mkdir -p $(dir $@)
	rm -f $@ && rpcgen -c -o $@ $<

# rpcgen output is not -Wextra clean; compile it with relaxed warnings.
$(B)/nfsd/%_xdr.o: $(B)/nfsd/%_xdr.c
	$(CC) -std=c11 $(CFLAGS) $(SANFLAGS) $(CPPFLAGS_ALL) -w -c $< -o $@

$(NFSD_LIB): $(NFSD_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/tarnfsd: $(B)/nfsd/tarnfsd.o $(NFSD_LIB) $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

PROGRAMS += $(B)/tarnfsd
