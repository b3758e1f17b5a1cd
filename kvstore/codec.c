/* codec.c: binary keys and inode records of the schema, name checks, KC error mapping. */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void kv_put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t kv_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void kv_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

uint32_t kv_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

size_t kv_key_ino(unsigned char *k, char tag, kv_ino ino)
{
    k[0] = (unsigned char)tag;
    kv_put64(k + 1, ino);
    return 9;
}

size_t kv_key_ino2(unsigned char *k, char tag, kv_ino ino, uint64_t n)
{
    k[0] = (unsigned char)tag;
    kv_put64(k + 1, ino);
    kv_put64(k + 9, n);
    return 17;
}

size_t kv_key_name(unsigned char *k, kv_ino dir, const char *name, size_t len)
{
    k[0] = 'N';
    kv_put64(k + 1, dir);
    memcpy(k + 9, name, len);
    return 9 + len;
}

/* Record layout (big-endian): version:1 mode:4 nlink:4 uid:4 gid:4 size:8
 * used:8 rdev:8 {atime,mtime,ctime}:(sec:8 nsec:4) parent:8 next_seq:8
 * then, for symlinks, the target bytes (size of them). */
#define REC_VERSION 1
#define REC_FIXED   (1 + 4 * 4 + 8 * 3 + 12 * 3 + 8 + 8)

static unsigned char *put_ts(unsigned char *p, const struct timespec *ts)
{
    kv_put64(p, (uint64_t)ts->tv_sec);
    kv_put32(p + 8, (uint32_t)ts->tv_nsec);
    return p + 12;
}

static const unsigned char *get_ts(const unsigned char *p, struct timespec *ts)
{
    ts->tv_sec = (time_t)(int64_t)kv_get64(p);
    ts->tv_nsec = (long)kv_get32(p + 8);
    return p + 12;
}

char *kv_inode_encode(const struct kv_inode *in, size_t *len)
{
    size_t tlen = S_ISLNK(in->mode) && in->target ? in->size : 0;
    unsigned char *buf = malloc(REC_FIXED + tlen);
    if (!buf)
        return NULL;
    unsigned char *p = buf;
    *p++ = REC_VERSION;
    kv_put32(p, in->mode);  p += 4;
    kv_put32(p, in->nlink); p += 4;
    kv_put32(p, in->uid);   p += 4;
    kv_put32(p, in->gid);   p += 4;
    kv_put64(p, in->size);  p += 8;
    kv_put64(p, in->used);  p += 8;
    kv_put64(p, in->rdev);  p += 8;
    p = put_ts(p, &in->atime);
    p = put_ts(p, &in->mtime);
    p = put_ts(p, &in->ctime);
    kv_put64(p, in->parent);   p += 8;
    kv_put64(p, in->next_seq); p += 8;
    if (tlen)
        memcpy(p, in->target, tlen);
    *len = REC_FIXED + tlen;
    return (char *)buf;
}

int kv_inode_decode(const char *buf, size_t len, struct kv_inode *in)
{
    const unsigned char *p = (const unsigned char *)buf;
    memset(in, 0, sizeof *in);
    if (len < REC_FIXED || p[0] != REC_VERSION)
        return EIO;
    p++;
    in->mode = kv_get32(p);  p += 4;
    in->nlink = kv_get32(p); p += 4;
    in->uid = kv_get32(p);   p += 4;
    in->gid = kv_get32(p);   p += 4;
    in->size = kv_get64(p);  p += 8;
    in->used = kv_get64(p);  p += 8;
    in->rdev = kv_get64(p);  p += 8;
    p = get_ts(p, &in->atime);
    p = get_ts(p, &in->mtime);
    p = get_ts(p, &in->ctime);
    in->parent = kv_get64(p);   p += 8;
    in->next_seq = kv_get64(p); p += 8;
    if (S_ISLNK(in->mode)) {
        if (len - REC_FIXED != in->size)
            return EIO;
        in->target = malloc(in->size + 1);
        if (!in->target)
            return ENOMEM;
        memcpy(in->target, p, in->size);
        in->target[in->size] = '\0';
    }
    return 0;
}

void kv_inode_free(struct kv_inode *in)
{
    free(in->target);
    in->target = NULL;
}

int kv_kcerr(KCDB *db)
{
    /* A failed pwrite leaves its errno: a full disk is ENOSPC, not EIO. */
    int sys = errno;
    switch (kcdbecode(db)) {
    case KCESUCCESS: return 0;
    case KCENOREC:   return ENOENT;
    case KCEDUPREC:  return EEXIST;
    case KCENOPERM:  return EROFS;
    case KCEINVALID: return EINVAL;
    case KCESYSTEM:  return sys == ENOSPC || sys == EDQUOT ? ENOSPC : EIO;
    default:         return EIO;
    }
}

int kv_kcfail(KCDB *db)
{
    int err = kv_kcerr(db);
    return err == ENOSPC ? ENOSPC : EIO;
}

int kv_check_name(const char *name, size_t *len)
{
    if (!name)
        return EINVAL;
    size_t n = strnlen(name, KV_NAME_MAX + 1);
    if (n == 0)
        return EINVAL;
    if (n > KV_NAME_MAX)
        return ENAMETOOLONG;
    if (memchr(name, '/', n) || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return EINVAL;
    if (len)
        *len = n;
    return 0;
}

void kv_now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

void kv_attr_from(kv_ino ino, const struct kv_inode *in, struct kv_attr *a)
{
    memset(a, 0, sizeof *a);
    a->ino = ino;
    a->mode = in->mode;
    a->nlink = in->nlink;
    a->uid = in->uid;
    a->gid = in->gid;
    a->size = in->size;
    a->used = in->used;
    a->rdev = in->rdev;
    a->atime = in->atime;
    a->mtime = in->mtime;
    a->ctime = in->ctime;
}
