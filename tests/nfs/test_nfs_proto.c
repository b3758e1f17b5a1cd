/* test_nfs_proto.c: tarnfsd's answers to RFC 1813 edge cases (guards,
 * mismatched counts, bad cookies, ".", "..", types, cross-run changes, bad
 * handles) through libnfs's raw RPC API, each as knfsd answers them. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#include "server.h"

static const char *ro_cache(void) { return test_env("NFS_TEST_CACHE"); }
static const char *rw_cache(void) { return test_env("NFS_TEST_RWCACHE"); }
/* Two runs, "demo" and "other", both writable. */
static const char *rw2_cache(void) { return test_env("NFS_TEST_RW2CACHE"); }

static const char *rw_conf = "export / *(rw,no_root_squash)\n";
static const char *ro_conf = "export / *(ro,no_root_squash)\n";

/* ---- libnfs raw RPC, made synchronous ---- */

struct waiter {
    bool done;
    int rpc_status;
    int status;                     /* first word of the result */
    void (*grab)(struct waiter *w, void *data);
    char fh[64];
    int fhlen;
    uint64_t u64[8];
    uint32_t u32[8];
    char verf[8];
    fattr3 attr;
    bool has_attr;
    wcc_data wcc[2];
};

static void raw_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    (void)rpc;
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
    ck_assert_int_eq(w->rpc_status, RPC_STATUS_SUCCESS);
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

static nfs_fh3 mkfh(char *buf, int len)
{
    nfs_fh3 fh;
    fh.data.data_len = (u_int)len;
    fh.data.data_val = buf;
    return fh;
}

/* A handle copied out of a reply. */
struct fh {
    char b[64];
    int len;
};

static nfs_fh3 F(struct fh *h) { return mkfh(h->b, h->len); }

/* A server, mounted raw at "/", and an AUTH_SYS root connection. */
struct sess {
    struct test_server srv;
    struct rpc_context *rpc;
    struct fh root;
};

static void sess_open(struct sess *s, const char *cache, const char *conf)
{
    memset(s, 0, sizeof *s);
    ck_assert_int_eq(server_start(&s->srv, cache, conf, NULL), 0);
    struct rpc_context *m = raw_connect(s->srv.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct waiter w = { .grab = grab_mnt };
    ck_assert_int_eq(rpc_mount3_mnt_async(m, raw_cb, "/", &w), 0);
    raw_wait(m, &w);
    rpc_destroy_context(m);
    ck_assert_int_eq(w.status, MNT3_OK);
    memcpy(s->root.b, w.fh, 64);
    s->root.len = w.fhlen;
    s->rpc = raw_connect(s->srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
}

static void sess_close(struct sess *s)
{
    rpc_destroy_context(s->rpc);
    ck_assert_int_eq(server_stop(&s->srv), 0);
}

static void grab_post_fh(struct waiter *w, const post_op_fh3 *p, const post_op_attr *a)
{
    if (p->handle_follows) {
        w->fhlen = (int)p->post_op_fh3_u.handle.data.data_len;
        memcpy(w->fh, p->post_op_fh3_u.handle.data.data_val, (size_t)w->fhlen);
    }
    w->has_attr = a->attributes_follow;
    if (a->attributes_follow)
        w->attr = a->post_op_attr_u.attributes;
}

/* ---- one wrapper per procedure: returns nfsstat3 ---- */

static void grab_getattr(struct waiter *w, void *data)
{
    GETATTR3res *r = data;
    if (r->status == NFS3_OK) {
        w->attr = r->GETATTR3res_u.resok.obj_attributes;
        w->has_attr = true;
    }
}

static int getattr(struct sess *s, struct fh *h, fattr3 *out)
{
    struct waiter w = { .grab = grab_getattr };
    GETATTR3args a = { .object = F(h) };
    ck_assert_int_eq(rpc_nfs3_getattr_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out)
        *out = w.attr;
    return w.status;
}

static void grab_lookup(struct waiter *w, void *data)
{
    LOOKUP3res *r = data;
    if (r->status == NFS3_OK) {
        LOOKUP3resok *ok = &r->LOOKUP3res_u.resok;
        w->fhlen = (int)ok->object.data.data_len;
        memcpy(w->fh, ok->object.data.data_val, (size_t)w->fhlen);
        w->has_attr = ok->obj_attributes.attributes_follow;
        w->attr = ok->obj_attributes.post_op_attr_u.attributes;
    }
}

static int lookup(struct sess *s, struct fh *dir, const char *name, struct fh *out)
{
    struct waiter w = { .grab = grab_lookup };
    LOOKUP3args a = { .what = { .dir = F(dir), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_lookup_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out && w.status == NFS3_OK) {
        memcpy(out->b, w.fh, 64);
        out->len = w.fhlen;
    }
    return w.status;
}

static void walk(struct sess *s, const char *path, struct fh *out)
{
    struct fh cur = s->root;
    char part[256];
    while (*path) {
        size_t n = strcspn(path, "/");
        memcpy(part, path, n);
        part[n] = 0;
        ck_assert_msg(lookup(s, &cur, part, &cur) == NFS3_OK, "lookup %s", part);
        path += n;
        while (*path == '/')
            path++;
    }
    *out = cur;
}

static void grab_setattr(struct waiter *w, void *data)
{
    SETATTR3res *r = data;
    w->wcc[0] = r->SETATTR3res_u.resok.obj_wcc;
}

static int setattr(struct sess *s, struct fh *h, const sattr3 *sa, const nfstime3 *guard)
{
    struct waiter w = { .grab = grab_setattr };
    SETATTR3args a = { .object = F(h), .new_attributes = *sa };
    if (guard) {
        a.guard.check = 1;
        a.guard.sattrguard3_u.obj_ctime = *guard;
    }
    ck_assert_int_eq(rpc_nfs3_setattr_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

static void grab_create(struct waiter *w, void *data)
{
    CREATE3res *r = data;
    if (r->status == NFS3_OK)
        grab_post_fh(w, &r->CREATE3res_u.resok.obj, &r->CREATE3res_u.resok.obj_attributes);
}

/* CREATE name; size >= 0 sets the size attribute (UNCHECKED/GUARDED). */
static int create(struct sess *s, struct fh *dir, const char *name, createmode3 how,
                  const char *verf, int64_t size, struct fh *out)
{
    struct waiter w = { .grab = grab_create };
    CREATE3args a = { .where = { .dir = F(dir), .name = (char *)name } };
    a.how.mode = how;
    if (how == EXCLUSIVE) {
        memcpy(a.how.createhow3_u.verf, verf, 8);
    } else {
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
        if (size >= 0) {
            a.how.createhow3_u.obj_attributes.size.set_it = 1;
            a.how.createhow3_u.obj_attributes.size.set_size3_u.size = (uint64_t)size;
        }
    }
    ck_assert_int_eq(rpc_nfs3_create_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out && w.status == NFS3_OK) {
        ck_assert_int_gt(w.fhlen, 0);
        memcpy(out->b, w.fh, 64);
        out->len = w.fhlen;
    }
    return w.status;
}

static void grab_mkdir(struct waiter *w, void *data)
{
    MKDIR3res *r = data;
    if (r->status == NFS3_OK)
        grab_post_fh(w, &r->MKDIR3res_u.resok.obj, &r->MKDIR3res_u.resok.obj_attributes);
}

static int mkdir3(struct sess *s, struct fh *dir, const char *name, struct fh *out)
{
    struct waiter w = { .grab = grab_mkdir };
    MKDIR3args a = { .where = { .dir = F(dir), .name = (char *)name } };
    a.attributes.mode.set_it = 1;
    a.attributes.mode.set_mode3_u.mode = 0755;
    ck_assert_int_eq(rpc_nfs3_mkdir_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out && w.status == NFS3_OK) {
        memcpy(out->b, w.fh, 64);
        out->len = w.fhlen;
    }
    return w.status;
}

static int mknod3(struct sess *s, struct fh *dir, const char *name, ftype3 type)
{
    struct waiter w = { 0 };
    MKNOD3args a = { .where = { .dir = F(dir), .name = (char *)name } };
    a.what.type = type;
    if (type == NF3CHR || type == NF3BLK) {
        a.what.mknoddata3_u.chr_device.spec.specdata1 = 1;
        a.what.mknoddata3_u.chr_device.spec.specdata2 = 3;
    }
    ck_assert_int_eq(rpc_nfs3_mknod_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

static int symlink3(struct sess *s, struct fh *dir, const char *name, const char *target)
{
    struct waiter w = { 0 };
    SYMLINK3args a = { .where = { .dir = F(dir), .name = (char *)name } };
    a.symlink.symlink_data = (char *)target;
    ck_assert_int_eq(rpc_nfs3_symlink_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

static void grab_readlink(struct waiter *w, void *data)
{
    READLINK3res *r = data;
    if (r->status == NFS3_OK)
        w->u32[0] = (uint32_t)strlen(r->READLINK3res_u.resok.data);
}

static int readlink3(struct sess *s, struct fh *h, uint32_t *len)
{
    struct waiter w = { .grab = grab_readlink };
    READLINK3args a = { .symlink = F(h) };
    ck_assert_int_eq(rpc_nfs3_readlink_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (len)
        *len = w.u32[0];
    return w.status;
}

static int remove3(struct sess *s, struct fh *dir, const char *name)
{
    struct waiter w = { 0 };
    REMOVE3args a = { .object = { .dir = F(dir), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_remove_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

static int rmdir3(struct sess *s, struct fh *dir, const char *name)
{
    struct waiter w = { 0 };
    RMDIR3args a = { .object = { .dir = F(dir), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_rmdir_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

static void grab_rename(struct waiter *w, void *data)
{
    RENAME3res *r = data;
    w->wcc[0] = r->RENAME3res_u.resok.fromdir_wcc;
    w->wcc[1] = r->RENAME3res_u.resok.todir_wcc;
}

static int rename3(struct sess *s, struct fh *from, const char *fname, struct fh *to,
                   const char *tname, struct waiter *out)
{
    struct waiter w = { .grab = grab_rename };
    RENAME3args a = { .from = { .dir = F(from), .name = (char *)fname },
                      .to = { .dir = F(to), .name = (char *)tname } };
    ck_assert_int_eq(rpc_nfs3_rename_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out)
        *out = w;
    return w.status;
}

static void grab_link(struct waiter *w, void *data)
{
    LINK3res *r = data;
    w->has_attr = r->LINK3res_u.resok.file_attributes.attributes_follow;
    w->attr = r->LINK3res_u.resok.file_attributes.post_op_attr_u.attributes;
}

static int link3(struct sess *s, struct fh *file, struct fh *dir, const char *name,
                 fattr3 *after)
{
    struct waiter w = { .grab = grab_link };
    LINK3args a = { .file = F(file), .link = { .dir = F(dir), .name = (char *)name } };
    ck_assert_int_eq(rpc_nfs3_link_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (after) {
        ck_assert(w.status != NFS3_OK || w.has_attr);
        *after = w.attr;
    }
    return w.status;
}

static void grab_write(struct waiter *w, void *data)
{
    WRITE3res *r = data;
    if (r->status == NFS3_OK) {
        w->u32[0] = r->WRITE3res_u.resok.count;
        w->u32[1] = r->WRITE3res_u.resok.committed;
        memcpy(w->verf, r->WRITE3res_u.resok.verf, 8);
    }
}

/* WRITE count bytes announced, len bytes sent. */
static int write3(struct sess *s, struct fh *h, uint64_t off, uint32_t count,
                  const char *data, uint32_t len, stable_how how, struct waiter *out)
{
    struct waiter w = { .grab = grab_write };
    WRITE3args a = { .file = F(h), .offset = off, .count = count, .stable = how };
    a.data.data_len = len;
    a.data.data_val = (char *)data;
    ck_assert_int_eq(rpc_nfs3_write_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out)
        *out = w;
    return w.status;
}

static void grab_read(struct waiter *w, void *data)
{
    READ3res *r = data;
    if (r->status == NFS3_OK) {
        w->u32[0] = r->READ3res_u.resok.count;
        w->u32[1] = r->READ3res_u.resok.eof;
        w->u32[2] = r->READ3res_u.resok.data.data_len;
        memcpy(w->verf, r->READ3res_u.resok.data.data_val,
               w->u32[2] < 8 ? w->u32[2] : 8);
    }
}

static int read3(struct sess *s, struct fh *h, uint64_t off, uint32_t count, struct waiter *out)
{
    struct waiter w = { .grab = grab_read };
    READ3args a = { .file = F(h), .offset = off, .count = count };
    ck_assert_int_eq(rpc_nfs3_read_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    if (out)
        *out = w;
    return w.status;
}

static void grab_commit(struct waiter *w, void *data)
{
    COMMIT3res *r = data;
    if (r->status == NFS3_OK)
        memcpy(w->verf, r->COMMIT3res_u.resok.verf, 8);
}

static int commit3(struct sess *s, struct fh *h, char verf[8])
{
    struct waiter w = { .grab = grab_commit };
    COMMIT3args a = { .file = F(h), .offset = 0, .count = 0 };
    ck_assert_int_eq(rpc_nfs3_commit_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    memcpy(verf, w.verf, 8);
    return w.status;
}

/* READDIR: names, fileids and cookies of up to 64 entries. */
struct page {
    struct waiter w;                /* first: raw_cb's priv */
    int n;
    char names[64][64];
    uint64_t fileids[64], cookies[64];
    char verf[8];
    bool eof;
};

static void grab_page(struct waiter *w, void *data)
{
    struct page *pg = (struct page *)w;
    READDIR3res *r = data;
    if (r->status != NFS3_OK)
        return;
    memcpy(pg->verf, r->READDIR3res_u.resok.cookieverf, 8);
    pg->eof = r->READDIR3res_u.resok.reply.eof;
    for (entry3 *p = r->READDIR3res_u.resok.reply.entries; p;) {
        entry3 e;
        memcpy(&e, p, sizeof e);    /* libnfs may leave entries unaligned */
        if (pg->n < 64) {
            snprintf(pg->names[pg->n], 64, "%s", e.name);
            pg->fileids[pg->n] = e.fileid;
            pg->cookies[pg->n] = e.cookie;
            pg->n++;
        }
        p = e.nextentry;
    }
}

static int readdir3(struct sess *s, struct fh *dir, uint64_t cookie, const char verf[8],
                    uint32_t count, struct page *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->w.grab = grab_page;
    READDIR3args a = { .dir = F(dir), .cookie = cookie, .count = count };
    if (verf)
        memcpy(a.cookieverf, verf, 8);
    ck_assert_int_eq(rpc_nfs3_readdir_async(s->rpc, raw_cb, &a, &pg->w), 0);
    raw_wait(s->rpc, &pg->w);
    return pg->w.status;
}

static int readdirplus3(struct sess *s, struct fh *dir, uint64_t cookie, const char verf[8],
                        uint32_t dircount, uint32_t maxcount)
{
    struct waiter w = { 0 };
    READDIRPLUS3args a = { .dir = F(dir), .cookie = cookie, .dircount = dircount,
                           .maxcount = maxcount };
    if (verf)
        memcpy(a.cookieverf, verf, 8);
    ck_assert_int_eq(rpc_nfs3_readdirplus_async(s->rpc, raw_cb, &a, &w), 0);
    raw_wait(s->rpc, &w);
    return w.status;
}

/* A name for this test's own files: the rw cache outlives each test. */
static const char *uniq(const char *base)
{
    static char buf[8][96];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, 96, "%s-%ld-%d", base, (long)getpid(), i);
    return b;
}

/* ---- SETATTR ---- */

START_TEST(setattr_with_a_stale_guard_is_not_sync_and_changes_nothing)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("guard"), GUARDED, NULL, -1, &f), NFS3_OK);
    fattr3 before, after;
    ck_assert_int_eq(getattr(&s, &f, &before), NFS3_OK);
    sattr3 sa = { 0 };
    sa.mode.set_it = 1;
    sa.mode.set_mode3_u.mode = 0600;
    sa.size.set_it = 1;
    sa.size.set_size3_u.size = 77;
    nfstime3 wrong = before.ctime;
    wrong.nseconds ^= 1;
    ck_assert_int_eq(setattr(&s, &f, &sa, &wrong), NFS3ERR_NOT_SYNC);
    ck_assert_int_eq(getattr(&s, &f, &after), NFS3_OK);
    ck_assert_uint_eq(after.mode & 07777, 0644);
    ck_assert_uint_eq(after.size, 0);
    ck_assert_uint_eq(after.ctime.seconds, before.ctime.seconds);
    ck_assert_uint_eq(after.ctime.nseconds, before.ctime.nseconds);
    /* The right ctime: applied. */
    ck_assert_int_eq(setattr(&s, &f, &sa, &before.ctime), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &after), NFS3_OK);
    ck_assert_uint_eq(after.mode & 07777, 0600);
    ck_assert_uint_eq(after.size, 77);
    sess_close(&s);
}
END_TEST

START_TEST(setattr_of_the_size_of_a_directory_is_isdir_and_of_a_symlink_inval)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, sub, ln;
    walk(&s, "demo", &dir);
    const char *d = uniq("sizedir"), *l = uniq("sizelink");
    ck_assert_int_eq(mkdir3(&s, &dir, d, &sub), NFS3_OK);
    sattr3 sa = { 0 };
    sa.size.set_it = 1;
    sa.size.set_size3_u.size = 0;
    ck_assert_int_eq(setattr(&s, &sub, &sa, NULL), NFS3ERR_ISDIR);
    ck_assert_int_eq(symlink3(&s, &dir, l, "nowhere"), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, l, &ln), NFS3_OK);
    ck_assert_int_eq(setattr(&s, &ln, &sa, NULL), NFS3ERR_INVAL);
    sess_close(&s);
}
END_TEST

START_TEST(setattr_on_a_read_only_export_is_rofs_and_changes_nothing)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh f;
    walk(&s, "demo/perm/public", &f);
    fattr3 before, after;
    ck_assert_int_eq(getattr(&s, &f, &before), NFS3_OK);
    sattr3 sa = { 0 };
    sa.mode.set_it = 1;
    sa.mode.set_mode3_u.mode = 0600;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3ERR_ROFS);
    memset(&sa, 0, sizeof sa);
    sa.uid.set_it = 1;
    sa.uid.set_uid3_u.uid = 4321;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3ERR_ROFS);
    ck_assert_int_eq(getattr(&s, &f, &after), NFS3_OK);
    ck_assert_uint_eq(after.mode, before.mode);
    ck_assert_uint_eq(after.uid, before.uid);
    sess_close(&s);
}
END_TEST

START_TEST(setattr_keeps_client_times_to_the_nanosecond_and_server_time_is_now)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("times"), GUARDED, NULL, -1, &f), NFS3_OK);
    sattr3 sa = { 0 };
    sa.mtime.set_it = SET_TO_CLIENT_TIME;
    sa.mtime.set_mtime_u.mtime.seconds = 1234567890;
    sa.mtime.set_mtime_u.mtime.nseconds = 123456789;
    sa.atime.set_it = SET_TO_CLIENT_TIME;
    sa.atime.set_atime_u.atime.seconds = 1000000000;
    sa.atime.set_atime_u.atime.nseconds = 999999999;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.mtime.seconds, 1234567890);
    ck_assert_uint_eq(a.mtime.nseconds, 123456789);
    ck_assert_uint_eq(a.atime.seconds, 1000000000);
    ck_assert_uint_eq(a.atime.nseconds, 999999999);
    memset(&sa, 0, sizeof sa);
    sa.mtime.set_it = SET_TO_SERVER_TIME;
    time_t now = time(NULL);
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_int_ge((long)a.mtime.seconds, (long)now - 2);
    ck_assert_int_le((long)a.mtime.seconds, (long)now + 2);
    ck_assert_uint_eq(a.atime.seconds, 1000000000);     /* not asked: kept */
    sess_close(&s);
}
END_TEST

/* ---- WRITE and COMMIT ---- */

START_TEST(write_with_a_count_other_than_its_data_length_is_refused_and_writes_nothing)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("mismatch"), GUARDED, NULL, -1, &f), NFS3_OK);
    char data[100];
    memset(data, 'x', sizeof data);
    /* knfsd refuses any count != data length (GARBAGE_ARGS at decode);
     * INVAL is the status RFC 1813 offers for it. */
    int st = write3(&s, &f, 0, 100, data, 10, FILE_SYNC, NULL);
    ck_assert_int_eq(st, NFS3ERR_INVAL);
    st = write3(&s, &f, 0, 10, data, 100, FILE_SYNC, NULL);
    ck_assert_int_eq(st, NFS3ERR_INVAL);
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 0);
    sess_close(&s);
}
END_TEST

START_TEST(write_to_a_directory_is_isdir_and_zero_bytes_is_ok)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(write3(&s, &dir, 0, 3, "abc", 3, FILE_SYNC, NULL), NFS3ERR_ISDIR);
    ck_assert_int_eq(create(&s, &dir, uniq("zero"), GUARDED, NULL, -1, &f), NFS3_OK);
    struct waiter w;
    ck_assert_int_eq(write3(&s, &f, 4096, 0, "", 0, FILE_SYNC, &w), NFS3_OK);
    ck_assert_uint_eq(w.u32[0], 0);
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 0);   /* a zero-byte write extends nothing */
    sess_close(&s);
}
END_TEST

START_TEST(write_past_the_largest_file_size_is_fbig)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("huge"), GUARDED, NULL, -1, &f), NFS3_OK);
    uint64_t offs[] = { (1ull << 63) - 2, 1ull << 63, UINT64_MAX - 2 };
    for (int i = 0; i < 3; i++) {
        int st = write3(&s, &f, offs[i], 4, "abcd", 4, FILE_SYNC, NULL);
        ck_assert_msg(st == NFS3ERR_FBIG || st == NFS3ERR_INVAL,
                      "offset %llu: status %d", (unsigned long long)offs[i], st);
    }
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 0);
    sess_close(&s);
}
END_TEST

START_TEST(write_commits_at_least_what_was_asked_and_commit_gives_its_verifier)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("stable"), GUARDED, NULL, -1, &f), NFS3_OK);
    stable_how how[] = { UNSTABLE, DATA_SYNC, FILE_SYNC };
    char verf[8];
    for (int i = 0; i < 3; i++) {
        struct waiter w;
        ck_assert_int_eq(write3(&s, &f, (uint64_t)i * 4, 4, "wxyz", 4, how[i], &w), NFS3_OK);
        ck_assert_uint_eq(w.u32[0], 4);
        ck_assert_uint_ge(w.u32[1], how[i]);
        if (i)
            ck_assert_mem_eq(w.verf, verf, 8);
        memcpy(verf, w.verf, 8);
    }
    char cverf[8];
    ck_assert_int_eq(commit3(&s, &f, cverf), NFS3_OK);
    ck_assert_mem_eq(cverf, verf, 8);
    struct waiter r;
    ck_assert_int_eq(read3(&s, &f, 0, 100, &r), NFS3_OK);
    ck_assert_uint_eq(r.u32[0], 12);
    ck_assert_uint_eq(r.u32[1], 1);
    ck_assert_mem_eq(r.verf, "wxyzwxyz", 8);
    ck_assert_int_eq(commit3(&s, &dir, cverf), NFS3ERR_ISDIR);
    sess_close(&s);
}
END_TEST

/* ---- READ ---- */

START_TEST(read_of_zero_bytes_is_ok_without_eof_and_a_huge_count_is_clamped)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh f;
    walk(&s, "demo/big.bin", &f);
    struct waiter w;
    ck_assert_int_eq(read3(&s, &f, 0, 0, &w), NFS3_OK);
    ck_assert_uint_eq(w.u32[0], 0);
    ck_assert_uint_eq(w.u32[1], 0);         /* 3 MiB follow: not eof */
    ck_assert_int_eq(read3(&s, &f, 0, 0xffffffffu, &w), NFS3_OK);
    ck_assert_uint_gt(w.u32[0], 0);
    ck_assert_uint_le(w.u32[0], 1024 * 1024);   /* rtmax */
    ck_assert_uint_eq(w.u32[0], w.u32[2]);
    ck_assert_int_eq(read3(&s, &f, UINT64_MAX, 10, &w), NFS3_OK);
    ck_assert_uint_eq(w.u32[0], 0);
    ck_assert_uint_eq(w.u32[1], 1);
    struct fh ln;
    walk(&s, "demo/perm/link", &ln);
    ck_assert_int_eq(read3(&s, &ln, 0, 10, NULL), NFS3ERR_INVAL);
    sess_close(&s);
}
END_TEST

/* ---- READDIR ---- */

START_TEST(readdir_with_room_for_no_entry_is_toosmall)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh dir;
    walk(&s, "demo", &dir);
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &dir, 0, NULL, 16, &pg), NFS3ERR_TOOSMALL);
    ck_assert_int_eq(readdir3(&s, &dir, 0, NULL, 130, &pg), NFS3ERR_TOOSMALL);
    ck_assert_int_eq(readdirplus3(&s, &dir, 0, NULL, 16, 16), NFS3ERR_TOOSMALL);
    ck_assert_int_eq(readdirplus3(&s, &dir, 0, NULL, 0, 100), NFS3ERR_TOOSMALL);
    sess_close(&s);
}
END_TEST

START_TEST(readdir_of_a_file_is_notdir_and_a_cookie_past_the_end_is_an_empty_eof_page)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh dir, f;
    walk(&s, "demo/perm", &dir);
    walk(&s, "demo/perm/public", &f);
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &f, 0, NULL, 4096, &pg), NFS3ERR_NOTDIR);
    ck_assert_int_eq(readdirplus3(&s, &f, 0, NULL, 4096, 4096), NFS3ERR_NOTDIR);
    ck_assert_int_eq(readdir3(&s, &dir, 0, NULL, 8192, &pg), NFS3_OK);
    ck_assert(pg.eof);
    ck_assert_int_eq(pg.n, 5);          /* . .. secret public link */
    char verf[8];
    memcpy(verf, pg.verf, 8);
    uint64_t last = pg.cookies[pg.n - 1];
    /* After the last entry: nothing more, eof (knfsd on ext4 answers a
     * cookie past the end so too; a cookie is a position, not a name). */
    ck_assert_int_eq(readdir3(&s, &dir, last, verf, 8192, &pg), NFS3_OK);
    ck_assert_int_eq(pg.n, 0);
    ck_assert(pg.eof);
    /* A cookie never issued: never a crash, never an entry twice. */
    int st = readdir3(&s, &dir, 0x7fffffffffff1234ull, verf, 8192, &pg);
    ck_assert_msg(st == NFS3_OK || st == NFS3ERR_BAD_COOKIE, "status %d", st);
    if (st == NFS3_OK)
        ck_assert(pg.eof);
    sess_close(&s);
}
END_TEST

static uint64_t fileid_of(struct sess *s, struct fh *h)
{
    fattr3 a;
    ck_assert_int_eq(getattr(s, h, &a), NFS3_OK);
    return a.fileid;
}

static void assert_dots(struct sess *s, struct fh *dir, struct fh *parent)
{
    struct page pg;
    ck_assert_int_eq(readdir3(s, dir, 0, NULL, 65536, &pg), NFS3_OK);
    ck_assert_int_ge(pg.n, 2);
    ck_assert_str_eq(pg.names[0], ".");
    ck_assert_str_eq(pg.names[1], "..");
    ck_assert_uint_eq(pg.fileids[0], fileid_of(s, dir));
    ck_assert_uint_eq(pg.fileids[1], fileid_of(s, parent));
    for (int i = 2; i < pg.n; i++)
        ck_assert(strcmp(pg.names[i], ".") && strcmp(pg.names[i], ".."));
}

START_TEST(readdir_lists_dot_and_dotdot_with_the_fileids_getattr_gives)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh run, perm;
    walk(&s, "demo", &run);
    walk(&s, "demo/perm", &perm);
    assert_dots(&s, &s.root, &s.root);     /* the export root is its own parent */
    assert_dots(&s, &run, &s.root);
    assert_dots(&s, &perm, &run);
    sess_close(&s);
}
END_TEST

/* ---- LOOKUP ---- */

START_TEST(lookup_of_dot_dotdot_and_empty_names_stays_inside_the_export)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh run, perm, f, out;
    walk(&s, "demo", &run);
    walk(&s, "demo/perm", &perm);
    walk(&s, "demo/perm/public", &f);
    ck_assert_int_eq(lookup(&s, &f, ".", &out), NFS3ERR_NOTDIR);
    ck_assert_int_eq(lookup(&s, &f, "..", &out), NFS3ERR_NOTDIR);
    ck_assert_int_eq(lookup(&s, &perm, "", &out), NFS3ERR_NOENT);
    ck_assert_int_eq(lookup(&s, &perm, ".", &out), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &out), fileid_of(&s, &perm));
    ck_assert_int_eq(lookup(&s, &perm, "..", &out), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &out), fileid_of(&s, &run));
    ck_assert_int_eq(lookup(&s, &run, "..", &out), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &out), fileid_of(&s, &s.root));
    ck_assert_int_eq(lookup(&s, &s.root, "..", &out), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &out), fileid_of(&s, &s.root));
    sess_close(&s);
}
END_TEST

/* ---- CREATE, MKDIR, MKNOD ---- */

START_TEST(create_unchecked_over_a_file_truncates_only_when_a_size_is_given)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f, g;
    walk(&s, "demo", &dir);
    const char *n = uniq("unchecked");
    ck_assert_int_eq(create(&s, &dir, n, GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(write3(&s, &f, 0, 10, "0123456789", 10, FILE_SYNC, NULL), NFS3_OK);
    ck_assert_int_eq(create(&s, &dir, n, UNCHECKED, NULL, -1, &g), NFS3_OK);
    ck_assert_int_eq(g.len, f.len);
    ck_assert_mem_eq(g.b, f.b, (size_t)f.len);
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 10);
    ck_assert_int_eq(create(&s, &dir, n, UNCHECKED, NULL, 0, &g), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 0);
    ck_assert_int_eq(create(&s, &dir, n, GUARDED, NULL, -1, &g), NFS3ERR_EXIST);
    /* In a file, not a directory: NOTDIR. */
    ck_assert_int_eq(create(&s, &f, "x", GUARDED, NULL, -1, &g), NFS3ERR_NOTDIR);
    ck_assert_int_eq(mkdir3(&s, &f, "x", &g), NFS3ERR_NOTDIR);
    sess_close(&s);
}
END_TEST

START_TEST(create_exclusive_retried_gives_the_same_handle_and_another_verifier_exist)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f, g;
    walk(&s, "demo", &dir);
    const char *n = uniq("excl");
    ck_assert_int_eq(create(&s, &dir, n, EXCLUSIVE, "verf0001", -1, &f), NFS3_OK);
    ck_assert_int_eq(create(&s, &dir, n, EXCLUSIVE, "verf0001", -1, &g), NFS3_OK);
    ck_assert_int_eq(g.len, f.len);
    ck_assert_mem_eq(g.b, f.b, (size_t)f.len);
    ck_assert_int_eq(create(&s, &dir, n, EXCLUSIVE, "verf0002", -1, &g), NFS3ERR_EXIST);
    /* Over a directory: EXIST whatever the mode. */
    const char *d = uniq("excldir");
    ck_assert_int_eq(mkdir3(&s, &dir, d, NULL), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &dir, d, NULL), NFS3ERR_EXIST);
    ck_assert_int_eq(create(&s, &dir, d, UNCHECKED, NULL, -1, &g), NFS3ERR_EXIST);
    ck_assert_int_eq(create(&s, &dir, d, EXCLUSIVE, "verf0001", -1, &g), NFS3ERR_EXIST);
    sess_close(&s);
}
END_TEST

START_TEST(mknod_makes_fifos_sockets_and_devices_and_refuses_regular_and_dir_types)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, h;
    walk(&s, "demo", &dir);
    ftype3 ok[] = { NF3FIFO, NF3SOCK, NF3CHR, NF3BLK };
    for (int i = 0; i < 4; i++) {
        const char *n = uniq("node");
        ck_assert_int_eq(mknod3(&s, &dir, n, ok[i]), NFS3_OK);
        ck_assert_int_eq(lookup(&s, &dir, n, &h), NFS3_OK);
        fattr3 a;
        ck_assert_int_eq(getattr(&s, &h, &a), NFS3_OK);
        ck_assert_int_eq(a.type, ok[i]);
        if (ok[i] == NF3CHR || ok[i] == NF3BLK) {
            ck_assert_uint_eq(a.rdev.specdata1, 1);
            ck_assert_uint_eq(a.rdev.specdata2, 3);
        }
        ck_assert_int_eq(mknod3(&s, &dir, n, ok[i]), NFS3ERR_EXIST);
    }
    ftype3 bad[] = { NF3REG, NF3DIR, NF3LNK };
    for (int i = 0; i < 3; i++) {
        const char *n = uniq("badnode");
        ck_assert_int_eq(mknod3(&s, &dir, n, bad[i]), NFS3ERR_BADTYPE);
        ck_assert_int_eq(lookup(&s, &dir, n, &h), NFS3ERR_NOENT);
    }
    sess_close(&s);
}
END_TEST

/* ---- REMOVE, RMDIR ---- */

START_TEST(remove_of_a_directory_leaves_it_and_rmdir_of_a_file_is_notdir)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, sub, h;
    walk(&s, "demo", &dir);
    const char *d = uniq("rmd"), *f = uniq("rmf");
    ck_assert_int_eq(mkdir3(&s, &dir, d, &sub), NFS3_OK);
    ck_assert_int_eq(create(&s, &dir, f, GUARDED, NULL, -1, NULL), NFS3_OK);
    /* knfsd: REMOVE is unlink(2), EISDIR on a directory. */
    ck_assert_int_eq(remove3(&s, &dir, d), NFS3ERR_ISDIR);
    ck_assert_int_eq(lookup(&s, &dir, d, &h), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &dir, f), NFS3ERR_NOTDIR);
    ck_assert_int_eq(lookup(&s, &dir, f, &h), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &sub, "."), NFS3ERR_INVAL);
    int st = rmdir3(&s, &sub, "..");
    ck_assert_msg(st == NFS3ERR_NOTEMPTY || st == NFS3ERR_EXIST || st == NFS3ERR_INVAL ||
                  st == NFS3ERR_ACCES, "status %d", st);
    ck_assert_int_eq(lookup(&s, &dir, d, &h), NFS3_OK);
    ck_assert_int_eq(create(&s, &sub, "inside", GUARDED, NULL, -1, NULL), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &dir, d), NFS3ERR_NOTEMPTY);
    ck_assert_int_eq(remove3(&s, &sub, "inside"), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &dir, d), NFS3_OK);
    ck_assert_int_eq(remove3(&s, &dir, f), NFS3_OK);
    ck_assert_int_eq(remove3(&s, &dir, f), NFS3ERR_NOENT);
    sess_close(&s);
}
END_TEST

/* ---- RENAME ---- */

START_TEST(rename_follows_posix_for_dirs_files_and_itself)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, a, b, h;
    walk(&s, "demo", &dir);
    const char *da = uniq("rena"), *db = uniq("renb"), *dc = uniq("renc");
    const char *f = uniq("renf");
    ck_assert_int_eq(mkdir3(&s, &dir, da, &a), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &a, "sub", &b), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &dir, dc, NULL), NFS3_OK);
    ck_assert_int_eq(create(&s, &dir, f, GUARDED, NULL, -1, NULL), NFS3_OK);
    /* A directory into its own subdirectory. */
    ck_assert_int_eq(rename3(&s, &dir, da, &b, "loop", NULL), NFS3ERR_INVAL);
    ck_assert_int_eq(rename3(&s, &dir, da, &a, "self", NULL), NFS3ERR_INVAL);
    /* A file over a directory, a directory over a file. */
    int st = rename3(&s, &dir, f, &dir, dc, NULL);
    ck_assert_msg(st == NFS3ERR_ISDIR || st == NFS3ERR_EXIST, "status %d", st);
    st = rename3(&s, &dir, dc, &dir, f, NULL);
    ck_assert_msg(st == NFS3ERR_NOTDIR || st == NFS3ERR_EXIST, "status %d", st);
    /* A directory over a non-empty one, then over an empty one. */
    st = rename3(&s, &dir, dc, &dir, da, NULL);
    ck_assert_msg(st == NFS3ERR_NOTEMPTY || st == NFS3ERR_EXIST, "status %d", st);
    ck_assert_int_eq(rename3(&s, &dir, da, &b, "x", NULL), NFS3ERR_INVAL);
    struct waiter w;
    ck_assert_int_eq(rename3(&s, &a, "sub", &dir, db, &w), NFS3_OK);
    ck_assert(w.wcc[0].before.attributes_follow && w.wcc[0].after.attributes_follow);
    ck_assert(w.wcc[1].before.attributes_follow && w.wcc[1].after.attributes_follow);
    ck_assert_uint_eq(w.wcc[0].after.post_op_attr_u.attributes.fileid, fileid_of(&s, &a));
    ck_assert_uint_eq(w.wcc[1].after.post_op_attr_u.attributes.fileid, fileid_of(&s, &dir));
    ck_assert_int_eq(rename3(&s, &dir, db, &dir, dc, NULL), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, db, &h), NFS3ERR_NOENT);
    ck_assert_int_eq(lookup(&s, &dir, dc, &h), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &h), fileid_of(&s, &b));
    /* Onto itself: a no-op. */
    ck_assert_int_eq(rename3(&s, &dir, f, &dir, f, NULL), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, f, &h), NFS3_OK);
    ck_assert_int_eq(rename3(&s, &dir, dc, &dir, dc, NULL), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, dc, &h), NFS3_OK);
    /* Two links of one file: POSIX leaves both. */
    const char *l = uniq("renl");
    struct fh fh;
    ck_assert_int_eq(lookup(&s, &dir, f, &fh), NFS3_OK);
    ck_assert_int_eq(link3(&s, &fh, &dir, l, NULL), NFS3_OK);
    ck_assert_int_eq(rename3(&s, &dir, f, &dir, l, NULL), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, f, &h), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, l, &h), NFS3_OK);
    sess_close(&s);
}
END_TEST

START_TEST(rename_and_link_between_two_runs_are_xdev_and_run_roots_stay)
{
    struct sess s;
    sess_open(&s, rw2_cache(), rw_conf);
    struct fh demo, other, h, f;
    walk(&s, "demo", &demo);
    walk(&s, "other", &other);
    const char *n = uniq("xrun");
    ck_assert_int_eq(create(&s, &demo, n, GUARDED, NULL, -1, &f), NFS3_OK);
    int st = rename3(&s, &demo, n, &other, n, NULL);
    ck_assert_msg(st == NFS3ERR_XDEV, "status %d", st);
    ck_assert_int_eq(lookup(&s, &demo, n, &h), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &other, n, &h), NFS3ERR_NOENT);
    ck_assert_int_eq(link3(&s, &f, &other, n, NULL), NFS3ERR_XDEV);
    ck_assert_int_eq(lookup(&s, &other, n, &h), NFS3ERR_NOENT);
    /* A run root, at the top: renamed, removed or moved into a run, it
     * stays where it is and both runs keep their contents. */
    st = rename3(&s, &s.root, "other", &s.root, "renamed", NULL);
    ck_assert_msg(st != NFS3_OK, "run root renamed");
    st = rename3(&s, &s.root, "other", &demo, "inside", NULL);
    ck_assert_msg(st != NFS3_OK, "run root moved into a run");
    st = rmdir3(&s, &s.root, "other");
    ck_assert_msg(st != NFS3_OK, "run root removed");
    st = remove3(&s, &s.root, "other");
    ck_assert_msg(st != NFS3_OK, "run root unlinked");
    st = link3(&s, &f, &s.root, n, NULL);
    ck_assert_msg(st != NFS3_OK, "a file linked into the namespace");
    /* design.md: changes of the namespace other than MKDIR are EACCES. */
    ck_assert_int_eq(create(&s, &s.root, n, GUARDED, NULL, -1, NULL), NFS3ERR_ACCES);
    ck_assert_int_eq(symlink3(&s, &s.root, n, "x"), NFS3ERR_ACCES);
    ck_assert_int_eq(mknod3(&s, &s.root, n, NF3FIFO), NFS3ERR_ACCES);
    ck_assert_int_eq(rename3(&s, &s.root, "other", &s.root, "renamed2", NULL), NFS3ERR_ACCES);
    ck_assert_int_eq(rmdir3(&s, &s.root, "other"), NFS3ERR_ACCES);
    st = rename3(&s, &demo, n, &s.root, n, NULL);
    ck_assert_msg(st != NFS3_OK, "a file moved to the namespace");
    ck_assert_int_eq(lookup(&s, &s.root, "other", &h), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &other, "demo", &h), NFS3_OK);     /* other.tar holds demo/ */
    ck_assert_int_eq(lookup(&s, &demo, n, &h), NFS3_OK);
    ck_assert_int_eq(remove3(&s, &demo, n), NFS3_OK);
    sess_close(&s);
}
END_TEST

/* ---- LINK ---- */

START_TEST(link_counts_links_and_refuses_directories_and_existing_names)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f, sub;
    walk(&s, "demo", &dir);
    const char *n = uniq("lnk"), *m = uniq("lnk2"), *d = uniq("lnkdir");
    ck_assert_int_eq(create(&s, &dir, n, GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &dir, d, &sub), NFS3_OK);
    fattr3 a;
    ck_assert_int_eq(link3(&s, &f, &dir, m, &a), NFS3_OK);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert_int_eq(link3(&s, &f, &dir, m, NULL), NFS3ERR_EXIST);
    ck_assert_int_eq(link3(&s, &f, &dir, d, NULL), NFS3ERR_EXIST);
    ck_assert_int_eq(link3(&s, &sub, &dir, uniq("lnkd"), NULL), NFS3ERR_ISDIR);
    ck_assert_int_eq(link3(&s, &f, &f, "x", NULL), NFS3ERR_NOTDIR);
    ck_assert_int_eq(remove3(&s, &dir, n), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.nlink, 1);
    sess_close(&s);
}
END_TEST

/* ---- FSSTAT, FSINFO, PATHCONF, ACCESS ---- */

static void grab_fsinfo(struct waiter *w, void *data)
{
    FSINFO3res *r = data;
    if (r->status != NFS3_OK)
        return;
    FSINFO3resok *ok = &r->FSINFO3res_u.resok;
    w->u32[0] = ok->rtmax;
    w->u32[1] = ok->rtpref;
    w->u32[2] = ok->wtmax;
    w->u32[3] = ok->wtpref;
    w->u32[4] = ok->dtpref;
    w->u32[5] = ok->properties;
    w->u32[6] = ok->time_delta.seconds;
    w->u32[7] = ok->time_delta.nseconds;
    w->u64[0] = ok->maxfilesize;
}

static void grab_fsstat(struct waiter *w, void *data)
{
    FSSTAT3res *r = data;
    if (r->status != NFS3_OK)
        return;
    FSSTAT3resok *ok = &r->FSSTAT3res_u.resok;
    w->u64[0] = ok->tbytes;
    w->u64[1] = ok->fbytes;
    w->u64[2] = ok->abytes;
    w->u64[3] = ok->tfiles;
    w->u64[4] = ok->ffiles;
    w->u64[5] = ok->afiles;
}

static void grab_pathconf(struct waiter *w, void *data)
{
    PATHCONF3res *r = data;
    if (r->status != NFS3_OK)
        return;
    w->u32[0] = r->PATHCONF3res_u.resok.name_max;
    w->u32[1] = r->PATHCONF3res_u.resok.linkmax;
    w->u32[2] = r->PATHCONF3res_u.resok.obj_attributes.attributes_follow;
}

static void grab_access(struct waiter *w, void *data)
{
    ACCESS3res *r = data;
    if (r->status == NFS3_OK)
        w->u32[0] = r->ACCESS3res_u.resok.access;
}

START_TEST(fsstat_fsinfo_and_pathconf_answer_for_a_file_as_for_the_root)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh f;
    walk(&s, "demo/perm/public", &f);
    struct fh *hs[] = { &s.root, &f };
    struct waiter fi[2];
    for (int i = 0; i < 2; i++) {
        struct waiter w = { .grab = grab_fsinfo };
        FSINFO3args a = { .fsroot = F(hs[i]) };
        ck_assert_int_eq(rpc_nfs3_fsinfo_async(s.rpc, raw_cb, &a, &w), 0);
        raw_wait(s.rpc, &w);
        ck_assert_int_eq(w.status, NFS3_OK);
        ck_assert_uint_ge(w.u32[0], w.u32[1]);
        ck_assert_uint_ge(w.u32[2], w.u32[3]);
        ck_assert_uint_gt(w.u32[4], 0);
        ck_assert_uint_eq(w.u32[5], FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS |
                          FSF3_CANSETTIME);
        ck_assert_uint_eq(w.u32[6], 0);
        ck_assert_uint_eq(w.u32[7], 1);
        ck_assert_uint_ge(w.u64[0], 1ull << 40);
        fi[i] = w;
        struct waiter v = { .grab = grab_fsstat };
        FSSTAT3args b = { .fsroot = F(hs[i]) };
        ck_assert_int_eq(rpc_nfs3_fsstat_async(s.rpc, raw_cb, &b, &v), 0);
        raw_wait(s.rpc, &v);
        ck_assert_int_eq(v.status, NFS3_OK);
        ck_assert_uint_ge(v.u64[0], v.u64[1]);
        ck_assert_uint_ge(v.u64[1], v.u64[2]);
        ck_assert_uint_ge(v.u64[3], v.u64[4]);
        ck_assert_uint_ge(v.u64[4], v.u64[5]);
        struct waiter p = { .grab = grab_pathconf };
        PATHCONF3args c = { .object = F(hs[i]) };
        ck_assert_int_eq(rpc_nfs3_pathconf_async(s.rpc, raw_cb, &c, &p), 0);
        raw_wait(s.rpc, &p);
        ck_assert_int_eq(p.status, NFS3_OK);
        ck_assert_uint_eq(p.u32[0], 255);
        ck_assert_uint_ge(p.u32[1], 1);
        ck_assert_uint_eq(p.u32[2], 1);
    }
    ck_assert_mem_eq(fi[0].u32, fi[1].u32, sizeof fi[0].u32);
    ck_assert_uint_eq(fi[0].u64[0], fi[1].u64[0]);
    sess_close(&s);
}
END_TEST

START_TEST(access_ignores_bits_it_does_not_define)
{
    struct sess s;
    sess_open(&s, ro_cache(), ro_conf);
    struct fh f;
    walk(&s, "demo/perm/public", &f);
    struct fh *hs[] = { &s.root, &f };
    for (int i = 0; i < 2; i++) {
        struct waiter w = { .grab = grab_access };
        ACCESS3args a = { .object = F(hs[i]), .access = 0xffffffffu };
        ck_assert_int_eq(rpc_nfs3_access_async(s.rpc, raw_cb, &a, &w), 0);
        raw_wait(s.rpc, &w);
        ck_assert_int_eq(w.status, NFS3_OK);
        ck_assert_uint_eq(w.u32[0] & ~0x3fu, 0);
        ck_assert_uint_ne(w.u32[0] & ACCESS3_READ, 0);
    }
    sess_close(&s);
}
END_TEST

START_TEST(setattr_of_a_time_with_a_billion_nanoseconds_or_more_is_inval)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("nsec"), GUARDED, NULL, -1, &f), NFS3_OK);
    fattr3 before, after;
    ck_assert_int_eq(getattr(&s, &f, &before), NFS3_OK);
    sattr3 sa = { 0 };
    sa.mtime.set_it = SET_TO_CLIENT_TIME;
    sa.mtime.set_mtime_u.mtime.seconds = 1234567890;
    sa.mtime.set_mtime_u.mtime.nseconds = 1000000000;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3ERR_INVAL);
    memset(&sa, 0, sizeof sa);
    sa.atime.set_it = SET_TO_CLIENT_TIME;
    sa.atime.set_atime_u.atime.nseconds = 0xffffffffu;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3ERR_INVAL);
    ck_assert_int_eq(getattr(&s, &f, &after), NFS3_OK);
    ck_assert_uint_eq(after.mtime.seconds, before.mtime.seconds);
    ck_assert_uint_eq(after.mtime.nseconds, before.mtime.nseconds);
    ck_assert_uint_eq(after.atime.nseconds, before.atime.nseconds);
    ck_assert_uint_lt(after.atime.nseconds, 1000000000);
    sess_close(&s);
}
END_TEST

START_TEST(create_guarded_with_a_size_makes_a_file_of_that_size)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    /* The initial attributes apply to a new file whatever the mode (knfsd
     * sets them all after creating it). */
    ck_assert_int_eq(create(&s, &dir, uniq("sized"), GUARDED, NULL, 5000, &f), NFS3_OK);
    fattr3 a;
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 5000);
    ck_assert_int_eq(create(&s, &dir, uniq("sized"), UNCHECKED, NULL, 300, &f), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &a), NFS3_OK);
    ck_assert_uint_eq(a.size, 300);
    sess_close(&s);
}
END_TEST

START_TEST(commit_of_any_range_is_ok_with_the_write_verifier)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("commit"), GUARDED, NULL, -1, &f), NFS3_OK);
    struct waiter w;
    ck_assert_int_eq(write3(&s, &f, 0, 4, "abcd", 4, UNSTABLE, &w), NFS3_OK);
    /* RFC 1813 lists no INVAL for COMMIT (knfsd dropped it for huge
     * ranges): any offset and count commit the whole file. */
    struct waiter c = { .grab = grab_commit };
    COMMIT3args a = { .file = F(&f), .offset = UINT64_MAX - 1, .count = 0xffffffffu };
    ck_assert_int_eq(rpc_nfs3_commit_async(s.rpc, raw_cb, &a, &c), 0);
    raw_wait(s.rpc, &c);
    ck_assert_int_eq(c.status, NFS3_OK);
    ck_assert_mem_eq(c.verf, w.verf, 8);
    sess_close(&s);
}
END_TEST

START_TEST(readdir_continues_after_a_change_with_the_old_verifier_without_repeats)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, sub;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(mkdir3(&s, &dir, uniq("verf"), &sub), NFS3_OK);
    char name[32];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "f%02d", i);
        ck_assert_int_eq(create(&s, &sub, name, GUARDED, NULL, -1, NULL), NFS3_OK);
    }
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &sub, 0, NULL, 300, &pg), NFS3_OK);
    ck_assert(!pg.eof);
    ck_assert_int_gt(pg.n, 2);
    char seen[40][64];
    int nseen = 0;
    for (int i = 0; i < pg.n; i++)
        snprintf(seen[nseen++], 64, "%s", pg.names[i]);
    char verf[8];
    memcpy(verf, pg.verf, 8);
    uint64_t cookie = pg.cookies[pg.n - 1];
    ck_assert_int_eq(create(&s, &sub, "zz-new", GUARDED, NULL, -1, NULL), NFS3_OK);
    /* knfsd keeps no verifier per directory: a client's old one goes on
     * being accepted, and the listing goes on after the cookie. */
    for (int rounds = 0; rounds < 40; rounds++) {
        int st = readdir3(&s, &sub, cookie, verf, 300, &pg);
        ck_assert_msg(st == NFS3_OK || st == NFS3ERR_BAD_COOKIE, "status %d", st);
        if (st == NFS3ERR_BAD_COOKIE)
            break;
        for (int i = 0; i < pg.n; i++) {
            for (int j = 0; j < nseen; j++)
                ck_assert_msg(strcmp(seen[j], pg.names[i]), "%s twice", pg.names[i]);
            ck_assert_int_lt(nseen, 40);
            snprintf(seen[nseen++], 64, "%s", pg.names[i]);
        }
        if (pg.eof)
            break;
        cookie = pg.cookies[pg.n - 1];
    }
    ck_assert_int_ge(nseen, 22);            /* ., .., f00..f19 */
    sess_close(&s);
}
END_TEST

/* Is run name in cache (tarnfs cache ls)? */
static bool cached(const char *cache, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s cache ls --cache %s | grep -q '^%s '", test_env("TARNFS"),
             cache, name);
    return system(cmd) == 0;
}

START_TEST(handles_into_an_evicted_run_work_again_after_its_refetch)
{
    char cache[300], cmd[1024];
    snprintf(cache, sizeof cache, "%s/proto-evict-XXXXXX", test_env("NFS_TEST_TMP"));
    ck_assert_ptr_nonnull(mkdtemp(cache));
    struct sess s;
    memset(&s, 0, sizeof s);
    const char *const extra[] = { "--source", test_env("NFS_TEST_NAS"), NULL };
    ck_assert_int_eq(server_start(&s.srv, cache, ro_conf, extra), 0);
    struct rpc_context *m = raw_connect(s.srv.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct waiter w = { .grab = grab_mnt };
    ck_assert_int_eq(rpc_mount3_mnt_async(m, raw_cb, "/", &w), 0);
    raw_wait(m, &w);
    rpc_destroy_context(m);
    ck_assert_int_eq(w.status, MNT3_OK);
    memcpy(s.root.b, w.fh, 64);
    s.root.len = w.fhlen;
    s.rpc = raw_connect(s.srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    struct fh dir, f;
    walk(&s, "demo/perm", &dir);
    walk(&s, "demo/perm/public", &f);
    struct waiter r;
    ck_assert_int_eq(read3(&s, &f, 0, 8, &r), NFS3_OK);
    ck_assert_mem_eq(r.verf, "anyone r", 8);
    bool in = false;
    for (int i = 0; i < 300 && !(in = cached(cache, "demo")); i++)
        usleep(100 * 1000);
    ck_assert(in);
    snprintf(cmd, sizeof cmd, "%s cache evict demo --cache %s --timeout 30 >/dev/null",
             test_env("TARNFS"), cache);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert(!cached(cache, "demo"));
    ck_assert_int_eq(getattr(&s, &f, NULL), NFS3_OK);      /* fetches it again */
    ck_assert_int_eq(read3(&s, &f, 0, 8, &r), NFS3_OK);
    ck_assert_mem_eq(r.verf, "anyone r", 8);
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &dir, 0, NULL, 8192, &pg), NFS3_OK);
    ck_assert_int_eq(pg.n, 5);
    sess_close(&s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(setattr_of_the_mode_of_a_symlink_is_ignored_and_wcc_matches_getattr)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, ln, f;
    walk(&s, "demo", &dir);
    const char *l = uniq("modelink");
    ck_assert_int_eq(symlink3(&s, &dir, l, "target"), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, l, &ln), NFS3_OK);
    fattr3 a;
    sattr3 sa = { 0 };
    sa.mode.set_it = 1;
    sa.mode.set_mode3_u.mode = 0600;
    fattr3 a0;
    ck_assert_int_eq(getattr(&s, &ln, &a0), NFS3_OK);
    /* knfsd drops mode changes of a symlink (Linux has no lchmod); what
     * is left changes nothing, so neither does its ctime (before, it was
     * stamped anew, and the run marked for a whole write-back). */
    ck_assert_int_eq(setattr(&s, &ln, &sa, NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &ln, &a), NFS3_OK);
    ck_assert_uint_eq(a.mode & 07777, 0777);
    ck_assert_uint_eq(a.ctime.seconds, a0.ctime.seconds);
    ck_assert_uint_eq(a.ctime.nseconds, a0.ctime.nseconds);
    /* An empty SETATTR of a file: the same. */
    sattr3 none = { 0 };
    ck_assert_int_eq(setattr(&s, &dir, &none, NULL), NFS3_OK);
    fattr3 d0, d1;
    ck_assert_int_eq(getattr(&s, &dir, &d0), NFS3_OK);
    ck_assert_int_eq(setattr(&s, &dir, &none, NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &dir, &d1), NFS3_OK);
    ck_assert_uint_eq(d1.ctime.seconds, d0.ctime.seconds);
    ck_assert_uint_eq(d1.ctime.nseconds, d0.ctime.nseconds);
    /* The wcc of a SETATTR: before is what GETATTR gave, after is now. */
    ck_assert_int_eq(create(&s, &dir, uniq("wcc"), GUARDED, NULL, -1, &f), NFS3_OK);
    fattr3 before, after;
    ck_assert_int_eq(getattr(&s, &f, &before), NFS3_OK);
    struct waiter w = { .grab = grab_setattr };
    SETATTR3args sarg = { .object = F(&f) };
    sarg.new_attributes.size.set_it = 1;
    sarg.new_attributes.size.set_size3_u.size = 1000;
    ck_assert_int_eq(rpc_nfs3_setattr_async(s.rpc, raw_cb, &sarg, &w), 0);
    raw_wait(s.rpc, &w);
    ck_assert_int_eq(w.status, NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &after), NFS3_OK);
    ck_assert(w.wcc[0].before.attributes_follow);
    wcc_attr *wb = &w.wcc[0].before.pre_op_attr_u.attributes;
    ck_assert_uint_eq(wb->size, before.size);
    ck_assert_uint_eq(wb->ctime.seconds, before.ctime.seconds);
    ck_assert_uint_eq(wb->ctime.nseconds, before.ctime.nseconds);
    ck_assert(w.wcc[0].after.attributes_follow);
    fattr3 *wa = &w.wcc[0].after.post_op_attr_u.attributes;
    ck_assert_uint_eq(wa->size, 1000);
    ck_assert_uint_eq(wa->ctime.seconds, after.ctime.seconds);
    ck_assert_uint_eq(wa->ctime.nseconds, after.ctime.nseconds);
    sess_close(&s);
}
END_TEST

START_TEST(directory_link_counts_follow_mkdir_rename_and_rmdir)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, a, b, c, h;
    walk(&s, "demo", &dir);
    const char *na = uniq("nla"), *nb = uniq("nlb");
    ck_assert_int_eq(mkdir3(&s, &dir, na, &a), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &dir, nb, &b), NFS3_OK);
    fattr3 at;
    ck_assert_int_eq(getattr(&s, &a, &at), NFS3_OK);
    ck_assert_uint_eq(at.nlink, 2);
    ck_assert_int_eq(mkdir3(&s, &a, "c", &c), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &c, "d", &h), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &a, &at), NFS3_OK);
    ck_assert_uint_eq(at.nlink, 3);
    /* Into its own grandchild: INVAL; its own parent onto it: refused. */
    ck_assert_int_eq(rename3(&s, &dir, na, &h, "x", NULL), NFS3ERR_INVAL);
    int st = rename3(&s, &c, "d", &dir, na, NULL);
    ck_assert_msg(st == NFS3ERR_NOTEMPTY || st == NFS3ERR_EXIST, "status %d", st);
    ck_assert_int_eq(rename3(&s, &a, "c", &b, "c", NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &a, &at), NFS3_OK);
    ck_assert_uint_eq(at.nlink, 2);
    ck_assert_int_eq(getattr(&s, &b, &at), NFS3_OK);
    ck_assert_uint_eq(at.nlink, 3);
    ck_assert_int_eq(lookup(&s, &c, "..", &h), NFS3_OK);
    ck_assert_uint_eq(fileid_of(&s, &h), fileid_of(&s, &b));
    ck_assert_int_eq(rmdir3(&s, &c, "d"), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &b, "c"), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &b, &at), NFS3_OK);
    ck_assert_uint_eq(at.nlink, 2);
    sess_close(&s);
}
END_TEST

START_TEST(dotdot_of_an_export_inside_a_run_is_that_export)
{
    struct sess s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(server_start(&s.srv, ro_cache(), "export /demo/perm *(ro)\n", NULL), 0);
    struct rpc_context *m = raw_connect(s.srv.mount_port, MOUNT_PROGRAM, MOUNT_V3, -1, -1);
    struct waiter w = { .grab = grab_mnt };
    ck_assert_int_eq(rpc_mount3_mnt_async(m, raw_cb, "/demo/perm", &w), 0);
    raw_wait(m, &w);
    rpc_destroy_context(m);
    ck_assert_int_eq(w.status, MNT3_OK);
    memcpy(s.root.b, w.fh, 64);
    s.root.len = w.fhlen;
    s.rpc = raw_connect(s.srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    struct fh up, up2;
    ck_assert_int_eq(lookup(&s, &s.root, "..", &up), NFS3_OK);
    ck_assert_int_eq(up.len, s.root.len);
    ck_assert_mem_eq(up.b, s.root.b, (size_t)up.len);
    ck_assert_int_eq(lookup(&s, &up, "..", &up2), NFS3_OK);
    ck_assert_mem_eq(up2.b, s.root.b, (size_t)up.len);
    ck_assert_int_eq(lookup(&s, &up, "big.bin", NULL), NFS3ERR_NOENT);
    assert_dots(&s, &s.root, &s.root);
    sess_close(&s);
}
END_TEST

START_TEST(a_file_shrunk_then_grown_reads_zeros_where_its_old_bytes_were)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f;
    walk(&s, "demo", &dir);
    ck_assert_int_eq(create(&s, &dir, uniq("shrink"), GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(write3(&s, &f, 0, 8, "abcdefgh", 8, FILE_SYNC, NULL), NFS3_OK);
    sattr3 sa = { 0 };
    sa.size.set_it = 1;
    sa.size.set_size3_u.size = 1;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    sa.size.set_size3_u.size = 8;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    struct waiter r;
    ck_assert_int_eq(read3(&s, &f, 0, 8, &r), NFS3_OK);
    ck_assert_uint_eq(r.u32[0], 8);
    ck_assert_mem_eq(r.verf, "a\0\0\0\0\0\0\0", 8);
    /* The same through a write past the end after a shrink. */
    sa.size.set_size3_u.size = 2;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    ck_assert_int_eq(write3(&s, &f, 6, 2, "XY", 2, FILE_SYNC, NULL), NFS3_OK);
    ck_assert_int_eq(read3(&s, &f, 0, 8, &r), NFS3_OK);
    ck_assert_mem_eq(r.verf, "a\0\0\0\0\0XY", 8);
    sess_close(&s);
}
END_TEST

static bool same_time(nfstime3 a, nfstime3 b)
{
    return a.seconds == b.seconds && a.nseconds == b.nseconds;
}

START_TEST(changes_move_the_times_posix_moves)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh top, d1, d2, f;
    walk(&s, "demo", &top);
    ck_assert_int_eq(mkdir3(&s, &top, uniq("times1"), &d1), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &top, uniq("times2"), &d2), NFS3_OK);
    fattr3 a1, a2, b1, b2, fa, fb;
    ck_assert_int_eq(getattr(&s, &d1, &a1), NFS3_OK);
    usleep(20000);
    ck_assert_int_eq(create(&s, &d1, "f", GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &d1, &b1), NFS3_OK);
    ck_assert(!same_time(a1.mtime, b1.mtime));             /* CREATE: dir mtime */
    ck_assert_int_eq(getattr(&s, &f, &fa), NFS3_OK);
    usleep(20000);
    ck_assert_int_eq(link3(&s, &f, &d2, "g", NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &fb), NFS3_OK);
    ck_assert(!same_time(fa.ctime, fb.ctime));             /* LINK: file ctime */
    ck_assert(same_time(fa.mtime, fb.mtime));              /* ...not its mtime */
    ck_assert_int_eq(getattr(&s, &d1, &a1), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &d2, &a2), NFS3_OK);
    usleep(20000);
    ck_assert_int_eq(rename3(&s, &d1, "f", &d2, "h", NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &d1, &b1), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &d2, &b2), NFS3_OK);
    ck_assert(!same_time(a1.mtime, b1.mtime));             /* RENAME: both dirs */
    ck_assert(!same_time(a2.mtime, b2.mtime));
    ck_assert_int_eq(getattr(&s, &f, &fa), NFS3_OK);
    usleep(20000);
    ck_assert_int_eq(remove3(&s, &d2, "g"), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &fb), NFS3_OK);
    ck_assert(!same_time(fa.ctime, fb.ctime));             /* REMOVE: file ctime */
    ck_assert_uint_eq(fb.nlink, 1);
    fa = fb;
    usleep(20000);
    ck_assert_int_eq(write3(&s, &f, 0, 1, "x", 1, FILE_SYNC, NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &fb), NFS3_OK);
    ck_assert(!same_time(fa.mtime, fb.mtime));             /* WRITE: mtime, ctime */
    ck_assert(!same_time(fa.ctime, fb.ctime));
    fa = fb;
    usleep(20000);
    sattr3 sa = { 0 };
    sa.mode.set_it = 1;
    sa.mode.set_mode3_u.mode = 0640;
    ck_assert_int_eq(setattr(&s, &f, &sa, NULL), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, &fb), NFS3_OK);
    ck_assert(same_time(fa.mtime, fb.mtime));              /* chmod: ctime only */
    ck_assert(!same_time(fa.ctime, fb.ctime));
    sess_close(&s);
}
END_TEST

START_TEST(fifos_and_devices_refuse_read_write_commit_and_size_with_inval)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, h;
    walk(&s, "demo", &dir);
    ftype3 types[] = { NF3FIFO, NF3CHR, NF3SOCK };
    for (int i = 0; i < 3; i++) {
        const char *n = uniq("special");
        ck_assert_int_eq(mknod3(&s, &dir, n, types[i]), NFS3_OK);
        ck_assert_int_eq(lookup(&s, &dir, n, &h), NFS3_OK);
        ck_assert_int_eq(read3(&s, &h, 0, 10, NULL), NFS3ERR_INVAL);
        ck_assert_int_eq(write3(&s, &h, 0, 1, "x", 1, FILE_SYNC, NULL), NFS3ERR_INVAL);
        char verf[8];
        ck_assert_int_eq(commit3(&s, &h, verf), NFS3ERR_INVAL);
        sattr3 sa = { 0 };
        sa.size.set_it = 1;
        sa.size.set_size3_u.size = 0;
        ck_assert_int_eq(setattr(&s, &h, &sa, NULL), NFS3ERR_INVAL);
        ck_assert_int_eq(readlink3(&s, &h, NULL), NFS3ERR_INVAL);
        ck_assert_int_eq(lookup(&s, &h, "x", NULL), NFS3ERR_NOTDIR);
        struct page pg;
        ck_assert_int_eq(readdir3(&s, &h, 0, NULL, 4096, &pg), NFS3ERR_NOTDIR);
        fattr3 a;
        ck_assert_int_eq(getattr(&s, &h, &a), NFS3_OK);
        ck_assert_uint_eq(a.size, 0);
    }
    /* READDIRPLUS past the end: an empty page with eof, as READDIR. */
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &dir, 0, NULL, 65536, &pg), NFS3_OK);
    ck_assert_int_eq(readdirplus3(&s, &dir, 0x7ffffffffffffff0ull, pg.verf, 4096, 65536),
                     NFS3_OK);
    sess_close(&s);
}
END_TEST

/* ---- handles ---- */

START_TEST(a_removed_files_handle_is_stale_also_after_a_restart)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, f, d;
    walk(&s, "demo", &dir);
    const char *n = uniq("gone"), *m = uniq("gonedir");
    ck_assert_int_eq(create(&s, &dir, n, GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(mkdir3(&s, &dir, m, &d), NFS3_OK);
    ck_assert_int_eq(remove3(&s, &dir, n), NFS3_OK);
    ck_assert_int_eq(rmdir3(&s, &dir, m), NFS3_OK);
    ck_assert_int_eq(getattr(&s, &f, NULL), NFS3ERR_STALE);
    ck_assert_int_eq(getattr(&s, &d, NULL), NFS3ERR_STALE);
    ck_assert_int_eq(read3(&s, &f, 0, 10, NULL), NFS3ERR_STALE);
    ck_assert_int_eq(write3(&s, &f, 0, 1, "x", 1, FILE_SYNC, NULL), NFS3ERR_STALE);
    struct page pg;
    ck_assert_int_eq(readdir3(&s, &d, 0, NULL, 4096, &pg), NFS3ERR_STALE);
    ck_assert_int_eq(lookup(&s, &d, "x", NULL), NFS3ERR_STALE);
    ck_assert_int_eq(create(&s, &d, "x", GUARDED, NULL, -1, NULL), NFS3ERR_STALE);
    rpc_destroy_context(s.rpc);
    ck_assert_int_eq(server_stop(&s.srv), 0);
    ck_assert_int_eq(server_start(&s.srv, rw_cache(), rw_conf, NULL), 0);
    s.rpc = raw_connect(s.srv.nfs_port, NFS_PROGRAM, NFS_V3, 0, 0);
    ck_assert_int_eq(getattr(&s, &f, NULL), NFS3ERR_STALE);
    ck_assert_int_eq(getattr(&s, &d, NULL), NFS3ERR_STALE);
    ck_assert_int_eq(getattr(&s, &dir, NULL), NFS3_OK);
    sess_close(&s);
}
END_TEST

/* Raw RPC over TCP, for handles libnfs will not encode. */
static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 20, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int recv_all(int fd, void *p, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = recv(fd, (char *)p + have, n - have, 0);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return 0;
}

/* Arguments in XDR, for raw_call. */
struct xargs {
    uint32_t w[1400];
    int n;
};

static void x_u32(struct xargs *x, uint32_t v) { x->w[x->n++] = htonl(v); }

static void x_opaque(struct xargs *x, const void *p, uint32_t len)
{
    x_u32(x, len);
    uint32_t words = (len + 3) / 4;
    memset(&x->w[x->n], 0, words * 4);
    memcpy(&x->w[x->n], p, len);
    x->n += (int)words;
}

/* NFS procedure proc with args over TCP as root (AUTH_SYS); returns the
 * accept status and puts the NFS status in *st. */
static int raw_call(int fd, uint32_t xid, uint32_t proc, const struct xargs *args, uint32_t *st)
{
    static uint32_t w[1500];
    int n = 0;
    w[n++] = 0;                                     /* record mark, below */
    w[n++] = htonl(xid); w[n++] = 0; w[n++] = htonl(2);
    w[n++] = htonl(100003); w[n++] = htonl(3); w[n++] = htonl(proc);
    w[n++] = htonl(1); w[n++] = htonl(20);          /* AUTH_SYS uid 0 */
    w[n++] = htonl(1); w[n++] = 0; w[n++] = 0; w[n++] = 0; w[n++] = 0;
    w[n++] = 0; w[n++] = 0;                         /* verifier none */
    memcpy(&w[n], args->w, (size_t)args->n * 4);
    n += args->n;
    w[0] = htonl(0x80000000u | (uint32_t)((n - 1) * 4));
    ck_assert_int_eq(send(fd, w, (size_t)n * 4, MSG_NOSIGNAL), n * 4);
    uint32_t mark;
    static uint32_t r[256];
    ck_assert_int_eq(recv_all(fd, &mark, 4), 0);
    uint32_t len = ntohl(mark) & 0x7fffffff;
    ck_assert_uint_le(len, sizeof r);
    ck_assert_int_eq(recv_all(fd, r, len), 0);
    ck_assert_uint_eq(ntohl(r[0]), xid);
    ck_assert_uint_eq(ntohl(r[2]), 0);              /* MSG_ACCEPTED */
    uint32_t verflen = ntohl(r[4]);
    uint32_t at = 5 + (verflen + 3) / 4;
    int accept = (int)ntohl(r[at]);
    *st = accept == 0 ? ntohl(r[at + 1]) : 0;
    return accept;
}

/* Procedure proc with a handle of fhlen bytes, then 256 zero bytes of
 * arguments (empty names, zero counts). */
static int call_with_handle(int fd, uint32_t xid, uint32_t proc, uint32_t fhlen, uint32_t *st)
{
    struct xargs x = { .n = 0 };
    char fh[160];
    for (int i = 0; i < 160; i++)
        fh[i] = (char)(i * 37 + 1);
    x_opaque(&x, fh, fhlen);
    for (int i = 0; i < 64; i++)
        x_u32(&x, 0);
    return raw_call(fd, xid, proc, &x, st);
}

/* SYMLINK name -> a target of len 'a's in dir, over raw TCP (libnfs's
 * encode buffer is too small for the longest). */
static int raw_symlink(struct sess *s, struct fh *dir, const char *name, uint32_t len)
{
    static char target[5000];
    memset(target, 'a', sizeof target);
    struct xargs x = { .n = 0 };
    x_opaque(&x, dir->b, (uint32_t)dir->len);
    x_opaque(&x, name, (uint32_t)strlen(name));
    for (int i = 0; i < 6; i++)
        x_u32(&x, 0);                               /* sattr3: nothing set */
    x_opaque(&x, target, len);
    int fd = tcp_connect(s->srv.nfs_port);
    uint32_t st;
    ck_assert_int_eq(raw_call(fd, 77, 10, &x, &st), 0);
    close(fd);
    return (int)st;
}

/* ---- SYMLINK, READLINK ---- */

START_TEST(symlink_refuses_an_empty_target_and_readlink_of_a_file_is_inval)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    struct fh dir, h, f;
    walk(&s, "demo", &dir);
    const char *e = uniq("symempty");
    /* knfsd: INVAL for an empty target. */
    ck_assert_int_eq(symlink3(&s, &dir, e, ""), NFS3ERR_INVAL);
    ck_assert_int_eq(lookup(&s, &dir, e, &h), NFS3ERR_NOENT);
    const char *l = uniq("symlong");
    ck_assert_int_eq(raw_symlink(&s, &dir, l, 4095), NFS3_OK);
    ck_assert_int_eq(lookup(&s, &dir, l, &h), NFS3_OK);
    uint32_t len;
    ck_assert_int_eq(readlink3(&s, &h, &len), NFS3_OK);
    ck_assert_uint_eq(len, 4095);
    /* PATH_MAX counts the NUL: 4096 bytes is too long, as in knfsd. */
    const char *l2 = uniq("symlong");
    ck_assert_int_eq(raw_symlink(&s, &dir, l2, 4096), NFS3ERR_NAMETOOLONG);
    ck_assert_int_eq(lookup(&s, &dir, l2, &h), NFS3ERR_NOENT);
    ck_assert_int_eq(create(&s, &dir, uniq("notlink"), GUARDED, NULL, -1, &f), NFS3_OK);
    ck_assert_int_eq(readlink3(&s, &f, NULL), NFS3ERR_INVAL);
    ck_assert_int_eq(readlink3(&s, &dir, NULL), NFS3ERR_INVAL);
    sess_close(&s);
}
END_TEST

START_TEST(every_procedure_answers_a_short_or_oversize_handle_badhandle)
{
    struct sess s;
    sess_open(&s, rw_cache(), rw_conf);
    int fd = tcp_connect(s.srv.nfs_port);
    for (uint32_t proc = 1; proc <= 21; proc++) {
        uint32_t st;
        int acc = call_with_handle(fd, 1000 + proc, proc, 0, &st);
        ck_assert_msg(acc == 0 && st == NFS3ERR_BADHANDLE,
                      "proc %u, empty handle: accept %d status %u", proc, acc, st);
        /* 65 bytes is over RFC 1813's opaque<64> (knfsd fails the decode:
         * GARBAGE_ARGS); tarnfsd says what is wrong, BADHANDLE. */
        acc = call_with_handle(fd, 2000 + proc, proc, 65, &st);
        ck_assert_msg(acc == 0 && st == NFS3ERR_BADHANDLE,
                      "proc %u, 65-byte handle: accept %d status %u", proc, acc, st);
        acc = call_with_handle(fd, 4000 + proc, proc, 128, &st);
        ck_assert_msg(acc == 0 && st == NFS3ERR_BADHANDLE,
                      "proc %u, 128-byte handle: accept %d status %u", proc, acc, st);
        acc = call_with_handle(fd, 5000 + proc, proc, 129, &st);
        ck_assert_msg(acc == 4, "proc %u, 129-byte handle: accept %d", proc, acc);
        acc = call_with_handle(fd, 3000 + proc, proc, 63, &st);
        ck_assert_msg(acc == 0 && st == NFS3ERR_BADHANDLE,
                      "proc %u, 63-byte handle: accept %d status %u", proc, acc, st);
    }
    close(fd);
    ck_assert_int_eq(getattr(&s, &s.root, NULL), NFS3_OK);
    sess_close(&s);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("nfs-proto");
    TCase *t = tcase_create("rfc1813");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, setattr_with_a_stale_guard_is_not_sync_and_changes_nothing);
    tcase_add_test(t, setattr_of_the_size_of_a_directory_is_isdir_and_of_a_symlink_inval);
    tcase_add_test(t, setattr_on_a_read_only_export_is_rofs_and_changes_nothing);
    tcase_add_test(t, setattr_keeps_client_times_to_the_nanosecond_and_server_time_is_now);
    tcase_add_test(t, write_with_a_count_other_than_its_data_length_is_refused_and_writes_nothing);
    tcase_add_test(t, write_to_a_directory_is_isdir_and_zero_bytes_is_ok);
    tcase_add_test(t, write_past_the_largest_file_size_is_fbig);
    tcase_add_test(t, write_commits_at_least_what_was_asked_and_commit_gives_its_verifier);
    tcase_add_test(t, read_of_zero_bytes_is_ok_without_eof_and_a_huge_count_is_clamped);
    tcase_add_test(t, readdir_with_room_for_no_entry_is_toosmall);
    tcase_add_test(t, readdir_of_a_file_is_notdir_and_a_cookie_past_the_end_is_an_empty_eof_page);
    tcase_add_test(t, readdir_lists_dot_and_dotdot_with_the_fileids_getattr_gives);
    tcase_add_test(t, lookup_of_dot_dotdot_and_empty_names_stays_inside_the_export);
    tcase_add_test(t, create_unchecked_over_a_file_truncates_only_when_a_size_is_given);
    tcase_add_test(t, create_exclusive_retried_gives_the_same_handle_and_another_verifier_exist);
    tcase_add_test(t, mknod_makes_fifos_sockets_and_devices_and_refuses_regular_and_dir_types);
    tcase_add_test(t, remove_of_a_directory_leaves_it_and_rmdir_of_a_file_is_notdir);
    tcase_add_test(t, rename_follows_posix_for_dirs_files_and_itself);
    tcase_add_test(t, rename_and_link_between_two_runs_are_xdev_and_run_roots_stay);
    tcase_add_test(t, link_counts_links_and_refuses_directories_and_existing_names);
    tcase_add_test(t, symlink_refuses_an_empty_target_and_readlink_of_a_file_is_inval);
    tcase_add_test(t, fsstat_fsinfo_and_pathconf_answer_for_a_file_as_for_the_root);
    tcase_add_test(t, access_ignores_bits_it_does_not_define);
    tcase_add_test(t, a_removed_files_handle_is_stale_also_after_a_restart);
    tcase_add_test(t, every_procedure_answers_a_short_or_oversize_handle_badhandle);
    tcase_add_test(t, setattr_of_a_time_with_a_billion_nanoseconds_or_more_is_inval);
    tcase_add_test(t, create_guarded_with_a_size_makes_a_file_of_that_size);
    tcase_add_test(t, commit_of_any_range_is_ok_with_the_write_verifier);
    tcase_add_test(t, readdir_continues_after_a_change_with_the_old_verifier_without_repeats);
    tcase_add_test(t, handles_into_an_evicted_run_work_again_after_its_refetch);
    tcase_add_test(t, setattr_of_the_mode_of_a_symlink_is_ignored_and_wcc_matches_getattr);
    tcase_add_test(t, directory_link_counts_follow_mkdir_rename_and_rmdir);
    tcase_add_test(t, dotdot_of_an_export_inside_a_run_is_that_export);
    tcase_add_test(t, a_file_shrunk_then_grown_reads_zeros_where_its_old_bytes_were);
    tcase_add_test(t, changes_move_the_times_posix_moves);
    tcase_add_test(t, fifos_and_devices_refuse_read_write_commit_and_size_with_inval);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
