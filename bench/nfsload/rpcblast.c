/* rpcblast.c: a lean NFSv3 load generator: pipelined GETATTR, READ or READDIRPLUS of one handle over raw TCP, replies skimmed (READ data discarded unread), so the server, not the client, uses the CPU. */
/*
 * bench/scale measures how tarnfsd's throughput grows from 1 to 2 cores.
 * On a host with only 2 cores the client shares them with the server, so a
 * client that costs as much CPU per call as the server (nfsload on libnfs)
 * hides the server's scaling.  rpcblast spends as little as it can per
 * call: requests are encoded with libtirpc and sent many per send(); reply
 * headers are read and checked (xid, accept status, NFS status), and a READ
 * reply's data is dropped in the kernel with recv(MSG_TRUNC), never copied.
 * One thread drives every connection with epoll.  It talks to any NFSv3
 * server: MOUNT and LOOKUP find the handle, then only the chosen call goes.
 *
 *   rpcblast [--conns N] [--depth D] [--duration S] [--bsize B] [--timeout S] [--json]
 *            getattr|read|readdirplus nfs://HOST/EXPORT?nfsport=N&mountport=M PATH
 *
 * Prints calls, ops (calls/s), bytes (READ data), entries (READDIRPLUS),
 * lat_p99_ms, start_ns and end_ns, as nfsload does (--json: one object).
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <rpc/rpc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/units.h"

#define NFS_PROG     100003
#define NFS_V3       3
#define MOUNT_PROG   100005
#define MOUNT_V3     3
#define MNTPROC_MNT  1
#define NFSPROC_GETATTR 1
#define NFSPROC_LOOKUP  3
#define NFSPROC_READ    6
#define NFSPROC_READDIRPLUS 17
#define FH_MAX       64
#define REQ_MAX      512            /* bytes of one encoded call */
#define RING         8192           /* send times kept per connection */
#define HIST_US      1000000        /* latency histogram: 1 us buckets to 1 s */
#define RBUF         (256 << 10)
#define DIR_MAXCOUNT 32768          /* READDIRPLUS maxcount, as nfsload's */
#define DIR_DIRCOUNT 8192

enum wl { WL_GETATTR, WL_READ, WL_READDIRPLUS };

struct fh { uint32_t len; unsigned char data[FH_MAX]; };

struct conn {
    int fd;
    uint32_t id;
    uint32_t next_xid;
    unsigned inflight;
    uint64_t sent_ns[RING];
    uint32_t sent_xid[RING];
    unsigned char *rbuf;            /* whole records (READ: headers only) */
    size_t rlen;
    uint64_t skip;                  /* bytes of a READ reply to drop */
    unsigned char sbuf[64 * REQ_MAX];
    size_t slen, soff;              /* queued request bytes, sent part */
};

struct blast {
    enum wl wl;
    struct fh fh;
    uint32_t bsize;
    uint64_t file_size;
    uint64_t next_off;
    unsigned depth;
    bool stopping;
    uint64_t calls, bytes, entries, errors;
    uint32_t *hist;
    uint64_t over;                  /* latencies past the histogram */
    uint64_t last_reply_ns;
    AUTH *auth;
    uint32_t setup_xid;             /* of MOUNT and LOOKUP */
    char err[1400];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* Encode one call (record mark included) into buf; returns its length or 0. */
static size_t encode_call(unsigned char *buf, size_t cap, AUTH *auth, uint32_t xid,
                          uint32_t prog, uint32_t vers, uint32_t proc,
                          bool (*args)(XDR *, void *), void *arg)
{
    XDR x;
    xdrmem_create(&x, (char *)buf + 4, (u_int)(cap - 4), XDR_ENCODE);
    struct rpc_msg m = { .rm_xid = xid, .rm_direction = CALL };
    m.rm_call.cb_rpcvers = RPC_MSG_VERSION;
    m.rm_call.cb_prog = prog;
    m.rm_call.cb_vers = vers;
    m.rm_call.cb_proc = proc;
    m.rm_call.cb_cred = auth->ah_cred;
    m.rm_call.cb_verf = auth->ah_verf;
    bool ok = xdr_callmsg(&x, &m) && args(&x, arg);
    size_t len = ok ? xdr_getpos(&x) : 0;
    xdr_destroy(&x);
    if (!len)
        return 0;
    put32(buf, 0x80000000u | (uint32_t)len);
    return len + 4;
}

struct call_args { struct fh *fh; const char *name; uint64_t off; uint32_t count; };

static bool args_fh(XDR *x, void *p)
{
    struct call_args *a = p;
    char *d = (char *)a->fh->data;
    u_int n = a->fh->len;
    return xdr_bytes(x, &d, &n, FH_MAX);
}

static bool args_lookup(XDR *x, void *p)
{
    struct call_args *a = p;
    char *name = (char *)a->name;
    return args_fh(x, p) && xdr_string(x, &name, 255);
}

static bool args_read(XDR *x, void *p)
{
    struct call_args *a = p;
    uint64_t off = a->off;
    u_int count = a->count;
    return args_fh(x, p) && xdr_u_int64_t(x, &off) && xdr_u_int(x, &count);
}

static bool args_readdirplus(XDR *x, void *p)
{
    uint64_t cookie = 0;
    char verf[8] = { 0 };
    u_int dircount = DIR_DIRCOUNT, maxcount = DIR_MAXCOUNT;
    return args_fh(x, p) && xdr_u_int64_t(x, &cookie) && xdr_opaque(x, verf, 8) &&
           xdr_u_int(x, &dircount) && xdr_u_int(x, &maxcount);
}

static bool args_dirpath(XDR *x, void *p)
{
    char *path = (char *)((struct call_args *)p)->name;
    return xdr_string(x, &path, 1024);
}

static int tcp_connect(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int read_full(int fd, void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return n == 0 ? EPIPE : errno;
        got += (size_t)n;
    }
    return 0;
}

/* One synchronous call on fd; the reply's body after the accept status is
 * left in *body (malloc'd, *blen bytes).  Returns 0 or an errno. */
static int call_sync(struct blast *b, int fd, uint32_t prog, uint32_t vers, uint32_t proc,
                     bool (*args)(XDR *, void *), void *arg,
                     unsigned char **body, size_t *blen)
{
    unsigned char req[2048];
    uint32_t xid = ++b->setup_xid;
    size_t len = encode_call(req, sizeof req, b->auth, xid, prog, vers, proc, args, arg);
    if (!len)
        return EINVAL;
    if (write(fd, req, len) != (ssize_t)len)
        return EIO;
    unsigned char mark[4];
    int err = read_full(fd, mark, 4);
    if (err)
        return err;
    uint32_t rl = be32(mark) & 0x7fffffffu;
    if (!(be32(mark) & 0x80000000u) || rl < 24 || rl > (1u << 24))
        return EPROTO;
    unsigned char *r = malloc(rl);
    if (!r)
        return ENOMEM;
    if ((err = read_full(fd, r, rl)) != 0) {
        free(r);
        return err;
    }
    /* xid, REPLY, MSG_ACCEPTED, verifier (flavor, length, body), SUCCESS */
    uint32_t vlen = be32(r + 16);
    size_t at = 20 + ((vlen + 3) & ~3u);
    if (be32(r) != xid || be32(r + 4) != 1 || be32(r + 8) != 0 || at + 4 > rl ||
        be32(r + at) != 0) {
        free(r);
        return EPROTO;
    }
    at += 4;
    *blen = rl - at;
    memmove(r, r + at, *blen);
    *body = r;
    return 0;
}

/* MOUNT the export, then LOOKUP each component of path; fills b->fh and,
 * for READ, the file's size.  Returns 0 or an errno (b->err says why). */
static int resolve(struct blast *b, const char *host, int nfsport, int mntport,
                   const char *export, const char *path)
{
    int fd = tcp_connect(host, mntport);
    if (fd < 0) {
        snprintf(b->err, sizeof b->err, "connect to MOUNT port %d: %s", mntport, strerror(-fd));
        return -fd;
    }
    struct call_args a = { .name = export };
    unsigned char *body = NULL;
    size_t blen = 0;
    int err = call_sync(b, fd, MOUNT_PROG, MOUNT_V3, MNTPROC_MNT, args_dirpath, &a, &body, &blen);
    close(fd);
    if (!err && (blen < 8 || be32(body) != 0 || be32(body + 4) > FH_MAX || 8 + be32(body + 4) > blen))
        err = EACCES;
    if (err) {
        snprintf(b->err, sizeof b->err, "MOUNT %s failed: %s", export, strerror(err));
        free(body);
        return err;
    }
    b->fh.len = be32(body + 4);
    memcpy(b->fh.data, body + 8, b->fh.len);
    free(body);
    if ((fd = tcp_connect(host, nfsport)) < 0) {
        snprintf(b->err, sizeof b->err, "connect to NFS port %d: %s", nfsport, strerror(-fd));
        return -fd;
    }
    char *copy = strdup(path), *save = NULL;
    uint64_t size = 0;
    for (char *c = strtok_r(copy, "/", &save); c && !err; c = strtok_r(NULL, "/", &save)) {
        a = (struct call_args){ .fh = &b->fh, .name = c };
        err = call_sync(b, fd, NFS_PROG, NFS_V3, NFSPROC_LOOKUP, args_lookup, &a, &body, &blen);
        if (!err && (blen < 8 || be32(body) != 0 || be32(body + 4) > FH_MAX || 8 + be32(body + 4) > blen))
            err = ENOENT;
        if (!err) {
            b->fh.len = be32(body + 4);
            memcpy(b->fh.data, body + 8, b->fh.len);
            /* post_op_attr of the object: follows bool, then fattr3 (size at +20) */
            size_t at = 8 + ((b->fh.len + 3) & ~3u);
            if (at + 4 + 28 <= blen && be32(body + at))
                size = (uint64_t)be32(body + at + 4 + 20) << 32 | be32(body + at + 4 + 24);
        } else {
            snprintf(b->err, sizeof b->err, "LOOKUP %s failed", c);
        }
        free(body);
        body = NULL;
    }
    free(copy);
    close(fd);
    b->file_size = size;
    return err;
}

/* Queue calls on c until depth are in flight or its send buffer is full. */
static void fill(struct blast *b, struct conn *c)
{
    while (!b->stopping && c->inflight < b->depth && c->slen + REQ_MAX <= sizeof c->sbuf) {
        struct call_args a = { .fh = &b->fh, .count = b->bsize };
        uint32_t xid = c->id << 20 | (c->next_xid++ & 0xfffff);
        size_t n;
        switch (b->wl) {
        case WL_GETATTR:
            n = encode_call(c->sbuf + c->slen, REQ_MAX, b->auth, xid, NFS_PROG, NFS_V3,
                            NFSPROC_GETATTR, args_fh, &a);
            break;
        case WL_READ:
            if (b->next_off >= b->file_size)
                b->next_off = 0;
            a.off = b->next_off;
            b->next_off += b->bsize;
            n = encode_call(c->sbuf + c->slen, REQ_MAX, b->auth, xid, NFS_PROG, NFS_V3,
                            NFSPROC_READ, args_read, &a);
            break;
        default:
            n = encode_call(c->sbuf + c->slen, REQ_MAX, b->auth, xid, NFS_PROG, NFS_V3,
                            NFSPROC_READDIRPLUS, args_readdirplus, &a);
            break;
        }
        if (!n)
            break;
        c->slen += n;
        c->sent_ns[xid % RING] = now_ns();
        c->sent_xid[xid % RING] = xid;
        c->inflight++;
    }
}

static int flush_out(struct conn *c)
{
    while (c->soff < c->slen) {
        ssize_t n = send(c->fd, c->sbuf + c->soff, c->slen - c->soff, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : errno;
        c->soff += (size_t)n;
    }
    c->soff = c->slen = 0;
    return 0;
}

/* Entries in a READDIRPLUS3resok body starting at p (after the status). */
static uint64_t count_entries(const unsigned char *p, const unsigned char *end)
{
    uint64_t n = 0;
    if (end - p < 4)
        return 0;
    p += be32(p) ? 4 + 84 : 4;              /* dir_attributes */
    p += 8;                                 /* cookieverf */
    while (end - p >= 4 && be32(p)) {
        p += 4 + 8;                         /* value_follows, fileid */
        if (end - p < 4)
            break;
        p += 4 + ((be32(p) + 3) & ~3u) + 8; /* name, cookie */
        if (end - p < 4)
            break;
        p += be32(p) ? 4 + 84 : 4;          /* name_attributes */
        if (end - p < 4)
            break;
        if (be32(p)) {                      /* name_handle */
            p += 4;
            if (end - p < 4)
                break;
            p += 4 + ((be32(p) + 3) & ~3u);
        } else {
            p += 4;
        }
        n++;
    }
    return n;
}

/* A reply whose first hlen bytes are at r (a READ's: its header only). */
static void account(struct blast *b, struct conn *c, const unsigned char *r, size_t hlen)
{
    uint64_t t = now_ns();
    if (hlen < 28) {
        b->errors++;
        return;
    }
    uint32_t xid = be32(r);
    if (c->sent_xid[xid % RING] == xid) {
        uint64_t us = (t - c->sent_ns[xid % RING]) / 1000;
        if (us < HIST_US)
            b->hist[us]++;
        else
            b->over++;
        c->sent_xid[xid % RING] = 0;
    }
    if (c->inflight)
        c->inflight--;
    b->last_reply_ns = t;
    uint32_t vlen = be32(r + 16);
    size_t at = 20 + ((vlen + 3) & ~3u);
    if (be32(r + 4) != 1 || be32(r + 8) != 0 || at + 8 > hlen || be32(r + at) != 0 ||
        be32(r + at + 4) != 0) {
        if (!b->errors++)
            snprintf(b->err, sizeof b->err, "call failed: reply %u accept %u status %u",
                     be32(r + 8), at + 4 <= hlen ? be32(r + at) : 99,
                     at + 8 <= hlen ? be32(r + at + 4) : 99);
        return;
    }
    b->calls++;
    const unsigned char *body = r + at + 8;
    if (b->wl == WL_READ) {
        /* post_op_attr, count */
        size_t o = at + 8 + (be32(body) ? 4 + 84 : 4);
        if (o + 4 <= hlen)
            b->bytes += be32(r + o);
    } else if (b->wl == WL_READDIRPLUS) {
        b->entries += count_entries(body, r + hlen);
    }
}

/* Read what the socket has; returns 0, or an errno when the connection broke. */
static int drain_in(struct blast *b, struct conn *c, unsigned char *scratch, size_t scap)
{
    for (;;) {
        if (c->skip) {
            size_t want = c->skip < scap ? (size_t)c->skip : scap;
            ssize_t n = recv(c->fd, scratch, want, MSG_TRUNC | MSG_DONTWAIT);
            if (n < 0)
                return errno == EAGAIN ? 0 : errno;
            if (n == 0)
                return EPIPE;
            c->skip -= (uint64_t)n;
            continue;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN ? 0 : errno;
        if (n == 0)
            return EPIPE;
        c->rlen += (size_t)n;
        size_t pos = 0;
        while (c->rlen - pos >= 4) {
            uint32_t mark = be32(c->rbuf + pos);
            uint32_t rl = mark & 0x7fffffffu;
            if (!(mark & 0x80000000u)) {
                snprintf(b->err, sizeof b->err, "a reply in several fragments");
                return EPROTO;
            }
            size_t have = c->rlen - pos - 4;
            if (have >= rl) {
                account(b, c, c->rbuf + pos + 4, rl);
                pos += 4 + rl;
                continue;
            }
            if (b->wl == WL_READ) {
                if (have >= 160) {
                    /* the header is in; the data goes without a copy */
                    account(b, c, c->rbuf + pos + 4, have);
                    c->skip = rl - have;
                    pos = c->rlen;
                }
                break;
            }
            if (rl + 4 > RBUF) {
                snprintf(b->err, sizeof b->err, "a %u-byte reply", rl);
                return EPROTO;
            }
            break;
        }
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
}

/* The number at s (digits, or a size such as 1M) up to the first of the
 * characters in stop or the end, within [lo, hi]: 0, or EINVAL. */
static int number(const char *s, const char *stop, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char buf[32];
    size_t n = strcspn(s, stop);
    if (n == 0 || n >= sizeof buf)
        return EINVAL;
    memcpy(buf, s, n);
    buf[n] = 0;
    return units_size(buf, out) || *out < lo || *out > hi ? EINVAL : 0;
}

static int parse_url(const char *url, char *host, size_t hcap, char *export, size_t ecap,
                     int *nfsport, int *mntport)
{
    if (strncmp(url, "nfs://", 6))
        return EINVAL;
    const char *h = url + 6, *slash = strchr(h, '/');
    if (!slash || (size_t)(slash - h) >= hcap)
        return EINVAL;
    memcpy(host, h, (size_t)(slash - h));
    host[slash - h] = 0;
    const char *q = strchr(slash, '?');
    size_t elen = q ? (size_t)(q - slash) : strlen(slash);
    if (elen >= ecap)
        return EINVAL;
    memcpy(export, slash, elen);
    export[elen] = 0;
    const char *p;
    uint64_t n = 2049, m = 0;
    if ((p = strstr(url, "nfsport=")) && number(p + 8, "&", 1, 65535, &n))
        return EINVAL;
    if (!(p = strstr(url, "mountport=")) || number(p + 10, "&", 1, 65535, &m))
        return EINVAL;
    *nfsport = (int)n;
    *mntport = (int)m;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rpcblast [--conns N] [--depth D] [--duration S] [--bsize B] [--json]\n"
               "                getattr|read|readdirplus nfs://HOST/EXPORT?nfsport=N&mountport=M PATH\n"
               "  getattr      GETATTR of PATH, again and again\n"
               "  read         READs of --bsize bytes (default 1 MiB) through the file PATH, wrapping\n"
               "  readdirplus  the first READDIRPLUS page (32 KiB) of the directory PATH\n"
               "  --conns N    TCP connections, 1-4096 (default 1)\n"
               "  --depth D    calls in flight per connection, 1-1024 (default 32)\n"
               "  --duration S seconds of sending (default 2); then every reply is awaited\n"
               "  --timeout S  how long the replies are awaited (default 30)\n"
               "  --json       one JSON object instead of key value lines\n"
               "HOST is an IPv4 address.  Exits 1 when any call failed, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "conns", required_argument, NULL, 'c' }, { "depth", required_argument, NULL, 'd' },
        { "duration", required_argument, NULL, 't' }, { "bsize", required_argument, NULL, 'b' },
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
        { "timeout", required_argument, NULL, 'T' }, { 0 } };
    int json = 0, o;
    uint64_t nconns = 1, depth = 32, bsize = 1 << 20, duration_ms = 2000, timeout_ms = 30000;
    const char *bad = NULL;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1 && !bad) {
        switch (o) {
        case 'c': if (number(optarg, "", 1, 4096, &nconns)) bad = "--conns must be 1-4096"; break;
        case 'd': if (number(optarg, "", 1, 1024, &depth)) bad = "--depth must be 1-1024"; break;
        case 'b': if (number(optarg, "", 1, 4u << 20, &bsize)) bad = "--bsize must be 1 byte to 4M"; break;
        case 't':
            if (units_duration_ms(optarg, &duration_ms) || !duration_ms)
                bad = "--duration must be a duration of 1 ms or more (2, 0.5, 300ms)";
            break;
        case 'T':
            if (units_duration_ms(optarg, &timeout_ms) || !timeout_ms)
                bad = "--timeout must be a duration of 1 ms or more (30, 1m)";
            break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!bad && argc - optind != 3)
        bad = "needs a workload, a url and a path";
    int conns = (int)nconns;
    struct blast b = { .depth = (unsigned)depth, .bsize = (uint32_t)bsize };
    if (bad) {
        fprintf(stderr, "rpcblast: %s\n", bad);
        usage(stderr);
        return 2;
    }
    const char *w = argv[optind];
    if (!strcmp(w, "getattr")) b.wl = WL_GETATTR;
    else if (!strcmp(w, "read")) b.wl = WL_READ;
    else if (!strcmp(w, "readdirplus")) b.wl = WL_READDIRPLUS;
    else { fprintf(stderr, "rpcblast: unknown workload '%s'\n", w); return 2; }
    char host[64], export[1024];
    int nfsport, mntport;
    if (parse_url(argv[optind + 1], host, sizeof host, export, sizeof export, &nfsport, &mntport)) {
        fprintf(stderr, "rpcblast: bad url '%s' (need nfs://IPV4/EXPORT?nfsport=N&mountport=M)\n",
                argv[optind + 1]);
        return 2;
    }
    int rc = 1, ep = -1;
    b.auth = authunix_create_default();
    b.hist = calloc(HIST_US, sizeof *b.hist);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    unsigned char *scratch = malloc(4 << 20);
    for (int i = 0; cs && i < conns; i++)
        cs[i].fd = -1;
    if (!b.auth || !b.hist || !cs || !scratch) {
        fprintf(stderr, "rpcblast: out of memory\n");
        goto done;
    }
    if (resolve(&b, host, nfsport, mntport, export, argv[optind + 2])) {
        fprintf(stderr, "rpcblast: %s\n", b.err);
        goto done;
    }
    if (b.wl == WL_READ && b.file_size < b.bsize) {
        fprintf(stderr, "rpcblast: %s is smaller than one READ (%u bytes)\n", argv[optind + 2], b.bsize);
        goto done;
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "rpcblast: epoll: %s\n", strerror(errno));
        goto done;
    }
    for (int i = 0; i < conns; i++) {
        struct conn *c = &cs[i];
        c->id = (uint32_t)i + 1;
        c->fd = tcp_connect(host, nfsport);
        c->rbuf = malloc(RBUF);
        if (c->fd < 0 || !c->rbuf) {
            fprintf(stderr, "rpcblast: connection %d: %s\n", i, c->fd < 0 ? strerror(-c->fd) : "no memory");
            goto done;
        }
        struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t start = now_ns(), stop = start + duration_ms * 1000000u, drain_until = 0;
    for (int i = 0; i < conns; i++) {
        fill(&b, &cs[i]);
        flush_out(&cs[i]);
    }
    rc = 0;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t t = now_ns();
        if (!b.stopping && t >= stop) {
            b.stopping = true;
            drain_until = t + timeout_ms * 1000000u;
        }
        if (b.stopping) {
            unsigned left = 0;
            for (int i = 0; i < conns; i++)
                left += cs[i].inflight;
            if (!left)
                break;
            if (t >= drain_until) {
                snprintf(b.err, sizeof b.err, "%u calls unanswered %.3f s after the end", left,
                         timeout_ms / 1000.0);
                rc = 1;
                break;
            }
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            int err = 0;
            if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                err = drain_in(&b, c, scratch, 4 << 20);
            if (!err) {
                fill(&b, c);
                err = flush_out(c);
            }
            if (err) {
                if (!b.err[0])
                    snprintf(b.err, sizeof b.err, "connection %u: %s", c->id, strerror(err));
                rc = 1;
                goto out;
            }
        }
    }
out:;
    uint64_t end = b.last_reply_ns ? b.last_reply_ns : now_ns();
    double secs = (double)(end - start) / 1e9;
    /* p99 in us: the first bucket by which 99 % were in (HIST_US when only
     * the latencies past the histogram reach it) */
    uint64_t total = b.over, seen = 0, p99 = 0;
    for (size_t i = 0; i < HIST_US; i++)
        total += b.hist[i];
    if (total) {
        for (p99 = 0; p99 < HIST_US && (seen += b.hist[p99]) * 100 < total * 99; p99++)
            ;
    }
    if (b.errors && !rc)
        rc = 1;
    if (json)
        printf("{\"workload\":\"%s\",\"calls\":%llu,\"ops\":%llu,\"ops_per_s\":%.1f,\"bytes\":%llu,"
               "\"mb_per_s\":%.1f,\"entries\":%llu,\"lat_p99_ms\":%.3f,\"errors\":%llu,"
               "\"start_ns\":%llu,\"end_ns\":%llu}\n",
               w, (unsigned long long)b.calls, (unsigned long long)b.calls, b.calls / secs,
               (unsigned long long)b.bytes, b.bytes / secs / 1e6, (unsigned long long)b.entries,
               p99 / 1000.0, (unsigned long long)b.errors,
               (unsigned long long)start, (unsigned long long)end);
    else
        printf("workload %s\ncalls %llu\nops_per_s %.1f\nmb_per_s %.1f\nentries_per_s %.1f\n"
               "lat_p99_ms %.3f\nerrors %llu\nstart_ns %llu\nend_ns %llu\n",
               w, (unsigned long long)b.calls, b.calls / secs, b.bytes / secs / 1e6,
               b.entries / secs, p99 / 1000.0, (unsigned long long)b.errors,
               (unsigned long long)start, (unsigned long long)end);
    if (rc)
        fprintf(stderr, "rpcblast: %s\n", b.err[0] ? b.err : "calls failed");
done:
    for (int i = 0; cs && i < conns; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].rbuf);
    }
    free(cs);
    free(scratch);
    free(b.hist);
    if (b.auth)
        auth_destroy(b.auth);
    if (ep >= 0)
        close(ep);
    return rc;
}
