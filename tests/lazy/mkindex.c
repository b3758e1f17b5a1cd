/* mkindex.c: test helper: build the index of tarball KEY in a NAS directory or S3 bucket with tix_scan and store it as its sidecar KEY.tarnfs-index (what `tarnfs index` does for a whole source). */
#include "fetch/fetch.h"
#include "kvstore/tarindex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pull {
    const unsigned char *p;
    size_t n, pos;
};

static ssize_t pull_mem(void *arg, void *buf, size_t cap)
{
    struct pull *m = arg;
    size_t k = m->n - m->pos < cap ? m->n - m->pos : cap;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

static ssize_t read_stream(void *arg, void *buf, size_t cap)
{
    return fetch_read(arg, buf, cap);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mkindex SOURCE KEY\n");
        return 2;
    }
    char err[512] = "";
    fetch_backend *b;
    int rc = fetch_open(argv[1], NULL, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "mkindex: %s: %s\n", argv[1], err[0] ? err : strerror(rc));
        return 1;
    }
    struct fetch_objinfo oi;
    rc = fetch_stat(b, argv[2], &oi);
    fetch_stream *s = NULL;
    if (!rc)
        rc = fetch_get(b, argv[2], 0, 0, &s);
    if (rc) {
        fprintf(stderr, "mkindex: %s: %s\n", argv[2], strerror(rc));
        return 1;
    }
    struct tix_source src = { .size = oi.size };
    snprintf(src.version, sizeof src.version, "%s", oi.version);
    snprintf(src.sha256, sizeof src.sha256, "%s", oi.sha256);
    void *ix;
    size_t len;
    rc = tix_scan(read_stream, s, &src, NULL, NULL, &ix, &len, err, sizeof err);
    fetch_stream_close(s);
    if (rc) {
        fprintf(stderr, "mkindex: scanning %s: %s\n", argv[2], err);
        return 1;
    }
    char key[1200];
    snprintf(key, sizeof key, "%s%s", argv[2], TIX_SUFFIX);
    struct pull m = { ix, len, 0 };
    rc = fetch_put(b, key, pull_mem, &m, NULL, NULL);
    free(ix);
    fetch_close(b);
    if (rc) {
        fprintf(stderr, "mkindex: storing %s: %s\n", key, strerror(rc));
        return 1;
    }
    printf("%zu\n", len);
    return 0;
}
