# vfs/: built into $(B)/libvfs.a from every .c file in this directory.
VFS_SRCS := $(wildcard vfs/*.c)
VFS_OBJS := $(VFS_SRCS:%.c=$(B)/%.o)
VFS_LIB  := $(B)/libvfs.a

$(VFS_LIB): $(VFS_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
