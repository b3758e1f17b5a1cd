/* conn.c: opens, polls and closes the libnfs connections nfsload drives. */
#include "bench/nfsload/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* libnfs 4 declares struct nfs_fh but keeps its body private; this is its
 * layout (libnfs-private.h), needed to read the export's root handle that
 * nfs_mount() obtained without a second MOUNT call of our own. */
struct nfs_fh {
    int len;
    char *val;
};

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void conn_note_error(struct conn_pool *pool, const char *fmt, ...)
{
    if (pool->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pool->error, sizeof pool->error, fmt, ap);
    va_end(ap);
}

int handle_copy(struct nfs_handle *dst, const nfs_fh3 *src)
{
    if (src->data.data_len > NFS3_HANDLE_MAX)
        return EINVAL;
    dst->len = src->data.data_len;
    memcpy(dst->data, src->data.data_val, dst->len);
    return 0;
}

nfs_fh3 handle_wire(const struct nfs_handle *h)
{
    nfs_fh3 w;
    w.data.data_len = h->len;
    w.data.data_val = (char *)h->data;
    return w;
}

static int open_one(struct conn_pool *pool, int i, const char *url,
                    int want_root)
{
    struct nfs_context *nfs = nfs_init_context();
    if (!nfs)
        return ENOMEM;
    pool->nfs[i] = nfs;
    struct nfs_url *u = nfs_parse_url_dir(nfs, url);
    if (!u) {
        conn_note_error(pool, "bad url %s: %s", url, nfs_get_error(nfs));
        return EINVAL;
    }
    /* a server that drops a connection must show as an error, not be
     * hidden by a silent reconnect and resend */
    nfs_set_autoreconnect(nfs, 0);
    int rc = nfs_mount(nfs, u->server, u->path);
    if (rc) {
        conn_note_error(pool, "mount %s: %s", url, nfs_get_error(nfs));
        nfs_destroy_url(u);
        return ECONNREFUSED;
    }
    nfs_destroy_url(u);
    pool->rpc[i] = nfs_get_rpc_context(nfs);
    if (want_root) {
        struct nfsfh *dir;
        if (nfs_open(nfs, "/", O_RDONLY, &dir)) {
            conn_note_error(pool, "open export root: %s", nfs_get_error(nfs));
            return ECONNREFUSED;
        }
        struct nfs_fh *fh = nfs_get_fh(dir);
        if (fh->len < 0 || fh->len > NFS3_HANDLE_MAX) {
            nfs_close(nfs, dir);
            conn_note_error(pool, "root handle of %d bytes", fh->len);
            return EINVAL;
        }
        pool->root.len = (uint32_t)fh->len;
        memcpy(pool->root.data, fh->val, pool->root.len);
        nfs_close(nfs, dir);
        pool->readmax = nfs_get_readmax(nfs);
    }
    return 0;
}

int conn_open(struct conn_pool *pool, const char *url, int count)
{
    memset(pool, 0, sizeof *pool);
    if (count < 1 || count > 1024)
        return EINVAL;
    pool->nfs = calloc((size_t)count, sizeof *pool->nfs);
    pool->rpc = calloc((size_t)count, sizeof *pool->rpc);
    if (!pool->nfs || !pool->rpc) {
        free(pool->nfs);
        free(pool->rpc);
        pool->nfs = NULL;
        pool->rpc = NULL;
        return ENOMEM;
    }
    pool->count = count;
    for (int i = 0; i < count; i++) {
        int rc = open_one(pool, i, url, i == 0);
        if (rc)
            return rc;
    }
    return 0;
}

void conn_close(struct conn_pool *pool)
{
    for (int i = 0; i < pool->count && pool->nfs; i++) {
        if (!pool->nfs[i])
            continue;
        if (pool->rpc[i])
            nfs_umount(pool->nfs[i]);
        nfs_destroy_context(pool->nfs[i]);
    }
    free(pool->nfs);
    free(pool->rpc);
    pool->nfs = NULL;
    pool->rpc = NULL;
    pool->count = 0;
}

struct rpc_context *conn_pick(struct conn_pool *pool)
{
    return pool->rpc[pool->next++ % (unsigned)pool->count];
}

struct rpc_context *conn_get(struct conn_pool *pool, unsigned i)
{
    return pool->rpc[i % (unsigned)pool->count];
}

int conn_run(struct conn_pool *pool, int (*done)(void *arg), void *arg,
             uint64_t deadline_ns)
{
    struct pollfd fds[pool->count];
    while (!done(arg)) {
        if (pool->failed)
            return EIO;
        if (deadline_ns && now_ns() >= deadline_ns)
            return ETIMEDOUT;
        for (int i = 0; i < pool->count; i++) {
            fds[i].fd = rpc_get_fd(pool->rpc[i]);
            fds[i].events = (short)rpc_which_events(pool->rpc[i]);
            fds[i].revents = 0;
        }
        int n = poll(fds, (nfds_t)pool->count, pool->tick ? 1 : 100);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            conn_note_error(pool, "poll: %s", strerror(errno));
            return EIO;
        }
        for (int i = 0; i < pool->count; i++) {
            /* revents 0 still lets libnfs run its timeouts */
            if (rpc_service(pool->rpc[i], fds[i].revents) < 0) {
                conn_note_error(pool, "connection %d: %s", i,
                                rpc_get_error(pool->rpc[i]));
                pool->failed = 1;
                return EIO;
            }
        }
        if (pool->tick)
            pool->tick(pool->tick_arg);
    }
    return 0;
}
