# convert/: the tarnfs tool (subcommands ingest, ls, cat, cache, convert, ...).
CONVERT_SRCS := $(filter-out convert/tarnfs.c,$(wildcard convert/*.c))
CONVERT_OBJS := $(CONVERT_SRCS:%.c=$(B)/%.o)
CONVERT_LIB  := $(B)/libconvert.a

$(CONVERT_LIB): $(CONVERT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/tarnfs: $(B)/convert/tarnfs.o $(CONVERT_LIB) $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

PROGRAMS += $(B)/tarnfs
