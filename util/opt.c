/* opt.c: the command-line option helpers declared in opt.h. */
#include "util/opt.h"

#include <getopt.h>
#include <stdio.h>

void opt_bad_option(const char *prog, char **argv, int c)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        fprintf(stderr, "%s: option '%s' needs an argument\n", prog, arg);
    else if (optopt)
        fprintf(stderr, "%s: unknown option '-%c'\n", prog, optopt);
    else
        fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
    fprintf(stderr, "Try '%s --help'.\n", prog);
}
