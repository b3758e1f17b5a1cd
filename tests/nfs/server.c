/* server.c: starts a real tarnfsd for a test and stops it by its PID. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *test_env(const char *var)
{
    const char *v = getenv(var);
    if (!v || !*v) {
        fprintf(stderr, "test: environment variable %s is not set\n", var);
        abort();
    }
    return v;
}

/* Servers started by this process and not yet stopped: a failed assertion
 * exits the test (Check's fork mode calls exit), and the atexit handler
 * then stops them, so no tarnfsd outlives its test. */
#define MAX_STARTED 64
static pid_t started[MAX_STARTED];

static void stop_leftovers(void)
{
    for (int i = 0; i < MAX_STARTED; i++)
        if (started[i] > 0) {
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
            started[i] = 0;
        }
}

static void track(pid_t pid, pid_t old)
{
    static int registered;
    if (!registered) {
        atexit(stop_leftovers);
        registered = 1;
    }
    for (int i = 0; i < MAX_STARTED; i++)
        if (started[i] == old) {
            started[i] = pid;
            return;
        }
}

int server_start(struct test_server *s, const char *cache, const char *conf,
                 const char *const *extra)
{
    /* Scratch dirs go under $NFS_TEST_TMP (the suite's own, removed after
     * the run) when it is set. */
    const char *base = getenv("NFS_TEST_TMP");
    char tmpl[200];
    snprintf(tmpl, sizeof tmpl, "%s/tarnfs-nfstest-XXXXXX", base && *base ? base : "/tmp");
    if (!s->dir[0]) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return -1;
        }
        snprintf(s->dir, sizeof s->dir, "%s", tmpl);
    }
    char conf_path[300], port_path[300], log_path[300], nfs_port[16], mount_port[16];
    snprintf(conf_path, sizeof conf_path, "%s/tarnfs.conf", s->dir);
    snprintf(port_path, sizeof port_path, "%s/ports", s->dir);
    snprintf(log_path, sizeof log_path, "%s/tarnfsd.log", s->dir);
    snprintf(nfs_port, sizeof nfs_port, "%d", s->nfs_port);
    snprintf(mount_port, sizeof mount_port, "%d", s->mount_port);
    FILE *f = fopen(conf_path, "w");
    if (!f)
        return -1;
    fputs(conf ? conf : "", f);
    fclose(f);
    unlink(port_path);
    const char *argv[32] = { test_env("TARNFSD"), "-f", "--cache", cache, "--config",
                             conf_path, "--no-rpcbind", "--nfs-port", nfs_port,
                             "--mount-port", mount_port, "--port-file", port_path,
                             "--threads", "4" };
    int n = 15;
    if (s->rpcbind) {                   /* drop "--no-rpcbind" */
        memmove(&argv[6], &argv[7], (size_t)(n - 7) * sizeof argv[0]);
        n--;
    }
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        FILE *log = freopen(log_path, "a", stderr);
        (void)log;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    track(pid, 0);
    for (int i = 0; i < 300; i++) {     /* up to 30 s under sanitizers */
        FILE *pf = fopen(port_path, "r");
        if (pf) {
            int ok = fscanf(pf, "%d %d", &s->nfs_port, &s->mount_port) == 2;
            fclose(pf);
            if (ok)
                return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "test: tarnfsd exited early; see %s\n", log_path);
            track(0, pid);
            s->pid = 0;
            return -1;
        }
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "test: tarnfsd did not start; see %s\n", log_path);
    return -1;
}

int server_stop(struct test_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 300; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            track(0, s->pid);
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    track(0, s->pid);
    s->pid = 0;
    return -1;
}
