/* hex.c: hex encoding and decoding of byte strings (util/hex.h). */
#include "util/hex.h"

#include <errno.h>

void hex_encode(const void *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *s, size_t n, void *out)
{
    unsigned char *b = out;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit(s[2 * i + 1]);
        if (lo < 0)
            return EINVAL;
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

bool hex_is(const char *s, size_t n, bool lower_only)
{
    for (size_t i = 0; i < n; i++) {
        if (hex_digit(s[i]) < 0 || (lower_only && s[i] >= 'A' && s[i] <= 'F'))
            return false;
    }
    return true;
}
