/* bug.h: BUG_ON(cond) for broken invariants: logged with file:line; the
 * sanitizer builds (TARNFS_DEBUG) then abort, the release build goes on
 * and the caller answers EIO.  Never for bad input, which is an error
 * return. */
#ifndef TARNFS_BUG_H
#define TARNFS_BUG_H

#include <stdbool.h>

/* Report the broken invariant what at file:line in func (abort in debug
 * builds).  Returns true so BUG_ON can be used in a condition. */
bool tarnfs_bug(const char *what, const char *file, int line,
                const char *func);

/* True (after the report) if cond holds: `if (BUG_ON(x < 0)) return EIO;` */
#define BUG_ON(cond) \
    ((cond) ? tarnfs_bug(#cond, __FILE__, __LINE__, __func__) : false)

#endif
