# util/: small shared helpers (logging) used by every module.
UTIL_SRCS := $(wildcard util/*.c)
UTIL_OBJS := $(UTIL_SRCS:%.c=$(B)/%.o)
UTIL_LIB  := $(B)/libutil.a

$(UTIL_LIB): $(UTIL_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
