/* fsx.c: fsx-style random data-integrity exerciser: seeded random WRITE/READ/SETATTR/COMMIT/GETATTR, reopens, a second client and restarts against a real writable tarnfsd (libnfs raw RPC), every answer checked against in-memory shadow copies of the files. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#include "server.h"

#define KiB ((uint64_t)1024)
#define MiB ((uint64_t)1024 * 1024)
#define BLOCK (64 * KiB)        /* kvstore's data block */
#define CHUNK MiB               /* an index-first member's absent chunk */
#define MAX_FILES 8

/* ---- options and the PRNG ---- */

static struct {
    uint64_t seed;
    unsigned long ops;
    int files;
    uint64_t max_size;
    int restarts;
    bool verbose, keep;
} opt = { .ops = 2000, .files = 4, .max_size = 6 * MiB, .restarts = 2 };

static uint64_t rng_state;

static uint64_t rnd(void)       /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }

/* ---- the op log and failure ---- */

#define LOG_LINES 40
static char oplog[LOG_LINES][200];
static unsigned long oplog_n;
static unsigned long opno;      /* the op being done (0: setup) */
static char workdir[200];
static struct test_server srv;

static void logop(const char *fmt, ...)
{
    va_list ap;
    char *line = oplog[oplog_n % LOG_LINES];
    int n = snprintf(line, sizeof oplog[0], "%6lu ", opno);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof oplog[0] - (size_t)n, fmt, ap);
    va_end(ap);
    oplog_n++;
    if (opt.verbose)
        printf("%s\n", line);
}

/* The op log's tail first, then what failed, the seed and how to replay
 * (last, so a test runner's tail of the output shows them). */
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fsx: the last %lu ops:\n", oplog_n < LOG_LINES ? oplog_n : LOG_LINES);
    unsigned long from = oplog_n < LOG_LINES ? 0 : oplog_n - LOG_LINES;
    for (unsigned long i = from; i < oplog_n; i++)
        fprintf(stderr, "  %s\n", oplog[i % LOG_LINES]);
    fprintf(stderr, "fsx: work directory kept: %s (server log %s/tarnfsd.log)\n", workdir,
            srv.dir);
    fprintf(stderr, "fsx: FAIL at op %lu (seed %" PRIu64 "): ", opno, opt.seed);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfsx: replay: fsx --seed %" PRIu64 " --ops %lu --files %d --max-size %"
            PRIu64 " --restarts %d -v\n", opt.seed, opt.ops, opt.files, opt.max_size,
            opt.restarts);
    exit(1);
}

/* ---- libnfs raw RPC, made synchronous ---- */

struct fh {
    char b[NFS3_FHSIZE];
    int len;
};

struct waiter {
    bool done;
    int rpc_status;
    int status;
    void (*grab)(struct waiter *w, void *data);
    struct fh fh;
    fattr3 attr;
    bool has_attr;
    bool has_pre;
    uint64_t pre_size;
    uint32_t count, committed, eof, rtmax, wtmax;
    char verf[NFS3_WRITEVERFSIZE];
    uint8_t *buf;               /* READ: where the data goes */
    uint32_t cap;
    uint32_t data_len;
};

struct client {
    const char *name;
    struct rpc_context *rpc;
    struct fh root;
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

static void raw_wait(struct client *c, struct waiter *w, const char *what)
{
    for (int i = 0; i < 1200 && !w->done; i++) {
        struct pollfd p = { .fd = rpc_get_fd(c->rpc), .events = rpc_which_events(c->rpc) };
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            fail("%s: %s: poll: %s", c->name, what, strerror(errno));
        if (rpc_service(c->rpc, r > 0 ? p.revents : 0) < 0)
            fail("%s: %s: rpc_service: %s", c->name, what, rpc_get_error(c->rpc));
    }
    if (!w->done)
        fail("%s: %s: no reply within 120 s", c->name, what);
    if (w->rpc_status != RPC_STATUS_SUCCESS)
        fail("%s: %s: RPC failed (%d): %s", c->name, what, w->rpc_status,
             rpc_get_error(c->rpc));
}

static nfs_fh3 F(struct fh *h)
{
    nfs_fh3 f = { .data = { .data_len = (u_int)h->len, .data_val = h->b } };
    return f;
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Issue CALL (an rpc_nfs3_*_async expression using w) until the answer is
 * not JUKEBOX (a parked request: the run's data is on its way). */
#define CALL(c, w, grabfn, what, CALLEXPR)                                  \
    do {                                                                    \
        for (int try_ = 0;; try_++) {                                       \
            memset(&(w), 0, offsetof(struct waiter, buf));                  \
            (w).grab = (grabfn);                                            \
            if ((CALLEXPR) != 0)                                            \
                fail("%s: %s: cannot send: %s", (c)->name, (what),          \
                     rpc_get_error((c)->rpc));                              \
            raw_wait((c), &(w), (what));                                    \
            if ((w).status != NFS3ERR_JUKEBOX || try_ > 600)                \
                break;                                                      \
            pause_ms(100);                                                  \
        }                                                                   \
    } while (0)

static void take_post(struct waiter *w, const post_op_attr *a)
{
    w->has_attr = a->attributes_follow;
    if (a->attributes_follow)
        w->attr = a->post_op_attr_u.attributes;
}

static void take_wcc(struct waiter *w, const wcc_data *d)
{
    w->has_pre = d->before.attributes_follow;
    if (w->has_pre)
        w->pre_size = d->before.pre_op_attr_u.attributes.size;
    take_post(w, &d->after);
}

static void take_fh(struct waiter *w, const nfs_fh3 *f)
{
    if (f->data.data_len > sizeof w->fh.b)
        return;
    w->fh.len = (int)f->data.data_len;
    memcpy(w->fh.b, f->data.data_val, f->data.data_len);
}

static void grab_mnt(struct waiter *w, void *data)
{
    mountres3 *r = data;
    if (r->fhs_status == MNT3_OK && r->mountres3_u.mountinfo.fhandle.fhandle3_len <= NFS3_FHSIZE) {
        w->fh.len = (int)r->mountres3_u.mountinfo.fhandle.fhandle3_len;
        memcpy(w->fh.b, r->mountres3_u.mountinfo.fhandle.fhandle3_val, (size_t)w->fh.len);
    }
}

static void grab_lookup(struct waiter *w, void *data)
{
    LOOKUP3res *r = data;
    if (r->status == NFS3_OK) {
        take_fh(w, &r->LOOKUP3res_u.resok.object);
        take_post(w, &r->LOOKUP3res_u.resok.obj_attributes);
    }
}

static void grab_create(struct waiter *w, void *data)
{
    CREATE3res *r = data;
    if (r->status == NFS3_OK && r->CREATE3res_u.resok.obj.handle_follows) {
        take_fh(w, &r->CREATE3res_u.resok.obj.post_op_fh3_u.handle);
        take_post(w, &r->CREATE3res_u.resok.obj_attributes);
    }
}

static void grab_getattr(struct waiter *w, void *data)
{
    GETATTR3res *r = data;
    if (r->status == NFS3_OK) {
        w->attr = r->GETATTR3res_u.resok.obj_attributes;
        w->has_attr = true;
    }
}

static void grab_setattr(struct waiter *w, void *data)
{
    SETATTR3res *r = data;
    if (r->status == NFS3_OK)
        take_wcc(w, &r->SETATTR3res_u.resok.obj_wcc);
}

static void grab_write(struct waiter *w, void *data)
{
    WRITE3res *r = data;
    if (r->status == NFS3_OK) {
        w->count = r->WRITE3res_u.resok.count;
        w->committed = r->WRITE3res_u.resok.committed;
        memcpy(w->verf, r->WRITE3res_u.resok.verf, NFS3_WRITEVERFSIZE);
        take_wcc(w, &r->WRITE3res_u.resok.file_wcc);
    }
}

static void grab_read(struct waiter *w, void *data)
{
    READ3res *r = data;
    if (r->status == NFS3_OK) {
        READ3resok *ok = &r->READ3res_u.resok;
        w->count = ok->count;
        w->eof = ok->eof;
        w->data_len = ok->data.data_len;
        memcpy(w->buf, ok->data.data_val, ok->data.data_len < w->cap ? ok->data.data_len : w->cap);
        take_post(w, &ok->file_attributes);
    }
}

static void grab_commit(struct waiter *w, void *data)
{
    COMMIT3res *r = data;
    if (r->status == NFS3_OK) {
        memcpy(w->verf, r->COMMIT3res_u.resok.verf, NFS3_WRITEVERFSIZE);
        take_wcc(w, &r->COMMIT3res_u.resok.file_wcc);
    }
}

static void grab_fsinfo(struct waiter *w, void *data)
{
    FSINFO3res *r = data;
    if (r->status == NFS3_OK) {
        w->rtmax = r->FSINFO3res_u.resok.rtmax;
        w->wtmax = r->FSINFO3res_u.resok.wtmax;
    }
}

static struct rpc_context *connect_to(const char *who, int port, int prog, int vers)
{
    struct rpc_context *rpc = rpc_init_context();
    if (!rpc)
        fail("%s: rpc_init_context", who);
    rpc_set_auth(rpc, libnfs_authunix_create(who, 0, 0, 0, NULL));
    struct client tmp = { .name = who, .rpc = rpc };
    struct waiter w = { 0 };
    if (rpc_connect_port_async(rpc, "127.0.0.1", port, prog, vers, raw_cb, &w) != 0)
        fail("%s: connect to port %d: %s", who, port, rpc_get_error(rpc));
    raw_wait(&tmp, &w, "connect");
    return rpc;
}

/* Mount "/" and open an NFS connection: one client. */
static void client_open(struct client *c)
{
    struct client m = { .name = c->name };
    m.rpc = connect_to(c->name, srv.mount_port, MOUNT_PROGRAM, MOUNT_V3);
    struct waiter w;
    CALL(&m, w, grab_mnt, "MNT /", rpc_mount3_mnt_async(m.rpc, raw_cb, "/", &w));
    rpc_destroy_context(m.rpc);
    if (w.status != MNT3_OK)
        fail("%s: MNT / failed: %d", c->name, w.status);
    c->root = w.fh;
    c->rpc = connect_to(c->name, srv.nfs_port, NFS_PROGRAM, NFS_V3);
}

static void client_close(struct client *c)
{
    if (c->rpc)
        rpc_destroy_context(c->rpc);
    c->rpc = NULL;
}

static int lookup(struct client *c, struct fh *dir, const char *name, struct fh *out)
{
    struct waiter w;
    LOOKUP3args a = { .what = { .dir = F(dir), .name = (char *)name } };
    CALL(c, w, grab_lookup, "LOOKUP", rpc_nfs3_lookup_async(c->rpc, raw_cb, &a, &w));
    if (w.status == NFS3_OK)
        *out = w.fh;
    return w.status;
}

/* ---- the files and their shadows ---- */

struct file {
    char run[32], name[32];
    bool member;                /* starts as a tarball member (else created) */
    bool touched;
    struct fh fh;               /* client A's handle */
    struct fh fhb;              /* client B's, once looked up */
    bool has_fhb;
    uint8_t *shadow;            /* what the file holds, max_size bytes */
    uint64_t size;
    bool unstable;              /* UNSTABLE writes not COMMITted since */
};

static struct file files[MAX_FILES];
static struct client ca = { .name = "fsx-a" }, cb = { .name = "fsx-b" };
static char verf[NFS3_WRITEVERFSIZE];
static bool have_verf;
static uint32_t rmax = 256 * 1024, wmax = 256 * 1024;
static uint8_t *iobuf;          /* READ replies land here */
static struct {
    unsigned long write, read, trunc_down, trunc_up, getattr, commit, reopen, peer, restart, burst, flush;
    unsigned long hole_writes, chunk_crossing, past_eof_reads;
} count;

/* The byte WRITE number n puts at file offset off: misplaced data shows. */
static uint8_t pattern(unsigned long n, uint64_t off)
{
    return (uint8_t)((off % 251) + n * 37 + 1);
}

static void check_verf(const char v[NFS3_WRITEVERFSIZE], const char *what)
{
    if (!have_verf) {
        memcpy(verf, v, sizeof verf);
        have_verf = true;
    } else if (memcmp(verf, v, sizeof verf)) {
        fail("%s: the write verifier changed while the server ran", what);
    }
}

/* Compare n bytes read at off with the shadow; fail with the first
 * difference and the extent of the damage. */
static void compare(struct file *f, const char *who, uint64_t off, const uint8_t *got, uint64_t n)
{
    const uint8_t *want = f->shadow + off;
    if (!memcmp(got, want, n))
        return;
    uint64_t first = 0, last = 0, bad = 0;
    bool seen = false;
    for (uint64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (!seen)
                first = i;
            seen = true;
            last = i;
            bad++;
        }
    char g[3 * 16 + 1] = "", x[3 * 16 + 1] = "";
    for (uint64_t i = first; i < first + 16 && i < n; i++) {
        snprintf(g + strlen(g), sizeof g - strlen(g), " %02x", got[i]);
        snprintf(x + strlen(x), sizeof x - strlen(x), " %02x", want[i]);
    }
    fail("%s read of %s/%s [%" PRIu64 ", +%" PRIu64 ") differs from the shadow: %" PRIu64
         " bytes differ in [%" PRIu64 ", %" PRIu64 "] (file size %" PRIu64 ")\n"
         "  at %" PRIu64 ": got %s\n  want:%*s%s", who, f->run, f->name, off, n, bad,
         off + first, off + last, f->size, off + first, g, 1, "", x);
}

static void check_size(struct file *f, const char *what, const struct waiter *w)
{
    if (!w->has_attr)
        fail("%s of %s/%s: no post-op attributes", what, f->run, f->name);
    if (w->attr.type != NF3REG)
        fail("%s of %s/%s: type %d, not a regular file", what, f->run, f->name, w->attr.type);
    if (w->attr.size != f->size)
        fail("%s of %s/%s: size %" PRIu64 " in the attributes, the shadow's is %" PRIu64,
             what, f->run, f->name, (uint64_t)w->attr.size, f->size);
}

static struct fh *fh_of(struct client *c, struct file *f)
{
    return c == &ca ? &f->fh : &f->fhb;
}

/* One READ; checks count, eof (RFC 1813) and the data against the shadow. */
static uint32_t do_read(struct client *c, struct file *f, uint64_t off, uint32_t len)
{
    struct waiter w;
    READ3args a = { .file = F(fh_of(c, f)), .offset = off, .count = len };
    CALL(c, w, grab_read, "READ", (w.buf = iobuf, w.cap = rmax,
                                    rpc_nfs3_read_async(c->rpc, raw_cb, &a, &w)));
    if (w.status != NFS3_OK)
        fail("%s: READ %s/%s at %" PRIu64 " +%u: status %d", c->name, f->run, f->name, off,
             len, w.status);
    if (w.count != w.data_len)
        fail("%s: READ count %u but %u data bytes", c->name, w.count, w.data_len);
    uint64_t left = off < f->size ? f->size - off : 0;
    uint64_t want = len < left ? len : left;
    if (w.count > len)
        fail("%s: READ at %" PRIu64 " +%u returned %u bytes", c->name, off, len, w.count);
    if (w.count != want)
        fail("%s: READ %s/%s at %" PRIu64 " +%u returned %u bytes, want %" PRIu64
             " (file size %" PRIu64 ")", c->name, f->run, f->name, off, len, w.count, want,
             f->size);
    bool at_end = off + w.count >= f->size;
    if (!!w.eof != at_end)
        fail("%s: READ %s/%s at %" PRIu64 " +%u (size %" PRIu64 "): eof %u, want %d",
             c->name, f->run, f->name, off, len, f->size, w.eof, at_end);
    check_size(f, "READ", &w);
    compare(f, c->name, off, iobuf, w.count);
    return w.count;
}

static void read_range(struct client *c, struct file *f, uint64_t off, uint64_t len)
{
    while (len) {
        uint32_t n = len < rmax ? (uint32_t)len : rmax;
        uint32_t got = do_read(c, f, off, n);
        if (got == 0)
            break;
        off += got;
        len -= got;
    }
}

static void do_getattr(struct client *c, struct file *f)
{
    struct waiter w;
    GETATTR3args a = { .object = F(fh_of(c, f)) };
    CALL(c, w, grab_getattr, "GETATTR", rpc_nfs3_getattr_async(c->rpc, raw_cb, &a, &w));
    if (w.status != NFS3_OK)
        fail("%s: GETATTR %s/%s: status %d", c->name, f->run, f->name, w.status);
    check_size(f, "GETATTR", &w);
}

static const char *how_name(int how)
{
    return how == UNSTABLE ? "UNSTABLE" : how == DATA_SYNC ? "DATA_SYNC" : "FILE_SYNC";
}

static void do_write(struct file *f, uint64_t off, uint32_t len, int how, uint8_t *data)
{
    for (uint32_t i = 0; i < len; i++)
        data[i] = pattern(opno, off + i);
    struct waiter w;
    WRITE3args a = { .file = F(&f->fh), .offset = off, .count = len, .stable = how,
                     .data = { .data_len = len, .data_val = (char *)data } };
    uint64_t old = f->size;
    CALL(&ca, w, grab_write, "WRITE", rpc_nfs3_write_async(ca.rpc, raw_cb, &a, &w));
    if (w.status != NFS3_OK)
        fail("WRITE %s/%s at %" PRIu64 " +%u %s: status %d", f->run, f->name, off, len,
             how_name(how), w.status);
    if (w.count != len)
        fail("WRITE of %u bytes: count %u", len, w.count);
    if (w.committed < (uint32_t)how)
        fail("WRITE asked %s, answered %s", how_name(how), how_name((int)w.committed));
    check_verf(w.verf, "WRITE");
    memcpy(f->shadow + off, data, len);
    if (off + len > f->size)
        f->size = off + len;
    if (w.has_pre && w.pre_size != old)
        fail("WRITE: wcc pre-op size %" PRIu64 ", the shadow's was %" PRIu64, w.pre_size, old);
    check_size(f, "WRITE (wcc post-op)", &w);
    if (w.committed == UNSTABLE)
        f->unstable = true;
}

static void do_setsize(struct file *f, uint64_t size)
{
    struct waiter w;
    SETATTR3args a = { .object = F(&f->fh) };
    a.new_attributes.size.set_it = 1;
    a.new_attributes.size.set_size3_u.size = size;
    uint64_t old = f->size;
    CALL(&ca, w, grab_setattr, "SETATTR", rpc_nfs3_setattr_async(ca.rpc, raw_cb, &a, &w));
    if (w.status != NFS3_OK)
        fail("SETATTR %s/%s size %" PRIu64 ": status %d", f->run, f->name, size, w.status);
    if (size < old)
        memset(f->shadow + size, 0, old - size);
    f->size = size;
    if (w.has_pre && w.pre_size != old)
        fail("SETATTR: wcc pre-op size %" PRIu64 ", the shadow's was %" PRIu64, w.pre_size,
             old);
    check_size(f, "SETATTR (wcc post-op)", &w);
}

static void do_commit(struct client *c, struct file *f, uint64_t off, uint32_t len,
                      char out_verf[NFS3_WRITEVERFSIZE])
{
    struct waiter w;
    COMMIT3args a = { .file = F(fh_of(c, f)), .offset = off, .count = len };
    CALL(c, w, grab_commit, "COMMIT", rpc_nfs3_commit_async(c->rpc, raw_cb, &a, &w));
    if (w.status != NFS3_OK)
        fail("COMMIT %s/%s: status %d", f->run, f->name, w.status);
    if (out_verf)
        memcpy(out_verf, w.verf, sizeof w.verf);
    else
        check_verf(w.verf, "COMMIT");
    if (w.has_attr)
        check_size(f, "COMMIT (wcc post-op)", &w);
    if (off == 0 && len == 0)
        f->unstable = false;
}

/* A fresh LOOKUP of the run and the file, from the client's root. */
static void reopen(struct client *c, struct file *f)
{
    struct fh run, h;
    int st = lookup(c, &c->root, f->run, &run);
    if (st != NFS3_OK)
        fail("%s: LOOKUP /%s: status %d", c->name, f->run, st);
    if ((st = lookup(c, &run, f->name, &h)) != NFS3_OK)
        fail("%s: LOOKUP /%s/%s: status %d", c->name, f->run, f->name, st);
    if (c == &ca) {
        f->fh = h;
    } else {
        f->fhb = h;
        f->has_fhb = true;
    }
}

static void verify_all(struct client *c, const char *why)
{
    for (int i = 0; i < opt.files; i++) {
        struct file *f = &files[i];
        logop("verify %s/%s through %s (%s), size %" PRIu64, f->run, f->name, c->name, why,
              f->size);
        if (c == &cb && !f->has_fhb)
            reopen(c, f);
        do_getattr(c, f);
        read_range(c, f, 0, f->size);
        do_read(c, f, f->size, 4096);    /* past the end: 0 bytes, eof */
    }
}

/* ---- the fixture: a NAS source with two tarballs, one indexed ---- */

static uint8_t *member_data[2];
static uint64_t member_size[2];

static int add_entry(struct archive *a, const char *path, mode_t type, const uint8_t *d,
                     uint64_t n)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(e, type == AE_IFDIR ? 0 : (la_int64_t)n);
    archive_entry_set_mtime(e, 1700000000, 0);
    int rc = archive_write_header(a, e) == ARCHIVE_OK &&
             (n == 0 || archive_write_data(a, d, n) == (la_ssize_t)n) ? 0 : -1;
    archive_entry_free(e);
    return rc;
}

static void make_tarball(const char *src, const char *run, const uint8_t *d, uint64_t n)
{
    char path[512], p[128];
    snprintf(path, sizeof path, "%s/%s.tar", src, run);
    struct archive *a = archive_write_new();
    if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, path) != ARCHIVE_OK)
        fail("cannot write %s", path);
    static const uint8_t note[] = "written by fsx\n";
    snprintf(p, sizeof p, "%s/", run);
    int rc = add_entry(a, p, AE_IFDIR, NULL, 0);
    snprintf(p, sizeof p, "%s/member.bin", run);
    rc |= add_entry(a, p, AE_IFREG, d, n);
    snprintf(p, sizeof p, "%s/notes.txt", run);
    rc |= add_entry(a, p, AE_IFREG, note, sizeof note - 1);
    if (rc || archive_write_close(a) != ARCHIVE_OK)
        fail("cannot write %s: %s", path, archive_error_string(a));
    archive_write_free(a);
}

static void run_tool(const char *const *argv)
{
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0)
            dup2(fd, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char cmd[600] = "";
        for (int i = 0; argv[i]; i++)
            snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%s", i ? " " : "", argv[i]);
        fail("%s: failed (status %d)", cmd, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    }
}

static char conf[1024], cache_dir[300];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void setup(void)
{
    const char *base = getenv("NFS_TEST_TMP");
    snprintf(workdir, sizeof workdir, "%s/tarnfs-fsx-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(workdir))
        fail("mkdtemp %s: %s", workdir, strerror(errno));
    char src[300];
    snprintf(src, sizeof src, "%s/src", workdir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", workdir);
    snprintf(srv.dir, sizeof srv.dir, "%s/server", workdir);    /* its config and log */
    if (mkdir(src, 0755) || mkdir(cache_dir, 0755) || mkdir(srv.dir, 0755))
        fail("mkdir: %s", strerror(errno));
    /* Member sizes and bytes from the seed: unaligned, over 1 MiB chunks. */
    for (int i = 0; i < 2; i++) {
        member_size[i] = 2 * MiB + below(MiB + 1);
        if (member_size[i] > opt.max_size)
            member_size[i] = opt.max_size / 2 + 1;
        member_data[i] = malloc(member_size[i]);
        if (!member_data[i])
            fail("out of memory");
        for (uint64_t j = 0; j < member_size[i]; j++)
            member_data[i][j] = (uint8_t)(rnd() >> 56);
    }
    make_tarball(src, "fsxfull", member_data[0], member_size[0]);
    make_tarball(src, "fsxlazy", member_data[1], member_size[1]);
    /* fsxlazy is index-first: its members' data stays absent until read. */
    const char *tool = test_env("TARNFS");
    const char *argv[] = { tool, "index", src, "fsxlazy", NULL };
    run_tool(argv);
    char ix[400];
    snprintf(ix, sizeof ix, "%s/fsxlazy.tar.tarnfs-index", src);
    if (access(ix, F_OK))
        fail("tarnfs index wrote no %s", ix);
    snprintf(conf, sizeof conf,
             "source = %s\n"
             "prefetch_whole_below = 0\n"       /* small runs index-first all the same */
             "export / *(rw,no_root_squash)\n", src);
    if (server_start(&srv, cache_dir, conf, NULL))
        fail("tarnfsd did not start");
}

/* The files: a new one, the members of both runs, more new ones. */
static void open_files(void)
{
    static const struct { const char *run, *name; int member; } plan[MAX_FILES] = {
        { "fsxfull", "fsx.0", -1 }, { "fsxfull", "member.bin", 0 },
        { "fsxlazy", "member.bin", 1 }, { "fsxlazy", "fsx.3", -1 },
        { "fsxfull", "fsx.4", -1 }, { "fsxlazy", "fsx.5", -1 },
        { "fsxfull", "fsx.6", -1 }, { "fsxlazy", "fsx.7", -1 },
    };
    for (int i = 0; i < opt.files; i++) {
        struct file *f = &files[i];
        snprintf(f->run, sizeof f->run, "%s", plan[i].run);
        snprintf(f->name, sizeof f->name, "%s", plan[i].name);
        f->shadow = calloc(1, opt.max_size);
        if (!f->shadow)
            fail("out of memory");
        struct fh run;
        int st = lookup(&ca, &ca.root, f->run, &run);
        if (st != NFS3_OK)
            fail("LOOKUP /%s: status %d", f->run, st);
        if (plan[i].member >= 0) {
            f->member = true;
            f->size = member_size[plan[i].member];
            memcpy(f->shadow, member_data[plan[i].member], f->size);
            if ((st = lookup(&ca, &run, f->name, &f->fh)) != NFS3_OK)
                fail("LOOKUP /%s/%s: status %d", f->run, f->name, st);
            logop("open member %s/%s, size %" PRIu64, f->run, f->name, f->size);
        } else {
            struct waiter w;
            CREATE3args a = { .where = { .dir = F(&run), .name = f->name } };
            a.how.mode = GUARDED;
            a.how.createhow3_u.obj_attributes.mode.set_it = 1;
            a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
            CALL(&ca, w, grab_create, "CREATE", rpc_nfs3_create_async(ca.rpc, raw_cb, &a, &w));
            if (w.status != NFS3_OK || !w.fh.len)
                fail("CREATE /%s/%s: status %d", f->run, f->name, w.status);
            f->fh = w.fh;
            f->size = 0;
            logop("create %s/%s", f->run, f->name);
        }
    }
}

/* ---- the written-back tarballs ---- */

/* With the server stopped (a SIGTERM writes every changed run back): each
 * file is in its run's tarball, its bytes the shadow's.  With lo (not
 * NULL), bytes may also be lo's (UNSTABLE writes the server may have
 * dropped), and sizes lie between lo_size and the shadow's. */
static void verify_tarballs(uint8_t *const *lo, const uint64_t *lo_size, const char *only)
{
    static const char *const runs[] = { "fsxfull", "fsxlazy" };
    uint8_t *buf = malloc(MiB);
    if (!buf)
        fail("out of memory");
    for (int r = 0; r < 2; r++) {
        if (only && strcmp(only, runs[r]))
            continue;
        char path[400];
        snprintf(path, sizeof path, "%s/src/%s.tar", workdir, runs[r]);
        struct archive *a = archive_read_new();
        if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK ||
            archive_read_open_filename(a, path, 65536) != ARCHIVE_OK)
            fail("cannot read the written-back %s", path);
        bool found[MAX_FILES] = { false };
        struct archive_entry *e;
        int rc;
        while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
            const char *name = archive_entry_pathname(e);
            for (int i = 0; i < opt.files; i++) {
                struct file *f = &files[i];
                char want[80];
                if (snprintf(want, sizeof want, "%s/%s", f->run, f->name) >= (int)sizeof want ||
                    strcmp(name, want))
                    continue;
                found[i] = true;
                uint64_t size = (uint64_t)archive_entry_size(e);
                uint64_t min = lo ? lo_size[i] : f->size;
                if (size < min || size > f->size)
                    fail("the written-back %s.tar holds %s with %" PRIu64 " bytes, the shadow %"
                         PRIu64, runs[r], want, size, f->size);
                uint64_t off = 0;
                la_ssize_t n;
                while ((n = archive_read_data(a, buf, MiB)) > 0) {
                    if (off + (uint64_t)n > size)
                        fail("the written-back %s: more data than its size", want);
                    for (la_ssize_t j = 0; j < n; j++)
                        if (buf[j] != f->shadow[off + (uint64_t)j] &&
                            !(lo && buf[j] == lo[i][off + (uint64_t)j]))
                            fail("the written-back %s.tar: %s byte %" PRIu64 " is %02x, the "
                                 "shadow's %02x", runs[r], want, off + (uint64_t)j, buf[j],
                                 f->shadow[off + (uint64_t)j]);
                    off += (uint64_t)n;
                }
                if (n < 0)
                    fail("the written-back %s: %" PRIu64 " of %" PRIu64 " bytes read: %s", want,
                         off, size, archive_error_string(a));
                /* libarchive leaves a sparse member's final hole out. */
                for (; off < size; off++)
                    if (f->shadow[off] && !(lo && !lo[i][off]))
                        fail("the written-back %s.tar: %s byte %" PRIu64 " is 0 (a hole), the "
                             "shadow's %02x", runs[r], want, off, f->shadow[off]);
            }
        }
        if (rc != ARCHIVE_EOF)
            fail("reading the written-back %s: %s", path, archive_error_string(a));
        archive_read_free(a);
        for (int i = 0; i < opt.files; i++)
            if (!strcmp(files[i].run, runs[r]) && !found[i])
                fail("the written-back %s.tar has no %s", runs[r], files[i].name);
        /* And GNU tar, what users extract runs with, gets the same bytes. */
        char x[300];
        snprintf(x, sizeof x, "%s/x", workdir);
        nftw(x, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (mkdir(x, 0755))
            fail("mkdir %s: %s", x, strerror(errno));
        const char *tar[] = { "tar", "-C", x, "-xf", path, NULL };
        run_tool(tar);
        for (int i = 0; i < opt.files; i++) {
            struct file *f = &files[i];
            if (strcmp(f->run, runs[r]))
                continue;
            char xp[400];
            if (snprintf(xp, sizeof xp, "%s/%s/%s", x, f->run, f->name) >= (int)sizeof xp)
                fail("path too long: %s", x);
            FILE *in = fopen(xp, "rb");
            if (!in)
                fail("GNU tar -xf %s.tar: no %s/%s", runs[r], f->run, f->name);
            uint64_t off = 0;
            size_t got;
            while ((got = fread(buf, 1, MiB, in)) > 0) {
                for (size_t j = 0; j < got; j++)
                    if (off + j >= f->size ||
                        (buf[j] != f->shadow[off + j] && !(lo && buf[j] == lo[i][off + j])))
                        fail("GNU tar -xf %s.tar: %s/%s byte %" PRIu64 " is %02x, the shadow's "
                             "%02x (size %" PRIu64 ")", runs[r], f->run, f->name, off + j,
                             buf[j], off + j < f->size ? f->shadow[off + j] : 0, f->size);
                off += got;
            }
            fclose(in);
            if (off < (lo ? lo_size[i] : f->size))
                fail("GNU tar -xf %s.tar: %s/%s has %" PRIu64 " bytes, the shadow %" PRIu64,
                     runs[r], f->run, f->name, off, f->size);
        }
        nftw(x, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(buf);
}

/* ---- a restart ---- */

/* COMMIT everything, maybe write a little more UNSTABLE, SIGTERM, start on
 * the same cache.  What was committed must be there; the UNSTABLE writes
 * may be missing only if the verifier changed (and are then resent, as a
 * client does). */
struct pending {
    int file;
    uint64_t off;
    uint32_t len;
    unsigned long n;            /* the write's op number (its pattern) */
};

static void restart(uint8_t *wbuf)
{
    count.restart++;
    static uint8_t *stable[MAX_FILES];
    uint64_t stable_size[MAX_FILES];
    for (int i = 0; i < opt.files; i++) {
        do_commit(&ca, &files[i], 0, 0, NULL);
        if (!stable[i] && !(stable[i] = malloc(opt.max_size)))
            fail("out of memory");
        memcpy(stable[i], files[i].shadow, opt.max_size);
        stable_size[i] = files[i].size;
    }
    logop("restart: all COMMITted");
    struct pending pend[3];
    int npend = (int)below(4);
    for (int k = 0; k < npend; k++) {
        struct pending *p = &pend[k];
        p->file = (int)below((uint64_t)opt.files);
        p->len = 1 + (uint32_t)below(wmax < 100000 ? wmax : 100000);
        p->off = below(opt.max_size - p->len);
        p->n = opno;
        logop("restart: UNSTABLE write %s/%s at %" PRIu64 " +%u, not committed",
              files[p->file].run, files[p->file].name, p->off, p->len);
        do_write(&files[p->file], p->off, p->len, UNSTABLE, wbuf);
    }
    client_close(&ca);
    client_close(&cb);
    int st = server_stop(&srv);
    if (st != 0)
        fail("tarnfsd exited with status %d on SIGTERM", st);
    logop("restart: stopped; the written-back tarballs hold the files");
    verify_tarballs(stable, stable_size, NULL);
    if (below(2)) {
        /* Dropped from the cache: read back from the written-back tarballs. */
        logop("restart: the runs evicted from the cache");
        for (int r = 0; r < 2; r++) {
            const char *run = r ? "fsxlazy" : "fsxfull";
            bool used = false;      /* a run never opened is not in the cache */
            for (int i = 0; i < opt.files; i++)
                used |= !strcmp(files[i].run, run);
            const char *argv[] = { test_env("TARNFS"), "cache", "evict", "--cache", cache_dir,
                                   run, NULL };
            if (used)
                run_tool(argv);
        }
    }
    if (server_start(&srv, cache_dir, conf, NULL) != 0)
        fail("tarnfsd did not start again");
    client_open(&ca);
    client_open(&cb);
    for (int i = 0; i < opt.files; i++)
        files[i].has_fhb = false;
    /* The handles from before still name the files. */
    for (int i = 0; i < opt.files; i++) {
        struct waiter w;
        GETATTR3args a = { .object = F(&files[i].fh) };
        CALL(&ca, w, grab_getattr, "GETATTR", rpc_nfs3_getattr_async(ca.rpc, raw_cb, &a, &w));
        if (w.status != NFS3_OK)
            fail("after the restart, the old handle of %s/%s: status %d", files[i].run,
                 files[i].name, w.status);
    }
    char nv[NFS3_WRITEVERFSIZE];
    do_commit(&ca, &files[0], 0, 0, nv);
    bool same = memcmp(nv, verf, sizeof nv) == 0;
    logop("restarted (pid %d); write verifier %s", (int)srv.pid, same ? "unchanged" : "changed");
    memcpy(verf, nv, sizeof verf);
    if (same || npend == 0) {
        verify_all(&ca, "after the restart");
        return;
    }
    /* The verifier changed: each byte is the committed one or the
     * UNSTABLE write's; then the writes are resent. */
    for (int i = 0; i < opt.files; i++) {
        struct file *f = &files[i];
        struct waiter w;
        GETATTR3args a = { .object = F(&f->fh) };
        CALL(&ca, w, grab_getattr, "GETATTR", rpc_nfs3_getattr_async(ca.rpc, raw_cb, &a, &w));
        if (w.status != NFS3_OK)
            fail("GETATTR %s/%s: status %d", f->run, f->name, w.status);
        uint64_t size = w.attr.size;
        if (size < stable_size[i] || size > f->size)
            fail("after the restart %s/%s has size %" PRIu64 ": committed %" PRIu64
                 ", with the UNSTABLE writes %" PRIu64, f->run, f->name, size,
                 stable_size[i], f->size);
        for (uint64_t off = 0; off < size;) {
            uint32_t n = size - off < rmax ? (uint32_t)(size - off) : rmax;
            READ3args ra = { .file = F(&f->fh), .offset = off, .count = n };
            CALL(&ca, w, grab_read, "READ", (w.buf = iobuf, w.cap = rmax,
                                              rpc_nfs3_read_async(ca.rpc, raw_cb, &ra, &w)));
            if (w.status != NFS3_OK || w.count != n)
                fail("READ %s/%s at %" PRIu64 " after the restart: status %d, %u bytes",
                     f->run, f->name, off, w.status, w.count);
            for (uint32_t j = 0; j < n; j++)
                if (iobuf[j] != f->shadow[off + j] && iobuf[j] != stable[i][off + j])
                    fail("after the restart %s/%s byte %" PRIu64 " is %02x: committed %02x, "
                         "written UNSTABLE %02x", f->run, f->name, off + j, iobuf[j],
                         stable[i][off + j], f->shadow[off + j]);
            off += n;
        }
    }
    /* Resend, as a client does on a changed verifier. */
    for (int k = 0; k < npend; k++) {
        struct pending *p = &pend[k];
        struct file *f = &files[p->file];
        unsigned long keep = opno;
        opno = p->n;
        logop("resend %s/%s at %" PRIu64 " +%u FILE_SYNC", f->run, f->name, p->off, p->len);
        do_write(f, p->off, p->len, FILE_SYNC, wbuf);
        opno = keep;
    }
    for (int i = 0; i < opt.files; i++)
        files[i].unstable = false;
    verify_all(&ca, "after the restart and the resent writes");
}

/* ---- the random ops ---- */

static uint64_t pick_write_off(struct file *f, uint32_t *len)
{
    uint64_t size = f->size, max = opt.max_size;
    uint64_t off;
    switch (below(10)) {
    case 0: case 1: case 2: case 3:
        off = below(size ? size : 1);
        break;
    case 4:                     /* around a 64 KiB block boundary */
        off = below(max / BLOCK) * BLOCK;
        off = off > 100 ? off - 100 + below(200) : off;
        break;
    case 5:                     /* across a 1 MiB chunk boundary */
        off = (1 + below(max / CHUNK - 1)) * CHUNK;
        off -= 1 + below(*len < 2 ? 1 : *len - 1);
        count.chunk_crossing++;
        break;
    case 6:                     /* append */
        off = size;
        break;
    case 7:                     /* far past the end: a hole */
        off = size + below(max - size);
        if (off > size + BLOCK)
            count.hole_writes++;
        break;
    default:
        off = below(max);
    }
    if (off >= max)
        off = max - 1;
    if (off + *len > max)
        *len = (uint32_t)(max - off);
    return off;
}

static uint32_t pick_len(void)
{
    uint32_t len;
    switch (below(8)) {
    case 0: len = 1 + (uint32_t)below(16); break;
    case 1: case 2: case 3: len = 1 + (uint32_t)below(4096); break;
    case 4: case 5: len = 1 + (uint32_t)below(BLOCK + 4096); break;
    case 6: len = BLOCK; break;
    default: len = 1 + (uint32_t)below(wmax);
    }
    return len > wmax ? wmax : len;
}

static uint64_t pick_size(struct file *f, bool *down)
{
    uint64_t size = f->size, max = opt.max_size, s;
    switch (below(8)) {
    case 0: s = 0; break;
    case 1: s = below(size + 1); break;
    case 2: s = below(max / BLOCK + 1) * BLOCK; break;            /* at a block boundary */
    case 3: s = below(max / CHUNK + 1) * CHUNK; break;            /* at a chunk boundary */
    case 4: s = size > 300 ? size - 1 - below(300) : size; break; /* inside the last block */
    case 5: s = size + below(BLOCK); break;                       /* up a little */
    default: s = size + below(max - size + 1); break;             /* up */
    }
    if (s > max)
        s = max;
    *down = s < size;
    return s;
}

/* Several WRITEs, and READs of other bytes, in flight at once on one
 * connection: the server's threads run them side by side, as they do a
 * kernel client's write-behind.  The WRITEs cover a window cut at random
 * points (often inside one 64 KiB block) and go in random order. */
#define BURST_MAX 8
static void do_burst(struct file *f, uint8_t *wbuf)
{
    uint64_t window = 1 + below(below(2) ? 8192 : 2 * BLOCK + 1000);
    if (window > wmax)
        window = wmax;
    /* At random in the file, or around a block boundary: up to window
     * bytes before it (never below 0: a window wider than the first
     * block starts at 0). */
    uint64_t w0;
    if (below(2)) {
        w0 = below(f->size + 1);
    } else {
        uint64_t edge = (1 + below(opt.max_size / BLOCK - 1)) * BLOCK, back = below(window);
        w0 = edge > back ? edge - back : 0;
    }
    if (w0 + window > opt.max_size)
        w0 = opt.max_size - window;
    int k = 2 + (int)below(BURST_MAX - 1);
    if ((uint64_t)k > window)
        k = (int)window;
    uint64_t cut[BURST_MAX + 1];
    cut[0] = 0;
    cut[k] = window;
    for (int i = 1; i < k; i++)
        cut[i] = 1 + below(window - 1);
    for (int i = 1; i < k; i++)     /* sort the cut points */
        for (int j = i + 1; j < k; j++)
            if (cut[j] < cut[i]) {
                uint64_t t = cut[i];
                cut[i] = cut[j];
                cut[j] = t;
            }
    for (uint64_t i = 0; i < window; i++)
        wbuf[i] = pattern(opno, w0 + i);
    int order[BURST_MAX];
    for (int i = 0; i < k; i++)
        order[i] = i;
    for (int i = k - 1; i > 0; i--) {
        int j = (int)below((uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int how[BURST_MAX];
    struct waiter ws[BURST_MAX], rs[2];
    WRITE3args wa[BURST_MAX];
    READ3args ra[2];
    uint8_t *rbuf[2] = { NULL, NULL };
    uint64_t below_w = w0 < f->size ? w0 : f->size;   /* what the WRITEs leave alone */
    int nr = below_w > 0 ? (int)below(3) : 0;
    logop("BURST   %s/%s %d WRITEs over %" PRIu64 " +%" PRIu64 ", %d READs before it, size %"
          PRIu64, f->run, f->name, k, w0, window, nr, f->size);
    for (int i = 0; i < nr; i++) {
        uint32_t len = 1 + (uint32_t)below(65536);
        uint64_t off = below(below_w);
        if (off + len > below_w)
            len = (uint32_t)(below_w - off);
        if (!(rbuf[i] = malloc(len)))
            fail("out of memory");
        ra[i] = (READ3args){ .file = F(&f->fh), .offset = off, .count = len };
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].grab = grab_read;
        rs[i].buf = rbuf[i];
        rs[i].cap = len;
    }
    for (int i = 0; i < k; i++) {
        int p = order[i];
        uint64_t off = w0 + cut[p];
        uint32_t len = (uint32_t)(cut[p + 1] - cut[p]);
        how[p] = (int)below(3);
        wa[p] = (WRITE3args){ .file = F(&f->fh), .offset = off, .count = len,
                              .stable = how[p],
                              .data = { .data_len = len, .data_val = (char *)wbuf + cut[p] } };
        memset(&ws[p], 0, sizeof ws[p]);
        ws[p].grab = grab_write;
        if (rpc_nfs3_write_async(ca.rpc, raw_cb, &wa[p], &ws[p]) != 0)
            fail("BURST: cannot send a WRITE: %s", rpc_get_error(ca.rpc));
        if (i < nr && rpc_nfs3_read_async(ca.rpc, raw_cb, &ra[i], &rs[i]) != 0)
            fail("BURST: cannot send a READ: %s", rpc_get_error(ca.rpc));
    }
    for (int i = 0; i < k; i++)
        raw_wait(&ca, &ws[i], "BURST WRITE");
    for (int i = 0; i < nr; i++)
        raw_wait(&ca, &rs[i], "BURST READ");
    for (int p = 0; p < k; p++) {
        if (ws[p].status == NFS3ERR_JUKEBOX) {      /* parked: again, alone */
            CALL(&ca, ws[p], grab_write, "WRITE",
                 rpc_nfs3_write_async(ca.rpc, raw_cb, &wa[p], &ws[p]));
        }
        if (ws[p].status != NFS3_OK)
            fail("BURST: WRITE at %" PRIu64 " +%u: status %d", wa[p].offset, wa[p].count,
                 ws[p].status);
        if (ws[p].count != wa[p].count)
            fail("BURST: WRITE of %u bytes: count %u", wa[p].count, ws[p].count);
        if (ws[p].committed < (uint32_t)how[p])
            fail("BURST: WRITE asked %s, answered %s", how_name(how[p]),
                 how_name((int)ws[p].committed));
        check_verf(ws[p].verf, "BURST WRITE");
        if (!ws[p].has_attr || ws[p].attr.size < wa[p].offset + wa[p].count)
            fail("BURST: WRITE at %" PRIu64 " +%u: post-op size %" PRIu64, wa[p].offset,
                 wa[p].count, ws[p].has_attr ? (uint64_t)ws[p].attr.size : 0);
        if (how[p] == UNSTABLE && ws[p].committed == UNSTABLE)
            f->unstable = true;
    }
    for (int i = 0; i < nr; i++) {
        if (rs[i].status == NFS3ERR_JUKEBOX)
            CALL(&ca, rs[i], grab_read, "READ", (rs[i].buf = rbuf[i], rs[i].cap = ra[i].count,
                                                 rpc_nfs3_read_async(ca.rpc, raw_cb, &ra[i], &rs[i])));
        if (rs[i].status != NFS3_OK || rs[i].count != ra[i].count)
            fail("BURST: READ at %" PRIu64 " +%u: status %d, %u bytes", ra[i].offset,
                 ra[i].count, rs[i].status, rs[i].count);
        compare(f, "BURST", ra[i].offset, rbuf[i], ra[i].count);
        free(rbuf[i]);
    }
    memcpy(f->shadow + w0, wbuf, window);
    if (w0 + window > f->size)
        f->size = w0 + window;
    do_getattr(&ca, f);
}

static void one_op(uint8_t *wbuf, int nmembers, struct file **members)
{
    struct file *f;
    unsigned kind;
    if (opno <= (unsigned long)nmembers) {
        /* The first touch of a member is a WRITE: of the run fetched
         * whole, and of the index-first one, whose data is still absent. */
        f = members[opno - 1];
        kind = 0;
    } else {
        f = &files[below((uint64_t)opt.files)];
        unsigned r = (unsigned)below(1000);
        kind = r < 340 ? 0 : r < 640 ? 1 : r < 740 ? 2 : r < 800 ? 3 : r < 870 ? 4 : r < 900 ? 5
             : r < 940 ? 6 : r < 997 ? 7 : 8;
    }
    f->touched = true;
    switch (kind) {
    case 0: {
        uint32_t len = pick_len();
        uint64_t off = pick_write_off(f, &len);
        int how = (int)below(3);
        logop("WRITE   %s/%s %" PRIu64 " +%u (%s) size %" PRIu64, f->run, f->name, off, len,
              how_name(how), f->size);
        do_write(f, off, len, how, wbuf);
        count.write++;
        break;
    }
    case 1: {
        uint64_t off;
        uint32_t len = 1 + (uint32_t)below(below(4) ? 65536 : rmax);
        switch (below(6)) {
        case 0: off = f->size + below(BLOCK); count.past_eof_reads++; break;  /* at or past EOF */
        case 1: off = f->size > len ? f->size - below(len) : 0; break;       /* over EOF */
        case 2: off = (1 + below(opt.max_size / CHUNK)) * CHUNK - below(len); break;
        default: off = below(f->size + 1);
        }
        logop("READ    %s/%s %" PRIu64 " +%u size %" PRIu64, f->run, f->name, off, len, f->size);
        do_read(&ca, f, off, len);
        count.read++;
        break;
    }
    case 2: {
        bool down;
        uint64_t s = pick_size(f, &down);
        logop("SETATTR %s/%s size %" PRIu64 " -> %" PRIu64, f->run, f->name, f->size, s);
        do_setsize(f, s);
        if (down)
            count.trunc_down++;
        else
            count.trunc_up++;
        break;
    }
    case 3:
        logop("GETATTR %s/%s size %" PRIu64, f->run, f->name, f->size);
        do_getattr(&ca, f);
        count.getattr++;
        break;
    case 4: {
        bool whole = below(3) != 0;
        uint64_t off = whole ? 0 : below(f->size + 1);
        uint32_t len = whole ? 0 : (uint32_t)below(2 * MiB);
        logop("COMMIT  %s/%s %" PRIu64 " +%u", f->run, f->name, off, len);
        do_commit(&ca, f, off, len, NULL);
        count.commit++;
        break;
    }
    case 5:
        logop("REOPEN  %s/%s", f->run, f->name);
        reopen(&ca, f);
        do_getattr(&ca, f);
        count.reopen++;
        break;
    case 7:
        do_burst(f, wbuf);
        count.burst++;
        break;
    case 8: {
        /* A write-back while the server runs: the tarball holds the run
         * as it is now, UNSTABLE bytes included (they are in the store). */
        logop("FLUSH   %s (tarnfs flush), then its tarball checked", f->run);
        const char *argv[] = { test_env("TARNFS"), "flush", "--cache", cache_dir,
                               "--timeout", "120", f->run, NULL };
        run_tool(argv);
        verify_tarballs(NULL, NULL, f->run);
        count.flush++;
        break;
    }
    default:
        /* The second client sees what was made stable.  Unstable data
         * first gets its COMMIT. */
        if (f->unstable) {
            logop("COMMIT  %s/%s before the other client reads", f->run, f->name);
            do_commit(&ca, f, 0, 0, NULL);
        }
        if (!f->has_fhb || below(3) == 0)
            reopen(&cb, f);
        if (below(3) == 0) {
            logop("PEER    %s/%s reads it all (%" PRIu64 ")", f->run, f->name, f->size);
            do_getattr(&cb, f);
            read_range(&cb, f, 0, f->size + 1);
        } else {
            uint64_t off = below(f->size + 1), len = 1 + below(rmax);
            logop("PEER    %s/%s reads %" PRIu64 " +%" PRIu64, f->run, f->name, off, len);
            read_range(&cb, f, off, len);
        }
        count.peer++;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fsx [--seed N] [--ops N] [--files 1-%d] [--max-size BYTES] [--restarts N]\n"
            "           [-v] [--keep]\n"
            "Environment: TARNFSD and TARNFS (the programs), NFS_TEST_TMP (scratch, default /tmp).\n",
            MAX_FILES);
    exit(2);
}

int main(int argc, char **argv)
{
    bool seeded = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-v")) {
            opt.verbose = true;
        } else if (!strcmp(a, "--keep")) {
            opt.keep = true;
        } else if (v && !strcmp(a, "--seed")) {
            opt.seed = strtoull(v, NULL, 0);
            seeded = true;
            i++;
        } else if (v && !strcmp(a, "--ops")) {
            opt.ops = strtoul(v, NULL, 0);
            i++;
        } else if (v && !strcmp(a, "--files")) {
            opt.files = atoi(v);
            i++;
        } else if (v && !strcmp(a, "--max-size")) {
            opt.max_size = strtoull(v, NULL, 0);
            i++;
        } else if (v && !strcmp(a, "--restarts")) {
            opt.restarts = atoi(v);
            i++;
        } else {
            usage();
        }
    }
    if (opt.files < 1 || opt.files > MAX_FILES || opt.max_size < 2 * MiB ||
        opt.max_size > 256 * MiB || opt.restarts < 0)
        usage();
    opt.max_size = (opt.max_size + BLOCK - 1) / BLOCK * BLOCK;
    if (!seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        opt.seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
        opt.seed %= 1000000000u;
    }
    rng_state = opt.seed;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("fsx: seed %" PRIu64 ", %lu ops, %d files, max size %" PRIu64 ", %d restarts\n",
           opt.seed, opt.ops, opt.files, opt.max_size, opt.restarts);
    time_t t0 = time(NULL);

    setup();
    client_open(&ca);
    client_open(&cb);
    struct waiter w;
    FSINFO3args fa = { .fsroot = F(&ca.root) };
    CALL(&ca, w, grab_fsinfo, "FSINFO", rpc_nfs3_fsinfo_async(ca.rpc, raw_cb, &fa, &w));
    if (w.status != NFS3_OK)
        fail("FSINFO: status %d", w.status);
    rmax = w.rtmax < MiB ? w.rtmax : (uint32_t)MiB;
    wmax = w.wtmax < MiB ? w.wtmax : (uint32_t)MiB;
    iobuf = malloc(rmax);
    uint8_t *wbuf = malloc(wmax);
    if (!iobuf || !wbuf)
        fail("out of memory");
    open_files();
    /* Half the time a part of the index-first member is read first: its
     * first WRITE then finds some of the run's data present, some absent. */
    for (int i = 0; i < opt.files; i++)
        if (files[i].member && !strcmp(files[i].run, "fsxlazy") && below(2)) {
            uint64_t off = below(files[i].size);
            uint32_t len = 1 + (uint32_t)below(rmax);
            logop("READ    %s/%s %" PRIu64 " +%u, before any change", files[i].run,
                  files[i].name, off, len);
            do_read(&ca, &files[i], off, len);
        }
    struct file *members[MAX_FILES];
    int nmembers = 0;
    for (int i = 0; i < opt.files; i++)
        if (files[i].member)
            members[nmembers++] = &files[i];

    int restarts_done = 0;
    for (opno = 1; opno <= opt.ops; opno++) {
        one_op(wbuf, nmembers, members);
        if (restarts_done < opt.restarts &&
            opno == (unsigned long)(restarts_done + 1) * opt.ops / (unsigned long)(opt.restarts + 1)) {
            restart(wbuf);
            restarts_done++;
        }
    }
    opno = opt.ops + 1;
    verify_all(&ca, "at the end");
    verify_all(&cb, "at the end");
    for (int i = 0; i < opt.files; i++)
        do_commit(&ca, &files[i], 0, 0, NULL);
    client_close(&ca);
    client_close(&cb);
    int st = server_stop(&srv);
    if (st != 0)
        fail("tarnfsd exited with status %d on SIGTERM", st);
    logop("stopped; the written-back tarballs hold the files");
    verify_tarballs(NULL, NULL, NULL);
    printf("fsx: %lu ops passed in %lds: %lu writes (%lu holes, %lu across 1 MiB), %lu reads "
           "(%lu at/past EOF), %lu truncates down, %lu up, %lu getattrs, %lu commits, %lu reopens, "
           "%lu reads by a second client, %lu bursts of parallel WRITEs, %lu write-backs, %lu restarts\n",
           opt.ops, (long)(time(NULL) - t0), count.write, count.hole_writes, count.chunk_crossing,
           count.read, count.past_eof_reads, count.trunc_down, count.trunc_up, count.getattr,
           count.commit, count.reopen, count.peer, count.burst, count.flush, count.restart);
    for (int i = 0; i < opt.files; i++)
        free(files[i].shadow);
    free(member_data[0]);
    free(member_data[1]);
    free(iobuf);
    free(wbuf);
    if (!opt.keep)
        nftw(workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("fsx: kept %s\n", workdir);
    return 0;
}
