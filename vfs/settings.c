/* settings.c: the tarnfs.conf rows that fill a struct vfs_config (cache,
 * source, S3, cache sizes, fetching, write-back; util/settings.h): read by
 * tarnfsd inside its own table (nfsd/config.c) and by the tarnfs tool. */
#include "vfs/vfs.h"
#include "util/settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MiB ((uint64_t)1 << 20)
#define TiB ((uint64_t)1 << 40)
#define AT(field) offsetof(struct vfs_config, field)

static int parse_addressing(void *base, const char *v, char *why, size_t whylen)
{
    struct vfs_config *c = base;
    if (strcmp(v, "virtual") && strcmp(v, "path")) {
        snprintf(why, whylen, "want path or virtual");
        return EINVAL;
    }
    c->fetch.virtual_hosted = !strcmp(v, "virtual");
    return 0;
}

static int parse_prefetch(void *base, const char *v, char *why, size_t whylen)
{
    struct vfs_config *c = base;
    if (strcmp(v, "none") && strcmp(v, "whole") && strcmp(v, "auto")) {
        snprintf(why, whylen, "want none, whole or auto");
        return EINVAL;
    }
    c->prefetch_whole = !strcmp(v, "whole");
    c->prefetch_auto = !strcmp(v, "auto");
    return 0;
}

static const struct setting rows[] = {
    { "cache", SET_STRING, AT(cache_dir), 0, 0, 0, NULL, NULL },
    { "source", SET_STRING, AT(source), 0, 0, 0, NULL, NULL },
    { "s3_endpoint", SET_STRING, AT(fetch.s3_endpoint), 0, 0, 0, NULL, NULL },
    { "s3_region", SET_STRING, AT(fetch.region), 0, 0, 0, NULL, NULL },
    { "s3_profile", SET_STRING, AT(fetch.profile), 0, 0, 0, NULL, NULL },
    { "s3_access_key_id", SET_STRING, AT(fetch.access_key), 0, 0, 0, NULL, NULL },
    { "s3_secret_access_key", SET_STRING, AT(fetch.secret_key), 0, 0, SETTING_SECRET,
      NULL, NULL },
    { "s3_session_token", SET_STRING, AT(fetch.session_token), 0, 0, SETTING_SECRET,
      NULL, NULL },
    { "s3_addressing", SET_CUSTOM, AT(fetch.virtual_hosted), 0, 0, 0, parse_addressing,
      NULL },
    { "cache_limit", SET_SIZE, AT(cache_limit_bytes), 0, 0, 0, NULL, NULL },
    { "high_watermark", SET_PERCENT, AT(high_watermark_pct), 1, 100, 0, NULL, NULL },
    { "low_watermark", SET_PERCENT, AT(low_watermark_pct), 1, 100, 0, NULL, NULL },
    { "build_cache", SET_SIZE, AT(build_cache_bytes), MiB, 0, 0, NULL, NULL },
    { "run_cache", SET_SIZE, AT(run_cache_bytes), MiB, TiB, 0, NULL, NULL },
    { "open_runs", SET_UINT, AT(open_runs), 1, 65536, 0, NULL, NULL },
    { "evict_grace", SET_DURATION, AT(evict_grace_ms), 1, 3600000, 0, NULL, NULL },
    /* 0: no snapshots kept (VFS_DIR_CACHE_OFF). */
    { "dir_cache", SET_SIZE, AT(dir_cache_bytes), 0, TiB, SETTING_ZERO_MAX, NULL, NULL },
    { "list_ttl", SET_DURATION, AT(list_ttl_ms), 0, 0, 0, NULL, NULL },
    { "writeback_delay", SET_DURATION, AT(writeback_delay_ms), 1000, 0, 0, NULL, NULL },
    { "run_delete_rename", SET_BOOL, AT(run_delete_rename), 0, 0, 0, NULL, NULL },
    { "max_file_size", SET_SIZE, AT(max_file_size), 1, VFS_MAX_MAX_FILE, 0, NULL, NULL },
    { "prefetch", SET_CUSTOM, AT(prefetch_whole), 0, 0, 0, parse_prefetch, NULL },
    { "prefetch_after", SET_SIZE, AT(prefetch_after), 1, 0, 0, NULL, NULL },
    { "prefetch_whole_below", SET_SIZE, AT(prefetch_whole_below), 0, 0, 0, NULL, NULL },
    { "index_upload", SET_BOOL, AT(index_upload), 0, 0, 0, NULL, NULL },
    { "fetch_threads", SET_UINT, AT(fetch_threads), 1, 256, 0, NULL, NULL },
    { "fetch_stall_timeout", SET_DURATION, AT(fetch.stall_timeout_ms), 100, 0, 0, NULL,
      NULL },
};

const struct setting_table vfs_settings = { rows, sizeof rows / sizeof rows[0] };
