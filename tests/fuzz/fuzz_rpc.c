/* fuzz_rpc.c: libFuzzer target: one RPC call record (as one UDP datagram
 * or one TCP record carries it) into the real dispatcher, nfsd_handle_call,
 * over a real writable vfs, so NFS and MOUNT handlers run.
 *
 * Input: byte 0 picks the transport (bit 0: TCP, else UDP; bit 1: the
 * caller is 127.0.0.2, else 127.0.0.1); the rest is the call record
 * (xid, CALL, rpcvers, prog, vers, proc, cred, verf, args). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nfsd/nfsd.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_rpc_server();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nfsd *srv = fuzz_rpc_server();
    if (size < 1)
        return 0;
    bool tcp = data[0] & 1;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(800) };
    peer.sin_addr.s_addr = htonl(data[0] & 2 ? 0x7f000002 : 0x7f000001);
    /* A copy of exactly the record's size, so ASan sees any over-read. */
    uint8_t *rec = malloc(size - 1 ? size - 1 : 1);
    if (!rec)
        return 0;
    memcpy(rec, data + 1, size - 1);
    struct rpc_call_in call = {
        .data = rec, .len = size - 1,
        .peer = (const struct sockaddr *)&peer, .peer_len = sizeof peer,
        .is_tcp = tcp,
        .max_reply = tcp ? RPC_MAX_RECORD + NFSD_MAX_IO : RPC_UDP_MAX_REPLY,
        .may_park = false,
    };
    struct rpc_reply_out reply = { 0 };
    nfsd_handle_call(srv, &call, &reply);
    if (reply.buf && !tcp && reply.len + reply.tail_len > RPC_UDP_MAX_REPLY)
        abort();    /* a UDP reply the transport would have to drop */
    if (getenv("FUZZ_RPC_SHOW") && reply.buf && reply.len >= 28) {
        /* xid, REPLY, accepted, verifier (2 words), accept_stat, status */
        const uint8_t *r = reply.buf + RPC_REPLY_HEADROOM;
        uint32_t w[7];
        memcpy(w, r, sizeof w);
        fprintf(stderr, "fuzz_rpc: xid %u: accept_stat %u, status %u, %zu bytes\n",
                ntohl(w[0]), ntohl(w[5]), ntohl(w[6]), reply.len + reply.tail_len);
    }
    free(reply.buf);
    free(reply.tail);
    free(rec);
    return 0;
}
