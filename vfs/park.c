/* park.c: the fetch threads (the only threads that wait for the backend)
 * and parked calls: a caller with a park slot gets EINPROGRESS at a wait
 * point instead of waiting, and is called back when the wait is over. */
#include "vfs/vfs_internal.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The slot of the call this thread runs now: set by the caller around one
 * call (vfs_park_begin/end), so it is per call, not per process. */
static _Thread_local struct vfs_park *park_slot;

void vfs_park_begin(struct vfs_park *p)
{
    p->parked = false;
    park_slot = p;
}

void vfs_park_end(void)
{
    park_slot = NULL;
}

struct vfs_park *vfs_park_slot(void)
{
    return park_slot;
}

struct vfs_park *vfs_park_suspend(void)
{
    struct vfs_park *p = park_slot;
    park_slot = NULL;
    return p;
}

void vfs_park_restore(struct vfs_park *p)
{
    park_slot = p;
}

int vfs_park_locked(vfs *v, struct vfs_waiter **list)
{
    struct vfs_park *p = park_slot;
    if (p->parked)
        return EINPROGRESS;     /* already waiting for something else: the
                                   call is run again from the start anyway */
    if (v->cancelled)
        return EAGAIN;
    if (p->resume) {
        struct vfs_waiter *w = malloc(sizeof *w);
        if (!w)
            return EAGAIN;
        w->fn = p->resume;
        w->arg = p->arg;
        w->next = *list;
        *list = w;
    }
    p->parked = true;
    return EINPROGRESS;
}

void vfs_park_wake(struct vfs_waiter *list, int err)
{
    while (list) {
        struct vfs_waiter *next = list->next;
        list->fn(list->arg, err);
        free(list);
        list = next;
    }
}

static void *pool_main(void *arg)
{
    vfs *v = arg;
    pthread_mutex_lock(&v->lock);
    for (;;) {
        while (!v->jobs_head && !v->cancelled) {
            v->pool_idle++;
            pthread_cond_wait(&v->pool_cv, &v->lock);
            v->pool_idle--;
        }
        struct vfs_job *j = v->jobs_head;
        if (!j)
            break;              /* cancelled and nothing left to run */
        v->jobs_head = j->next;
        if (!v->jobs_head)
            v->jobs_tail = NULL;
        v->jobs_n--;
        pthread_mutex_unlock(&v->lock);
        /* A job queued before the cancel still runs: it fails fast, and it
         * is what calls its parked callers back. */
        j->fn(v, j->arg);
        free(j);
        pthread_mutex_lock(&v->lock);
    }
    v->pool_threads--;
    pthread_cond_broadcast(&v->bg_idle);
    pthread_mutex_unlock(&v->lock);
    return NULL;
}

int vfs_pool_submit_locked(vfs *v, void (*fn)(vfs *v, void *arg), void *arg)
{
    if (v->cancelled)
        return ESHUTDOWN;
    struct vfs_job *j = malloc(sizeof *j);
    if (!j)
        return ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    if (v->jobs_tail)
        v->jobs_tail->next = j;
    else
        v->jobs_head = j;
    v->jobs_tail = j;
    v->jobs_n++;
    /* Idle threads take queued jobs; more jobs than idle threads start
     * another thread, up to the bound. */
    if (v->jobs_n > v->pool_idle && v->pool_threads < v->pool_max) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int err = pthread_create(&t, &attr, pool_main, v);
        pthread_attr_destroy(&attr);
        if (err == 0)
            v->pool_threads++;
        else if (v->pool_threads == 0)
            log_error("vfs: cannot start a fetch thread: %s", strerror(err));
        /* With no thread at all the job waits for the next submit. */
    }
    pthread_cond_signal(&v->pool_cv);
    return 0;
}

void vfs_pool_join(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    v->cancelled = true;
    pthread_cond_broadcast(&v->pool_cv);
    while (v->pool_threads)
        pthread_cond_wait(&v->bg_idle, &v->lock);
    /* Jobs no thread ever ran (none could be started): run them here. */
    while (v->jobs_head) {
        struct vfs_job *j = v->jobs_head;
        v->jobs_head = j->next;
        if (!v->jobs_head)
            v->jobs_tail = NULL;
        v->jobs_n--;
        pthread_mutex_unlock(&v->lock);
        j->fn(v, j->arg);
        free(j);
        pthread_mutex_lock(&v->lock);
    }
    pthread_mutex_unlock(&v->lock);
}

void vfs_xfer_begin(vfs *v, struct vfs_xfer *x, fetch_stream *s)
{
    pthread_mutex_lock(&v->lock);
    x->s = s;
    x->prev = NULL;
    x->next = v->xfers;
    if (v->xfers)
        v->xfers->prev = x;
    v->xfers = x;
    if (v->cancelled)
        fetch_stream_cancel(s);
    pthread_mutex_unlock(&v->lock);
}

void vfs_xfer_end(vfs *v, struct vfs_xfer *x)
{
    pthread_mutex_lock(&v->lock);
    if (x->prev) x->prev->next = x->next; else v->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    pthread_mutex_unlock(&v->lock);
}

void vfs_cancel(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    if (!v->cancelled)
        log_info("vfs: stopping fetches");
    v->cancelled = true;
    for (struct vfs_xfer *x = v->xfers; x; x = x->next)
        fetch_stream_cancel(x->s);
    pthread_cond_broadcast(&v->pool_cv);
    pthread_mutex_unlock(&v->lock);
    vfs_pool_join(v);
    /* Whoever still waits (on a listing refresh, or a load run by a caller
     * that blocks) is called back now: nothing calls back after this. */
    struct vfs_waiter *all = NULL;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            while (r->waiters) {
                struct vfs_waiter *w = r->waiters;
                r->waiters = w->next;
                w->next = all;
                all = w;
            }
    for (struct vfs_slot *s = v->slots; s; s = s->next)
        while (s->waiters) {
            struct vfs_waiter *w = s->waiters;
            s->waiters = w->next;
            w->next = all;
            all = w;
        }
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(all, ECANCELED);
}
