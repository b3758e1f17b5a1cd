/* fuzz_util.c: scratch directories, an in-memory tarball and the RPC
 * server fixture shared by the fuzz targets. */
#include "tests/fuzz/fuzz_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nfsd/nfsd.h"
#include "nfsd/nlm.h"
#include "nfsd/nlm_cb.h"
#include "util/log.h"

#define MAX_SCRATCH 8
static char *scratch[MAX_SCRATCH];
static int nscratch;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void scratch_cleanup(void)
{
    for (int i = 0; i < nscratch; i++) {
        nftw(scratch[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(scratch[i]);
    }
    nscratch = 0;
}

const char *fuzz_scratch_dir(const char *what)
{
    /* A tmpfs when there is one: every ingest fsyncs, which on a busy
     * disk took seconds per input. */
    const char *base = getenv("FUZZ_TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/tarnfs-fuzz-%s-XXXXXX", base, what);
    if (nscratch == MAX_SCRATCH || !mkdtemp(tmpl)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    if (nscratch == 0)
        atexit(scratch_cleanup);
    scratch[nscratch] = strdup(tmpl);
    if (!scratch[nscratch])
        abort();
    return scratch[nscratch++];
}

ssize_t fuzz_mem_read(void *arg, void *buf, size_t cap)
{
    struct fuzz_mem *m = arg;
    size_t n = m->len - m->off < cap ? m->len - m->off : cap;
    memcpy(buf, m->p + m->off, n);
    m->off += n;
    return (ssize_t)n;
}

static void tar_add(struct archive *a, const char *path, mode_t type, mode_t perm,
                    const char *data, size_t len, const char *link, bool hard)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, 1000);
    archive_entry_set_gid(e, 1000);
    archive_entry_set_mtime(e, 1700000000, 0);
    archive_entry_set_size(e, (la_int64_t)len);
    if (link && hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        (len && archive_write_data(a, data, len) != (la_ssize_t)len)) {
        fprintf(stderr, "fuzz: tar: %s\n", archive_error_string(a));
        abort();
    }
    archive_entry_free(e);
}

uint8_t *fuzz_make_tar(size_t *len)
{
    size_t cap = 256 * 1024, used = 0;
    uint8_t *buf = malloc(cap);
    char *big = malloc(70000);
    struct archive *a = archive_write_new();
    if (!buf || !big || !a)
        abort();
    for (size_t i = 0; i < 70000; i++)
        big[i] = (char)('a' + i % 26);
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK)
        abort();
    const char hello[] = "hello, fuzz\n";
    tar_add(a, "fz/", AE_IFDIR, 0755, NULL, 0, NULL, false);
    tar_add(a, "fz/hello.txt", AE_IFREG, 0644, hello, sizeof hello - 1, NULL, false);
    tar_add(a, "fz/sub/", AE_IFDIR, 0750, NULL, 0, NULL, false);
    tar_add(a, "fz/sub/data.bin", AE_IFREG, 0600, big, 70000, NULL, false);
    tar_add(a, "fz/link", AE_IFLNK, 0777, NULL, 0, "hello.txt", false);
    tar_add(a, "fz/hard", AE_IFREG, 0644, NULL, 0, "fz/hello.txt", true);
    tar_add(a, "fz/fifo", AE_IFIFO, 0644, NULL, 0, NULL, false);
    tar_add(a, "fz/empty/", AE_IFDIR, 01777, NULL, 0, NULL, false);
    if (archive_write_close(a) != ARCHIVE_OK)
        abort();
    archive_write_free(a);
    free(big);
    *len = used;
    return buf;
}

void fuzz_ingest_run(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    kv_cache *c;
    int rc = kv_cache_open(dir, true, &c);
    if (rc) {
        fprintf(stderr, "fuzz: kv_cache_open %s: %s\n", dir, strerror(rc));
        abort();
    }
    struct fuzz_mem m = { p, len, 0 };
    struct kv_ingest_result res;
    rc = kv_ingest(c, name, fuzz_mem_read, &m, "fuzz", &res);
    if (rc) {
        fprintf(stderr, "fuzz: kv_ingest %s: %s (%s)\n", name, strerror(rc), res.error);
        abort();
    }
    kv_cache_close(c);
}

const uint8_t fuzz_rpc_key[32] = {
    0x74, 0x61, 0x72, 0x6e, 0x66, 0x73, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x21,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
};

static struct nfsd srv;
static bool srv_up;

static void rpc_server_down(void)
{
    if (!srv_up)
        return;
    nlm_stop(&srv);
    vfs_close(srv.vfs);
    nfsd_exports_set(&srv, NULL);
    nfsd_mounts_clear(&srv);
    drc_free(&srv.drc);
    srv_up = false;
}

struct nfsd *fuzz_rpc_server(void)
{
    if (srv_up)
        return &srv;
    log_setup("fuzz", 0, getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    const char *dir = fuzz_scratch_dir("rpc");
    size_t tlen;
    uint8_t *tar = fuzz_make_tar(&tlen);
    fuzz_ingest_run(dir, "fz", tar, tlen);
    fuzz_ingest_run(dir, "ns/r2", tar, tlen);
    free(tar);

    pthread_mutex_init(&srv.lock, NULL);
    drc_init(&srv.drc);
    memcpy(srv.key.k, fuzz_rpc_key, sizeof srv.key.k);
    memset(srv.write_verf, 0x5a, sizeof srv.write_verf);
    char conf[PATH_MAX], err[512];
    snprintf(conf, sizeof conf, "%s/tarnfs.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        abort();
    fprintf(f, "cache = %s\nexport / *(rw,no_root_squash,insecure)\n"
               "export /fz/sub 127.0.0.2(ro)\n", dir);
    fclose(f);
    struct nfsd_config cfg;
    nfsd_config_defaults(&cfg);
    if (nfsd_config_load(conf, &cfg, err, sizeof err) != 0 || !cfg.exports) {
        fprintf(stderr, "fuzz: config: %s\n", err);
        abort();
    }
    struct exports *ex = exports_ref(cfg.exports);
    nfsd_config_free(&cfg);
    struct vfs_config vc = {
        .cache_dir = dir, .read_only = false, .writeback_delay_ms = UINT_MAX,
        .cache_limit_bytes = 256u << 20, .max_file_size = 1u << 30,
    };
    int rc = vfs_open(&vc, &srv.vfs);
    if (rc) {
        fprintf(stderr, "fuzz: vfs_open: %s\n", strerror(rc));
        abort();
    }
    srv.exports = ex;
    /* The NLM lock table, without its callback sender: no call leaves the
     * fuzzer (GRANTED_MSG and _RES answers are then not sent). */
    if (nlm_start(&srv, 0, false))
        abort();
    nlm_cb_stop(srv.nlm_cb);
    srv.nlm_cb = NULL;
    srv_up = true;
    atexit(rpc_server_down);
    return &srv;
}
