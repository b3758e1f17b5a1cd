/* convert_fault.c: runs `tarnfs convert` with an S3 fault hook that fails a window of HTTP attempts, so a test can break an upload on the S3 side after some parts are stored. */
#include "convert/convert.h"
#include "tool/commands.h"
#include "fetch/fetch.h"
#include "util/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* HTTP attempts on keys containing `key` are counted; attempts number
 * first..last (1-based) get an injected 500. */
struct http500_window {
    pthread_mutex_t mu;
    const char *key;
    long first, last, seen;
};

static int window_hook(void *arg, const char *op, const char *key)
{
    struct http500_window *w = arg;
    if (strcmp(op, "http500") != 0 || !strstr(key, w->key))
        return 0;
    pthread_mutex_lock(&w->mu);
    long n = ++w->seen;
    pthread_mutex_unlock(&w->mu);
    return n >= w->first && n <= w->last;
}

/* Usage: convert_fault KEY FIRST LAST convert ARGS...  (the arguments of
 * `tarnfs convert`, starting with the word "convert"). */
int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[4], "convert") != 0) {
        fprintf(stderr, "usage: convert_fault KEY FIRST LAST convert ARGS...\n");
        return 2;
    }
    static struct http500_window w = { .mu = PTHREAD_MUTEX_INITIALIZER };
    w.key = argv[1];
    w.first = strtol(argv[2], NULL, 10);
    w.last = strtol(argv[3], NULL, 10);
    log_setup("tarnfs", 0, LOG_LVL_WARN);
    fetch_set_fault(window_hook, &w);
    int rc = cmd_convert(argc - 4, argv + 4);
    fprintf(stderr, "convert_fault: %ld HTTP attempts on %s, %ld..%ld failed with 500\n",
            w.seen, w.key, w.first, w.last);
    return rc;
}
