/* nfsdeep.c: builds a chain of nested directories in a run through raw NFSv3 MKDIR calls, each on the handle the last one returned (no path walk per level), then CREATEs a file at the bottom, for the deep-tree write-back test. */
#include <sys/time.h> /* libnfs.h needs struct timeval */
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FH_MAX 64

/* libnfs 4 declares struct nfs_fh but keeps its body private; this is its
 * layout (as bench/nfsload/conn.c uses it), to read the handle nfs_open
 * got for the starting directory. */
struct nfs_fh {
    int len;
    char *val;
};

struct reply {
    int done, status;
    nfsstat3 nfs;
    char fh[FH_MAX];
    unsigned fh_len;
};

static void on_reply(struct rpc_context *rpc, int status, void *data,
                     void *private_data)
{
    (void)rpc;
    struct reply *r = private_data;
    r->done = 1;
    r->status = status;
    if (status != RPC_STATUS_SUCCESS)
        return;
    /* MKDIR3res and CREATE3res share this layout. */
    MKDIR3res *res = data;
    r->nfs = res->status;
    if (res->status == NFS3_OK && res->MKDIR3res_u.resok.obj.handle_follows) {
        nfs_fh3 *h = &res->MKDIR3res_u.resok.obj.post_op_fh3_u.handle;
        if (h->data.data_len <= FH_MAX) {
            memcpy(r->fh, h->data.data_val, h->data.data_len);
            r->fh_len = h->data.data_len;
        }
    }
}

static int wait_reply(struct rpc_context *rpc, struct reply *r)
{
    while (!r->done) {
        struct pollfd p = { .fd = rpc_get_fd(rpc),
                            .events = (short)rpc_which_events(rpc) };
        if (poll(&p, 1, 1000) < 0 || rpc_service(rpc, p.revents) < 0) {
            fprintf(stderr, "nfsdeep: %s\n", rpc_get_error(rpc));
            return -1;
        }
    }
    if (r->status != RPC_STATUS_SUCCESS || r->nfs != NFS3_OK || !r->fh_len) {
        fprintf(stderr, "nfsdeep: rpc status %d, nfs status %d\n", r->status,
                (int)r->nfs);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: nfsdeep nfs://HOST/EXPORT?... /RUN/DIR DEPTH FILE\n");
        return 2;
    }
    long depth = strtol(argv[3], NULL, 10);
    struct nfs_context *nfs = nfs_init_context();
    struct nfs_url *u = nfs ? nfs_parse_url_dir(nfs, argv[1]) : NULL;
    struct nfsfh *dir;
    if (!u || nfs_mount(nfs, u->server, u->path) ||
        nfs_open(nfs, argv[2], O_RDONLY, &dir)) {
        fprintf(stderr, "nfsdeep: %s\n", nfs ? nfs_get_error(nfs) : "no context");
        return 1;
    }
    struct reply r = { 0 };
    struct nfs_fh *top = nfs_get_fh(dir);
    memcpy(r.fh, top->val, (size_t)top->len);
    r.fh_len = (unsigned)top->len;
    nfs_close(nfs, dir);
    struct rpc_context *rpc = nfs_get_rpc_context(nfs);
    int rc = 0;
    for (long i = 0; i <= depth && !rc; i++) {
        char fh[FH_MAX];
        unsigned len = r.fh_len;
        memcpy(fh, r.fh, len);
        memset(&r, 0, sizeof r);
        sattr3 attr;
        memset(&attr, 0, sizeof attr);
        attr.mode.set_it = 1;
        int sent;
        if (i < depth) {
            attr.mode.set_mode3_u.mode = 0755;
            MKDIR3args a;
            memset(&a, 0, sizeof a);
            a.where.dir.data.data_len = len;
            a.where.dir.data.data_val = fh;
            a.where.name = "d";
            a.attributes = attr;
            sent = rpc_nfs3_mkdir_async(rpc, on_reply, &a, &r);
        } else {
            attr.mode.set_mode3_u.mode = 0644;
            CREATE3args a;
            memset(&a, 0, sizeof a);
            a.where.dir.data.data_len = len;
            a.where.dir.data.data_val = fh;
            a.where.name = argv[4];
            a.how.mode = UNCHECKED;
            a.how.createhow3_u.obj_attributes = attr;
            sent = rpc_nfs3_create_async(rpc, on_reply, &a, &r);
        }
        rc = sent ? -1 : wait_reply(rpc, &r);
        if (rc)
            fprintf(stderr, "nfsdeep: failed at depth %ld\n", i);
    }
    nfs_destroy_url(u);
    nfs_destroy_context(nfs);
    return rc ? 1 : 0;
}
