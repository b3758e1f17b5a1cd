/* s3tool.c: a small S3 client over fetch/ for test scripts: make a bucket,
 * put/get/stat/ls/rm objects, list and abort multipart uploads. */
#include "fetch/fetch.h"
#include "fetch/fetch_s3.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *to)
{
    fprintf(to,
            "usage: s3tool COMMAND ...   (credentials and endpoint from AWS_* variables)\n"
            "  mb BUCKET                        create a bucket (ok if already ours)\n"
            "  put [--part-size N] [--sha256 HEX] BUCKET[/PREFIX] KEY FILE|-\n"
            "  get BUCKET[/PREFIX] KEY FILE|- [OFFSET [LENGTH]]\n"
            "  stat BUCKET[/PREFIX] KEY         size, ETag, mtime, sha256\n"
            "  ls [-d] BUCKET[/PREFIX] [PREFIX] list keys (-d: fold at '/')\n"
            "  rm BUCKET[/PREFIX] KEY\n"
            "  uploads BUCKET[/PREFIX]          list unfinished multipart uploads\n"
            "  abort-all BUCKET[/PREFIX]        abort every unfinished multipart upload\n");
}

static fetch_backend *open_or_die(const char *where)
{
    char source[1200], err[512];
    fetch_backend *b;
    snprintf(source, sizeof source, "s3://%s", where);
    int rc = fetch_open(source, NULL, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "s3tool: %s: %s\n", source, err[0] ? err : strerror(rc));
        exit(1);
    }
    return b;
}

static ssize_t pull_fd(void *arg, void *buf, size_t cap)
{
    ssize_t n = read(*(int *)arg, buf, cap);
    return n < 0 ? -errno : n;
}

static int print_entry(void *arg, const struct fetch_objinfo *oi)
{
    (void)arg;
    if (oi->is_prefix)
        printf("%s\n", oi->key);
    else
        printf("%s\t%" PRIu64 "\t%s\n", oi->key, oi->size, oi->version);
    return 0;
}

static int print_upload(void *arg, const char *key, const char *id)
{
    (void)arg;
    printf("%s\t%s\n", key, id);
    return 0;
}

struct abort_ctx {
    fetch_backend *b;
    int failed, aborted;
};

static int abort_one(void *arg, const char *key, const char *id)
{
    struct abort_ctx *c = arg;
    if (fetch_s3_abort_upload(c->b, key, id) == 0)
        c->aborted++;
    else
        c->failed++;
    return 0;
}

int main(int argc, char **argv)
{
    log_setup("s3tool", 0, getenv("S3TOOL_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int rc;
    if (!strcmp(cmd, "mb") && argc == 3) {
        char err[512] = "";
        rc = fetch_s3_make_bucket(argv[2], NULL, err, sizeof err);
        if (rc)
            fprintf(stderr, "s3tool: mb %s: %s\n", argv[2], err[0] ? err : strerror(rc));
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "put")) {
        struct fetch_put_opts o = { 0 };
        int i = 2;
        while (argc > i + 1 && argv[i][0] == '-' && argv[i][1] == '-') {
            if (!strcmp(argv[i], "--part-size"))
                o.part_size = strtoull(argv[i + 1], NULL, 10);
            else if (!strcmp(argv[i], "--sha256"))
                o.sha256_hex = argv[i + 1];
            else
                break;
            i += 2;
        }
        if (argc != i + 3) {
            usage(stderr);
            return 2;
        }
        int fd = strcmp(argv[i + 2], "-") ? open(argv[i + 2], O_RDONLY) : 0;
        if (fd < 0) {
            perror(argv[i + 2]);
            return 1;
        }
        fetch_backend *b = open_or_die(argv[i]);
        struct fetch_objinfo oi;
        rc = fetch_put(b, argv[i + 1], pull_fd, &fd, &o, &oi);
        if (rc)
            fprintf(stderr, "s3tool: put %s: %s\n", argv[i + 1], strerror(rc));
        else
            printf("%s\t%" PRIu64 "\t%s\t%s\n", oi.key, oi.size, oi.version, oi.sha256);
        fetch_close(b);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "get") && argc >= 5 && argc <= 7) {
        uint64_t off = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
        uint64_t len = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
        int fd = strcmp(argv[4], "-") ? open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
        if (fd < 0) {
            perror(argv[4]);
            return 1;
        }
        fetch_backend *b = open_or_die(argv[2]);
        fetch_stream *s;
        rc = fetch_get(b, argv[3], off, len, &s);
        if (!rc) {
            static char buf[1 << 16];
            ssize_t n;
            while ((n = fetch_read(s, buf, sizeof buf)) > 0)
                if (write(fd, buf, (size_t)n) != n) {
                    n = -errno;
                    break;
                }
            if (n < 0)
                rc = (int)-n;
            fetch_stream_close(s);
        }
        if (rc)
            fprintf(stderr, "s3tool: get %s: %s\n", argv[3], strerror(rc));
        fetch_close(b);
        if (fd != 1)
            close(fd);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "stat") && argc == 4) {
        fetch_backend *b = open_or_die(argv[2]);
        struct fetch_objinfo oi;
        rc = fetch_stat(b, argv[3], &oi);
        if (rc)
            fprintf(stderr, "s3tool: stat %s: %s\n", argv[3], strerror(rc));
        else
            printf("%s\t%" PRIu64 "\t%s\t%lld\t%s\n", oi.key, oi.size, oi.version,
                   (long long)oi.mtime.tv_sec, oi.sha256);
        fetch_close(b);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "ls") && argc >= 3) {
        int i = 2;
        const char *delim = NULL;
        if (!strcmp(argv[2], "-d")) {
            delim = "/";
            i = 3;
        }
        if (argc < i + 1 || argc > i + 2) {
            usage(stderr);
            return 2;
        }
        fetch_backend *b = open_or_die(argv[i]);
        rc = fetch_list(b, argc > i + 1 ? argv[i + 1] : "", delim, print_entry, NULL);
        if (rc)
            fprintf(stderr, "s3tool: ls: %s\n", strerror(rc));
        fetch_close(b);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "rm") && argc == 4) {
        fetch_backend *b = open_or_die(argv[2]);
        rc = fetch_delete(b, argv[3]);
        if (rc)
            fprintf(stderr, "s3tool: rm %s: %s\n", argv[3], strerror(rc));
        fetch_close(b);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "uploads") && argc == 3) {
        fetch_backend *b = open_or_die(argv[2]);
        rc = fetch_s3_list_uploads(b, print_upload, NULL);
        if (rc)
            fprintf(stderr, "s3tool: uploads: %s\n", strerror(rc));
        fetch_close(b);
        return rc ? 1 : 0;
    }
    if (!strcmp(cmd, "abort-all") && argc == 3) {
        fetch_backend *b = open_or_die(argv[2]);
        struct abort_ctx c = { .b = b };
        rc = fetch_s3_list_uploads(b, abort_one, &c);
        if (rc)
            fprintf(stderr, "s3tool: abort-all: %s\n", strerror(rc));
        else
            printf("aborted %d, failed %d\n", c.aborted, c.failed);
        fetch_close(b);
        return rc || c.failed ? 1 : 0;
    }
    usage(stderr);
    return 2;
}
