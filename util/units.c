/* units.c: parses sizes ("64M") and durations ("2h") for every program, with no sign, overflow or trailing junk accepted. */
#include "util/units.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* Leading decimal digits of s as *v; *end after them.  EINVAL: none;
 * ERANGE: over UINT64_MAX. */
static int digits(const char *s, uint64_t *v, const char **end)
{
    uint64_t x = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return ERANGE;
        x = x * 10 + d;
    }
    if (p == s)
        return EINVAL;
    *v = x;
    *end = p;
    return 0;
}

int units_size(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *end;
    int err = digits(s, &v, &end);
    if (err)
        return err;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: break;
    }
    if (shift)
        end++;
    if (*end && strcasecmp(end, "B") && !(shift && !strcasecmp(end, "iB")))
        return EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return ERANGE;
    *out = v << shift;
    return 0;
}

int units_duration_ms(const char *s, uint64_t *out)
{
    uint64_t whole, frac = 0, scale = 1;
    const char *end;
    int err = digits(s, &whole, &end);
    if (err)
        return err;
    if (*end == '.') {
        const char *f = end + 1;
        for (end = f; isdigit((unsigned char)*end); end++)
            if (scale < 1000000000u) {
                frac = frac * 10 + (uint64_t)(*end - '0');
                scale *= 10;
            }
        if (end == f)
            return EINVAL;
    }
    uint64_t mult;
    if (!*end || !strcmp(end, "s"))
        mult = 1000;
    else if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "m"))
        mult = 60u * 1000;
    else if (!strcmp(end, "h"))
        mult = 3600u * 1000;
    else if (!strcmp(end, "d"))
        mult = 86400u * 1000;
    else
        return EINVAL;
    const uint64_t max = (uint64_t)1 << 63;
    if (whole > max / mult)
        return ERANGE;
    uint64_t ms = whole * mult + frac * mult / scale;
    if (ms > max)
        return ERANGE;
    *out = ms;
    return 0;
}
