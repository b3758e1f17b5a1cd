/* fetch_s3.h: S3-only operations that tools and tests need besides the
 * method table (bucket creation, multipart upload housekeeping). */
#ifndef TARNFS_FETCH_S3_H
#define TARNFS_FETCH_S3_H

#include "fetch/fetch.h"

/* Create bucket (credentials and endpoint as for fetch_open).  Succeeds if
 * we already own it.  Errors: EEXIST (owned by someone else), EACCES,
 * EINVAL, EIO (message in err). */
int fetch_s3_make_bucket(const char *bucket, const struct fetch_config *cfg,
                         char *err, size_t errlen);

/* Called per unfinished multipart upload: key relative to the backend's
 * prefix, and its upload id; nonzero stops. */
typedef int (*fetch_upload_cb)(void *arg, const char *key, const char *upload_id);

/* List the unfinished multipart uploads under the backend's prefix.
 * Errors: EINVAL (not an S3 backend), EACCES, ENOENT, EIO. */
int fetch_s3_list_uploads(fetch_backend *b, fetch_upload_cb cb, void *arg);

/* Abort one multipart upload.  Errors: EINVAL, ENOENT (no such upload),
 * EACCES, EIO. */
int fetch_s3_abort_upload(fetch_backend *b, const char *key, const char *upload_id);

#endif
