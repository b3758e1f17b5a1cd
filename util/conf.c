/* conf.c: reads tarnfs.conf line by line ("key = value", "export ...", '#' comments) for tarnfsd's settings and the tarnfs tool's --cache default. */
#include "util/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int conf_read(const char *path, conf_line_fn fn, void *arg,
              conf_problem_fn problem, void *parg, unsigned *problems,
              char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return e;
    }
    char line[4096], why[256];
    unsigned lineno = 0, n = 0;
    int ret = 0;
    while (!ret && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        why[0] = '\0';
        if (!strncmp(s, "export", 6) && isspace((unsigned char)s[6])) {
            s[6] = '\0';
            ret = fn(arg, lineno, s, trim(s + 7), why, sizeof why);
        } else {
            char *eq = strchr(s, '=');
            if (!eq) {
                snprintf(why, sizeof why, "expected 'key = value' or 'export PATH CLIENT(OPTIONS)'");
                ret = EINVAL;
            } else {
                *eq = '\0';
                ret = fn(arg, lineno, trim(s), trim(eq + 1), why, sizeof why);
            }
        }
        if (ret && ret != ENOMEM) {
            if (problem) {
                problem(parg, lineno, why);
                n++;
                ret = 0;
            } else {
                snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
            }
        }
    }
    fclose(f);
    if (problems)
        *problems = n;
    return ret;
}

struct get_ctx {
    const char *key;
    char *out;
    size_t cap;
    int found;          /* ENOENT, 0 or ENAMETOOLONG for the last match */
};

static int get_line(void *arg, unsigned lineno, char *key, char *value,
                    char *why, size_t whylen)
{
    (void)lineno;
    (void)why;
    (void)whylen;
    struct get_ctx *g = arg;
    if (strcmp(key, g->key) != 0)
        return 0;
    size_t len = strlen(value);
    if (len >= g->cap) {
        g->found = ENAMETOOLONG;
        return 0;
    }
    memcpy(g->out, value, len + 1);
    g->found = 0;
    return 0;
}

static void ignore_problem(void *arg, unsigned lineno, const char *why)
{
    (void)arg;
    (void)lineno;
    (void)why;
}

int conf_get(const char *path, const char *key, char *out, size_t cap)
{
    struct get_ctx g = { key, out, cap, ENOENT };
    char err[512];
    int rc = conf_read(path, get_line, &g, ignore_problem, NULL, NULL, err, sizeof err);
    return rc ? rc : g.found;
}
