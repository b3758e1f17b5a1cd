/* fhandle.c: builds and checks MAC-protected NFS file handles around vfs ids. */
#include "nfsd/fhandle.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            return EINVAL;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int fh_key_load(const char *dir, struct fh_key *key)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/handle.key", dir) >= (int)sizeof path)
        return ENAMETOOLONG;
    for (int attempt = 0; attempt < 2; attempt++) {
        /* O_NOFOLLOW: a symlink planted as the key is refused (ELOOP),
         * never read as a key its planter knows (issue 12, 16). */
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            int ret = read_all(fd, key->k, sizeof key->k);
            close(fd);
            return ret;
        }
        if (errno != ENOENT)
            return errno;
        /* Write a temporary then link it in, so a crash never leaves a
         * short key and two starters agree on one key. */
        char tmp[PATH_MAX + 16];
        snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
        uint8_t k[FH_KEY_LEN];
        if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k)
            return EIO;
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return errno;
        int ret = 0;
        if (write(fd, k, sizeof k) != (ssize_t)sizeof k || fsync(fd))
            ret = errno ? errno : EIO;
        close(fd);
        if (!ret && link(tmp, path) && errno != EEXIST)
            ret = errno;
        unlink(tmp);
        if (ret)
            return ret;
    }
    return EIO;
}

/* SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed PRF made for short
 * inputs.  HMAC-SHA256 cost about 3,300 instructions per handle even with a
 * reused context (two SHA-256 blocks plus OpenSSL's EVP layers: 41 % of
 * tarnfsd's instructions in READDIRPLUS); SipHash costs a few hundred. */
static inline uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

#define SIP_ROUND(v0, v1, v2, v3)                                           \
    do {                                                                    \
        v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);      \
        v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                           \
        v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                           \
        v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);      \
    } while (0)

uint64_t fh_siphash24(const uint8_t key[16], const uint8_t *p, size_t n)
{
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t i = full; i < n; i++)
        last |= (uint64_t)p[i] << (8 * (i - full));
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < 4; r++)
        SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The 128-bit tag is two SipHash-2-4 values under the two independent
 * 128-bit halves of the 256-bit key. */
static void mac(const struct fh_key *key, const uint8_t *p, size_t n,
                uint8_t out[FH_MAC_LEN])
{
    uint64_t t[2] = { fh_siphash24(key->k, p, n), fh_siphash24(key->k + 16, p, n) };
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 8; i++)
            out[8 * h + i] = (uint8_t)(t[h] >> (8 * i));
}

size_t fh_encode(const struct fh_key *key, uint8_t export_id,
                 const struct vfs_id *id, uint8_t out[FH_MAX])
{
    size_t idlen = id->len > VFS_ID_MAX ? VFS_ID_MAX : id->len;
    size_t body = 4 + ((idlen + 3) & ~(size_t)3);
    memset(out, 0, FH_MAX);
    out[0] = FH_VERSION;
    out[1] = 0;
    out[2] = export_id;
    out[3] = (uint8_t)idlen;
    memcpy(out + 4, id->b, idlen);
    mac(key, out, body, out + body);
    return body + FH_MAC_LEN;
}

/* ---- the cache of made handles --------------------------------------- */

#define FHC_SHARDS 64
#define FHC_SLOTS  1024         /* per shard */

struct fhc_slot {
    bool used;
    uint8_t body_len;           /* the MAC'ed bytes: header and padded id */
    uint8_t body[4 + VFS_ID_MAX + 3];
    uint8_t mac[FH_MAC_LEN];
};

struct fhc_shard {
    pthread_mutex_t lock;
    struct fhc_slot slot[FHC_SLOTS];
};

struct fh_cache {
    struct fh_key key;
    struct fhc_shard shard[FHC_SHARDS];
};

int fh_cache_new(const struct fh_key *key, struct fh_cache **out)
{
    struct fh_cache *fc = calloc(1, sizeof *fc);
    if (!fc)
        return ENOMEM;
    fc->key = *key;
    for (int i = 0; i < FHC_SHARDS; i++)
        pthread_mutex_init(&fc->shard[i].lock, NULL);
    *out = fc;
    return 0;
}

void fh_cache_free(struct fh_cache *fc)
{
    if (!fc)
        return;
    for (int i = 0; i < FHC_SHARDS; i++)
        pthread_mutex_destroy(&fc->shard[i].lock);
    OPENSSL_cleanse(&fc->key, sizeof fc->key);
    free(fc);
}

/* Where body (n bytes, n >= 4, a multiple of 4) lives: a cheap mix of all
 * of it (FNV-1a over 32-bit words); the slot's bytes are compared whole. */
static uint32_t fhc_hash(const uint8_t *body, size_t n)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w;
        memcpy(&w, body + i, 4);
        h = (h ^ w) * UINT64_C(1099511628211);
    }
    return (uint32_t)(h ^ (h >> 32));
}

size_t fh_cache_encode(struct fh_cache *fc, uint8_t export_id,
                       const struct vfs_id *id, uint8_t out[FH_MAX])
{
    size_t idlen = id->len > VFS_ID_MAX ? VFS_ID_MAX : id->len;
    size_t body = 4 + ((idlen + 3) & ~(size_t)3);
    memset(out, 0, FH_MAX);
    out[0] = FH_VERSION;
    out[1] = 0;
    out[2] = export_id;
    out[3] = (uint8_t)idlen;
    memcpy(out + 4, id->b, idlen);
    uint32_t h = fhc_hash(out, body);
    struct fhc_shard *sh = &fc->shard[h % FHC_SHARDS];
    struct fhc_slot *sl = &sh->slot[(h / FHC_SHARDS) % FHC_SLOTS];
    pthread_mutex_lock(&sh->lock);
    bool hit = sl->used && sl->body_len == body && memcmp(sl->body, out, body) == 0;
    if (hit)
        memcpy(out + body, sl->mac, FH_MAC_LEN);
    pthread_mutex_unlock(&sh->lock);
    if (hit)
        return body + FH_MAC_LEN;
    mac(&fc->key, out, body, out + body);
    pthread_mutex_lock(&sh->lock);
    sl->used = true;
    sl->body_len = (uint8_t)body;
    memcpy(sl->body, out, body);
    memcpy(sl->mac, out + body, FH_MAC_LEN);
    pthread_mutex_unlock(&sh->lock);
    return body + FH_MAC_LEN;
}

int fh_decode(const struct fh_key *key, const uint8_t *fh, size_t len,
              uint8_t *export_id, struct vfs_id *id)
{
    if (len >= 4 + FH_MAC_LEN && len <= FH_MAX && len % 4 == 0 && fh[0] == 1)
        return ESTALE;      /* made before the MAC became SipHash: no longer valid */
    if (len < 4 + FH_MAC_LEN || len > FH_MAX || len % 4 || fh[0] != FH_VERSION ||
        fh[1] != 0 || fh[3] > VFS_ID_MAX)
        return EBADMSG;
    size_t idlen = fh[3];
    size_t body = 4 + ((idlen + 3) & ~(size_t)3);
    if (body + FH_MAC_LEN != len)
        return EBADMSG;
    for (size_t i = 4 + idlen; i < body; i++)
        if (fh[i])
            return EBADMSG;
    uint8_t m[FH_MAC_LEN];
    mac(key, fh, body, m);
    if (CRYPTO_memcmp(m, fh + body, FH_MAC_LEN))
        return ESTALE;
    *export_id = fh[2];
    id->len = (uint8_t)idlen;
    memcpy(id->b, fh + 4, idlen);
    return 0;
}
