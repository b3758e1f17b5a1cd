/* opt.h: command-line option helpers shared by the programs (tarnfs and
 * its subcommands, including the converter's `tarnfs convert`). */
#ifndef TARNFS_OPT_H
#define TARNFS_OPT_H

/* Exit statuses every subcommand uses. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print a clear message for getopt_long's '?' or ':' result c (opterr
 * must be 0 and the optstring start with ':'), naming the offending
 * argument and pointing at --help.  Cannot fail. */
void opt_bad_option(const char *prog, char **argv, int c);

#endif
