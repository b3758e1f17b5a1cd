/* cli_ingest.h: TRANSITIONAL, for tool/cmd_ingest.c only: kvstore/kvfs.h and cli_open_cache, which it used to get through tool/cli.h.  tool/module.mk force-includes this file into cmd_ingest.c alone; delete the file, that line and its entry in tests/tool/layers.sh once `tarnfs ingest` goes through vfs (vfs_cache_ingest). */
#ifndef TARNFS_CLI_INGEST_H
#define TARNFS_CLI_INGEST_H

#include "kvstore/kvfs.h"
#include "tool/cli.h"

/* Open the cache at dir (with create, writable and created if missing;
 * without, read-only), printing a clear message on failure.  Errors: as
 * kv_cache_open. */
static inline int cli_open_cache(const char *prog, const char *dir,
                                 bool create, kv_cache **out)
{
    int err = create ? kv_cache_open(dir, true, out)
                     : kv_cache_open_readonly(dir, out);
    if (err)
        cli_cache_open_error(prog, dir, create, err);
    return err;
}

#endif
