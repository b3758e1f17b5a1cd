/* nlm_cb.h: one-way calls from tarnfsd to a client's lock manager
 * (GRANTED_MSG for a blocked lock that was granted, the *_RES answers to
 * *_MSG calls) and to the local rpc.statd (SM_MON, SM_UNMON).  Callers only queue an encoded message; one sender thread
 * asks the client's rpcbind for its NLM port (UDP, short timeouts) and sends
 * the datagram, so no worker thread ever waits for a client.  The queue is
 * bounded: past it a message is dropped (the Linux client retries a blocked
 * LOCK on its own, and an NLM message over UDP may be lost anyway). */
#ifndef TARNFS_NFSD_NLM_CB_H
#define TARNFS_NFSD_NLM_CB_H

#include <rpc/rpc.h>
#include <stdint.h>
#include <sys/socket.h>

#define NLM_PROG 100021u
#define NLM_VERS 4u
#define NSM_PROG 100024u
#define NSM_VERS 1u

struct nlm_cb;

/* Start the sender with room for queue_max messages (0: 1024).
 * Errors: ENOMEM, errno of pthread_create. */
int nlm_cb_start(unsigned queue_max, struct nlm_cb **out);

/* Stop the thread (a message being sent finishes), drop what is queued, free. */
void nlm_cb_stop(struct nlm_cb *cb);

/* Queue procedure proc of prog/vers with args (encoded now by xargs) to
 * host addr (its port is ignored: rpcbind there is asked for prog/vers on
 * UDP).  Errors: ENOBUFS (queue full), ENOMEM, EINVAL (not encodable). */
int nlm_cb_send(struct nlm_cb *cb, const struct sockaddr_storage *addr, uint32_t prog,
                uint32_t vers, uint32_t proc, xdrproc_t xargs, void *args);

/* Messages sent and dropped so far (tests, stats). */
void nlm_cb_counts(struct nlm_cb *cb, uint64_t *sent, uint64_t *dropped);

#endif
