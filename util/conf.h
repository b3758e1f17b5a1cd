/* conf.h: the tarnfs.conf line format ("key = value" and "export ..."
 * lines, '#' comments), read one way by tarnfsd and the tarnfs tool. */
#ifndef TARNFS_CONF_H
#define TARNFS_CONF_H

#include <stddef.h>

/* Where both programs look when no config file is named. */
#define CONF_DEFAULT_PATH "/etc/tarnfs/tarnfs.conf"

/* s without its leading and trailing white space: the trailing cut off
 * in place, the result points into s.  Never fails. */
char *conf_trim(char *s);

/* One line with content: key is the setting's name, or "export" for an
 * export line (value: the rest); both trimmed.  Return 0, or an errno
 * with why filled in: the line is then a problem. */
typedef int (*conf_line_fn)(void *arg, unsigned lineno, char *key,
                            char *value, char *why, size_t whylen);

/* Told about each problem line (with problem, reading goes on). */
typedef void (*conf_problem_fn)(void *arg, unsigned lineno, const char *why);

/* Read path, calling fn per line.  Without problem, the first problem
 * stops the read and is the error ("PATH:LINE: why" in err); with it,
 * every problem is reported and counted in *problems (may be NULL), and
 * the read still succeeds.  ENOMEM from fn always stops.  Errors: the
 * errno of opening path ("PATH: reason" in err), fn's, ENOMEM. */
int conf_read(const char *path, conf_line_fn fn, void *arg,
              conf_problem_fn problem, void *parg, unsigned *problems,
              char *err, size_t errlen);

#endif
