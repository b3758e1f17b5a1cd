# fetch/: built into $(B)/libfetch.a from every .c file in this directory.
FETCH_SRCS := $(wildcard fetch/*.c)
FETCH_OBJS := $(FETCH_SRCS:%.c=$(B)/%.o)
FETCH_LIB  := $(B)/libfetch.a

$(FETCH_LIB): $(FETCH_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
