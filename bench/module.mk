# bench/: benchmark programs; each bench/*/module.mk adds its own.
include $(wildcard bench/*/module.mk)
