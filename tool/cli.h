/* cli.h: helpers shared by the tarnfs subcommands: the --cache option,
 * opening the cache with operator-friendly errors, resolving "/RUN/path"
 * arguments, and ls-style formatting.  Errors are positive errno values;
 * functions whose contract says so have already printed a message. */
#ifndef TARNFS_CLI_H
#define TARNFS_CLI_H

#include "kvstore/kvfs.h"
#include "util/opt.h"

#include <stdbool.h>
#include <stddef.h>

/* The cache directory: opt if given, else $TARNFS_CACHE, else NULL after
 * printing "prog: no cache directory" advice. */
const char *cli_cache_dir(const char *prog, const char *opt);

/* Open the cache at dir, printing a clear message on failure (missing, not
 * a cache, permission...).  With create, writable (created if missing);
 * without, read-only: it takes no lock a running tarnfsd needs, so a
 * reading command never turns a served run read-only.  Errors: as
 * kv_cache_open. */
int cli_open_cache(const char *prog, const char *dir, bool create,
                   kv_cache **out);

/* A resolved "/RUN/path" argument.  run is NULL for "/" (the list of runs). */
struct cli_target {
    kv_run *run;
    char run_name[KV_RUNNAME_MAX + 1];
    kv_ino ino;
};

/* Resolve an absolute tarnfs path ("/" or "/RUN[/path]"): the longest
 * leading part naming a published run is the run, the rest is walked
 * inside it, following symlinks in the middle of the path and, if
 * follow_last, at its end.  Symlinks are followed only within the run
 * (an absolute target gives EXDEV).  Prints nothing.  Errors: EINVAL (not
 * absolute), ENOENT, ENOTDIR, ELOOP, EXDEV, EIO, ENOMEM. */
int cli_resolve(kv_cache *c, const char *path, bool follow_last,
                struct cli_target *t);

/* Release what cli_resolve opened. */
void cli_target_close(struct cli_target *t);

/* Print "prog: path: <why>" for an error from cli_resolve. */
void cli_path_error(const char *prog, const char *path, int err);

/* ls-style mode string ("drwxr-xr-x", with s/t bits) into out[11]. */
void cli_mode_string(uint32_t mode, char out[11]);

/* "2024-10-23 12:34:56.123456789 +0000" (always UTC) into out. */
void cli_format_time(struct timespec t, char *out, size_t cap);

#endif
