/* id.c: encodes and decodes vfs node ids, and keeps the persistent name
 * catalog that resolves ids whose run name was too long to embed. */
#include "vfs/vfs_internal.h"
#include "util/log.h"
#include "util/phash.h"
#include "util/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t vfs_hash(const void *p, size_t n)
{
    return phash(p, n);         /* persisted: catalog, markers, cookies */
}

uint64_t vfs_hash_str(const char *s)
{
    return vfs_hash(s, strlen(s));
}

int64_t vfs_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int vfs_check_run_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > KV_RUNNAME_MAX)
        return EINVAL;
    const char *c = name;
    while (*c) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || n > KV_NAME_MAX || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.'))
            return EINVAL;
        if (!slash)
            break;
        c = slash + 1;
        if (!*c)
            return EINVAL;      /* trailing '/' */
    }
    return 0;
}

/* ---- name catalog: CACHE/vfs/names/<hash hex>, content = the name ---- */

static void catalog_path(const vfs *v, uint64_t h, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/names/%016" PRIx64, v->meta_dir, h);
}

/* Remember h in the in-memory set (lock held); false if already there. */
static bool catalog_note_locked(vfs *v, uint64_t h)
{
    if (h == 0)
        h = 1;
    if ((v->catalog_n + 1) * 2 > v->catalog_cap) {
        size_t ncap = v->catalog_cap ? v->catalog_cap * 2 : 1024;
        uint64_t *n = calloc(ncap, sizeof *n);
        if (!n)
            return true;        /* just write the file again */
        for (size_t i = 0; i < v->catalog_cap; i++) {
            uint64_t x = v->catalog[i];
            if (!x)
                continue;
            size_t j = x & (ncap - 1);
            while (n[j])
                j = (j + 1) & (ncap - 1);
            n[j] = x;
        }
        free(v->catalog);
        v->catalog = n;
        v->catalog_cap = ncap;
    }
    size_t j = h & (v->catalog_cap - 1);
    while (v->catalog[j]) {
        if (v->catalog[j] == h)
            return false;
        j = (j + 1) & (v->catalog_cap - 1);
    }
    v->catalog[j] = h;
    v->catalog_n++;
    return true;
}

/* Persist hash -> name so the id resolves after a restart.  Written once
 * (temp file + rename), so a crash leaves either no entry or a whole one. */
static void catalog_add(vfs *v, uint64_t h, const char *name)
{
    pthread_mutex_lock(&v->lock);
    bool fresh = catalog_note_locked(v, h);
    pthread_mutex_unlock(&v->lock);
    if (!fresh)
        return;
    char path[PATH_MAX];
    catalog_path(v, h, path, sizeof path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
        return;
    int err = safe_write_file(path, name, strlen(name), 0644, true);
    if (err)
        log_warn("vfs: cannot write name catalog entry %s: %s", path,
                 strerror(err));
}

/* Resolve hash h to a name through the catalog.  Errors: ESTALE. */
static int catalog_get(vfs *v, uint64_t h, char *name, size_t cap)
{
    char path[PATH_MAX];
    catalog_path(v, h, path, sizeof path);
    int fd = safe_open_read(path);
    if (fd < 0)
        return ESTALE;
    ssize_t n = read(fd, name, cap - 1);
    close(fd);
    if (n <= 0)
        return ESTALE;
    name[n] = '\0';
    if ((size_t)n != strlen(name) || vfs_hash_str(name) != h)
        return ESTALE;
    return 0;
}

void vfs_marker_path(const char *meta_dir, const char *run, char *buf,
                     size_t cap)
{
    snprintf(buf, cap, "%s/lastref/%016" PRIx64, meta_dir, vfs_hash_str(run));
}

/* ---- ids ------------------------------------------------------------- */

void vfs_id_make_root(struct vfs_id *id)
{
    memset(id, 0, sizeof *id);
    id->b[0] = VFS_KIND_ROOT;
    id->len = 1;
}

void vfs_id_make_nsdir(vfs *v, const char *name, struct vfs_id *id)
{
    size_t len = strlen(name);
    memset(id, 0, sizeof *id);
    if (len <= VFS_NSDIR_INLINE_MAX) {
        id->b[0] = VFS_KIND_NSDIR;
        memcpy(id->b + 1, name, len);
        id->len = (uint8_t)(1 + len);
        return;
    }
    uint64_t h = vfs_hash_str(name);
    id->b[0] = VFS_KIND_NSDIR_HASH;
    put64(id->b + 1, h);
    id->len = 9;
    catalog_add(v, h, name);
}

void vfs_id_make_node(vfs *v, const char *run, kv_ino ino, struct vfs_id *id)
{
    size_t len = strlen(run);
    memset(id, 0, sizeof *id);
    put64(id->b + 1, ino);
    if (len <= VFS_NODE_INLINE_MAX) {
        id->b[0] = VFS_KIND_NODE;
        memcpy(id->b + 9, run, len);
        id->len = (uint8_t)(9 + len);
        return;
    }
    uint64_t h = vfs_hash_str(run);
    id->b[0] = VFS_KIND_NODE_HASH;
    put64(id->b + 9, h);
    id->len = 17;
    catalog_add(v, h, run);
}

static int decode_inline_name(const uint8_t *p, size_t len, char *name)
{
    if (len == 0 || memchr(p, '\0', len))
        return EBADMSG;
    memcpy(name, p, len);
    name[len] = '\0';
    return vfs_check_run_name(name) ? EBADMSG : 0;
}

int vfs_id_decode(vfs *v, const struct vfs_id *id, struct vfs_node *n)
{
    if (!id || id->len == 0 || id->len > VFS_ID_MAX)
        return EBADMSG;
    const uint8_t *b = id->b;
    size_t len = id->len;
    n->ino = 0;
    n->name[0] = '\0';
    switch (b[0]) {
    case VFS_KIND_ROOT:
        n->kind = VFS_KIND_ROOT;
        return len == 1 ? 0 : EBADMSG;
    case VFS_KIND_NSDIR:
        n->kind = VFS_KIND_NSDIR;
        return decode_inline_name(b + 1, len - 1, n->name);
    case VFS_KIND_NSDIR_HASH:
        n->kind = VFS_KIND_NSDIR;
        if (len != 9)
            return EBADMSG;
        return catalog_get(v, get64(b + 1), n->name, sizeof n->name);
    case VFS_KIND_NODE:
        n->kind = VFS_KIND_NODE;
        if (len < 10)
            return EBADMSG;
        n->ino = get64(b + 1);
        return decode_inline_name(b + 9, len - 9, n->name);
    case VFS_KIND_NODE_HASH:
        n->kind = VFS_KIND_NODE;
        if (len != 17)
            return EBADMSG;
        n->ino = get64(b + 1);
        return catalog_get(v, get64(b + 9), n->name, sizeof n->name);
    default:
        return EBADMSG;
    }
}

int vfs_id_where(vfs *v, const struct vfs_id *id, char *buf, size_t cap,
                 bool *in_run)
{
    struct vfs_node n;
    int err = vfs_id_decode(v, id, &n);
    if (err)
        return err;
    size_t len = strlen(n.name);
    if (len >= cap)
        return ENAMETOOLONG;
    memcpy(buf, n.name, len + 1);
    *in_run = n.kind == VFS_KIND_NODE;
    return 0;
}
