/* ixmut.c: test helper: rewrite a run index file as a hostile one, valid in form (it parses, names the same tarball) but lying about where members' data is. */
/*
 * Usage: ixmut FILE MODE A [B]   (A, B: member numbers in index order)
 *   swap     A and B exchange their data offsets (each keeps its CRCs)
 *   header   A's data offset moved 512 bytes back, onto its tar header
 *   overlap  B's data starts one byte after A's
 *   grow     A claims 100 bytes more than it has (same chunk count)
 *   tail     A's data is the last bytes of the tarball
 *   linkloop A and B become hard links to each other
 * The file is rewritten in place.  Exit 0, or 1 with a message.
 */
#include "kvstore/tarindex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Apply mode to ms (count members of ix); 0 or EINVAL. */
static int mutate(struct tix_member *ms, size_t count, const tix_index *ix,
                  const char *mode, size_t a, size_t b)
{
    if (a >= count || b >= count)
        return EINVAL;
    if (strcmp(mode, "swap") == 0) {
        uint64_t t = ms[a].data_off;
        ms[a].data_off = ms[b].data_off;
        ms[b].data_off = t;
    } else if (strcmp(mode, "header") == 0 && ms[a].data_off >= 512) {
        ms[a].data_off -= 512;
    } else if (strcmp(mode, "overlap") == 0) {
        ms[b].data_off = ms[a].data_off + 1;
    } else if (strcmp(mode, "grow") == 0) {
        ms[a].size += 100;
    } else if (strcmp(mode, "tail") == 0 && ms[a].size <= tix_get_source(ix)->size) {
        ms[a].data_off = tix_get_source(ix)->size - ms[a].size;
    } else if (strcmp(mode, "linkloop") == 0 && a != b) {
        struct tix_member *x = &ms[a], *y = &ms[b];
        const char *xp = x->path, *yp = y->path;
        for (int k = 0; k < 2; k++) {
            struct tix_member *m = k ? y : x;
            m->type = TIX_HARDLINK;
            m->link = k ? xp : yp;
            m->size = m->data_off = m->ino = 0;
            m->nsums = 0;
            m->sums = NULL;
        }
    } else {
        return EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: ixmut FILE MODE A [B]\n");
        return 2;
    }
    size_t len = 0;
    void *buf = slurp(argv[1], &len);
    if (!buf) {
        fprintf(stderr, "ixmut: cannot read %s\n", argv[1]);
        return 1;
    }
    tix_index *ix;
    char err[256] = "";
    int rc = tix_parse(buf, len, &ix, err, sizeof err);
    free(buf);
    if (rc) {
        fprintf(stderr, "ixmut: %s: %s\n", argv[1], err);
        return 1;
    }
    size_t count = tix_count(ix);
    struct tix_member *ms = calloc(count ? count : 1, sizeof *ms);
    for (size_t i = 0; ms && i < count; i++)
        tix_get(ix, i, &ms[i]);
    size_t a = strtoul(argv[3], NULL, 10), b = argc > 4 ? strtoul(argv[4], NULL, 10) : a;
    rc = ms ? mutate(ms, count, ix, argv[2], a, b) : ENOMEM;
    tix_writer *w = NULL;
    if (!rc)
        rc = tix_writer_new(&w);
    for (size_t i = 0; !rc && i < count; i++)
        rc = tix_writer_add(w, &ms[i]);
    void *out = NULL;
    size_t outlen = 0;
    if (!rc)
        rc = tix_writer_finish(w, tix_get_source(ix), &out, &outlen);
    tix_writer_free(w);
    free(ms);
    tix_free(ix);
    FILE *f = rc ? NULL : fopen(argv[1], "wb");
    if (!rc && (!f || fwrite(out, 1, outlen, f) != outlen))
        rc = EIO;
    if (f && fclose(f) != 0)
        rc = EIO;
    free(out);
    if (rc) {
        fprintf(stderr, "ixmut: %s %s: %s\n", argv[1], argv[2], strerror(rc));
        return 1;
    }
    return 0;
}
