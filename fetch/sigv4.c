/* sigv4.c: AWS Signature Version 4 signing of HTTP requests (canonical
 * request, string to sign, HMAC-SHA256 key chain) and AWS URI encoding. */
#include "fetch/sigv4.h"
#include "fetch/fetch_impl.h"
#include "util/hex.h"

#include <errno.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(const char *s, size_t n, bool encode_slash, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c == '/' && !encode_slash)) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= outlen)
                return -1;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= outlen)
        return -1;
    out[o] = '\0';
    return (int)o;
}

struct encoded_param {
    char *name, *value;
};

static int compare_params(const void *a, const void *b)
{
    const struct encoded_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s)
{
    size_t cap = strlen(s) * 3 + 1;
    char *out = malloc(cap);
    if (out)
        sigv4_uri_encode(s, strlen(s), true, out, cap);
    return out;
}

int sigv4_canonical_query(const struct sigv4_param *params, size_t n, char *out, size_t outlen)
{
    struct encoded_param *ep = calloc(n ? n : 1, sizeof *ep);
    int len = -1;
    size_t o = 0;

    if (!ep)
        return -1;
    for (size_t i = 0; i < n; i++) {
        ep[i].name = encode_dup(params[i].name);
        ep[i].value = encode_dup(params[i].value ? params[i].value : "");
        if (!ep[i].name || !ep[i].value)
            goto out;
    }
    /* Sorted by the encoded bytes, as AWS specifies. */
    qsort(ep, n, sizeof *ep, compare_params);
    if (outlen == 0)
        goto out;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + o, outlen - o, "%s%s=%s", i ? "&" : "", ep[i].name, ep[i].value);
        if (w < 0 || (size_t)w >= outlen - o)
            goto out;
        o += (size_t)w;
    }
    len = (int)o;
out:
    for (size_t i = 0; i < n; i++) {
        free(ep[i].name);
        free(ep[i].value);
    }
    free(ep);
    return len;
}

void sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

void sigv4_sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data, n, d);
    hex_encode(d, sizeof d, out);
}

static void hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &outlen);
}

struct canon_header {
    char *name;            /* lowercase */
    const char *value;
    size_t order;          /* keeps duplicate names in request order */
};

static int compare_headers(const void *a, const void *b)
{
    const struct canon_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Append value trimmed, with runs of spaces collapsed to one. */
static int append_trimmed(char *out, size_t outlen, size_t *o, const char *v)
{
    bool pending_space = false;
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            pending_space = true;
            continue;
        }
        if (pending_space) {
            if (*o + 1 >= outlen)
                return ENOSPC;
            out[(*o)++] = ' ';
            pending_space = false;
        }
        if (*o + 1 >= outlen)
            return ENOSPC;
        out[(*o)++] = *v;
    }
    out[*o] = '\0';
    return 0;
}

static int appendf(char *out, size_t outlen, size_t *o, const char *fmt, const char *a)
{
    int w = snprintf(out + *o, outlen - *o, fmt, a);
    if (w < 0 || (size_t)w >= outlen - *o)
        return ENOSPC;
    *o += (size_t)w;
    return 0;
}

int sigv4_sign(const struct sigv4_request *r, const struct sigv4_credentials *c,
               const char *amz_date, char *authz, size_t authzlen,
               char *canonical, size_t canonicallen, char *to_sign, size_t to_signlen)
{
    struct canon_header *h = calloc(r->nheaders ? r->nheaders : 1, sizeof *h);
    size_t creq_cap = 16384, o = 0, so = 0;
    char *creq = malloc(creq_cap);
    char signed_headers[2048], sts[512], scope[256], date[9], creq_hash[65];
    unsigned char k[32];
    char sig_hex[65];
    int rc = ENOMEM;

    if (!h || !creq)
        goto out;
    if (!amz_date || strlen(amz_date) != 16) {
        rc = EINVAL;
        goto out;
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        h[i].name = strdup(r->headers[i].name);
        if (!h[i].name)
            goto out;
        for (char *p = h[i].name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        h[i].value = r->headers[i].value;
        h[i].order = i;
    }
    qsort(h, r->nheaders, sizeof *h, compare_headers);

    rc = ENOSPC;
    signed_headers[0] = '\0';
    if (appendf(creq, creq_cap, &o, "%s\n", r->method) ||
        appendf(creq, creq_cap, &o, "%s\n", r->canonical_uri) ||
        appendf(creq, creq_cap, &o, "%s\n", r->canonical_query ? r->canonical_query : ""))
        goto out;
    for (size_t i = 0; i < r->nheaders; i++) {
        bool continues = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (continues) {
            /* duplicate header: values joined by ',' in request order */
            o--;               /* drop the '\n' of the previous value */
            if (appendf(creq, creq_cap, &o, "%s", ","))
                goto out;
        } else {
            if (appendf(creq, creq_cap, &o, "%s:", h[i].name))
                goto out;
            if (appendf(signed_headers, sizeof signed_headers, &so, so ? ";%s" : "%s", h[i].name))
                goto out;
        }
        if (append_trimmed(creq, creq_cap, &o, h[i].value) || appendf(creq, creq_cap, &o, "%s", "\n"))
            goto out;
    }
    if (appendf(creq, creq_cap, &o, "\n%s\n", signed_headers) ||
        appendf(creq, creq_cap, &o, "%s", r->payload_hash))
        goto out;

    memcpy(date, amz_date, 8);
    date[8] = '\0';
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, c->region, c->service);
    sigv4_sha256_hex(creq, o, creq_hash);
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, creq_hash);

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    {
        size_t slen = strlen(c->secret_key);
        char *kseed = malloc(slen + 5);
        if (!kseed) {
            rc = ENOMEM;
            goto out;
        }
        memcpy(kseed, "AWS4", 4);
        memcpy(kseed + 4, c->secret_key, slen + 1);
        hmac(kseed, slen + 4, date, k);
        OPENSSL_cleanse(kseed, slen + 4);
        free(kseed);
        hmac(k, 32, c->region, k);
        hmac(k, 32, c->service, k);
        hmac(k, 32, "aws4_request", k);
        hmac(k, 32, sts, k);
        hex_encode(k, 32, sig_hex);
        OPENSSL_cleanse(k, sizeof k);
    }
    int w = snprintf(authz, authzlen,
                     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                     c->access_key, scope, signed_headers, sig_hex);
    if (w < 0 || (size_t)w >= authzlen)
        goto out;
    if (canonical && snprintf(canonical, canonicallen, "%s", creq) >= (int)canonicallen)
        goto out;
    if (to_sign && snprintf(to_sign, to_signlen, "%s", sts) >= (int)to_signlen)
        goto out;
    rc = 0;
out:
    if (h)
        for (size_t i = 0; i < r->nheaders; i++)
            free(h[i].name);
    free(h);
    free(creq);
    return rc;
}
