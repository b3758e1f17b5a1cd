/* nlmlock.c: the kernel VM's lock tool (built static by run.sh, run in the guest): takes, tests and waits for fcntl write locks on NFS files, so the guest's lockd talks NLM to the server, and hands the guest's statd the SM_NOTIFY a restarted server's sm-notify sends. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int lock_whole(int fd, int cmd)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    return fcntl(fd, cmd, &fl);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One NSM SM_NOTIFY call (program 100024 v1, procedure 6: mon_name, state) over UDP to the
 * statd at 127.0.0.1:PORT, as the server host's sm-notify sends it after a restart.  The
 * host cannot reach the guest's statd through user-mode networking, so the guest sends it
 * to itself; statd matches MON_NAME against the hosts its lockd monitors and tells lockd,
 * which reclaims its locks on that server.  0 once statd has answered. */
static int sm_notify(const char *mon_name, int state, int port)
{
    uint32_t msg[64];
    size_t n = 0, len = strlen(mon_name);
    if (len > 128)
        return -1;
    msg[n++] = htonl(0x544e4653);       /* xid */
    msg[n++] = htonl(0);                /* CALL */
    msg[n++] = htonl(2);                /* RPC version */
    msg[n++] = htonl(100024);
    msg[n++] = htonl(1);
    msg[n++] = htonl(6);                /* SM_NOTIFY */
    msg[n++] = 0; msg[n++] = 0;         /* AUTH_NULL credential */
    msg[n++] = 0; msg[n++] = 0;         /* AUTH_NULL verifier */
    msg[n++] = htonl((uint32_t)len);
    memset(&msg[n], 0, (len + 3) / 4 * 4);
    memcpy(&msg[n], mon_name, len);
    n += (len + 3) / 4;
    msg[n++] = htonl((uint32_t)state);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return -1;
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int try = 0; try < 5; try++) {
        uint32_t reply[16];
        if (sendto(s, msg, n * 4, 0, (struct sockaddr *)&to, sizeof to) < 0)
            break;
        ssize_t got = recv(s, reply, sizeof reply, 0);
        /* xid, REPLY, MSG_ACCEPTED, verifier (2 words), SUCCESS */
        if (got >= 24 && reply[0] == msg[0] && ntohl(reply[1]) == 1 && ntohl(reply[2]) == 0 &&
            ntohl(reply[5]) == 0) {
            close(s);
            return 0;
        }
    }
    close(s);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nlmlock hold FILE SECONDS | try FILE | wait FILE"
                " | notify MON_NAME STATE STATD_PORT\n");
        return 2;
    }
    if (!strcmp(argv[1], "notify") && argc == 5) {
        if (sm_notify(argv[2], atoi(argv[3]), atoi(argv[4])) != 0) {
            printf("ERROR statd did not answer SM_NOTIFY\n");
            return 2;
        }
        printf("NOTIFIED\n");
        return 0;
    }
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) {
        printf("ERROR open: %s\n", strerror(errno));
        return 2;
    }
    if (!strcmp(argv[1], "hold") && argc == 4) {
        if (lock_whole(fd, F_SETLK) != 0) {
            printf("ERROR lock: %s\n", strerror(errno));
            return 2;
        }
        printf("LOCKED\n");
        fflush(stdout);
        sleep((unsigned)atoi(argv[3]));
        printf("RELEASED\n");           /* close() drops the lock */
        fflush(stdout);
        close(fd);
        return 0;
    }
    if (!strcmp(argv[1], "try")) {
        if (lock_whole(fd, F_SETLK) == 0) {
            printf("GOT\n");
            return 0;
        }
        int e = errno;
        printf("%s %s\n", e == EAGAIN || e == EACCES ? "DENIED" : "ERROR", strerror(e));
        return e == EAGAIN || e == EACCES ? 1 : 2;
    }
    if (!strcmp(argv[1], "wait")) {
        long long t0 = now_ms();
        if (lock_whole(fd, F_SETLKW) != 0) {
            printf("ERROR lock: %s\n", strerror(errno));
            return 2;
        }
        printf("GOT after %lld ms\n", now_ms() - t0);
        return 0;
    }
    fprintf(stderr, "nlmlock: unknown command %s\n", argv[1]);
    return 2;
}
