/* commands.h: the tarnfs tool's subcommands.  Each lives in its own file
 * (cmd_<name>.c) and is listed with one line in tarnfs.c's table.  A
 * subcommand gets argv[0] = its own name, parses its own options (--help
 * included), prints its own errors prefixed "tarnfs <name>: ", and returns
 * the process exit status: 0 ok, 1 failure, 2 bad usage. */
#ifndef TARNFS_COMMANDS_H
#define TARNFS_COMMANDS_H

#include <stdbool.h>

/* tarnfs ingest: stream a tarball (file or stdin) into the cache as one run. */
int cmd_ingest(int argc, char **argv);

/* tarnfs ls: list runs, directories and files of the cache. */
int cmd_ls(int argc, char **argv);

/* tarnfs cat: write a file's bytes to stdout. */
int cmd_cat(int argc, char **argv);

/* tarnfs cache: operate on the cache (ls, evict). */
int cmd_cache(int argc, char **argv);

/* tarnfs convert: turn run directories into tarballs (S3, a NAS dir or in
 * place); see convert/convert.h. */
int cmd_convert(int argc, char **argv);

/* tarnfs index: build the missing run indexes of a collection of tarballs
 * (see conv_index_run in convert/convert.h). */
int cmd_index(int argc, char **argv);

/* tarnfs stats: print the counters a running tarnfsd publishes in CACHE/stats. */
int cmd_stats(int argc, char **argv);

/* tarnfs flush: ask the running tarnfsd to write changed runs back now. */
int cmd_flush(int argc, char **argv);

/* tarnfs test-clock (hidden, tests only): advance the decision clock of a
 * tarnfsd started with TARNFS_TEST_CLOCK=1. */
int cmd_test_clock(int argc, char **argv);

/* Print the counters of the tarnfsd serving dir to stdout: asked live
 * through its control socket, else those it left in dir/stats (and whether
 * it still runs).  With missing_ok, a cache no server has used prints a
 * note; otherwise that is an error (message printed as prog).  Errors:
 * ENOENT, EIO. */
int stats_print_server(const char *prog, const char *dir, bool missing_ok);

#endif
