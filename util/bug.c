/* bug.c: the report behind BUG_ON (util/bug.h). */
#include "util/bug.h"
#include "util/log.h"

#include <stdlib.h>

bool tarnfs_bug(const char *what, const char *file, int line,
                const char *func)
{
    log_error("BUG: %s at %s:%d (%s); please report it", what, file, line,
              func);
#ifdef TARNFS_DEBUG
    abort();
#endif
    return true;
}
