/* fuzz_tix.c: libFuzzer target: the run index parser (tix_parse,
 * kvstore/tarindex.h), and for an index it accepts, every member read back
 * and a run built from it (kv_ingest_index) in a scratch cache.
 *
 * Input: byte 0 picks the framing (mod 3): 0 the rest is the index as it
 * is; 1 the rest gets its SHA-256 trailer appended (so mutations get past
 * the checksum); 2 byte 1 is a header length h, and the index is made
 * as "TARNFSIX" | version 1 | the next h bytes (the varint header) |
 * zlib(the remaining bytes, the member stream) | SHA-256, so the fuzzer
 * mutates the members themselves. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kvstore/kvfs.h"
#include "kvstore/tarindex.h"
#include "tests/fuzz/fuzz_util.h"
#include "util/log.h"

static kv_cache *cache;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    log_setup("fuzz", 0, getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    int rc = kv_cache_open(fuzz_scratch_dir("tix"), true, &cache);
    if (rc) {
        fprintf(stderr, "fuzz: kv_cache_open: %s\n", strerror(rc));
        abort();
    }
    return 0;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        abort();
}

/* The index bytes for this input (malloc'd), per the framing above. */
static uint8_t *frame(const uint8_t *data, size_t size, size_t *out_len)
{
    int mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    uint8_t *buf;
    if (mode == 0) {
        buf = malloc(len ? len : 1);
        if (buf)
            memcpy(buf, p, len);
        *out_len = len;
        return buf;
    }
    if (mode == 1) {
        buf = malloc(len + 32);
        if (!buf)
            return NULL;
        memcpy(buf, p, len);
        sha256(buf, len, buf + len);
        *out_len = len + 32;
        return buf;
    }
    if (len < 1)
        return NULL;
    size_t h = p[0] < len - 1 ? p[0] : len - 1;
    const uint8_t *hdr = p + 1, *body = p + 1 + h;
    size_t blen = len - 1 - h;
    uLongf zcap = compressBound((uLong)blen);
    buf = malloc(12 + h + zcap + 32);
    if (!buf)
        return NULL;
    memcpy(buf, "TARNFSIX\x01\x00\x00\x00", 12);
    memcpy(buf + 12, hdr, h);
    if (compress(buf + 12 + h, &zcap, body, (uLong)blen) != Z_OK) {
        free(buf);
        return NULL;
    }
    size_t n = 12 + h + zcap;
    sha256(buf, n, buf + n);
    *out_len = n + 32;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len;
    uint8_t *buf = frame(data, size, &len);
    if (!buf)
        return 0;
    tix_index *ix = NULL;
    char err[256];
    if (tix_parse(buf, len, &ix, err, sizeof err) == 0) {
        size_t n = tix_count(ix);
        struct tix_member m;
        for (size_t i = 0; i < n; i++) {
            if (tix_get(ix, i, &m) != 0)
                abort();    /* every counted member is there */
            if (strlen(m.path) > TIX_PATH_MAX)
                abort();
        }
        if (tix_get(ix, n, &m) == 0)
            abort();
        tix_matches(ix, tix_get_source(ix));
        struct kv_ingest_result res;
        if (kv_ingest_index(cache, "fz", ix, "fuzz", &res) == 0 &&
            kv_cache_evict(cache, "fz") != 0)
            abort();
        tix_free(ix);
    }
    free(buf);
    return 0;
}
