/* s3.c: the S3 backend (placeholder until the signed libcurl client lands). */
#include "fetch/fetch_impl.h"

#include <errno.h>
#include <stdio.h>

int fetch_s3_open(const char *bucket_and_prefix, const struct fetch_config *cfg,
                  fetch_backend **out, char *err, size_t errlen)
{
    (void)cfg;
    *out = NULL;
    snprintf(err, errlen, "s3://%s: the S3 backend is not built yet", bucket_and_prefix);
    return ENOSYS;
}
