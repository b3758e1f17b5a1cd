/* conf.c: reads tarnfs.conf line by line ("key = value", "export ...", '#' comments) for tarnfsd's settings and the tarnfs tool's --cache default. */
#include "util/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

char *conf_trim(char *s)
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
        char *s = conf_trim(line);
        if (!*s)
            continue;
        why[0] = '\0';
        if (!strncmp(s, "export", 6) && isspace((unsigned char)s[6])) {
            s[6] = '\0';
            ret = fn(arg, lineno, s, conf_trim(s + 7), why, sizeof why);
        } else {
            char *eq = strchr(s, '=');
            if (!eq) {
                snprintf(why, sizeof why, "expected 'key = value' or 'export PATH CLIENT(OPTIONS)'");
                ret = EINVAL;
            } else {
                *eq = '\0';
                ret = fn(arg, lineno, conf_trim(s), conf_trim(eq + 1), why, sizeof why);
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
