# util/: small shared helpers used by every module: logging, option
# messages, the persisted hash, the tarball suffix table, units, hex,
# the tarnfs.conf reader, the settings tables' generic side, the decision
# clock.
UTIL_SRCS := $(wildcard util/*.c)
UTIL_OBJS := $(UTIL_SRCS:%.c=$(B)/%.o)
UTIL_LIB  := $(B)/libutil.a

$(UTIL_LIB): $(UTIL_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
