# kvstore/: built into $(B)/libkvstore.a from every .c file in this directory.
KVSTORE_SRCS := $(wildcard kvstore/*.c)
KVSTORE_OBJS := $(KVSTORE_SRCS:%.c=$(B)/%.o)
KVSTORE_LIB  := $(B)/libkvstore.a

$(KVSTORE_LIB): $(KVSTORE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
