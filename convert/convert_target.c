/* convert_target.c: where a tarball goes: a file (temporary name, fsync, rename, sidecar), an S3 multipart upload fed by a producer thread, or nowhere (hash only). */
#include "convert/convert_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- test fault: fail the sink after N bytes ---------------------------- */

/* TARNFS_CONVERT_FAIL_AFTER=N makes every target fail with EIO once N tar
 * bytes have gone out, so tests can break an upload in its middle. */
static uint64_t fail_after_bytes(void)
{
    const char *s = getenv("TARNFS_CONVERT_FAIL_AFTER");
    if (!s || !*s)
        return UINT64_MAX;
    return strtoull(s, NULL, 10);
}

/* ---- file target -------------------------------------------------------- */

struct file_sink {
    int fd;
    uint64_t written, fail_at;
};

static int file_sink_write(void *arg, const void *buf, size_t len)
{
    struct file_sink *fs = arg;
    const unsigned char *p = buf;
    if (fs->written + len > fs->fail_at)
        return EIO;
    while (len > 0) {
        ssize_t n = write(fs->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += n;
        len -= (size_t)n;
        fs->written += (uint64_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static char *path_join(const char *dir, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", dir, name) < 0)
        return NULL;
    return s;
}

/* Writes a small file atomically (temp, fsync, rename). */
static int write_small_file(const char *dir, const char *name, const char *text,
                            char *err, size_t errlen)
{
    char *tmp = NULL, *final = path_join(dir, name);
    if (!final || asprintf(&tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid()) < 0) {
        free(final);
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(rc));
        goto out;
    }
    struct file_sink fs = { .fd = fd, .fail_at = UINT64_MAX };
    rc = file_sink_write(&fs, text, strlen(text));
    if (!rc && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && !rc)
        rc = errno;
    if (!rc && rename(tmp, final) != 0)
        rc = errno;
    if (rc) {
        snprintf(err, errlen, "cannot write %s: %s", final, strerror(rc));
        unlink(tmp);
    }
out:
    free(tmp);
    free(final);
    return rc;
}

int conv_target_file(const struct conv_job *job, const char *dir,
                     const char *name, struct conv_tar_result *res,
                     char *err, size_t errlen)
{
    res->tix = NULL;
    char *tmp = NULL, *final = path_join(dir, name), *sidecar = NULL;
    if (!final || asprintf(&tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid()) < 0 ||
        asprintf(&sidecar, "%s.sha256", name) < 0) {
        free(final);
        free(tmp);
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(rc));
        goto out;
    }
    struct file_sink fs = { .fd = fd, .fail_at = fail_after_bytes() };
    rc = conv_tar_write(job->run_path, job->top, job->tree, job->comp,
                        file_sink_write, &fs, true, job->index, job->ctr, job->cancel,
                        res, err, errlen);
    if (rc == ENOSPC || rc == EDQUOT)
        snprintf(err, errlen, "%s writing %s (removed it; the run is untouched)",
                 strerror(rc), tmp);
    if (!rc && fsync(fd) != 0) {
        rc = errno;
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(rc));
    }
    if (close(fd) != 0 && !rc) {
        rc = errno;
        snprintf(err, errlen, "close %s: %s", tmp, strerror(rc));
    }
    if (rc) {
        unlink(tmp);
        goto out;
    }
    /* A sidecar left from an older tarball must not vouch for the new one
     * if we crash between the two renames (nor its index describe it). */
    char *old_sidecar = path_join(dir, sidecar);
    if (old_sidecar) {
        unlink(old_sidecar);
        free(old_sidecar);
    }
    char *iname = conv_index_name(name), *old_index = iname ? path_join(dir, iname) : NULL;
    if (old_index)
        unlink(old_index);
    free(old_index);
    free(iname);
    if (rename(tmp, final) != 0) {
        rc = errno;
        snprintf(err, errlen, "rename %s to %s: %s", tmp, final, strerror(rc));
        unlink(tmp);
        goto out;
    }
    char line[256];
    snprintf(line, sizeof line, "%s  %s\n", res->sha256_hex, name);
    rc = write_small_file(dir, sidecar, line, err, errlen);
    if (!rc && (rc = fsync_dir(dir)) != 0)
        snprintf(err, errlen, "fsync directory %s: %s", dir, strerror(rc));
    /* The index last: it names the tarball as fetch sees it now. */
    if (!rc && res->tix) {
        struct fetch_objinfo oi;
        rc = conv_nas_info(dir, name, &oi, err, errlen);
        if (!rc && oi.size != res->tar_bytes) {
            rc = EBUSY;
            snprintf(err, errlen, "%s/%s changed under us (%llu bytes, wrote %llu)", dir, name,
                     (unsigned long long)oi.size, (unsigned long long)res->tar_bytes);
        }
        if (!rc) {
            struct tix_source src = { .size = res->tar_bytes };
            memcpy(src.version, oi.version, sizeof src.version);
            memcpy(src.sha256, res->sha256_hex, sizeof src.sha256);
            rc = conv_index_store(NULL, dir, name, res->tix, &src, NULL, err, errlen);
        }
    }
out:
    tix_writer_free(res->tix);
    res->tix = NULL;
    free(tmp);
    free(final);
    free(sidecar);
    return rc;
}

/* ---- hash-only target --------------------------------------------------- */

static int null_sink_write(void *arg, const void *buf, size_t len)
{
    (void)arg; (void)buf; (void)len;
    return 0;
}

int conv_target_hash(const struct conv_job *job, struct conv_tar_result *res,
                     char *err, size_t errlen)
{
    struct conv_counters scratch = { 0 };
    return conv_tar_write(job->run_path, job->top, job->tree, job->comp,
                          null_sink_write, NULL, true, job->index, &scratch, job->cancel,
                          res, err, errlen);
}

/* ---- S3 target: libarchive pushes straight into the upload -------------- */

struct upload_sink {
    fetch_upload *u;
    uint64_t pushed, fail_at;
    int err;                /* the upload's own error, if it failed */
};

static int upload_sink_write(void *arg, const void *buf, size_t len)
{
    struct upload_sink *us = arg;
    if (us->pushed + len > us->fail_at)
        return EIO;
    us->pushed += len;
    return us->err = fetch_upload_write(us->u, buf, len);
}

static void upload_failed(const char *key, int rc, char *err, size_t errlen)
{
    snprintf(err, errlen, "upload of %s failed: %s%s", key, strerror(rc),
             rc == EACCES ? " (check the credentials)" :
             rc == ENOENT ? " (does the bucket exist?)" : "");
}

int conv_target_s3(const struct conv_job *job, fetch_backend *b,
                   const char *key, struct conv_tar_result *res,
                   char *err, size_t errlen)
{
    /* The archive is written on this thread, into the upload's part
     * buffers; the parts go out on the upload's own threads meanwhile.
     * fetch hashes the body itself and reports it: one pass saved. */
    res->tix = NULL;
    struct fetch_put_opts po = { .part_size = job->part_size, .size_hint = job->size_hint };
    struct upload_sink us = { .fail_at = fail_after_bytes() };
    struct fetch_objinfo oi;
    memset(&oi, 0, sizeof oi);
    int rc = fetch_upload_begin(b, key, &po, &us.u);
    if (rc) {
        upload_failed(key, rc, err, errlen);
        return rc;
    }
    rc = conv_tar_write(job->run_path, job->top, job->tree, job->comp,
                        upload_sink_write, &us, false, job->index, job->ctr, job->cancel,
                        res, err, errlen);
    if (rc) {
        fetch_upload_abort(us.u);
        if (us.err)
            upload_failed(key, us.err, err, errlen);
        goto out;
    }
    if ((rc = fetch_upload_commit(us.u, &oi))) {
        upload_failed(key, rc, err, errlen);
        goto out;
    }
    /* fetch computed the SHA-256 of what it stored (x-amz-meta-sha256). */
    if (strlen(oi.sha256) != 64) {
        rc = EPROTO;
        snprintf(err, errlen, "%s: the upload reported no SHA-256", key);
        goto out;
    }
    memcpy(res->sha256_hex, oi.sha256, 65);
    /* The index after the tarball, naming it by size, ETag and SHA-256. */
    if (res->tix) {
        if (oi.size != res->tar_bytes) {
            rc = EPROTO;
            snprintf(err, errlen, "%s: stored %llu bytes, wrote %llu", key,
                     (unsigned long long)oi.size, (unsigned long long)res->tar_bytes);
            goto out;
        }
        struct tix_source src = { .size = oi.size };
        memcpy(src.version, oi.version, sizeof src.version);
        memcpy(src.sha256, oi.sha256, sizeof src.sha256);
        rc = conv_index_store(b, NULL, key, res->tix, &src, NULL, err, errlen);
    }
out:
    tix_writer_free(res->tix);
    res->tix = NULL;
    return rc;
}

/* ---- recorded SHA-256 ---------------------------------------------------- */

static int parse_sidecar(const char *text, size_t len, char hex[65])
{
    if (len < 64)
        return EPROTO;
    for (int i = 0; i < 64; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return EPROTO;
        hex[i] = c;
    }
    hex[64] = '\0';
    return 0;
}

int conv_recorded_sha256(fetch_backend *b, const char *dir, const char *name,
                         char hex[65], char *err, size_t errlen)
{
    char text[256];
    size_t len = 0;
    char *where = NULL;
    int rc = 0;
    if (!b) {
        if (asprintf(&where, "%s/%s.sha256", dir, name) < 0)
            return ENOMEM;
        int fd = open(where, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            rc = errno;
        } else {
            ssize_t n = read(fd, text, sizeof text - 1);
            rc = n < 0 ? errno : 0;
            len = n > 0 ? (size_t)n : 0;
            close(fd);
        }
    } else {
        struct fetch_objinfo oi;
        if (asprintf(&where, "%s", name) < 0)
            return ENOMEM;
        rc = fetch_stat(b, name, &oi);
        if (!rc && !oi.sha256[0])
            rc = ENOENT;
        if (!rc) {
            len = strlen(oi.sha256);
            memcpy(text, oi.sha256, len + 1);
        }
    }
    if (!rc)
        rc = parse_sidecar(text, len, hex);
    if (rc && rc != ENOENT)
        snprintf(err, errlen, "cannot read the recorded SHA-256 %s: %s", where, strerror(rc));
    free(where);
    return rc;
}
