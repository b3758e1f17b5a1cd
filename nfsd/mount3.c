/* mount3.c: the MOUNT v3 procedures (RFC 1813 section 5): MNT hands out export
 * root handles to allowed clients; DUMP/UMNT/UMNTALL keep the advisory list;
 * EXPORT lists exports and their client patterns. */
#include <arpa/inet.h>
#include <errno.h>
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

static void mount_add(struct nfsd *srv, const char *host, const char *path)
{
    struct mount_entry *m = calloc(1, sizeof *m);
    if (!m)
        return;
    m->host = strdup(host);
    m->path = strdup(path);
    if (!m->host || !m->path) {
        free(m->host);
        free(m->path);
        free(m);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    for (struct mount_entry *e = srv->mounts; e; e = e->next)
        if (!strcmp(e->host, host) && !strcmp(e->path, path)) {
            pthread_mutex_unlock(&srv->lock);
            free(m->host);
            free(m->path);
            free(m);
            return;
        }
    m->next = srv->mounts;
    srv->mounts = m;
    pthread_mutex_unlock(&srv->lock);
}

/* Drop host's entries for path (all of them when path is NULL). */
static void mount_remove(struct nfsd *srv, const char *host, const char *path)
{
    pthread_mutex_lock(&srv->lock);
    for (struct mount_entry **pp = &srv->mounts; *pp;) {
        struct mount_entry *e = *pp;
        if (!strcmp(e->host, host) && (!path || !strcmp(e->path, path))) {
            *pp = e->next;
            free(e->host);
            free(e->path);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&srv->lock);
}

void nfsd_mounts_clear(struct nfsd *srv)
{
    pthread_mutex_lock(&srv->lock);
    while (srv->mounts) {
        struct mount_entry *e = srv->mounts;
        srv->mounts = e->next;
        free(e->host);
        free(e->path);
        free(e);
    }
    pthread_mutex_unlock(&srv->lock);
}

static void mnt_mnt(struct rpc_ctx *c, void *args, void *res)
{
    const char *path = *(dirpath *)args;
    mountres3 *r = res;
    char host[INET6_ADDRSTRLEN];
    nfsd_peer_str(c->peer, host, sizeof host);
    if (!path || path[0] != '/') {
        r->fhs_status = MNT3ERR_INVAL;
        return;
    }
    const struct export *e = export_for_path(c->exports, path);
    if (!e) {
        log_info("mount: %s asked for %s: not exported", host, path);
        r->fhs_status = MNT3ERR_NOENT;
        return;
    }
    const struct export_opts *o = export_match(e, c->peer);
    if (!o || (o->secure && !nfsd_peer_privileged(c->peer))) {
        log_info("mount: %s refused for %s", host, path);
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
    mount_add(c->srv, host, path);
    log_info("mount: %s mounted %s (%s)", host, path, o->rw ? "rw" : "ro");
}

static char *arena_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = arena_alloc(a, n + 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void mnt_dump(struct rpc_ctx *c, void *args, void *res)
{
    mountlist *out = res, *tail = out;
    pthread_mutex_lock(&c->srv->lock);
    for (struct mount_entry *e = c->srv->mounts; e; e = e->next) {
        mountbody *b = arena_alloc(&c->arena, sizeof *b);
        if (!b || !(b->ml_hostname = arena_strdup(&c->arena, e->host)) ||
            !(b->ml_directory = arena_strdup(&c->arena, e->path)))
            break;
        *tail = b;
        tail = &b->ml_next;
    }
    pthread_mutex_unlock(&c->srv->lock);
}

static void mnt_umnt(struct rpc_ctx *c, void *args, void *res)
{
    char host[INET6_ADDRSTRLEN];
    nfsd_peer_str(c->peer, host, sizeof host);
    mount_remove(c->srv, host, *(dirpath *)args);
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
