/* clock.h: the one clock the server's time-based decisions read (eviction
 * grace, write-back delay, listing TTL, idle handles, NLM grace, park and
 * connection timeouts), SQLite aSyscall-style: the raw readers sit in a
 * replaceable table (clock_gettime in production), and a process-wide
 * offset, which only grows, is added to both.  A test advances the offset
 * (tclock_advance) instead of sleeping through a grace period; listeners
 * (a housekeeping thread) are told at once, so waits on real deadlines
 * re-evaluate.  Advancing is refused unless the process enabled it
 * (tarnfsd does so only under TARNFS_TEST_CLOCK=1).
 *
 * Not for timestamps that are served or reported (file mtimes, "dirty
 * since", log lines, S3 request dates): those read the real clock.  Real
 * deadlines for condition waits are built from the real clock too; since
 * the offset only grows, "deadline - tclock_mono_ms()" computed here is
 * never longer than the real wait it stands for. */
#ifndef TARNFS_CLOCK_H
#define TARNFS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* The raw readers (milliseconds), replaceable by a test. */
struct tclock_source {
    int64_t (*mono_ms)(void);   /* CLOCK_MONOTONIC */
    int64_t (*wall_ms)(void);   /* CLOCK_REALTIME, since the epoch */
};

/* The longest single advance: a year. */
#define TCLOCK_ADVANCE_MAX_MS (366LL * 24 * 3600 * 1000)

/* Monotonic time in ms as decisions see it: the source's plus the offset. */
int64_t tclock_mono_ms(void);

/* Wall-clock time in ms since the epoch as decisions see it (ages kept
 * across restarts): the source's plus the offset. */
int64_t tclock_wall_ms(void);

/* The offset advanced so far (0 in production), for converting a decision
 * time into real time before it is written to disk. */
int64_t tclock_offset_ms(void);

/* Replace the raw readers (NULL: back to clock_gettime).  For tests; the
 * table is swapped atomically and must outlive its use. */
void tclock_set_source(const struct tclock_source *src);

/* Allow (or again refuse) tclock_advance in this process. */
void tclock_enable_advance(bool on);

/* Whether tclock_advance is allowed in this process. */
bool tclock_advance_enabled(void);

/* Move both clocks forward by ms (1..TCLOCK_ADVANCE_MAX_MS), then call
 * every listener.  Errors: EPERM (not enabled), EINVAL (ms out of range),
 * EOVERFLOW (the offset would pass a century). */
int tclock_advance(int64_t ms);

/* Call fn(arg) after every advance, from the advancing thread, with no
 * lock of the caller's held; fn must not listen or unlisten.  Errors:
 * ENOSPC (TCLOCK_LISTENERS_MAX listeners already). */
#define TCLOCK_LISTENERS_MAX 16
int tclock_listen(void (*fn)(void *), void *arg);

/* Stop calling fn(arg); once this returns it is not running either. */
void tclock_unlisten(void (*fn)(void *), void *arg);

#endif
