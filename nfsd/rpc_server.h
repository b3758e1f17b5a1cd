/* rpc_server.h: ONC RPC transport for tarnfsd: TCP (record marking) and UDP
 * listeners on one or more epoll threads (event loops; each connection lives
 * on one), and a pool of worker threads that run the handler, so one slow
 * call never holds up other clients.  Workers never wait on a socket:
 * replies are queued per connection and written by its event loop.  Every per-client resource (memory, connections) has a limit.  The
 * transport knows nothing of RPC contents; the handler turns a call record
 * into a reply. */
#ifndef TARNFS_NFSD_RPC_SERVER_H
#define TARNFS_NFSD_RPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Largest call record accepted on TCP: a 1 MiB WRITE plus headers.  A
 * longer record drops the connection. */
#define RPC_MAX_RECORD  (1024 * 1024 + 64 * 1024)
#define RPC_UDP_MAX     65536
/* Largest READ/READDIR data in a UDP reply (what FSINFO advertises on UDP),
 * and the largest UDP reply sent: a longer one is dropped, never sent. */
#define RPC_UDP_MAX_DATA  32768
#define RPC_UDP_MAX_REPLY (RPC_UDP_MAX_DATA + 1024)
/* Most event loops (rpc_server_config.loops). */
#define RPC_LOOPS_MAX 64

/* One call, as received.  Valid only during the handler call. */
struct rpc_call_in {
    const uint8_t *data;
    size_t len;
    const struct sockaddr *peer;
    socklen_t peer_len;
    bool is_tcp;
    size_t max_reply;         /* largest reply this transport can carry */
    /* Parking (doc/design.md, "The parked-request path"): a handler that
     * would wait for data may instead set reply->parked; the transport
     * then keeps the call (memory, no thread) until rpc_call_resume(
     * park_token, err) is called exactly once, and runs the handler on it
     * again from scratch with wake_err = err. */
    void *park_token;
    bool may_park;            /* false: too many parked calls; answer "retry
                                 later" instead of parking */
    int wake_err;             /* 0 on the first run */
    bool expired;             /* parked past park_timeout: the handler must
                                 answer "retry later" (JUKEBOX) at once */
    int64_t parked_ms;        /* tclock_mono_ms when the call first
                                 parked; 0: never (for its latency) */
};

/* The reply a handler produces: buf is malloc'd with RPC_REPLY_HEADROOM
 * bytes free in front (for the record mark); len counts the bytes after it.
 * buf == NULL means "send nothing".  tail (NULL or malloc'd, tail_len bytes)
 * is sent right after buf in the same record, so bulk data (READ) goes out
 * from the buffer it was read into, never copied into buf; the transport
 * frees both. */
#define RPC_REPLY_HEADROOM 4
struct rpc_reply_out {
    uint8_t *buf;
    size_t len;
    uint8_t *tail;
    size_t tail_len;
    bool parked;              /* no reply yet: see rpc_call_in.park_token */
};

/* Called (once per parking, from any thread) when what a parked call
 * waited for is there or failed: the call is queued to the workers again.
 * Never fails. */
void rpc_call_resume(void *park_token, int err);

typedef void (*rpc_handler_fn)(void *ctx, const struct rpc_call_in *call,
                               struct rpc_reply_out *reply);

/* Limits; 0 in any field means its default (in brackets). */
struct rpc_limits {
    unsigned max_conns;           /* TCP connections in all [1024] */
    unsigned max_conns_per_host;  /* TCP connections from one address [64] */
    unsigned idle_timeout_ms;     /* close a connection silent this long [15 min];
                                     UINT32_MAX = never */
    unsigned reply_timeout_ms;    /* drop a connection whose queued replies made
                                     no progress for this long [30 s] */
    size_t conn_buffer;           /* per connection: bytes of calls waiting for a
                                     worker, and of replies waiting for the
                                     socket, before it is not read [16 MiB] */
    size_t memory;                /* all receive buffers, queued calls and queued
                                     replies together [256 MiB]; parked calls
                                     count too */
    unsigned park_timeout_ms;     /* a call parked this long is answered "retry
                                     later" (the handler sees expired) [10 s] */
    unsigned max_parked;          /* calls parked at once [4096] */
};

struct rpc_server_config {
    const char *listen;       /* NULL or "": all addresses (v6 dual stack, or v4) */
    int ports[2];             /* 0 = ephemeral; each gets TCP and UDP */
    bool no_udp;              /* TCP only: no UDP socket at all */
    size_t max_record[2];     /* per port: longest TCP call record accepted
                                 (0 = RPC_MAX_RECORD; one port number: the larger) */
    unsigned threads;
    unsigned loops;           /* event loops, 1..RPC_LOOPS_MAX; 0 = 1 */
    struct rpc_limits limits;
    rpc_handler_fn handler;
    void *ctx;
};

struct rpc_server;

/* Bind the sockets (TCP and UDP on each port, UDP on the same number as TCP;
 * no UDP with no_udp).
 * Errors: EADDRINUSE, EACCES, EINVAL (bad listen address), ENOMEM, errno of
 * socket calls; a message is logged. */
int rpc_server_bind(const struct rpc_server_config *cfg, struct rpc_server **out);

/* The actual port number of ports[i] after binding (ephemeral resolved). */
int rpc_server_port(const struct rpc_server *s, int i);

/* Start the event loop and worker threads.  Errors: errno of pthread_create. */
int rpc_server_start(struct rpc_server *s);

/* What the transport is doing, for metrics.  Connection states are
 * counted by each event loop once per tick (at most a second old). */
struct rpc_server_stats {
    unsigned conns_open;          /* TCP connections open */
    unsigned conns_paused;        /*   of those: not read (memory limit) */
    unsigned conns_busy;          /*   of the others: with calls queued,
                                       running or parked, or replies not
                                       yet sent (the rest are idle) */
    uint64_t conns_accepted, conns_refused;   /* since start (limits) */
    unsigned parked;              /* calls parked now */
    uint64_t parks, park_expired; /* since start: calls parked (each time),
                                     and answered "retry later" for parking
                                     past park_timeout */
    size_t memory;                /* transport bytes held (rpc_limits.memory) */
    size_t queued;                /* calls waiting for a worker */
    unsigned loops;               /* event loops */
    unsigned loop_conns[RPC_LOOPS_MAX];   /* connections on each (exact) */
};

/* Fill st (any thread; takes the parking lock briefly). */
void rpc_server_get_stats(struct rpc_server *s, struct rpc_server_stats *st);

/* Stop threads (in-flight calls finish), close sockets, free. */
void rpc_server_destroy(struct rpc_server *s);

#endif
