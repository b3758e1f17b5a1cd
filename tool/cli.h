/* cli.h: helpers shared by the tarnfs subcommands: the --cache option,
 * opening the cache's read-only view (vfs_view) with operator-friendly
 * errors, messages for "/RUN/path" arguments, and ls-style formatting.
 * Errors are positive errno values; functions whose contract says so have
 * already printed a message. */
#ifndef TARNFS_CLI_H
#define TARNFS_CLI_H

#include "util/opt.h"
#include "vfs/vfs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The config file the tool reads: $TARNFS_CONFIG, else tarnfsd's default
 * (/etc/tarnfs/tarnfs.conf). */
const char *cli_config_path(void);

/* The config file's settings the tool shares with tarnfsd (vfs_settings:
 * cache, source, S3...), read once into *out (defaults where unset).
 * Errors: as settings_read_known: ENOENT (no file), EINVAL (a bad line;
 * *msg, may be NULL, says "FILE:LINE: why"), EACCES, ENOMEM. */
int cli_config(const struct vfs_config **out, const char **msg);

/* The cache directory: opt if given, else $TARNFS_CACHE, else the config
 * file's `cache` setting (cli_config_path), else NULL after printing "prog:
 * no cache directory" advice naming all three, or "prog: FILE:LINE: why"
 * for a bad value in the file. */
const char *cli_cache_dir(const char *prog, const char *opt);

/* Parse a --timeout value (a duration: "90", "30s", "10m"; 1 s to 1 day)
 * into whole seconds; on junk print "prog: --timeout ..." and return
 * CLI_USAGE, else 0. */
int cli_timeout(const char *prog, const char *arg, unsigned *secs);

/* Open the cache at dir read-only (vfs_view_open: it takes no lock a
 * running tarnfsd needs, so a reading command never turns a served run
 * read-only), printing a clear message on failure (missing, not a cache,
 * permission...).  Errors: as vfs_view_open. */
int cli_open_view(const char *prog, const char *dir, vfs_view **out);

/* Print "prog: path: <why>" for an error from vfs_view_resolve. */
void cli_path_error(const char *prog, const char *path, int err);

/* ls-style mode string ("drwxr-xr-x", with s/t bits) into out[11]. */
void cli_mode_string(uint32_t mode, char out[11]);

/* "2024-10-23 12:34:56.123456789 +0000" (always UTC) into out. */
void cli_format_time(struct timespec t, char *out, size_t cap);

#endif
