/* cmd_cache.c: "tarnfs cache": operator actions on the cache as a whole (ls, evict, stats), one line each in a table. */
#include "tool/cli.h"
#include "tool/commands.h"
#include "vfs/vfs.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "tarnfs cache"

/* What an action gets: the cache directory, the cache's read-only view if
 * the action reads the cache (ls, stats; NULL for the others), its
 * positional arguments and --timeout. */
struct cache_call {
    const char *dir;
    vfs_view *view;
    char **argv;
    unsigned timeout;
};

struct cache_action {
    const char *name;
    int (*run)(const struct cache_call *cc);
    int npos;                   /* positional arguments it takes */
    bool opens_cache;           /* reads the cache (vfs_view) */
    const char *args, *summary;
};

static int cache_ls(const struct cache_call *cc);
static int cache_evict(const struct cache_call *cc);
static int cache_stats(const struct cache_call *cc);
static int cache_resolve(const struct cache_call *cc);

static const struct cache_action actions[] = {
    { "ls",    cache_ls,    0, true,  "",     "list the cached runs: size, files, created, last access, source" },
    { "evict", cache_evict, 1, false, "NAME", "remove run NAME from the cache (never one with unwritten changes)" },
    { "stats", cache_stats, 0, true,  "",     "totals of the cache, and the running server's counters" },
    { "resolve", cache_resolve, 1, false, "NAME", "end a write-back conflict: keep the backend's version" },
};
#define N_ACTIONS (sizeof actions / sizeof actions[0])

static void cache_usage(FILE *out)
{
    fprintf(out, "usage: tarnfs cache <action> --cache DIR [args]\n\nactions:\n");
    for (size_t i = 0; i < N_ACTIONS; i++)
        fprintf(out, "  %-7s %-5s %s\n", actions[i].name, actions[i].args,
                actions[i].summary);
    fprintf(out,
            "\noptions:\n"
            "  -c, --cache DIR     the cache directory\n"
            "  -t, --timeout SECS  evict, resolve: how long to wait for the\n"
            "                      server's answer (default 600)\n"
            "  -h, --help          this help\n"
            "\n"
            "cache evict NAME never drops changes: a run with changes not yet\n"
            "written back is refused (run 'tarnfs flush NAME' first), and so is a\n"
            "run in conflict (see resolve).  While a tarnfsd serves the cache,\n"
            "it evicts the run itself, once no request is using it; otherwise\n"
            "the tool does, and a tarnfsd starting meanwhile waits for it.\n"
            "\n"
            "cache ls prints one line per run: NAME, BYTES (data and metadata\n"
            "stored), FILES (inodes), CREATED (UTC, when it was ingested),\n"
            "LAST-ACCESS (UTC, last reference through tarnfsd, '-' if none)\n"
            "SOURCE (the source version recorded at ingest), PRESENT ('all', or\n"
            "for a run loaded from its index, file data bytes present/total)\n"
            "and DIRTY: '-' for a\n"
            "run with no changes to write back, else how long its oldest change\n"
            "has waited ('5m'), followed by '!CONFLICT' when a write-back found\n"
            "the backend object changed (see resolve).\n"
            "\n"
            "cache resolve NAME, for a run in conflict (its changes are saved in\n"
            "the backend as NAME.conflict-HOST-TIME.tar), asks the running\n"
            "tarnfsd to drop its local copy and serve the backend's version;\n"
            "merge the conflict tarball by hand if its changes are wanted.\n");
}

static void format_utc(struct timespec t, char *out, size_t cap)
{
    struct tm tm;
    time_t sec = t.tv_sec;
    gmtime_r(&sec, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int print_run(void *arg, const struct vfs_view_runinfo *ri)
{
    (void)arg;
    char created[32], last[32] = "-";
    format_utc(ri->created, created, sizeof created);
    if (ri->referenced)
        format_utc(ri->last_reference, last, sizeof last);
    char dirty[1300] = "-";
    if (ri->dirty) {
        long long age = (long long)(time(NULL) - ri->dirty_since.tv_sec);
        if (age < 0)
            age = 0;
        if (age < 120)
            snprintf(dirty, sizeof dirty, "%llds", age);
        else if (age < 7200)
            snprintf(dirty, sizeof dirty, "%lldm", age / 60);
        else
            snprintf(dirty, sizeof dirty, "%lldh", age / 3600);
        if (ri->conflict[0])
            strcat(dirty, "!CONFLICT");
    }
    /* An index-first run: how much of its file data is present. */
    char present[48] = "all";
    if (ri->present < ri->total)
        snprintf(present, sizeof present, "%llu/%llu",
                 (unsigned long long)ri->present,
                 (unsigned long long)ri->total);
    printf("%-40s %14llu %10llu %-20s %-20s %-24s %-21s %s\n", ri->name,
           (unsigned long long)ri->bytes, (unsigned long long)ri->files,
           created, last,
           ri->source_version[0] ? ri->source_version : "-", present, dirty);
    return 0;
}

static int cache_ls(const struct cache_call *cc)
{
    printf("%-40s %14s %10s %-20s %-20s %-24s %-21s %s\n", "NAME", "BYTES",
           "FILES", "CREATED", "LAST-ACCESS", "SOURCE", "PRESENT", "DIRTY");
    int err = vfs_view_runs(cc->view, true, print_run, NULL);
    if (err) {
        fprintf(stderr, "%s ls: listing runs: %s\n", PROG, strerror(err));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int cache_evict(const struct cache_call *cc)
{
    const char *name = cc->argv[0];
    while (*name == '/')
        name++;             /* accept "/NAME" as ls shows it */
    char msg[4096];
    int err = vfs_cache_evict(cc->dir, name, cc->timeout, msg, sizeof msg);
    if (err) {
        fprintf(stderr, "%s evict: %s\n", PROG, msg[0] ? msg : strerror(err));
        return CLI_FAIL;
    }
    printf("%s\n", msg);
    return CLI_OK;
}

static int cache_resolve(const struct cache_call *cc)
{
    const char *name = cc->argv[0];
    while (*name == '/')
        name++;
    char msg[4096];
    int err = vfs_request(cc->dir, name, true, cc->timeout, msg, sizeof msg);
    if (err) {
        fprintf(stderr, "%s resolve: %s\n", PROG, msg[0] ? msg : strerror(err));
        return CLI_FAIL;
    }
    printf("%s\n", msg);
    return CLI_OK;
}

static int cache_stats(const struct cache_call *cc)
{
    struct vfs_view_statfs st;
    int err = vfs_view_statfs(cc->view, &st);
    if (err) {
        fprintf(stderr, "%s stats: %s\n", PROG, strerror(err));
        return CLI_FAIL;
    }
    printf("%-15s %llu\n", "runs", (unsigned long long)st.runs);
    printf("%-15s %llu\n", "bytes_used", (unsigned long long)st.bytes_used);
    printf("%-15s %llu\n", "inodes_used", (unsigned long long)st.inodes_used);
    printf("%-15s %llu\n", "bytes_total", (unsigned long long)st.bytes_total);
    printf("%-15s %llu\n", "bytes_free", (unsigned long long)st.bytes_free);
    /* Hit/miss/fetch/eviction counters exist only in a running tarnfsd. */
    return stats_print_server(PROG " stats", vfs_view_path(cc->view), true) ? CLI_FAIL : CLI_OK;
}

int cmd_cache(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cache", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *cache_opt = NULL;
    unsigned timeout = 600;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 't':
            if (cli_timeout(PROG, optarg, &timeout))
                return CLI_USAGE;
            break;
        case 'h': cache_usage(stdout); return CLI_OK;
        default:  opt_bad_option(PROG, argv, c); return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: expected an action (ls, evict, stats, resolve)\nTry '%s --help'.\n",
                PROG, PROG);
        return CLI_USAGE;
    }
    const struct cache_action *act = NULL;
    for (size_t i = 0; i < N_ACTIONS; i++)
        if (strcmp(argv[optind], actions[i].name) == 0)
            act = &actions[i];
    if (!act) {
        fprintf(stderr, "%s: unknown action '%s'\nTry '%s --help'.\n", PROG,
                argv[optind], PROG);
        return CLI_USAGE;
    }
    int npos = argc - optind - 1;
    if (npos != act->npos) {
        fprintf(stderr, "%s %s: expected %s%s\n", PROG, act->name,
                act->npos ? act->args : "no arguments",
                act->npos ? "" : "");
        return CLI_USAGE;
    }
    const char *dir = cli_cache_dir(PROG, cache_opt);
    if (!dir)
        return CLI_USAGE;
    struct cache_call cc = { .dir = dir, .argv = argv + optind + 1,
                             .timeout = timeout };
    if (act->opens_cache && cli_open_view(PROG, dir, &cc.view) != 0)
        return CLI_FAIL;
    int rc = act->run(&cc);
    vfs_view_close(cc.view);
    return rc;
}
