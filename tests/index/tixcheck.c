/* tixcheck.c: test helper: checks a run index against its tarball (trust, every range's CRCs) and lists its members. */
#include "kvstore/tarindex.h"
#include "util/hex.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* usage: tixcheck INDEX TARBALL [VERSION]
 * Parses INDEX, requires tix_matches against TARBALL's size and SHA-256
 * (and VERSION if given, with the SHA-256 left out), checks every regular
 * member's chunk CRCs against the bytes at data_off..+size of TARBALL, and
 * prints one line per member: "type data_off size nsums path[ -> link]".
 * Exit 0 if all holds, 1 otherwise (the reason on stderr). */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    for (;;) {
        if (n == cap)
            b = realloc(b, cap *= 2);
        size_t r = fread(b + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: tixcheck INDEX TARBALL [VERSION]\n");
        return 2;
    }
    size_t ilen, tlen;
    unsigned char *ib = slurp(argv[1], &ilen), *tb = slurp(argv[2], &tlen);
    if (!ib || !tb) {
        fprintf(stderr, "tixcheck: cannot read %s\n", !ib ? argv[1] : argv[2]);
        free(ib);
        free(tb);
        return 1;
    }
    tix_index *ix;
    char err[300];
    int rc = tix_parse(ib, ilen, &ix, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tixcheck: %s: %s (%s)\n", argv[1], err, strerror(rc));
        free(ib);
        free(tb);
        return 1;
    }
    struct tix_source actual;
    memset(&actual, 0, sizeof actual);
    actual.size = tlen;
    if (argc > 3) {
        snprintf(actual.version, sizeof actual.version, "%s", argv[3]);
    } else {
        unsigned char d[32];
        unsigned int dl;
        EVP_Digest(tb, tlen, d, &dl, EVP_sha256(), NULL);
        hex_encode(d, sizeof d, actual.sha256);
    }
    if (!tix_matches(ix, &actual)) {
        const struct tix_source *s = tix_get_source(ix);
        fprintf(stderr, "tixcheck: index does not match the tarball: index says %llu bytes, "
                "version '%s', sha256 '%s'; tarball %llu bytes, '%s', '%s'\n",
                (unsigned long long)s->size, s->version, s->sha256,
                (unsigned long long)actual.size, actual.version, actual.sha256);
        tix_free(ix);
        free(ib);
        free(tb);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < tix_count(ix); i++) {
        struct tix_member m;
        tix_get(ix, i, &m);
        printf("%u %llu %llu %u %s%s%s\n", m.type, (unsigned long long)m.data_off,
               (unsigned long long)m.size, m.nsums, m.path, m.link ? " -> " : "",
               m.link ? m.link : "");
        for (uint32_t k = 0; k < m.nsums; k++) {
            uint64_t o = (uint64_t)k * TIX_CHUNK;
            uint64_t cl = m.size - o < TIX_CHUNK ? m.size - o : TIX_CHUNK;
            if (tix_crc(tb + m.data_off + o, (size_t)cl) != m.sums[k]) {
                fprintf(stderr, "tixcheck: %s: chunk %u CRC mismatch\n", m.path, k);
                bad = 1;
            }
        }
    }
    tix_free(ix);
    free(ib);
    free(tb);
    return bad;
}
