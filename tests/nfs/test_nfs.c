/* test_nfs.c: tarnfsd against the real libnfs client over loopback: every
 * NFSv3 procedure and its main errors, MOUNT, access control, squashing,
 * restarts with handles kept, and a 100,000-entry READDIRPLUS listing. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#include "server.h"

#define MiB (1024 * 1024)

static const char *src_dir(void) { return test_env("NFS_TEST_SRC"); }
static const char *ro_cache(void) { return test_env("NFS_TEST_CACHE"); }
static const char *rw_cache(void) { return test_env("NFS_TEST_RWCACHE"); }

/* ---- libnfs high-level ---- */

static struct nfs_context *nfs_connect(const struct test_server *s, const char *path,
                                       int *rc_out)
{
    struct nfs_context *nfs = nfs_init_context();
    ck_assert_ptr_nonnull(nfs);
    char url[512];
    snprintf(url, sizeof url, "nfs://127.0.0.1%s?nfsport=%d&mountport=%d&version=3",
             path, s->nfs_port, s->mount_port);
    struct nfs_url *u = nfs_parse_url_dir(nfs, url);
    ck_assert_msg(u != NULL, "url %s: %s", url, nfs_get_error(nfs));
    int rc = nfs_mount(nfs, u->server, u->path);
    nfs_destroy_url(u);
    if (rc_out) {
        *rc_out = rc;
    } else {
        ck_assert_msg(rc == 0, "mount %s: %s", path, nfs_get_error(nfs));
    }
    return nfs;
}

/* ---- libnfs raw RPC, made synchronous ---- */

struct waiter {
    bool done;
    int rpc_status;
    int status;                     /* first word of the result */
    void (*grab)(struct waiter *w, void *data);
    char fh[64];
    int fhlen;
    uint64_t u64[4];
    uint32_t u32[8];
    char text[4096];
    char verf[8];
    int n;
    char **names;
};

static void raw_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct waiter *w = priv;
    w->rpc_status = status;
    if (status == RPC_STATUS_SUCCESS && data) {
        w->status = *(int *)data;
        if (w->grab)
            w->grab(w, data);
    }
    w->done = true;
}

static void raw_wait(struct rpc_context *rpc, struct waiter *w)
{
    for (int i = 0; i < 600 && !w->done; i++) {
        struct pollfd p = { .fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc) };
        int r = poll(&p, 1, 100);
        ck_assert_int_ge(r, 0);
        ck_assert_int_eq(rpc_service(rpc, r > 0 ? p.revents : 0), 0);
    }
    ck_assert_msg(w->done, "no reply within 60 s");
}

static struct rpc_context *raw_connect(int port, int prog, int vers, int uid, int gid)
{
    struct rpc_context *rpc = rpc_init_context();
    ck_assert_ptr_nonnull(rpc);
    if (uid >= 0)
        rpc_set_auth(rpc, libnfs_authunix_create("tester", (uint32_t)uid, (uint32_t)gid, 0, NULL));
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_connect_port_async(rpc, "127.0.0.1", port, prog, vers, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return rpc;
}

static void grab_mnt(struct waiter *w, void *data)
{
    mountres3 *r = data;
    if (r->fhs_status == MNT3_OK) {
        w->fhlen = (int)r->mountres3_u.mountinfo.fhandle.fhandle3_len;
        memcpy(w->fh, r->mountres3_u.mountinfo.fhandle.fhandle3_val, (size_t)w->fhlen);
    }
}

/* MNT path; returns the mount status and fills fh. */
static int raw_mnt(const struct test_server *s, const char *path, char fh[64], int *fhlen)
{
    struct rpc_context *rpc = raw_connect(s->mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct waiter w = { .grab = grab_mnt };
    ck_assert_int_eq(rpc_mount3_mnt_async(rpc, raw_cb, (char *)path, &w), 0);
    raw_wait(rpc, &w);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    if (fh) {
        memcpy(fh, w.fh, sizeof w.fh);
        *fhlen = w.fhlen;
    }
    return w.status;
}

static nfs_fh3 mkfh(char *buf, int len)
{
    nfs_fh3 fh;
    fh.data.data_len = (u_int)len;
    fh.data.data_val = buf;
    return fh;
}

static void grab_lookup(struct waiter *w, void *data)
{
    LOOKUP3res *r = data;
    if (r->status == NFS3_OK) {
        w->fhlen = (int)r->LOOKUP3res_u.resok.object.data.data_len;
        memcpy(w->fh, r->LOOKUP3res_u.resok.object.data.data_val, (size_t)w->fhlen);
    }
}

/* LOOKUP name in dir; returns nfsstat3, fills out. */
static int raw_lookup(struct rpc_context *rpc, char *dir, int dirlen, const char *name,
                      char out[64], int *outlen)
{
    struct waiter w = { .grab = grab_lookup };
    LOOKUP3args a = { .what = { .dir = mkfh(dir, dirlen), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_lookup_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    if (out && w.status == NFS3_OK) {
        memcpy(out, w.fh, 64);
        *outlen = w.fhlen;
    }
    return w.status;
}

/* Walk a relative path from fh. */
static int raw_walk(struct rpc_context *rpc, char *root, int rootlen, const char *path,
                    char out[64], int *outlen)
{
    char cur[64], part[256];
    int curlen = rootlen;
    memcpy(cur, root, 64);
    while (*path) {
        size_t n = strcspn(path, "/");
        memcpy(part, path, n);
        part[n] = 0;
        int st = raw_lookup(rpc, cur, curlen, part, cur, &curlen);
        if (st)
            return st;
        path += n;
        while (*path == '/')
            path++;
    }
    memcpy(out, cur, 64);
    *outlen = curlen;
    return 0;
}

static int raw_getattr(struct rpc_context *rpc, char *fh, int fhlen)
{
    struct waiter w = { 0 };
    GETATTR3args a = { .object = mkfh(fh, fhlen) };
    ck_assert_int_eq(rpc_nfs3_getattr_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return w.status;
}

/* A server on the read-only test cache, mounted raw at "/". */
struct raw_session {
    struct test_server srv;
    struct rpc_context *rpc;
    char root[64];
    int rootlen;
};

static void raw_open(struct raw_session *r, const char *cache, const char *conf, int uid)
{
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(server_start(&r->srv, cache, conf, NULL), 0);
    ck_assert_int_eq(raw_mnt(&r->srv, "/", r->root, &r->rootlen), MNT3_OK);
    r->rpc = raw_connect(r->srv.nfs_port, NFS_PROGRAM, NFS_V3, uid, uid);
}

static void raw_close(struct raw_session *r)
{
    rpc_destroy_context(r->rpc);
    ck_assert_int_eq(server_stop(&r->srv), 0);
}

/* ---- tests: reading ---- */

START_TEST(mount_gives_1mib_transfers_and_null_answers)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    ck_assert_uint_eq(nfs_get_readmax(nfs), MiB);     /* FSINFO rtmax */
    ck_assert_uint_eq(nfs_get_writemax(nfs), MiB);    /* FSINFO wtmax */
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_nfs3_null_async(nfs_get_rpc_context(nfs), raw_cb, &w), 0);
    raw_wait(nfs_get_rpc_context(nfs), &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    struct nfs_statvfs_64 sv;
    ck_assert_int_eq(nfs_statvfs64(nfs, "/", &sv), 0);  /* FSSTAT */
    ck_assert_uint_gt(sv.f_files, 0);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static void grab_pathconf(struct waiter *w, void *data)
{
    PATHCONF3res *r = data;
    w->u32[0] = r->PATHCONF3res_u.resok.name_max;
    w->u32[1] = r->PATHCONF3res_u.resok.case_preserving;
    w->u32[2] = r->PATHCONF3res_u.resok.case_insensitive;
    w->u32[3] = r->PATHCONF3res_u.resok.no_trunc;
}

static void grab_fsinfo(struct waiter *w, void *data)
{
    FSINFO3res *r = data;
    w->u32[0] = r->FSINFO3res_u.resok.rtmax;
    w->u32[1] = r->FSINFO3res_u.resok.wtmax;
    w->u32[2] = r->FSINFO3res_u.resok.dtpref;
    w->u64[0] = r->FSINFO3res_u.resok.maxfilesize;
}

START_TEST(pathconf_and_fsinfo_describe_the_filesystem)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    struct waiter w = { .grab = grab_pathconf };
    PATHCONF3args pa = { .object = mkfh(r.root, r.rootlen) };
    ck_assert_int_eq(rpc_nfs3_pathconf_async(r.rpc, raw_cb, &pa, &w), 0);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    ck_assert_uint_eq(w.u32[0], 255);
    ck_assert_uint_eq(w.u32[1], 1);
    ck_assert_uint_eq(w.u32[2], 0);
    ck_assert_uint_eq(w.u32[3], 1);
    struct waiter f = { .grab = grab_fsinfo };
    FSINFO3args fa = { .fsroot = mkfh(r.root, r.rootlen) };
    ck_assert_int_eq(rpc_nfs3_fsinfo_async(r.rpc, raw_cb, &fa, &f), 0);
    raw_wait(r.rpc, &f);
    ck_assert_int_eq(f.status, NFS3_OK);
    ck_assert_uint_eq(f.u32[0], MiB);
    ck_assert_uint_eq(f.u32[1], MiB);
    ck_assert_uint_gt(f.u32[2], 0);
    ck_assert_uint_eq(f.u64[0], UINT64_C(1) << 44);   /* max_file_size */
    raw_close(&r);
}
END_TEST

/* Compare one source entry with what the server shows. */
static struct nfs_context *walk_nfs;
static size_t walk_files, walk_links;

static int compare_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *rel = path + strlen(src_dir());     /* "/demo/..." */
    if (!*rel)
        return 0;
    struct nfs_stat_64 ns;
    ck_assert_msg(nfs_lstat64(walk_nfs, rel, &ns) == 0, "lstat %s: %s", rel,
                  nfs_get_error(walk_nfs));
    ck_assert_msg((ns.nfs_mode & 07777) == (st->st_mode & 07777), "mode of %s", rel);
    ck_assert_msg((ns.nfs_mode & S_IFMT) == (st->st_mode & S_IFMT), "type of %s", rel);
    ck_assert_uint_eq(ns.nfs_uid, st->st_uid);
    ck_assert_uint_eq(ns.nfs_gid, st->st_gid);
    ck_assert_msg(ns.nfs_mtime == (uint64_t)st->st_mtime, "mtime of %s", rel);
    if (S_ISREG(st->st_mode)) {
        ck_assert_uint_eq(ns.nfs_size, (uint64_t)st->st_size);
        ck_assert_uint_eq(ns.nfs_nlink, st->st_nlink);
        struct nfsfh *fh;
        ck_assert_int_eq(nfs_open(walk_nfs, rel, O_RDONLY, &fh), 0);
        char *want = malloc((size_t)st->st_size + 1), *got = malloc((size_t)st->st_size + 1);
        int fd = open(path, O_RDONLY);
        ck_assert_int_eq(read(fd, want, (size_t)st->st_size), st->st_size);
        close(fd);
        size_t have = 0;
        while (have < (size_t)st->st_size) {
            int n = nfs_pread(walk_nfs, fh, have, (size_t)st->st_size - have, got + have);
            ck_assert_int_gt(n, 0);
            have += (size_t)n;
        }
        ck_assert_msg(memcmp(want, got, have) == 0, "contents of %s", rel);
        free(want);
        free(got);
        nfs_close(walk_nfs, fh);
        walk_files++;
    } else if (S_ISLNK(st->st_mode)) {
        char want[4096] = "", got[4096] = "";
        ck_assert_int_gt(readlink(path, want, sizeof want - 1), 0);
        ck_assert_int_eq(nfs_readlink(walk_nfs, rel, got, sizeof got), 0);  /* READLINK */
        ck_assert_str_eq(got, want);
        walk_links++;
    }
    return 0;
}

START_TEST(every_file_reads_back_identical_to_the_source)
{
    struct test_server s = { 0 };
    /* no_root_squash: root reads every file, private ones included. */
    ck_assert_int_eq(server_start(&s, ro_cache(), "export / *(ro,no_root_squash)\n", NULL), 0);
    walk_nfs = nfs_connect(&s, "/", NULL);
    /* GETATTR, LOOKUP, ACCESS, READ, READLINK over the whole tree. */
    ck_assert_int_eq(nftw(src_dir(), compare_entry, 16, FTW_PHYS), 0);
    ck_assert_uint_gt(walk_files, 100);
    ck_assert_uint_gt(walk_links, 0);
    nfs_destroy_context(walk_nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static void grab_read(struct waiter *w, void *data)
{
    READ3res *r = data;
    if (r->status == NFS3_OK) {
        w->u32[0] = r->READ3res_u.resok.count;
        w->u32[1] = r->READ3res_u.resok.eof;
    }
}

START_TEST(reads_at_and_past_the_end_report_eof)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char fh[64];
    int fhlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/big.bin", fh, &fhlen), 0);
    struct stat st;
    char path[512];
    snprintf(path, sizeof path, "%s/demo/big.bin", src_dir());
    ck_assert_int_eq(stat(path, &st), 0);
    uint64_t offs[] = { 0, (uint64_t)st.st_size - 10, (uint64_t)st.st_size,
                        (uint64_t)st.st_size + 4096 };
    uint32_t want_count[] = { 4096, 10, 0, 0 };
    uint32_t want_eof[] = { 0, 1, 1, 1 };
    for (int i = 0; i < 4; i++) {
        struct waiter w = { .grab = grab_read };
        READ3args a = { .file = mkfh(fh, fhlen), .offset = offs[i], .count = 4096 };
        ck_assert_int_eq(rpc_nfs3_read_async(r.rpc, raw_cb, &a, &w), 0);
        raw_wait(r.rpc, &w);
        ck_assert_int_eq(w.status, NFS3_OK);
        ck_assert_uint_eq(w.u32[0], want_count[i]);
        ck_assert_uint_eq(w.u32[1], want_eof[i]);
    }
    /* READ of a directory is ISDIR. */
    struct waiter w = { .grab = grab_read };
    READ3args a = { .file = mkfh(r.root, r.rootlen), .offset = 0, .count = 10 };
    ck_assert_int_eq(rpc_nfs3_read_async(r.rpc, raw_cb, &a, &w), 0);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ISDIR);
    raw_close(&r);
}
END_TEST

static void grab_readdir(struct waiter *w, void *data)
{
    READDIR3res *r = data;
    if (r->status != NFS3_OK)
        return;
    memcpy(w->verf, r->READDIR3res_u.resok.cookieverf, 8);
    w->u32[0] = r->READDIR3res_u.resok.reply.eof;
    /* libnfs may leave list entries unaligned: copy each one out first. */
    for (entry3 *p = r->READDIR3res_u.resok.reply.entries; p;) {
        entry3 e;
        memcpy(&e, p, sizeof e);
        w->names = realloc(w->names, sizeof(char *) * (size_t)(w->n + 1));
        w->names[w->n++] = strdup(e.name);
        w->u64[0] = e.cookie;
        p = e.nextentry;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(readdir_pages_by_cookie_and_checks_the_verifier)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char dir[64];
    int dirlen;
    const char *rel = "demo/241023_A01295_0432_BHK3NFDRX5/InterOp";
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, rel, dir, &dirlen), 0);
    struct waiter all = { 0 };
    uint64_t cookie = 0;
    char verf[8] = { 0 };
    int pages = 0, dots = 0;
    for (;;) {
        struct waiter w = { .grab = grab_readdir };
        READDIR3args a = { .dir = mkfh(dir, dirlen), .cookie = cookie, .count = 300 };
        memcpy(a.cookieverf, verf, 8);
        ck_assert_int_eq(rpc_nfs3_readdir_async(r.rpc, raw_cb, &a, &w), 0);
        raw_wait(r.rpc, &w);
        ck_assert_int_eq(w.status, NFS3_OK);
        ck_assert_int_gt(w.n, 0);
        pages++;
        for (int i = 0; i < w.n; i++) {
            if (!strcmp(w.names[i], ".") || !strcmp(w.names[i], "..")) {
                dots++;
                free(w.names[i]);
                continue;
            }
            all.names = realloc(all.names, sizeof(char *) * (size_t)(all.n + 1));
            all.names[all.n++] = w.names[i];
        }
        free(w.names);
        memcpy(verf, w.verf, 8);
        cookie = w.u64[0];
        if (w.u32[0])
            break;
    }
    ck_assert_int_gt(pages, 1);     /* count=300 forces several pages */
    ck_assert_int_eq(dots, 2);      /* "." and ".." once each */
    /* The names are exactly the source directory's. */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", src_dir(), rel);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    char *want[1024];
    int nwant = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            want[nwant++] = strdup(de->d_name);
    closedir(d);
    ck_assert_int_eq(all.n, nwant);
    qsort(want, (size_t)nwant, sizeof *want, cmp_str);
    qsort(all.names, (size_t)all.n, sizeof *all.names, cmp_str);
    for (int i = 0; i < nwant; i++) {
        ck_assert_str_eq(all.names[i], want[i]);
        free(all.names[i]);
        free(want[i]);
    }
    free(all.names);
    /* A cookie with someone else's verifier is refused. */
    struct waiter w = { .grab = grab_readdir };
    READDIR3args a = { .dir = mkfh(dir, dirlen), .cookie = cookie, .count = 4096 };
    memcpy(a.cookieverf, "garbage!", 8);
    ck_assert_int_eq(rpc_nfs3_readdir_async(r.rpc, raw_cb, &a, &w), 0);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_BAD_COOKIE);
    raw_close(&r);
}
END_TEST

START_TEST(readdirplus_lists_a_100000_entry_directory_completely)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    struct nfsdir *d;
    ck_assert_int_eq(nfs_opendir(nfs, "/wide", &d), 0);     /* READDIRPLUS pages */
    long n = 0;
    bool seen_first = false, seen_last = false;
    for (struct nfsdirent *e; (e = nfs_readdir(nfs, d));) {
        if (!strcmp(e->name, ".") || !strcmp(e->name, ".."))
            continue;
        n++;
        seen_first |= !strcmp(e->name, "f000001");
        seen_last |= !strcmp(e->name, "f100000");
    }
    nfs_closedir(nfs, d);
    ck_assert_int_eq(n, 100000);
    ck_assert(seen_first && seen_last);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: bad input ---- */

START_TEST(malformed_handles_are_badhandle_and_forged_ones_stale)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char bad[64] = "short";
    ck_assert_int_eq(raw_getattr(r.rpc, bad, 5), NFS3ERR_BADHANDLE);
    ck_assert_int_eq(raw_getattr(r.rpc, bad, 0), NFS3ERR_BADHANDLE);
    char forged[64];
    memcpy(forged, r.root, 64);
    forged[r.rootlen - 1] ^= 1;                 /* flip one MAC bit */
    ck_assert_int_eq(raw_getattr(r.rpc, forged, r.rootlen), NFS3ERR_STALE);
    memcpy(forged, r.root, 64);
    forged[0] = 99;                             /* unknown format version */
    ck_assert_int_eq(raw_getattr(r.rpc, forged, r.rootlen), NFS3ERR_BADHANDLE);
    ck_assert_int_eq(raw_getattr(r.rpc, r.root, r.rootlen), NFS3_OK);
    ck_assert_int_eq(r.rootlen % 4, 0);
    ck_assert_int_le(r.rootlen, 64);
    raw_close(&r);
}
END_TEST

START_TEST(names_too_long_or_with_a_slash_are_refused)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char longname[300];
    memset(longname, 'x', 299);
    longname[299] = 0;
    ck_assert_int_eq(raw_lookup(r.rpc, r.root, r.rootlen, longname, NULL, NULL),
                     NFS3ERR_NAMETOOLONG);
    ck_assert_int_eq(raw_lookup(r.rpc, r.root, r.rootlen, "demo/big.bin", NULL, NULL),
                     NFS3ERR_ACCES);
    ck_assert_int_eq(raw_lookup(r.rpc, r.root, r.rootlen, "no-such-run", NULL, NULL),
                     NFS3ERR_NOENT);
    char fh[64];
    int fhlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/big.bin", fh, &fhlen), 0);
    ck_assert_int_eq(raw_lookup(r.rpc, fh, fhlen, "x", NULL, NULL), NFS3ERR_NOTDIR);
    raw_close(&r);
}
END_TEST

/* ---- tests: exports and permissions ---- */

static int raw_create(struct rpc_context *rpc, char *dir, int dirlen, const char *name,
                      createmode3 mode, const char verf[8])
{
    struct waiter w = { 0 };
    CREATE3args a = { .where = { .dir = mkfh(dir, dirlen), .name = (char *)name } };
    a.how.mode = mode;
    if (mode == EXCLUSIVE)
        memcpy(a.how.createhow3_u.verf, verf, 8);
    else {
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
    }
    ck_assert_int_eq(rpc_nfs3_create_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return w.status;
}

START_TEST(a_read_only_export_answers_rofs_to_every_change)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char dir[64], file[64];
    int dirlen, filelen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo", dir, &dirlen), 0);
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/big.bin", file, &filelen), 0);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "new", GUARDED, NULL), NFS3ERR_ROFS);
    struct waiter w;
    char data[16] = "0123456789abcdef";

    memset(&w, 0, sizeof w);
    WRITE3args wa = { .file = mkfh(file, filelen), .count = 16, .stable = FILE_SYNC };
    wa.data.data_len = 16;
    wa.data.data_val = data;
    rpc_nfs3_write_async(r.rpc, raw_cb, &wa, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    SETATTR3args sa = { .object = mkfh(file, filelen) };
    sa.new_attributes.mode.set_it = 1;
    sa.new_attributes.mode.set_mode3_u.mode = 0600;
    rpc_nfs3_setattr_async(r.rpc, raw_cb, &sa, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    MKDIR3args ma = { .where = { .dir = mkfh(dir, dirlen), .name = "d" } };
    rpc_nfs3_mkdir_async(r.rpc, raw_cb, &ma, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    SYMLINK3args la = { .where = { .dir = mkfh(dir, dirlen), .name = "l" } };
    la.symlink.symlink_data = "target";
    rpc_nfs3_symlink_async(r.rpc, raw_cb, &la, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    MKNOD3args na = { .where = { .dir = mkfh(dir, dirlen), .name = "p" } };
    na.what.type = NF3FIFO;
    rpc_nfs3_mknod_async(r.rpc, raw_cb, &na, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    REMOVE3args rma = { .object = { .dir = mkfh(dir, dirlen), .name = "big.bin" } };
    rpc_nfs3_remove_async(r.rpc, raw_cb, &rma, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    RMDIR3args rda = { .object = { .dir = mkfh(dir, dirlen), .name = "perm" } };
    rpc_nfs3_rmdir_async(r.rpc, raw_cb, &rda, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    RENAME3args rna = { .from = { .dir = mkfh(dir, dirlen), .name = "big.bin" },
                        .to = { .dir = mkfh(dir, dirlen), .name = "b2" } };
    rpc_nfs3_rename_async(r.rpc, raw_cb, &rna, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    memset(&w, 0, sizeof w);
    LINK3args lka = { .file = mkfh(file, filelen),
                      .link = { .dir = mkfh(dir, dirlen), .name = "hard" } };
    rpc_nfs3_link_async(r.rpc, raw_cb, &lka, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);

    /* COMMIT too (as knfsd): nothing was written through this export, and
     * before, any client could make the server flush the run's files over
     * and over while its readers waited. */
    memset(&w, 0, sizeof w);
    COMMIT3args ca = { .file = mkfh(file, filelen) };
    rpc_nfs3_commit_async(r.rpc, raw_cb, &ca, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3ERR_ROFS);
    raw_close(&r);
}
END_TEST

START_TEST(a_client_not_in_the_export_list_is_refused_at_mount_and_per_call)
{
    /* First get a real handle from a server that allows us. */
    struct raw_session r;
    raw_open(&r, ro_cache(), NULL, 0);
    char root[64];
    int rootlen = r.rootlen;
    memcpy(root, r.root, 64);
    raw_close(&r);
    /* Same cache (same handle key), exports only another address. */
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(),
                                  "export / 10.77.0.0/16(ro) 192.0.2.7(rw)\n", NULL), 0);
    ck_assert_int_eq(raw_mnt(&s, "/", NULL, NULL), MNT3ERR_ACCES);
    int rc = 0;
    struct nfs_context *nfs = nfs_connect(&s, "/", &rc);
    ck_assert_int_ne(rc, 0);
    nfs_destroy_context(nfs);
    struct rpc_context *rpc = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    ck_assert_int_eq(raw_getattr(rpc, root, rootlen), NFS3ERR_ACCES);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(mount_export_dump_and_umnt_keep_their_lists)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(),
                                  "export / 127.0.0.1(ro) 10.0.0.0/8(rw)\n", NULL), 0);
    struct rpc_context *rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    ck_assert_int_eq(raw_mnt(&s, "/demo", NULL, NULL), MNT3_OK);   /* subdirectory */
    ck_assert_int_eq(raw_mnt(&s, "/no-such-run", NULL, NULL), MNT3ERR_NOENT);
    ck_assert_int_eq(raw_mnt(&s, "/demo/big.bin", NULL, NULL), MNT3ERR_NOTDIR);
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_mount3_export_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(rpc_mount3_dump_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    ck_assert_int_ne(w.status, 0);      /* a non-NULL list: our mount is there */
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(rpc_mount3_umnt_async(rpc, raw_cb, "/demo", &w), 0);
    raw_wait(rpc, &w);
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(rpc_mount3_umntall_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(dump_and_export_answer_nothing_to_a_host_no_export_admits)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(),
                                  "export / 10.77.0.0/16(ro)\nexport /demo 192.0.2.7(rw)\n",
                                  NULL), 0);
    struct rpc_context *rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_mount3_export_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    ck_assert_int_eq(w.status, 0);      /* an empty (NULL) list */
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(rpc_mount3_dump_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    ck_assert_int_eq(w.status, 0);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
    /* An admitted host sees the list. */
    ck_assert_int_eq(server_start(&s, ro_cache(),
                                  "export / 10.77.0.0/16(ro)\nexport /demo 127.0.0.1(ro)\n",
                                  NULL), 0);
    rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    memset(&w, 0, sizeof w);
    ck_assert_int_eq(rpc_mount3_export_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_ne(w.status, 0);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static int read_as(const struct test_server *s, int uid, const char *path)
{
    struct nfs_context *nfs = nfs_connect(s, "/", NULL);
    if (uid >= 0) {
        nfs_set_uid(nfs, uid);
        nfs_set_gid(nfs, uid);
    }
    struct nfsfh *fh;
    char buf[64];
    int rc = nfs_open(nfs, path, O_RDONLY, &fh);
    if (rc == 0) {
        rc = nfs_pread(nfs, fh, 0, sizeof buf, buf);
        rc = rc < 0 ? rc : 0;
        nfs_close(nfs, fh);
    }
    nfs_destroy_context(nfs);
    return rc;
}

START_TEST(root_is_squashed_unless_the_export_says_no_root_squash)
{
    struct test_server s = { 0 };
    /* perm/secret is root's, mode 0600. */
    ck_assert_int_eq(server_start(&s, ro_cache(), "export / *(ro)\n", NULL), 0);
    ck_assert_int_ne(read_as(&s, 0, "/demo/perm/secret"), 0);
    ck_assert_int_eq(read_as(&s, 0, "/demo/perm/public"), 0);
    ck_assert_int_eq(server_stop(&s), 0);
    ck_assert_int_eq(server_start(&s, ro_cache(), "export / *(ro,no_root_squash)\n", NULL), 0);
    ck_assert_int_eq(read_as(&s, 0, "/demo/perm/secret"), 0);
    ck_assert_int_ne(read_as(&s, 1000, "/demo/perm/secret"), 0);   /* AUTH_SYS uid */
    ck_assert_int_eq(read_as(&s, 1000, "/demo/perm/public"), 0);
    ck_assert_int_eq(server_stop(&s), 0);
    ck_assert_int_eq(server_start(&s, ro_cache(),
                                  "export / *(ro,no_root_squash,all_squash)\n", NULL), 0);
    ck_assert_int_ne(read_as(&s, 0, "/demo/perm/secret"), 0);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static void grab_access(struct waiter *w, void *data)
{
    ACCESS3res *r = data;
    w->u32[0] = r->ACCESS3res_u.resok.access;
}

START_TEST(access_reports_what_mode_and_export_allow)
{
    struct raw_session r;
    raw_open(&r, ro_cache(), "export / *(ro)\n", 1000);
    char fh[64];
    int fhlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/perm/public", fh, &fhlen), 0);
    struct waiter w = { .grab = grab_access };
    ACCESS3args a = { .object = mkfh(fh, fhlen), .access = 0x3f };
    rpc_nfs3_access_async(r.rpc, raw_cb, &a, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    ck_assert_uint_eq(w.u32[0], ACCESS3_READ);      /* 0644, not ours, ro export */
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/perm/secret", fh, &fhlen), 0);
    memset(&w, 0, sizeof w);
    w.grab = grab_access;
    a.object = mkfh(fh, fhlen);
    rpc_nfs3_access_async(r.rpc, raw_cb, &a, &w);
    raw_wait(r.rpc, &w);
    ck_assert_uint_eq(w.u32[0], 0);
    raw_close(&r);
}
END_TEST

START_TEST(handles_keep_working_across_a_server_restart)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    nfs_set_autoreconnect(nfs, -1);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_open(nfs, "/demo/big.bin", O_RDONLY, &fh), 0);
    char before[4096], after[4096];
    ck_assert_int_eq(nfs_pread(nfs, fh, 1000, sizeof before, before), (int)sizeof before);
    ck_assert_int_eq(server_stop(&s), 0);
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);   /* same ports */
    ck_assert_int_eq(nfs_pread(nfs, fh, 1000, sizeof after, after), (int)sizeof after);
    ck_assert_mem_eq(before, after, sizeof before);
    nfs_close(nfs, fh);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: writing (rw export on the writable cache) ---- */

static const char *rw_conf = "export / *(rw,no_root_squash)\n";

static void grab_write(struct waiter *w, void *data)
{
    WRITE3res *r = data;
    if (r->status == NFS3_OK) {
        w->u32[0] = r->WRITE3res_u.resok.count;
        w->u32[1] = r->WRITE3res_u.resok.committed;
        memcpy(w->verf, r->WRITE3res_u.resok.verf, 8);
        w->u32[2] = r->WRITE3res_u.resok.file_wcc.before.attributes_follow;
        w->u32[3] = r->WRITE3res_u.resok.file_wcc.after.attributes_follow;
    }
}

static void raw_write(struct rpc_context *rpc, char *fh, int fhlen, uint64_t off,
                      const char *data, uint32_t n, stable_how how, struct waiter *w)
{
    memset(w, 0, sizeof *w);
    w->grab = grab_write;
    WRITE3args a = { .file = mkfh(fh, fhlen), .offset = off, .count = n, .stable = how };
    a.data.data_len = n;
    a.data.data_val = (char *)data;
    ck_assert_int_eq(rpc_nfs3_write_async(rpc, raw_cb, &a, w), 0);
    raw_wait(rpc, w);
}

START_TEST(files_are_created_written_committed_and_read_back)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/new.txt", 0640, &fh), 0);     /* CREATE */
    static char buf[3 * MiB], back[3 * MiB];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7 + i / 4096);
    ck_assert_int_eq(nfs_pwrite(nfs, fh, 0, sizeof buf, buf), (int)sizeof buf);  /* WRITE */
    ck_assert_int_eq(nfs_fsync(nfs, fh), 0);                                       /* COMMIT */
    ck_assert_int_eq(nfs_close(nfs, fh), 0);
    ck_assert_int_eq(nfs_open(nfs, "/demo/new.txt", O_RDONLY, &fh), 0);
    size_t have = 0;
    while (have < sizeof back) {
        int n = nfs_pread(nfs, fh, have, sizeof back - have, back + have);
        ck_assert_int_gt(n, 0);
        have += (size_t)n;
    }
    ck_assert_int_eq(memcmp(buf, back, sizeof buf), 0);
    nfs_close(nfs, fh);
    struct nfs_stat_64 st;
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/new.txt", &st), 0);
    ck_assert_uint_eq(st.nfs_size, sizeof buf);
    ck_assert_uint_eq(st.nfs_mode & 0777, 0640);
    /* SETATTR: chmod, truncate, utimes, chown. */
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/new.txt", 0600), 0);
    ck_assert_int_eq(nfs_truncate(nfs, "/demo/new.txt", 100), 0);
    struct timeval tv[2] = { { 1000000, 0 }, { 2000000, 0 } };
    ck_assert_int_eq(nfs_utimes(nfs, "/demo/new.txt", tv), 0);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/new.txt", 1234, 5678), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/new.txt", &st), 0);
    ck_assert_uint_eq(st.nfs_size, 100);
    ck_assert_uint_eq(st.nfs_mode & 0777, 0600);
    ck_assert_uint_eq(st.nfs_mtime, 2000000);
    ck_assert_uint_eq(st.nfs_uid, 1234);
    ck_assert_uint_eq(st.nfs_gid, 5678);
    /* MKDIR, SYMLINK, MKNOD, LINK, RENAME, REMOVE, RMDIR. */
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/newdir"), 0);
    ck_assert_int_eq(nfs_symlink(nfs, "new.txt", "/demo/newlink"), 0);
    char target[64] = "";
    ck_assert_int_eq(nfs_readlink(nfs, "/demo/newlink", target, sizeof target), 0);
    ck_assert_str_eq(target, "new.txt");
    ck_assert_int_eq(nfs_mknod(nfs, "/demo/newdir/fifo", S_IFIFO | 0644, 0), 0);
    ck_assert_int_eq(nfs_lstat64(nfs, "/demo/newdir/fifo", &st), 0);
    ck_assert(S_ISFIFO(st.nfs_mode));
    ck_assert_int_eq(nfs_link(nfs, "/demo/new.txt", "/demo/newdir/hard"), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/new.txt", &st), 0);
    ck_assert_uint_eq(st.nfs_nlink, 2);
    ck_assert_int_eq(nfs_rename(nfs, "/demo/newdir/hard", "/demo/newdir/hard2"), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/newdir/hard", &st), -ENOENT);
    ck_assert_int_eq(nfs_rmdir(nfs, "/demo/newdir"), -ENOTEMPTY);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/newdir/hard2"), 0);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/newdir/fifo"), 0);
    ck_assert_int_eq(nfs_rmdir(nfs, "/demo/newdir"), 0);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/newlink"), 0);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/new.txt"), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/new.txt", &st), -ENOENT);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- READDIRPLUS on a writable run: pages across changes ---- */

#define RDP_MAX 64

/* One READDIRPLUS reply, copied out of libnfs's result. */
struct rdp_page {
    struct waiter w;                /* first: raw_cb's priv */
    int n;
    char names[RDP_MAX][32];
    uint64_t cookies[RDP_MAX];
    bool has_attr[RDP_MAX];
    fattr3 attrs[RDP_MAX];
    char verf[8];
    bool eof;
};

static void grab_rdp_page(struct waiter *w, void *data)
{
    struct rdp_page *pg = (struct rdp_page *)w;
    READDIRPLUS3res *r = data;
    if (r->status != NFS3_OK)
        return;
    memcpy(pg->verf, r->READDIRPLUS3res_u.resok.cookieverf, 8);
    pg->eof = r->READDIRPLUS3res_u.resok.reply.eof;
    for (entryplus3 *p = r->READDIRPLUS3res_u.resok.reply.entries; p;) {
        entryplus3 e;
        memcpy(&e, p, sizeof e);
        ck_assert_int_lt(pg->n, RDP_MAX);
        snprintf(pg->names[pg->n], 32, "%s", e.name);
        pg->cookies[pg->n] = e.cookie;
        pg->has_attr[pg->n] = e.name_attributes.attributes_follow;
        if (e.name_attributes.attributes_follow)
            memcpy(&pg->attrs[pg->n], &e.name_attributes.post_op_attr_u.attributes,
                   sizeof(fattr3));
        pg->n++;
        p = e.nextentry;
    }
}

static int raw_readdirplus(struct rpc_context *rpc, char *dir, int dirlen,
                           uint64_t cookie, const char verf[8], uint32_t maxcount,
                           struct rdp_page *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->w.grab = grab_rdp_page;
    READDIRPLUS3args a = { .dir = mkfh(dir, dirlen), .cookie = cookie,
                           .dircount = maxcount, .maxcount = maxcount };
    memcpy(a.cookieverf, verf, 8);
    ck_assert_int_eq(rpc_nfs3_readdirplus_async(rpc, raw_cb, &a, &pg->w), 0);
    raw_wait(rpc, &pg->w);
    ck_assert_int_eq(pg->w.rpc_status, RPC_STATUS_SUCCESS);
    return pg->w.status;
}

static void grab_fattr(struct waiter *w, void *data)
{
    GETATTR3res *r = data;
    if (r->status == NFS3_OK)
        memcpy(w->text, &r->GETATTR3res_u.resok.obj_attributes, sizeof(fattr3));
}

/* The attributes READDIRPLUS gave for name in dir equal GETATTR's now. */
static void assert_rdp_attr_is_getattr(struct rpc_context *rpc, char *dir, int dirlen,
                                       const char *name, const fattr3 *got)
{
    char fh[64];
    int fhlen;
    ck_assert_int_eq(raw_lookup(rpc, dir, dirlen, name, fh, &fhlen), NFS3_OK);
    struct waiter w = { .grab = grab_fattr };
    GETATTR3args a = { .object = mkfh(fh, fhlen) };
    ck_assert_int_eq(rpc_nfs3_getattr_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    fattr3 want;
    memcpy(&want, w.text, sizeof want);
    ck_assert_msg(got->fileid == want.fileid && got->type == want.type &&
                  got->mode == want.mode && got->nlink == want.nlink &&
                  got->uid == want.uid && got->gid == want.gid &&
                  got->size == want.size && got->used == want.used &&
                  got->mtime.seconds == want.mtime.seconds &&
                  got->mtime.nseconds == want.mtime.nseconds &&
                  got->ctime.seconds == want.ctime.seconds &&
                  got->ctime.nseconds == want.ctime.nseconds,
                  "%s: READDIRPLUS mode %o size %llu ctime %u.%u, GETATTR mode %o "
                  "size %llu ctime %u.%u", name, got->mode,
                  (unsigned long long)got->size, got->ctime.seconds,
                  got->ctime.nseconds, want.mode, (unsigned long long)want.size,
                  want.ctime.seconds, want.ctime.nseconds);
}

START_TEST(readdirplus_pages_across_changes_with_attributes_equal_to_getattr)
{
    struct raw_session r;
    raw_open(&r, rw_cache(), rw_conf, 0);
    struct nfs_context *nfs = nfs_connect(&r.srv, "/", NULL);
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/rdp"), 0);
    char path[64];
    for (int i = 0; i < 30; i++) {
        struct nfsfh *fh;
        snprintf(path, sizeof path, "/demo/rdp/f%02d", i);
        ck_assert_int_eq(nfs_creat(nfs, path, 0644, &fh), 0);
        ck_assert_int_eq(nfs_close(nfs, fh), 0);
    }
    char dir[64];
    int dirlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo/rdp", dir, &dirlen), 0);
    /* The first page (a whole listing from the start: the server keeps a
     * snapshot of the directory). */
    static struct rdp_page p1, p2, full;
    char zero[8] = { 0 };
    ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 1024, &p1), NFS3_OK);
    ck_assert(!p1.eof);
    ck_assert_int_gt(p1.n, 3);
    ck_assert_int_lt(p1.n, 30);
    const char *last = p1.names[p1.n - 1];
    for (int i = 0; i < p1.n; i++)
        if (strcmp(p1.names[i], ".") && strcmp(p1.names[i], ".."))
            ck_assert(p1.has_attr[i]);
    /* Between pages: the last entry listed goes, one not listed yet goes,
     * one is added, one not listed yet is chmod'ed and one written. */
    snprintf(path, sizeof path, "/demo/rdp/%s", last);
    ck_assert_int_eq(nfs_unlink(nfs, path), 0);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/rdp/f28"), 0);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/rdp/new", 0600, &fh), 0);
    ck_assert_int_eq(nfs_close(nfs, fh), 0);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/rdp/f27", 0751), 0);
    ck_assert_int_eq(nfs_open(nfs, "/demo/rdp/f29", O_WRONLY, &fh), 0);
    ck_assert_int_eq(nfs_pwrite(nfs, fh, 0, 12, "hello, again"), 12);
    ck_assert_int_eq(nfs_close(nfs, fh), 0);
    /* The rest, from the cookie and verifier of the first page. */
    bool seen_new = false, seen27 = false, seen29 = false;
    uint64_t cookie = p1.cookies[p1.n - 1];
    char verf[8];
    memcpy(verf, p1.verf, 8);
    int total = p1.n;
    for (bool eof = false; !eof;) {
        ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, cookie, verf, 1024, &p2),
                         NFS3_OK);
        for (int i = 0; i < p2.n; i++) {
            ck_assert_str_ne(p2.names[i], "f28");
            ck_assert_str_ne(p2.names[i], last);
            for (int j = 0; j < p1.n; j++)
                ck_assert_str_ne(p2.names[i], p1.names[j]);
            ck_assert(p2.has_attr[i]);
            assert_rdp_attr_is_getattr(r.rpc, dir, dirlen, p2.names[i], &p2.attrs[i]);
            if (!strcmp(p2.names[i], "f27")) {
                seen27 = true;
                ck_assert_uint_eq(p2.attrs[i].mode & 07777, 0751);
            }
            if (!strcmp(p2.names[i], "f29")) {
                seen29 = true;
                ck_assert_uint_eq(p2.attrs[i].size, 12);
            }
            seen_new |= !strcmp(p2.names[i], "new");
        }
        total += p2.n;
        eof = p2.eof;
        if (p2.n)
            cookie = p2.cookies[p2.n - 1];
        memcpy(verf, p2.verf, 8);
    }
    ck_assert(seen_new && seen27 && seen29);
    ck_assert_int_eq(total, 2 + 30 - 1 + 1);    /* . .. f00..f29 - f28 + new */
    /* A whole listing now: every entry's attributes are GETATTR's. */
    ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 65536, &full), NFS3_OK);
    ck_assert(full.eof);
    ck_assert_int_eq(full.n, 2 + 30 - 2 + 1);
    for (int i = 0; i < full.n; i++) {
        if (!strcmp(full.names[i], ".") || !strcmp(full.names[i], ".."))
            continue;
        ck_assert(full.has_attr[i]);
        assert_rdp_attr_is_getattr(r.rpc, dir, dirlen, full.names[i], &full.attrs[i]);
    }
    /* Once more after a SETATTR of size and times (the snapshot made by
     * the listing above must not answer). */
    ck_assert_int_eq(nfs_truncate(nfs, "/demo/rdp/f29", 5), 0);
    struct timeval tv[2] = { { 1000000, 0 }, { 2000000, 0 } };
    ck_assert_int_eq(nfs_utimes(nfs, "/demo/rdp/f00", tv), 0);
    ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 65536, &full), NFS3_OK);
    for (int i = 0; i < full.n; i++) {
        if (!strcmp(full.names[i], "f29"))
            ck_assert_uint_eq(full.attrs[i].size, 5);
        if (!strcmp(full.names[i], "f00"))
            ck_assert_uint_eq(full.attrs[i].mtime.seconds, 2000000);
        if (strcmp(full.names[i], ".") && strcmp(full.names[i], ".."))
            assert_rdp_attr_is_getattr(r.rpc, dir, dirlen, full.names[i], &full.attrs[i]);
    }
    nfs_destroy_context(nfs);
    raw_close(&r);
}
END_TEST

static void raw_fattr(struct rpc_context *rpc, char *fh, int fhlen, fattr3 *out)
{
    struct waiter w = { .grab = grab_fattr };
    GETATTR3args a = { .object = mkfh(fh, fhlen) };
    ck_assert_int_eq(rpc_nfs3_getattr_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    memcpy(out, w.text, sizeof *out);
}

/* The ".." entry of page pg (asserting it is there, with attributes). */
static const fattr3 *rdp_dotdot(const struct rdp_page *pg)
{
    for (int i = 0; i < pg->n; i++)
        if (!strcmp(pg->names[i], "..")) {
            ck_assert(pg->has_attr[i]);
            return &pg->attrs[i];
        }
    ck_abort_msg("no .. in the page");
    return NULL;
}

/* A run's root is listed from the listing cache too; its ".." is the
 * namespace directory holding the run, whose attributes change when a run
 * appears beside it, and the page must follow them, not stay as kept. */
START_TEST(a_run_roots_listing_follows_the_namespace_directory_it_sits_in)
{
    char nas[300], cache[300], cmd[1024];
    snprintf(nas, sizeof nas, "%s/rootpage-nas-XXXXXX", test_env("NFS_TEST_TMP"));
    snprintf(cache, sizeof cache, "%s/rootpage-cache-XXXXXX", test_env("NFS_TEST_TMP"));
    ck_assert_ptr_nonnull(mkdtemp(nas));
    ck_assert_ptr_nonnull(mkdtemp(cache));
    snprintf(cmd, sizeof cmd, "cp '%s/demo.tar' '%s/'", test_env("NFS_TEST_TMP"), nas);
    ck_assert_int_eq(system(cmd), 0);
    struct raw_session r;
    memset(&r, 0, sizeof r);
    const char *const extra[] = { "--source", nas, NULL };
    ck_assert_int_eq(server_start(&r.srv, cache, "export / *(ro)\nlist_ttl = 1s\n", extra), 0);
    ck_assert_int_eq(raw_mnt(&r.srv, "/", r.root, &r.rootlen), MNT3_OK);
    r.rpc = raw_connect(r.srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    char dir[64];
    int dirlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo", dir, &dirlen), NFS3_OK);
    fattr3 before, after;
    raw_fattr(r.rpc, r.root, r.rootlen, &before);
    static struct rdp_page pg;
    char zero[8] = { 0 };
    /* Listed while it streams in (never kept): wait until it is whole,
     * then listed and kept, then answered from the cache; ".." is the
     * root each time. */
    ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 65536, &pg), NFS3_OK);
    char tarnfs[300];
    snprintf(tarnfs, sizeof tarnfs, "%s", test_env("TARNFSD"));
    ck_assert_ptr_nonnull(strrchr(tarnfs, '/'));
    strcpy(strrchr(tarnfs, '/') + 1, "tarnfs");
    snprintf(cmd, sizeof cmd, "'%s' cache ls --cache '%s' | grep -q '^demo '", tarnfs, cache);
    bool whole = false;
    for (int i = 0; i < 100 && !whole; i++)
        if (!(whole = system(cmd) == 0))
            usleep(100 * 1000);
    ck_assert_msg(whole, "the run was not published within 10 s");
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 65536, &pg), NFS3_OK);
        ck_assert_uint_eq(rdp_dotdot(&pg)->nlink, before.nlink);
        ck_assert_uint_eq(rdp_dotdot(&pg)->fileid, before.fileid);
    }
    /* A second run appears beside it: the root's listing, once refreshed,
     * has changed, and so has the root's mtime. */
    snprintf(cmd, sizeof cmd, "cp '%s/demo.tar' '%s/demo2.tar'", nas, nas);
    ck_assert_int_eq(system(cmd), 0);
    bool moved = false;
    for (int i = 0; i < 100 && !moved; i++) {
        raw_fattr(r.rpc, r.root, r.rootlen, &after);
        moved = after.mtime.seconds != before.mtime.seconds ||
                after.mtime.nseconds != before.mtime.nseconds;
        if (!moved)
            usleep(100 * 1000);
    }
    ck_assert_msg(moved, "the root's mtime did not change when a run appeared");
    ck_assert_int_eq(raw_readdirplus(r.rpc, dir, dirlen, 0, zero, 65536, &pg), NFS3_OK);
    const fattr3 *dd = rdp_dotdot(&pg);
    ck_assert_uint_eq(dd->nlink, after.nlink);
    ck_assert_uint_eq(dd->mtime.seconds, after.mtime.seconds);
    ck_assert_uint_eq(dd->mtime.nseconds, after.mtime.nseconds);
    raw_close(&r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", nas, cache);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Issue 12 finding 9: SETATTR size=2^40 then REMOVE completes at once
 * (it probed every block number for hours at 2^50); sizes past
 * max_file_size (default 2^44) are NFS3ERR_FBIG. */
START_TEST(a_1_tib_sparse_file_is_removed_at_once_and_bigger_sizes_are_fbig)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/huge", 0644, &fh), 0);
    ck_assert_int_eq(nfs_pwrite(nfs, fh, 0, 5, "hello"), 5);
    ck_assert_int_eq(nfs_close(nfs, fh), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(nfs_truncate(nfs, "/demo/huge", UINT64_C(1) << 40), 0);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/huge"), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(took < 1.0, "SETATTR 2^40 + REMOVE took %.2f s", took);
    ck_assert_int_eq(nfs_creat(nfs, "/demo/toobig", 0644, &fh), 0);
    ck_assert_int_eq(nfs_close(nfs, fh), 0);
    ck_assert_int_eq(nfs_truncate(nfs, "/demo/toobig", (UINT64_C(1) << 44) + 1),
                     -EFBIG);
    ck_assert_int_eq(nfs_truncate(nfs, "/demo/toobig", UINT64_C(1) << 50), -EFBIG);
    ck_assert_int_eq(nfs_unlink(nfs, "/demo/toobig"), 0);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static void grab_create(struct waiter *w, void *data)
{
    CREATE3res *r = data;
    if (r->status == NFS3_OK && r->CREATE3res_u.resok.obj.handle_follows) {
        w->fhlen = (int)r->CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_len;
        memcpy(w->fh, r->CREATE3res_u.resok.obj.post_op_fh3_u.handle.data.data_val,
               (size_t)w->fhlen);
    }
    w->u32[0] = r->CREATE3res_u.resok.dir_wcc.after.attributes_follow;
}

/* A setgid directory passes its group to what is made in it, and its setgid bit to new
 * directories (the client's MKDIR mode never carries it), as on Linux file systems. */
START_TEST(a_directory_made_in_a_setgid_directory_is_setgid_and_of_its_group)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/sg"), 0);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/sg", 0, 4321), 0);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/sg", 02775), 0);
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/sg/sub"), 0);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/sg/file", 0644, &fh), 0);
    nfs_close(nfs, fh);
    struct nfs_stat_64 st;
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/sg/sub", &st), 0);
    ck_assert_uint_eq(st.nfs_gid, 4321);
    ck_assert_uint_eq(st.nfs_mode & 07000, S_ISGID);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/sg/file", &st), 0);
    ck_assert_uint_eq(st.nfs_gid, 4321);
    ck_assert_uint_eq(st.nfs_mode & 07777, 0644);     /* a file does not get the bit */
    /* without the bit on the parent: neither the group nor the bit */
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/sg", 0775), 0);
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/sg/plain"), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/sg/plain", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07000, 0);
    ck_assert_uint_ne(st.nfs_gid, 4321);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* Where Linux takes setuid/setgid away, so does the server (the kernel client leaves it
 * to the server): a chown of a non-directory, even by root; a chmod to setgid by an owner
 * outside the file's group; a write by anyone but root.  Setgid without group execute
 * (mandatory locking) and directories keep their bits. */
START_TEST(chown_and_writes_by_users_clear_setuid_and_setgid)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    struct nfsfh *fh;
    struct nfs_stat_64 st;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/suid", 0644, &fh), 0);
    nfs_close(nfs, fh);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/suid", 06755), 0);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/suid", 1000, 1000), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/suid", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 0755);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/suid", 02644), 0);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/suid", 0, 0), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/suid", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 02644);
    ck_assert_int_eq(nfs_mkdir(nfs, "/demo/sgdir"), 0);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/sgdir", 02755), 0);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/sgdir", 1000, 1000), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/sgdir", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 02755);
    /* a user's write, and a user's chmod outside the file's group */
    ck_assert_int_eq(nfs_creat(nfs, "/demo/shared", 0644, &fh), 0);
    nfs_close(nfs, fh);
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/shared", 06777), 0);
    ck_assert_int_eq(nfs_creat(nfs, "/demo/mine", 0644, &fh), 0);
    nfs_close(nfs, fh);
    ck_assert_int_eq(nfs_chown(nfs, "/demo/mine", 1000, 0), 0);
    struct nfs_context *user = nfs_connect(&s, "/", NULL);
    nfs_set_uid(user, 1000);
    nfs_set_gid(user, 1000);
    ck_assert_int_eq(nfs_open(user, "/demo/shared", O_WRONLY, &fh), 0);
    ck_assert_int_eq(nfs_pwrite(user, fh, 0, 1, "w"), 1);
    nfs_close(user, fh);
    ck_assert_int_eq(nfs_chmod(user, "/demo/mine", 02755), 0);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/shared", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 0777);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/mine", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 0755);
    /* root's write keeps them */
    ck_assert_int_eq(nfs_chmod(nfs, "/demo/shared", 06777), 0);
    ck_assert_int_eq(nfs_open(nfs, "/demo/shared", O_WRONLY, &fh), 0);
    ck_assert_int_eq(nfs_pwrite(nfs, fh, 0, 1, "r"), 1);
    nfs_close(nfs, fh);
    ck_assert_int_eq(nfs_stat64(nfs, "/demo/shared", &st), 0);
    ck_assert_uint_eq(st.nfs_mode & 07777, 06777);
    nfs_destroy_context(user);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(exclusive_create_accepts_its_own_retry_and_guarded_refuses_existing)
{
    struct raw_session r;
    raw_open(&r, rw_cache(), rw_conf, 0);
    char dir[64];
    int dirlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo", dir, &dirlen), 0);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "excl", EXCLUSIVE, "verifier"), NFS3_OK);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "excl", EXCLUSIVE, "verifier"), NFS3_OK);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "excl", EXCLUSIVE, "otherone"),
                     NFS3ERR_EXIST);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "excl", GUARDED, NULL), NFS3ERR_EXIST);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "excl", UNCHECKED, NULL), NFS3_OK);
    ck_assert_int_eq(raw_create(r.rpc, dir, dirlen, "a/b", GUARDED, NULL), NFS3ERR_ACCES);
    struct waiter w = { .grab = grab_create };
    CREATE3args a = { .where = { .dir = mkfh(dir, dirlen), .name = "wcc" } };
    a.how.mode = GUARDED;
    rpc_nfs3_create_async(r.rpc, raw_cb, &a, &w);
    raw_wait(r.rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    ck_assert_uint_eq(w.u32[0], 1);     /* directory wcc after attributes */
    /* SETATTR with a wrong ctime guard is NOT_SYNC. */
    struct waiter g = { 0 };
    SETATTR3args sa = { .object = mkfh(w.fh, w.fhlen) };
    sa.new_attributes.mode.set_it = 1;
    sa.new_attributes.mode.set_mode3_u.mode = 0600;
    sa.guard.check = 1;
    sa.guard.sattrguard3_u.obj_ctime.seconds = 12345;
    rpc_nfs3_setattr_async(r.rpc, raw_cb, &sa, &g);
    raw_wait(r.rpc, &g);
    ck_assert_int_eq(g.status, NFS3ERR_NOT_SYNC);
    raw_close(&r);
}
END_TEST

START_TEST(the_write_verifier_changes_when_the_server_restarts)
{
    struct raw_session r;
    raw_open(&r, rw_cache(), rw_conf, 0);
    char dir[64];
    int dirlen;
    ck_assert_int_eq(raw_walk(r.rpc, r.root, r.rootlen, "demo", dir, &dirlen), 0);
    raw_create(r.rpc, dir, dirlen, "verf", UNCHECKED, NULL);
    char fh[64];
    int fhlen;
    ck_assert_int_eq(raw_lookup(r.rpc, dir, dirlen, "verf", fh, &fhlen), 0);
    struct waiter w1, w2, w3;
    raw_write(r.rpc, fh, fhlen, 0, "unstable", 8, UNSTABLE, &w1);
    ck_assert_int_eq(w1.status, NFS3_OK);
    ck_assert_uint_eq(w1.u32[0], 8);
    ck_assert_uint_eq(w1.u32[1], UNSTABLE);
    ck_assert_uint_eq(w1.u32[2], 1);    /* wcc before */
    ck_assert_uint_eq(w1.u32[3], 1);    /* wcc after */
    raw_write(r.rpc, fh, fhlen, 8, "filesync", 8, FILE_SYNC, &w2);
    ck_assert_int_eq(w2.status, NFS3_OK);
    ck_assert_uint_eq(w2.u32[1], FILE_SYNC);
    ck_assert_mem_eq(w1.verf, w2.verf, 8);
    rpc_destroy_context(r.rpc);
    ck_assert_int_eq(server_stop(&r.srv), 0);
    ck_assert_int_eq(server_start(&r.srv, rw_cache(), rw_conf, NULL), 0);
    r.rpc = raw_connect(r.srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    raw_write(r.rpc, fh, fhlen, 16, "again!!!", 8, UNSTABLE, &w3);
    ck_assert_int_eq(w3.status, NFS3_OK);
    ck_assert(memcmp(w1.verf, w3.verf, 8) != 0);
    raw_close(&r);
}
END_TEST

START_TEST(root_squash_stops_root_writing_into_roots_directories)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), "export / *(rw)\n", NULL), 0);
    struct nfs_context *nfs = nfs_connect(&s, "/", NULL);
    struct nfsfh *fh;
    ck_assert_int_eq(nfs_creat(nfs, "/demo/squashed", 0644, &fh), -EACCES);
    nfs_destroy_context(nfs);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: concurrency ---- */

struct reader_arg {
    const struct test_server *s;
    const char *want;
    size_t size;
    int ok;
};

static void *reader_main(void *p)
{
    struct reader_arg *ra = p;
    struct nfs_context *nfs = nfs_init_context();
    char url[256];
    snprintf(url, sizeof url, "nfs://127.0.0.1/?nfsport=%d&mountport=%d&version=3",
             ra->s->nfs_port, ra->s->mount_port);
    struct nfs_url *u = nfs_parse_url_dir(nfs, url);
    if (!u || nfs_mount(nfs, u->server, u->path)) {
        nfs_destroy_url(u);
        nfs_destroy_context(nfs);
        return NULL;
    }
    nfs_destroy_url(u);
    char *got = malloc(ra->size);
    struct nfsfh *fh;
    bool good = nfs_open(nfs, "/demo/big.bin", O_RDONLY, &fh) == 0;
    size_t have = 0;
    while (good && have < ra->size) {
        int n = nfs_pread(nfs, fh, have, ra->size - have, got + have);
        good = n > 0;
        have += good ? (size_t)n : 0;
    }
    if (good) {
        nfs_close(nfs, fh);
        struct nfs_stat_64 st;
        for (int i = 0; i < 50 && good; i++)
            good = nfs_stat64(nfs, "/demo/perm/public", &st) == 0;
    }
    ra->ok = good && memcmp(got, ra->want, ra->size) == 0;
    free(got);
    nfs_destroy_context(nfs);
    return NULL;
}

START_TEST(many_clients_at_once_all_read_the_right_bytes)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/demo/big.bin", src_dir());
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    char *want = malloc((size_t)st.st_size);
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(read(fd, want, (size_t)st.st_size), st.st_size);
    close(fd);
    enum { N = 6 };
    pthread_t t[N];
    struct reader_arg ra[N];
    for (int i = 0; i < N; i++) {
        ra[i] = (struct reader_arg){ &s, want, (size_t)st.st_size, 0 };
        ck_assert_int_eq(pthread_create(&t[i], NULL, reader_main, &ra[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(ra[i].ok, "client %d", i);
    }
    free(want);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: export isolation (issue 12, finding 1) ---- */

static void grab_rdp_dotdot(struct waiter *w, void *data)
{
    READDIRPLUS3res *r = data;
    if (r->status != NFS3_OK)
        return;
    /* libnfs may leave list entries unaligned: copy each one out first. */
    for (entryplus3 *p = r->READDIRPLUS3res_u.resok.reply.entries; p;) {
        entryplus3 e;
        memcpy(&e, p, sizeof e);
        if (!strcmp(e.name, "..") && e.name_handle.handle_follows) {
            w->fhlen = (int)e.name_handle.post_op_fh3_u.handle.data.data_len;
            memcpy(w->fh, e.name_handle.post_op_fh3_u.handle.data.data_val, (size_t)w->fhlen);
        }
        if (!strcmp(e.name, ".."))
            w->u64[0] = e.fileid;
        if (!strcmp(e.name, "."))
            w->u64[1] = e.fileid;
        p = e.nextentry;
    }
}

static const char *two_exports_conf =
    "export /demo 127.0.0.1(ro)\n"
    "export /wide 10.9.9.9(ro)\n";

START_TEST(dotdot_of_an_export_root_is_the_export_root)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), two_exports_conf, NULL), 0);
    ck_assert_int_eq(raw_mnt(&s, "/wide", NULL, NULL), MNT3ERR_ACCES);
    char root[64], up[64], other[64];
    int rootlen, uplen, otherlen;
    ck_assert_int_eq(raw_mnt(&s, "/demo", root, &rootlen), MNT3_OK);
    struct rpc_context *rpc = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    /* LOOKUP "..": the export root again, so "wide" is not found there. */
    ck_assert_int_eq(raw_lookup(rpc, root, rootlen, "..", up, &uplen), NFS3_OK);
    ck_assert_int_eq(uplen, rootlen);
    ck_assert_mem_eq(up, root, (size_t)rootlen);
    ck_assert_int_eq(raw_lookup(rpc, up, uplen, "wide", other, &otherlen), NFS3ERR_NOENT);
    ck_assert_int_eq(raw_lookup(rpc, up, uplen, "..", other, &otherlen), NFS3_OK);
    ck_assert_mem_eq(other, root, (size_t)rootlen);
    /* READDIRPLUS: the ".." entry is the root itself too. */
    struct waiter w = { .grab = grab_rdp_dotdot };
    READDIRPLUS3args a = { .dir = mkfh(root, rootlen), .dircount = 8192, .maxcount = 65536 };
    ck_assert_int_eq(rpc_nfs3_readdirplus_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    ck_assert_int_eq(w.fhlen, rootlen);
    ck_assert_mem_eq(w.fh, root, (size_t)rootlen);
    ck_assert_uint_eq(w.u64[0], w.u64[1]);
    /* Below the root, ".." is the real parent. */
    char perm[64], back[64];
    int permlen, backlen;
    ck_assert_int_eq(raw_lookup(rpc, root, rootlen, "perm", perm, &permlen), NFS3_OK);
    ck_assert_int_eq(raw_lookup(rpc, perm, permlen, "..", back, &backlen), NFS3_OK);
    ck_assert_mem_eq(back, root, (size_t)rootlen);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static int raw_mkdir(struct rpc_context *rpc, char *dir, int dirlen, const char *name)
{
    struct waiter w = { 0 };
    MKDIR3args a = { .where = { .dir = mkfh(dir, dirlen), .name = (char *)name } };
    a.attributes.mode.set_it = 1;
    a.attributes.mode.set_mode3_u.mode = 0755;
    ck_assert_int_eq(rpc_nfs3_mkdir_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return w.status;
}

static int raw_rename(struct rpc_context *rpc, char *from, int fromlen, const char *fname,
                      char *to, int tolen, const char *tname)
{
    struct waiter w = { 0 };
    RENAME3args a = { .from = { .dir = mkfh(from, fromlen), .name = (char *)fname },
                      .to = { .dir = mkfh(to, tolen), .name = (char *)tname } };
    ck_assert_int_eq(rpc_nfs3_rename_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return w.status;
}

START_TEST(a_handle_moved_out_of_its_export_is_stale)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(),
                                  "export /demo 127.0.0.1(rw,no_root_squash)\n"
                                  "export /demo/iso-a 127.0.0.1(rw,no_root_squash)\n",
                                  NULL), 0);
    char demo[64], a[64], sub[64], up[64];
    int demolen, alen, sublen, uplen;
    ck_assert_int_eq(raw_mnt(&s, "/demo", demo, &demolen), MNT3_OK);
    struct rpc_context *rpc = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    ck_assert_int_eq(raw_mkdir(rpc, demo, demolen, "iso-a"), NFS3_OK);
    ck_assert_int_eq(raw_mnt(&s, "/demo/iso-a", a, &alen), MNT3_OK);
    ck_assert_int_eq(raw_mkdir(rpc, a, alen, "sub"), NFS3_OK);
    ck_assert_int_eq(raw_lookup(rpc, a, alen, "sub", sub, &sublen), NFS3_OK);
    ck_assert_int_eq(raw_getattr(rpc, sub, sublen), NFS3_OK);
    /* The inner export's root is its own "..". */
    ck_assert_int_eq(raw_lookup(rpc, a, alen, "..", up, &uplen), NFS3_OK);
    ck_assert_mem_eq(up, a, (size_t)alen);
    /* Moved out of /demo/iso-a through the outer export: the inner export's
     * handle no longer reaches it. */
    char a_outer[64];
    int a_outerlen;
    ck_assert_int_eq(raw_lookup(rpc, demo, demolen, "iso-a", a_outer, &a_outerlen), NFS3_OK);
    ck_assert_int_eq(raw_rename(rpc, a_outer, a_outerlen, "sub", demo, demolen, "iso-moved"),
                     NFS3_OK);
    ck_assert_int_eq(raw_getattr(rpc, sub, sublen), NFS3ERR_STALE);
    ck_assert_int_eq(raw_lookup(rpc, sub, sublen, "..", up, &uplen), NFS3ERR_STALE);
    /* Back inside, it is reachable again. */
    ck_assert_int_eq(raw_rename(rpc, demo, demolen, "iso-moved", a_outer, a_outerlen, "sub"),
                     NFS3_OK);
    ck_assert_int_eq(raw_getattr(rpc, sub, sublen), NFS3_OK);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: the MOUNT list (issue 12, finding 3) ---- */

struct mnt_batch {
    int done, ok;
};

static void mnt_batch_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct mnt_batch *b = priv;
    b->done++;
    if (status == RPC_STATUS_SUCCESS && data && ((mountres3 *)data)->fhs_status == MNT3_OK)
        b->ok++;
}

/* The i-th spelling of "/demo": "/" or "/." for each of 18 bits, then
 * "demo", then nothing, "/" or "/.". */
static void spelling(unsigned i, char *out)
{
    out[0] = 0;
    for (int b = 0; b < 18; b++)
        strcat(out, (i >> b) & 1 ? "/." : "/");
    strcat(out, "/demo");
    strcat(out, i % 3 == 1 ? "/" : i % 3 == 2 ? "/." : "");
}

static void grab_dump(struct waiter *w, void *data)
{
    /* libnfs may leave list entries unaligned: copy each one out first. */
    for (mountbody *p = *(mountlist *)data; p;) {
        mountbody b;
        memcpy(&b, p, sizeof b);
        w->names = realloc(w->names, sizeof(char *) * (size_t)(w->n + 1));
        w->names[w->n++] = strdup(b.ml_directory);
        p = b.ml_next;
    }
}

static int dump_count(struct rpc_context *rpc, char *first, size_t cap)
{
    struct waiter w = { .grab = grab_dump };
    ck_assert_int_eq(rpc_mount3_dump_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    if (first && w.n)
        snprintf(first, cap, "%s", w.names[0]);
    for (int i = 0; i < w.n; i++)
        free(w.names[i]);
    free(w.names);
    return w.n;
}

START_TEST(mount_150000_spellings_of_one_path_list_it_once)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, ro_cache(), NULL, NULL), 0);
    struct rpc_context *rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct mnt_batch b = { 0 };
    const int total = 150000, window = 256;
    char path[128];
    for (int sent = 0; sent < total;) {
        while (sent < total && sent - b.done < window) {
            spelling((unsigned)sent, path);
            ck_assert_int_eq(rpc_mount3_mnt_async(rpc, mnt_batch_cb, path, &b), 0);
            sent++;
        }
        struct pollfd p = { .fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc) };
        int r = poll(&p, 1, 30000);
        ck_assert_int_gt(r, 0);
        ck_assert_int_eq(rpc_service(rpc, p.revents), 0);
    }
    for (int i = 0; i < 6000 && b.done < total; i++) {
        struct pollfd p = { .fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc) };
        int r = poll(&p, 1, 100);
        ck_assert_int_ge(r, 0);
        ck_assert_int_eq(rpc_service(rpc, r > 0 ? p.revents : 0), 0);
    }
    ck_assert_int_eq(b.done, total);
    ck_assert_int_eq(b.ok, total);
    char first[256] = "";
    ck_assert_int_eq(dump_count(rpc, first, sizeof first), 1);
    ck_assert_str_eq(first, "/demo");
    rpc_destroy_context(rpc);
    /* The server still answers. */
    ck_assert_int_eq(raw_mnt(&s, "/demo/perm", NULL, NULL), MNT3_OK);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* Lines of the server's log containing needle. */
static int log_lines(const struct test_server *s, const char *needle)
{
    char path[300], line[4096];
    snprintf(path, sizeof path, "%s/tarnfsd.log", s->dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

START_TEST(a_host_refused_in_a_loop_does_not_flood_the_log)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), "export /demo 10.9.9.9(rw)\n", NULL), 0);
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(raw_mnt(&s, i % 2 ? "/demo" : "/nope", NULL, NULL),
                         i % 2 ? MNT3ERR_ACCES : MNT3ERR_NOENT);
    ck_assert_int_eq(server_stop(&s), 0);
    int lines = log_lines(&s, "mount: 127.0.0.1");
    ck_assert_int_ge(lines, 1);
    ck_assert_int_le(lines, 50);        /* MNT_LOG_BURST per 10 s */
}
END_TEST

/* MNT /demo, then n new directories /demo/top/<prefix>NN, each made and
 * mounted (every MNT must succeed, listed or not). */
static void mount_new_dirs(const struct test_server *s, const char *top, const char *prefix,
                           int n)
{
    char demo[64], dir[64];
    int demolen, dirlen;
    ck_assert_int_eq(raw_mnt(s, "/demo", demo, &demolen), MNT3_OK);
    struct rpc_context *nfs = raw_connect(s->nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    ck_assert_int_eq(raw_mkdir(nfs, demo, demolen, top), NFS3_OK);
    ck_assert_int_eq(raw_lookup(nfs, demo, demolen, top, dir, &dirlen), NFS3_OK);
    char name[64], path[192];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%02d", prefix, i);
        ck_assert_int_eq(raw_mkdir(nfs, dir, dirlen, name), NFS3_OK);
    }
    rpc_destroy_context(nfs);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/demo/%s/%s%02d", top, prefix, i);
        ck_assert_int_eq(raw_mnt(s, path, NULL, NULL), MNT3_OK);
    }
}

START_TEST(mount_list_keeps_at_most_64_paths_per_host)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    mount_new_dirs(&s, "mnt-cap", "d", 80);        /* all 80 MNTs succeed */
    struct rpc_context *rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    ck_assert_int_eq(dump_count(rpc, NULL, 0), 64);     /* /demo and 63 more */
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_mount3_umntall_async(rpc, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(dump_count(rpc, NULL, 0), 0);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* A MOUNT DUMP call sent over UDP from source address src (host order) to
 * the server's mount port; returns the reply's length in bytes and counts
 * its list entries into *entries, checking each is from host want_host. */
static ssize_t udp_dump(const struct test_server *s, uint32_t src, const char *want_host,
                        int *entries)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(src) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->mount_port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    /* xid, CALL, RPC 2, MOUNT 3 DUMP, AUTH_NONE credential and verifier */
    uint32_t call[10] = { htonl(77), 0, htonl(2), htonl(100005), htonl(3), htonl(2), 0, 0, 0, 0 };
    ck_assert_int_eq(sendto(fd, call, sizeof call, 0, (struct sockaddr *)&to, sizeof to),
                     (ssize_t)sizeof call);
    uint32_t r[16384];
    ssize_t got = recv(fd, r, sizeof r, 0);
    close(fd);
    ck_assert_int_ge(got, 28);
    ck_assert_uint_eq(ntohl(r[0]), 77);
    ck_assert_uint_eq(ntohl(r[5]), 0);          /* SUCCESS */
    size_t i = 6, n = (size_t)got / 4;
    *entries = 0;
    while (i < n && ntohl(r[i]) == 1) {         /* another entry follows */
        uint32_t hl = ntohl(r[i + 1]);
        ck_assert_uint_lt(i + 2 + (hl + 3) / 4, n);
        char host[64] = "";
        memcpy(host, &r[i + 2], hl < sizeof host - 1 ? hl : sizeof host - 1);
        ck_assert_str_eq(host, want_host);
        i += 2 + (hl + 3) / 4;
        uint32_t dl = ntohl(r[i]);
        i += 1 + (dl + 3) / 4;
        (*entries)++;
    }
    ck_assert_uint_lt(i, n);
    ck_assert_uint_eq(ntohl(r[i]), 0);          /* the list ends */
    return got;
}

START_TEST(dump_over_udp_sends_a_small_reply_of_the_callers_own_mounts)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    mount_new_dirs(&s, "udp-dump-with-a-long-name", "directory-", 60);
    /* over TCP, every entry (about 4 KiB of list) */
    struct rpc_context *rpc = raw_connect(s.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    ck_assert_int_eq(dump_count(rpc, NULL, 0), 61);
    rpc_destroy_context(rpc);
    /* over UDP, a forged 40-byte call gets at most a 1 KiB list back */
    int n;
    ssize_t got = udp_dump(&s, INADDR_LOOPBACK, "127.0.0.1", &n);
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, 61);
    ck_assert_int_le(got, 28 + 1024 + 64);
    /* and only the caller's own mounts: 127.0.0.2 has none */
    got = udp_dump(&s, INADDR_LOOPBACK + 1, "", &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(got, 28);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* ---- tests: ACCESS and sticky directories (issue 12, findings 13, 14) ---- */

/* CREATE name (GUARDED, given mode) in dir; returns nfsstat3, fills fh. */
static int raw_create_mode(struct rpc_context *rpc, char *dir, int dirlen, const char *name,
                           unsigned mode, char fh[64], int *fhlen)
{
    struct waiter w = { .grab = grab_create };
    CREATE3args a = { .where = { .dir = mkfh(dir, dirlen), .name = (char *)name } };
    a.how.mode = GUARDED;
    a.how.createhow3_u.obj_attributes.mode.set_it = 1;
    a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = mode;
    ck_assert_int_eq(rpc_nfs3_create_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    if (fh && w.status == NFS3_OK) {
        memcpy(fh, w.fh, 64);
        *fhlen = w.fhlen;
    }
    return w.status;
}

static uint32_t raw_access(struct rpc_context *rpc, char *fh, int fhlen, uint32_t want)
{
    struct waiter w = { .grab = grab_access };
    ACCESS3args a = { .object = mkfh(fh, fhlen), .access = want };
    ck_assert_int_eq(rpc_nfs3_access_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    return w.u32[0];
}

static int raw_setmode(struct rpc_context *rpc, char *fh, int fhlen, unsigned mode)
{
    struct waiter w = { 0 };
    SETATTR3args a = { .object = mkfh(fh, fhlen) };
    a.new_attributes.mode.set_it = 1;
    a.new_attributes.mode.set_mode3_u.mode = mode;
    ck_assert_int_eq(rpc_nfs3_setattr_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    return w.status;
}

/* A fresh directory dir under /demo on the rw cache, mode 01777 or 0777. */
static void shared_dir(struct rpc_context *root, char *demo, int demolen, const char *name,
                       unsigned mode, char dir[64], int *dirlen)
{
    ck_assert_int_eq(raw_mkdir(root, demo, demolen, name), NFS3_OK);
    ck_assert_int_eq(raw_lookup(root, demo, demolen, name, dir, dirlen), NFS3_OK);
    ck_assert_int_eq(raw_setmode(root, dir, *dirlen, mode), NFS3_OK);
}

START_TEST(access_gives_the_owner_only_what_the_mode_allows)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    char demo[64], dir[64], f[64];
    int demolen, dirlen, flen;
    ck_assert_int_eq(raw_mnt(&s, "/demo", demo, &demolen), MNT3_OK);
    struct rpc_context *root = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    struct rpc_context *u = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 1000, 1000);
    shared_dir(root, demo, demolen, "acc", 0777, dir, &dirlen);
    const uint32_t rme = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;
    /* 0300: the owner may write, not read. */
    ck_assert_int_eq(raw_create_mode(u, dir, dirlen, "wo", 0300, f, &flen), NFS3_OK);
    ck_assert_uint_eq(raw_access(u, f, flen, rme), ACCESS3_MODIFY | ACCESS3_EXTEND);
    /* 0400: the owner may read, not change. */
    ck_assert_int_eq(raw_create_mode(u, dir, dirlen, "ro", 0400, f, &flen), NFS3_OK);
    ck_assert_uint_eq(raw_access(u, f, flen, rme), ACCESS3_READ);
    /* 0600: both; and root (no_root_squash) keeps reading and writing 0400. */
    ck_assert_uint_eq(raw_access(root, f, flen, rme), rme);
    ck_assert_int_eq(raw_create_mode(u, dir, dirlen, "rw", 0600, f, &flen), NFS3_OK);
    ck_assert_uint_eq(raw_access(u, f, flen, rme), rme);
    rpc_destroy_context(u);
    rpc_destroy_context(root);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static int raw_remove(struct rpc_context *rpc, char *dir, int dirlen, const char *name)
{
    struct waiter w = { 0 };
    REMOVE3args a = { .object = { .dir = mkfh(dir, dirlen), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_remove_async(rpc, raw_cb, &a, &w), 0);
    raw_wait(rpc, &w);
    ck_assert_int_eq(w.rpc_status, RPC_STATUS_SUCCESS);
    return w.status;
}

START_TEST(rename_onto_another_users_file_in_a_sticky_dir_is_refused)
{
    struct test_server s = { 0 };
    ck_assert_int_eq(server_start(&s, rw_cache(), rw_conf, NULL), 0);
    char demo[64], dir[64], f[64], victim[64];
    int demolen, dirlen, flen, victimlen;
    ck_assert_int_eq(raw_mnt(&s, "/demo", demo, &demolen), MNT3_OK);
    struct rpc_context *root = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    struct rpc_context *a = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 1000, 1000);
    struct rpc_context *b = raw_connect(s.nfs_port, NFS_PROGRAM, NFS_V3, 2000, 2000);
    shared_dir(root, demo, demolen, "sticky", 01777, dir, &dirlen);
    ck_assert_int_eq(raw_create_mode(b, dir, dirlen, "victim", 0644, victim, &victimlen),
                     NFS3_OK);
    ck_assert_int_eq(raw_create_mode(a, dir, dirlen, "mine", 0644, f, &flen), NFS3_OK);
    /* Like REMOVE (EPERM, as knfsd and a local sticky /tmp answer). */
    ck_assert_int_eq(raw_rename(a, dir, dirlen, "mine", dir, dirlen, "victim"), NFS3ERR_PERM);
    ck_assert_int_eq(raw_remove(a, dir, dirlen, "victim"), NFS3ERR_PERM);
    ck_assert_int_eq(raw_getattr(b, victim, victimlen), NFS3_OK);     /* not replaced */
    /* Onto a free name, or onto one's own file, is allowed; so is root. */
    ck_assert_int_eq(raw_rename(a, dir, dirlen, "mine", dir, dirlen, "mine2"), NFS3_OK);
    ck_assert_int_eq(raw_create_mode(a, dir, dirlen, "mine3", 0644, NULL, NULL), NFS3_OK);
    ck_assert_int_eq(raw_rename(a, dir, dirlen, "mine2", dir, dirlen, "mine3"), NFS3_OK);
    ck_assert_int_eq(raw_rename(root, dir, dirlen, "mine3", dir, dirlen, "victim"), NFS3_OK);
    rpc_destroy_context(b);
    rpc_destroy_context(a);
    rpc_destroy_context(root);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static Suite *nfs_suite(void)
{
    Suite *s = suite_create("nfs");
    TCase *rd = tcase_create("read");
    tcase_set_timeout(rd, 240);
    tcase_add_test(rd, mount_gives_1mib_transfers_and_null_answers);
    tcase_add_test(rd, pathconf_and_fsinfo_describe_the_filesystem);
    tcase_add_test(rd, every_file_reads_back_identical_to_the_source);
    tcase_add_test(rd, reads_at_and_past_the_end_report_eof);
    tcase_add_test(rd, readdir_pages_by_cookie_and_checks_the_verifier);
    tcase_add_test(rd, readdirplus_lists_a_100000_entry_directory_completely);
    tcase_add_test(rd, a_run_roots_listing_follows_the_namespace_directory_it_sits_in);
    tcase_add_test(rd, handles_keep_working_across_a_server_restart);
    tcase_add_test(rd, many_clients_at_once_all_read_the_right_bytes);
    suite_add_tcase(s, rd);
    TCase *bad = tcase_create("bad-input");
    tcase_set_timeout(bad, 120);
    tcase_add_test(bad, malformed_handles_are_badhandle_and_forged_ones_stale);
    tcase_add_test(bad, names_too_long_or_with_a_slash_are_refused);
    suite_add_tcase(s, bad);
    TCase *acl = tcase_create("exports");
    tcase_set_timeout(acl, 120);
    tcase_add_test(acl, a_read_only_export_answers_rofs_to_every_change);
    tcase_add_test(acl, a_client_not_in_the_export_list_is_refused_at_mount_and_per_call);
    tcase_add_test(acl, mount_export_dump_and_umnt_keep_their_lists);
    tcase_add_test(acl, dump_and_export_answer_nothing_to_a_host_no_export_admits);
    tcase_add_test(acl, root_is_squashed_unless_the_export_says_no_root_squash);
    tcase_add_test(acl, access_reports_what_mode_and_export_allow);
    suite_add_tcase(s, acl);
    TCase *wr = tcase_create("write");
    tcase_set_timeout(wr, 120);
    tcase_add_test(wr, files_are_created_written_committed_and_read_back);
    tcase_add_test(wr, a_1_tib_sparse_file_is_removed_at_once_and_bigger_sizes_are_fbig);
    tcase_add_test(wr, exclusive_create_accepts_its_own_retry_and_guarded_refuses_existing);
    tcase_add_test(wr, a_directory_made_in_a_setgid_directory_is_setgid_and_of_its_group);
    tcase_add_test(wr, chown_and_writes_by_users_clear_setuid_and_setgid);
    tcase_add_test(wr, the_write_verifier_changes_when_the_server_restarts);
    tcase_add_test(wr, root_squash_stops_root_writing_into_roots_directories);
    tcase_add_test(wr, readdirplus_pages_across_changes_with_attributes_equal_to_getattr);
    suite_add_tcase(s, wr);
    TCase *iso = tcase_create("isolation");
    tcase_set_timeout(iso, 120);
    tcase_add_test(iso, dotdot_of_an_export_root_is_the_export_root);
    tcase_add_test(iso, a_handle_moved_out_of_its_export_is_stale);
    suite_add_tcase(s, iso);
    TCase *ml = tcase_create("mountlist");
    tcase_set_timeout(ml, 300);
    tcase_add_test(ml, mount_150000_spellings_of_one_path_list_it_once);
    tcase_add_test(ml, mount_list_keeps_at_most_64_paths_per_host);
    tcase_add_test(ml, dump_over_udp_sends_a_small_reply_of_the_callers_own_mounts);
    tcase_add_test(ml, a_host_refused_in_a_loop_does_not_flood_the_log);
    suite_add_tcase(s, ml);
    TCase *pm = tcase_create("perms");
    tcase_set_timeout(pm, 120);
    tcase_add_test(pm, access_gives_the_owner_only_what_the_mode_allows);
    tcase_add_test(pm, rename_onto_another_users_file_in_a_sticky_dir_is_refused);
    suite_add_tcase(s, pm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nfs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
