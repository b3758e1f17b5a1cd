/* fhandle.c: builds and checks MAC-protected NFS file handles around vfs ids. */
#include "nfsd/fhandle.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
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
        int fd = open(path, O_RDONLY | O_CLOEXEC);
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
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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

/* OpenSSL 3's one-shot HMAC() looks the digest up and builds a context on
 * every call: half of tarnfsd's CPU in READDIRPLUS (bench/profile).  Each
 * thread keeps one keyed context and re-initialises it per handle instead. */
struct mac_ctx {
    EVP_MAC_CTX *ctx;
    const struct fh_key *key;
};

static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static pthread_key_t mac_tls;
static EVP_MAC *mac_hmac;

static void mac_ctx_free(void *p)
{
    struct mac_ctx *m = p;
    EVP_MAC_CTX_free(m->ctx);
    free(m);
}

static void mac_setup(void)
{
    mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (pthread_key_create(&mac_tls, mac_ctx_free) != 0 && mac_hmac) {
        EVP_MAC_free(mac_hmac);
        mac_hmac = NULL;
    }
}

/* This thread's context keyed with key, or NULL (then use one-shot HMAC). */
static EVP_MAC_CTX *mac_context(const struct fh_key *key)
{
    pthread_once(&mac_once, mac_setup);
    if (!mac_hmac)
        return NULL;
    struct mac_ctx *m = pthread_getspecific(mac_tls);
    if (m && m->key == key)
        return EVP_MAC_init(m->ctx, NULL, 0, NULL) ? m->ctx : NULL;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m || !(m->ctx = EVP_MAC_CTX_new(mac_hmac)) ||
            pthread_setspecific(mac_tls, m) != 0) {
            if (m)
                EVP_MAC_CTX_free(m->ctx);
            free(m);
            return NULL;
        }
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    m->key = NULL;
    if (!EVP_MAC_init(m->ctx, key->k, sizeof key->k, params))
        return NULL;
    m->key = key;
    return m->ctx;
}

static void mac(const struct fh_key *key, const uint8_t *p, size_t n,
                uint8_t out[FH_MAC_LEN])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    size_t flen = 0;
    EVP_MAC_CTX *ctx = mac_context(key);
    if (ctx && EVP_MAC_update(ctx, p, n) &&
        EVP_MAC_final(ctx, full, &flen, sizeof full) && flen >= FH_MAC_LEN) {
        memcpy(out, full, FH_MAC_LEN);
        return;
    }
    unsigned len = 0;
    HMAC(EVP_sha256(), key->k, (int)sizeof key->k, p, n, full, &len);
    memcpy(out, full, FH_MAC_LEN);
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

int fh_decode(const struct fh_key *key, const uint8_t *fh, size_t len,
              uint8_t *export_id, struct vfs_id *id)
{
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
