/* rpc_internal.h: what the transport files share (rpc_server.c: setup and stats, rpc_listener.c: the event loops, rpc_worker.c: the worker pool) and nobody else may use: the limits, the structures, and the calls between them. */
#ifndef TARNFS_NFSD_RPC_INTERNAL_H
#define TARNFS_NFSD_RPC_INTERNAL_H

#include "nfsd/rpc_server.h"
#include "util/clock.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONN_INFLIGHT_MAX  16      /* calls queued or running per connection; more are held */
#define SQUEEZED_REPLY     8192    /* max_reply of a call run while over the memory limit */
#define CONN_PARKED_MAX    256     /* calls parked per connection; more are told JUKEBOX */
#define QUEUE_UDP_MAX      4096    /* beyond this, UDP calls are dropped (clients retry) */
#define READ_CHUNK         65536   /* also the UDP receive buffer: >= RPC_UDP_MAX */
#define READ_SMALL         4096    /* a read that starts between records */
#define READ_BUDGET        (512 * 1024)  /* per wakeup, for fairness between connections */
#define REC_MIN_ALLOC      16384   /* first allocation for a record's bytes */
#define OUT_IOV_MAX        64      /* iovecs per sendmsg of queued replies */
#define LISTENER_SENDS     4       /* sendmsg calls per EPOLLOUT event */
#define WORKER_SENDS       16      /* sendmsg calls a worker makes after queueing */
#define ACCEPT_BACKOFF_MS  500     /* listener not polled this long after EMFILE */
#define LOG_EVERY_MS       60000   /* repeated warnings: at most one per minute */

enum src_kind { SRC_WAKE, SRC_TCP_LISTEN, SRC_UDP, SRC_CONN };

struct src {
    enum src_kind kind;
    int fd;
};

/* One reply record waiting for its socket: buf (record mark + encoded
 * reply), then tail; sent counts the bytes of both already written. */
struct outbuf {
    struct outbuf *next;
    uint8_t *buf, *tail;
    size_t len, tail_len, sent;
};

struct loop;

struct conn {
    struct src src;                 /* first: epoll data points here */
    struct loop *loop;              /* the event loop that owns c for its life */
    atomic_int refs;
    pthread_mutex_t lock;           /* the fields up to the reader state */
    bool dead;                      /* closed by its loop */
    bool broken;                    /* a send failed: shut down, to be closed */
    bool mem_paused;                /* not read: the server is over its memory limit */
    bool sending;                   /* a thread is in sendmsg for c, without the lock */
    int inflight;                   /* calls queued or running */
    int parked;                     /* calls parked (not in inflight: a client's
                                       calls of cached data are still read) */
    size_t queued_in;               /* bytes of those calls' records (and held ones) */
    struct job *held_head, *held_tail;  /* complete calls read past
                                       CONN_INFLIGHT_MAX: not queued, and c
                                       not read, until calls finish */
    struct outbuf *out_head, *out_tail;
    size_t out_bytes;               /* bytes of replies not yet written */
    int64_t out_progress_ms;        /* last write progress, or when output was queued */
    int64_t active_ms;              /* last byte read or written */
    uint32_t events;                /* epoll interest set now */
    struct in6_addr host;           /* peer address, v4 as v4-mapped */
    size_t max_record;              /* of the port it came in on */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Reader state: touched only by the owning loop's thread. */
    uint8_t hdr[4];
    unsigned hdr_have;
    bool in_body, frag_last;
    uint32_t frag_left;
    uint8_t *rec;                   /* grows as bytes arrive, never from the mark alone */
    size_t rec_len, rec_cap;
    struct conn *prev, *next;
};

struct job {
    struct job *next;
    uint8_t *data;
    size_t len, cap;                /* cap: bytes counted against the memory limit */
    struct conn *conn;              /* TCP; NULL for UDP */
    int udp_fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* Parking, guarded by the server's park_lock. */
    struct rpc_server *srv;
    struct job *pprev, *pnext;      /* the parked list, while parked */
    int64_t parked_ms;              /* when first parked, 0 if never */
    bool in_handler;                /* a worker runs the handler on it now */
    bool resumed;                   /* resumed while in the handler */
    bool waiting;                   /* a resume is owed (parked or expired) */
    bool expired;                   /* past park_timeout: to be answered
                                       "retry later", then freed by whichever
                                       of that answer and the resume is last */
    bool answered;                  /* expired and answered */
    int wake_err;
};

/* A warning repeated at most once per LOG_EVERY_MS (under the server's log_lock). */
struct ratelog {
    bool used;
    int64_t last_ms;
    unsigned suppressed;
};

/* One event loop: a thread with its own epoll set and eventfd.  Loop 0
 * also owns the listening and UDP sockets and hands each accepted
 * connection to the loop with the fewest; a connection stays on its loop
 * for life (doc/design.md, "The transport"). */
struct loop {
    struct rpc_server *srv;
    unsigned idx;
    int epfd;
    struct src wake;                /* eventfd: rpc_wake_loop */
    pthread_t thread;
    bool started;
    atomic_bool quit;               /* set by rpc_server_destroy, loop 0 first */
    pthread_mutex_t hand_lock;      /* hand_head */
    struct conn *hand_head;         /* accepted by loop 0, not yet adopted (by next) */
    atomic_uint assigned;           /* connections handed here and not yet closed */
    /* Published for rpc_server_get_stats. */
    atomic_uint st_busy, st_paused;
    /* This loop's thread only. */
    struct conn *conns;
    unsigned nconns, nmem_paused;
    struct job *pend_head, *pend_tail;  /* one read's records, not yet queued */
    unsigned npend;
    uint8_t *scratch;               /* READ_CHUNK bytes */
    int64_t next_tick_ms;
    size_t released_last_tick;
};

/* One client address's connection count (rpc_server.hosts). */
struct hostcount {
    struct in6_addr host;
    unsigned n;
};

struct rpc_server {
    struct rpc_server_config cfg;
    struct rpc_limits lim;          /* cfg.limits with defaults filled in */
    struct src listeners[2], udps[2];   /* in loop 0's epoll set */
    int nsock;                      /* 1 when both ports are the same */
    int port[2];
    size_t max_record[2];
    struct loop *loops;
    unsigned nloops;
    pthread_t *workers;
    unsigned nworkers;
    bool started;
    atomic_bool stopping;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    unsigned qidle;                 /* workers waiting on qcond (under qlock) */
    struct job *qhead, *qtail;
    atomic_size_t qlen;
    pthread_mutex_t park_lock;      /* the parked list and every job's parking fields */
    struct job *parked;             /* parked calls, oldest last */
    unsigned nparked;
    uint64_t parks, park_expired;   /* guarded by park_lock (metrics) */
    /* Connection limits, exact across loops: taken at accept and close only. */
    pthread_mutex_t conn_lock;
    unsigned nconns;                /* TCP connections open, all loops */
    struct hostcount *hosts;        /* per client address, n > 0 */
    size_t nhosts, hosts_cap;
    /* Published for rpc_server_get_stats. */
    atomic_uint st_open;
    atomic_uint_fast64_t st_accepted, st_refused;
    atomic_size_t mem;              /* receive buffers + queued calls + queued replies */
    atomic_size_t released;         /* bytes ever released from mem: progress */
    atomic_bool mem_wait;           /* some loop waits for mem to drop */
    unsigned tick_ms;               /* set at bind */
    int64_t accept_resume_ms;       /* loop 0 only */
    pthread_mutex_t log_lock;       /* the ratelogs */
    struct ratelog log_record, log_accept, log_full, log_host, log_mem, log_stuck;
};

/* Timeouts (idle, reply, park, ticks) read the decision clock: a test
 * that advances it sees them pass; the poll waits computed from it are
 * never longer than real time. */
static inline int64_t now_ms(void)
{
    return tclock_mono_ms();
}

/* Count n more bytes against the memory limit (rpc_limits.memory). */
static inline void mem_add(struct rpc_server *s, size_t n)
{
    atomic_fetch_add(&s->mem, n);
}

/* ---- rpc_listener.c: the event loops ---- */
/* An event loop's thread (arg: its struct loop): epoll on its sockets and
 * connections until its quit flag is set; then it closes them all. */
void *rpc_listener_main(void *arg);
/* Wake loop l from its epoll wait (any thread). */
void rpc_wake_loop(struct loop *l);
/* Release n bytes of the memory limit; wakes every loop if one waits for it. */
void rpc_mem_sub(struct rpc_server *s, size_t n);
/* True when one more call of c may run now: fewer than CONN_INFLIGHT_MAX
 * in flight and fewer than connection_buffer bytes of replies waiting.
 * Caller holds c->lock. */
bool rpc_conn_may_run(const struct rpc_server *s, const struct conn *c);

/* Take as many of c's held calls as may run now (rpc_conn_may_run), each
 * counted in flight, as the list *head..*tail; returns their number.  The
 * caller queues them (rpc_queue_push_list) after dropping c->lock, which
 * it holds. */
unsigned rpc_conn_take_held(const struct rpc_server *s, struct conn *c,
                            struct job **head, struct job **tail);

/* Free a queued reply record and its tail. */
void rpc_outbuf_free(struct outbuf *ob);
/* Drop a reference to c; the last one closes its socket and frees it. */
void rpc_conn_unref(struct conn *c);
/* Set c's epoll interest (in its loop's set) from its state.  Caller holds c->lock. */
void rpc_conn_update_events(struct rpc_server *s, struct conn *c);
/* Write c's queued replies: at most rounds sendmsg calls; caller holds c->lock. */
void rpc_conn_flush(struct rpc_server *s, struct conn *c, int rounds);

/* ---- rpc_worker.c: the worker pool ---- */
/* A worker thread: runs queued jobs through the handler until stopped. */
void *rpc_worker_main(void *arg);
/* Queue the n jobs head..tail (linked by next) for the workers. */
void rpc_queue_push_list(struct rpc_server *s, struct job *head, struct job *tail, unsigned n);
/* Queue one job for the workers. */
void rpc_queue_push(struct rpc_server *s, struct job *j);
/* Send calls parked past park_timeout back to be answered "retry later". */
void rpc_parked_expire(struct rpc_server *s);
/* Free job j: its connection reference, memory count and record. */
void rpc_job_free(struct rpc_server *s, struct job *j);

#endif
