# convert/: the converter library behind `tarnfs convert` (discovery, tree
# scan, tar writer, targets, verify); the tarnfs program itself is in tool/.
CONVERT_SRCS := $(wildcard convert/*.c)
CONVERT_OBJS := $(CONVERT_SRCS:%.c=$(B)/%.o)
CONVERT_LIB  := $(B)/libconvert.a

$(CONVERT_LIB): $(CONVERT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
