/* s3_get.c: the S3 backend's GET stream: a curl multi transfer pulled by fetch_read, paused when its buffer is full, with retries that resume where the bytes stopped. */
#include "fetch/s3_internal.h"
#include "fetch/fetch_s3.h"
#include "util/log.h"
#include "util/hex.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* As in s3.c: names are length-checked where they enter. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

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
            s3_membuf_append(&s->r.body, data, n);
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
    size_t keep = s3_apply_body_fault(&s->r, n, &stop);
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

    s3_response_reset(&s->r);
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
    int rc = s3_prepare(s->b, &rq, s->easy, &s->hdrs, SIGV4_EMPTY_SHA256);
    if (rc) {
        stream_end_transfer(s);
        return rc;
    }
    s3_arm_faults(&s->r, &rq, false, true);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, s3_on_header);
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
    enum verdict v = s3_judge(s->b, &rq, &s->r, &err, msg, sizeof msg);
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
    s3_backoff(s->b, s->failures - 1);
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
    s3_response_free(&s->r);
    free(s->buf);
    free(s);
}

static const struct fetch_stream_methods s3_stream_methods = {
    .read = s3_stream_read,
    .close = s3_stream_close,
};

int s3_open(fetch_backend *fb, const char *key, uint64_t off, uint64_t len, fetch_stream **out)
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
    if ((rc = s3_full_key(b, key, s->fk, sizeof s->fk)))
        goto fail;
    /* Run until the first bytes (or the end): a missing object or a refused
     * key is reported by open, not by the first read. */
    rc = stream_fill(s);
    if (rc == EINVAL && off > 0) {
        /* 416: a range starting at the very end of the object is empty. */
        struct fetch_objinfo oi;
        if (s3_head_object(b, key, &oi, true) == 0 && oi.size == off) {
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

