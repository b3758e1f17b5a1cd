/* cli.c: the helpers in cli.h shared by the tarnfs subcommands. */
#include "tool/cli.h"
#include "util/conf.h"
#include "util/settings.h"
#include "util/units.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *cli_config_path(void)
{
    const char *env = getenv("TARNFS_CONFIG");
    return env && *env ? env : CONF_DEFAULT_PATH;
}

/* The config file's settings, read once (a CLI process asks once; not
 * request state): its error, and the message for EINVAL. */
static struct vfs_config config;
static bool config_done;
static int config_err;
static char config_msg[512];

int cli_config(const struct vfs_config **out, const char **msg)
{
    if (!config_done) {
        config_done = true;
        config_err = settings_read_known(cli_config_path(), &vfs_settings, &config,
                                         config_msg, sizeof config_msg);
    }
    *out = &config;
    if (msg)
        *msg = config_msg;
    return config_err;
}

int cli_timeout(const char *prog, const char *arg, unsigned *secs)
{
    uint64_t ms;
    if (units_duration_ms(arg, &ms) != 0 || ms < 1000 || ms > 86400000) {
        fprintf(stderr, "%s: --timeout takes a duration from 1s to 1d, such "
                "as 90 or 10m (not '%s')\n", prog, arg);
        return CLI_USAGE;
    }
    *secs = (unsigned)(ms / 1000);
    return 0;
}

const char *cli_cache_dir(const char *prog, const char *opt)
{
    if (opt && *opt)
        return opt;
    const char *env = getenv("TARNFS_CACHE");
    if (env && *env)
        return env;
    const struct vfs_config *c;
    const char *msg;
    int err = cli_config(&c, &msg);
    if (!err && c->cache_dir && c->cache_dir[0])
        return c->cache_dir;
    if (err == EINVAL) {            /* the file is wrong, not missing a line */
        fprintf(stderr, "%s: %s\n", prog, msg);
        return NULL;
    }
    const char *conf = cli_config_path();
    fprintf(stderr, "%s: no cache directory: give --cache DIR, set "
            "TARNFS_CACHE, or set cache = DIR in %s", prog, conf);
    if (err && err != ENOENT)
        fprintf(stderr, " (cannot read it: %s)", strerror(err));
    else if (!err)
        fprintf(stderr, " (it has no cache setting)");
    fputc('\n', stderr);
    return NULL;
}

int cli_open_view(const char *prog, const char *dir, vfs_view **out)
{
    int err = vfs_view_open(dir, out);
    if (err) {
        char msg[PATH_MAX + 96];
        vfs_cache_open_message(dir, false, err, msg, sizeof msg);
        fprintf(stderr, "%s: %s\n", prog, msg);
    }
    return err;
}

void cli_path_error(const char *prog, const char *path, int err)
{
    const char *why;
    switch (err) {
    case EINVAL:
        why = "not an absolute tarnfs path (expected /RUN/path)";
        break;
    case EXDEV:
        why = "a symlink on the way points outside its run";
        break;
    default:
        why = strerror(err);
        break;
    }
    fprintf(stderr, "%s: %s: %s\n", prog, path, why);
}

void cli_mode_string(uint32_t mode, char out[11])
{
    static const char rwx[] = "rwxrwxrwx";
    switch (mode & S_IFMT) {
    case S_IFDIR:  out[0] = 'd'; break;
    case S_IFLNK:  out[0] = 'l'; break;
    case S_IFCHR:  out[0] = 'c'; break;
    case S_IFBLK:  out[0] = 'b'; break;
    case S_IFIFO:  out[0] = 'p'; break;
    case S_IFSOCK: out[0] = 's'; break;
    default:       out[0] = '-'; break;
    }
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (0400u >> i)) ? rwx[i] : '-';
    if (mode & S_ISUID)
        out[3] = (mode & S_IXUSR) ? 's' : 'S';
    if (mode & S_ISGID)
        out[6] = (mode & S_IXGRP) ? 's' : 'S';
    if (mode & S_ISVTX)
        out[9] = (mode & S_IXOTH) ? 't' : 'T';
    out[10] = '\0';
}

void cli_format_time(struct timespec t, char *out, size_t cap)
{
    struct tm tm;
    time_t sec = t.tv_sec;
    char base[40];
    gmtime_r(&sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, cap, "%s.%09ld +0000", base, (long)t.tv_nsec);
}
