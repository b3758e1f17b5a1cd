/* fetch_impl.h: what the backends share inside fetch/ (not for callers):
 * the stream base, the backend constructors and small helpers. */
#ifndef TARNFS_FETCH_IMPL_H
#define TARNFS_FETCH_IMPL_H

#include "fetch/fetch.h"

#include <openssl/evp.h>
#include <stdatomic.h>

struct fetch_stream_methods {
    /* Same contract as fetch_read. */
    ssize_t (*read)(fetch_stream *s, void *buf, size_t cap);
    void (*close)(fetch_stream *s);
};

/* Base of every stream ("subclasses" put this first). */
struct fetch_stream {
    const struct fetch_stream_methods *m;
    char key[1024];                /* for the fault hook and messages */
    atomic_bool cancelled;         /* fetch_stream_cancel */
    bool stall_checked;            /* the stall fault was looked up */
    unsigned reads;                /* reads so far (the stallmid fault) */
    unsigned stall_timeout_ms;     /* set by fetch_get from the backend */
};

/* Base of every upload ("subclasses" put this first). */
struct fetch_upload {
    const struct fetch_methods *m;
    const struct fetch_put_opts *o;
    EVP_MD_CTX *md;                /* the body's SHA-256, kept by fetch.c */
    char key[1024];                /* for messages */
};

/* fetch_config.stall_timeout_ms when 0. */
#define FETCH_DEFAULT_STALL_MS 60000

/* True once s was cancelled (backends poll it while they wait). */
static inline bool fetch_stream_cancelled(fetch_stream *s)
{
    return atomic_load(&s->cancelled);
}

/* Open a NAS backend on directory dir.  Errors: ENOENT, ENOTDIR, EACCES
 * (message in err). */
int fetch_nas_open(const char *dir, fetch_backend **out, char *err,
                   size_t errlen);

/* fetch_check_source for each backend: what their open checks, short of
 * any I/O beyond local files.  Errors as fetch_check_source. */
int fetch_nas_check(const char *dir, char *err, size_t errlen);
int fetch_s3_check(const char *bucket_and_prefix, const struct fetch_config *cfg,
                   char *err, size_t errlen);

/* Open an S3 backend on bucket[/prefix] (the text after "s3://").
 * Errors: EINVAL (no credentials / bad endpoint), ENOENT (no bucket),
 * EACCES (credentials refused), EIO (message in err). */
int fetch_s3_open(const char *bucket_and_prefix, const struct fetch_config *cfg,
                  fetch_backend **out, char *err, size_t errlen);

/* True if s is exactly 64 hex digits. */
bool fetch_is_sha256_hex(const char *s);

#endif
