/* s3.c: the S3 backend: libcurl requests signed by our SigV4 signer, with
 * retries, a pull-driven GET stream (curl multi, paused when full), and
 * single or multipart PUT that never leaves an upload behind.
 *
 * Parts, in order: configuration and credentials; request building and
 * signing; one HTTP attempt and the retry loop; error mapping; list, stat,
 * delete; the GET stream; put (single and multipart); open and extras. */
#include "fetch/fetch_impl.h"
#include "fetch/fetch_s3.h"
#include "fetch/s3xml.h"
#include "fetch/sigv4.h"
#include "util/log.h"
#include "util/conf.h"
#include "util/hex.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Messages may be cut short; every name that goes into a request is
 * length-checked where it enters (full_key, s3_new), so GCC's guesses about
 * truncation here are noise. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define DEFAULT_PART_SIZE (8u << 20)
#define DEFAULT_RETRIES 5
#define DEFAULT_RETRY_BASE_MS 100
#define MAX_BACKOFF_MS 5000
#define MAX_REPLY_BYTES (64u << 20)   /* list and error replies */
#define STREAM_CHUNK (128u << 10)     /* curl receive buffer for GET */
#define STREAM_BUF (4 * STREAM_CHUNK)
#define POOL_MAX 16
#define PROGRESS_RESETS_RETRIES (4u << 20)
#define DEFAULT_UPLOAD_THREADS 2
#define UPLOAD_BUF (2u << 20)         /* curl's send buffer for large bodies (its maximum) */

struct s3_backend {
    fetch_backend base;
    char scheme[8];
    char hostport[256];
    char bucket[256];
    char prefix[1024];              /* "" or ending in '/' */
    char region[64];
    char access_key[128];
    char *secret_key;
    char *session_token;            /* NULL if none */
    bool virtual_hosted;
    char ca_bundle[PATH_MAX];       /* AWS_CA_BUNDLE, "" for the system's */
    unsigned max_retries, retry_base_ms, list_page_size;
    pthread_mutex_t pool_lock;      /* idle easy handles keep their connections */
    CURL *pool[POOL_MAX];
    curl_socket_t pool_fd[POOL_MAX];    /* each one's connection's socket */
    int pool_n;
};

/* ---- configuration and credentials ------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Look up name in section of an AWS ini file; true if found. */
static bool ini_lookup(const char *path, const char *section, const char *name,
                       char *out, size_t outlen)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];
    bool in_section = false, found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        char *l = conf_trim(line);
        if (*l == '#' || *l == ';' || !*l)
            continue;
        if (*l == '[') {
            char *end = strchr(l, ']');
            if (end)
                *end = '\0';
            in_section = strcmp(conf_trim(l + 1), section) == 0;
            continue;
        }
        char *eq = strchr(l, '=');
        if (!in_section || !eq)
            continue;
        *eq = '\0';
        if (strcmp(conf_trim(l), name) == 0) {
            snprintf(out, outlen, "%s", conf_trim(eq + 1));
            found = true;
        }
    }
    fclose(f);
    return found;
}

static void aws_file(const char *env, const char *leaf, char *out, size_t outlen)
{
    const char *e = getenv(env), *home = getenv("HOME");
    if (e && *e)
        snprintf(out, outlen, "%s", e);
    else if (home)
        snprintf(out, outlen, "%s/.aws/%s", home, leaf);
    else
        out[0] = '\0';
}

/* Read one setting of profile from ~/.aws/credentials, then ~/.aws/config. */
static bool profile_value(const char *profile, const char *name, char *out, size_t outlen)
{
    char creds[PATH_MAX], config[PATH_MAX], section[300];
    aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", creds, sizeof creds);
    aws_file("AWS_CONFIG_FILE", "config", config, sizeof config);
    if (ini_lookup(creds, profile, name, out, outlen))
        return true;
    snprintf(section, sizeof section, strcmp(profile, "default") ? "profile %s" : "%s", profile);
    return ini_lookup(config, section, name, out, outlen);
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Split "http[s]://host[:port][/]" into scheme and host[:port]. */
static int parse_endpoint(const char *url, struct s3_backend *b)
{
    const char *p = strstr(url, "://");
    if (!p || (size_t)(p - url) >= sizeof b->scheme)
        return EINVAL;
    snprintf(b->scheme, sizeof b->scheme, "%.*s", (int)(p - url), url);
    if (strcmp(b->scheme, "http") && strcmp(b->scheme, "https"))
        return EINVAL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    if (n == 0 || n >= sizeof b->hostport || (p[n] && strcmp(p + n, "/") != 0))
        return EINVAL;
    snprintf(b->hostport, sizeof b->hostport, "%.*s", (int)n, p);
    return 0;
}

/* ---- the easy-handle pool ----------------------------------------------- */

/* An idle easy handle, or a new one; *fd gets the socket of the connection
 * it keeps (CURL_SOCKET_BAD: none known). */
static CURL *easy_get(struct s3_backend *b, curl_socket_t *fd)
{
    CURL *e = NULL;
    *fd = CURL_SOCKET_BAD;
    pthread_mutex_lock(&b->pool_lock);
    if (b->pool_n > 0) {
        e = b->pool[--b->pool_n];
        *fd = b->pool_fd[b->pool_n];
    }
    pthread_mutex_unlock(&b->pool_lock);
    if (e)
        curl_easy_reset(e);     /* keeps its live connections */
    else
        e = curl_easy_init();
    return e;
}

static void easy_put(struct s3_backend *b, CURL *e, bool reusable)
{
    if (!e)
        return;
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (reusable && curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK)
        fd = CURL_SOCKET_BAD;
    pthread_mutex_lock(&b->pool_lock);
    if (reusable && b->pool_n < POOL_MAX) {
        b->pool_fd[b->pool_n] = fd;
        b->pool[b->pool_n++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&b->pool_lock);
    if (e)
        curl_easy_cleanup(e);
}

/* ---- requests and responses ------------------------------------------- */

struct membuf {
    char *data;
    size_t len, cap;
};

static int membuf_append(struct membuf *m, const void *p, size_t n)
{
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *d = realloc(m->data, cap);
        if (!d)
            return ENOMEM;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, p, n);
    m->len += n;
    m->data[m->len] = '\0';
    return 0;
}

#define MAX_EXTRA_HEADERS 8

struct s3_request {
    const char *method;
    const char *key;                /* object key (with backend prefix), NULL: bucket */
    const char *what;               /* relative key, for faults and messages */
    const struct sigv4_param *params;
    size_t nparams;
    struct sigv4_header extra[MAX_EXTRA_HEADERS];   /* signed too */
    size_t nextra;
    const void *body;               /* PUT/POST body (may be NULL with len 0) */
    size_t body_len;
    const char *payload_hash;       /* precomputed body hash, or NULL */
    bool unsigned_payload;          /* sign UNSIGNED-PAYLOAD instead */
    bool head;                      /* HEAD: no body expected */
};

struct s3_response {
    long status;
    char etag[160];
    char last_modified[64];
    char sha256[65];
    char content_range[128];
    uint64_t content_length;
    bool has_length;
    struct membuf body;             /* kept for non-2xx and small replies */
    uint64_t body_bytes;
    CURLcode curl_rc;
    char curl_err[CURL_ERROR_SIZE];
    size_t upload_pos;
    curl_socket_t sock;             /* this attempt's connection... */
    bool sock_known;                /* ...if known (set by attempt) */
    unsigned attempts;              /* set by call(): how many were made */
    /* injected faults of this attempt */
    bool fault_500, fault_reset, fault_truncate, fault_fired;
    CURL *easy;
};

static void response_reset(struct s3_response *r)
{
    struct membuf keep = r->body;
    memset(r, 0, sizeof *r);
    keep.len = 0;
    if (keep.data)
        keep.data[0] = '\0';
    r->body = keep;
}

static void response_free(struct s3_response *r)
{
    free(r->body.data);
    r->body.data = NULL;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *value = v;
    *vlen = (size_t)(end - v);
    return true;
}

static void copy_value(char *dst, size_t dstlen, const char *v, size_t n)
{
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* The headers are in: acknowledge them now rather than after the kernel's
 * delayed ACK (40 ms).  A server that writes a reply's headers and its body
 * apart with Nagle on (Ceph RGW's beast does for CompleteMultipartUpload,
 * copies, listings) holds the body back until that ACK comes, so each such
 * reply on a kept-alive connection took 40 ms more.  TCP_QUICKACK is not
 * sticky: set now, it sends the ACK that is pending.  Best effort. */
static void ack_now(curl_socket_t fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
    struct s3_response *r = arg;
    size_t len = size * nitems;
    const char *v;
    size_t vn;
    char num[32];

    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue or a redirect): start over */
        const char *sp = memchr(line, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        if (r->fault_500 && r->status >= 200)
            r->status = 500;    /* injected: the reply is an error, its body too */
        r->etag[0] = r->last_modified[0] = r->sha256[0] = r->content_range[0] = '\0';
        r->has_length = false;
    } else if (header_is(line, len, "ETag", &v, &vn)) {
        copy_value(r->etag, sizeof r->etag, v, vn);
    } else if (header_is(line, len, "Content-Length", &v, &vn)) {
        copy_value(num, sizeof num, v, vn);
        r->content_length = strtoull(num, NULL, 10);
        r->has_length = true;
    } else if (header_is(line, len, "Last-Modified", &v, &vn)) {
        copy_value(r->last_modified, sizeof r->last_modified, v, vn);
    } else if (header_is(line, len, "x-amz-meta-sha256", &v, &vn)) {
        copy_value(r->sha256, sizeof r->sha256, v, vn);
    } else if (header_is(line, len, "Content-Range", &v, &vn)) {
        copy_value(r->content_range, sizeof r->content_range, v, vn);
    } else if (len <= 2 && r->sock_known) {
        ack_now(r->sock);
    }
    return len;
}

/* Apply a "reset" or "truncate" fault on the first body bytes: keep half of
 * them, then end the transfer (a reset also shuts the socket down).
 * Returns the byte count to accept, and sets *abort. */
static size_t apply_body_fault(struct s3_response *r, size_t n, bool *abort_transfer)
{
    *abort_transfer = false;
    if (r->fault_fired || !(r->fault_reset || r->fault_truncate))
        return n;
    r->fault_fired = true;
    *abort_transfer = true;
    if (r->fault_reset) {
        curl_socket_t fd;
        if (curl_easy_getinfo(r->easy, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD)
            shutdown(fd, SHUT_RDWR);
    }
    return n / 2;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct s3_response *r = arg;
    size_t n = size * nmemb;
    bool stop;
    size_t keep = apply_body_fault(r, n, &stop);
    r->body_bytes += keep;
    if (r->body.len + keep > MAX_REPLY_BYTES || membuf_append(&r->body, data, keep) != 0)
        return 0;
    return stop ? keep : n;       /* a short count ends the transfer */
}

struct upload_src {
    const char *data;
    size_t len;
    struct s3_response *r;
};

static size_t on_upload(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload_src *u = arg;
    size_t cap = size * nitems, left = u->len - u->r->upload_pos;
    if (u->r->fault_reset && !u->r->fault_fired && u->r->upload_pos >= u->len / 2) {
        u->r->fault_fired = true;   /* the connection "drops" mid-upload */
        return CURL_READFUNC_ABORT;
    }
    if (cap > left)
        cap = left;
    if (u->r->fault_reset && !u->r->fault_fired && u->r->upload_pos < u->len / 2 &&
        cap > u->len / 2 - u->r->upload_pos && u->len / 2 > u->r->upload_pos)
        cap = u->len / 2 - u->r->upload_pos;
    memcpy(buf, u->data + u->r->upload_pos, cap);
    u->r->upload_pos += cap;
    return cap;
}

/* curl rewinds the body when it resends a request on a fresh connection
 * (a pooled one the server had closed). */
static int on_upload_seek(void *arg, curl_off_t offset, int origin)
{
    struct upload_src *u = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len)
        return CURL_SEEKFUNC_FAIL;
    u->r->upload_pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Build the canonical URI for key (NULL: the bucket itself). */
static int build_uri(const struct s3_backend *b, const char *key, char *uri, size_t urilen)
{
    size_t o = 0;
    if (!b->virtual_hosted) {
        int w = snprintf(uri, urilen, "/%s", b->bucket);
        if (w < 0 || (size_t)w >= urilen)
            return ENAMETOOLONG;
        o = (size_t)w;
    }
    if (key) {
        if (o + 2 >= urilen)
            return ENAMETOOLONG;
        uri[o++] = '/';
        if (sigv4_uri_encode(key, strlen(key), false, uri + o, urilen - o) < 0)
            return ENAMETOOLONG;
    } else if (o == 0) {
        snprintf(uri, urilen, "/");
    } else {
        uri[o] = '\0';
    }
    return 0;
}

static void build_host(const struct s3_backend *b, char *host, size_t hostlen)
{
    if (b->virtual_hosted)
        snprintf(host, hostlen, "%s.%s", b->bucket, b->hostport);
    else
        snprintf(host, hostlen, "%s", b->hostport);
}

/* Sign rq and configure easy for it; *hdrs must be freed by the caller. */
static int prepare(struct s3_backend *b, const struct s3_request *rq, CURL *easy,
                   struct curl_slist **hdrs, const char *payload_hash)
{
    char uri[4096], query[8192], host[400], url[12800], amz_date[17], authz[1024];
    char line[8400];
    struct sigv4_header h[MAX_EXTRA_HEADERS + 4];
    size_t nh = 0;
    int rc;

    *hdrs = NULL;
    if ((rc = build_uri(b, rq->key, uri, sizeof uri)))
        return rc;
    if (sigv4_canonical_query(rq->params, rq->nparams, query, sizeof query) < 0)
        return ENAMETOOLONG;
    build_host(b, host, sizeof host);
    sigv4_amz_date(time(NULL), amz_date);
    h[nh++] = (struct sigv4_header){ "host", host };
    h[nh++] = (struct sigv4_header){ "x-amz-date", amz_date };
    h[nh++] = (struct sigv4_header){ "x-amz-content-sha256", payload_hash };
    if (b->session_token)
        h[nh++] = (struct sigv4_header){ "x-amz-security-token", b->session_token };
    for (size_t i = 0; i < rq->nextra; i++)
        h[nh++] = rq->extra[i];
    struct sigv4_request sr = {
        .method = rq->method, .canonical_uri = uri, .canonical_query = query,
        .headers = h, .nheaders = nh, .payload_hash = payload_hash,
    };
    struct sigv4_credentials cr = {
        .access_key = b->access_key, .secret_key = b->secret_key,
        .region = b->region, .service = "s3",
    };
    if ((rc = sigv4_sign(&sr, &cr, amz_date, authz, sizeof authz, NULL, 0, NULL, 0)))
        return rc;
    snprintf(url, sizeof url, "%s://%s%s%s%s", b->scheme, host, uri, query[0] ? "?" : "", query);

    struct curl_slist *l = NULL;
    for (size_t i = 0; i <= nh + 1; i++) {
        if (i < nh)
            snprintf(line, sizeof line, "%s: %s", h[i].name, h[i].value);
        else if (i == nh)
            snprintf(line, sizeof line, "Authorization: %s", authz);
        else
            snprintf(line, sizeof line, "Expect:");     /* no 100-continue round trip */
        struct curl_slist *grown = curl_slist_append(l, line);
        if (!grown) {
            curl_slist_free_all(l);
            return ENOMEM;
        }
        l = grown;
    }
    *hdrs = l;
    if (b->ca_bundle[0])
        curl_easy_setopt(easy, CURLOPT_CAINFO, b->ca_bundle);

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);  /* never "normalise" a key */
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "tarnfs");
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
    /* A stalled server is a failure, not a hang (fetch_config's
     * stall_timeout_ms; a stalled GET stream is not retried). */
    long stall_s = b->base.stall_timeout_ms ? (long)(b->base.stall_timeout_ms + 999) / 1000 : 60;
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, stall_s);
    if (strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    else if (strcmp(rq->method, "GET") != 0)
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, rq->method);
    return 0;
}

/* Arm this attempt's injected transport faults. */
static void arm_faults(struct s3_response *r, const struct s3_request *rq, bool has_body_out, bool has_body_in)
{
    const char *what = rq->what ? rq->what : "";
    r->fault_500 = fetch_fault_check("http500", what) != 0;
    if (has_body_out || has_body_in)
        r->fault_reset = fetch_fault_check("reset", what) != 0;
    if (has_body_in)
        r->fault_truncate = fetch_fault_check("truncate", what) != 0;
}

/* A new connection for this attempt: its socket is the one to ACK on. */
static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    struct s3_response *r = arg;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        r->sock = fd;
        r->sock_known = true;
    }
    return CURL_SOCKOPT_OK;
}

/* One HTTP attempt. */
static int attempt(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r)
{
    struct curl_slist *hdrs = NULL;
    char payload_hash[sizeof SIGV4_EMPTY_SHA256];
    bool has_body = strcmp(rq->method, "PUT") == 0 || strcmp(rq->method, "POST") == 0;
    struct upload_src src = { rq->body, rq->body_len, r };
    CURL *easy = easy_get(b, &r->sock);
    int rc;

    r->sock_known = r->sock != CURL_SOCKET_BAD;

    if (!easy)
        return ENOMEM;
    r->easy = easy;
    if (rq->payload_hash)
        snprintf(payload_hash, sizeof payload_hash, "%s", rq->payload_hash);
    else if (rq->unsigned_payload)
        snprintf(payload_hash, sizeof payload_hash, SIGV4_UNSIGNED_PAYLOAD);
    else
        sigv4_sha256_hex(rq->body ? rq->body : "", rq->body_len, payload_hash);
    if ((rc = prepare(b, rq, easy, &hdrs, payload_hash))) {
        easy_put(b, easy, true);
        return rc;
    }
    arm_faults(r, rq, has_body && rq->body_len > 0, !rq->head);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, r);
    if (has_body) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(easy, CURLOPT_READDATA, &src);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_upload_seek);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, &src);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
        /* curl's default 64 KiB upload buffer means a read callback, a
         * send() and two polls per 64 KiB of a part. */
        if (rq->body_len > UPLOAD_BUF)
            curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, (long)UPLOAD_BUF);
        /* CURLOPT_UPLOAD means PUT; POST needs its verb restored */
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    r->curl_rc = curl_easy_perform(easy);
    if (!r->status)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->fault_500)
        r->status = 500;
    curl_slist_free_all(hdrs);
    easy_put(b, easy, r->curl_rc == CURLE_OK && !r->fault_fired);
    r->easy = NULL;
    return 0;
}

/* ---- error mapping ----------------------------------------------------- */

enum verdict { DONE, RETRY, FAIL };

/* Decide what one attempt means; for FAIL/RETRY *err and msg say why. */
static enum verdict judge(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
                          int *err, char *msg, size_t msglen)
{
    char code[128], smsg[256];
    const char *what = rq->what && *rq->what ? rq->what : b->bucket;

    *err = 0;
    msg[0] = '\0';
    if (r->fault_500) {
        *err = EIO;
        snprintf(msg, msglen, "HTTP 500 InternalError (injected) on %s", what);
        return RETRY;
    }
    if (r->curl_rc != CURLE_OK) {
        bool clean_truncation = r->fault_truncate && r->fault_fired;
        if (!clean_truncation) {
            *err = EIO;
            if (r->fault_reset && r->fault_fired)
                snprintf(msg, msglen, "connection reset (injected) on %s", what);
            else
                snprintf(msg, msglen, "transfer failed on %s: %s", what,
                         r->curl_err[0] ? r->curl_err : curl_easy_strerror(r->curl_rc));
            switch (r->curl_rc) {
            case CURLE_URL_MALFORMAT:
            case CURLE_UNSUPPORTED_PROTOCOL:
            case CURLE_OUT_OF_MEMORY:
                return FAIL;
            default:
                return RETRY;
            }
        }
        /* An injected clean truncation looks like success to curl: fall
         * through so the length check below catches the short body. */
    }
    if (r->status >= 200 && r->status < 300) {
        if (!rq->head && r->has_length && r->body_bytes != r->content_length) {
            *err = EIO;
            snprintf(msg, msglen, "short body on %s: %" PRIu64 " of %" PRIu64 " bytes", what,
                     r->body_bytes, r->content_length);
            return RETRY;
        }
        return DONE;
    }
    code[0] = smsg[0] = '\0';
    if (r->body.len)
        s3xml_parse_error(r->body.data, r->body.len, code, sizeof code, smsg, sizeof smsg);
    if (r->status >= 500 || strcmp(code, "SlowDown") == 0 || strcmp(code, "RequestTimeout") == 0 ||
        strcmp(code, "InternalError") == 0) {
        *err = EIO;
        snprintf(msg, msglen, "HTTP %ld %s on %s", r->status, code[0] ? code : "server error", what);
        return RETRY;
    }
    if (strcmp(code, "SignatureDoesNotMatch") == 0) {
        *err = EACCES;
        snprintf(msg, msglen, "S3 rejected the secret key for access key id %s (SignatureDoesNotMatch)",
                 b->access_key);
    } else if (strcmp(code, "InvalidAccessKeyId") == 0) {
        *err = EACCES;
        snprintf(msg, msglen, "S3 does not know the access key id %s (InvalidAccessKeyId)", b->access_key);
    } else if (strcmp(code, "RequestTimeTooSkewed") == 0) {
        *err = EACCES;
        snprintf(msg, msglen, "S3 refused the request: this machine's clock is too far off (RequestTimeTooSkewed)");
    } else if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0) {
        *err = EACCES;
        snprintf(msg, msglen, "S3 refused the session token for access key id %s (%s)", b->access_key, code);
    } else if (r->status == 403) {
        *err = EACCES;
        snprintf(msg, msglen, "S3 denied access to %s for access key id %s (%s)", what, b->access_key,
                 code[0] ? code : "HTTP 403");
    } else if (r->status == 301 || strcmp(code, "PermanentRedirect") == 0 ||
               strcmp(code, "AuthorizationHeaderMalformed") == 0) {
        *err = EINVAL;
        snprintf(msg, msglen, "bucket %s is not served at this endpoint/region (%s); set AWS_REGION or "
                              "the endpoint", b->bucket, code[0] ? code : "HTTP 301");
    } else if (strcmp(code, "NoSuchBucket") == 0) {
        *err = ENOENT;
        snprintf(msg, msglen, "bucket %s does not exist", b->bucket);
    } else if (r->status == 404) {
        *err = ENOENT;
        snprintf(msg, msglen, "%s: no such %s (%s)", what, strcmp(code, "NoSuchUpload") ? "object" : "upload",
                 code[0] ? code : "HTTP 404");
    } else if (r->status == 412 || strcmp(code, "ConditionalRequestConflict") == 0) {
        *err = ECANCELED;
        snprintf(msg, msglen, "%s changed meanwhile (%s)", what, code[0] ? code : "PreconditionFailed");
    } else if (r->status == 416) {
        *err = EINVAL;
        snprintf(msg, msglen, "range outside %s (InvalidRange)", what);
    } else if (strcmp(code, "BucketAlreadyExists") == 0) {
        *err = EEXIST;
        snprintf(msg, msglen, "bucket %s belongs to someone else (BucketAlreadyExists)", b->bucket);
    } else {
        *err = r->status == 400 ? EINVAL : EPROTO;
        snprintf(msg, msglen, "HTTP %ld %s on %s%s%s", r->status, code[0] ? code : "", what,
                 smsg[0] ? ": " : "", smsg);
    }
    return FAIL;
}

static void backoff(const struct s3_backend *b, unsigned attempt_no)
{
    unsigned long ms = b->retry_base_ms;
    for (unsigned i = 0; i < attempt_no && ms < MAX_BACKOFF_MS; i++)
        ms *= 2;
    if (ms > MAX_BACKOFF_MS)
        ms = MAX_BACKOFF_MS;
    /* "equal jitter": between half and all of the delay, so that many
     * clients hit by the same outage do not come back in step */
    ms = ms / 2 + (unsigned long)random() % (ms / 2 + 1);
    usleep((useconds_t)(ms * 1000));
}

/* Run rq with retries.  On failure, errmsg (if not NULL) gets the reason;
 * quiet suppresses logging of expected errors (ENOENT, ECANCELED). */
static int call(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
                char *errmsg, size_t errlen, bool quiet)
{
    char msg[512];
    int err = EIO;
    for (unsigned n = 0;; n++) {
        response_reset(r);
        r->attempts = n + 1;
        int rc = attempt(b, rq, r);
        if (rc) {
            snprintf(msg, sizeof msg, "cannot build the request for %s: %s", rq->what ? rq->what : "",
                     strerror(rc));
            err = rc;
            break;
        }
        enum verdict v = judge(b, rq, r, &err, msg, sizeof msg);
        if (v == DONE)
            return 0;
        if (v == FAIL)
            break;
        if (n >= b->max_retries) {
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s; giving up after %u attempts", msg, n + 1);
            snprintf(msg, sizeof msg, "%s", tmp);
            err = EIO;
            break;
        }
        log_warn("fetch: S3 %s: %s; retrying (attempt %u of %u)", rq->method, msg, n + 2, b->max_retries + 1);
        backoff(b, n);
    }
    if (!quiet || (err != ENOENT && err != ECANCELED))
        log_error("fetch: S3 %s: %s", rq->method, msg);
    if (errmsg)
        snprintf(errmsg, errlen, "%s", msg);
    return err;
}

static struct s3_backend *s3_of(fetch_backend *b)
{
    return (struct s3_backend *)b;
}

/* Full object key: backend prefix + key. */
static int full_key(const struct s3_backend *b, const char *key, char *out, size_t outlen)
{
    if (!key || !*key)
        return EINVAL;
    if ((size_t)snprintf(out, outlen, "%s%s", b->prefix, key) >= outlen)
        return ENAMETOOLONG;
    return 0;
}

/* ---- list / stat / delete ---------------------------------------------- */

static int list_pages(struct s3_backend *b, const char *prefix, const char *delimiter,
                      unsigned max_keys, fetch_list_cb cb, void *arg, char *errmsg, size_t errlen)
{
    char full[2048], token[2048] = "", maxk[16];
    struct s3_list_page page = { 0 };
    struct s3_response r = { 0 };
    int rc = 0;

    if ((size_t)snprintf(full, sizeof full, "%s%s", b->prefix, prefix) >= sizeof full)
        return ENAMETOOLONG;
    snprintf(maxk, sizeof maxk, "%u", max_keys);
    for (;;) {
        struct sigv4_param p[5];
        size_t np = 0;
        p[np++] = (struct sigv4_param){ "list-type", "2" };
        p[np++] = (struct sigv4_param){ "max-keys", maxk };
        p[np++] = (struct sigv4_param){ "prefix", full };
        if (delimiter && *delimiter)
            p[np++] = (struct sigv4_param){ "delimiter", delimiter };
        if (token[0])   /* RGW's token is a raw key: the encoder escapes it */
            p[np++] = (struct sigv4_param){ "continuation-token", token };
        struct s3_request rq = { .method = "GET", .what = prefix, .params = p, .nparams = np };
        if ((rc = call(b, &rq, &r, errmsg, errlen, false)))
            break;
        if ((rc = s3xml_parse_list(r.body.data, r.body.len, b->prefix, &page))) {
            log_error("fetch: S3 list of %s: unreadable ListObjectsV2 reply", full);
            if (errmsg)
                snprintf(errmsg, errlen, "unreadable ListObjectsV2 reply");
            break;
        }
        bool stop = false;
        for (size_t i = 0; i < page.n && !stop; i++)
            stop = cb(arg, &page.items[i]) != 0;
        if (stop || !page.truncated)
            break;
        if (strcmp(token, page.next_token) == 0) {
            rc = EPROTO;    /* a server that repeats its token would loop forever */
            log_error("fetch: S3 list of %s: the continuation token did not advance", full);
            break;
        }
        snprintf(token, sizeof token, "%s", page.next_token);
    }
    s3xml_list_page_free(&page);
    response_free(&r);
    return rc;
}

static int s3_list(fetch_backend *fb, const char *prefix, const char *delimiter,
                   fetch_list_cb cb, void *arg)
{
    struct s3_backend *b = s3_of(fb);
    return list_pages(b, prefix, delimiter, b->list_page_size, cb, arg, NULL, 0);
}

static void info_from_response(struct fetch_objinfo *oi, const char *key, const struct s3_response *r)
{
    memset(oi, 0, sizeof *oi);
    snprintf(oi->key, sizeof oi->key, "%s", key);
    oi->size = r->content_length;
    s3xml_parse_time(r->last_modified, &oi->mtime);
    s3xml_unquote(r->etag, oi->version, sizeof oi->version);
    if (fetch_is_sha256_hex(r->sha256))
        for (int i = 0; i < 65; i++)
            oi->sha256[i] = (char)tolower((unsigned char)r->sha256[i]);
}

static int head_object(struct s3_backend *b, const char *key, struct fetch_objinfo *oi, bool quiet)
{
    char fk[2048];
    struct s3_response r = { 0 };
    int rc = full_key(b, key, fk, sizeof fk);
    if (rc)
        return rc;
    struct s3_request rq = { .method = "HEAD", .key = fk, .what = key, .head = true };
    rc = call(b, &rq, &r, NULL, 0, quiet);
    if (!rc && oi)
        info_from_response(oi, key, &r);
    response_free(&r);
    return rc;
}

static int s3_stat(fetch_backend *fb, const char *key, struct fetch_objinfo *oi)
{
    return head_object(s3_of(fb), key, oi, true);
}

static int s3_del(fetch_backend *fb, const char *key)
{
    struct s3_backend *b = s3_of(fb);
    char fk[2048];
    struct s3_response r = { 0 };
    int rc = head_object(b, key, NULL, true);   /* S3 deletes silently: say ENOENT */
    if (rc)
        return rc;
    if ((rc = full_key(b, key, fk, sizeof fk)))
        return rc;
    struct s3_request rq = { .method = "DELETE", .key = fk, .what = key };
    rc = call(b, &rq, &r, NULL, 0, false);
    response_free(&r);
    return rc;
}

/* ---- the GET stream ---------------------------------------------------- */

/* One GET stream: bytes [pos, fetched_to) sit in buf; a transfer, when
 * running, appends from fetched_to.  After a failure the next transfer
 * asks for Range fetched_to- with If-Match on the first reply's ETag. */
struct s3_stream {
    fetch_stream base;
    struct s3_backend *b;
    char fk[2048];
    uint64_t pos;                   /* next absolute offset to hand out */
    uint64_t fetched_to;            /* absolute end of what was received */
    uint64_t end;                   /* absolute end (exclusive); UINT64_MAX until known */
    bool ranged;                    /* the caller asked for a range */
    char etag[160];                 /* pins the object across resumed requests */
    unsigned failures;
    int error;                      /* sticky failure (positive errno) */
    /* the transfer in flight */
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    struct s3_response r;
    uint64_t transfer_start;
    bool running, finished, paused, headers_taken;
    char *buf;
    size_t buf_off, buf_len;
};

/* Learn the object's extent and ETag from a 2xx reply's headers. */
static int stream_take_headers(struct s3_stream *s)
{
    s->headers_taken = true;
    if (!s->etag[0])
        s3xml_unquote(s->r.etag, s->etag, sizeof s->etag);
    if (s->r.status == 206) {
        uint64_t first, last, total;
        if (sscanf(s->r.content_range, "bytes %" SCNu64 "-%" SCNu64 "/%" SCNu64, &first, &last, &total) != 3 ||
            first != s->transfer_start)
            return EPROTO;
        if (s->end == UINT64_MAX || s->end > last + 1)
            s->end = last + 1;
        return 0;
    }
    if (s->r.status != 200 || s->transfer_start != 0 || !s->r.has_length)
        return EPROTO;      /* e.g. a whole object where we asked for a part */
    if (s->end == UINT64_MAX || s->end > s->r.content_length)
        s->end = s->r.content_length;
    return 0;
}

static size_t on_stream_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct s3_stream *s = arg;
    size_t n = size * nmemb;
    if (s->r.status < 200 || s->r.status >= 300) {
        if (s->r.body.len < 65536)
            membuf_append(&s->r.body, data, n);
        return n;
    }
    if (!s->headers_taken && stream_take_headers(s) != 0) {
        s->error = EPROTO;
        log_error("fetch: S3 GET %s: unexpected reply (HTTP %ld, Content-Range '%s')", s->base.key,
                  s->r.status, s->r.content_range);
        return 0;
    }
    if (s->buf_off == s->buf_len)
        s->buf_off = s->buf_len = 0;
    if (STREAM_BUF - s->buf_len < n && s->buf_off) {
        memmove(s->buf, s->buf + s->buf_off, s->buf_len - s->buf_off);
        s->buf_len -= s->buf_off;
        s->buf_off = 0;
    }
    if (STREAM_BUF - s->buf_len < n) {
        s->paused = true;           /* curl hands the same bytes again later */
        return CURL_WRITEFUNC_PAUSE;
    }
    bool stop;
    size_t keep = apply_body_fault(&s->r, n, &stop);
    memcpy(s->buf + s->buf_len, data, keep);
    s->buf_len += keep;
    s->r.body_bytes += keep;
    s->fetched_to += keep;
    return stop ? keep : n;
}

static void stream_end_transfer(struct s3_stream *s)
{
    if (s->easy) {
        curl_multi_remove_handle(s->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    s->running = false;
}

static int stream_start_transfer(struct s3_stream *s)
{
    char range[80];
    struct s3_request rq = { .method = "GET", .key = s->fk, .what = s->base.key };

    response_reset(&s->r);
    s->finished = s->paused = s->headers_taken = false;
    s->transfer_start = s->fetched_to;
    if (s->ranged || s->fetched_to > 0) {
        if (s->end != UINT64_MAX)
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, s->fetched_to, s->end - 1);
        else
            snprintf(range, sizeof range, "bytes=%" PRIu64 "-", s->fetched_to);
        rq.extra[rq.nextra++] = (struct sigv4_header){ "range", range };
    }
    if (s->etag[0])     /* a resumed read must see the same object */
        rq.extra[rq.nextra++] = (struct sigv4_header){ "if-match", s->etag };
    s->easy = curl_easy_init();
    if (!s->easy)
        return ENOMEM;
    s->r.easy = s->easy;
    int rc = prepare(s->b, &rq, s->easy, &s->hdrs, SIGV4_EMPTY_SHA256);
    if (rc) {
        stream_end_transfer(s);
        return rc;
    }
    arm_faults(&s->r, &rq, false, true);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, &s->r);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_stream_body);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->r.curl_err);
    curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, (long)STREAM_CHUNK);
    if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) {
        stream_end_transfer(s);
        return ENOMEM;
    }
    s->running = true;
    return 0;
}

/* Run curl until something happens: data, or the end of the transfer. */
static void stream_pump(struct s3_stream *s)
{
    int still = 0, left;
    CURLMsg *m;
    if (s->paused && STREAM_BUF - (s->buf_len - s->buf_off) >= STREAM_CHUNK) {
        s->paused = false;
        curl_easy_pause(s->easy, CURLPAUSE_CONT);
    }
    size_t before = s->buf_len - s->buf_off;
    curl_multi_perform(s->multi, &still);
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == s->easy) {
            s->r.curl_rc = m->data.result;
            s->finished = true;
        }
    }
    if (!s->finished && s->buf_len - s->buf_off == before && !s->paused)
        curl_multi_poll(s->multi, NULL, 0, 250, NULL);
}

/* The transfer ended: decide whether the stream is complete, must resume,
 * or has failed (s->error). */
static void stream_judge(struct s3_stream *s)
{
    char msg[512];
    int err;
    struct s3_request rq = { .method = "GET", .key = s->fk, .what = s->base.key };
    if (s->r.curl_rc == CURLE_OK && s->r.status >= 200 && s->r.status < 300 && !s->headers_taken &&
        !s->r.fault_500 && stream_take_headers(s) != 0)
        s->error = EPROTO;
    if (s->error) {
        stream_end_transfer(s);
        return;
    }
    if (s->r.curl_rc == CURLE_OPERATION_TIMEDOUT && s->r.status >= 200 && s->r.status < 300) {
        /* No bytes for the stall timeout: abandoned, not retried. */
        log_error("fetch: S3 GET %s: no bytes for %u ms; giving up", s->base.key,
                  s->base.stall_timeout_ms);
        stream_end_transfer(s);
        s->error = ETIMEDOUT;
        return;
    }
    enum verdict v = judge(s->b, &rq, &s->r, &err, msg, sizeof msg);
    stream_end_transfer(s);
    if (v == DONE && s->end != UINT64_MAX && s->fetched_to != s->end) {
        v = RETRY;          /* what the headers promised did not all come */
        err = EIO;
        snprintf(msg, sizeof msg, "short body on %s: ended at byte %" PRIu64 " of %" PRIu64,
                 s->base.key, s->fetched_to, s->end);
    }
    if (v == DONE)
        return;
    if (v == FAIL) {
        if (err == ECANCELED) {
            err = EIO;
            snprintf(msg, sizeof msg, "%s was replaced while it was being read (PreconditionFailed)",
                     s->base.key);
        }
        log_error("fetch: S3 GET %s", msg);
        s->error = err;
        return;
    }
    /* A transfer that got far before failing counts as a fresh start: a
     * long download may survive any number of well-spaced resets. */
    if (s->fetched_to - s->transfer_start >= PROGRESS_RESETS_RETRIES)
        s->failures = 0;
    if (++s->failures > s->b->max_retries) {
        log_error("fetch: S3 GET %s; giving up after %u attempts", msg, s->failures);
        s->error = EIO;
        return;
    }
    log_warn("fetch: S3 GET %s; resuming at byte %" PRIu64 " (attempt %u of %u)", msg, s->fetched_to,
             s->failures + 1, s->b->max_retries + 1);
    backoff(s->b, s->failures - 1);
}

/* Returns 0 once bytes are buffered or the stream is verified complete. */
static int stream_fill(struct s3_stream *s)
{
    for (;;) {
        if (s->buf_len > s->buf_off)
            return 0;
        if (s->error)
            return s->error;
        if (fetch_stream_cancelled(&s->base))
            return s->error = ECANCELED;
        if (!s->running && s->end != UINT64_MAX && s->fetched_to >= s->end)
            return 0;
        if (!s->running) {
            int rc = stream_start_transfer(s);
            if (rc)
                return s->error = rc;
        }
        stream_pump(s);
        if (s->finished)
            stream_judge(s);
    }
}

static ssize_t s3_stream_read(fetch_stream *fs, void *out, size_t cap)
{
    struct s3_stream *s = (struct s3_stream *)fs;
    int rc = stream_fill(s);
    if (rc)
        return -rc;
    size_t n = s->buf_len - s->buf_off;
    if (n == 0)
        return 0;           /* complete: every promised byte arrived */
    if (n > cap)
        n = cap;
    memcpy(out, s->buf + s->buf_off, n);
    s->buf_off += n;
    s->pos += n;
    return (ssize_t)n;
}

static void s3_stream_close(fetch_stream *fs)
{
    struct s3_stream *s = (struct s3_stream *)fs;
    stream_end_transfer(s);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    response_free(&s->r);
    free(s->buf);
    free(s);
}

static const struct fetch_stream_methods s3_stream_methods = {
    .read = s3_stream_read,
    .close = s3_stream_close,
};

static int s3_open(fetch_backend *fb, const char *key, uint64_t off, uint64_t len, fetch_stream **out)
{
    struct s3_backend *b = s3_of(fb);
    struct s3_stream *s = calloc(1, sizeof *s);
    int rc;

    if (!s)
        return ENOMEM;
    s->base.m = &s3_stream_methods;
    snprintf(s->base.key, sizeof s->base.key, "%s", key);
    s->b = b;
    s->pos = s->fetched_to = off;
    s->end = len ? off + len : UINT64_MAX;
    s->ranged = off > 0 || len > 0;
    s->buf = malloc(STREAM_BUF);
    s->multi = curl_multi_init();
    if (!s->buf || !s->multi) {
        rc = ENOMEM;
        goto fail;
    }
    if ((rc = full_key(b, key, s->fk, sizeof s->fk)))
        goto fail;
    /* Run until the first bytes (or the end): a missing object or a refused
     * key is reported by open, not by the first read. */
    rc = stream_fill(s);
    if (rc == EINVAL && off > 0) {
        /* 416: a range starting at the very end of the object is empty. */
        struct fetch_objinfo oi;
        if (head_object(b, key, &oi, true) == 0 && oi.size == off) {
            s->error = 0;
            s->end = s->fetched_to = off;
            rc = 0;
        }
    }
    if (rc)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    s3_stream_close(&s->base);
    return rc;
}

/* ---- put helpers ---------------------------------------------------------- */

/* Conditional headers for a write; etag_buf holds the unquoted version
 * (RGW matches If-Match only against an unquoted ETag). */
static void add_conditions(struct s3_request *rq, const struct fetch_put_opts *o)
{
    if (o->if_match)
        rq->extra[rq->nextra++] = (struct sigv4_header){ "if-match", o->if_match };
    if (o->if_none_match)
        rq->extra[rq->nextra++] = (struct sigv4_header){ "if-none-match", "*" };
}

/* Check the preconditions with HEAD: a server that ignores conditional
 * headers on CompleteMultipartUpload still may not overwrite blindly. */
static int check_conditions(struct s3_backend *b, const char *key, const struct fetch_put_opts *o)
{
    struct fetch_objinfo cur;
    if (!o->if_match && !o->if_none_match)
        return 0;
    int rc = head_object(b, key, &cur, true);
    if (rc && rc != ENOENT)
        return rc;
    if (o->if_none_match && rc == 0)
        return ECANCELED;
    if (o->if_match && (rc == ENOENT || strcmp(cur.version, o->if_match) != 0))
        return ECANCELED;
    return 0;
}

struct part_list {
    char (*etags)[160];
    size_t n, cap;
};

/* The ETag S3 gives a multipart object: MD5 of the parts' MD5s, "-N". */
static void multipart_etag(const struct part_list *parts, char *out, size_t outlen)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char d[16];
    char hex[33];
    out[0] = '\0';
    if (!c || !EVP_DigestInit_ex(c, EVP_md5(), NULL)) {
        EVP_MD_CTX_free(c);
        return;
    }
    for (size_t i = 0; i < parts->n; i++) {
        char plain[160];
        s3xml_unquote(parts->etags[i], plain, sizeof plain);
        if (strlen(plain) != 32)
            goto out;
        if (hex_decode(plain, 16, d))
            goto out;
        EVP_DigestUpdate(c, d, 16);
    }
    EVP_DigestFinal_ex(c, d, NULL);
    hex_encode(d, 16, hex);
    snprintf(out, outlen, "%s-%zu", hex, parts->n);
out:
    EVP_MD_CTX_free(c);
}

static int abort_upload(struct s3_backend *b, const char *fk, const char *what, const char *upload_id);

/* List unfinished uploads whose full key starts with prefix. */
static int list_uploads_raw(struct s3_backend *b, const char *prefix, s3xml_upload_cb cb, void *arg)
{
    char key_marker[2048] = "", id_marker[512] = "";
    struct s3_response r = { 0 };
    int rc;
    for (;;) {
        struct sigv4_param p[4];
        size_t np = 0;
        p[np++] = (struct sigv4_param){ "uploads", "" };
        p[np++] = (struct sigv4_param){ "prefix", prefix };
        if (key_marker[0]) {
            p[np++] = (struct sigv4_param){ "key-marker", key_marker };
            p[np++] = (struct sigv4_param){ "upload-id-marker", id_marker };
        }
        struct s3_request rq = { .method = "GET", .what = "", .params = p, .nparams = np };
        bool truncated;
        if ((rc = call(b, &rq, &r, NULL, 0, false)))
            break;
        rc = s3xml_parse_uploads(r.body.data, r.body.len, cb, arg, &truncated, key_marker,
                                 sizeof key_marker, id_marker, sizeof id_marker);
        if (rc || !truncated || !key_marker[0])
            break;
    }
    response_free(&r);
    return rc;
}

struct orphan_ctx {
    struct s3_backend *b;
    const char *fk, *key, *mine;
    time_t since;
};

static int abort_orphan(void *arg, const char *k, const char *id, const struct timespec *when)
{
    struct orphan_ctx *c = arg;
    if (strcmp(k, c->fk) != 0 || strcmp(id, c->mine) == 0 || when->tv_sec < c->since)
        return 0;
    log_warn("fetch: S3 aborting upload %s of %s, started by a retried request", id, c->key);
    abort_upload(c->b, c->fk, c->key, id);
    return 0;
}

static int abort_upload(struct s3_backend *b, const char *fk, const char *what, const char *upload_id)
{
    struct sigv4_param p[] = { { "uploadId", upload_id } };
    struct s3_request rq = { .method = "DELETE", .key = fk, .what = what, .params = p, .nparams = 1 };
    struct s3_response r = { 0 };
    int rc = call(b, &rq, &r, NULL, 0, false);
    response_free(&r);
    if (rc && rc != ENOENT)
        log_error("fetch: S3 could not abort multipart upload %s of %s: %s; it is left behind",
                  upload_id, what, strerror(rc));
    return rc == ENOENT ? 0 : rc;
}

/* Store the checksum as metadata after a multipart upload whose hash was
 * only known at the end: a copy of the object onto itself. */
static int set_sha256_metadata(struct s3_backend *b, const char *fk, const char *key,
                               const char *etag, const char *hex)
{
    char src[4200], esrc[4200];
    int frc = fetch_fault_check("meta", key);
    if (frc)
        return frc;
    snprintf(src, sizeof src, "/%s/%s", b->bucket, fk);
    if (sigv4_uri_encode(src, strlen(src), false, esrc, sizeof esrc) < 0)
        return ENAMETOOLONG;
    struct s3_request rq = { .method = "PUT", .key = fk, .what = key };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-copy-source", esrc };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-metadata-directive", "REPLACE" };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-meta-sha256", hex };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-copy-source-if-match", etag };
    struct s3_response r = { 0 };
    int rc = call(b, &rq, &r, NULL, 0, false);
    if (!rc && r.body.len) {
        char code[64], msg[128];
        if (s3xml_parse_error(r.body.data, r.body.len, code, sizeof code, msg, sizeof msg) == 0) {
            log_error("fetch: S3 storing the SHA-256 of %s failed: %s", key, code);
            rc = EIO;
        }
    }
    response_free(&r);
    return rc;
}

static int put_single(struct s3_backend *b, const char *fk, const char *key, const char *body, size_t len,
                      const char *hex, const struct fetch_put_opts *o)
{
    /* the body's hash is the payload hash: computed once, signed */
    struct s3_request rq = { .method = "PUT", .key = fk, .what = key, .body = body, .body_len = len,
                             .payload_hash = hex };
    struct s3_response r = { 0 };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-meta-sha256", hex };
    add_conditions(&rq, o);
    int rc = call(b, &rq, &r, NULL, 0, true);
    if (rc == ECANCELED && r.attempts > 1) {
        /* A retried conditional PUT fails its condition if the first try
         * did land: the object then has our body's MD5 as its ETag. */
        unsigned char md5[16];
        char md5hex[33];
        struct fetch_objinfo cur;
        unsigned int mdlen = 16;
        EVP_Digest(body, len, md5, &mdlen, EVP_md5(), NULL);
        hex_encode(md5, 16, md5hex);
        if (head_object(b, key, &cur, true) == 0 && strcmp(cur.version, md5hex) == 0)
            rc = 0;
    }
    response_free(&r);
    return rc;
}

/* One part in flight: its own buffer, uploaded by its own thread while
 * the caller's source fills the next one. */
struct part_slot {
    struct s3_backend *b;
    const char *fk, *key, *upload_id;
    char *buf;
    size_t len;
    unsigned partno;
    bool busy;
    int rc;
    char etag[160];
    pthread_t thread;
};

static void *upload_part_thread(void *arg)
{
    struct part_slot *p = arg;
    char num[16];
    struct s3_response r = { 0 };
    snprintf(num, sizeof num, "%u", p->partno);
    struct sigv4_param q[] = { { "partNumber", num }, { "uploadId", p->upload_id } };
    /* Parts go unsigned: hashing each a second time would cost another
     * pass over the data; the whole-object SHA-256 is kept and checked. */
    struct s3_request rq = { .method = "PUT", .key = p->fk, .what = p->key, .params = q, .nparams = 2,
                             .body = p->buf, .body_len = p->len, .unsigned_payload = true };
    p->rc = call(p->b, &rq, &r, NULL, 0, false);
    if (!p->rc && !r.etag[0]) {
        log_error("fetch: S3 part %u of %s: no ETag in the reply", p->partno, p->key);
        p->rc = EPROTO;
    }
    snprintf(p->etag, sizeof p->etag, "%s", r.etag);
    response_free(&r);
    return NULL;
}

/* Wait for slot's upload and record its ETag; returns its error. */
static int finish_slot(struct part_slot *slot, struct part_list *parts)
{
    if (!slot->busy)
        return 0;
    pthread_join(slot->thread, NULL);
    slot->busy = false;
    if (slot->rc)
        return slot->rc;
    if (slot->partno > parts->cap) {
        size_t cap = parts->cap ? parts->cap : 64;
        while (cap < slot->partno)
            cap *= 2;
        void *np = realloc(parts->etags, cap * sizeof *parts->etags);
        if (!np)
            return ENOMEM;
        parts->etags = np;
        parts->cap = cap;
    }
    snprintf(parts->etags[slot->partno - 1], sizeof parts->etags[0], "%s", slot->etag);
    if (slot->partno > parts->n)
        parts->n = slot->partno;
    return 0;
}

/* ---- upload: begin, write, commit, abort --------------------------------- */

/* The first parts of a large upload are smaller (8, 16, 32 MiB... up to the
 * part size), so the first PUT starts after 8 MiB, not a whole part. */
#define FIRST_PART (8u << 20)

struct s3_upload {
    fetch_upload base;
    struct s3_backend *b;
    const struct fetch_put_opts *o;
    char *key;
    char fk[2048];
    size_t part;                    /* the largest part */
    unsigned threads;               /* slots: parts in flight + the filling one */
    struct part_slot slot[16];
    struct part_slot *fill;         /* the part being filled, or NULL */
    size_t fill_cap;                /* its size */
    unsigned partno;                /* its number (1-based) */
    uint64_t written;               /* body bytes written so far */
    char upload_id[512];            /* "" until the multipart upload exists */
    time_t began;                   /* just before CreateMultipartUpload */
    bool orphans_possible;          /* a retried Create may have left one */
    bool meta_done;                 /* x-amz-meta-sha256 was set at Create */
    struct part_list parts;
    int err;                        /* first error: sticky */
};

static struct s3_upload *s3_upload_of(fetch_upload *u)
{
    return (struct s3_upload *)u;
}

static size_t part_cap(const struct s3_upload *u, unsigned partno)
{
    if (u->part <= FIRST_PART)
        return u->part;
    size_t cap = FIRST_PART;
    for (unsigned i = 1; i < partno && cap < u->part; i++)
        cap *= 2;
    if (cap > u->part)
        cap = u->part;
    /* Near the expected end, half of what is left: the last parts, which
     * go out only once the body has ended, are small.  Past the hint (it
     * was low) parts are full again: a bad hint costs a few parts more. */
    if (u->o->size_hint > u->written) {
        uint64_t left = u->o->size_hint - u->written;
        uint64_t half = (left / 2 + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
        if (half < FIRST_PART)
            half = FIRST_PART;
        if (half < cap)
            cap = (size_t)half;
    }
    return cap;
}

static int s3_upload_begin(fetch_backend *fb, const char *key, const struct fetch_put_opts *o,
                           fetch_upload **out)
{
    struct s3_backend *b = s3_of(fb);
    struct s3_upload *u = calloc(1, sizeof *u);
    if (!u)
        return ENOMEM;
    u->b = b;
    u->o = o;
    u->part = o->part_size ? o->part_size : DEFAULT_PART_SIZE;
    u->threads = o->upload_threads ? o->upload_threads : DEFAULT_UPLOAD_THREADS;
    if (u->threads > 16)
        u->threads = 16;
    for (unsigned i = 0; i < u->threads; i++)
        u->slot[i] = (struct part_slot){ .b = b, .fk = u->fk, .upload_id = u->upload_id };
    int rc = ENOMEM;
    if (!(u->key = strdup(key)) || (rc = full_key(b, key, u->fk, sizeof u->fk))) {
        free(u->key);
        free(u);
        return rc;
    }
    for (unsigned i = 0; i < u->threads; i++)
        u->slot[i].key = u->key;
    *out = &u->base;
    return 0;
}

/* CreateMultipartUpload, with the SHA-256 as metadata when it is known. */
static int create_multipart(struct s3_upload *u)
{
    struct s3_response r = { 0 };
    struct sigv4_param p[] = { { "uploads", "" } };
    struct s3_request rq = { .method = "POST", .key = u->fk, .what = u->key, .params = p, .nparams = 1 };
    /* A retried Create whose first reply was lost starts a second upload;
     * those are found (same key, started since just before ours) and
     * aborted at the end. */
    u->began = time(NULL) - 60;
    if (u->o->sha256_hex) {
        rq.extra[rq.nextra++] = (struct sigv4_header){ "x-amz-meta-sha256", u->o->sha256_hex };
        u->meta_done = true;
    }
    int rc = call(u->b, &rq, &r, NULL, 0, false);
    u->orphans_possible = r.attempts > 1;
    if (!rc && (s3xml_find_text(r.body.data, r.body.len, "UploadId", u->upload_id,
                                sizeof u->upload_id) != 0 || !u->upload_id[0])) {
        log_error("fetch: S3 multipart upload of %s: no UploadId in the reply", u->key);
        u->upload_id[0] = '\0';
        rc = EPROTO;
    }
    response_free(&r);
    return rc;
}

/* Send the filled part on its own thread (creating the upload first). */
static int send_fill(struct s3_upload *u)
{
    struct part_slot *s = u->fill;
    int rc;
    if (!u->upload_id[0] && (rc = create_multipart(u)))
        return rc;
    s->partno = u->partno;
    s->rc = 0;
    if (pthread_create(&s->thread, NULL, upload_part_thread, s) != 0)
        return EAGAIN;
    s->busy = true;
    u->fill = NULL;
    return 0;
}

static int s3_upload_write(fetch_upload *fu, const void *data, size_t len)
{
    struct s3_upload *u = s3_upload_of(fu);
    const char *src = data;
    while (len > 0 && !u->err) {
        if (u->fill && u->fill->len == u->fill_cap) {
            /* full, and more is coming: off it goes */
            if ((u->err = send_fill(u)))
                break;
        }
        if (!u->fill) {
            u->partno++;
            struct part_slot *s = &u->slot[(u->partno - 1) % u->threads];
            if ((u->err = finish_slot(s, &u->parts)))
                break;
            if (!s->buf && !(s->buf = malloc(u->part))) {
                u->err = ENOMEM;
                break;
            }
            s->len = 0;
            u->fill = s;
            u->fill_cap = part_cap(u, u->partno);
        }
        size_t n = u->fill_cap - u->fill->len;
        if (n > len)
            n = len;
        memcpy(u->fill->buf + u->fill->len, src, n);
        u->fill->len += n;
        u->written += n;
        src += n;
        len -= n;
    }
    if (u->err && u->err != ECANCELED)
        log_error("fetch: S3 upload of %s failed: %s", u->key, strerror(u->err));
    return u->err;
}

/* Wait for every part in flight; the first error. */
static int finish_all(struct s3_upload *u)
{
    int rc = 0;
    for (unsigned i = 0; i < u->threads; i++) {
        int r = finish_slot(&u->slot[i], &u->parts);
        if (!rc)
            rc = r;
    }
    return rc;
}

static int complete_multipart(struct s3_upload *u)
{
    struct membuf xml = { 0 };
    struct s3_response r = { 0 };
    int rc = 0;
    if ((rc = check_conditions(u->b, u->key, u->o)))
        return rc;
    membuf_append(&xml, "<CompleteMultipartUpload>", 25);
    for (size_t i = 0; i < u->parts.n && !rc; i++) {
        char item[300];
        int w = snprintf(item, sizeof item, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>",
                         i + 1, u->parts.etags[i]);
        rc = membuf_append(&xml, item, (size_t)w);
    }
    if (!rc)
        rc = membuf_append(&xml, "</CompleteMultipartUpload>", 26);
    if (rc)
        goto out;
    struct sigv4_param p[] = { { "uploadId", u->upload_id } };
    struct s3_request rq = { .method = "POST", .key = u->fk, .what = u->key, .params = p, .nparams = 1,
                             .body = xml.data, .body_len = xml.len };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "content-type", "application/xml" };
    add_conditions(&rq, u->o);
    rc = call(u->b, &rq, &r, NULL, 0, true);
    if ((rc == ENOENT || rc == ECANCELED) && r.attempts > 1) {
        /* The first Complete may have landed and its reply got lost:
         * then the object carries exactly our parts' ETag. */
        char expect[64];
        struct fetch_objinfo cur;
        multipart_etag(&u->parts, expect, sizeof expect);
        if (head_object(u->b, u->key, &cur, true) == 0 && strcmp(cur.version, expect) == 0) {
            u->upload_id[0] = '\0';
            rc = 0;
            goto out;
        }
    }
    if (rc)
        goto out;
    char code[64], msg[256];
    /* A 200 reply can still carry an error (S3 reports late failures so). */
    if (s3xml_parse_error(r.body.data, r.body.len, code, sizeof code, msg, sizeof msg) == 0) {
        log_error("fetch: S3 completing the upload of %s failed: %s %s", u->key, code, msg);
        rc = strcmp(code, "PreconditionFailed") == 0 ? ECANCELED : EIO;
        goto out;
    }
    u->upload_id[0] = '\0';        /* complete: nothing to abort */
out:
    free(xml.data);
    response_free(&r);
    return rc;
}

static void s3_upload_free(struct s3_upload *u)
{
    finish_all(u);
    if (u->upload_id[0])
        abort_upload(u->b, u->fk, u->key, u->upload_id);
    if (u->orphans_possible) {
        struct orphan_ctx oc = { u->b, u->fk, u->key, u->upload_id, u->began };
        list_uploads_raw(u->b, u->fk, abort_orphan, &oc);
    }
    for (unsigned i = 0; i < u->threads; i++)
        free(u->slot[i].buf);
    free(u->parts.etags);
    free(u->key);
    free(u);
}

static void s3_upload_abort(fetch_upload *fu)
{
    s3_upload_free(s3_upload_of(fu));
}

static int s3_upload_commit(fetch_upload *fu, const char *hex, struct fetch_objinfo *oi)
{
    struct s3_upload *u = s3_upload_of(fu);
    const struct fetch_put_opts *o = u->o;
    int rc = u->err;
    if (rc)
        goto out;
    /* A body that fits the first part goes in one PUT, signed with its hash. */
    bool single = !u->upload_id[0] && u->partno <= 1;
    if (!single && u->fill && u->fill->len && (rc = send_fill(u)))
        goto out;
    if (!single && (rc = finish_all(u)))
        goto out;
    if (single) {
        rc = put_single(u->b, u->fk, u->key, u->fill ? u->fill->buf : "", u->fill ? u->fill->len : 0,
                        hex, o);
        u->meta_done = true;
    } else {
        rc = complete_multipart(u);
    }
    if (rc)
        goto out;
    struct fetch_objinfo cur;
    /* CompleteMultipartUpload's ETag is empty on RGW: ask HEAD. */
    if ((rc = head_object(u->b, u->key, &cur, false)))
        goto out;
    if (!u->meta_done) {
        if (set_sha256_metadata(u->b, u->fk, u->key, cur.version, hex) == 0)
            head_object(u->b, u->key, &cur, false);
        else
            log_warn("fetch: S3 %s was stored, but without its SHA-256 metadata", u->key);
    }
    if (!cur.sha256[0])
        snprintf(cur.sha256, sizeof cur.sha256, "%s", hex);
    if (oi)
        *oi = cur;
out:
    if (rc == ECANCELED)
        log_info("fetch: S3 %s changed since it was read; not overwritten", u->key);
    s3_upload_free(u);
    return rc;
}

/* ---- open, close, extras ------------------------------------------------ */

static void s3_close(fetch_backend *fb)
{
    struct s3_backend *b = s3_of(fb);
    for (int i = 0; i < b->pool_n; i++)
        curl_easy_cleanup(b->pool[i]);
    pthread_mutex_destroy(&b->pool_lock);
    if (b->secret_key) {
        OPENSSL_cleanse(b->secret_key, strlen(b->secret_key));
        free(b->secret_key);
    }
    free(b->session_token);
    free(b);
}

static int s3_abort_uploads(fetch_backend *fb,
                            bool (*mine)(void *arg, const char *key),
                            void *arg, unsigned *aborted);

static const struct fetch_methods s3_methods = {
    .name = "s3",
    .list = s3_list,
    .stat = s3_stat,
    .open = s3_open,
    .upload_begin = s3_upload_begin,
    .upload_write = s3_upload_write,
    .upload_commit = s3_upload_commit,
    .upload_abort = s3_upload_abort,
    .del = s3_del,
    .abort_uploads = s3_abort_uploads,
    .close = s3_close,
};

static bool valid_bucket_name(const char *s, size_t n)
{
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' ||
              s[i] == '_'))
            return false;
    return true;
}

/* Build a backend from bucket[/prefix] and the credential conventions. */
static int s3_new(const char *bucket_and_prefix, const struct fetch_config *cfg,
                  struct s3_backend **out, char *err, size_t errlen)
{
    static const struct fetch_config no_config;
    struct s3_backend *b = calloc(1, sizeof *b);
    char profile[128], value[1024], endpoint[600];
    const char *v;
    int rc = EINVAL;

    if (!b)
        return ENOMEM;
    if (!cfg)
        cfg = &no_config;
    pthread_mutex_init(&b->pool_lock, NULL);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl failed to initialise");
        rc = EIO;
        goto fail;
    }
    size_t blen = strcspn(bucket_and_prefix, "/");
    if (!valid_bucket_name(bucket_and_prefix, blen)) {
        snprintf(err, errlen, "'s3://%s': '%.*s' is not a valid bucket name", bucket_and_prefix,
                 (int)blen, bucket_and_prefix);
        goto fail;
    }
    snprintf(b->bucket, sizeof b->bucket, "%.*s", (int)blen, bucket_and_prefix);
    const char *prefix = bucket_and_prefix + blen;
    while (*prefix == '/')
        prefix++;
    if (strlen(prefix) + 2 >= sizeof b->prefix) {
        snprintf(err, errlen, "S3 prefix is too long");
        goto fail;
    }
    if (*prefix)
        snprintf(b->prefix, sizeof b->prefix, "%s%s", prefix, prefix[strlen(prefix) - 1] == '/' ? "" : "/");

    bool explicit_profile = cfg->profile && *cfg->profile;
    snprintf(profile, sizeof profile, "%s",
             explicit_profile ? cfg->profile : env_nonempty("AWS_PROFILE") ? getenv("AWS_PROFILE") : "default");

    /* Keys: the config, then an explicitly named profile, then the
     * environment, then the profile files (AWS CLI order). */
    char secret[512] = "", token[4096] = "";
    if (cfg->access_key && cfg->secret_key) {
        snprintf(b->access_key, sizeof b->access_key, "%s", cfg->access_key);
        snprintf(secret, sizeof secret, "%s", cfg->secret_key);
        if (cfg->session_token)
            snprintf(token, sizeof token, "%s", cfg->session_token);
    } else if (!explicit_profile && env_nonempty("AWS_ACCESS_KEY_ID") && env_nonempty("AWS_SECRET_ACCESS_KEY")) {
        snprintf(b->access_key, sizeof b->access_key, "%s", getenv("AWS_ACCESS_KEY_ID"));
        snprintf(secret, sizeof secret, "%s", getenv("AWS_SECRET_ACCESS_KEY"));
        if ((v = env_nonempty("AWS_SESSION_TOKEN")))
            snprintf(token, sizeof token, "%s", v);
    } else if (profile_value(profile, "aws_access_key_id", b->access_key, sizeof b->access_key) &&
               profile_value(profile, "aws_secret_access_key", secret, sizeof secret)) {
        profile_value(profile, "aws_session_token", token, sizeof token);
    } else {
        snprintf(err, errlen, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                              "or a profile in ~/.aws/credentials (profile '%s' has none)", profile);
        goto fail;
    }
    b->secret_key = strdup(secret);
    OPENSSL_cleanse(secret, sizeof secret);
    if (token[0])
        b->session_token = strdup(token);
    if (!b->secret_key || (token[0] && !b->session_token)) {
        rc = ENOMEM;
        goto fail;
    }

    if (cfg->region && *cfg->region)
        snprintf(b->region, sizeof b->region, "%s", cfg->region);
    else if ((v = env_nonempty("AWS_REGION")) || (v = env_nonempty("AWS_DEFAULT_REGION")))
        snprintf(b->region, sizeof b->region, "%s", v);
    else if (profile_value(profile, "region", value, sizeof value))
        snprintf(b->region, sizeof b->region, "%s", value);
    else
        snprintf(b->region, sizeof b->region, "us-east-1");

    if (cfg->s3_endpoint && *cfg->s3_endpoint)
        snprintf(endpoint, sizeof endpoint, "%s", cfg->s3_endpoint);
    else if ((v = env_nonempty("AWS_ENDPOINT_URL_S3")) || (v = env_nonempty("AWS_ENDPOINT_URL")))
        snprintf(endpoint, sizeof endpoint, "%s", v);
    else if (profile_value(profile, "endpoint_url", value, sizeof value))
        snprintf(endpoint, sizeof endpoint, "%s", value);
    else
        snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", b->region);
    if (parse_endpoint(endpoint, b)) {
        snprintf(err, errlen, "bad S3 endpoint '%s' (want http[s]://host[:port])", endpoint);
        goto fail;
    }
    if ((v = env_nonempty("AWS_CA_BUNDLE")))
        snprintf(b->ca_bundle, sizeof b->ca_bundle, "%s", v);
    else if (profile_value(profile, "ca_bundle", value, sizeof value))
        snprintf(b->ca_bundle, sizeof b->ca_bundle, "%s", value);
    b->virtual_hosted = cfg->virtual_hosted;
    b->max_retries = cfg->max_retries ? cfg->max_retries : DEFAULT_RETRIES;
    b->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : DEFAULT_RETRY_BASE_MS;
    b->list_page_size = cfg->list_page_size ? cfg->list_page_size : 1000;
    b->base.m = &s3_methods;
    *out = b;
    return 0;
fail:
    s3_close(&b->base);
    return rc;
}

static int stop_at_first(void *arg, const struct fetch_objinfo *oi)
{
    (void)arg;
    (void)oi;
    return 1;
}

int fetch_s3_open(const char *bucket_and_prefix, const struct fetch_config *cfg,
                  fetch_backend **out, char *err, size_t errlen)
{
    struct s3_backend *b;
    int rc = s3_new(bucket_and_prefix, cfg, &b, err, errlen);
    if (rc)
        return rc;
    /* One cheap list proves the endpoint, the keys and the bucket now,
     * with S3's own words for what is wrong. */
    rc = list_pages(b, "", "/", 1, stop_at_first, NULL, err, errlen);
    if (rc) {
        s3_close(&b->base);
        return rc;
    }
    log_debug("fetch: S3 backend s3://%s%s%s at %s://%s (%s-style, region %s)", b->bucket,
              b->prefix[0] ? "/" : "", b->prefix, b->scheme, b->hostport,
              b->virtual_hosted ? "virtual-hosted" : "path", b->region);
    *out = &b->base;
    return 0;
}

int fetch_s3_check(const char *bucket_and_prefix, const struct fetch_config *cfg,
                   char *err, size_t errlen)
{
    struct s3_backend *b;
    int rc = s3_new(bucket_and_prefix, cfg, &b, err, errlen);
    if (rc == 0)
        s3_close(&b->base);     /* no request was made */
    return rc;
}

int fetch_s3_make_bucket(const char *bucket, const struct fetch_config *cfg, char *err, size_t errlen)
{
    struct s3_backend *b;
    int rc = s3_new(bucket, cfg, &b, err, errlen);
    if (rc)
        return rc;
    struct s3_request rq = { .method = "PUT", .what = bucket };
    struct s3_response r = { 0 };
    rc = call(b, &rq, &r, err, errlen, true);
    if (rc == EEXIST || rc == EPROTO || rc == EINVAL) {
        char code[64], msg[128];
        if (r.body.len && s3xml_parse_error(r.body.data, r.body.len, code, sizeof code, msg, sizeof msg) == 0 &&
            strcmp(code, "BucketAlreadyOwnedByYou") == 0)
            rc = 0;
    }
    if (rc)
        log_error("fetch: S3 cannot create bucket %s: %s", bucket, err);
    response_free(&r);
    s3_close(&b->base);
    return rc;
}

struct uploads_ctx {
    struct s3_backend *b;
    fetch_upload_cb cb;
    void *arg;
};

static int upload_entry(void *arg, const char *key, const char *upload_id, const struct timespec *initiated)
{
    struct uploads_ctx *c = arg;
    size_t pl = strlen(c->b->prefix);
    (void)initiated;
    if (strncmp(key, c->b->prefix, pl) != 0)
        return 0;
    return c->cb(c->arg, key + pl, upload_id);
}

int fetch_s3_list_uploads(fetch_backend *fb, fetch_upload_cb cb, void *arg)
{
    if (!fb || fb->m != &s3_methods)
        return EINVAL;
    struct uploads_ctx ctx = { s3_of(fb), cb, arg };
    return list_uploads_raw(s3_of(fb), s3_of(fb)->prefix, upload_entry, &ctx);
}

int fetch_s3_abort_upload(fetch_backend *fb, const char *key, const char *upload_id)
{
    if (!fb || fb->m != &s3_methods)
        return EINVAL;
    struct s3_backend *b = s3_of(fb);
    char fk[2048];
    int rc = full_key(b, key, fk, sizeof fk);
    if (rc)
        return rc;
    struct sigv4_param p[] = { { "uploadId", upload_id } };
    struct s3_request rq = { .method = "DELETE", .key = fk, .what = key, .params = p, .nparams = 1 };
    struct s3_response r = { 0 };
    rc = call(b, &rq, &r, NULL, 0, true);
    response_free(&r);
    return rc;
}

struct abort_ctx {
    fetch_backend *b;
    bool (*mine)(void *arg, const char *key);
    void *arg;
    unsigned aborted;
};

static int abort_if_mine(void *arg, const char *key, const char *upload_id)
{
    struct abort_ctx *c = arg;
    if (!c->mine(c->arg, key))
        return 0;
    int err = fetch_s3_abort_upload(c->b, key, upload_id);
    if (err && err != ENOENT) {
        log_warn("s3: cannot abort the unfinished upload of %s: %s", key,
                 strerror(err));
    } else {
        c->aborted++;
        log_warn("s3: aborted an unfinished multipart upload of %s", key);
    }
    return 0;
}

static int s3_abort_uploads(fetch_backend *fb,
                            bool (*mine)(void *arg, const char *key),
                            void *arg, unsigned *aborted)
{
    struct abort_ctx c = { fb, mine, arg, 0 };
    int err = fetch_s3_list_uploads(fb, abort_if_mine, &c);
    *aborted = c.aborted;
    return err;
}
