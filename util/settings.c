/* settings.c: the generic side of the settings tables (util/settings.h):
 * find a row, parse a value by its type, check its range, word the
 * message; free a struct's strings; read a config file for one table. */
#include "util/settings.h"
#include "util/conf.h"
#include "util/units.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest duration a setting holds: an unsigned count of ms. */
#define DURATION_MAX_MS 4000000000u

static const struct setting *find(const struct setting_table *t, const char *name,
                                  size_t base, size_t *offset)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct setting *r = &t->rows[i];
        if (r->type == SET_TABLE) {
            const struct setting *in = find(r->table, name, base + r->offset, offset);
            if (in)
                return in;
        } else if (!strcmp(r->name, name)) {
            if (offset)
                *offset = base + r->offset;
            return r;
        }
    }
    return NULL;
}

const struct setting *settings_find(const struct setting_table *t, const char *name,
                                    size_t *offset)
{
    return find(t, name, 0, offset);
}

/* The largest value the row's field holds, and its range's top. */
static uint64_t type_max(enum setting_type type)
{
    switch (type) {
    case SET_SIZE: return UINT64_MAX;
    case SET_PORT: return 65535;
    case SET_DURATION: return DURATION_MAX_MS;
    default: return UINT_MAX;
    }
}

/* A value of the row's type as people write it: "64M", "90s", "80%". */
static void say(const struct setting *r, uint64_t v, char *out, size_t cap)
{
    static const struct { const char *unit; uint64_t n; } sizes[] = {
        { "T", (uint64_t)1 << 40 }, { "G", 1 << 30 }, { "M", 1 << 20 }, { "K", 1 << 10 },
    }, durations[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    const char *unit = r->type == SET_DURATION ? "ms" : r->type == SET_PERCENT ? "%" : "";
    uint64_t n = v;
    if (r->type == SET_SIZE || r->type == SET_DURATION) {
        for (size_t i = 0; v && i < 4; i++) {
            uint64_t step = r->type == SET_SIZE ? sizes[i].n : durations[i].n;
            if (v % step == 0) {
                unit = r->type == SET_SIZE ? sizes[i].unit : durations[i].unit;
                n = v / step;
                break;
            }
        }
    }
    snprintf(out, cap, "%llu%s", (unsigned long long)n, unit);
}

/* What a value of the row's type looks like, for junk. */
static const char *want(enum setting_type type)
{
    switch (type) {
    case SET_BOOL: return "want yes or no";
    case SET_SIZE: return "want a size such as 64M";
    case SET_DURATION: return "want a duration such as 90s or 250ms";
    case SET_PORT: return "want a port number";
    default: return "want a whole number";
    }
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" },
                             *const no[] = { "no", "false", "off", "0" };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(v, yes[i]) || !strcmp(v, no[i])) {
            *out = !strcmp(v, yes[i]);
            return 0;
        }
    }
    return EINVAL;
}

static int parse_number(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-' || n > UINT32_MAX)
        return EINVAL;
    *out = n;
    return 0;
}

/* Parse value by r's type into *n (numbers) or *b (bools); detail gets
 * what is wrong.  Errors: EINVAL. */
static int parse_value(const struct setting *r, const char *value, uint64_t *n, bool *b,
                       char *detail, size_t cap)
{
    int err;
    switch (r->type) {
    case SET_BOOL:
        err = parse_bool(value, b);
        break;
    case SET_SIZE:
        err = units_size(value, n) ? EINVAL : 0;
        break;
    case SET_DURATION:
        err = units_duration_ms(value, n) ? EINVAL : 0;
        break;
    default:
        err = parse_number(value, n);
        break;
    }
    if (err) {
        snprintf(detail, cap, "%s", want(r->type));
        return EINVAL;
    }
    if (r->type == SET_BOOL || (*n == 0 && (r->flags & SETTING_ZERO_MAX)))
        return 0;
    uint64_t max = r->max ? r->max : type_max(r->type);
    if (*n < r->min || *n > max) {
        char lo[32], hi[32];
        say(r, r->min, lo, sizeof lo);
        say(r, max, hi, sizeof hi);
        if (r->min == 0)
            snprintf(detail, cap, "must be at most %s", hi);
        else if (max == type_max(r->type) && r->type != SET_PERCENT)
            snprintf(detail, cap, "must be at least %s", lo);
        else
            snprintf(detail, cap, "must be between %s and %s", lo, hi);
        return EINVAL;
    }
    return 0;
}

static int set_string(void *field, const char *value)
{
    char *copy = strdup(value), *old;
    if (!copy)
        return ENOMEM;
    memcpy(&old, field, sizeof old);
    free(old);
    memcpy(field, &copy, sizeof copy);
    return 0;
}

int settings_apply(const struct setting_table *t, void *base, const char *key,
                   const char *value, char *why, size_t whylen)
{
    size_t off;
    const struct setting *r = settings_find(t, key, &off);
    if (!r) {
        snprintf(why, whylen, "unknown setting '%s'", key);
        return EINVAL;
    }
    void *field = (char *)base + off;
    char detail[200] = "";
    uint64_t n = 0;
    bool b = false;
    int err;
    if (r->type == SET_CUSTOM || (r->type == SET_STRING && r->parse))
        err = r->parse((char *)base + off - r->offset, value, detail, sizeof detail);
    else if (r->type == SET_STRING)
        err = 0;
    else
        err = parse_value(r, value, &n, &b, detail, sizeof detail);
    if (err == EINVAL) {
        const char *sep = detail[0] ? ": " : "";
        if (r->flags & SETTING_SECRET)
            snprintf(why, whylen, "bad value for %s%s%s", key, sep, detail);
        else
            snprintf(why, whylen, "bad value '%s' for %s%s%s", value, key, sep, detail);
    }
    if (!err && r->type == SET_STRING)
        return set_string(field, value);
    if (err || r->type == SET_CUSTOM)
        return err;
    if (n == 0 && (r->flags & SETTING_ZERO_MAX))
        n = r->type == SET_SIZE ? UINT64_MAX : UINT_MAX;
    switch (r->type) {
    case SET_BOOL:
        memcpy(field, &b, sizeof b);
        break;
    case SET_SIZE:
        memcpy(field, &n, sizeof n);
        break;
    case SET_PORT: {
        int port = (int)n;
        memcpy(field, &port, sizeof port);
        break;
    }
    default: {
        unsigned u = (unsigned)n;
        memcpy(field, &u, sizeof u);
        break;
    }
    }
    return 0;
}

static void each(const struct setting_table *t,
                 void (*fn)(void *arg, const struct setting *row), void *arg)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->rows[i].type == SET_TABLE)
            each(t->rows[i].table, fn, arg);
        else
            fn(arg, &t->rows[i]);
    }
}

void settings_each(const struct setting_table *t,
                   void (*fn)(void *arg, const struct setting *row), void *arg)
{
    each(t, fn, arg);
}

static void free_strings(const struct setting_table *t, char *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct setting *r = &t->rows[i];
        if (r->type == SET_TABLE) {
            free_strings(r->table, base + r->offset);
        } else if (r->type == SET_STRING) {
            char *s;
            memcpy(&s, base + r->offset, sizeof s);
            if (s && (r->flags & SETTING_SECRET))
                explicit_bzero(s, strlen(s));
            free(s);
            s = NULL;
            memcpy(base + r->offset, &s, sizeof s);
        }
    }
}

void settings_free(const struct setting_table *t, void *base)
{
    free_strings(t, base);
}

struct known {
    const struct setting_table *t;
    void *base;
    unsigned bad_line;          /* the first bad value of a known setting */
    char why[256];
};

static int known_line(void *arg, unsigned lineno, char *key, char *value,
                      char *why, size_t whylen)
{
    struct known *k = arg;
    if (!strcmp(key, "export") || !settings_find(k->t, key, NULL))
        return 0;
    int err = settings_apply(k->t, k->base, key, value, why, whylen);
    if (err == EINVAL && !k->bad_line) {
        k->bad_line = lineno;
        snprintf(k->why, sizeof k->why, "%s", why);
    }
    return err;
}

/* Lines that are not "key = value" are another reader's to report. */
static void skip_problem(void *arg, unsigned lineno, const char *why)
{
    (void)arg;
    (void)lineno;
    (void)why;
}

int settings_read_known(const char *path, const struct setting_table *t, void *base,
                        char *err, size_t errlen)
{
    struct known k = { .t = t, .base = base };
    int rc = conf_read(path, known_line, &k, skip_problem, NULL, NULL, err, errlen);
    if (!rc && k.bad_line) {
        snprintf(err, errlen, "%s:%u: %s", path, k.bad_line, k.why);
        rc = EINVAL;
    }
    return rc;
}
