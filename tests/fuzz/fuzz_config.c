/* fuzz_config.c: libFuzzer target: the tarnfsd config parser
 * (nfsd_config_load over the input as a tarnfs.conf), then the exports it
 * built as the server uses them (matching peers, lookup by handle id), and
 * each input line alone as an exports line (exports_add_line) and as a
 * size and a duration.
 *
 * Host-name client patterns are resolved by getaddrinfo when a config is
 * read; a fuzzer must not query DNS, so this target's getaddrinfo resolves
 * "localhost" and numeric addresses only (others: EAI_NONAME). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/units.h"
#include "nfsd/config.h"
#include "tests/fuzz/fuzz_util.h"
#include "util/log.h"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static gai_fn real;
    if (!real)
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (!real)
        return EAI_FAIL;
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    if (hints)
        h = *hints;
    if (!node || strcmp(node, "localhost") != 0)
        h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

static int memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    log_setup("fuzz", 0, getenv("FUZZ_VERBOSE") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
    memfd = memfd_create("tarnfs-fuzz-config", MFD_CLOEXEC);
    if (memfd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    return 0;
}

static void use_exports(const struct exports *ex)
{
    struct sockaddr_in p4 = { .sin_family = AF_INET, .sin_port = htons(800) };
    struct sockaddr_in6 p6 = { .sin6_family = AF_INET6, .sin6_port = htons(2049) };
    inet_pton(AF_INET, "10.1.5.20", &p4.sin_addr);
    inet_pton(AF_INET6, "fd00::1", &p6.sin6_addr);
    for (size_t i = 0; i < ex->n; i++) {
        export_match(&ex->v[i], (const struct sockaddr *)&p4);
        export_match(&ex->v[i], (const struct sockaddr *)&p6);
        if (exports_by_id(ex, ex->v[i].id) == NULL)
            abort();    /* every export is found by its own handle id */
    }
    exports_admit(ex, (const struct sockaddr *)&p4);
    exports_any_rw(ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
        return 0;
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    struct nfsd_config cfg;
    nfsd_config_defaults(&cfg);
    if (nfsd_config_load(path, &cfg, err, sizeof err) == 0 && cfg.exports)
        use_exports(cfg.exports);
    nfsd_config_free(&cfg);

    /* Each line alone, as an exports line body and as values. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct exports *ex = NULL;
    if (exports_default(false, &ex) != 0)
        abort();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        exports_add_line(ex, line, err, sizeof err);
        uint64_t sz, ms;
        units_size(line, &sz);
        units_duration_ms(line, &ms);
    }
    use_exports(ex);
    exports_unref(ex);
    free(text);
    return 0;
}
