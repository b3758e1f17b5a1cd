/* test_vfs_cache.c: Check tests of the vfs in cache mode (no source): the
 * root lists the cache's runs, runs are served from kvstore, ids survive a
 * restart, cookies resume exactly, writes map onto kvstore or are refused. */
#include "vfs_test_util.h"

#include <pthread.h>

static vfs *open_cache_vfs(bool read_only)
{
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    struct vfs_config cfg = { .cache_dir = cache, .read_only = read_only };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    return v;
}

/* runA, runB and 2024/runC, each tarred and ingested. */
static void three_runs(void)
{
    make_run_tarball("runA", ".tar", "a");
    make_run_tarball("runB", ".tar", "b");
    make_run_tarball("2024/runC", ".tar", "c");
    ingest_run("runA");
    ingest_run("runB");
    ingest_run("2024/runC");
}

START_TEST(root_lists_cached_runs_with_nested_names_as_directories)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    char names[4096];
    list_sorted(v, "/", names, sizeof names);
    ck_assert_str_eq(names, "2024/,runA/,runB/");
    list_sorted(v, "/2024", names, sizeof names);
    ck_assert_str_eq(names, "runC/");
    list_sorted(v, "/runA", names, sizeof names);
    ck_assert_str_eq(names, "Data/,InterOp/,RunInfo.xml,empty/,link");
    vfs_close(v);
}
END_TEST

struct nsdir_seen {
    bool found, had_attrs;
    struct vfs_attr a;
};

static int nsdir_cb(void *arg, const struct vfs_dirent *de)
{
    struct nsdir_seen *s = arg;
    if (!strcmp(de->name, "2024")) {
        s->found = true;
        s->had_attrs = de->a != NULL;
        if (de->a)
            s->a = *de->a;
    }
    return 0;
}

/* READDIRPLUS of the root gives a nested namespace directory its own
 * attributes, the ones GETATTR gives (before: the root's nlink and times,
 * so a client saw 2024/'s nlink and mtime flip between two values). */
START_TEST(a_listing_gives_a_nested_directory_its_own_attributes)
{
    three_runs();
    make_run_tarball("2025/runD", ".tar", "d");
    ingest_run("2025/runD");
    vfs *v = open_cache_vfs(false);
    struct vfs_id root, id;
    struct vfs_attr ga;
    ck_assert_int_eq(walk(v, "/", &root, NULL), 0);
    struct nsdir_seen s = { 0 };
    uint64_t verf = 0;
    ck_assert_int_eq(vfs_readdir(v, &root, 0, true, &verf, nsdir_cb, &s), 0);
    ck_assert(s.found);
    ck_assert(s.had_attrs);
    ck_assert_int_eq(walk(v, "2024", &id, &ga), 0);
    ck_assert_int_eq(s.a.type, VFS_DIR);
    ck_assert_uint_eq(s.a.fileid, ga.fileid);
    ck_assert_uint_eq(s.a.nlink, ga.nlink);
    ck_assert_uint_eq(s.a.nlink, 3);             /* 2 + runC */
    /* The root's: 2 + its four directories (2024, 2025, runA, runB);
     * before, runs were not counted (2 + 2). */
    struct vfs_attr ra;
    ck_assert_int_eq(walk(v, "/", &root, &ra), 0);
    ck_assert_uint_eq(ra.nlink, 6);
    ck_assert_int_eq(s.a.mtime.tv_sec, ga.mtime.tv_sec);
    ck_assert_int_eq(s.a.mtime.tv_nsec, ga.mtime.tv_nsec);
    ck_assert_int_eq(s.a.ctime.tv_sec, ga.ctime.tv_sec);
    vfs_close(v);
}
END_TEST

START_TEST(a_file_deep_in_a_run_reads_back_byte_for_byte)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, "2024/runC", "2024/runC");
    struct vfs_id id;
    char target[64];
    size_t len;
    ck_assert_int_eq(walk(v, "runB/link", &id, NULL), 0);
    ck_assert_int_eq(vfs_readlink(v, &id, target, sizeof target, &len), 0);
    ck_assert_uint_eq(len, strlen("RunInfo.xml"));
    ck_assert(memcmp(target, "RunInfo.xml", len) == 0);
    vfs_close(v);
}
END_TEST

START_TEST(a_missing_run_is_enoent_and_missing_member_too)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "nosuchrun", &id, NULL), ENOENT);
    ck_assert_int_eq(walk(v, "2024/nosuchrun", &id, NULL), ENOENT);
    ck_assert_int_eq(walk(v, "runA/nosuchfile", &id, NULL), ENOENT);
    ck_assert_int_eq(walk(v, "runA/RunInfo.xml/x", &id, NULL), ENOTDIR);
    vfs_close(v);
}
END_TEST

START_TEST(attributes_map_from_kvstore_and_namespace_dirs_are_dirs)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id id;
    struct vfs_attr a, b;
    ck_assert_int_eq(walk(v, "runA/" DEEP_FILE, &id, &a), 0);
    ck_assert_int_eq(a.type, VFS_REG);
    ck_assert_uint_eq(a.size, DEEP_SIZE);
    ck_assert_uint_eq(a.fileid, kv_ino_for("runA", DEEP_FILE));
    ck_assert_int_eq(walk(v, "runA/link", &id, &b), 0);
    ck_assert_int_eq(b.type, VFS_LNK);
    ck_assert_uint_eq(a.fsid, b.fsid);
    ck_assert_int_eq(walk(v, "2024", &id, &a), 0);
    ck_assert_int_eq(a.type, VFS_DIR);
    ck_assert_int_eq(walk(v, "/", &id, &b), 0);
    ck_assert_int_eq(b.type, VFS_DIR);
    ck_assert_uint_ne(a.fileid, b.fileid);
    ck_assert_uint_eq(a.fsid, b.fsid);
    vfs_close(v);
}
END_TEST

START_TEST(ids_survive_a_restart_including_long_run_names)
{
    const char *longname =
        "241023_A01295_0432_BHK3NFDRX5_with_a_much_longer_suffix_than_fits";
    make_run_tarball(longname, ".tar", "l");
    ingest_run(longname);
    make_run_tarball("runA", ".tar", "a");
    ingest_run("runA");
    vfs *v = open_cache_vfs(false);
    struct vfs_id deep_long, deep_short, run_root;
    char path[1024];
    snprintf(path, sizeof path, "%s/" DEEP_FILE, longname);
    ck_assert_int_eq(walk(v, path, &deep_long, NULL), 0);
    ck_assert_int_le(deep_long.len, VFS_ID_MAX);
    ck_assert_int_eq(walk(v, "runA/" DEEP_FILE, &deep_short, NULL), 0);
    ck_assert_int_eq(walk(v, longname, &run_root, NULL), 0);
    vfs_close(v);

    v = open_cache_vfs(false);
    size_t len;
    unsigned char *got = read_all(v, &deep_long, &len);
    ck_assert_uint_eq(len, DEEP_SIZE);
    unsigned char *want = malloc(DEEP_SIZE);
    fill_content(longname, DEEP_FILE, want, DEEP_SIZE);
    ck_assert(memcmp(got, want, DEEP_SIZE) == 0);
    free(got);
    free(want);
    struct vfs_attr a;
    ck_assert_int_eq(vfs_getattr(v, &deep_short, &a), 0);
    ck_assert_uint_eq(a.size, DEEP_SIZE);
    struct vfs_id again;
    ck_assert_int_eq(vfs_lookup(v, &run_root, "RunInfo.xml", &again, &a), 0);
    ck_assert_int_eq(a.type, VFS_REG);
    vfs_close(v);
}
END_TEST

START_TEST(dot_and_dotdot_resolve_through_runs_and_namespace_dirs)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id runc, ns, up, root, data, dataup;
    vfs_root(v, &root);
    ck_assert_int_eq(walk(v, "2024/runC", &runc, NULL), 0);
    ck_assert_int_eq(walk(v, "2024", &ns, NULL), 0);
    ck_assert_int_eq(vfs_lookup(v, &runc, "..", &up, NULL), 0);
    ck_assert_mem_eq(up.b, ns.b, ns.len);
    ck_assert_int_eq(up.len, ns.len);
    ck_assert_int_eq(vfs_parent(v, &ns, &up), 0);
    ck_assert_mem_eq(up.b, root.b, root.len);
    ck_assert_int_eq(walk(v, "2024/runC/Data", &data, NULL), 0);
    ck_assert_int_eq(vfs_lookup(v, &data, "..", &dataup, NULL), 0);
    ck_assert_int_eq(dataup.len, runc.len);
    ck_assert_mem_eq(dataup.b, runc.b, runc.len);
    ck_assert_int_eq(vfs_lookup(v, &data, ".", &dataup, NULL), 0);
    ck_assert_mem_eq(dataup.b, data.b, data.len);
    vfs_close(v);
}
END_TEST

START_TEST(readdir_resumed_from_any_cookie_continues_exactly)
{
    /* 40 runs; page the root 3 entries at a time across a restart. */
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "run%02d", i);
        make_run_tarball(names[i], ".tar", names[i]);
        ingest_run(names[i]);
    }
    vfs *v = open_cache_vfs(false);
    struct vfs_id root;
    vfs_root(v, &root);
    struct names_acc *all = calloc(1, sizeof *all);
    uint64_t verf, verf2;
    ck_assert_int_eq(vfs_readdir(v, &root, 0, false, &verf, names_cb, all), 0);
    ck_assert_uint_eq(all->n, 40);
    struct names_acc *paged = calloc(1, sizeof *paged);
    uint64_t cookie = 0;
    for (int page = 0; page < 100; page++) {
        if (page == 5) {        /* a restart in the middle of the listing */
            vfs_close(v);
            v = open_cache_vfs(false);
        }
        struct names_acc *one = calloc(1, sizeof *one);
        one->stop_after = 3;
        int rc = vfs_readdir(v, &root, cookie, page % 2 == 0, &verf2,
                             names_cb, one);
        ck_assert_uint_eq(verf2, verf);
        if (one->n) {
            size_t used = strlen(paged->buf);
            snprintf(paged->buf + used, sizeof paged->buf - used, "%s%s",
                     used ? "," : "", one->buf);
            paged->n += one->n;
            cookie = one->last_cookie;
        }
        free(one);
        if (rc == 0)
            break;
    }
    ck_assert_uint_eq(paged->n, 40);
    ck_assert_str_eq(paged->buf, all->buf);
    free(all);
    free(paged);
    vfs_close(v);
}
END_TEST

START_TEST(malformed_ids_are_ebadmsg_and_vanished_ones_estale)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_attr a;
    struct vfs_id bad = { .len = 3, .b = { 'Z', 1, 2 } };
    ck_assert_int_eq(vfs_getattr(v, &bad, &a), EBADMSG);
    bad.len = 0;
    ck_assert_int_eq(vfs_getattr(v, &bad, &a), EBADMSG);
    struct vfs_id id;
    ck_assert_int_eq(walk(v, "runA/RunInfo.xml", &id, NULL), 0);
    struct vfs_id wrong_ino = id;
    wrong_ino.b[8] ^= 0x55;     /* another inode number in the same run */
    ck_assert_int_eq(vfs_getattr(v, &wrong_ino, &a), ESTALE);
    /* The same member in a run that is not in the cache. */
    struct vfs_id other = id;
    memcpy(other.b + 9, "runZ", 4);
    ck_assert_int_eq(vfs_getattr(v, &other, &a), ESTALE);
    /* A removed member: its id goes stale. */
    ck_assert_int_eq(walk(v, "runA", &id, NULL), 0);
    struct vfs_id file;
    ck_assert_int_eq(vfs_lookup(v, &id, "RunInfo.xml", &file, NULL), 0);
    ck_assert_int_eq(vfs_remove(v, &id, "RunInfo.xml", false, NULL, NULL), 0);
    ck_assert_int_eq(vfs_getattr(v, &file, &a), ESTALE);
    vfs_close(v);
}
END_TEST

START_TEST(writes_inside_a_run_land_in_kvstore_and_survive_restart)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id run, dir, f, f2;
    struct vfs_attr a, pre, post;
    struct vfs_cred cred = { 1000, 1000 };
    struct vfs_sattr s = { .set_mode = true, .mode = 0640 };
    ck_assert_int_eq(walk(v, "runB", &run, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "newdir", VFS_DIR, &s, &cred, 0, 0,
                                NULL, &dir, &a, &pre, &post), 0);
    ck_assert_int_eq(a.type, VFS_DIR);
    ck_assert_uint_eq(post.nlink, pre.nlink + 1);
    ck_assert_int_eq(vfs_create(v, &dir, "hello.txt", VFS_REG, &s, &cred, 0,
                                0, NULL, &f, &a, NULL, NULL), 0);
    ck_assert_uint_eq(a.uid, 1000);
    ck_assert_uint_eq(a.mode, 0640);
    ck_assert_int_eq(vfs_create(v, &dir, "hello.txt", VFS_REG, &s, &cred, 0,
                                0, NULL, &f2, &a, NULL, NULL), EEXIST);
    ck_assert_int_eq(vfs_write(v, &f, 0, "hello, world", 12, false, &pre,
                               &post), 0);
    ck_assert_uint_eq(pre.size, 0);
    ck_assert_uint_eq(post.size, 12);
    ck_assert_int_eq(vfs_write(v, &f, 7, "there", 5, true, NULL, NULL), 0);
    ck_assert_int_eq(vfs_commit(v, &f), 0);
    ck_assert_int_eq(vfs_link(v, &f, &run, "hardlink", &a, NULL, NULL), 0);
    ck_assert_uint_eq(a.nlink, 2);
    ck_assert_int_eq(vfs_rename(v, &dir, "hello.txt", &dir, "renamed.txt",
                                NULL, NULL, NULL, NULL), 0);
    struct vfs_sattr trunc = { .set_size = true, .size = 5 };
    ck_assert_int_eq(vfs_setattr(v, &f, &trunc, &pre, &post), 0);
    ck_assert_uint_eq(pre.size, 12);
    ck_assert_uint_eq(post.size, 5);
    struct vfs_id sl;
    ck_assert_int_eq(vfs_create(v, &dir, "sl", VFS_LNK, NULL, &cred, 0, 0,
                                "renamed.txt", &sl, &a, NULL, NULL), 0);
    ck_assert_int_eq(vfs_remove(v, &run, "hardlink", false, NULL, NULL), 0);
    vfs_close(v);

    v = open_cache_vfs(false);
    ck_assert_int_eq(walk(v, "runB/newdir/renamed.txt", &f2, &a), 0);
    ck_assert_uint_eq(a.size, 5);
    ck_assert_mem_eq(f2.b, f.b, f.len);
    char buf[16];
    size_t got;
    bool eof;
    ck_assert_int_eq(vfs_read(v, &f2, 0, buf, sizeof buf, &got, &eof), 0);
    ck_assert_uint_eq(got, 5);
    ck_assert(eof);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert_int_eq(walk(v, "runB/hardlink", &f2, NULL), ENOENT);
    ck_assert_int_eq(vfs_remove(v, &dir, "sl", false, NULL, NULL), 0);
    ck_assert_int_eq(vfs_remove(v, &dir, "renamed.txt", false, NULL, NULL), 0);
    ck_assert_int_eq(vfs_remove(v, &run, "newdir", true, NULL, NULL), 0);
    vfs_close(v);
}
END_TEST

/* Issue 12 finding 10: uid 1000 keeps the ids of nodes it created; the run
 * is re-ingested (as after write-back, eviction and re-fetch); uid 2000
 * creates a private directory and a file in it.  The old ids must not
 * name those (they were 16 and 17 both times when numbers came from a
 * counter that restarted). */
START_TEST(an_old_id_never_names_another_users_new_file_after_reingest)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id run, d, f, priv, secret;
    struct vfs_attr a;
    struct vfs_cred u1 = { 1000, 1000 }, u2 = { 2000, 2000 };
    struct vfs_sattr s755 = { .set_mode = true, .mode = 0755 };
    struct vfs_sattr s700 = { .set_mode = true, .mode = 0700 };
    ck_assert_int_eq(walk(v, "runB", &run, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "d", VFS_DIR, &s755, &u1, 0, 0,
                                NULL, &d, &a, NULL, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &d, "f", VFS_REG, &s755, &u1, 0, 0,
                                NULL, &f, &a, NULL, NULL), 0);
    vfs_close(v);

    ingest_run("runB");             /* the run is replaced by a re-ingest */

    v = open_cache_vfs(false);
    ck_assert_int_eq(walk(v, "runB", &run, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "private", VFS_DIR, &s700, &u2, 0,
                                0, NULL, &priv, &a, NULL, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &priv, "secret", VFS_REG, &s700, &u2, 0,
                                0, NULL, &secret, &a, NULL, NULL), 0);
    ck_assert_int_eq(vfs_write(v, &secret, 0, "top secret", 10, false, NULL,
                               NULL), 0);
    ck_assert_int_eq(vfs_getattr(v, &d, &a), ESTALE);
    ck_assert_int_eq(vfs_getattr(v, &f, &a), ESTALE);
    char buf[16];
    size_t got;
    bool eof;
    ck_assert_int_eq(vfs_read(v, &f, 0, buf, sizeof buf, &got, &eof), ESTALE);
    vfs_close(v);
}
END_TEST

/* Issue 12 finding 9a: sizes past the configured maximum (default 2^44)
 * are EFBIG for SETATTR and WRITE, and vfs_max_file_size says the same
 * (FSINFO maxfilesize). */
START_TEST(sizes_past_the_maximum_file_size_are_efbig)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    ck_assert_uint_eq(vfs_max_file_size(v), UINT64_C(1) << 44);
    struct vfs_id run, f;
    struct vfs_cred cred = { 1000, 1000 };
    struct vfs_sattr s = { .set_mode = true, .mode = 0644 };
    ck_assert_int_eq(walk(v, "runB", &run, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "big", VFS_REG, &s, &cred, 0, 0,
                                NULL, &f, NULL, NULL, NULL), 0);
    struct vfs_sattr sz = { .set_size = true, .size = UINT64_C(1) << 44 };
    ck_assert_int_eq(vfs_setattr(v, &f, &sz, NULL, NULL), 0);
    sz.size++;
    ck_assert_int_eq(vfs_setattr(v, &f, &sz, NULL, NULL), EFBIG);
    sz.size = UINT64_C(1) << 50;
    ck_assert_int_eq(vfs_setattr(v, &f, &sz, NULL, NULL), EFBIG);
    ck_assert_int_eq(vfs_write(v, &f, (UINT64_C(1) << 44) - 1, "ab", 2, false,
                               NULL, NULL), EFBIG);
    ck_assert_int_eq(vfs_remove(v, &run, "big", false, NULL, NULL), 0);
    vfs_close(v);

    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    struct vfs_config cfg = { .cache_dir = cache, .max_file_size = 1 << 20 };
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    ck_assert_uint_eq(vfs_max_file_size(v), 1 << 20);
    ck_assert_int_eq(walk(v, "runB", &run, NULL), 0);
    ck_assert_int_eq(vfs_create(v, &run, "small", VFS_REG, &s, &cred, 0, 0,
                                NULL, &f, NULL, NULL, NULL), 0);
    ck_assert_int_eq(vfs_write(v, &f, (1 << 20) - 1, "ab", 2, false, NULL,
                               NULL), EFBIG);
    sz.size = (1 << 20) + 1;
    ck_assert_int_eq(vfs_setattr(v, &f, &sz, NULL, NULL), EFBIG);
    vfs_close(v);
}
END_TEST

START_TEST(cross_run_and_namespace_changes_are_refused)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    struct vfs_id root, ra, rb, f, out, ns;
    struct vfs_attr a;
    struct vfs_cred cred = { 0, 0 };
    vfs_root(v, &root);
    ck_assert_int_eq(walk(v, "runA", &ra, NULL), 0);
    ck_assert_int_eq(walk(v, "runB", &rb, NULL), 0);
    ck_assert_int_eq(walk(v, "2024", &ns, NULL), 0);
    ck_assert_int_eq(walk(v, "runA/RunInfo.xml", &f, NULL), 0);
    ck_assert_int_eq(vfs_rename(v, &ra, "RunInfo.xml", &rb, "x", NULL, NULL,
                                NULL, NULL), EXDEV);
    ck_assert_int_eq(vfs_link(v, &f, &rb, "x", &a, NULL, NULL), EXDEV);
    ck_assert_int_eq(vfs_create(v, &root, "newrun", VFS_DIR, NULL, &cred, 0,
                                0, NULL, &out, &a, NULL, NULL), EACCES);
    ck_assert_int_eq(vfs_create(v, &ns, "newrun", VFS_DIR, NULL, &cred, 0,
                                0, NULL, &out, &a, NULL, NULL), EACCES);
    ck_assert_int_eq(vfs_remove(v, &root, "runA", true, NULL, NULL), EACCES);
    ck_assert_int_eq(vfs_rename(v, &root, "runA", &root, "runZ", NULL, NULL,
                                NULL, NULL), EACCES);
    ck_assert_int_eq(vfs_write(v, &root, 0, "x", 1, false, NULL, NULL),
                     EISDIR);
    vfs_close(v);

    v = open_cache_vfs(true);
    ck_assert_int_eq(vfs_write(v, &f, 0, "x", 1, false, NULL, NULL), EROFS);
    ck_assert_int_eq(vfs_create(v, &ra, "x", VFS_REG, NULL, &cred, 0, 0,
                                NULL, &out, &a, NULL, NULL), EROFS);
    ck_assert_int_eq(vfs_remove(v, &ra, "RunInfo.xml", false, NULL, NULL),
                     EROFS);
    struct vfs_sattr s = { .set_mode = true, .mode = 0 };
    ck_assert_int_eq(vfs_setattr(v, &f, &s, NULL, NULL), EROFS);
    ck_assert_int_eq(walk(v, "runA/RunInfo.xml", &f, &a), 0);
    ck_assert_uint_ne(a.mode, 0);
    vfs_close(v);
}
END_TEST

struct reader_arg { vfs *v; int errors; };

static void *reader(void *arg)
{
    struct reader_arg *ra = arg;
    for (int i = 0; i < 20; i++) {
        struct vfs_id id;
        const char *runs[] = { "runA", "runB", "2024/runC" };
        char path[256];
        snprintf(path, sizeof path, "%s/" DEEP_FILE, runs[i % 3]);
        if (walk(ra->v, path, &id, NULL) != 0) {
            ra->errors++;
            continue;
        }
        char buf[4096];
        size_t got;
        bool eof;
        if (vfs_read(ra->v, &id, (uint64_t)i * 1000, buf, sizeof buf, &got,
                     &eof) != 0 || got != sizeof buf)
            ra->errors++;
    }
    return NULL;
}

START_TEST(many_threads_read_cached_runs_at_once)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    pthread_t t[8];
    struct reader_arg ra[8];
    for (int i = 0; i < 8; i++) {
        ra[i] = (struct reader_arg){ v, 0 };
        pthread_create(&t[i], NULL, reader, &ra[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(ra[i].errors, 0);
    }
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    ck_assert_uint_ge(st.hits, 8 * 20);
    ck_assert_uint_eq(st.fetches, 0);
    ck_assert_uint_eq(st.runs_cached, 3);
    vfs_close(v);
}
END_TEST

/* Issue 12 finding 16: someone who can write the cache directory plants
 * symlinks where tarnfsd writes its stats (the file and its old fixed temp
 * name) pointing at a file it may not write: that file is never touched. */
START_TEST(planted_symlinks_in_the_cache_directory_are_never_followed)
{
    three_runs();
    char cache[512], path[600], tmp[640], victim[600], buf[64];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    snprintf(victim, sizeof victim, "%s/victim", scratch);
    vfs_stats_path(cache, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(victim, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious", f);
    fclose(f);
    ck_assert_int_eq(symlink(victim, path), 0);
    ck_assert_int_eq(symlink(victim, tmp), 0);
    vfs *v = open_cache_vfs(false);
    assert_deep_file(v, "runA", "runA");
    ck_assert_int_eq(vfs_housekeep(v), 0);      /* it writes the stats */
    vfs_close(v);
    f = fopen(victim, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_str_eq(buf, "precious");
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(stats_file_is_written_while_open)
{
    three_runs();
    vfs *v = open_cache_vfs(false);
    assert_deep_file(v, "runA", "runA");
    char cache[512], path[600];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    vfs_stats_path(cache, path, sizeof path);
    struct stat st;
    ck_assert_int_eq(vfs_housekeep(v), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    vfs_close(v);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    unsigned long long hits = 0, runs = 0;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "hits=%llu", &hits);
        sscanf(line, "runs_cached=%llu", &runs);
    }
    fclose(f);
    ck_assert_uint_gt(hits, 0);
    ck_assert_uint_eq(runs, 3);
}
END_TEST

START_TEST(idle_runs_beyond_open_runs_are_closed_and_open_again_when_used)
{
    three_runs();
    char cache[512];
    snprintf(cache, sizeof cache, "%s/cache", scratch);
    struct vfs_config cfg = { .cache_dir = cache, .open_runs = 1 };
    vfs *v = NULL;
    ck_assert_int_eq(vfs_open(&cfg, &v), 0);
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, "runB", "runB");
    assert_deep_file(v, "2024/runC", "2024/runC");
    /* Three runs were opened; after one housekeeping pass only one idle
     * run stays open. */
    struct vfs_stats st;
    vfs_get_stats(v, &st);
    ck_assert_uint_ge(st.runs_open, 2);
    ck_assert_int_eq(vfs_housekeep(v), 0);
    vfs_get_stats(v, &st);
    ck_assert_uint_eq(st.runs_open, 1);
    /* A closed run opens again when used, and reads the same. */
    assert_deep_file(v, "runA", "runA");
    assert_deep_file(v, "runB", "runB");
    vfs_close(v);
}
END_TEST

static Suite *vfs_cache_suite(void)
{
    Suite *s = suite_create("vfs-cache-mode");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, root_lists_cached_runs_with_nested_names_as_directories);
    tcase_add_test(tc, a_listing_gives_a_nested_directory_its_own_attributes);
    tcase_add_test(tc, a_file_deep_in_a_run_reads_back_byte_for_byte);
    tcase_add_test(tc, a_missing_run_is_enoent_and_missing_member_too);
    tcase_add_test(tc, attributes_map_from_kvstore_and_namespace_dirs_are_dirs);
    tcase_add_test(tc, ids_survive_a_restart_including_long_run_names);
    tcase_add_test(tc, dot_and_dotdot_resolve_through_runs_and_namespace_dirs);
    tcase_add_test(tc, readdir_resumed_from_any_cookie_continues_exactly);
    tcase_add_test(tc, malformed_ids_are_ebadmsg_and_vanished_ones_estale);
    tcase_add_test(tc, writes_inside_a_run_land_in_kvstore_and_survive_restart);
    tcase_add_test(tc, an_old_id_never_names_another_users_new_file_after_reingest);
    tcase_add_test(tc, sizes_past_the_maximum_file_size_are_efbig);
    tcase_add_test(tc, cross_run_and_namespace_changes_are_refused);
    tcase_add_test(tc, many_threads_read_cached_runs_at_once);
    tcase_add_test(tc, stats_file_is_written_while_open);
    tcase_add_test(tc, idle_runs_beyond_open_runs_are_closed_and_open_again_when_used);
    tcase_add_test(tc, planted_symlinks_in_the_cache_directory_are_never_followed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vfs_cache_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
