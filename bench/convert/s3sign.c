/* s3sign.c: prints the SigV4 headers (UNSIGNED-PAYLOAD) for one S3 request, so the convert benchmark can stream `tar | curl -T -` to RGW with curl 7.88. */
#include "fetch/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Usage: s3sign METHOD ENDPOINT BUCKET KEY, credentials from AWS_* variables.
 * Prints the URL, then one "Name: value" header per line for curl -H.
 * Content-Length stays unsigned, so curl can send a known length from a
 * pipe (RGW refuses chunked PUTs). */
int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: s3sign METHOD ENDPOINT BUCKET KEY\n");
        return 2;
    }
    const char *method = argv[1], *endpoint = argv[2], *bucket = argv[3], *key = argv[4];
    const char *ak = getenv("AWS_ACCESS_KEY_ID"), *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *region = getenv("AWS_REGION");
    if (!ak || !sk) {
        fprintf(stderr, "s3sign: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set\n");
        return 2;
    }
    const char *host = strstr(endpoint, "://");
    host = host ? host + 3 : endpoint;
    char path[2048], enc[6144], date[17], authz[1024];
    snprintf(path, sizeof path, "/%s/%s", bucket, key);
    if (sigv4_uri_encode(path, strlen(path), false, enc, sizeof enc) < 0) {
        fprintf(stderr, "s3sign: key too long\n");
        return 2;
    }
    sigv4_amz_date(time(NULL), date);
    struct sigv4_header h[] = {
        { "host", host },
        { "x-amz-content-sha256", SIGV4_UNSIGNED_PAYLOAD },
        { "x-amz-date", date },
    };
    struct sigv4_request r = {
        .method = method, .canonical_uri = enc, .canonical_query = "",
        .headers = h, .nheaders = 3, .payload_hash = SIGV4_UNSIGNED_PAYLOAD,
    };
    struct sigv4_credentials c = {
        .access_key = ak, .secret_key = sk,
        .region = region && *region ? region : "us-east-1", .service = "s3",
    };
    if (sigv4_sign(&r, &c, date, authz, sizeof authz, NULL, 0, NULL, 0) != 0) {
        fprintf(stderr, "s3sign: signing failed\n");
        return 1;
    }
    printf("%s%s\n", endpoint, enc);
    printf("x-amz-content-sha256: %s\nx-amz-date: %s\nAuthorization: %s\n",
           SIGV4_UNSIGNED_PAYLOAD, date, authz);
    return 0;
}
