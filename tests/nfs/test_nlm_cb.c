/* test_nlm_cb.c: the NLM callback sender against a hostile client's
 * rpcbind, played by this test on UDP port 111 of 127.0.0.1: junk that
 * keeps arriving does not hold the one sender thread past its deadline, and
 * an answer from another port is not believed.  Run in a private network
 * namespace (tests/suites/50-nfs.sh), where port 111 is free. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nfsd/nlm_cb.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A UDP socket on 127.0.0.1:port (0: any port). */
static int udp_on(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "bind 127.0.0.1:%d: %s (run in a network namespace of its own)", port,
                  strerror(errno));
    return fd;
}

static int port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Wait up to ms for a datagram on fd; its length (0: none), sender in *from. */
static ssize_t take(int fd, uint32_t *buf, size_t cap, struct sockaddr_in *from, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) != 1)
        return 0;
    socklen_t len = sizeof *from;
    ssize_t r = recvfrom(fd, buf, cap, 0, (struct sockaddr *)from, &len);
    return r > 0 ? r : 0;
}

static void queue_one(struct nlm_cb *cb)
{
    struct sockaddr_storage to;
    memset(&to, 0, sizeof to);
    struct sockaddr_in *in = (struct sockaddr_in *)&to;
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    u_int arg = 7;          /* any arguments: the sender never gets that far */
    ck_assert_int_eq(nlm_cb_send(cb, &to, NLM_PROG, NLM_VERS, 12, (xdrproc_t)xdr_u_int, &arg), 0);
}

static uint64_t dropped(struct nlm_cb *cb)
{
    uint64_t s, d;
    nlm_cb_counts(cb, &s, &d);
    return d;
}

/* The client's rpcbind answers every GETPORT with junk, again and again
 * (before: each datagram started the 1 s wait over, so the sender never
 * gave up while the junk kept coming, and every other callback waited). */
START_TEST(junk_from_a_clients_rpcbind_holds_the_sender_no_longer_than_its_deadline)
{
    int rb = udp_on(111);
    struct nlm_cb *cb;
    ck_assert_int_eq(nlm_cb_start(8, &cb), 0);
    long long t0 = now_ms(), gave_up = 0;
    queue_one(cb);
    struct sockaddr_in asker = { 0 };
    long long next_junk = 0;
    while (now_ms() - t0 < 8000 && !gave_up) {
        uint32_t buf[128];
        struct sockaddr_in from;
        if (take(rb, buf, sizeof buf, &from, 50) > 0)
            asker = from;               /* a GETPORT: answer it with junk from now on */
        if (asker.sin_port && now_ms() >= next_junk) {
            uint32_t junk[6] = { htonl(0x12345678), htonl(1), 0, 0, 0, 0 };
            sendto(rb, junk, sizeof junk, 0, (struct sockaddr *)&asker, sizeof asker);
            next_junk = now_ms() + 300;
        }
        if (dropped(cb) == 1)
            gave_up = now_ms() - t0;
    }
    ck_assert_msg(gave_up > 0, "the sender still waited after 8 s of junk");
    ck_assert_msg(gave_up < 3500, "the sender gave up only after %lld ms", gave_up);
    nlm_cb_stop(cb);
    close(rb);
}
END_TEST

/* An answer with the right xid, but from another port than rpcbind's, is
 * not believed: the message is not sent where it says. */
START_TEST(a_getport_answer_from_another_port_is_not_believed)
{
    int rb = udp_on(111), forger = udp_on(0), trap = udp_on(0);
    struct nlm_cb *cb;
    ck_assert_int_eq(nlm_cb_start(8, &cb), 0);
    queue_one(cb);
    uint32_t buf[128];
    struct sockaddr_in from;
    ck_assert_int_gt(take(rb, buf, sizeof buf, &from, 3000), 0);
    /* accepted reply: xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS, port */
    uint32_t ans[7] = { buf[0], htonl(1), 0, 0, 0, 0, htonl((uint32_t)port_of(trap)) };
    ck_assert_int_eq(sendto(forger, ans, sizeof ans, 0, (struct sockaddr *)&from, sizeof from),
                     (ssize_t)sizeof ans);
    long long t0 = now_ms();
    while (dropped(cb) == 0 && now_ms() - t0 < 5000)
        take(rb, buf, sizeof buf, &from, 50);   /* the second try, unanswered */
    ck_assert_int_eq(dropped(cb), 1);
    ck_assert_msg(take(trap, buf, sizeof buf, &from, 200) == 0,
                  "the message went to the port a forged answer named");
    nlm_cb_stop(cb);
    close(rb);
    close(forger);
    close(trap);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nlm_cb");
    TCase *t = tcase_create("nlm_cb");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, junk_from_a_clients_rpcbind_holds_the_sender_no_longer_than_its_deadline);
    tcase_add_test(t, a_getport_answer_from_another_port_is_not_believed);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
