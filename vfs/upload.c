/* upload.c: a run pushed as a tarball (kv_export) straight into a backend upload, for write-back and run rename. */
#include "vfs/vfs_internal.h"
#include "util/log.h"
#include "util/tarsuffix.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct push_state {
    fetch_upload *u;
    kv_run *kr;
    uint64_t bytes;
    int err;                    /* the upload's own error, if it failed */
};

static int record_pending(struct push_state *ps)
{
    char hex[65], val[96];
    int err = fetch_upload_sha256(ps->u, hex);   /* fetch's hash: no second pass */
    if (err)
        return err;
    int n = snprintf(val, sizeof val, "%s %llu", hex, (unsigned long long)ps->bytes);
    err = kv_run_setmeta(ps->kr, WB_PENDING, val, (size_t)n);
    if (!err)
        err = kv_run_sync(ps->kr);
    return err;
}

static int push_tar(void *arg, const void *buf, size_t len)
{
    struct push_state *ps = arg;
    ps->bytes += len;
    return ps->err = fetch_upload_write(ps->u, buf, len);
}

int vfs_upload_run(vfs *v, kv_run *kr, const char *top, const char *key,
                   const struct fetch_put_opts *opts, bool pending,
                   struct fetch_objinfo *oi, uint64_t *files)
{
    struct push_state ps = { .kr = kr };
    int err = fetch_upload_begin(v->backend, key, opts, &ps.u);
    if (err)
        return err;
    int sx = tar_suffix_match(key, strlen(key), true, NULL);
    struct kv_export_result res;
    memset(&res, 0, sizeof res);
    err = kv_export(kr, top, sx >= 0 ? tar_suffixes[sx].filter : TAR_FILTER_NONE,
                    push_tar, &ps, &res);
    *files = res.files;
    if (err && !ps.err)
        log_error("vfs: writing run %s as a tarball failed: %s",
                  kv_run_name(kr), res.error);
    if (!err && pending)
        err = record_pending(&ps);
    if (err) {
        fetch_upload_abort(ps.u);
        return err;
    }
    return fetch_upload_commit(ps.u, oi);
}
