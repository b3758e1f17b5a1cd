/* mkseeds.c: writes the seed corpora of the fuzz targets that need the
 * real code to make them (tests/fuzz/corpus/{rpc,ingest,tix}/seed-*):
 * an RPC call for every NFS and MOUNT procedure carrying handles of the
 * fuzz_rpc fixture, small tarballs (plain and in each compression), and
 * indexes made by tix_scan.  Usage: mkseeds CORPUSDIR.  Run by hand when
 * the fixture or a format changes (doc/testing.md, "Fuzzing"). */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kvstore/tarindex.h"
#include "nfsd/nfsd.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { (void)argc; (void)argv; return 0; }
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { (void)data; (void)size; return 0; }

static const char *outdir;

static void put_file(const char *target, const char *name, uint8_t mode,
                     const void *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/seed-%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 || (len && fwrite(p, 1, len, f) != len) ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---- XDR by hand (big-endian words, padded opaques) ---- */
struct wr { uint8_t b[8192]; size_t n; };
static void u32(struct wr *w, uint32_t v) { v = htonl(v); memcpy(w->b + w->n, &v, 4); w->n += 4; }
static void u64(struct wr *w, uint64_t v) { u32(w, (uint32_t)(v >> 32)); u32(w, (uint32_t)v); }
static void opq(struct wr *w, const void *p, size_t len)
{
    u32(w, (uint32_t)len);
    memcpy(w->b + w->n, p, len);
    w->n += len;
    while (w->n % 4)
        w->b[w->n++] = 0;
}
static void str(struct wr *w, const char *s) { opq(w, s, strlen(s)); }

static void call_head_v(struct wr *w, uint32_t xid, uint32_t prog, uint32_t vers,
                        uint32_t proc)
{
    w->n = 0;
    u32(w, xid); u32(w, 0 /* CALL */); u32(w, 2);
    u32(w, prog); u32(w, vers); u32(w, proc);
    /* AUTH_SYS: stamp, machine, uid 0, gid 0, gids {0} */
    struct wr c = { .n = 0 };
    u32(&c, 1); str(&c, "fuzz"); u32(&c, 0); u32(&c, 0); u32(&c, 1); u32(&c, 0);
    u32(w, 1 /* AUTH_SYS */); opq(w, c.b, c.n);
    u32(w, 0); u32(w, 0);     /* verifier AUTH_NONE */
}

static void call_head(struct wr *w, uint32_t xid, uint32_t prog, uint32_t proc)
{
    call_head_v(w, xid, prog, 3, proc);
}

static struct { uint8_t b[FH_MAX]; size_t n; } fh_root, fh_run, fh_file, fh_sub, fh_data,
    fh_link, fh_empty;

#define FH(w, h) opq((w), (h).b, (h).n)

static void sattr_none(struct wr *w) { for (int i = 0; i < 6; i++) u32(w, 0); }
static void sattr_mode(struct wr *w, uint32_t mode, uint64_t size)
{
    u32(w, 1); u32(w, mode);            /* mode */
    u32(w, 0); u32(w, 0);               /* uid, gid */
    u32(w, 1); u64(w, size);            /* size */
    u32(w, 1); u32(w, 2);               /* atime: server time; mtime: client time */
    u32(w, 1700000000); u32(w, 5);
}

static void seed_rpc(const char *name, struct wr *w)
{
    put_file("rpc", name, 0, w->b, w->n);
}

static void make_handles(struct nfsd *srv)
{
    uint8_t eid = 0;
    for (size_t i = 0; i < srv->exports->n; i++)
        if (!strcmp(srv->exports->v[i].path, "/"))
            eid = srv->exports->v[i].id;
    struct vfs_id root, run, id;
    vfs_root(srv->vfs, &root);
    fh_root.n = fh_encode(&srv->key, eid, &root, fh_root.b);
    if (vfs_lookup(srv->vfs, &root, "fz", &run, NULL))
        abort();
    fh_run.n = fh_encode(&srv->key, eid, &run, fh_run.b);
#define LK(dir, nm, out) do { if (vfs_lookup(srv->vfs, dir, nm, &id, NULL)) abort(); \
        out.n = fh_encode(&srv->key, eid, &id, out.b); } while (0)
    LK(&run, "hello.txt", fh_file);
    LK(&run, "link", fh_link);
    LK(&run, "empty", fh_empty);
    struct vfs_id sub;
    if (vfs_lookup(srv->vfs, &run, "sub", &sub, NULL))
        abort();
    fh_sub.n = fh_encode(&srv->key, eid, &sub, fh_sub.b);
    LK(&sub, "data.bin", fh_data);
}

static void rpc_seeds(void)
{
    struct nfsd *srv = fuzz_rpc_server();
    make_handles(srv);
    struct wr w;
    const uint32_t N = NFS_PROG, M = MOUNT_PROG;
    call_head(&w, 1, N, 0); seed_rpc("nfs-null", &w);
    call_head(&w, 2, N, 1); FH(&w, fh_file); seed_rpc("nfs-getattr", &w);
    call_head(&w, 3, N, 2); FH(&w, fh_file); sattr_mode(&w, 0600, 5); u32(&w, 0);
    seed_rpc("nfs-setattr", &w);
    call_head(&w, 4, N, 3); FH(&w, fh_run); str(&w, "hello.txt"); seed_rpc("nfs-lookup", &w);
    call_head(&w, 5, N, 3); FH(&w, fh_sub); str(&w, ".."); seed_rpc("nfs-lookup-dotdot", &w);
    call_head(&w, 6, N, 4); FH(&w, fh_file); u32(&w, 0x3f); seed_rpc("nfs-access", &w);
    call_head(&w, 7, N, 5); FH(&w, fh_link); seed_rpc("nfs-readlink", &w);
    call_head(&w, 8, N, 6); FH(&w, fh_data); u64(&w, 65000); u32(&w, 8192); seed_rpc("nfs-read", &w);
    call_head(&w, 9, N, 7); FH(&w, fh_file); u64(&w, 3); u32(&w, 5); u32(&w, 2);
    opq(&w, "fuzzy", 5); seed_rpc("nfs-write", &w);
    call_head(&w, 10, N, 8); FH(&w, fh_run); str(&w, "new.txt"); u32(&w, 1);
    sattr_mode(&w, 0644, 0); seed_rpc("nfs-create", &w);
    call_head(&w, 11, N, 8); FH(&w, fh_empty); str(&w, "excl"); u32(&w, 2);
    u64(&w, 0x0123456789abcdefULL); seed_rpc("nfs-create-exclusive", &w);
    call_head(&w, 12, N, 9); FH(&w, fh_run); str(&w, "newdir"); sattr_none(&w);
    seed_rpc("nfs-mkdir", &w);
    call_head(&w, 13, N, 10); FH(&w, fh_run); str(&w, "sl"); sattr_none(&w);
    str(&w, "sub/data.bin"); seed_rpc("nfs-symlink", &w);
    call_head(&w, 14, N, 11); FH(&w, fh_run); str(&w, "dev"); u32(&w, 4); sattr_none(&w);
    u32(&w, 1); u32(&w, 3); seed_rpc("nfs-mknod-chr", &w);
    call_head(&w, 15, N, 11); FH(&w, fh_run); str(&w, "pipe"); u32(&w, 7); sattr_none(&w);
    seed_rpc("nfs-mknod-fifo", &w);
    call_head(&w, 16, N, 12); FH(&w, fh_run); str(&w, "hard"); seed_rpc("nfs-remove", &w);
    call_head(&w, 17, N, 13); FH(&w, fh_run); str(&w, "empty"); seed_rpc("nfs-rmdir", &w);
    call_head(&w, 18, N, 14); FH(&w, fh_run); str(&w, "hello.txt"); FH(&w, fh_sub);
    str(&w, "moved.txt"); seed_rpc("nfs-rename", &w);
    call_head(&w, 19, N, 15); FH(&w, fh_file); FH(&w, fh_empty); str(&w, "ln");
    seed_rpc("nfs-link", &w);
    call_head(&w, 20, N, 16); FH(&w, fh_run); u64(&w, 0); u64(&w, 0); u32(&w, 4096);
    seed_rpc("nfs-readdir", &w);
    call_head(&w, 21, N, 17); FH(&w, fh_root); u64(&w, 0); u64(&w, 0); u32(&w, 1024);
    u32(&w, 8192); seed_rpc("nfs-readdirplus", &w);
    call_head(&w, 22, N, 18); FH(&w, fh_run); seed_rpc("nfs-fsstat", &w);
    call_head(&w, 23, N, 19); FH(&w, fh_root); seed_rpc("nfs-fsinfo", &w);
    call_head(&w, 24, N, 20); FH(&w, fh_sub); seed_rpc("nfs-pathconf", &w);
    call_head(&w, 25, N, 21); FH(&w, fh_file); u64(&w, 0); u32(&w, 0); seed_rpc("nfs-commit", &w);
    call_head(&w, 30, M, 0); seed_rpc("mnt-null", &w);
    call_head(&w, 31, M, 1); str(&w, "/fz"); seed_rpc("mnt-mnt", &w);
    call_head(&w, 32, M, 1); str(&w, "/fz/sub"); seed_rpc("mnt-mnt-sub", &w);
    call_head(&w, 33, M, 2); seed_rpc("mnt-dump", &w);
    call_head(&w, 34, M, 3); str(&w, "/fz"); seed_rpc("mnt-umnt", &w);
    call_head(&w, 35, M, 4); seed_rpc("mnt-umntall", &w);
    call_head(&w, 36, M, 5); seed_rpc("mnt-export", &w);
    /* NLM v4: a cookie, then the arguments (nfsd/nlm4_prot.x). */
    const uint32_t L = 100021;
#define NLM_LOCK_ARG(w, caller, svid, off, len) do { str(w, caller); FH(w, fh_data); \
        str(w, "owner"); u32(w, svid); u64(w, off); u64(w, len); } while (0)
    call_head_v(&w, 50, L, 4, 0); seed_rpc("nlm-null", &w);
    call_head_v(&w, 51, L, 4, 1); str(&w, "ck"); u32(&w, 1);
    NLM_LOCK_ARG(&w, "alpha", 1, 0, 10); seed_rpc("nlm-test", &w);
    call_head_v(&w, 52, L, 4, 2); str(&w, "ck"); u32(&w, 1); u32(&w, 1);
    NLM_LOCK_ARG(&w, "alpha", 1, 0, 10); u32(&w, 0); u32(&w, 3); seed_rpc("nlm-lock", &w);
    call_head_v(&w, 53, L, 4, 2); str(&w, "ck"); u32(&w, 1); u32(&w, 0);
    NLM_LOCK_ARG(&w, "beta", 2, 5, 0); u32(&w, 0); u32(&w, 3); seed_rpc("nlm-lock-blocking", &w);
    call_head_v(&w, 54, L, 4, 3); str(&w, "ck"); u32(&w, 1); u32(&w, 0);
    NLM_LOCK_ARG(&w, "beta", 2, 5, 0); seed_rpc("nlm-cancel", &w);
    call_head_v(&w, 55, L, 4, 4); str(&w, "ck"); NLM_LOCK_ARG(&w, "alpha", 1, 2, 3);
    seed_rpc("nlm-unlock", &w);
    call_head_v(&w, 56, L, 4, 7); str(&w, "ck"); u32(&w, 0); u32(&w, 1);
    NLM_LOCK_ARG(&w, "gamma", 3, 100, 1); u32(&w, 0); u32(&w, 3); seed_rpc("nlm-lock-msg", &w);
    call_head_v(&w, 57, L, 4, 15); str(&w, "ck"); u32(&w, 0); seed_rpc("nlm-granted-res", &w);
    call_head_v(&w, 58, L, 4, 16); str(&w, "127.0.0.1"); u32(&w, 3); u64(&w, 0); u64(&w, 0);
    seed_rpc("nlm-sm-notify", &w);
    call_head_v(&w, 59, L, 4, 20); str(&w, "ck"); str(&w, "alpha"); FH(&w, fh_file);
    str(&w, "share-oh"); u32(&w, 2); u32(&w, 1); u32(&w, 0); seed_rpc("nlm-share", &w);
    call_head_v(&w, 60, L, 4, 21); str(&w, "ck"); str(&w, "alpha"); FH(&w, fh_file);
    str(&w, "share-oh"); u32(&w, 0); u32(&w, 0); u32(&w, 0); seed_rpc("nlm-unshare", &w);
    call_head_v(&w, 61, L, 4, 23); str(&w, "alpha"); u32(&w, 0); seed_rpc("nlm-free-all", &w);
    call_head_v(&w, 62, L, 1, 2); seed_rpc("nlm-v1", &w);
    /* TCP, and the other peer (the /fz/sub ro client) */
    call_head(&w, 40, N, 6); FH(&w, fh_data); u64(&w, 0); u32(&w, 70000);
    put_file("rpc", "nfs-read-tcp", 1, w.b, w.n);
    call_head(&w, 41, M, 1); str(&w, "/fz/sub"); put_file("rpc", "mnt-mnt-sub-peer2", 2, w.b, w.n);
}

/* ---- tarballs ---- */
static uint8_t *small_tar(int format, size_t *len)
{
    size_t cap = 64 * 1024, used = 0;
    uint8_t *buf = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format(a, format);
    archive_write_open_memory(a, buf, cap, &used);
    struct { const char *path; int type; const char *data; const char *link; int hard; } ents[] = {
        { "fz/", AE_IFDIR, NULL, NULL, 0 },
        { "fz/a.txt", AE_IFREG, "alpha\n", NULL, 0 },
        { "fz/d/", AE_IFDIR, NULL, NULL, 0 },
        { "fz/d/a-rather-long-name-that-needs-more-than-the-hundred-bytes-of-the-ustar-name-field-so-pax-or-gnu-headers-appear.txt",
          AE_IFREG, "long\n", NULL, 0 },
        { "fz/s", AE_IFLNK, NULL, "a.txt", 0 },
        { "fz/h", AE_IFREG, NULL, "fz/a.txt", 1 },
        { "fz/p", AE_IFIFO, NULL, NULL, 0 },
    };
    for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].path);
        archive_entry_set_filetype(e, (unsigned)ents[i].type);
        archive_entry_set_perm(e, ents[i].type == AE_IFDIR ? 0755 : 0644);
        archive_entry_set_mtime(e, 1700000000, 0);
        size_t dl = ents[i].data ? strlen(ents[i].data) : 0;
        archive_entry_set_size(e, (la_int64_t)dl);
        if (ents[i].link && ents[i].hard)
            archive_entry_set_hardlink(e, ents[i].link);
        else if (ents[i].link)
            archive_entry_set_symlink(e, ents[i].link);
        if (archive_write_header(a, e) != ARCHIVE_OK ||
            (dl && archive_write_data(a, ents[i].data, dl) != (la_ssize_t)dl))
            abort();
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    *len = used;
    return buf;
}

static void ingest_seeds(void)
{
    size_t len;
    uint8_t *t = small_tar(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, &len);
    put_file("ingest", "pax", 0, t, len);
    put_file("ingest", "pax-gzip", 1, t, len);
    put_file("ingest", "pax-bzip2", 2, t, len);
    put_file("ingest", "pax-xz", 3, t, len);
    put_file("ingest", "pax-zstd", 4, t, len);
    free(t);
    t = small_tar(ARCHIVE_FORMAT_TAR_GNUTAR, &len);
    put_file("ingest", "gnu", 0, t, len);
    free(t);
}

static void tix_seeds(void)
{
    size_t len;
    uint8_t *t = small_tar(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, &len);
    struct fuzz_mem m = { t, len, 0 };
    struct tix_source src = { .size = len };
    snprintf(src.version, sizeof src.version, "1700000000:%zu:42", len);
    void *ix;
    size_t ixlen;
    char err[256];
    if (tix_scan(fuzz_mem_read, &m, &src, NULL, NULL, &ix, &ixlen, err, sizeof err)) {
        fprintf(stderr, "tix_scan: %s\n", err);
        exit(1);
    }
    put_file("tix", "index", 0, ix, ixlen);
    put_file("tix", "index-untrailed", 1, ix, ixlen - 32);
    /* Split header | zlib body: the body starts where inflating the rest
     * (up to the trailer) works. */
    const uint8_t *p = ix;
    for (size_t h = 0; 12 + h < ixlen - 32 && h < 256; h++) {
        uint8_t out[65536];
        uLongf olen = sizeof out;
        if (uncompress(out, &olen, p + 12 + h, (uLong)(ixlen - 32 - 12 - h)) == Z_OK) {
            uint8_t buf[65536 + 300];
            buf[0] = (uint8_t)h;
            memcpy(buf + 1, p + 12, h);
            memcpy(buf + 1 + h, out, olen);
            put_file("tix", "index-members", 2, buf, 1 + h + olen);
            break;
        }
    }
    free(ix);
    free(t);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkseeds CORPUSDIR\n");
        return 2;
    }
    outdir = argv[1];
    rpc_seeds();
    ingest_seeds();
    tix_seeds();
    return 0;
}
