/* test_sigv4.c: Check tests of the SigV4 signer against AWS's published
 * vectors, of AWS URI/query encoding, and of the S3 XML reply parsers. */
#include "fetch/s3xml.h"
#include "fetch/sigv4.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- AWS Signature Version 4 test suite ----------------------------------
 * Source: the "Signature Version 4 Test Suite" of the AWS General Reference
 * (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html, the
 * aws-sig-v4-test-suite archive; the same cases are kept in
 * awslabs/aws-c-auth tests/aws-signing-test-suite/v4).  Credentials
 * AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region
 * us-east-1, service "service", time 20150830T123600Z. */

#define SUITE_DATE "20150830T123600Z"
static const struct sigv4_credentials suite_creds = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service",
};

struct vector {
    const char *name;
    const char *method;
    const char *path;                 /* raw, encoded by the test as S3 would */
    struct sigv4_param query[2];
    size_t nquery;
    struct sigv4_header headers[6];   /* besides host and x-amz-date */
    size_t nheaders;
    const char *body;
    const char *authorization;        /* as published */
};

#define H(n, v) { n, v }
#define P(n, v) { n, v }
static const struct vector suite[] = {
    { "get-vanilla", "GET", "/", {{0}}, 0, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
    { "get-vanilla-query-order-key-case", "GET", "/", { P("Param2", "value2"), P("Param1", "value1") }, 2,
      {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
    { "get-vanilla-query-order-value", "GET", "/", { P("Param1", "value2"), P("Param1", "value1") }, 2,
      {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },
    { "get-vanilla-query-unreserved", "GET", "/",
      { P("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
          "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") }, 1, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },
    { "get-vanilla-utf8-query", "GET", "/", { P("\xe1\x88\xb4", "bar") }, 1, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
    { "get-utf8", "GET", "/\xe1\x88\xb4", {{0}}, 0, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
    { "get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", {{0}}, 0,
      {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },
    { "get-space (normalize-path)", "GET", "/example space/", {{0}}, 0, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },
    { "get-header-value-trim", "GET", "/", {{0}}, 0,
      { H("My-Header1", " value1"), H("My-Header2", " \"a   b   c\"") }, 2, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
      "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
    { "get-header-key-duplicate", "GET", "/", {{0}}, 0,
      { H("My-Header1", "value2"), H("My-Header1", "value2"), H("My-Header1", "value1") }, 3, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
    { "get-header-value-order", "GET", "/", {{0}}, 0,
      { H("My-Header1", "value4"), H("My-Header1", "value1"), H("My-Header1", "value3"),
        H("My-Header1", "value2") }, 4, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" },
    { "get-vanilla-with-session-token", "GET", "/", {{0}}, 0,
      { H("X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267") }, 1, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date;x-amz-security-token, "
      "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8" },
    { "post-vanilla", "POST", "/", {{0}}, 0, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
    { "post-vanilla-query", "POST", "/", { P("Param1", "value1") }, 1, {{0}}, 0, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },
    { "post-header-key-sort", "POST", "/", {{0}}, 0, { H("My-Header1", "value1") }, 1, "",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },
    /* the 2015 archive's post-x-www-form-urlencoded: body hashed, content-type signed */
    { "post-x-www-form-urlencoded", "POST", "/", {{0}}, 0,
      { H("Content-Type", "application/x-www-form-urlencoded") }, 1, "Param1=value1",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=content-type;host;x-amz-date, "
      "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
    /* aws-c-auth's revision of it also signs content-length and x-amz-content-sha256 */
    { "post-x-www-form-urlencoded (aws-c-auth)", "POST", "/", {{0}}, 0,
      { H("Content-Type", "application/x-www-form-urlencoded"), H("Content-Length", "13"),
        H("X-Amz-Content-Sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e") }, 3,
      "Param1=value1",
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, "
      "Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b" },
};

static void sign_vector(const struct vector *v, const struct sigv4_credentials *c, const char *host,
                        const char *date, char *authz, size_t authzlen, char *creq, size_t creqlen,
                        char *sts, size_t stslen)
{
    char uri[512], query[1024], hash[65];
    struct sigv4_header h[8];
    size_t n = 0;
    ck_assert_int_ge(sigv4_uri_encode(v->path, strlen(v->path), false, uri, sizeof uri), 0);
    ck_assert_int_ge(sigv4_canonical_query(v->query, v->nquery, query, sizeof query), 0);
    sigv4_sha256_hex(v->body, strlen(v->body), hash);
    h[n++] = (struct sigv4_header){ "Host", host };
    h[n++] = (struct sigv4_header){ "X-Amz-Date", date };
    for (size_t i = 0; i < v->nheaders; i++)
        h[n++] = v->headers[i];
    struct sigv4_request r = { v->method, uri, query, h, n, hash };
    ck_assert_int_eq(sigv4_sign(&r, c, date, authz, authzlen, creq, creqlen, sts, stslen), 0);
}

START_TEST(signer_reproduces_the_aws_test_suite)
{
    const struct vector *v = &suite[_i];
    char authz[1024], creq[4096], sts[512];
    sign_vector(v, &suite_creds, "example.amazonaws.com", SUITE_DATE, authz, sizeof authz, creq, sizeof creq,
                sts, sizeof sts);
    if (strcmp(authz, v->authorization) != 0)
        ck_abort_msg("%s:\n got  %s\n want %s\ncanonical request:\n%s", v->name, authz, v->authorization, creq);
}
END_TEST

START_TEST(canonical_request_and_string_to_sign_match_get_vanilla)
{
    char authz[1024], creq[4096], sts[512];
    sign_vector(&suite[0], &suite_creds, "example.amazonaws.com", SUITE_DATE, authz, sizeof authz, creq,
                sizeof creq, sts, sizeof sts);
    ck_assert_str_eq(creq, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                           "host;x-amz-date\n" SIGV4_EMPTY_SHA256);
    ck_assert_str_eq(sts, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                          "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}
END_TEST

/* ---- the S3 examples --------------------------------------------------------
 * Source: Amazon S3 API Reference, "Signature Calculations for the
 * Authorization Header: Transferring Payload in a Single Chunk (AWS
 * Signature Version 4)" (docs.aws.amazon.com/AmazonS3/latest/API/
 * sig-v4-header-based-auth.html): GET Object, PUT Object, GET Bucket
 * Lifecycle, Get Bucket (List Objects).  Credentials AKIAIOSFODNN7EXAMPLE /
 * wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 20130524T000000Z, us-east-1. */

static const struct sigv4_credentials s3_creds = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3",
};

static void sign_s3(const char *method, const char *key, const struct sigv4_param *q, size_t nq,
                    const struct sigv4_header *extra, size_t nextra, const char *body,
                    char *authz, size_t authzlen, char *sts, size_t stslen)
{
    char uri[512], query[512], hash[65];
    struct sigv4_header h[8];
    size_t n = 0;
    uri[0] = '/';
    ck_assert_int_ge(sigv4_uri_encode(key, strlen(key), false, uri + 1, sizeof uri - 1), 0);
    ck_assert_int_ge(sigv4_canonical_query(q, nq, query, sizeof query), 0);
    sigv4_sha256_hex(body, strlen(body), hash);
    h[n++] = (struct sigv4_header){ "Host", "examplebucket.s3.amazonaws.com" };
    h[n++] = (struct sigv4_header){ "x-amz-date", "20130524T000000Z" };
    h[n++] = (struct sigv4_header){ "x-amz-content-sha256", hash };
    for (size_t i = 0; i < nextra; i++)
        h[n++] = extra[i];
    struct sigv4_request r = { method, uri, query, h, n, hash };
    ck_assert_int_eq(sigv4_sign(&r, &s3_creds, "20130524T000000Z", authz, authzlen, NULL, 0, sts, stslen), 0);
}

START_TEST(s3_get_object_example)
{
    char authz[1024], sts[512];
    struct sigv4_header range = { "Range", "bytes=0-9" };
    sign_s3("GET", "test.txt", NULL, 0, &range, 1, "", authz, sizeof authz, sts, sizeof sts);
    ck_assert_str_eq(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    ck_assert_str_eq(authz, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}
END_TEST

START_TEST(s3_put_object_example_with_a_reserved_character_in_the_key)
{
    char authz[1024], sts[512], hash[65];
    struct sigv4_header extra[] = { { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
                                    { "x-amz-storage-class", "REDUCED_REDUNDANCY" } };
    sigv4_sha256_hex("Welcome to Amazon S3.", 21, hash);
    ck_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    sign_s3("PUT", "test$file.text", NULL, 0, extra, 2, "Welcome to Amazon S3.", authz, sizeof authz, sts,
            sizeof sts);
    ck_assert_ptr_nonnull(strstr(authz, "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
                                        "x-amz-storage-class, "));
    ck_assert_ptr_nonnull(strstr(authz, "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
}
END_TEST

START_TEST(s3_bucket_lifecycle_and_list_examples)
{
    char authz[1024], sts[512];
    struct sigv4_param lifecycle[] = { { "lifecycle", "" } };
    sign_s3("GET", "", lifecycle, 1, NULL, 0, "", authz, sizeof authz, sts, sizeof sts);
    ck_assert_ptr_nonnull(strstr(authz, "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
    struct sigv4_param list[] = { { "prefix", "J" }, { "max-keys", "2" } };   /* unsorted on purpose */
    sign_s3("GET", "", list, 2, NULL, 0, "", authz, sizeof authz, sts, sizeof sts);
    ck_assert_ptr_nonnull(strstr(authz, "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
}
END_TEST

START_TEST(a_different_secret_gives_a_different_signature)
{
    char a[1024], b[1024], sts[512];
    struct sigv4_credentials other = s3_creds;
    sign_s3("GET", "k", NULL, 0, NULL, 0, "", a, sizeof a, sts, sizeof sts);
    other.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ";
    char uri[] = "/k", hash[65];
    sigv4_sha256_hex("", 0, hash);
    struct sigv4_header h[] = { { "host", "examplebucket.s3.amazonaws.com" }, { "x-amz-date", "20130524T000000Z" },
                                { "x-amz-content-sha256", hash } };
    struct sigv4_request r = { "GET", uri, "", h, 3, hash };
    ck_assert_int_eq(sigv4_sign(&r, &other, "20130524T000000Z", b, sizeof b, NULL, 0, NULL, 0), 0);
    ck_assert_str_ne(a, b);
    ck_assert_ptr_null(strstr(b, "EXAMPLEKEZ"));    /* the secret never shows */
}
END_TEST

/* ---- encoding --------------------------------------------------------------- */

static const char *enc(const char *s, bool slash)
{
    static char out[512];
    ck_assert_int_ge(sigv4_uri_encode(s, strlen(s), slash, out, sizeof out), 0);
    return out;
}

START_TEST(object_keys_are_encoded_the_aws_way)
{
    ck_assert_str_eq(enc("run 1.tar", false), "run%201.tar");
    ck_assert_str_eq(enc("a+b=c(d).tar", false), "a%2Bb%3Dc%28d%29.tar");
    ck_assert_str_eq(enc("2024/run1.tar", false), "2024/run1.tar");
    ck_assert_str_eq(enc("2024/run1.tar", true), "2024%2Frun1.tar");
    ck_assert_str_eq(enc("caf\xc3\xa9~_-.", false), "caf%C3%A9~_-.");
    ck_assert_str_eq(enc("100%!*'$&,;:@", false), "100%25%21%2A%27%24%26%2C%3B%3A%40");
    char small[4];
    ck_assert_int_eq(sigv4_uri_encode("a b", 3, false, small, sizeof small), -1);
}
END_TEST

START_TEST(query_is_sorted_encoded_and_valueless_names_get_equals)
{
    char q[512];
    struct sigv4_param p[] = { { "uploads", "" }, { "prefix", "dir/" }, { "list-type", "2" },
                               { "continuation-token", "run 1+2=3.tar" } };
    ck_assert_int_ge(sigv4_canonical_query(p, 4, q, sizeof q), 0);
    ck_assert_str_eq(q, "continuation-token=run%201%2B2%3D3.tar&list-type=2&prefix=dir%2F&uploads=");
    ck_assert_int_eq(sigv4_canonical_query(NULL, 0, q, sizeof q), 0);
    ck_assert_str_eq(q, "");
    ck_assert_int_eq(sigv4_canonical_query(p, 4, q, 10), -1);
}
END_TEST

START_TEST(amz_date_is_utc_basic_format)
{
    char d[17];
    sigv4_amz_date(1440938160, d);
    ck_assert_str_eq(d, "20150830T123600Z");
}
END_TEST

/* ---- XML replies --------------------------------------------------------------- */

static const char list_reply[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>"
    "<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>p/run 2+x.tar</NextContinuationToken>"
    "<Contents><Key>p/run 2+x.tar</Key><LastModified>2024-10-23T08:09:10.250Z</LastModified>"
    "<ETag>&quot;0123abc&quot;</ETag><Size>12345</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>p/caf\xc3\xa9 &amp; co.tar</Key><LastModified>2024-10-23T08:09:10.000Z</LastModified>"
    "<ETag>\"9f-2\"</ETag><Size>7</Size></Contents>"
    "<CommonPrefixes><Prefix>p/2024/</Prefix></CommonPrefixes>"
    "</ListBucketResult>";

START_TEST(list_reply_is_parsed_sorted_and_unprefixed)
{
    struct s3_list_page page = { 0 };
    ck_assert_int_eq(s3xml_parse_list(list_reply, sizeof list_reply - 1, "p/", &page), 0);
    ck_assert(page.truncated);
    ck_assert_str_eq(page.next_token, "p/run 2+x.tar");
    ck_assert_uint_eq(page.n, 3);
    ck_assert_str_eq(page.items[0].key, "2024/");
    ck_assert(page.items[0].is_prefix);
    ck_assert_str_eq(page.items[1].key, "caf\xc3\xa9 & co.tar");
    ck_assert_str_eq(page.items[1].version, "9f-2");
    ck_assert_uint_eq(page.items[1].size, 7);
    ck_assert_str_eq(page.items[2].key, "run 2+x.tar");
    ck_assert_str_eq(page.items[2].version, "0123abc");
    ck_assert_uint_eq(page.items[2].size, 12345);
    ck_assert_int_eq(page.items[2].mtime.tv_sec, 1729670950);
    ck_assert_int_eq(page.items[2].mtime.tv_nsec, 250000000);
    s3xml_list_page_free(&page);
}
END_TEST

START_TEST(bad_list_replies_are_protocol_errors)
{
    struct s3_list_page page = { 0 };
    const char *not_xml = "<html>oops";
    const char *truncated_without_token = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
    ck_assert_int_eq(s3xml_parse_list(not_xml, strlen(not_xml), "", &page), EPROTO);
    ck_assert_int_eq(s3xml_parse_list(truncated_without_token, strlen(truncated_without_token), "", &page), EPROTO);
    ck_assert_int_eq(s3xml_parse_list("", 0, "", &page), EPROTO);
    s3xml_list_page_free(&page);
}
END_TEST

START_TEST(error_replies_give_code_and_message)
{
    char code[64], msg[128];
    const char *rgw = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>"
                      "<Message></Message><BucketName>b</BucketName><RequestId>tx1</RequestId></Error>";
    const char *aws = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
    ck_assert_int_eq(s3xml_parse_error(rgw, strlen(rgw), code, sizeof code, msg, sizeof msg), 0);
    ck_assert_str_eq(code, "SignatureDoesNotMatch");
    ck_assert_str_eq(msg, "");
    ck_assert_int_eq(s3xml_parse_error(aws, strlen(aws), code, sizeof code, msg, sizeof msg), 0);
    ck_assert_str_eq(code, "NoSuchBucket");
    ck_assert_str_eq(msg, "The specified bucket does not exist");
    ck_assert_int_eq(s3xml_parse_error(list_reply, sizeof list_reply - 1, code, sizeof code, msg, sizeof msg),
                     EPROTO);
}
END_TEST

static int count_upload(void *arg, const char *key, const char *id, const struct timespec *initiated)
{
    ck_assert_int_eq(initiated->tv_sec, *(int *)arg ? 0 : 1729670950);
    int *n = arg;
    ck_assert_str_eq(key, *n ? "b.tar" : "a b.tar");
    ck_assert_str_eq(id, *n ? "id2" : "id1");
    ++*n;
    return 0;
}

START_TEST(multipart_replies_are_parsed)
{
    char id[128], nk[64], nu[64];
    bool truncated;
    int n = 0;
    const char *init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                       "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>";
    const char *uploads = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                          "<NextKeyMarker>b.tar</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>"
                          "<Upload><Key>a b.tar</Key><UploadId>id1</UploadId>"
                          "<Initiated>2024-10-23T08:09:10.000Z</Initiated></Upload>"
                          "<Upload><Key>b.tar</Key><UploadId>id2</UploadId></Upload>"
                          "</ListMultipartUploadsResult>";
    ck_assert_int_eq(s3xml_find_text(init, strlen(init), "UploadId", id, sizeof id), 0);
    ck_assert_str_eq(id, "2~abc");
    ck_assert_int_eq(s3xml_find_text(init, strlen(init), "Missing", id, sizeof id), ENOENT);
    ck_assert_int_eq(s3xml_parse_uploads(uploads, strlen(uploads), count_upload, &n, &truncated, nk, sizeof nk,
                                         nu, sizeof nu), 0);
    ck_assert_int_eq(n, 2);
    ck_assert(truncated);
    ck_assert_str_eq(nk, "b.tar");
    ck_assert_str_eq(nu, "id2");
}
END_TEST

START_TEST(http_and_iso_dates_parse)
{
    struct timespec ts;
    ck_assert_int_eq(s3xml_parse_time("Wed, 23 Oct 2024 08:09:10 GMT", &ts), 0);
    ck_assert_int_eq(ts.tv_sec, 1729670950);
    ck_assert_int_eq(s3xml_parse_time("2024-10-23T08:09:10Z", &ts), 0);
    ck_assert_int_eq(ts.tv_sec, 1729670950);
    ck_assert_int_eq(s3xml_parse_time("yesterday", &ts), EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fetch-sigv4");
    TCase *tc = tcase_create("sigv4");
    tcase_add_loop_test(tc, signer_reproduces_the_aws_test_suite, 0, (int)(sizeof suite / sizeof suite[0]));
    tcase_add_test(tc, canonical_request_and_string_to_sign_match_get_vanilla);
    tcase_add_test(tc, s3_get_object_example);
    tcase_add_test(tc, s3_put_object_example_with_a_reserved_character_in_the_key);
    tcase_add_test(tc, s3_bucket_lifecycle_and_list_examples);
    tcase_add_test(tc, a_different_secret_gives_a_different_signature);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("encoding");
    tcase_add_test(te, object_keys_are_encoded_the_aws_way);
    tcase_add_test(te, query_is_sorted_encoded_and_valueless_names_get_equals);
    tcase_add_test(te, amz_date_is_utc_basic_format);
    suite_add_tcase(s, te);
    TCase *tx = tcase_create("xml");
    tcase_add_test(tx, list_reply_is_parsed_sorted_and_unprefixed);
    tcase_add_test(tx, bad_list_replies_are_protocol_errors);
    tcase_add_test(tx, error_replies_give_code_and_message);
    tcase_add_test(tx, multipart_replies_are_parsed);
    tcase_add_test(tx, http_and_iso_dates_parse);
    suite_add_tcase(s, tx);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
