/* tcp_ceiling.c: measures the loopback TCP ceiling on the spot (one socket copy, MB/s). */

/* One sender thread writes 1 MiB buffers to 127.0.0.1, the receiver reads
 * and drops them: the upper bound for any NFS READ throughput over the same
 * loopback connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct sender {
    uint16_t port;
    double seconds;
    int err;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *send_loop(void *arg)
{
    struct sender *s = arg;
    char *buf = calloc(1, CHUNK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(s->port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!buf || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        s->err = errno ? errno : ENOMEM;
        goto out;
    }
    double end = now_s() + s->seconds;
    while (now_s() < end) {
        size_t off = 0;
        while (off < CHUNK) {
            ssize_t n = write(fd, buf + off, CHUNK - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                s->err = errno;
                goto out;
            }
            off += (size_t)n;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sender s = { .seconds = 2.0 };
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        puts("usage: tcp-ceiling [SECONDS]\n"
             "Copy bytes through one loopback TCP connection for SECONDS "
             "(default 2)\nand print \"tcp_mb_per_s N\" (10^6 bytes/s).");
        return 0;
    }
    if (argc > 1 && (s.seconds = strtod(argv[1], NULL)) <= 0) {
        fprintf(stderr, "tcp-ceiling: bad SECONDS '%s'\n", argv[1]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) ||
        listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&a, &alen)) {
        perror("tcp-ceiling: listen");
        return 1;
    }
    s.port = ntohs(a.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, send_loop, &s)) {
        perror("tcp-ceiling: thread");
        return 1;
    }
    int fd = accept(lfd, NULL, NULL);
    char *buf = malloc(CHUNK);
    if (fd < 0 || !buf) {
        perror("tcp-ceiling: accept");
        return 1;
    }
    uint64_t total = 0;
    double t0 = now_s();
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += (uint64_t)n;
    }
    double secs = now_s() - t0;
    pthread_join(t, NULL);
    close(fd);
    close(lfd);
    free(buf);
    if (s.err) {
        fprintf(stderr, "tcp-ceiling: sender: %s\n", strerror(s.err));
        return 1;
    }
    printf("tcp_mb_per_s %.1f\n", (double)total / 1e6 / secs);
    return 0;
}
