/* rpc_worker.c: the worker pool: the job queue, running the handler on a call, parking and resuming calls, and queueing a TCP reply on its connection. */
#include "nfsd/rpc_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "util/log.h"

/* Queue the n jobs head..tail (linked by next) for the workers. */
void rpc_queue_push_list(struct rpc_server *s, struct job *head, struct job *tail, unsigned n)
{
    pthread_mutex_lock(&s->qlock);
    tail->next = NULL;
    if (s->qtail) s->qtail->next = head; else s->qhead = head;
    s->qtail = tail;
    atomic_fetch_add(&s->qlen, n);
    unsigned wake = s->qidle < n ? s->qidle : n;
    pthread_mutex_unlock(&s->qlock);
    /* Woken after the unlock, and only as many as wait: signalling under
     * the lock put the FUTEX_WAKE inside the critical section and made
     * the woken worker wait for its waker (3-8 us per call; see "What
     * bounds scaling" in doc/design.md).  A worker not yet waiting sees
     * the jobs when it checks qhead under the lock. */
    while (wake--)
        pthread_cond_signal(&s->qcond);
}

void rpc_queue_push(struct rpc_server *s, struct job *j)
{
    rpc_queue_push_list(s, j, j, 1);
}

bool rpc_conn_may_run(const struct rpc_server *s, const struct conn *c)
{
    return c->inflight < CONN_INFLIGHT_MAX && c->out_bytes < s->lim.conn_buffer;
}

unsigned rpc_conn_take_held(const struct rpc_server *s, struct conn *c,
                            struct job **head, struct job **tail)
{
    unsigned n = 0;
    *head = *tail = NULL;
    while (c->held_head && !c->dead && !c->broken && rpc_conn_may_run(s, c)) {
        struct job *j = c->held_head;
        c->held_head = j->next;
        if (!c->held_head)
            c->held_tail = NULL;
        j->next = NULL;
        if (*tail) (*tail)->next = j; else *head = j;
        *tail = j;
        c->inflight++;
        n++;
    }
    return n;
}

/* A worker's reply to a TCP call: queued on the connection and written as
 * far as the socket takes it now; the rest goes out from the event loop. */
static void conn_reply(struct rpc_server *s, struct job *j, struct rpc_reply_out *reply)
{
    struct conn *c = j->conn;
    struct outbuf *ob = NULL;
    if (reply->buf) {
        uint32_t mark = 0x80000000u | (uint32_t)(reply->len + reply->tail_len);
        reply->buf[0] = (uint8_t)(mark >> 24);
        reply->buf[1] = (uint8_t)(mark >> 16);
        reply->buf[2] = (uint8_t)(mark >> 8);
        reply->buf[3] = (uint8_t)mark;
        ob = calloc(1, sizeof *ob);
        if (ob) {
            ob->buf = reply->buf;
            ob->len = reply->len + RPC_REPLY_HEADROOM;
            ob->tail = reply->tail;
            ob->tail_len = reply->tail ? reply->tail_len : 0;
        } else {
            log_error("rpc: out of memory; dropping a reply");
            free(reply->buf);
            free(reply->tail);
        }
    }
    pthread_mutex_lock(&c->lock);
    if (ob && !c->dead && !c->broken) {
        size_t total = ob->len + ob->tail_len;
        if (!c->out_head)
            c->out_progress_ms = now_ms();
        if (c->out_tail) c->out_tail->next = ob; else c->out_head = ob;
        c->out_tail = ob;
        c->out_bytes += total;
        mem_add(s, total);
        ob = NULL;
        rpc_conn_flush(s, c, WORKER_SENDS);  /* until EAGAIN; the rest goes out on EPOLLOUT */
    }
    c->inflight--;
    c->queued_in -= j->cap;
    struct job *hh, *ht;
    unsigned nh = rpc_conn_take_held(s, c, &hh, &ht);
    rpc_conn_update_events(s, c);
    pthread_mutex_unlock(&c->lock);
    if (ob)
        rpc_outbuf_free(ob);
    if (nh)
        rpc_queue_push_list(s, hh, ht, nh);
}

/* A call of c parks (true) or comes back to the work queue (false): a
 * parked call does not count against CONN_INFLIGHT_MAX, so the client's
 * other calls are still read. */
static void conn_park_count(struct rpc_server *s, struct conn *c, bool parking)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->inflight += parking ? -1 : 1;
    c->parked += parking ? 1 : -1;
    struct job *hh = NULL, *ht = NULL;
    unsigned nh = parking ? rpc_conn_take_held(s, c, &hh, &ht) : 0;
    rpc_conn_update_events(s, c);
    pthread_mutex_unlock(&c->lock);
    if (nh)
        rpc_queue_push_list(s, hh, ht, nh);
}

void rpc_job_free(struct rpc_server *s, struct job *j)
{
    if (j->conn)
        rpc_conn_unref(j->conn);
    rpc_mem_sub(s, j->cap);
    free(j->data);
    free(j);
}

static void parked_unlink_locked(struct rpc_server *s, struct job *j)
{
    if (j->pprev) j->pprev->pnext = j->pnext; else s->parked = j->pnext;
    if (j->pnext) j->pnext->pprev = j->pprev;
    j->pprev = j->pnext = NULL;
    s->nparked--;
}

void rpc_call_resume(void *park_token, int err)
{
    struct job *j = park_token;
    struct rpc_server *s = j->srv;
    pthread_mutex_lock(&s->park_lock);
    j->wake_err = err;
    j->waiting = false;
    if (j->in_handler) {            /* the worker that parked it requeues it */
        j->resumed = true;
        pthread_mutex_unlock(&s->park_lock);
        return;
    }
    if (j->expired) {
        /* Answered "retry later" already: free it; or that answer is still
         * queued, and its worker frees it after (waiting is false now). */
        bool answered = j->answered;
        pthread_mutex_unlock(&s->park_lock);
        if (answered)
            rpc_job_free(s, j);
        return;
    }
    parked_unlink_locked(s, j);
    pthread_mutex_unlock(&s->park_lock);
    conn_park_count(s, j->conn, false);
    rpc_queue_push(s, j);
}

/* Listener tick: calls parked past park_timeout go back to the workers to
 * be answered "retry later"; their resume is still owed (and frees them). */
void rpc_parked_expire(struct rpc_server *s)
{
    int64_t now = now_ms();
    struct job *due = NULL;
    pthread_mutex_lock(&s->park_lock);
    for (struct job *j = s->parked, *next; j; j = next) {
        next = j->pnext;
        if (now - j->parked_ms < (int64_t)s->lim.park_timeout_ms)
            continue;
        parked_unlink_locked(s, j);
        j->expired = true;
        s->park_expired++;
        j->next = due;
        due = j;
    }
    pthread_mutex_unlock(&s->park_lock);
    while (due) {
        struct job *j = due;
        due = j->next;
        conn_park_count(s, j->conn, false);
        rpc_queue_push(s, j);
    }
}

static void run_job(struct rpc_server *s, struct job *j)
{
    pthread_mutex_lock(&s->park_lock);
    j->srv = s;
    j->in_handler = true;
    j->resumed = false;
    bool expired = j->expired;
    struct rpc_call_in call = {
        .data = j->data, .len = j->len,
        .peer = (const struct sockaddr *)&j->peer, .peer_len = j->peer_len,
        .is_tcp = j->conn != NULL,
        /* Over the memory limit, replies are kept small (a READ is
         * answered short, a listing in a short page): the calls already
         * read cannot then add a megabyte each to what waits for slow
         * clients. */
        .max_reply = atomic_load(&s->mem) >= s->lim.memory ? SQUEEZED_REPLY
                     : j->conn ? RPC_MAX_RECORD : RPC_UDP_MAX_REPLY,
        .park_token = expired ? NULL : j,
        .may_park = s->nparked < s->lim.max_parked,     /* and per connection, below */
        .wake_err = j->wake_err,
        .expired = expired,
        .parked_ms = j->parked_ms,
    };
    pthread_mutex_unlock(&s->park_lock);
    if (j->conn && call.may_park) {
        pthread_mutex_lock(&j->conn->lock);
        call.may_park = j->conn->parked < CONN_PARKED_MAX;
        pthread_mutex_unlock(&j->conn->lock);
    }
    struct rpc_reply_out reply = { 0 };
    s->cfg.handler(s->cfg.ctx, &call, &reply);
    if (reply.parked && !expired) {
        pthread_mutex_lock(&s->park_lock);
        j->in_handler = false;
        if (j->resumed) {           /* the data came while we were at it */
            pthread_mutex_unlock(&s->park_lock);
            rpc_queue_push(s, j);
            return;
        }
        j->waiting = true;
        if (!j->parked_ms)
            j->parked_ms = now_ms();
        j->pprev = NULL;
        j->pnext = s->parked;
        if (s->parked)
            s->parked->pprev = j;
        s->parked = j;
        s->nparked++;
        s->parks++;
        /* Counted as parked before the lock is dropped: a resume that
         * follows at once counts it back. */
        conn_park_count(s, j->conn, true);
        pthread_mutex_unlock(&s->park_lock);
        return;
    }
    if (j->conn) {
        conn_reply(s, j, &reply);
    } else {
        if (reply.buf && reply.len + reply.tail_len > RPC_UDP_MAX_REPLY) {
            log_debug("rpc: a %zu-byte UDP reply is over %d bytes; not sent",
                      reply.len + reply.tail_len, RPC_UDP_MAX_REPLY);
        } else if (reply.buf) {
            struct iovec iov[2] = {
                { reply.buf + RPC_REPLY_HEADROOM, reply.len },
                { reply.tail, reply.tail_len },
            };
            struct msghdr mh = { .msg_name = &j->peer, .msg_namelen = j->peer_len,
                                 .msg_iov = iov, .msg_iovlen = reply.tail ? 2 : 1 };
            sendmsg(j->udp_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        free(reply.buf);
        free(reply.tail);
    }
    pthread_mutex_lock(&s->park_lock);
    j->in_handler = false;
    /* Answered by park_timeout while its resume is still owed: the resume
     * frees it (the connection reference and memory stay counted). */
    bool keep = expired && j->waiting;
    j->answered = keep;
    pthread_mutex_unlock(&s->park_lock);
    if (!keep)
        rpc_job_free(s, j);
}

void *rpc_worker_main(void *arg)
{
    struct rpc_server *s = arg;
    pthread_setname_np(pthread_self(), "nfsd-worker");    /* top -H, perf --per-thread */
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !atomic_load(&s->stopping)) {
            s->qidle++;
            pthread_cond_wait(&s->qcond, &s->qlock);
            s->qidle--;
        }
        if (atomic_load(&s->stopping)) {
            pthread_mutex_unlock(&s->qlock);
            return NULL;
        }
        struct job *j = s->qhead;
        s->qhead = j->next;
        if (!s->qhead)
            s->qtail = NULL;
        atomic_fetch_sub(&s->qlen, 1);
        pthread_mutex_unlock(&s->qlock);
        run_job(s, j);
    }
}
