/* log.h: one logging facility for every module: stderr (foreground, tools)
 * or syslog (daemon), thread-safe, with levels.  Never pass credentials. */
#ifndef TARNFS_LOG_H
#define TARNFS_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Send messages to syslog (true) or stderr (false) under ident; messages
 * above max are dropped. */
void log_setup(const char *ident, int use_syslog, enum log_level max);

/* Log one printf-style message at level lvl (a newline is added). */
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A rate limit for one kind of message (e.g. refused mounts, which any
 * host can cause at will): at most `burst` messages per `interval_ms`, the
 * rest counted and reported with the next message let through.  A zeroed
 * struct is ready; thread-safe (atomics), no per-request state. */
struct log_limit {
    _Atomic long long window_ms;    /* start of the current interval */
    _Atomic unsigned used;          /* messages let through in it */
    _Atomic unsigned dropped;       /* messages held back since the last one let through */
};

/* True when a message may be logged at now_ms; *dropped is then the number
 * held back before it (to be reported), else 0. */
int log_limit_take(struct log_limit *l, long long now_ms, unsigned burst,
                   long long interval_ms, unsigned *dropped);

/* log_msg through l: at most burst messages per interval_ms; the first
 * one after some were held back ends with "(N similar messages
 * suppressed)". */
void log_limited(struct log_limit *l, unsigned burst, long long interval_ms,
                 enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
