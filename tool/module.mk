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
