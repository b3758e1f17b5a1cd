/* fhkeep.c: test helper: open one file through libnfs and keep its NFS file handle; each line "read OUT" on stdin reads the whole file through that same handle into OUT and prints its fileid, so a script can check a handle kept across evictions and restarts. */
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read the whole file behind fh into path; 0 or -1 (message on stderr). */
static int dump(struct nfs_context *nfs, struct nfsfh *fh, const char *path)
{
    struct nfs_stat_64 st;
    int rc = nfs_fstat64(nfs, fh, &st);
    if (rc < 0) {
        fprintf(stderr, "fhkeep: fstat: %s\n", nfs_get_error(nfs));
        return -1;
    }
    FILE *out = fopen(path, "wb");
    if (!out) {
        perror(path);
        return -1;
    }
    static char buf[1 << 20];
    uint64_t off = 0;
    while (off < st.nfs_size) {
        uint64_t want = st.nfs_size - off < sizeof buf ? st.nfs_size - off
                                                       : sizeof buf;
        rc = nfs_pread(nfs, fh, off, want, buf);
        if (rc <= 0) {
            fprintf(stderr, "fhkeep: read at %llu: %s\n",
                    (unsigned long long)off,
                    rc < 0 ? nfs_get_error(nfs) : "short");
            fclose(out);
            return -1;
        }
        fwrite(buf, 1, (size_t)rc, out);
        off += (uint64_t)rc;
    }
    if (fclose(out) != 0)
        return -1;
    printf("ino=%llu\n", (unsigned long long)st.nfs_ino);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fhkeep nfs://HOST/PATH?nfsport=N&mountport=M "
                "< commands (\"read OUT\" per line)\n");
        return 2;
    }
    struct nfs_context *nfs = nfs_init_context();
    if (!nfs)
        return 1;
    nfs_set_autoreconnect(nfs, -1);
    struct nfs_url *url = nfs_parse_url_full(nfs, argv[1]);
    if (!url) {
        fprintf(stderr, "fhkeep: %s\n", nfs_get_error(nfs));
        return 1;
    }
    struct nfsfh *fh = NULL;
    if (nfs_mount(nfs, url->server, url->path) != 0 ||
        nfs_open(nfs, url->file, O_RDONLY, &fh) != 0) {
        fprintf(stderr, "fhkeep: %s\n", nfs_get_error(nfs));
        return 1;
    }
    char line[4096];
    int status = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "read ", 5) == 0) {
            if (dump(nfs, fh, line + 5) != 0) {
                printf("error\n");
                fflush(stdout);
                status = 1;
            }
        }
    }
    nfs_close(nfs, fh);
    nfs_destroy_url(url);
    nfs_destroy_context(nfs);
    return status;
}
