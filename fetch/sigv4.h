/* sigv4.h: AWS Signature Version 4 (header form) over OpenSSL, and the AWS
 * URI encoding it needs.  Internal to fetch/, exposed for the unit tests. */
#ifndef TARNFS_SIGV4_H
#define TARNFS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

struct sigv4_header {
    const char *name;              /* any case; signed in lowercase */
    const char *value;             /* trimmed, inner spaces collapsed */
};

struct sigv4_param {
    const char *name, *value;      /* raw (unencoded); value "" if none */
};

struct sigv4_request {
    const char *method;
    const char *canonical_uri;     /* already AWS-encoded path, e.g. "/b/a%20b" */
    const char *canonical_query;   /* from sigv4_canonical_query, "" if none */
    const struct sigv4_header *headers;   /* every header to sign, host and */
    size_t nheaders;                      /* x-amz-date included */
    const char *payload_hash;      /* hex SHA-256 or UNSIGNED-PAYLOAD */
};

struct sigv4_credentials {
    const char *access_key, *secret_key;
    const char *region, *service;  /* e.g. "us-east-1", "s3" */
};

/* AWS URI-encode n bytes of s into out (NUL-terminated): unreserved bytes
 * (A-Z a-z 0-9 - . _ ~) stay, '/' stays unless encode_slash, all else is
 * %XX uppercase.  Returns the length, or -1 if outlen is too small. */
int sigv4_uri_encode(const char *s, size_t n, bool encode_slash, char *out, size_t outlen);

/* Build the canonical query string (each name and value encoded, sorted by
 * name then value, "name=value" joined by '&') into out; it is also what
 * the request must send.  Returns the length, or -1 if it does not fit. */
int sigv4_canonical_query(const struct sigv4_param *params, size_t n, char *out, size_t outlen);

/* Format t as the x-amz-date "YYYYMMDDTHHMMSSZ" (17 bytes with NUL). */
void sigv4_amz_date(time_t t, char out[17]);

/* Sign r at amz_date: writes the Authorization header value into authz and,
 * when not NULL, the canonical request and string to sign (for tests and
 * debugging).  Returns 0, or ENOSPC if a buffer is too small, EINVAL. */
int sigv4_sign(const struct sigv4_request *r, const struct sigv4_credentials *c,
               const char *amz_date, char *authz, size_t authzlen,
               char *canonical, size_t canonicallen, char *to_sign, size_t to_signlen);

/* Hex SHA-256 of n bytes (65 bytes with NUL). */
void sigv4_sha256_hex(const void *data, size_t n, char out[65]);

#endif
