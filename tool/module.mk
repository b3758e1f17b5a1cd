# tool/: the tarnfs program (tarnfs.c's subcommand table, cmd_*.c, cli.c).
TOOL_SRCS := $(filter-out tool/tarnfs.c,$(wildcard tool/*.c))
TOOL_OBJS := $(TOOL_SRCS:%.c=$(B)/%.o)
TOOL_LIB  := $(B)/libtool.a

$(TOOL_LIB): $(TOOL_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/tarnfs: $(B)/tool/tarnfs.o $(TOOL_LIB) $(CONVERT_LIB) $(VFS_LIB) $(FETCH_LIB) $(KVSTORE_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

PROGRAMS += $(B)/tarnfs

# TRANSITIONAL: cmd_ingest.c still calls kv_ingest and used to get
# kvstore/kvfs.h and cli_open_cache through tool/cli.h, which now uses vfs
# only; tool/cli_ingest.h gives them to that one file.  Remove with it.
$(B)/tool/cmd_ingest.o: CPPFLAGS_ALL += -include tool/cli_ingest.h
