/* workloads.c: nfsload's workloads, each a small state machine of async NFSv3 requests. */

/* Parts, in order: set-up helpers (files and trees, untimed), then one
 * section per workload (seqread, randread, the slot machinery with stat,
 * smallfile and getattr, first, listings), then the dispatcher. */
#include "bench/nfsload/workloads.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const wl_names[] = {
    "seqread", "randread", "stat", "readdirplus", "walk", "smallfile",
    "getattr", "first", NULL,
};

static int stop_due(uint64_t stop_ns)
{
    return stop_ns && now_ns() >= stop_ns;
}

static uint64_t stop_time(const struct wl_opts *o, uint64_t start_ns)
{
    return o->duration > 0 ? start_ns + (uint64_t)(o->duration * 1e9) : 0;
}

static const char *rpc_failure(int status, void *data)
{
    return status == RPC_STATUS_ERROR ? (const char *)data : "cancelled";
}

/* ---- set-up: the files and trees a workload runs over ------------------ */

struct file_ref {
    struct nfs_handle fh;
    uint64_t size;
};

struct file_list {
    struct file_ref *f;
    size_t count, cap;
};

static int files_add(struct file_list *l, const struct nfs_handle *fh,
                     uint64_t size)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct file_ref *p = realloc(l->f, cap * sizeof *p);
        if (!p)
            return ENOMEM;
        l->f = p;
        l->cap = cap;
    }
    l->f[l->count].fh = *fh;
    l->f[l->count].size = size;
    l->count++;
    return 0;
}

/* A tree rooted at path, listed fully; its set-up requests are not part of
 * the caller's stats. */
static int load_tree(struct conn_pool *pool, const struct wl_opts *o,
                     const char *path, struct tree *t)
{
    struct load_stats scratch = { 0 };
    struct tree_entry start;
    int rc = tree_resolve(pool, path, &start, &scratch, o->deadline_ns);
    if (!rc && start.type != NF3DIR) {
        conn_note_error(pool, "%s is not a directory", path);
        rc = ENOTDIR;
    }
    if (!rc && tree_add(t, -1, NULL, &start.fh, start.type, start.size) < 0)
        rc = ENOMEM;
    if (!rc) {
        struct list_opts lo = o->list;
        lo.recursive = 1;
        lo.keep = 1;
        lo.repeat = 1;
        lo.depth = lo.depth > 0 ? lo.depth : 8;
        rc = tree_list(pool, t, &lo, &scratch, o->deadline_ns);
    }
    stats_free(&scratch);
    return rc;
}

/* Regular files named by the paths, or found under them (at least
 * o->min_size bytes). */
static int load_files(struct conn_pool *pool, const struct wl_opts *o,
                      struct file_list *out)
{
    for (int i = 0; i < o->npaths; i++) {
        struct load_stats scratch = { 0 };
        struct tree_entry e;
        int rc = tree_resolve(pool, o->paths[i], &e, &scratch, o->deadline_ns);
        stats_free(&scratch);
        if (rc)
            return rc;
        if (e.type == NF3REG) {
            if ((rc = files_add(out, &e.fh, e.size)))
                return rc;
            continue;
        }
        struct tree t = { 0 };
        rc = load_tree(pool, o, o->paths[i], &t);
        for (size_t j = 1; !rc && j < t.count; j++)
            if (t.e[j].type == NF3REG && t.e[j].size >= o->min_size &&
                t.e[j].size > 0)
                rc = files_add(out, &t.e[j].fh, t.e[j].size);
        tree_free(&t);
        if (rc)
            return rc;
    }
    if (!out->count) {
        conn_note_error(pool, "no regular files of at least %llu bytes",
                        (unsigned long long)o->min_size);
        return EINVAL;
    }
    return 0;
}

/* Send READ (fh, off, count) with cb; 0 or EIO. */
static int send_read(struct conn_pool *pool, struct rpc_context *rpc,
                     const struct nfs_handle *fh, uint64_t off, uint32_t count,
                     rpc_cb cb, void *arg)
{
    READ3args args;
    memset(&args, 0, sizeof args);
    args.file = handle_wire(fh);
    args.offset = off;
    args.count = count;
    if (rpc_nfs3_read_async(rpc, cb, &args, arg)) {
        conn_note_error(pool, "READ could not be sent");
        return EIO;
    }
    return 0;
}

/* The READ3 result of a reply, or NULL after noting why it failed. */
static READ3resok *read_result(struct conn_pool *pool, struct load_stats *st,
                               int status, void *data)
{
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(pool, "READ: %s", rpc_failure(status, data));
        st->errors++;
        return NULL;
    }
    READ3res *res = data;
    st->ops++;
    if (res->status != NFS3_OK) {
        conn_note_error(pool, "READ: NFS status %d", (int)res->status);
        st->errors++;
        return NULL;
    }
    return &res->READ3res_u.resok;
}

/* ---- seqread: streams of large sequential READs ---------------------- */

struct seq_state;

struct seq_stream {
    struct seq_state *s;
    unsigned idx;
    long file;                  /* -1 between files */
    uint64_t next_off;
    int inflight;
    int finished;
};

struct seq_read {
    struct seq_stream *stream;
    uint64_t t0;
};

struct seq_state {
    struct conn_pool *pool;
    const struct wl_opts *o;
    struct load_stats *st;
    struct file_list files;
    uint64_t next_job, jobs;    /* job j reads file j % count */
    uint64_t stop_ns;
    uint32_t bsize;
    int live_streams;
    int err;
};

static void seq_reply(struct rpc_context *rpc, int status, void *data,
                      void *private_data);

static void seq_fill(struct seq_stream *sm)
{
    struct seq_state *s = sm->s;
    while (!sm->finished && sm->inflight < s->o->depth) {
        if (s->err || stop_due(s->stop_ns))
            sm->file = -1, s->next_job = s->jobs;
        const struct file_ref *f = sm->file >= 0 ? &s->files.f[sm->file] : NULL;
        if (f && sm->next_off < f->size) {
            struct seq_read *r = malloc(sizeof *r);
            if (!r) {
                s->err = ENOMEM;
                continue;
            }
            r->stream = sm;
            r->t0 = now_ns();
            int rc = send_read(s->pool, conn_get(s->pool, sm->idx), &f->fh,
                               sm->next_off, s->bsize, seq_reply, r);
            if (rc) {
                free(r);
                s->err = rc;
                continue;
            }
            sm->next_off += s->bsize;
            sm->inflight++;
        } else if (sm->inflight > 0) {
            return; /* the file's last READs are still out */
        } else if (s->next_job < s->jobs) {
            sm->file = (long)(s->next_job++ % s->files.count);
            sm->next_off = 0;
        } else {
            sm->finished = 1;
            s->live_streams--;
        }
    }
}

static void seq_reply(struct rpc_context *rpc, int status, void *data,
                      void *private_data)
{
    struct seq_read *r = private_data;
    struct seq_stream *sm = r->stream;
    struct seq_state *s = sm->s;
    uint64_t t1 = now_ns();
    (void)rpc;
    READ3resok *ok = read_result(s->pool, s->st, status, data);
    if (ok) {
        stats_latency(s->st, r->t0, t1);
        s->st->bytes += ok->count;
    } else if (!s->err) {
        s->err = EIO;
    }
    free(r);
    sm->inflight--;
    seq_fill(sm);
}

static int seq_done(void *arg)
{
    return ((struct seq_state *)arg)->live_streams == 0;
}

static int wl_seqread(struct conn_pool *pool, const struct wl_opts *o,
                      struct load_stats *st)
{
    struct seq_state s = { .pool = pool, .o = o, .st = st };
    int rc = load_files(pool, o, &s.files);
    if (rc) {
        free(s.files.f);
        return rc;
    }
    s.bsize = o->bsize;
    if (pool->readmax && s.bsize > pool->readmax)
        s.bsize = (uint32_t)pool->readmax;
    s.jobs = o->duration > 0 ? UINT64_MAX
                             : s.files.count * (uint64_t)(o->passes > 0 ? o->passes : 1);
    struct seq_stream *streams = calloc((size_t)o->streams, sizeof *streams);
    if (!streams) {
        free(s.files.f);
        return ENOMEM;
    }
    st->start_ns = now_ns();
    s.stop_ns = stop_time(o, st->start_ns);
    s.live_streams = o->streams;
    for (int i = 0; i < o->streams; i++) {
        streams[i] = (struct seq_stream){ .s = &s, .idx = (unsigned)i, .file = -1 };
        seq_fill(&streams[i]);
    }
    rc = conn_run(pool, seq_done, &s, o->deadline_ns);
    st->end_ns = now_ns();
    if (rc != ETIMEDOUT && rc != EIO)
        free(streams); /* else replies may still point into it */
    free(s.files.f);
    return rc ? rc : s.err;
}

/* ---- randread: small READs at random aligned offsets ------------------ */

struct rand_state {
    struct conn_pool *pool;
    struct load_stats *st;
    struct file_list files;
    uint64_t remaining;         /* requests still to send */
    uint64_t stop_ns;
    uint64_t rng;
    uint32_t bsize;
    int inflight, depth, err;
};

struct rand_read {
    struct rand_state *s;
    uint64_t t0;
};

static uint64_t rand_next(uint64_t *x)
{
    /* xorshift64*: plenty for spreading offsets, and reproducible */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

static void rand_reply(struct rpc_context *rpc, int status, void *data,
                       void *private_data);

static void rand_fill(struct rand_state *s)
{
    while (!s->err && s->remaining && s->inflight < s->depth &&
           !stop_due(s->stop_ns)) {
        const struct file_ref *f =
            &s->files.f[rand_next(&s->rng) % s->files.count];
        uint64_t blocks = f->size / s->bsize;
        uint64_t off = blocks ? (rand_next(&s->rng) % blocks) * s->bsize : 0;
        struct rand_read *r = malloc(sizeof *r);
        if (!r) {
            s->err = ENOMEM;
            return;
        }
        r->s = s;
        r->t0 = now_ns();
        int rc = send_read(s->pool, conn_pick(s->pool), &f->fh, off, s->bsize,
                           rand_reply, r);
        if (rc) {
            free(r);
            s->err = rc;
            return;
        }
        s->remaining--;
        s->inflight++;
    }
}

static void rand_reply(struct rpc_context *rpc, int status, void *data,
                       void *private_data)
{
    struct rand_read *r = private_data;
    struct rand_state *s = r->s;
    uint64_t t1 = now_ns();
    (void)rpc;
    READ3resok *ok = read_result(s->pool, s->st, status, data);
    if (ok) {
        stats_latency(s->st, r->t0, t1);
        s->st->bytes += ok->count;
    } else if (!s->err) {
        s->err = EIO;
    }
    free(r);
    s->inflight--;
    rand_fill(s);
}

static int rand_done(void *arg)
{
    return ((struct rand_state *)arg)->inflight == 0;
}

static int wl_randread(struct conn_pool *pool, const struct wl_opts *o,
                       struct load_stats *st)
{
    struct rand_state s = { .pool = pool, .st = st, .depth = o->depth };
    int rc = load_files(pool, o, &s.files);
    if (rc) {
        free(s.files.f);
        return rc;
    }
    s.bsize = o->bsize;
    s.remaining = o->duration > 0 ? UINT64_MAX : (o->count ? o->count : 20000);
    s.rng = 0x9e3779b97f4a7c15ull ^ o->seed;
    st->start_ns = now_ns();
    s.stop_ns = stop_time(o, st->start_ns);
    rand_fill(&s);
    rc = conn_run(pool, rand_done, &s, o->deadline_ns);
    st->end_ns = now_ns();
    free(s.files.f);
    return rc ? rc : s.err;
}

/* ---- slots: fixed request chains over a tree (stat, smallfile, getattr) */

struct slot_state;

struct slot {
    struct slot_state *s;
    unsigned idx;
    long entry;                 /* the tree entry being worked on */
    struct nfs_handle fh;       /* its handle, from LOOKUP */
    uint64_t off;               /* smallfile: next READ offset */
    uint64_t t0;
    uint64_t due_ns;            /* paced: when its next chain is due */
    int sleeping;               /* paced: waiting for due_ns */
};

struct slot_state {
    struct conn_pool *pool;
    const struct wl_opts *o;
    struct load_stats *st;
    struct tree tree;
    long *jobs;                 /* tree entries to work on, in order */
    size_t njobs;
    uint64_t next, total;       /* job k works on jobs[k % njobs] */
    uint64_t stop_ns;
    uint64_t record_until_ns;   /* getattr: only samples sent before it */
    unsigned conn_limit;        /* slots use connections 0..conn_limit-1 */
    int inflight, err;          /* inflight: slots still working */
    uint64_t interval_ns;       /* paced: per slot, 0 = back to back */
    struct slot *slots;
    int nslots;
    void (*start)(struct slot *sl);
};

static int slots_stopping(const struct slot_state *s)
{
    return s->err || s->next >= s->total || stop_due(s->stop_ns);
}

/* Start sl's next chain of requests.  Paced, its first request counts
 * from when it was due, not when it could be sent: a server that falls
 * behind the schedule shows in the latencies (no coordinated omission). */
static void slot_begin(struct slot *sl)
{
    struct slot_state *s = sl->s;
    uint64_t due = sl->due_ns;
    sl->entry = s->jobs[s->next++ % s->njobs];
    sl->off = 0;
    s->start(sl);
    if (s->interval_ns) {
        if (due < sl->t0)
            sl->t0 = due;
        sl->due_ns += s->interval_ns;
    }
}

static void slot_next(struct slot *sl)
{
    struct slot_state *s = sl->s;
    if (slots_stopping(s)) {
        s->inflight--;
        return;
    }
    if (s->interval_ns && now_ns() < sl->due_ns) {
        sl->sleeping = 1; /* slots_tick starts it when due */
        return;
    }
    slot_begin(sl);
}

/* Paced runs: wake the slots whose time has come. */
static void slots_tick(void *arg)
{
    struct slot_state *s = arg;
    uint64_t now = now_ns();
    for (int i = 0; i < s->nslots; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->sleeping || (now < sl->due_ns && !slots_stopping(s)))
            continue;
        sl->sleeping = 0;
        if (slots_stopping(s))
            s->inflight--;
        else
            slot_begin(sl);
    }
}

/* Set up slots[0..n) and start them (staggered over one interval when
 * paced). */
static void slots_launch(struct slot_state *s, struct slot *slots, int n,
                         uint64_t start_ns)
{
    s->slots = slots;
    s->nslots = n;
    if (s->interval_ns) {
        s->pool->tick = slots_tick;
        s->pool->tick_arg = s;
    }
    for (int i = 0; i < n; i++) {
        slots[i].s = s;
        slots[i].idx = (unsigned)i;
        slots[i].due_ns = start_ns + s->interval_ns * (uint64_t)i / (uint64_t)n;
        s->inflight++;
        slot_next(&slots[i]);
    }
}

static struct rpc_context *slot_rpc(struct slot *sl)
{
    return conn_get(sl->s->pool, sl->idx % sl->s->conn_limit);
}

/* A reply arrived for sl's current request: count it; 0 if usable. */
static int slot_account(struct slot *sl, const char *what, int status,
                        void *data, int nfs_status)
{
    struct slot_state *s = sl->s;
    uint64_t t1 = now_ns();
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(s->pool, "%s: %s", what, rpc_failure(status, data));
        s->st->errors++;
        s->err = EIO;
        return EIO;
    }
    s->st->ops++;
    if (sl->t0 < s->record_until_ns)
        stats_latency(s->st, sl->t0, t1);
    if (nfs_status != NFS3_OK) {
        char path[1024];
        tree_path(&s->tree, sl->entry, path, sizeof path);
        conn_note_error(s->pool, "%s %s: NFS status %d", what, path, nfs_status);
        s->st->errors++;
        s->err = nfs3_errno(nfs_status);
        return s->err;
    }
    return 0;
}

static void slot_fail(struct slot *sl, int err)
{
    if (!sl->s->err)
        sl->s->err = err;
    sl->s->inflight--;
}

static void lookup_send(struct slot *sl, rpc_cb cb)
{
    struct slot_state *s = sl->s;
    const struct tree_entry *e = &s->tree.e[sl->entry];
    LOOKUP3args args;
    memset(&args, 0, sizeof args);
    args.what.dir = handle_wire(&s->tree.e[e->parent].fh);
    args.what.name = e->name;
    sl->t0 = now_ns();
    if (rpc_nfs3_lookup_async(slot_rpc(sl), cb, &args, sl)) {
        conn_note_error(s->pool, "LOOKUP could not be sent");
        slot_fail(sl, EIO);
    }
}

/* Copy the object handle of a LOOKUP reply into sl->fh; 0 or EIO. */
static int lookup_take(struct slot *sl, void *data)
{
    LOOKUP3res *res = data;
    if (handle_copy(&sl->fh, &res->LOOKUP3res_u.resok.object)) {
        conn_note_error(sl->s->pool, "LOOKUP: oversized handle");
        return EIO;
    }
    return 0;
}

static void getattr_send(struct slot *sl, const struct nfs_handle *fh,
                         rpc_cb cb)
{
    GETATTR3args args;
    memset(&args, 0, sizeof args);
    args.object = handle_wire(fh);
    sl->t0 = now_ns();
    if (rpc_nfs3_getattr_async(slot_rpc(sl), cb, &args, sl)) {
        conn_note_error(sl->s->pool, "GETATTR could not be sent");
        slot_fail(sl, EIO);
    }
}

static int slot_done(void *arg)
{
    return ((struct slot_state *)arg)->inflight == 0;
}

/* Set up s over the tree at path; jobs are the entries wanted(type). */
static int slots_prepare(struct slot_state *s, struct conn_pool *pool,
                         const struct wl_opts *o, struct load_stats *st,
                         int (*wanted)(const struct tree_entry *e))
{
    memset(s, 0, sizeof *s);
    s->pool = pool;
    s->o = o;
    s->st = st;
    s->record_until_ns = UINT64_MAX;
    s->conn_limit = (unsigned)pool->count;
    if (o->rate > 0)
        s->interval_ns = (uint64_t)((double)o->depth * 1e9 / o->rate);
    int rc = load_tree(pool, o, o->paths[0], &s->tree);
    if (rc)
        return rc;
    s->jobs = malloc((s->tree.count ? s->tree.count : 1) * sizeof *s->jobs);
    if (!s->jobs)
        return ENOMEM;
    for (size_t i = 0; i < s->tree.count; i++)
        if (wanted(&s->tree.e[i]))
            s->jobs[s->njobs++] = (long)i;
    if (!s->njobs) {
        conn_note_error(pool, "nothing to work on under %s", o->paths[0]);
        return EINVAL;
    }
    s->total = o->duration > 0 ? UINT64_MAX
                               : s->njobs * (uint64_t)(o->passes > 0 ? o->passes : 1);
    return 0;
}

/* Run the slots until the work is done; frees the state. */
static int slots_run(struct slot_state *s, uint64_t deadline_ns)
{
    struct slot *slots = calloc((size_t)s->o->depth, sizeof *slots);
    if (!slots)
        return ENOMEM;
    s->st->start_ns = now_ns();
    s->stop_ns = stop_time(s->o, s->st->start_ns);
    slots_launch(s, slots, s->o->depth, s->st->start_ns);
    int rc = conn_run(s->pool, slot_done, s, deadline_ns);
    s->pool->tick = NULL;
    s->st->end_ns = now_ns();
    if (rc != ETIMEDOUT && rc != EIO)
        free(slots);
    return rc ? rc : s->err;
}

static void slots_free(struct slot_state *s)
{
    free(s->jobs);
    tree_free(&s->tree);
}

static int not_start(const struct tree_entry *e)
{
    return e->parent >= 0;
}

static int is_file(const struct tree_entry *e)
{
    return e->parent >= 0 && e->type == NF3REG;
}

/* Entries READDIRPLUS gave a handle for (a server may omit one, as
 * tarnfsd does for a member still streaming in). */
static int has_handle(const struct tree_entry *e)
{
    return e->fh.len > 0;
}

/* ---- stat: LOOKUP then GETATTR of every entry ------------------------- */

static void stat_getattr_reply(struct rpc_context *rpc, int status,
                               void *data, void *private_data)
{
    struct slot *sl = private_data;
    (void)rpc;
    int nfs_status = status == RPC_STATUS_SUCCESS ? (int)((GETATTR3res *)data)->status : 0;
    if (slot_account(sl, "GETATTR", status, data, nfs_status)) {
        sl->s->inflight--;
        return;
    }
    slot_next(sl);
}

static void stat_lookup_reply(struct rpc_context *rpc, int status, void *data,
                              void *private_data)
{
    struct slot *sl = private_data;
    (void)rpc;
    int nfs_status = status == RPC_STATUS_SUCCESS ? (int)((LOOKUP3res *)data)->status : 0;
    int rc = slot_account(sl, "LOOKUP", status, data, nfs_status);
    if (!rc)
        rc = lookup_take(sl, data);
    if (rc) {
        slot_fail(sl, rc);
        return;
    }
    getattr_send(sl, &sl->fh, stat_getattr_reply);
}

static void stat_start(struct slot *sl)
{
    lookup_send(sl, stat_lookup_reply);
}

static int wl_stat(struct conn_pool *pool, const struct wl_opts *o,
                   struct load_stats *st)
{
    struct slot_state s;
    int rc = slots_prepare(&s, pool, o, st, not_start);
    if (!rc) {
        s.start = stat_start;
        rc = slots_run(&s, o->deadline_ns);
    }
    slots_free(&s);
    return rc;
}

/* ---- smallfile: LOOKUP then READ to the end, for every file ----------- */

static void small_read_send(struct slot *sl);

static void small_read_reply(struct rpc_context *rpc, int status, void *data,
                             void *private_data)
{
    struct slot *sl = private_data;
    struct slot_state *s = sl->s;
    (void)rpc;
    int nfs_status = status == RPC_STATUS_SUCCESS ? (int)((READ3res *)data)->status : 0;
    if (slot_account(sl, "READ", status, data, nfs_status)) {
        s->inflight--;
        return;
    }
    READ3resok *ok = &((READ3res *)data)->READ3res_u.resok;
    s->st->bytes += ok->count;
    sl->off += ok->count;
    if (!ok->eof && ok->count > 0 && sl->off < s->tree.e[sl->entry].size) {
        small_read_send(sl);
        return;
    }
    s->st->files++;
    slot_next(sl);
}

static void small_read_send(struct slot *sl)
{
    struct slot_state *s = sl->s;
    sl->t0 = now_ns();
    if (send_read(s->pool, slot_rpc(sl), &sl->fh, sl->off, s->o->bsize,
                  small_read_reply, sl))
        slot_fail(sl, EIO);
}

static void small_lookup_reply(struct rpc_context *rpc, int status, void *data,
                               void *private_data)
{
    struct slot *sl = private_data;
    (void)rpc;
    int nfs_status = status == RPC_STATUS_SUCCESS ? (int)((LOOKUP3res *)data)->status : 0;
    int rc = slot_account(sl, "LOOKUP", status, data, nfs_status);
    if (!rc)
        rc = lookup_take(sl, data);
    if (rc) {
        slot_fail(sl, rc);
        return;
    }
    small_read_send(sl);
}

static void small_start(struct slot *sl)
{
    lookup_send(sl, small_lookup_reply);
}

static int wl_smallfile(struct conn_pool *pool, const struct wl_opts *o,
                        struct load_stats *st)
{
    struct slot_state s;
    int rc = slots_prepare(&s, pool, o, st, is_file);
    if (!rc) {
        s.start = small_start;
        rc = slots_run(&s, o->deadline_ns);
    }
    slots_free(&s);
    return rc;
}

/* ---- getattr: GETATTR on cached handles, optionally during a fetch ---- */

struct fetch_op {
    struct slot_state *s;
    struct resolve_op resolve;
    uint64_t t0, t1;
    int done, err;
};

static void fetch_finish(struct fetch_op *f, int err)
{
    f->t1 = now_ns();
    f->err = err;
    f->done = 1;
    /* stop the GETATTR load: what comes after the fetch is not measured */
    f->s->record_until_ns = f->t1;
    f->s->total = 0;
}

static void fetch_list_reply(struct rpc_context *rpc, int status, void *data,
                             void *private_data)
{
    struct fetch_op *f = private_data;
    (void)rpc;
    int err = 0;
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(f->s->pool, "fetch READDIRPLUS: %s",
                        rpc_failure(status, data));
        err = EIO;
    } else if (((READDIRPLUS3res *)data)->status != NFS3_OK) {
        conn_note_error(f->s->pool, "fetch READDIRPLUS: NFS status %d",
                        (int)((READDIRPLUS3res *)data)->status);
        err = nfs3_errno(((READDIRPLUS3res *)data)->status);
    }
    fetch_finish(f, err);
}

static void fetch_resolved(struct resolve_op *op, void *arg)
{
    struct fetch_op *f = arg;
    if (op->err || op->result.type != NF3DIR) {
        fetch_finish(f, op->err ? op->err : ENOTDIR);
        return;
    }
    /* the run's directory is listed: its contents need the whole run */
    READDIRPLUS3args args;
    memset(&args, 0, sizeof args);
    args.dir = handle_wire(&op->result.fh);
    args.dircount = f->s->o->list.dircount;
    args.maxcount = f->s->o->list.maxcount;
    if (rpc_nfs3_readdirplus_async(op->rpc, fetch_list_reply, &args, f))
        fetch_finish(f, EIO);
}

static void getattr_reply(struct rpc_context *rpc, int status, void *data,
                          void *private_data)
{
    struct slot *sl = private_data;
    (void)rpc;
    int nfs_status = status == RPC_STATUS_SUCCESS ? (int)((GETATTR3res *)data)->status : 0;
    if (slot_account(sl, "GETATTR", status, data, nfs_status)) {
        sl->s->inflight--;
        return;
    }
    slot_next(sl);
}

static void getattr_start(struct slot *sl)
{
    getattr_send(sl, &sl->s->tree.e[sl->entry].fh, getattr_reply);
}

struct getattr_wait {
    struct slot_state *s;
    struct fetch_op *fetch;
};

static int getattr_done(void *arg)
{
    struct getattr_wait *w = arg;
    return w->s->inflight == 0 && (!w->fetch || w->fetch->done);
}

static int wl_getattr(struct conn_pool *pool, const struct wl_opts *o,
                      struct load_stats *st)
{
    struct slot_state s;
    int rc = slots_prepare(&s, pool, o, st, has_handle);
    if (rc) {
        slots_free(&s);
        return rc;
    }
    s.start = getattr_start;
    struct fetch_op fetch = { .s = &s };
    struct getattr_wait wait = { .s = &s };
    if (o->fetch_path) {
        if (pool->count < 2) {
            conn_note_error(pool, "getattr --fetch needs --conns 2 or more");
            slots_free(&s);
            return EINVAL;
        }
        /* the last connection carries the fetch, the others the load */
        s.conn_limit = (unsigned)pool->count - 1;
        s.total = UINT64_MAX;
        wait.fetch = &fetch;
    }
    struct slot *slots = calloc((size_t)o->depth, sizeof *slots);
    if (!slots) {
        slots_free(&s);
        return ENOMEM;
    }
    st->start_ns = now_ns();
    s.stop_ns = stop_time(o, st->start_ns);
    slots_launch(&s, slots, o->depth, st->start_ns);
    if (o->fetch_path) {
        fetch.t0 = now_ns();
        rc = resolve_start(&fetch.resolve, pool, conn_get(pool, (unsigned)pool->count - 1),
                           o->fetch_path, NULL, fetch_resolved, &fetch);
        if (rc)
            fetch_finish(&fetch, rc);
    }
    rc = conn_run(pool, getattr_done, &wait, o->deadline_ns);
    pool->tick = NULL;
    st->end_ns = fetch.done ? fetch.t1 : now_ns();
    if (o->fetch_path) {
        st->extra_name = "fetch_seconds";
        st->extra_seconds = fetch.done ? (double)(fetch.t1 - fetch.t0) / 1e9 : 0;
        if (!rc && fetch.err)
            rc = fetch.err;
    }
    if (rc != ETIMEDOUT && rc != EIO) {
        free(slots);
        if (o->fetch_path)
            resolve_free(&fetch.resolve);
    }
    slots_free(&s);
    return rc ? rc : s.err;
}

/* ---- first: first LOOKUP of a path to its first byte (or listing) ----- */

struct first_state {
    struct conn_pool *pool;
    struct load_stats *st;
    int done, err;
};

static void first_reply(struct rpc_context *rpc, int status, void *data,
                        void *private_data)
{
    struct first_state *f = private_data;
    (void)rpc;
    f->done = 1;
    if (status != RPC_STATUS_SUCCESS) {
        conn_note_error(f->pool, "first: %s", rpc_failure(status, data));
        f->err = EIO;
        return;
    }
    f->st->ops++;
    /* READ3res and READDIRPLUS3res both start with their status */
    int nfs_status = (int)((READ3res *)data)->status;
    if (nfs_status != NFS3_OK) {
        conn_note_error(f->pool, "first: NFS status %d", nfs_status);
        f->err = nfs3_errno(nfs_status);
        return;
    }
}

static int first_done(void *arg)
{
    return ((struct first_state *)arg)->done;
}

static int wl_first(struct conn_pool *pool, const struct wl_opts *o,
                    struct load_stats *st)
{
    struct first_state f = { .pool = pool, .st = st };
    struct tree_entry e;
    st->start_ns = now_ns();
    int rc = tree_resolve(pool, o->paths[0], &e, st, o->deadline_ns);
    if (rc)
        return rc;
    struct rpc_context *rpc = conn_pick(pool);
    if (e.type == NF3DIR) {
        READDIRPLUS3args args;
        memset(&args, 0, sizeof args);
        args.dir = handle_wire(&e.fh);
        args.dircount = o->list.dircount;
        args.maxcount = o->list.maxcount;
        if (rpc_nfs3_readdirplus_async(rpc, first_reply, &args, &f))
            return EIO;
    } else {
        uint32_t count = o->bsize < 4096 ? o->bsize : 4096;
        if (send_read(pool, rpc, &e.fh, 0, count, first_reply, &f))
            return EIO;
    }
    rc = conn_run(pool, first_done, &f, o->deadline_ns);
    st->end_ns = now_ns();
    st->extra_name = "first_seconds";
    st->extra_seconds = (double)(st->end_ns - st->start_ns) / 1e9;
    stats_latency(st, st->start_ns, st->end_ns);
    return rc ? rc : f.err;
}

/* ---- readdirplus and walk: listings ----------------------------------- */

static int wl_listing(struct conn_pool *pool, const struct wl_opts *o,
                      struct load_stats *st, int recursive)
{
    struct load_stats scratch = { 0 };
    struct tree_entry start;
    int rc = tree_resolve(pool, o->paths[0], &start, &scratch, o->deadline_ns);
    stats_free(&scratch);
    if (rc)
        return rc;
    if (start.type != NF3DIR) {
        conn_note_error(pool, "%s is not a directory", o->paths[0]);
        return ENOTDIR;
    }
    struct tree t = { 0 };
    if (tree_add(&t, -1, NULL, &start.fh, NF3DIR, 0) < 0)
        return ENOMEM;
    struct list_opts lo = o->list;
    int passes = o->passes > 0 ? o->passes : 1;
    lo.recursive = recursive;
    lo.keep = 0;
    if (recursive) {
        lo.repeat = passes;
        lo.depth = o->depth;
    } else {
        lo.repeat = passes * o->streams;
        lo.depth = o->streams;
    }
    st->start_ns = now_ns();
    rc = tree_list(pool, &t, &lo, st, o->deadline_ns);
    st->end_ns = now_ns();
    if (rc != ETIMEDOUT)
        tree_free(&t);
    return rc;
}

/* ---- dispatcher ------------------------------------------------------- */

int wl_run(const char *name, struct conn_pool *pool, const struct wl_opts *o,
           struct load_stats *st)
{
    if (o->npaths < 1) {
        conn_note_error(pool, "%s needs a path", name);
        return EINVAL;
    }
    if (!strcmp(name, "seqread"))
        return wl_seqread(pool, o, st);
    if (!strcmp(name, "randread"))
        return wl_randread(pool, o, st);
    if (!strcmp(name, "stat"))
        return wl_stat(pool, o, st);
    if (!strcmp(name, "readdirplus"))
        return wl_listing(pool, o, st, 0);
    if (!strcmp(name, "walk"))
        return wl_listing(pool, o, st, 1);
    if (!strcmp(name, "smallfile"))
        return wl_smallfile(pool, o, st);
    if (!strcmp(name, "getattr"))
        return wl_getattr(pool, o, st);
    if (!strcmp(name, "first"))
        return wl_first(pool, o, st);
    conn_note_error(pool, "unknown workload %s", name);
    return EINVAL;
}
