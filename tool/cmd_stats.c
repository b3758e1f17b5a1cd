/* cmd_stats.c: "tarnfs stats": print the counters of the tarnfsd serving a cache, asked through its control socket, or read from the CACHE/stats file it left. */
#include "tool/cli.h"
#include "tool/commands.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PROG "tarnfs stats"

/* A server that has not rewritten its stats file for this long is taken
 * to be gone (it rewrites it about once a second). */
#define STATS_STALE_SECONDS 10

/* How long a running tarnfsd gets to answer before the file is read. */
#define STATS_ASK_SECONDS 5

static void stats_usage(FILE *out)
{
    fprintf(out,
            "usage: tarnfs stats --cache DIR\n"
            "\n"
            "Print the counters of the tarnfsd serving the cache DIR, as they are\n"
            "now (asked through its control socket); with no tarnfsd running, the\n"
            "last ones it wrote to DIR/stats (rewritten about once a second):\n"
            "  hits            requests that found their run in the cache\n"
            "  misses          requests that waited for their run to be fetched\n"
            "  fetches         tarball downloads started (shared by concurrent\n"
            "                  requests for the same run)\n"
            "  fetch_failures  downloads or ingests that failed\n"
            "  bytes_fetched   bytes read from the backend\n"
            "  evictions       runs evicted to stay under the cache limit\n"
            "  runs_cached     runs in the cache now\n"
            "  bytes_cached    their size in bytes\n"
            "  index_fetches   index sidecars asked for (index-first runs)\n"
            "  range_fetches   member byte ranges fetched for reads\n"
            "  range_bytes     their bytes (also in bytes_fetched)\n"
            "  data_evictions  runs whose file data was dropped to make room\n"
            "                  (names kept; data fetched again on read)\n"
            "  bytes_dropped   file data bytes dropped so (also a run's own\n"
            "                  oldest chunks, while it is read)\n"
            "Counters start at zero when tarnfsd starts.  The last lines say\n"
            "when the file was written and whether that tarnfsd still runs.\n"
            "\n"
            "options:\n"
            "  -c, --cache DIR   the cache directory (default $TARNFS_CACHE)\n"
            "  -h, --help        this help\n");
}

/* Print the "key=value" pairs of text, separated by sep, then when they
 * were taken and whether that server still runs. */
static void print_pairs(char *text, const char *sep)
{
    long long updated = 0;
    long pid = 0;
    char *save = NULL;
    for (char *kv = strtok_r(text, sep, &save); kv;
         kv = strtok_r(NULL, sep, &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq = '\0';
        if (strcmp(kv, "updated") == 0)
            updated = atoll(eq + 1);
        else if (strcmp(kv, "pid") == 0)
            pid = atol(eq + 1);
        else
            printf("%-15s %s\n", kv, eq + 1);
    }
    time_t now = time(NULL);
    char when[64] = "unknown";
    if (updated > 0) {
        struct tm tm;
        time_t t = (time_t)updated;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("%-15s %s (%lld s ago)\n", "updated", when,
           updated > 0 ? (long long)now - updated : -1LL);
    bool alive = pid > 0 && kill((pid_t)pid, 0) == 0 &&
                 (long long)now - updated <= STATS_STALE_SECONDS;
    printf("%-15s %s (pid %ld)\n", "server", alive ? "running" : "not running",
           pid);
}

/* Print the server counters, live or from CACHE/stats; see commands.h. */
int stats_print_server(const char *prog, const char *dir, bool missing_ok)
{
    char live[4096];
    if (vfs_request_stats(dir, STATS_ASK_SECONDS, live, sizeof live) == 0) {
        print_pairs(live, " ");
        return 0;
    }
    char path[PATH_MAX];
    vfs_stats_path(dir, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && missing_ok) {
            printf("%-15s none (no tarnfsd has served this cache yet)\n", "server");
            return 0;
        }
        if (errno == ENOENT) {
            fprintf(stderr, "%s: %s has no stats file: no tarnfsd has served "
                    "this cache yet\n", prog, dir);
            return ENOENT;
        }
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return EIO;
    }
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    print_pairs(text, "\n");
    return 0;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cache_opt = optarg;
            break;
        case 'h':
            stats_usage(stdout);
            return CLI_OK;
        default:
            opt_bad_option(PROG, argv, c);
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", PROG,
                argv[optind]);
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s: %s\n", PROG, dir,
                stat(dir, &st) != 0 ? strerror(errno) : "not a directory");
        return CLI_FAIL;
    }
    return stats_print_server(PROG, dir, false) ? CLI_FAIL : CLI_OK;
}
