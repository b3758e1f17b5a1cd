# tests/genrun/: the synthetic Illumina run folder generator, $(B)/genrun,
# used by the ingest tests, the demo and the benchmarks.
$(B)/genrun: $(B)/tests/genrun/genrun.o $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^

TEST_PROGRAMS += $(B)/genrun
