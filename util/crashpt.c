/* crashpt.c: the crash-point hook (TARNFS_CRASH, TARNFS_CRASH_TRACE) that lets kill -9 tests stop a process at a numbered step. */
#include "util/crashpt.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRASH_RULES_MAX 8
#define CRASH_NAMES_MAX 64
#define CRASH_NAME_LEN  48

/* Per-process, set once at the first pass and then only counted under
 * the lock: passes are rare (a few per ingest, write-back or eviction). */
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t crash_lock = PTHREAD_MUTEX_INITIALIZER;
static bool crash_on;
static int crash_trace_fd = -1;
static struct { char name[CRASH_NAME_LEN]; unsigned long at; } rules[CRASH_RULES_MAX];
static size_t nrules;
static struct { const char *name; unsigned long passes; } seen[CRASH_NAMES_MAX];
static size_t nseen;

static void crash_init(void)
{
    const char *spec = getenv("TARNFS_CRASH");
    const char *trace = getenv("TARNFS_CRASH_TRACE");
    if (trace && *trace)
        crash_trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
                              O_NOFOLLOW, 0644);
    while (spec && *spec && nrules < CRASH_RULES_MAX) {
        size_t len = strcspn(spec, ",");
        char item[CRASH_NAME_LEN + 24];
        if (len < sizeof item) {
            memcpy(item, spec, len);
            item[len] = '\0';
            char *colon = strchr(item, ':');
            unsigned long at = 1;
            if (colon) {
                *colon = '\0';
                at = strtoul(colon + 1, NULL, 10);
            }
            if (*item && strlen(item) < CRASH_NAME_LEN && at >= 1) {
                strcpy(rules[nrules].name, item);
                rules[nrules++].at = at;
            }
        }
        spec += len;
        if (*spec == ',')
            spec++;
    }
    crash_on = nrules > 0 || crash_trace_fd >= 0;
}

void crash_point(const char *name)
{
    pthread_once(&crash_once, crash_init);
    if (!crash_on)
        return;
    pthread_mutex_lock(&crash_lock);
    unsigned long n = 0;
    size_t i;
    for (i = 0; i < nseen; i++)
        if (!strcmp(seen[i].name, name))
            break;
    if (i < nseen)
        n = ++seen[i].passes;
    else if (nseen < CRASH_NAMES_MAX) {
        seen[nseen].name = name;
        n = seen[nseen++].passes = 1;
    }
    if (crash_trace_fd >= 0) {
        char line[CRASH_NAME_LEN + 32];
        int len = snprintf(line, sizeof line, "%s %lu\n", name, n);
        if (len > 0 && (size_t)len < sizeof line &&
            write(crash_trace_fd, line, (size_t)len) != len) {
            /* A test's trace file: nothing to do if it cannot be written. */
        }
    }
    for (i = 0; i < nrules; i++)
        if (n == rules[i].at && !strcmp(rules[i].name, name)) {
            /* No cleanup of any kind: exactly what kill -9 does. */
            kill(getpid(), SIGKILL);
            pause();
        }
    pthread_mutex_unlock(&crash_lock);
}
