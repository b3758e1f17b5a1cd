/* s3_put.c: the S3 backend's uploads: conditions, single PUT and multipart upload (parts in flight on threads, never an upload left behind), the stored SHA-256, and listing or aborting uploads. */
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
    int rc = s3_head_object(b, key, &cur, true);
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
int s3_list_uploads_raw(struct s3_backend *b, const char *prefix, s3xml_upload_cb cb, void *arg)
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
        if ((rc = s3_call(b, &rq, &r, NULL, 0, false)))
            break;
        rc = s3xml_parse_uploads(r.body.data, r.body.len, cb, arg, &truncated, key_marker,
                                 sizeof key_marker, id_marker, sizeof id_marker);
        if (rc || !truncated || !key_marker[0])
            break;
    }
    s3_response_free(&r);
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
    int rc = s3_call(b, &rq, &r, NULL, 0, false);
    s3_response_free(&r);
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
    int rc = s3_call(b, &rq, &r, NULL, 0, false);
    if (!rc && r.body.len) {
        char code[64], msg[128];
        if (s3xml_parse_error(r.body.data, r.body.len, code, sizeof code, msg, sizeof msg) == 0) {
            log_error("fetch: S3 storing the SHA-256 of %s failed: %s", key, code);
            rc = EIO;
        }
    }
    s3_response_free(&r);
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
    int rc = s3_call(b, &rq, &r, NULL, 0, true);
    if (rc == ECANCELED && r.attempts > 1) {
        /* A retried conditional PUT fails its condition if the first try
         * did land: the object then has our body's MD5 as its ETag. */
        unsigned char md5[16];
        char md5hex[33];
        struct fetch_objinfo cur;
        unsigned int mdlen = 16;
        EVP_Digest(body, len, md5, &mdlen, EVP_md5(), NULL);
        hex_encode(md5, 16, md5hex);
        if (s3_head_object(b, key, &cur, true) == 0 && strcmp(cur.version, md5hex) == 0)
            rc = 0;
    }
    s3_response_free(&r);
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
    p->rc = s3_call(p->b, &rq, &r, NULL, 0, false);
    if (!p->rc && !r.etag[0]) {
        log_error("fetch: S3 part %u of %s: no ETag in the reply", p->partno, p->key);
        p->rc = EPROTO;
    }
    snprintf(p->etag, sizeof p->etag, "%s", r.etag);
    s3_response_free(&r);
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

int s3_upload_begin(fetch_backend *fb, const char *key, const struct fetch_put_opts *o,
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
    if (!(u->key = strdup(key)) || (rc = s3_full_key(b, key, u->fk, sizeof u->fk))) {
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
    int rc = s3_call(u->b, &rq, &r, NULL, 0, false);
    u->orphans_possible = r.attempts > 1;
    if (!rc && (s3xml_find_text(r.body.data, r.body.len, "UploadId", u->upload_id,
                                sizeof u->upload_id) != 0 || !u->upload_id[0])) {
        log_error("fetch: S3 multipart upload of %s: no UploadId in the reply", u->key);
        u->upload_id[0] = '\0';
        rc = EPROTO;
    }
    s3_response_free(&r);
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

int s3_upload_write(fetch_upload *fu, const void *data, size_t len)
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
    s3_membuf_append(&xml, "<CompleteMultipartUpload>", 25);
    for (size_t i = 0; i < u->parts.n && !rc; i++) {
        char item[300];
        int w = snprintf(item, sizeof item, "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>",
                         i + 1, u->parts.etags[i]);
        rc = s3_membuf_append(&xml, item, (size_t)w);
    }
    if (!rc)
        rc = s3_membuf_append(&xml, "</CompleteMultipartUpload>", 26);
    if (rc)
        goto out;
    struct sigv4_param p[] = { { "uploadId", u->upload_id } };
    struct s3_request rq = { .method = "POST", .key = u->fk, .what = u->key, .params = p, .nparams = 1,
                             .body = xml.data, .body_len = xml.len };
    rq.extra[rq.nextra++] = (struct sigv4_header){ "content-type", "application/xml" };
    add_conditions(&rq, u->o);
    rc = s3_call(u->b, &rq, &r, NULL, 0, true);
    if ((rc == ENOENT || rc == ECANCELED) && r.attempts > 1) {
        /* The first Complete may have landed and its reply got lost:
         * then the object carries exactly our parts' ETag. */
        char expect[64];
        struct fetch_objinfo cur;
        multipart_etag(&u->parts, expect, sizeof expect);
        if (s3_head_object(u->b, u->key, &cur, true) == 0 && strcmp(cur.version, expect) == 0) {
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
    s3_response_free(&r);
    return rc;
}

static void s3_upload_free(struct s3_upload *u)
{
    finish_all(u);
    if (u->upload_id[0])
        abort_upload(u->b, u->fk, u->key, u->upload_id);
    if (u->orphans_possible) {
        struct orphan_ctx oc = { u->b, u->fk, u->key, u->upload_id, u->began };
        s3_list_uploads_raw(u->b, u->fk, abort_orphan, &oc);
    }
    for (unsigned i = 0; i < u->threads; i++)
        free(u->slot[i].buf);
    free(u->parts.etags);
    free(u->key);
    free(u);
}

void s3_upload_abort(fetch_upload *fu)
{
    s3_upload_free(s3_upload_of(fu));
}

int s3_upload_commit(fetch_upload *fu, const char *hex, struct fetch_objinfo *oi)
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
    if ((rc = s3_head_object(u->b, u->key, &cur, false)))
        goto out;
    if (!u->meta_done) {
        if (set_sha256_metadata(u->b, u->fk, u->key, cur.version, hex) == 0)
            s3_head_object(u->b, u->key, &cur, false);
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

