/* fetch.c: picks the backend named by a source string, forwards calls to its
 * method table, and runs the fault-injection hook before every call. */
#include "fetch/fetch_impl.h"
#include "util/log.h"
#include "util/hex.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Which backend SOURCE names.  On SRC_BAD, ERR says why. */
enum source_kind { SRC_BAD, SRC_S3, SRC_NAS };

static enum source_kind source_kind(const char *source, char *err, size_t errlen)
{
    if (!source || !*source) {
        snprintf(err, errlen, "no source given (want /path/to/dir or s3://bucket[/prefix])");
        return SRC_BAD;
    }
    if (strncmp(source, "s3://", 5) == 0)
        return SRC_S3;
    if (source[0] == '/')
        return SRC_NAS;
    snprintf(err, errlen, "source '%s' is neither an absolute directory path nor s3://bucket[/prefix]",
             source);
    return SRC_BAD;
}

int fetch_open(const char *source, const struct fetch_config *cfg,
               fetch_backend **out, char *err, size_t errlen)
{
    static const struct fetch_config no_config;
    char scratch[8];

    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    *out = NULL;
    if (!cfg)
        cfg = &no_config;
    int rc;
    switch (source_kind(source, err, errlen)) {
    case SRC_S3:
        rc = fetch_s3_open(source + 5, cfg, out, err, errlen);
        break;
    case SRC_NAS:
        rc = fetch_nas_open(source, out, err, errlen);
        break;
    default:
        return EINVAL;
    }
    if (rc == 0)
        (*out)->stall_timeout_ms = cfg->stall_timeout_ms ? cfg->stall_timeout_ms
                                                         : FETCH_DEFAULT_STALL_MS;
    return rc;
}

int fetch_check_source(const char *source, const struct fetch_config *cfg,
                       char *err, size_t errlen)
{
    static const struct fetch_config no_config;
    char scratch[8];

    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    switch (source_kind(source, err, errlen)) {
    case SRC_S3:
        return fetch_s3_check(source + 5, cfg ? cfg : &no_config, err, errlen);
    case SRC_NAS:
        return fetch_nas_check(source, err, errlen);
    default:
        return EINVAL;
    }
}

int fetch_list(fetch_backend *b, const char *prefix, const char *delim,
               fetch_list_cb cb, void *arg)
{
    int rc = fetch_fault_check("list", prefix ? prefix : "");
    if (rc)
        return rc;
    return b->m->list(b, prefix ? prefix : "", delim, cb, arg);
}

int fetch_stat(fetch_backend *b, const char *key, struct fetch_objinfo *oi)
{
    int rc = fetch_fault_check("stat", key);
    if (rc)
        return rc;
    return b->m->stat(b, key, oi);
}

int fetch_get(fetch_backend *b, const char *key, uint64_t off, uint64_t len,
              fetch_stream **out)
{
    *out = NULL;
    int rc = fetch_fault_check("open", key);
    if (rc)
        return rc;
    rc = b->m->open(b, key, off, len, out);
    if (rc == 0)
        (*out)->stall_timeout_ms = b->stall_timeout_ms ? b->stall_timeout_ms
                                                       : FETCH_DEFAULT_STALL_MS;
    return rc;
}

/* The injected stall: nothing arrives for ms, unless the stream is
 * cancelled (ECANCELED) or the stall timeout passes first (ETIMEDOUT). */
static int fault_stall(fetch_stream *s, long ms)
{
    struct timespec t0, now, slice = { 0, 20 * 1000000L };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (fetch_stream_cancelled(s))
            return ECANCELED;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= ms)
            return 0;
        if (waited >= (long)s->stall_timeout_ms) {
            log_error("fetch: no bytes of %s for %ld ms; giving up", s->key, waited);
            return ETIMEDOUT;
        }
        nanosleep(&slice, NULL);
    }
}

ssize_t fetch_read(fetch_stream *s, void *buf, size_t cap)
{
    if (fetch_stream_cancelled(s))
        return -ECANCELED;
    if (!s->stall_checked) {
        s->stall_checked = true;
        int ms = fetch_fault_check("stall", s->key);
        int rc = ms > 0 ? fault_stall(s, ms) : 0;
        if (rc)
            return -rc;
    }
    if (s->reads++ == 1) {
        /* A backend that stalls after its first bytes. */
        int ms = fetch_fault_check("stallmid", s->key);
        int rc = ms > 0 ? fault_stall(s, ms) : 0;
        if (rc)
            return -rc;
    }
    int rc = fetch_fault_check("read", s->key);
    if (rc)
        return -rc;
    ssize_t n = s->m->read(s, buf, cap);
    if (n < 0 && fetch_stream_cancelled(s))
        return -ECANCELED;
    return n;
}

void fetch_stream_cancel(fetch_stream *s)
{
    if (s)
        atomic_store(&s->cancelled, true);
}

void fetch_stream_close(fetch_stream *s)
{
    if (s)
        s->m->close(s);
}

/* Finish the body's SHA-256 (md) into hex; if o names one, they must be
 * equal.  Errors: EIO (differs: logged naming what, or digest failure). */
static int body_sha256(EVP_MD_CTX *md, const struct fetch_put_opts *o,
                       const char *what, char hex[65])
{
    unsigned char d[32];
    if (!EVP_DigestFinal_ex(md, d, NULL))
        return EIO;
    hex_encode(d, sizeof d, hex);
    if (o->sha256_hex && strcasecmp(o->sha256_hex, hex) != 0) {
        log_error("fetch: %s: body SHA-256 %s differs from the expected %s; not stored",
                  what, hex, o->sha256_hex);
        return EIO;
    }
    return 0;
}

int fetch_upload_begin(fetch_backend *b, const char *key,
                       const struct fetch_put_opts *o, fetch_upload **out)
{
    static const struct fetch_put_opts defaults;
    int rc = fetch_fault_check("put", key);
    if (rc)
        return rc;
    if (!o)
        o = &defaults;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return ENOMEM;
    }
    if ((rc = b->m->upload_begin(b, key, o, out))) {
        EVP_MD_CTX_free(md);
        return rc;
    }
    (*out)->m = b->m;
    (*out)->o = o;
    (*out)->md = md;
    snprintf((*out)->key, sizeof (*out)->key, "%s", key);
    return 0;
}

int fetch_upload_write(fetch_upload *u, const void *buf, size_t len)
{
    int rc = u->m->upload_write(u, buf, len);
    if (!rc && !EVP_DigestUpdate(u->md, buf, len))
        rc = EIO;
    return rc;
}

int fetch_upload_sha256(fetch_upload *u, char hex[65])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned char d[32];
    int rc = copy && EVP_MD_CTX_copy_ex(copy, u->md) && EVP_DigestFinal_ex(copy, d, NULL)
             ? 0 : EIO;
    if (!rc)
        hex_encode(d, sizeof d, hex);
    EVP_MD_CTX_free(copy);
    return rc;
}

int fetch_upload_commit(fetch_upload *u, struct fetch_objinfo *oi)
{
    EVP_MD_CTX *md = u->md;
    char hex[65];
    int rc = body_sha256(md, u->o, u->key, hex);
    if (rc)
        u->m->upload_abort(u);
    else
        rc = u->m->upload_commit(u, hex, oi);
    EVP_MD_CTX_free(md);
    return rc;
}

void fetch_upload_abort(fetch_upload *u)
{
    if (!u)
        return;
    EVP_MD_CTX *md = u->md;
    u->m->upload_abort(u);
    EVP_MD_CTX_free(md);
}

#define PUT_PULL_CHUNK (1u << 20)

int fetch_put(fetch_backend *b, const char *key, fetch_pull_fn pull,
              void *arg, const struct fetch_put_opts *o,
              struct fetch_objinfo *oi)
{
    fetch_upload *u;
    char *buf = malloc(PUT_PULL_CHUNK);
    if (!buf)
        return ENOMEM;
    int rc = fetch_upload_begin(b, key, o, &u);
    if (rc) {
        free(buf);
        return rc;
    }
    for (;;) {
        ssize_t n = pull(arg, buf, PUT_PULL_CHUNK);
        if (n < 0) {
            rc = (int)-n;
            log_error("fetch: storing %s: the source failed: %s", key, strerror(rc));
            break;
        }
        if (n == 0)
            break;
        if ((rc = fetch_upload_write(u, buf, (size_t)n)))
            break;
    }
    free(buf);
    if (rc) {
        fetch_upload_abort(u);
        return rc;
    }
    return fetch_upload_commit(u, oi);
}

int fetch_delete(fetch_backend *b, const char *key)
{
    int rc = fetch_fault_check("del", key);
    if (rc)
        return rc;
    return b->m->del(b, key);
}

int fetch_sweep_temps(fetch_backend *b, const char *key, unsigned *removed)
{
    *removed = 0;
    return b->m->sweep ? b->m->sweep(b, key, removed) : 0;
}

int fetch_abort_uploads(fetch_backend *b, bool (*mine)(void *arg, const char *key),
                        void *arg, unsigned *aborted)
{
    *aborted = 0;
    return b->m->abort_uploads ? b->m->abort_uploads(b, mine, arg, aborted) : 0;
}

void fetch_close(fetch_backend *b)
{
    if (b)
        b->m->close(b);
}

bool fetch_is_sha256_hex(const char *s)
{
    return strlen(s) == 64 && hex_is(s, 64, false);
}

/* ---- fault injection -------------------------------------------------- */

struct fault_rule {
    char op[16];
    char key_substring[256];
    int err;                    /* errno, or 1 for a transport fault */
    long remaining;             /* -1: every time */
};

#define MAX_FAULT_RULES 16

/* Process-wide by design: tests flip faults for every thread at once. */
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static fetch_fault_fn fault_hook;
static void *fault_hook_arg;
static struct fault_rule fault_rules[MAX_FAULT_RULES];
static int fault_rule_count;
static bool fault_env_read;

static bool is_transport_fault(const char *op)
{
    return !strcmp(op, "http500") || !strcmp(op, "reset") || !strcmp(op, "truncate");
}

/* Parse spec into the rule table; caller holds fault_lock. */
static int parse_fault_spec(const char *spec)
{
    struct fault_rule rules[MAX_FAULT_RULES];
    int n = 0;
    char *copy = strdup(spec), *save = NULL;

    if (!copy)
        return ENOMEM;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *fields[4] = { 0 };
        int nf = 0;
        char *p = item;
        while (nf < 4) {
            fields[nf++] = p;
            /* the key substring (last field) may itself contain ':' */
            if (nf == 4 || !(p = strchr(p, ':')))
                break;
            *p++ = '\0';
        }
        if (n == MAX_FAULT_RULES || !fields[0][0] || strlen(fields[0]) >= sizeof rules[0].op)
            goto bad;
        struct fault_rule *r = &rules[n++];
        memset(r, 0, sizeof *r);
        snprintf(r->op, sizeof r->op, "%s", fields[0]);
        r->remaining = -1;
        int next = 1;
        if (is_transport_fault(r->op)) {
            r->err = 1;
        } else {
            char *end;
            if (nf < 2 || !*fields[1])
                goto bad;
            r->err = (int)strtol(fields[1], &end, 10);
            if (*end || r->err <= 0)
                goto bad;
            next = 2;
        }
        if (nf > next && *fields[next]) {
            char *end;
            r->remaining = strtol(fields[next], &end, 10);
            if (*end || r->remaining < 0)
                goto bad;
        }
        if (nf > next + 1)
            snprintf(r->key_substring, sizeof r->key_substring, "%s", fields[next + 1]);
    }
    free(copy);
    memcpy(fault_rules, rules, sizeof rules);
    fault_rule_count = n;
    return 0;
bad:
    free(copy);
    log_error("fetch: bad fault spec '%s' (want op:errno[:count[:key]] or "
              "http500|reset|truncate[:count[:key]])", spec);
    return EINVAL;
}

void fetch_set_fault(fetch_fault_fn fn, void *arg)
{
    pthread_mutex_lock(&fault_lock);
    fault_hook = fn;
    fault_hook_arg = arg;
    pthread_mutex_unlock(&fault_lock);
}

int fetch_fault_set_spec(const char *spec)
{
    int rc = 0;
    pthread_mutex_lock(&fault_lock);
    fault_env_read = true;
    fault_rule_count = 0;
    if (!spec)
        spec = getenv("TARNFS_FAULT");
    if (spec && *spec)
        rc = parse_fault_spec(spec);
    pthread_mutex_unlock(&fault_lock);
    return rc;
}

int fetch_fault_check(const char *op, const char *key)
{
    fetch_fault_fn hook;
    void *hook_arg;
    int rc = 0;

    pthread_mutex_lock(&fault_lock);
    if (!fault_env_read) {
        const char *spec = getenv("TARNFS_FAULT");
        fault_env_read = true;
        if (spec && *spec)
            parse_fault_spec(spec);
    }
    hook = fault_hook;
    hook_arg = fault_hook_arg;
    for (int i = 0; i < fault_rule_count && !rc; i++) {
        struct fault_rule *r = &fault_rules[i];
        if (strcmp(r->op, op) != 0 || r->remaining == 0)
            continue;
        if (r->key_substring[0] && (!key || !strstr(key, r->key_substring)))
            continue;
        if (r->remaining > 0)
            r->remaining--;
        rc = r->err;
    }
    pthread_mutex_unlock(&fault_lock);
    if (rc) {
        log_debug("fetch: injected fault %s on %s: %d", op, key ? key : "", rc);
        return rc;
    }
    /* The hook runs unlocked so it may itself call fetch_set_fault. */
    if (hook)
        rc = hook(hook_arg, op, key ? key : "");
    return rc;
}
