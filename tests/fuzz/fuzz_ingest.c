/* fuzz_ingest.c: libFuzzer target: tar ingest (kv_ingest_limited, the
 * code tarnfsd and `tarnfs ingest` use) of arbitrary bytes into a scratch
 * cache as run "fz"; a published run is evicted again.
 *
 * Input: byte 0 picks the wrapping (mod 5): 0 the rest as it is (plain
 * tar, or compressed bytes as they come); 1..4 the rest compressed first
 * with libarchive's gzip, bzip2, xz or zstd write filter, so the fuzzer
 * mutates the tar inside and ingest reads it through the decompressor. */
#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"
#include "util/log.h"

/* Ingest stops past this (as with cache_limit): a decompression bomb
 * costs at most this much disk. */
#define FUZZ_INGEST_MAX (64u << 20)

static kv_cache *cache;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    log_setup("fuzz", 0, getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    int rc = kv_cache_open(fuzz_scratch_dir("ingest"), true, &cache);
    if (rc) {
        fprintf(stderr, "fuzz: kv_cache_open: %s\n", strerror(rc));
        abort();
    }
    return 0;
}

/* data compressed with filter into a malloc'd buffer; NULL on failure. */
static uint8_t *compress_with(int which, const uint8_t *data, size_t len, size_t *out_len)
{
    size_t cap = len + len / 2 + 4096, used = 0;
    uint8_t *buf = malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    int ok = buf && a && e;
    if (ok) {
        archive_write_set_format_raw(a);
        int r = which == 1 ? archive_write_add_filter_gzip(a)
              : which == 2 ? archive_write_add_filter_bzip2(a)
              : which == 3 ? archive_write_add_filter_xz(a)
              : archive_write_add_filter_zstd(a);
        archive_write_set_bytes_in_last_block(a, 1);
        archive_entry_set_pathname(e, "data");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)len);
        ok = r == ARCHIVE_OK && archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK &&
             archive_write_header(a, e) == ARCHIVE_OK &&
             (len == 0 || archive_write_data(a, data, len) == (la_ssize_t)len) &&
             archive_write_close(a) == ARCHIVE_OK;
    }
    archive_entry_free(e);
    if (a)
        archive_write_free(a);
    if (!ok) {
        free(buf);
        return NULL;
    }
    *out_len = used;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % 5;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    uint8_t *owned = NULL;
    if (which) {
        owned = compress_with(which, p, len, &len);
        if (!owned)
            return 0;
        p = owned;
    } else {
        owned = malloc(len ? len : 1);      /* exact size: ASan sees over-reads */
        if (!owned)
            return 0;
        memcpy(owned, p, len);
        p = owned;
    }
    struct fuzz_mem m = { p, len, 0 };
    struct kv_ingest_result res;
    int rc = kv_ingest_limited(cache, "fz", fuzz_mem_read, &m, "fuzz", FUZZ_INGEST_MAX, &res);
    if (rc == 0) {
        /* The published run reads back: its root and statistics. */
        kv_run *r;
        if (kv_run_open(cache, "fz", &r) == 0) {
            struct kv_statfs st;
            kv_run_statfs(r, &st);
            kv_run_close(r);
        }
        if (kv_cache_evict(cache, "fz") != 0)
            abort();
    }
    free(owned);
    return 0;
}
