/* units.h: sizes and durations as people write them ("64M", "2h"), parsed
 * the same way by every program (tarnfsd's config, tarnfs convert). */
#ifndef TARNFS_UNITS_H
#define TARNFS_UNITS_H

#include <stdint.h>

/* Parse a byte count: digits, then optionally K, M, G or T (binary:
 * 2^10...2^40), then optionally "B" or "iB" (any case), or a bare "B".
 * No sign, no spaces.  Errors: EINVAL (not a size), ERANGE (over
 * 2^64 - 1). */
int units_size(const char *s, uint64_t *out);

/* Parse a duration into milliseconds: a number (digits, optionally a
 * fraction) then ms, s, m, h or d; a bare number is seconds.  No sign, no
 * spaces.  Errors: EINVAL (not a duration), ERANGE (over 2^63 ms). */
int units_duration_ms(const char *s, uint64_t *out);

#endif
