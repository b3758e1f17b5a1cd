/* server.h: start and stop a real tarnfsd for tests (by PID, on free ports). */
#ifndef TARNFS_TESTS_NFS_SERVER_H
#define TARNFS_TESTS_NFS_SERVER_H

#include <sys/types.h>

struct test_server {
    pid_t pid;
    int nfs_port, mount_port;
    int rpcbind;            /* register with rpcbind (default: --no-rpcbind) */
    char dir[256];          /* scratch: config, port file, log */
};

/* Start $TARNFSD -f --cache cache with config text conf (NULL: no file)
 * and extra flags (NULL-terminated, may be NULL).  Ports are chosen by the
 * server unless s->nfs_port/mount_port are already set (a restart).
 * Returns 0 or -1 (with a message on stderr). */
int server_start(struct test_server *s, const char *cache, const char *conf,
                 const char *const *extra);

/* SIGTERM the server and wait; returns its exit status (0 = clean). */
int server_stop(struct test_server *s);

/* Path of a file named by the environment variable var, or abort. */
const char *test_env(const char *var);

#endif
