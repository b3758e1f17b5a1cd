/* s3.c: the S3 backend: configuration and credentials, libcurl requests signed by our SigV4 signer with retries and error mapping, list, stat and delete, and opening the backend; the GET stream is in s3_get.c, uploads in s3_put.c. */
#include "fetch/s3_internal.h"
#include "fetch/fetch_s3.h"
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
 * length-checked where it enters (s3_full_key, s3_new), so GCC's guesses about
 * truncation here are noise. */
#pragma GCC diagnostic ignored "-Wformat-truncation"


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


int s3_membuf_append(struct membuf *m, const void *p, size_t n)
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


void s3_response_reset(struct s3_response *r)
{
    struct membuf keep = r->body;
    memset(r, 0, sizeof *r);
    keep.len = 0;
    if (keep.data)
        keep.data[0] = '\0';
    r->body = keep;
}

void s3_response_free(struct s3_response *r)
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

size_t s3_on_header(char *line, size_t size, size_t nitems, void *arg)
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
size_t s3_apply_body_fault(struct s3_response *r, size_t n, bool *abort_transfer)
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
    size_t keep = s3_apply_body_fault(r, n, &stop);
    r->body_bytes += keep;
    if (r->body.len + keep > MAX_REPLY_BYTES || s3_membuf_append(&r->body, data, keep) != 0)
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
int s3_prepare(struct s3_backend *b, const struct s3_request *rq, CURL *easy,
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
void s3_arm_faults(struct s3_response *r, const struct s3_request *rq, bool has_body_out, bool has_body_in)
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
int s3_attempt(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r)
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
    if ((rc = s3_prepare(b, rq, easy, &hdrs, payload_hash))) {
        easy_put(b, easy, true);
        return rc;
    }
    s3_arm_faults(r, rq, has_body && rq->body_len > 0, !rq->head);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s3_on_header);
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


/* Decide what one attempt means; for FAIL/RETRY *err and msg say why. */
enum verdict s3_judge(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
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

void s3_backoff(const struct s3_backend *b, unsigned attempt_no)
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
int s3_call(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
                char *errmsg, size_t errlen, bool quiet)
{
    char msg[512];
    int err = EIO;
    for (unsigned n = 0;; n++) {
        s3_response_reset(r);
        r->attempts = n + 1;
        int rc = s3_attempt(b, rq, r);
        if (rc) {
            snprintf(msg, sizeof msg, "cannot build the request for %s: %s", rq->what ? rq->what : "",
                     strerror(rc));
            err = rc;
            break;
        }
        enum verdict v = s3_judge(b, rq, r, &err, msg, sizeof msg);
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
        s3_backoff(b, n);
    }
    if (!quiet || (err != ENOENT && err != ECANCELED))
        log_error("fetch: S3 %s: %s", rq->method, msg);
    if (errmsg)
        snprintf(errmsg, errlen, "%s", msg);
    return err;
}

struct s3_backend *s3_of(fetch_backend *b)
{
    return (struct s3_backend *)b;
}

/* Full object key: backend prefix + key. */
int s3_full_key(const struct s3_backend *b, const char *key, char *out, size_t outlen)
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
        if ((rc = s3_call(b, &rq, &r, errmsg, errlen, false)))
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
    s3_response_free(&r);
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

int s3_head_object(struct s3_backend *b, const char *key, struct fetch_objinfo *oi, bool quiet)
{
    char fk[2048];
    struct s3_response r = { 0 };
    int rc = s3_full_key(b, key, fk, sizeof fk);
    if (rc)
        return rc;
    struct s3_request rq = { .method = "HEAD", .key = fk, .what = key, .head = true };
    rc = s3_call(b, &rq, &r, NULL, 0, quiet);
    if (!rc && oi)
        info_from_response(oi, key, &r);
    s3_response_free(&r);
    return rc;
}

static int s3_stat(fetch_backend *fb, const char *key, struct fetch_objinfo *oi)
{
    return s3_head_object(s3_of(fb), key, oi, true);
}

static int s3_del(fetch_backend *fb, const char *key)
{
    struct s3_backend *b = s3_of(fb);
    char fk[2048];
    struct s3_response r = { 0 };
    int rc = s3_head_object(b, key, NULL, true);   /* S3 deletes silently: say ENOENT */
    if (rc)
        return rc;
    if ((rc = s3_full_key(b, key, fk, sizeof fk)))
        return rc;
    struct s3_request rq = { .method = "DELETE", .key = fk, .what = key };
    rc = s3_call(b, &rq, &r, NULL, 0, false);
    s3_response_free(&r);
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
    rc = s3_call(b, &rq, &r, err, errlen, true);
    if (rc == EEXIST || rc == EPROTO || rc == EINVAL) {
        char code[64], msg[128];
        if (r.body.len && s3xml_parse_error(r.body.data, r.body.len, code, sizeof code, msg, sizeof msg) == 0 &&
            strcmp(code, "BucketAlreadyOwnedByYou") == 0)
            rc = 0;
    }
    if (rc)
        log_error("fetch: S3 cannot create bucket %s: %s", bucket, err);
    s3_response_free(&r);
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
    return s3_list_uploads_raw(s3_of(fb), s3_of(fb)->prefix, upload_entry, &ctx);
}

int fetch_s3_abort_upload(fetch_backend *fb, const char *key, const char *upload_id)
{
    if (!fb || fb->m != &s3_methods)
        return EINVAL;
    struct s3_backend *b = s3_of(fb);
    char fk[2048];
    int rc = s3_full_key(b, key, fk, sizeof fk);
    if (rc)
        return rc;
    struct sigv4_param p[] = { { "uploadId", upload_id } };
    struct s3_request rq = { .method = "DELETE", .key = fk, .what = key, .params = p, .nparams = 1 };
    struct s3_response r = { 0 };
    rc = s3_call(b, &rq, &r, NULL, 0, true);
    s3_response_free(&r);
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
