/* test_settings.c: a settings table parses each type as tarnfs.conf(5) says, refuses junk and out-of-range values with a message naming the range, and tarnfsd's table matches its man page, name for name. */
#include "util/settings.h"
#include "util/conf.h"
#include "nfsd/config.h"
#include "vfs/vfs.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct inner {
    unsigned n;
};

struct sample {
    char *name, *addr;
    char *secret;
    bool flag;
    unsigned count, pct, ms, never_ms;
    int port;
    uint64_t bytes, off_bytes;
    int colour;
    struct inner in;
};

static int parse_colour(void *base, const char *v, char *why, size_t whylen)
{
    struct sample *s = base;
    if (strcmp(v, "red") && strcmp(v, "blue")) {
        snprintf(why, whylen, "want red or blue");
        return EINVAL;
    }
    s->colour = v[0] == 'r' ? 1 : 2;
    return 0;
}

static int check_addr(void *base, const char *v, char *why, size_t whylen)
{
    (void)base;
    if (!strchr(v, ':')) {
        snprintf(why, whylen, "want HOST:PORT");
        return EINVAL;
    }
    return 0;
}

#define AT(f) offsetof(struct sample, f)
static const struct setting inner_rows[] = {
    { "inner", SET_UINT, offsetof(struct inner, n), 0, 9, 0, NULL, NULL },
};
static const struct setting_table inner_table = { inner_rows, 1 };
static const struct setting rows[] = {
    { "name", SET_STRING, AT(name), 0, 0, 0, NULL, NULL },
    { "addr", SET_STRING, AT(addr), 0, 0, 0, check_addr, NULL },
    { "secret", SET_STRING, AT(secret), 0, 0, SETTING_SECRET, NULL, NULL },
    { "flag", SET_BOOL, AT(flag), 0, 0, 0, NULL, NULL },
    { "count", SET_UINT, AT(count), 1, 100, 0, NULL, NULL },
    { "pct", SET_PERCENT, AT(pct), 1, 100, 0, NULL, NULL },
    { "port", SET_PORT, AT(port), 0, 0, 0, NULL, NULL },
    { "bytes", SET_SIZE, AT(bytes), 64 << 10, (uint64_t)1 << 40, 0, NULL, NULL },
    { "off_bytes", SET_SIZE, AT(off_bytes), 0, 1 << 20, SETTING_ZERO_MAX, NULL, NULL },
    { "ms", SET_DURATION, AT(ms), 100, 0, 0, NULL, NULL },
    { "never_ms", SET_DURATION, AT(never_ms), 0, 0, SETTING_ZERO_MAX, NULL, NULL },
    { "colour", SET_CUSTOM, AT(colour), 0, 0, 0, parse_colour, NULL },
    { NULL, SET_TABLE, AT(in), 0, 0, 0, NULL, &inner_table },
};
static const struct setting_table table = { rows, sizeof rows / sizeof rows[0] };

static int set(struct sample *s, const char *k, const char *v, char *why)
{
    return settings_apply(&table, s, k, v, why, 256);
}

START_TEST(every_type_parses_as_people_write_it)
{
    struct sample s = { 0 };
    char why[256];
    ck_assert_int_eq(set(&s, "name", "first", why), 0);
    ck_assert_int_eq(set(&s, "name", "second", why), 0);     /* the last one wins */
    ck_assert_str_eq(s.name, "second");
    ck_assert_int_eq(set(&s, "secret", "hush", why), 0);
    ck_assert_int_eq(set(&s, "addr", "h:1", why), 0);
    ck_assert_str_eq(s.addr, "h:1");
    ck_assert_int_eq(set(&s, "flag", "yes", why), 0);
    ck_assert(s.flag);
    const char *no[] = { "no", "false", "off", "0" }, *yes[] = { "true", "on", "1" };
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(set(&s, "flag", no[i], why), 0);
        ck_assert(!s.flag);
        if (i < 3) {
            ck_assert_int_eq(set(&s, "flag", yes[i], why), 0);
            ck_assert(s.flag);
        }
    }
    ck_assert_int_eq(set(&s, "count", "100", why), 0);
    ck_assert_uint_eq(s.count, 100);
    ck_assert_int_eq(set(&s, "pct", "80", why), 0);
    ck_assert_uint_eq(s.pct, 80);
    ck_assert_int_eq(set(&s, "port", "65535", why), 0);
    ck_assert_int_eq(s.port, 65535);
    ck_assert_int_eq(set(&s, "bytes", "64M", why), 0);
    ck_assert_uint_eq(s.bytes, 64u << 20);
    ck_assert_int_eq(set(&s, "off_bytes", "0", why), 0);
    ck_assert_uint_eq(s.off_bytes, UINT64_MAX);
    ck_assert_int_eq(set(&s, "ms", "1.5s", why), 0);
    ck_assert_uint_eq(s.ms, 1500);
    ck_assert_int_eq(set(&s, "ms", "250ms", why), 0);
    ck_assert_uint_eq(s.ms, 250);
    ck_assert_int_eq(set(&s, "never_ms", "0", why), 0);
    ck_assert_uint_eq(s.never_ms, UINT_MAX);
    ck_assert_int_eq(set(&s, "never_ms", "2h", why), 0);
    ck_assert_uint_eq(s.never_ms, 7200000);
    ck_assert_int_eq(set(&s, "colour", "blue", why), 0);
    ck_assert_int_eq(s.colour, 2);
    ck_assert_int_eq(set(&s, "inner", "9", why), 0);
    ck_assert_uint_eq(s.in.n, 9);
    settings_free(&table, &s);
    ck_assert_ptr_null(s.name);
    ck_assert_ptr_null(s.secret);
    ck_assert_ptr_null(s.addr);
}
END_TEST

START_TEST(junk_and_out_of_range_values_are_refused_saying_what_is_wanted)
{
    static const char *const bad[][3] = {
        { "flag", "maybe", "bad value 'maybe' for flag: want yes or no" },
        { "count", "0", "bad value '0' for count: must be between 1 and 100" },
        { "count", "-1", "bad value '-1' for count: want a whole number" },
        { "count", "12x", "bad value '12x' for count: want a whole number" },
        { "pct", "101", "bad value '101' for pct: must be between 1% and 100%" },
        { "port", "70000", "bad value '70000' for port: must be at most 65535" },
        { "bytes", "4k", "bad value '4k' for bytes: must be between 64K and 1T" },
        { "bytes", "lots", "bad value 'lots' for bytes: want a size such as 64M" },
        { "off_bytes", "2M", "bad value '2M' for off_bytes: must be at most 1M" },
        { "ms", "10ms", "bad value '10ms' for ms: must be at least 100ms" },
        { "ms", "soon", "bad value 'soon' for ms: want a duration such as 90s or 250ms" },
        { "never_ms", "50d", "bad value '50d' for never_ms: must be at most 4000000s" },
        { "colour", "green", "bad value 'green' for colour: want red or blue" },
        { "addr", "h", "bad value 'h' for addr: want HOST:PORT" },
        { "inner", "10", "bad value '10' for inner: must be at most 9" },
        { "colour_", "red", "unknown setting 'colour_'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sample s = { .count = 7 };
        char why[256] = "";
        ck_assert_int_eq(set(&s, bad[i][0], bad[i][1], why), EINVAL);
        ck_assert_str_eq(why, bad[i][2]);
        ck_assert_uint_eq(s.count, 7);          /* a refused value changes nothing */
    }
}
END_TEST

static int refuse_all(void *base, const char *v, char *why, size_t whylen)
{
    (void)base;
    (void)v;
    snprintf(why, whylen, "want something else");
    return EINVAL;
}

START_TEST(a_secret_is_never_echoed_in_a_message)
{
    static const struct setting r[] = {
        { "token", SET_CUSTOM, 0, 0, 0, SETTING_SECRET, refuse_all, NULL },
    };
    static const struct setting_table t = { r, 1 };
    struct sample s = { 0 };
    char why[256];
    ck_assert_int_eq(settings_apply(&t, &s, "token", "hunter2-secret", why, sizeof why),
                     EINVAL);
    ck_assert_str_eq(why, "bad value for token: want something else");
}
END_TEST

/* ---- tarnfsd's table --------------------------------------------------- */

struct names {
    const char *v[128];
    size_t n;
};

static void collect(void *arg, const struct setting *row)
{
    struct names *ns = arg;
    ck_assert_uint_lt(ns->n, 128);
    ns->v[ns->n++] = row->name;
}

START_TEST(tarnfsd_table_names_each_setting_once)
{
    struct names ns = { .n = 0 };
    settings_each(&nfsd_settings, collect, &ns);
    ck_assert_uint_gt(ns.n, 40);
    for (size_t i = 0; i < ns.n; i++)
        for (size_t j = i + 1; j < ns.n; j++)
            ck_assert_msg(strcmp(ns.v[i], ns.v[j]), "'%s' is in the table twice", ns.v[i]);
    /* The tool's table is part of tarnfsd's, at its vfs_config. */
    size_t off;
    ck_assert_ptr_nonnull(settings_find(&vfs_settings, "cache", NULL));
    ck_assert_ptr_nonnull(settings_find(&nfsd_settings, "cache", &off));
    ck_assert_uint_eq(off, offsetof(struct nfsd_config, vfs.cache_dir));
    ck_assert_ptr_null(settings_find(&vfs_settings, "nfs_port", NULL));
}
END_TEST

/* The setting names tarnfs.conf(5) documents: the bold words of each .TP
 * tag in its SETTINGS section (".B name" or ".BR a \", \" b"). */
static size_t man_names(char names[][64], size_t cap)
{
    const char *root = getenv("TARNFS_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/doc/man/tarnfs.conf.5", root && *root ? root : ".");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[1024];
    bool in_settings = false, tag = false;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, ".SH ", 4)) {
            in_settings = !strncmp(line, ".SH SETTINGS", 12);
            continue;
        }
        if (!in_settings)
            continue;
        if (!strncmp(line, ".TP", 3)) {
            tag = true;
            continue;
        }
        if (!tag)
            continue;
        tag = false;
        /* The words outside quotes after the macro are names. */
        bool quoted = false;
        char *p = line + strcspn(line, " ");
        char word[64];
        size_t w = 0;
        for (; *p; p++) {
            if (*p == '"') {
                quoted = !quoted;
            } else if (!quoted && (*p == '_' || (*p >= 'a' && *p <= 'z') ||
                                   (*p >= '0' && *p <= '9'))) {
                if (w < sizeof word - 1)
                    word[w++] = *p;
                continue;
            }
            if (w) {
                word[w] = '\0';
                ck_assert_uint_lt(n, cap);
                snprintf(names[n++], 64, "%s", word);
                w = 0;
            }
        }
    }
    fclose(f);
    return n;
}

START_TEST(every_documented_setting_is_in_the_table_and_back)
{
    static char man[128][64];
    size_t nman = man_names(man, 128);
    ck_assert_uint_gt(nman, 40);
    for (size_t i = 0; i < nman; i++)
        ck_assert_msg(settings_find(&nfsd_settings, man[i], NULL),
                      "tarnfs.conf(5) documents '%s', which tarnfsd does not know", man[i]);
    struct names ns = { .n = 0 };
    settings_each(&nfsd_settings, collect, &ns);
    for (size_t i = 0; i < ns.n; i++) {
        bool found = false;
        for (size_t j = 0; j < nman && !found; j++)
            found = !strcmp(ns.v[i], man[j]);
        ck_assert_msg(found, "setting '%s' is missing from tarnfs.conf(5)", ns.v[i]);
    }
}
END_TEST

START_TEST(the_tool_reads_its_settings_and_leaves_the_rest_to_tarnfsd)
{
    char path[] = "/tmp/test_settings_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "cache = /var/cache/t\nnfs_port = 99999\nexport / *(ro)\n"
                       "just words\ns3_endpoint = http://h:1\nfetch_threads = 3\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct vfs_config c = { 0 };
    char err[512] = "";
    ck_assert_int_eq(settings_read_known(path, &vfs_settings, &c, err, sizeof err), 0);
    ck_assert_str_eq(c.cache_dir, "/var/cache/t");
    ck_assert_str_eq(c.fetch.s3_endpoint, "http://h:1");
    ck_assert_uint_eq(c.fetch_threads, 3);
    settings_free(&vfs_settings, &c);

    FILE *f = fopen(path, "a");
    fputs("open_runs = 0\n", f);
    fclose(f);
    ck_assert_int_eq(settings_read_known(path, &vfs_settings, &c, err, sizeof err), EINVAL);
    ck_assert_msg(strstr(err, ":7: bad value '0' for open_runs: must be between 1 and 65536"),
                  "got '%s'", err);
    settings_free(&vfs_settings, &c);
    unlink(path);
}
END_TEST

/* conf_trim, shared by the config reader and the AWS credentials reader:
 * white space off both ends, in place, nothing else touched. */
START_TEST(conf_trim_cuts_white_space_off_both_ends_only)
{
    char a[] = " \t key = v a l \r\n";
    ck_assert_str_eq(conf_trim(a), "key = v a l");
    char b[] = "";
    ck_assert_str_eq(conf_trim(b), "");
    char c[] = " \t\n";
    ck_assert_str_eq(conf_trim(c), "");
    char d[] = "x";
    ck_assert_ptr_eq(conf_trim(d), d);
    ck_assert_str_eq(d, "x");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("settings");
    TCase *tc = tcase_create("settings");
    tcase_add_test(tc, every_type_parses_as_people_write_it);
    tcase_add_test(tc, junk_and_out_of_range_values_are_refused_saying_what_is_wanted);
    tcase_add_test(tc, a_secret_is_never_echoed_in_a_message);
    tcase_add_test(tc, tarnfsd_table_names_each_setting_once);
    tcase_add_test(tc, every_documented_setting_is_in_the_table_and_back);
    tcase_add_test(tc, the_tool_reads_its_settings_and_leaves_the_rest_to_tarnfsd);
    tcase_add_test(tc, conf_trim_cuts_white_space_off_both_ends_only);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
