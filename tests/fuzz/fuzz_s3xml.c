/* fuzz_s3xml.c: libFuzzer target: every S3 XML reply parser fetch/ uses
 * (fetch/s3xml.h: ListObjectsV2, Error, the text of one element as in
 * InitiateMultipartUpload, ListMultipartUploads) and the date and ETag
 * helpers, each over the whole input. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/s3xml.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    return 0;
}

static int upload_cb(void *arg, const char *key, const char *upload_id,
                     const struct timespec *initiated)
{
    size_t *n = arg;
    *n += strlen(key) + strlen(upload_id) + (initiated->tv_nsec >= 0);
    return *n > (1u << 20) ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies: ASan sees any read past the reply. */
    char *xml = malloc(size ? size : 1);
    char *str = malloc(size + 1);
    if (!xml || !str) {
        free(xml);
        free(str);
        return 0;
    }
    memcpy(xml, data, size);
    memcpy(str, data, size);
    str[size] = 0;

    struct s3_list_page page;
    memset(&page, 0, sizeof page);
    s3xml_parse_list(xml, size, "pre/", &page);
    s3xml_list_page_free(&page);
    memset(&page, 0, sizeof page);
    s3xml_parse_list(xml, size, "", &page);
    s3xml_list_page_free(&page);

    char code[64], msg[256];
    s3xml_parse_error(xml, size, code, sizeof code, msg, sizeof msg);
    char id[1024];
    s3xml_find_text(xml, size, "UploadId", id, sizeof id);
    s3xml_find_text(xml, size, "ETag", id, 8);

    bool truncated;
    char next_key[1024], next_upload[1024];
    size_t n = 0;
    s3xml_parse_uploads(xml, size, upload_cb, &n, &truncated, next_key, sizeof next_key,
                        next_upload, sizeof next_upload);

    struct timespec ts;
    s3xml_parse_time(str, &ts);
    char unq[130];
    s3xml_unquote(str, unq, sizeof unq);
    free(xml);
    free(str);
    return 0;
}
