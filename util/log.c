/* log.c: the logging facility declared in log.h (stderr or syslog). */
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_to_syslog;
static enum log_level log_max = LOG_LVL_INFO;
static char log_ident[32] = "tarnfs";

void log_setup(const char *ident, int use_syslog, enum log_level max)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_ident, sizeof log_ident, "%s", ident ? ident : "tarnfs");
    log_to_syslog = use_syslog;
    log_max = max;
    if (use_syslog)
        openlog(log_ident, LOG_PID, LOG_DAEMON);
    pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    static const char *const tag[] = { "error", "warning", "info", "debug" };
    char msg[2048];
    va_list ap;

    if (lvl > log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages carry names clients chose (caller names, paths, object
     * keys): a control character becomes '?', so no client can end a
     * line and forge the next one, or send terminal escapes. */
    for (unsigned char *p = (unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (log_to_syslog) {
        syslog(prio[lvl], "%s", msg);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s.%03ld %s: %s: %s\n", when, ts.tv_nsec / 1000000,
            log_ident, tag[lvl], msg);
    pthread_mutex_unlock(&log_lock);
}

int log_limit_take(struct log_limit *l, long long now_ms, unsigned burst,
                   long long interval_ms, unsigned *dropped)
{
    *dropped = 0;
    long long w = atomic_load(&l->window_ms);
    if (now_ms - w >= interval_ms && atomic_compare_exchange_strong(&l->window_ms, &w, now_ms))
        atomic_store(&l->used, 0);
    if (atomic_fetch_add(&l->used, 1) < burst) {
        *dropped = atomic_exchange(&l->dropped, 0);
        return 1;
    }
    atomic_fetch_add(&l->dropped, 1);
    return 0;
}

void log_limited(struct log_limit *l, unsigned burst, long long interval_ms,
                 enum log_level lvl, const char *fmt, ...)
{
    if (lvl > log_max)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned dropped;
    if (!log_limit_take(l, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, burst,
                        interval_ms, &dropped))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (dropped)
        log_msg(lvl, "%s (%u similar messages suppressed)", msg, dropped);
    else
        log_msg(lvl, "%s", msg);
}
