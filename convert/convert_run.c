/* convert_run.c: the converter's driver: runs found, names planned and checked for collisions, the run queue worked by -j threads, resume/verify/delete policy, progress display, summary and exit status. */
#include "convert/convert.h"
#include "convert/convert_internal.h"
#include "util/opt.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "tarnfs convert"

enum run_status { RUN_PENDING, RUN_ACTIVE, RUN_DONE, RUN_UP_TO_DATE, RUN_FAILED };

struct run_slot {
    struct conv_run *run;
    char *key;                  /* target key / name relative to the target */
    char *dir, *name;           /* file targets: directory and file name */
    char *display;              /* where it goes, for messages */
    _Atomic int status;
    struct conv_counters ctr;
    _Atomic uint64_t total_bytes, total_files; /* known once scanned */
    _Atomic bool scanned;
    uint64_t tar_bytes;
    double secs;
    char msg[600];
};

struct convert_ctx {
    struct convert_opts *o;
    struct run_slot *slots;
    size_t n;
    _Atomic size_t next;
    fetch_backend *backend;
    pthread_mutex_t out_mu;     /* one writer of stdout/stderr at a time */
    bool tty;
    bool progress_shown;
    struct timespec start;
};

/* Set by convert_cancel (the tool's SIGINT/SIGTERM); every writer and
 * reader polls it. */
static atomic_bool cancelled;

void convert_cancel(void)
{
    atomic_store(&cancelled, true);
}

static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void human_bytes(uint64_t b, char *out, size_t cap)
{
    static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

/* ---- target naming -------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* mkdir -p for the directories of a path-named key under a target dir. */
static int make_dirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return ENOMEM;
    int rc = 0;
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                rc = errno;
                break;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    free(p);
    return rc;
}

static int plan_slot(const struct convert_opts *o, struct run_slot *s)
{
    const char *suffix = conv_tar_suffix(o->comp);
    const char *base = o->naming == CONV_NAMING_PATH ? s->run->rel : s->run->name;
    if (asprintf(&s->key, "%s%s", base, suffix) < 0)
        return ENOMEM;
    switch (o->kind) {
    case CONV_TARGET_IN_PLACE: {
        /* realpath, so that a source given as "." still lands beside it. */
        char real[PATH_MAX];
        s->dir = dir_of(realpath(s->run->path, real) ? real : s->run->path);
        if (!s->dir || asprintf(&s->name, "%s%s", s->run->name, suffix) < 0)
            return ENOMEM;
        if (asprintf(&s->display, "%s/%s", s->dir, s->name) < 0)
            return ENOMEM;
        break;
    }
    case CONV_TARGET_DIR: {
        char *full = NULL;
        if (asprintf(&full, "%s/%s", o->to, s->key) < 0)
            return ENOMEM;
        s->dir = dir_of(full);
        const char *slash = strrchr(full, '/');
        s->name = strdup(slash + 1);
        s->display = full;
        if (!s->dir || !s->name)
            return ENOMEM;
        break;
    }
    case CONV_TARGET_S3: {
        size_t tl = strlen(o->to);
        if (asprintf(&s->display, "%s%s%s", o->to, tl && o->to[tl - 1] == '/' ? "" : "/",
                     s->key) < 0)
            return ENOMEM;
        break;
    }
    default:
        if (!(s->display = strdup(s->key)))
            return ENOMEM;
        break;
    }
    return 0;
}

static int cmp_slot_key(const void *a, const void *b)
{
    const struct run_slot *x = *(const struct run_slot *const *)a;
    const struct run_slot *y = *(const struct run_slot *const *)b;
    return strcmp(x->display, y->display);
}

/* Two runs that would land on the same target: report every pair. */
static int check_collisions(struct convert_ctx *c)
{
    if (c->n < 2)
        return 0;
    struct run_slot **v = malloc(c->n * sizeof *v);
    if (!v)
        return ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        v[i] = &c->slots[i];
    qsort(v, c->n, sizeof *v, cmp_slot_key);
    int bad = 0;
    for (size_t i = 1; i < c->n; i++)
        if (!strcmp(v[i - 1]->display, v[i]->display)) {
            fprintf(stderr, PROG ": name collision: %s and %s would both become %s%s\n",
                    v[i - 1]->run->path, v[i]->run->path, v[i]->display,
                    !strcmp(v[i - 1]->run->path, v[i]->run->path)
                        ? " (one run reached from two overlapping SRC_TREEs)"
                        : c->o->naming == CONV_NAMING_FLAT ? " (try --naming path or --exclude)" : "");
            bad = 1;
        }
    free(v);
    return bad ? EEXIST : 0;
}

/* ---- output ---------------------------------------------------------------- */

static void clear_progress_locked(struct convert_ctx *c)
{
    if (c->progress_shown) {
        fputs("\r\033[K", stderr);
        c->progress_shown = false;
    }
}

static void report_run(struct convert_ctx *c, struct run_slot *s)
{
    char size[32], rate[32];
    pthread_mutex_lock(&c->out_mu);
    clear_progress_locked(c);
    switch (atomic_load(&s->status)) {
    case RUN_DONE:
        human_bytes(s->tar_bytes, size, sizeof size);
        human_bytes(s->secs > 0 ? (uint64_t)((double)s->tar_bytes / s->secs) : 0, rate, sizeof rate);
        printf("converted  %s -> %s  (%s, %llu files, %.1f s, %s/s%s)\n", s->run->path,
               s->display, size, (unsigned long long)atomic_load(&s->total_files), s->secs,
               rate, s->msg);
        break;
    case RUN_UP_TO_DATE:
        printf("up-to-date %s -> %s  (%s)\n", s->run->path, s->display, s->msg);
        break;
    case RUN_FAILED:
        printf("FAILED     %s -> %s: %s\n", s->run->path, s->display, s->msg);
        break;
    default:
        break;
    }
    fflush(stdout);
    pthread_mutex_unlock(&c->out_mu);
}

static void draw_progress(struct convert_ctx *c)
{
    size_t done = 0, failed = 0, known = 0;
    uint64_t bytes = 0, files = 0, known_total = 0, total_est;
    char line[512], cur[256] = "";
    size_t cl = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct run_slot *s = &c->slots[i];
        int st = atomic_load(&s->status);
        uint64_t b = atomic_load(&s->ctr.bytes);
        bytes += b;
        files += atomic_load(&s->ctr.files);
        if (st == RUN_DONE || st == RUN_UP_TO_DATE || st == RUN_FAILED)
            done++;
        if (st == RUN_FAILED)
            failed++;
        if (atomic_load(&s->scanned)) {
            known++;
            known_total += st == RUN_ACTIVE || st == RUN_DONE ? atomic_load(&s->total_bytes) : b;
        }
        if (st == RUN_ACTIVE && cl < sizeof cur - 64) {
            uint64_t tb = atomic_load(&s->total_bytes);
            cl += (size_t)snprintf(cur + cl, sizeof cur - cl, "  %s %d%%", s->run->name,
                                   tb ? (int)(b * 100 / tb) : 0);
        }
    }
    total_est = known_total + (known ? known_total / known : 0) * (c->n - known);
    double el = now_sec() - ((double)c->start.tv_sec + (double)c->start.tv_nsec / 1e9);
    double rate = el > 0 ? (double)bytes / el : 0;
    char bs[32], ts[32], rs[32], eta[32] = "--:--";
    human_bytes(bytes, bs, sizeof bs);
    human_bytes(total_est, ts, sizeof ts);
    human_bytes((uint64_t)rate, rs, sizeof rs);
    if (rate > 0 && total_est > bytes) {
        long s = (long)((double)(total_est - bytes) / rate);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    }
    snprintf(line, sizeof line, "[%zu/%zu runs%s] %s / ~%s, %llu files, %s/s, ETA %s%s",
             done, c->n, failed ? ", some failed" : "", bs, ts, (unsigned long long)files,
             rs, eta, cur);
    pthread_mutex_lock(&c->out_mu);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    c->progress_shown = true;
    pthread_mutex_unlock(&c->out_mu);
}

/* ---- one run ----------------------------------------------------------------- */

static void failf(struct run_slot *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void failf(struct run_slot *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    atomic_store(&s->status, RUN_FAILED);
}

static void fail(struct run_slot *s, const char *msg)
{
    failf(s, "%s", msg);
}

/* Does the target's tarball (described by have) carry a valid index? */
static bool has_index(struct convert_ctx *c, struct run_slot *s, const struct tix_source *have)
{
    void *buf = NULL;
    size_t len = 0;
    char err[300];
    tix_index *ix = NULL;
    bool ok = conv_index_load(c->o->kind == CONV_TARGET_S3 ? c->backend : NULL, s->dir,
                              c->o->kind == CONV_TARGET_S3 ? s->key : s->name, &buf, &len, NULL,
                              err, sizeof err) == 0 &&
              tix_parse(buf, len, &ix, err, sizeof err) == 0 && tix_matches(ix, have);
    tix_free(ix);
    free(buf);
    return ok;
}

/* The SHA-256 that the target's index records for the object described by
 * oi (same size and ETag), into recorded: an object over 5 GB stored in
 * parts carries no x-amz-meta-sha256 (S3 copies at most 5 GB, so it cannot
 * be added after the upload), and its index is then the only record. */
static bool index_sha256(struct convert_ctx *c, struct run_slot *s, const struct fetch_objinfo *oi,
                         char recorded[65])
{
    void *buf = NULL;
    size_t len = 0;
    char err[300];
    tix_index *ix = NULL;
    struct tix_source have = { .size = oi->size };
    memcpy(have.version, oi->version, sizeof have.version);
    bool ok = conv_index_load(c->backend, s->dir, s->key, &buf, &len, NULL, err, sizeof err) == 0 &&
              tix_parse(buf, len, &ix, err, sizeof err) == 0 && tix_matches(ix, &have) &&
              strlen(tix_get_source(ix)->sha256) == 64;
    if (ok)
        memcpy(recorded, tix_get_source(ix)->sha256, 65);
    tix_free(ix);
    free(buf);
    return ok;
}

/* True if the target already holds exactly the tarball this run gives now.
 * A plain tarball without a valid index (one made before indexes existed)
 * gets its index written here: the hash pass builds it anyway. */
static bool up_to_date(struct convert_ctx *c, struct run_slot *s, const struct conv_job *job,
                       char *err, size_t errlen)
{
    char recorded[65];
    uint64_t have_size;
    struct fetch_objinfo oi;
    memset(&oi, 0, sizeof oi);
    if (c->o->kind == CONV_TARGET_S3) {
        if (fetch_stat(c->backend, s->key, &oi) != 0)
            return false;
        have_size = oi.size;
        if (oi.sha256[0])
            memcpy(recorded, oi.sha256, 65);
        else if (!index_sha256(c, s, &oi, recorded))
            return false;
    } else {
        char *path = NULL;
        struct stat st;
        if (asprintf(&path, "%s/%s", s->dir, s->name) < 0)
            return false;
        int rc = lstat(path, &st);
        free(path);
        if (rc != 0 || !S_ISREG(st.st_mode))
            return false;
        if (conv_recorded_sha256(NULL, s->dir, s->name, recorded, err, errlen) != 0)
            return false;
        have_size = (uint64_t)st.st_size;
        if (job->index && conv_nas_info(s->dir, s->name, &oi, err, errlen) != 0)
            return false;
    }
    struct tix_source have = { .size = have_size };
    memcpy(have.version, oi.version, sizeof have.version);
    memcpy(have.sha256, recorded, sizeof have.sha256);
    struct conv_job hjob = *job;
    hjob.index = job->index && !has_index(c, s, &have);
    struct conv_tar_result res;
    if (conv_target_hash(&hjob, &res, err, errlen) != 0)
        return false;
    if (res.tar_bytes != have_size || strcmp(res.sha256_hex, recorded) != 0) {
        tix_writer_free(res.tix);
        return false;
    }
    size_t ml = (size_t)snprintf(s->msg, sizeof s->msg, "sha256 %s", res.sha256_hex);
    if (res.tix) {
        char ierr[600] = "";
        int rc = conv_index_store(c->o->kind == CONV_TARGET_S3 ? c->backend : NULL, s->dir,
                                  c->o->kind == CONV_TARGET_S3 ? s->key : s->name, res.tix, &have,
                                  NULL, ierr, sizeof ierr);
        tix_writer_free(res.tix);
        snprintf(s->msg + ml, sizeof s->msg - ml, rc ? ", index not written: %s"
                                                     : ", index written%s", ierr);
    }
    return true;
}

/* S3 allows 10,000 parts per upload; the default part is large enough for
 * fetch_put's one-part-at-a-time uploads to keep the wire busy (see
 * doc/performance.md).  Larger runs get larger parts, sized from the scan
 * with room for headers (an upper bound: compression only shrinks it). */
#define CONVERT_DEFAULT_PART_SIZE ((size_t)64 << 20)
#define S3_MAX_PARTS_USED 9000

/* The plain tarball's size from the scan, a little over: data, headers
 * (a pax record and a ustar header) and padding. */
static uint64_t tar_estimate(const struct conv_tree *t)
{
    return t->data_bytes + (uint64_t)t->n * 1536 + (1u << 20);
}

static size_t part_size_for(const struct convert_opts *o, const struct conv_tree *t)
{
    uint64_t estimate = tar_estimate(t);
    size_t part = o->part_size;
    if (!part) {
        /* A run smaller than one part would be buffered whole before its
         * single PUT starts: aim for 8+ parts, between 8 and 64 MiB. */
        uint64_t eighth = (estimate / 8 + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
        part = eighth < (8u << 20) ? (8u << 20)
             : eighth > CONVERT_DEFAULT_PART_SIZE ? CONVERT_DEFAULT_PART_SIZE : (size_t)eighth;
    }
    uint64_t needed = (estimate + S3_MAX_PARTS_USED - 1) / S3_MAX_PARTS_USED;
    needed = (needed + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    return needed > part ? (size_t)needed : part;
}

static void convert_one(struct convert_ctx *c, struct run_slot *s)
{
    const struct convert_opts *o = c->o;
    char err[600] = "";
    struct conv_tree tree;
    double t0 = now_sec();
    atomic_store(&s->status, RUN_ACTIVE);
    int rc = conv_tree_scan(s->run->path, &tree, err, sizeof err);
    if (rc) {
        fail(s, err);
        return;
    }
    atomic_store(&s->total_bytes, tree.data_bytes);
    atomic_store(&s->total_files, tree.files);
    atomic_store(&s->scanned, true);
    /* Show the run at once, not at the next redraw: a run that takes less
     * than a redraw interval would never be seen on the live line. */
    if (c->tty)
        draw_progress(c);
    struct conv_job job = {
        .run_path = s->run->path, .top = s->run->name, .tree = &tree, .comp = o->comp,
        .ctr = &s->ctr, .cancel = &cancelled, .part_size = part_size_for(o, &tree),
        .size_hint = o->comp == CONV_COMPRESS_NONE ? tar_estimate(&tree) : 0,
        .index = o->comp == CONV_COMPRESS_NONE,
    };
    if (!o->force && up_to_date(c, s, &job, err, sizeof err)) {
        atomic_store(&s->status, RUN_UP_TO_DATE);
        conv_tree_free(&tree);
        return;
    }
    if (atomic_load(&cancelled)) {
        fail(s, "interrupted");
        conv_tree_free(&tree);
        return;
    }
    err[0] = '\0';
    struct conv_tar_result res;
    if (o->kind == CONV_TARGET_S3) {
        rc = conv_target_s3(&job, c->backend, s->key, &res, err, sizeof err);
    } else {
        rc = make_dirs(s->dir);
        if (rc)
            snprintf(err, sizeof err, "cannot create %s: %s", s->dir, strerror(rc));
        else
            rc = conv_target_file(&job, s->dir, s->name, &res, err, sizeof err);
    }
    if (rc) {
        fail(s, err);
        conv_tree_free(&tree);
        return;
    }
    s->tar_bytes = res.tar_bytes;
    size_t ml = 0;
    s->msg[0] = '\0';
    if (o->verify) {
        rc = conv_verify(o->kind == CONV_TARGET_S3 ? c->backend : NULL, s->dir,
                         o->kind == CONV_TARGET_S3 ? s->key : s->name, s->run->path,
                         s->run->name, res.sha256_hex, &cancelled, err, sizeof err);
        if (rc) {
            failf(s, "verify failed (tarball kept, source kept): %s", err);
            conv_tree_free(&tree);
            return;
        }
        ml += (size_t)snprintf(s->msg + ml, sizeof s->msg - ml, ", verified");
        if (job.index && !res.index_skipped[0]) {
            struct tix_source actual = { .size = res.tar_bytes };
            memcpy(actual.sha256, res.sha256_hex, sizeof actual.sha256);
            rc = conv_index_verify(o->kind == CONV_TARGET_S3 ? c->backend : NULL, s->dir,
                                   o->kind == CONV_TARGET_S3 ? s->key : s->name, &actual,
                                   &cancelled, err, sizeof err);
            if (rc) {
                failf(s, "index verify failed (tarball kept, source kept): %s", err);
                conv_tree_free(&tree);
                return;
            }
            ml += (size_t)snprintf(s->msg + ml, sizeof s->msg - ml, ", index verified");
        }
    }
    if (res.index_skipped[0])
        ml += (size_t)snprintf(s->msg + ml, sizeof s->msg - ml, ", no index: %s",
                               res.index_skipped);
    if (o->delete_source) {
        rc = conv_delete_tree(s->run->path, &tree, err, sizeof err);
        if (rc) {
            failf(s, "tarball written and verified, but deleting the source stopped: %s", err);
            conv_tree_free(&tree);
            return;
        }
        ml += (size_t)snprintf(s->msg + ml, sizeof s->msg - ml, ", source deleted");
    }
    snprintf(s->msg + ml, sizeof s->msg - ml, ", sha256 %s", res.sha256_hex);
    s->secs = now_sec() - t0;
    atomic_store(&s->status, RUN_DONE);
    conv_tree_free(&tree);
}

static void *worker_main(void *arg)
{
    struct convert_ctx *c = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&c->next, 1);
        if (i >= c->n)
            break;
        struct run_slot *s = &c->slots[i];
        if (atomic_load(&cancelled)) {
            fail(s, "interrupted before it started");
        } else {
            convert_one(c, s);
        }
        report_run(c, s);
    }
    return NULL;
}

static void print_list(struct convert_ctx *c, const struct conv_found *f)
{
    for (size_t i = 0; i < c->n; i++) {
        struct run_slot *s = &c->slots[i];
        printf("run   %s  (%s)%s%s\n", s->run->path, s->run->reason,
               c->o->kind != CONV_TARGET_NONE ? "  -> " : "",
               c->o->kind != CONV_TARGET_NONE ? s->display : "");
    }
    for (size_t i = 0; i < f->n_skips; i++)
        printf("skip  %s  (%s)\n", f->skips[i].path, f->skips[i].reason);
    printf("%zu run%s found, %zu director%s skipped\n", c->n, c->n == 1 ? "" : "s",
           f->n_skips, f->n_skips == 1 ? "y" : "ies");
}

static int stop_at_first(void *arg, const struct fetch_objinfo *oi)
{
    (void)arg; (void)oi;
    return 1;
}

/* Open the S3 target and make sure the bucket answers to these credentials
 * before any run starts. */
static int open_s3(struct convert_ctx *c)
{
    struct fetch_config cfg = { .s3_endpoint = c->o->s3_endpoint };
    char err[512] = "";
    int rc = fetch_open(c->o->to, &cfg, &c->backend, err, sizeof err);
    if (rc) {
        fprintf(stderr, PROG ": %s: %s\n", c->o->to, err[0] ? err : strerror(rc));
        return rc;
    }
    rc = fetch_list(c->backend, "", "/", stop_at_first, NULL);
    if (rc) {
        fprintf(stderr, PROG ": %s: %s\n", c->o->to,
                rc == ENOENT ? "no such bucket" :
                rc == EACCES ? "the credentials were refused (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)" :
                strerror(rc));
        fetch_close(c->backend);
        c->backend = NULL;
    }
    return rc;
}

static int run_all(struct convert_ctx *c)
{
    pthread_t *th = calloc(c->o->jobs, sizeof *th);
    if (!th)
        return ENOMEM;
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    unsigned started = 0;
    for (unsigned i = 0; i < c->o->jobs && i < c->n; i++) {
        if (pthread_create(&th[i], NULL, worker_main, c) != 0)
            break;
        started++;
    }
    if (!started) {
        free(th);
        worker_main(c);
        return 0;
    }
    /* The main thread joins the workers, drawing the progress line every
     * 250 ms meanwhile: the last run's end is seen at once, not at the
     * next tick of a polling sleep (which cost up to 250 ms per command). */
    for (unsigned i = 0; i < started; i++) {
        for (;;) {
            if (c->tty)
                draw_progress(c);
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);   /* pthread_timedjoin_np's clock */
            until.tv_nsec += 250 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (pthread_timedjoin_np(th[i], NULL, &until) != ETIMEDOUT)
                break;
        }
    }
    free(th);
    pthread_mutex_lock(&c->out_mu);
    clear_progress_locked(c);
    pthread_mutex_unlock(&c->out_mu);
    return 0;
}

static int summarize(struct convert_ctx *c)
{
    size_t done = 0, fresh = 0, failed = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < c->n; i++) {
        int st = atomic_load(&c->slots[i].status);
        done += st == RUN_DONE;
        fresh += st == RUN_UP_TO_DATE;
        failed += st == RUN_FAILED;
        if (st == RUN_DONE)
            bytes += c->slots[i].tar_bytes;
    }
    double el = now_sec() - ((double)c->start.tv_sec + (double)c->start.tv_nsec / 1e9);
    char bs[32], rs[32];
    human_bytes(bytes, bs, sizeof bs);
    human_bytes(el > 0 ? (uint64_t)((double)bytes / el) : 0, rs, sizeof rs);
    printf("summary: %zu run%s: %zu converted, %zu up to date, %zu failed; %s written in %.1f s (%s/s)%s\n",
           c->n, c->n == 1 ? "" : "s", done, fresh, failed, bs, el, rs,
           atomic_load(&cancelled) ? "; interrupted" : "");
    if (failed) {
        printf("failed runs:\n");
        for (size_t i = 0; i < c->n; i++)
            if (atomic_load(&c->slots[i].status) == RUN_FAILED)
                printf("  %s: %s\n", c->slots[i].run->path, c->slots[i].msg);
    }
    fflush(stdout);
    return failed || atomic_load(&cancelled) ? CLI_FAIL : CLI_OK;
}

int convert_run(const struct convert_opts *opts, char **trees, size_t n_trees)
{
    struct convert_opts o = *opts;
    struct conv_found found;
    memset(&found, 0, sizeof found);
    struct convert_ctx c;
    memset(&c, 0, sizeof c);
    c.o = &o;
    pthread_mutex_init(&c.out_mu, NULL);
    int ret = CLI_OK;
    if (o.kind == CONV_TARGET_DIR) {
        struct stat st;
        if (stat(o.to, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, PROG ": --to %s: not a directory\n", o.to);
            ret = CLI_USAGE;
            goto out;
        }
    }
    char err[600];
    for (size_t i = 0; i < n_trees; i++) {
        int rc = conv_discover(trees[i], &o.disc, &found, err, sizeof err);
        if (rc) {
            fprintf(stderr, PROG ": %s\n", err);
            ret = rc == ENOTDIR || rc == ENOENT ? CLI_USAGE : CLI_FAIL;
            goto out;
        }
    }
    c.n = found.n_runs;
    c.slots = calloc(c.n ? c.n : 1, sizeof *c.slots);
    if (!c.slots) {
        ret = CLI_FAIL;
        goto out;
    }
    for (size_t i = 0; i < c.n; i++) {
        c.slots[i].run = &found.runs[i];
        if (plan_slot(&o, &c.slots[i])) {
            fprintf(stderr, PROG ": out of memory\n");
            ret = CLI_FAIL;
            goto out;
        }
    }
    /* In place, only a run named twice (overlapping SRC_TREEs) collides. */
    int collide = o.kind != CONV_TARGET_NONE ? check_collisions(&c) : 0;
    if (o.list) {
        print_list(&c, &found);
        ret = collide ? CLI_USAGE : CLI_OK;
        goto out;
    }
    if (collide) {
        fprintf(stderr, PROG ": nothing was converted\n");
        ret = CLI_USAGE;
        goto out;
    }
    if (c.n == 0) {
        printf("summary: no runs found (see --list for what was skipped and why)\n");
        ret = CLI_OK;
        goto out;
    }
    if (o.kind == CONV_TARGET_S3 && open_s3(&c) != 0) {
        ret = CLI_FAIL;
        goto out;
    }
    c.tty = o.progress == 1 || (o.progress == -1 && isatty(STDERR_FILENO));
    if (run_all(&c) != 0) {
        fprintf(stderr, PROG ": cannot start the workers\n");
        ret = CLI_FAIL;
    } else {
        ret = summarize(&c);
    }
out:
    if (c.backend)
        fetch_close(c.backend);
    for (size_t i = 0; c.slots && i < c.n; i++) {
        free(c.slots[i].key);
        free(c.slots[i].dir);
        free(c.slots[i].name);
        free(c.slots[i].display);
    }
    free(c.slots);
    conv_found_free(&found);
    pthread_mutex_destroy(&c.out_mu);
    return ret;
}
