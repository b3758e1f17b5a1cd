/* nlmlock.c: the kernel VM's lock tool (built static by run.sh, run in the guest): takes, tests and waits for fcntl write locks on NFS files, so the guest's lockd talks NLM to the server. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: nlmlock hold FILE SECONDS | try FILE | wait FILE\n");
        return 2;
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
