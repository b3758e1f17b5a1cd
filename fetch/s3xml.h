/* s3xml.h: parsing of the S3 XML replies fetch/ needs, with libxml2.
 * Internal to fetch/, exposed for the unit tests. */
#ifndef TARNFS_S3XML_H
#define TARNFS_S3XML_H

#include "fetch/fetch.h"

struct s3_list_page {
    struct fetch_objinfo *items;   /* objects and common prefixes, sorted */
    size_t n, cap;
    bool truncated;
    char next_token[2048];         /* NextContinuationToken, "" if none */
};

/* Parse a ListObjectsV2 reply; keys and prefixes that start with
 * strip_prefix have it removed (the backend's own prefix).  ETags are
 * stored unquoted in version.  Errors: EPROTO (not a list reply),
 * ENAMETOOLONG (a token longer than we keep), ENOMEM. */
int s3xml_parse_list(const char *xml, size_t len, const char *strip_prefix,
                     struct s3_list_page *page);
void s3xml_list_page_free(struct s3_list_page *page);

/* Parse an <Error> reply: Code and Message (either may be left "").
 * Returns 0 if the document is an Error, EPROTO otherwise. */
int s3xml_parse_error(const char *xml, size_t len, char *code, size_t codelen,
                      char *msg, size_t msglen);

/* Text of the first element named name (any depth) into out.
 * Errors: ENOENT (no such element), EPROTO (not XML), ENAMETOOLONG. */
int s3xml_find_text(const char *xml, size_t len, const char *name, char *out, size_t outlen);

/* One entry of ListMultipartUploads. */
typedef int (*s3xml_upload_cb)(void *arg, const char *key, const char *upload_id,
                               const struct timespec *initiated);
/* Parse a ListMultipartUploads reply, calling cb per upload; *truncated,
 * next_key and next_upload (the markers for the next page) are filled.
 * Errors: EPROTO, or cb's nonzero return. */
int s3xml_parse_uploads(const char *xml, size_t len, s3xml_upload_cb cb, void *arg,
                        bool *truncated, char *next_key, size_t next_keylen,
                        char *next_upload, size_t next_uploadlen);

/* Parse an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT") or an ISO 8601 one
 * ("2009-10-12T17:50:30.000Z") into *ts.  Errors: EINVAL. */
int s3xml_parse_time(const char *s, struct timespec *ts);

/* Copy s without surrounding double quotes into out. */
void s3xml_unquote(const char *s, char *out, size_t outlen);

#endif
