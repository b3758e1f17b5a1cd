/* clock.c: the clock of time-based decisions (util/clock.h): a replaceable table of raw readers, an atomic offset a test may advance, and the listeners told when it moves. */
#include "util/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

static int64_t real_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_mono_ms(void)
{
    return real_ms(CLOCK_MONOTONIC);
}

static int64_t real_wall_ms(void)
{
    return real_ms(CLOCK_REALTIME);
}

static const struct tclock_source real_source = { real_mono_ms, real_wall_ms };

static _Atomic(const struct tclock_source *) source = &real_source;
static atomic_llong offset_ms;
static atomic_bool advance_on;

/* A century: no test advances this far, and int64 ms never overflows. */
#define OFFSET_MAX_MS (100 * TCLOCK_ADVANCE_MAX_MS)

static pthread_mutex_t listeners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { void (*fn)(void *); void *arg; } listeners[TCLOCK_LISTENERS_MAX];

int64_t tclock_mono_ms(void)
{
    return atomic_load(&source)->mono_ms() + atomic_load(&offset_ms);
}

int64_t tclock_wall_ms(void)
{
    return atomic_load(&source)->wall_ms() + atomic_load(&offset_ms);
}

int64_t tclock_offset_ms(void)
{
    return atomic_load(&offset_ms);
}

void tclock_set_source(const struct tclock_source *src)
{
    atomic_store(&source, src ? src : &real_source);
}

void tclock_enable_advance(bool on)
{
    atomic_store(&advance_on, on);
}

bool tclock_advance_enabled(void)
{
    return atomic_load(&advance_on);
}

int tclock_advance(int64_t ms)
{
    if (!atomic_load(&advance_on))
        return EPERM;
    if (ms <= 0 || ms > TCLOCK_ADVANCE_MAX_MS)
        return EINVAL;
    long long cur = atomic_load(&offset_ms);
    do {
        if (cur > OFFSET_MAX_MS - ms)
            return EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&offset_ms, &cur, cur + ms));
    /* Listeners run under the lock, so one that unlistens knows it is not
     * running any more once tclock_unlisten returns. */
    pthread_mutex_lock(&listeners_lock);
    for (size_t i = 0; i < TCLOCK_LISTENERS_MAX; i++)
        if (listeners[i].fn)
            listeners[i].fn(listeners[i].arg);
    pthread_mutex_unlock(&listeners_lock);
    return 0;
}

int tclock_listen(void (*fn)(void *), void *arg)
{
    int err = ENOSPC;
    pthread_mutex_lock(&listeners_lock);
    for (size_t i = 0; i < TCLOCK_LISTENERS_MAX; i++)
        if (!listeners[i].fn) {
            listeners[i].fn = fn;
            listeners[i].arg = arg;
            err = 0;
            break;
        }
    pthread_mutex_unlock(&listeners_lock);
    return err;
}

void tclock_unlisten(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&listeners_lock);
    for (size_t i = 0; i < TCLOCK_LISTENERS_MAX; i++)
        if (listeners[i].fn == fn && listeners[i].arg == arg) {
            listeners[i].fn = NULL;
            listeners[i].arg = NULL;
            break;
        }
    pthread_mutex_unlock(&listeners_lock);
}
