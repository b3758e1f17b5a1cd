# bench/convert/: `tarnfs convert` to S3 against `tar | curl`; s3sign signs
# curl's streamed PUT with fetch/'s SigV4 signer (curl 7.88's own cannot).
$(B)/bench/convert/s3sign: $(B)/bench/convert/s3sign.o $(FETCH_LIB) $(UTIL_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

PROGRAMS += $(B)/bench/convert/s3sign
