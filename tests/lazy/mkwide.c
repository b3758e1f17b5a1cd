/* mkwide.c: test helper: write a tarball of one wide run to stdout, DIRS directories of FILES one-byte files under TOP/Data/, and TOP/RunInfo.xml as its very last member (where an index built in tar order would place it last). */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(struct archive *a, const char *path, int type, const char *data,
               size_t len)
{
    struct archive_entry *e = archive_entry_new();
    if (!e)
        return -1;
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, (unsigned)type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(e, type == AE_IFDIR ? 0 : (la_int64_t)len);
    archive_entry_set_mtime(e, 1733000000, 0);
    int r = archive_write_header(a, e);
    if (r == ARCHIVE_OK && len && archive_write_data(a, data, len) != (la_ssize_t)len)
        r = ARCHIVE_FATAL;
    archive_entry_free(e);
    return r == ARCHIVE_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: mkwide TOP DIRS FILES > run.tar\n");
        return 2;
    }
    const char *top = argv[1];
    long dirs = atol(argv[2]), files = atol(argv[3]);
    struct archive *a = archive_write_new();
    if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, NULL) != ARCHIVE_OK) {
        fprintf(stderr, "mkwide: cannot write to stdout\n");
        return 1;
    }
    char path[4096];
    int bad = add(a, top, AE_IFDIR, NULL, 0);
    snprintf(path, sizeof path, "%s/Data", top);
    bad |= add(a, path, AE_IFDIR, NULL, 0);
    for (long d = 0; d < dirs && !bad; d++) {
        snprintf(path, sizeof path, "%s/Data/d%03ld", top, d);
        bad |= add(a, path, AE_IFDIR, NULL, 0);
        for (long f = 0; f < files && !bad; f++) {
            snprintf(path, sizeof path, "%s/Data/d%03ld/f%05ld", top, d, f);
            bad |= add(a, path, AE_IFREG, "x", 1);
        }
    }
    static const char info[] = "<RunInfo>wide</RunInfo>\n";
    snprintf(path, sizeof path, "%s/RunInfo.xml", top);
    bad |= add(a, path, AE_IFREG, info, sizeof info - 1);
    if (archive_write_close(a) != ARCHIVE_OK)
        bad = 1;
    archive_write_free(a);
    if (bad) {
        fprintf(stderr, "mkwide: writing the tarball failed\n");
        return 1;
    }
    return 0;
}
