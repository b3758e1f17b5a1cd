/* nfsop.c: one operation (mkdir, rmdir, unlink, rename, truncate, mtime, write at an offset) through libnfs against a server, for the write-back and streaming tests; prints the server's error and exits 1 if it fails. */
#include <nfsc/libnfs.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: nfsop nfs://HOST/EXPORT?nfsport=N&mountport=M "
                        "mkdir|rmdir|unlink|mtime PATH | rename FROM TO | truncate PATH SIZE\n"
                        "       | write PATH OFFSET (the bytes of stdin, into an existing file)\n");
        return 2;
    }
    struct nfs_context *nfs = nfs_init_context();
    if (!nfs) {
        fprintf(stderr, "nfsop: cannot create an NFS context\n");
        return 1;
    }
    struct nfs_url *u = nfs_parse_url_dir(nfs, argv[1]);
    if (!u) {
        fprintf(stderr, "nfsop: bad URL: %s\n", nfs_get_error(nfs));
        nfs_destroy_context(nfs);
        return 2;
    }
    int rc = nfs_mount(nfs, u->server, u->path);
    if (rc == 0) {
        if (!strcmp(argv[2], "mkdir"))
            rc = nfs_mkdir(nfs, argv[3]);
        else if (!strcmp(argv[2], "unlink"))
            rc = nfs_unlink(nfs, argv[3]);
        else if (!strcmp(argv[2], "rmdir"))
            rc = nfs_rmdir(nfs, argv[3]);
        else if (!strcmp(argv[2], "rename") && argc > 4)
            rc = nfs_rename(nfs, argv[3], argv[4]);
        else if (!strcmp(argv[2], "mtime")) {   /* prints the seconds */
            struct nfs_stat_64 st;
            rc = nfs_stat64(nfs, argv[3], &st);
            if (!rc)
                printf("%llu\n", (unsigned long long)st.nfs_mtime);
        } else if (!strcmp(argv[2], "truncate") && argc > 4) {
            rc = nfs_truncate(nfs, argv[3], strtoull(argv[4], NULL, 0));
        } else if (!strcmp(argv[2], "write") && argc > 4) {
            struct nfsfh *fh = NULL;
            uint64_t off = strtoull(argv[4], NULL, 0);
            char buf[65536];
            size_t n;
            rc = nfs_open(nfs, argv[3], O_WRONLY, &fh);
            while (rc == 0 && (n = fread(buf, 1, sizeof buf, stdin)) > 0) {
                int w = nfs_pwrite(nfs, fh, off, n, buf);
                if (w < 0 || (size_t)w != n)
                    rc = -1;
                off += n;
            }
            if (fh && nfs_close(nfs, fh) && rc == 0)
                rc = -1;
        } else {
            fprintf(stderr, "nfsop: unknown operation %s\n", argv[2]);
            rc = -1;
        }
    }
    if (rc)
        fprintf(stderr, "nfsop: %s: %s\n", argv[2], nfs_get_error(nfs));
    nfs_destroy_url(u);
    nfs_destroy_context(nfs);
    return rc ? 1 : 0;
}
