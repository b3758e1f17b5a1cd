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

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
