/* s3_internal.h: what the S3 backend's files share (s3.c: configuration,
 * requests, retries, list/stat/delete, open; s3_get.c: the GET stream;
 * s3_put.c: single and multipart PUT) and nobody else may use. */
#ifndef TARNFS_FETCH_S3_INTERNAL_H
#define TARNFS_FETCH_S3_INTERNAL_H

#include "fetch/fetch_impl.h"
#include "fetch/s3xml.h"
#include "fetch/sigv4.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

struct membuf {
    char *data;
    size_t len, cap;
};

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
    unsigned attempts;              /* set by s3_call(): how many were made */
    /* injected faults of this attempt */
    bool fault_500, fault_reset, fault_truncate, fault_fired;
    CURL *easy;
};

enum verdict { DONE, RETRY, FAIL };

/* ---- s3.c ---- */
/* The S3 backend of fetch backend b. */
struct s3_backend *s3_of(fetch_backend *b);
/* The object key of key under the backend's prefix into out.  Errors:
 * ENAMETOOLONG. */
int s3_full_key(const struct s3_backend *b, const char *key, char *out, size_t outlen);
/* Append n bytes to m (kept NUL-terminated).  Errors: ENOMEM. */
int s3_membuf_append(struct membuf *m, const void *p, size_t n);
/* Clear r for another attempt (its body buffer kept for reuse). */
void s3_response_reset(struct s3_response *r);
/* Free what r holds. */
void s3_response_free(struct s3_response *r);
/* curl's header callback: fills the s3_response arg's status fields. */
size_t s3_on_header(char *line, size_t size, size_t nitems, void *arg);
/* Apply an injected body fault to n received bytes of r: the bytes to
 * keep; *abort_transfer set when the transfer is to fail now. */
size_t s3_apply_body_fault(struct s3_response *r, size_t n, bool *abort_transfer);
/* Arm the test fault hook's faults for one attempt of rq. */
void s3_arm_faults(struct s3_response *r, const struct s3_request *rq, bool has_body_out,
                   bool has_body_in);
/* Set up easy for rq: URL, signed headers (into *hdrs, freed by the
 * caller), body.  Errors: ENAMETOOLONG, ENOMEM, EIO. */
int s3_prepare(struct s3_backend *b, const struct s3_request *rq, CURL *easy,
               struct curl_slist **hdrs, const char *payload_hash);
/* One HTTP attempt of rq into r.  Returns 0 or an errno (no HTTP status). */
int s3_attempt(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r);
/* What one attempt means; for FAIL and RETRY, *err and msg say why. */
enum verdict s3_judge(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
                      int *err, char *msg, size_t msglen);
/* Sleep before retry attempt_no (exponential, capped, jittered). */
void s3_backoff(const struct s3_backend *b, unsigned attempt_no);
/* rq with retries into r: 0, or an errno with errmsg (logged unless quiet). */
int s3_call(struct s3_backend *b, const struct s3_request *rq, struct s3_response *r,
            char *errmsg, size_t errlen, bool quiet);
/* HEAD key into *oi.  Errors: ENOENT, EACCES, EIO (logged unless quiet). */
int s3_head_object(struct s3_backend *b, const char *key, struct fetch_objinfo *oi, bool quiet);

/* ---- s3_get.c ---- */
/* fetch's open: a pull-driven GET stream of key from off, len bytes (0: to
 * the end).  Errors: ENOENT, EACCES, EIO, ENOMEM. */
int s3_open(fetch_backend *fb, const char *key, uint64_t off, uint64_t len, fetch_stream **out);

/* ---- s3_put.c ---- */
/* The multipart uploads under prefix, each to cb (ListMultipartUploads,
 * all pages).  Errors: cb's, EACCES, EIO. */
int s3_list_uploads_raw(struct s3_backend *b, const char *prefix, s3xml_upload_cb cb, void *arg);
/* fetch's upload_begin, upload_write, upload_commit and upload_abort for S3
 * (single PUT or multipart, fetch_impl.h). */
int s3_upload_begin(fetch_backend *fb, const char *key, const struct fetch_put_opts *o,
                    fetch_upload **out);
int s3_upload_write(fetch_upload *fu, const void *data, size_t len);
int s3_upload_commit(fetch_upload *fu, const char *hex, struct fetch_objinfo *oi);
void s3_upload_abort(fetch_upload *fu);

#endif
