/* test_rpc_wire.c: tarnfsd fed hand-made RPC bytes over TCP and UDP: the
 * proper RPC errors for unknown programs, versions and procedures, garbage
 * arguments, bad credentials, fragment reassembly, oversize records, and a
 * server that stays up through all of it. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server.h"

enum { CALL = 0, REPLY = 1, MSG_ACCEPTED = 0, MSG_DENIED = 1 };
enum { SUCCESS = 0, PROG_UNAVAIL = 1, PROG_MISMATCH = 2, PROC_UNAVAIL = 3, GARBAGE_ARGS = 4 };
enum { RPC_MISMATCH = 0, AUTH_ERROR = 1 };

static struct test_server srv;

static void start(void)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_CACHE"), NULL, NULL), 0);
}

static void stop(void)
{
    ck_assert_int_eq(server_stop(&srv), 0);    /* clean exit: nothing crashed */
}

struct call {
    uint32_t w[64];
    int n;
};

static void put(struct call *c, uint32_t v) { c->w[c->n++] = htonl(v); }

/* xid, CALL, rpcvers, prog, vers, proc, cred (flavor, empty), verf (none). */
static void call_header(struct call *c, uint32_t xid, uint32_t rpcvers, uint32_t prog,
                        uint32_t vers, uint32_t proc, uint32_t flavor)
{
    c->n = 0;
    put(c, xid); put(c, CALL); put(c, rpcvers);
    put(c, prog); put(c, vers); put(c, proc);
    put(c, flavor); put(c, 0);
    put(c, 0); put(c, 0);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 20, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static int recv_all(int fd, void *p, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = recv(fd, (char *)p + have, n - have, 0);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return 0;
}

/* Read one reply record; returns its words (host order) count, -1 on EOF. */
static int read_reply(int fd, uint32_t *out, int max)
{
    uint32_t mark;
    if (recv_all(fd, &mark, 4))
        return -1;
    mark = ntohl(mark);
    uint32_t len = mark & 0x7fffffff;
    ck_assert_uint_eq(len % 4, 0);
    ck_assert_int_le((int)(len / 4), max);
    ck_assert_int_eq(recv_all(fd, out, len), 0);
    for (uint32_t i = 0; i < len / 4; i++)
        out[i] = ntohl(out[i]);
    return (int)(len / 4);
}

static int tcp_call(int fd, const struct call *c, uint32_t *reply, int max)
{
    uint32_t mark = htonl(0x80000000u | (uint32_t)(c->n * 4));
    send_all(fd, &mark, 4);
    send_all(fd, c->w, (size_t)c->n * 4);
    return read_reply(fd, reply, max);
}

/* Reply words: xid REPLY stat ... */
static void expect_accepted(const uint32_t *r, int n, uint32_t xid, uint32_t accept_stat)
{
    ck_assert_int_ge(n, 6);
    ck_assert_uint_eq(r[0], xid);
    ck_assert_uint_eq(r[1], REPLY);
    ck_assert_uint_eq(r[2], MSG_ACCEPTED);
    ck_assert_uint_eq(r[3], 0);     /* verifier AUTH_NONE */
    ck_assert_uint_eq(r[4], 0);
    ck_assert_uint_eq(r[5], accept_stat);
}

static void null_call_works(void)
{
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 77, 2, 100003, 3, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 77, SUCCESS);
    close(fd);
}

START_TEST(unknown_program_version_and_procedure_get_their_rpc_errors)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 1, 2, 100099, 1, 0, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 1, PROG_UNAVAIL);
    call_header(&c, 2, 2, 100003, 2, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 2, PROG_MISMATCH);
    ck_assert_int_eq(n, 8);
    ck_assert_uint_eq(r[6], 3);     /* low */
    ck_assert_uint_eq(r[7], 3);     /* high */
    call_header(&c, 3, 2, 100003, 3, 22, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 3, PROC_UNAVAIL);
    call_header(&c, 4, 2, 100005, 3, 6, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 4, PROC_UNAVAIL);
    call_header(&c, 5, 2, 100005, 1, 0, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 5, PROG_MISMATCH);
    close(fd);
    stop();
}
END_TEST

START_TEST(a_wrong_rpc_version_is_rpc_mismatch_and_unknown_credentials_auth_error)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 9, 3, 100003, 3, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    ck_assert_int_ge(n, 6);
    ck_assert_uint_eq(r[2], MSG_DENIED);
    ck_assert_uint_eq(r[3], RPC_MISMATCH);
    ck_assert_uint_eq(r[4], 2);
    ck_assert_uint_eq(r[5], 2);
    call_header(&c, 10, 2, 100003, 3, 1, 6);        /* RPCSEC_GSS, empty: refused */
    put(&c, 8); put(&c, 0); put(&c, 0);              /* a GETATTR handle */
    n = tcp_call(fd, &c, r, 64);
    ck_assert_int_ge(n, 5);
    ck_assert_uint_eq(r[2], MSG_DENIED);
    ck_assert_uint_eq(r[3], AUTH_ERROR);
    ck_assert_uint_eq(r[4], 1);                      /* AUTH_BADCRED */
    close(fd);
    stop();
}
END_TEST

START_TEST(truncated_arguments_are_garbage_args)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 11, 2, 100003, 3, 1, 0);
    put(&c, 100);                                     /* a 100-byte handle, absent */
    expect_accepted(r, tcp_call(fd, &c, r, 64), 11, GARBAGE_ARGS);
    call_header(&c, 12, 2, 100003, 3, 1, 0);
    put(&c, 200);                                     /* over NFS3_FHSIZE */
    for (int i = 0; i < 50; i++)
        put(&c, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 12, GARBAGE_ARGS);
    call_header(&c, 13, 2, 100005, 3, 1, 0);
    put(&c, 5000);                                    /* MNT path over MNTPATHLEN */
    expect_accepted(r, tcp_call(fd, &c, r, 64), 13, GARBAGE_ARGS);
    close(fd);
    null_call_works();
    stop();
}
END_TEST

START_TEST(a_call_split_into_fragments_is_reassembled)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 21, 2, 100003, 3, 0, 0);
    /* 40 bytes as fragments of 12, 16 and 12 bytes, the last one marked. */
    size_t cuts[] = { 0, 12, 28, 40 };
    for (int i = 0; i < 3; i++) {
        uint32_t len = (uint32_t)(cuts[i + 1] - cuts[i]);
        uint32_t mark = htonl((i == 2 ? 0x80000000u : 0) | len);
        send_all(fd, &mark, 4);
        send_all(fd, (char *)c.w + cuts[i], len);
    }
    expect_accepted(r, read_reply(fd, r, 64), 21, SUCCESS);
    close(fd);
    stop();
}
END_TEST

START_TEST(an_oversize_record_drops_the_connection_and_the_server_lives_on)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    uint32_t mark = htonl(0x80000000u | (2u << 20));   /* 2 MiB > limit */
    send_all(fd, &mark, 4);
    char junk[4096] = { 0 };
    send(fd, junk, sizeof junk, MSG_NOSIGNAL);
    uint32_t r[64];
    ck_assert_int_eq(read_reply(fd, r, 64), -1);       /* closed, no reply */
    close(fd);
    /* Many non-final fragments adding up past the limit: also dropped. */
    fd = tcp_connect(srv.nfs_port);
    static char big[64 * 1024];
    bool dropped = false;
    for (int i = 0; i < 40 && !dropped; i++) {
        mark = htonl((uint32_t)sizeof big);
        if (send(fd, &mark, 4, MSG_NOSIGNAL) != 4 ||
            send(fd, big, sizeof big, MSG_NOSIGNAL) != (ssize_t)sizeof big)
            dropped = true;
    }
    if (!dropped)
        ck_assert_int_eq(read_reply(fd, r, 64), -1);
    close(fd);
    null_call_works();
    stop();
}
END_TEST

START_TEST(random_bytes_never_crash_the_server)
{
    start();
    srand(42);
    for (int round = 0; round < 50; round++) {
        int fd = tcp_connect(round % 2 ? srv.mount_port : srv.nfs_port);
        uint32_t words[256];
        int n = 1 + rand() % 255;
        for (int i = 0; i < n; i++)
            words[i] = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
        /* A well-formed header for half of them, so the argument decoders
         * see garbage too. */
        if (round % 2 == 0 && n > 10) {
            words[1] = htonl(CALL); words[2] = htonl(2);
            words[3] = htonl(round % 4 ? 100003 : 100005); words[4] = htonl(3);
            words[5] = htonl((uint32_t)(rand() % 22));
            words[6] = 0; words[7] = 0; words[8] = 0; words[9] = 0;
        }
        uint32_t mark = htonl(0x80000000u | (uint32_t)(n * 4));
        send(fd, &mark, 4, MSG_NOSIGNAL);
        send(fd, words, (size_t)n * 4, MSG_NOSIGNAL);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, 200);
        close(fd);
    }
    null_call_works();
    stop();
}
END_TEST

START_TEST(udp_carries_nfs_and_mount_calls)
{
    start();
    int ports[2] = { srv.nfs_port, srv.mount_port };
    uint32_t progs[2] = { 100003, 100005 };
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i]) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct timeval tv = { 10, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ck_assert_int_eq(sendto(fd, "junk", 4, 0, (struct sockaddr *)&a, sizeof a), 4);
        struct call c;
        call_header(&c, 31, 2, progs[i], 3, 0, 0);
        ck_assert_int_eq(sendto(fd, c.w, (size_t)c.n * 4, 0, (struct sockaddr *)&a, sizeof a),
                         c.n * 4);
        uint32_t r[64];
        ssize_t got = recv(fd, r, sizeof r, 0);
        ck_assert_int_ge(got, 24);
        for (int k = 0; k < 6; k++)
            r[k] = ntohl(r[k]);
        expect_accepted(r, (int)(got / 4), 31, SUCCESS);
        close(fd);
    }
    stop();
}
END_TEST

START_TEST(a_secure_export_refuses_mounts_from_unprivileged_ports)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_CACHE"),
                                  "export / *(ro,secure)\n", NULL), 0);
    int fd = tcp_connect(srv.mount_port);      /* an ephemeral port, >= 1024 */
    struct call c;
    uint32_t r[64];
    call_header(&c, 41, 2, 100005, 3, 1, 0);
    put(&c, 1);
    put(&c, 0x2f000000u);                        /* "/" padded */
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 41, SUCCESS);
    ck_assert_int_eq(n, 7);
    ck_assert_uint_eq(r[6], 13);                 /* MNT3ERR_ACCES */
    close(fd);
    stop();
}
END_TEST

START_TEST(a_name_with_a_nul_byte_is_refused)
{
    start();
    int fd = tcp_connect(srv.mount_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 51, 2, 100005, 3, 1, 0);
    put(&c, 1);
    put(&c, 0x2f000000u);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 51, SUCCESS);
    ck_assert_uint_eq(r[6], 0);                  /* MNT3_OK */
    uint32_t fhlen = r[7];
    ck_assert_uint_le(fhlen, 64);
    uint32_t fh[16];
    memcpy(fh, &r[8], fhlen);                    /* still in host order: undo below */
    close(fd);
    fd = tcp_connect(srv.nfs_port);
    call_header(&c, 52, 2, 100003, 3, 3, 0);     /* LOOKUP */
    put(&c, fhlen);
    for (uint32_t i = 0; i < fhlen / 4; i++)
        put(&c, fh[i]);
    put(&c, 3);
    put(&c, 0x61006200u);                        /* "a\0b" + pad */
    n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 52, SUCCESS);
    ck_assert_uint_eq(r[6], 22);                 /* NFS3ERR_INVAL */
    close(fd);
    stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rpc-wire");
    TCase *t = tcase_create("wire");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, unknown_program_version_and_procedure_get_their_rpc_errors);
    tcase_add_test(t, a_wrong_rpc_version_is_rpc_mismatch_and_unknown_credentials_auth_error);
    tcase_add_test(t, truncated_arguments_are_garbage_args);
    tcase_add_test(t, a_call_split_into_fragments_is_reassembled);
    tcase_add_test(t, an_oversize_record_drops_the_connection_and_the_server_lives_on);
    tcase_add_test(t, random_bytes_never_crash_the_server);
    tcase_add_test(t, udp_carries_nfs_and_mount_calls);
    tcase_add_test(t, a_secure_export_refuses_mounts_from_unprivileged_ports);
    tcase_add_test(t, a_name_with_a_nul_byte_is_refused);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
