/* hex.h: bytes to hex digits and back, one way for every module (SHA-256
 * and MD5 digests in sidecars, S3 headers and signatures, run names). */
#ifndef TARNFS_HEX_H
#define TARNFS_HEX_H

#include <stdbool.h>
#include <stddef.h>

/* Write n bytes as 2n lowercase hex digits and a NUL into out (2n + 1
 * bytes).  Never fails. */
void hex_encode(const void *bytes, size_t n, char *out);

/* The value of hex digit c (either case), or -1 when c is not one. */
int hex_digit(char c);

/* Decode the 2n hex digits at s (either case) into n bytes at out.
 * Errors: EINVAL (a character is not a hex digit; out is then partly
 * written). */
int hex_decode(const char *s, size_t n, void *out);

/* True when the n characters at s are all hex digits (only 0-9a-f when
 * lower_only). */
bool hex_is(const char *s, size_t n, bool lower_only);

#endif
