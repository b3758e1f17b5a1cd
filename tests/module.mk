# tests/: each tests/*/module.mk adds its test programs to TEST_PROGRAMS;
# each executable tests/suites/NN-name.sh is one suite run by `make check`.
include $(wildcard tests/*/module.mk)
