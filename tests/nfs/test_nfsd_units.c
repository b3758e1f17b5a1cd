/* test_nfsd_units.c: nfsd's pure parts without a network: tarnfs.conf and
 * export matching, the MAC-protected file handles with their key file, and
 * the hand-unrolled READDIRPLUS encoder against rpcgen's. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nfsd/config.h"
#include "nfsd/drc.h"
#include "nfsd/fhandle.h"
#include "nfsd/listcache.h"
#include "nfsd/metrics.h"
#include "nfsd/nfs3_xdr_fast.h"

static struct sockaddr_in v4(const char *a, int port)
{
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, a, &s.sin_addr);
    return s;
}

static char *write_conf(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tarnfs-units-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(settings_and_exports_are_read_from_the_config_file)
{
    char *p = write_conf("# sample\ncache = /var/cache/x\nsource = s3://b/p\n"
                         "cache_limit = 10G\nlist_ttl = 250ms\nnfs_port = 3049\n"
                         "rpcbind = no\nthreads = 3\nlisteners = 5\nhigh_watermark = 80\n"
                         "max_file_size = 1T\ndir_cache = 16M\n"
                         "run_cache = 32M\nopen_runs = 8\n"
                         "export / 10.0.0.0/8(rw,no_root_squash,anonuid=5) *(ro)\n"
                         "export /run1 192.0.2.7\n");
    struct nfsd_config cfg;
    nfsd_config_defaults(&cfg);
    char err[256] = "";
    ck_assert_int_eq(nfsd_config_load(p, &cfg, err, sizeof err), 0);
    unlink(p);
    ck_assert_str_eq(cfg.vfs.cache_dir, "/var/cache/x");
    ck_assert_str_eq(cfg.vfs.source, "s3://b/p");
    ck_assert_uint_eq(cfg.vfs.cache_limit_bytes, 10ULL << 30);
    ck_assert_uint_eq(cfg.vfs.max_file_size, 1ULL << 40);
    ck_assert_uint_eq(cfg.vfs.dir_cache_bytes, 16ULL << 20);
    ck_assert_uint_eq(cfg.vfs.run_cache_bytes, 32ULL << 20);
    ck_assert_uint_eq(cfg.vfs.open_runs, 8);
    ck_assert_uint_eq(cfg.vfs.list_ttl_ms, 250);
    ck_assert_int_eq(cfg.nfs_port, 3049);
    ck_assert_int_eq(cfg.mount_port, 20048);
    ck_assert(!cfg.rpcbind);
    ck_assert_uint_eq(cfg.threads, 3);
    ck_assert_uint_eq(cfg.listeners, 5);
    ck_assert_uint_eq(cfg.vfs.high_watermark_pct, 80);
    ck_assert_uint_eq(cfg.exports->n, 2);
    const struct export *root = &cfg.exports->v[0];
    struct sockaddr_in inside = v4("10.1.2.3", 900), outside = v4("192.168.1.1", 40000);
    const struct export_opts *o = export_match(root, (struct sockaddr *)&inside);
    ck_assert_ptr_nonnull(o);
    ck_assert(o->rw && !o->root_squash);
    ck_assert_uint_eq(o->anonuid, 5);
    o = export_match(root, (struct sockaddr *)&outside);
    ck_assert_ptr_nonnull(o);
    ck_assert(!o->rw && o->root_squash && !o->secure);
    ck_assert_uint_eq(o->anonuid, 65534);
    const struct export *run1 = &cfg.exports->v[1];
    ck_assert_str_eq(run1->path, "/run1");
    ck_assert_ptr_null(export_match(run1, (struct sockaddr *)&inside));
    ck_assert(exports_any_rw(cfg.exports));
    ck_assert_ptr_eq(exports_by_id(cfg.exports, run1->id), run1);
    ck_assert_uint_ne(root->id, run1->id);
    nfsd_config_free(&cfg);
}
END_TEST

START_TEST(v4_mapped_v6_peers_match_v4_patterns)
{
    struct exports *ex;
    ck_assert_int_eq(exports_default(false, &ex), 0);
    char err[128];
    ck_assert_int_eq(exports_add_line(ex, "/only 127.0.0.0/8(rw) ::1", err, sizeof err), 0);
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:127.0.0.5", &s6.sin6_addr);
    const struct export_opts *o = export_match(&ex->v[1], (struct sockaddr *)&s6);
    ck_assert_ptr_nonnull(o);
    ck_assert(o->rw);
    inet_pton(AF_INET6, "::1", &s6.sin6_addr);
    ck_assert_ptr_nonnull(export_match(&ex->v[1], (struct sockaddr *)&s6));
    inet_pton(AF_INET6, "::2", &s6.sin6_addr);
    ck_assert_ptr_null(export_match(&ex->v[1], (struct sockaddr *)&s6));
    exports_unref(ex);
}
END_TEST

START_TEST(the_most_specific_client_pattern_wins_as_in_exports_5)
{
    struct exports *ex;
    ck_assert_int_eq(exports_default(false, &ex), 0);
    char err[128];
    /* tarnfs.conf(5)'s own example, then the same patterns reversed. */
    ck_assert_int_eq(exports_add_line(ex, "/ex 10.1.0.0/16(ro) 10.1.5.20(rw,no_root_squash) "
                                      "*(ro,all_squash)", err, sizeof err), 0);
    ck_assert_int_eq(exports_add_line(ex, "/rev *(ro,all_squash) 10.1.5.20(rw,no_root_squash) "
                                      "10.1.0.0/16(ro) 10.0.0.0/8(rw,all_squash)",
                                      err, sizeof err), 0);
    ck_assert_int_eq(exports_add_line(ex, "/host 127.0.0.0/8(ro) localhost(rw)",
                                      err, sizeof err), 0);
    struct sockaddr_in host = v4("10.1.5.20", 900), net = v4("10.1.9.9", 900),
                       wide = v4("10.2.0.1", 900), other = v4("192.0.2.1", 900),
                       lo = v4("127.0.0.1", 900);
    for (size_t i = 1; i <= 2; i++) {
        const struct export *e = &ex->v[i];
        const struct export_opts *o = export_match(e, (struct sockaddr *)&host);
        ck_assert(o && o->rw && !o->root_squash && !o->all_squash);
        o = export_match(e, (struct sockaddr *)&net);
        ck_assert(o && !o->rw && o->root_squash && !o->all_squash);
        o = export_match(e, (struct sockaddr *)&other);
        ck_assert(o && !o->rw && o->all_squash);
    }
    const struct export_opts *o = export_match(&ex->v[2], (struct sockaddr *)&wide);
    ck_assert(o && o->rw && o->all_squash);        /* /8 beats '*' */
    o = export_match(&ex->v[3], (struct sockaddr *)&lo);
    ck_assert(o && o->rw);                          /* a host name beats a CIDR */
    exports_unref(ex);
}
END_TEST

START_TEST(dump_and_export_admit_only_hosts_some_export_lists)
{
    struct exports *ex = calloc(1, sizeof *ex);
    ck_assert_ptr_nonnull(ex);
    atomic_init(&ex->refs, 1);
    char err[128];
    ck_assert_int_eq(exports_add_line(ex, "/a 10.9.9.9(ro)", err, sizeof err), 0);
    ck_assert_int_eq(exports_add_line(ex, "/b 192.0.2.0/24(rw)", err, sizeof err), 0);
    struct sockaddr_in in1 = v4("10.9.9.9", 900), in2 = v4("192.0.2.77", 900),
                       out = v4("127.0.0.1", 900);
    ck_assert(exports_admit(ex, (struct sockaddr *)&in1));
    ck_assert(exports_admit(ex, (struct sockaddr *)&in2));
    ck_assert(!exports_admit(ex, (struct sockaddr *)&out));
    exports_unref(ex);
}
END_TEST

static struct rpc_reply_out reply_of(uint32_t word, size_t len)
{
    struct rpc_reply_out r = { 0 };
    r.buf = calloc(1, RPC_REPLY_HEADROOM + len);
    memcpy(r.buf + RPC_REPLY_HEADROOM, &word, 4);
    r.len = len;
    return r;
}

START_TEST(the_drc_replays_the_first_reply_and_stays_bounded)
{
    static struct drc d;
    drc_init(&d);
    struct drc_key k = { .xid = 1, .prog = 100003, .vers = 3, .proc = 9, .body = 42 };
    struct rpc_reply_out out = { 0 };
    ck_assert_int_eq(drc_begin(&d, &k, &out), DRC_MISS);
    ck_assert_int_eq(drc_begin(&d, &k, &out), DRC_BUSY);    /* still running */
    struct rpc_reply_out r = reply_of(0xabcd, 100);
    drc_done(&d, &k, &r);
    free(r.buf);
    ck_assert_int_eq(drc_begin(&d, &k, &out), DRC_HIT);
    ck_assert_uint_eq(out.len, 100);
    uint32_t w;
    memcpy(&w, out.buf + RPC_REPLY_HEADROOM, 4);
    ck_assert_uint_eq(w, 0xabcd);
    free(out.buf);
    struct drc_key other = k;
    other.body = 43;                                        /* other arguments */
    ck_assert_int_eq(drc_begin(&d, &other, &out), DRC_MISS);
    drc_abandon(&d, &other);                                /* e.g. JUKEBOX */
    ck_assert_int_eq(drc_begin(&d, &other, &out), DRC_MISS);
    drc_abandon(&d, &other);
    /* Many calls: entries and bytes stay within their caps. */
    for (uint32_t i = 0; i < 3 * DRC_MAX_ENTRIES; i++) {
        struct drc_key x = k;
        x.xid = 1000 + i;
        ck_assert_int_eq(drc_begin(&d, &x, &out), DRC_MISS);
        r = reply_of(i, 2000);
        drc_done(&d, &x, &r);
        free(r.buf);
        ck_assert_uint_le(d.n, DRC_MAX_ENTRIES);
        ck_assert_uint_le(d.bytes, DRC_MAX_BYTES);
    }
    ck_assert_int_eq(drc_begin(&d, &k, &out), DRC_MISS);    /* the oldest went first */
    drc_abandon(&d, &k);
    drc_free(&d);
}
END_TEST

START_TEST(prefetch_defaults_to_auto_and_takes_each_policy)
{
    static const struct { const char *text; bool whole, autop; uint64_t after; } c[] = {
        { "", false, true, 0 },
        { "prefetch = none\n", false, false, 0 },
        { "prefetch = whole\n", true, false, 0 },
        { "prefetch = whole\nprefetch = auto\nprefetch_after = 8M\n", false, true, 8ULL << 20 },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *p = write_conf(c[i].text);
        struct nfsd_config cfg;
        nfsd_config_defaults(&cfg);
        char err[256] = "";
        ck_assert_int_eq(nfsd_config_load(p, &cfg, err, sizeof err), 0);
        unlink(p);
        ck_assert_msg(cfg.vfs.prefetch_whole == c[i].whole && cfg.vfs.prefetch_auto == c[i].autop,
                      "'%s'", c[i].text);
        ck_assert_uint_eq(cfg.vfs.prefetch_after, c[i].after);
        nfsd_config_free(&cfg);
    }
}
END_TEST

START_TEST(bad_config_lines_name_the_line_and_the_reason)
{
    static const char *const bad[][2] = {
        { "export / *(ro,fast)\n", ":1: unknown export option 'fast'" },
        { "\n\nexport relative *(ro)\n", ":3: export needs an absolute path" },
        { "export / 10.0.0.0/33(ro)\n", "prefix /33 too long" },
        { "export /\n", "lists no clients" },
        { "cache_limit = lots\n", "bad value 'lots' for cache_limit" },
        { "colour = blue\n", "unknown setting 'colour'" },
        { "max_file_size = 2048T\n", "bad value '2048T' for max_file_size" },
        { "just words\n", "expected 'key = value'" },
        { "export / *(anonuid=x)\n", "bad number 'x' for anonuid" },
        { "export / *(ro\n", "missing ')'" },
        { "prefetch = some\n", "bad value 'some' for prefetch" },
        { "prefetch_after = 0\n", "bad value '0' for prefetch_after" },
        { "dir_cache = 2048G\n", "bad value '2048G' for dir_cache" },
        { "run_cache = 512k\n", "bad value '512k' for run_cache" },
        { "open_runs = 0\n", "bad value '0' for open_runs" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = write_conf(bad[i][0]);
        struct nfsd_config cfg;
        nfsd_config_defaults(&cfg);
        char err[256] = "";
        ck_assert_int_eq(nfsd_config_load(p, &cfg, err, sizeof err), EINVAL);
        ck_assert_msg(strstr(err, bad[i][1]) != NULL, "'%s' gave '%s'", bad[i][0], err);
        unlink(p);
        nfsd_config_free(&cfg);
    }
}
END_TEST

/* A READDIRPLUS reply of n entries covering every shape: name lengths
 * 1..8 (all paddings), entries with and without attributes and handle,
 * handles of several lengths, 64-bit fields with both halves set. */
static entryplus3 rdp_ents[40];
static char rdp_names[40][16];
static char rdp_fh[40][64];

static void rdp_sample(READDIRPLUS3res *r, int n)
{
    memset(r, 0, sizeof *r);
    r->status = NFS3_OK;
    READDIRPLUS3resok *ok = &r->READDIRPLUS3res_u.resok;
    ok->dir_attributes.attributes_follow = TRUE;
    ok->dir_attributes.post_op_attr_u.attributes.fileid = 42;
    memcpy(ok->cookieverf, "verifier", 8);
    ok->reply.eof = n % 2;
    entryplus3 **tail = &ok->reply.entries;
    for (int i = 0; i < n; i++) {
        entryplus3 *e = &rdp_ents[i];
        memset(e, 0, sizeof *e);
        int nl = 1 + i % 8;
        memset(rdp_names[i], 'a' + i % 26, (size_t)nl);
        e->fileid = UINT64_C(0x0123456789abcdef) + (uint64_t)i;
        e->name.filename3_len = (u_int)nl;
        e->name.filename3_val = rdp_names[i];
        e->cookie = (UINT64_C(7) << 40) + (uint64_t)i;
        if (i % 3) {
            fattr3 *a = &e->name_attributes.post_op_attr_u.attributes;
            e->name_attributes.attributes_follow = TRUE;
            a->type = NF3REG + i % 3;
            a->mode = 0644 + (u_int)i;
            a->nlink = 1 + (u_int)i;
            a->uid = 1000;
            a->gid = 100 + (u_int)i;
            a->size = (UINT64_C(1) << 33) + (uint64_t)i;
            a->used = 4096 * (uint64_t)i;
            a->rdev.specdata1 = 8;
            a->rdev.specdata2 = (u_int)i;
            a->fsid = UINT64_C(0xfeedface00000001);
            a->fileid = e->fileid;
            a->atime.seconds = 1700000000u + (u_int)i;
            a->atime.nseconds = 999999999u;
            a->mtime.seconds = 1600000000u;
            a->mtime.nseconds = (u_int)i;
            a->ctime.seconds = 1500000000u;
            a->ctime.nseconds = 1;
        }
        if (i % 4) {
            int fhl = 8 + (i * 5) % 57;
            for (int k = 0; k < fhl; k++)
                rdp_fh[i][k] = (char)(k * 31 + i);
            e->name_handle.handle_follows = TRUE;
            e->name_handle.post_op_fh3_u.handle.data.data_len = (u_int)fhl;
            e->name_handle.post_op_fh3_u.handle.data.data_val = rdp_fh[i];
        }
        *tail = e;
        tail = &e->nextentry;
    }
}

/* Encode with proc into buf (+off bytes, to make the stream unaligned). */
static u_int rdp_encode(xdrproc_t proc, READDIRPLUS3res *r, char *buf,
                        size_t off, u_int cap, bool_t *ok)
{
    XDR x;
    xdrmem_create(&x, buf + off, cap, XDR_ENCODE);
    *ok = proc(&x, r);
    u_int len = xdr_getpos(&x);
    xdr_destroy(&x);
    return len;
}

START_TEST(readdirplus_fast_encoder_gives_rpcgens_bytes)
{
    static char want[16384], got[16384 + 8];
    READDIRPLUS3res r;
    for (int n = 0; n <= 40; n += 1 + n / 4) {
        rdp_sample(&r, n);
        bool_t wok, gok;
        u_int wl = rdp_encode((xdrproc_t)xdr_READDIRPLUS3res, &r, want, 0,
                              sizeof want, &wok);
        ck_assert(wok);
        /* Aligned (entries through xdr_inline) and unaligned (libtirpc
         * gives no inline window: rpcgen's per-field path). */
        for (size_t off = 0; off <= 1; off++) {
            memset(got, 0x55, sizeof got);
            u_int gl = rdp_encode((xdrproc_t)nfsd_xdr_READDIRPLUS3res, &r, got,
                                  off, sizeof want, &gok);
            ck_assert(gok);
            ck_assert_uint_eq(gl, wl);
            ck_assert_msg(memcmp(got + off, want, wl) == 0,
                          "%d entries, offset %zu: bytes differ", n, off);
        }
        /* No room: both fail. */
        if (wl > 8) {
            rdp_encode((xdrproc_t)xdr_READDIRPLUS3res, &r, want, 0, wl - 8, &wok);
            rdp_encode((xdrproc_t)nfsd_xdr_READDIRPLUS3res, &r, got, 0, wl - 8, &gok);
            ck_assert(!wok && !gok);
        }
    }
    /* An error reply is rpcgen's too. */
    memset(&r, 0, sizeof r);
    r.status = NFS3ERR_BAD_COOKIE;
    bool_t wok, gok;
    u_int wl = rdp_encode((xdrproc_t)xdr_READDIRPLUS3res, &r, want, 0, sizeof want, &wok);
    u_int gl = rdp_encode((xdrproc_t)nfsd_xdr_READDIRPLUS3res, &r, got, 0, sizeof want, &gok);
    ck_assert(wok && gok);
    ck_assert_uint_eq(gl, wl);
    ck_assert_int_eq(memcmp(got, want, wl), 0);
}
END_TEST

START_TEST(handles_round_trip_and_reject_tampering)
{
    char dir[] = "/tmp/tarnfs-units-key-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct fh_key k1, k2, k3;
    ck_assert_int_eq(fh_key_load(dir, &k1), 0);
    ck_assert_int_eq(fh_key_load(dir, &k2), 0);          /* same file, same key */
    ck_assert_mem_eq(k1.k, k2.k, FH_KEY_LEN);
    char keypath[128];
    snprintf(keypath, sizeof keypath, "%s/handle.key", dir);
    struct stat st;
    ck_assert_int_eq(stat(keypath, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    for (int len = 0; len <= VFS_ID_MAX; len++) {
        struct vfs_id id = { .len = (uint8_t)len }, back;
        for (int i = 0; i < len; i++)
            id.b[i] = (uint8_t)(i * 31 + len);
        uint8_t fh[FH_MAX];
        size_t n = fh_encode(&k1, 42, &id, fh);
        ck_assert_uint_eq(n % 4, 0);
        ck_assert_uint_le(n, 64);
        uint8_t exp_id = 0;
        ck_assert_int_eq(fh_decode(&k1, fh, n, &exp_id, &back), 0);
        ck_assert_uint_eq(exp_id, 42);
        ck_assert_uint_eq(back.len, id.len);
        ck_assert_mem_eq(back.b, id.b, (size_t)len);
        fh[n - 1] ^= 0x80;                                /* MAC bit */
        ck_assert_int_eq(fh_decode(&k1, fh, n, &exp_id, &back), ESTALE);
        fh[n - 1] ^= 0x80;
        fh[2] ^= 1;                                       /* export id */
        ck_assert_int_eq(fh_decode(&k1, fh, n, &exp_id, &back), ESTALE);
        fh[2] ^= 1;
        ck_assert_int_eq(fh_decode(&k1, fh, n - 4, &exp_id, &back), EBADMSG);
        ck_assert_int_eq(fh_decode(&k1, fh, n - 1, &exp_id, &back), EBADMSG);
        fh[0] = 7;                                        /* unknown version */
        ck_assert_int_eq(fh_decode(&k1, fh, n, &exp_id, &back), EBADMSG);
    }
    /* Another cache (another key) cannot use these handles. */
    unlink(keypath);
    ck_assert_int_eq(fh_key_load(dir, &k3), 0);
    ck_assert(memcmp(k1.k, k3.k, FH_KEY_LEN) != 0);
    struct vfs_id id = { .len = 8, .b = "runinode" }, back;
    uint8_t fh[FH_MAX], exp_id;
    size_t n = fh_encode(&k1, 1, &id, fh);
    ck_assert_int_eq(fh_decode(&k3, fh, n, &exp_id, &back), ESTALE);
    unlink(keypath);
    rmdir(dir);
}
END_TEST

START_TEST(handle_mac_is_siphash24_with_reference_vectors)
{
    /* Vectors from the SipHash paper and its reference implementation:
     * key 00..0f, messages 00..(n-1). */
    uint8_t key[16], msg[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    ck_assert_uint_eq(fh_siphash24(key, msg, 0), UINT64_C(0x726fdb47dd0e0e31));
    ck_assert_uint_eq(fh_siphash24(key, msg, 15), UINT64_C(0xa129ca6149be45e5));
    /* Both halves of the 256-bit key count: changing a byte of either
     * half makes the handle stale. */
    struct fh_key k = { { 0 } };
    for (int i = 0; i < FH_KEY_LEN; i++)
        k.k[i] = (uint8_t)(i * 7 + 1);
    struct vfs_id id = { .len = 12, .b = "run-0042ino" }, back;
    uint8_t fh[FH_MAX], exp_id;
    size_t n = fh_encode(&k, 3, &id, fh);
    for (int pos = 0; pos < FH_KEY_LEN; pos += 20) {
        struct fh_key other = k;
        other.k[pos] ^= 1;
        ck_assert_int_eq(fh_decode(&other, fh, n, &exp_id, &back), ESTALE);
    }
    ck_assert_int_eq(fh_decode(&k, fh, n, &exp_id, &back), 0);
    fh[0] = 1;              /* a handle from the HMAC-SHA256 days is stale */
    ck_assert_int_eq(fh_decode(&k, fh, n, &exp_id, &back), ESTALE);
}
END_TEST

START_TEST(metrics_listen_takes_address_literals_with_a_port_only)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    ck_assert_int_eq(nfsd_parse_sockaddr("127.0.0.1:9100", &ss, &sl), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_int_eq(sl, sizeof(struct sockaddr_in));
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9100);
    ck_assert_int_eq(nfsd_parse_sockaddr("[::1]:0", &ss, &sl), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert_int_eq(sl, sizeof(struct sockaddr_in6));
    ck_assert_int_eq(nfsd_parse_sockaddr("[fe80::1]:65535", &ss, &sl), 0);
    const char *bad[] = { "", ":9100", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:9x", "localhost:9100", "::1:9100",
                          "[::1]", "[::1]9100", "[127.0.0.1]:9100", "1.2.3:80",
                          "[::1:9100", "127.0.0.1:000009100" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(nfsd_parse_sockaddr(bad[i], &ss, &sl) == EINVAL, "accepted '%s'", bad[i]);
}
END_TEST

#define COUNT_THREADS 8
#define COUNT_CALLS   20000

static void *count_calls(void *arg)
{
    struct nfsd_metrics *m = arg;
    for (int i = 0; i < COUNT_CALLS; i++) {
        metrics_call(m, METRICS_NFS, 1, 0, 30000, 0, 0);          /* GETATTR, 30 us */
        metrics_call(m, METRICS_NFS, 6, 0, 2000000, 4096, 0);     /* READ, 2 ms */
        metrics_call(m, METRICS_NFS, 3, 2, 1000, 0, 0);           /* LOOKUP NOENT */
    }
    metrics_call(m, METRICS_MOUNT, 1, 13, 1000, 0, 0);            /* MNT ACCES */
    metrics_call(m, METRICS_NFS, 99, 0, 1000, 0, 0);              /* unknown: ignored */
    return NULL;
}

/* The value of the sample named exactly series in text, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

START_TEST(metrics_counters_lose_no_call_across_threads)
{
    struct nfsd_metrics *m;
    ck_assert_int_eq(metrics_new(&m), 0);
    pthread_t th[COUNT_THREADS];
    for (int i = 0; i < COUNT_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, count_calls, m), 0);
    for (int i = 0; i < COUNT_THREADS; i++)
        pthread_join(th[i], NULL);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    metrics_render(m, NULL, NULL, f);
    ck_assert_int_eq(fclose(f), 0);
    double all = (double)COUNT_THREADS * COUNT_CALLS;
    ck_assert_double_eq(sample(text, "tarnfs_nfs_calls_total{proc=\"GETATTR\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_calls_total{proc=\"READ\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_read_bytes_total"), all * 4096);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_errors_total{proc=\"LOOKUP\",status=\"NFS3ERR_NOENT\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_errors_total{proc=\"GETATTR\",status=\"NFS3ERR_NOENT\"}"), -1);
    ck_assert_double_eq(sample(text, "tarnfs_mount_errors_total{proc=\"MNT\",status=\"MNT3ERR_ACCES\"}"), COUNT_THREADS);
    /* 30 us is under the first bound (50 us); 2 ms is in the 2.5 ms bucket. */
    ck_assert_double_eq(sample(text, "tarnfs_nfs_call_duration_seconds_bucket{proc=\"GETATTR\",le=\"5e-05\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_call_duration_seconds_bucket{proc=\"READ\",le=\"0.001\"}"), 0);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_call_duration_seconds_bucket{proc=\"READ\",le=\"0.0025\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_call_duration_seconds_bucket{proc=\"READ\",le=\"+Inf\"}"), all);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_call_duration_seconds_count{proc=\"READ\"}"), all);
    ck_assert_double_eq_tol(sample(text, "tarnfs_nfs_call_duration_seconds_sum{proc=\"READ\"}"),
                            all * 0.002, 1e-6);
    ck_assert_double_eq(sample(text, "tarnfs_nfs_calls_total{proc=\"WRITE\"}"), 0);
    free(text);
    metrics_free(m);
}
END_TEST

START_TEST(the_handle_cache_gives_fh_encodes_bytes_and_never_another_keys)
{
    struct fh_key k = { { 0 } }, k2;
    for (int i = 0; i < FH_KEY_LEN; i++)
        k.k[i] = (uint8_t)(i * 13 + 5);
    k2 = k;
    k2.k[31] ^= 0x80;
    struct fh_cache *fc, *fc2;
    ck_assert_int_eq(fh_cache_new(&k, &fc), 0);
    ck_assert_int_eq(fh_cache_new(&k2, &fc2), 0);
    /* More ids than slots (65,536), twice over: misses, hits, slots taken
     * over by other ids; ids of every length; two exports. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 100000; i++) {
            struct vfs_id id = { .len = (uint8_t)(1 + i % VFS_ID_MAX) };
            for (int b = 0; b < id.len; b++)
                id.b[b] = (uint8_t)((unsigned)i >> (b % 3 * 8)) ^ (uint8_t)b;
            uint8_t exp_id = (uint8_t)(i % 2), got_exp;
            uint8_t want[FH_MAX], got[FH_MAX];
            size_t wn = fh_encode(&k, exp_id, &id, want);
            size_t gn = fh_cache_encode(fc, exp_id, &id, got);
            ck_assert_uint_eq(gn, wn);
            if (memcmp(got, want, FH_MAX))
                ck_abort_msg("id %d (round %d): cached handle differs", i, round);
            struct vfs_id back;
            if (fh_decode(&k, got, gn, &got_exp, &back) || back.len != id.len)
                ck_abort_msg("id %d: cached handle does not decode", i);
            /* The other key's cache: its own MACs, stale under k. */
            gn = fh_cache_encode(fc2, exp_id, &id, got);
            if (fh_decode(&k, got, gn, &got_exp, &back) != ESTALE ||
                fh_decode(&k2, got, gn, &got_exp, &back) != 0)
                ck_abort_msg("id %d: a MAC crossed keys", i);
        }
    fh_cache_free(fc);
    fh_cache_free(fc2);
    fh_cache_free(NULL);
}
END_TEST

/* The listing cache gives back exactly what was put for the same key only
 * (any field of the key differing is a miss), replaces, keeps within its
 * budget by dropping the least recently used, and refuses oversized pages. */
START_TEST(the_listing_cache_answers_only_its_exact_key_within_its_budget)
{
    struct listcache *lc;
    ck_assert_int_eq(listcache_new(16u << 20, &lc), 0);     /* 1 MiB a shard */
    struct listcache_key k;
    memset(&k, 0, sizeof k);
    k.dir.len = 10;
    memcpy(k.dir.b, "F12345678r", 10);
    k.stamp = 7;
    k.cookie = 3;
    k.limit = 65536;
    k.dir_limit = 8192;
    k.exports = 1;
    k.export_id = 2;
    k.plus = true;
    uint8_t page[1000];
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = (uint8_t)i;
    ck_assert_int_eq(listcache_put(lc, &k, page, sizeof page), 0);
    uint8_t *got;
    size_t len;
    ck_assert_int_eq(listcache_get(lc, &k, &got, &len), 0);
    ck_assert_uint_eq(len, sizeof page);
    ck_assert_mem_eq(got, page, sizeof page);
    free(got);
    /* each field of the key matters */
    struct listcache_key o[10];
    for (int i = 0; i < 10; i++)
        o[i] = k;
    o[0].stamp++;
    o[1].cookie++;
    o[2].verf++;
    o[3].limit--;
    o[4].dir_limit--;
    o[5].exports++;
    o[6].export_id++;
    o[7].plus = false;
    o[8].dir.b[9] = 's';
    o[9].dir.len = 9;
    for (int i = 0; i < 10; i++)
        ck_assert_msg(listcache_get(lc, &o[i], &got, &len) == ENOENT, "key change %d hit", i);
    /* a second put replaces */
    page[0] = 0xee;
    ck_assert_int_eq(listcache_put(lc, &k, page, 10), 0);
    ck_assert_int_eq(listcache_get(lc, &k, &got, &len), 0);
    ck_assert_uint_eq(len, 10);
    ck_assert_uint_eq(got[0], 0xee);
    free(got);
    /* a page over 1/128 of the budget is not kept */
    static uint8_t big[(16u << 20) / 128 + 1];
    struct listcache_key b = k;
    b.cookie = 99;
    ck_assert_int_eq(listcache_put(lc, &b, big, sizeof big), EFBIG);
    ck_assert_int_eq(listcache_get(lc, &b, &got, &len), ENOENT);
    /* 64 MiB of 64 KiB pages into 16 MiB: the budget holds, the newest stay */
    static uint8_t pg[64 << 10];
    for (uint64_t c = 1000; c < 2024; c++) {
        b.cookie = c;
        ck_assert_int_eq(listcache_put(lc, &b, pg, sizeof pg), 0);
    }
    struct listcache_usage u;
    listcache_usage(lc, &u);
    ck_assert_uint_le(u.bytes, 16u << 20);
    ck_assert_uint_gt(u.bytes, 8u << 20);
    b.cookie = 2023;
    ck_assert_int_eq(listcache_get(lc, &b, &got, &len), 0);
    free(got);
    b.cookie = 1000;
    ck_assert_int_eq(listcache_get(lc, &b, &got, &len), ENOENT);
    listcache_usage(lc, &u);
    ck_assert_uint_eq(u.hits, 3);
    ck_assert_uint_eq(u.misses, 12);
    listcache_free(lc);
    /* a budget of 0 keeps nothing */
    ck_assert_int_eq(listcache_new(0, &lc), 0);
    ck_assert_int_eq(listcache_put(lc, &k, page, 10), EFBIG);
    listcache_free(lc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nfsd-units");
    TCase *t = tcase_create("units");
    tcase_set_timeout(t, 120);     /* the DRC case takes ~1 s of CPU; a loaded host stretches it */
    tcase_add_test(t, settings_and_exports_are_read_from_the_config_file);
    tcase_add_test(t, v4_mapped_v6_peers_match_v4_patterns);
    tcase_add_test(t, bad_config_lines_name_the_line_and_the_reason);
    tcase_add_test(t, prefetch_defaults_to_auto_and_takes_each_policy);
    tcase_add_test(t, the_drc_replays_the_first_reply_and_stays_bounded);
    tcase_add_test(t, the_most_specific_client_pattern_wins_as_in_exports_5);
    tcase_add_test(t, dump_and_export_admit_only_hosts_some_export_lists);
    tcase_add_test(t, readdirplus_fast_encoder_gives_rpcgens_bytes);
    tcase_add_test(t, handles_round_trip_and_reject_tampering);
    tcase_add_test(t, handle_mac_is_siphash24_with_reference_vectors);
    tcase_add_test(t, metrics_listen_takes_address_literals_with_a_port_only);
    tcase_add_test(t, metrics_counters_lose_no_call_across_threads);
    tcase_add_test(t, the_handle_cache_gives_fh_encodes_bytes_and_never_another_keys);
    tcase_add_test(t, the_listing_cache_answers_only_its_exact_key_within_its_budget);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
