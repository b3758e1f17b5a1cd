/* nlm_wire.h: the NLM pieces the libnfs raw client lacks, over libtirpc in
 * their own file (libnfs's and libtirpc's headers do not mix): FREE_ALL and
 * LOCK_MSG calls, and a stand-in for a client's lock manager that takes
 * the server's callbacks, registered with the real rpcbind. */
#ifndef TARNFS_TESTS_NFS_NLM_WIRE_H
#define TARNFS_TESTS_NFS_NLM_WIRE_H

#include <stdbool.h>
#include <stdint.h>

/* NLM FREE_ALL(name) to 127.0.0.1:port over TCP; 0 or -1. */
int wire_free_all(int port, const char *name);

/* NLM LOCK_MSG (non-blocking, exclusive) to 127.0.0.1:port over UDP, as a
 * one-way message; 0 or -1. */
int wire_lock_msg(int port, const char *caller, const void *fh, unsigned fhlen, int32_t svid,
                  uint64_t offset, uint64_t len);

/* NLM SHARE (unshare false) or UNSHARE of fh for (caller, owner handle
 * "share-oh") to 127.0.0.1:port over TCP, access and deny bits 1 read,
 * 2 write; the nlm4_stats answer, or -1. */
int wire_share(int port, bool unshare, const char *caller, const void *fh, unsigned fhlen,
               unsigned access, unsigned deny);

/* Tell the local rpc.statd (through rpcbind) that host mon_name
 * restarted with state, as its sm-notify would: NSM SM_NOTIFY; 0 or -1. */
int wire_sm_notify(const char *mon_name, int state);

/* A UDP socket on 127.0.0.1 registered with rpcbind as NLM v4 (the
 * client's lock manager); the fd, or -1. */
int wire_lockd_open(void);

/* Unregister and close it. */
void wire_lockd_close(int fd);

/* A call that reached the stand-in lock manager. */
struct wire_call {
    uint32_t proc;
    int32_t status;             /* _RES calls: the status */
    char caller[64];            /* GRANTED_MSG: the lock's caller name */
    int32_t svid;
    uint64_t offset, len;
    bool exclusive;
    unsigned fhlen;
};

/* Wait up to ms for one NLM call on fd and decode it; 0 or -1 (none). */
int wire_lockd_wait(int fd, int ms, struct wire_call *out);

#endif
