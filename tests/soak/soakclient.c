/* soakclient.c: N libnfs clients (one context and thread each) mixing reads, metadata and written-then-verified files against a tarnfsd for a set time, pausing on request (for a server restart); exits 1 on any error. */
#include <nfsc/libnfs.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX (48 * 1024)

static const char *url;
static const char *pause_file;      /* exists: park and disconnect */
static const char *parked_file;     /* written when every client parked */
static char **runs;
static int nruns;
static time_t deadline;
static atomic_int parked;
static atomic_long ops_total, errors_total, bytes_total;

struct client {
    int id;
    unsigned seed;
    struct nfs_context *nfs;
    char *ref[64];                  /* first RunInfo.xml read, per run */
    size_t reflen[64];
    unsigned char *buf, *back;
};

static void fail(struct client *c, const char *op, const char *path, int rc)
{
    atomic_fetch_add(&errors_total, 1);
    fprintf(stderr, "soakclient %d: %s %s: %s (%d)\n", c->id, op, path,
            c->nfs ? nfs_get_error(c->nfs) : "-", rc);
}

static bool connect_ctx(struct client *c)
{
    c->nfs = nfs_init_context();
    if (!c->nfs)
        return false;
    struct nfs_url *u = nfs_parse_url_dir(c->nfs, url);
    int rc = u ? nfs_mount(c->nfs, u->server, u->path) : -1;
    if (u)
        nfs_destroy_url(u);
    if (rc) {
        fail(c, "mount", url, rc);
        nfs_destroy_context(c->nfs);
        c->nfs = NULL;
        return false;
    }
    return true;
}

/* Read path whole into c->back; returns bytes or -1. */
static long read_whole(struct client *c, const char *path)
{
    struct nfsfh *fh;
    int rc = nfs_open(c->nfs, path, O_RDONLY, &fh);
    if (rc) {
        fail(c, "open", path, rc);
        return -1;
    }
    long got = 0;
    /* Up to FILE_MAX bytes (c->back's size), in READs of at most 64 KiB;
     * a file of exactly FILE_MAX bytes is read whole (it was read as
     * nothing: the last READ was not counted when it filled the buffer). */
    while (got < FILE_MAX) {
        size_t want = (size_t)(FILE_MAX - got) < 65536 ? (size_t)(FILE_MAX - got) : 65536;
        int n = nfs_pread(c->nfs, fh, (uint64_t)got, want, c->back + got);
        if (n < 0) {
            fail(c, "read", path, n);
            got = -1;
            break;
        }
        if (n == 0)
            break;
        got += n;
    }
    nfs_close(c->nfs, fh);
    return got;
}

static void op_read(struct client *c)
{
    int r = rand_r(&c->seed) % nruns;
    char path[512];
    snprintf(path, sizeof path, "/%s/RunInfo.xml", runs[r]);
    long n = read_whole(c, path);
    if (n < 0)
        return;
    atomic_fetch_add(&bytes_total, n);
    if (!c->ref[r]) {
        c->ref[r] = malloc((size_t)n + 1);
        memcpy(c->ref[r], c->back, (size_t)n);
        c->reflen[r] = (size_t)n;
    } else if ((size_t)n != c->reflen[r] || memcmp(c->ref[r], c->back, (size_t)n)) {
        fail(c, "read (content differs from the first read)", path, 0);
    }
}

static void op_meta(struct client *c)
{
    int r = rand_r(&c->seed) % nruns;
    char path[512];
    snprintf(path, sizeof path, "/%s", runs[r]);
    struct nfsdir *d;
    int rc = nfs_opendir(c->nfs, path, &d);
    if (rc) {
        fail(c, "opendir", path, rc);
        return;
    }
    int n = 0;
    struct nfsdirent *e;
    while ((e = nfs_readdir(c->nfs, d)))
        n++;
    nfs_closedir(c->nfs, d);
    if (n < 3)
        fail(c, "readdir (too few entries)", path, n);
    struct nfs_stat_64 st;
    snprintf(path, sizeof path, "/%s/RunInfo.xml", runs[r]);
    if ((rc = nfs_stat64(c->nfs, path, &st)) != 0)
        fail(c, "stat", path, rc);
}

/* Write a file of this client's own, fsync (COMMIT), read it back. */
static void op_write(struct client *c)
{
    int r = c->id % (nruns > 1 ? nruns / 2 : 1);   /* the rest stay clean */
    char path[512];
    snprintf(path, sizeof path, "/%s/soak-%02d.bin", runs[r], c->id);
    size_t len = 1 + (size_t)rand_r(&c->seed) % FILE_MAX;
    unsigned char k = (unsigned char)rand_r(&c->seed);
    for (size_t i = 0; i < len; i++)
        c->buf[i] = (unsigned char)(k + i * 7 + (i >> 9));
    struct nfsfh *fh;
    int rc = nfs_open(c->nfs, path, O_WRONLY | O_CREAT | O_TRUNC, &fh);
    if (rc) {
        fail(c, "create", path, rc);
        return;
    }
    size_t off = 0;
    while (off < len) {
        size_t chunk = len - off < 32768 ? len - off : 32768;
        int n = nfs_pwrite(c->nfs, fh, off, chunk, c->buf + off);
        if (n <= 0) {
            fail(c, "write", path, n);
            nfs_close(c->nfs, fh);
            return;
        }
        off += (size_t)n;
    }
    if ((rc = nfs_fsync(c->nfs, fh)) != 0)
        fail(c, "commit", path, rc);
    nfs_close(c->nfs, fh);
    atomic_fetch_add(&bytes_total, (long)len);
    long n = read_whole(c, path);
    if (n >= 0 && ((size_t)n != len || memcmp(c->buf, c->back, len))) {
        /* Not fail(): the context's last error is an older call's. */
        atomic_fetch_add(&errors_total, 1);
        fprintf(stderr, "soakclient %d: read back %s: %ld bytes, %zu written%s\n",
                c->id, path, n, len, (size_t)n == len ? " (content differs)" : "");
    }
}

static void op_unlink(struct client *c)
{
    char path[512];
    snprintf(path, sizeof path, "/%s/soak-%02d.bin",
             runs[c->id % (nruns > 1 ? nruns / 2 : 1)], c->id);
    struct nfs_stat_64 st;
    if (nfs_stat64(c->nfs, path, &st) != 0)
        return;                     /* not written yet */
    int rc = nfs_unlink(c->nfs, path);
    if (rc)
        fail(c, "unlink", path, rc);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    c->buf = malloc(FILE_MAX);
    c->back = malloc(FILE_MAX);
    bool up = connect_ctx(c);
    while (time(NULL) < deadline) {
        if (access(pause_file, F_OK) == 0) {
            if (c->nfs)
                nfs_destroy_context(c->nfs);
            c->nfs = NULL;
            atomic_fetch_add(&parked, 1);
            while (access(pause_file, F_OK) == 0 && time(NULL) < deadline)
                usleep(100000);
            atomic_fetch_sub(&parked, 1);
            if (time(NULL) >= deadline)
                break;
            up = connect_ctx(c);
            continue;
        }
        if (!up) {
            sleep(1);
            up = connect_ctx(c);
            continue;
        }
        int op = rand_r(&c->seed) % 10;
        if (op < 4)
            op_read(c);
        else if (op < 6)
            op_meta(c);
        else if (op < 9)
            op_write(c);
        else
            op_unlink(c);
        atomic_fetch_add(&ops_total, 1);
    }
    if (c->nfs)
        nfs_destroy_context(c->nfs);
    for (int i = 0; i < nruns; i++)
        free(c->ref[i]);
    free(c->buf);
    free(c->back);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: soakclient URL SECONDS CLIENTS PAUSEFILE PARKEDFILE RUN...\n");
        return 2;
    }
    url = argv[1];
    deadline = time(NULL) + atoi(argv[2]);
    int n = atoi(argv[3]);
    pause_file = argv[4];
    parked_file = argv[5];
    runs = argv + 6;
    nruns = argc - 6 < 64 ? argc - 6 : 64;
    struct client *cl = calloc((size_t)n, sizeof *cl);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    for (int i = 0; i < n; i++) {
        cl[i].id = i;
        cl[i].seed = (unsigned)(i * 2654435761u);
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    /* Tell the script when every client has let go of the server. */
    while (time(NULL) < deadline) {
        bool want = access(pause_file, F_OK) == 0;
        if (want && atomic_load(&parked) == n)
            close(open(parked_file, O_WRONLY | O_CREAT, 0644));
        else if (!want)
            unlink(parked_file);
        usleep(100000);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    printf("soakclient: %d clients, %ld operations, %ld bytes, %ld errors\n", n,
           atomic_load(&ops_total), atomic_load(&bytes_total),
           atomic_load(&errors_total));
    free(cl);
    free(th);
    return atomic_load(&errors_total) ? 1 : 0;
}
