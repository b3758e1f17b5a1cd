/* crashpt.h: numbered crash points for kill -9 tests: a process dies by
 * SIGKILL at the Nth pass of a named step (ingest, write-back, eviction),
 * so a test can crash it at every step in turn and check what a restart
 * finds.  Off (one relaxed load per pass) unless TARNFS_CRASH is set. */
#ifndef TARNFS_CRASHPT_H
#define TARNFS_CRASHPT_H

/* Mark one pass of the crash point name (a static string such as
 * "publish-renamed").  The environment is read at the first call:
 *   TARNFS_CRASH=NAME:N[,NAME:N...]  raise SIGKILL at the Nth pass of NAME
 *                                    (N >= 1; no :N means the first pass);
 *   TARNFS_CRASH_TRACE=FILE          append "NAME N\n" for every pass, so a
 *                                    test can list the steps a run passes.
 * Never returns when the process is to die; otherwise no effect, no error. */
void crash_point(const char *name);

#endif
