/* mount3.c: the MOUNT v3 procedures (RFC 1813 section 5): MNT hands out export
 * root handles to allowed clients; DUMP/UMNT/UMNTALL keep the advisory list;
 * EXPORT lists exports and their client patterns. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nfsd/mount3_prot.h"
#include "nfsd/nfsd.h"
#include "util/log.h"

static void mnt_null(struct rpc_ctx *c, void *args, void *res)
{
}

/* The export that covers path: exact, or the longest prefix at a '/'. */
static const struct export *export_for_path(const struct exports *ex, const char *path)
{
    const struct export *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; ex && i < ex->n; i++) {
        const char *ep = ex->v[i].path;
        size_t n = strlen(ep);
        bool covers = !strcmp(ep, "/") ||
                      (!strncmp(path, ep, n) && (path[n] == 0 || path[n] == '/'));
        if (covers && (!best || n > best_len)) {
            best = &ex->v[i];
            best_len = n;
        }
    }
    return best;
}

static mountstat3 mnt_status(int err)
{
    switch (err) {
    case ENOENT: return MNT3ERR_NOENT;
    case ENOTDIR: return MNT3ERR_NOTDIR;
    case EACCES: return MNT3ERR_ACCES;
    case ENAMETOOLONG: return MNT3ERR_NAMETOOLONG;
    case EINVAL: return MNT3ERR_INVAL;
    default: return MNT3ERR_IO;
    }
}

int nfsd_resolve_path(vfs *v, const char *path, struct vfs_id *out)
{
    vfs_root(v, out);
    char comp[VFS_NAME_MAX + 1];
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        if (n > VFS_NAME_MAX)
            return ENAMETOOLONG;
        memcpy(comp, p, n);
        comp[n] = 0;
        p += n;
        if (!strcmp(comp, "."))
            continue;
        if (!strcmp(comp, ".."))
            return EINVAL;      /* exports name real paths only */
        struct vfs_id next;
        int err = vfs_lookup(v, out, comp, &next, NULL);
        if (err)
            return err;
        *out = next;
    }
    struct vfs_attr a;
    int err = vfs_getattr(v, out, &a);
    if (err)
        return err;
    return a.type == VFS_DIR ? 0 : ENOTDIR;
}

static size_t host_bucket(const char *host)
{
    uint32_t h = 2166136261u;
    for (; *host; host++)
        h = (h ^ (uint8_t)*host) * 16777619u;
    return h % NFSD_MOUNT_BUCKETS;
}

static void entry_free(struct mount_entry *e)
{
    free(e->host);
    free(e->path);
    free(e);
}

/* Record (host, path) unless it is there or a limit is reached; the work
 * under the lock is one bucket's chain.  True when it was added. */
static bool mount_add(struct nfsd *srv, const char *host, const char *path)
{
    struct mount_entry *m = calloc(1, sizeof *m);
    if (!m)
        return false;
    m->host = strdup(host);
    m->path = strdup(path);
    if (!m->host || !m->path) {
        entry_free(m);
        return false;
    }
    size_t b = host_bucket(host), same_host = 0;
    const char *why = NULL;
    pthread_mutex_lock(&srv->lock);
    for (struct mount_entry *e = srv->mounts[b]; e; e = e->next) {
        if (strcmp(e->host, host))
            continue;
        if (!strcmp(e->path, path)) {
            pthread_mutex_unlock(&srv->lock);
            entry_free(m);
            return false;
        }
        same_host++;
    }
    if (same_host >= NFSD_MOUNTS_PER_HOST)
        why = "this host's";
    else if (srv->nmounts >= NFSD_MOUNTS_MAX)
        why = "the server's";
    if (!why) {
        m->next = srv->mounts[b];
        srv->mounts[b] = m;
        srv->nmounts++;
        m = NULL;
    }
    bool log_it = why && !srv->mounts_full_logged;
    if (log_it)
        srv->mounts_full_logged = true;
    pthread_mutex_unlock(&srv->lock);
    if (log_it)
        log_warn("mount: %s mounted %s but %s mount list is full; not listed "
                 "(logged once)", host, path, why);
    if (!m)
        return true;
    entry_free(m);
    return false;
}

/* Drop host's entries for path (all of them when path is NULL). */
static void mount_remove(struct nfsd *srv, const char *host, const char *path)
{
    size_t b = host_bucket(host);
    pthread_mutex_lock(&srv->lock);
    for (struct mount_entry **pp = &srv->mounts[b]; *pp;) {
        struct mount_entry *e = *pp;
        if (!strcmp(e->host, host) && (!path || !strcmp(e->path, path))) {
            *pp = e->next;
            entry_free(e);
            srv->nmounts--;
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&srv->lock);
}

void nfsd_mounts_clear(struct nfsd *srv)
{
    pthread_mutex_lock(&srv->lock);
    for (size_t b = 0; b < NFSD_MOUNT_BUCKETS; b++)
        while (srv->mounts[b]) {
            struct mount_entry *e = srv->mounts[b];
            srv->mounts[b] = e->next;
            entry_free(e);
        }
    srv->nmounts = 0;
    pthread_mutex_unlock(&srv->lock);
}

int nfsd_canonical_path(const char *in, char *out, size_t cap)
{
    if (!in || in[0] != '/')
        return EINVAL;
    size_t j = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.')) {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return EINVAL;      /* exports name real paths only */
        if (j + 1 + n + 1 > cap)
            return ENAMETOOLONG;
        out[j++] = '/';
        memcpy(out + j, p, n);
        j += n;
        p += n;
    }
    if (j == 0)
        out[j++] = '/';
    out[j] = 0;
    return 0;
}

/* MNT log lines, at most MNT_LOG_BURST per MNT_LOG_INTERVAL_MS: any host
 * can MNT (and UMNT) in a loop, which must not flood the log. */
#define MNT_LOG_BURST       50
#define MNT_LOG_INTERVAL_MS 10000
#define mnt_log(srv, ...) \
    log_limited(&(srv)->mnt_log, MNT_LOG_BURST, MNT_LOG_INTERVAL_MS, LOG_LVL_INFO, __VA_ARGS__)

static void mnt_mnt(struct rpc_ctx *c, void *args, void *res)
{
    mountres3 *r = res;
    char host[INET6_ADDRSTRLEN];
    nfsd_peer_str(c->peer, host, sizeof host);
    /* One spelling per directory ("//a/./b/" is "/a/b"), for the export
     * match, the log and the mount list alike. */
    char path[MNTPATHLEN + 2];
    int cerr = nfsd_canonical_path(*(dirpath *)args, path, sizeof path);
    if (cerr) {
        r->fhs_status = mnt_status(cerr);
        return;
    }
    const struct export *e = export_for_path(c->exports, path);
    if (!e) {
        mnt_log(c->srv, "mount: %s asked for %s: not exported", host, path);
        r->fhs_status = MNT3ERR_NOENT;
        return;
    }
    const struct export_opts *o = export_match(e, c->peer);
    if (!o || (o->secure && !nfsd_peer_privileged(c->peer))) {
        mnt_log(c->srv, "mount: %s refused for %s", host, path);
        r->fhs_status = MNT3ERR_ACCES;
        return;
    }
    struct vfs_id id;
    int err = nfsd_resolve_path(c->srv->vfs, path, &id);
    if (err) {
        r->fhs_status = mnt_status(err);
        return;
    }
    uint8_t *fh = arena_alloc(&c->arena, FH_MAX);
    int *flavors = arena_alloc(&c->arena, 2 * sizeof(int));
    if (!fh || !flavors) {
        r->fhs_status = MNT3ERR_SERVERFAULT;
        return;
    }
    mountres3_ok *ok = &r->mountres3_u.mountinfo;
    ok->fhandle.fhandle3_len = (u_int)fh_encode(&c->srv->key, e->id, &id, fh);
    ok->fhandle.fhandle3_val = (char *)fh;
    flavors[0] = AUTH_SYS;
    flavors[1] = AUTH_NONE;
    ok->auth_flavors.auth_flavors_len = 2;
    ok->auth_flavors.auth_flavors_val = flavors;
    r->fhs_status = MNT3_OK;
    /* Logged when listed: a client mounting in a loop does not flood. */
    if (mount_add(c->srv, host, path))
        mnt_log(c->srv, "mount: %s mounted %s (%s)", host, path, o->rw ? "rw" : "ro");
}

static char *arena_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = arena_alloc(a, n + 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* DUMP: at most NFSD_DUMP_MAX entries, and no more bytes than the
 * transport's reply limit; over UDP, only the caller's own entries, in at
 * most NFSD_DUMP_UDP_BYTES. */
static void mnt_dump(struct rpc_ctx *c, void *args, void *res)
{
    mountlist *out = res, *tail = out;
    size_t n = 0, used = 64, limit = c->max_reply > 512 ? c->max_reply - 512 : 0;
    if (!exports_admit(c->exports, c->peer))
        return;             /* an empty list to hosts no export admits */
    char self[INET6_ADDRSTRLEN];
    size_t first = 0, last = NFSD_MOUNT_BUCKETS;
    if (!c->is_tcp) {
        nfsd_peer_str(c->peer, self, sizeof self);
        first = host_bucket(self);
        last = first + 1;
        if (limit > used + NFSD_DUMP_UDP_BYTES)
            limit = used + NFSD_DUMP_UDP_BYTES;
    }
    pthread_mutex_lock(&c->srv->lock);
    for (size_t i = first; i < last && n < NFSD_DUMP_MAX; i++)
        for (struct mount_entry *e = c->srv->mounts[i]; e && n < NFSD_DUMP_MAX;
             e = e->next) {
            if (!c->is_tcp && strcmp(e->host, self))
                continue;
            size_t need = 4 + 4 + ((strlen(e->host) + 3) & ~(size_t)3) + 4 +
                          ((strlen(e->path) + 3) & ~(size_t)3);
            if (used + need > limit)
                goto full;
            mountbody *b = arena_alloc(&c->arena, sizeof *b);
            if (!b || !(b->ml_hostname = arena_strdup(&c->arena, e->host)) ||
                !(b->ml_directory = arena_strdup(&c->arena, e->path)))
                goto full;
            *tail = b;
            tail = &b->ml_next;
            used += need;
            n++;
        }
full:
    pthread_mutex_unlock(&c->srv->lock);
    c->reply_size_hint = used;
}

static void mnt_umnt(struct rpc_ctx *c, void *args, void *res)
{
    char host[INET6_ADDRSTRLEN], path[MNTPATHLEN + 2];
    nfsd_peer_str(c->peer, host, sizeof host);
    if (!nfsd_canonical_path(*(dirpath *)args, path, sizeof path))
        mount_remove(c->srv, host, path);
}

static void mnt_umntall(struct rpc_ctx *c, void *args, void *res)
{
    char host[INET6_ADDRSTRLEN];
    nfsd_peer_str(c->peer, host, sizeof host);
    mount_remove(c->srv, host, NULL);
}

static void client_str(const struct export_client *cl, char *buf, size_t len)
{
    if (cl->any) {
        snprintf(buf, len, "*");
        return;
    }
    char a[INET6_ADDRSTRLEN];
    unsigned prefix = cl->prefix;
    if (IN6_IS_ADDR_V4MAPPED(&cl->addr)) {
        inet_ntop(AF_INET, &cl->addr.s6_addr[12], a, sizeof a);
        prefix -= 96;
        if (prefix == 32) {
            snprintf(buf, len, "%s", a);
            return;
        }
    } else {
        inet_ntop(AF_INET6, &cl->addr, a, sizeof a);
        if (prefix == 128) {
            snprintf(buf, len, "%s", a);
            return;
        }
    }
    snprintf(buf, len, "%s/%u", a, prefix);
}

static void mnt_export(struct rpc_ctx *c, void *args, void *res)
{
    exports *out = res, *tail = out;
    if (!exports_admit(c->exports, c->peer))
        return;             /* an empty list to hosts no export admits */
    for (size_t i = 0; c->exports && i < c->exports->n; i++) {
        const struct export *e = &c->exports->v[i];
        exportnode *n = arena_alloc(&c->arena, sizeof *n);
        if (!n || !(n->ex_dir = arena_strdup(&c->arena, e->path)))
            return;
        groups *gt = &n->ex_groups;
        for (size_t j = 0; j < e->nclients; j++) {
            char buf[INET6_ADDRSTRLEN + 8];
            client_str(&e->clients[j], buf, sizeof buf);
            groupnode *g = arena_alloc(&c->arena, sizeof *g);
            if (!g || !(g->gr_name = arena_strdup(&c->arena, buf)))
                return;
            *gt = g;
            gt = &g->gr_next;
        }
        *tail = n;
        tail = &n->ex_next;
    }
}

static const struct rpc_proc mount3_procs[] = {
    { "NULL", (xdrproc_t)nfsd_xdr_void, 0, (xdrproc_t)nfsd_xdr_void, 0, mnt_null, 0 },
    { "MNT", (xdrproc_t)xdr_dirpath, sizeof(dirpath), (xdrproc_t)xdr_mountres3,
      sizeof(mountres3), mnt_mnt, 0 },
    { "DUMP", (xdrproc_t)nfsd_xdr_void, 0, (xdrproc_t)xdr_mountlist, sizeof(mountlist),
      mnt_dump, 0 },
    { "UMNT", (xdrproc_t)xdr_dirpath, sizeof(dirpath), (xdrproc_t)nfsd_xdr_void, 0,
      mnt_umnt, 0 },
    { "UMNTALL", (xdrproc_t)nfsd_xdr_void, 0, (xdrproc_t)nfsd_xdr_void, 0, mnt_umntall, 0 },
    { "EXPORT", (xdrproc_t)nfsd_xdr_void, 0, (xdrproc_t)xdr_exports, sizeof(exports),
      mnt_export, 0 },
};

const struct rpc_program mount3_program = {
    "MOUNT", MOUNT_PROG, MOUNT_VERS, mount3_procs, sizeof mount3_procs / sizeof mount3_procs[0]
};
