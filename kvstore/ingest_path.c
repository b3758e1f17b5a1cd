/* ingest_path.c: where a member goes in the run being built: member path normalisation and the hostile-path refusals, the top-directory strip decision and un-strip move, and parent resolution through a cache of the last parent chain. */
#include "kvstore/ingest_internal.h"
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- paths ------------------------------------------------------------- */

/* Normalise a member path in place: drop "./" and empty components and
 * trailing slashes.  Absolute paths and ".." components are refused
 * (EBADMSG) rather than rewritten, so a hostile archive never lands
 * anywhere its author did not plainly say.  "" means the archive root. */
int kv_member_path_normalise(char *p)
{
    if (p[0] == '/')
        return EBADMSG;
    char *out = p;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 1 && s[0] == '.') {
            s += len;
            continue;
        }
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return EBADMSG;
        if (out != p)
            *out++ = '/';
        memmove(out, s, len);
        out += len;
        s += len;
    }
    *out = '\0';
    return 0;
}

/* Where a normalised archive path goes, relative to the run root, given
 * the current strip state: "top/x" -> "x", "top" -> "". */
const char *ingest_run_relative(const struct ingest *in, const char *p)
{
    if (!in->strip)
        return p;
    if (strcmp(p, in->top) == 0)
        return p + in->toplen;
    return p + in->toplen + 1;
}

bool ingest_under_top(const struct ingest *in, const char *p)
{
    return strncmp(p, in->top, in->toplen) == 0 &&
           (p[in->toplen] == '\0' || p[in->toplen] == '/');
}

/* ---- strip / un-strip ------------------------------------------------- */

void ingest_path_cache_reset(struct ingest *in)
{
    in->pc_len = 0;
    in->pc_n = 0;
    if (in->pc_path)
        in->pc_path[0] = '\0';
}

struct name_list {
    char **names;
    size_t n, cap;
    int err;
};

static int collect_name(void *arg, const struct kv_dirent *de)
{
    struct name_list *nl = arg;
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 64;
        char **nn = realloc(nl->names, cap * sizeof *nn);
        if (!nn) {
            nl->err = ENOMEM;
            return 1;
        }
        nl->names = nn;
        nl->cap = cap;
    }
    nl->names[nl->n] = strndup(de->name, de->namelen);
    if (!nl->names[nl->n]) {
        nl->err = ENOMEM;
        return 1;
    }
    nl->n++;
    return 0;
}

static void name_list_free(struct name_list *nl)
{
    for (size_t i = 0; i < nl->n; i++)
        free(nl->names[i]);
    free(nl->names);
}

/* A member outside top/ arrived after members we placed as if top/ were
 * the root: move everything made so far into a real top directory.  A
 * temporary name avoids clashing with an entry that is itself called top
 * (from "top/top/..."). */
static int unstrip(struct ingest *in, const char *member)
{
    kv_ino root = kv_run_root(in->run);
    struct name_list nl = { 0 };
    int err = kv_readdir(in->run, root, 0, collect_name, &nl);
    if (!err)
        err = nl.err;
    if (err) {
        name_list_free(&nl);
        return ingest_fail(in, err, member, "listing the run root: %s",
                           strerror(err));
    }

    char tmpname[64];
    kv_ino topdir = 0;
    struct kv_attr rootattr;
    err = kv_getattr(in->run, root, &rootattr);
    for (unsigned i = 0; !err; i++) {
        snprintf(tmpname, sizeof tmpname, ".tarnfs-unstrip-%u", i);
        struct kv_newnode nn = {
            .mode = in->root_from_top ? rootattr.mode
                                      : (uint32_t)(S_IFDIR | 0755),
            .uid = in->root_from_top ? rootattr.uid : in->default_uid,
            .gid = in->root_from_top ? rootattr.gid : in->default_gid,
            .ino_hint = kv_ino_for(in->name, in->top),
        };
        struct kv_attr a;
        err = kv_mknode(in->run, root, tmpname, &nn, &a);
        if (err == EEXIST) {
            err = 0;
            continue;
        }
        if (!err)
            topdir = a.ino;
        break;
    }
    for (size_t i = 0; !err && i < nl.n; i++)
        err = kv_rename(in->run, root, nl.names[i], topdir, nl.names[i]);
    if (!err)
        err = kv_rename(in->run, root, tmpname, root, in->top);
    name_list_free(&nl);
    if (!err && in->root_from_top) {
        /* top/'s attributes move with it; the root returns to defaults. */
        struct kv_sattr s = {
            .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID,
            .mode = 0755, .uid = in->default_uid, .gid = in->default_gid,
        };
        err = kv_setattr(in->run, root, &s, NULL);
        for (size_t i = 0; i < in->dt_n; i++)
            if (in->dt[i].ino == root)
                in->dt[i].ino = topdir;
        ingest_dt_index_drop(in);
        in->root_from_top = false;
    }
    if (err)
        return ingest_fail(in, err, member,
                           "moving earlier members under '%s': %s", in->top,
                           strerror(err));
    in->strip = false;
    ingest_path_cache_reset(in);
    if (in->watch && in->watch->placed)
        in->watch->placed(in->watch->arg, in->top, topdir);
    return 0;
}

/* Update the strip decision for a new member (path already normalised). */
int ingest_decide_strip(struct ingest *in, const char *path, bool is_dir,
                        const char *member)
{
    in->members++;
    if (!in->strip)
        return 0;
    bool stays = ingest_under_top(in, path) && (path[in->toplen] == '/' || is_dir);
    if (stays)
        return 0;
    if (in->members == 1) {
        in->strip = false;      /* nothing placed yet: nothing to move */
        return 0;
    }
    return unstrip(in, member);
}

/* ---- parent resolution ------------------------------------------------ */

int ingest_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *np = realloc(*p, cap2 * elem);
    if (!np)
        return ENOMEM;
    *p = np;
    *cap = cap2;
    return 0;
}

/* The inode number member e (at relpath) asks for: the one its tarball
 * kept (a node created or renamed over NFS, written back), if valid, else
 * the one its path gives.  Either way only a hint: kv_mknode takes the
 * next free number if it is taken. */
kv_ino ingest_member_ino(const struct ingest *in, const struct ingest_member *e,
                         const char *relpath)
{
    if (e->ino >= KV_MIN_INO && e->ino <= KV_MAX_INO)
        return e->ino;
    return kv_ino_for(in->name, relpath);
}

/* Make a directory that a member needs but whose own member has not come
 * (yet): tar -xf gives such directories default attributes too. */
static int make_implicit_dir(struct ingest *in, kv_ino parent,
                             const char *name, const char *relpath,
                             kv_ino *out)
{
    struct kv_newnode nn = {
        .mode = S_IFDIR | 0755,
        .uid = in->default_uid,
        .gid = in->default_gid,
        .ino_hint = kv_ino_for(in->name, relpath),
    };
    struct kv_attr a;
    int err = kv_mknode(in->run, parent, name, &nn, &a);
    if (!err) {
        *out = a.ino;
        in->res->dirs++;
    }
    return err;
}

/* Resolve the directory dirpath (relative to the run root, "" = root),
 * creating missing components.  Reuses the longest prefix shared with the
 * previous call: tar members usually come grouped by directory. */
static int resolve_dir(struct ingest *in, const char *dirpath, kv_ino *out,
                       const char *member)
{
    size_t len = strlen(dirpath);
    size_t keep = 0;                    /* components reused from cache */
    while (keep < in->pc_n) {
        size_t end = in->pc_end[keep];
        if (end > len || memcmp(in->pc_path, dirpath, end) != 0 ||
            (dirpath[end] != '\0' && dirpath[end] != '/'))
            break;
        keep++;
    }
    int err = ingest_grow((void **)&in->pc_path, &in->pc_cap, len + 1, 1);
    if (err)
        return ingest_fail(in, err, member, "out of memory");
    memcpy(in->pc_path, dirpath, len + 1);
    in->pc_len = len;
    in->pc_n = keep;

    kv_ino cur = keep ? in->pc_ino[keep - 1] : kv_run_root(in->run);
    size_t pos = keep ? in->pc_end[keep - 1] : 0;
    char comp[KV_NAME_MAX + 1];
    while (pos < len) {
        if (in->pc_path[pos] == '/')
            pos++;
        const char *s = in->pc_path + pos;
        const char *e = strchr(s, '/');
        size_t clen = e ? (size_t)(e - s) : strlen(s);
        if (clen > KV_NAME_MAX) {
            ingest_path_cache_reset(in);
            return ingest_fail(in, ENAMETOOLONG, member,
                               "a path component is longer than %d bytes",
                               KV_NAME_MAX);
        }
        memcpy(comp, s, clen);
        comp[clen] = '\0';
        kv_ino next;
        err = kv_lookup(in->run, cur, comp, &next);
        if (err == ENOENT) {
            char saved = in->pc_path[pos + clen];
            in->pc_path[pos + clen] = '\0';
            err = make_implicit_dir(in, cur, comp, in->pc_path, &next);
            in->pc_path[pos + clen] = saved;
        }
        if (!err) {
            struct kv_attr a;
            err = kv_getattr(in->run, next, &a);
            if (!err && !S_ISDIR(a.mode))
                err = ENOTDIR;
        }
        if (err) {
            ingest_path_cache_reset(in);
            if (err == ENOTDIR)
                return ingest_fail(in, EBADMSG, member,
                                   "'%.*s' is in the way: not a directory",
                                   (int)(pos + clen), dirpath);
            return ingest_fail(in, err, member, "making parent '%.*s': %s",
                               (int)(pos + clen), dirpath, strerror(err));
        }
        err = ingest_grow((void **)&in->pc_ino, &in->pc_ncap, in->pc_n + 1,
                   sizeof *in->pc_ino);
        if (!err) {
            size_t cap = in->pc_ncap;   /* pc_end follows pc_ino's capacity */
            in->pc_end = realloc(in->pc_end, cap * sizeof *in->pc_end);
            if (!in->pc_end)
                err = ENOMEM;
        }
        if (err) {
            ingest_path_cache_reset(in);
            return ingest_fail(in, err, member, "out of memory");
        }
        in->pc_ino[in->pc_n] = next;
        in->pc_end[in->pc_n] = pos + clen;
        in->pc_n++;
        cur = next;
        pos += clen;
    }
    *out = cur;
    return 0;
}

/* Split relpath into its parent directory (resolved/created) and leaf. */
int ingest_resolve_parent(struct ingest *in, char *relpath, kv_ino *parent,
                          const char **leaf, const char *member)
{
    char *slash = strrchr(relpath, '/');
    int err;
    if (slash) {
        *slash = '\0';
        err = resolve_dir(in, relpath, parent, member);
        *slash = '/';
        *leaf = slash + 1;
    } else {
        err = resolve_dir(in, "", parent, member);
        *leaf = relpath;
    }
    if (!err && strlen(*leaf) > KV_NAME_MAX)
        return ingest_fail(in, ENAMETOOLONG, member,
                           "name is longer than %d bytes", KV_NAME_MAX);
    return err;
}

/* Look a path (relative to the run root) up without creating anything. */
int ingest_lookup_path(struct ingest *in, const char *relpath, kv_ino *out)
{
    kv_ino cur = kv_run_root(in->run);
    const char *s = relpath;
    char comp[KV_NAME_MAX + 1];
    while (*s) {
        const char *e = strchr(s, '/');
        size_t clen = e ? (size_t)(e - s) : strlen(s);
        if (clen > KV_NAME_MAX)
            return ENAMETOOLONG;
        memcpy(comp, s, clen);
        comp[clen] = '\0';
        int err = kv_lookup(in->run, cur, comp, &cur);
        if (err)
            return err;
        s += clen;
        if (*s == '/')
            s++;
    }
    *out = cur;
    return 0;
}
